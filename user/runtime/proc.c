// SPDX-License-Identifier: MIT
/*
 * proc.c - the scheduler: Gs, Ms and Ps.
 *
 * Goroutine scheduler
 * ===================
 *
 * As in Go (src/runtime/proc.go, which is the reference for every rule
 * this file does not change), three kinds of object:
 *
 *   G - a goroutine: a stackful coroutine with its own stack slot.
 *   M - a machine: an OS thread. It runs Gs, or the scheduler on its own
 *       thread stack (g0), or sleeps.
 *   P - a processor: the right to run Gs, and the local state that goes
 *       with it (run queue, free Gs, timers). There are gomaxprocs Ps; an
 *       M must hold a P to run a G, so at most gomaxprocs Gs run at once.
 *
 *      +-----------------------+     +-----------------------+
 *      | P0 runnext: G7        |     | P1 runnext: -         |
 *      |    runq: G3 G4 G5 ... |     |    runq: G9           |
 *      +-----------+-----------+     +-----------+-----------+
 *                  | held by                     | held by
 *             +----+----+                   +----+----+    +----+ idle Ms,
 *             |   M0    |  runs G1          |   M1    |    | M2 | parked on
 *             +---------+                   +---------+    +----+ a futex
 *      global runq (sched.lock): G20 G21 ...      timers: per-P heaps
 *
 * Switching: a G never switches to another G directly. It switches to
 * its M's g0 context (mcall), and g0 decides what to do with the G it
 * left (park it, queue it, free it) and which G to run next (schedule).
 * This is what makes parking safe: by the time a waker can see the G on
 * a wait list, the G is off its stack. It costs two context switches a
 * switch; each is a few ns.
 *
 * Parking (gopark/goready)
 * ------------------------
 * A G that must wait puts a record of itself (a sudog, or its own
 * pointer) on the wait list of the thing it waits for, holding that
 * thing's lock, then calls gopark(unlockf, lock). On g0, its status
 * becomes G_WAITING and unlockf releases the lock. A waker takes the lock,
 * takes the G off the list and calls goready(gp), which puts it in the
 * waker's P's runnext: it runs next, inheriting the rest of the time
 * slice (a ping-pong pair then stays on one P, cache-hot). goready also
 * accepts a G that is still on its way off its stack (status still
 * G_RUNNING after the waker saw it: a timer firing early); it waits for
 * the switch to finish.
 *
 * Worker thread parking/unparking (Go's protocol, kept)
 * -----------------------------------------------------
 * We want enough running Ms to use the Ps, but not to burn CPU on Ms
 * looking for work. An M looking for work is "spinning" (counted in
 * sched.nmspinning). Rule: when work appears (a G is readied or
 * created) and there is an idle P but no spinning M, wake one M to spin
 * (wakep). A spinning M that finds work stops spinning and, if it was
 * the last spinner, wakes another (resetspinning), so a burst of work is
 * taken up by as many Ms as it needs, one at a time. A spinning M that
 * finds nothing releases its P, then looks at every run queue once more
 * before it sleeps, which closes the race with a wakep that saw it
 * spinning and so woke nobody. At most half the busy Ps' worth of Ms
 * spin (2 * nmspinning < gomaxprocs - npidle).
 *
 * Deferred wakeups (not in Go): a G that readies another into runnext,
 * with nothing else on its P's queue, is most often about to park (the
 * other half of a channel ping-pong, a request handed to a worker that
 * answers), and the readied G then runs here, cache-hot, a few ns later.
 * Go wakes a spinning M anyway; that M finds nothing, and its looks at
 * our run queue and the wake itself cost the pair more than the work
 * (chan_rt at P=2: 240 ns a round trip with the wakeup, 123 without).
 * So ready() only marks the P (p->wakep_due), and the wakeup happens,
 * if it is still needed, at the readier's next runtime call that does
 * not park (kgo_checkpreempt: the first call after the ready arms it,
 * the second fires, so the ready's own return does not count), when it
 * enters a syscall, or at the second of sysmon's looks that find it
 * due with no switch on the P in between (sysmon.c, wakep_look: it
 * looks at least every WAKEP_LOOK while a P runs and another is idle).
 * Taking the runnext G clears the mark. The cost: a readier that
 * computes without runtime calls delays the G it readied by up to two
 * WAKEP_LOOKs while another P idles. In bpf mode, where sysmon sleeps
 * through running Gs, the first deferral in a long sleep wakes it
 * (sysmon.c, "Deferred wakeups in bpf mode"), for the same bound.
 *
 * Idle: an M with nothing to do sleeps on its own futex (m->park). One of
 * the idle Ms at a time, the "timed sleeper", sleeps only until the
 * earliest timer of any P; a new earlier timer wakes it
 * (wake_for_timer). An idle runtime therefore sleeps in the kernel until
 * its next timer, and uses no CPU. (With io_uring, issue "I/O", the
 * timed sleeper waits in its ring instead, so a completion also wakes
 * it.)
 *
 * Run queues: per P, a ring of RUNQ_SIZE that only the owner pushes
 * (tail) and everyone pops (head, by CAS; with one P, by a plain store):
 * Go's runq. Overflow moves half of it to the global queue; a G that
 * spawns yields long before that, once 32 never-run Gs wait on its P
 * (spawn back-pressure, kgo_go_sized). Every 61st switch a P takes from
 * the global queue, or the head of its own, before runnext ("Time
 * slices and fairness"). An M out of local work steals half of another
 * P's queue.
 *
 * Time slices and fairness
 * ------------------------
 * A G runs for a slice (kgo_config.preempt_slice_us, 10 ms) before
 * sysmon (or the BPF tick) preempts it to the global queue. A slice is
 * named by the P's schedtick, which moves when a G starts a new slice:
 * sysmon times the slice from the first look that saw that schedtick.
 * As in Go (runqget's inheritTime, execute), a G taken from runnext
 * does not start one: it inherits the rest of the slice of the G that
 * readied it, so schedtick stays. Two Gs that ready each other (a
 * channel ping-pong) hand the P back and forth through runnext, and
 * with a fresh slice at each switch sysmon never saw one end: the pair
 * kept the P for as long as it liked. Now it shares one slice and is
 * preempted once that is over (core_test runnext_pair_shares_one_slice).
 *
 * A slice is not enough for the queues, though: runnext is taken before
 * the local queue, and a G preempted out of a group of Gs that ready
 * one another (four senders and three receivers on a small channel)
 * leaves the others going through runnext; each G the group kicked out
 * of runnext into the local queue starts another such run when its turn
 * comes, for a whole slice. A G yielding behind such a group waited 67
 * ms a yield (sync_chan_test close_races_sends: 50 s for its 200 rounds
 * alone, rounds of up to 3.7 s and a timeout beside other load; 13 s
 * with this rule, most of it the 200 kgo_runs' own start and exit). So the
 * fairness rule is counted in switches, runnext included, and serves
 * both queues: on every 61st switch (p->nswitch against p->fairtick,
 * the switch count at the last such look), a P takes a G from the
 * global queue if it has one (Go's schedtick % 61, which Go counts in
 * slices), else the head of its local queue, before runnext (not in Go;
 * the runnext G stays there and runs next). A G queued on a P that
 * keeps switching runs within 61 switches per G ahead of it (core_test
 * runnext_pair_cannot_starve_local_queue and _global_queue), where a
 * slice is ~140,000 switches of a ping-pong pair here. direct_switch
 * declines the 61st switch, so that it goes through g0 and findrunnable,
 * which also runs the P's due timers there.
 *
 * runnext without a locked instruction: the owner takes (or replaces)
 * its runnext G many times a second, a thief steals it only when the
 * victim's queue is empty (~150-350 times in a whole spawn_join -p 2 or
 * timers run). A CAS on each take cost a chan_rt round trip at P=2 two
 * locked instructions, 15 % of its time (perf record -e cpu-clock). So
 * the two sides meet with an asymmetric fence (lock_futex.c has the
 * pattern) instead: the owner raises p->runnext_owning, then reads
 * p->runnext_thieves, with only a compiler barrier between; a thief
 * counts itself in runnext_thieves (a locked add), runs membarrier(2),
 * which puts a full barrier in every running thread of ours, then reads
 * runnext_owning. Either the owner sees the thief (and takes with a CAS,
 * as before) or the thief sees the owner inside its plain load and
 * store (and leaves runnext alone): never both blind. A steal costs the
 * thief ~10 us; Go's thief sleeps 3 us before its CAS anyway. Without
 * membarrier the owner always takes the CAS path (runnext_plain_begin).
 *
 * Kernel observation (the point of kgo; sysmon.c, bpf/): Go's sysmon
 * guesses that an M in a syscall is blocked after a tick; kgo asks the
 * kernel (BPF on sched_switch) and hands the P on when the M is really
 * blocked. A P in P_SYSCALL can be taken by CAS, by whoever decides
 * that its M is blocked, and in bpf mode that is no longer sysmon but
 * the thread the event wakes ("Handoff from the kernel", at stopm): the
 * probes kick the idle M at the head of midle, which takes the P
 * itself, so a handoff costs one thread wakeup (measured: p50 within
 * 1.2x of the BPF signal's own latency, against 2-3x when the kick went
 * to sysmon and sysmon woke an M); and a G back from its syscall with
 * no idle P takes the P of an M the kernel saw blocked
 * (take_blocked_p), which no event would have announced.
 *
 * Lock order: sched.lock > pp->timers.lock > sched.allglock > stack
 * pool lock > sched.gflock. A G never parks holding any runtime lock but
 * the one its unlockf releases.
 */
#include <errno.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime.h"
#include "kgo_syscall.h"
#include "trace.h"
#include "traceback.h"

#ifdef KGO_ASAN
#include <sanitizer/asan_interface.h>
#endif
#ifdef KGO_TSAN
#include <sanitizer/tsan_interface.h>
#endif

struct sched sched;

__thread struct m *kgo_tls_m __attribute__((tls_model("initial-exec")));
_Atomic bool kgo_foreign_seen;
_Atomic int kgo_foreign_n;
__thread int kgo_tls_foreign __attribute__((tls_model("initial-exec")));
__thread volatile int kgo_tls_locks __attribute__((tls_model("initial-exec")));

const char *const waitreason_str[WAIT_NREASONS] = {
	[WAIT_NONE] = "",
	[WAIT_CHAN_RECV] = "chan receive",
	[WAIT_CHAN_SEND] = "chan send",
	[WAIT_SELECT] = "select",
	[WAIT_SELECT_NO_CASES] = "select (no cases)",
	[WAIT_MUTEX] = "sync.Mutex.Lock",
	[WAIT_RWMUTEX_R] = "sync.RWMutex.RLock",
	[WAIT_RWMUTEX_W] = "sync.RWMutex.Lock",
	[WAIT_COND] = "sync.Cond.Wait",
	[WAIT_WG] = "sync.WaitGroup.Wait",
	[WAIT_SLEEP] = "sleep",
	[WAIT_SEMA] = "semacquire",
	[WAIT_IO] = "IO wait",
	[WAIT_LOCKED_M] = "locked to thread",
};

const char *const gstatus_str[] = {
	[G_IDLE] = "idle", [G_RUNNABLE] = "runnable",
	[G_RUNNING] = "running", [G_SYSCALL] = "syscall",
	[G_WAITING] = "waiting", [G_DEAD] = "dead",
	[G_PREEMPTED] = "preempted",
};

__attribute__((noipa)) struct m *getm(void)
{
	return kgo_tls_m;
}

__attribute__((noipa)) struct g *getg(void)
{
	struct m *mp = kgo_tls_m;

	return mp ? mp->curg : NULL;
}

uint32_t fastrand(void)
{
	struct m *mp = getm();
	static _Atomic uint32_t seed = 0x9e3779b9;
	uint32_t s1, s0;

	if (!mp)
		return atomic_fetch_add_explicit(&seed, 0x6d2b79f5,
						  memory_order_relaxed) * 2654435761u;
	/* xorshift64+, per M: no shared state on the hot path. */
	s1 = mp->fastrand[0];
	s0 = mp->fastrand[1];
	s1 ^= s1 << 17;
	s1 = s1 ^ s0 ^ s1 >> 7 ^ s0 >> 16;
	mp->fastrand[0] = s0;
	mp->fastrand[1] = s1;
	return s0 + s1;
}

uint32_t fastrandn(uint32_t n)
{
	return (uint32_t)(((uint64_t)fastrand() * n) >> 32);
}

/* ------------------------------------------------------------------ */
/* Context switches, with the sanitizers told about stacks            */
/* ------------------------------------------------------------------ */

#ifdef KGO_ASAN
static void stack_bounds(struct m *mp, struct g *gp, const void **bottom,
			 size_t *size)
{
	if (gp) {
		*bottom = (void *)gp->stack.lo;
		*size = gp->stack.hi - gp->stack.lo;
	} else {
		*bottom = mp->asan_stack_bottom;
		*size = mp->asan_stack_size;
	}
}
#endif

static void runqput(struct p *pp, struct g *gp, bool next);
static void casgstatus(struct g *gp, uint32_t from, uint32_t to);
static void badgstatus(struct g *gp, uint32_t st, uint32_t from)
	__attribute__((noinline, cold, noreturn));

/*
 * setgstatus() - a status change that only the caller can make: it owns
 * gp (gp is running on this M, or this M just took it off its own run
 * queue), so nobody else writes gp->status meanwhile, and a load and a
 * release store do what casgstatus's CAS does, without the locked
 * instruction (two of them per direct switch).
 */
static inline void setgstatus(struct g *gp, uint32_t from, uint32_t to)
{
	uint32_t st = atomic_load_explicit(&gp->status, memory_order_relaxed);

	if (unlikely(st != from))
		badgstatus(gp, st, from);
	atomic_store_explicit(&gp->status, to, memory_order_release);
}

/* Why a G switched straight to another (direct_switch, m->after_why). */
enum switch_why {
	SW_YIELD,	/* queue it again */
	SW_PARK,	/* park it: run its unlockf */
	SW_EXIT,	/* it finished: free it */
};

static void gdead(struct m *mp, struct g *gp);

/*
 * finish_switch() - run on the resumed side of every switch: what the G
 * that switched straight to us (direct_switch) left to do once it is
 * off its stack: queue it again (yield), release its wait list's lock
 * (park) or put it on a free list (exit). Until then nobody else can
 * see that G.
 */
static inline void finish_switch(void)
{
	struct m *mp = getm();
	struct g *prev = mp->after_g;
	bool (*unlockf)(struct g *, void *);

	if (likely(!prev))
		return;
	mp->after_g = NULL;
	if (mp->after_why == SW_EXIT) {
		atomic_store_explicit(&mp->p->ngexit_direct,
			atomic_load_explicit(&mp->p->ngexit_direct,
					     memory_order_relaxed) + 1,
			memory_order_relaxed);
		gdead(mp, prev);
		return;
	}
	if (mp->after_why == SW_YIELD) {
		atomic_store_explicit(&prev->status, G_RUNNABLE,
				      memory_order_release);
		runqput(mp->p, prev, false);
		return;
	}
	unlockf = mp->park_unlock;
	mp->park_unlock = NULL;
	/* A waker spins while prev is RUNNING (ready): it writes the
	 * status only after this store. */
	setgstatus(prev, G_RUNNING, G_WAITING);
	if (unlockf && !unlockf(prev, mp->park_arg)) {
		casgstatus(prev, G_WAITING, G_RUNNABLE);
		runqput(mp->p, prev, true);
	}
}

static void goentry(void *arg);

/*
 * gstart() - write a new G's first frame, on the M about to run it.
 * newproc leaves the stack alone so that its first page is faulted in
 * here, by whichever M runs the G, not by the G that made it: a burst
 * of new Gs then commits its stack pages on all the Ps instead of one
 * (stack.c has the figures). The G still starts with the FP control
 * state of the G that made it, saved by newproc.
 */
