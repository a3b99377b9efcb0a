// SPDX-License-Identifier: MIT
/*
 * Description: handoff latency. One P; the main G starts a G (which
 * goes to runnext, behind it) and then blocks in read(2) on an empty
 * pipe through kgo_syscall. The new G can run only once sysmon has
 * seen the M blocked, taken the P and handed it to another M; it notes
 * the time and writes the pipe, which ends the read. Figures: p50, p99
 * and max of the time from just before the read until the G runs, over
 * -n rounds. Go peer: gobench handoff (syscall.Read, GOMAXPROCS=1).
 *
 * In bpf mode also the floor, timed on the same blocks: from just
 * before the read until the probes' signal reached the thread it woke
 * (kgo_stats.observe_kick_ns, stamped first thing in its handler): the
 * cheapest wakeup a BPF program can cause, which the handoff then
 * spends a P switch and a G start on top of. And how many of the
 * handoffs the kicked idle M took itself (handoff_by_m_pct).
 *
 * Then the opposite case: -n/10 getrandom(2) calls of 2 MiB through
 * kgo_syscall (~6 ms each on a CPU here, never asleep, under a slice),
 * each with another G runnable behind it (the two take turns with
 * kgo_yield). None of these calls blocks, so any handoff is spurious:
 * busy_handoffs counts them (bpf mode: the kernel says the M runs;
 * poll mode: two looks at the same syscall are taken for a block).
 */
#include <stdatomic.h>
#include <sys/syscall.h>

#include "bench.h"

static int fds[2];
static int64_t t_run;

static void second(void *arg)
{
	(void)arg;
	__atomic_store_n(&t_run, kgo_now(), __ATOMIC_RELEASE);
	if (write(fds[1], "x", 1) != 1)
		die("handoff: write: %s", strerror(errno));
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

#define BUSY_BYTES	(2 << 20)

static _Atomic int busy_done;

static void busy_other(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&busy_done, memory_order_relaxed))
		kgo_yield();
}

static struct kgo_stats st(void);

static void busy(const struct bench_opts *o)
{
	char *buf = malloc(BUSY_BYTES);
	struct kgo_stats a, b;
	long i, n = o->n / 10 ? o->n / 10 : 1;

	if (!buf)
		die("handoff: out of memory");
	memset(buf, 1, BUSY_BYTES);	/* no page fault in the calls */
	atomic_store(&busy_done, 0);
	bench_go(o, busy_other, NULL);
	kgo_yield();
	a = st();
	for (i = 0; i < n; i++) {
		if (kgo_syscall(SYS_getrandom, buf, BUSY_BYTES, 0) <= 0)
			die("handoff: getrandom failed");
		kgo_yield();
	}
	b = st();
	atomic_store(&busy_done, 1);
	emit("busy_handoffs", (double)(b.handoffs - a.handoffs), "");
	free(buf);
}

static struct kgo_stats st(void)
{
	struct kgo_stats s;

	memset(&s, 0, sizeof(s));
	kgo_stats_get(&s, sizeof(s));
	return s;
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	int64_t *lat = calloc(o->n, sizeof(*lat)), t0;
	int64_t *floor = calloc(o->n, sizeof(*floor));
	struct kgo_stats a = st(), b;
	long i, nfloor = 0;
	char c;

	if (!lat || !floor || pipe(fds))
		die("handoff: setup failed");
	for (i = 0; i < o->n; i++) {
		bench_go(o, second, NULL);
		t0 = kgo_now();
		if (kgo_syscall(SYS_read, fds[0], &c, 1) != 1)
			die("handoff: read failed");
		lat[i] = __atomic_load_n(&t_run, __ATOMIC_ACQUIRE) - t0;
		b = st();
		if (b.observe_kick_ns > t0)
			floor[nfloor++] = b.observe_kick_ns - t0;
	}
	b = st();
	qsort(lat, o->n, sizeof(*lat), cmp64);
	emit("handoff_p50_us", percentile(lat, o->n, 50) / 1e3, "us");
	emit("handoff_p99_us", percentile(lat, o->n, 99) / 1e3, "us");
	emit("handoff_max_us", lat[o->n - 1] / 1e3, "us");
	/* bpf mode: every round kicked (a round may be handed off by
	 * sysmon's own look before the kick comes: not a floor then). */
	if (nfloor > o->n / 2) {
		qsort(floor, nfloor, sizeof(*floor), cmp64);
		emit("floor_p50_us", percentile(floor, nfloor, 50) / 1e3, "us");
		emit("floor_p99_us", percentile(floor, nfloor, 99) / 1e3, "us");
		emit("handoff_by_m_pct", 100.0 * (b.handoffs_kicked_m -
			a.handoffs_kicked_m) / o->n, "%");
	}
	free(floor);
	free(lat);
	busy(o);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 1, .n = 500 };

	bench_parse(argc, argv, &o);
	bench_run(bench, &o);
	return 0;
}
