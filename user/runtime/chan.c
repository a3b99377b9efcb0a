// SPDX-License-Identifier: MIT
/*
 * chan.c - channels (Go's src/runtime/chan.go, written for C).
 *
 * chan.h draws the structure and the lock-free ring of buffered
 * channels. The rules:
 *
 *  send:  closed -> -EPIPE. Buffered, nobody parked: claim a slot in the
 *	   ring without the lock. Else, under the lock: a parked receiver
 *	   -> copy straight into its elem and ready it; room in the ring
 *	   and no sender parked before us -> put; else park on sendq (or
 *	   -EAGAIN / -ETIMEDOUT).
 *  recv:  buffered, nobody parked: take from the ring without the lock;
 *	   closed and drained -> zero elem, -EPIPE. Else, under the lock:
 *	   unbuffered and a parked sender -> take its value straight;
 *	   something in the ring and no receiver parked before us -> get
 *	   (and move a parked sender's value into the freed slot); else
 *	   park on recvq.
 *  close: under the lock, mark closed (and CHAN_CLOSED in tail), give
 *	   what the ring holds to parked receivers, then every other
 *	   parked receiver gets a zeroed elem and success false, every
 *	   parked sender success false (-EPIPE); all are readied after the
 *	   unlock.
 *
 * Whoever completes a parked G's operation takes its sudog off the queue,
 * does the copy, sets gp->param to the sudog and sg->success (or
 * sg->retry), and readies the G after dropping the lock. The sudog lives
 * on the parked G's stack, which stays put until goready(): the dequeue
 * made us its only waker. A thread that is no G waits the same way, its
 * sudog on its own stack with g NULL, asleep on sg->note, woken by
 * sudog_ready() (chan_park_thread).
 *
 * A G parks with gopark(chanparkcommit): c->lock is dropped on g0 once
 * the G is off its stack, so a waker that takes the lock finds it fully
 * parked. With a deadline, chanparkcommit arms the G's dltimer first,
 * and the sudog is is_select so that the channel and the timer settle
 * who wakes it with one CAS (timer.h).
 *
 * Lock order: a channel's lock, then (select) other channels' locks in
 * address order, then a timer heap's lock, then sched.lock. goready() is
 * called without a channel lock held.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "timer.h"

/* ------------------------------------------------------------------ */
/* Wait queues; c->lock held for all of these.                        */
/* ------------------------------------------------------------------ */

/*
 * nwait changes only under c->lock; seq_cst: chan.h, the parker's side
 * of the meeting. Only the lock-free ring reads it, so an unbuffered
 * channel does not keep it. A locked add costs ~6.5 ns on this VM (a
 * loop of lock xadd, AMD EPYC), and a chan_rt round trip made 4 of
 * them: 12 -> 8 locked instructions a round trip (callgrind
 * --dump-instr=yes of build/bench/chan_rt -p 1 -n 100000, lock-prefixed
 * and xchg instructions counted); selftests/bench/run -r 3 chan_rt:
 * P=1 141.9 -> 101.1 ns (Go 336 -> 284 in the same runs).
 */
static inline void nwait_add(struct kgo_chan *c, int d)
{
	if (c->dataqsiz)
		atomic_fetch_add(&c->nwait, (uint32_t)d);
}

void waitq_enqueue(struct kgo_chan *c, struct waitq *q, struct sudog *sg)
{
	nwait_add(c, 1);
	sg->next = NULL;
	sg->prev = q->last;
	if (q->last)
		q->last->next = sg;
	else
		q->first = sg;
	q->last = sg;
}

struct sudog *waitq_dequeue(struct kgo_chan *c, struct waitq *q)
{
	struct sudog *sg;

	while ((sg = q->first) != NULL) {
		uint32_t zero = 0;

		nwait_add(c, -1);
		q->first = sg->next;
		if (q->first)
			q->first->prev = NULL;
		else
			q->last = NULL;
		sg->next = sg->prev = NULL;
		/*
		 * A select (or deadline) G may have been won by another
		 * case or its timer and not yet have taken itself off this
		 * queue (it needs our lock for that). Only the winner of
		 * selectdone wakes it; a loser just drops the sudog, which
		 * waitq_remove() then finds gone. acq_rel: the CAS only
		 * arbitrates; what the winner writes reaches the G through
		 * goready().
		 */
		if (sg->is_select &&
		    !atomic_compare_exchange_strong_explicit(&sg->g->selectdone,
				&zero, 1, memory_order_acq_rel,
				memory_order_acquire))
			continue;
		return sg;
	}
	return NULL;
}

