// SPDX-License-Identifier: MIT
/*
 * Description: ping-pong over two unbuffered channels between the main G
 * and an echo G; ns per round trip, at -p Ps. Go peer: gobench chan_rt.
 */
#include "bench.h"

static struct kgo_chan *ping, *pong;
static struct kgo_wg done = KGO_WG_INIT;

static void echo(void *arg)
{
	long v;

	(void)arg;
	while (kgo_chan_recv(ping, &v) == 0)
		kgo_chan_send(pong, &v);
	kgo_wg_done(&done);
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	int64_t start, el;
	char name[64];
	long i, v;

	ping = kgo_chan_make(sizeof(long), 0);
	pong = kgo_chan_make(sizeof(long), 0);
	if (!ping || !pong)
		die("kgo_chan_make: out of memory");
	kgo_wg_add(&done, 1);
	bench_go(o, echo, NULL);
	start = kgo_now();
	for (i = 0; i < o->n; i++) {
		kgo_chan_send(ping, &i);
		kgo_chan_recv(pong, &v);
	}
	el = kgo_now() - start;
	kgo_chan_close(ping);
	kgo_wg_wait(&done);
	snprintf(name, sizeof(name), "chan_rt_p%d_ns_per_rt", o->p);
	emit(name, (double)el / o->n, "ns");
	kgo_chan_free(ping);
	kgo_chan_free(pong);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 1, .n = 1000000 };

	bench_parse(argc, argv, &o);
	bench_run(bench, &o);
	return 0;
}
