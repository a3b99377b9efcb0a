// SPDX-License-Identifier: MIT
/*
 * Description: kgo_mutex, kgo_rwmutex, kgo_cond, kgo_wg, kgo_once
 * (user/runtime/sync.c, sema.c), and the deadlock report.
 *
 *   mutex_counter.*	1000 Gs add to a counter under a kgo_mutex,
 *			yielding inside the critical section: the total
 *			is exact, and two holders never overlap.
 *   mutex_trylock	trylock takes a free mutex only.
 *   mutex_starvation	a G that holds the mutex almost all the time
 *			(sleeping inside it) cannot keep a waiter out:
 *			starvation mode hands the lock over. Without it
 *			the hog re-takes the mutex every time.
 *   rwmutex_readers	readers hold the lock together; a writer alone.
 *   rwmutex_writer	a writer gets in while readers keep coming.
 *   cond		signal wakes one waiter, broadcast all; a queue
 *			with a condition passes every item.
 *   wg			wait returns once every done came, and a wg is
 *			reusable.
 *   wg_negative	a negative counter is reported on stderr and
 *			aborts (child process).
 *   once		fn runs once however many Gs race for it, and all
 *			of them see its effect.
 *   sema_deadline	semacquire_until (runtime.h): times out, and a
 *			release racing with timeouts is never lost.
 *   deadlock.*		every kind of wait, left with nobody to end it,
 *			is reported as a deadlock naming the wait:
 *			exit status 2 (child process).
 *   no_thread_blocks	with P=1 and 100 Gs parked on a mutex, the
 *			runtime still runs other Gs (parking the G,
 *			never the M).
 *   rtlock_wakes_sleeper  the runtime's own lock (runtime.h): a thread
 *			that went to sleep on it (counted in its bucket)
 *			is woken by the unlock, whose fast path has no
 *			locked instruction. Without the wake: timeout.
 *   rtlock_stress	threads take one runtime lock, some holding it
 *			long enough to send the others to sleep: the
 *			count is exact and nobody sleeps forever (a lost
 *			wakeup between the plain unlock and a sleeper's
 *			membarrier: timeout).
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kgo.h"
#include "runtime.h"
#include "harness.h"
#include "kgo_run.h"
#include "child.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define KGO_TEST_SANITIZED 1
#endif

/* ------------------------------------------------------------------ */

#define MC_G	1000
#define MC_N	200

struct mc {
	struct kgo_mutex mu;
	long counter;			/* mu */
	atomic_int inside, overlap;
	struct kgo_wg wg;
};

static void mc_worker(void *arg)
{
	struct mc *m = arg;
	int i;

	for (i = 0; i < MC_N; i++) {
		kgo_mutex_lock(&m->mu);
		if (atomic_fetch_add(&m->inside, 1) != 0)
			atomic_fetch_add(&m->overlap, 1);
		long c = m->counter;

		if (i % 16 == 0)
			kgo_yield();	/* let others pile up on the mutex */
		m->counter = c + 1;
		atomic_fetch_sub(&m->inside, 1);
		kgo_mutex_unlock(&m->mu);
	}
	kgo_wg_done(&m->wg);
}

static void mc_main(void *arg)
{
	struct mc *m = arg;
	int i;

	kgo_wg_add(&m->wg, MC_G);
	for (i = 0; i < MC_G; i++)
		ASSERT_EQ(0, kgo_go_sized(mc_worker, m, KGO_STACK_MIN));
	kgo_wg_wait(&m->wg);
}

FIXTURE(mutex_counter) {
	struct mc m;
};
FIXTURE_VARIANT(mutex_counter) {
	int maxprocs;
};
FIXTURE_VARIANT_ADD(mutex_counter, p1) { .maxprocs = 1 };
FIXTURE_VARIANT_ADD(mutex_counter, p2) { .maxprocs = 2 };
FIXTURE_SETUP(mutex_counter)
{
	self->m.mu = (struct kgo_mutex)KGO_MUTEX_INIT;
	self->m.wg = (struct kgo_wg)KGO_WG_INIT;
}
FIXTURE_TEARDOWN(mutex_counter)
{
}

TEST_F_TIMEOUT(mutex_counter, exact, 120)
{
	run(mc_main, &self->m, variant->maxprocs);
	EXPECT_EQ((long)MC_G * MC_N, self->m.counter);
	EXPECT_EQ(0, atomic_load(&self->m.overlap));
	/* Left unlocked, with no waiter counted. */
	EXPECT_EQ(0, self->m.mu.state);
}

