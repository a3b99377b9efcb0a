/* SPDX-License-Identifier: MIT */
/*
 * thread_count.h - count this process's threads from /proc/self/task:
 * its own, and io_uring's io-wq workers (named "iou-wrk-N"), apart; and
 * which of its own sleep in a given kernel function (wchan).
 * Shared by the tests (io_slowfs_test.c) and the benches (io_bench.h).
 */
#ifndef KGO_SELFTESTS_THREAD_COUNT_H
#define KGO_SELFTESTS_THREAD_COUNT_H

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * An io_uring worker is a kernel-made thread with PF_IO_WORKER (0x10) in
 * the flags of its stat line (the 9th field). Its name ("iou-wrk-N") is
 * set by the worker itself once it runs: until then it bears its
 * creator's, and counting by name alone saw 16 threads "of our own"
 * with 3 Ms (io_slowfs_test thousand_readers on 6.1, where each of
 * the 1000 reads goes to io-wq).
 */
static inline bool task_is_io_worker(const char *tid, const char *comm)
{
	char path[300], stat[512], *p;
	unsigned long flags = 0;
	int fd, n, i;

	if (!strncmp(comm, "iou-wrk-", 8))
		return true;
	snprintf(path, sizeof(path), "/proc/self/task/%s/stat", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	stat[n > 0 ? n : 0] = 0;
	p = strrchr(stat, ')');
	/* After "pid (comm)": state ppid pgrp session tty_nr tpgid flags. */
	for (i = 0; p && i < 7; i++)
		p = strchr(p + 1, ' ');
	if (p)
		flags = strtoul(p + 1, NULL, 10);
	return flags & 0x10;
}

/* The kernel function a thread of ours sleeps in (its wchan): "" when
 * it runs, "0" where the kernel does not say. */
static inline void task_wchan(const char *tid, char *buf, size_t n)
{
	char path[300];
	int fd, len = 0;

	snprintf(path, sizeof(path), "/proc/self/task/%s/wchan", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		len = read(fd, buf, n - 1);
		close(fd);
	}
	buf[len > 0 ? len : 0] = 0;
}

/*
 * scan_threads() - count this process's threads: *own, *iowq as
 * task_is_io_worker() tells them apart; with @wchan_has, also *in_wchan,
 * our own threads that sleep in a kernel function whose name contains
 * one of @wchan_has's '|'-separated words (their names and wchans
 * appended to @names), and *wchan_known, those whose wchan the kernel
 * shows at all (not "0").
 */
static inline void scan_threads(int *own, int *iowq, const char *wchan_has,
				int *in_wchan, int *wchan_known, char *names,
				size_t nlen)
{
	char path[300], comm[32], wchan[128], word[64];
	const char *w, *bar;
	struct dirent *de;
	DIR *d = opendir("/proc/self/task");
	int fd, n;

	*own = *iowq = 0;
	if (wchan_has)
		*in_wchan = *wchan_known = 0;
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		comm[n > 0 ? n : 0] = 0;
		if (task_is_io_worker(de->d_name, comm)) {
			(*iowq)++;
			continue;
		}
		(*own)++;
		if (!wchan_has)
			continue;
		task_wchan(de->d_name, wchan, sizeof(wchan));
		*wchan_known += strcmp(wchan, "0") != 0;
		for (w = wchan_has; *w; w = *bar ? bar + 1 : bar) {
			bar = w + strcspn(w, "|");
			snprintf(word, sizeof(word), "%.*s", (int)(bar - w), w);
			if (!*word || !strstr(wchan, word))
				continue;
			(*in_wchan)++;
			n = strlen(names);
			snprintf(names + n, nlen - n, " %s/%s in %s",
				 de->d_name, strtok(comm, "\n") ? comm : "",
				 wchan);
			break;
		}
	}
	closedir(d);
}

static inline void count_threads(int *own, int *iowq)
{
	scan_threads(own, iowq, NULL, NULL, NULL, NULL, 0);
}

#endif /* KGO_SELFTESTS_THREAD_COUNT_H */
