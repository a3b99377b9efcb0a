// SPDX-License-Identifier: MIT
/*
 * observe_bpf.c - sysmon's kernel-observed observer: the answers to
 * "is this M blocked?" and "has this G used its slice?" read from the
 * records the BPF probes keep (bpf/kgo_observe.bpf.c, which has the
 * design essay, and bpf/kgo_observe.h, which has the layout).
 *
 * Modes (KGO_OBSERVE, else kgo_config.observe)
 * ---------------------------------------------
 *   poll  sysmon polls, as Go's does (sysmon.c, observer_poll).
 *   bpf   the probes pinned by `kgo-probe load` under /sys/fs/bpf/kgo,
 *         or, for a process that may load BPF (root), its own copy,
 *         which the kernel detaches when the process dies (its links
 *         are file descriptors). If neither: poll, and the reason is
 *         said once on stderr.
 *   auto  bpf if it can be had, else poll, silently (KGO_DEBUG shows
 *         the choice and why).
 *   scx   not built in this version: poll.
 * The mode and its reason are in kgo_stats (observe, observe_why) and in
 * schedtrace's detail line.
 *
 * What the runtime publishes (struct kgo_obs_proc, in obs.proc) is
 * written once, before the first registration, and touched so that the
 * probes' bpf_probe_read_user (which cannot fault) finds it present.
 * The M's own field the probes read (m->oldp) is in struct m, which is
 * calloc'd and written before the M registers.
 *
 * Reading a record: cpu_ns and state change together under the
 * record's seq (odd while the probe writes); a reader retries while it
 * is odd or moved. The state word alone is one 64-bit load.
 *
 * Stale state: the probes can be unloaded under a running program
 * (`kgo-probe unload`, which also clears the records). At each look
 * sysmon checks its own record: sysmon is running, so its record must
 * say RUNNING and still be its own. If not, the records are stale and
 * sysmon polls from then on, said once on stderr and in kgo_stats.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"
#include "observe.h"
#include "observe_bpf.h"

#ifdef KGO_BPF
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "kgo_observe.skel.h"
#endif

/* Where a thread's slot is found from its tid (sysmon: the M of a P in
 * a syscall is known only by P's syscalltid). Open addressing; each
 * entry (tid << 32) | (slot + 1), written once by the M at
 * registration, read by sysmon (relaxed: a stale miss means polling's
 * answer for that look). */
#define TIDTAB		4096

/* Per P, the slice as the kernel counts it; sysmon only. */
struct pslice {
	uint64_t tick;		/* pp->schedtick when first seen */
	int32_t slot;		/* the record of the M that ran it */
	uint64_t gen;		/* ... and its generation */
	uint64_t cpu0;		/* that M's CPU time then */
	int64_t lookwhen;	/* the last look: wall time */
	uint64_t used;		/* ... and the slice's CPU time then */
};

static struct {
	bool on;			/* bpf mode chosen at start */
	int want;			/* the mode asked for */
	_Atomic bool stale;		/* gone to poll mode since */
	const volatile struct kgo_obs_m *ms;	/* the records, mapped */
	size_t ms_len;
	int ms_fd;
	int stats_fd;
	bool own;			/* loaded by this process */
	struct kgo_obs_proc proc;	/* published to the probes */
	_Atomic uint64_t tids[TIDTAB];
	int32_t sysmon_slot;
	uint64_t sysmon_owner;
	struct pslice *ps;
	int64_t sleep_start;		/* sysmon's last sleep began; sysmon */
	uint64_t sleep_nblock;		/* its record's nblock then; sysmon */
	int unseen;			/* such sleeps the probes missed */
	long sleep_nvcsw;		/* sysmon's voluntary switches then */
	_Atomic uint64_t misses;	/* records that said blocked wrongly */
	const char *stale_why;
	char noslot_buf[256];		/* stale_why: sysmon's lack of slot */
	_Atomic uint64_t kicks;		/* wakeups of sysmon from BPF */
	_Atomic uint64_t kicks_m;	/* ... of idle Ms */
	_Atomic uint64_t kicks_second;	/* ... that found it kicked already */
	_Atomic uint64_t kicks_passed;	/* ... or awake: passed to sysmon */
	_Atomic uint64_t kicks_kept;	/* ... or kept by the M awake */
	_Atomic uint64_t kicks_fwd;	/* ... or sent on to an idle M */
	pid_t pid;			/* ours, for the handler */
	uid_t uid;
	_Atomic int64_t kick_ns;	/* the last one's arrival */
	_Atomic uint64_t ms_reg;	/* Ms registered */
	_Atomic uint64_t ms_unreg;	/* Ms that found no slot: polled */
	_Atomic uint64_t reg_retries;	/* registrations made again: the
					 * kernel had skipped the probe */
#ifdef KGO_BPF
	struct kgo_observe_bpf *skel;
#endif
	/* bpfp: the kernel's preemption tick (bpf/kgo_tick.bpf.h) times
	 * the slices of running Gs: set at start, before any M runs. */
	_Atomic bool tick_on;
	/* The kernel's retake timer (kgo_observe.bpf.c, "The retake
	 * timer") is there: set before the Ms start, then read only. */
	bool retake_on;
	_Atomic uint64_t tick_taken;	/* its SIGURGs that stopped a G */
	_Atomic bool noslot_said;	/* say_noslot, once a run */
	uint64_t set_id;		/* the probe set chosen (kgo_obs_info) */
	const char *own_why;		/* loaded our own although pinned */
} obs = { .ms_fd = -1, .stats_fd = -1, .sysmon_slot = -1 };

static __thread bool tls_sysmon;

/*
 * KICK_DELAY_NS - how long an M must stay blocked, with work waiting
 * for its P, before the probes kick (0: at the block, no timer). To be
 * measured: see the README's table.
 */
#define KICK_DELAY_NS	0

bool observe_debug;
bool observe_kick_m = true;
uint64_t observe_kick_delay_ns = KICK_DELAY_NS;

uint64_t observe_kick_delay_default(void)
{
	return KICK_DELAY_NS;
}

/* ------------------------------------------------------------------ */
/* Records                                                            */
/* ------------------------------------------------------------------ */

#define rd(x)	__atomic_load_n(&(x), __ATOMIC_ACQUIRE)

static uint64_t owner_of(pid_t tid)
{
	return ((uint64_t)getpid() << 32) | (uint32_t)tid;
}

/* The slot @tid registered, or -1. */
static int32_t slot_of_tid(pid_t tid)
{
	uint32_t h = kgo_obs_hash((uint32_t)tid) & (TIDTAB - 1), i;
	uint64_t e;

	if (tid <= 0)
		return -1;
	for (i = 0; i < 32; i++) {
		e = atomic_load_explicit(&obs.tids[(h + i) & (TIDTAB - 1)],
					 memory_order_relaxed);
		if (!e)
			return -1;
		if ((uint32_t)(e >> 32) == (uint32_t)tid)
			return (int32_t)(uint32_t)e - 1;
	}
	return -1;
}

