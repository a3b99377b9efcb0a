// SPDX-License-Identifier: MIT
/*
 * sync.c - kgo_mutex, kgo_rwmutex, kgo_cond, kgo_wg, kgo_once: Go's
 * package sync (mutex.go, rwmutex.go, waitgroup.go, once.go, and the
 * runtime's notifyList for Cond), written for C on sema.c.
 *
 * Every wait here parks the G on a semaphore (or the cond's notify
 * list); none blocks the M. A thread that is not a G waits too, by
 * blocking (sema.c, semacquire_thread; cond_wait_ticket), and notes
 * itself for checkdead (foreign_note). The structs are public (kgo.h) so users can
 * embed them and initialise them statically, so their fields are plain
 * integers; this file is the only one that touches them, always through
 * the atomic views below (same size and alignment, asserted).
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime.h"

_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t) &&
	       _Alignof(_Atomic uint32_t) == _Alignof(uint32_t),
	       "sync: atomic views of kgo.h's uint32_t fields");
_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t) &&
	       _Alignof(_Atomic uint64_t) == _Alignof(uint64_t),
	       "sync: atomic views of kgo.h's uint64_t fields");
_Static_assert(sizeof(struct kgo_lock) == sizeof(uint32_t) &&
	       _Alignof(struct kgo_lock) == _Alignof(uint32_t),
	       "sync: kgo_cond.lock is a struct kgo_lock");

#define A32(p)	((_Atomic uint32_t *)(p))
#define AI32(p)	((_Atomic int32_t *)(p))
#define A64(p)	((_Atomic uint64_t *)(p))

/* ------------------------------------------------------------------ */
/* kgo_mutex                                                          */
/* ------------------------------------------------------------------ */

/*
 * The mutex (Go's sync.Mutex). state is
 *
 *	bit 0	MUTEX_LOCKED
 *	bit 1	MUTEX_WOKEN	a waiter is awake (spinning or just woken):
 *				unlock need not wake another
 *	bit 2	MUTEX_STARVING
 *	3..31	waiters parked (or about to park) on sema
 *
 * Normal mode: waiters queue FIFO, but a woken waiter competes for the
 * lock with Gs that just arrived (which are running, so they usually
 * win); a woken waiter that loses goes back to the front of the queue.
 * Throughput is good, a waiter can be passed over. Once a waiter has
 * waited more than 1 ms it switches the mutex to starvation mode: the
 * unlocker hands the lock straight to the first waiter (semrelease with
 * handoff), newcomers neither take it nor spin but queue at the tail.
 * The last waiter, or one that waited less than 1 ms, switches back.
 *
 * Every access to state is seq_cst (Go's atomics): its CASes order the
 * critical sections (acquire on lock, release on unlock), and the sema
 * protocol does the rest.
 */
enum {
	MUTEX_LOCKED = 1,
	MUTEX_WOKEN = 2,
	MUTEX_STARVING = 4,
	MUTEX_WAITER_SHIFT = 3,
};

#define STARVATION_THRESHOLD_NS	1000000

/* Spinning is worth it only on a multiprocessor with other Ps running
 * (one may be the holder) and no work queued on ours (Go's canSpin). */
static bool mutex_canspin(int iter)
{
	struct m *mp;
	struct p *pp;

	if (iter >= 4 || sched.gomaxprocs <= 1)
		return false;
	if (sched.gomaxprocs <= atomic_load_explicit(&sched.npidle,
						     memory_order_relaxed) +
	    atomic_load_explicit(&sched.nmspinning, memory_order_relaxed) + 1)
		return false;
	mp = getm();
	pp = mp ? mp->p : NULL;
	if (!pp)
		return false;
	/* Relaxed: a hint. */
	return atomic_load_explicit(&pp->runqhead, memory_order_relaxed) ==
	       atomic_load_explicit(&pp->runqtail, memory_order_relaxed) &&
	       !atomic_load_explicit(&pp->runnext, memory_order_relaxed);
}

