/* SPDX-License-Identifier: MIT */
/*
 * thread_count.h - count this process's threads from /proc/self/task:
 * its own, and io_uring's io-wq workers (named "iou-wrk-N"), apart.
 * Shared by the tests (io_slowfs_test.c) and the benches (io_bench.h).
 */
#ifndef KGO_SELFTESTS_THREAD_COUNT_H
#define KGO_SELFTESTS_THREAD_COUNT_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static inline void count_threads(int *own, int *iowq)
{
	char path[300], comm[32];
	struct dirent *de;
	DIR *d = opendir("/proc/self/task");
	int fd, n;

	*own = *iowq = 0;
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
		if (!strncmp(comm, "iou-wrk-", 8))
			(*iowq)++;
		else
			(*own)++;
	}
	closedir(d);
}

#endif /* KGO_SELFTESTS_THREAD_COUNT_H */
