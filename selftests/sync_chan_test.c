// SPDX-License-Identifier: MIT
/*
 * Description: channels (user/runtime/chan.c).
 *
 * Each rule of Go's channels, as kgo states them in kgo.h, and the
 * classic programs that lean on all of them at once:
 *
 *   unbuffered_rendezvous	a send waits for its receiver.
 *   buffered_fifo		a buffered channel is FIFO, holds cap
 *				values without a receiver, then blocks.
 *   close_drains		after close a receive drains the buffer, then
 *				gets -EPIPE with the element zeroed; send
 *				and a second close get -EPIPE.
 *   close_wakes_all		close wakes every parked receiver and sender.
 *   direct_handoff		a send to a parked receiver skips the buffer.
 *   deadlines			_dl: 0 tries (-EAGAIN), a deadline times out
 *				(-ETIMEDOUT, not early), and a channel stays
 *				sound after a timed-out waiter left it.
 *   deadline_race		senders and receivers with short deadlines:
 *				a value is either delivered exactly once or
 *				its send reports failure (the channel, the
 *				timer and close never both win).
 *   nil_channel		a NULL channel is never ready.
 *   prime_sieve		Go's concurrent prime sieve: a chain of filter
 *				Gs, checked against a plain sieve.
 *   ring_100k			a token passes through a ring of 100,000 Gs.
 *   mpmc.*			8 producers, 8 consumers, buffered and
 *				unbuffered, P=1 and P=2: every value arrives
 *				exactly once (count, sum and a seen-bitmap).
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

struct rdv {
	struct kgo_chan *c;
	atomic_int sent;
	int got;
};

static void rdv_sender(void *arg)
{
	struct rdv *r = arg;
	int v = 42;

	ASSERT_EQ(0, kgo_chan_send(r->c, &v));
	atomic_store(&r->sent, 1);
}

static void rdv_main(void *arg)
{
	struct rdv *r = arg;
	int i;

	r->c = kgo_chan_make(sizeof(int), 0);
	ASSERT_NONNULL(r->c);
	ASSERT_EQ(0, kgo_go(rdv_sender, r));
	/* However long we wait, the send cannot complete alone. */
	for (i = 0; i < 10; i++) {
		kgo_yield();
		kgo_sleep(MS);
	}
	EXPECT_EQ(0, atomic_load(&r->sent));
	EXPECT_EQ(0, kgo_chan_len(r->c));
	ASSERT_EQ(0, kgo_chan_recv(r->c, &r->got));
	while (!atomic_load(&r->sent))
		kgo_yield();
	kgo_chan_free(r->c);
}

TEST(unbuffered_rendezvous)
{
	struct rdv r = { 0 };

	run(rdv_main, &r, 1);
	EXPECT_EQ(42, r.got);
	EXPECT_EQ(1, atomic_load(&r.sent));
	memset(&r, 0, sizeof(r));
	run(rdv_main, &r, 2);
	EXPECT_EQ(42, r.got);
}

/* ------------------------------------------------------------------ */

struct fifo {
	struct kgo_chan *c;
	atomic_int progress;
};

static void fifo_sender(void *arg)
{
	struct fifo *f = arg;
	int i;

	/* 4 fit, the 5th blocks until the main G receives. */
	for (i = 0; i < 5; i++) {
		ASSERT_EQ(0, kgo_chan_send(f->c, &i));
		atomic_store(&f->progress, i + 1);
	}
}

static void fifo_main(void *arg)
{
	struct fifo *f = arg;
	int i, v;

	f->c = kgo_chan_make(sizeof(int), 4);
	ASSERT_NONNULL(f->c);
	EXPECT_EQ(4, kgo_chan_cap(f->c));
	EXPECT_EQ(0, kgo_chan_len(f->c));
	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, kgo_chan_send_dl(f->c, &i, 0));
	EXPECT_EQ(4, kgo_chan_len(f->c));
	EXPECT_EQ(-EAGAIN, kgo_chan_send_dl(f->c, &i, 0));
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, kgo_chan_recv(f->c, &v));
		EXPECT_EQ(i, v);
	}
	EXPECT_EQ(-EAGAIN, kgo_chan_recv_dl(f->c, &v, 0));

	/* Now with a sender that blocks on the full buffer. */
	ASSERT_EQ(0, kgo_go(fifo_sender, f));
	while (atomic_load(&f->progress) < 4)
		kgo_sleep(MS);
	kgo_sleep(5 * MS);
	EXPECT_EQ(4, atomic_load(&f->progress));
	EXPECT_EQ(4, kgo_chan_len(f->c));
	for (i = 0; i < 5; i++) {
		ASSERT_EQ(0, kgo_chan_recv(f->c, &v));
		EXPECT_EQ(i, v);
	}
	while (atomic_load(&f->progress) < 5)
		kgo_yield();
	EXPECT_EQ(0, kgo_chan_len(f->c));
	kgo_chan_free(f->c);
}

