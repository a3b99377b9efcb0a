// SPDX-License-Identifier: MIT
/*
 * timer.c - per-P timer heaps, deadlines on parked Gs, and kgo_sleep.
 *
 * Every P has a 4-ary min-heap of timers ordered on `when`, guarded by
 * the heap's own lock (not the P's owner: any M may add to, delete from
 * or run any P's heap, which is how the timers of an idle P are still
 * served: the scheduler runs them from whichever M looks). As in Go
 * (src/runtime/time.go) a timer goes on the heap of the P that arms it,
 * so most timers are armed, run and deleted by one M; an arm from a
 * thread without a P goes to allp[0].
 *
 * timers.next mirrors the heap's minimum so that the scheduler can see
 * without the lock whether a heap has work and how long it may sleep.
 * When an arm lowers it, wake_for_timer() makes sure that a sleeping
 * runtime wakes in time: idle Ms sleep in the kernel until the earliest
 * `next` of all Ps, never poll.
 *
 * A timer's fn runs on g0 of the M that runs the heap, with no lock held
 * (so it may goready(), or arm timers), and must not park. Once the heap
 * has popped a timer it no longer touches it: fn, arg and seq are read
 * under the lock before fn is called, so the owner of the struct timer
 * may reuse it as soon as it knows fn is done with its own data.
 *
 * t->pp says whether a timer is armed (non-NULL) and on which heap. It
 * changes only under that heap's lock (and under both locks when heaps
 * are merged), but timer_del() and timer_add() read it first without a
 * lock, so every access is an __atomic one: release on store, acquire
 * on load, the store pairing with the load that decides which lock to
 * take.
 *
 * Lock order: a wait list's lock (channel, sema bucket) -> heap lock ->
 * sched.lock (inside wake_for_timer(), which is called with no heap lock
 * held).
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime.h"
#include "timer.h"

static inline struct p *timer_pp(struct timer *t)
{
	return __atomic_load_n(&t->pp, __ATOMIC_ACQUIRE);
}

static inline void timer_set_pp(struct timer *t, struct p *pp)
{
	__atomic_store_n(&t->pp, pp, __ATOMIC_RELEASE);
}

/* The timer_add()s of heaps gone with their runtime: kgo_stats keeps
 * the counters of the last run. */
static _Atomic uint64_t armed_before;

void timers_init(struct timers *ts)
{
	atomic_store_explicit(&ts->lock.key, 0, memory_order_relaxed);
	ts->heap = NULL;
	ts->len = 0;
	ts->cap = 0;
	atomic_store_explicit(&ts->next, INT64_MAX, memory_order_relaxed);
	atomic_store_explicit(&ts->armed, 0, memory_order_relaxed);
}

/* The runtime is stopping: timers still armed are abandoned (their G
 * is abandoned with them, as kgo_run() documents). Their fn is cleared:
 * that is how the owner of a timer that outlives the runtime (a struct
 * kgo_timer, timer_chan.c) learns that its fn will never run. */
void timers_destroy(struct timers *ts)
{
	int32_t i;

	lock(&ts->lock);
	atomic_fetch_add_explicit(&armed_before, atomic_load_explicit(&ts->armed,
				  memory_order_relaxed), memory_order_relaxed);
	atomic_store_explicit(&ts->armed, 0, memory_order_relaxed);
	for (i = 0; i < ts->len; i++) {
		ts->heap[i]->idx = -1;
		ts->heap[i]->fn = NULL;
		timer_set_pp(ts->heap[i], NULL);
	}
	free(ts->heap);
	ts->heap = NULL;
	ts->len = 0;
	ts->cap = 0;
	atomic_store_explicit(&ts->next, INT64_MAX, memory_order_release);
	unlock(&ts->lock);
}

/* ------------------------------------------------------------------ */
/* The 4-ary heap; every function here wants ts->lock held.           */
/* ------------------------------------------------------------------ */

static inline void heap_set(struct timers *ts, int32_t i, struct timer *t)
{
	ts->heap[i] = t;
	t->idx = i;
}

static void heap_siftup(struct timers *ts, int32_t i)
{
	struct timer *t = ts->heap[i];

	while (i > 0) {
		int32_t parent = (i - 1) / 4;

		if (ts->heap[parent]->when <= t->when)
			break;
		heap_set(ts, i, ts->heap[parent]);
		i = parent;
	}
	heap_set(ts, i, t);
}

static void heap_siftdown(struct timers *ts, int32_t i)
{
	struct timer *t = ts->heap[i];

	for (;;) {
		int32_t c = 4 * i + 1, best = -1, k;
		int64_t bestwhen = t->when;

		for (k = 0; k < 4 && c + k < ts->len; k++) {
			if (ts->heap[c + k]->when < bestwhen) {
				best = c + k;
				bestwhen = ts->heap[best]->when;
			}
		}
		if (best < 0)
			break;
		heap_set(ts, i, ts->heap[best]);
		i = best;
	}
	heap_set(ts, i, t);
}

