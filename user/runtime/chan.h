/* SPDX-License-Identifier: MIT */
/*
 * chan.h - the channel (Go's hchan), shared by chan.c and select.c.
 *
 * A channel is one lock, two wait queues of sudogs (Gs parked sending:
 * their sudog's elem points at the value; Gs parked receiving: elem
 * points where the value goes) and, for a buffered channel, a ring of
 * dataqsiz slots that senders and receivers use without the lock.
 *
 * The ring is Vyukov's bounded MPMC queue. Each slot holds a sequence
 * word and one element. tail counts the values ever claimed by senders
 * (shifted left one bit; bit 0 is CHAN_CLOSED), head those claimed by
 * receivers. The slot for position pos is pos mod dataqsiz; its seq
 * says whose turn it is: 2 pos (a sender at pos may fill it), 2 pos + 1
 * (filled: a receiver at pos may empty it), 2 (pos + dataqsiz)
 * (emptied: the sender one lap later may fill it). Vyukov's pos, pos + 1,
 * pos + size cannot tell "filled" from "free for the next lap" when the
 * size is 1; doubling can. A sender claims pos with a CAS on tail,
 * copies the value in and publishes; a receiver claims with a CAS on
 * head, copies out and releases. Between claim and publish a partner waiting on that slot
 * spins (a few ns: the claimer holds no lock and does not park).
 *
 * Why: with one lock, four senders and four receivers on two CPUs
 * spent 38 % of their time in lock_slow and most of the rest moving the
 * lock's cache line (perf record of build/bench/chan_buf, 2026-11-22);
 * with the ring, senders meet on tail and receivers on head.
 *
 * Parking still goes through the lock. The two sides meet through
 * nwait, the number of sudogs on either queue:
 *
 *  - A G that finds the ring full (empty) takes the lock, queues its
 *    sudog (nwait++), then tries the ring once more before it parks.
 *  - A G that changed the ring without the lock (claimed a position
 *    with its CAS) then loads nwait; if it is not 0 it takes the lock
 *    and settles: moves values from the ring to parked receivers, and
 *    parked senders' values into free slots, in queue order.
 *
 * The CAS, the nwait++ and both loads are seq_cst: either the parker's
 * second try sees the claim (and waits for the value), or the claimer
 * sees nwait and settles. Nothing is stranded. (The lock-free paths
 * start only when nwait is 0, so the claimer's settle is needed only
 * for a G that queued between that look and the claim, a window of
 * nanoseconds; the parker's second try is what the test
 * sync_chan_test pingpong_cap1_p2 catches missing, in every run.) A settle that has taken
 * a sudog off its queue and then finds the ring changed under it (a
 * lock-free partner was faster) wakes that G with retry set: it tries
 * its whole operation again, invisibly to the program.
 *
 * Fairness: the lock-free paths are taken only while nwait is 0. Once
 * a G parks, new Gs queue behind it under the lock, as in Go, and a
 * sender finding a parked receiver hands its value over directly.
 *
 * Close sets CHAN_CLOSED in tail with the lock held: no sender can
 * claim a position after it, and a receiver that finds head equal to
 * tail's position with the bit set knows the channel is drained (a
 * sender that claimed before the close is waited for, not lost).
 *
 * Unbuffered channels have no ring and do everything under the lock.
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

#define CHAN_CLOSED	1ULL	/* bit 0 of tail */
#define CHAN_SLOT_HDR	8	/* the slot's seq word, then the element */

struct kgo_chan {
	/* Immutable after kgo_chan_make. */
	size_t dataqsiz;		/* ring slots; 0: unbuffered */
	size_t elemsize;
	size_t stride;			/* bytes per slot */
	uint64_t mask;			/* dataqsiz - 1 when a power of two */
	bool pow2;
	char *buf;			/* the slots */

	/* The parking side. */
	_Alignas(64) struct kgo_lock lock;
	struct waitq recvq;		/* parked receivers; lock */
	struct waitq sendq;		/* parked senders; lock */
	bool closed;			/* lock (also CHAN_CLOSED in tail) */
	_Atomic uint32_t nwait;		/* sudogs on recvq + sendq; written
					 * under lock, read by the lock-free
					 * paths (seq_cst: chan.h above);
					 * buffered channels only, 0 on an
					 * unbuffered one */
	_Atomic uint32_t nospin;	/* ring waits to skip after one that
					 * timed out (chan.c,
					 * ring_wait_room); relaxed, a hint */

	/* The ring's two ends, each on its own cache line. */
	_Alignas(64) _Atomic uint64_t tail;	/* senders' CAS; pos << 1 |
						 * CHAN_CLOSED */
	_Alignas(64) _Atomic uint64_t head;	/* receivers' CAS */
	_Alignas(64) char slots[];
};

/* c->lock held; these keep c->nwait. */
void waitq_enqueue(struct kgo_chan *c, struct waitq *q, struct sudog *sg);
struct sudog *waitq_dequeue(struct kgo_chan *c, struct waitq *q);
/* Take sg off q if it is still there (select losers, timeouts). */
void waitq_remove(struct kgo_chan *c, struct waitq *q, struct sudog *sg);

/* What the lock-free ring operations return. */
enum { RING_OK, RING_WAIT /* full, or empty */, RING_CLOSED };

/* The ring (buffered channels only); any thread, with or without the
 * lock. ring_put returns RING_CLOSED once CHAN_CLOSED is set, ring_get
 * once the channel is closed and drained. */
int ring_put(struct kgo_chan *c, const void *elem);
int ring_get(struct kgo_chan *c, void *elem);

/*
 * c->lock held, buffered channel: hand what the ring holds to parked
 * receivers and free slots to parked senders, in queue order. The Gs
 * whose operation ended are pushed on *list (linked through sudog
 * next), to be readied with wake_list() after the unlock.
 */
void chan_settle(struct kgo_chan *c, struct sudog **list);
void wake_list(struct sudog *list);

/*
 * Unbuffered channel, or a parked receiver and so an empty ring; c->lock
 * held. The waiter of @sg (a G, or a thread that is no G) is to be
 * woken with sudog_ready(sg) after the unlock.
 */
void chan_send_direct(struct kgo_chan *c, struct sudog *sg, const void *elem);
void chan_recv_direct(struct kgo_chan *c, struct sudog *sg, void *elem);

#endif /* KGO_CHAN_H */