/* ------------------------------------------------------------------ */

static struct kgo_mutex tl_mu = KGO_MUTEX_INIT;

static void tl_main(void *arg)
{
	(void)arg;
	EXPECT_TRUE(kgo_mutex_trylock(&tl_mu));
	EXPECT_FALSE(kgo_mutex_trylock(&tl_mu));
	kgo_mutex_unlock(&tl_mu);
	EXPECT_TRUE(kgo_mutex_trylock(&tl_mu));
	kgo_mutex_unlock(&tl_mu);
}

TEST(mutex_trylock)
{
	run(tl_main, NULL, 1);
}

/* ------------------------------------------------------------------ */

struct starve {
	struct kgo_mutex mu;
	atomic_int stop, hog_running, acquired;
	int acquired_at_stop;
	struct kgo_wg wg;
};

static void starve_hog(void *arg)
{
	struct starve *s = arg;

	while (!atomic_load(&s->stop)) {
		kgo_mutex_lock(&s->mu);
		atomic_store(&s->hog_running, 1);
		kgo_sleep(100000);	/* 100 us, holding the lock */
		kgo_mutex_unlock(&s->mu);
	}
	kgo_wg_done(&s->wg);
}

static void starve_waiter(void *arg)
{
	struct starve *s = arg;
	int i;

	for (i = 0; i < 10; i++) {
		kgo_sleep(100000);
		kgo_mutex_lock(&s->mu);
		kgo_mutex_unlock(&s->mu);
		atomic_fetch_add(&s->acquired, 1);
	}
	kgo_wg_done(&s->wg);
}

static void starve_main(void *arg)
{
	struct starve *s = arg;
	int64_t t0;

	kgo_wg_add(&s->wg, 1);
	ASSERT_EQ(0, kgo_go(starve_hog, s));
	while (!atomic_load(&s->hog_running))
		kgo_sleep(MS);
	kgo_wg_add(&s->wg, 1);
	ASSERT_EQ(0, kgo_go(starve_waiter, s));
	t0 = kgo_now();
	while (atomic_load(&s->acquired) < 10 &&
	       kgo_now() - t0 < 5000 * MS)
		kgo_sleep(MS);
	/* Counted before the hog stops: once it does, anyone gets in. */
	s->acquired_at_stop = atomic_load(&s->acquired);
	atomic_store(&s->stop, 1);
	kgo_wg_wait(&s->wg);
}

TEST_TIMEOUT(mutex_starvation, 60)
{
	for (int p = 1; p <= 2; p++) {
		struct starve s = { .mu = KGO_MUTEX_INIT, .wg = KGO_WG_INIT };

		run(starve_main, &s, p);
		EXPECT_EQ(10, s.acquired_at_stop) TH_LOG("P=%d", p);
	}
}

/* ------------------------------------------------------------------ */

#define RW_READERS 20

struct rw {
	struct kgo_rwmutex rw;
	atomic_int readers, max_readers, writers, bad;
	long data;			/* rw */
	struct kgo_wg wg;
};

static void rw_reader(void *arg)
{
	struct rw *r = arg;
	int i, n;

	for (i = 0; i < 20; i++) {
		kgo_rwmutex_rlock(&r->rw);
		n = atomic_fetch_add(&r->readers, 1) + 1;
		if (atomic_load(&r->writers))
			atomic_fetch_add(&r->bad, 1);
		for (int m = atomic_load(&r->max_readers); n > m &&
		     !atomic_compare_exchange_weak(&r->max_readers, &m, n);)
			;
		kgo_sleep(200000);
		atomic_fetch_sub(&r->readers, 1);
		kgo_rwmutex_runlock(&r->rw);
	}
	kgo_wg_done(&r->wg);
}

static void rw_writer(void *arg)
{
	struct rw *r = arg;
	int i;

	for (i = 0; i < 50; i++) {
		kgo_rwmutex_lock(&r->rw);
		if (atomic_fetch_add(&r->writers, 1) != 0 ||
		    atomic_load(&r->readers))
			atomic_fetch_add(&r->bad, 1);
		r->data++;
		kgo_yield();
		atomic_fetch_sub(&r->writers, 1);
		kgo_rwmutex_unlock(&r->rw);
		kgo_yield();
	}
	kgo_wg_done(&r->wg);
}

