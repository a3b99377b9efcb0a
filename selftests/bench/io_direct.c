// SPDX-License-Identifier: MIT
/*
 * Description: O_DIRECT 4 KiB random reads. -w Gs (128) make -n
 * kgo_pread calls in all, of 4 KiB at random aligned offsets of a
 * 512 MiB file opened O_DIRECT: every read goes to the device, through
 * the ring (the fast path is skipped for O_DIRECT). Figures: IOPS, the
 * peak of the process's own threads and of io-wq workers. Go peer:
 * gobench io_direct (os.File.ReadAt: a blocking pread per goroutine,
 * each holding an M).
 */
#include "io_bench.h"

#define FILE_SIZE	(512L << 20)
#define BLOCK		4096

static struct {
	int fd;
	long per;
	struct kgo_wg wg;
	_Atomic long bad;
} b = { .wg = KGO_WG_INIT };

static void worker(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ULL;
	void *buf;
	long i;
	off_t off;

	if (posix_memalign(&buf, BLOCK, BLOCK))
		die("io_direct: no memory");
	for (i = 0; i < b.per; i++) {
		off = (off_t)(splitmix64(seed + i) % (FILE_SIZE / BLOCK)) * BLOCK;
		if (kgo_pread(b.fd, buf, BLOCK, off) != BLOCK)
			atomic_fetch_add(&b.bad, 1);
	}
	free(buf);
	kgo_wg_done(&b.wg);
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	struct tsample ts;
	int64_t el;

	b.per = o->n / o->w;
	el = run_workers(o, worker, &b.wg, &ts);
	if (atomic_load(&b.bad))
		die("io_direct: %ld failed reads", atomic_load(&b.bad));
	emit("direct_iops", b.per * o->w / (el / 1e9), "IOPS");
	emit("direct_threads", ts.own_max, "threads");
	emit("direct_iowq_workers", ts.iowq_max, "threads");
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 2, .n = 200000, .w = 128 };
	char path[512];

	bench_parse(argc, argv, &o);
	snprintf(path, sizeof(path), "%s/kgo-bench-512m.dat", bench_dir());
	if (bench_file(path, FILE_SIZE))
		die("io_direct: %s: %s", path, strerror(errno));
	b.fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (b.fd < 0)
		die("io_direct: %s: %s", path, strerror(errno));
	bench_run(bench, &o);
	return 0;
}