static void heap_push(struct timers *ts, struct timer *t)
{
	if (ts->len == ts->cap) {
		int32_t ncap = ts->cap ? ts->cap * 2 : 64;
		struct timer **nh = realloc(ts->heap, ncap * sizeof(*nh));

		if (!nh)
			kgo_throw("timer_add: out of memory for the timer heap");
		ts->heap = nh;
		ts->cap = ncap;
	}
	heap_set(ts, ts->len++, t);
	heap_siftup(ts, t->idx);
}

static void heap_remove(struct timers *ts, int32_t i)
{
	struct timer *last;

	if (i < 0 || i >= ts->len)
		kgo_throw("timers: heap index out of range");
	ts->heap[i]->idx = -1;
	last = ts->heap[--ts->len];
	if (i == ts->len)
		return;
	heap_set(ts, i, last);
	heap_siftdown(ts, i);
	heap_siftup(ts, last->idx);
}

/*
 * Republish the minimum. seq_cst, like the store in timer_add(): a new
 * earlier `next` and the scheduler's sleeper_until form a Dekker pair
 * (we store next, then wake_for_timer() loads sleeper_until; an idle M
 * stores sleeper_until, then loads every next), so that either the
 * sleeping M sees the timer or wake_for_timer() sees the sleeper. It
 * also pairs with the acquire loads of timers_run().
 */
static int64_t heap_update_next(struct timers *ts)
{
	int64_t next = ts->len ? ts->heap[0]->when : INT64_MAX;

	atomic_store(&ts->next, next);
	return next;
}

/* ------------------------------------------------------------------ */
/* Arming, disarming, running                                         */
/* ------------------------------------------------------------------ */

void timer_add(struct timer *t, int64_t when)
{
	struct m *mp = getm();
	struct p *pp = mp ? mp->p : NULL;
	struct timers *ts;
	int64_t old;

	if (timer_pp(t))
		kgo_throw("timer_add: timer already armed");
	if (!pp)
		pp = sched.allp ? sched.allp[0] : NULL;
	if (!pp)
		kgo_throw("timer_add: no P to hold the timer");
	ts = &pp->timers;

	lock(&ts->lock);
	/* Counted under the lock: a plain add, no shared line. */
	atomic_store_explicit(&ts->armed, atomic_load_explicit(&ts->armed,
			      memory_order_relaxed) + 1, memory_order_relaxed);
	t->when = when;
	heap_push(ts, t);
	timer_set_pp(t, pp);
	old = atomic_load_explicit(&ts->next, memory_order_relaxed);
	if (when < old)
		atomic_store(&ts->next, when);	/* seq_cst: heap_update_next() */
	unlock(&ts->lock);

	if (when < old)
		wake_for_timer(when);
}

bool timer_del(struct timer *t)
{
	for (;;) {
		struct p *pp = timer_pp(t);
		struct timers *ts;

		if (!pp)
			return false;
		ts = &pp->timers;
		lock(&ts->lock);
		if (timer_pp(t) != pp) {
			/* Popped, or moved to another heap: look again. */
			unlock(&ts->lock);
			continue;
		}
		if (t->idx < 0 || t->idx >= ts->len || ts->heap[t->idx] != t)
			kgo_throw("timer_del: timer not where its index says");
		heap_remove(ts, t->idx);
		timer_set_pp(t, NULL);
		heap_update_next(ts);
		unlock(&ts->lock);
		return true;
	}
}

int64_t timers_run(struct p *pp, int64_t now)
{
	struct timers *ts = &pp->timers;
	int64_t next;

	/* Acquire: pairs with heap_update_next()/timer_add()'s release. A
	 * stale (too late) value only delays us until the next look, and
	 * timer_add() calls wake_for_timer() for a new earliest timer. */
	next = atomic_load_explicit(&ts->next, memory_order_acquire);
	if (next > now)
		return next;

	lock(&ts->lock);
	while (ts->len > 0 && ts->heap[0]->when <= now) {
		struct timer *t = ts->heap[0];
		void (*fn)(void *, uint64_t) = t->fn;
		void *arg = t->arg;
		uint64_t seq = t->seq;

		heap_remove(ts, 0);
		heap_update_next(ts);
		/* From here on t belongs to its owner again. */
		timer_set_pp(t, NULL);
		unlock(&ts->lock);
		fn(arg, seq);
		lock(&ts->lock);
	}
	next = heap_update_next(ts);
	unlock(&ts->lock);
	return next;
}