TEST(buffered_fifo)
{
	struct fifo f = { 0 };

	run(fifo_main, &f, 1);
	atomic_store(&f.progress, 0);
	run(fifo_main, &f, 2);
}

/* ------------------------------------------------------------------ */

struct big {
	uint64_t a[5];
};

static void close_main(void *arg)
{
	struct kgo_chan *c = kgo_chan_make(sizeof(struct big), 3);
	struct big in = { { 1, 2, 3, 4, 5 } }, out;
	int i;

	(void)arg;
	ASSERT_NONNULL(c);
	ASSERT_EQ(0, kgo_chan_send(c, &in));
	in.a[0] = 7;
	ASSERT_EQ(0, kgo_chan_send(c, &in));
	ASSERT_EQ(0, kgo_chan_close(c));
	EXPECT_EQ(-EPIPE, kgo_chan_close(c));
	EXPECT_EQ(-EPIPE, kgo_chan_send(c, &in));
	EXPECT_EQ(-EPIPE, kgo_chan_send_dl(c, &in, 0));
	EXPECT_EQ(2, kgo_chan_len(c));

	ASSERT_EQ(0, kgo_chan_recv(c, &out));
	EXPECT_EQ(1, out.a[0]);
	EXPECT_EQ(5, out.a[4]);
	ASSERT_EQ(0, kgo_chan_recv(c, &out));
	EXPECT_EQ(7, out.a[0]);
	for (i = 0; i < 3; i++) {
		memset(&out, 0xff, sizeof(out));
		EXPECT_EQ(-EPIPE, kgo_chan_recv(c, &out));
		EXPECT_EQ(0, out.a[0]);
		EXPECT_EQ(0, out.a[4]);
	}
	memset(&out, 0xff, sizeof(out));
	EXPECT_EQ(-EPIPE, kgo_chan_recv_dl(c, &out, 0));
	EXPECT_EQ(0, out.a[2]);
	EXPECT_EQ(-EPIPE, kgo_chan_recv(c, NULL));
	kgo_chan_free(c);

	/* Unbuffered, closed empty. */
	c = kgo_chan_make(sizeof(int), 0);
	ASSERT_NONNULL(c);
	ASSERT_EQ(0, kgo_chan_close(c));
	EXPECT_EQ(-EPIPE, kgo_chan_recv(c, NULL));
	kgo_chan_free(c);

	EXPECT_EQ(-EINVAL, kgo_chan_close(NULL));
}

TEST(close_drains)
{
	run(close_main, NULL, 1);
}

/* ------------------------------------------------------------------ */

#define CW_N	50

struct cw {
	struct kgo_chan *r, *s;	/* receivers park on r, senders on s */
	atomic_int parked_done, epipe, zeroed;
	struct kgo_wg wg;
};

static void cw_recv(void *arg)
{
	struct cw *cw = arg;
	int v = -1;

	if (kgo_chan_recv(cw->r, &v) == -EPIPE)
		atomic_fetch_add(&cw->epipe, 1);
	if (v == 0)
		atomic_fetch_add(&cw->zeroed, 1);
	kgo_wg_done(&cw->wg);
}

static void cw_send(void *arg)
{
	struct cw *cw = arg;
	int v = 1;

	if (kgo_chan_send(cw->s, &v) == -EPIPE)
		atomic_fetch_add(&cw->epipe, 1);
	kgo_wg_done(&cw->wg);
}

