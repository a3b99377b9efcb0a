// SPDX-License-Identifier: MIT
/*
 * io_file.c - the file calls of kgo.h: the RWF_NOWAIT fast path, then
 * the M's ring (io.c), then the syscall path when io_uring is refused.
 *
 * Each call returns what the syscall would, errors as -errno. Two places
 * where the fast path needs care to keep that promise:
 *
 *  - A read with RWF_NOWAIT may stop short where the page cache does;
 *    a plain read of a regular file would not (short only at EOF). So a
 *    short non-blocking read of a regular file goes on through the ring
 *    for the rest. Pipes and sockets return short reads as read(2) does.
 *  - A write stopped short by RWF_NOWAIT goes on until done, as a
 *    blocking write(2) would, unless the fd is O_NONBLOCK.
 *
 * O_NONBLOCK fds (other than regular files and block devices, on which
 * the flag means nothing) must see EAGAIN where read(2) would, but
 * io_uring retries them until ready; the slow path checks the flag.
 * O_DIRECT fds skip the fast path: RWF_NOWAIT there only avoids blocking
 * on locks and allocation, and still waits for the device.
 *
 * Where a file system refuses RWF_NOWAIT (EOPNOTSUPP: buffered writes on
 * ext4 today, every read on FUSE), reads go to the ring, where io-wq
 * does them (IOSQE_ASYNC); pipes, sockets and ttys that refuse it (ptys;
 * on 6.1 pipes and AF_UNIX sockets) wait for readiness and try again, as
 * Go does (rw_special); buffered writes take the syscall path, as Go's do:
 * they copy into the page cache and rarely wait, and a trip through an
 * io-wq thread would cost several times the copy (sysmon takes the P if
 * one does wait).
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io.h"

#define IOV_INLINE	8

static bool fd_regular(int fd)
{
	struct stat st;

	if (fstat(fd, &st))
		return false;
	return S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
}

/* The fd would answer EAGAIN rather than wait. */
static bool fd_nowait_semantics(int fd)
{
	return fd_nonblock(fd) && !fd_regular(fd);
}

/* Fill in the hints of an fd kgo did not open: one fcntl per fd. */
static uint8_t fdh_learn(int fd)
{
	long fl = io_raw(SYS_fcntl, fd, F_GETFL, 0, 0, 0, 0);
	uint8_t h = FDH_KNOWN;

	if (fl < 0)
		return 0;		/* bad fd: the call reports it */
	if (fl & O_DIRECT)
		h |= FDH_DIRECT;
	h |= FDH_FROM_FLAGS(fl);	/* io.c, "The O_NONBLOCK flag" */
	fdh_set(fd, h);
	return h;
}

/* Bytes in iov[0..cnt) that one call moves: at most io_max_rw(), as the
 * kernel clamps (lengths above SSIZE_MAX it refused with EINVAL). */
static size_t iov_total(const struct iovec *iov, int cnt)
{
	size_t t = 0, max = io_max_rw();
	int i;

	for (i = 0; i < cnt; i++) {
		if (iov[i].iov_len >= max - t)
			return max;
		t += iov[i].iov_len;
	}
	return t;
}

/*
 * iov_skip() - the part of iov[0..cnt) after its first @skip bytes, in
 * @buf when it fits (IOV_INLINE entries), else in memory from malloc
 * (*heap set: free it). Return: the new count, -ENOMEM.
 */
static int iov_skip(const struct iovec *iov, int cnt, size_t skip,
		    struct iovec *buf, struct iovec **out, bool *heap)
{
	struct iovec *v = buf;
	int i = 0, n;