static void gstart(struct g *gp)
{
	atomic_store_explicit(&gp->unstarted, false, memory_order_relaxed);
	kgo_ctx_make_fp(&gp->ctx, (void *)gp->stack.lo,
			gp->stack.hi - gp->stack.lo, goentry, gp, gp->fpctl);
}

/*
 * kgo_switch() - switch from the running context to another on the
 * same M. @from_g/@to_g: the Gs, NULL for g0. A from_g that is G_DEAD
 * never comes back.
 */
void kgo_switch(struct kgo_ctx *from, struct kgo_ctx *to, struct g *from_g,
		struct g *to_g)
{
#ifdef KGO_ASAN
	struct m *mp = getm();
	void *fake = NULL;
	const void *bottom;
	size_t size;
	bool dying = from_g && atomic_load(&from_g->status) == G_DEAD;

	stack_bounds(mp, to_g, &bottom, &size);
	__sanitizer_start_switch_fiber(dying ? NULL : &fake, bottom, size);
#endif
#ifdef KGO_TSAN
	__tsan_switch_to_fiber(to_g ? to_g->tsan_fiber : getm()->tsan_fiber, 0);
#endif
	(void)from_g;
	if (to_g && unlikely(atomic_load_explicit(&to_g->unstarted,
						  memory_order_relaxed)))
		gstart(to_g);
	kgo_ctx_switch(from, to);
#ifdef KGO_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	finish_switch();
}

/*
 * mcall() - switch from the running G to g0, which then calls fn(gp)
 * and schedules. Returns (on the G) when the G is run again, maybe on
 * another M.
 */
static void mcall(void (*fn)(struct g *gp), int locks)
{
	struct m *mp = getm();
	struct g *gp = mp->curg;

	/* Only gopark may carry a lock over, the one its unlockf drops. */
	if (unlikely(kgo_tls_locks > locks))
		kgo_throw("mcall: switching with a runtime lock held");
	mp->mcall_fn = fn;
	mp->mcall_g = gp;
	kgo_switch(&gp->ctx, &mp->g0ctx, gp, NULL);
}

/* ------------------------------------------------------------------ */
/* Local run queues (owner pushes at tail; all pop at head by CAS)    */
/* ------------------------------------------------------------------ */

static void globrunqputbatch(struct g *head, struct g *tail, int32_t n);

bool runqempty(struct p *pp)
{
	/* A consistent snapshot of head, tail and runnext (Go's loop:
	 * runnext may move into the queue between the loads). */
	for (;;) {
		uint32_t head = atomic_load_explicit(&pp->runqhead,
						     memory_order_acquire);
		uint32_t tail = atomic_load_explicit(&pp->runqtail,
						     memory_order_acquire);
		struct g *next = atomic_load_explicit(&pp->runnext,
						      memory_order_acquire);

		if (tail == atomic_load_explicit(&pp->runqtail,
						 memory_order_acquire))
			return head == tail && !next;
	}
}

/* Move half the local queue plus gp to the global queue; owner only. */
static bool runqputslow(struct p *pp, struct g *gp, uint32_t head,
			uint32_t tail)
{
	struct g *batch[RUNQ_SIZE / 2 + 1];
	uint32_t n = (tail - head) / 2, i;

	if (n != RUNQ_SIZE / 2)
		kgo_throw("runqputslow: queue is not full");
	for (i = 0; i < n; i++)
		batch[i] = atomic_load_explicit(&pp->runq[(head + i) % RUNQ_SIZE],
						memory_order_relaxed);
	/* Release: our reads of the slots happen before thieves reuse them. */
	if (!atomic_compare_exchange_strong_explicit(&pp->runqhead, &head,
			head + n, memory_order_release, memory_order_relaxed))
		return false;
	batch[n] = gp;
	for (i = 0; i < n; i++)
		batch[i]->schedlink = batch[i + 1];
	gp->schedlink = NULL;
	globrunqputbatch(batch[0], gp, n + 1);
	return true;
}

/*
 * runnext_plain_begin() - the owner's side of the meeting over runnext
 * (top of file): true if it may now load and store pp->runnext plainly,
 * until runnext_plain_end(); false: thieves may be at it, use a CAS (or
 * an exchange). Owner only.
 */
static inline bool runnext_plain_begin(struct p *pp)
{
	/* Thieves hold a P of their own: with one P there are none. */
	if (sched.gomaxprocs == 1)
		return true;
	if (!lock_asym)
		return false;	/* no membarrier: the owner would need a fence */
	atomic_store_explicit(&pp->runnext_owning, 1, memory_order_relaxed);
	/* The thief's membarrier makes this a full fence, where it counts. */
	atomic_signal_fence(memory_order_seq_cst);
	if (likely(!atomic_load_explicit(&pp->runnext_thieves,
					 memory_order_relaxed)))
		return true;
	atomic_store_explicit(&pp->runnext_owning, 0, memory_order_relaxed);
	return false;
}

static inline void runnext_plain_end(struct p *pp)
{
	/* Release: a thief that sees 0 sees our store to runnext. */
	if (sched.gomaxprocs > 1)
		atomic_store_explicit(&pp->runnext_owning, 0,
				      memory_order_release);
}

/*
 * runnext_steal() - a thief's CAS of pp->runnext from @next to NULL,
 * once the owner is known not to be between its plain load and store
 * (top of file). Return: 1 took @next, 0 runnext changed (look again),
 * -1 the owner stayed inside its window (a preempted thread: give up).
 */
static int runnext_steal(struct p *pp, struct g *next)
{
	int took = -1;
	int spin;

	atomic_fetch_add(&pp->runnext_thieves, 1);
	lock_fence_heavy();
	/* The owner's window is a few instructions; a preempted owner is
	 * not waited for. */
	for (spin = 0; spin < 1000; spin++) {
		if (!atomic_load_explicit(&pp->runnext_owning,
					  memory_order_acquire)) {
			took = atomic_compare_exchange_strong_explicit(
				&pp->runnext, &next, NULL,
				memory_order_acq_rel, memory_order_relaxed);
			break;
		}
		cpu_relax();
	}
	atomic_fetch_sub_explicit(&pp->runnext_thieves, 1,
				  memory_order_release);
	return took;
}

/*
 * runqput() - put gp on pp's local queue; owner only. With @next, gp
 * goes to runnext and the G that was there to the tail.
 */
static void runqput(struct p *pp, struct g *gp, bool next)
{
	uint32_t head, tail;

	if (next) {
		/* Thieves only ever take runnext (CAS to NULL), and only we
		 * fill it: found empty, it stays empty until our store, so
		 * kicking a G out is what needs thieves kept off. */
		struct g *old = atomic_load_explicit(&pp->runnext,
						     memory_order_relaxed);

		if (!old) {
			atomic_store_explicit(&pp->runnext, gp,
					      memory_order_release);
			return;
		}
		if (runnext_plain_begin(pp)) {
			old = atomic_load_explicit(&pp->runnext,
						   memory_order_relaxed);
			atomic_store_explicit(&pp->runnext, gp,
					      memory_order_release);
			runnext_plain_end(pp);
			gp = old;
		} else {
			gp = atomic_exchange_explicit(&pp->runnext, gp,
						      memory_order_acq_rel);
		}
		if (!gp)
			return;
	}
	for (;;) {
		/* Acquire pairs with the consumers' release CAS on head. */
		head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
		tail = atomic_load_explicit(&pp->runqtail, memory_order_relaxed);
		if (tail - head < RUNQ_SIZE) {
			atomic_store_explicit(&pp->runq[tail % RUNQ_SIZE], gp,
					      memory_order_relaxed);
			/* Release: the slot is written before it is seen. */
			atomic_store_explicit(&pp->runqtail, tail + 1,
					      memory_order_release);
			return;
		}
		if (runqputslow(pp, gp, head, tail))
			return;
	}
}

static struct g *runqpop(struct p *pp);

/* runqget() - take a G from pp's local queue; owner only. *inherit:
 * it came from runnext and takes over the current time slice. */
static struct g *runqget(struct p *pp, bool *inherit)
{
	struct g *gp = atomic_load_explicit(&pp->runnext, memory_order_relaxed);

	/* Plain when no thief is at it (top of file; chan_rt round trip:
	 * two locked instructions fewer). */
	if (gp && runnext_plain_begin(pp)) {
		/* Again, now that thieves are kept off: one may have been
		 * faster. Acquire: the G was readied with a release store. */
		gp = atomic_load_explicit(&pp->runnext, memory_order_acquire);
		if (gp)
			atomic_store_explicit(&pp->runnext, NULL,
					      memory_order_relaxed);
		runnext_plain_end(pp);
		if (gp)
			goto took_next;
	} else if (gp && atomic_compare_exchange_strong_explicit(&pp->runnext,
			&gp, NULL, memory_order_acq_rel, memory_order_relaxed)) {
took_next:
		*inherit = true;
		/* Runs here: a deferred wakeup for it is moot. */
		if (atomic_load_explicit(&pp->wakep_due, memory_order_relaxed))
			atomic_store_explicit(&pp->wakep_due, 0,
					      memory_order_relaxed);
		return gp;
	}
	*inherit = false;
	return runqpop(pp);
}

/* runqpop() - take the G at the head of pp's local queue, runnext left
 * alone; owner only. */
static struct g *runqpop(struct p *pp)
{
	struct g *gp;
	uint32_t head, tail;

	for (;;) {
		head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
		tail = atomic_load_explicit(&pp->runqtail, memory_order_relaxed);
		if (tail == head)
			return NULL;
		gp = atomic_load_explicit(&pp->runq[head % RUNQ_SIZE],
					  memory_order_relaxed);
		/*
		 * With one P, the head is ours alone too: a plain store.
		 * A locked instruction costs ~6.6 ns here (a loop of
		 * lock xadd), a third of a yield; this and runqput's
		 * exchange were the two per G of spawn_join -p 1.
		 */
		if (sched.gomaxprocs == 1) {
			atomic_store_explicit(&pp->runqhead, head + 1,
					      memory_order_release);
			return gp;
		}
		if (atomic_compare_exchange_weak_explicit(&pp->runqhead, &head,
				head + 1, memory_order_release,
				memory_order_relaxed))
			return gp;
	}
}

/*
 * runqgrab() - take half of pp's queue into batch[bhead...] (a ring of
 * RUNQ_SIZE); with @runnext also its runnext when the queue is empty.
 * Any M may call it. Return: how many.
 */
static uint32_t runqgrab(struct p *pp, _Atomic(struct g *) *batch,
			 uint32_t bhead, bool runnext)
{
	for (;;) {
		uint32_t head = atomic_load_explicit(&pp->runqhead,
						     memory_order_acquire);
		uint32_t tail = atomic_load_explicit(&pp->runqtail,
						     memory_order_acquire);
		uint32_t n = tail - head, i;

		n = n - n / 2;
		if (n == 0) {
			struct g *next;
			int spin, took;

			if (!runnext)
				return 0;
			next = atomic_load_explicit(&pp->runnext,
						    memory_order_acquire);
			if (!next)
				return 0;
			/* The owner is probably about to run it (it was
			 * just readied by the running G): give it a moment
			 * rather than bounce it to another CPU. Go sleeps
			 * 3 us; a sleep costs ~50 us on this VM. */
			if (atomic_load_explicit(&pp->status,
						 memory_order_relaxed) == P_RUNNING)
				for (spin = 0; spin < 300; spin++)
					cpu_relax();
			took = runnext_steal(pp, next);
			if (took < 0)
				return 0;
			if (!took)
				continue;
			atomic_store_explicit(&batch[bhead % RUNQ_SIZE], next,
					      memory_order_relaxed);
			return 1;
		}
		if (n > RUNQ_SIZE / 2)
			continue;	/* inconsistent head and tail */
		for (i = 0; i < n; i++) {
			struct g *gp = atomic_load_explicit(
				&pp->runq[(head + i) % RUNQ_SIZE],
				memory_order_relaxed);

			atomic_store_explicit(&batch[(bhead + i) % RUNQ_SIZE],
					      gp, memory_order_relaxed);
		}
		if (atomic_compare_exchange_strong_explicit(&pp->runqhead, &head,
				head + n, memory_order_release,
				memory_order_relaxed))
			return n;
	}
}

/* runqsteal() - steal half of p2's queue into pp's; return one of them. */
static struct g *runqsteal(struct p *pp, struct p *p2, bool runnext)
{
	uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_relaxed);
	uint32_t n = runqgrab(p2, pp->runq, tail, runnext), head;
	struct g *gp;

	if (n == 0)
		return NULL;
	n--;
	gp = atomic_load_explicit(&pp->runq[(tail + n) % RUNQ_SIZE],
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&pp->nsteal, n + 1, memory_order_relaxed);
	TRACE(TR_STEAL, p2->id, n + 1);
	if (n == 0)
		return gp;
	head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
	if (tail - head + n >= RUNQ_SIZE)
		kgo_throw("runqsteal: runq overflow");
	atomic_store_explicit(&pp->runqtail, tail + n, memory_order_release);
	return gp;
}

/* ------------------------------------------------------------------ */
/* Global run queue (sched.lock)                                      */
/* ------------------------------------------------------------------ */

static void globrunqputbatch_locked(struct g *head, struct g *tail, int32_t n)
{
	tail->schedlink = NULL;
	if (sched.runqtail)
		sched.runqtail->schedlink = head;
	else
		sched.runqhead = head;
	sched.runqtail = tail;
	atomic_fetch_add_explicit(&sched.runqsize, n, memory_order_relaxed);
}

static void globrunqputbatch(struct g *head, struct g *tail, int32_t n)
{
	lock(&sched.lock);
	globrunqputbatch_locked(head, tail, n);
	unlock(&sched.lock);
}

static void globrunqput(struct g *gp)
{
	globrunqputbatch(gp, gp, 1);
}

/* globrunqget() - take a batch for pp (at most @max, 0: no limit), put
 * all but one on pp's queue, return that one. sched.lock held. */
static struct g *globrunqget(struct p *pp, int32_t max)
{
	int32_t size = atomic_load_explicit(&sched.runqsize,
					    memory_order_relaxed);
	int32_t n;
	struct g *gp;

	if (size == 0)
		return NULL;
	n = size / sched.gomaxprocs + 1;
	if (n > size)
		n = size;
	if (max > 0 && n > max)
		n = max;
	if (n > RUNQ_SIZE / 2)
		n = RUNQ_SIZE / 2;
	atomic_fetch_sub_explicit(&sched.runqsize, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&pp->nglobal, n, memory_order_relaxed);

	gp = sched.runqhead;
	sched.runqhead = gp->schedlink;
	if (!sched.runqhead)
		sched.runqtail = NULL;
	while (--n > 0) {
		struct g *g1 = sched.runqhead;

		sched.runqhead = g1->schedlink;
		if (!sched.runqhead)
			sched.runqtail = NULL;
		runqput(pp, g1, false);
	}
	return gp;
}

/* ------------------------------------------------------------------ */
/* Idle Ps and Ms (sched.lock)                                        */
/* ------------------------------------------------------------------ */

static void pidleput(struct p *pp)
{
	if (!runqempty(pp))
		kgo_throw("pidleput: P has non-empty run queue");
	atomic_store_explicit(&pp->status, P_IDLE, memory_order_relaxed);
	smp_store_release(pp->m, NULL);
	pp->link = sched.pidle;
	sched.pidle = pp;
	atomic_fetch_add_explicit(&sched.npidle, 1, memory_order_relaxed);
}

static struct p *pidleget(void)
{
	struct p *pp = sched.pidle;

	if (pp) {
		sched.pidle = pp->link;
		/* seq_cst, then a seq_cst load: pairs with sysmon's store of
		 * sysmon_sleeping before it reads npidle (sysmon.c). */
		if (atomic_fetch_sub(&sched.npidle, 1) == 1 &&
		    unlikely(atomic_load(&sysmon_untimed)))	/* seq_cst */
			sysmon_untimed_wake();
		if (unlikely(atomic_load(&sysmon_sleeping)))
			sysmon_wake();
	}
	return pp;
}