static void cw_main(void *arg)
{
	struct cw *cw = arg;
	int i, v = 0;

	cw->r = kgo_chan_make(sizeof(int), 0);
	cw->s = kgo_chan_make(sizeof(int), 1);
	ASSERT_EQ(0, kgo_chan_send(cw->s, &v));	/* full: senders park */
	kgo_wg_add(&cw->wg, 2 * CW_N);
	for (i = 0; i < CW_N; i++) {
		ASSERT_EQ(0, kgo_go(cw_recv, cw));
		ASSERT_EQ(0, kgo_go(cw_send, cw));
	}
	kgo_sleep(20 * MS);
	EXPECT_EQ(0, atomic_load(&cw->epipe));
	ASSERT_EQ(0, kgo_chan_close(cw->r));
	ASSERT_EQ(0, kgo_chan_close(cw->s));
	kgo_wg_wait(&cw->wg);
	EXPECT_EQ(2 * CW_N, atomic_load(&cw->epipe));
	EXPECT_EQ(CW_N, atomic_load(&cw->zeroed));
	/* The buffered value is still there after close. */
	v = -1;
	EXPECT_EQ(0, kgo_chan_recv(cw->s, &v));
	EXPECT_EQ(0, v);
	kgo_chan_free(cw->r);
	kgo_chan_free(cw->s);
}

TEST(close_wakes_all)
{
	struct cw cw = { .wg = KGO_WG_INIT };

	run(cw_main, &cw, 2);
}

/* ------------------------------------------------------------------ */

struct ho {
	struct kgo_chan *c;
	atomic_int parked, got;
};

static void ho_recv(void *arg)
{
	struct ho *h = arg;
	int v = 0;

	atomic_store(&h->parked, 1);
	ASSERT_EQ(0, kgo_chan_recv(h->c, &v));
	atomic_store(&h->got, v);
}

static void ho_main(void *arg)
{
	struct ho *h = arg;
	int v = 99;

	h->c = kgo_chan_make(sizeof(int), 1);
	ASSERT_EQ(0, kgo_go(ho_recv, h));
	while (!atomic_load(&h->parked))
		kgo_yield();
	kgo_sleep(5 * MS);	/* surely parked now */
	ASSERT_EQ(0, kgo_chan_send(h->c, &v));
	/* Handed to the receiver directly: never in the buffer, even
	 * before the receiver ran. */
	EXPECT_EQ(0, kgo_chan_len(h->c));
	while (!atomic_load(&h->got))
		kgo_yield();
	EXPECT_EQ(99, atomic_load(&h->got));
	kgo_chan_free(h->c);
}

TEST(direct_handoff)
{
	struct ho h = { 0 };

	run(ho_main, &h, 1);
}

/* ------------------------------------------------------------------ */

struct dl {
	struct kgo_chan *c;
	atomic_int late_done;
};

static void dl_late_sender(void *arg)
{
	struct dl *d = arg;
	int v = 5;

	kgo_sleep(30 * MS);
	ASSERT_EQ(0, kgo_chan_send(d->c, &v));
	atomic_store(&d->late_done, 1);
}

static void dl_main(void *arg)
{
	struct dl *d = arg;
	int64_t t0, el;
	int v = 0, i;

	d->c = kgo_chan_make(sizeof(int), 0);
	EXPECT_EQ(-EAGAIN, kgo_chan_recv_dl(d->c, &v, 0));
	EXPECT_EQ(-EAGAIN, kgo_chan_send_dl(d->c, &v, 0));
	/* A deadline in the past: a try that says it timed out. */
	EXPECT_EQ(-ETIMEDOUT, kgo_chan_recv_dl(d->c, &v, 1));
	EXPECT_EQ(-ETIMEDOUT, kgo_chan_send_dl(d->c, &v, kgo_now() - MS));

	t0 = kgo_now();
	EXPECT_EQ(-ETIMEDOUT, kgo_chan_recv_dl(d->c, &v, t0 + 20 * MS));
	el = kgo_now() - t0;
	EXPECT_GE(el, 20 * MS);
	EXPECT_LT(el, 2000 * MS);
	t0 = kgo_now();
	EXPECT_EQ(-ETIMEDOUT, kgo_chan_send_dl(d->c, &v, t0 + 10 * MS));
	EXPECT_GE(kgo_now() - t0, 10 * MS);

	/* Several timed-out waiters left: the channel must not hand a
	 * value to one of them (their stacks have moved on). */
	for (i = 0; i < 5; i++)
		EXPECT_EQ(-ETIMEDOUT,
			  kgo_chan_recv_dl(d->c, &v, kgo_now() + MS));
	/* t0 before the sender starts: on the other P it may begin its
	 * 30 ms sleep at once while this G is held off (the fault that
	 * io_net_test's recv case and io_close_test's fd_deadline met
	 * under load and TCG). */
	t0 = kgo_now();
	ASSERT_EQ(0, kgo_go(dl_late_sender, d));
	v = 0;
	ASSERT_EQ(0, kgo_chan_recv_dl(d->c, &v, t0 + 5000 * MS));
	EXPECT_EQ(5, v);
	EXPECT_GE(kgo_now() - t0, 20 * MS);
	while (!atomic_load(&d->late_done))
		kgo_yield();

	/* A deadline that does not expire: woken by the partner, and
	 * the timer must not fire into the finished wait later. */
	ASSERT_EQ(0, kgo_go(dl_late_sender, d));
	ASSERT_EQ(0, kgo_chan_recv_dl(d->c, &v, kgo_now() + 1000 * MS));
	kgo_sleep(50 * MS);
	kgo_chan_free(d->c);
}