	while (i < cnt && skip >= iov[i].iov_len)
		skip -= iov[i++].iov_len;
	n = cnt - i;
	*heap = n > IOV_INLINE;
	if (*heap) {
		v = malloc(n * sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	memcpy(v, iov + i, n * sizeof(*v));
	if (n) {
		v[0].iov_base = (char *)v[0].iov_base + skip;
		v[0].iov_len -= skip;
	}
	*out = v;
	return n;
}

/* One read or write that waits: through the ring (its SQE with
 * @sqe_flags), else the syscall path. @off -1: at the file position. */
static long rw_wait(bool write, int fd, const struct iovec *iov, int cnt,
		    off_t off, int64_t deadline, uint8_t sqe_flags)
{
	struct io_op op;
	bool one;
	long r;

	if (io_ring_usable()) {
		/* An SQE's length is 32 bits: a longer iovec goes as one,
		 * which the kernel clamps or refuses as readv(2) does. */
		one = cnt == 1 && iov->iov_len <= io_max_rw();
		if (one && write)
			io_uring_prep_write(&op.sqe, fd, iov->iov_base,
					    iov->iov_len, off);
		else if (one)
			io_uring_prep_read(&op.sqe, fd, iov->iov_base,
					   iov->iov_len, off);
		else if (write)
			io_uring_prep_writev(&op.sqe, fd, iov, cnt, off);
		else
			io_uring_prep_readv(&op.sqe, fd, iov, cnt, off);
		op.sqe.flags |= sqe_flags;
		r = io_ring_op(&op, deadline);
		if (r != IO_NORING)
			return r;
	}
	if (deadline > 0) {
		r = io_wait_ready(fd, write ? POLLOUT : POLLIN, deadline);
		if (r < 0)
			return r;
	}
	if (off == -1)
		return io_sys(true, write ? SYS_writev : SYS_readv, fd,
			      (long)iov, cnt, 0, 0, 0);
	return io_sys(true, write ? SYS_pwritev : SYS_preadv, fd, (long)iov,
		      cnt, off, 0, 0);
}

/* The rest of a transfer the fast path began: reads once (a regular
 * file), writes until done. @done bytes are behind us. */
static long rw_rest(bool write, int fd, const struct iovec *iov, int cnt,
		    off_t off, int64_t deadline, size_t done)
{
	size_t total = iov_total(iov, cnt);
	struct iovec buf[IOV_INLINE], *v;
	bool heap;
	long r;
	int n;

	while (done < total) {
		n = iov_skip(iov, cnt, done, buf, &v, &heap);
		if (n < 0)
			return done;
		r = rw_wait(write, fd, v, n, off == -1 ? -1 : off + (off_t)done,
			    deadline, 0);
		if (heap)
			free(v);
		if (r <= 0)
			return done;	/* the bytes moved are what counts */
		done += r;
		if (!write)
			break;
	}
	return done;
}

/*
 * rw_answered() - does readv(2), preadv(2), writev(2) or pwritev(2)
 * answer these arguments at once, before any wait? Then true, with the
 * answer in *@r; false when they are good. Asked of preadv2/pwritev2
 * with RWF_NOWAIT, which check the fd, the offset (ESPIPE) and the
 * iovec (EINVAL, EFAULT) first and only then refuse the flag
 * (EOPNOTSUPP). Measured with a pty on 6.18 (it refuses RWF_NOWAIT
 * there too): an iovec of SIZE_MAX EINVAL, 1025 of them EINVAL, NULL
 * EFAULT, an offset ESPIPE, good ones EOPNOTSUPP.
 * Zero bytes asked are 0 at once; a count moved (the kernel took the
 * flag after all) is the call's result too.
 */
static bool rw_answered(bool write, int fd, const struct iovec *iov,
			int cnt, off_t off, long *r)
{
	*r = io_raw(write ? SYS_pwritev2 : SYS_preadv2, fd, (long)iov, cnt,
		    off, 0, RWF_NOWAIT);
	return *r != -EOPNOTSUPP && *r != -EAGAIN;
}

/*
 * rw_try() - one try at a read or write of a pipe, socket or tty whose
 * preadv2/pwritev2 refuse RWF_NOWAIT (@h: FDH_SPECIAL), without waiting.
 * A socket has MSG_DONTWAIT. Anything else has poll: not ready is
 * -EAGAIN; ready means a read returns what is there, and a write of up
 * to PIPE_BUF fits (a pipe that polls writable has a free page), so a
 * longer write is cut short there, as a non-blocking write may be.
 *
 * On the @first try it asks rw_answered before it answers -EAGAIN (its
 * caller would then wait), before it reads a write's iovec (to cut it
 * short: one more syscall a write, on such fds only) and after an error
 * of recvmsg/sendmsg (whose words differ from readv's: EMSGSIZE for 1025
 * iovecs), so that bad arguments fail at once, as in the syscall.
 * Without that, kgo_readv(pipe, one iovec of SIZE_MAX) waited forever
 * for data on 6.1 instead of failing with EINVAL (faults_test
 * errno_table timed out in make vmtest -k 6.1; on 6.18 the pty cases
 * show it).
 */
static long rw_try(bool write, int fd, const struct iovec *iov, int cnt,
		   off_t off, uint8_t h, bool first)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov,
			      .msg_iovlen = cnt };
	struct iovec one;
	bool ready;
	long r, e;
	int i = 0;