static void rw_main(void *arg)
{
	struct rw *r = arg;
	int i;

	kgo_wg_add(&r->wg, RW_READERS + 2);
	for (i = 0; i < RW_READERS; i++)
		ASSERT_EQ(0, kgo_go(rw_reader, r));
	ASSERT_EQ(0, kgo_go(rw_writer, r));
	ASSERT_EQ(0, kgo_go(rw_writer, r));
	kgo_wg_wait(&r->wg);
}

TEST_TIMEOUT(rwmutex_readers, 60)
{
	for (int p = 1; p <= 2; p++) {
		struct rw r = { .rw = KGO_RWMUTEX_INIT, .wg = KGO_WG_INIT };

		run(rw_main, &r, p);
		EXPECT_EQ(0, atomic_load(&r.bad));
		EXPECT_EQ(100, r.data);
		EXPECT_LT(1, atomic_load(&r.max_readers));
	}
}

/* ------------------------------------------------------------------ */

struct rww {
	struct kgo_rwmutex rw;
	atomic_int stop, wrote;
	int64_t waited;
	struct kgo_wg wg;
};

/* Readers overlap so that there is always one inside. */
static void rww_reader(void *arg)
{
	struct rww *r = arg;

	while (!atomic_load(&r->stop)) {
		kgo_rwmutex_rlock(&r->rw);
		kgo_sleep(500000);
		kgo_rwmutex_runlock(&r->rw);
	}
	kgo_wg_done(&r->wg);
}

static void rww_main(void *arg)
{
	struct rww *r = arg;
	int64_t t0;
	int i;

	kgo_wg_add(&r->wg, 8);
	for (i = 0; i < 8; i++) {
		ASSERT_EQ(0, kgo_go(rww_reader, r));
		kgo_sleep(60000);	/* stagger them */
	}
	kgo_sleep(5 * MS);
	t0 = kgo_now();
	kgo_rwmutex_lock(&r->rw);
	r->waited = kgo_now() - t0;
	atomic_store(&r->wrote, 1);
	kgo_rwmutex_unlock(&r->rw);
	atomic_store(&r->stop, 1);
	kgo_wg_wait(&r->wg);
}

TEST_TIMEOUT(rwmutex_writer, 60)
{
	for (int p = 1; p <= 2; p++) {
		struct rww r = { .rw = KGO_RWMUTEX_INIT, .wg = KGO_WG_INIT };

		run(rww_main, &r, p);
		EXPECT_EQ(1, atomic_load(&r.wrote));
		/* It waits for the readers inside (0.5 ms each), not for
		 * the stream of readers behind it. */
		EXPECT_GT(1000 * MS, r.waited) TH_LOG("P=%d", p);
	}
}

/* ------------------------------------------------------------------ */

#define CQ_ITEMS 20000
#define CQ_WAITERS 10

struct cq {
	struct kgo_mutex mu;
	struct kgo_cond nonempty;
	struct kgo_cond go;
	long queue[64];			/* mu */
	int head, len;			/* mu */
	bool started;			/* mu */
	int woken;			/* mu */
	long sum;			/* mu */
	int consumed;			/* mu */
	struct kgo_wg wg;
};

static void cq_waiter(void *arg)
{
	struct cq *q = arg;

	kgo_mutex_lock(&q->mu);
	while (!q->started)
		kgo_cond_wait(&q->go, &q->mu);
	q->woken++;
	kgo_mutex_unlock(&q->mu);
	kgo_wg_done(&q->wg);
}

static void cq_consumer(void *arg)
{
	struct cq *q = arg;

	for (;;) {
		kgo_mutex_lock(&q->mu);
		while (q->len == 0 && q->consumed < CQ_ITEMS)
			kgo_cond_wait(&q->nonempty, &q->mu);
		if (q->len == 0) {
			kgo_mutex_unlock(&q->mu);
			break;
		}
		q->sum += q->queue[q->head];
		q->head = (q->head + 1) % 64;
		q->len--;
		if (++q->consumed == CQ_ITEMS)
			kgo_cond_broadcast(&q->nonempty);
		kgo_mutex_unlock(&q->mu);
	}
	kgo_wg_done(&q->wg);
}

