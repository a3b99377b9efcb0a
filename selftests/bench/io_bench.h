/* SPDX-License-Identifier: MIT */
/*
 * io_bench.h - what the I/O benchmarks (io_*.c) share beyond bench.h:
 * their data files, and a thread counter that samples the process while
 * the workload runs.
 *
 * Threads are reported in two columns, as the issue asks: the process's
 * own threads (the runtime's Ms and sysmon; the Go peer's Ms) and
 * io_uring's io-wq workers ("iou-wrk-*"), which are kernel threads of
 * the process that the kernel makes for work it cannot do without
 * blocking. The Go peer has none of the latter.
 */
#ifndef KGO_IO_BENCH_H
#define KGO_IO_BENCH_H

#include "bench.h"		/* first: it defines _GNU_SOURCE */

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "../thread_count.h"

/*
 * struct tsample - peaks of the thread counts, sampled every 2 ms by a
 * thread of its own (not counted).
 */
struct tsample {
	pthread_t thr;
	_Atomic bool stop;
	int own_max, iowq_max;
};

static inline void *tsample_loop(void *arg)
{
	struct tsample *t = arg;
	int own, iowq;

	while (!atomic_load(&t->stop)) {
		count_threads(&own, &iowq);
		if (own - 1 > t->own_max)	/* not the sampler */
			t->own_max = own - 1;
		if (iowq > t->iowq_max)
			t->iowq_max = iowq;
		usleep(2000);
	}
	return NULL;
}

static inline void tsample_start(struct tsample *t)
{
	memset(t, 0, sizeof(*t));
	if (pthread_create(&t->thr, NULL, tsample_loop, t))
		die("pthread_create");
}

static inline void tsample_stop(struct tsample *t)
{
	atomic_store(&t->stop, true);
	pthread_join(t->thr, NULL);
}

/*
 * run_workers() - start @w Gs of @worker (argument 1..w, their seed),
 * each of which calls kgo_wg_done(@wg) when done, wait for all, and
 * sample the process's threads meanwhile into @ts. Return: the wall
 * time in ns.
 */
static inline int64_t run_workers(const struct bench_opts *o,
				  void (*worker)(void *), struct kgo_wg *wg,
				  struct tsample *ts)
{
	int64_t t0;
	long i;

	kgo_wg_add(wg, o->w);
	tsample_start(ts);
	t0 = kgo_now();
	for (i = 0; i < o->w; i++)
		bench_go(o, worker, (void *)(uintptr_t)(i + 1));
	kgo_wg_wait(wg);
	t0 = kgo_now() - t0;
	tsample_stop(ts);
	return t0;
}

/*
 * bench_file() - a data file of @size bytes at @path, made (or remade)
 * if it is not that size; the Go peer uses the same files. Return: 0,
 * or -1 with errno.
 */
static inline int bench_file(const char *path, off_t size)
{
	static char buf[1 << 20];
	struct stat st;
	off_t off;
	size_t i;
	int fd;

	if (!stat(path, &st) && st.st_size == size)
		return 0;
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0)
		return -1;
	for (off = 0; off < size; off += sizeof(buf)) {
		for (i = 0; i < sizeof(buf); i += 8) {
			uint64_t v = splitmix64(off + i);

			memcpy(buf + i, &v, 8);
		}
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
			close(fd);
			return -1;
		}
	}
	fsync(fd);
	close(fd);
	return 0;
}

/* Where the benches keep their data files ($KGO_BENCH_DIR, else
 * /var/tmp: a disk, not tmpfs, so that O_DIRECT works). */
static inline const char *bench_dir(void)
{
	const char *d = getenv("KGO_BENCH_DIR");

	return d && *d ? d : "/var/tmp";
}

#endif /* KGO_IO_BENCH_H */