static void tid_put(pid_t tid, int32_t slot)
{
	uint32_t h = kgo_obs_hash((uint32_t)tid) & (TIDTAB - 1), i;
	uint64_t e = ((uint64_t)(uint32_t)tid << 32) | (uint32_t)(slot + 1);

	for (i = 0; i < 32; i++) {
		_Atomic uint64_t *p = &obs.tids[(h + i) & (TIDTAB - 1)];
		uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

		if (old && (uint32_t)(old >> 32) != (uint32_t)tid)
			continue;
		atomic_store_explicit(p, e, memory_order_relaxed);
		return;
	}
}

/*
 * rec_read() - a consistent (state word, CPU time now) of @slot. The
 * CPU time includes the current run when the thread is on a CPU.
 * Return: false if the record is not @owner's (or kept changing).
 */
static bool rec_read(int32_t slot, uint64_t owner, uint64_t *state,
		     uint64_t *cpu, uint64_t *gen)
{
	const volatile struct kgo_obs_m *r = &obs.ms[slot];
	uint64_t s1, s2, w = 0, c = 0;
	int i;

	for (i = 0; i < 64; i++) {
		s1 = rd(r->seq);
		if (s1 & 1) {
			cpu_relax();
			continue;
		}
		w = rd(r->state);
		c = rd(r->cpu_ns);
		*gen = rd(r->gen);
		s2 = rd(r->seq);
		if (s1 == s2)
			break;
	}
	if (i == 64 || rd(r->owner) != owner)
		return false;
	if (kgo_obs_state(w) == KGO_OBS_RUNNING) {
		int64_t now = nanotime();	/* CLOCK_MONOTONIC = ktime */

		if ((uint64_t)now > kgo_obs_since(w))
			c += now - kgo_obs_since(w);
	}
	*state = w;
	*cpu = c;
	return true;
}

/* ------------------------------------------------------------------ */
/* The observer                                                       */
/* ------------------------------------------------------------------ */

/*
 * observe_confirm() - the record says @tid is blocked: is it? The
 * probes miss a switch-in now and then: a thread woken from a sleep
 * runs with no sched_switch that names it as next, so its record says
 * BLOCKED (or RUNNABLE) while it runs, until its next switch out. Seen
 * here with a thread that sleeps 500 us 6000 times (each time it looks
 * at its own record): 2-15 missed switch-ins per run, on 6.18, always
 * a thread that blocked in an interruptible sleep; the switch outs
 * were all there. Which kernel path does it is not found yet. So a
 * BPF "blocked" is confirmed with the kernel's own word (/proc), only
 * when sysmon is about to act on it; "running" is taken as it is.
 */
static bool observe_confirm(pid_t tid)
{
	if (thread_sleeping(tid))
		return true;
	atomic_fetch_add_explicit(&obs.misses, 1, memory_order_relaxed);
	return false;
}

/* A BLOCKED record younger than this is not confirmed (/proc costs
 * ~10 us of sysmon's time, and in sysmon_cpu's storm of 50 us sleeps
 * every block woke sysmon to hand a P off). */
#define CONFIRM_AFTER	(1000 * 1000ULL)

/* pp is still in syscall t (read with acquire before the record). */
static bool still_in(struct p *pp, uint64_t t)
{
	return atomic_load_explicit(&pp->status, memory_order_acquire) ==
		       P_SYSCALL &&
	       atomic_load_explicit(&pp->syscalltick, memory_order_relaxed) == t;
}

/*
 * block_believed() - the record (state word @w) of thread @tid, pp's M
 * in syscall @t, says BLOCKED. A fresh block (the usual case: the
 * probes' own wakeup) is taken as it is; a missed switch-in after it
 * costs at worst one handoff the M did not need, as polling's guess
 * does. An older one is asked about (/proc). Then, blocked and still in
 * the same syscall after we read it: it blocked in that call (it
 * entered it running).
 */
static bool block_believed(struct p *pp, uint64_t t, pid_t tid, uint64_t w,
			   int64_t now)
{
	if ((uint64_t)now - kgo_obs_since(w) >= CONFIRM_AFTER &&
	    !observe_confirm(tid))
		return false;
	return still_in(pp, t);
}

static bool bpf_m_blocked(struct p *pp, uint32_t st, struct m *mp,
			  struct pmon *pm, int64_t now)
{
	uint64_t w, cpu, gen, t;
	pid_t tid;
	int32_t slot;

	if (st == P_RUNNING) {
		tid = mp ? mp->tid : 0;
		slot = slot_of_tid(tid);
		if (slot < 0 || !rec_read(slot, owner_of(tid), &w, &cpu, &gen))
			return observer_poll.m_blocked(pp, st, mp, pm, now);
		return kgo_obs_state(w) == KGO_OBS_BLOCKED &&
		       observe_confirm(tid);
	}
	/* Acquire: the tid read after it belongs to syscall t. */
	t = atomic_load_explicit(&pp->syscalltick, memory_order_acquire);
	if (pm->syscalltick != t) {
		pm->syscalltick = t;
		pm->syscallwhen = now;
	}
	tid = atomic_load_explicit(&pp->syscalltid, memory_order_relaxed);
	slot = slot_of_tid(tid);
	if (slot < 0 || !rec_read(slot, owner_of(tid), &w, &cpu, &gen)) {
		/* No record: poll's answer, which wants its own look at
		 * the tick. */
		pm->syscalltick = t - 1;
		return observer_poll.m_blocked(pp, st, mp, pm, now);
	}
	/* Go's 10 ms run from the block the kernel saw at the latest (it
	 * began in this call), when sysmon looks at a call the retake
	 * timer kicked for (sysmon.c, "The kernel's retake timer"). */
	if (kgo_obs_state(w) == KGO_OBS_BLOCKED &&
	    (int64_t)kgo_obs_since(w) < pm->syscallwhen)
		pm->syscallwhen = kgo_obs_since(w);
	if (kgo_obs_state(w) != KGO_OBS_BLOCKED) {
		/* Had the probes missed its switch out, a blocked M would
		 * look busy for good: after SYSCALL_RETAKE in one call,
		 * ask the kernel (once per look; it is rare). */
		if (now - pm->syscallwhen < 10 * 1000 * 1000LL ||
		    !thread_sleeping(tid))
			return false;
		return still_in(pp, t);
	}
	return block_believed(pp, t, tid, w, now);
}

/*
 * observe_syscall_blocked() - for an M about to take a P (proc.c,
 * take_blocked_p): is pp in P_SYSCALL with its M blocked in that call,
 * as the kernel saw it? No syscall (a /proc read only for a block older
 * than CONFIRM_AFTER). false in poll mode.
 */
bool observe_syscall_blocked(struct p *pp, int64_t now)
{
	uint64_t w, cpu, gen, t;
	pid_t tid;
	int32_t slot;

	if (!obs.on || atomic_load_explicit(&obs.stale, memory_order_relaxed))
		return false;
	t = atomic_load_explicit(&pp->syscalltick, memory_order_acquire);
	if (atomic_load_explicit(&pp->status, memory_order_relaxed) !=
	    P_SYSCALL)
		return false;
	tid = atomic_load_explicit(&pp->syscalltid, memory_order_relaxed);
	slot = slot_of_tid(tid);
	if (slot < 0 || !rec_read(slot, owner_of(tid), &w, &cpu, &gen) ||
	    kgo_obs_state(w) != KGO_OBS_BLOCKED)
		return false;
	return block_believed(pp, t, tid, w, now);
}

