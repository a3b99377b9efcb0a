// SPDX-License-Identifier: MIT
/*
 * Description: timer lateness behind a spinning G. One P; a G spins in
 * a loop with no call at all (only preemption can stop it) while the
 * main G sleeps 1 ms, -n times. Figures: p50, p99 and max of the time
 * slept beyond 1 ms. Go peer: gobench spin_timer (time.Sleep against a
 * spinning goroutine, GOMAXPROCS=1, async preemption).
 */
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

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	int64_t *late = calloc(o->n, sizeof(*late)), t0;
	long i;

	if (!late)
		die("spin_timer: out of memory");
	bench_go(o, spinner, NULL);
	kgo_yield();		/* let it start spinning */
	for (i = 0; i < o->n; i++) {
		t0 = kgo_now();
		kgo_sleep(1000000);
		late[i] = kgo_now() - t0 - 1000000;
	}
	atomic_store(&stop, 1);
	qsort(late, o->n, sizeof(*late), cmp64);
	emit("spin_timer_late_p50_us", percentile(late, o->n, 50) / 1e3, "us");
	emit("spin_timer_late_p99_us", percentile(late, o->n, 99) / 1e3, "us");
	emit("spin_timer_late_max_us", late[o->n - 1] / 1e3, "us");
	free(late);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 1, .n = 200 };

	bench_parse(argc, argv, &o);
	bench_run(bench, &o);
	return 0;
}