/* m->kick ("Handoff from the kernel"). */
enum m_kick {
	KICK_NONE,		/* not asleep on midle, or woken already */
	KICK_ARMED,		/* on midle (stopm): the probes may kick it */
	KICK_TAKEN,		/* kicked: kickp is set, the note woken */
};

/* The idle M that the probes kick ("Handoff from the kernel"): the
 * head of midle. sched.lock held. */
static void kick_publish(void)
{
	WRITE_ONCE(sched.kick_tid, sched.kick_m && sched.midle ?
		   (int32_t)sched.midle->tid : 0);
}

static void mput(struct m *mp)
{
	mp->schedlink = sched.midle;
	sched.midle = mp;
	sched.nmidle++;
	kick_publish();
	checkdead();
}

static struct m *mget(void)
{
	struct m *mp = sched.midle;

	if (mp) {
		sched.midle = mp->schedlink;
		sched.nmidle--;
		kick_publish();
	}
	return mp;
}

/* Take a given M off the idle list; false if it is not on it. */
static bool mremove(struct m *mp)
{
	struct m **pm;

	for (pm = &sched.midle; *pm; pm = &(*pm)->schedlink) {
		if (*pm == mp) {
			*pm = mp->schedlink;
			sched.nmidle--;
			kick_publish();
			return true;
		}
	}
	return false;
}

/*
 * mwake() - wake an idle M that the caller took off midle (and gave a
 * nextp, or none), unless the probes' kick woke it already: then it
 * sees the nextp itself ("Handoff from the kernel"). acq_rel: nextp,
 * stored before, is seen by the M, whose exchange of kick comes after.
 */
static void mwake(struct m *mp)
{
	if (atomic_exchange_explicit(&mp->kick, KICK_NONE,
				     memory_order_acq_rel) != KICK_TAKEN)
		notewakeup(&mp->park);
}

static void acquirep(struct m *mp, struct p *pp)
{
	if (mp->p || pp->m)
		kgo_throw("acquirep: already in go");
	mp->p = pp;
	smp_store_release(pp->m, mp);
	atomic_store_explicit(&pp->status, P_RUNNING, memory_order_relaxed);
}

static struct p *releasep(struct m *mp)
{
	struct p *pp = mp->p;

	if (!pp || pp->m != mp)
		kgo_throw("releasep: invalid P state");
	mp->p = NULL;
	smp_store_release(pp->m, NULL);
	atomic_store_explicit(&pp->status, P_IDLE, memory_order_relaxed);
	return pp;
}

/* ------------------------------------------------------------------ */
/* Starting and stopping Ms                                           */
/* ------------------------------------------------------------------ */

static void *mstart(void *arg);
static void schedule(struct m *mp, struct g *next);

/* newm() - a new M that will start with pp (may be NULL). */
static void newm(struct p *pp, bool spinning)
{
	struct m *mp = calloc(1, sizeof(*mp));
	pthread_attr_t attr;
	int err;

	if (!mp)
		kgo_fatal("out of memory allocating an M");
	lock(&sched.lock);
	/*
	 * At exit no M may start: m0 (kgo_run's thread) counts the Ms
	 * still out under sched.lock (wait_ms). An M made after it looked
	 * (sysmon handing a P on during shutdown did it: "notewakeup:
	 * double wakeup" in echo_1000, ~1 run in 20 on a loaded machine,
	 * when the last M out woke m0) would outlive sched_free. Checked
	 * under the same lock, so an M counted here is one m0 waits for.
	 */
	if (atomic_load(&sched.exiting)) {
		if (pp && runqempty(pp))	/* else nobody runs it now */
			pidleput(pp);
		unlock(&sched.lock);
		if (spinning && atomic_fetch_sub(&sched.nmspinning, 1) <= 0)
			kgo_throw("newm: negative nmspinning");
		free(mp);
		return;
	}
	if (sched.mnext - sched.nmexited >= sched.maxmcount) {
		unlock(&sched.lock);
		kgo_fatal("program exceeds %d-thread limit (raise "
			  "kgo_config.max_threads)", sched.maxmcount);
	}
	mp->id = sched.mnext++;
	mp->alllink = sched.allm;
	sched.allm = mp;
	unlock(&sched.lock);

	mp->nextp = pp;
	mp->spinning = spinning;
	mp->fastrand[0] = 0x9e3779b9u * (mp->id + 1) | 1;
	mp->fastrand[1] = (uint32_t)nanotime() | 1;
	pthread_attr_init(&attr);
#if defined(KGO_ASAN) || defined(KGO_TSAN)
	pthread_attr_setstacksize(&attr, 8 << 20);
#else
	pthread_attr_setstacksize(&attr, 1 << 20);
#endif
	err = pthread_create(&mp->thread, &attr, mstart, mp);
	pthread_attr_destroy(&attr);
	if (err)
		kgo_fatal("pthread_create failed: %s (threads: %d)",
			  strerror(err), sched.mnext);
}

/*
 * startm() - run some M on pp (NULL: any idle P, or nothing if none).
 * With @spinning the caller has already counted the M in nmspinning.
 */
static void startm(struct p *pp, bool spinning)
{
	struct m *nmp;

	lock(&sched.lock);
	if (!pp) {
		pp = pidleget();
		if (!pp) {
			unlock(&sched.lock);
			if (spinning && atomic_fetch_sub(&sched.nmspinning, 1) <= 0)
				kgo_throw("startm: negative nmspinning");
			return;
		}
	}
	nmp = mget();
	if (nmp && nmp == sched.sleeper) {
		sched.sleeper = NULL;
		atomic_store(&sched.sleeper_until, 0);
	}
	unlock(&sched.lock);
	if (!nmp) {
		newm(pp, spinning);
		return;
	}
	if (nmp->spinning || nmp->nextp)
		kgo_throw("startm: M is spinning or has a P");
	nmp->spinning = spinning;
	nmp->nextp = pp;
	mwake(nmp);
}

/*
 * handoffp() - pp's M cannot run Gs now (it blocks in a syscall, or
 * waits for its locked G): give pp to another M if there is anything
 * for it to do, else park it (Go's handoffp).
 */
void handoffp(struct p *pp)
{
	int32_t zero = 0;

	if (!runqempty(pp) || atomic_load(&sched.runqsize)) {
		startm(pp, false);
		return;
	}
	/* No local work; start a spinning M only if nobody spins or idles. */
	if (atomic_load(&sched.nmspinning) + atomic_load(&sched.npidle) == 0 &&
	    atomic_compare_exchange_strong(&sched.nmspinning, &zero, 1)) {
		startm(pp, true);
		return;
	}
	lock(&sched.lock);
	if (atomic_load(&sched.runqsize)) {
		unlock(&sched.lock);
		startm(pp, false);
		return;
	}
	pidleput(pp);
	unlock(&sched.lock);
	if (atomic_load(&pp->timers.next) != INT64_MAX)
		wake_for_timer(atomic_load(&pp->timers.next));
}

void wakep(void)
{
	int32_t zero = 0;

	/* Be conservative: only if a P is idle and nobody spins already. */
	if (atomic_load_explicit(&sched.npidle, memory_order_relaxed) == 0 ||
	    atomic_load_explicit(&sched.nmspinning, memory_order_relaxed) != 0 ||
	    !atomic_compare_exchange_strong(&sched.nmspinning, &zero, 1))
		return;
	startm(NULL, true);
}

static void resetspinning(struct m *mp)
{
	mp->spinning = false;
	if (atomic_fetch_sub(&sched.nmspinning, 1) <= 0)
		kgo_throw("resetspinning: negative nmspinning");
	/* We were the last spinner and found work: there may be more. */
	wakep();
}

static void become_spinning(struct m *mp)
{
	mp->spinning = true;
	atomic_fetch_add(&sched.nmspinning, 1);
}

/*
 * stopm() - park the M until startm() gives it a P, or until @deadline
 * (then it is the timed sleeper), or until shutdown. On return mp->p is
 * set, or NULL when woken without one (timer, shutdown).
 */
/* The earliest timer of any P (seq_cst loads: they pair with the
 * seq_cst stores of timers.next and sched.sleeper_until, Dekker-style,
 * so that a timer added while an M goes to sleep is seen by one side). */
static int64_t earliest_timer(void)
{
	int64_t next = INT64_MAX, w;
	int i;

	for (i = 0; i < sched.gomaxprocs; i++) {
		w = atomic_load(&sched.allp[i]->timers.next);
		if (w < next)
			next = w;
	}
	return next;
}

/*
 * Handoff from the kernel
 * -----------------------
 * When an M blocks in the kernel inside a kgo syscall while its P has
 * work waiting, the BPF probes see it at sched_switch and wake one
 * thread of the process with a SIGURG whose si_value is that P
 * (bpf/kgo_observe.bpf.c, wake_if_needed). The thread they wake is the
 * idle M at the head of midle (sched.kick_tid, kept by mput/mget/
 * mremove), and that M takes the P itself: one thread wakeup between
 * the block and the next G running. Only when no M idles does the kick
 * go to sysmon, which hands the P off as retake does (a new M).
 *
 * The race: the kick and a waker (startm, wake_for_timer, shutdown)
 * may reach the same idle M. m->kick decides, by exchange. stopm arms
 * it (KICK_ARMED) before mput; the SIGURG handler on the M's thread
 * takes it ARMED -> TAKEN (kick_m_take), notes the P in m->kickp and
 * marks the park note woken (its own thread: no futex call; the futex
 * wait or io_uring_enter it interrupted returns). A waker that took the
 * M off midle exchanges kick to NONE after setting nextp and makes the
 * notewakeup only if it did not find TAKEN (the note is woken already).
 * The M, awake, clears its note and then exchanges kick to NONE itself:
 * TAKEN means no waker came first, and it takes itself off midle and
 * the P (kick_run: the CAS P_SYSCALL -> P_IDLE that retake makes) - or,
 * if a waker had already taken it off midle, waits for that waker's
 * wakeup, which comes since kick is NONE now. Anything else means a
 * waker came first: its nextp is the M's, and the kick's P goes to
 * retake_syscall (kick_late). A kick that finds no ARMED M (the M woke
 * meanwhile) is passed to sysmon by the handler (observe_bpf.c).
 *
 * What won, measured with `build/bench/handoff -p 1` in bpf mode
 * (kgo_stats: the kick's arrival in the handler is the floor, timed in
 * the same run; README, "Kernel-observed scheduling"): the kick to the
 * idle M against the kick to sysmon, which then futex-wakes an M
 * (KGO_DEBUG=kickm=0 keeps that path). A ring buffer record was not
 * tried here: idle Ms sleep in their io_uring or on a futex, not in an
 * epoll, and FACTS.md measured its wakeup no cheaper than the signal
 * (12-16 us p50 against 13-17).
 */
/*
 * Two kicks
 * ---------
 * The probes read sched.kick_tid at each block, and it names the same
 * M until that M, woken, leaves midle (mleave): a second M that blocks
 * meanwhile kicks it again. That kick found the M no longer ARMED and
 * went to sysmon, which woke to hand the P to another M: most of
 * sysmon's wakeups in bpf mode (`KGO_DEBUG=observe=1
 * build/bench/sysmon_cpu -p 2 -n 10000 -w 8`: 481-649 of 529-791
 * wakeups were such kicks, the rest its own deadlines). Now the M keeps
 * the second P too (m->kickp2; the handler, on the M's thread, writes
 * it only while kick is TAKEN, so the M's exchange of kick, which ends
 * TAKEN, comes before it reads it) and, once it took the first, hands
 * the second to the next idle M itself (kick_second), as sysmon would
 * have: one futex wakeup instead of two. Most second kicks name the
 * same P as the first (its M came back from a 50 us sleep and blocked
 * in the next before the kicked M woke: 78-152 of 81-160 such kicks);
 * the kicked M takes that P in whichever call it is then, and the
 * second kick is done. A third kick still goes to sysmon.
 * sysmon_test kick_race_bpf.
 */
static void kick_second(struct m *mp)
{
	struct p *pp = mp->kickp2;

	mp->kickp2 = NULL;
	/* Still blocked in that call, as the kernel saw it: the probes'
	 * word is some 50 us old by now. */
	if (pp && observe_syscall_blocked(pp, nanotime()))
		retake_syscall(pp, true);
}

static bool kick_run(struct m *mp)
{
	struct p *pp = mp->kickp;
	uint32_t st = P_SYSCALL;
	bool took;

	mp->kickp = NULL;
	took = pp && atomic_compare_exchange_strong_explicit(&pp->status, &st,
			P_IDLE, memory_order_acquire, memory_order_relaxed);
	kick_second(mp);
	if (!took)
		return false;
	atomic_fetch_add_explicit(&sched.handoffs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&sched.handoffs_kernel, 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&sched.handoffs_m, 1, memory_order_relaxed);
	TRACE(TR_HANDOFF, pp->id, 1);
	acquirep(mp, pp);
	return true;
}

/*
 * Kicks to an M awake
 * -------------------
 * The probes read sched.kick_tid at the block, and a waker (startm,
 * wake_for_timer) may take that M off midle before the kick arrives:
 * the kick finds kick NONE (or TAKEN with kickp2 in use), and went to
 * sysmon, which woke to hand the P to another M (the "passed" kicks:
 * 85-125 of sysmon's 188-260 wakeups in `KGO_DEBUG=observe=1
 * KGO_OBSERVE=bpf build/bench/sysmon_cpu -p 2 -n 10000 -w 8`, the
 * largest cause left after "Two kicks"). But such an M is on its way
 * out of stopm to run a G, and makes runtime calls before it does:
 * it can hand the P on itself, one futex wakeup instead of two. So
 * from stopm (where it arms kick) until its next G runs, the M keeps
 * kick_keep up, and a refused kick that comes meanwhile (the handler
 * runs on the M's thread: kick_m_keep) is kept in m->kickp_late. The
 * M looks at it (kick_late_run) where every path from there passes:
 * in execute, after it lowered kick_keep (a kick after that is sent on
 * to the next idle M by the handler, observe_bpf.c "Kicks sent on", or
 * goes to sysmon: the M runs a G that may not come back soon); in
 * stopm after it armed kick (a kick after that is ARMED's, or finds
 * the M leaving the sleep through kick_late or execute again); and in
 * kick_late. A P still in the syscall there, the kernel still saying
 * blocked, is handed on as retake does. One slot: a second such kick
 * is sent on, or goes to sysmon. Counted in kgo_stats.observe_kicks_kept;
 * sysmon_test kick_race_bpf.
 */
bool kick_m_keep(struct m *mp, struct p *pp)
{
	struct p *none = NULL;

	if (!mp->kick_keep)
		return false;
	return atomic_compare_exchange_strong_explicit(&mp->kickp_late, &none,
			pp, memory_order_relaxed, memory_order_relaxed);
}

static void kick_late_run(struct m *mp)
{
	struct p *pp = atomic_exchange_explicit(&mp->kickp_late, NULL,
						memory_order_relaxed);

	if (pp && observe_syscall_blocked(pp, nanotime()))
		retake_syscall(pp, true);
}

/* A waker came before the M saw its kick: the kick's P to another M. */
static void kick_late(struct m *mp)
{
	struct p *pp = mp->kickp;

	mp->kickp = NULL;
	if (pp)
		retake_syscall(pp, true);
	kick_second(mp);
	kick_late_run(mp);
}

bool p_valid(const struct p *pp)
{
	int i;

	for (i = 0; pp && i < sched.gomaxprocs; i++)
		if (sched.allp[i] == pp)
			return true;
	return false;
}

/* In the M's SIGURG handler, on its own thread. */
enum kick_take kick_m_take(struct m *mp, struct p *pp)
{
	uint32_t armed = KICK_ARMED;