void waitq_remove(struct kgo_chan *c, struct waitq *q, struct sudog *sg)
{
	struct sudog *x = sg->prev, *y = sg->next;

	if (x || y || q->first == sg)
		nwait_add(c, -1);
	if (x) {
		x->next = y;
		if (y)
			y->prev = x;
		else
			q->last = x;
	} else if (y) {
		y->prev = NULL;
		q->first = y;
	} else if (q->first == sg) {
		/* The only one on the queue. */
		q->first = q->last = NULL;
	}
	/* else: already dequeued (and dropped) by someone else. */
	sg->next = sg->prev = NULL;
}

/* ------------------------------------------------------------------ */
/* Moving values; c->lock held.                                       */
/* ------------------------------------------------------------------ */

static inline void elem_copy(void *dst, const void *src, size_t n)
{
	if (!n || !dst)
		return;
	if (!src) {
		memset(dst, 0, n);	/* a NULL send elem sends zeros */
		return;
	}
	/* Word-sized elements inline: the call to memmove was 3.7 % of
	 * perf record of build/bench/chan_buf (8-byte elements). */
	switch (n) {
	case 4:
		memcpy(dst, src, 4);
		break;
	case 8:
		memcpy(dst, src, 8);
		break;
	case 16:
		memcpy(dst, src, 16);
		break;
	default:
		memcpy(dst, src, n);
	}
}

static inline char *ring_slot(const struct kgo_chan *c, uint64_t pos)
{
	uint64_t i;

	if (c->pow2)
		i = pos & c->mask;
	else
		i = pos % c->dataqsiz;

	return c->buf + i * c->stride;
}

static inline _Atomic uint64_t *slot_seq(char *slot)
{
	return (_Atomic uint64_t *)slot;
}

/* A partner claimed the slot and is copying: wait for it. It holds no
 * lock and cannot park, but its thread can be descheduled. */
static void ring_spin(unsigned int *spins)
{
	if (++*spins < 128)
		cpu_relax();
	else
		sched_yield();
}

int ring_put(struct kgo_chan *c, const void *elem)
{
	uint64_t t = atomic_load(&c->tail), pos, s, h;
	unsigned int spins = 0;
	char *slot;

	for (;;) {
		if (t & CHAN_CLOSED)
			return RING_CLOSED;
		pos = t >> 1;
		slot = ring_slot(c, pos);
		s = atomic_load_explicit(slot_seq(slot), memory_order_acquire);
		if (s == 2 * pos) {
			/* seq_cst: chan.h, the claimer's side of the meeting. */
			if (atomic_compare_exchange_weak(&c->tail, &t, t + 2))
				break;
			continue;
		}
		if ((int64_t)(s - 2 * pos) < 0) {
			/* The slot still holds the value of a lap ago: the ring
			 * is full, or that value's receiver is copying it. */
			h = atomic_load(&c->head);
			if ((int64_t)(pos - h) >= (int64_t)c->dataqsiz)
				return RING_WAIT;
			if ((int64_t)(pos - h) >= 0)
				ring_spin(&spins);
		}
		t = atomic_load(&c->tail);
	}
	elem_copy(slot + CHAN_SLOT_HDR, elem, c->elemsize);
	atomic_store_explicit(slot_seq(slot), 2 * pos + 1,
			      memory_order_release);
	return RING_OK;
}

int ring_get(struct kgo_chan *c, void *elem)
{
	uint64_t h = atomic_load(&c->head), s, t, h2;
	unsigned int spins = 0;
	char *slot;

	for (;;) {
		slot = ring_slot(c, h);
		s = atomic_load_explicit(slot_seq(slot), memory_order_acquire);
		if (s == 2 * h + 1) {
			if (atomic_compare_exchange_weak(&c->head, &h, h + 1))
				break;
			continue;
		}
		if ((int64_t)(s - (2 * h + 1)) < 0) {
			/* Not filled yet: empty, or its sender is copying. */
			t = atomic_load(&c->tail);
			if ((t >> 1) == h)
				return (t & CHAN_CLOSED) ? RING_CLOSED : RING_WAIT;
			h2 = atomic_load(&c->head);
			if (h2 == h)
				ring_spin(&spins);
			h = h2;
			continue;
		}
		h = atomic_load(&c->head);
	}
	elem_copy(elem, slot + CHAN_SLOT_HDR, c->elemsize);
	atomic_store_explicit(slot_seq(slot), 2 * (h + c->dataqsiz),
			      memory_order_release);
	return RING_OK;
}