TEST(deadlines)
{
	struct dl d = { 0 };

	run(dl_main, &d, 1);
	atomic_store(&d.late_done, 0);
	run(dl_main, &d, 2);
}

/* ------------------------------------------------------------------ */

#define DR_G	8
#define DR_N	3000

struct dr {
	struct kgo_chan *c;
	atomic_long sent_ok, sent_sum, recv_ok, recv_sum;
	struct kgo_wg wg;
	int maxprocs;
};

static void dr_sender(void *arg)
{
	struct dr *d = arg;
	long i;

	for (i = 1; i <= DR_N; i++) {
		/* 0..~60 us: about as long as a hand-off takes. */
		int64_t dl = kgo_now() + (int64_t)(i % 7) * 10000;

		if (kgo_chan_send_dl(d->c, &i, dl) == 0) {
			atomic_fetch_add(&d->sent_ok, 1);
			atomic_fetch_add(&d->sent_sum, i);
		}
	}
	kgo_wg_done(&d->wg);
}

static void dr_receiver(void *arg)
{
	struct dr *d = arg;
	long v, i;

	for (i = 1; i <= DR_N; i++) {
		int64_t dl = kgo_now() + (int64_t)(i % 5) * 10000;

		if (kgo_chan_recv_dl(d->c, &v, dl) == 0) {
			atomic_fetch_add(&d->recv_ok, 1);
			atomic_fetch_add(&d->recv_sum, v);
		}
	}
	kgo_wg_done(&d->wg);
}

static void dr_main(void *arg)
{
	struct dr *d = arg;
	long v;
	int i;

	kgo_wg_add(&d->wg, 2 * DR_G);
	for (i = 0; i < DR_G; i++) {
		ASSERT_EQ(0, kgo_go(dr_sender, d));
		ASSERT_EQ(0, kgo_go(dr_receiver, d));
	}
	kgo_wg_wait(&d->wg);
	/* Whatever is left in a buffer was sent but not received. */
	while (kgo_chan_recv_dl(d->c, &v, 0) == 0) {
		atomic_fetch_add(&d->recv_ok, 1);
		atomic_fetch_add(&d->recv_sum, v);
	}
}

static void dr_check(struct dr *d)
{
	EXPECT_EQ(atomic_load(&d->sent_ok), atomic_load(&d->recv_ok));
	EXPECT_EQ(atomic_load(&d->sent_sum), atomic_load(&d->recv_sum));
	/* Some of each outcome, or the test tested nothing. */
	EXPECT_LT(0, atomic_load(&d->sent_ok));
	EXPECT_GT(DR_G * DR_N, atomic_load(&d->sent_ok));
}

TEST_TIMEOUT(deadline_race, 120)
{
	static const size_t caps[] = { 0, 4 };
	int p, k;

	for (p = 1; p <= 2; p++) {
		for (k = 0; k < 2; k++) {
			struct dr d = { .wg = KGO_WG_INIT };

			d.c = kgo_chan_make(sizeof(long), caps[k]);
			ASSERT_NONNULL(d.c);
			run(dr_main, &d, p);
			dr_check(&d);
			kgo_chan_free(d.c);
		}
	}
}

/* ------------------------------------------------------------------ */