	if ((h & FDH_SOCK) && off == -1) {
		r = io_raw(write ? SYS_sendmsg : SYS_recvmsg, fd, (long)&msg,
			   MSG_DONTWAIT, 0, 0, 0);
		if (r < 0 && first && rw_answered(write, fd, iov, cnt, off,
						  &e))
			return e;
		return r;
	}
	/* The kernel reads @iov first: kgo may not (NULL, 1025 of them). */
	ready = io_poll0(fd, write ? POLLOUT : POLLIN) != 0;
	if ((!ready || write) && first &&
	    rw_answered(write, fd, iov, cnt, off, &r))
		return r;
	if (!ready)
		return -EAGAIN;
	if (write && iov_total(iov, cnt) > PIPE_BUF) {
		while (i < cnt - 1 && !iov[i].iov_len)
			i++;
		one.iov_base = iov[i].iov_base;
		one.iov_len = iov[i].iov_len < PIPE_BUF ? iov[i].iov_len :
			      PIPE_BUF;
		iov = &one;
		cnt = 1;
	}
	if (off != -1)
		return io_sys(false, write ? SYS_pwritev : SYS_preadv, fd,
			      (long)iov, cnt, off, 0, 0);
	return io_sys(false, write ? SYS_writev : SYS_readv, fd, (long)iov,
		      cnt, 0, 0, 0);
}

/*
 * rw_special() - a read or write of a pipe, socket or tty that refuses
 * RWF_NOWAIT, Go's way: try (rw_try), and when it would wait, park the
 * G on the fd's readiness until @deadline, then try again. It parks on
 * the poll descriptor (io_fd_wait), as every other wait on a pipe or
 * socket does, so that kgo_close, kgo_fd_cancel and kgo_fd_set_deadline
 * reach it (on the ring's POLL_ADD, as it did before, a waiter on a
 * pty, or on a pipe on 6.1, slept through kgo_close: io_close_test
 * tty_wakes); kgo_poll only where the netpoller cannot take the fd.
 * @fw: the call's io_fd_begin, which the caller ends. Writes go on
 * until done, as write(2) on a blocking pipe. No io-wq thread blocks
 * for these: on 6.1 a pipe read sent to the ring blocked one in the
 * kernel, and the write that was to wake it came back -ECANCELED in 1
 * run of 8 (io_file_test io.uring.pipes, make vmtest -k 6.1).
 */
static long rw_special(bool write, int fd, const struct iovec *iov, int cnt,
		       off_t off, int64_t deadline, uint8_t h,
		       struct io_fdw *fw)
{
	struct iovec buf[IOV_INLINE], *v;
	size_t total = 0, done = 0;
	bool heap = false;
	long r;
	int n;

	for (;;) {
		v = (struct iovec *)iov;
		n = cnt;
		if (done) {
			n = iov_skip(iov, cnt, done, buf, &v, &heap);
			if (n < 0)
				return done;
		}
		r = rw_try(write, fd, v, n, off == -1 ? -1 : off + (off_t)done,
			   h, !done);
		if (heap)
			free(v);
		if (r == -EAGAIN && deadline != 0) {
			/* On the poll descriptor, where kgo_close and
			 * kgo_fd_cancel reach the G (io_close_test
			 * tty_wakes); the ring's poll where it cannot. */
			r = io_fd_wait(fw, fd, write);
			if (r == 0)
				continue;
			if (r == IO_NORING) {
				r = kgo_poll(fd, write ? POLLOUT : POLLIN,
					     deadline);
				if (r >= 0)
					continue;
			}
		}
		if (r < 0)
			return done ? (long)done : r;
		if (!write || r == 0)
			return done + r;
		/* Only now: the kernel has taken @iov (it may be NULL). */
		if (!done)
			total = iov_total(iov, cnt);
		done += r;
		if (done >= total)
			return done;
	}
}

