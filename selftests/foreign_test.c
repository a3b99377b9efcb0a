// SPDX-License-Identifier: MIT
/*
 * Description: kgo calls from threads that are not Gs ("foreign"
 * pthreads: the program's own threads, or any thread while no runtime
 * runs). kgo.h, "Calls from other threads", says which call does what;
 * these tests hold it to that. No call aborts.
 *
 *   select_outside_g	kgo_select with nothing ready and a deadline
 *			other than 0 returns -EPERM (no runtime, and from
 *			a pthread beside a running one); it used to take
 *			its internal "nothing ready" value for -EPERM and
 *			park a NULL G (SIGSEGV).
 *   chan_sleep_go_eperm	the calls that would park a G return -EPERM
 *			from a pthread: blocking sends and receives,
 *			select, sleep, kgo_go; those that need not wait
 *			work (a send into buffer room, a receive of a
 *			buffered value, kgo_yield, syscall_begin/_end,
 *			kgo_syscall, kgo_read of a ready pipe). Both Ps
 *			busy meanwhile: a send to a full channel from a
 *			pthread looked at the caller's P (NULL: SIGSEGV).
 *   mutex_from_thread	a pthread blocks in a contended kgo_mutex_lock
 *			while a G holds it, and a G blocks while the
 *			pthread holds it (the G is readied from the
 *			pthread's unlock); used to abort with "semacquire:
 *			not on a G".
 *   mutex_counter	Gs and pthreads increment one counter under one
 *			kgo_mutex: the total is exact.
 *   mutex_no_runtime	two pthreads and no kgo_run at all share a
 *			kgo_mutex, contended.
 *   rwmutex_from_thread	a pthread reader waits for a G writer, a
 *			pthread writer for a G reader.
 *   wg_from_thread	a pthread waits in kgo_wg_wait for Gs.
 *   cond_from_thread	pthreads wait in kgo_cond_wait; a G signals one
 *			and broadcasts to the rest.
 *   once_from_thread	a pthread calls kgo_once_do while a G runs the
 *			once function: it waits for it, fn runs once.
 *
 * "Contended" is made sure of, not hoped for: the holder waits until the
 * waiter is counted in the lock's state (a private field, read here
 * only to know the other side is waiting), so no test depends on how
 * long anything takes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kgo.h"
#include "harness.h"

#define MS	1000000LL

static void run(void (*fn)(void *), void *arg, int maxprocs)
{
	struct kgo_config cfg = { .maxprocs = maxprocs };

	ASSERT_EQ(0, kgo_run(fn, arg, &cfg));
}

static pthread_t start(void *(*fn)(void *), void *arg)
{
	pthread_t t;

	ASSERT_EQ(0, pthread_create(&t, NULL, fn, arg));
	return t;
}

static void join(pthread_t t)
{
	ASSERT_EQ(0, pthread_join(t, NULL));
}

/* Park the G (or just wait, on a pthread) until *flag is set. */
static void wait_flag(_Atomic int *flag, int v)
{
	while (atomic_load(flag) < v) {
		if (kgo_self())
			kgo_sleep(MS / 4);
		else
			usleep(250);
	}
}

/* kgo_mutex waiters are counted from bit 3 of its state (sync.c). */
static unsigned mutex_waiters(struct kgo_mutex *mu)
{
	return __atomic_load_n(&mu->state, __ATOMIC_SEQ_CST) >> 3;
}

static void wait_mutex_waiter(struct kgo_mutex *mu)
{
	while (mutex_waiters(mu) == 0) {
		if (kgo_self())
			kgo_sleep(MS / 4);
		else
			usleep(250);
	}
}

/* ------------------------------------------------------------------ */
/* kgo_select outside a G                                             */
/* ------------------------------------------------------------------ */