static void nil_main(void *arg)
{
	int v = 0;
	int64_t t0 = kgo_now();

	(void)arg;
	EXPECT_EQ(-EAGAIN, kgo_chan_recv_dl(NULL, &v, 0));
	EXPECT_EQ(-EAGAIN, kgo_chan_send_dl(NULL, &v, 0));
	EXPECT_EQ(-ETIMEDOUT, kgo_chan_recv_dl(NULL, &v, t0 + 5 * MS));
	EXPECT_EQ(-ETIMEDOUT, kgo_chan_send_dl(NULL, &v, t0 + 5 * MS));
	EXPECT_GE(kgo_now() - t0, 5 * MS);
	EXPECT_EQ(0, kgo_chan_len(NULL));
	EXPECT_EQ(0, kgo_chan_cap(NULL));
	kgo_chan_free(NULL);
}

TEST(nil_channel)
{
	run(nil_main, NULL, 1);
	/* Huge sizes fail cleanly. */
	EXPECT_NULL(kgo_chan_make(SIZE_MAX / 2, 4));
}

/* ------------------------------------------------------------------ */

#define SIEVE_PRIMES	300

struct filter {
	struct kgo_chan *in, *out;
	int prime;
};

static void sieve_generate(void *arg)
{
	struct kgo_chan *ch = arg;
	int i;

	for (i = 2;; i++)
		if (kgo_chan_send(ch, &i))
			return;
}

static void sieve_filter(void *arg)
{
	struct filter *f = arg;
	int v;

	for (;;) {
		if (kgo_chan_recv(f->in, &v))
			return;
		if (v % f->prime != 0 && kgo_chan_send(f->out, &v))
			return;
	}
}

struct sieve {
	int primes[SIEVE_PRIMES];
};

static void sieve_main(void *arg)
{
	struct sieve *s = arg;
	struct filter *fs = calloc(SIEVE_PRIMES, sizeof(*fs));
	struct kgo_chan *ch = kgo_chan_make(sizeof(int), 0);
	int i;

	ASSERT_NONNULL(fs);
	ASSERT_EQ(0, kgo_go(sieve_generate, ch));
	for (i = 0; i < SIEVE_PRIMES; i++) {
		int prime;

		ASSERT_EQ(0, kgo_chan_recv(ch, &prime));
		s->primes[i] = prime;
		fs[i].in = ch;
		fs[i].out = kgo_chan_make(sizeof(int), 0);
		fs[i].prime = prime;
		ASSERT_EQ(0, kgo_go(sieve_filter, &fs[i]));
		ch = fs[i].out;
	}
	/* The filters are abandoned when main returns, as in Go. */
}

TEST(prime_sieve)
{
	struct sieve s;
	char *comp;
	int n, i, k, lim = 3000;

	for (int p = 1; p <= 2; p++) {
		memset(&s, 0, sizeof(s));
		run(sieve_main, &s, p);
		comp = calloc(lim, 1);
		ASSERT_NONNULL(comp);
		for (i = 2, n = 0; i < lim && n < SIEVE_PRIMES; i++) {
			if (comp[i])
				continue;
			ASSERT_EQ(i, s.primes[n]) TH_LOG("prime #%d, P=%d", n, p);
			n++;
			for (k = 2 * i; k < lim; k += i)
				comp[k] = 1;
		}
		EXPECT_EQ(SIEVE_PRIMES, n);
		free(comp);
	}
}

/* ------------------------------------------------------------------ */

#ifdef KGO_TEST_SANITIZED
#define RING_N	5000		/* TSan counts each G as a thread: < 8128 */
#else
#define RING_N	100000
#endif
#define RING_LAPS 3

struct ring {
	struct kgo_chan **ch;
	long result;
};

struct ring_node {
	struct ring *r;
	int i;
};

static struct ring_node *ring_nodes;

static void ring_node(void *arg)
{
	struct ring_node *n = arg;
	long tok;

	for (;;) {
		if (kgo_chan_recv(n->r->ch[n->i], &tok))
			return;
		tok++;
		if (kgo_chan_send(n->r->ch[n->i + 1], &tok))
			return;
	}
}

