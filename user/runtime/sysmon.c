// SPDX-License-Identifier: MIT
/*
 * sysmon.c - the monitor thread: retake Ps from Ms blocked in syscalls,
 * preempt Gs that ran too long, print schedtrace.
 *
 * sysmon is a plain thread, not an M: it holds no P, runs no G, takes
 * no signal, and checkdead does not count it. As in Go, it does not
 * schedule anything itself; it only takes Ps from Ms that cannot use
 * them (retake, then handoffp in proc.c) and asks Gs to stop (sets
 * g->preempt, sends SIGURG: preempt.c).
 *
 * The two questions
 * -----------------
 * Everything sysmon does follows from two questions about each P, and
 * they are asked in one place, through struct observer, so that a
 * kernel-observed mode can answer them from BPF instead of by polling
 * without anything else here changing (struct observer, observe.h):
 *
 *   m_blocked(pp)     - is the M that has pp (in a syscall, or running
 *                       a G) really blocked in the kernel?
 *   g_slice_over(pp)  - has the G on pp used up its time slice?
 *
 * What sysmon does with the answers is Go's retake():
 *
 *  - P_SYSCALL and the M is blocked (or the G's slice is over): take
 *    the P, if it has work, or nobody else is free to take work (no
 *    spinning M, no idle P), or the syscall has lasted 10 ms; then
 *    handoffp gives it to an idle or a new M. Ms are capped at
 *    kgo_config.max_threads (newm dies with a clear message past it).
 *  - P_RUNNING and the slice is over: preempt the G (g->preempt for the
 *    cooperative check, and SIGURG unless the M is blocked in the
 *    kernel: a signal would only make its call fail with EINTR).
 *
 * The polling observer answers as Go does: an M is blocked if its P is
 * still in the same syscall (same syscalltick) as at the last look, at
 * least one sysmon period ago; a slice is over when the P's schedtick
 * has not moved for slice_ns since sysmon first saw it. It asks the
 * kernel in two places, by reading the thread's state from /proc
 * (sleeping there means blocked): for a running M before a preemption
 * signal, and at the first look at a syscall while Gs wait for its P
 * (syscall_sleeping: a blocked call is handed off a look sooner).
 *
 * Kernel-observed mode (KGO_OBSERVE=bpf; observe.h, observe_bpf.c)
 * ---------------------------------------------------------------
 * The BPF probes (bpf/kgo_observe.bpf.c) answer both questions: an M
 * is blocked when the kernel switched it out asleep (confirmed with
 * /proc before sysmon acts), a slice is the CPU time of the G's M. And
 * sysmon has no period: when an M that left a P with work waiting goes
 * to sleep in a kgo syscall, the probes wake an idle M, which takes the
 * P itself (proc.c, "Handoff from the kernel"), or sysmon only when no
 * M idles (a signal, sysmon_kick). sysmon sleeps until the end of the
 * slices that run (where the preemption tick from BPF times a slice,
 * bpf/kgo_tick.bpf.h, it looks only once a second: next_slice_end and
 * TICK_LOOK). A P whose M is blocked with nothing waiting is taken 10
 * ms into the block (Go's rule) by the probes' retake timer, a kick
 * armed at the block ("The kernel's retake timer"); without it sysmon
 * looks 10 ms later while no P idles (with one idle it waits for
 * pidleget to take the last: "Blocked calls beside an idle P"). It
 * looks also while Gs wait on io rings the kernel cannot see
 * (io_sysmon), and for schedtrace and the stack scavenger. What woke
 * it is counted by cause ("Wakeups by cause"; kgo_stats). Where its
 * wakeups in bpf mode went, in `KGO_DEBUG=observe=1 KGO_OBSERVE=bpf
 * build/bench/sysmon_cpu -p 2 -n 10000 -w 8` (2026-12-06, 23:30-23:50,
 * load ~3): 190-290 a run before, ~80 us of its CPU each, about half
 * of them kicks that found their M woken by a waker ("passed"), a
 * quarter untimed calls, a fifth 10 ms retake deadlines, the rest
 * looks at Ps in passing; and a membarrier before each long sleep.
 * What won, each measured there: the kicked M keeps such a kick and
 * hands it on itself when it is still on its way out of stopm (proc.c,
 * "Kicks to an M awake": about half of them), and sends it on to the
 * next idle M when it runs a G (observe_bpf.c, "Kicks sent on": most of
 * the rest; passed 56-136 -> 7-17 a run); the retake timer (the
 * untimed and deadline wakeups: 70-110 -> 5-9 a run); no look at Ps in
 * passing while the kernel times what they do next (26-68 -> 0); one
 * membarrier per arming of the deferred wakeups' flag, not per sleep
 * ("One fence per arming": ~100 -> 1 a run). Tried first, kept: the
 * keeping alone left 40-120 wakeups a run, most of them kicks to an M
 * running a G, which cannot hand a P on from its signal handler
 * (sched.lock, perhaps a new M to start) but can signal. After all of
 * it: 17-37 wakeups a run, 2.4-3.4 ms of sysmon's CPU (6-14 ms with
 * the keeping and the timer alone). Left: the kicks to sysmon when no
 * M idles (8-12 a run), and sent-on kicks that found that M awake too. Handoffs are
 * counted by cause too: kernel-observed (of which those the kicked M
 * took: handoffs_kicked_m), poll (the guess) and timeout.
 *
 * Sleeping (Go's backoff)
 * -----------------------
 * sysmon sleeps 20 us between looks while it finds work to do (a P
 * retaken); after 50 idle looks it doubles its sleep up to 10 ms. When
 * every P is idle it sleeps until something takes a P off the idle
 * list (pidleget calls sysmon_wake) or a syscall starts. Unlike Go's, it
 * also never sleeps past the end of a running G's slice (nor past its
 * next schedtrace line), so a G is preempted close to slice_ns after
 * sysmon first saw it run, not up to 10 ms later: one wakeup per slice
 * while a G runs long, which costs nothing measurable.
 *
 * sysmon_wake() is called with sched.lock held: sysmon's lock comes
 * after sched.lock in the lock order.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "runtime.h"
#include "observe.h"
#include "traceback.h"
#include "trace.h"

#define DELAY_MIN	(20 * 1000LL)		/* ns */
#define DELAY_MAX	(10 * 1000 * 1000LL)
#define RESEND_MIN	(1000 * 1000LL)		/* first resend of a preemption */
#define SYSMON_SLACK_NS	1000			/* PR_SET_TIMERSLACK */
#define WAKEP_LOOK	(1000 * 1000LL)		/* proc.c, "Deferred wakeups" */

/*
 * Wakeups by cause: what ended each of sysmon's sleeps, counted for
 * KGO_DEBUG=observe=1 (one line at exit). The first five are other
 * threads' wakeups (sm.woke_by), the rest the deadline sysmon chose.
 */