/*
 * rw_nofast() - a read or write of an fd without the fast path: O_DIRECT,
 * or preadv2/pwritev2 refused RWF_NOWAIT (@h has FDH_NO_RNOWAIT or
 * FDH_NO_WNOWAIT; FDH_SPECIAL tells pipes, sockets and ttys from files).
 *
 * Which fds refuse: buffered writes on ext4, every read on FUSE, ptys;
 * on 6.1 also pipes and AF_UNIX sockets (EAGAIN from 6.x), so the
 * deadline-0 and O_NONBLOCK promises must hold here too: without the
 * checks below kgo_read_dl(pipe, .., 0) waited forever on Debian 12
 * (io_net_test nowait_refused, make vmtest).
 */
static long rw_nofast(bool write, int fd, const struct iovec *iov, int cnt,
		      off_t off, int64_t deadline, uint8_t h,
		      struct io_fdw *fw)
{
	long r;

	if (h & FDH_SPECIAL) {
		/* O_NONBLOCK: the plain syscall answers EAGAIN itself. */
		if (fd_nonblock(fd))
			return io_raw(write ? (off == -1 ? SYS_writev : SYS_pwritev)
					    : (off == -1 ? SYS_readv : SYS_preadv),
				      fd, (long)iov, cnt, off, 0, 0);
		return rw_special(write, fd, iov, cnt, off, deadline, h, fw);
	}
	/* Buffered writes to files take the syscall path (top of file). */
	if (write && !(h & FDH_DIRECT))
		return io_sys(false, off == -1 ? SYS_writev : SYS_pwritev, fd,
			      (long)iov, cnt, off, 0, 0);
	/*
	 * rw_wait reads @iov (one iovec goes as a plain READ): let the
	 * kernel check it first, or kgo_readv(file, NULL, 1) is a SIGSEGV
	 * where readv(2) says EFAULT (faults_test errno_table on 6.1, whose
	 * tmpfs refuses RWF_NOWAIT reads: make vmtest -k 6.1). Not for
	 * O_DIRECT, whose RWF_NOWAIT read would wait for the device here.
	 */
	if (!(h & FDH_DIRECT) && rw_answered(false, fd, iov, cnt, off, &r))
		return r;
	if (deadline == 0)
		deadline = -1;		/* files are always ready */
	/*
	 * A file whose reads refuse RWF_NOWAIT (FUSE, network file
	 * systems) goes straight to io-wq: 6.1 (Debian 12) would run the
	 * read inline in io_uring_enter instead, in the submitting M, which
	 * then blocks uninterruptibly for as long as the file system takes
	 * (io_slowfs_test, make vmtest -k 6.1). Newer kernels punt such
	 * reads to io-wq themselves, so IOSQE_ASYNC only skips their try.
	 */
	return rw_wait(write, fd, iov, cnt, off, deadline,
		       write || (h & FDH_DIRECT) ? 0 : IOSQE_ASYNC);
}

/* The fast path was refused (EOPNOTSUPP): remember it, and whether the
 * fd is a file, in the fd's hints. */