static void ring_main(void *arg)
{
	struct ring *r = arg;
	long tok = 0;
	int i, lap;

	r->ch = calloc(RING_N + 1, sizeof(*r->ch));
	ring_nodes = calloc(RING_N, sizeof(*ring_nodes));
	ASSERT_NONNULL(r->ch);
	ASSERT_NONNULL(ring_nodes);
	for (i = 0; i <= RING_N; i++) {
		r->ch[i] = kgo_chan_make(sizeof(long), 0);
		ASSERT_NONNULL(r->ch[i]);
	}
	for (i = 0; i < RING_N; i++) {
		ring_nodes[i].r = r;
		ring_nodes[i].i = i;
		ASSERT_EQ(0, kgo_go_sized(ring_node, &ring_nodes[i],
					  KGO_STACK_MIN));
	}
	for (lap = 0; lap < RING_LAPS; lap++) {
		ASSERT_EQ(0, kgo_chan_send(r->ch[0], &tok));
		ASSERT_EQ(0, kgo_chan_recv(r->ch[RING_N], &tok));
	}
	r->result = tok;
}

TEST_TIMEOUT(ring_100k, 300)
{
	struct ring r = { 0 };

	run(ring_main, &r, 2);
	EXPECT_EQ((long)RING_N * RING_LAPS, r.result);
}

/* ------------------------------------------------------------------ */

#define MPMC_G		8
#ifdef KGO_TEST_SANITIZED
#define MPMC_N		5000
#else
#define MPMC_N		40000
#endif

FIXTURE(mpmc) {
	struct kgo_chan *c;
	struct kgo_wg prod, cons;
	atomic_long count, sum;
	atomic_uchar *seen;
	atomic_long dups;
};

FIXTURE_VARIANT(mpmc) {
	int maxprocs;
	size_t cap;
};

FIXTURE_VARIANT_ADD(mpmc, unbuffered_p1) { .maxprocs = 1, .cap = 0 };
FIXTURE_VARIANT_ADD(mpmc, unbuffered_p2) { .maxprocs = 2, .cap = 0 };
FIXTURE_VARIANT_ADD(mpmc, buffered_p1) { .maxprocs = 1, .cap = 64 };
FIXTURE_VARIANT_ADD(mpmc, buffered_p2) { .maxprocs = 2, .cap = 64 };
/* Tiny rings are full or empty most of the time: the lock-free side and
 * the parked side meet on nearly every operation (chan.h). */
FIXTURE_VARIANT_ADD(mpmc, cap1_p2) { .maxprocs = 2, .cap = 1 };
FIXTURE_VARIANT_ADD(mpmc, cap3_p2) { .maxprocs = 2, .cap = 3 };

FIXTURE_SETUP(mpmc)
{
	self->seen = calloc(MPMC_G * MPMC_N, 1);
	ASSERT_NONNULL(self->seen);
	self->c = kgo_chan_make(sizeof(long), variant->cap);
	ASSERT_NONNULL(self->c);
}

FIXTURE_TEARDOWN(mpmc)
{
}

struct mpmc_arg {
	FIXTURE_DATA(mpmc) *self;
	long id;
};

static void mpmc_producer(void *arg)
{
	struct mpmc_arg *a = arg;
	long i;

	for (i = 0; i < MPMC_N; i++) {
		long v = a->id * MPMC_N + i;

		ASSERT_EQ(0, kgo_chan_send(a->self->c, &v));
	}
	kgo_wg_done(&a->self->prod);
}

static void mpmc_consumer(void *arg)
{
	struct mpmc_arg *a = arg;
	long v;

	while (kgo_chan_recv(a->self->c, &v) == 0) {
		ASSERT_LE(0, v);
		ASSERT_GT(MPMC_G * MPMC_N, v);
		if (atomic_exchange(&a->self->seen[v], 1))
			atomic_fetch_add(&a->self->dups, 1);
		atomic_fetch_add(&a->self->count, 1);
		atomic_fetch_add(&a->self->sum, v);
	}
	kgo_wg_done(&a->self->cons);
}

static void mpmc_main(void *arg)
{
	FIXTURE_DATA(mpmc) *self = arg;
	struct mpmc_arg args[2 * MPMC_G];
	int i;

	kgo_wg_add(&self->prod, MPMC_G);
	kgo_wg_add(&self->cons, MPMC_G);
	for (i = 0; i < MPMC_G; i++) {
		args[i] = (struct mpmc_arg){ self, i };
		args[MPMC_G + i] = (struct mpmc_arg){ self, i };
		ASSERT_EQ(0, kgo_go(mpmc_consumer, &args[MPMC_G + i]));
		ASSERT_EQ(0, kgo_go(mpmc_producer, &args[i]));
	}
	kgo_wg_wait(&self->prod);
	ASSERT_EQ(0, kgo_chan_close(self->c));
	kgo_wg_wait(&self->cons);
}

