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
 *   chan_sleep_go_eperm	the calls that would park a G and that a thread
 *			cannot wait in return -EPERM from a pthread:
 *			select, a NULL channel, sleep; those that need
 *			not wait work (a send into buffer room, a receive
 *			of a buffered value, kgo_yield, syscall_begin/
 *			_end, kgo_syscall, kgo_read of a ready pipe), and
 *			a try or a passed deadline on a full channel
 *			fails as for a G. Both Ps busy meanwhile: a send
 *			to a full channel from a pthread looked at the
 *			caller's P (NULL: SIGSEGV).
 *   send_blocks	a pthread's sends on an unbuffered and on a full
 *			buffered channel block until a G receives (they
 *			used to return -EPERM), every value arrives once
 *			and in order; a pthread's receive blocks until a
 *			G sends; kgo_chan_close wakes a blocked pthread
 *			sender with -EPIPE; a deadline that passes takes
 *			the value back (nothing sent twice or lost).
 *   thread_to_thread	two pthreads and no runtime meet on an
 *			unbuffered channel.
 *   spawn_from_thread	kgo_go from a pthread while the runtime runs
 *			starts the G (it used to return -EPERM); after
 *			kgo_run has returned it is -EPERM.
 *   foreign_feeder	the only G waits on a channel that a registered
 *			pthread (kgo_foreign_enter) feeds later: no
 *			"deadlock!" (before: exit 2, 3 runs in 3).
 *   real_deadlock	the feeder sends what it has and leaves
 *			(kgo_foreign_leave); the G waiting for one value
 *			more is reported as a deadlock, whether it parks
 *			before or after the leave.
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
#include "kgo_run.h"
#include "child.h"

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
	EXPECT_EQ(-EAGAIN, kgo_chan_send_dl(u, &v, 0));
	EXPECT_EQ(-ETIMEDOUT, kgo_chan_recv_dl(u, &w, kgo_now() - MS));
	EXPECT_EQ(-EPERM, kgo_chan_send(NULL, &v));
	EXPECT_EQ(-EPERM, kgo_sleep(MS));
	EXPECT_EQ(-EPERM, kgo_sleep_until(kgo_now() + MS));
	/* No waiting needed: these work. */
	EXPECT_EQ(0, kgo_chan_send(b, &v));
	EXPECT_EQ(-EAGAIN, kgo_chan_send_dl(b, &v, 0));	/* full now */
	EXPECT_EQ(-ETIMEDOUT, kgo_chan_send_dl(b, &v, kgo_now() - MS));
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
/* Channels: a pthread waits                                          */
/* ------------------------------------------------------------------ */

#define SB_N	2000

struct sb {
	struct kgo_chan *u, *b;		/* unbuffered; buffered, cap 4 */
	struct kgo_chan *back;		/* G -> pthread, unbuffered */
	struct kgo_chan *closing;	/* closed under a blocked sender */
	struct kgo_chan *full;		/* cap 1, kept full */
	_Atomic int stage;
};

static void *sb_thread(void *arg)
{
	struct sb *s = arg;
	int i, v;

	for (i = 0; i < SB_N; i++) {
		EXPECT_EQ(0, kgo_chan_send(s->u, &i));
		EXPECT_EQ(0, kgo_chan_send(s->b, &i));
	}
	for (i = 0; i < SB_N; i++) {
		ASSERT_EQ(0, kgo_chan_recv(s->back, &v));
		EXPECT_EQ(i, v);
	}
	/* Blocked until the G closes the channel. */
	v = 1;
	atomic_store(&s->stage, 1);
	EXPECT_EQ(-EPIPE, kgo_chan_send(s->closing, &v));
	/* A deadline passes: the value is not left behind in the queue. */
	v = 2;
	EXPECT_EQ(-ETIMEDOUT, kgo_chan_send_dl(s->full, &v,
					       kgo_now() + 20 * MS));
	atomic_store(&s->stage, 2);
	return NULL;
}

static void sb_main(void *arg)
{
	struct sb *s = arg;
	pthread_t t = start(sb_thread, s);
	int i, v;

	for (i = 0; i < SB_N; i++) {
		ASSERT_EQ(0, kgo_chan_recv(s->u, &v));
		EXPECT_EQ(i, v);
		ASSERT_EQ(0, kgo_chan_recv(s->b, &v));
		EXPECT_EQ(i, v);
		if (i % 97 == 0)
			kgo_sleep(MS / 10);	/* let the pthread block */
	}
	for (i = 0; i < SB_N; i++)
		ASSERT_EQ(0, kgo_chan_send(s->back, &i));
	wait_flag(&s->stage, 1);
	kgo_sleep(MS);			/* most often it is asleep by now */
	EXPECT_EQ(0, kgo_chan_close(s->closing));
	wait_flag(&s->stage, 2);
	EXPECT_EQ(1, (long)kgo_chan_len(s->full));
	EXPECT_EQ(0, kgo_chan_recv(s->full, &v));
	EXPECT_EQ(9, v);
	EXPECT_EQ(-EAGAIN, kgo_chan_recv_dl(s->full, &v, 0));
	join(t);
}

