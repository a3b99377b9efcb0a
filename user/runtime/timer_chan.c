// SPDX-License-Identifier: MIT
/*
 * timer_chan.c - timers as channels: kgo_timer_after, kgo_ticker_make,
 * kgo_after_func (Go's time.NewTimer, NewTicker, AfterFunc), built on
 * the per-P timer heaps (timer.c) and channels (chan.c).
 *
 * A struct kgo_timer holds a struct timer for the heap. Its fn (fire)
 * runs on g0 of whichever M runs the heap: it sends kgo_now() on the
 * channel with a send that never waits (a full channel drops the tick,
 * as Go's sendTime does), re-arms a ticker on the period's grid, or
 * starts kgo_after_func's G (newproc_g0, on g0: kgo_go needs a G).
 *
 * Stop against fire. Once the heap has popped the timer, fire may run
 * at any moment on another M, and timer_del() can no longer stop it.
 * So every arm carries kt->seq in t.seq, and stop and reset bump kt->seq
 * under kt->lock: a fire whose seq is old does nothing. A fire that took
 * kt->lock first has sent already, and the stop that follows takes the
 * value out of the channel (under the same lock, so no fire slips in
 * between): after a stop or reset returns, nothing from before it is
 * received (Go 1.23's guarantee).
 *
 * Freeing against fire. kt->pending counts the arms whose fire has
 * neither run nor been deleted from its heap (the arm adds one; a
 * timer_del() that succeeds, or the fire, takes it back). kgo_timer_free
 * with pending > 0 (a popped fire on its way) marks the timer freed
 * instead, and that fire, its last user, frees it. A timer abandoned by
 * the end of kgo_run never fires: timers_destroy() clears its t.fn,
 * which tells us its pending arm is gone.
 *
 * Lock order: kt->lock -> the channel's lock -> a heap's lock ->
 * sched.lock. fire takes kt->lock with no heap lock held (timers_run
 * drops it around fn).
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime.h"

struct kgo_timer {
	struct timer t;			/* on a heap while armed */
	struct kgo_lock lock;		/* guards what follows */
	struct kgo_chan *c;		/* immutable; NULL for after_func */
	void (*fn)(void *);		/* after_func; immutable */
	void *arg;
	int64_t period;			/* > 0: a ticker */
	int64_t when;			/* of the current arm */
	uint64_t seq;			/* fires of older arms do nothing */
	uint32_t pending;		/* arms not yet fired nor deleted */
	bool active;			/* armed and not fired (a ticker:
					 * until stopped) */
	bool freed;			/* the pending fire frees it */
};

static void fire(void *arg, uint64_t seq);

static bool runtime_running(void)
{
	return __atomic_load_n(&sched.running, __ATOMIC_ACQUIRE) &&
	       sched.allp;
}

/* kt->lock held. */
static void arm(struct kgo_timer *kt, int64_t when)
{
	kt->t.fn = fire;
	kt->t.arg = kt;
	kt->t.seq = kt->seq;
	kt->t.idx = -1;
	kt->when = when;
	kt->pending++;
	kt->active = true;
	timer_add(&kt->t, when);
}

/* kt->lock held: an arm left by an earlier kgo_run never fires. */
static void forget_abandoned(struct kgo_timer *kt)
{
	if (!kt->t.fn) {
		kt->pending = 0;
		kt->active = false;
		kt->t.fn = fire;
	}
}

static void kt_free(struct kgo_timer *kt)
{
	kgo_chan_free(kt->c);
	free(kt);
}

static void fire(void *arg, uint64_t seq)
{
	struct kgo_timer *kt = arg;
	void (*fn)(void *) = NULL;
	void *fnarg = NULL;
	int64_t now, next;

	lock(&kt->lock);
	kt->pending--;
	if (kt->freed) {
		bool last = kt->pending == 0;

		unlock(&kt->lock);
		if (last)
			kt_free(kt);
		return;
	}
	if (seq != kt->seq) {
		unlock(&kt->lock);		/* stopped or reset since */
		return;
	}
	now = nanotime();
	if (kt->period > 0) {
		/* The next tick on the grid; ticks that are already past
		 * (a late fire) are dropped, not sent in a burst. */
		next = kt->when + kt->period;
		if (next <= now)
			next += ((now - next) / kt->period + 1) * kt->period;
		arm(kt, next);
	} else {
		kt->active = false;
	}
	if (kt->c)
		kgo_chan_send_dl(kt->c, &now, 0);	/* full: dropped */
	else {
		fn = kt->fn;
		fnarg = kt->arg;
	}
	/* Our last touch of kt: a stop or free may follow at once. */
	unlock(&kt->lock);
	if (fn && newproc_g0(fn, fnarg))
		kgo_throw("kgo_after_func: out of memory for its G");
}