enum sysmon_why {
	WHY_KICK,	/* the probes' signal (sysmon_kick) */
	WHY_KICK_M,	/* a kicked M passed its P on (sysmon_kick_remote) */
	WHY_WAKEP,	/* a deferred wakeup (sysmon_wakep_kick) */
	WHY_WAKE,	/* out of the deep sleep (sysmon_wake) */
	WHY_STOP,	/* sysmon_stop */
	WHY_UNTIMED,	/* the last idle P taken, calls untimed (pidleget) */
	WHY_FIRST,	/* bpf mode's first look */
	WHY_DELAY,	/* the polling period */
	WHY_SLICE,	/* a slice's end, a retake's 10 ms, a wakep look */
	WHY_BETWEEN,	/* a P between two owners (WAKEP_LOOK) */
	WHY_TICK,	/* TICK_LOOK */
	WHY_IO,		/* bpf mode: io rings and netpoll waits */
	WHY_KICKGAP,	/* the gap before wakep_arm arms again */
	WHY_TRACE,	/* schedtrace */
	WHY_N
};

static const char *const why_str[WHY_N] = {
	"kick", "kick_m", "wakep", "wake", "stop", "untimed", "first", "delay",
	"slice", "between", "tick", "io", "kickgap", "trace",
};

static void wake_note(enum sysmon_why why);

static struct {
	pthread_t thread;
	bool started;
	_Atomic bool stop;
	struct note wake;
	struct kgo_lock lock;		/* guards wake_armed and sm.wake */
	bool wake_armed;		/* wake is clear: one notewakeup may come */
	struct pmon *pm;
	const struct observer *obs;
	int64_t schedtrace_ns;		/* KGO_DEBUG=schedtrace=MS; 0: off */
	bool scheddetail;
	int64_t starttime;
	char mname[16];			/* the name of kgo_run's thread */
	long mslack;			/* and its timer slack, ns */
	/* Counters of this (or the last) run, for kgo_stats. */
	_Atomic uint64_t wakeups;
	_Atomic uint64_t signals;
	_Atomic uint64_t handoffs_poll, handoffs_timeout;
	/* sysmon's own: "Deferred wakeups in bpf mode". */
	bool armed, kicked;
	int64_t kick_gap, arm_after;
	/* Why sysmon woke ("Wakeups by cause"): the wakers' bits, OR'd
	 * before they mark the note (relaxed: a statistic); the counts,
	 * sysmon's own. */
	_Atomic uint32_t woke_by;
	_Atomic uint64_t why[WHY_N];	/* sysmon writes, kgo_stats reads */
	uint64_t deep;
} sm;

/*
 * sysmon sleeps deeply (until sysmon_wake) while every P is idle.
 * seq_cst, with sched.npidle's seq_cst RMWs: sysmon stores true and then
 * reads npidle; pidleget decrements npidle and then reads this. One of
 * the two sees the other, so no P leaves the idle list unnoticed.
 */
_Atomic bool sysmon_sleeping;

/*
 * bpf mode: sysmon sleeps past its netpoller period (DELAY_MAX: up to
 * TICK_LOOK, a second, when the kernel times what runs). A netpoller
 * wait that begins then wakes it (net_park: sysmon_wake_for_netpoll):
 * the period must hold for it, or a G whose edge no M collects (its
 * only M keeps running a yielding or CPU-bound G) waited for the end
 * of the sleep, a second a wakeup (io_net_test yield_loop_polls timed
 * out). seq_cst, as sysmon_sleeping: sysmon stores true and then looks
 * at trust_gen and nio; net_park increments trust_gen and then reads
 * this.
 */
_Atomic bool sysmon_long_sleep;

/* ------------------------------------------------------------------ */
/* The polling observer                                               */
/* ------------------------------------------------------------------ */

/* Is thread tid asleep in the kernel? From /proc: S, D (or stopped). */
bool thread_sleeping(pid_t tid)
{
	char path[64], buf[256], *s;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	/* "tid (comm) S ...": comm may hold spaces and parentheses. */
	s = strrchr(buf, ')');
	if (!s || s[1] != ' ')
		return false;
	return s[2] == 'S' || s[2] == 'D' || s[2] == 't' || s[2] == 'T';
}

/*
 * syscall_sleeping() - at the first look at a syscall, with Gs waiting
 * for the P: ask the kernel whether the thread sleeps in it, rather
 * than wait a whole period to guess from the tick. A blocked read is
 * handed off one look sooner; a syscall that is running (state R) waits
 * for the second look, as in Go.
 *
 * Why: a 20 us sleep lasts 40 us on this VM (timer slack 1 us; 95 us
 * with the default 50 us), so two looks put the retake ~47 us (p50)
 * after the syscall began, and the idle M's wakeup adds ~22 us
 * (KGO_TRACE of `build/bench/handoff -p 1 -n 200`: syscall -> handoff
 * -> run). One /proc read (~5 us of sysmon's time) only where a retake
 * would hand the P to waiting work.
 *
 * The answer is for syscall @t only if the P is still in it after the
 * read: then the thread was between entersyscall and exitsyscall all
 * along, and asleep in the kernel there means in the call.
 */
static bool syscall_sleeping(struct p *pp, uint64_t t)
{
	pid_t tid = atomic_load_explicit(&pp->syscalltid, memory_order_relaxed);

	if (tid <= 0 || (runqempty(pp) &&
			 !atomic_load_explicit(&sched.runqsize,
					       memory_order_relaxed)))
		return false;
	if (!thread_sleeping(tid))
		return false;
	/* Acquire: the tick and status read after the kernel's answer. */
	return atomic_load_explicit(&pp->status, memory_order_acquire) ==
		       P_SYSCALL &&
	       atomic_load_explicit(&pp->syscalltick, memory_order_relaxed) == t;
}

static bool poll_m_blocked(struct p *pp, uint32_t st, struct m *mp,
			   struct pmon *pm, int64_t now)
{
	uint64_t t;

	if (st == P_RUNNING)
		return mp && mp->tid > 0 && thread_sleeping(mp->tid);
	t = atomic_load_explicit(&pp->syscalltick, memory_order_relaxed);
	if (pm->syscalltick != t) {
		pm->syscalltick = t;
		pm->syscallwhen = now;
		return syscall_sleeping(pp, t);
	}
	/* The same syscall as at the last look: in it for a whole period. */
	return true;
}

static bool poll_g_slice_over(struct p *pp, struct pmon *pm, int64_t now)
{
	uint64_t t = atomic_load_explicit(&pp->schedtick, memory_order_relaxed);
	int64_t pw = atomic_load_explicit(&pp->preempted_at,
					  memory_order_relaxed);
	int64_t last = pm->lookwhen;

	pm->lookwhen = now;
	if (pm->schedtick != t) {
		pm->schedtick = t;
		/* A G preempted since the last look: this one started
		 * after that (most often a moment after). */
		pm->schedwhen = pw > last && pw <= now ? pw : now;
		pm->schedseen = false;
		return false;
	}
	pm->schedseen = true;
	return now - pm->schedwhen >= sched.slice_ns;
}

/*
 * A slice is timed from the look that first saw its schedtick, so it is
 * late by the time since the look before: up to 10 ms after a long
 * sleep, and such a slice ran for nearly two. So a new schedtick is
 * looked at again SLICE_CONFIRM later. That catches the common bad case,
 * a short G (a timer's, say) followed by a long one: the second look
 * sees the long one within SLICE_CONFIRM of its start instead of one
 * sleep later. `selftests/bench/run spin_timer` (P=1, 1 ms sleeps behind
 * a spinning G): lateness p99 20 ms before, 10.6 ms after (slice 10 ms).
 *
 * A slice that follows a preemption starts at the P's preempted_at
 * (written by the preempted G's M) rather than at the look: sysmon
 * looks next at the request's resend, 1 ms on, and the G after the
 * preempted one ran that much past its slice. spin_timer lateness p50
 * 10.1 -> 9.2 ms, p99 12.7 -> 10.1-11.9 ms (2026-12-05, README).
 */