bool observe_last_block(uint64_t *nblock, struct kblock *kb)
{
	const volatile struct kgo_obs_m *r;
	struct m *mp = getm();
	uint64_t n, w, end, s1;
	int32_t slot;
	int i;

	if (!obs.on || !mp ||
	    atomic_load_explicit(&obs.stale, memory_order_relaxed))
		return false;
	slot = slot_of_tid(mp->tid);
	if (slot < 0)
		return false;
	r = &obs.ms[slot];
	n = rd(r->nblock);
	if (n == *nblock || !kb) {
		*nblock = n;
		return false;
	}
	/* The block's fields change under seq with nblock (sched_switch);
	 * blk_end alone is written by sched_wakeup, after the block. */
	for (i = 0; i < 64; i++) {
		s1 = rd(r->seq);
		n = rd(r->nblock);
		w = rd(r->blk_state);
		if (!(s1 & 1) && rd(r->seq) == s1)
			break;
	}
	end = kgo_obs_since(rd(r->blk_end));
	kb->n = n - *nblock;
	*nblock = n;
	kb->start = (int64_t)kgo_obs_since(w);
	/* Running now, so the block is over: its end is missing only when
	 * both its wakeup and switch-in were missed. */
	kb->end = end >= (uint64_t)kb->start ? (int64_t)end : nanotime();
	kb->iowait = w & KGO_OBS_IOWAIT;
	return i < 64 && kb->start > 0;
}

struct m *observe_m_of(pid_t tid)
{
	int32_t slot = slot_of_tid(tid);

	if (slot < 0 || rd(obs.ms[slot].owner) != owner_of(tid) ||
	    rd(obs.ms[slot].role) != KGO_OBS_REG_M)
		return NULL;
	/* What this process registered (observe_minit): its own M. */
	return (struct m *)(uintptr_t)rd(obs.ms[slot].m_addr);
}

/* The thread that runs pp's G now: pp's M, or the one in its syscall. */
static pid_t p_tid(struct p *pp)
{
	struct m *mp;

	if (atomic_load_explicit(&pp->status, memory_order_acquire) ==
	    P_SYSCALL)
		return atomic_load_explicit(&pp->syscalltid,
					    memory_order_relaxed);
	mp = smp_load_acquire(pp->m);
	return mp ? mp->tid : 0;
}

/* The CPU time of thread @tid of this process, as the scheduler
 * counts it (its sum_exec_runtime); false if it is gone. */
static bool thread_cpu(pid_t tid, uint64_t *cpu)
{
	/* MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED), <linux/posix-timers.h> */
	clockid_t clk = (clockid_t)((~(unsigned)tid << 3) | 4 | 2);
	struct timespec ts;

	if (clock_gettime(clk, &ts))
		return false;
	*cpu = (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	return true;
}

/* Does the kernel's tick time the slice of pp's G? (A running G whose
 * M registered; a G in a syscall is sysmon's.) */
static bool tick_times(struct p *pp)
{
	struct m *mp;

	if (!atomic_load_explicit(&obs.tick_on, memory_order_relaxed) ||
	    atomic_load_explicit(&pp->status, memory_order_acquire) !=
	    P_RUNNING)
		return false;
	mp = smp_load_acquire(pp->m);
	return mp && slot_of_tid(mp->tid) >= 0;
}

/*
 * A slice is the CPU time the kernel saw the G's M get since sysmon
 * first saw the G (pp->schedtick) on it. A G whose M waited for a CPU
 * has not used its slice; a G in a syscall that runs on a CPU uses it.
 * The time is the thread's CPU clock (the scheduler's own account), not
 * the record's cpu_ns, which a missed switch-in leaves short (see
 * observe_confirm); one clock_gettime per look at a running P.
 */
static bool bpf_g_slice_over(struct p *pp, struct pmon *pm, int64_t now)
{
	struct pslice *ps = &obs.ps[pp->id];
	uint64_t tick = atomic_load_explicit(&pp->schedtick,
					     memory_order_relaxed);
	uint64_t cpu, gen = 0;
	pid_t tid = p_tid(pp);
	int32_t slot = slot_of_tid(tid);

	/* The kernel's tick times a running G's slice (and stops it):
	 * sysmon neither looks nor signals, but keeps the handler ours. */
	if (tick_times(pp)) {
		preempt_tend(now);
		return false;
	}
	if (slot < 0 || !thread_cpu(tid, &cpu)) {
		ps->slot = -1;
		return observer_poll.g_slice_over(pp, pm, now);
	}
	ps->lookwhen = now;
	if (ps->tick != tick || ps->slot != slot || ps->gen != gen ||
	    cpu < ps->cpu0) {
		ps->tick = tick;
		ps->slot = slot;
		ps->gen = gen;
		ps->cpu0 = cpu;
		ps->used = 0;
		return false;
	}
	ps->used = cpu - ps->cpu0;
	return ps->used >= (uint64_t)sched.slice_ns;
}

/* The earliest the slice can end: all of the rest on a CPU from the
 * last look. sysmon sleeps till then; it is told of blocks. */
static int64_t bpf_slice_end(struct p *pp, struct pmon *pm)
{
	struct pslice *ps = &obs.ps[pp->id];
	int64_t t;

	if (tick_times(pp))
		return INT64_MAX;	/* the tick will stop it */
	/* Not looked at yet (the P started running after the last look,
	 * or its M had not registered then): look now. sysmon has no
	 * period to fall back on. */
	if (ps->slot < 0) {
		t = observer_poll.slice_end(pp, pm);
		return t == INT64_MAX ? 0 : t;
	}
	if (!ps->lookwhen)
		return 0;
	if (ps->used >= (uint64_t)sched.slice_ns)
		return ps->lookwhen;
	return ps->lookwhen + (sched.slice_ns - (int64_t)ps->used);
}

static const struct observer observer_bpf = {
	.name = "bpf",
	.m_blocked = bpf_m_blocked,
	.g_slice_over = bpf_g_slice_over,
	.slice_end = bpf_slice_end,
	.kernel_wakes = true,
};

/* ------------------------------------------------------------------ */
/* Registration                                                       */
/* ------------------------------------------------------------------ */

/*
 * Registration's answer (kgo_observe.h, kgo_obs_register): the runtime
 * finds its own record after the prctl, else reads why not from the
 * records: a full window, this user's cap, or a probe the kernel
 * skipped, which it registers again after a sleep. Skipped: the
 * kernel runs a tracing program once per CPU at a time, and on a
 * preemptible kernel the task_rename tracepoint runs preemptible, so a
 * thread preempted inside the probe makes the kernel skip every other
 * thread's registration on that CPU until it runs again. Measured in
 * the 7.2 guest (preempt=lazy; `VMTEST_TOOLS=bpftool VMTEST_CMD='...
 * ./observe_test -t pinned_many' make vmtest`, 300 processes,
 * 2026-12-06): kgo_rename's recursion_misses 6 (`bpftool prog show`;
 * kgo-probe status: "skipped by the kernel"), 4 processes with a
 * thread left unregistered, and no task storage refused (reg_nostore
 * 0). Never seen on the host's 6.18 (preempt=none). A full window or
 * a reached cap lasts until others give slots back: said, and the
 * thread is polled. So is a process in another pid namespace
 * (REG_PIDNS): the probes know threads by the kernel's ids.
 */
#define REG_PIDNS	(KGO_OBS_SKIPPED + 1)

/* Is this process in a pid namespace other than the kernel's first?
 * That one's inode is PROC_PID_INIT_INO (<linux/proc_ns.h>: 0xEFFFFFFC,
 * fixed), as /proc/self/ns/pid shows it. */
static bool in_child_pidns(void)
{
	struct stat st;

	return !stat("/proc/self/ns/pid", &st) && st.st_ino != 0xEFFFFFFCU;
}

/*
 * obs_register() - register the calling thread, which keeps its name
 * (@name, or the one it has), and find its record. Return: its slot,
 * or -1 with the reason in *@why (KGO_OBS_*, REG_PIDNS).
 */
static int32_t obs_register(int op, void *m_addr, const char *name, int *why)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	int retries, slot;

	slot = kgo_obs_register(obs.ms, op, m_addr, &obs.proc, name,
				(uint32_t)getpid(), (uint32_t)tid,
				(uint32_t)getuid(), why, &retries);
	if (retries)
		atomic_fetch_add_explicit(&obs.reg_retries, retries,
					  memory_order_relaxed);
	if (slot >= 0)
		tid_put(tid, slot);
	else if (*why == KGO_OBS_SKIPPED && in_child_pidns())
		*why = REG_PIDNS;
	return slot;
}