static struct kgo_timer *kt_make(int64_t ns, int64_t period,
				 void (*fn)(void *), void *arg)
{
	struct kgo_timer *kt;
	int64_t now;

	if (!runtime_running())
		return NULL;
	kt = calloc(1, sizeof(*kt));
	if (!kt)
		return NULL;
	if (!fn) {
		kt->c = kgo_chan_make(sizeof(int64_t), 1);
		if (!kt->c) {
			free(kt);
			return NULL;
		}
	}
	kt->fn = fn;
	kt->arg = arg;
	kt->period = period;
	now = nanotime();
	lock(&kt->lock);
	arm(kt, ns > INT64_MAX - now ? INT64_MAX : now + (ns > 0 ? ns : 0));
	unlock(&kt->lock);
	return kt;
}

struct kgo_timer *kgo_timer_after(int64_t ns)
{
	return kt_make(ns, 0, NULL, NULL);
}

struct kgo_timer *kgo_ticker_make(int64_t period)
{
	if (period <= 0)
		return NULL;
	return kt_make(period, period, NULL, NULL);
}

struct kgo_timer *kgo_after_func(int64_t ns, void (*fn)(void *), void *arg)
{
	if (!fn)
		return NULL;
	return kt_make(ns, 0, fn, arg);
}

struct kgo_chan *kgo_timer_chan(struct kgo_timer *kt)
{
	return kt ? kt->c : NULL;
}

/*
 * stop_locked() - disarm and take out a value sent before now.
 * Return: 1 if it was active or a value was taken out.
 */
static int stop_locked(struct kgo_timer *kt)
{
	int was;

	forget_abandoned(kt);
	was = kt->active;
	kt->active = false;
	kt->seq++;			/* a popped fire now does nothing */
	if (timer_del(&kt->t))
		kt->pending--;
	if (kt->c && kgo_chan_recv_dl(kt->c, NULL, 0) == 0)
		was = 1;
	return was;
}

int kgo_timer_stop(struct kgo_timer *kt)
{
	int was;

	if (!kt)
		return -EINVAL;
	lock(&kt->lock);
	was = stop_locked(kt);
	unlock(&kt->lock);
	return was;
}

static int reset(struct kgo_timer *kt, int64_t ns, int64_t period)
{
	int64_t now;
	int was;

	if (!runtime_running())
		return -EPERM;
	lock(&kt->lock);
	was = stop_locked(kt);
	kt->period = period;
	now = nanotime();
	arm(kt, ns > INT64_MAX - now ? INT64_MAX : now + (ns > 0 ? ns : 0));
	unlock(&kt->lock);
	return was;
}

int kgo_timer_reset(struct kgo_timer *kt, int64_t ns)
{
	if (!kt)
		return -EINVAL;
	return reset(kt, ns, 0);
}

int kgo_ticker_stop(struct kgo_timer *kt)
{
	int r = kgo_timer_stop(kt);

	return r < 0 ? r : 0;
}

int kgo_ticker_reset(struct kgo_timer *kt, int64_t period)
{
	int r;

	if (!kt || period <= 0)
		return -EINVAL;
	r = reset(kt, period, period);
	return r < 0 ? r : 0;
}

void kgo_timer_free(struct kgo_timer *kt)
{
	if (!kt)
		return;
	lock(&kt->lock);
	stop_locked(kt);
	if (kt->pending > 0) {
		kt->freed = true;	/* the popped fire frees it */
		unlock(&kt->lock);
		return;
	}
	unlock(&kt->lock);
	kt_free(kt);
}