static void check_select_eperm(void)
{
	struct kgo_chan *c = kgo_chan_make(sizeof(int), 0);
	struct kgo_case cs[2];
	int v = 1;

	ASSERT_NONNULL(c);
	memset(cs, 0, sizeof(cs));
	cs[0].ch = c;
	cs[0].op = KGO_RECV;
	cs[0].elem = &v;
	cs[1].ch = c;
	cs[1].op = KGO_SEND;
	cs[1].elem = &v;
	EXPECT_EQ(-EPERM, kgo_select(cs, 1, -1));
	EXPECT_EQ(-EPERM, kgo_select(cs, 2, kgo_now() + 1000 * MS));
	EXPECT_EQ(-EAGAIN, kgo_select(cs, 2, 0));
	EXPECT_EQ(-ETIMEDOUT, kgo_select(cs, 1, kgo_now() - MS));
	/* No case with a channel: the same answers. */
	cs[0].ch = NULL;
	EXPECT_EQ(-EPERM, kgo_select(cs, 1, -1));
	EXPECT_EQ(-EAGAIN, kgo_select(cs, 1, 0));
	/* A ready case runs, G or not. */
	kgo_chan_free(c);
	c = kgo_chan_make(sizeof(int), 1);
	ASSERT_NONNULL(c);
	cs[0].ch = c;
	cs[0].op = KGO_SEND;
	v = 42;
	EXPECT_EQ(0, kgo_select(cs, 1, -1));
	EXPECT_EQ(1, (long)kgo_chan_len(c));
	kgo_chan_free(c);
}

static _Atomic int sel_stage;

static void *sel_thread(void *arg)
{
	(void)arg;
	check_select_eperm();
	atomic_store(&sel_stage, 1);
	return NULL;
}

static void sel_main(void *arg)
{
	(void)arg;
	pthread_t t = start(sel_thread, NULL);

	wait_flag(&sel_stage, 1);
	join(t);
}

TEST(select_outside_g)
{
	check_select_eperm();		/* no runtime at all */
	run(sel_main, NULL, 2);		/* a pthread beside a runtime */
	EXPECT_EQ(1, atomic_load(&sel_stage));
}

/* ------------------------------------------------------------------ */
/* What returns -EPERM, and what works without a G                    */
/* ------------------------------------------------------------------ */

static void nop(void *arg)
{
	(void)arg;
}

static _Atomic int eperm_done;

static void *eperm_thread(void *arg)
{
	struct kgo_chan *u = kgo_chan_make(sizeof(int), 0);
	struct kgo_chan *b = kgo_chan_make(sizeof(int), 1);
	int fds[2], v = 7, w = 0;
	char buf[4];

	(void)arg;
	ASSERT_NONNULL(u);
	ASSERT_NONNULL(b);
	EXPECT_EQ(-EPERM, kgo_chan_send(u, &v));
	EXPECT_EQ(-EPERM, kgo_chan_recv(u, &w));
	EXPECT_EQ(-EPERM, kgo_chan_send_dl(u, &v, kgo_now() + 1000 * MS));
	EXPECT_EQ(-EPERM, kgo_chan_recv_dl(u, &w, -1));
	EXPECT_EQ(-EPERM, kgo_chan_send(NULL, &v));
	EXPECT_EQ(-EPERM, kgo_sleep(MS));
	EXPECT_EQ(-EPERM, kgo_sleep_until(kgo_now() + MS));
	EXPECT_EQ(-EPERM, kgo_go(nop, NULL));
	/* No waiting needed: these work. */
	EXPECT_EQ(0, kgo_chan_send(b, &v));
	EXPECT_EQ(-EPERM, kgo_chan_send(b, &v));	/* full now */
	EXPECT_EQ(0, kgo_chan_recv(b, &w));
	EXPECT_EQ(7, w);
	EXPECT_EQ(0, kgo_chan_close(u));
	EXPECT_EQ(-EPIPE, kgo_chan_recv(u, &w));
	kgo_yield();
	kgo_syscall_begin();
	kgo_syscall_end();
	EXPECT_EQ((long)getpid(), kgo_syscall(SYS_getpid));
	EXPECT_EQ(0, (long)kgo_self());
	ASSERT_EQ(0, pipe(fds));
	ASSERT_EQ(3, write(fds[1], "abc", 3));
	EXPECT_EQ(3, kgo_read(fds[0], buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, "abc", 3));
	close(fds[0]);
	close(fds[1]);
	kgo_chan_free(u);
	kgo_chan_free(b);
	atomic_store(&eperm_done, 1);
	return NULL;
}