TEST_F_TIMEOUT(mpmc, checksum, 120)
{
	long n = (long)MPMC_G * MPMC_N, i, missing = 0;

	run(mpmc_main, self, variant->maxprocs);
	EXPECT_EQ(n, atomic_load(&self->count));
	EXPECT_EQ(n * (n - 1) / 2, atomic_load(&self->sum));
	EXPECT_EQ(0, atomic_load(&self->dups));
	for (i = 0; i < n; i++)
		missing += !self->seen[i];
	EXPECT_EQ(0, missing);
	kgo_chan_free(self->c);
	free(self->seen);
}

/*
 * Values from one sender arrive in the order it sent them, through the
 * ring, through parked senders and direct hand-offs, with four senders
 * and one receiver on two Ps.
 */
#define SFIFO_SENDERS	4
#define SFIFO_N		50000

struct sfifo {
	struct kgo_chan *c;
	struct kgo_wg wg;
	long bad, got;
};

struct sfifo_arg {
	struct sfifo *f;
	long id;
};

static void sfifo_send(void *arg)
{
	struct sfifo_arg *a = arg;
	long i;

	for (i = 0; i < SFIFO_N; i++) {
		long v = a->id * SFIFO_N + i;

		ASSERT_EQ(0, kgo_chan_send(a->f->c, &v));
	}
	kgo_wg_done(&a->f->wg);
}

static void sfifo_main(void *arg)
{
	struct sfifo *f = arg;
	struct sfifo_arg args[SFIFO_SENDERS];
	long last[SFIFO_SENDERS], v;
	int i;

	kgo_wg_add(&f->wg, SFIFO_SENDERS);
	for (i = 0; i < SFIFO_SENDERS; i++) {
		last[i] = -1;
		args[i] = (struct sfifo_arg){ f, i };
		ASSERT_EQ(0, kgo_go(sfifo_send, &args[i]));
	}
	while (f->got < SFIFO_SENDERS * SFIFO_N) {
		ASSERT_EQ(0, kgo_chan_recv(f->c, &v));
		i = v / SFIFO_N;
		ASSERT_LE(0, i);
		ASSERT_GT(SFIFO_SENDERS, i);
		if (v % SFIFO_N != last[i] + 1)
			f->bad++;
		last[i] = v % SFIFO_N;
		f->got++;
	}
	kgo_wg_wait(&f->wg);
	EXPECT_EQ(0, kgo_chan_len(f->c));
}

TEST_TIMEOUT(fifo_per_sender, 120)
{
	/* 3: not a power of two; 64 longs: 16 lines of 4 slots, where
	 * consecutive positions go to different lines (kgo_chan_make). */
	static const size_t caps[] = { 3, 64 };
	size_t k;

	for (k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
		struct sfifo f = { .wg = KGO_WG_INIT };

		f.c = kgo_chan_make(sizeof(long), caps[k]);
		ASSERT_NONNULL(f.c);
		run(sfifo_main, &f, 2);
		EXPECT_EQ(SFIFO_SENDERS * SFIFO_N, f.got);
		EXPECT_EQ(0, f.bad);
		kgo_chan_free(f.c);
	}
}

/*
 * Close while senders are mid-stream: every send that returned 0 is
 * received, every other one returned -EPIPE; nothing is lost or made
 * up. Repeated, with the close at a different point each round and
 * rings of 1 to 5.
 */
#define CR_SENDERS	4
#define CR_RECEIVERS	3

struct closerace {
	struct kgo_chan *c;
	struct kgo_wg snd, rcv;
	atomic_long sent, sent_sum, got, got_sum, epipe_send, bad;
};

static void cr_send(void *arg)
{
	struct closerace *r = arg;
	long v = 1;
	int ret;

	while ((ret = kgo_chan_send(r->c, &v)) == 0) {
		atomic_fetch_add(&r->sent, 1);
		atomic_fetch_add(&r->sent_sum, v);
		v++;
	}
	if (ret == -EPIPE)
		atomic_fetch_add(&r->epipe_send, 1);
	else
		atomic_fetch_add(&r->bad, 1);
	kgo_wg_done(&r->snd);
}

