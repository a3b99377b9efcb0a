// SPDX-License-Identifier: MIT
/*
 * Description: -w producers send n/w items each into a channel of
 * capacity -c, -w consumers drain it until it is closed; million items
 * per second from the start to the last receive. Go peer: gobench
 * chan_buf.
 */
#include "bench.h"

static struct kgo_chan *ch;
static struct kgo_wg producers = KGO_WG_INIT;
static struct kgo_wg consumers = KGO_WG_INIT;
static long per;
static long got[256];

static void producer(void *arg)
{
	long i;

	(void)arg;
	for (i = 0; i < per; i++)
		kgo_chan_send(ch, &i);
	kgo_wg_done(&producers);
}

static void consumer(void *arg)
{
	long *count = arg, v, n = 0;

	while (kgo_chan_recv(ch, &v) == 0)
		n++;
	*count = n;
	kgo_wg_done(&consumers);
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	int64_t start, el;
	long total = 0;
	int j;

	if (o->w < 1 || o->w > 256 || o->c < 0)
		die("chan_buf: -w must be 1..256, -c at least 0");
	ch = kgo_chan_make(sizeof(long), o->c);
	if (!ch)
		die("kgo_chan_make: out of memory");
	per = o->n / o->w;
	start = kgo_now();
	kgo_wg_add(&producers, o->w);
	kgo_wg_add(&consumers, o->w);
	for (j = 0; j < o->w; j++) {
		bench_go(o, producer, NULL);
		bench_go(o, consumer, &got[j]);
	}
	kgo_wg_wait(&producers);
	kgo_chan_close(ch);
	kgo_wg_wait(&consumers);
	el = kgo_now() - start;
	for (j = 0; j < o->w; j++)
		total += got[j];
	if (total != per * o->w)
		die("chan_buf: received %ld of %ld items", total, per * o->w);
	emit("chan_buf_mitems_per_s", total / (el / 1e9) / 1e6, "Mitems/s");
	kgo_chan_free(ch);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 2, .n = 10000000, .w = 4, .c = 1024 };

	bench_parse(argc, argv, &o);
	bench_run(bench, &o);
	return 0;
}