static void eperm_spin(void *arg)
{
	(void)arg;
	while (!atomic_load(&eperm_done))
		kgo_yield();
}

/* Both Ps busy meanwhile: a full channel's send then considers waiting
 * for room (chan.c, ring_wait_room), which looked at the caller's P. */
static void eperm_main(void *arg)
{
	pthread_t t;

	ASSERT_EQ(0, kgo_go(eperm_spin, NULL));
	t = start(eperm_thread, arg);
	eperm_spin(NULL);
	join(t);
}

TEST(chan_sleep_go_eperm)
{
	for (int i = 0; i < 20; i++) {
		atomic_store(&eperm_done, 0);
		run(eperm_main, NULL, 2);
		EXPECT_EQ(1, atomic_load(&eperm_done));
	}
}

/* ------------------------------------------------------------------ */
/* kgo_mutex                                                          */
/* ------------------------------------------------------------------ */

static struct kgo_mutex mu = KGO_MUTEX_INIT;
static _Atomic int mu_stage;
static long mu_owner;		/* who holds mu: 1 the G, 2 the pthread */

static void *mu_thread(void *arg)
{
	(void)arg;
	/* 1: the G holds mu; we block in lock until it lets go. */
	wait_flag(&mu_stage, 1);
	kgo_mutex_lock(&mu);
	EXPECT_EQ(0, mu_owner);
	mu_owner = 2;
	/* 2: now we hold it and a G blocks on it. */
	atomic_store(&mu_stage, 2);
	wait_mutex_waiter(&mu);
	mu_owner = 0;
	kgo_mutex_unlock(&mu);
	return NULL;
}

static void mu_main(void *arg)
{
	pthread_t t = start(mu_thread, arg);

	kgo_mutex_lock(&mu);
	mu_owner = 1;
	atomic_store(&mu_stage, 1);
	wait_mutex_waiter(&mu);		/* the pthread waits in lock */
	mu_owner = 0;
	kgo_mutex_unlock(&mu);
	wait_flag(&mu_stage, 2);
	kgo_mutex_lock(&mu);		/* parks; the pthread's unlock readies us */
	EXPECT_EQ(0, mu_owner);
	kgo_mutex_unlock(&mu);
	join(t);
}

TEST(mutex_from_thread)
{
	for (int p = 1; p <= 2; p++) {
		atomic_store(&mu_stage, 0);
		run(mu_main, NULL, p);
		EXPECT_EQ(2, atomic_load(&mu_stage));
	}
}

#define MC_GS		4
#define MC_THREADS	2
#define MC_N		20000

static struct kgo_mutex mc_mu = KGO_MUTEX_INIT;
static long mc_count;
static struct kgo_wg mc_wg = KGO_WG_INIT;

static void mc_add(void)
{
	for (int i = 0; i < MC_N; i++) {
		kgo_mutex_lock(&mc_mu);
		mc_count++;
		if (i % 64 == 0)
			sched_yield();	/* hold it a while: waiters queue */
		kgo_mutex_unlock(&mc_mu);
	}
}

static void mc_g(void *arg)
{
	(void)arg;
	mc_add();
	kgo_wg_done(&mc_wg);
}

static void *mc_thread(void *arg)
{
	(void)arg;
	mc_add();
	kgo_wg_done(&mc_wg);
	return NULL;
}