static void mutex_spin(void)
{
	int i;

	for (i = 0; i < 30; i++)
		cpu_relax();
}

static void mutex_lock_slow(struct kgo_mutex *mu, enum waitreason r)
{
	_Atomic uint32_t *state = A32(&mu->state);
	int64_t wait_start = 0;
	bool starving = false, awoke = false;
	int iter = 0;
	uint32_t old = atomic_load(state);

	for (;;) {
		uint32_t new;

		/* Spin while it is held (not starving) and spinning may
		 * pay; set WOKEN so that unlock does not wake a waiter we
		 * would compete with. */
		if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) == MUTEX_LOCKED &&
		    mutex_canspin(iter)) {
			if (!awoke && !(old & MUTEX_WOKEN) &&
			    (old >> MUTEX_WAITER_SHIFT) != 0 &&
			    atomic_compare_exchange_strong(state, &old,
						old | MUTEX_WOKEN))
				awoke = true;
			mutex_spin();
			iter++;
			old = atomic_load(state);
			continue;
		}
		new = old;
		/* Newcomers do not take a starving mutex: they queue. */
		if (!(old & MUTEX_STARVING))
			new |= MUTEX_LOCKED;
		if (old & (MUTEX_LOCKED | MUTEX_STARVING))
			new += 1u << MUTEX_WAITER_SHIFT;
		/* Switch to starvation, if it is still held (an unlocked
		 * mutex in starvation mode has no one to hand it to). */
		if (starving && (old & MUTEX_LOCKED))
			new |= MUTEX_STARVING;
		if (awoke) {
			if (!(new & MUTEX_WOKEN))
				kgo_throw("kgo_mutex_lock: bad state");
			new &= ~(uint32_t)MUTEX_WOKEN;
		}
		if (!atomic_compare_exchange_strong(state, &old, new))
			continue;	/* old is fresh */
		if (!(old & (MUTEX_LOCKED | MUTEX_STARVING)))
			return;		/* taken with the CAS */

		/* Queued: at the front if we waited before. */
		{
			bool lifo = wait_start != 0;
			int64_t now;

			if (!wait_start)
				wait_start = nanotime();
			semacquire(A32(&mu->sema), lifo, r);
			now = nanotime();
			starving = starving ||
				   now - wait_start > STARVATION_THRESHOLD_NS;
		}
		old = atomic_load(state);
		if (old & MUTEX_STARVING) {
			/* Handed to us: LOCKED is not set, we are counted
			 * as a waiter. Take it and uncount ourselves. */
			uint32_t delta = MUTEX_LOCKED -
					 (1u << MUTEX_WAITER_SHIFT);

			if ((old & (MUTEX_LOCKED | MUTEX_WOKEN)) ||
			    (old >> MUTEX_WAITER_SHIFT) == 0)
				kgo_throw("kgo_mutex_lock: bad state");
			/* Leave starvation mode if we did not starve or
			 * are the last waiter: handing off forever would
			 * cost throughput for nothing. */
			if (!starving || (old >> MUTEX_WAITER_SHIFT) == 1)
				delta -= MUTEX_STARVING;
			atomic_fetch_add(state, delta);
			return;
		}
		awoke = true;
		iter = 0;
	}
}

void kgo_mutex_lock(struct kgo_mutex *mu)
{
	uint32_t zero = 0;

	foreign_note();
	/* Fast path: one CAS. */
	if (atomic_compare_exchange_strong(A32(&mu->state), &zero,
					   MUTEX_LOCKED))
		return;
	mutex_lock_slow(mu, WAIT_MUTEX);
}

bool kgo_mutex_trylock(struct kgo_mutex *mu)
{
	uint32_t old = atomic_load(A32(&mu->state));

	foreign_note();
	if (old & (MUTEX_LOCKED | MUTEX_STARVING))
		return false;
	/* A waiter may be woken and about to compete: fine, so are we. */
	return atomic_compare_exchange_strong(A32(&mu->state), &old,
					      old | MUTEX_LOCKED);
}