#define SLICE_CONFIRM	(1000 * 1000LL)

static int64_t poll_slice_end(struct p *pp, struct pmon *pm)
{
	(void)pp;
	if (!pm->schedwhen)
		return INT64_MAX;
	if (!pm->schedseen)
		return pm->schedwhen + SLICE_CONFIRM;
	return pm->schedwhen + sched.slice_ns;
}

const struct observer observer_poll = {
	.name = "poll",
	.m_blocked = poll_m_blocked,
	.g_slice_over = poll_g_slice_over,
	.slice_end = poll_slice_end,
};

/* ------------------------------------------------------------------ */
/* retake                                                             */
/* ------------------------------------------------------------------ */

/*
 * preemptone() - ask the G running on pp to stop (Go's preemptone).
 * Best effort, as in Go: pp may have changed Ms, and the M Gs, since
 * we looked; a request that reaches the wrong G costs that G the rest
 * of its slice. Ms and Gs are never freed while sysmon runs, so the
 * pointers stay valid.
 */
static void preemptone(struct p *pp, struct pmon *pm, int64_t now)
{
	/* Acquire pairs with the owners' smp_store_release (proc.c). */
	struct m *mp = smp_load_acquire(pp->m);
	struct g *gp = mp ? smp_load_acquire(mp->curg) : NULL;
	uint64_t tick = atomic_load_explicit(&pp->schedtick,
					     memory_order_relaxed);

	if (pm->slicetick != tick) {
		pm->slicetick = tick;	/* another slice: a fresh request */
		pm->preemptwhen = 0;
	}
	if (pm->preemptwhen && now - pm->preemptwhen < pm->resend)
		return;			/* asked a moment ago */
	if (!pm->preemptwhen)
		pm->resend = RESEND_MIN;
	else if (pm->resend < sched.slice_ns)
		pm->resend *= 2;	/* no safe point yet: back off */
	pm->preemptwhen = now;
	if (!gp)
		return;
	/* Relaxed: the G reads it at its next runtime call, or in the
	 * SIGURG handler after the tgkill below, which orders it. */
	atomic_store_explicit(&gp->preempt, true, memory_order_relaxed);
	if (!preempt_async_on() ||
	    sm.obs->m_blocked(pp, P_RUNNING, mp, pm, now))
		return;
	if (preempt_signal(mp, now))
		atomic_fetch_add_explicit(&sm.signals, 1, memory_order_relaxed);
}

/*
 * wakep_look() - a deferred wakeup (proc.c) is fired only when it was
 * due at the last look too, with no switch on pp since: the readier has
 * run on without parking for a whole look. A G pair in a ping-pong
 * readies and parks every ~100 ns, so its P shows a wakeup due at about
 * every other look, a different one each time; firing those woke the
 * idle M (a futex wake, then a thief on our runnext) and, counted as
 * work, kept sysmon at a look every 20 us. chan_rt -p 2 -n 1000000
 * (kgo_stats_get at its end): 2000-7000 sysmon wakeups and 160-800
 * steals a run before, 160-175 and 0-2 after; 180-390 -> 113-129 ns a
 * round trip, loaded. The price: such a wakeup comes up to two looks
 * late (sysmon_test deferred_wakeup_runs: 1.8 ms).
 */
static void wakep_look(struct p *pp, struct pmon *pm)
{
	uint64_t nswitch = atomic_load_explicit(&pp->nswitch,
						memory_order_relaxed);
	bool seen = pm->wakeseen && pm->wakeswitch == nswitch;

	pm->wakeseen = false;
	if (!atomic_load_explicit(&pp->wakep_due, memory_order_relaxed) ||
	    !atomic_load(&sched.npidle))
		return;
	if (seen) {
		sm.kicked = false;	/* a kick was worth it */
		sm.kick_gap = 0;
		wakep_overdue(pp);
		return;
	}
	pm->wakeseen = true;
	pm->wakeswitch = nswitch;
}

/* One look at every P. Return: how many Ps it retook from syscalls
 * (preemption requests do not count: Go's rule for the backoff). */
static int retake(int64_t now)
{
	bool exiting = atomic_load_explicit(&sched.exiting,
					    memory_order_relaxed);
	int i, n = 0;

	for (i = 0; i < sched.gomaxprocs; i++) {
		struct p *pp = sched.allp[i];
		struct pmon *pm = &sm.pm[i];
		/* Acquire pairs with entersyscall's release store. */
		uint32_t st = atomic_load_explicit(&pp->status,
						   memory_order_acquire);
		bool over = false, blocked, kernel;

		if (st == P_RUNNING || st == P_SYSCALL) {
			/* proc.c, "Deferred wakeups": still due at a look
			 * (entersyscall fires it, so only a running P). */
			if (st == P_RUNNING)
				wakep_look(pp, pm);
			over = sm.obs->g_slice_over(pp, pm, now);
			/* At exit, stop every G now: kgo_run waits for
			 * the Ms, and an M leaves only between two Gs. */
			if (st == P_RUNNING && (over || exiting))
				preemptone(pp, pm, now);
		}
		if (st != P_SYSCALL) {
			pm->syscalltick = atomic_load_explicit(&pp->syscalltick,
						memory_order_relaxed);
			continue;
		}
		/* Go: a G whose slice is over is retaken at once. */
		blocked = sm.obs->m_blocked(pp, st, NULL, pm, now);
		if (!blocked && !over)
			continue;
		/* bpf: the M is on a CPU in its syscall and the G's slice
		 * is over: a G that ran too long, asked to stop when the
		 * call returns (kgo_syscall_end); the P is retaken only if
		 * the same call is still running at the next look. */
		if (!blocked && sm.obs->kernel_wakes &&
		    pm->stoptick != pm->syscalltick) {
			struct m *mp = observe_m_of(atomic_load_explicit(
				&pp->syscalltid, memory_order_relaxed));
			struct g *gp = mp ? smp_load_acquire(mp->curg) : NULL;

			pm->stoptick = pm->syscalltick;
			if (gp) {
				atomic_store_explicit(&gp->preempt, true,
						      memory_order_relaxed);
				continue;
			}
		}
		if (runqempty(pp) && !atomic_load(&sched.runqsize) &&
		    atomic_load(&sched.nmspinning) + atomic_load(&sched.npidle) > 0 &&
		    now - pm->syscallwhen < SYSCALL_RETAKE)
			continue;
		/* The cause: the kernel saw the M block (bpf), the G's
		 * slice ran out in the call, or polling's guess. */
		kernel = blocked && sm.obs->kernel_wakes;
		if (!retake_syscall(pp, kernel))
			continue;
		n++;
		if (!kernel)
			atomic_fetch_add_explicit(blocked ? &sm.handoffs_poll :
						  &sm.handoffs_timeout, 1,
						  memory_order_relaxed);
	}
	return n;
}