static void cq_main(void *arg)
{
	struct cq *q = arg;
	long i;

	/* Broadcast reaches every waiter. */
	kgo_wg_add(&q->wg, CQ_WAITERS);
	for (i = 0; i < CQ_WAITERS; i++)
		ASSERT_EQ(0, kgo_go(cq_waiter, q));
	kgo_sleep(10 * MS);
	kgo_mutex_lock(&q->mu);
	EXPECT_EQ(0, q->woken);
	q->started = true;
	kgo_cond_broadcast(&q->go);
	kgo_mutex_unlock(&q->mu);
	kgo_wg_wait(&q->wg);
	EXPECT_EQ(CQ_WAITERS, q->woken);

	/* A bounded queue with signal: 4 consumers, every item once. */
	kgo_wg_add(&q->wg, 4);
	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, kgo_go(cq_consumer, q));
	for (i = 1; i <= CQ_ITEMS; i++) {
		kgo_mutex_lock(&q->mu);
		while (q->len == 64) {
			kgo_mutex_unlock(&q->mu);
			kgo_yield();
			kgo_mutex_lock(&q->mu);
		}
		q->queue[(q->head + q->len) % 64] = i;
		q->len++;
		kgo_cond_signal(&q->nonempty);
		kgo_mutex_unlock(&q->mu);
	}
	kgo_wg_wait(&q->wg);
}

TEST_TIMEOUT(cond, 60)
{
	for (int p = 1; p <= 2; p++) {
		struct cq *q = calloc(1, sizeof(*q));

		ASSERT_NONNULL(q);
		run(cq_main, q, p);
		EXPECT_EQ(CQ_ITEMS, q->consumed);
		EXPECT_EQ((long)CQ_ITEMS * (CQ_ITEMS + 1) / 2, q->sum);
		free(q);
	}
}

/* A signal with nobody waiting is not kept for a later waiter. */
static void cs_main(void *arg)
{
	static struct kgo_cond c = KGO_COND_INIT;
	static struct kgo_mutex mu = KGO_MUTEX_INIT;

	(void)arg;
	kgo_cond_signal(&c);
	kgo_cond_broadcast(&c);
	EXPECT_EQ(c.wait, c.notify);
	(void)mu;
}

TEST(cond_no_waiters)
{
	run(cs_main, NULL, 1);
}

/* ------------------------------------------------------------------ */

struct wgt {
	struct kgo_wg wg;
	atomic_int done;
};

static void wgt_worker(void *arg)
{
	struct wgt *w = arg;

	kgo_sleep((kgo_self() % 5) * MS);
	atomic_fetch_add(&w->done, 1);
	kgo_wg_done(&w->wg);
}

static void wgt_main(void *arg)
{
	struct wgt *w = arg;
	int round, i;

	kgo_wg_wait(&w->wg);		/* zero: returns at once */
	for (round = 0; round < 5; round++) {
		atomic_store(&w->done, 0);
		kgo_wg_add(&w->wg, 50);
		for (i = 0; i < 50; i++)
			ASSERT_EQ(0, kgo_go(wgt_worker, w));
		kgo_wg_wait(&w->wg);
		EXPECT_EQ(50, atomic_load(&w->done));
	}
}

TEST(wg)
{
	struct wgt w = { .wg = KGO_WG_INIT };

	run(wgt_main, &w, 2);
	run(wgt_main, &w, 1);
}

/* ------------------------------------------------------------------ */

/* fn in a child process under kgo with P=maxprocs (selftests/child.h):
 * the wait status; what it printed goes to buf. */
static int run_child(void (*fn)(void *), int maxprocs, char *buf, size_t n)
{
	return child_run(fn, NULL, maxprocs, NULL, buf, n);
}

static void wgneg_main(void *arg)
{
	struct kgo_wg wg = KGO_WG_INIT;

	(void)arg;
	kgo_wg_add(&wg, 1);
	kgo_wg_done(&wg);
	kgo_wg_done(&wg);		/* -1: misuse */
}

TEST(wg_negative)
{
	char buf[4096];
	int st = run_child(wgneg_main, 1, buf, sizeof(buf));

	ASSERT_TRUE(WIFSIGNALED(st)) TH_LOG("status %#x: %s", st, buf);
	EXPECT_EQ(SIGABRT, WTERMSIG(st));
	EXPECT_NONNULL(strstr(buf, "kgo: sync: negative WaitGroup counter"))
		TH_LOG("stderr: %s", buf);
}

