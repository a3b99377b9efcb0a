// SPDX-License-Identifier: MIT
/*
 * Description: the floor under parked_1m, without kgo. A million Gs
 * with their own guarded stacks touch at least a million fresh pages
 * (the top page of each stack slot, where the first frame and struct g
 * live); this program times only that: one byte written near the top
 * of each of 1M slots 80 KiB apart (16 KiB guard + 64 KiB stack), by
 * -t threads, either by plain first touches or populated ahead with
 * process_madvise(MADV_POPULATE_WRITE) in batches of 256 (what stack.c
 * does) and then touched. No runtime, no locks: what the kernel charges.
 *
 *   selftests/bench/run --build-only     # builds it with the benches
 *   build/bench/page_floor -t 2          # first touches
 *   build/bench/page_floor -t 2 -p       # populate, then touch
 *
 * On this PVM guest (2026-12-05, 2 vCPUs, shadow paging) a fresh page's
 * first touch costs 10-19 us: 1M of them took 10.8-13.6 s with 2
 * threads, 5.3-8.8 s populated ahead; Go 1.23 creates 1M parked
 * goroutines here in ~10 s (selftests/bench/run parked). On an Intel
 * Xeon guest under KVM (2026-12-05, evening) a first touch costs
 * ~0.8 us: 0.78-0.89 s with 2 threads, 0.76-0.82 s populated, against
 * Go's 1.50-1.64 s. Either way a quarter of Go's time is out of reach
 * for any runtime that gives each G a page of its own (README, "Where
 * kgo is behind").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef PIDFD_SELF
#define PIDFD_SELF -10000
#endif

#define SLOTS	1000000L
#define STRIDE	(80 * 1024L)
#define PAGE	4096L
#define BATCH	256

static char *base;
static int nthreads = 2;
static bool populate;

static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *slot_top(long i)
{
	return base + i * STRIDE + STRIDE - PAGE;
}

static void populate_batch(struct iovec *iov, int n)
{
	if (syscall(SYS_process_madvise, PIDFD_SELF, iov, n,
		    MADV_POPULATE_WRITE, 0) < 0) {
		fprintf(stderr, "page_floor: process_madvise: %s (-p needs "
			"Linux 6.13+ for PIDFD_SELF)\n", strerror(errno));
		exit(1);
	}
}

static void *worker(void *arg)
{
	long id = (long)arg, i;
	struct iovec iov[BATCH];
	int n = 0;

	for (i = id; i < SLOTS; i += nthreads) {
		if (populate) {
			iov[n].iov_base = slot_top(i);
			iov[n].iov_len = PAGE;
			if (++n == BATCH) {
				populate_batch(iov, n);
				n = 0;
			}
		}
	}
	if (n)
		populate_batch(iov, n);
	for (i = id; i < SLOTS; i += nthreads)
		slot_top(i)[PAGE - 64] = 1;
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[64];
	double start;
	int opt, i;

	while ((opt = getopt(argc, argv, "t:p")) != -1) {
		if (opt == 't')
			nthreads = atoi(optarg);
		else if (opt == 'p')
			populate = true;
		else
			goto usage;
	}
	if (nthreads < 1 || nthreads > 64)
		goto usage;
	base = mmap(NULL, SLOTS * STRIDE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		perror("page_floor: mmap");
		return 1;
	}
	/* Stack slots are never huge pages (each has its guard). */
	madvise(base, SLOTS * STRIDE, MADV_NOHUGEPAGE);
	start = seconds();
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(long)i)) {
			fprintf(stderr, "page_floor: pthread_create failed\n");
			return 1;
		}
	for (i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	printf("page_floor_s %.3f s (%ld slots, %d threads, %s)\n",
	       seconds() - start, SLOTS, nthreads,
	       populate ? "populated ahead" : "first touches");
	return 0;
usage:
	fprintf(stderr, "usage: page_floor [-t THREADS (1-64)] [-p]\n");
	return 2;
}