	if (!atomic_compare_exchange_strong_explicit(&mp->kick, &armed,
			KICK_TAKEN, memory_order_relaxed, memory_order_relaxed)) {
		/* "Two kicks": a second P while TAKEN, if the slot is
		 * free. The same P again is a later block of its next
		 * syscall (the first ended before this M woke): kick_run
		 * takes the P in whichever call it is then. */
		if (armed != KICK_TAKEN || (mp->kickp2 && mp->kickp != pp))
			return KICK_REFUSED;
		if (mp->kickp != pp)
			mp->kickp2 = pp;
		return KICK_SECOND;
	}
	mp->kickp = pp;
	/* Release: kickp before the note, for the M's own reads after
	 * the handler (a signal fence would do; this is no dearer). */
	atomic_exchange_explicit(&mp->park.key, 1 /* NOTE_WOKEN */,
				 memory_order_release);
	return KICK_TOOK;
}

static void stopm_common(struct m *mp, int64_t deadline, bool keeptime);

static void stopm(struct m *mp, int64_t deadline)
{
	stopm_common(mp, deadline, false);
}

/*
 * stopm_idle() - an M with nothing to do sleeps; one of the idle Ms
 * keeps the time: it sleeps only until the earliest timer of any P.
 */
static void stopm_idle(struct m *mp)
{
	stopm_common(mp, -1, true);
}

/* An M that woke without a waker's wakeup leaves the idle list (and
 * the timed sleeper's post). false: a waker took it off already, and
 * its wakeup is on its way. */
static bool mleave(struct m *mp)
{
	bool off;

	lock(&sched.lock);
	if (sched.sleeper == mp) {
		sched.sleeper = NULL;
		atomic_store(&sched.sleeper_until, 0);
	}
	off = mremove(mp);
	unlock(&sched.lock);
	return off;
}

static void stopm_common(struct m *mp, int64_t deadline, bool keeptime)
{
	struct p *pp;
	int64_t next;

	if (mp->p)
		kgo_throw("stopm: holding p");
	if (mp->spinning)
		kgo_throw("stopm: spinning");
again:
	lock(&sched.lock);
	if (atomic_load(&sched.exiting)) {
		unlock(&sched.lock);
		return;
	}
	if (keeptime) {
		/* Under sched.lock, so wake_for_timer sees a consistent
		 * sleeper: read the timers only now, and again after
		 * publishing sleeper_until (timer_add stores timers.next,
		 * then reads sleeper_until). */
		deadline = earliest_timer();
		if (deadline == INT64_MAX ||
		    (sched.sleeper &&
		     atomic_load(&sched.sleeper_until) <= deadline)) {
			deadline = -1;	/* someone else keeps the time */
		} else {
			sched.sleeper = mp;	/* take over, if another had it */
			atomic_store(&sched.sleeper_until, deadline);
			next = earliest_timer();
			if (next < deadline) {
				deadline = next;
				atomic_store(&sched.sleeper_until, deadline);
			}
		}
	}
	/* Before mput: the probes find us there, and may kick at once. */
	mp->kick_keep = true;
	atomic_store_explicit(&mp->kick, KICK_ARMED, memory_order_relaxed);
	mput(mp);
	unlock(&sched.lock);
	/* A kick kept before we armed ("Kicks to an M awake"): ours now,
	 * as if it came to the armed M (it wakes the sleep below). */
	pp = atomic_exchange_explicit(&mp->kickp_late, NULL,
				      memory_order_relaxed);
	if (pp && kick_m_take(mp, pp) == KICK_REFUSED)
		retake_syscall(pp, true);

	/* In the M's io_uring ring when it has one (io.c): completions
	 * wake it too. An idle M from findrunnable (keeptime) then returns
	 * as if timed out, to run them; other callers expect a P back, and
	 * sleep on while others run them. */
	if (!io_notesleep(mp, deadline, keeptime)) {
		/* Timed out: take ourselves off the idle list, unless a
		 * startm got there first, whose wakeup is then on its way. */
		if (mleave(mp)) {
			/* Kicked meanwhile: the kick's P is ours to try. */
			if (atomic_exchange_explicit(&mp->kick, KICK_NONE,
					memory_order_acq_rel) == KICK_TAKEN) {
				noteclear(&mp->park);
				kick_run(mp);
			}
			return;
		}
		io_notesleep(mp, -1, false);
	}
	for (;;) {
		noteclear(&mp->park);
		/* A waker's wakeup (it exchanged kick first): nextp. */
		if (atomic_exchange_explicit(&mp->kick, KICK_NONE,
				memory_order_acq_rel) != KICK_TAKEN)
			break;
		/* The probes' kick, and no waker yet: off the idle list,
		 * and take the P the kick names. */
		if (mleave(mp)) {
			if (kick_run(mp))
				return;
			goto again;	/* its M came back first */
		}
		/* A waker has us off the list already: its wakeup (kick
		 * is NONE now, so it makes one) is on its way. */
		io_notesleep(mp, -1, false);
	}
	/* Both: the waker's P is ours; the kick's goes to another M. */
	kick_late(mp);
	pp = mp->nextp;
	mp->nextp = NULL;
	if (pp)
		acquirep(mp, pp);
}

/* Wake every idle M (shutdown). */
static void wake_all_idle(void)
{
	struct m *mp;

	lock(&sched.lock);
	while ((mp = mget())) {
		mp->nextp = NULL;
		mwake(mp);
	}
	for (mp = sched.allm; mp; mp = mp->alllink) {
		if (mp->lockedidle) {
			mp->lockedidle = false;
			sched.nmidlelocked--;
			mp->nextp = NULL;
			notewakeup(&mp->park);
		}
	}
	sched.sleeper = NULL;
	unlock(&sched.lock);
}

void wake_for_timer(int64_t when)
{
	struct m *mp = NULL;
	int64_t until = atomic_load(&sched.sleeper_until);

	if (until && until <= when)
		return;		/* the sleeper wakes early enough */
	if (until) {
		lock(&sched.lock);
		mp = sched.sleeper;
		if (mp && atomic_load(&sched.sleeper_until) > when &&
		    mremove(mp)) {
			sched.sleeper = NULL;
			atomic_store(&sched.sleeper_until, 0);
		} else {
			mp = NULL;
		}
		unlock(&sched.lock);
		if (mp) {
			mp->nextp = NULL;
			mwake(mp);
		}
		return;
	}
	/* No timed sleeper: a spinning M will find the timer, or become
	 * the sleeper for it. */
	wakep();
}

/* ------------------------------------------------------------------ */
/* Timers seen from the scheduler                                     */
/* ------------------------------------------------------------------ */

/* Run the due timers of every P (timers of idle Ps are served too).
 * Return: the earliest remaining when, INT64_MAX if none. */
static int64_t check_all_timers(int64_t now)
{
	int64_t next = INT64_MAX, w;
	int i;

	for (i = 0; i < sched.gomaxprocs; i++) {
		struct p *p2 = sched.allp[i];

		w = atomic_load_explicit(&p2->timers.next, memory_order_relaxed);
		if (w <= now)
			w = timers_run(p2, now);
		if (w < next)
			next = w;
	}
	return next;
}

/* ------------------------------------------------------------------ */
/* Finding work                                                       */
/* ------------------------------------------------------------------ */

static struct g *stealwork(struct m *mp, int64_t now)
{
	struct p *pp = mp->p;
	int n = sched.gomaxprocs, i, k, start;
	bool inherit;

	for (i = 0; i < 4; i++) {
		bool last = i == 3;

		start = fastrandn(n);
		for (k = 0; k < n; k++) {
			struct p *p2 = sched.allp[(start + k) % n];
			struct g *gp;

			if (p2 == pp)
				continue;
			if (last && atomic_load_explicit(&p2->timers.next,
					memory_order_relaxed) <= now) {
				timers_run(p2, now);
				gp = runqget(pp, &inherit);
				if (gp)
					return gp;
			}
			if (atomic_load_explicit(&p2->status,
					memory_order_relaxed) == P_IDLE)
				continue;
			gp = runqsteal(pp, p2, last);
			if (gp)
				return gp;
		}
	}
	return NULL;
}

/* FAIR_SWITCHES - every this many switches, a P looks at the global
 * queue, then its own, before runnext (top of file, "Time slices and
 * fairness"). */
#define FAIR_SWITCHES	61

/* fair_due() - the next switch on pp (owner) is the one that looks at
 * the queues before runnext. */
static inline bool fair_due(struct p *pp)
{
	return atomic_load_explicit(&pp->nswitch, memory_order_relaxed) -
	       pp->fairtick >= FAIR_SWITCHES - 1;
}

/*
 * findrunnable() - find a G to run, sleeping if there is none. Runs on
 * g0 with a P; returns with a P (maybe another) and the G, or NULL at
 * shutdown (then without a P).
 */
static struct g *findrunnable(struct m *mp, bool *inherit)
{
	struct p *pp;
	struct g *gp;
	int64_t now, next;
	bool was_spinning;
	int i;

top:
	if (atomic_load_explicit(&sched.exiting, memory_order_relaxed)) {
		if (mp->spinning) {
			mp->spinning = false;
			atomic_fetch_sub(&sched.nmspinning, 1);
		}
		return NULL;
	}
	pp = mp->p;
	*inherit = false;

	/* io completions on our own ring, and the netpoller: they ready
	 * Gs (io.c). */
	io_poll(mp);

	/* Due timers of our own P first: they may ready Gs. */
	if (atomic_load_explicit(&pp->timers.next, memory_order_relaxed) !=
	    INT64_MAX) {
		now = nanotime();
		if (atomic_load_explicit(&pp->timers.next,
					 memory_order_relaxed) <= now)
			timers_run(pp, now);
	}

	/* Fairness: on every 61st switch, the global queue first, then
	 * the local one before runnext (top of file, "Time slices and
	 * fairness"). */
	if (fair_due(pp)) {
		pp->fairtick = atomic_load_explicit(&pp->nswitch,
						    memory_order_relaxed);
		if (atomic_load_explicit(&sched.runqsize,
					 memory_order_relaxed) > 0) {
			lock(&sched.lock);
			gp = globrunqget(pp, 1);
			unlock(&sched.lock);
			if (gp)
				return gp;
		}
		gp = runqpop(pp);
		if (gp)
			return gp;
	}

	gp = runqget(pp, inherit);
	if (gp)
		return gp;

	/* The global queue, then the netpoller (io_poll held it back),
	 * whose Gs queue behind the batch. */
	if (atomic_load_explicit(&sched.runqsize, memory_order_relaxed) > 0) {
		lock(&sched.lock);
		gp = globrunqget(pp, 0);
		unlock(&sched.lock);
		if (gp) {
			io_poll_net(mp);
			return gp;
		}
	}

	/* Due timers of every P, idle ones included. */
	now = nanotime();
	check_all_timers(now);
	gp = runqget(pp, inherit);
	if (gp)
		return gp;

	/* Steal, if not too many Ms are already at it. */
	if (mp->spinning || 2 * atomic_load(&sched.nmspinning) <
	    sched.gomaxprocs - atomic_load(&sched.npidle)) {
		if (!mp->spinning)
			become_spinning(mp);
		gp = stealwork(mp, now);
		if (gp)
			return gp;
	}

	/* Nothing: give up the P. */
	lock(&sched.lock);
	if (atomic_load(&sched.runqsize)) {
		gp = globrunqget(pp, 0);
		unlock(&sched.lock);
		return gp;
	}
	releasep(mp);
	pidleput(pp);
	unlock(&sched.lock);

	/*
	 * A spinning M must look once more after dropping its P and its
	 * spinning count: a G readied meanwhile by someone who saw us
	 * spinning (and so woke nobody) would be stranded otherwise.
	 */
	was_spinning = mp->spinning;
	if (was_spinning) {
		mp->spinning = false;
		if (atomic_fetch_sub(&sched.nmspinning, 1) <= 0)
			kgo_throw("findrunnable: negative nmspinning");
		for (i = 0; i < sched.gomaxprocs; i++) {
			if (!runqempty(sched.allp[i])) {
				lock(&sched.lock);
				pp = pidleget();
				unlock(&sched.lock);
				if (pp) {
					acquirep(mp, pp);
					become_spinning(mp);
					goto top;
				}
				break;
			}
		}
	}

	/* Sleep until the next timer of any P, or until woken. */
	for (;;) {
		now = nanotime();
		next = earliest_timer();
		/* Timers due now, or Gs that io completions readied onto the
		 * global queue while we slept (io.c): take a P to run them,
		 * if one is idle. */
		if (next <= now || atomic_load_explicit(&sched.runqsize,
							memory_order_relaxed)) {
			lock(&sched.lock);
			pp = pidleget();
			unlock(&sched.lock);
			if (pp) {
				acquirep(mp, pp);
				goto top;
			}
			/* No idle P: the busy Ps will see the due timers. */
		}
		stopm_idle(mp);
		if (mp->p)
			goto top;
		if (atomic_load(&sched.exiting))
			return NULL;
	}
}

/* ------------------------------------------------------------------ */
/* Running Gs                                                         */
/* ------------------------------------------------------------------ */

static void gfput(struct p *pp, struct g *gp);

/*
 * execute() - run gp on the current M (g0) until it switches back.
 * Returns the G that switched back (gp).
 */
static void execute(struct m *mp, struct g *gp, bool inherit)
{
	uint32_t st = G_RUNNABLE;

	if (!atomic_compare_exchange_strong(&gp->status, &st, G_RUNNING))
		kgo_throw("execute: G not runnable");
	smp_store_release(mp->curg, gp);
	gp->m = mp;
	/* "Kicks to an M awake": from here on, sysmon's. */
	if (unlikely(mp->kick_keep)) {
		mp->kick_keep = false;
		atomic_signal_fence(memory_order_seq_cst);
		kick_late_run(mp);
	}
	/* A request for an earlier slice is void (Go's execute). */
	atomic_store_explicit(&gp->preempt, false, memory_order_relaxed);
	TRACE(TR_GO_START, gp->goid, mp->p->id);
	if (!inherit)
		atomic_store_explicit(&mp->p->schedtick,
			atomic_load_explicit(&mp->p->schedtick,
					     memory_order_relaxed) + 1,
			memory_order_relaxed);
	atomic_store_explicit(&mp->p->nswitch,
		atomic_load_explicit(&mp->p->nswitch, memory_order_relaxed) + 1,
		memory_order_relaxed);
	kgo_switch(&mp->g0ctx, &gp->ctx, NULL, gp);
	TRACE(TR_GO_STOP, 0, 0);
	smp_store_release(mp->curg, NULL);
}

/* A locked M whose G is not running: hand off the P and sleep until
 * startlockedm() brings the G back with a P (Go's stoplockedm). */
static void stoplockedm(struct m *mp)
{
	struct p *pp;

	if (mp->p) {
		pp = releasep(mp);
		handoffp(pp);
	}
	/*
	 * The M counts in sched.nmidlelocked from here until whoever wakes
	 * it (startlockedm, or wake_all_idle at shutdown) takes the count
	 * back, under sched.lock, before the wakeup, as Go does: were the
	 * woken M to take it back itself, the waker's own stopm could see
	 * every M idle and checkdead would report a false deadlock. Our G
	 * can be run by another M (stolen from the P we released) before we
	 * get here; that M's startlockedm then finds us not yet asleep and
	 * leaves lockedwoken: its wakeup is already on our note.
	 */
	lock(&sched.lock);
	sched.nmidlelocked++;
	if (mp->lockedwoken) {
		mp->lockedwoken = false;
	} else {
		mp->lockedidle = true;
		checkdead();
		if (atomic_load(&sched.exiting)) {
			/* wake_all_idle may have run already. */
			mp->lockedidle = false;
			sched.nmidlelocked--;
			unlock(&sched.lock);
			return;
		}
	}
	unlock(&sched.lock);
	io_notesleep(mp, -1, false);
	noteclear(&mp->park);
	if (mp->nextp) {
		acquirep(mp, mp->nextp);
		mp->nextp = NULL;
	}
}

/* gp is locked to another M: give that M our P and gp, and stop. */
static void startlockedm(struct m *mp, struct g *gp)
{
	struct m *mp2 = gp->lockedm;
	struct p *pp = releasep(mp);

	/* mp2 runs its lockedg (gp) on our P. */
	lock(&sched.lock);
	sched.nmidlelocked--;
	if (mp2->lockedidle)
		mp2->lockedidle = false;
	else
		mp2->lockedwoken = true;	/* not asleep yet */
	mp2->nextp = pp;
	unlock(&sched.lock);
	notewakeup(&mp2->park);
	stopm(mp, -1);
}

