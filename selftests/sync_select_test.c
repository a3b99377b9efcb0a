// SPDX-License-Identifier: MIT
/*
 * Description: kgo_select() (user/runtime/select.c).
 *
 *   ready_case		the one ready case runs; a not-ready case and a
 *			NULL channel never do.
 *   default_case	deadline 0 and nothing ready: -EAGAIN, nothing
 *			consumed.
 *   timeout		a deadline: -ETIMEDOUT, not early; no cases or
 *			only NULL channels behave the same.
 *   closed		a receive from a closed channel runs with closed
 *			set and elem zeroed; a send case on a closed
 *			channel runs with closed set.
 *   wakeup		a parked select is woken by a send, a receive or
 *			a close on any of its channels, and its other
 *			cases are withdrawn (no later partner finds them).
 *   same_channel	cases on one channel several times (recv and send
 *			mixed, in two selects facing each other): no
 *			lock-order deadlock, values pass.
 *   fairness		over 200,000 rounds with 4 ready cases each runs
 *			25% of the time, within 8 standard deviations
 *			(a uniform choice misses that bound with odds
 *			below 1e-14; a first-ready choice misses by far).
 *   stress.*		producers and consumers all going through select
 *			over two channels, some with deadlines, P=1 and
 *			P=2: nothing lost, nothing duplicated.
 *   einval		bad op or ncases < 0.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kgo.h"
#include "harness.h"
#include "kgo_run.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define KGO_TEST_SANITIZED 1
#endif

/* ------------------------------------------------------------------ */

static void ready_main(void *arg)
{
	struct kgo_chan *a = kgo_chan_make(sizeof(int), 1);
	struct kgo_chan *b = kgo_chan_make(sizeof(int), 1);
	int va = -1, vb = -1, v = 7, i, r;

	(void)arg;
	for (i = 0; i < 100; i++) {
		struct kgo_case cs[] = {
			{ .ch = a, .op = KGO_RECV, .elem = &va },
			{ .ch = NULL, .op = KGO_RECV, .elem = &vb },
			{ .ch = b, .op = KGO_RECV, .elem = &vb },
			{ .ch = NULL, .op = KGO_SEND, .elem = &v },
		};

		ASSERT_EQ(0, kgo_chan_send(b, &i));
		r = kgo_select(cs, 4, -1);
		ASSERT_EQ(2, r);
		EXPECT_EQ(i, vb);
		EXPECT_FALSE(cs[2].closed);
	}
	/* A send case with room runs; the full one does not. */
	ASSERT_EQ(0, kgo_chan_send(a, &v));
	for (i = 0; i < 100; i++) {
		struct kgo_case cs[] = {
			{ .ch = a, .op = KGO_SEND, .elem = &v },
			{ .ch = b, .op = KGO_SEND, .elem = &i },
		};

		ASSERT_EQ(1, kgo_select(cs, 2, 0));
		ASSERT_EQ(0, kgo_chan_recv(b, &vb));
		EXPECT_EQ(i, vb);
	}
	kgo_chan_free(a);
	kgo_chan_free(b);
}

TEST(ready_case)
{
	run(ready_main, NULL, 1);
}

/* ------------------------------------------------------------------ */

static void default_main(void *arg)
{
	struct kgo_chan *a = kgo_chan_make(sizeof(int), 0);
	struct kgo_chan *b = kgo_chan_make(sizeof(int), 1);
	int v = 3, w;
	struct kgo_case cs[] = {
		{ .ch = a, .op = KGO_RECV, .elem = &w },
		{ .ch = a, .op = KGO_SEND, .elem = &v },
		{ .ch = b, .op = KGO_RECV, .elem = &w },
	};

	(void)arg;
	EXPECT_EQ(-EAGAIN, kgo_select(cs, 3, 0));
	EXPECT_EQ(-EAGAIN, kgo_select(NULL, 0, 0));
	ASSERT_EQ(0, kgo_chan_send(b, &v));
	EXPECT_EQ(1, kgo_chan_len(b));
	cs[2].op = KGO_SEND;	/* b is full now */
	EXPECT_EQ(-EAGAIN, kgo_select(cs, 3, 0));
	EXPECT_EQ(1, kgo_chan_len(b));
	kgo_chan_free(a);
	kgo_chan_free(b);
}

