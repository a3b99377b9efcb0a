// SPDX-License-Identifier: MIT
/*
 * select.c - kgo_select(): wait on several channel operations at once
 * (Go's selectgo, src/runtime/select.go, written for C).
 *
 * The algorithm:
 *
 *  1. Two orders over the cases with a channel (NULL channels are never
 *     ready, so they take no part): a random permutation to poll them
 *     in (so the case that runs is uniform among the ready ones), and
 *     the order of their channels' addresses to lock them in (so two
 *     selects never lock two channels in opposite orders; a channel
 *     that appears in several cases is locked once).
 *  2. Lock every channel. Poll in poll order; the first case that can
 *     proceed runs, exactly as chan.c would run it, and wins.
 *  3. None can: -EAGAIN with deadline 0 (Go's default case), -ETIMEDOUT
 *     past the deadline. Otherwise queue one sudog per case on its
 *     channel (is_select: wakers must win g->selectdone first), link
 *     them on gp->waiting in lock order, and park; selparkcommit arms
 *     the deadline timer and then drops the locks.
 *  4. Woken by the one party that won selectdone (a partner, close, or
 *     the timer): stop the timer, lock every channel again, take every
 *     sudog but the winner's off its queue, reset selectdone, unlock.
 *     gp->param is the winning sudog (NULL: the timer won), and the
 *     sudog's ticket field holds its case index.
 *
 * A send case on a closed channel runs (it is reported with closed set,
 * and nothing is sent) rather than failing the select, since C has no
 * panic; a receive from a closed and drained channel runs with closed
 * set and elem zeroed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "timer.h"

#define SELECT_STACK_CASES 8

static inline uintptr_t case_addr(const struct kgo_case *cases, uint32_t i)
{
	return (uintptr_t)cases[i].ch;
}

/* Heap sort of lockorder on channel address: O(n log n) without the
 * allocation qsort() may make, as Go does. */
static void sift_down(const struct kgo_case *cases, uint32_t *lo,
		      int root, int end)
{
	for (;;) {
		int child = 2 * root + 1;
		uint32_t tmp;

		if (child >= end)
			return;
		if (child + 1 < end && case_addr(cases, lo[child]) <
				       case_addr(cases, lo[child + 1]))
			child++;
		if (case_addr(cases, lo[root]) >= case_addr(cases, lo[child]))
			return;
		tmp = lo[root];
		lo[root] = lo[child];
		lo[child] = tmp;
		root = child;
	}
}

static void sort_lockorder(const struct kgo_case *cases, uint32_t *lo, int n)
{
	int i;

	for (i = n / 2 - 1; i >= 0; i--)
		sift_down(cases, lo, i, n);
	for (i = n - 1; i > 0; i--) {
		uint32_t tmp = lo[0];

		lo[0] = lo[i];
		lo[i] = tmp;
		sift_down(cases, lo, 0, i);
	}
}

/* Lock each distinct channel once. Return: how many were locked. */
static int sellock(const struct kgo_case *cases, const uint32_t *lo, int n)
{
	struct kgo_chan *prev = NULL;
	int i, nlocked = 0;

	for (i = 0; i < n; i++) {
		struct kgo_chan *c = cases[lo[i]].ch;

		if (c != prev) {
			lock(&c->lock);
			nlocked++;
		}
		prev = c;
	}
	return nlocked;
}

static void selunlock(const struct kgo_case *cases, const uint32_t *lo, int n)
{
	struct kgo_chan *prev = NULL;
	int i;

	for (i = 0; i < n; i++) {
		struct kgo_chan *c = cases[lo[i]].ch;

		if (c != prev)
			unlock(&c->lock);
		prev = c;
	}
}

struct selpark {
	struct dltimer *dt;
	int64_t deadline;
};

/*
 * Runs on g0 with every channel locked. Arm the timer first (timer.h,
 * step 3), then unlock. As soon as a channel is unlocked, a partner may
 * take its sudogs and wake the G, which then locks the channels in the
 * same order: so read a sudog only while its channel is still locked,
 * and unlock a channel only after its last sudog (they are adjacent in
 * lock order). Nothing here is touched after the last unlock.
 */
static bool selparkcommit(struct g *gp, void *arg)
{
	struct selpark *sp = arg;
	struct kgo_chan *lastc = NULL;
	struct sudog *sg;

	if (sp->dt)
		dltimer_arm(sp->dt, gp, sp->deadline);
	for (sg = gp->waiting; sg; sg = sg->waitlink) {
		if (sg->c != lastc && lastc)
			unlock(&lastc->lock);
		lastc = sg->c;
	}
	if (lastc)
		unlock(&lastc->lock);
	return true;
}