static void mexit(struct m *mp);

/*
 * schedule() - the M's scheduling loop on g0. @next: a G to run first.
 * Returns only at shutdown.
 */
static void schedule(struct m *mp, struct g *next)
{
	struct g *gp;
	bool inherit = true;

	for (;;) {
		if (mp->lockedg && !next) {
			stoplockedm(mp);
			if (!mp->p)
				break;		/* shutdown */
			next = mp->lockedg;	/* handed to us with a P */
			inherit = false;
		}
		if (next) {
			gp = next;
			next = NULL;
		} else {
			gp = findrunnable(mp, &inherit);
			if (!gp)
				break;
			if (mp->spinning)
				resetspinning(mp);
			if (gp->lockedm && gp->lockedm != mp) {
				startlockedm(mp, gp);
				if (!mp->p)
					break;	/* shutdown */
				continue;
			}
		}
		execute(mp, gp, inherit);
		inherit = false;
		/* Back on g0: finish what the G asked for (mcall). That G is
		 * not gp if gp switched straight to others (direct_switch). */
		next = NULL;
		gp = mp->mcall_g;
		mp->mcall_g = NULL;
		mp->mcall_fn(gp);
		if (mp->curg) {	/* mcall_fn asked to resume a G at once */
			next = mp->curg;
			smp_store_release(mp->curg, NULL);
			inherit = true;
		}
		if (atomic_load_explicit(&sched.exiting, memory_order_relaxed) &&
		    !next)
			break;
	}
	mexit(mp);
}

/* ------------------------------------------------------------------ */
/* mcall functions: on g0, what to do with the G that switched out   */
/* ------------------------------------------------------------------ */

static void badgstatus(struct g *gp, uint32_t st, uint32_t from)
{
	kgo_printf("kgo: casgstatus: goroutine %llu is %s, not %s\n",
		   (unsigned long long)gp->goid, gstatus_str[st],
		   gstatus_str[from]);
	kgo_throw("casgstatus: bad incoming values");
}

static void casgstatus(struct g *gp, uint32_t from, uint32_t to)
{
	uint32_t st = from;

	if (!atomic_compare_exchange_strong(&gp->status, &st, to))
		badgstatus(gp, st, from);
}

static void park_m(struct g *gp)
{
	struct m *mp = getm();
	bool (*unlockf)(struct g *, void *) = mp->park_unlock;

	casgstatus(gp, G_RUNNING, G_WAITING);
	mp->park_unlock = NULL;
	if (unlockf && !unlockf(gp, mp->park_arg)) {
		casgstatus(gp, G_WAITING, G_RUNNABLE);
		smp_store_release(mp->curg, gp);		/* run it again at once */
	}
}

static void gosched_m(struct g *gp)
{
	struct m *mp = getm();

	casgstatus(gp, G_RUNNING, G_RUNNABLE);
	/*
	 * Go puts a yielding G on the global queue, behind everything
	 * queued there. We do the same when the global queue has Gs: a G
	 * that yields in a loop would otherwise let only one of them run per
	 * 61 schedules. When it is empty, the local tail is as fair (the
	 * local queue is FIFO) and saves a lock round trip per yield.
	 */
	if (atomic_load_explicit(&sched.runqsize, memory_order_relaxed))
		globrunqput(gp);
	else
		runqput(mp->p, gp, false);
}

static void preempt_m(struct g *gp)
{
	/* The next G's slice starts about now (sysmon.c, poll_g_slice_over);
	 * one clock read a slice. */
	atomic_store_explicit(&getm()->p->preempted_at, nanotime(),
			      memory_order_relaxed);
	casgstatus(gp, G_RUNNING, G_RUNNABLE);
	globrunqput(gp);
}

/*
 * gopreempt() - the running G was preempted: switch it out to the
 * global run queue (Go's gopreempt_m). @async: called by the SIGURG
 * handler on the G's stack (preempt.c); the G resumes there.
 */
void gopreempt(bool async)
{
	struct g *gp = getg();

	atomic_fetch_add_explicit(async ? &sched.preempt_async :
				  &sched.preempt_sync, 1, memory_order_relaxed);
	TRACE(TR_PREEMPT, gp->goid, async);
	mcall(preempt_m, 0);
}

/*
 * gdead() - a finished G, off its stack now (on g0, or on the stack of
 * the G it switched straight to): count it and keep it for reuse.
 */
static void gdead(struct m *mp, struct g *gp)
{
	gp->m = NULL;
	gp->lockedm = NULL;
	gp->lockedcount = 0;
	mp->lockedg = NULL;
	atomic_store_explicit(&mp->p->ngexit,
		atomic_load_explicit(&mp->p->ngexit, memory_order_relaxed) + 1,
		memory_order_relaxed);
	gfput(mp->p, gp);
}

static void goexit0(struct g *gp)
{
	struct m *mp = getm();

	if (gp->is_main) {
		/* main returned: the program is over (Go's exit). */
		atomic_store(&sched.exiting, true);
		gp->is_main = false;
		gdead(mp, gp);
		wake_all_idle();
		notewakeup(&sched.main_done);	/* kgo_run's thread */
		return;
	}
	gdead(mp, gp);
}

/* ------------------------------------------------------------------ */
/* G creation and exit                                                */
/* ------------------------------------------------------------------ */

/* The first function every G runs, on its own stack. */
static void goentry(void *arg)
{
	struct g *gp = arg;

#ifdef KGO_ASAN
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
	finish_switch();
	gp->fn(gp->arg);
	kgo_exit();
}

static bool direct_switch(struct m *mp, struct g *gp, enum switch_why why);

void kgo_exit(void)
{
	struct m *mp = getm();
	struct g *gp = mp ? mp->curg : NULL;

	if (!gp)
		kgo_throw("kgo_exit: not called from a goroutine");
	if (unlikely(kgo_tls_locks))
		kgo_throw("kgo_exit: runtime lock held");
	/*
	 * G_DEAD is set on the way out so that kgo_switch knows this
	 * context never resumes. With local work, the G switches straight
	 * to the next G, which frees it (finish_switch); else goexit0
	 * frees it on g0. The straight way saves a switch to g0 and a trip
	 * through schedule per G: at P=1, spawn+join went from 620 to 543
	 * instructions per G (`valgrind --tool=callgrind
	 * build/bench/spawn_join -p 1 -n 200000`).
	 */
	setgstatus(gp, G_RUNNING, G_DEAD);
	if (!gp->is_main)
		direct_switch(mp, gp, SW_EXIT);
	mcall(goexit0, 0);
	kgo_throw("kgo_exit: dead G resumed");
}

static void allgadd(struct g *gp)
{
	lock(&sched.allglock);
	gp->allprev = NULL;
	gp->alllink = sched.allgs;
	if (sched.allgs)
		sched.allgs->allprev = gp;
	sched.allgs = gp;
	unlock(&sched.allglock);
}

static void allgremove(struct g *gp)
{
	lock(&sched.allglock);
	if (gp->allprev)
		gp->allprev->alllink = gp->alllink;
	else
		sched.allgs = gp->alllink;
	if (gp->alllink)
		gp->alllink->allprev = gp->allprev;
	unlock(&sched.allglock);
}

static void gfree_g(struct g *gp)
{
#ifdef KGO_TSAN
	if (gp->tsan_fiber)
		__tsan_destroy_fiber(gp->tsan_fiber);
	gp->tsan_fiber = NULL;
#endif
	allgremove(gp);
	stack_free_g(gp);
}

/* Global queue length per P beyond which kgo_go yields. */
#define SPAWN_BACKPRESSURE 256
/* Gs on the spawner's own queue, the oldest never run, at which kgo_go
 * yields (kgo_go_sized). */
#define SPAWN_BACKLOG 32

/* How many dead Gs the global list keeps before giving memory back. */
static int32_t gfree_global_max(void)
{
	return 4 * SPAWN_BACKPRESSURE * sched.gomaxprocs;
}

/*
 * gfput() - keep a dead G for reuse (Go's gfput): on the P's list, and
 * past GFREE_LOCAL_MAX half of them go to the global list. Nothing is
 * given back to the kernel here: doing it G by G (MADV_DONTNEED, with a
 * TLB shootdown each on a multi-threaded process) made 1M Gs take 5.7 s
 * to exit instead of 0.5 s. sysmon gives the memory of the surplus back
 * in the background (gfree_scavenge), as Go's scavenger does.
 */
static void gfput(struct p *pp, struct g *gp)
{
	if (atomic_load_explicit(&gp->status, memory_order_relaxed) != G_DEAD)
		casgstatus(gp, G_RUNNING, G_DEAD);
	if (gp->stack.size != sched.stack_size) {
		gfree_g(gp);
		return;
	}
	gp->schedlink = pp->gfree;
	pp->gfree = gp;
	if (++pp->ngfree >= GFREE_LOCAL_MAX) {
		lock(&sched.gflock);
		while (pp->ngfree > GFREE_LOCAL_MAX / 2) {
			struct g *g1 = pp->gfree;

			pp->gfree = g1->schedlink;
			pp->ngfree--;
			g1->schedlink = sched.gfree;
			sched.gfree = g1;
			WRITE_ONCE(sched.ngfree, sched.ngfree + 1);
		}
		unlock(&sched.gflock);
	}
}

/*
 * gfree_scavenge() - sysmon, at most once a second: give the memory of
 * dead Gs beyond gfree_global_max() back to the kernel, a batch a time.
 */
void gfree_scavenge(int64_t now)
{
	static _Atomic int64_t last;
	int64_t l = atomic_load_explicit(&last, memory_order_relaxed);
	struct g *drop = NULL;
	int32_t n = 0;

	if (now - l < 1000000000 ||
	    READ_ONCE(sched.ngfree) <= gfree_global_max() ||
	    !atomic_compare_exchange_strong(&last, &l, now))
		return;
	lock(&sched.gflock);
	while (sched.ngfree > gfree_global_max() && n < 65536) {
		struct g *g1 = sched.gfree;

		sched.gfree = g1->schedlink;
		WRITE_ONCE(sched.ngfree, sched.ngfree - 1);
		g1->schedlink = drop;
		drop = g1;
		n++;
	}
	atomic_fetch_add(&sched.gscavenging, n);
	unlock(&sched.gflock);
	while (drop) {
		struct g *g1 = drop;

		drop = g1->schedlink;
		gfree_g(g1);
		atomic_fetch_sub(&sched.gscavenging, 1);
	}
}

/* gfget() - a dead G of the default size, or NULL. */
static struct g *gfget(struct p *pp)
{
	struct g *gp;

	if (!pp->gfree && READ_ONCE(sched.ngfree)) {
		lock(&sched.gflock);
		while (pp->ngfree < GFREE_LOCAL_MAX / 2 && sched.gfree) {
			gp = sched.gfree;
			sched.gfree = gp->schedlink;
			WRITE_ONCE(sched.ngfree, sched.ngfree - 1);
			gp->schedlink = pp->gfree;
			pp->gfree = gp;
			pp->ngfree++;
		}
		unlock(&sched.gflock);
	}
	gp = pp->gfree;
	if (gp) {
		pp->gfree = gp->schedlink;
		pp->ngfree--;
	}
	return gp;
}

static uint64_t newgoid(struct p *pp)
{
	if (!pp)
		return atomic_fetch_add(&sched.goidgen, 1) + 1;
	if (pp->goidcache == pp->goidcacheend) {
		/* Batch of 16 ids, as Go's goidcache: one atomic per batch. */
		pp->goidcache = atomic_fetch_add(&sched.goidgen, 16) + 1;
		pp->goidcacheend = pp->goidcache + 16;
	}
	return pp->goidcache++;
}

/* newproc() - make a runnable G on pp (NULL: a thread with no P, which
 * takes no G from a P's free list). */
static struct g *newproc(struct p *pp, void (*fn)(void *), void *arg,
			 size_t size)
{
	struct g *gp = NULL;

	if (pp && size == sched.stack_size)
		gp = gfget(pp);
	if (!gp) {
		gp = stack_alloc_g(size);
		/*
		 * Out of memory (RLIMIT_AS, overcommit) while sysmon gives
		 * dead Gs' slots back to the pool (gfree_scavenge, a
		 * madvise each): they are on no list for gfget and not yet
		 * in the pool, so wait for them before saying -ENOMEM.
		 * faults_test address_space: on 6.1 in a VM, where each
		 * MADV_DONTNEED is slow, the second fill got 1087 and 1240
		 * Gs where the first had 1279 (2 runs of 4 failed).
		 */
		while (!gp && atomic_load(&sched.gscavenging)) {
			while (atomic_load(&sched.gscavenging))
				sched_yield();
			gp = stack_alloc_g(size);
		}
		if (!gp)
			return NULL;
		allgadd(gp);
	}
	gp->goid = newgoid(pp);
	gp->fn = fn;
	gp->arg = arg;
	gp->m = NULL;
	gp->lockedm = NULL;
	gp->lockedcount = 0;
	gp->schedlink = NULL;
	gp->waitreason = WAIT_NONE;
	gp->waiting = NULL;
	gp->param = NULL;
	gp->is_main = false;
	atomic_store_explicit(&gp->preempt, false, memory_order_relaxed);
	atomic_store_explicit(&gp->selectdone, 0, memory_order_relaxed);
#ifdef KGO_TSAN
	if (!gp->tsan_fiber)
		gp->tsan_fiber = __tsan_create_fiber(0);
#endif
#ifdef KGO_ASAN
	/* A reused stack still carries the poisoned redzones of the frames
	 * its last G died with. */
	__asan_unpoison_memory_region((void *)gp->stack.lo,
				      gp->stack.hi - gp->stack.lo);
#endif
	/* The frame is written by gstart, on the M that first runs gp. */
	gp->fpctl = kgo_ctx_fpctl();
	atomic_store_explicit(&gp->unstarted, true, memory_order_relaxed);
	atomic_store_explicit(&gp->status, G_RUNNABLE, memory_order_release);
	count_on_p(pp ? &pp->gs_created : NULL, &sched.gs_created_nop);
	TRACE(TR_GO_CREATE, gp->goid, kgo_self());
	return gp;
}

/*
 * spawn_backlog() - pp's queue holds SPAWN_BACKLOG Gs or more and the
 * oldest has never run; owner only. Thieves may take that G meanwhile
 * (it may even be running or reused by now): its unstarted is then a
 * stale hint, never a fault (struct g memory stays mapped).
 */
static bool spawn_backlog(struct p *pp)
{
	uint32_t head = atomic_load_explicit(&pp->runqhead, memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_relaxed);
	struct g *oldest;

	if (tail - head < SPAWN_BACKLOG)
		return false;
	oldest = atomic_load_explicit(&pp->runq[head % RUNQ_SIZE],
				      memory_order_relaxed);
	return atomic_load_explicit(&oldest->unstarted, memory_order_relaxed);
}

/*
 * kgo_go from a thread that is no G (a library's callback thread; Go's
 * cgo callback would take an extra M with needm, we need not): the G is
 * made with no P (newproc(NULL): a stack from the pool, an id from
 * sched.goidgen) and goes on the global queue, and wakep finds it a P.
 * kgo_run's end must not free the runtime under such a call: the call
 * counts itself in foreign_spawning, then looks at foreign_spawn_open;
 * run() closes that once main has returned, then waits for
 * foreign_spawning to fall to 0. Both seq_cst (a store then a load on
 * each side): either the caller sees the door closed (-EPERM), or run()
 * sees it inside and waits. A G queued after main returned is abandoned
 * with the others.
 */
static _Atomic bool foreign_spawn_open;
static _Atomic int foreign_spawning;