static inline void sudog_done(struct sudog *sg, bool success, bool retry,
			      struct sudog **list)
{
	sg->elem = NULL;
	sg->success = success;
	sg->retry = retry;
	if (sg->g)
		sg->g->param = sg;
	sg->next = *list;	/* off every queue: next is ours */
	*list = sg;
}

void chan_settle(struct kgo_chan *c, struct sudog **list)
{
	struct sudog *sg;
	uint64_t t;
	int r;

	while (c->recvq.first) {
		t = atomic_load(&c->tail);
		if ((t >> 1) == atomic_load(&c->head))
			break;			/* nothing to hand out */
		sg = waitq_dequeue(c, &c->recvq);
		if (!sg)
			break;
		r = ring_get(c, sg->elem);
		if (r == RING_CLOSED)
			elem_copy(sg->elem, NULL, c->elemsize);
		sudog_done(sg, r == RING_OK, r == RING_WAIT, list);
	}
	while (c->sendq.first) {
		t = atomic_load(&c->tail);
		if (t & CHAN_CLOSED)
			break;			/* kgo_chan_close() fails them */
		if ((t >> 1) - atomic_load(&c->head) >= c->dataqsiz)
			break;			/* no free slot */
		sg = waitq_dequeue(c, &c->sendq);
		if (!sg)
			break;
		r = ring_put(c, sg->elem);
		sudog_done(sg, r == RING_OK, r == RING_WAIT, list);
	}
}

void wake_list(struct sudog *list)
{
	/* Read next before the wakeup: the sudog may be gone as soon as
	 * its G (or thread) runs. */
	while (list) {
		struct sudog *next = list->next;

		sudog_ready(list);
		list = next;
	}
}

static void __attribute__((noinline)) chan_kick_slow(struct kgo_chan *c)
{
	struct sudog *list = NULL;

	lock(&c->lock);
	chan_settle(c, &list);
	unlock(&c->lock);
	wake_list(list);
}

/* After a lock-free claim: settle if anyone is parked (chan.h). */
static inline void chan_kick(struct kgo_chan *c)
{
	if (unlikely(atomic_load(&c->nwait)))
		chan_kick_slow(c);
}

void chan_send_direct(struct kgo_chan *c, struct sudog *sg, const void *elem)
{
	elem_copy(sg->elem, elem, c->elemsize);
	sg->elem = NULL;
	sg->success = true;
	if (sg->g)
		sg->g->param = sg;
}

void chan_recv_direct(struct kgo_chan *c, struct sudog *sg, void *elem)
{
	elem_copy(elem, sg->elem, c->elemsize);
	sg->elem = NULL;
	sg->success = true;
	if (sg->g)
		sg->g->param = sg;
}

/* ------------------------------------------------------------------ */
/* Parking                                                            */
/* ------------------------------------------------------------------ */

struct chanpark {
	struct kgo_chan *c;
	struct dltimer *dt;
	int64_t deadline;
};

static bool chanparkcommit(struct g *gp, void *arg)
{
	struct chanpark *cp = arg;

	/* Arm before unlocking: timer.h, step 3. */
	if (cp->dt)
		dltimer_arm(cp->dt, gp, cp->deadline);
	unlock(&cp->c->lock);
	return true;
}

/* chan_park() returns this when woken to try again (chan.h). */
#define CHAN_RETRY 1

/* Is @sg on @q? c->lock held. Dequeued, it has no neighbours and is
 * not first. */
static bool waitq_holds(struct waitq *q, struct sudog *sg)
{
	return sg->prev || sg->next || q->first == sg;
}

