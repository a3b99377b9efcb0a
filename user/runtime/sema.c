// SPDX-License-Identifier: MIT
/*
 * sema.c - semaphores on an address, for kgo_mutex and friends (Go's
 * semacquire/semrelease, src/runtime/sema.go).
 *
 * *addr counts tokens. semacquire() takes one, parking the G while there
 * are none; semrelease() adds one and wakes a waiter. Waiters live in a
 * fixed table of buckets hashed on the address: each bucket has a
 * runtime lock, one FIFO list of sudogs (of every address that hashes
 * there) and an atomic count of them, so that a semrelease() nobody
 * waits for costs one atomic add and one load.
 *
 * The waiter count and the token count form a Dekker pair: a waiter
 * increments nwait and then looks at *addr; a releaser increments *addr
 * and then looks at nwait. Both are seq_cst, so at least one of them
 * sees the other: either the waiter takes the token itself, or the
 * releaser finds the waiter (under the bucket lock, where the waiter
 * queued itself before it looked).
 *
 * Go keeps a treap of addresses per bucket, so that one bucket with
 * many addresses does not make dequeue linear; here a bucket is one
 * list that dequeue walks to the first sudog of the address. With 251
 * buckets and the runtime's use (one sema per kgo_mutex, rwmutex, wg)
 * the walk is short; if profiles say otherwise, this is the place.
 *
 * Handoff (starving kgo_mutex): the releaser takes the token on the
 * waiter's behalf (s->ticket = 1) and yields, so the waiter runs next
 * and no barging G can take the lock first. lifo: a waiter that was
 * woken and lost the race again goes to the front of its address's
 * queue (Go's queueLifo), so it is not sent to the back every time.
 *
 * Threads that are not Gs wait too, blocking (semacquire_thread).
 *
 * Deadlines (semacquire_until) follow the protocol in timer.h: the
 * sudog is marked is_select and semrelease() only wakes a waiter whose
 * g->selectdone it wins, dropping (and skipping) those that timed out.
 */
#include <errno.h>

#include "runtime.h"
#include "timer.h"

#define SEMTAB_SIZE 251

/*
 * struct semroot - one bucket.
 * @lock:	guards head, tail and the sudogs on the list.
 * @nwait:	sudogs on the list; changed under lock, read without it by
 *		semrelease()'s fast path (seq_cst: the Dekker pair above).
 */
struct semroot {
	struct kgo_lock lock;
	_Atomic uint32_t nwait;
	struct sudog *head, *tail;
} __cacheline_aligned;

static struct semroot semtab[SEMTAB_SIZE];

static struct semroot *semroot(_Atomic uint32_t *addr)
{
	return &semtab[((uintptr_t)addr >> 3) % SEMTAB_SIZE];
}

/* Take a token if there is one. seq_cst: the load is the second half
 * of the waiter's side of the Dekker pair; the CAS pairs with
 * semrelease()'s add. */
static bool cansemacquire(_Atomic uint32_t *addr)
{
	uint32_t v = atomic_load(addr);

	while (v != 0) {
		if (atomic_compare_exchange_weak(addr, &v, v - 1))
			return true;
	}
	return false;
}

/* Queue s on root; root->lock held, and nwait already counts s (the
 * waiter counted itself before its last look at *addr). s->c marks
 * "on the list". */
static void semqueue(struct semroot *root, struct sudog *s, bool lifo)
{
	s->c = root;
	if (lifo) {
		/* Front of the whole list is front of s->addr's queue. */
		s->prev = NULL;
		s->next = root->head;
		if (root->head)
			root->head->prev = s;
		else
			root->tail = s;
		root->head = s;
	} else {
		s->next = NULL;
		s->prev = root->tail;
		if (root->tail)
			root->tail->next = s;
		else
			root->head = s;
		root->tail = s;
	}
}

/* Take s off root's list; root->lock held and s on the list. */
static void semunqueue(struct semroot *root, struct sudog *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		root->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		root->tail = s->prev;
	s->next = s->prev = NULL;
	s->c = NULL;
	atomic_fetch_sub(&root->nwait, 1);
}

/*
 * The first waiter on @addr that we may wake, off the list; root->lock
 * held. A waiter with a deadline whose timer already won is dropped:
 * it takes itself off nothing, finds s->c NULL and returns.
 */
static struct sudog *semdequeue(struct semroot *root,
				_Atomic uint32_t *addr)
{
	struct sudog *s = root->head, *next;

	for (; s; s = next) {
		uint32_t zero = 0;

		next = s->next;
		if (s->addr != (uintptr_t)addr)
			continue;
		semunqueue(root, s);
		/* acq_rel CAS: arbitrates with the deadline timer (timer.h). */
		if (s->is_select &&
		    !atomic_compare_exchange_strong_explicit(&s->g->selectdone,
				&zero, 1, memory_order_acq_rel,
				memory_order_acquire))
			continue;
		return s;
	}
	return NULL;
}

struct sempark {
	struct semroot *root;
	struct dltimer *dt;
	int64_t deadline;
};