static int newproc_foreign(void (*fn)(void *), void *arg, size_t size)
{
	struct g *gp;
	int ret = 0;

	atomic_fetch_add(&foreign_spawning, 1);
	if (!atomic_load(&foreign_spawn_open) || kgo_tls_m) {
		/* No runtime, or its main returned; or g0 (runtime code). */
		ret = -EPERM;
		goto out;
	}
	foreign_note();
	gp = newproc(NULL, fn, arg, size);
	if (!gp) {
		ret = -ENOMEM;
		goto out;
	}
	globrunqput(gp);
	wakep();
out:
	atomic_fetch_sub(&foreign_spawning, 1);
	return ret;
}

static void foreign_spawn_close(void)
{
	atomic_store(&foreign_spawn_open, false);
	while (atomic_load(&foreign_spawning))
		sched_yield();
}

int kgo_go_sized(void (*fn)(void *), void *arg, size_t stack_size)
{
	struct m *mp;
	struct p *pp;
	struct g *gp;

	if (!fn)
		return -EINVAL;
	if (stack_size == 0)
		stack_size = sched.stack_size;
	else if (stack_size < KGO_STACK_MIN || stack_size > KGO_STACK_MAX)
		return -EINVAL;
	mp = getm();
	if (!mp || !mp->curg || !mp->p)
		return newproc_foreign(fn, arg, stack_size);
	gp = newproc(mp->p, fn, arg, stack_size);
	if (!gp)
		return -ENOMEM;
	/* getm() again is not needed: nothing here can park. */
	pp = mp->p;
	runqput(pp, gp, true);
	wakep();
	/*
	 * Back-pressure (not in Go): a G that makes Gs faster than the Ps
	 * run them fills the global queue without bound, and every queued G
	 * holds a stack page; past a few thousand of them, each G run misses
	 * the TLB and the caches, and spawning slows down 5x (spawn+join
	 * bench here: 700-1200 ns/G without it, 125-180 with it). So the spawner
	 * yields, which puts it behind the queued Gs.
	 *
	 * It yields much earlier, too: once SPAWN_BACKLOG Gs wait on its own
	 * P and the oldest of them has never run. Gs made 256 or more ahead
	 * of their run start on cold stacks: writing the first frame
	 * (kgo_ctx_make_fp) was 21% of `perf record build/bench/spawn_join
	 * -p 2`, and the queue spilled 80% of the Gs through the global
	 * one. With the backlog kept to 32, a G's stack is reused while it
	 * is still in the TLB and caches, the other P steals half of it,
	 * and nothing goes global: spawn_join -p 2 129 -> 66 ns/G, -p 1 78
	 * -> 61 (medians of 7, alternating; 16: 73 and 58, 64: 72 and 61,
	 * 128: 91 and 71). The oldest must be unstarted, so that a spawner
	 * behind Gs that run and yield (not a backlog of new ones) does
	 * not wait for all of them at each kgo_go. A G wired to its M
	 * (kgo_lock_m) is left to the global rule: each of its yields
	 * hands the P to another M and back, two futex wakeups.
	 */
	if (unlikely(atomic_load_explicit(&sched.runqsize, memory_order_relaxed) >
		     SPAWN_BACKPRESSURE * sched.gomaxprocs) ||
	    unlikely(spawn_backlog(pp) && !mp->lockedg))
		kgo_yield();
	else
		kgo_checkpreempt();
	return 0;
}

int kgo_go(void (*fn)(void *), void *arg)
{
	return kgo_go_sized(fn, arg, 0);
}

int newproc_g0(void (*fn)(void *), void *arg)
{
	struct m *mp = getm();
	struct g *gp;

	if (!mp || mp->curg || !mp->p)
		kgo_throw("newproc_g0: not on g0 with a P");
	gp = newproc(mp->p, fn, arg, sched.stack_size);
	if (!gp)
		return -ENOMEM;
	runqput(mp->p, gp, false);
	wakep();
	return 0;
}

/* ------------------------------------------------------------------ */
/* Parking and readying                                               */
/* ------------------------------------------------------------------ */

/*
 * direct_switch() - switch from gp straight to the next G of the local
 * run queue, without going through g0: half the switches of
 * mcall+schedule for the common case of a yield or a park with local
 * work. What gp wanted (be queued again, or parked with unlockf) is done
 * by finish_switch() on the other side, once gp is off its stack.
 * On every 61st switch (fair_due), and whenever anything unusual is
 * going on (a locked G or M, shutdown, a global queue to serve), it
 * declines and the caller takes the slow path through g0, where
 * findrunnable serves the global queue first and runs timers. The
 * switch is counted in p->nswitch, and in p->schedtick unless the next
 * G comes from runnext and inherits the slice (top of file, "Time
 * slices and fairness"). Return: true once gp has been switched out
 * and back in.
 */
static bool direct_switch(struct m *mp, struct g *gp, enum switch_why why)
{
	bool park = why != SW_YIELD;
	struct p *pp = mp->p;
	struct g *next;
	bool inherit;

	/*
	 * The slow path counts the switch in execute, whichever G it
	 * picks, and moves fairtick: the next decline is 61 switches on.
	 * (When this counted schedtick % 61 instead, a runnext G, which
	 * execute did not count, left it stuck at 60 and sent every
	 * later switch the slow way: park_m and schedule at 16 % of the
	 * chan_rt -p 1 profile.)
	 */
	if (unlikely(fair_due(pp)))
		return false;
	if (mp->lockedg ||
	    atomic_load_explicit(&sched.exiting, memory_order_relaxed) ||
	    (!park && atomic_load_explicit(&sched.runqsize,
					   memory_order_relaxed)))
		return false;
	next = runqget(pp, &inherit);
	if (!next)
		return false;
	/*
	 * A park's unlockf runs after the switch, on the next G's stack;
	 * a G that never ran first writes its first frame (gstart), whose
	 * page fault zeroes a fresh page: ~3-6 us on this VM with the
	 * parker's lock (a channel's) still held. With 1M Gs parking on
	 * one channel at P=2, the other M slept on that lock 150K times
	 * and the futex calls took a third of the run (`perf record -e
	 * syscalls:sys_enter_futex -g build/bench/parked -p 2`). Through
	 * g0, park_m drops the lock before the new G is started.
	 */
	if (unlikely(next->lockedm || (park && atomic_load_explicit(
			&next->unstarted, memory_order_relaxed) &&
				       mp->park_unlock))) {
		runqput(pp, next, true);
		return false;
	}
	mp->after_g = gp;
	mp->after_why = why;
	setgstatus(next, G_RUNNABLE, G_RUNNING);	/* ours: runqget took it */
	next->m = mp;
	atomic_store_explicit(&next->preempt, false, memory_order_relaxed);
	TRACE(TR_GO_STOP, 0, 0);
	TRACE(TR_GO_START, next->goid, pp->id);
	smp_store_release(mp->curg, next);
	if (!inherit)
		atomic_store_explicit(&pp->schedtick,
			atomic_load_explicit(&pp->schedtick,
					     memory_order_relaxed) + 1,
			memory_order_relaxed);
	atomic_store_explicit(&pp->nswitch,
		atomic_load_explicit(&pp->nswitch, memory_order_relaxed) + 1,
		memory_order_relaxed);
	kgo_switch(&gp->ctx, &next->ctx, gp, next);
	return true;
}

void gopark(bool (*unlockf)(struct g *gp, void *arg), void *arg,
	    enum waitreason reason)
{
	struct m *mp = getm();
	struct g *gp = mp->curg;

	/* No P: between kgo_syscall_begin and _end (traceback.c). */
	if (unlikely(!mp->p))
		park_misuse(reason);
	gp->waitreason = reason;
	gp->waitsince = park_stamp();
	TRACE(TR_GO_PARK, gp->goid, reason);
	mp->park_unlock = unlockf;
	mp->park_arg = arg;
	/* With an unlockf, the locks it releases (select: one per
	 * channel) stay held across the switch; without, none may. */
	if (unlikely(!unlockf && kgo_tls_locks))
		kgo_throw("gopark: parking with a runtime lock held");
	if (direct_switch(mp, gp, SW_PARK))
		return;
	/* The locks that unlockf releases are still held: mcall allows it. */
	mcall(park_m, unlockf ? INT_MAX : 0);
}

static bool parkunlock(struct g *gp, void *arg)
{
	(void)gp;
	unlock(arg);
	return true;
}

void goparkunlock(struct kgo_lock *l, enum waitreason reason)
{
	gopark(parkunlock, l, reason);
}

static void ready(struct g *gp, bool next)
{
	struct m *mp = getm();
	uint32_t st;

	/* The G may still be on its way off its stack (status RUNNING
	 * until park_m runs on its g0): wait for that. */
	for (;;) {
		st = atomic_load_explicit(&gp->status, memory_order_acquire);
		/*
		 * One waker per park (whoever took the G off its wait list,
		 * under that list's lock or by select's CAS; an unlockf that
		 * fails leaves no waker), and the parker does not write the
		 * status after WAITING: a store does what a CAS would.
		 */
		if (st == G_WAITING) {
			atomic_store_explicit(&gp->status, G_RUNNABLE,
					      memory_order_release);
			break;
		}
		if (st != G_RUNNING) {
			kgo_printf("kgo: goready: goroutine %llu is %s\n",
				   (unsigned long long)gp->goid,
				   gstatus_str[st]);
			kgo_throw("goready: bad g status");
		}
		cpu_relax();
	}
	TRACE(TR_GO_READY, gp->goid, kgo_self());
	if (mp && mp->p) {
		struct p *pp = mp->p;

		runqput(pp, gp, next);
		/* Deferred wakeups, above: a G readied by a G into an
		 * otherwise empty queue. */
		if (next && mp->curg &&
		    atomic_load_explicit(&pp->runqhead, memory_order_relaxed) ==
		    atomic_load_explicit(&pp->runqtail, memory_order_relaxed)) {
			atomic_store_explicit(&pp->wakep_due, 1,
					      memory_order_relaxed);
			sysmon_wakep_deferred();
			return;
		}
	} else {
		globrunqput(gp);
	}
	wakep();
}

/* The running G made a runtime call that did not park: a wakeup its
 * previous call deferred is due now (and one from this call is armed). */
void wakep_overdue(struct p *pp)
{
	atomic_store_explicit(&pp->wakep_due, 0, memory_order_relaxed);
	wakep();
}

static void wakep_deferred(struct p *pp)
{
	if (atomic_load_explicit(&pp->wakep_due, memory_order_relaxed) == 1)
		atomic_store_explicit(&pp->wakep_due, 2, memory_order_relaxed);
	else
		wakep_overdue(pp);
}

void goready(struct g *gp)
{
	ready(gp, true);
}

void goready_tail(struct g *gp)
{
	ready(gp, false);
}

void sudog_ready(struct sudog *s)
{
	if (s->g)
		goready(s->g);
	else
		notewakeup(s->note);
}

void injectglist(struct g *list)
{
	struct g *gp, *tail = NULL;
	int32_t n = 0;

	for (gp = list; gp; gp = gp->schedlink) {
		casgstatus(gp, G_WAITING, G_RUNNABLE);
		TRACE(TR_GO_READY, gp->goid, 0);
		tail = gp;
		n++;
	}
	if (n)
		globrunqputbatch(list, tail, n);
}

void kgo_yield(void)
{
	struct m *mp = getm();
	struct g *gp = mp ? mp->curg : NULL;

	if (!gp)
		return;
	if (unlikely(!mp->p))
		park_misuse(WAIT_NONE);
	atomic_store_explicit(&gp->preempt, false, memory_order_relaxed);
	if (unlikely(kgo_tls_locks))
		kgo_throw("kgo_yield: runtime lock held");
	if (direct_switch(mp, gp, SW_YIELD))
		return;
	mcall(gosched_m, 0);
}

void kgo_checkpreempt(void)
{
	struct m *mp = getm();
	struct g *gp = mp ? mp->curg : NULL;

	if (mp && mp->p && unlikely(atomic_load_explicit(&mp->p->wakep_due,
							 memory_order_relaxed)))
		wakep_deferred(mp->p);

	/* No P: in a syscall section, where a G is never preempted. */
	if (gp && atomic_load_explicit(&gp->preempt, memory_order_relaxed) &&
	    !kgo_tls_locks && mp->p) {
		atomic_store_explicit(&gp->preempt, false, memory_order_relaxed);
		gopreempt(false);
	}
}

uint64_t kgo_self(void)
{
	struct g *gp = getg();

	return gp ? gp->goid : 0;
}

int kgo_maxprocs(void)
{
	return sched.running ? sched.gomaxprocs : 0;
}

void kgo_lock_m(void)
{
	struct m *mp = getm();
	struct g *gp = mp ? mp->curg : NULL;

	if (!gp)
		return;
	if (gp->lockedcount++ == 0) {
		gp->lockedm = mp;
		mp->lockedg = gp;
	}
}

void kgo_unlock_m(void)
{
	struct m *mp = getm();
	struct g *gp = mp ? mp->curg : NULL;

	if (!gp || gp->lockedcount == 0)
		return;
	if (--gp->lockedcount == 0) {
		gp->lockedm = NULL;
		mp->lockedg = NULL;
	}
}

const char *kgo_ctx_impl(void)
{
	return KGO_CTX_IMPL;
}

/* ------------------------------------------------------------------ */
/* Syscalls: Go's entersyscall / exitsyscall                          */
/* ------------------------------------------------------------------ */

/*
 * Syscall protocol
 * ----------------
 * A G about to make a call that may block its thread calls
 * kgo_syscall_begin(): the G goes G_SYSCALL, the M keeps a pointer to
 * its P in m->oldp but no longer owns it, and the P goes P_SYSCALL.
 * Nobody else may use the P while it is P_SYSCALL, but anyone may take
 * it by a CAS P_SYSCALL -> P_IDLE (retake, in sysmon.c: when the M is
 * observed blocked) and hand it off. On return, kgo_syscall_end()
 * tries the same CAS on its old P: if it wins, the P was not taken and
 * the G goes on at once (two atomics in all). If it loses, the M tries
 * any idle P, and failing that queues the G globally and parks itself.
 */
static void entersyscall(bool blocking)
{
	struct m *mp = getm();
	struct g *gp = mp ? mp->curg : NULL;
	struct p *pp;

	if (!gp || !mp->p)
		return;
	pp = mp->p;
	/* The runnext G should not wait for sysmon to retake the P. */
	if (unlikely(atomic_load_explicit(&pp->wakep_due, memory_order_relaxed)))
		wakep_overdue(pp);
	setgstatus(gp, G_RUNNING, G_SYSCALL);	/* only we change a running G */
	TRACE(TR_SYSCALL_ENTER, gp->goid, blocking);
	atomic_store_explicit(&pp->syscalltid, mp->tid, memory_order_relaxed);
	atomic_store_explicit(&pp->syscalltick,
		atomic_load_explicit(&pp->syscalltick, memory_order_relaxed) + 1,
		memory_order_relaxed);
	mp->oldp = pp;
	mp->p = NULL;
	smp_store_release(pp->m, NULL);
	if (blocking) {
		/* Go's entersyscallblock: hand the P off now. Forget it, as
		 * Go does: by the time we return it may be another M's P in
		 * a syscall, which our fast path's CAS would steal. */
		mp->oldp = NULL;
		atomic_store_explicit(&pp->status, P_IDLE, memory_order_relaxed);
		TRACE(TR_HANDOFF, pp->id, 0);
		atomic_fetch_add_explicit(&sched.handoffs, 1,
					  memory_order_relaxed);
		handoffp(pp);
	} else {
		/* Release: the P's state is published before it can be
		 * taken; pairs with the acquire CAS in retake and
		 * exitsyscall. */
		atomic_store_explicit(&pp->status, P_SYSCALL,
				      memory_order_release);
		syscall_entered(pp);
	}
	/* Last: from here to kgo_syscall_end's look at mp->abandon this M
	 * touches nothing of the runtime ("Abandoning Ms"). Release: m0,
	 * seeing it, sees all that came before done. */
	atomic_store_explicit(&mp->insyscall, 1, memory_order_release);
}