void timers_move(struct p *from, struct p *to)
{
	struct timers *fs = &from->timers, *ts = &to->timers;
	struct timers *first = fs < ts ? fs : ts, *second = fs < ts ? ts : fs;
	int64_t old, next;
	int32_t i;

	if (from == to)
		return;
	/* Two heap locks: in address order, the only place that nests them. */
	lock(&first->lock);
	lock(&second->lock);
	old = atomic_load_explicit(&ts->next, memory_order_relaxed);
	for (i = 0; i < fs->len; i++) {
		struct timer *t = fs->heap[i];

		heap_push(ts, t);
		timer_set_pp(t, to);
	}
	fs->len = 0;
	heap_update_next(fs);
	next = heap_update_next(ts);
	unlock(&second->lock);
	unlock(&first->lock);

	if (next < old)
		wake_for_timer(next);
}

void timers_stats(struct kgo_stats *st)
{
	uint64_t n = atomic_load_explicit(&armed_before, memory_order_relaxed);
	int i;

	for (i = 0; sched.running && i < sched.gomaxprocs; i++)
		n += atomic_load_explicit(&sched.allp[i]->timers.armed,
					  memory_order_relaxed);
	st->timers_armed = n;
}

/* ------------------------------------------------------------------ */
/* Deadlines on parked Gs (timer.h has the protocol)                  */
/* ------------------------------------------------------------------ */

static void dltimer_fire(void *arg, uint64_t seq)
{
	struct dltimer *dt = arg;
	struct g *gp = dt->gp;
	uint32_t zero = 0;

	(void)seq;
	/* The CAS only arbitrates with the wait lists' CAS (dequeue):
	 * nothing is read after it that the other party wrote. */
	if (atomic_compare_exchange_strong_explicit(&gp->selectdone, &zero, 1,
			memory_order_acq_rel, memory_order_acquire)) {
		/* Release: pairs with dltimer_stop()'s acquire. gp is still
		 * parked (only we may ready it), so gp stays valid. */
		atomic_store_explicit(&dt->state, DLT_WON, memory_order_release);
		goready(gp);
	} else {
		/* Our last touch of dt: the G may return once it sees it. */
		atomic_store_explicit(&dt->state, DLT_LOST, memory_order_release);
	}
}

void dltimer_arm(struct dltimer *dt, struct g *gp, int64_t deadline)
{
	dt->gp = gp;
	atomic_store_explicit(&dt->state, DLT_ARMED, memory_order_relaxed);
	dt->t.fn = dltimer_fire;
	dt->t.arg = dt;
	dt->t.seq = 0;
	dt->t.idx = -1;
	timer_set_pp(&dt->t, NULL);
	timer_add(&dt->t, deadline);
}

bool dltimer_stop(struct dltimer *dt)
{
	uint32_t st;
	int spins = 0;

	if (timer_del(&dt->t))
		return false;
	/* Popped: fn has run or is about to. Wait until it has decided;
	 * that is a few instructions unless its M lost its CPU. Acquire
	 * pairs with dltimer_fire()'s release. */
	while ((st = atomic_load_explicit(&dt->state,
					  memory_order_acquire)) == DLT_ARMED) {
		if (++spins < 100)
			cpu_relax();
		else
			kgo_yield();
	}
	return st == DLT_WON;
}

/* ------------------------------------------------------------------ */
/* Time for users                                                     */
/* ------------------------------------------------------------------ */

int64_t kgo_now(void)
{
	return nanotime();
}

struct sleep_arg {
	struct timer t;
	int64_t deadline;
};

/* The timer is the only party that readies a sleeping G, so it needs
 * no arbitration and no dltimer: after goready() it never looks at the
 * sleeper's stack again. */
static void sleep_fire(void *arg, uint64_t seq)
{
	(void)seq;
	goready(arg);
}

static bool sleep_park(struct g *gp, void *arg)
{
	struct sleep_arg *sa = arg;

	(void)gp;
	timer_add(&sa->t, sa->deadline);
	return true;
}

int kgo_sleep_until(int64_t deadline)
{
	struct g *gp = getg();
	struct sleep_arg sa = { .deadline = deadline };

	if (!gp)
		return -EPERM;
	if (deadline == 0)
		return 0;
	if (deadline < 0) {
		/* Forever, as the deadline convention says: only a
		 * deadlock report or the end of kgo_run() ends it. */
		for (;;)
			gopark(NULL, NULL, WAIT_SLEEP);
	}
	if (deadline <= nanotime()) {
		kgo_yield();
		return 0;
	}
	sa.t.fn = sleep_fire;
	sa.t.arg = gp;
	sa.t.idx = -1;
	gopark(sleep_park, &sa, WAIT_SLEEP);
	return 0;
}

int kgo_sleep(int64_t ns)
{
	int64_t now;

	if (!getg())
		return -EPERM;
	if (ns <= 0) {
		kgo_yield();
		return 0;
	}
	now = nanotime();
	return kgo_sleep_until(ns > INT64_MAX - now ? INT64_MAX : now + ns);
}