static bool semparkcommit(struct g *gp, void *arg)
{
	struct sempark *sp = arg;

	/* Arm before unlocking: see timer.h, step 3. */
	if (sp->dt)
		dltimer_arm(sp->dt, gp, sp->deadline);
	unlock(&sp->root->lock);
	return true;
}

/*
 * semenqueue() - take a token, or queue s for one: true if taken; else
 * s is queued and root->lock is still held (the caller parks, which
 * drops it). The waiter counts itself before its last look (the Dekker
 * pair, top of file).
 */
static bool semenqueue(struct semroot *root, _Atomic uint32_t *addr,
		       struct sudog *s, bool lifo)
{
	lock(&root->lock);
	atomic_fetch_add(&root->nwait, 1);
	if (cansemacquire(addr)) {
		atomic_fetch_sub(&root->nwait, 1);
		unlock(&root->lock);
		return true;
	}
	semqueue(root, s, lifo);
	return false;
}

/*
 * semacquire_thread() - semacquire_until() for a thread that is not a G
 * (a pthread of the program, or any thread while no runtime runs): it
 * queues a sudog with no G and sleeps on the note in it, blocking the
 * thread, as the kgo sync types promise such threads (kgo.h). The waker
 * takes the sudog off the list under root->lock and then wakes the note
 * (sudog_ready); a sleeper whose deadline passed looks under the same
 * lock: still queued, it leaves; already taken, its wakeup is on the
 * way and it waits for it, since the waker still touches the sudog.
 */
static int semacquire_thread(_Atomic uint32_t *addr, bool lifo,
			     int64_t deadline)
{
	struct semroot *root = semroot(addr);
	struct note note;

	for (;;) {
		struct sudog s = {
			.addr = (uintptr_t)addr,
			.note = &note,
		};

		if (deadline > 0 && nanotime() >= deadline)
			return -ETIMEDOUT;
		noteclear(&note);
		if (semenqueue(root, addr, &s, lifo))
			return 0;
		unlock(&root->lock);
		if (!notesleep_until(&note, deadline)) {
			lock(&root->lock);
			if (s.c) {
				semunqueue(root, &s);
				unlock(&root->lock);
				return cansemacquire(addr) ? 0 : -ETIMEDOUT;
			}
			unlock(&root->lock);
			notesleep(&note);
		}
		if (s.ticket != 0 || cansemacquire(addr))
			return 0;
	}
}

int semacquire_until(_Atomic uint32_t *addr, bool lifo, enum waitreason r,
		     int64_t deadline)
{
	struct semroot *root;
	struct g *gp;

	if (cansemacquire(addr))
		return 0;
	if (deadline == 0)
		return -ETIMEDOUT;
	gp = getg();
	if (!gp)
		return semacquire_thread(addr, lifo, deadline);
	root = semroot(addr);

	for (;;) {
		struct sudog s = {
			.g = gp,
			.addr = (uintptr_t)addr,
			.is_select = deadline > 0,
		};
		struct dltimer dt;
		struct sempark sp = {
			.root = root,
			.dt = deadline > 0 ? &dt : NULL,
			.deadline = deadline,
		};

		if (deadline > 0 && nanotime() >= deadline)
			return -ETIMEDOUT;
		if (semenqueue(root, addr, &s, lifo))
			return 0;
		gopark(semparkcommit, &sp, r);

		if (deadline > 0) {
			bool timedout = dltimer_stop(&dt);

			if (timedout) {
				lock(&root->lock);
				if (s.c)
					semunqueue(root, &s);
				unlock(&root->lock);
			}
			/* Nobody can try the CAS any more (timer.h, 5). */
			atomic_store_explicit(&gp->selectdone, 0,
					      memory_order_relaxed);
			if (timedout)
				return cansemacquire(addr) ? 0 : -ETIMEDOUT;
		}
		if (s.ticket != 0 || cansemacquire(addr))
			return 0;
	}
}

void semacquire(_Atomic uint32_t *addr, bool lifo, enum waitreason r)
{
	semacquire_until(addr, lifo, r, -1);
}

void semrelease(_Atomic uint32_t *addr, bool handoff)
{
	struct semroot *root = semroot(addr);
	struct sudog *s;
	struct g *wg;
	bool handed = false;

	atomic_fetch_add(addr, 1);
	/* Nobody waiting: done, with one atomic add and one load. */
	if (atomic_load(&root->nwait) == 0)
		return;
	lock(&root->lock);
	if (atomic_load_explicit(&root->nwait, memory_order_relaxed) == 0) {
		unlock(&root->lock);
		return;
	}
	s = semdequeue(root, addr);
	unlock(&root->lock);
	if (!s)
		return;
	/* s stays valid until it is readied: its G is parked (or its
	 * thread asleep) and only we may wake it. Take the token for it
	 * if handing off. */
	if (handoff && cansemacquire(addr)) {
		s->ticket = 1;
		handed = true;
	}
	wg = s->g;
	sudog_ready(s);
	/* Handing off: let the waiter run now, on our P (it is runnext),
	 * before any barging G can look at the lock. */
	if (handed && wg && getg())
		kgo_yield();
}