/* ------------------------------------------------------------------ */

struct onc {
	struct kgo_once once;
	atomic_int calls;
	int value;
	atomic_int bad;
	struct kgo_wg wg;
};

static struct onc onc_state;

static void onc_fn(void *arg)
{
	struct onc *o = arg;

	atomic_fetch_add(&o->calls, 1);
	kgo_sleep(2 * MS);		/* others pile up meanwhile */
	o->value = 1234;
}

static void onc_worker(void *arg)
{
	struct onc *o = arg;

	kgo_once_do(&o->once, onc_fn, o);
	if (o->value != 1234)
		atomic_fetch_add(&o->bad, 1);
	kgo_wg_done(&o->wg);
}

static void onc_main(void *arg)
{
	struct onc *o = arg;
	int i;

	kgo_wg_add(&o->wg, 100);
	for (i = 0; i < 100; i++)
		ASSERT_EQ(0, kgo_go(onc_worker, o));
	kgo_wg_wait(&o->wg);
	kgo_once_do(&o->once, onc_fn, o);
}

TEST(once)
{
	struct onc *o = &onc_state;

	*o = (struct onc){ .once = KGO_ONCE_INIT, .wg = KGO_WG_INIT };
	run(onc_main, o, 2);
	EXPECT_EQ(1, atomic_load(&o->calls));
	EXPECT_EQ(0, atomic_load(&o->bad));
}

/* ------------------------------------------------------------------ */

#define SD_G	6
#define SD_N	2000

struct sd {
	_Atomic uint32_t sema;
	atomic_long acquired, released, timeouts;
	struct kgo_wg wg;
};

static void sd_acquirer(void *arg)
{
	struct sd *s = arg;
	int i;

	for (i = 0; i < SD_N; i++) {
		int64_t dl = kgo_now() + (i % 4) * 20000;

		if (semacquire_until(&s->sema, i & 1, WAIT_SEMA, dl) == 0)
			atomic_fetch_add(&s->acquired, 1);
		else
			atomic_fetch_add(&s->timeouts, 1);
	}
	kgo_wg_done(&s->wg);
}

static void sd_releaser(void *arg)
{
	struct sd *s = arg;
	int i;

	for (i = 0; i < SD_N; i++) {
		semrelease(&s->sema, i % 3 == 0);
		atomic_fetch_add(&s->released, 1);
		if (i % 8 == 0)
			kgo_yield();
	}
	kgo_wg_done(&s->wg);
}

static void sd_main(void *arg)
{
	struct sd *s = arg;
	int64_t t0;
	int i;

	/* Plain timeout, and no token appears from nowhere. */
	t0 = kgo_now();
	EXPECT_EQ(-ETIMEDOUT, semacquire_until(&s->sema, false, WAIT_SEMA,
					       t0 + 10 * MS));
	EXPECT_GE(kgo_now() - t0, 10 * MS);
	EXPECT_EQ(-ETIMEDOUT, semacquire_until(&s->sema, false, WAIT_SEMA, 0));
	semrelease(&s->sema, false);
	EXPECT_EQ(0, semacquire_until(&s->sema, false, WAIT_SEMA, 0));

	kgo_wg_add(&s->wg, 2 * SD_G);
	for (i = 0; i < SD_G; i++) {
		ASSERT_EQ(0, kgo_go(sd_acquirer, s));
		ASSERT_EQ(0, kgo_go(sd_releaser, s));
	}
	kgo_wg_wait(&s->wg);
}

TEST_TIMEOUT(sema_deadline, 60)
{
	for (int p = 1; p <= 2; p++) {
		struct sd s = { .wg = KGO_WG_INIT };

		run(sd_main, &s, p);
		/* Every release is either taken or still counted. */
		EXPECT_EQ(atomic_load(&s.released),
			  atomic_load(&s.acquired) + atomic_load(&s.sema));
		EXPECT_EQ((long)SD_G * SD_N,
			  atomic_load(&s.acquired) + atomic_load(&s.timeouts));
	}
}

/* ------------------------------------------------------------------ */

/* A G blocked on a mutex does not hold its M: with P=1 others run. */
struct ntb {
	struct kgo_mutex mu;
	atomic_int blocked, ran;
	struct kgo_wg wg;
};

