// SPDX-License-Identifier: MIT
/*
 * Description: timers as channels (user/runtime/timer_chan.c): Go's
 * time.NewTimer, NewTicker and AfterFunc.
 *
 *   after_in_select	a timer's channel wins a kgo_select over a channel
 *			nobody sends on and a NULL one; its value is the
 *			time it fired, not before the timer was due.
 *   ticker_in_select	a ticker and a data channel in one select: all the
 *			data arrives and ticks come in between, increasing
 *			and on the period's grid; after kgo_ticker_stop no
 *			tick is received, not even one sent before it.
 *   ticker_drops	a reader that sleeps through 10 periods finds one
 *			tick waiting (the first: later ones are dropped),
 *			then the ticks go on.
 *   stop_before_fire	stop returns 1 and nothing is ever received.
 *   stop_after_fire	received, then stop: 0; fired but not received,
 *			then stop: 1 and the value is taken out.
 *   reset		a reset timer fires at the new time, reports
 *			whether it was active, and fires again after a
 *			reset of a fired one; ticker reset changes the
 *			period.
 *   after_func		fn runs once in a G of its own; a stop that
 *			returns 1 means fn never runs, 0 that it ran.
 *   free_in_flight	P=2: timers of 0 ns freed at once, while their
 *			fire runs on the other M, 20,000 times (ASan sees
 *			any use after free); freeing after kgo_run.
 *   no_leaks		2,000 timers, tickers and after_funcs made,
 *			stopped or not, freed: gs_live back to 1.
 *   einval		NULL timers, bad periods, no runtime.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kgo.h"
#include "harness.h"
#include "kgo_run.h"

/* ------------------------------------------------------------------ */

static void after_select_main(void *arg)
{
	struct kgo_chan *never = kgo_chan_make(sizeof(int), 0);
	int64_t t0 = kgo_now(), v = 0;
	struct kgo_timer *t = kgo_timer_after(5 * MS);
	int x;
	struct kgo_case cs[3] = {
		{ .ch = never, .op = KGO_RECV, .elem = &x },
		{ .ch = NULL, .op = KGO_RECV, .elem = &x },
		{ .ch = kgo_timer_chan(t), .op = KGO_RECV, .elem = &v },
	};

	(void)arg;
	ASSERT_NONNULL(t);
	ASSERT_NONNULL(kgo_timer_chan(t));
	EXPECT_EQ(1, kgo_chan_cap(kgo_timer_chan(t)));
	EXPECT_EQ(2, kgo_select(cs, 3, -1));
	EXPECT_GE(v, t0 + 5 * MS);
	EXPECT_LE(v, kgo_now());
	/* Fired once: nothing more comes. */
	EXPECT_EQ(-EAGAIN, kgo_select(cs, 3, 0));
	EXPECT_EQ(0, kgo_timer_stop(t));
	kgo_timer_free(t);
	kgo_chan_free(never);
}