/* Why the probes gave a thread no slot (obs_register's *why), in words
 * for the one line a run says (say_noslot, observe_sysmon_init). */
static void noslot_words(int why, char *buf, size_t n)
{
	switch (why) {
	case KGO_OBS_FULL:
		snprintf(buf, n, "the probes' table is full (kgo-probe "
			 "status)");
		break;
	case KGO_OBS_CAPPED:
		snprintf(buf, n, "this user holds its cap of %d (kgo-probe "
			 "status)", KGO_OBS_UID_SLOTS);
		break;
	case REG_PIDNS:
		snprintf(buf, n, "the process is in another pid namespace, "
			 "and the probes know threads by the kernel's ids");
		break;
	default:
		snprintf(buf, n, "the kernel skipped the probe %d times "
			 "(another thread was in it on the same CPU: "
			 "kgo-probe status, \"skipped by the kernel\")",
			 KGO_OBS_TRIES);
	}
}

/*
 * A registration was refused: say why, once a run (an M's or sysmon's,
 * whichever comes first), where KGO_OBSERVE=bpf was asked for (auto's
 * fallbacks are silent; KGO_DEBUG=observe=1 shows them).
 */
static void say_noslot(int why)
{
	char words[200];

	if (obs.want != KGO_OBSERVE_BPF && !observe_debug)
		return;
	if (atomic_exchange(&obs.noslot_said, true))
		return;
	noslot_words(why, words, sizeof(words));
	kgo_printf("kgo: the BPF probes gave this process no slot: %s; "
		   "what found none is polled\n", words);
}

void observe_minit(struct m *mp)
{
	int why;

	if (!obs.on || atomic_load(&obs.stale))
		return;
	if (obs_register(KGO_OBS_REG_M, mp, NULL, &why) >= 0) {
		atomic_fetch_add(&obs.ms_reg, 1);
		return;
	}
	/* No slot (table full, this user's cap reached, the probe skipped
	 * KGO_OBS_TRIES times, or another pid namespace): this M is
	 * handled by polling; sysmon asks poll about it. */
	atomic_fetch_add(&obs.ms_unreg, 1);
	say_noslot(why);
}

/* The run ends: the main thread, which outlives it, gives its record
 * back (the Ms' threads exit, which frees theirs). */
void observe_m0_exit(void)
{
	if (obs.on && kgo_obs_unregister(obs.ms, (uint32_t)obs.pid,
					 (uint32_t)syscall(SYS_gettid)) &&
	    observe_debug)
		kgo_printf("kgo: observe: the kernel skipped the main "
			   "thread's unregistration %d times: its record "
			   "goes at the thread's exit\n", KGO_OBS_TRIES);
}

/*
 * SIGURG from BPF (si_code SI_KERNEL, si_value the P of the M that
 * blocked: wake_if_needed in the probes) is the probes' kick. On
 * sysmon's thread it ends sysmon's sleep; on an idle M, the M takes
 * the P itself (proc.c, "Handoff from the kernel"); an M that is no
 * longer idle passes it to sysmon. preempt.c's handler, the one SIGURG
 * handler of the process, asks here first: true means the signal was
 * the probes' kick and is consumed; anything else is preempt.c's to
 * handle or pass on (a SIGURG sent from BPF by bpf_send_signal_thread
 * carries no P). (Two handlers, each chaining to the other's saved
 * action, called each other for ever once preempt.c took SIGURG back
 * from what it took for the program's handler: a stack overflow in
 * every bpf-mode run.)
 */
/*
 * Kicks sent on
 * -------------
 * A kick that finds its M running a G (a waker took the M off midle
 * after the probes read sched.kick_tid, and it ran on) cannot be kept
 * for later ("Kicks to an M awake", proc.c): the G may not come back to
 * the runtime for a while. It went to sysmon, which woke to hand the P
 * to an idle M: two wakeups, and sysmon's was most of sysmon's CPU in
 * bpf mode (passed kicks: 56-136 of 73-173 wakeups a run of
 * `selftests/bench/run -r 3 sysmon_cpu`, 2026-12-06 23:50). The M
 * itself cannot hand the P on in a signal handler (sched.lock; perhaps
 * a new M), but it can do what the probes do: signal the idle M now at
 * the head of midle, with the P, from the handler (rt_tgsigqueueinfo,
 * async-signal-safe: a system call). That M takes the P as from the
 * probes (kick_m_take): one wakeup, sysmon's saved. Such a kick is
 * told from the program's own SIGURGs and from sysmon's preemption
 * requests (si_value the random cookie) by si_code SI_QUEUE, our pid
 * (only a process of the same user may send us SI_QUEUE, and it may
 * ptrace us anyway), KICK_FWD_MARK in si_errno and a P of ours in
 * si_value. One hop: a sent-on kick that finds that M awake too goes
 * to sysmon. Counted in kgo_stats.observe_kicks_forwarded; sysmon_test
 * kick_race_bpf.
 */
#define KICK_FWD_MARK	0x6b676f	/* "kgo" */

static bool kick_forward(struct m *mp, struct p *pp)
{
	int32_t tid = READ_ONCE(sched.kick_tid);
	siginfo_t si;

	if (tid <= 0 || tid == mp->tid)
		return false;
	memset(&si, 0, sizeof(si));
	si.si_signo = SIGURG;
	si.si_code = SI_QUEUE;
	si.si_errno = KICK_FWD_MARK;
	si.si_pid = obs.pid;
	si.si_uid = obs.uid;
	si.si_value.sival_ptr = pp;
	/* The caller, preempt.c's handler, keeps errno. */
	return !syscall(SYS_rt_tgsigqueueinfo, obs.pid, tid, SIGURG, &si);
}