static void ntb_locker(void *arg)
{
	struct ntb *t = arg;

	atomic_fetch_add(&t->blocked, 1);
	kgo_mutex_lock(&t->mu);
	kgo_mutex_unlock(&t->mu);
	kgo_wg_done(&t->wg);
}

static void ntb_other(void *arg)
{
	struct ntb *t = arg;

	atomic_store(&t->ran, 1);
	kgo_wg_done(&t->wg);
}

static void ntb_main(void *arg)
{
	struct ntb *t = arg;
	int i;

	kgo_mutex_lock(&t->mu);
	kgo_wg_add(&t->wg, 101);
	for (i = 0; i < 100; i++)
		ASSERT_EQ(0, kgo_go(ntb_locker, t));
	while (atomic_load(&t->blocked) < 100)
		kgo_yield();
	ASSERT_EQ(0, kgo_go(ntb_other, t));
	while (!atomic_load(&t->ran))
		kgo_sleep(MS);
	kgo_mutex_unlock(&t->mu);
	kgo_wg_wait(&t->wg);
}

TEST(no_thread_blocks)
{
	struct ntb t = { .mu = KGO_MUTEX_INIT, .wg = KGO_WG_INIT };

	run(ntb_main, &t, 1);
	EXPECT_EQ(1, atomic_load(&t.ran));
}

/* ------------------------------------------------------------------ */

/* Deadlocks: every kind of wait, with nobody left to end it. */

static void dl_chan_recv(void *arg)
{
	struct kgo_chan *c = kgo_chan_make(sizeof(int), 0);
	int v;

	(void)arg;
	kgo_chan_recv(c, &v);
}

static void dl_chan_send(void *arg)
{
	struct kgo_chan *c = kgo_chan_make(sizeof(int), 1);
	int v = 0;

	(void)arg;
	kgo_chan_send(c, &v);
	kgo_chan_send(c, &v);
}

static void dl_select(void *arg)
{
	struct kgo_chan *c = kgo_chan_make(sizeof(int), 0);
	struct kgo_case cs[] = { { .ch = c, .op = KGO_RECV } };

	(void)arg;
	kgo_select(cs, 1, -1);
}

static void dl_select_none(void *arg)
{
	(void)arg;
	kgo_select(NULL, 0, -1);
}

static void dl_mutex(void *arg)
{
	static struct kgo_mutex mu = KGO_MUTEX_INIT;

	(void)arg;
	kgo_mutex_lock(&mu);
	kgo_mutex_lock(&mu);
}

static void dl_rwmutex_r(void *arg)
{
	static struct kgo_rwmutex rw = KGO_RWMUTEX_INIT;

	(void)arg;
	kgo_rwmutex_lock(&rw);
	kgo_rwmutex_rlock(&rw);
}

static void dl_rwmutex_w(void *arg)
{
	static struct kgo_rwmutex rw = KGO_RWMUTEX_INIT;

	(void)arg;
	kgo_rwmutex_rlock(&rw);
	kgo_rwmutex_lock(&rw);
}

static void dl_cond(void *arg)
{
	static struct kgo_mutex mu = KGO_MUTEX_INIT;
	static struct kgo_cond c = KGO_COND_INIT;

	(void)arg;
	kgo_mutex_lock(&mu);
	kgo_cond_wait(&c, &mu);
}

static void dl_wg(void *arg)
{
	struct kgo_wg wg = KGO_WG_INIT;

	(void)arg;
	kgo_wg_add(&wg, 1);
	kgo_wg_wait(&wg);
}

static void dl_two_gs_worker(void *arg)
{
	kgo_chan_send(arg, NULL);
}

/* Two Gs, on two Ps, each waiting for the other's channel. */
static void dl_two_gs(void *arg)
{
	struct kgo_chan *a = kgo_chan_make(0, 0), *b = kgo_chan_make(0, 0);

	(void)arg;
	kgo_go(dl_two_gs_worker, a);
	kgo_chan_send(b, NULL);
}

FIXTURE(deadlock) {
	char buf[8192];
};
FIXTURE_VARIANT(deadlock) {
	void (*fn)(void *);
	const char *reason;
	int maxprocs;
};
#define DEADLOCK(name, fn, reason, p)					\
	FIXTURE_VARIANT_ADD(deadlock, name) { fn, reason, p }