/* No case has a channel: never ready. */
static int select_nothing(int64_t deadline)
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
		gopark(NULL, NULL, WAIT_SELECT_NO_CASES);
}

/*
 * Try case casi, its channel locked; chan.c's rules. Return true if it
 * ran (a partner to ready is added to *list).
 */
static bool select_try(struct kgo_case *cas, struct sudog **list)
{
	struct kgo_chan *c = cas->ch;
	struct sudog *sg;
	int r;

	if (cas->op == KGO_RECV) {
		if (!c->dataqsiz) {
			sg = waitq_dequeue(c, &c->sendq);
			if (sg) {
				chan_recv_direct(c, sg, cas->elem);
				sg->next = *list;
				*list = sg;
				return true;
			}
			if (!c->closed)
				return false;
			r = RING_CLOSED;
		} else {
			/* Behind parked receivers, as in Go: FIFO. */
			r = c->recvq.first ? RING_WAIT :
					     ring_get(c, cas->elem);
			if (r == RING_WAIT)
				return false;
			if (r == RING_OK)
				chan_settle(c, list);	/* a slot is free */
		}
		if (r == RING_CLOSED) {
			if (cas->elem && c->elemsize)
				memset(cas->elem, 0, c->elemsize);
			cas->closed = true;
		}
		return true;
	}
	if (c->closed) {
		cas->closed = true;
		return true;
	}
	sg = waitq_dequeue(c, &c->recvq);
	if (sg) {
		chan_send_direct(c, sg, cas->elem);
		sg->next = *list;
		*list = sg;
		return true;
	}
	return c->dataqsiz && !c->sendq.first &&
	       ring_put(c, cas->elem) == RING_OK;
}

/*
 * Step 2: try the cases in poll order, channels locked. Return the case
 * that ran (every lock dropped, its partner readied), or -1 (still
 * locked).
 */
static int select_poll(struct kgo_case *cases, const uint32_t *poll,
		       const uint32_t *lo, int n)
{
	struct sudog *list = NULL;
	int i;

	for (i = 0; i < n; i++) {
		uint32_t casi = poll[i];

		if (!select_try(&cases[casi], &list))
			continue;
		selunlock(cases, lo, n);
		wake_list(list);
		kgo_checkpreempt();
		return casi;
	}
	return -1;
}

/*
 * Step 3's second look, with every sudog queued: a buffered channel's
 * ring may have changed without its lock before nwait counted us
 * (chan.h). Return the case that ran, everything undone and unlocked,
 * or -1 (still locked, still queued).
 */
static int select_recheck(struct kgo_case *cases, const uint32_t *poll,
			  const uint32_t *lo, int n, struct g *gp)
{
	struct sudog *list = NULL, *s;
	int i, r = RING_WAIT;
	uint32_t casi = 0;

	for (i = 0; i < n && r == RING_WAIT; i++) {
		struct kgo_case *cas;

		casi = poll[i];
		cas = &cases[casi];
		if (!cas->ch->dataqsiz)
			continue;
		r = cas->op == KGO_SEND ? ring_put(cas->ch, cas->elem) :
					  ring_get(cas->ch, cas->elem);
	}
	if (r == RING_WAIT)
		return -1;
	/* Nobody could take our sudogs: we hold every lock and no timer
	 * is armed yet. */
	for (s = gp->waiting; s; s = s->waitlink) {
		struct kgo_case *cas = &cases[s->ticket];

		waitq_remove(cas->ch, cas->op == KGO_SEND ? &cas->ch->sendq :
							    &cas->ch->recvq, s);
	}
	gp->waiting = NULL;
	chan_settle(cases[casi].ch, &list);
	if (r == RING_CLOSED) {
		if (cases[casi].elem && cases[casi].ch->elemsize)
			memset(cases[casi].elem, 0, cases[casi].ch->elemsize);
		cases[casi].closed = true;
	}
	selunlock(cases, lo, n);
	wake_list(list);
	kgo_checkpreempt();
	return casi;
}