/*
 * Deferred wakeups in bpf mode
 * ----------------------------
 * A wakeup that ready() deferred (proc.c) is fired at sysmon's second
 * look that finds it due; polling looks every WAKEP_LOOK anyway, but
 * bpf mode sleeps through running Gs (TICK_LOOK) and looked again at a
 * P only if a wakeup was due when sysmon went to sleep. One deferred
 * later, by a readier that then computes without runtime calls, waited
 * for that look: sysmon_test deferred_wakeup_runs_bpf, the readied G
 * ran 1.0 s after its send in 2 of 3 runs.
 *
 * So before a sleep longer than two WAKEP_LOOKs sysmon arms
 * sysmon_wakep_armed, and the first ready() that defers a wakeup
 * meanwhile disarms it and wakes sysmon, which then looks as polling
 * does: such a wakeup fires within two WAKEP_LOOKs of the ready (plus
 * the time sysmon waits for a CPU). One futex wake per long sleep at
 * most: a ping-pong's rounds (a deferral each, ~100 ns apart) find the
 * flag down. But a ping-pong's deferrals are moot (the readier parks at
 * once), and re-armed at each long sleep the flag woke sysmon some
 * 1000 times a second during chan_rt -p 2 (2 before). A kick that
 * fired nothing makes sysmon wait before it arms again, 2 ms and twice
 * as long after each such kick up to KICK_GAP_MAX; a kick that fired a
 * wakeup, or a long sleep that no deferral ended, starts again at
 * none. The bound: a deferred wakeup fires within KICK_GAP_MAX + two
 * WAKEP_LOOKs of the ready (just after a ping-pong; two WAKEP_LOOKs
 * otherwise), where it waited a TICK_LOOK or more.
 *
 * The order: ready() stores wakep_due, then loads the flag; sysmon
 * stores the flag, then loads each wakep_due (wakep_arm). The ready
 * side's fence is a compiler barrier, sysmon's is membarrier
 * (lock_fence_heavy, as for the lock sleepers: lock_futex.c): one of
 * the two sees the other, so no deferral goes unlooked at. The flag
 * then stays up across sysmon's wakeups until a deferral takes it
 * down: one membarrier per arming, not per sleep (below).
 */
_Atomic bool sysmon_wakep_armed;

void sysmon_wakep_kick(void)
{
	if (atomic_exchange_explicit(&sysmon_wakep_armed, false,
				     memory_order_relaxed)) {
		wake_note(WHY_WAKEP);
	}
}

#define KICK_GAP_MAX	(16 * 1000 * 1000LL)

/*
 * One fence per arming, not per sleep. The membarrier IPIs every CPU
 * that runs a thread of ours, and it was a fifth of sysmon's CPU time
 * in bpf mode (`perf record -g -t <kgo-sysmon tid>` of
 * `KGO_OBSERVE=bpf build/bench/sysmon_cpu -n 40000`: ~20% in
 * smp_call_function_many_cond under membarrier, 2026-12-06), when
 * sysmon armed before every long sleep and disarmed after it. But the
 * pairing only needs a fence where the flag goes from down to up: a
 * flag still up when sysmon wakes was up all along, so every ready()
 * since the fence either saw it (and took it down, and woke us) or
 * came before the fence (and the scan saw its wakep_due). So sysmon
 * leaves the flag up across its wakeups, and fences again only after a
 * deferral took it down (or the scan found one due). Counted in
 * kgo_stats.sysmon_fences; sysmon_test quiet_fences_bpf: one fence in
 * a run of Gs in short calls (no deferrals), where it made one per long
 * sleep (~half of its wakeups) before. A short sleep leaves it as it
 * is: a deferral then ends that sleep a little early, once.
 */
static _Atomic uint64_t sysmon_fences;

/* Before a sleep until @until (bpf mode): arm the flag if the sleep is
 * long. Return: when to wake up instead. */
static int64_t wakep_arm(int64_t now, int64_t until)
{
	int i;

	if (until == INT64_MAX || until - now <= 2 * WAKEP_LOOK)
		return until;
	/* Up since the last fence (relaxed: a ready() that takes it down
	 * after this load wakes the sleep below at once). */
	if (sm.armed && atomic_load_explicit(&sysmon_wakep_armed,
					     memory_order_relaxed))
		return until;
	sm.armed = false;
	if (sm.kicked) {		/* the last kick fired nothing */
		sm.kicked = false;
		sm.kick_gap = sm.kick_gap ? 2 * sm.kick_gap : 2 * WAKEP_LOOK;
		if (sm.kick_gap > KICK_GAP_MAX)
			sm.kick_gap = KICK_GAP_MAX;
		sm.arm_after = now + sm.kick_gap;
	}
	if (now < sm.arm_after)
		return until < sm.arm_after ? until : sm.arm_after;
	atomic_store_explicit(&sysmon_wakep_armed, true, memory_order_relaxed);
	lock_fence_heavy();
	atomic_fetch_add_explicit(&sysmon_fences, 1, memory_order_relaxed);
	for (i = 0; i < sched.gomaxprocs; i++)
		if (atomic_load_explicit(&sched.allp[i]->wakep_due,
					 memory_order_relaxed)) {
			atomic_store_explicit(&sysmon_wakep_armed, false,
					      memory_order_relaxed);
			return now + WAKEP_LOOK;	/* due already */
		}
	sm.armed = true;
	return until;
}

/* After the sleep: a kick ended it, or none came (the flag stays up:
 * "One fence per arming"). */
static void wakep_disarm(void)
{
	if (!sm.armed)
		return;
	if (atomic_load_explicit(&sysmon_wakep_armed, memory_order_relaxed)) {
		sm.kick_gap = 0;	/* no deferral in a whole sleep */
		return;
	}
	sm.armed = false;
	sm.kicked = true;
}

/*
 * Blocked calls beside an idle P (bpf mode)
 * -----------------------------------------
 * A P in a syscall was looked at again at the end of its G's slice or
 * 10 ms after sysmon first saw the call (SYSCALL_RETAKE), whichever
 * came first. With Gs in short blocking calls there is a call at
 * almost every look, so sysmon woke every 10 ms or sooner and found
 * that call long over (sysmon_test short_calls_quiet_bpf: 79-138
 * wakeups in 300 ms of one G in 50 us sleeps; `KGO_DEBUG=observe=1
 * build/bench/sysmon_cpu -p 2 -n 10000 -w 8`: 210-347 such deadlines
 * of 431-519 wakeups, 5-13 of them retaking a P). But an M blocked in
 * its call (the probes' record, observe_syscall_blocked) uses no CPU,
 * so its G's slice does not run out, and while a P idles its own P is
 * not needed: the probes kick at once when work waits or no P idles,
 * and other Ms run its timers (findrunnable). So sysmon times such a
 * call only when no P idles. It counts them (untimed) and, before it
 * sleeps, raises sysmon_untimed; pidleget, taking the last idle P,
 * wakes it (seq_cst both sides, as for sysmon_sleeping: sysmon stores
 * the flag, then reads npidle; pidleget decrements npidle, then reads
 * the flag), and the 10 ms of Go's rule run from there. A call on a
 * CPU is timed as before, to the end of its slice. The cost: an M
 * that blocks, then runs on in its call on a CPU, is timed only from
 * sysmon's next look.
 */
_Atomic bool sysmon_untimed;

void sysmon_untimed_wake(void)
{
	if (atomic_exchange(&sysmon_untimed, false))
		wake_note(WHY_UNTIMED);
}