static uint8_t fdh_refused(int fd, uint8_t h, bool write)
{
	struct stat st;

	h |= FDH_KNOWN | (write ? FDH_NO_WNOWAIT : FDH_NO_RNOWAIT);
	/* Raw, as the calls that open and close fds here: TSan's fstat
	 * interceptor took an fd number that kgo_close had closed through
	 * the ring (unseen) for another file's (a race report, make check). */
	if (!io_raw(SYS_fstat, fd, (long)&st, 0, 0, 0, 0) &&
	    !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		h |= FDH_SPECIAL | (S_ISSOCK(st.st_mode) ? FDH_SOCK : 0);
	fdh_set(fd, h);
	return h;
}

/*
 * rw_poll() - a read or write that said EAGAIN (a write: after moving
 * @done bytes) on a pipe, socket or tty: wait on the netpoller (io.c,
 * "The poll descriptor", where kgo_close, kgo_fd_cancel and deadlines
 * reach the G) and try again with RWF_NOWAIT, reads until something
 * came, writes until all is written. A file the netpoller cannot take
 * (a regular file's cache miss) goes to the ring as before.
 */
static long rw_poll(bool write, int fd, const struct iovec *iov, int cnt,
		    off_t off, struct io_fdw *fw, size_t done)
{
	struct iovec buf[IOV_INLINE], *v;
	size_t total = iov_total(iov, cnt);
	bool heap;
	long r;
	int n;

	for (;;) {
		r = io_fd_wait(fw, fd, write);
		if (r == IO_NORING) {
			if (done)
				return rw_rest(write, fd, iov, cnt, off,
					       io_fd_deadline(fw, write), done);
			return rw_wait(write, fd, iov, cnt, off,
				       io_fd_deadline(fw, write), 0);
		}
		if (r < 0)
			break;
		n = iov_skip(iov, cnt, done, buf, &v, &heap);
		if (n < 0)
			break;
		r = io_raw(write ? SYS_pwritev2 : SYS_preadv2, fd, (long)v, n,
			   off == -1 ? -1 : off + (off_t)done, 0, RWF_NOWAIT);
		if (heap)
			free(v);
		if (r == -EAGAIN)
			continue;
		if (r <= 0 || !write)
			break;
		done += r;
		if (done >= total)
			break;
	}
	return done ? (long)done : r;
}

/*
 * io_rw() - every read and write of kgo.h. @off -1: at (and moving) the
 * file position. @deadline: < 0 wait, 0 do not wait, else absolute.
 */
static long io_rw(bool write, int fd, const struct iovec *iov, int cnt,
		  off_t off, int64_t deadline)
{
	struct io_fdw fw;
	uint8_t h;
	long r;

	if (!getg())
		return io_raw(write ? SYS_pwritev2 : SYS_preadv2, fd, (long)iov,
			      cnt, off, 0, 0);
	h = fdh_get(fd);
	if (!(h & FDH_KNOWN))
		h = fdh_learn(fd);
	r = io_fd_begin(&fw, fd, write, deadline);
	if (r)
		return r;
	if (h & (FDH_DIRECT | (write ? FDH_NO_WNOWAIT : FDH_NO_RNOWAIT))) {
		r = rw_nofast(write, fd, iov, cnt, off,
			      io_fd_deadline(&fw, write), h, &fw);
		io_fd_end(&fw);
		return r;
	}
	/* Offset -1: the file position, as pwritev2(3) says. */
	r = io_raw(write ? SYS_pwritev2 : SYS_preadv2, fd, (long)iov, cnt, off,
		   0, RWF_NOWAIT);
	if (r == -EOPNOTSUPP) {
		r = rw_nofast(write, fd, iov, cnt, off,
			      io_fd_deadline(&fw, write),
			      fdh_refused(fd, h, write), &fw);
		io_fd_end(&fw);
		return r;
	}
	if (r == -EAGAIN) {
		if (deadline == 0 || fd_nowait_semantics(fd))
			return -EAGAIN;
		r = rw_poll(write, fd, iov, cnt, off, &fw, 0);
		io_fd_end(&fw);
		return r;
	}
	io_count_nowait();
	if (r <= 0)
		return r;
	if (write && (size_t)r < iov_total(iov, cnt) && !fd_nonblock(fd)) {
		r = rw_poll(write, fd, iov, cnt, off, &fw, r);
		io_fd_end(&fw);
		return r;
	}
	if (!write && (size_t)r < iov_total(iov, cnt) && fd_regular(fd))
		return rw_rest(write, fd, iov, cnt, off, deadline, r);
	return r;
}

/*
 * user_range_ok() - does the kernel take [@buf, @buf + @n) for user
 * memory (access_ok), as read(2) and write(2) check before they clamp
 * @n? Asked of /dev/null, whose write(2) makes that check and moves
 * nothing. True when it cannot tell (no /dev/null, no fd left).
 */
static bool user_range_ok(const void *buf, size_t n)
{
	long fd, r;

	if (n > SSIZE_MAX)
		return false;		/* more than any address space */
	fd = io_raw(SYS_openat, AT_FDCWD, (long)"/dev/null",
		    O_WRONLY | O_CLOEXEC, 0, 0, 0);
	if (fd < 0)
		return true;
	r = io_raw(SYS_write, fd, (long)buf, (long)n, 0, 0, 0);
	io_raw(SYS_close, fd, 0, 0, 0, 0, 0);
	return r != -EFAULT;
}

/*
 * io_rw1() - read(2), pread(2), write(2), pwrite(2) and their _dl forms.
 *
 * The kernel checks a count differently in these and in the vectored
 * calls that kgo's paths use. Measured on 6.18 (faults_test.c's
 * errno_table runs each case against the syscall on both paths):
 *
 *	read(pipe, file or socket, buf, SIZE_MAX)	EFAULT
 *	read(file, stack buf, SSIZE_MAX or 1 << 40)	EFAULT
 *	read(-1 or O_WRONLY fd, buf, SIZE_MAX)		EBADF (fd first)
 *	pread(pipe, buf, SIZE_MAX, 0)			ESPIPE
 *	write(pipe, file or socket, buf, SIZE_MAX)	EFAULT
 *	readv/preadv2 of one iovec of SIZE_MAX		EINVAL (fd -1: EBADF)
 *	readv of one iovec of SSIZE_MAX			reads (clamped first)
 *	recv(socket, buf, SIZE_MAX)			reads (clamped first)
 *
 * read(2) checks that the whole of [buf, buf + n) is user memory before
 * it clamps n to MAX_RW_COUNT; an iovec is clamped first and then only
 * what moves is checked, and one longer than SSIZE_MAX is refused. So a
 * count above MAX_RW_COUNT whose range the kernel refuses goes to the
 * plain syscall, which fails with what read(2) says (the fd's error
 * first, then EFAULT) and cannot wait: the check comes before any wait.
 * Other counts move at most MAX_RW_COUNT bytes, as the kernel does.
 */
static long io_rw1(bool write, int fd, const void *buf, size_t n, off_t off,
		   int64_t deadline)
{
	struct iovec iov = { (void *)buf, n };
	long nr;

	if (unlikely(n > io_max_rw())) {
		if (!user_range_ok(buf, n)) {
			if (off == -1)
				nr = write ? SYS_write : SYS_read;
			else
				nr = write ? SYS_pwrite64 : SYS_pread64;
			return io_raw(nr, fd, (long)buf, (long)n, off, 0, 0);
		}
		iov.iov_len = io_max_rw();
	}
	return io_rw(write, fd, &iov, 1, off, deadline);
}

ssize_t kgo_read(int fd, void *buf, size_t n)
{
	return io_rw1(false, fd, buf, n, -1, -1);
}

ssize_t kgo_read_dl(int fd, void *buf, size_t n, int64_t deadline)
{
	return io_rw1(false, fd, buf, n, -1, deadline);
}

ssize_t kgo_pread(int fd, void *buf, size_t n, off_t off)
{
	if (off < 0)
		return -EINVAL;
	return io_rw1(false, fd, buf, n, off, -1);
}

ssize_t kgo_readv(int fd, const struct iovec *iov, int iovcnt)
{
	return io_rw(false, fd, iov, iovcnt, -1, -1);
}

ssize_t kgo_preadv(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	if (off < 0)
		return -EINVAL;
	return io_rw(false, fd, iov, iovcnt, off, -1);
}

ssize_t kgo_write(int fd, const void *buf, size_t n)
{
	return io_rw1(true, fd, buf, n, -1, -1);
}

ssize_t kgo_write_dl(int fd, const void *buf, size_t n, int64_t deadline)
{
	return io_rw1(true, fd, buf, n, -1, deadline);
}

ssize_t kgo_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (off < 0)
		return -EINVAL;
	return io_rw1(true, fd, buf, n, off, -1);
}