TEST(default_case)
{
	run(default_main, NULL, 1);
}

/* ------------------------------------------------------------------ */

static void timeout_main(void *arg)
{
	struct kgo_chan *a = kgo_chan_make(sizeof(int), 0);
	int w;
	struct kgo_case cs[] = {
		{ .ch = a, .op = KGO_RECV, .elem = &w },
		{ .ch = NULL, .op = KGO_RECV, .elem = &w },
	};
	struct kgo_case nils[] = {
		{ .ch = NULL, .op = KGO_RECV, .elem = &w },
	};
	int64_t t0;

	(void)arg;
	t0 = kgo_now();
	EXPECT_EQ(-ETIMEDOUT, kgo_select(cs, 2, t0 + 20 * MS));
	EXPECT_GE(kgo_now() - t0, 20 * MS);
	EXPECT_LT(kgo_now() - t0, 2000 * MS);
	t0 = kgo_now();
	EXPECT_EQ(-ETIMEDOUT, kgo_select(NULL, 0, t0 + 10 * MS));
	EXPECT_GE(kgo_now() - t0, 10 * MS);
	t0 = kgo_now();
	EXPECT_EQ(-ETIMEDOUT, kgo_select(nils, 1, t0 + 10 * MS));
	EXPECT_GE(kgo_now() - t0, 10 * MS);
	/* Past deadline: a try that reports a timeout. */
	EXPECT_EQ(-ETIMEDOUT, kgo_select(cs, 2, 1));
	/* The timed-out select left nothing queued on a. */
	EXPECT_EQ(-EAGAIN, kgo_chan_send_dl(a, &w, 0));
	kgo_chan_free(a);
}

