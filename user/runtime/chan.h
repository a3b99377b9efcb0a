/* SPDX-License-Identifier: MIT */
/*
 * chan.h - the channel (Go's hchan), shared by chan.c and select.c.
 *
 * A channel is one lock, a circular buffer of dataqsiz elements, and two
 * wait queues of sudogs: Gs parked sending (their sudog's elem points at
 * the value) and Gs parked receiving (elem points where the value goes).
 * A value passes straight from the sender's memory to the receiver's
 * when one of them is parked (no copy through the buffer), and through
 * the buffer otherwise. sendq is non-empty only when the buffer is full,
 * recvq only when it is empty.
 */
#ifndef KGO_CHAN_H
#define KGO_CHAN_H

#include "runtime.h"

/*
 * struct waitq - a FIFO of sudogs, guarded by the channel's lock. Gs in
 * a select (or with a deadline) have is_select sudogs: dequeue() wins
 * their g->selectdone before handing them out, and drops those it
 * loses (timer.h).
 */
struct waitq {
	struct sudog *first, *last;
};

struct kgo_chan {
	struct kgo_lock lock;
	size_t dataqsiz;		/* buffer slots; immutable */
	size_t elemsize;		/* immutable */
	char *buf;			/* dataqsiz * elemsize bytes; lock */
	_Atomic size_t qcount;		/* elements in buf; written under
					 * lock, read without by len (relaxed) */
	size_t sendx, recvx;		/* next slot to fill / to empty; lock */
	struct waitq recvq;		/* parked receivers; lock */
	struct waitq sendq;		/* parked senders; lock */
	bool closed;			/* lock */
};

void waitq_enqueue(struct waitq *q, struct sudog *sg);
struct sudog *waitq_dequeue(struct waitq *q);
/* Take sg off q if it is still there (select losers, timeouts). */
void waitq_remove(struct waitq *q, struct sudog *sg);

/*
 * The four ways a value moves, each with c->lock held; the two that
 * involve a parked G return it, to be goready()'d after the unlock.
 */
struct g *chan_send_direct(struct kgo_chan *c, struct sudog *sg,
			   const void *elem);
struct g *chan_recv_direct(struct kgo_chan *c, struct sudog *sg, void *elem);
void chan_buf_put(struct kgo_chan *c, const void *elem);
void chan_buf_get(struct kgo_chan *c, void *elem);

#endif /* KGO_CHAN_H */