ssize_t kgo_writev(int fd, const struct iovec *iov, int iovcnt)
{
	return io_rw(true, fd, iov, iovcnt, -1, -1);
}

ssize_t kgo_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	if (off < 0)
		return -EINVAL;
	return io_rw(true, fd, iov, iovcnt, off, -1);
}

/* ------------------------------------------------------------------ */
/* Calls with no fast path: the ring, else the syscall path           */
/* ------------------------------------------------------------------ */

/*
 * ring_or_sys() - run @op (prepared, or NULL when the ring is not
 * usable) through the ring; without a ring, syscall @nr on the syscall
 * path (@blocking: hand off the P first).
 */
static long ring_or_sys(struct io_op *op, bool blocking, long nr, long a0,
			long a1, long a2, long a3, long a4)
{
	long r = IO_NORING;

	if (op)
		r = io_ring_op(op, -1);
	if (r == IO_NORING)
		r = io_sys(blocking, nr, a0, a1, a2, a3, a4, 0);
	return r;
}

int kgo_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	struct io_op op, *o = io_ring_usable() ? &op : NULL;
	long r;

	if (o)
		io_uring_prep_openat(&op.sqe, dirfd, path, flags, mode);
	r = ring_or_sys(o, false, SYS_openat, dirfd, (long)path,
			flags, mode, 0);
	if (r >= 0) {
		fdh_set(r, FDH_KNOWN | FDH_FROM_FLAGS(flags) |
			(flags & O_DIRECT ? FDH_DIRECT : 0));
		io_fd_fresh(r);
	}
	return r;
}

