// SPDX-License-Identifier: MIT
/*
 * Description: page-cached 4 KiB random reads. -w Gs (256) make -n
 * kgo_pread calls in all, of 4 KiB at random 4 KiB-aligned offsets of a
 * 64 MiB file that is read into the page cache first: the RWF_NOWAIT
 * fast path. Figures: reads per second, the peak of the process's own
 * threads, io-wq workers. Go peer: gobench io_pread (os.File.ReadAt, a
 * pread in entersyscall/exitsyscall).
 */
#include "io_bench.h"

#define FILE_SIZE	(64L << 20)
#define BLOCK		4096

static struct {
	struct bench_opts *o;
	int fd;
	long per;
	struct kgo_wg wg;
	_Atomic long bad;
} b = { .wg = KGO_WG_INIT };

static void worker(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ULL;
	/* Page-aligned, as the Go peer's: the kernel's copy into an
	 * unaligned buffer is slower, and the workloads must match. */
	char raw[2 * BLOCK];
	char *buf = (char *)(((uintptr_t)raw + BLOCK - 1) & ~(uintptr_t)(BLOCK - 1));
	long i;
	off_t off;

	for (i = 0; i < b.per; i++) {
		off = (off_t)(splitmix64(seed + i) % (FILE_SIZE / BLOCK)) * BLOCK;
		if (kgo_pread(b.fd, buf, BLOCK, off) != BLOCK)
			atomic_fetch_add(&b.bad, 1);
	}
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
		die("io_pread: %ld short reads", atomic_load(&b.bad));
	emit("pread_reads_per_s", b.per * o->w / (el / 1e9), "reads/s");
	emit("pread_threads", ts.own_max, "threads");
	emit("pread_iowq_workers", ts.iowq_max, "threads");
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 2, .n = 2000000, .w = 256 };
	static char buf[1 << 20];
	char path[512];
	ssize_t n;

	bench_parse(argc, argv, &o);
	snprintf(path, sizeof(path), "%s/kgo-bench-64m.dat", bench_dir());
	if (bench_file(path, FILE_SIZE))
		die("io_pread: %s: %s", path, strerror(errno));
	b.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (b.fd < 0)
		die("io_pread: %s: %s", path, strerror(errno));
	while ((n = read(b.fd, buf, sizeof(buf))) > 0)
		;			/* into the page cache */
	bench_run(bench, &o);
	return 0;
}
