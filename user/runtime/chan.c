// SPDX-License-Identifier: MIT
/*
 * chan.c - channels (Go's src/runtime/chan.go, written for C).
 *
 * chan.h draws the structure. The rules, all under c->lock:
 *
 *  send:  closed -> -EPIPE; a parked receiver -> copy straight into its
 *	   elem and ready it; room in the buffer -> put; else park on sendq
 *	   (or -EAGAIN / -ETIMEDOUT).
 *  recv:  closed and empty -> zero elem, -EPIPE; a parked sender (so the
 *	   buffer is full, or there is none) -> take the buffer's head and
 *	   put the sender's value at the tail, or take the sender's value
 *	   straight; something buffered -> get; else park on recvq.
 *  close: mark closed; every parked receiver gets a zeroed elem and
 *	   success false, every parked sender success false (-EPIPE); all
 *	   are readied after the unlock.
 *
 * Whoever completes a parked G's operation takes its sudog off the queue,
 * does the copy, sets gp->param to the sudog and sg->success, and readies
 * the G after dropping the lock. The sudog lives on the parked G's stack,
 * which stays put until goready(): the dequeue made us its only waker.
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
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "timer.h"

/* ------------------------------------------------------------------ */
/* Wait queues; c->lock held for all of these.                        */
/* ------------------------------------------------------------------ */

void waitq_enqueue(struct waitq *q, struct sudog *sg)
{
	sg->next = NULL;
	sg->prev = q->last;
	if (q->last)
		q->last->next = sg;
	else
		q->first = sg;
	q->last = sg;
}

struct sudog *waitq_dequeue(struct waitq *q)
{
	struct sudog *sg;