/*
 * chan_park_thread() - chan_park for a thread that is no G (a foreign
 * pthread: kgo.h, "Calls from other threads"), its sudog @sg queued on
 * @q with g NULL, c->lock held (dropped here). The thread sleeps on
 * sg->note until a partner or close takes the sudog off the queue,
 * does the copy and wakes it (sudog_ready), exactly as for a G. At the
 * deadline it takes c->lock: still queued, it leaves; already taken,
 * the partner is on its way to wake it and still touches the sudog, so
 * it waits for that wakeup (semacquire_thread's rule, sema.c). The
 * deadlock report: such a thread has set kgo_foreign_seen (foreign_note)
 * or is counted in kgo_foreign_n (kgo_foreign_enter).
 */
static int chan_park_thread(struct kgo_chan *c, struct waitq *q,
			    struct sudog *sg, int64_t deadline)
{
	unlock(&c->lock);
	if (!notesleep_until(sg->note, deadline)) {
		lock(&c->lock);
		if (waitq_holds(q, sg)) {
			waitq_remove(c, q, sg);
			unlock(&c->lock);
			return -ETIMEDOUT;
		}
		unlock(&c->lock);
		notesleep(sg->note);
	}
	if (sg->retry)
		return CHAN_RETRY;
	return sg->success ? 0 : -EPIPE;
}

/*
 * Park on sendq or recvq (c->lock held, dropped on return) until a
 * partner, close or the deadline. A buffered channel's ring is tried
 * once more after the sudog is queued (chan.h). Return: 0 done, -EPIPE
 * closed, -ETIMEDOUT, or CHAN_RETRY.
 */
static int chan_park(struct kgo_chan *c, bool send, struct g *gp,
		     void *elem, int64_t deadline)
{
	struct waitq *q = send ? &c->sendq : &c->recvq;
	struct note note;
	struct sudog sg = {
		.g = gp,
		.elem = elem,
		.c = c,
		.is_select = gp && deadline > 0,
		.note = &note,
	};
	struct dltimer dt;
	struct chanpark cp = {
		.c = c,
		.dt = deadline > 0 ? &dt : NULL,
		.deadline = deadline,
	};

	if (gp)
		gp->param = NULL;
	else
		noteclear(&note);
	waitq_enqueue(c, q, &sg);
	if (c->dataqsiz) {
		struct sudog *list = NULL;
		int r = send ? ring_put(c, elem) : ring_get(c, elem);

		if (r != RING_WAIT) {
			/* Nobody could take sg: we hold the lock and no
			 * timer is armed yet. */
			waitq_remove(c, q, &sg);
			chan_settle(c, &list);
			unlock(&c->lock);
			wake_list(list);
			if (r == RING_CLOSED) {
				if (!send)
					elem_copy(elem, NULL, c->elemsize);
				return -EPIPE;
			}
			return 0;
		}
	}
	if (!gp)
		return chan_park_thread(c, q, &sg, deadline);
	gopark(chanparkcommit, &cp, send ? WAIT_CHAN_SEND : WAIT_CHAN_RECV);

	if (deadline > 0) {
		if (dltimer_stop(&dt)) {
			lock(&c->lock);
			waitq_remove(c, q, &sg);
			unlock(&c->lock);
			/* No party can try the CAS any more (timer.h, 5). */
			atomic_store_explicit(&gp->selectdone, 0,
					      memory_order_relaxed);
			return -ETIMEDOUT;
		}
		atomic_store_explicit(&gp->selectdone, 0, memory_order_relaxed);
	}
	if (gp->param != &sg)
		kgo_throw("chan_park: woken with the wrong sudog");
	gp->param = NULL;
	if (sg.retry)
		return CHAN_RETRY;
	return sg.success ? 0 : -EPIPE;
}

/* Nothing ready: 0 if the caller may wait (a G parks, a thread that is
 * no G sleeps), else what to return. */
static int chan_cannot_wait(int64_t deadline)
{
	if (deadline == 0)
		return -EAGAIN;
	if (deadline > 0 && nanotime() >= deadline)
		return -ETIMEDOUT;
	return 0;
}

/* A NULL channel is never ready, as a nil channel in Go. */
static int chan_nil_wait(int64_t deadline, enum waitreason r)
{
	if (deadline == 0)
		return -EAGAIN;
	if (!getg())
		return -EPERM;
	if (deadline > 0) {
		kgo_sleep_until(deadline);
		return -ETIMEDOUT;
	}
	for (;;)
		gopark(NULL, NULL, r);
}

/* ------------------------------------------------------------------ */
/* The API                                                            */
/* ------------------------------------------------------------------ */