bool observe_sigurg(const siginfo_t *si)
{
	struct p *pp = si->si_value.sival_ptr;
	bool fwd = si->si_code == SI_QUEUE &&
		   si->si_errno == KICK_FWD_MARK && si->si_pid == obs.pid;
	struct m *mp;

	if (si->si_code != SI_KERNEL && !fwd)
		return false;
	if (tls_sysmon) {
		atomic_fetch_add_explicit(&obs.kicks, 1, memory_order_relaxed);
		atomic_store_explicit(&obs.kick_ns, nanotime(),
				      memory_order_relaxed);
		sysmon_kick();
		return true;
	}
	mp = getm();
	if (!mp || !p_valid(pp))
		return false;
	atomic_store_explicit(&obs.kick_ns, nanotime(), memory_order_relaxed);
	atomic_fetch_add_explicit(&obs.kicks_m, 1, memory_order_relaxed);
	/* Idle and not kicked yet: it takes the P itself. Kicked already
	 * (another M blocked before this one left midle, and the probes
	 * read the same sched.kick_tid): it takes the first P and hands
	 * this one on (proc.c, "Two kicks"). */
	switch (kick_m_take(mp, pp)) {
	case KICK_TOOK:
		return true;
	case KICK_SECOND:
		atomic_fetch_add_explicit(&obs.kicks_second, 1,
					  memory_order_relaxed);
		return true;
	default:
		break;
	}
	/* Not idle any more (a waker took it off midle after the probes
	 * read sched.kick_tid): sysmon hands the P off, unless its M came
	 * back from the call or another took it meanwhile (P_SYSCALL no
	 * more): 190-292 of 840-1330 such kicks a run of `sysmon_cpu -p 2
	 * -n 10000 -w 8` needed no sysmon wakeup. */
	if (atomic_load_explicit(&pp->status, memory_order_relaxed) !=
	    P_SYSCALL)
		return true;
	/* On its way out of stopm: it hands the P on itself (proc.c,
	 * "Kicks to an M awake"). */
	if (kick_m_keep(mp, pp)) {
		atomic_fetch_add_explicit(&obs.kicks_kept, 1,
					  memory_order_relaxed);
		return true;
	}
	/* Running a G: the idle M now at the head of midle takes it
	 * ("Kicks sent on"). */
	if (!fwd && kick_forward(mp, pp)) {
		atomic_fetch_add_explicit(&obs.kicks_fwd, 1,
					  memory_order_relaxed);
		return true;
	}
	atomic_fetch_add_explicit(&obs.kicks_passed, 1, memory_order_relaxed);
	sysmon_kick_remote();
	return true;
}

/*
 * observe_tick_asks() - a SIGURG with si_code SI_KERNEL came to @mp:
 * is it the kernel's tick asking @mp's running G to stop? Yes if the
 * M's own record (written only by the tick) says that the slice of its
 * P's current schedtick is over (bpf/kgo_tick.bpf.h, "The protocol").
 * Async-signal-safe: plain loads of the records and of the tid table.
 */
bool observe_tick_asks(struct m *mp)
{
	const volatile struct kgo_obs_m *r;
	struct p *pp = mp->p;
	int32_t slot;

	if (!atomic_load_explicit(&obs.tick_on, memory_order_relaxed) ||
	    !pp || !obs.ms)
		return false;
	slot = slot_of_tid(mp->tid);
	if (slot < 0)
		return false;
	r = &obs.ms[slot];
	if (rd(r->owner) != owner_of(mp->tid) ||
	    rd(r->tick_preempt) != atomic_load_explicit(&pp->schedtick,
							memory_order_relaxed) + 1)
		return false;
	atomic_fetch_add_explicit(&obs.tick_taken, 1, memory_order_relaxed);
	return true;
}

/* Does the kernel time the retake of Ps whose M blocked in a call with
 * nothing waiting? (sysmon.c, "Blocked calls beside an idle P") */
bool observe_retake_on(void)
{
	return obs.on && obs.retake_on &&
	       !atomic_load_explicit(&obs.stale, memory_order_relaxed);
}

/* Does the kernel's tick time the running Gs' slices? (sysmon.c) */
bool observe_tick_on(void)
{
	return atomic_load_explicit(&obs.tick_on, memory_order_relaxed);
}

void observe_sysmon_init(void)
{
	sigset_t set;
	int why;

	if (!obs.on)
		return;
	tls_sysmon = true;
	/* Its creator names it kgo-sysmon meanwhile (sysmon_start). */
	obs.sysmon_slot = obs_register(KGO_OBS_REG_SYSMON, NULL, "kgo-sysmon",
				       &why);
	if (obs.sysmon_slot < 0) {
		int k = snprintf(obs.noslot_buf, sizeof(obs.noslot_buf),
				 "sysmon found no slot: ");

		noslot_words(why, obs.noslot_buf + k,
			     sizeof(obs.noslot_buf) - k);
		obs.stale_why = obs.noslot_buf;
	} else if (rd(obs.ms[obs.sysmon_slot].version) != KGO_OBS_VERSION)
		/* Pinned probes of another version whose records have
		 * our size: they would read what we publish wrongly. */
		obs.stale_why = "the BPF probes loaded are of another version "
				"(sudo kgo-probe unload, then load this one's)";
	if (obs.stale_why) {
		atomic_store(&obs.stale, true);
		atomic_store(&obs.tick_on, false);
		WRITE_ONCE(sched.observe, KGO_OBSERVE_POLL);
		WRITE_ONCE(sched.observe_why, obs.stale_why);
		if (obs.sysmon_slot < 0)
			say_noslot(why);
		else if (obs.want == KGO_OBSERVE_BPF || observe_debug)
			/* Another version found at the start: auto's
			 * choice, silent as the others are
			 * (KGO_DEBUG=observe=1 says it). */
			kgo_printf("kgo: %s; polling\n", obs.stale_why);
		return;
	}
	obs.sysmon_owner = owner_of((pid_t)syscall(SYS_gettid));
	/* Release: the probes read it from our memory at a switch. */
	__atomic_store_n(&obs.proc.sysmon_slot, obs.sysmon_slot,
			 __ATOMIC_RELEASE);
	sigemptyset(&set);
	sigaddset(&set, SIGURG);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* The calling thread's voluntary context switches (its blocks, as the
 * kernel counts them); -1 if unknown. */
static long thread_nvcsw(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_THREAD, &ru) ? -1 : ru.ru_nvcsw;
}

void observe_sleep(int64_t start)
{
	if (!obs.on || obs.sysmon_slot < 0)
		return;
	obs.sleep_start = start;	/* 0: no sleep to check */
	obs.sleep_nblock = rd(obs.ms[obs.sysmon_slot].nblock);
	obs.sleep_nvcsw = start ? thread_nvcsw() : 0;
}

/*
 * The record of sysmon must be its own; and when sysmon slept 1 ms or
 * more (in the kernel, then: it sleeps without spinning), the probes
 * must have seen it switch out blocked. STALE_LOOKS such sleeps in a
 * row that they did not see mean that the probes are gone.
 *
 * Not "its record says RUNNING while it runs": switch-ins are missed
 * now and then (see observe_confirm).
 */