DEADLOCK(chan_recv, dl_chan_recv, "[chan receive]", 1);
DEADLOCK(chan_send, dl_chan_send, "[chan send]", 2);
DEADLOCK(select, dl_select, "[select]", 1);
DEADLOCK(select_none, dl_select_none, "[select (no cases)]", 1);
DEADLOCK(mutex, dl_mutex, "[sync.Mutex.Lock]", 2);
DEADLOCK(rwmutex_r, dl_rwmutex_r, "[sync.RWMutex.RLock]", 1);
DEADLOCK(rwmutex_w, dl_rwmutex_w, "[sync.RWMutex.Lock]", 1);
DEADLOCK(cond, dl_cond, "[sync.Cond.Wait]", 1);
DEADLOCK(wg, dl_wg, "[sync.WaitGroup.Wait]", 2);
DEADLOCK(two_gs, dl_two_gs, "[chan send]", 2);
FIXTURE_SETUP(deadlock)
{
}
FIXTURE_TEARDOWN(deadlock)
{
}

/* "[reason]" in @out, or "[reason, 3 ms]": the dump adds the wait. */
static bool has_reason(const char *out, const char *reason)
{
	size_t n = strlen(reason) - 1;		/* without the ']' */
	const char *p;

	for (p = strstr(out, "["); p; p = strstr(p + 1, "["))
		if (!strncmp(p, reason, n) && (p[n] == ']' || p[n] == ','))
			return true;
	return false;
}

TEST_F(deadlock, reported)
{
	int st = run_child(variant->fn, variant->maxprocs, self->buf,
			   sizeof(self->buf));

	ASSERT_TRUE(WIFEXITED(st)) TH_LOG("status %#x: %s", st, self->buf);
	EXPECT_EQ(2, WEXITSTATUS(st)) TH_LOG("stderr: %s", self->buf);
	EXPECT_NONNULL(strstr(self->buf,
			      "all goroutines are asleep - deadlock"))
		TH_LOG("stderr: %s", self->buf);
	EXPECT_TRUE(has_reason(self->buf, variant->reason))
		TH_LOG("want %s in: %s", variant->reason, self->buf);
}

/* ------------------------------------------------------------------ */
/* The runtime's own lock (lock_futex.c), on plain threads             */
/* ------------------------------------------------------------------ */

static struct kgo_lock rtl = KGO_LOCK_INIT;
static long rtl_count;

static void *rtl_taker(void *arg)
{
	(void)arg;
	lock(&rtl);
	rtl_count++;
	unlock(&rtl);
	return NULL;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, us % 1000000 * 1000 };

	while (nanosleep(&ts, &ts) != 0)
		;
}

TEST_TIMEOUT(rtlock_wakes_sleeper, 60)
{
	pthread_t t;
	int i;

	for (i = 0; i < 20; i++) {
		rtl_count = 0;
		lock(&rtl);
		ASSERT_EQ(0, pthread_create(&t, NULL, rtl_taker, NULL));
		/* Until the taker has given up spinning and sleeps. */
		while (!atomic_load(&lock_bucket(&rtl)->sleepers))
			sleep_us(100);
		unlock(&rtl);
		ASSERT_EQ(0, pthread_join(t, NULL));
		ASSERT_EQ(1, rtl_count);
		ASSERT_EQ(0, atomic_load(&lock_bucket(&rtl)->sleepers));
	}
}

#define RTL_THREADS	4
#define RTL_ITERS	20000

static void *rtl_stress(void *arg)
{
	long id = (long)arg;
	int i;

	for (i = 0; i < RTL_ITERS; i++) {
		lock(&rtl);
		rtl_count++;
		/* Now and then hold it past the waiters' spinning. */
		if ((i + id) % 500 == 0)
			sleep_us(50);
		unlock(&rtl);
	}
	return NULL;
}

TEST_TIMEOUT(rtlock_stress, 120)
{
	pthread_t t[RTL_THREADS];
	long i;

	rtl_count = 0;
	for (i = 0; i < RTL_THREADS; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, rtl_stress,
					    (void *)i));
	for (i = 0; i < RTL_THREADS; i++)
		ASSERT_EQ(0, pthread_join(t[i], NULL));
	ASSERT_EQ((long)RTL_THREADS * RTL_ITERS, rtl_count);
}

TEST_HARNESS_MAIN
