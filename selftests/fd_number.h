/* SPDX-License-Identifier: MIT */
/*
 * fd_number.h - a test that closes a number and wants its next file on
 * the same number, without taking a number the runtime holds.
 *
 * dup2(nfd, old) after closing old is a race in a kgo process: between
 * the close and the dup2 the number is free, and the runtime's threads
 * open files at the lowest free number at any time (an M's io_uring
 * ring at its first I/O, sysmon's /proc/self/task/N/stat, the netpoller's
 * epoll). dup2 then closes the runtime's file under it. Seen in the 7.2
 * VM (make vmtest-matrix, 2026-12-07): an M's io_uring_setup got the
 * number io_close_test close_reuse had just closed, the test's dup2
 * put a pipe there, liburing's mmap of the ring hit the pipe's read end
 * (EACCES: a shared writable map of a file open read-only; an AF_UNIX
 * socket gives ENODEV, /tmp/eacc.c in the commit message), and its error
 * path closed the "ring" - the test's pipe: the test's next kgo_close
 * returned -EBADF, and the M went without a ring ("refused by a seccomp
 * filter or security module", which it was not).
 *
 * The cure: the test's numbers live from FD_TEST_BASE up, where nobody
 * else opens (the kernel hands out the lowest free number, and a kgo
 * test has far fewer than FD_TEST_BASE files open), and F_DUPFD - which
 * never closes anything - puts the next file on the freed number.
 */
#ifndef KGO_SELFTESTS_FD_NUMBER_H
#define KGO_SELFTESTS_FD_NUMBER_H

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define FD_TEST_BASE 512

/*
 * fd_onto() - move @fd to the lowest free number >= @at (close-on-exec),
 * closing @fd. Return: the new number, or -errno (EINVAL: RLIMIT_NOFILE
 * is at most @at; EMFILE: no number free above it).
 */
static inline int fd_onto(int fd, int at)
{
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, at);

	if (nfd < 0)
		return -errno;
	close(fd);
	return nfd;
}

/* fd_high() - move @fd above the runtime's numbers; see fd_onto(). */
static inline int fd_high(int fd)
{
	return fd_onto(fd, FD_TEST_BASE);
}

#endif
