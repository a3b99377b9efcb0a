/* SPDX-License-Identifier: MIT */
/*
 * timer.h - deadlines for parked Gs (timer.c), shared by chan.c,
 * select.c and sema.c.
 *
 * A G that parks with a deadline can be woken by two parties: whoever
 * completes its wait (a channel operation, close, a semrelease) and the
 * deadline's timer. Exactly one of them may call goready(). They decide
 * with one CAS of gp->selectdone from 0 to 1, as Go's select does: the
 * wait lists mark such a G's sudogs is_select, and every waker that
 * takes one off a list tries the CAS first and drops the sudog if it
 * loses. The timer's fn tries the same CAS.
 *
 * The protocol, for a G with a deadline:
 *
 *	1. gp->selectdone is 0 (it always is between waits);
 *	2. under the wait list's lock: queue the sudog(s), is_select set;
 *	3. gopark(); in the unlockf, on g0, with the G switched out and the
 *	   lists still locked: dltimer_arm(), then unlock the lists;
 *	4. after waking: dltimer_stop(), which says whether the timer won
 *	   and returns only when the timer's fn can no longer touch the
 *	   dltimer or the G (it may still be running on another M when the
 *	   G is woken by a channel operation);
 *	5. lock the lists, take the sudog(s) off them if still there, then
 *	   store 0 to gp->selectdone: no party can try the CAS any more.
 *
 * Arming in step 3 rather than before gopark() is what makes it safe for
 * the timer to call goready(): the G is already off its stack. Arming
 * before the lists are unlocked is what makes dltimer_stop() safe: no
 * waker can win before the timer exists.
 */
#ifndef KGO_TIMER_H
#define KGO_TIMER_H

#include "runtime.h"

enum {
	DLT_ARMED = 0,		/* fn has not finished deciding */
	DLT_LOST,		/* fn ran and lost the CAS: another woke gp */
	DLT_WON,		/* fn ran, won the CAS and readied gp */
};

/*
 * struct dltimer - a deadline on a parked G. Lives on the G's stack.
 * @t:		the timer; see timer_add().
 * @gp:		the G; immutable while armed.
 * @state:	DLT_*; fn stores it (release) as its last touch of the
 *		dltimer, dltimer_stop() loads it (acquire).
 */
struct dltimer {
	struct timer t;
	struct g *gp;
	_Atomic uint32_t state;
};

/* Arm for @deadline (> 0). Call on g0 from a gopark unlockf. */
void dltimer_arm(struct dltimer *dt, struct g *gp, int64_t deadline);
/* Disarm after waking. Return: true if the timer won (the wait timed
 * out). On return the timer is done with @dt and with the G. */
bool dltimer_stop(struct dltimer *dt);

#endif /* KGO_TIMER_H */