static void mc_main(void *arg)
{
	pthread_t t[MC_THREADS];
	int i;

	(void)arg;
	kgo_wg_add(&mc_wg, MC_GS + MC_THREADS);
	for (i = 0; i < MC_THREADS; i++)
		t[i] = start(mc_thread, NULL);
	for (i = 0; i < MC_GS; i++)
		ASSERT_EQ(0, kgo_go(mc_g, NULL));
	kgo_wg_wait(&mc_wg);
	for (i = 0; i < MC_THREADS; i++)
		join(t[i]);
}

TEST_TIMEOUT(mutex_counter, 120)
{
	for (int p = 1; p <= 2; p++) {
		mc_count = 0;
		run(mc_main, NULL, p);
		EXPECT_EQ((long)(MC_GS + MC_THREADS) * MC_N, mc_count);
	}
}

static void *mn_thread(void *arg)
{
	long *n = arg;

	for (int i = 0; i < MC_N; i++) {
		kgo_mutex_lock(&mc_mu);
		(*n)++;
		if (i % 64 == 0)
			sched_yield();
		kgo_mutex_unlock(&mc_mu);
	}
	return NULL;
}

TEST_TIMEOUT(mutex_no_runtime, 60)
{
	long n = 0;
	pthread_t a, b;

	/* The contended path for sure: hold it until a thread waits. */
	kgo_mutex_lock(&mc_mu);
	a = start(mn_thread, &n);
	wait_mutex_waiter(&mc_mu);
	kgo_mutex_unlock(&mc_mu);
	b = start(mn_thread, &n);
	join(a);
	join(b);
	EXPECT_EQ(2L * MC_N, n);
	EXPECT_EQ(0, kgo_maxprocs());
}

/* ------------------------------------------------------------------ */
/* kgo_rwmutex                                                        */
/* ------------------------------------------------------------------ */

static struct kgo_rwmutex rw = KGO_RWMUTEX_INIT;
static _Atomic int rw_stage;
static int rw_data;

static void *rw_thread(void *arg)
{
	(void)arg;
	wait_flag(&rw_stage, 1);	/* a G holds the write lock */
	kgo_rwmutex_rlock(&rw);
	EXPECT_EQ(1, rw_data);
	kgo_rwmutex_runlock(&rw);
	wait_flag(&rw_stage, 2);	/* a G holds a read lock */
	kgo_rwmutex_lock(&rw);
	EXPECT_EQ(2, rw_data);
	rw_data = 3;
	kgo_rwmutex_unlock(&rw);
	return NULL;
}

static void rw_main(void *arg)
{
	pthread_t t = start(rw_thread, arg);

	kgo_rwmutex_lock(&rw);
	atomic_store(&rw_stage, 1);
	/* The reader counted itself and waits (sync.c: a writer takes
	 * 1 << 30 off reader_count). */
	while (__atomic_load_n(&rw.reader_count, __ATOMIC_SEQ_CST) ==
	       -(1 << 30))
		kgo_sleep(MS / 4);
	rw_data = 1;
	kgo_rwmutex_unlock(&rw);

	kgo_rwmutex_rlock(&rw);
	atomic_store(&rw_stage, 2);
	/* The writer is in: it took 1 << 30 off the count. */
	while (__atomic_load_n(&rw.reader_count, __ATOMIC_SEQ_CST) > 0)
		kgo_sleep(MS / 4);
	rw_data = 2;
	kgo_rwmutex_runlock(&rw);
	join(t);
	EXPECT_EQ(3, rw_data);
}

TEST(rwmutex_from_thread)
{
	run(rw_main, NULL, 2);
	EXPECT_EQ(2, atomic_load(&rw_stage));
}

/* ------------------------------------------------------------------ */
/* kgo_wg                                                             */
/* ------------------------------------------------------------------ */

static struct kgo_wg wg = KGO_WG_INIT;
static _Atomic int wg_work;

static void wg_g(void *arg)
{
	(void)arg;
	/* Finish only once the pthread waits (the waiter count is the
	 * low half of the state). */
	while ((uint32_t)__atomic_load_n(&wg.state, __ATOMIC_SEQ_CST) == 0)
		kgo_sleep(MS / 4);
	atomic_fetch_add(&wg_work, 1);
	kgo_wg_done(&wg);
}