void kgo_syscall_begin(void)
{
	entersyscall(false);
}

void kgo_syscall_begin_blocking(void)
{
	entersyscall(true);
}

static void syscall_abandoned(struct m *mp) __attribute__((noreturn, cold));

/*
 * take_blocked_p() - bpf mode, an M with a G to run and no idle P: take
 * the P of an M that the kernel saw blocked in its syscall. Work that
 * comes after such a block (this G, back from its own call) woke no
 * one, and polling would find it only at sysmon's next look. The
 * records are plain loads; the P is taken with retake's CAS.
 */
static struct p *take_blocked_p(void)
{
	int64_t now = 0;
	uint32_t st;
	int i;

	if (READ_ONCE(sched.observe) != KGO_OBSERVE_BPF)
		return NULL;
	for (i = 0; i < sched.gomaxprocs; i++) {
		struct p *pp = sched.allp[i];

		if (atomic_load_explicit(&pp->status, memory_order_relaxed) !=
		    P_SYSCALL)
			continue;
		if (!now)
			now = nanotime();
		st = P_SYSCALL;
		if (!observe_syscall_blocked(pp, now) ||
		    !atomic_compare_exchange_strong_explicit(&pp->status, &st,
				P_IDLE, memory_order_acquire,
				memory_order_relaxed))
			continue;
		atomic_fetch_add_explicit(&sched.handoffs, 1,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&sched.handoffs_kernel, 1,
					  memory_order_relaxed);
		TRACE(TR_HANDOFF, pp->id, 1);
		return pp;
	}
	return NULL;
}

/* On g0: the G came back from its syscall without a P to run on. */
static void exitsyscall0(struct g *gp)
{
	struct m *mp = getm();
	struct p *pp;

	casgstatus(gp, G_SYSCALL, G_RUNNABLE);
	lock(&sched.lock);
	pp = pidleget();
	unlock(&sched.lock);
	if (!pp)
		pp = take_blocked_p();
	if (!pp) {
		lock(&sched.lock);
		pp = pidleget();
		if (!pp)
			globrunqputbatch_locked(gp, gp, 1);
		unlock(&sched.lock);
	}
	if (pp) {
		acquirep(mp, pp);
		smp_store_release(mp->curg, gp);		/* run it again at once */
		return;
	}
	if (mp->lockedg) {
		/* schedule() will stop until the G comes back to us. */
		return;
	}
	stopm(mp, -1);
	/* With a P from startm, schedule() finds work; at shutdown, none. */
}

/*
 * syscall_resume() - a G is back from its syscall with a P: honour the
 * stop requests made meanwhile. Once main has returned it stops here,
 * so its M can leave: sysmon stops the running Gs at exit (retake),
 * but a G that loops on short syscalls is P_SYSCALL at most of its
 * looks, and kgo_run waited seconds for it (sysmon_test
 * exit_amid_handoffs: 9 s for one run before this).
 */
static inline void syscall_resume(struct g *gp)
{
	if (unlikely(atomic_load_explicit(&sched.exiting,
					  memory_order_relaxed)))
		atomic_store_explicit(&gp->preempt, true, memory_order_relaxed);
	if (unlikely(atomic_load_explicit(&gp->preempt, memory_order_relaxed)))
		kgo_checkpreempt();
}

void kgo_syscall_end(void)
{
	struct m *mp = getm();
	struct g *gp = mp ? mp->curg : NULL;
	struct p *oldp;
	uint32_t st = P_SYSCALL;

	if (!gp || atomic_load_explicit(&gp->status, memory_order_relaxed) !=
	    G_SYSCALL)
		return;
	/* Out of the window first, then look whether m0 gave up on us: the
	 * store before the load, as unlock() orders its own (m0 fences
	 * with membarrier; "Abandoning Ms"). */
	atomic_store_explicit(&mp->insyscall, 0, memory_order_relaxed);
	if (likely(lock_asym))
		atomic_signal_fence(memory_order_seq_cst);
	else
		lock_fence_full();
	if (unlikely(atomic_load_explicit(&mp->abandon, memory_order_relaxed)))
		syscall_abandoned(mp);
	oldp = mp->oldp;
	mp->oldp = NULL;
	/* Fast path: our P was not taken. Acquire pairs with the release
	 * store in entersyscall (and retake's CAS). */
	if (oldp && atomic_compare_exchange_strong_explicit(&oldp->status,
			&st, P_RUNNING, memory_order_acquire,
			memory_order_relaxed)) {
		mp->p = oldp;
		smp_store_release(oldp->m, mp);
		atomic_store_explicit(&gp->status, G_RUNNING,
				      memory_order_relaxed);
		TRACE(TR_SYSCALL_EXIT, gp->goid, 1);
		syscall_resume(gp);
		return;
	}
	TRACE(TR_SYSCALL_EXIT, gp->goid, 0);
	/* Any idle P will do. */
	if (atomic_load_explicit(&sched.npidle, memory_order_relaxed)) {
		struct p *pp;

		lock(&sched.lock);
		pp = pidleget();
		unlock(&sched.lock);
		if (pp) {
			acquirep(mp, pp);
			atomic_store_explicit(&gp->status, G_RUNNING,
					      memory_order_relaxed);
			syscall_resume(gp);
			return;
		}
	}
	mcall(exitsyscall0, 0);
}

/*
 * retake_syscall() - take pp from an M that is in a syscall, if it is
 * still P_SYSCALL, and hand it off. Return: true if taken.
 */
bool retake_syscall(struct p *pp, bool kernel_observed)
{
	uint32_t st = P_SYSCALL;

	if (!atomic_compare_exchange_strong_explicit(&pp->status, &st, P_IDLE,
			memory_order_acquire, memory_order_relaxed))
		return false;
	atomic_fetch_add_explicit(&sched.handoffs, 1, memory_order_relaxed);
	if (kernel_observed)
		atomic_fetch_add_explicit(&sched.handoffs_kernel, 1,
					  memory_order_relaxed);
	TRACE(TR_HANDOFF, pp->id, kernel_observed);
	handoffp(pp);
	return true;
}

/*
 * kgo_syscall() reads six arguments whatever the caller passed, as
 * glibc's syscall(2) does: the words past the real ones are the
 * caller's stack (x86_64, past five) and the kernel ignores them. ASan
 * would report that read as a stack underflow, hence no_sanitize.
 */
__attribute__((no_sanitize_address))
long kgo_syscall(long nr, ...)
{
	va_list ap;
	long a[6], r;
	int i;

	va_start(ap, nr);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	kgo_syscall_begin();
	/* -errno from the kernel itself: no errno to read back. */
	r = kgo_arch_syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	kgo_syscall_end();
	return r;
}

/* ------------------------------------------------------------------ */
/* Deadlock detection and the goroutine dump                          */
/* ------------------------------------------------------------------ */

/* dump_goroutines() is in traceback.c. */

/*
 * checkdead() - sched.lock held. If no M is running (all idle, or
 * waiting for their locked G), no timer is pending and no io is in
 * flight, nothing can ever wake the Gs that wait: report and exit 2,
 * as Go does.
 */
void checkdead(void)
{
	int32_t run = sched.mnext - sched.nmexited - sched.nmidle -
		      sched.nmidlelocked - sched.nmsys;
	int i;

	if (run > 0 || atomic_load(&sched.exiting) || !sched.running)
		return;
	if (run < 0) {
		kgo_printf("kgo: checkdead: nmidle=%d nmidlelocked=%d mcount=%d\n",
			   sched.nmidle, sched.nmidlelocked,
			   sched.mnext - sched.nmexited);
		kgo_throw("checkdead: inconsistent counts");
	}
	if (atomic_load(&sched.nio) > 0 || atomic_load(&sched.nsyscall) > 0 ||
	    atomic_load(&kgo_foreign_n) > 0 ||
	    atomic_load_explicit(&kgo_foreign_seen, memory_order_relaxed))
		return;
	for (i = 0; i < sched.gomaxprocs; i++)
		if (atomic_load(&sched.allp[i]->timers.next) != INT64_MAX)
			return;
	if (atomic_load(&sched.runqsize) > 0)
		return;
	for (i = 0; i < sched.gomaxprocs; i++)
		if (!runqempty(sched.allp[i]))
			return;
	kgo_printf("kgo: all goroutines are asleep - deadlock!\n\n");
	dump_goroutines();
	_exit(2);
}

/*
 * The decrement is seq_cst and checkdead's load of kgo_foreign_n is
 * under sched.lock, as is the idle count of an M going idle (mput): of
 * the last foreign thread leaving and the last M going idle, the one
 * that comes second sees the other and reports.
 */
void foreign_count(int delta)
{
	if (atomic_fetch_add(&kgo_foreign_n, delta) + delta != 0)
		return;
	lock(&sched.lock);
	checkdead();
	unlock(&sched.lock);
}

int kgo_foreign_enter(void)
{
	if (kgo_tls_m)
		return -EINVAL;		/* a G (or the runtime): not foreign */
	if (kgo_tls_foreign++ == 0)
		foreign_count(1);
	return 0;
}

