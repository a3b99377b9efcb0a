// SPDX-License-Identifier: MIT
/*
 * Description: a slow file system. slowfs (selftests/slowfs.c, FUSE)
 * answers every read after 1 ms; -w Gs (1000) make -n 4 KiB reads in
 * all, each G on one of 16 files at random offsets, checking the data.
 * Figures: reads per second, the peak of the process's own threads and
 * of io-wq workers. Go peer: gobench io_slowfs (os.File.ReadAt: a thread
 * blocked in read per waiting goroutine). Needs /dev/fuse and
 * build/selftests/slowfs (make tests).
 */
#include "io_bench.h"
#include "../slowfs.h"

#define NFILES		16
#define FILE_SIZE	(1L << 20)
#define BLOCK		4096

static struct {
	struct slowfs fs;
	long per;
	struct kgo_wg wg;
	_Atomic long bad;
} b = { .wg = KGO_WG_INIT };

static void worker(void *arg)
{
	uintptr_t id = (uintptr_t)arg;
	uint64_t seed = id * 0x9e3779b97f4a7c15ULL;
	unsigned file = id % NFILES;
	unsigned char buf[BLOCK];
	char path[PATH_MAX];
	long i;
	off_t off;
	int fd, k;

	slowfs_path(&b.fs, file, path, sizeof(path));
	fd = kgo_open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		die("io_slowfs: %s: %s", path, strerror(-fd));
	for (i = 0; i < b.per; i++) {
		off = (off_t)(splitmix64(seed + i) % (FILE_SIZE / BLOCK)) * BLOCK;
		if (kgo_pread(fd, buf, BLOCK, off) != BLOCK) {
			atomic_fetch_add(&b.bad, 1);
			continue;
		}
		for (k = 0; k < BLOCK; k += 509)
			if (buf[k] != slowfs_byte(file, off + k))
				atomic_fetch_add(&b.bad, 1);
	}
	kgo_close(fd);
	kgo_wg_done(&b.wg);
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	struct tsample ts;
	struct kgo_stats st;
	int64_t el;

	b.per = o->n / o->w;
	el = run_workers(o, worker, &b.wg, &ts);
	kgo_stats_get(&st, sizeof(st));
	if (atomic_load(&b.bad))
		die("io_slowfs: %ld bad reads", atomic_load(&b.bad));
	emit("slowfs_reads_per_s", b.per * o->w / (el / 1e9), "reads/s");
	emit("slowfs_threads", ts.own_max, "threads");
	emit("slowfs_iowq_workers", ts.iowq_max, "threads");
}

static void unmount(void)
{
	slowfs_stop(&b.fs);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 2, .n = 40000, .w = 1000 };
	char why[256];

	bench_parse(argc, argv, &o);
	if (slowfs_start(&b.fs, 1000, NFILES, FILE_SIZE, why, sizeof(why)))
		die("io_slowfs: %s", why);
	atexit(unmount);		/* die() too */
	bench_run(bench, &o);
	return 0;
}