static _Atomic int wg_waited;

static void *wg_thread(void *arg)
{
	(void)arg;
	kgo_wg_wait(&wg);
	EXPECT_EQ(8, atomic_load(&wg_work));
	atomic_store(&wg_waited, 1);
	return NULL;
}

static void wg_main(void *arg)
{
	pthread_t t;

	(void)arg;
	kgo_wg_add(&wg, 8);
	t = start(wg_thread, NULL);
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(0, kgo_go(wg_g, NULL));
	wait_flag(&wg_waited, 1);	/* a join would hold the only P */
	join(t);
}

TEST(wg_from_thread)
{
	for (int p = 1; p <= 2; p++) {
		atomic_store(&wg_work, 0);
		atomic_store(&wg_waited, 0);
		run(wg_main, NULL, p);
		EXPECT_EQ(8, atomic_load(&wg_work));
	}
}

/* ------------------------------------------------------------------ */
/* kgo_cond                                                           */
/* ------------------------------------------------------------------ */

static struct kgo_cond cv = KGO_COND_INIT;
static struct kgo_mutex cv_mu = KGO_MUTEX_INIT;
static int cv_tokens;
static _Atomic int cv_woken;

static void *cv_thread(void *arg)
{
	(void)arg;
	kgo_mutex_lock(&cv_mu);
	while (cv_tokens == 0)
		kgo_cond_wait(&cv, &cv_mu);
	cv_tokens--;
	kgo_mutex_unlock(&cv_mu);
	atomic_fetch_add(&cv_woken, 1);
	return NULL;
}

/* Waiters that took a ticket and were not notified yet (sync.c). */
static unsigned cv_waiting(void)
{
	return __atomic_load_n(&cv.wait, __ATOMIC_SEQ_CST) -
	       __atomic_load_n(&cv.notify, __ATOMIC_SEQ_CST);
}

static void cv_main(void *arg)
{
	pthread_t t[3];
	int i;

	(void)arg;
	for (i = 0; i < 3; i++)
		t[i] = start(cv_thread, NULL);
	while (cv_waiting() < 3)
		kgo_sleep(MS / 4);
	kgo_mutex_lock(&cv_mu);
	cv_tokens = 1;
	kgo_mutex_unlock(&cv_mu);
	kgo_cond_signal(&cv);
	while (atomic_load(&cv_woken) < 1)
		kgo_sleep(MS / 4);
	while (cv_waiting() < 2)
		kgo_sleep(MS / 4);
	kgo_mutex_lock(&cv_mu);
	cv_tokens = 2;
	kgo_mutex_unlock(&cv_mu);
	kgo_cond_broadcast(&cv);
	for (i = 0; i < 3; i++)
		join(t[i]);
}

TEST(cond_from_thread)
{
	run(cv_main, NULL, 2);
	EXPECT_EQ(3, atomic_load(&cv_woken));
	EXPECT_EQ(0, cv_tokens);
}

/* ------------------------------------------------------------------ */
/* kgo_once                                                           */
/* ------------------------------------------------------------------ */

static struct kgo_once once = KGO_ONCE_INIT;
static _Atomic int once_calls;

static void once_fn(void *arg)
{
	(void)arg;
	atomic_fetch_add(&once_calls, 1);
	/* Return only once the pthread waits for us. */
	wait_mutex_waiter(&once.mu);
}

static void *once_thread(void *arg)
{
	(void)arg;
	wait_flag(&once_calls, 1);
	kgo_once_do(&once, once_fn, NULL);
	EXPECT_EQ(1, atomic_load(&once_calls));
	return NULL;
}

static void once_main(void *arg)
{
	pthread_t t = start(once_thread, arg);

	kgo_once_do(&once, once_fn, NULL);
	join(t);
}

TEST(once_from_thread)
{
	run(once_main, NULL, 2);
	EXPECT_EQ(1, atomic_load(&once_calls));
}

TEST_HARNESS_MAIN
