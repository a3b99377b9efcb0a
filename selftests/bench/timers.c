// SPDX-License-Identifier: MIT
/*
 * Description: n Gs each sleep once, the i-th for -m ms plus
 * splitmix64(i) mod the range up to -M ms (in µs: the same list as the
 * Go peer's); lateness is the time slept beyond that. Figures: p50, p99
 * and max lateness in µs. Go peer: gobench timers.
 */
#include "bench.h"

static struct kgo_wg wg = KGO_WG_INIT;
static int64_t *late;
static int64_t *dur;

static void sleeper(void *arg)
{
	long i = (long)arg;
	int64_t t0 = kgo_now();

	kgo_sleep(dur[i]);
	late[i] = kgo_now() - t0 - dur[i];
	kgo_wg_done(&wg);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	uint64_t span;
	long i;

	if (o->min_ms < 0 || o->max_ms < o->min_ms)
		die("timers: need 0 <= -m <= -M");
	late = calloc(o->n, sizeof(*late));
	dur = calloc(o->n, sizeof(*dur));
	if (!late || !dur)
		die("timers: out of memory");
	/* Durations are computed before the clock starts, as in Go's loop
	 * they are computed before each G starts. */
	span = (uint64_t)(o->max_ms - o->min_ms) * 1000 + 1;
	for (i = 0; i < o->n; i++)
		dur[i] = ((uint64_t)o->min_ms * 1000 + splitmix64(i) % span) *
			 1000;
	kgo_wg_add(&wg, o->n);
	for (i = 0; i < o->n; i++)
		bench_go(o, sleeper, (void *)i);
	kgo_wg_wait(&wg);
	qsort(late, o->n, sizeof(*late), cmp64);
	emit("timers_late_p50_us", percentile(late, o->n, 50) / 1e3, "us");
	emit("timers_late_p99_us", percentile(late, o->n, 99) / 1e3, "us");
	emit("timers_late_max_us", late[o->n - 1] / 1e3, "us");
	free(late);
	free(dur);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 2, .n = 100000, .min_ms = 1, .max_ms = 10 };

	bench_parse(argc, argv, &o);
	bench_run(bench, &o);
	return 0;
}