int kgo_foreign_leave(void)
{
	if (kgo_tls_m || kgo_tls_foreign == 0)
		return -EINVAL;
	if (--kgo_tls_foreign == 0)
		foreign_count(-1);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Ms: start and exit                                                 */
/* ------------------------------------------------------------------ */

static void minit(struct m *mp)
{
	kgo_tls_m = mp;
	mp->tid = (pid_t)syscall(SYS_gettid);
	sysmon_minit(mp);
#ifdef KGO_TSAN
	mp->tsan_fiber = __tsan_get_current_fiber();
#endif
#ifdef KGO_ASAN
	{
		pthread_attr_t attr;
		void *addr;
		size_t size;

		if (!pthread_getattr_np(pthread_self(), &attr)) {
			pthread_attr_getstack(&attr, &addr, &size);
			mp->asan_stack_bottom = addr;
			mp->asan_stack_size = size;
			pthread_attr_destroy(&attr);
		}
	}
#endif
	signals_minit(mp);
}

static void *mstart(void *arg)
{
	struct m *mp = arg;
	struct p *pp = mp->nextp;

	minit(mp);
	mp->nextp = NULL;
	if (pp)
		acquirep(mp, pp);
	else
		stopm(mp, -1);
	if (mp->p)
		schedule(mp, NULL);
	else
		mexit(mp);
	return NULL;
}

/*
 * mexit() - the M leaves at shutdown. Its P (if any) is released, and
 * m0, which waits in kgo_run for all of them (wait_ms), is told.
 */
static void mexit(struct m *mp)
{
	if (mp->p)
		releasep(mp);
	/* Before the thread ends: the kernel would cancel what its ring
	 * has in flight, and the buffers are about to go (io.c). */
	io_mexit(mp);
	signals_mexit(mp);
	if (mp->is_m0)
		return;
	lock(&sched.lock);
	sched.nmexited++;
	mp->exited = true;
	unlock(&sched.lock);
	/* m0 is still there: it joins this thread before it frees sched
	 * (sched_free). */
	atomic_fetch_add(&sched.exitseq, 1);
	futex_wake(&sched.exitseq, 1);
	kgo_tls_m = NULL;
}

/* ------------------------------------------------------------------ */
/* Abandoning Ms at kgo_run's end                                     */
/* ------------------------------------------------------------------ */

/*
 * Abandoning Ms
 * -------------
 * When main returns, Go's program exits and its threads die with it.
 * kgo_run returns instead, and may be called again, so the Ms must be
 * gone first. m0 here is kgo_run's thread, which runs no G (run): it
 * sleeps until main returns, then wakes the idle Ms, sysmon preempts
 * the running Gs, and each M leaves through mexit (wait_ms). An M
 * whose G is blocked in a system call may never come back (a read of an idle pipe; every
 * kgo_read, kgo_recv and kgo_accept without io_uring); Go would not wait
 * for it, and neither does m0, after a grace of ABANDON_GRACE_NS. Such
 * an M is abandoned: its thread, its struct m, its G's stack and its
 * io_uring ring are kept for good and never looked at again, and the
 * thread, whenever the call returns, parks for ever without touching
 * anything of the runtime, which by then may be torn down or built
 * anew by the next kgo_run. Its G never runs again.
 *
 * Two kinds of blocked M, two ways:
 *
 *  - In a syscall window (kgo_syscall, kgo_syscall_begin/_end, the I/O
 *    calls' syscall path): entersyscall's last act is to set
 *    mp->insyscall, kgo_syscall_end's first to clear it and then look
 *    at mp->abandon. m0 stores ABANDON_REQ in mp->abandon, runs
 *    membarrier (lock_fence_heavy: the M's side is a plain store and
 *    load, so the syscall path pays nothing), then reads insyscall: an
 *    asymmetric Dekker pair, so at least one side sees the other. m0
 *    seeing insyscall set CASes REQ -> GONE: the M is left where it
 *    is, and when its call returns it finds the request and parks,
 *    touching only its struct m. The M seeing the request first CASes
 *    REQ -> PARKED and parks; m0 sees PARKED at its next look. So m0
 *    never waits for a blocked syscall, whatever state the thread is
 *    in (D state included), and never frees what the M still uses.
 *
 *  - A G blocked in a system call it made directly (read(2) with no
 *    begin/end): its M holds its P and could come back into the
 *    runtime at any moment, so it cannot be left behind from outside.
 *    m0 sends it SIGURG (preempt_kick) with mp->abandon at REQ, and
 *    the handler parks the thread in place, on the G's stack, if it
 *    interrupted the G in a system call that waits (read, recv, accept,
 *    poll, sleeps, ...: preempt.c, abandon_point), outside the runtime,
 *    holding no runtime lock. A call interrupted that way is not
 *    restarted, so a read takes no data. Without asynchronous
 *    preemption (asyncpreemptoff, TSan), or in D state, or with SIGURG
 *    blocked, such an M is waited for, as before.
 *
 * Leaving a thread parked in place is what the Go program's exit does
 * to all of them; what it holds stays held (a stdio lock taken by an
 * fgets that never returned). The cost of each abandoned M: its thread
 * and 1 MiB stack, its G's stack chunk (~32 MiB of address space, a few
 * pages of memory), and its ring if it had one; the rings' in-flight
 * operations keep every stack of the run mapped (io_abandon).
 */
#define ABANDON_GRACE_NS	(1000 * 1000LL)
#define ABANDON_POLL_MAX_NS	(16 * 1000 * 1000LL)

/* Ms abandoned by earlier runs: kept reachable (for LeakSanitizer too). */
static struct m *abandoned_ms;

static void park_forever(struct m *mp) __attribute__((noreturn, cold));
static void park_forever(struct m *mp)
{
	sigset_t all;

	/* Nothing of ours runs here again, not even a signal handler. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	kgo_tls_m = NULL;
	for (;;)
		futex_wait(&mp->abandon, atomic_load(&mp->abandon), -1);
}

/* kgo_syscall_end found mp->abandon set: REQ (m0 may still be waiting
 * for us: say PARKED) or GONE (m0 left us behind). Either way, park. */
static void syscall_abandoned(struct m *mp)
{
	uint32_t a = ABANDON_REQ;

	atomic_compare_exchange_strong(&mp->abandon, &a, ABANDON_PARKED);
	park_forever(mp);
}

void m_park_abandoned(struct m *mp)
{
	uint32_t a = ABANDON_REQ;

	if (atomic_compare_exchange_strong(&mp->abandon, &a, ABANDON_PARKED))
		park_forever(mp);
}

/*
 * m_abandon() - m0, sched.lock held, mp->abandon stored since the last
 * lock_fence_heavy(): give mp up if it is parked or in a syscall
 * window; else kick it (the SIGURG above). Return: true if given up.
 */
static bool m_abandon(struct m *mp)
{
	uint32_t a = atomic_load_explicit(&mp->abandon, memory_order_acquire);
	struct g *gp;

	if (a == ABANDON_REQ &&
	    atomic_load_explicit(&mp->insyscall, memory_order_acquire) &&
	    atomic_compare_exchange_strong(&mp->abandon, &a, ABANDON_GONE))
		a = ABANDON_GONE;
	if (a != ABANDON_GONE && a != ABANDON_PARKED) {
		preempt_kick(mp);
		return false;
	}
	mp->abandoned = true;
	gp = smp_load_acquire(mp->curg);
	if (gp) {
		gp->abandoned = true;
		stack_keep(gp);
	}
	return true;
}

/*
 * wait_ms() - m0, main returned: wait until every other M has left,
 * giving up those blocked in system calls after ABANDON_GRACE_NS (see
 * above). Polls (1 to 16 ms) only while some M neither leaves nor can
 * be given up.
 */
static void wait_ms(void)
{
	int64_t grace = nanotime() + ABANDON_GRACE_NS;
	int64_t poll = ABANDON_GRACE_NS;
	struct m *mp;

	wake_all_idle();
	for (;;) {
		uint32_t seq = atomic_load(&sched.exitseq);
		bool asking = nanotime() >= grace;
		int out = 0;

		lock(&sched.lock);
		if (asking) {
			for (mp = sched.allm; mp; mp = mp->alllink) {
				uint32_t none = ABANDON_NONE;

				if (!mp->exited && !mp->abandoned)
					atomic_compare_exchange_strong(
						&mp->abandon, &none,
						ABANDON_REQ);
			}
			lock_fence_heavy();
		}
		for (mp = sched.allm; mp; mp = mp->alllink) {
			if (mp->exited || mp->abandoned)
				continue;
			if (!asking || !m_abandon(mp))
				out++;
		}
		unlock(&sched.lock);
		if (!out)
			return;
		futex_wait(&sched.exitseq, seq, nanotime() + poll);
		if (asking && poll < ABANDON_POLL_MAX_NS)
			poll *= 2;
	}
}

/* m0, after sysmon stopped: the rings of the abandoned Ms. */
static void abandon_fini(void)
{
	struct m *mp;

	for (mp = sched.allm; mp; mp = mp->alllink)
		if (mp->abandoned && io_abandon(mp))
			stack_keep(NULL);
}

/* ------------------------------------------------------------------ */
/* kgo_run                                                            */
/* ------------------------------------------------------------------ */

static int ncpu(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
	return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

/* The most Ps: allp is sized by it, and the stats' per-P arrays. */
#define MAXPROCS_MAX	1024

static const char *const observe_names[] = {
	[KGO_OBSERVE_AUTO] = "auto", [KGO_OBSERVE_BPF] = "bpf",
	[KGO_OBSERVE_SCX] = "scx", [KGO_OBSERVE_POLL] = "poll",
};
#define NOBSERVE	(sizeof(observe_names) / sizeof(observe_names[0]))

/* A kgo_config field is @ok, or one line says why kgo_run refuses it. */
static bool __attribute__((format(printf, 2, 3)))
cfg_ok(bool ok, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	if (ok)
		return true;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	kgo_printf("kgo: kgo_run refuses kgo_config.%s: returns -EINVAL\n",
		   why);
	return false;
}

/*
 * parse_config() - sched's settings from @cfg, then the environment,
 * which overrides it. A bad field of @cfg: a line each, and -EINVAL. A
 * bad variable: a line (env.c), and the value @cfg or the default gives.
 */
static int parse_config(const struct kgo_config *cfg)
{
	struct kgo_config def = { 0 };
	const char *s;
	char use[96];
	bool ok = true;
	size_t i;
	long v;

	if (!cfg)
		cfg = &def;
	for (i = 0; i < sizeof(cfg->reserved) / sizeof(cfg->reserved[0]); i++)
		ok &= cfg_ok(!cfg->reserved[i], "reserved[%zu]=%ld: must be 0",
			     i, cfg->reserved[i]);
	ok &= cfg_ok(cfg->maxprocs >= 0 && cfg->maxprocs <= MAXPROCS_MAX,
		     "maxprocs=%d: not in 0..%d (0: the CPUs)", cfg->maxprocs,
		     MAXPROCS_MAX);
	ok &= cfg_ok(cfg->max_threads >= 0, "max_threads=%d: negative "
		     "(0: 10000)", cfg->max_threads);
	ok &= cfg_ok(cfg->preempt_slice_us >= 0, "preempt_slice_us=%d: "
		     "negative (0: 10000)", cfg->preempt_slice_us);
	ok &= cfg_ok(cfg->observe >= KGO_OBSERVE_AUTO &&
		     cfg->observe <= KGO_OBSERVE_POLL, "observe=%d: not an "
		     "enum kgo_observe (0..3)", cfg->observe);
	ok &= cfg_ok(!cfg->stack_size || (cfg->stack_size >= KGO_STACK_MIN &&
					  cfg->stack_size <= KGO_STACK_MAX),
		     "stack_size=%zu: not 0 or in KGO_STACK_MIN..KGO_STACK_MAX "
		     "(%d..%ld)", cfg->stack_size, KGO_STACK_MIN, KGO_STACK_MAX);
	if (!ok)
		return -EINVAL;

	/* KGO_MAXPROCS=0 asks for the default, as GOMAXPROCS=0 does. */
	sched.gomaxprocs = cfg->maxprocs ? cfg->maxprocs : ncpu();
	if (sched.gomaxprocs > MAXPROCS_MAX)
		sched.gomaxprocs = MAXPROCS_MAX;
	snprintf(use, sizeof(use), "using %d (%s)", sched.gomaxprocs,
		 cfg->maxprocs ? "kgo_config.maxprocs" :
		 "the CPUs this process may use");
	if (env_long("KGO_MAXPROCS", 0, MAXPROCS_MAX, &v, use) && v > 0)
		sched.gomaxprocs = (int)v;

	sched.observe = cfg->observe;
	s = getenv("KGO_OBSERVE");
	if (s && *s) {
		for (i = 0; i < NOBSERVE && strcmp(s, observe_names[i]); i++)
			;
		if (i < NOBSERVE) {
			sched.observe = (int)i;
		} else {
			snprintf(use, sizeof(use), "using %s (%s)",
				 observe_names[cfg->observe], cfg->observe ?
				 "kgo_config.observe" : "the default");
			env_warn("KGO_OBSERVE", s, "not auto, bpf, scx or poll",
				 use);
		}
	}
	sched.stack_size = cfg->stack_size ? cfg->stack_size
					   : KGO_STACK_DEFAULT;
	sched.maxmcount = cfg->max_threads ? cfg->max_threads : 10000;
	sched.slice_ns = (int64_t)(cfg->preempt_slice_us ?
				   cfg->preempt_slice_us : 10000) * 1000;
	return 0;
}

static void sched_free(void)
{
	struct m *mp, *next;
	int i;

	for (mp = sched.allm; mp; mp = next) {
		next = mp->alllink;
		if (mp->abandoned) {
			/* Kept for good: its thread may still run. */
			pthread_detach(mp->thread);
			mp->alllink = abandoned_ms;
			abandoned_ms = mp;
			continue;
		}
		if (!mp->is_m0)
			pthread_join(mp->thread, NULL);
		free(mp);
	}
	if (sched.allp) {
		for (i = 0; i < sched.gomaxprocs; i++) {
			timers_destroy(&sched.allp[i]->timers);
			free(sched.allp[i]);
		}
		free(sched.allp);
	}
#ifdef KGO_TSAN
	{
		struct g *gp;

		for (gp = sched.allgs; gp; gp = gp->alllink)
			if (gp->tsan_fiber && !gp->abandoned)
				__tsan_destroy_fiber(gp->tsan_fiber);
	}
#endif
	stack_release_all();
}

static void sched_reset(void)
{
	/* Keep the counters of the last run for kgo_stats_get(). */
	struct sched keep = sched;

	memset(&sched, 0, sizeof(sched));
	sched.gs_created = atomic_load(&keep.gs_created);
	sched.handoffs = atomic_load(&keep.handoffs);
	sched.handoffs_kernel = atomic_load(&keep.handoffs_kernel);
	sched.handoffs_m = atomic_load(&keep.handoffs_m);
	sched.preempt_sync = atomic_load(&keep.preempt_sync);
	sched.preempt_async = atomic_load(&keep.preempt_async);
	sched.io_nowait_hits = atomic_load(&keep.io_nowait_hits);
	sched.net_tries_skipped = atomic_load(&keep.net_tries_skipped);
	sched.io_uring_ops = atomic_load(&keep.io_uring_ops);
	sched.io_fallback_ops = atomic_load(&keep.io_fallback_ops);
	sched.observe = keep.observe;
}

static uint64_t last_steals, last_global, last_switches, last_created;

/* kgo_run() between its claim and its release of kgo_run_owned. */
static int run(void (*main_fn)(void *), void *arg,
	       const struct kgo_config *cfg)
{
	struct g *gp;
	int err, i;

	sched_reset();
	err = parse_config(cfg);
	if (err)
		return err;
	err = stack_init();
	if (err)
		return err;

	sched.allp = calloc(sched.gomaxprocs, sizeof(*sched.allp));
	if (!sched.allp)
		return -ENOMEM;
	for (i = 0; i < sched.gomaxprocs; i++) {
		struct p *pp = aligned_alloc(64, sizeof(*pp));

		if (!pp) {
			sched.gomaxprocs = i;
			sched_free();
			return -ENOMEM;
		}
		memset(pp, 0, sizeof(*pp));
		pp->id = i;
		pp->status = P_IDLE;
		timers_init(&pp->timers);
		sched.allp[i] = pp;
	}
	/* sched.observe and observe_why: sysmon_start (observe_bpf.c). */
	io_init();

	for (i = sched.gomaxprocs - 1; i > 0; i--)
		pidleput(sched.allp[i]);
	err = signals_init();
	if (err) {
		sched_free();
		sched_reset();
		return err;
	}
	err = sysmon_start();
	if (err) {
		signals_fini();
		sched_free();
		sched_reset();
		return err;
	}
	/* P0 has no M yet: nobody else touches it. */
	gp = newproc(sched.allp[0], main_fn, arg, sched.stack_size);
	if (!gp) {
		sysmon_stop();
		signals_fini();
		sched_free();
		sched_reset();
		return -ENOMEM;
	}
	gp->is_main = true;
	sched.maing = gp;
	sched.running = true;
	atomic_fetch_add(&sched.gs_created, 1);
	atomic_store(&foreign_spawn_open, true);

	/*
	 * The calling thread runs no G: main runs on an M like the others,
	 * and this thread sleeps until it returns. Were it an M, a G of
	 * any kind blocked in a system call on it would hold kgo_run's
	 * return for as long ("Abandoning Ms"). One thread more; no
	 * switch costs more.
	 */
	runqput(sched.allp[0], gp, false);
	newm(sched.allp[0], false);
#ifdef KGO_TSAN
	{
		/* TSan runs a signal's handler only at the thread's next
		 * intercepted call, which a raw futex wait is not: a
		 * SIGQUIT that came here waited for ever (debug_test
		 * sigquit_dump, 3 runs in 3). Blocked here, the kernel
		 * gives process-directed signals to an M instead. */
		sigset_t all, old;

		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		notesleep(&sched.main_done);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
#else
	notesleep(&sched.main_done);
#endif

	/* main returned: wait for every other M to leave, or give it up. */
	foreign_spawn_close();
	wait_ms();
	for (i = 0, last_steals = last_global = last_switches = 0,
	     last_created = 0; i < sched.gomaxprocs; i++) {
		last_steals += atomic_load(&sched.allp[i]->nsteal);
		last_global += atomic_load(&sched.allp[i]->nglobal);
		last_switches += atomic_load(&sched.allp[i]->nswitch);
		last_created += atomic_load(&sched.allp[i]->gs_created);
		atomic_fetch_add(&sched.io_nowait_hits,
				 atomic_load(&sched.allp[i]->io_nowait));
		atomic_fetch_add(&sched.net_tries_skipped,
				 atomic_load(&sched.allp[i]->net_skipped));
	}
	last_created += atomic_load(&sched.gs_created_nop);
	sysmon_stop();
	abandon_fini();
	io_fini();
	sched.running = false;
	signals_fini();
	sched_free();
	sched.gs_created = last_created;
	sched.allp = NULL;
	sched.allm = NULL;
	sched.allgs = NULL;
	return 0;
}

/*
 * One runtime at a time: kgo_run claims it with an exchange before it
 * touches sched, and gives it back when everything is torn down, so of
 * two threads that call it at once one runs and the other gets -EBUSY
 * (run_test two_threads_race; a plain look at sched.running let both
 * in: aborts in acquirep and checkdead, hangs).
 */
static _Atomic bool kgo_run_owned;

int kgo_run(void (*main_fn)(void *), void *arg, const struct kgo_config *cfg)
{
	int err;

	if (!main_fn)
		return -EINVAL;
	/* acq_rel: the last run's teardown happens before our setup. */
	if (kgo_tls_m || atomic_exchange_explicit(&kgo_run_owned, true,
						  memory_order_acq_rel))
		return -EBUSY;
	err = run(main_fn, arg, cfg);
	atomic_store_explicit(&kgo_run_owned, false, memory_order_release);
	return err;
}

/* ------------------------------------------------------------------ */
/* Statistics                                                         */
/* ------------------------------------------------------------------ */

int kgo_stats_get(struct kgo_stats *st, size_t size)
{
	struct kgo_stats s = { 0 };
	int i;

	if (!st)
		return -EINVAL;
	s.observe = READ_ONCE(sched.observe);	/* sysmon may change it */
	s.handoffs = atomic_load(&sched.handoffs);
	s.handoffs_kernel_observed = atomic_load(&sched.handoffs_kernel);
	s.handoffs_kicked_m = atomic_load(&sched.handoffs_m);
	s.preempt_sync = atomic_load(&sched.preempt_sync);
	s.preempt_async = atomic_load(&sched.preempt_async);
	s.io_nowait_hits = atomic_load(&sched.io_nowait_hits);
	s.net_tries_skipped = atomic_load(&sched.net_tries_skipped);
	for (i = 0; sched.running && i < sched.gomaxprocs; i++) {
		s.io_nowait_hits += atomic_load_explicit(
			&sched.allp[i]->io_nowait, memory_order_relaxed);
		s.net_tries_skipped += atomic_load_explicit(
			&sched.allp[i]->net_skipped, memory_order_relaxed);
	}
	s.io_uring_ops = atomic_load(&sched.io_uring_ops);
	s.io_fallback_ops = atomic_load(&sched.io_fallback_ops);
	sysmon_stats(&s);
	io_stats(&s);
	timers_stats(&s);
	if (sched.running) {
		lock(&sched.lock);
		s.ms = sched.mnext - sched.nmexited;
		s.ms_idle = sched.nmidle;
		unlock(&sched.lock);
		s.ps = sched.gomaxprocs;
		for (i = 0; i < sched.gomaxprocs; i++) {
			struct p *pp = sched.allp[i];

			/* A G may finish on another P than its maker's:
			 * only the sum means something. */
			s.gs_live += atomic_load(&pp->gs_created) -
				     atomic_load(&pp->ngexit);

			s.steals += atomic_load(&pp->nsteal);
			s.global_runq_gets += atomic_load(&pp->nglobal);
			s.context_switches += atomic_load(&pp->nswitch);
			s.gs_created += atomic_load(&pp->gs_created);
		}
		s.gs_live += atomic_load(&sched.gs_created_nop);
		s.gs_created += atomic_load(&sched.gs_created_nop);
		s.stacks_cached = READ_ONCE(sched.ngfree);	/* gflock: a snapshot */
	} else {
		s.steals = last_steals;
		s.global_runq_gets = last_global;
		s.context_switches = last_switches;
		s.gs_created = last_created;
	}
	if (size > sizeof(s))
		size = sizeof(s);
	memcpy(st, &s, size);
	return (int)size;
}

int kgo_p_stat(int p, uint64_t *ran)
{
	if (!sched.running)
		return -EPERM;
	if (p < 0 || p >= sched.gomaxprocs || !ran)
		return -EINVAL;
	*ran = atomic_load(&sched.allp[p]->ngexit);
	return 0;
}
