// SPDX-License-Identifier: MIT
/*
 * Description: spawn n Gs that each call kgo_wg_done(), and wait for
 * them; ns per G from the first kgo_go() until kgo_wg_wait() returns.
 * Go peer: gobench spawn_join.
 */
#include "bench.h"

static struct kgo_wg wg = KGO_WG_INIT;

static void done(void *arg)
{
	(void)arg;
	kgo_wg_done(&wg);
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	int64_t start, el;
	long i;

	start = kgo_now();
	kgo_wg_add(&wg, o->n);
	for (i = 0; i < o->n; i++)
		bench_go(o, done, NULL);
	kgo_wg_wait(&wg);
	el = kgo_now() - start;
	emit("spawn_join_ns_per_g", (double)el / o->n, "ns");
	emit("spawn_join_threads", threads(), "threads");
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 2, .n = 1000000 };

	bench_parse(argc, argv, &o);
	bench_run(bench, &o);
	return 0;
}