TEST(send_blocks)
{
	struct sb s = { 0 };
	int nine = 9;

	s.u = kgo_chan_make(sizeof(int), 0);
	s.b = kgo_chan_make(sizeof(int), 4);
	s.back = kgo_chan_make(sizeof(int), 0);
	s.closing = kgo_chan_make(sizeof(int), 0);
	s.full = kgo_chan_make(sizeof(int), 1);
	ASSERT_TRUE(s.u && s.b && s.back && s.closing && s.full);
	ASSERT_EQ(0, kgo_chan_send(s.full, &nine));
	for (int p = 1; p <= 2; p++) {
		atomic_store(&s.stage, 0);
		if (p == 2) {
			kgo_chan_free(s.closing);
			s.closing = kgo_chan_make(sizeof(int), 0);
			ASSERT_NONNULL(s.closing);
			ASSERT_EQ(0, kgo_chan_send(s.full, &nine));
		}
		run(sb_main, &s, p);
	}
	kgo_chan_free(s.u);
	kgo_chan_free(s.b);
	kgo_chan_free(s.back);
	kgo_chan_free(s.closing);
	kgo_chan_free(s.full);
}

static void *tt_recv(void *arg)
{
	int v = 0;

	EXPECT_EQ(0, kgo_chan_recv(arg, &v));
	EXPECT_EQ(5, v);
	return NULL;
}

TEST(thread_to_thread)
{
	struct kgo_chan *c = kgo_chan_make(sizeof(int), 0);
	pthread_t t;
	int v = 5;

	ASSERT_NONNULL(c);
	t = start(tt_recv, c);
	EXPECT_EQ(0, kgo_chan_send(c, &v));
	join(t);
	kgo_chan_free(c);
}

/* ------------------------------------------------------------------ */
/* kgo_go from a pthread                                              */
/* ------------------------------------------------------------------ */

#define SP_N	200

static struct kgo_wg sp_wg = KGO_WG_INIT;
static _Atomic int sp_ran, sp_done;

static void sp_g(void *arg)
{
	(void)arg;
	atomic_fetch_add(&sp_ran, 1);
	kgo_wg_done(&sp_wg);
}

static void *sp_thread(void *arg)
{
	(void)arg;
	kgo_wg_add(&sp_wg, SP_N);
	for (int i = 0; i < SP_N; i++)
		EXPECT_EQ(0, kgo_go(sp_g, NULL));
	kgo_wg_wait(&sp_wg);		/* the pthread blocks for the Gs */
	atomic_store(&sp_done, 1);
	return NULL;
}

static void sp_main(void *arg)
{
	pthread_t t = start(sp_thread, NULL);

	(void)arg;
	wait_flag(&sp_done, 1);		/* parked: the P runs the new Gs */
	join(t);
	EXPECT_EQ(SP_N, atomic_load(&sp_ran));
}

static void *sp_late(void *arg)
{
	(void)arg;
	EXPECT_EQ(-EPERM, kgo_go(nop, NULL));
	EXPECT_EQ(-EPERM, kgo_go_sized(nop, NULL, 64 * 1024));
	return NULL;
}

TEST(spawn_from_thread)
{
	for (int p = 1; p <= 2; p++) {
		atomic_store(&sp_ran, 0);
		atomic_store(&sp_done, 0);
		run(sp_main, NULL, p);
		EXPECT_EQ(SP_N, atomic_load(&sp_ran));
	}
	join(start(sp_late, NULL));
}

/* ------------------------------------------------------------------ */
/* The deadlock report and foreign threads                            */
/* ------------------------------------------------------------------ */

struct feed {
	struct kgo_chan *c;
	int n;				/* values the feeder sends */
	_Atomic int registered;
};

static void *feeder(void *arg)
{
	struct feed *f = arg;

	ASSERT_EQ(0, kgo_foreign_enter());
	atomic_store(&f->registered, 1);
	usleep(100 * 1000);		/* the G is asleep by now, mostly */
	for (int i = 0; i < f->n; i++)
		EXPECT_EQ(0, kgo_chan_send(f->c, &i));
	ASSERT_EQ(0, kgo_foreign_leave());
	return NULL;
}

/* Receive f->n values from the feeder, then @more. */
static void feed_main(struct feed *f, int more)
{
	pthread_t t;
	int i, v;

	f->c = kgo_chan_make(sizeof(int), 0);
	ASSERT_NONNULL(f->c);
	t = start(feeder, f);
	wait_flag(&f->registered, 1);
	for (i = 0; i < f->n + more; i++) {
		ASSERT_EQ(0, kgo_chan_recv(f->c, &v));
		EXPECT_EQ(i, v);
	}
	join(t);
}

static void feeder_main(void *arg)
{
	feed_main(arg, 0);
	fputs("fed\n", stderr);
}

TEST(foreign_feeder)
{
	struct feed f = { .n = 3 };
	char out[4096];
	int st;

	st = child_run(feeder_main, &f, 1, NULL, out, sizeof(out));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		TH_LOG("%s", out);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	EXPECT_NONNULL(strstr(out, "fed"));
	EXPECT_NULL(strstr(out, "deadlock"));
}

static void starved_main(void *arg)
{
	feed_main(arg, 1);
}

TEST(real_deadlock)
{
	struct feed f = { .n = 2 };
	char out[8192];
	int st;

	st = child_run(starved_main, &f, 2, NULL, out, sizeof(out));
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	EXPECT_NONNULL(strstr(out, "all goroutines are asleep - deadlock!"));
	/* And with no registration at all. */
	EXPECT_EQ(-EINVAL, kgo_foreign_leave());
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