#define STALE_LOOKS	3

bool observe_check(int64_t now)
{
	const volatile struct kgo_obs_m *r;

	if (!obs.on || atomic_load_explicit(&obs.stale, memory_order_relaxed))
		return false;
	r = &obs.ms[obs.sysmon_slot];
	if (rd(r->owner) != obs.sysmon_owner) {
		obs.stale_why = "the BPF probes' record of sysmon is gone "
				"(probes reloaded?)";
	} else if (obs.sleep_start && now - obs.sleep_start >= 1000000 &&
		   rd(r->nblock) == obs.sleep_nblock) {
		/* Did sysmon block at all? A sleep whose deadline passed
		 * before its futex call (sysmon kept off the CPU after it
		 * read the clock), or whose wakeup came first, returns
		 * without a block, yet a millisecond went by: under load
		 * three in a row, and bpf mode was given up with the
		 * probes loaded (observe_test busy_syscall_keeps_p, once
		 * at load 12; sysmon_test exit_amid_handoffs under TSan,
		 * where sysmon sleeps 1 ms: 2 of 5 runs). Only a block
		 * the kernel counted and the probes did not is a miss. */
		if (obs.sleep_nvcsw >= 0 && thread_nvcsw() == obs.sleep_nvcsw)
			return true;
		if (++obs.unseen < STALE_LOOKS)
			return true;
		obs.stale_why = "the BPF probes stopped updating their "
				"records (kgo-probe unload?)";
	} else {
		if (obs.sleep_start && now - obs.sleep_start >= 1000000)
			obs.unseen = 0;
		return true;
	}
	atomic_store(&obs.stale, true);
	atomic_store(&obs.tick_on, false);	/* sysmon times slices */
	/* kgo_stats_get reads both from any thread (READ_ONCE). */
	WRITE_ONCE(sched.observe, KGO_OBSERVE_POLL);
	WRITE_ONCE(sched.observe_why, obs.stale_why);
	kgo_printf("kgo: %s; polling from now on\n", obs.stale_why);
	return false;
}