int kgo_open(const char *path, int flags, mode_t mode)
{
	return kgo_openat(AT_FDCWD, path, flags, mode);
}

int kgo_close(int fd)
{
	struct io_op op, *o = io_ring_usable() ? &op : NULL;

	/* Wake the Gs waiting on it (-EBADF), wait for them to leave. */
	io_fd_close_begin(fd);
	fdh_set(fd, 0);
	if (o)
		io_uring_prep_close(&op.sqe, fd);
	return ring_or_sys(o, false, SYS_close, fd, 0, 0, 0, 0);
}

static int io_fsync(int fd, bool data)
{
	struct io_op op, *o = io_ring_usable() ? &op : NULL;

	if (o)
		io_uring_prep_fsync(&op.sqe, fd, data ? IORING_FSYNC_DATASYNC : 0);
	return ring_or_sys(o, true, data ? SYS_fdatasync : SYS_fsync,
			   fd, 0, 0, 0, 0);
}

int kgo_fsync(int fd)
{
	return io_fsync(fd, false);
}

int kgo_fdatasync(int fd)
{
	return io_fsync(fd, true);
}

int kgo_statx(int dirfd, const char *path, int flags, unsigned mask,
	      struct statx *st)
{
	struct io_op op, *o = io_ring_usable() ? &op : NULL;

	if (o)
		io_uring_prep_statx(&op.sqe, dirfd, path, flags, mask, st);
	return ring_or_sys(o, false, SYS_statx, dirfd, (long)path,
			   flags, mask, (long)st);
}

int kgo_unlinkat(int dirfd, const char *path, int flags)
{
	struct io_op op, *o = io_ring_usable() ? &op : NULL;

	if (o)
		io_uring_prep_unlinkat(&op.sqe, dirfd, path, flags);
	return ring_or_sys(o, false, SYS_unlinkat, dirfd, (long)path,
			   flags, 0, 0);
}

int kgo_renameat(int olddirfd, const char *oldpath, int newdirfd,
		 const char *newpath)
{
	struct io_op op, *o = io_ring_usable() ? &op : NULL;

	if (o)
		io_uring_prep_renameat(&op.sqe, olddirfd, oldpath, newdirfd,
				       newpath, 0);
	return ring_or_sys(o, false, SYS_renameat2, olddirfd,
			   (long)oldpath, newdirfd, (long)newpath, 0);
}

int kgo_mkdirat(int dirfd, const char *path, mode_t mode)
{
	struct io_op op, *o = io_ring_usable() ? &op : NULL;

	if (o)
		io_uring_prep_mkdirat(&op.sqe, dirfd, path, mode);
	return ring_or_sys(o, false, SYS_mkdirat, dirfd, (long)path,
			   mode, 0, 0);
}

int kgo_fallocate(int fd, int mode, off_t off, off_t len)
{
	struct io_op op, *o = io_ring_usable() ? &op : NULL;

	if (o)
		io_uring_prep_fallocate(&op.sqe, fd, mode, off, len);
	return ring_or_sys(o, true, SYS_fallocate, fd, mode, off,
			   len, 0);
}

int kgo_ftruncate(int fd, off_t len)
{
	struct io_op op, *o = io_ring_usable() && io_has_ftruncate() ? &op : NULL;

	if (o)
		io_uring_prep_rw(IORING_OP_FTRUNCATE, &op.sqe, fd, NULL, 0, len);
	return ring_or_sys(o, false, SYS_ftruncate, fd, len, 0,
			   0, 0);
}
