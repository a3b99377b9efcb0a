// SPDX-License-Identifier: MIT
/*
 * sysmon.c - the monitor thread: retake Ps from Ms blocked in syscalls,
 * and ask Gs that ran too long to yield.
 *
 * sysmon is an M without a P (not counted by checkdead). In polling
 * mode it works as Go's sysmon: it wakes every 20 us, doubling its sleep
 * up to 10 ms after 50 rounds in which it found nothing to do, and sleeps
 * deeply (until a syscall entry wakes it) when every P is idle.
 *
 * It asks two questions of each P, through one interface so that the
 * kernel-observed mode can answer them from BPF instead of from ticks:
 *
 *   m_blocked(pp)  - is the M that holds pp (in a syscall) really
 *                    blocked? Polling answers: it has been in the same
 *                    syscall for a whole sysmon tick.
 *   g_slice_over(pp) - has the G running on pp used up its slice?
 *                    Polling answers: the P's schedtick has not moved
 *                    for slice_ns of wall time.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

struct psample {
	uint64_t schedtick, syscalltick;
	int64_t schedwhen, syscallwhen;
};

static struct {
	pthread_t thread;
	bool started;
	_Atomic bool stop;
	_Atomic bool deep;		/* in deep sleep: wake on syscall entry */
	struct note wake;
	struct kgo_lock lock;		/* guards deep + wake arming */
	struct psample *ps;
} sm;

/*
 * The polling answers. Each returns true when sysmon should act; they
 * keep their state in sm.ps, which only sysmon touches.
 */
static bool m_blocked(struct p *pp, struct psample *s, int64_t now)
{
	uint64_t t = atomic_load_explicit(&pp->syscalltick, memory_order_relaxed);

	if (s->syscalltick != t) {
		s->syscalltick = t;
		s->syscallwhen = now;
		return false;
	}
	/* Same syscall as last time we looked: blocked for a tick. */
	return true;
}

static bool g_slice_over(struct p *pp, struct psample *s, int64_t now)
{
	uint64_t t = atomic_load_explicit(&pp->schedtick, memory_order_relaxed);

	if (s->schedtick != t) {
		s->schedtick = t;
		s->schedwhen = now;
		return false;
	}
	return now - s->schedwhen >= sched.slice_ns;
}

/* Go's retake rule for a P in a syscall: take it if it has work, or if
 * there is no spare capacity (no spinning M and no idle P). */
static bool worth_retaking(struct p *pp)
{
	uint32_t head = atomic_load(&pp->runqhead);
	uint32_t tail = atomic_load(&pp->runqtail);

	return tail != head || atomic_load(&pp->runnext) ||
	       atomic_load(&sched.runqsize) ||
	       atomic_load(&sched.nmspinning) + atomic_load(&sched.npidle) == 0;
}

static void preempt_p(struct p *pp)
{
	struct m *mp = smp_load_acquire(pp->m);
	struct g *gp = mp ? smp_load_acquire(mp->curg) : NULL;

	if (gp)
		atomic_store_explicit(&gp->preempt, true, memory_order_relaxed);
}

/* One pass over the Ps. Return: how many it acted on. */
static int retake(int64_t now)
{
	int i, n = 0;

	for (i = 0; i < sched.gomaxprocs; i++) {
		struct p *pp = sched.allp[i];
		struct psample *s = &sm.ps[i];
		uint32_t st = atomic_load_explicit(&pp->status,
						   memory_order_acquire);

		if (st == P_SYSCALL) {
			if (m_blocked(pp, s, now) && worth_retaking(pp) &&
			    retake_syscall(pp, false))
				n++;
		} else {
			s->syscalltick = atomic_load(&pp->syscalltick);
		}
		if (st == P_RUNNING && g_slice_over(pp, s, now)) {
			preempt_p(pp);
			s->schedwhen = now;	/* once per slice */
			n++;
		}
	}
	return n;
}

static bool all_idle(void)
{
	return atomic_load(&sched.npidle) == sched.gomaxprocs;
}

static void *sysmon(void *arg)
{
	int64_t delay = 20000;		/* ns */
	int idle = 0;

	(void)arg;
	while (!atomic_load(&sm.stop)) {
		int64_t now;

		if (idle == 0)
			delay = 20000;
		else if (idle > 50)
			delay *= 2;
		if (delay > 10000000)
			delay = 10000000;
		notesleep_until(&sm.wake, nanotime() + delay);
		lock(&sm.lock);
		noteclear(&sm.wake);
		unlock(&sm.lock);

		/* Every P idle: sleep until a syscall entry wakes us. */
		if (all_idle()) {
			lock(&sm.lock);
			atomic_store(&sm.deep, true);
			unlock(&sm.lock);
			if (all_idle() && !atomic_load(&sm.stop))
				notesleep(&sm.wake);
			lock(&sm.lock);
			atomic_store(&sm.deep, false);
			noteclear(&sm.wake);
			unlock(&sm.lock);
			idle = 0;
			continue;
		}
		now = nanotime();
		if (retake(now))
			idle = 0;
		else
			idle++;
	}
	return NULL;
}

/* Wake sysmon, at most once per arming of the note; sm.lock held. */
static void sm_wake_locked(void)
{
	atomic_store(&sm.deep, false);
	if (atomic_load(&sm.wake.key) == 0)
		notewakeup(&sm.wake);
}

void syscall_entered(struct p *pp)
{
	(void)pp;
	/* Relaxed: a missed wakeup costs at most one sysmon period. */
	if (!atomic_load_explicit(&sm.deep, memory_order_relaxed))
		return;
	lock(&sm.lock);
	if (atomic_load(&sm.deep))
		sm_wake_locked();
	unlock(&sm.lock);
}

int sysmon_start(void)
{
	sigset_t all, old;
	int err;

	memset(&sm, 0, sizeof(sm));
	sm.ps = calloc(sched.gomaxprocs, sizeof(*sm.ps));
	if (!sm.ps)
		return -ENOMEM;
	/* sysmon takes no signals meant for Ms running Gs. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&sm.thread, NULL, sysmon, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		free(sm.ps);
		sm.ps = NULL;
		return -err;
	}
	sm.started = true;
	return 0;
}

void sysmon_stop(void)
{
	if (!sm.started)
		return;
	atomic_store(&sm.stop, true);
	lock(&sm.lock);
	sm_wake_locked();
	unlock(&sm.lock);
	pthread_join(sm.thread, NULL);
	free(sm.ps);
	sm.ps = NULL;
	sm.started = false;
}