static void mutex_unlock_slow(struct kgo_mutex *mu, uint32_t new)
{
	_Atomic uint32_t *state = A32(&mu->state);
	uint32_t old;

	if (!((new + MUTEX_LOCKED) & MUTEX_LOCKED))
		kgo_fatal("sync: unlock of unlocked mutex");
	if (new & MUTEX_STARVING) {
		/* Hand the lock to the first waiter and let it run now;
		 * LOCKED stays clear, but STARVING keeps newcomers off. */
		semrelease(A32(&mu->sema), true);
		return;
	}
	/* Wake one waiter, unless none, or someone already holds the
	 * lock, or is awake, or the mutex went starving meanwhile. */
	old = new;
	for (;;) {
		if ((old >> MUTEX_WAITER_SHIFT) == 0 ||
		    (old & (MUTEX_LOCKED | MUTEX_WOKEN | MUTEX_STARVING)))
			return;
		new = (old - (1u << MUTEX_WAITER_SHIFT)) | MUTEX_WOKEN;
		if (atomic_compare_exchange_strong(state, &old, new)) {
			semrelease(A32(&mu->sema), false);
			return;
		}
	}
}

void kgo_mutex_unlock(struct kgo_mutex *mu)
{
	/* Fast path: drop LOCKED; anything left means waiters. */
	uint32_t new = atomic_fetch_sub(A32(&mu->state), MUTEX_LOCKED) -
		       MUTEX_LOCKED;

	if (new != 0)
		mutex_unlock_slow(mu, new);
	kgo_checkpreempt();	/* every runtime call is a safe point */
}

/* kgo_mutex_lock() that reports @r while parked (rwmutex writers). */
static void mutex_lock_reason(struct kgo_mutex *mu, enum waitreason r)
{
	uint32_t zero = 0;

	foreign_note();
	if (atomic_compare_exchange_strong(A32(&mu->state), &zero,
					   MUTEX_LOCKED))
		return;
	mutex_lock_slow(mu, r);
}

/* ------------------------------------------------------------------ */
/* kgo_rwmutex                                                        */
/* ------------------------------------------------------------------ */

/*
 * Go's sync.RWMutex. reader_count is the number of readers holding or
 * waiting; a writer subtracts RWMUTEX_MAX_READERS from it, which tells
 * new readers to wait on reader_sem (so a stream of readers cannot
 * starve a writer), and waits on writer_sem for reader_wait, the readers
 * that held it when it arrived, to leave. Writers exclude each other
 * with w. All atomics seq_cst.
 */
#define RWMUTEX_MAX_READERS	(1 << 30)

void kgo_rwmutex_rlock(struct kgo_rwmutex *rw)
{
	foreign_note();
	if (atomic_fetch_add(AI32(&rw->reader_count), 1) + 1 < 0)
		/* A writer is pending: wait for it. */
		semacquire(A32(&rw->reader_sem), false, WAIT_RWMUTEX_R);
}

void kgo_rwmutex_runlock(struct kgo_rwmutex *rw)
{
	int32_t r = atomic_fetch_sub(AI32(&rw->reader_count), 1) - 1;

	if (r >= 0) {
		kgo_checkpreempt();
		return;
	}
	if (r + 1 == 0 || r + 1 == -RWMUTEX_MAX_READERS)
		kgo_fatal("sync: RUnlock of unlocked RWMutex");
	/* A writer is pending: the last reader it waits for wakes it. */
	if (atomic_fetch_sub(AI32(&rw->reader_wait), 1) - 1 == 0)
		semrelease(A32(&rw->writer_sem), false);
}