/*
 * The kernel's retake timer (bpf/kgo_observe.bpf.c, "The retake
 * timer"): when the probes arm a timer at each block of an M in a kgo
 * call with nothing waiting and kick at once otherwise, every P whose
 * M is blocked in its call is the kernel's to time, idle P or not:
 * sysmon sets no deadline for it and raises no sysmon_untimed (those
 * were 70-110 of its 190-260 wakeups in `KGO_DEBUG=observe=1
 * KGO_OBSERVE=bpf build/bench/sysmon_cpu -p 2 -n 10000 -w 8`, nearly
 * all finding the call long over). Counted as @nkernel: such a P is
 * not "between two owners" (nor one whose M runs on in its call while
 * the tick times its slice: it blocks under the probes' eyes, or comes
 * back to the tick's; 26-39 wakeups of 1 ms looks a run there before),
 * and a G back from it, with no tick, gets a look a slice on, as after
 * an untimed call. sysmon_test
 * short_calls_quiet_bpf and blocked_retake_bpf.
 */

/* When must sysmon look again, at the latest, for the slices running
 * now (and for wakeups deferred while a P idles)? INT64_MAX: no G is
 * running long. @nticked: Ps whose slice the kernel's tick times;
 * @nuntimed: Ps in calls blocked beside an idle P (above); @nkernel:
 * Ps in blocked calls the kernel's retake timer times (above). */
static int64_t next_slice_end(int64_t now, int *nticked, int *nuntimed,
			      int *nkernel)
{
	bool kretake = observe_retake_on();
	int64_t next = INT64_MAX, t, w;
	bool idlep = atomic_load_explicit(&sched.npidle,
					  memory_order_relaxed) > 0;
	int i;

	for (i = 0; i < sched.gomaxprocs; i++) {
		struct p *pp = sched.allp[i];
		struct pmon *pm = &sm.pm[i];
		uint32_t st = atomic_load_explicit(&pp->status,
						   memory_order_relaxed);

		/* Told by the kernel: a slice runs on in a syscall on a
		 * CPU, and a P whose M is blocked there without anything
		 * waiting is taken after SYSCALL_RETAKE (Go's rule). */
		if (st == P_SYSCALL && sm.obs->kernel_wakes) {
			bool blocked = observe_syscall_blocked(pp, now);

			/* The kernel's, until its timer fired (sysmon saw
			 * the call blocked 10 ms: a kick that found a P
			 * idle, and no M to take this one); then as
			 * without it. */
			if (blocked && kretake &&
			    (pm->syscalltick != atomic_load_explicit(
				&pp->syscalltick, memory_order_relaxed) ||
			     now - pm->syscallwhen < SYSCALL_RETAKE)) {
				(*nkernel)++;
				continue;
			}
			if (blocked && idlep) {
				(*nuntimed)++;
				continue;
			}
			t = blocked ? INT64_MAX : sm.obs->slice_end(pp, pm);
			/* On a CPU in its call, its slice the tick's: if it
			 * blocks, the probes kick or time it; if it comes
			 * back, the tick times its G. */
			if (t == INT64_MAX && kretake) {
				(*nkernel)++;
				continue;
			}
			/* Go's 10 ms, from the look that first saw the
			 * call: a call begun since the last look is one
			 * the next look sees first. */
			w = pm->syscalltick == atomic_load_explicit(
				&pp->syscalltick, memory_order_relaxed) ?
			    pm->syscallwhen : now;
			if (blocked && w + SYSCALL_RETAKE < t)
				t = w + SYSCALL_RETAKE;
			if (t < next)
				next = t;
			continue;
		}
		if (st != P_RUNNING)
			continue;
		/* A deferred wakeup is looked at again WAKEP_LOOK on;
		 * polling looks anyway, bpf mode only when one is due. */
		if (idlep && now + WAKEP_LOOK < next &&
		    (!sm.obs->kernel_wakes ||
		     atomic_load_explicit(&pp->wakep_due, memory_order_relaxed)))
			next = now + WAKEP_LOOK;
		if (pm->preemptwhen && pm->slicetick ==
		    atomic_load_explicit(&pp->schedtick, memory_order_relaxed))
			t = pm->preemptwhen + pm->resend;
		else
			t = sm.obs->slice_end(pp, pm);
		/* bpf: the kernel's tick times this slice (and ends it). */
		if (t == INT64_MAX)
			(*nticked)++;
		if (t < next)
			next = t;
	}
	return next;
}

/* ------------------------------------------------------------------ */
/* schedtrace (KGO_DEBUG=schedtrace=MS,scheddetail=1)                 */
/* ------------------------------------------------------------------ */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_printf(struct sbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(sb->p ? sb->p + sb->len : NULL,
			      sb->p ? sb->cap - sb->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (sb->p && sb->len + n < sb->cap) {
			sb->len += n;
			return;
		}
		{
			size_t cap = (sb->cap ? sb->cap * 2 : 4096) + n;
			char *p = realloc(sb->p, cap);

			if (!p)
				return;
			sb->p = p;
			sb->cap = cap;
		}
	}
}

static void sb_flush(struct sbuf *sb)
{
	size_t off = 0;

	while (off < sb->len) {
		ssize_t n = write(2, sb->p + off, sb->len - off);

		if (n <= 0 && errno != EINTR)
			break;
		if (n > 0)
			off += n;
	}
	free(sb->p);
	sb->p = NULL;
	sb->len = sb->cap = 0;
}

static uint32_t runqsize_of(struct p *pp)
{
	return atomic_load_explicit(&pp->runqtail, memory_order_relaxed) -
	       atomic_load_explicit(&pp->runqhead, memory_order_relaxed);
}

/*
 * schedtrace() - Go's schedtrace line (and with @detail, a line per P,
 * M and G). threads= counts the Ms, sysmon and kgo_run's thread (which
 * runs no G, but is Go's m0), as Go's mcount does.
 * Much of what it reads changes under it (the P's M, the M's G): as in
 * Go, it reads each pointer once and prints what it saw. Those reads
 * race with their owners on purpose, so ThreadSanitizer is told not to
 * watch this function (Ms and Gs are never freed while sysmon runs).
 */