TEST(after_in_select)
{
	run(after_select_main, NULL, 1);
	run(after_select_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

struct feed {
	struct kgo_chan *c;
	int n;
};

static void feeder(void *arg)
{
	struct feed *f = arg;
	int i;

	for (i = 0; i < f->n; i++) {
		kgo_sleep(3 * MS);
		kgo_chan_send(f->c, &i);
	}
	kgo_chan_close(f->c);
}

static void ticker_select_main(void *arg)
{
	struct feed f = { kgo_chan_make(sizeof(int), 0), 10 };
	const int64_t period = 2 * MS;
	int64_t t0 = kgo_now(), v, last = 0;
	struct kgo_timer *tk = kgo_ticker_make(period);
	int x, got = 0, ticks = 0, r;
	struct kgo_case cs[2] = {
		{ .ch = f.c, .op = KGO_RECV, .elem = &x },
		{ .ch = kgo_timer_chan(tk), .op = KGO_RECV, .elem = &v },
	};

	(void)arg;
	ASSERT_NONNULL(tk);
	ASSERT_EQ(0, kgo_go(feeder, &f));
	for (;;) {
		r = kgo_select(cs, 2, -1);
		ASSERT_LE(0, r);
		if (r == 0) {
			if (cs[0].closed)
				break;
			EXPECT_EQ(got, x);
			got++;
			continue;
		}
		/* Ticks increase and lie on the grid: t0 + k * period,
		 * fired no earlier than that. */
		EXPECT_GT(v, last);
		EXPECT_GE(v, t0 + period);
		last = v;
		ticks++;
	}
	EXPECT_EQ(10, got);
	/* 10 sleeps of 3 ms are at least 30 ms: 15 periods. */
	EXPECT_GE(ticks, 1);
	EXPECT_EQ(0, kgo_ticker_stop(tk));
	EXPECT_EQ(-EAGAIN, kgo_chan_recv_dl(kgo_timer_chan(tk), &v, 0));
	kgo_sleep(5 * period);
	EXPECT_EQ(-EAGAIN, kgo_chan_recv_dl(kgo_timer_chan(tk), &v, 0));
	kgo_timer_free(tk);
	kgo_chan_free(f.c);
}

TEST(ticker_in_select)
{
	run(ticker_select_main, NULL, 1);
	run(ticker_select_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

static void ticker_drops_main(void *arg)
{
	const int64_t period = 10 * MS;
	int64_t t0 = kgo_now(), v, v2, t1;
	struct kgo_timer *tk = kgo_ticker_make(period);
	struct kgo_chan *c = kgo_timer_chan(tk);

	(void)arg;
	ASSERT_NONNULL(tk);
	kgo_sleep(10 * period);
	t1 = kgo_now();
	EXPECT_EQ(1, kgo_chan_len(c));
	ASSERT_EQ(0, kgo_chan_recv(c, &v));
	/* The first tick is the one kept: sent at t0 + period, before the
	 * reader woke, and the ones after it were dropped. */
	EXPECT_GE(v, t0 + period);
	EXPECT_LT(v, t1);
	ASSERT_EQ(0, kgo_chan_recv(c, &v2));
	EXPECT_GT(v2, v);
	kgo_timer_free(tk);
}

TEST(ticker_drops)
{
	run(ticker_drops_main, NULL, 1);
}

/* ------------------------------------------------------------------ */

static void stop_main(void *arg)
{
	struct kgo_timer *t;
	int64_t v;

	(void)arg;
	/* Before it fires. */
	t = kgo_timer_after(3600 * 1000 * MS);
	ASSERT_NONNULL(t);
	EXPECT_EQ(1, kgo_timer_stop(t));
	EXPECT_EQ(0, kgo_timer_stop(t));
	EXPECT_EQ(-EAGAIN, kgo_chan_recv_dl(kgo_timer_chan(t), &v, 0));
	kgo_timer_free(t);

	/* A short one stopped at once: whether it fired or not, nothing
	 * is received after the stop. */
	t = kgo_timer_after(1 * MS);
	EXPECT_EQ(1, kgo_timer_stop(t));
	kgo_sleep(20 * MS);
	EXPECT_EQ(-EAGAIN, kgo_chan_recv_dl(kgo_timer_chan(t), &v, 0));
	kgo_timer_free(t);
}

TEST(stop_before_fire)
{
	run(stop_main, NULL, 1);
	run(stop_main, NULL, 2);
}

static void stop_after_main(void *arg)
{
	struct kgo_timer *t;
	int64_t v;

	(void)arg;
	t = kgo_timer_after(1 * MS);
	ASSERT_EQ(0, kgo_chan_recv(kgo_timer_chan(t), &v));
	EXPECT_EQ(0, kgo_timer_stop(t));
	kgo_timer_free(t);

	/* Fired into the channel, never received: the 1 ms timer runs
	 * before the 20 ms one that ends the sleep. */
	t = kgo_timer_after(1 * MS);
	kgo_sleep(20 * MS);
	EXPECT_EQ(1, kgo_chan_len(kgo_timer_chan(t)));
	EXPECT_EQ(1, kgo_timer_stop(t));
	EXPECT_EQ(0, kgo_chan_len(kgo_timer_chan(t)));
	EXPECT_EQ(0, kgo_timer_stop(t));
	kgo_timer_free(t);
}

TEST(stop_after_fire)
{
	run(stop_after_main, NULL, 1);
	run(stop_after_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

static void reset_main(void *arg)
{
	struct kgo_timer *t = kgo_timer_after(3600 * 1000 * MS);
	int64_t t0, v;

	(void)arg;
	ASSERT_NONNULL(t);
	t0 = kgo_now();
	EXPECT_EQ(1, kgo_timer_reset(t, 2 * MS));
	ASSERT_EQ(0, kgo_chan_recv(kgo_timer_chan(t), &v));
	EXPECT_GE(v, t0 + 2 * MS);
	/* Fired and received: not active; arms it again. */
	t0 = kgo_now();
	EXPECT_EQ(0, kgo_timer_reset(t, 1 * MS));
	ASSERT_EQ(0, kgo_chan_recv(kgo_timer_chan(t), &v));
	EXPECT_GE(v, t0 + 1 * MS);
	/* Fired, not received: the reset takes the old value out. */
	kgo_timer_reset(t, 0);
	kgo_sleep(10 * MS);
	t0 = kgo_now();
	EXPECT_EQ(1, kgo_timer_reset(t, 3 * MS));
	ASSERT_EQ(0, kgo_chan_recv(kgo_timer_chan(t), &v));
	EXPECT_GE(v, t0 + 3 * MS);
	kgo_timer_free(t);

	/* A ticker reset to a longer period: its next tick is a whole
	 * new period away. */
	t = kgo_ticker_make(1 * MS);
	ASSERT_EQ(0, kgo_chan_recv(kgo_timer_chan(t), &v));
	t0 = kgo_now();
	EXPECT_EQ(0, kgo_ticker_reset(t, 15 * MS));
	ASSERT_EQ(0, kgo_chan_recv(kgo_timer_chan(t), &v));
	EXPECT_GE(v, t0 + 15 * MS);
	ASSERT_EQ(0, kgo_chan_recv(kgo_timer_chan(t), &v));
	EXPECT_GE(v, t0 + 30 * MS);
	kgo_timer_free(t);
}

TEST(reset)
{
	run(reset_main, NULL, 1);
	run(reset_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

struct af {
	struct kgo_chan *done;
	uint64_t caller;
	atomic_int runs;
};

static void af_fn(void *arg)
{
	struct af *a = arg;
	uint64_t self = kgo_self();

	atomic_fetch_add(&a->runs, 1);
	kgo_chan_send(a->done, &self);
}

static void after_func_main(void *arg)
{
	struct af a = { .caller = kgo_self() };
	struct kgo_timer *t;
	uint64_t g = 0;
	int i, stopped;

	(void)arg;
	a.done = kgo_chan_make(sizeof(uint64_t), 64);
	t = kgo_after_func(1 * MS, af_fn, &a);
	ASSERT_NONNULL(t);
	EXPECT_NULL(kgo_timer_chan(t));
	ASSERT_EQ(0, kgo_chan_recv(a.done, &g));
	EXPECT_NE(0, g);
	EXPECT_NE(a.caller, g);
	EXPECT_EQ(0, kgo_timer_stop(t));
	kgo_timer_free(t);

	/* Stop racing fire: 1 means fn never runs, 0 that it runs. */
	for (i = 0; i < 50; i++) {
		atomic_store(&a.runs, 0);
		t = kgo_after_func(i % 3 ? 0 : 1 * MS, af_fn, &a);
		if (i & 1)
			kgo_yield();
		stopped = kgo_timer_stop(t);
		kgo_timer_free(t);
		if (!stopped)
			ASSERT_EQ(0, kgo_chan_recv(a.done, &g));
		kgo_sleep(2 * MS);
		EXPECT_EQ(stopped ? 0 : 1, atomic_load(&a.runs))
			TH_LOG("round %d, stop said %d", i, stopped);
		EXPECT_EQ(0, kgo_chan_len(a.done));
	}
	kgo_chan_free(a.done);
}

TEST(after_func)
{
	run(after_func_main, NULL, 1);
	run(after_func_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

static struct kgo_timer *leftover;

static void free_flight_main(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 20000; i++) {
		struct kgo_timer *t = i % 2 ? kgo_timer_after(0) :
					      kgo_ticker_make(1000);

		ASSERT_NONNULL(t);
		if (i % 3 == 0)
			kgo_yield();
		kgo_timer_free(t);
	}
	/* One left armed when kgo_run returns: freed after it. */
	leftover = kgo_ticker_make(3600 * 1000 * MS);
}

TEST(free_in_flight)
{
	run(free_flight_main, NULL, 2);
	ASSERT_NONNULL(leftover);
	EXPECT_EQ(-EPERM, kgo_timer_reset(leftover, 1));
	kgo_timer_free(leftover);
}

/* ------------------------------------------------------------------ */

static atomic_int leak_runs;

static void leak_fn(void *arg)
{
	(void)arg;
	atomic_fetch_add(&leak_runs, 1);
}

static void no_leaks_main(void *arg)
{
	struct kgo_timer *ts[2000];
	struct kgo_stats st;
	int i, want = 0;

	(void)arg;
	for (i = 0; i < 2000; i++) {
		switch (i % 3) {
		case 0:
			ts[i] = kgo_timer_after((i % 7) * MS / 4);
			break;
		case 1:
			ts[i] = kgo_ticker_make(1 * MS + i);
			break;
		default:
			ts[i] = kgo_after_func((i % 5) * MS / 4, leak_fn, NULL);
			break;
		}
		ASSERT_NONNULL(ts[i]);
	}
	kgo_sleep(1 * MS);
	for (i = 0; i < 2000; i++) {
		int r = i % 2 || i % 3 == 2 ? kgo_timer_stop(ts[i]) : 0;

		if (i % 3 == 2 && r == 0)
			want++;		/* its fn runs (or ran) */
		kgo_timer_free(ts[i]);
	}
	/* Every fn that was not stopped runs, then its G ends. */
	while (atomic_load(&leak_runs) < want)
		kgo_sleep(1 * MS);
	EXPECT_EQ(want, atomic_load(&leak_runs));
	for (i = 0; i < 1000; i++) {
		ASSERT_LT(0, kgo_stats_get(&st, sizeof(st)));
		if (st.gs_live == 1)
			break;
		kgo_sleep(1 * MS);
	}
	EXPECT_EQ(1, st.gs_live);
}

TEST(no_leaks)
{
	atomic_store(&leak_runs, 0);
	run(no_leaks_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

static void einval_main(void *arg)
{
	(void)arg;
	EXPECT_NULL(kgo_ticker_make(0));
	EXPECT_NULL(kgo_ticker_make(-5));
	EXPECT_NULL(kgo_after_func(1, NULL, NULL));
	EXPECT_EQ(-EINVAL, kgo_timer_stop(NULL));
	EXPECT_EQ(-EINVAL, kgo_timer_reset(NULL, 1));
	EXPECT_EQ(-EINVAL, kgo_ticker_stop(NULL));
	EXPECT_EQ(-EINVAL, kgo_ticker_reset(NULL, 1));
	EXPECT_NULL(kgo_timer_chan(NULL));
	kgo_timer_free(NULL);
}

TEST(einval)
{
	EXPECT_NULL(kgo_timer_after(1));	/* no runtime */
	EXPECT_NULL(kgo_ticker_make(1));
	run(einval_main, NULL, 1);
}

TEST_HARNESS_MAIN
