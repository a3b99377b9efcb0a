// SPDX-License-Identifier: MIT
/*
 * Description: n Gs that each signal a wait group, then block receiving
 * on one shared unbuffered channel. Figures: seconds from the first
 * kgo_go() until every G has signalled (all created, each at its
 * receive); peak RSS (VmHWM); seconds from kgo_chan_close() until all
 * have exited; OS threads. Go peer: gobench parked.
 */
#include "bench.h"

static struct kgo_wg ready = KGO_WG_INIT;
static struct kgo_wg exited = KGO_WG_INIT;
static struct kgo_chan *ch;

static void waiter(void *arg)
{
	int v;

	(void)arg;
	kgo_wg_done(&ready);
	if (kgo_chan_recv(ch, &v) != -EPIPE)
		die("parked: receive did not see the close");
	kgo_wg_done(&exited);
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	int64_t start, created, released;
	long i;

	ch = kgo_chan_make(sizeof(int), 0);
	if (!ch)
		die("kgo_chan_make: out of memory");
	start = kgo_now();
	kgo_wg_add(&ready, o->n);
	kgo_wg_add(&exited, o->n);
	for (i = 0; i < o->n; i++)
		bench_go(o, waiter, NULL);
	kgo_wg_wait(&ready);
	created = kgo_now() - start;
	start = kgo_now();
	kgo_chan_close(ch);
	kgo_wg_wait(&exited);
	released = kgo_now() - start;
	emit("parked_create_s", created / 1e9, "s");
	emit("parked_release_s", released / 1e9, "s");
	emit("parked_rss_mb", max_rss_mb(), "MB");
	emit("parked_threads", threads(), "threads");
	kgo_chan_free(ch);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 2, .n = 1000000 };

	bench_parse(argc, argv, &o);
	bench_run(bench, &o);
	return 0;
}