struct kgo_chan *kgo_chan_make(size_t elem_size, size_t cap)
{
	struct kgo_chan *c;
	size_t stride, bytes;
	uint64_t i;

	/* A slot is its seq word and the element, 8-byte aligned. */
	if (elem_size > SIZE_MAX / 2)
		return NULL;
	stride = (CHAN_SLOT_HDR + elem_size + 7) & ~(size_t)7;
	if (cap > (SIZE_MAX / 4 - sizeof(*c)) / stride ||
	    cap > (1ULL << 60))
		return NULL;
	bytes = (sizeof(*c) + cap * stride + 63) & ~(size_t)63;
	c = aligned_alloc(64, bytes);
	if (!c)
		return NULL;
	memset(c, 0, sizeof(*c));
	c->elemsize = elem_size;
	c->dataqsiz = cap;
	c->stride = stride;
	c->buf = c->slots;
	c->pow2 = cap && !(cap & (cap - 1));
	c->mask = cap - 1;
	/*
	 * Consecutive positions sit side by side, several to a cache line.
	 * Striping them over lines instead (so that a sender at k and a
	 * receiver at k + 1 never share one) lost 2.5-3x at P=2 once the
	 * two ends work in batches (ring_wait_room): each item then took a
	 * line of its own from the other CPU. chan_buf -p 2, 3 runs each,
	 * Mitems/s striped | side by side, Intel Xeon under KVM
	 * 2026-12-05: -w 4 19-22 | 50-60; -w 1 16-20 | 55-64; -w 8 20-21 |
	 * 61-66; -c 64 15 | 38-51; -c 4096 20-21 | 51-54; -p 1 33-34 |
	 * 33-35.
	 */
	/* Position i's slot waits for the sender at i. */
	for (i = 0; i < cap; i++)
		atomic_init(slot_seq(ring_slot(c, i)), 2 * i);
	return c;
}

void kgo_chan_free(struct kgo_chan *c)
{
	if (!c)
		return;
	lock(&c->lock);
	if (c->recvq.first || c->sendq.first)
		kgo_fatal("kgo_chan_free: channel still has parked Gs");
	unlock(&c->lock);
	free(c);
}

size_t kgo_chan_len(struct kgo_chan *c)
{
	uint64_t h, t;

	if (!c || !c->dataqsiz)
		return 0;
	/* A snapshot, as len(ch) in Go: head first, so t >= h. */
	h = atomic_load_explicit(&c->head, memory_order_relaxed);
	t = atomic_load_explicit(&c->tail, memory_order_acquire) >> 1;
	return t - h > c->dataqsiz ? c->dataqsiz : t - h;
}

size_t kgo_chan_cap(struct kgo_chan *c)
{
	return c ? c->dataqsiz : 0;
}

/* Under the lock: the lock-free side failed, or someone is parked. */
static int chan_send_slow(struct kgo_chan *c, const void *elem,
			  int64_t deadline)
{
	struct sudog *sg, *list;
	struct g *gp;
	int ret;

again:
	list = NULL;
	lock(&c->lock);
	if (c->closed) {
		unlock(&c->lock);
		return -EPIPE;
	}
	if (c->dataqsiz)
		chan_settle(c, &list);
	sg = waitq_dequeue(c, &c->recvq);
	if (sg) {
		chan_send_direct(c, sg, elem);
		unlock(&c->lock);
		wake_list(list);
		sudog_ready(sg);
		kgo_checkpreempt();
		return 0;
	}
	/* Behind parked senders, as in Go: FIFO. */
	if (c->dataqsiz && !c->sendq.first &&
	    ring_put(c, elem) == RING_OK) {
		unlock(&c->lock);
		wake_list(list);
		kgo_checkpreempt();
		return 0;
	}
	if (list) {
		/* Ready the settled Gs before we park, then look again. */
		unlock(&c->lock);
		wake_list(list);
		goto again;
	}
	gp = getg();
	ret = chan_cannot_wait(deadline);
	if (ret) {
		unlock(&c->lock);
		return ret;
	}
	ret = chan_park(c, true, gp, (void *)elem, deadline);
	if (ret == CHAN_RETRY)
		goto again;
	return ret;
}