__attribute__((no_sanitize("thread")))
static void schedtrace(bool detail)
{
	char name[KGO_NAME_MAX];
	int64_t now = nanotime();
	struct sbuf sb = { 0 };
	struct m *mp;
	struct g *gp;
	int i;

	lock(&sched.lock);
	sb_printf(&sb, "SCHED %lldms: gomaxprocs=%d idleprocs=%d threads=%d "
		  "spinningthreads=%d idlethreads=%d runqueue=%d",
		  (long long)((now - sm.starttime) / 1000000),
		  sched.gomaxprocs, atomic_load(&sched.npidle),
		  sched.mnext - sched.nmexited + 2,
		  atomic_load(&sched.nmspinning), sched.nmidle,
		  atomic_load(&sched.runqsize));
	if (detail)
		sb_printf(&sb, " nmidlelocked=%d sysmonwait=%d observe=%s "
			  "asyncpreempt=%s handoffs=%llu(kernel %llu, poll "
			  "%llu, timeout %llu) observe_why=\"%s\"\n",
			  sched.nmidlelocked,
			  (int)atomic_load(&sysmon_sleeping), sm.obs->name,
			  preempt_async_on() ? "on" : "off",
			  (unsigned long long)atomic_load(&sched.handoffs),
			  (unsigned long long)atomic_load(&sched.handoffs_kernel),
			  (unsigned long long)atomic_load(&sm.handoffs_poll),
			  (unsigned long long)atomic_load(&sm.handoffs_timeout),
			  sched.observe_why ? sched.observe_why : "");
	for (i = 0; i < sched.gomaxprocs; i++) {
		struct p *pp = sched.allp[i];

		if (!detail) {
			sb_printf(&sb, "%s%u%s", i ? " " : " [",
				  runqsize_of(pp),
				  i == sched.gomaxprocs - 1 ? "]\n" : "");
			continue;
		}
		mp = pp->m;
		sb_printf(&sb, "  P%d: status=%u schedtick=%llu syscalltick=%llu "
			  "m=%d runqsize=%u gfreecnt=%d timerslen=%d\n", i,
			  atomic_load(&pp->status),
			  (unsigned long long)atomic_load(&pp->schedtick),
			  (unsigned long long)atomic_load(&pp->syscalltick),
			  mp ? mp->id : -1, runqsize_of(pp), pp->ngfree,
			  pp->timers.len);
	}
	if (!detail) {
		unlock(&sched.lock);
		sb_flush(&sb);
		return;
	}
	for (mp = sched.allm; mp; mp = mp->alllink) {
		struct p *pp = mp->p;
		struct g *cg = mp->curg, *lg = mp->lockedg;

		if (mp->exited)
			continue;
		sb_printf(&sb, "  M%d: p=%d curg=%lld spinning=%s blocked=%s "
			  "lockedg=%lld\n", mp->id, pp ? pp->id : -1,
			  cg ? (long long)cg->goid : -1LL,
			  mp->spinning ? "true" : "false",
			  !pp && !cg && !mp->spinning ? "true" : "false",
			  lg ? (long long)lg->goid : -1LL);
	}
	lock(&sched.allglock);
	for (gp = sched.allgs; gp; gp = gp->alllink) {
		uint32_t st = atomic_load(&gp->status);
		struct m *gm = gp->m, *lm = gp->lockedm;

		if (st == G_DEAD || st == G_IDLE)
			continue;
		sb_printf(&sb, "  G%llu: status=%u(%s) m=%d lockedm=%d",
			  (unsigned long long)gp->goid, st,
			  st == G_WAITING && gp->waitreason < WAIT_NREASONS ?
			  waitreason_str[gp->waitreason] : "",
			  gm && st != G_WAITING && st != G_RUNNABLE ? gm->id : -1,
			  lm ? lm->id : -1);
		if (g_name(gp, name, sizeof(name)))	/* kgo_set_name */
			sb_printf(&sb, " name=\"%s\"", name);
		sb_printf(&sb, "\n");
	}
	unlock(&sched.allglock);
	unlock(&sched.lock);
	sb_flush(&sb);
}

/* ------------------------------------------------------------------ */
/* The loop                                                           */
/* ------------------------------------------------------------------ */

static bool all_idle(void)
{
	return atomic_load(&sched.npidle) == sched.gomaxprocs;
}

/* Arm sm.wake again after a sleep. */
static void wake_clear(void)
{
	lock(&sm.lock);
	noteclear(&sm.wake);
	sm.wake_armed = true;
	unlock(&sm.lock);
}

/* After a sleep: count what ended it, the wakers' bits or else @why,
 * the deadline's. A wakeup that came while sysmon was awake counts for
 * the sleep it ended at once. */
static void why_count(enum sysmon_why why)
{
	uint32_t by = atomic_exchange_explicit(&sm.woke_by, 0,
					       memory_order_relaxed);
	int i;

	for (i = 0; i < WHY_N; i++)
		if (by ? by & (1u << i) : i == (int)why)
			atomic_store_explicit(&sm.why[i], atomic_load_explicit(
				&sm.why[i], memory_order_relaxed) + 1,
				memory_order_relaxed);
}

/* KGO_DEBUG=observe=1, at exit: the wakeups by cause. */
static void why_print(void)
{
	char buf[512];
	int i, n;

	n = snprintf(buf, sizeof(buf), "kgo: sysmon woke %llu times:",
		     (unsigned long long)atomic_load(&sm.wakeups));
	for (i = 0; i < WHY_N && n < (int)sizeof(buf); i++)
		if (atomic_load(&sm.why[i]))
			n += snprintf(buf + n, sizeof(buf) - n, " %s %llu",
				      why_str[i],
				      (unsigned long long)atomic_load(&sm.why[i]));
	kgo_printf("%s; and from its deep sleep %llu times\n", buf,
		   (unsigned long long)sm.deep);
}

/* Mark sysmon's note woken, for @why; a futex wake if it sleeps there.
 * Release: what the waker wrote is seen by sysmon. */
static void wake_note(enum sysmon_why why)
{
	atomic_fetch_or_explicit(&sm.woke_by, 1u << why, memory_order_relaxed);
	if (atomic_exchange_explicit(&sm.wake.key, 1 /* NOTE_WOKEN */,
				     memory_order_release) == NOTE_KERNEL_VALUE)
		futex_wake(&sm.wake.key, 1);
}

/* Wake sysmon: at most one wakeup per arming. Not notewakeup(): the
 * probes' signal (sysmon_kick) may have marked the note woken already,
 * which notewakeup would take for a double wakeup. */
static void wake_locked(enum sysmon_why why)
{
	if (sm.wake_armed) {
		sm.wake_armed = false;
		wake_note(why);
	}
}

/*
 * bpf_until() - in bpf mode sysmon has no period: the probes wake it
 * when an M that left a P with work waiting blocks (sysmon_kick), and
 * it sleeps until the end of the slices that run (next_slice_end) and
 * the retake of Ps idle in a blocked syscall. Only what the kernel
 * cannot see keeps a period: io rings and netpoller waits (io_sysmon,
 * every 10 ms while Gs wait on them). Under ThreadSanitizer a signal
 * handler runs only when its thread leaves the kernel, so the wakeup
 * cannot end the sleep: sysmon looks every millisecond there.
 */
#define TICK_LOOK	(1000 * 1000 * 1000LL)

static int64_t bpf_until(int64_t now)
{
	int64_t until = INT64_MAX;

	if (atomic_load_explicit(&sched.nio, memory_order_relaxed) > 0 ||
	    io_netpoll_unchecked())
		until = now + DELAY_MAX;
#ifdef KGO_TSAN
	until = now + 1000 * 1000LL;
#endif
	return until;
}

/*
 * sysmon_kick() - the probes' wakeup: SIGURG from BPF (si_code
 * SI_KERNEL) on sysmon's own thread, in its handler (observe_bpf.c).
 * Marking the note woken ends the futex sleep the signal interrupted:
 * the kernel restarts it (SA_RESTART), and it returns at once because
 * the word is no longer the value it waits on. A wakeup from another
 * thread may mark it too (wake_locked tolerates that).
 */
void sysmon_kick(void)
{
	atomic_fetch_or_explicit(&sm.woke_by, 1u << WHY_KICK,
				 memory_order_relaxed);
	atomic_exchange_explicit(&sm.wake.key, 1 /* NOTE_WOKEN */,
				 memory_order_release);
}

void sysmon_kick_remote(void)
{
	wake_note(WHY_KICK_M);
}