void kgo_rwmutex_lock(struct kgo_rwmutex *rw)
{
	int32_t r;

	mutex_lock_reason(&rw->w, WAIT_RWMUTEX_W);
	/* Announce ourselves to readers; r is the readers still inside. */
	r = atomic_fetch_sub(AI32(&rw->reader_count), RWMUTEX_MAX_READERS);
	if (r != 0 &&
	    atomic_fetch_add(AI32(&rw->reader_wait), r) + r != 0)
		semacquire(A32(&rw->writer_sem), false, WAIT_RWMUTEX_W);
}

void kgo_rwmutex_unlock(struct kgo_rwmutex *rw)
{
	int32_t r, i;

	/* Let readers in again; r is how many queued meanwhile. */
	r = atomic_fetch_add(AI32(&rw->reader_count), RWMUTEX_MAX_READERS) +
	    RWMUTEX_MAX_READERS;
	if (r >= RWMUTEX_MAX_READERS)
		kgo_fatal("sync: Unlock of unlocked RWMutex");
	for (i = 0; i < r; i++)
		semrelease(A32(&rw->reader_sem), false);
	kgo_mutex_unlock(&rw->w);
}

/* ------------------------------------------------------------------ */
/* kgo_cond: a notify list (Go's runtime notifyList)                  */
/* ------------------------------------------------------------------ */

/*
 * A waiter takes a ticket (wait++) before it unlocks the user's mutex,
 * and parks on the list unless its ticket was already notified. signal
 * wakes the waiter holding ticket `notify` and advances it; broadcast
 * wakes everyone and sets notify = wait. So a signal is never lost to a
 * waiter that has unlocked the mutex but not parked yet.
 *
 *	wait	next ticket; atomic add, anyone.
 *	notify	next ticket to notify; written under lock, read without
 *		by the fast paths.
 *	lock	a struct kgo_lock; guards notify's writes and the list.
 *	head, tail: parked waiters (sudogs on their stacks, ticket set,
 *		linked by next); lock.
 */

static inline struct kgo_lock *cond_lock(struct kgo_cond *c)
{
	return (struct kgo_lock *)&c->lock;
}