void observe_stats(struct kgo_stats *st)
{
	st->observe_why = READ_ONCE(sched.observe_why);
	st->observe_kicks = atomic_load_explicit(&obs.kicks,
						 memory_order_relaxed);
	st->observe_ms = atomic_load_explicit(&obs.ms_reg,
					      memory_order_relaxed);
	st->observe_misses = atomic_load_explicit(&obs.misses,
						  memory_order_relaxed);
	st->observe_kicks_m = atomic_load_explicit(&obs.kicks_m,
						   memory_order_relaxed);
	st->observe_kicks_second = atomic_load_explicit(&obs.kicks_second,
							memory_order_relaxed);
	st->observe_kicks_passed = atomic_load_explicit(&obs.kicks_passed,
							memory_order_relaxed);
	st->observe_kicks_kept = atomic_load_explicit(&obs.kicks_kept,
						      memory_order_relaxed);
	st->observe_kicks_forwarded = atomic_load_explicit(&obs.kicks_fwd,
							   memory_order_relaxed);
	st->observe_kick_ns = atomic_load_explicit(&obs.kick_ns,
						   memory_order_relaxed);
	st->observe_reg_retries = atomic_load_explicit(&obs.reg_retries,
						       memory_order_relaxed);
	st->observe_ms_unreg = atomic_load_explicit(&obs.ms_unreg,
						    memory_order_relaxed);
	st->preempt_tick = atomic_load(&obs.tick_on);
	st->preempt_ticks = atomic_load_explicit(&obs.tick_taken,
						 memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* Loading, for the runtime and kgo-probe                             */
/* ------------------------------------------------------------------ */

#ifdef KGO_BPF

int obs_silent_print(enum libbpf_print_level l, const char *f, va_list ap)
{
	(void)l;
	(void)f;
	(void)ap;
	return 0;
}

/* The kernel lockdown, from securityfs when it is mounted. */
static bool locked_down(void)
{
	char buf[128] = "";
	int fd = open("/sys/kernel/security/lockdown", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 && strstr(buf, "[confidentiality]");
}

/*
 * obs_explain() - one sentence a person can act on, for a failure to
 * load the probes with -@err (never libbpf's RLIMIT_MEMLOCK hint: the
 * kernel has charged BPF memory to cgroups since 5.11).
 */
const char *obs_btf_path;

const char *obs_explain(int err)
{
	if (obs_btf_path && access(obs_btf_path, R_OK))
		return "the kernel BTF file named by VMLINUX_BTF cannot be "
		       "read: point VMLINUX_BTF at the kernel's BTF, or unset "
		       "it to use /sys/kernel/btf/vmlinux";
	/* libbpf's own errnos start at 4000 (LIBBPF_ERRNO__FORMAT:
	 * "failed to parse target BTF"). */
	if (obs_btf_path && (err == EINVAL || err == ENOENT ||
			     err == ENODATA || err == EPROTO ||
			     (err >= 4000 && err < 4100)))
		return "the file named by VMLINUX_BTF is not usable BTF of "
		       "this kernel: point it at the kernel's BTF, or unset "
		       "it to use /sys/kernel/btf/vmlinux";
	if (!obs_btf_path && access("/sys/kernel/btf/vmlinux", R_OK))
		return "the kernel has no BTF (/sys/kernel/btf/vmlinux is "
		       "missing): build it with CONFIG_DEBUG_INFO_BTF=y, or "
		       "point VMLINUX_BTF at its BTF file";
	if (err == EPERM || err == EACCES) {
		if (geteuid() != 0)
			return "loading BPF needs root (CAP_BPF and "
			       "CAP_PERFMON): run it with sudo";
		if (locked_down())
			return "the kernel is locked down (lockdown="
			       "confidentiality) and refuses tracing BPF";
		return "the kernel refused the BPF programs to root: a "
		       "security module or lockdown forbids them (`kgo-probe "
		       "load -v` shows the kernel's own words)";
	}
	if (err == EINVAL || err == ENOTSUP || err == 524 /* ENOTSUPP */ ||
	    err == ENOENT || err == ESRCH)
		return "the kernel refused the probes' program types or "
		       "kfuncs: tp_btf, task storage and bpf_send_signal_task "
		       "need Linux 6.13 or later (`kgo-probe load -v` shows "
		       "the kernel's own words)";
	if (err == ENOMEM)
		return "the kernel ran out of memory for BPF maps: raise "
		       "the memory cgroup's limit";
	return "the BPF probes could not be loaded: `kgo-probe load -v` "
	       "shows why";
}

/* Name this probe set (struct kgo_obs_info): this version, and a
 * random id, then freeze it. Before the programs attach, so that no
 * registration is seen without it. Return: 0 or errno. */
static int obs_info_write(int fd)
{
	struct kgo_obs_info in = { .version = KGO_OBS_VERSION };
	__u32 zero = 0;

	while (!in.set_id)
		if (getrandom(&in.set_id, sizeof(in.set_id), 0) !=
		    sizeof(in.set_id))
			return errno ? errno : EIO;
	if (bpf_map_update_elem(fd, &zero, &in, BPF_ANY) ||
	    bpf_map_freeze(fd))
		return errno;
	return 0;
}

int obs_info_read(int fd, struct kgo_obs_info *in)
{
	__u32 zero = 0;

	memset(in, 0, sizeof(*in));
	return bpf_map_lookup_elem(fd, &zero, in) ? -errno : 0;
}

/*
 * obs_load() - open, load and attach the probes. Return: the skeleton,
 * or NULL with -errno in *err. libbpf's own messages only with @verbose.
 */
struct kgo_observe_bpf *obs_load(bool verbose, int *err)
{
	libbpf_print_fn_t old = libbpf_set_print(verbose ? NULL :
						 obs_silent_print);
	LIBBPF_OPTS(bpf_object_open_opts, opts,
		    .btf_custom_path = obs_btf_path);
	struct kgo_observe_bpf *skel;
	int e;

	if (verbose)
		libbpf_set_print(old);
	skel = kgo_observe_bpf__open_opts(&opts);
	if (!skel) {
		e = errno ? errno : EINVAL;
		goto out;
	}
	e = -kgo_observe_bpf__load(skel);
	if (!e)
		e = obs_info_write(bpf_map__fd(skel->maps.kgo_info));
	if (!e)
		e = -kgo_observe_bpf__attach(skel);
	if (e) {
		kgo_observe_bpf__destroy(skel);
		skel = NULL;
	}
out:
	libbpf_set_print(old);
	*err = e;
	return skel;
}

/* Does @fd look like the record map of this version? */
static bool obs_map_ok(int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return false;
	return info.type == BPF_MAP_TYPE_ARRAY &&
	       info.value_size == sizeof(struct kgo_obs_m) &&
	       info.max_entries == KGO_OBS_SLOTS &&
	       (info.map_flags & BPF_F_MMAPABLE);
}

/* Open a pinned object (as an unprivileged user may, if its file's
 * mode says so). */
static int obj_get(const char *path, unsigned flags)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.pathname = (uint64_t)(uintptr_t)path;
	attr.file_flags = flags;
	return (int)syscall(SYS_bpf, BPF_OBJ_GET, &attr, sizeof(attr));
}

/* Map the records. Return: 0 or -errno. */
static int obs_map(int fd)
{
	void *p;

	obs.ms_len = (size_t)KGO_OBS_SLOTS * sizeof(struct kgo_obs_m);
	p = mmap(NULL, obs.ms_len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	obs.ms = p;
	obs.ms_fd = fd;
	return 0;
}

const char *obs_pin_dir(void)
{
	/* Not for set-id programs: they take the machine's probes. */
	const char *d = secure_getenv(KGO_OBS_PIN_ENV);

	return d && *d ? d : KGO_OBS_PIN_DIR;
}

void obs_pin_path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", obs_pin_dir(), name);
}

/*
 * The probes pinned in the pin directory, if they are this version's:
 * mapped, and their set named in obs. Return: 1 if taken, 0 if none
 * are pinned, -1 if they are of another version (said in @other).
 */
static int obs_pinned(char *other, size_t n)
{
	struct kgo_obs_info in = { 0 };
	char path[PATH_MAX];
	int fd, ifd;
	bool ok;

	/* Read-write: the kernel maps a BPF map shared only through a
	 * writable file. kgo-probe froze the map: no user writes it. */
	obs_pin_path(path, sizeof(path), "kgo_ms");
	fd = obj_get(path, 0);
	if (fd < 0)
		return 0;
	/* Version 5 on pins kgo_info; older ones have none. */
	obs_pin_path(path, sizeof(path), "kgo_info");
	ifd = obj_get(path, BPF_F_RDONLY);
	ok = ifd >= 0 && !obs_info_read(ifd, &in) &&
	     in.version == KGO_OBS_VERSION && in.set_id && obs_map_ok(fd);
	if (ifd >= 0)
		close(ifd);
	if (ok && !obs_map(fd)) {
		obs.set_id = in.set_id;
		obs_pin_path(path, sizeof(path), "kgo_stats");
		obs.stats_fd = obj_get(path, BPF_F_RDONLY);
		/* kgo-probe pins the tick's counters only with the tick. */
		obs_pin_path(path, sizeof(path), "kgo_tick_stats");
		atomic_store(&obs.tick_on, !access(path, F_OK));
		/* ... and the kick timers' map only with this version's
		 * kgo-probe, which starts them (the retake timer). */
		obs_pin_path(path, sizeof(path), "kgo_kick");
		obs.retake_on = !access(path, F_OK);
		return 1;
	}
	close(fd);
	if (ok)
		snprintf(other, n, "the probes' records pinned in %s cannot "
			 "be mapped", obs_pin_dir());
	else if (in.version)
		snprintf(other, n, "the probes pinned in %s are of version "
			 "%llu, this program's are %d", obs_pin_dir(),
			 (unsigned long long)in.version, KGO_OBS_VERSION);
	else
		snprintf(other, n, "the probes pinned in %s are of an older "
			 "version than this program's (%d)", obs_pin_dir(),
			 KGO_OBS_VERSION);
	return -1;
}

/* Try the pinned probes, then our own. Return: NULL or why not. */
static const char *obs_open(void)
{
	static char why[PATH_MAX + 256], other[PATH_MAX + 128];
	struct kgo_obs_info in;
	int err, pinned;

	/* Loaded by an earlier kgo_run of this process: loading costs
	 * ~70 ms here (libbpf reads the kernel's BTF), so they stay
	 * attached until the process ends, tracking nobody between runs
	 * (the Ms' threads are gone, m0 unregistered). */
	if (obs.own) {
		atomic_store(&obs.tick_on, true);	/* part of them */
		obs.retake_on = true;
		return NULL;
	}
	obs.own_why = NULL;
	pinned = obs_pinned(other, sizeof(other));
	if (pinned > 0)
		return NULL;
	/* None pinned, or another version's: root loads its own (and a
	 * set of its own does not follow, or kick, the other set's
	 * processes: kgo_obs_info), others poll and say why. */
	if (geteuid() != 0) {
		if (pinned < 0)
			snprintf(why, sizeof(why), "%s and this user may not "
				 "load its own (sudo kgo-probe unload, then "
				 "this version's sudo kgo-probe load)", other);
		else
			snprintf(why, sizeof(why), "no probes pinned in %s "
				 "and no privilege to load them (sudo kgo-probe "
				 "load)", obs_pin_dir());
		return why;
	}
	obs.skel = obs_load(false, &err);
	if (!obs.skel) {
		snprintf(why, sizeof(why), "%s%s%s", obs_explain(err),
			 pinned < 0 ? "; besides, " : "",
			 pinned < 0 ? other : "");
		return why;
	}
	obs.own = true;
	if (obs_map(bpf_map__fd(obs.skel->maps.kgo_ms)) ||
	    obs_info_read(bpf_map__fd(obs.skel->maps.kgo_info), &in)) {
		kgo_observe_bpf__destroy(obs.skel);
		obs.skel = NULL;
		obs.own = false;
		return "the probes' records cannot be mapped";
	}
	obs.set_id = in.set_id;
	if (pinned < 0) {
		snprintf(why, sizeof(why), "probes loaded by this process: %s",
			 other);
		obs.own_why = why;
	}
	obs.stats_fd = bpf_map__fd(obs.skel->maps.kgo_stats);
	/* The tick is part of the probes (bpf/kgo_tick.bpf.h): this
	 * process holds its timers' map, as the kernel wants. */
	atomic_store(&obs.tick_on, true);
	obs.retake_on = true;
	return NULL;
}

static void obs_close(void)
{
	if (obs.own)
		return;			/* kept for the next kgo_run */
	if (obs.ms)
		munmap((void *)obs.ms, obs.ms_len);
	obs.ms = NULL;
	if (obs.ms_fd >= 0)
		close(obs.ms_fd);
	if (obs.stats_fd >= 0)
		close(obs.stats_fd);
	obs.ms_fd = obs.stats_fd = -1;
}

/* The probes' counters summed over the CPUs (kgo-probe, benchmarks). */
int obs_probe_stats(int fd, struct kgo_obs_stats *sum)
{
	/* All __u64: summed as an array (observe_tick.c). */
	return percpu_sum(fd, (__u64 *)sum, sizeof(*sum) / sizeof(__u64));
}

#else /* !KGO_BPF */

#ifndef KGO_BPF_MISSING
#define KGO_BPF_MISSING "built without the Makefile's BPF rules"
#endif

static const char *obs_open(void)
{
	return "kernel observation not built in: " KGO_BPF_MISSING;
}

static void obs_close(void)
{
}

#endif /* KGO_BPF */

/* ------------------------------------------------------------------ */
/* Start and stop                                                     */
/* ------------------------------------------------------------------ */

static void publish(void)
{
	memset(&obs.proc, 0, sizeof(obs.proc));
	obs.proc.version = KGO_OBS_VERSION;
	obs.proc.p_syscall = P_SYSCALL;
	obs.proc.off_m_oldp = offsetof(struct m, oldp);
	obs.proc.off_p_status = offsetof(struct p, status);
	obs.proc.off_p_syscalltid = offsetof(struct p, syscalltid);
	obs.proc.off_p_runqhead = offsetof(struct p, runqhead);
	obs.proc.off_p_runqtail = offsetof(struct p, runqtail);
	obs.proc.off_p_runnext = offsetof(struct p, runnext);
	obs.proc.runqsize_addr = (uint64_t)(uintptr_t)&sched.runqsize;
	obs.proc.npidle_addr = (uint64_t)(uintptr_t)&sched.npidle;
	obs.proc.nmspinning_addr = (uint64_t)(uintptr_t)&sched.nmspinning;
	obs.proc.sysmon_slot = -1;
	obs.proc.wake_sig = SIGURG;
	/* Under ThreadSanitizer a handler runs only when its thread next
	 * leaves an intercepted call, which an idle M's raw futex or
	 * io_uring wait is not: the kick would not wake it. sysmon looks
	 * every millisecond there (bpf_until). */
#ifndef KGO_TSAN
	sched.kick_m = observe_kick_m;
#endif
	if (sched.kick_m)
		obs.proc.kick_tid_addr = (uint64_t)(uintptr_t)&sched.kick_tid;
	obs.proc.kick_delay_ns = observe_kick_delay_ns;
	obs.proc.retake_ns = obs.retake_on ? SYSCALL_RETAKE : 0;
	obs.proc.off_m_p = offsetof(struct m, p);
	obs.proc.off_p_schedtick = offsetof(struct p, schedtick);
	obs.proc.p_running = P_RUNNING;
	obs.proc.slice_ns = atomic_load(&obs.tick_on) ?
			    (uint64_t)sched.slice_ns : 0;
	obs.proc.set_id = obs.set_id;
	/* Last, with release: the probes check it before the rest. */
	__atomic_store_n(&obs.proc.magic, KGO_OBS_MAGIC, __ATOMIC_RELEASE);
}

static const char *mode_name(int mode)
{
	switch (mode) {
	case KGO_OBSERVE_BPF:
		return "bpf";
	case KGO_OBSERVE_SCX:
		return "scx";
	case KGO_OBSERVE_POLL:
		return "poll";
	default:
		return "auto";
	}
}

const struct observer *observe_start(void)
{
	/* KGO_OBSERVE over kgo_config.observe: parse_config (proc.c). */
	int want = sched.observe;
	const char *why = NULL;

	obs.want = want;
	memset(obs.tids, 0, sizeof(obs.tids));
	obs.on = false;
	atomic_store(&obs.stale, false);
	obs.stale_why = NULL;
	obs.sysmon_slot = -1;
	obs.sleep_start = 0;
	obs.unseen = 0;
	atomic_store(&obs.misses, 0);
	atomic_store(&obs.kicks, 0);
	atomic_store(&obs.kicks_m, 0);
	atomic_store(&obs.kicks_second, 0);
	atomic_store(&obs.kicks_passed, 0);
	atomic_store(&obs.kicks_kept, 0);
	atomic_store(&obs.kicks_fwd, 0);
	obs.pid = getpid();
	obs.uid = getuid();
	atomic_store(&obs.kick_ns, 0);
	atomic_store(&obs.ms_reg, 0);
	atomic_store(&obs.ms_unreg, 0);
	atomic_store(&obs.reg_retries, 0);
	atomic_store(&obs.tick_taken, 0);
	atomic_store(&obs.noslot_said, false);
	atomic_store(&obs.tick_on, false);
	sched.observe = KGO_OBSERVE_POLL;
	if (want == KGO_OBSERVE_POLL) {
		sched.observe_why = "polling asked for (KGO_OBSERVE=poll or "
				    "kgo_config.observe)";
		goto out;
	}
	if (want == KGO_OBSERVE_SCX) {
		sched.observe_why = "the sched_ext scheduler is not built in "
				    "this version";
		goto out;
	}
	why = obs_open();
	if (!why) {
		obs.ps = calloc(sched.gomaxprocs, sizeof(*obs.ps));
		if (!obs.ps) {
			obs_close();
			why = "out of memory";
		} else {
			int i;

			for (i = 0; i < sched.gomaxprocs; i++)
				obs.ps[i].slot = -1;
		}
	}
	if (why) {
		atomic_store(&obs.tick_on, false);
		sched.observe_why = why;
		/* Asked for bpf and not given it: say so once. */
		if (want == KGO_OBSERVE_BPF)
			kgo_printf("kgo: KGO_OBSERVE=bpf: %s; polling\n", why);
		goto out;
	}
	publish();
	obs.on = true;
	sched.observe = KGO_OBSERVE_BPF;
	sched.observe_why = obs.own_why ? obs.own_why :
			    obs.own ? "probes loaded by this process" :
				      "probes pinned by kgo-probe";
out:
	if (observe_debug)
		kgo_printf("kgo: observe=%s (asked: %s): %s\n",
			   mode_name(sched.observe), mode_name(want),
			   sched.observe_why);
	return obs.on ? &observer_bpf : NULL;
}

void observe_stop(void)
{

	atomic_store(&obs.tick_on, false);	/* before the records go */
	if (obs.on)
		obs_close();
	obs.on = false;
	free(obs.ps);
	obs.ps = NULL;
}