/*
 * ring_wait_room() - the ring was full for a sender (@sender) or empty
 * for a receiver. While another P runs (the partner may be running on
 * the other CPU), wait a little before the slow path, which parks, and
 * let a batch build up: until a quarter of the ring is free (filled).
 * The waiter looks every RING_LOOK_PAUSES pauses, not at every slot, so
 * that it does not pull the other end's cache line from under the
 * partner at each of its operations. Returns true to try the ring
 * again; false (take the slow path) when the other end stands still for
 * RING_STILL_NS (no partner running), when a G parks on the channel, or
 * after RING_WAIT_NS: a partner that moves but slowly is better waited
 * for by parking, and the next RING_NOSPIN waits on this channel are
 * skipped, so that a slow partner costs a spin one time in 17. Never
 * for a try (deadline 0), which must fail at once.
 *
 * Only when Gs wait on our own P: parking would hand the P to one of
 * them. With nothing queued here, parking lets the pair meet on one P
 * and take turns on a warm ring; waiting kept a sender and a slow
 * receiver (100 ns of work an item, cap 64) split over two CPUs, and
 * 200k items took 0.09 s instead of 0.056 s.
 *
 * Why: with 4 senders and 4 receivers on 2 Ps (selftests/bench/chan_buf),
 * a G that parked at once on a full (empty) ring gave its P to the next
 * G, often of the same kind; the two CPUs then spent a third of the time
 * both receiving from one end (KGO_TRACE: 47-65 % of the time a sender
 * and a receiver ran at once, 24-33 % two receivers, 10-20 % two
 * senders). Looking at the other end at every slot (256 looks, no
 * batch) made it worse, 19 -> 15 Mitems/s. This wait: 13.8 -> 29.2
 * Mitems/s (medians of 6 alternating runs, `build/bench/chan_buf -p 2`),
 * and -w 2: 10.9-21.5 -> 26.6-33.6, -w 8: 15.7-26.1 -> 28.9-35.7; -w 1
 * and cap 16 unchanged (3 runs each).
 */
#define RING_LOOK_PAUSES	16
#define RING_STILL_NS		(2 * 1000LL)
#define RING_WAIT_NS		(20 * 1000LL)
#define RING_NOSPIN		16

static bool ring_wait_room(struct kgo_chan *c, bool sender)
{
	_Atomic uint64_t *end = sender ? &c->head : &c->tail;
	uint64_t want = c->dataqsiz / 4 ? c->dataqsiz / 4 : 1;
	uint64_t v, v2, t, h, n;
	int64_t start, now, moved;
	uint32_t skip;
	struct m *mp = getm();
	int k;

	/* A pthread (no M) cannot park, so waiting buys it nothing. */
	if (!mp || !mp->p ||
	    atomic_load_explicit(&sched.npidle, memory_order_relaxed) + 1 >=
	    sched.gomaxprocs || runqempty(mp->p))
		return false;
	skip = atomic_load_explicit(&c->nospin, memory_order_relaxed);
	if (skip) {
		atomic_store_explicit(&c->nospin, skip - 1,
				      memory_order_relaxed);
		return false;
	}
	v = atomic_load_explicit(end, memory_order_relaxed);
	start = moved = nanotime();
	for (;;) {
		for (k = 0; k < RING_LOOK_PAUSES; k++)
			cpu_relax();
		if (atomic_load_explicit(&c->nwait, memory_order_relaxed))
			return false;
		now = nanotime();
		v2 = atomic_load_explicit(end, memory_order_relaxed);
		if (v2 == v) {
			if (now - moved >= RING_STILL_NS)
				return false;
		} else {
			v = v2;
			moved = now;
			t = atomic_load_explicit(&c->tail,
						 memory_order_relaxed);
			h = atomic_load_explicit(&c->head,
						 memory_order_relaxed);
			if (t & CHAN_CLOSED)
				return true;
			n = sender ? c->dataqsiz - ((t >> 1) - h) :
				     (t >> 1) - h;
			if ((int64_t)n >= (int64_t)want)
				return true;
		}
		if (now - start >= RING_WAIT_NS) {
			atomic_store_explicit(&c->nospin, RING_NOSPIN,
					      memory_order_relaxed);
			return false;
		}
	}
}