static void *sysmon(void *arg)
{
	int64_t delay = DELAY_MIN, lasttrace = 0, now, until, t;
	enum sysmon_why why;
	bool looked = false;
	int nticked, nuntimed, nkernel;
	int idle = 0;

	(void)arg;
	observe_sysmon_init();
	/*
	 * sysmon's sleeps are its clock: a look every 20 us while it finds
	 * work. With the default 50 us timer slack the kernel stretched
	 * each into ~70 us, and a retake takes two looks (handoff p50 was
	 * 150-170 us here, `selftests/bench/run handoff`). Ms keep the
	 * slack of kgo_run's thread (sysmon_minit).
	 */
	prctl(PR_SET_TIMERSLACK, SYSMON_SLACK_NS, 0, 0, 0);
	while (!atomic_load(&sm.stop)) {
		if (unlikely(atomic_load_explicit(&sysmon_quit_pending,
						  memory_order_acquire)))
			sysmon_quit();		/* traceback.c: SIGQUIT */
		if (idle == 0)
			delay = DELAY_MIN;
		else if (idle > 50)
			delay *= 2;
		if (delay > DELAY_MAX)
			delay = DELAY_MAX;
		now = nanotime();
		park_clock_set(now);	/* traceback.h */
		until = now + delay;
		why = WHY_DELAY;
		/* bpf mode: a look before the first sleep. A block before
		 * sysmon registered (observe_sysmon_init) woke nobody. */
		if (sm.obs->kernel_wakes) {
			until = looked ? bpf_until(now) : now;
			why = looked ? WHY_IO : WHY_FIRST;	/* if finite */
		}
		nticked = nuntimed = nkernel = 0;
		t = next_slice_end(now, &nticked, &nuntimed, &nkernel);
		if (t < until) {
			until = t > now + DELAY_MIN ? t : now + DELAY_MIN;
			why = WHY_SLICE;
		}
		/* bpf mode, nothing to time and yet not every P on the
		 * idle list: a P between two owners (kgo_run's first, taken
		 * without pidleget; one being released), which no wakeup
		 * announces. Look again in a millisecond. Unless the kernel
		 * times both what such a P may do next, run a G (the tick)
		 * and block in a call (the probes' kick or retake timer):
		 * then the look a second below. With Ps handed on some 5
		 * times a millisecond (sysmon_cpu), a look found one in
		 * passing 26-68 times a run for nothing. */
		if (until == INT64_MAX && atomic_load(&sched.npidle) +
		    nticked + nuntimed + nkernel < sched.gomaxprocs) {
			if (observe_tick_on() && observe_retake_on()) {
				nticked++;
			} else {
				until = now + WAKEP_LOOK;
				why = WHY_BETWEEN;
			}
		}
		/* bpf mode, the Gs that run are timed by the kernel's
		 * tick, which stops them (observe_bpf.c, tick_times), and
		 * the calls left untimed wake us when the last idle P is
		 * taken: a look a second only, to notice probes unloaded
		 * under a G that then no tick stops (observe_check). */
		if (until == INT64_MAX && (nticked || nuntimed || nkernel)) {
			until = now + TICK_LOOK;
			why = WHY_TICK;
		}
		/* Without the tick, a G back from an untimed call runs
		 * with nobody timing its slice but us: a look a slice on
		 * (as the call's own deadline was). */
		if ((nuntimed || nkernel) && !observe_tick_on() &&
		    until > now + sched.slice_ns) {
			until = now + sched.slice_ns;
			why = WHY_SLICE;
		}
		/* bpf mode, a long sleep: the next deferred wakeup ends it
		 * (above, "Deferred wakeups in bpf mode"). */
		if (sm.obs->kernel_wakes) {
			t = wakep_arm(now, until);
			if (t != until)
				why = WHY_KICKGAP;
			until = t;
		}
		if (sm.schedtrace_ns) {
			t = lasttrace + sm.schedtrace_ns;
			if (t < until) {
				until = t > now ? t : now;
				why = WHY_TRACE;
			}
		}
		/* Blocked calls left untimed beside an idle P: the taker
		 * of the last idle P wakes us ("Blocked calls beside an
		 * idle P"), unless it came already. */
		if (nuntimed) {
			atomic_store(&sysmon_untimed, true);	/* seq_cst */
			if (!atomic_load(&sched.npidle) &&
			    atomic_exchange(&sysmon_untimed, false)) {
				until = now + DELAY_MIN;
				why = WHY_UNTIMED;
			}
		}
		/* Nothing to time, every P idle (bpf mode): the deep
		 * sleep below, whose flag the takers of a P look at. */
		if (sm.obs->kernel_wakes)
			observe_sleep(until != INT64_MAX ? now : 0);
		if (until != INT64_MAX && until - now > DELAY_MAX) {
			atomic_store(&sysmon_long_sleep, true);	/* seq_cst */
			if (io_netpoll_unchecked() ||
			    atomic_load(&sched.nio) > 0) {
				until = now + DELAY_MAX;
				why = WHY_IO;
			}
		}
		if (until != INT64_MAX)
			notesleep_until_nospin(&sm.wake, until);
		atomic_store_explicit(&sysmon_long_sleep, false,
				      memory_order_relaxed);
		wakep_disarm();
		atomic_store_explicit(&sysmon_untimed, false,
				      memory_order_relaxed);
		wake_clear();
		atomic_fetch_add_explicit(&sm.wakeups, 1, memory_order_relaxed);
		why_count(why);
		/* Records gone stale (probes unloaded): poll from now on. */
		if (sm.obs->kernel_wakes && !observe_check(nanotime()))
			sm.obs = &observer_poll;

		/* Every P idle: nothing can need us until one is taken. Go
		 * keeps polling when schedtrace is on, to print in time. */
		if (!sm.schedtrace_ns && all_idle() && !io_netpoll_unchecked()) {
			park_clock_set(0);
			atomic_store(&sysmon_sleeping, true);	/* seq_cst */
			/* sysmon_quit_pending: seq_cst, a Dekker pair with
			 * traceback_sigquit's flag, then sysmon_sleeping. */
			if (all_idle() && !io_netpoll_unchecked() &&
			    !atomic_load(&sm.stop) &&
			    !atomic_load(&sysmon_quit_pending))
				notesleep_until_nospin(&sm.wake, -1);
			atomic_store(&sysmon_sleeping, false);
			wake_clear();
			/* Counted apart: the deep sleeps are not wakeups. */
			atomic_store_explicit(&sm.woke_by, 0,
					      memory_order_relaxed);
			sm.deep++;
			idle = 0;
			continue;
		}
		now = nanotime();
		looked = true;
		if (retake(now))
			idle = 0;
		else
			idle++;
		gfree_scavenge(now);
		io_sysmon(now);
		if (sm.schedtrace_ns && now - lasttrace >= sm.schedtrace_ns) {
			lasttrace = now;
			schedtrace(sm.scheddetail);
		}
	}
	return NULL;
}

/*
 * sysmon_wake() - get sysmon out of its deep sleep: a P left the idle
 * list, or a syscall began. May be called with sched.lock held.
 */
void sysmon_wake(void)
{
	lock(&sm.lock);
	if (atomic_load(&sysmon_sleeping))
		wake_locked(WHY_WAKE);
	unlock(&sm.lock);
}

void sysmon_wake_if_sleeping(void)
{
	if (unlikely(atomic_load(&sysmon_sleeping)))	/* seq_cst */
		sysmon_wake();
}