int kgo_select(struct kgo_case *cases, int ncases, int64_t deadline)
{
	uint32_t poll_small[SELECT_STACK_CASES], lo_small[SELECT_STACK_CASES];
	struct sudog sg_small[SELECT_STACK_CASES];
	uint32_t *poll = poll_small, *lo = lo_small;
	struct sudog *sgs = sg_small, *sg, **nextp;
	struct selpark sp = { .deadline = deadline };
	struct dltimer dt;
	struct g *gp;
	bool timedout;
	int i, n, ret;

	if (ncases < 0 || (ncases > 0 && !cases))
		return -EINVAL;
	foreign_note();
	for (i = 0, n = 0; i < ncases; i++) {
		if (cases[i].op != KGO_SEND && cases[i].op != KGO_RECV)
			return -EINVAL;
		cases[i].closed = false;
		if (cases[i].ch)
			n++;
	}
	if (n == 0)
		return select_nothing(deadline);
	if (n > SELECT_STACK_CASES) {
		sgs = malloc(n * (sizeof(*sgs) + 2 * sizeof(uint32_t)));
		if (!sgs)
			return -ENOMEM;
		poll = (uint32_t *)(sgs + n);
		lo = poll + n;
	}

	/* Step 1: poll order is a uniform random permutation (inside-out
	 * Fisher-Yates); lock order is by channel address. */
	for (i = 0, n = 0; i < ncases; i++) {
		uint32_t j;

		if (!cases[i].ch)
			continue;
		j = fastrandn(n + 1);
		poll[n] = poll[j];
		poll[j] = i;
		lo[n] = i;
		n++;
	}
	sort_lockorder(cases, lo, n);

	/* Step 2. */
again:
	sellock(cases, lo, n);
	ret = select_poll(cases, poll, lo, n);
	if (ret >= 0)
		goto out;

	/* Step 3. Not with ret's -1 as "nothing ready": -EPERM is -1 too
	 * (a pthread's select used to park a NULL G). */
	gp = getg();
	if (deadline == 0)
		ret = -EAGAIN;
	else if (deadline > 0 && nanotime() >= deadline)
		ret = -ETIMEDOUT;
	else if (!gp)
		ret = -EPERM;
	if (deadline == 0 || ret == -ETIMEDOUT || !gp) {
		selunlock(cases, lo, n);
		goto out;
	}

	gp->param = NULL;
	nextp = &gp->waiting;
	for (i = 0; i < n; i++) {
		uint32_t casi = lo[i];
		struct kgo_case *cas = &cases[casi];

		sg = &sgs[i];
		memset(sg, 0, sizeof(*sg));
		sg->g = gp;
		sg->is_select = true;
		sg->elem = cas->elem;
		sg->c = cas->ch;
		sg->ticket = casi;
		*nextp = sg;
		nextp = &sg->waitlink;
		waitq_enqueue(cas->ch, cas->op == KGO_SEND ? &cas->ch->sendq :
							     &cas->ch->recvq, sg);
	}
	*nextp = NULL;
	ret = select_recheck(cases, poll, lo, n, gp);
	if (ret >= 0)
		goto out;
	sp.dt = deadline > 0 ? &dt : NULL;
	gopark(selparkcommit, &sp, WAIT_SELECT);

	/* Step 4. */
	timedout = sp.dt ? dltimer_stop(&dt) : false;
	sellock(cases, lo, n);
	sg = gp->param;
	for (struct sudog *s = gp->waiting; s; s = s->waitlink) {
		struct kgo_case *cas = &cases[s->ticket];

		if (s == sg)
			continue;
		waitq_remove(cas->ch, cas->op == KGO_SEND ? &cas->ch->sendq :
							    &cas->ch->recvq, s);
	}
	gp->waiting = NULL;
	gp->param = NULL;
	/* Every sudog is off its queue and the timer is done: nobody can
	 * try the CAS any more (timer.h, step 5). */
	atomic_store_explicit(&gp->selectdone, 0, memory_order_relaxed);
	selunlock(cases, lo, n);

	if (!sg) {
		if (!timedout)
			kgo_throw("kgo_select: woken with no winning case");
		ret = -ETIMEDOUT;
		goto out;
	}
	if (timedout)
		kgo_throw("kgo_select: a case and the timer both won");
	if (sg->retry) {
		/* A settle lost the ring to a lock-free partner (chan.h). */
		ret = -1;
		goto again;
	}
	ret = (int)sg->ticket;
	/* Woken by close: a receive got a zeroed elem, a send sent nothing. */
	cases[ret].closed = !sg->success;
out:
	if (sgs != sg_small)
		free(sgs);
	return ret;
}