TEST(timeout)
{
	run(timeout_main, NULL, 1);
	run(timeout_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

static void closed_main(void *arg)
{
	struct kgo_chan *a = kgo_chan_make(sizeof(long), 2);
	struct kgo_chan *b = kgo_chan_make(sizeof(long), 0);
	long v = 11, w = 0;
	struct kgo_case rc[] = {
		{ .ch = a, .op = KGO_RECV, .elem = &w },
		{ .ch = b, .op = KGO_RECV, .elem = &w },
	};
	struct kgo_case sc[] = {
		{ .ch = b, .op = KGO_RECV, .elem = &w },
		{ .ch = a, .op = KGO_SEND, .elem = &v },
	};

	(void)arg;
	ASSERT_EQ(0, kgo_chan_send(a, &v));
	ASSERT_EQ(0, kgo_chan_close(a));

	/* The buffered value first, then the close. */
	ASSERT_EQ(0, kgo_select(rc, 2, -1));
	EXPECT_EQ(11, w);
	EXPECT_FALSE(rc[0].closed);
	w = -1;
	ASSERT_EQ(0, kgo_select(rc, 2, -1));
	EXPECT_TRUE(rc[0].closed);
	EXPECT_EQ(0, w);

	/* A send case on a closed channel runs, reporting closed. */
	EXPECT_EQ(1, kgo_select(sc, 2, 0));
	EXPECT_TRUE(sc[1].closed);
	EXPECT_FALSE(sc[0].closed);
	kgo_chan_free(a);
	kgo_chan_free(b);
}

TEST(closed)
{
	run(closed_main, NULL, 1);
}

/* ------------------------------------------------------------------ */

struct wk {
	struct kgo_chan *a, *b, *c;
	atomic_int phase;
};

static void wk_partner(void *arg)
{
	struct wk *k = arg;
	long v = 77;

	kgo_sleep(5 * MS);
	ASSERT_EQ(0, kgo_chan_send(k->b, &v));	/* wakes round 1 */
	kgo_sleep(5 * MS);
	ASSERT_EQ(0, kgo_chan_recv(k->c, &v));	/* wakes round 2 */
	EXPECT_EQ(88, v);
	kgo_sleep(5 * MS);
	ASSERT_EQ(0, kgo_chan_close(k->a));	/* wakes round 3 */
}

static void wk_main(void *arg)
{
	struct wk *k = arg;
	long ra = -1, rb = -1, sc = 88;
	struct kgo_case cs[] = {
		{ .ch = NULL, .op = KGO_RECV, .elem = &ra },
		{ .ch = NULL, .op = KGO_RECV, .elem = &rb },
		{ .ch = NULL, .op = KGO_SEND, .elem = &sc },
	};
	int r;

	k->a = kgo_chan_make(sizeof(long), 0);
	k->b = kgo_chan_make(sizeof(long), 0);
	k->c = kgo_chan_make(sizeof(long), 0);
	cs[0].ch = k->a;
	cs[1].ch = k->b;
	cs[2].ch = k->c;
	ASSERT_EQ(0, kgo_go(wk_partner, k));

	r = kgo_select(cs, 3, -1);
	ASSERT_EQ(1, r);
	EXPECT_EQ(77, rb);
	EXPECT_EQ(-1, ra);
	/* The withdrawn cases: nobody waits on a or c any more. */
	EXPECT_EQ(-EAGAIN, kgo_chan_send_dl(k->a, &sc, 0));
	EXPECT_EQ(-EAGAIN, kgo_chan_recv_dl(k->c, &sc, 0));

	cs[1].ch = NULL;
	r = kgo_select(cs, 3, kgo_now() + 5000 * MS);
	ASSERT_EQ(2, r);
	EXPECT_FALSE(cs[2].closed);

	cs[2].ch = NULL;
	r = kgo_select(cs, 3, -1);
	ASSERT_EQ(0, r);
	EXPECT_TRUE(cs[0].closed);
	EXPECT_EQ(0, ra);
}

TEST(wakeup)
{
	struct wk k = { 0 };

	run(wk_main, &k, 1);
	run(wk_main, &k, 2);
}

/* ------------------------------------------------------------------ */

#define SC_ROUNDS 2000

struct sc {
	struct kgo_chan *c, *d;
	atomic_long sent, got;
	struct kgo_wg wg;
};

/* Two of these face each other, each with the same channel four times,
 * sends and receives mixed: they can only pair up with each other. */
static void sc_side(void *arg)
{
	struct sc *s = arg;
	long out = 1, in0 = 0, in1 = 0, i;

	for (i = 0; i < SC_ROUNDS; i++) {
		struct kgo_case cs[] = {
			{ .ch = s->c, .op = KGO_RECV, .elem = &in0 },
			{ .ch = s->c, .op = KGO_SEND, .elem = &out },
			{ .ch = s->d, .op = KGO_RECV, .elem = &in1 },
			{ .ch = s->c, .op = KGO_RECV, .elem = &in1 },
			{ .ch = s->d, .op = KGO_SEND, .elem = &out },
			{ .ch = s->c, .op = KGO_SEND, .elem = &out },
		};
		int r = kgo_select(cs, 6, -1);

		ASSERT_LE(0, r);
		if (cs[r].op == KGO_SEND) {
			atomic_fetch_add(&s->sent, 1);
		} else {
			ASSERT_EQ(1, *(long *)cs[r].elem);
			*(long *)cs[r].elem = 0;
			atomic_fetch_add(&s->got, 1);
		}
	}
	kgo_wg_done(&s->wg);
}

static void sc_main(void *arg)
{
	struct sc *s = arg;

	s->c = kgo_chan_make(sizeof(long), 0);
	s->d = kgo_chan_make(sizeof(long), 0);
	kgo_wg_add(&s->wg, 2);
	ASSERT_EQ(0, kgo_go(sc_side, s));
	ASSERT_EQ(0, kgo_go(sc_side, s));
	kgo_wg_wait(&s->wg);
	kgo_chan_free(s->c);
	kgo_chan_free(s->d);
}

TEST(same_channel)
{
	for (int p = 1; p <= 2; p++) {
		struct sc s = { .wg = KGO_WG_INIT };

		run(sc_main, &s, p);
		EXPECT_EQ(SC_ROUNDS, atomic_load(&s.sent));
		EXPECT_EQ(SC_ROUNDS, atomic_load(&s.got));
	}
}

/* ------------------------------------------------------------------ */

#define FAIR_ROUNDS	200000
#define FAIR_K		4

struct fair {
	long hits[FAIR_K + 2];
	long bad;
};

static void fair_main(void *arg)
{
	struct fair *f = arg;
	struct kgo_chan *ch[FAIR_K], *never = kgo_chan_make(sizeof(int), 0);
	struct kgo_case cs[FAIR_K + 2];
	int v = 1, i, k, r;

	for (k = 0; k < FAIR_K; k++) {
		ch[k] = kgo_chan_make(sizeof(int), 1);
		ASSERT_EQ(0, kgo_chan_send(ch[k], &v));
	}
	/* Four ready receives, a never-ready one and a NULL one, mixed. */
	cs[0] = (struct kgo_case){ .ch = never, .op = KGO_RECV };
	for (k = 0; k < FAIR_K; k++)
		cs[k + 1] = (struct kgo_case){ .ch = ch[k], .op = KGO_RECV };
	cs[FAIR_K + 1] = (struct kgo_case){ .ch = NULL, .op = KGO_RECV };
	for (i = 0; i < FAIR_ROUNDS; i++) {
		r = kgo_select(cs, FAIR_K + 2, 0);
		if (r < 1 || r > FAIR_K) {
			f->bad++;
			continue;
		}
		f->hits[r]++;
		/* Refill: every case stays ready. */
		ASSERT_EQ(0, kgo_chan_send(cs[r].ch, &v));
	}
	for (k = 0; k < FAIR_K; k++)
		kgo_chan_free(ch[k]);
	kgo_chan_free(never);
}

/* Square root by Newton's method (no libm for one number). */
static double sqrt_newton(double x)
{
	double r = x > 1 ? x / 2 : 1;
	int i;

	for (i = 0; i < 100; i++)
		r = (r + x / r) / 2;
	return r;
}

TEST(fairness)
{
	struct fair f = { 0 };
	double mean = (double)FAIR_ROUNDS / FAIR_K;
	double sd = sqrt_newton(FAIR_ROUNDS * (1.0 / FAIR_K) *
				(1.0 - 1.0 / FAIR_K));
	long lo = (long)(mean - 8 * sd), hi = (long)(mean + 8 * sd);
	int k;

	run(fair_main, &f, 1);
	EXPECT_EQ(0, f.bad);
	for (k = 1; k <= FAIR_K; k++) {
		EXPECT_LE(lo, f.hits[k]) TH_LOG("case %d: %ld of %d", k,
						f.hits[k], FAIR_ROUNDS);
		EXPECT_GE(hi, f.hits[k]) TH_LOG("case %d: %ld of %d", k,
						f.hits[k], FAIR_ROUNDS);
	}
}

/* ------------------------------------------------------------------ */

#define ST_G	6
#ifdef KGO_TEST_SANITIZED
#define ST_N	2000
#else
#define ST_N	20000
#endif

FIXTURE(stress) {
	struct kgo_chan *a, *b, *quit;
	struct kgo_wg prod, cons;
	atomic_long count, sum, dups, timeouts;
	atomic_uchar *seen;
};

FIXTURE_VARIANT(stress) {
	int maxprocs;
	size_t cap;
};

FIXTURE_VARIANT_ADD(stress, unbuffered_p1) { .maxprocs = 1, .cap = 0 };
FIXTURE_VARIANT_ADD(stress, unbuffered_p2) { .maxprocs = 2, .cap = 0 };
FIXTURE_VARIANT_ADD(stress, buffered_p2) { .maxprocs = 2, .cap = 8 };

FIXTURE_SETUP(stress)
{
	self->a = kgo_chan_make(sizeof(long), variant->cap);
	self->b = kgo_chan_make(sizeof(long), variant->cap);
	self->quit = kgo_chan_make(0, 0);
	self->seen = calloc(ST_G * ST_N, 1);
	ASSERT_NONNULL(self->seen);
}

FIXTURE_TEARDOWN(stress)
{
}

struct st_arg {
	FIXTURE_DATA(stress) *self;
	long id;
};

static void st_producer(void *arg)
{
	struct st_arg *a = arg;
	long i, v;

	for (i = 0; i < ST_N; i++) {
		struct kgo_case cs[] = {
			{ .ch = a->self->a, .op = KGO_SEND, .elem = &v },
			{ .ch = a->self->b, .op = KGO_SEND, .elem = &v },
		};
		int r;

		v = a->id * ST_N + i;
		/* Odd producers use short deadlines and retry. */
		do {
			r = kgo_select(cs, 2, a->id & 1 ?
				       kgo_now() + 20000 : -1);
			if (r == -ETIMEDOUT)
				atomic_fetch_add(&a->self->timeouts, 1);
		} while (r == -ETIMEDOUT);
		ASSERT_LE(0, r);
		ASSERT_FALSE(cs[r].closed);
	}
	kgo_wg_done(&a->self->prod);
}

static void st_consumer(void *arg)
{
	struct st_arg *a = arg;
	long v;

	for (;;) {
		struct kgo_case cs[] = {
			{ .ch = a->self->a, .op = KGO_RECV, .elem = &v },
			{ .ch = a->self->b, .op = KGO_RECV, .elem = &v },
			{ .ch = a->self->quit, .op = KGO_RECV },
		};
		int r = kgo_select(cs, 3, a->id & 1 ?
				   kgo_now() + 30000 : -1);

		if (r == -ETIMEDOUT) {
			atomic_fetch_add(&a->self->timeouts, 1);
			continue;
		}
		ASSERT_LE(0, r);
		if (r == 2)
			break;
		ASSERT_FALSE(cs[r].closed);
		ASSERT_LE(0, v);
		ASSERT_GT(ST_G * ST_N, v);
		if (atomic_exchange(&a->self->seen[v], 1))
			atomic_fetch_add(&a->self->dups, 1);
		atomic_fetch_add(&a->self->count, 1);
		atomic_fetch_add(&a->self->sum, v);
	}
	kgo_wg_done(&a->self->cons);
}

static void st_main(void *arg)
{
	FIXTURE_DATA(stress) *self = arg;
	struct st_arg args[ST_G];
	long v;
	int i;

	kgo_wg_add(&self->prod, ST_G);
	kgo_wg_add(&self->cons, ST_G);
	for (i = 0; i < ST_G; i++) {
		args[i] = (struct st_arg){ self, i };
		ASSERT_EQ(0, kgo_go(st_consumer, &args[i]));
		ASSERT_EQ(0, kgo_go(st_producer, &args[i]));
	}
	kgo_wg_wait(&self->prod);
	/* Consumers drain what is buffered before they see quit?  Not
	 * necessarily: select is random. So drain after they left. */
	ASSERT_EQ(0, kgo_chan_close(self->quit));
	kgo_wg_wait(&self->cons);
	while (kgo_chan_recv_dl(self->a, &v, 0) == 0 ||
	       kgo_chan_recv_dl(self->b, &v, 0) == 0) {
		if (atomic_exchange(&self->seen[v], 1))
			atomic_fetch_add(&self->dups, 1);
		atomic_fetch_add(&self->count, 1);
		atomic_fetch_add(&self->sum, v);
	}
}

TEST_F_TIMEOUT(stress, checksum, 120)
{
	long n = (long)ST_G * ST_N, i, missing = 0;

	run(st_main, self, variant->maxprocs);
	EXPECT_EQ(n, atomic_load(&self->count));
	EXPECT_EQ(n * (n - 1) / 2, atomic_load(&self->sum));
	EXPECT_EQ(0, atomic_load(&self->dups));
	for (i = 0; i < n; i++)
		missing += !self->seen[i];
	EXPECT_EQ(0, missing);
	TH_LOG("timeouts: %ld", atomic_load(&self->timeouts));
	kgo_chan_free(self->a);
	kgo_chan_free(self->b);
	kgo_chan_free(self->quit);
	free(self->seen);
}

/* ------------------------------------------------------------------ */

static void einval_main(void *arg)
{
	struct kgo_chan *a = kgo_chan_make(sizeof(int), 1);
	struct kgo_case cs[] = {
		{ .ch = a, .op = KGO_RECV },
		{ .ch = NULL, .op = 3 },
	};

	(void)arg;
	EXPECT_EQ(-EINVAL, kgo_select(cs, 2, 0));
	EXPECT_EQ(-EINVAL, kgo_select(cs, -1, 0));
	EXPECT_EQ(-EINVAL, kgo_select(NULL, 1, 0));
	kgo_chan_free(a);
}

TEST(einval)
{
	run(einval_main, NULL, 1);
}

TEST_HARNESS_MAIN