	while ((sg = q->first) != NULL) {
		uint32_t zero = 0;

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

void waitq_remove(struct waitq *q, struct sudog *sg)
{
	struct sudog *x = sg->prev, *y = sg->next;

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

static inline char *chan_slot(struct kgo_chan *c, size_t i)
{
	return c->buf + i * c->elemsize;
}

static inline void elem_copy(void *dst, const void *src, size_t n)
{
	if (!n || !dst)
		return;
	if (src)
		memcpy(dst, src, n);
	else
		memset(dst, 0, n);	/* a NULL send elem sends zeros */
}

struct g *chan_send_direct(struct kgo_chan *c, struct sudog *sg,
			   const void *elem)
{
	struct g *gp = sg->g;

	elem_copy(sg->elem, elem, c->elemsize);
	sg->elem = NULL;
	sg->success = true;
	gp->param = sg;
	return gp;
}

struct g *chan_recv_direct(struct kgo_chan *c, struct sudog *sg, void *elem)
{
	struct g *gp = sg->g;

	if (c->dataqsiz == 0) {
		elem_copy(elem, sg->elem, c->elemsize);
	} else {
		/*
		 * The buffer is full (a sender is parked): take its head,
		 * and the sender's value becomes its tail. The slot is the
		 * same, since a full ring's tail is its head.
		 */
		char *slot = chan_slot(c, c->recvx);

		elem_copy(elem, slot, c->elemsize);
		elem_copy(slot, sg->elem, c->elemsize);
		if (++c->recvx == c->dataqsiz)
			c->recvx = 0;
		c->sendx = c->recvx;
	}
	sg->elem = NULL;
	sg->success = true;
	gp->param = sg;
	return gp;
}

void chan_buf_put(struct kgo_chan *c, const void *elem)
{
	elem_copy(chan_slot(c, c->sendx), elem, c->elemsize);
	if (++c->sendx == c->dataqsiz)
		c->sendx = 0;
	atomic_store_explicit(&c->qcount,
		atomic_load_explicit(&c->qcount, memory_order_relaxed) + 1,
		memory_order_relaxed);
}

void chan_buf_get(struct kgo_chan *c, void *elem)
{
	elem_copy(elem, chan_slot(c, c->recvx), c->elemsize);
	if (++c->recvx == c->dataqsiz)
		c->recvx = 0;
	atomic_store_explicit(&c->qcount,
		atomic_load_explicit(&c->qcount, memory_order_relaxed) - 1,
		memory_order_relaxed);
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

/*
 * Park on q (c->lock held, dropped on return) until a partner, close or
 * the deadline. Return: 0 done, -EPIPE closed, -ETIMEDOUT.
 */
static int chan_park(struct kgo_chan *c, struct waitq *q, struct g *gp,
		     void *elem, int64_t deadline, enum waitreason r)
{
	struct sudog sg = {
		.g = gp,
		.elem = elem,
		.c = c,
		.is_select = deadline > 0,
	};
	struct dltimer dt;
	struct chanpark cp = {
		.c = c,
		.dt = deadline > 0 ? &dt : NULL,
		.deadline = deadline,
	};

	gp->param = NULL;
	waitq_enqueue(q, &sg);
	gopark(chanparkcommit, &cp, r);

	if (deadline > 0) {
		if (dltimer_stop(&dt)) {
			lock(&c->lock);
			waitq_remove(q, &sg);
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
	return sg.success ? 0 : -EPIPE;
}

/* Nothing ready: 0 if the caller may park, else what to return. */
static int chan_cannot_wait(struct g *gp, int64_t deadline)
{
	if (deadline == 0)
		return -EAGAIN;
	if (deadline > 0 && nanotime() >= deadline)
		return -ETIMEDOUT;
	if (!gp)
		return -EPERM;		/* only a G can park */
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
	size_t bytes, hdr = (sizeof(*c) + 15) & ~(size_t)15;

	if (elem_size && cap > (SIZE_MAX - hdr) / elem_size)
		return NULL;
	bytes = elem_size * cap;
	c = calloc(1, hdr + bytes);
	if (!c)
		return NULL;
	c->elemsize = elem_size;
	c->dataqsiz = cap;
	c->buf = (char *)c + hdr;
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
	/* Relaxed: a snapshot, as len(ch) in Go. */
	return c ? atomic_load_explicit(&c->qcount, memory_order_relaxed) : 0;
}

size_t kgo_chan_cap(struct kgo_chan *c)
{
	return c ? c->dataqsiz : 0;
}

int kgo_chan_send_dl(struct kgo_chan *c, const void *elem, int64_t deadline)
{
	struct sudog *sg;
	struct g *gp;
	int ret;

	if (!c)
		return chan_nil_wait(deadline, WAIT_CHAN_SEND);

	lock(&c->lock);
	if (c->closed) {
		unlock(&c->lock);
		return -EPIPE;
	}
	sg = waitq_dequeue(&c->recvq);
	if (sg) {
		gp = chan_send_direct(c, sg, elem);
		unlock(&c->lock);
		goready(gp);
		kgo_checkpreempt();
		return 0;
	}
	if (atomic_load_explicit(&c->qcount, memory_order_relaxed) <
	    c->dataqsiz) {
		chan_buf_put(c, elem);
		unlock(&c->lock);
		kgo_checkpreempt();
		return 0;
	}
	gp = getg();
	ret = chan_cannot_wait(gp, deadline);
	if (ret) {
		unlock(&c->lock);
		return ret;
	}
	return chan_park(c, &c->sendq, gp, (void *)elem, deadline,
			 WAIT_CHAN_SEND);
}

int kgo_chan_recv_dl(struct kgo_chan *c, void *elem, int64_t deadline)
{
	struct sudog *sg;
	struct g *gp;
	int ret;

	if (!c)
		return chan_nil_wait(deadline, WAIT_CHAN_RECV);

	lock(&c->lock);
	if (c->closed &&
	    atomic_load_explicit(&c->qcount, memory_order_relaxed) == 0) {
		unlock(&c->lock);
		elem_copy(elem, NULL, c->elemsize);
		return -EPIPE;
	}
	sg = waitq_dequeue(&c->sendq);
	if (sg) {
		gp = chan_recv_direct(c, sg, elem);
		unlock(&c->lock);
		goready(gp);
		kgo_checkpreempt();
		return 0;
	}
	if (atomic_load_explicit(&c->qcount, memory_order_relaxed) > 0) {
		chan_buf_get(c, elem);
		unlock(&c->lock);
		kgo_checkpreempt();
		return 0;
	}
	gp = getg();
	ret = chan_cannot_wait(gp, deadline);
	if (ret) {
		unlock(&c->lock);
		return ret;
	}
	/* On -EPIPE close() has zeroed elem already. */
	return chan_park(c, &c->recvq, gp, elem, deadline, WAIT_CHAN_RECV);
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
	lock(&c->lock);
	if (c->closed) {
		unlock(&c->lock);
		return -EPIPE;
	}
	c->closed = true;

	/* Every receiver gets a zero value and success false... */
	while ((sg = waitq_dequeue(&c->recvq)) != NULL) {
		elem_copy(sg->elem, NULL, c->elemsize);
		sg->elem = NULL;
		sg->success = false;
		sg->g->param = sg;
		sg->next = list;	/* off every queue: next is ours */
		list = sg;
	}
	/* ...and every sender success false: -EPIPE. */
	while ((sg = waitq_dequeue(&c->sendq)) != NULL) {
		sg->elem = NULL;
		sg->success = false;
		sg->g->param = sg;
		sg->next = list;
		list = sg;
	}
	unlock(&c->lock);

	/* Ready them without the lock. Read next before goready(): the
	 * sudog may be gone as soon as its G runs. */
	while (list) {
		struct g *gp = list->g;

		sg = list->next;
		goready(gp);
		list = sg;
	}
	return 0;
}