/* Tickets wrap: a before b in modular order. */
static inline bool ticket_less(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static void cond_wait_ticket(struct kgo_cond *c, uint32_t t)
{
	struct note note;
	struct sudog s = { .g = getg(), .ticket = t, .note = &note };

	noteclear(&note);
	lock(cond_lock(c));
	if (ticket_less(t, atomic_load_explicit(A32(&c->notify),
						memory_order_relaxed))) {
		unlock(cond_lock(c));
		return;		/* signalled already */
	}
	if (c->tail)
		((struct sudog *)c->tail)->next = &s;
	else
		c->head = &s;
	c->tail = &s;
	if (s.g) {
		goparkunlock(cond_lock(c), WAIT_COND);
		return;
	}
	/* A thread that is not a G sleeps until signal or broadcast took
	 * s off the list and woke the note (sudog_ready). */
	unlock(cond_lock(c));
	notesleep(&note);
}

void kgo_cond_wait(struct kgo_cond *c, struct kgo_mutex *mu)
{
	uint32_t t = atomic_fetch_add(A32(&c->wait), 1);

	kgo_mutex_unlock(mu);
	cond_wait_ticket(c, t);
	kgo_mutex_lock(mu);
}

void kgo_cond_signal(struct kgo_cond *c)
{
	struct sudog *s, *prev = NULL;
	uint32_t t;

	foreign_note();
	/* Nobody waiting since the last notify: no lock. seq_cst loads
	 * pair with the waiter's add. */
	if (atomic_load(A32(&c->wait)) == atomic_load(A32(&c->notify)))
		return;
	lock(cond_lock(c));
	t = atomic_load_explicit(A32(&c->notify), memory_order_relaxed);
	if (t == atomic_load(A32(&c->wait))) {
		unlock(cond_lock(c));
		return;
	}
	atomic_store(A32(&c->notify), t + 1);
	/* Ticket t may not have parked yet: then it sees notify > t and
	 * does not park. */
	for (s = c->head; s; prev = s, s = s->next) {
		if ((uint32_t)s->ticket != t)
			continue;
		if (prev)
			prev->next = s->next;
		else
			c->head = s->next;
		if (c->tail == s)
			c->tail = prev;
		unlock(cond_lock(c));
		sudog_ready(s);	/* s stays valid: only we wake it */
		return;
	}
	unlock(cond_lock(c));
}

void kgo_cond_broadcast(struct kgo_cond *c)
{
	struct sudog *s;

	foreign_note();
	if (atomic_load(A32(&c->wait)) == atomic_load(A32(&c->notify)))
		return;
	lock(cond_lock(c));
	s = c->head;
	c->head = c->tail = NULL;
	atomic_store(A32(&c->notify), atomic_load(A32(&c->wait)));
	unlock(cond_lock(c));
	while (s) {
		struct sudog *next = s->next;

		sudog_ready(s);
		s = next;
	}
}

/* ------------------------------------------------------------------ */
/* kgo_wg                                                             */
/* ------------------------------------------------------------------ */

/*
 * Go's WaitGroup: state is counter << 32 | waiters, so that Add and
 * Wait agree on both with one atomic. When the counter reaches zero
 * with waiters, Add resets state and releases each waiter once on sema.
 * All atomics seq_cst.
 */
static void wg_misuse(const char *what) __attribute__((noreturn));
static void wg_misuse(const char *what)
{
	kgo_printf("kgo: sync: %s\n", what);
	abort();
}

void kgo_wg_add(struct kgo_wg *wg, int n)
{
	_Atomic uint64_t *state = A64(&wg->state);
	uint64_t delta = (uint64_t)(int64_t)n << 32;
	uint64_t st;
	int32_t v;
	uint32_t w;

	foreign_note();
	st = atomic_fetch_add(state, delta) + delta;
	v = (int32_t)(st >> 32);
	w = (uint32_t)st;

	if (v < 0)
		wg_misuse("negative WaitGroup counter");
	if (w != 0 && n > 0 && v == n)
		wg_misuse("WaitGroup misuse: Add called concurrently with Wait");
	if (v > 0 || w == 0)
		return;
	/* Counter 0 with waiters: nobody may change state now but us. */
	if (atomic_load(state) != st)
		wg_misuse("WaitGroup misuse: Add called concurrently with Wait");
	atomic_store(state, 0);
	for (; w != 0; w--)
		semrelease(A32(&wg->sema), false);
}

void kgo_wg_done(struct kgo_wg *wg)
{
	kgo_wg_add(wg, -1);
}

void kgo_wg_wait(struct kgo_wg *wg)
{
	_Atomic uint64_t *state = A64(&wg->state);
	uint64_t st = atomic_load(state);

	for (;;) {
		if ((int32_t)(st >> 32) == 0)
			return;
		/* Count ourselves as a waiter. */
		if (atomic_compare_exchange_weak(state, &st, st + 1)) {
			semacquire(A32(&wg->sema), false, WAIT_WG);
			if (atomic_load(state) != 0)
				wg_misuse("WaitGroup is reused before "
					  "previous Wait has returned");
			return;
		}
	}
}

/* ------------------------------------------------------------------ */
/* kgo_once                                                           */
/* ------------------------------------------------------------------ */

void kgo_once_do(struct kgo_once *once, void (*fn)(void *), void *arg)
{
	/* Acquire: pairs with the release below, so fn's effects are
	 * seen by everyone who sees done. */
	if (atomic_load_explicit(A32(&once->done), memory_order_acquire))
		return;
	kgo_mutex_lock(&once->mu);
	if (!atomic_load_explicit(A32(&once->done), memory_order_relaxed)) {
		fn(arg);
		atomic_store_explicit(A32(&once->done), 1,
				      memory_order_release);
	}
	kgo_mutex_unlock(&once->mu);
}