static void cr_recv(void *arg)
{
	struct closerace *r = arg;
	long v;
	int ret;

	while ((ret = kgo_chan_recv(r->c, &v)) == 0) {
		atomic_fetch_add(&r->got, 1);
		atomic_fetch_add(&r->got_sum, v);
	}
	if (ret != -EPIPE || v != 0)
		atomic_fetch_add(&r->bad, 1);
	kgo_wg_done(&r->rcv);
}

static void closerace_main(void *arg)
{
	int round = *(int *)arg, i;
	struct closerace r = { .snd = KGO_WG_INIT, .rcv = KGO_WG_INIT };

	r.c = kgo_chan_make(sizeof(long), 1 + round % 5);
	ASSERT_NONNULL(r.c);
	kgo_wg_add(&r.snd, CR_SENDERS);
	kgo_wg_add(&r.rcv, CR_RECEIVERS);
	for (i = 0; i < CR_SENDERS; i++)
		ASSERT_EQ(0, kgo_go(cr_send, &r));
	for (i = 0; i < CR_RECEIVERS; i++)
		ASSERT_EQ(0, kgo_go(cr_recv, &r));
	for (i = 0; i < round % 7; i++)
		kgo_yield();
	kgo_sleep(round % 3 * 100000);
	ASSERT_EQ(0, kgo_chan_close(r.c));
	kgo_wg_wait(&r.snd);
	kgo_wg_wait(&r.rcv);
	EXPECT_EQ(CR_SENDERS, atomic_load(&r.epipe_send));
	EXPECT_EQ(0, atomic_load(&r.bad));
	EXPECT_EQ(atomic_load(&r.sent), atomic_load(&r.got));
	EXPECT_EQ(atomic_load(&r.sent_sum), atomic_load(&r.got_sum));
	kgo_chan_free(r.c);
}

TEST_TIMEOUT(close_races_sends, 120)
{
	int round;

	for (round = 0; round < 200 && !_metadata->res->failed; round++)
		run(closerace_main, &round, 2);
}

/*
 * Two Gs on two Ps bounce a value through two channels of capacity 1,
 * 200000 times. Nearly every receive finds the ring empty and parks
 * just as its partner sends without the lock: the race chan.h's nwait
 * meeting exists for. A value left in the ring behind a parked
 * receiver leaves both Gs asleep: the deadlock report ends the run
 * with status 2 and the test fails.
 */
#define PP_ROUNDS	200000

struct pp {
	struct kgo_chan *ping, *pong;
	struct kgo_wg wg;
	long sum;
};

static void pp_echo(void *arg)
{
	struct pp *pp = arg;
	long v;

	while (kgo_chan_recv(pp->ping, &v) == 0)
		ASSERT_EQ(0, kgo_chan_send(pp->pong, &v));
	kgo_wg_done(&pp->wg);
}

static void pp_main(void *arg)
{
	struct pp *pp = arg;
	long i, v;

	kgo_wg_add(&pp->wg, 1);
	ASSERT_EQ(0, kgo_go(pp_echo, pp));
	for (i = 0; i < PP_ROUNDS; i++) {
		ASSERT_EQ(0, kgo_chan_send(pp->ping, &i));
		ASSERT_EQ(0, kgo_chan_recv(pp->pong, &v));
		pp->sum += v;
	}
	kgo_chan_close(pp->ping);
	kgo_wg_wait(&pp->wg);
}

TEST_TIMEOUT(pingpong_cap1_p2, 120)
{
	struct pp pp = { .wg = KGO_WG_INIT };

	pp.ping = kgo_chan_make(sizeof(long), 1);
	pp.pong = kgo_chan_make(sizeof(long), 1);
	ASSERT_NONNULL(pp.ping);
	ASSERT_NONNULL(pp.pong);
	run(pp_main, &pp, 2);
	EXPECT_EQ((long)PP_ROUNDS * (PP_ROUNDS - 1) / 2, pp.sum);
	kgo_chan_free(pp.ping);
	kgo_chan_free(pp.pong);
}

TEST_HARNESS_MAIN