void sysmon_wake_for_netpoll(void)
{
	/* seq_cst each: the caller's trust_gen increment came first. */
	if (unlikely(atomic_load(&sysmon_sleeping)))
		sysmon_wake();
	else if (unlikely(atomic_load(&sysmon_long_sleep)))
		wake_note(WHY_IO);
}

void syscall_entered(struct p *pp)
{
	(void)pp;
	/* A P in a syscall is not idle, so sysmon is awake unless it is
	 * just going to sleep; seq_cst as for pidleget. */
	sysmon_wake_if_sleeping();
}

/*
 * KGO_DEBUG: comma-separated name=value, Go's GODEBUG names. A key that
 * is unknown or has a bad value gets one line (env.c) and changes
 * nothing; the other keys apply.
 */
static void parse_debug(bool *asyncpreemptoff)
{
	const char *all = getenv("KGO_DEBUG"), *s = all;
	char name[32], val[32], what[48], why[128];
	size_t n, k;
	long v;

	while (s && *s) {
		for (n = 0; *s && *s != '=' && *s != ','; s++)
			if (n < sizeof(name) - 1)
				name[n++] = *s;
		name[n] = 0;
		k = 0;
		if (*s == '=')
			for (s++; *s && *s != ','; s++)
				if (k < sizeof(val) - 1)
					val[k++] = *s;
		val[k] = 0;
		if (*s == ',')
			s++;
		if (!n)
			continue;
		snprintf(what, sizeof(what), "KGO_DEBUG key %s", name);
		if (!strcmp(name, "schedtrace")) {
			if (env_parse_long(what, val, 0, INT_MAX, &v,
					   "no schedtrace lines"))
				sm.schedtrace_ns = v * 1000000LL;
		} else if (!strcmp(name, "scheddetail")) {
			if (env_parse_long(what, val, 0, 1, &v,
					   "no scheddetail lines"))
				sm.scheddetail = v;
		} else if (!strcmp(name, "asyncpreemptoff")) {
			if (env_parse_long(what, val, 0, 1, &v,
					   "async preemption stays on"))
				*asyncpreemptoff = v;
		} else if (!strcmp(name, "observe")) {
			if (env_parse_long(what, val, 0, 1, &v,
					   "no observer lines"))
				observe_debug = v;
		} else if (!strcmp(name, "kickm")) {
			if (env_parse_long(what, val, 0, 1, &v,
					   "the probes kick an idle M"))
				observe_kick_m = v;
		} else if (!strcmp(name, "kickdelay")) {
			if (env_parse_long(what, val, 0, 1000000, &v,
					   "the default kick delay"))
				observe_kick_delay_ns = v * 1000ULL;
		} else if (!strcmp(name, "kernel")) {
			/* Read by kgo_fallback() itself, which runs before
			 * sysmon does (stack_init); checked here. */
			env_parse_long(what, val, 0, 1, &v,
				       "no kernel fallback lines");
		} else {
			snprintf(why, sizeof(why), "no key %s (known: "
				 "schedtrace, scheddetail, asyncpreemptoff, "
				 "observe, kernel, kickm, kickdelay)", name);
			env_warn("KGO_DEBUG", all, why, "the other keys apply");
		}
	}
}

/*
 * sysmon_minit() - a new M takes the name of kgo_run's thread. A thread
 * inherits its creator's name, and sysmon creates Ms too (handoffp from
 * retake): without this, top -H would show them all as kgo-sysmon.
 */
void sysmon_minit(struct m *mp)
{
	if (!mp->is_m0 && sm.mname[0])
		prctl(PR_SET_NAME, (unsigned long)sm.mname, 0, 0, 0);
	/* A thread inherits its creator's slack: sysmon's is not for Ms. */
	if (!mp->is_m0 && sm.mslack > 0)
		prctl(PR_SET_TIMERSLACK, sm.mslack, 0, 0, 0);
	observe_minit(mp);
}

int sysmon_start(void)
{
	bool asyncpreemptoff = false;
	sigset_t all, old;
	int err;

	memset(&sm, 0, sizeof(sm));
	prctl(PR_GET_NAME, (unsigned long)sm.mname, 0, 0, 0);
	sm.mslack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	sm.wake_armed = true;
	atomic_store(&sysmon_sleeping, false);
	/* Left up by the last run ("One fence per arming"). */
	atomic_store(&sysmon_wakep_armed, false);
	atomic_store(&sysmon_fences, 0);
	sm.starttime = nanotime();
	observe_debug = false;
	observe_kick_m = true;
	observe_kick_delay_ns = observe_kick_delay_default();
	parse_debug(&asyncpreemptoff);
	sm.pm = calloc(sched.gomaxprocs, sizeof(*sm.pm));
	if (!sm.pm)
		return -ENOMEM;
	trace_start();
	preempt_init(asyncpreemptoff);
	/* After preempt_init: the probes' wakeup handler chains to its. */
	sm.obs = observe_start();
	if (!sm.obs)
		sm.obs = &observer_poll;
	/* sysmon takes no signals meant for Ms running Gs. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&sm.thread, NULL, sysmon, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Named before kgo_run goes on, for tools (and benches) that look. */
	if (!err)
		pthread_setname_np(sm.thread, "kgo-sysmon");
	if (err) {
		observe_stop();
		preempt_fini();
		trace_stop();
		free(sm.pm);
		sm.pm = NULL;
		return -err;
	}
	sm.started = true;
	return 0;
}

/* Called when every M but m0 has left: stop sysmon, write the trace. */
void sysmon_stop(void)
{
	if (!sm.started)
		return;
	atomic_store(&sm.stop, true);
	lock(&sm.lock);
	wake_locked(WHY_STOP);
	unlock(&sm.lock);
	pthread_join(sm.thread, NULL);
	if (observe_debug)
		why_print();
	observe_m0_exit();
	observe_stop();
	preempt_fini();
	trace_stop();
	free(sm.pm);
	sm.pm = NULL;
	sm.started = false;
}

/* Fill sysmon's and preemption's fields of kgo_stats (kgo_stats_get). */
void sysmon_stats(struct kgo_stats *st)
{
	int i;

	st->sysmon_wakeups = atomic_load_explicit(&sm.wakeups,
						  memory_order_relaxed);
	st->preempt_signals = atomic_load_explicit(&sm.signals,
						   memory_order_relaxed);
	st->async_preempt = preempt_async_on();
	st->handoffs_poll = atomic_load_explicit(&sm.handoffs_poll,
						 memory_order_relaxed);
	st->handoffs_timeout = atomic_load_explicit(&sm.handoffs_timeout,
						    memory_order_relaxed);
	st->sysmon_wakeups_kick = atomic_load_explicit(&sm.why[WHY_KICK],
						       memory_order_relaxed);
	st->sysmon_wakeups_passed = atomic_load_explicit(&sm.why[WHY_KICK_M],
							 memory_order_relaxed);
	st->sysmon_wakeups_wakep = atomic_load_explicit(&sm.why[WHY_WAKEP],
							memory_order_relaxed);
	for (i = WHY_UNTIMED; i < WHY_N; i++)
		st->sysmon_wakeups_timer += atomic_load_explicit(&sm.why[i],
							memory_order_relaxed);
	st->sysmon_fences = atomic_load_explicit(&sysmon_fences,
						 memory_order_relaxed);
	observe_stats(st);
}
