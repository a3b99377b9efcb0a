// SPDX-License-Identifier: MIT
/*
 * Description: two Gs call kgo_yield() n/2 times each on one P; ns per
 * yield (each is a switch to the other G). Go peer: gobench yield.
 */
#include "bench.h"

static struct kgo_wg wg = KGO_WG_INIT;
static long per;

static void yielder(void *arg)
{
	long i;

	(void)arg;
	for (i = 0; i < per; i++)
		kgo_yield();
	kgo_wg_done(&wg);
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	int64_t start, el;

	per = o->n / 2;
	start = kgo_now();
	kgo_wg_add(&wg, 2);
	bench_go(o, yielder, NULL);
	bench_go(o, yielder, NULL);
	kgo_wg_wait(&wg);
	el = kgo_now() - start;
	emit("yield_ns_per_switch", (double)el / (2 * per), "ns");
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 1, .n = 10000000 };

	bench_parse(argc, argv, &o);
	bench_run(bench, &o);
	return 0;
}
