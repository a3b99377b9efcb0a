// SPDX-License-Identifier: MIT
/*
 * Description: timer lateness behind a spinning G. One P; a G spins in
 * a loop with no call at all (only preemption can stop it) while the
 * main G sleeps 1 ms, -n times. Figures: p50, p99 and max of the time
 * slept beyond 1 ms. Go peer: gobench spin_timer (time.Sleep against a
 * spinning goroutine, GOMAXPROCS=1, async preemption). kgo also says
 * how often sysmon woke while the spinner ran, and how many of the
 * preemptions were the kernel's tick's (KGO_OBSERVE=bpf), and the
 * process's CPU time in each round: the spinner's slice as the CPU
 * counts it (with KGO_OBSERVE=bpf slices are CPU time, so on a loaded
 * machine the wall-time lateness grows with the load and this does
 * not; in poll mode it is the other way round).
 */
#include <time.h>
#include <stdatomic.h>

#include "bench.h"

static atomic_int stop;
static volatile unsigned long sink;

static void spinner(void *arg)
{
	unsigned long x = 0;

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		x++;
	sink = x;
}

static int64_t proc_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	int64_t *late = calloc(o->n, sizeof(*late)), t0, c0;
	int64_t *cpu = calloc(o->n, sizeof(*cpu));
	struct kgo_stats a, b;
	long i;

	if (!late || !cpu)
		die("spin_timer: out of memory");
	bench_go(o, spinner, NULL);
	kgo_yield();		/* let it start spinning */
	kgo_stats_get(&a, sizeof(a));
	for (i = 0; i < o->n; i++) {
		c0 = proc_cpu();
		t0 = kgo_now();
		kgo_sleep(1000000);
		late[i] = kgo_now() - t0 - 1000000;
		cpu[i] = proc_cpu() - c0;
	}
	kgo_stats_get(&b, sizeof(b));
	atomic_store(&stop, 1);
	qsort(late, o->n, sizeof(*late), cmp64);
	emit("spin_timer_late_p50_us", percentile(late, o->n, 50) / 1e3, "us");
	emit("spin_timer_late_p99_us", percentile(late, o->n, 99) / 1e3, "us");
	emit("spin_timer_late_max_us", late[o->n - 1] / 1e3, "us");
	qsort(cpu, o->n, sizeof(*cpu), cmp64);
	emit("spin_timer_round_cpu_p50_us", percentile(cpu, o->n, 50) / 1e3,
	     "us");
	emit("spin_timer_round_cpu_p99_us", percentile(cpu, o->n, 99) / 1e3,
	     "us");
	emit("spin_timer_sysmon_wakeups", b.sysmon_wakeups - a.sysmon_wakeups,
	     "wakeups");
	emit("spin_timer_tick_preempts", b.preempt_ticks - a.preempt_ticks,
	     "preemptions");
	free(late);
	free(cpu);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 1, .n = 200 };

	bench_parse(argc, argv, &o);
	bench_run(bench, &o);
	return 0;
}
