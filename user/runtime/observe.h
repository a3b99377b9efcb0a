/* SPDX-License-Identifier: MIT */
/*
 * observe.h - how sysmon learns whether an M is blocked and whether a G
 * has used its slice: by polling (sysmon.c) or from the kernel's BPF
 * probes (observe_bpf.c, bpf/kgo_observe.bpf.c).
 */
#ifndef KGO_OBSERVE_RT_H
#define KGO_OBSERVE_RT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct p;
struct m;
struct kgo_stats;

/* What sysmon remembers of a P between two looks; sysmon only. */
struct pmon {
	/* The observer's own (polling: Go's sysmontick). */
	uint64_t schedtick;	/* schedtick at the last look */
	int64_t schedwhen;	/* when sysmon first saw that schedtick */
	bool schedseen;		/* ... and saw it again at a later look */
	int64_t lookwhen;	/* the last look at this P running */
	uint64_t syscalltick;
	int64_t syscallwhen;	/* when sysmon first saw that syscall */
	/* retake's. */
	uint64_t slicetick;	/* the slice the request below was for */
	int64_t preemptwhen;	/* last preemption request, 0: none */
	int64_t resend;		/* next request no sooner than this after */
	/* The deferred wakeup (proc.c) seen due at the last look, and
	 * pp->nswitch then: fired only if still due with no switch since. */
	bool wakeseen;
	uint64_t wakeswitch;
	/* bpf mode: the syscall whose G was asked to stop at its return,
	 * its slice being over on a CPU (retake, sysmon.c). */
	uint64_t stoptick;
};


/*
 * struct observer - how sysmon answers its two questions (sysmon.c,
 * "The two questions"). @now is the time of this look. Each is called
 * on every look at a P in the state it is asked about; the poll
 * observer keeps its state in @pm, the kernel-observed one its own.
 */
struct observer {
	const char *name;
	/* @st is pp's status as just read: P_SYSCALL (its old M is in a
	 * kgo syscall) or P_RUNNING (@mp runs a G that ran past its slice
	 * without a runtime call: a plain blocking call looks like this). */
	bool (*m_blocked)(struct p *pp, uint32_t st, struct m *mp,
			  struct pmon *pm, int64_t now);
	/* pp is P_RUNNING or P_SYSCALL. */
	bool (*g_slice_over)(struct p *pp, struct pmon *pm, int64_t now);
	/* When may pp's running G's slice end, at the earliest, as far as
	 * this observer can tell? INT64_MAX: it will say (an observer that
	 * is told by the kernel sleeps until told). */
	int64_t (*slice_end)(struct p *pp, struct pmon *pm);
	/* true: sysmon needs no periodic look (the kernel wakes it). */
	bool kernel_wakes;
};

/* Is thread @tid of this process asleep in the kernel? (/proc; sysmon.c) */
bool thread_sleeping(pid_t tid);

/* KGO_DEBUG=observe=1: say at kgo_run's start which mode and why. */
extern bool observe_debug;
/* KGO_DEBUG=kickm=0: the probes kick sysmon, never an idle M; and
 * kickdelay=US: they kick only for blocks that last that long
 * (observe_bpf.c, KICK_DELAY_NS). Set before observe_start. */
extern bool observe_kick_m;
extern uint64_t observe_kick_delay_ns;
uint64_t observe_kick_delay_default(void);

/* sysmon.c's polling observer (observe_bpf.c asks it about Ms it has no
 * record of). */
extern const struct observer observer_poll;

/*
 * observe_start() - choose the mode from sched.observe and KGO_OBSERVE
 * (auto, bpf, poll; scx is not built), load or open the probes, set
 * sched.observe and sched.observe_why. Called by sysmon_start before any
 * M runs. Return: the kernel-observed observer, or NULL for polling.
 */
const struct observer *observe_start(void);
/* kgo_run's end, after sysmon stopped: detach what this process loaded. */
void observe_stop(void);
/* On a new M's thread (sysmon_minit): register it with the probes. */
void observe_minit(struct m *mp);
/* On m0's thread at kgo_run's end: give its slot back (m0's thread
 * lives on; the other Ms' slots go with their threads). */
void observe_m0_exit(void);
/* On sysmon's thread, first thing: register it as the thread to wake,
 * and take the wakeup signal. */
void observe_sysmon_init(void);
/* preempt.c's SIGURG handler: is this the probes' kick to sysmon? */
bool observe_sigurg(const siginfo_t *si);
/* preempt.c's SIGURG handler, for a SIGURG from the kernel (SI_KERNEL)
 * on M @mp: did the kernel's preemption tick find the slice of @mp's
 * running G over? (bpf/kgo_tick.bpf.h) */
bool observe_tick_asks(struct m *mp);
/* Does the kernel's tick time the running Gs' slices? (sysmon.c) */
bool observe_tick_on(void);
/* Go's rule: a P in a blocked syscall is retaken after this long even
 * with nothing waiting (sysmon.c; in bpf mode the probes' retake timer,
 * bpf/kgo_observe.bpf.c). */
#define SYSCALL_RETAKE	(10 * 1000 * 1000LL)
/* Does the kernel time that retake (the probes' retake timer)? */
bool observe_retake_on(void);
/* sysmon, at each look: false when the probes' state went stale (the
 * probes were unloaded, or a record contradicts the runtime): sysmon
 * then polls, and observe_bpf.c has said why once. */
bool observe_check(int64_t now);
/* The M (of this process) registered as thread @tid, or NULL. */
struct m *observe_m_of(pid_t tid);
/* sysmon, before each sleep: when it began (for observe_check). */
void observe_sleep(int64_t start);
/* A block of the calling M in the kernel, as the probes saw it. */
struct kblock {
	int64_t start, end;	/* nanotime's clock */
	uint64_t n;		/* blocks since the count given */
	bool iowait;
};
/*
 * observe_last_block() - KGO_TRACE (trace.c): has the calling M blocked
 * in the kernel since its record's block count was *@nblock? Updates
 * *@nblock; with @kb, says the last block. false in poll mode, or with
 * no new block, or @kb NULL.
 */
bool observe_last_block(uint64_t *nblock, struct kblock *kb);
/* kgo_stats_get: the observe_* fields. */
void observe_stats(struct kgo_stats *st);
/* The wakeup from BPF, on sysmon's thread in its signal handler
 * (sysmon.c): end sysmon's sleep. */
void sysmon_kick(void);
/* The same from another thread's signal handler: a kicked M that was
 * no longer idle passes the kick on. Async-signal-safe. */
void sysmon_kick_remote(void);

#endif /* KGO_OBSERVE_RT_H */