int kgo_chan_send_dl(struct kgo_chan *c, const void *elem, int64_t deadline)
{
	foreign_note();
	if (!c)
		return chan_nil_wait(deadline, WAIT_CHAN_SEND);
	if (c->dataqsiz && !atomic_load_explicit(&c->nwait,
						 memory_order_relaxed)) {
		int r = ring_put(c, elem);

		if (r == RING_WAIT && deadline != 0 &&
		    ring_wait_room(c, true))
			r = ring_put(c, elem);
		if (r == RING_OK) {
			chan_kick(c);
			kgo_checkpreempt();
			return 0;
		}
		if (r == RING_CLOSED)
			return -EPIPE;
	}
	return chan_send_slow(c, elem, deadline);
}

static int chan_recv_slow(struct kgo_chan *c, void *elem, int64_t deadline)
{
	struct sudog *sg, *list;
	struct g *gp;
	int ret, r;

again:
	list = NULL;
	lock(&c->lock);
	if (!c->dataqsiz) {
		if (c->closed) {
			unlock(&c->lock);
			elem_copy(elem, NULL, c->elemsize);
			return -EPIPE;
		}
		sg = waitq_dequeue(c, &c->sendq);
		if (sg) {
			chan_recv_direct(c, sg, elem);
			unlock(&c->lock);
			sudog_ready(sg);
			kgo_checkpreempt();
			return 0;
		}
	} else {
		chan_settle(c, &list);
		/* Behind parked receivers, as in Go: FIFO. */
		r = c->recvq.first ? RING_WAIT : ring_get(c, elem);
		if (r != RING_WAIT) {
			if (r == RING_OK)
				chan_settle(c, &list);	/* a slot is free */
			unlock(&c->lock);
			wake_list(list);
			if (r == RING_CLOSED) {
				elem_copy(elem, NULL, c->elemsize);
				return -EPIPE;
			}
			kgo_checkpreempt();
			return 0;
		}
		if (list) {
			unlock(&c->lock);
			wake_list(list);
			goto again;
		}
	}
	gp = getg();
	ret = chan_cannot_wait(deadline);
	if (ret) {
		unlock(&c->lock);
		return ret;
	}
	/* On -EPIPE close() has zeroed elem already. */
	ret = chan_park(c, false, gp, elem, deadline);
	if (ret == CHAN_RETRY)
		goto again;
	return ret;
}

int kgo_chan_recv_dl(struct kgo_chan *c, void *elem, int64_t deadline)
{
	foreign_note();
	if (!c)
		return chan_nil_wait(deadline, WAIT_CHAN_RECV);
	if (c->dataqsiz && !atomic_load_explicit(&c->nwait,
						 memory_order_relaxed)) {
		int r = ring_get(c, elem);

		if (r == RING_WAIT && deadline != 0 &&
		    ring_wait_room(c, false))
			r = ring_get(c, elem);
		if (r == RING_OK) {
			chan_kick(c);
			kgo_checkpreempt();
			return 0;
		}
		if (r == RING_CLOSED) {
			elem_copy(elem, NULL, c->elemsize);
			return -EPIPE;
		}
	}
	return chan_recv_slow(c, elem, deadline);
}

int kgo_chan_send(struct kgo_chan *c, const void *elem)
{
	return kgo_chan_send_dl(c, elem, -1);
}

int kgo_chan_recv(struct kgo_chan *c, void *elem)
{
	return kgo_chan_recv_dl(c, elem, -1);
}

int kgo_chan_close(struct kgo_chan *c)
{
	struct sudog *sg, *list = NULL;

	if (!c)
		return -EINVAL;
	foreign_note();
	lock(&c->lock);
	if (c->closed) {
		unlock(&c->lock);
		return -EPIPE;
	}
	c->closed = true;
	if (c->dataqsiz) {
		atomic_fetch_or(&c->tail, CHAN_CLOSED);
		/* What the ring holds still goes to parked receivers. */
		chan_settle(c, &list);
	}

	/* Every other receiver gets a zero value and success false... */
	while ((sg = waitq_dequeue(c, &c->recvq)) != NULL) {
		elem_copy(sg->elem, NULL, c->elemsize);
		sudog_done(sg, false, false, &list);
	}
	/* ...and every sender success false: -EPIPE. */
	while ((sg = waitq_dequeue(c, &c->sendq)) != NULL)
		sudog_done(sg, false, false, &list);
	unlock(&c->lock);

	/* Ready them without the lock. */
	wake_list(list);
	return 0;
}
