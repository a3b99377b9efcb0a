/* SPDX-License-Identifier: MIT */
/*
 * kgo_observe.h - what the BPF probes (kgo_observe.bpf.c) and the
 * runtime (user/runtime/observe_bpf.c) share: the per-M records the
 * kernel side writes, and the registration call the runtime makes.
 *
 * No libc and no vmlinux.h here: both sides include it (the BPF side
 * after vmlinux.h, user space after <linux/types.h>).
 *
 * Two directions, two places
 * --------------------------
 *  kernel -> runtime: struct kgo_obs_m, one per registered thread, in
 *	the array map `kgo_ms`, created BPF_F_MMAPABLE. The runtime maps
 *	it (read-only when it is not the loader) and reads it with plain
 *	loads: no syscall on the hot path. Only BPF programs write it.
 *  runtime -> kernel: plain stores in the process's own memory. The
 *	probes read them with bpf_probe_read_user() of `current` (at
 *	sched_switch the thread switching out is current), at the
 *	addresses given at registration. A process can therefore only
 *	tell the probes about itself; what it says is checked against
 *	what the kernel knows (tgid) before anything is done with it.
 *
 * Registration
 * ------------
 * A thread registers itself, and only itself, with
 *
 *	prctl(PR_SET_NAME, its_own_name, KGO_OBS_REG_ARG(KGO_OBS_REG_M),
 *	      m_addr, proc_addr)
 *
 * (kgo_obs_prctl below), which tp_btf/task_rename sees: the thread
 * keeps its name, and the kernel ignores arguments 3-5 of PR_SET_NAME.
 * tid, tgid and uid come from the kernel (`current`), never from the
 * arguments. KGO_OBS_REG_SYSMON registers the thread that the probes
 * wake; KGO_OBS_UNREG gives the calling thread's slot back (a thread
 * that exits gives it back by itself: tp_btf/sched_process_exit).
 * Version 4 registered through prctl(KGO_OBS_PRCTL, op, ...), seen by
 * tp_btf/sys_enter, which ran on every syscall of the machine.
 *
 * The slot of a thread is found by open addressing from
 * kgo_obs_hash(tid), at most KGO_OBS_PROBES slots on, so the runtime
 * finds its slot again without asking the kernel.
 */
#ifndef KGO_OBSERVE_H
#define KGO_OBSERVE_H

/* "kgo\1": the prctl option; no kernel defines it. */
#define KGO_OBS_PRCTL		0x6b676f01
#define KGO_OBS_REG_M		1	/* an M: followed, may trigger wakes */
#define KGO_OBS_REG_SYSMON	2	/* the thread to wake; followed too */
#define KGO_OBS_UNREG		3
/* Argument 3 of the registering prctl(PR_SET_NAME): "kgo\1" and op. */
#define KGO_OBS_REG_ARG(op)	(((__u64)(op) << 32) | KGO_OBS_PRCTL)

/* Bumped with every change of the records' layout or meaning; the
 * runtime refuses probes of another version (poll mode, said once). */
#define KGO_OBS_VERSION		6	/* 4: bpfh's kick and bpfp's tick;
					 * 5: registration by task_rename,
					 * the tick's resend backs off;
					 * 6: the retake timer (retake_ns) */
#define KGO_OBS_SLOTS		4096	/* power of two */
#define KGO_OBS_PROBES		32
/* Slots one uid may hold at once (bpfp: trust): a quarter of the table,
 * so that one user cannot take every slot. Root has no cap (it may
 * unload the probes anyway). A registration over it is
 * refused (counted in `capped`) and that M is polled. */
#define KGO_OBS_UID_SLOTS	(KGO_OBS_SLOTS / 4)
#define KGO_OBS_UIDS		1024	/* distinct uids counted at once */

/* The pin directory (kgo-probe load), unless the environment variable
 * KGO_PIN_DIR names another (tests that run at once each use their
 * own; obs_pin_dir() in observe_bpf.c). */
#define KGO_OBS_PIN_DIR		"/sys/fs/bpf/kgo"
#define KGO_OBS_PIN_ENV		"KGO_PIN_DIR"

/*
 * The state word: (ktime_ns << KGO_OBS_STATE_SHIFT) | state. One 64-bit
 * word, so that a reader sees a state and its start time together, and
 * sched_wakeup's compare-and-swap cannot undo a later switch. ktime in
 * 56 bits lasts 2.28 years of uptime.
 */
#define KGO_OBS_STATE_SHIFT	8
#define KGO_OBS_RUNNING		1	/* on a CPU since `since` */
#define KGO_OBS_RUNNABLE	2	/* preempted by the kernel, or woken
					 * and not yet on a CPU */
#define KGO_OBS_BLOCKED		3	/* asleep in the kernel */
#define KGO_OBS_STATE_MASK	0x0f
#define KGO_OBS_IOWAIT		0x10	/* BLOCKED with in_iowait set */

#define kgo_obs_state(w)	((w) & KGO_OBS_STATE_MASK)
#define kgo_obs_since(w)	((w) >> KGO_OBS_STATE_SHIFT)

/*
 * struct kgo_obs_m - one registered thread, as the kernel sees it. One
 * cache line. Written only by the BPF programs; the runtime and
 * kgo-probe read it.
 *
 * @owner:  (tgid << 32) | tid of the thread that holds the slot, 0 when
 *	    free. Claimed by sys_enter with a compare-and-swap from 0,
 *	    cleared last by sched_process_exit or KGO_OBS_UNREG.
 * @uid:    the thread's real uid at registration (kgo-probe status).
 * @role:   KGO_OBS_REG_M or KGO_OBS_REG_SYSMON.
 * @gen:    incremented at every claim of the slot: a reader that saw
 *	    one gen and then another saw two owners.
 * @m_addr, @proc_addr: the registration's arguments: where in the
 *	    owner's memory the runtime publishes what the probes read
 *	    (struct kgo_obs_proc, and the M's own fields at the offsets
 *	    it gives). Only ever read as the owner's own memory.
 * @state:  the state word above. Written by sched_switch on the
 *	    owner's CPU (plain store), and by sched_wakeup from the
 *	    waker's CPU (CAS BLOCKED -> RUNNABLE only).
 * @seq:    odd while sched_switch updates @cpu_ns and @state together
 *	    (only sched_switch: a thread's switches are serialised by the
 *	    scheduler, so it has one writer at a time).
 * @cpu_ns: CPU time the thread had up to its last switch out; while
 *	    RUNNING add now - since.
 * @nblock, @niowait, @npreempt: switches out blocked, of those in
 *	    iowait, and switches out while runnable (the kernel took the
 *	    CPU). sched_switch only.
 * @nwake:  wakeups the probes sent for this M's blocks (sched_switch,
 *	    or the kick timer).
 * @blk_state: the state word of the thread's last block (BLOCKED, with
 *	    IOWAIT, and when it began); sched_switch.
 * @version: KGO_OBS_VERSION of the probes that claimed the slot
 *	    (sys_enter): a runtime checks it in its own records, and polls
 *	    with probes of another version whose records have the same
 *	    size (older probes leave it 0).
 * @blk_end: when that block ended (ktime << KGO_OBS_STATE_SHIFT):
 *	    sched_wakeup's time, else the next switch in (KGO_TRACE draws
 *	    the block on the M's row).
 */
struct kgo_obs_m {
	__u64 owner;
	__u32 uid;
	__u32 role;
	__u64 gen;
	__u64 m_addr;
	__u64 proc_addr;
	__u64 state;
	__u64 seq;
	__u64 cpu_ns;
	__u64 nblock;
	__u64 niowait;
	__u64 npreempt;
	__u64 nwake;
	__u64 blk_state;
	__u64 blk_end;
	__u64 version;
	__u64 pad[1];
	/*
	 * bpfp's block: the preemption tick (bpf/kgo_tick.bpf.h, which
	 * has the protocol). Written only by the tick, on the owner's CPU
	 * while the owner runs; cleared at every claim of the slot.
	 * @tick_slice: the P's schedtick + 1 of the slice being timed (0:
	 *	none); @tick_cpu0: the M's CPU time (as @cpu_ns counts it)
	 *	when the tick first saw that slice; @tick_preempt: schedtick
	 *	+ 1 of the slice the tick found over: the SIGURG handler
	 *	stops the G only if it is its slice; @tick_sent: SIGURGs the
	 *	tick sent this M; @tick_next: the M's CPU time before which
	 *	the tick sends no other SIGURG for that slice, and @tick_gap
	 *	the wait that set it (the resend's back-off).
	 */
	__u64 tick_slice;
	__u64 tick_cpu0;
	__u64 tick_preempt;
	__u64 tick_sent;
	__u64 tick_next;
	__u64 tick_gap;
};

/*
 * struct kgo_obs_proc - what a process publishes once, in its own
 * memory, for the probes (read with bpf_probe_read_user at a blocking
 * switch of one of its Ms). Written by the runtime before its first
 * registration and not changed while any M is registered, but for
 * @sysmon_tid, which it writes when sysmon registers.
 *
 * The probes decide whether a block needs action now, by Go's rule
 * for retaking a P from a syscall: the M is in a kgo syscall (the P it
 * left, m+off_m_oldp, is P_SYSCALL), and work waits (that P's run
 * queue or runnext, or the global queue at runqsize_addr) or no other
 * M could take new work (no idle P and no spinning M: npidle_addr,
 * nmspinning_addr). Then they wake, with the signal @wake_sig whose
 * si_value is the address of that P, either an idle M of the process
 * (the tid at @kick_tid_addr, 0 when none is idle), which takes the P
 * itself, or else the process's sysmon (@sysmon_slot); they check that
 * either is a thread of the blocking process. @kick_delay_ns > 0: not
 * at the block but that long after it, by a bpf_timer, and only if the
 * M is still in the same block then (short blocks wake nobody).
 * off_p_syscalltid is for tools; the probes do not need it.
 */
struct kgo_obs_proc {
	__u64 magic;			/* KGO_OBS_MAGIC */
	__u32 version;			/* KGO_OBS_VERSION */
	__u32 p_syscall;		/* the value of P_SYSCALL */
	__u32 off_m_oldp;		/* struct m: the P left in a syscall */
	__u32 off_p_status;		/* struct p: status (u32) */
	__u32 off_p_syscalltid;		/* struct p: tid in the syscall (s32) */
	__u32 off_p_runqhead;		/* struct p: u32 */
	__u32 off_p_runqtail;		/* struct p: u32 */
	__u32 off_p_runnext;		/* struct p: pointer */
	__u64 runqsize_addr;		/* sched.runqsize (s32) */
	__u64 npidle_addr;		/* sched.npidle (s32) */
	__u64 nmspinning_addr;		/* sched.nmspinning (s32) */
	__s32 sysmon_slot;		/* -1: none; the slot to wake */
	__u32 wake_sig;			/* the signal that wakes sysmon */
	__u64 kick_tid_addr;		/* an idle M's tid (s32), 0: none */
	__u64 kick_delay_ns;		/* 0: kick at the block */
	/* bpfp's block: what the preemption tick reads (kgo_tick.bpf.h). */
	__u32 off_m_p;			/* struct m: its P (pointer) */
	__u32 off_p_schedtick;		/* struct p: ++ per G run (u64) */
	__u32 p_running;		/* the value of P_RUNNING */
	__u32 tick_pad;
	__u64 slice_ns;			/* the slice, in CPU time; 0: no tick */
	__u64 set_id;			/* the probe set chosen (kgo_obs_info) */
	/* A block with nothing waiting and a P idle arms a kick this
	 * much later, fired if the M is still in that block (Go's 10 ms
	 * retake, timed by the kernel: kgo_observe.bpf.c, "The retake
	 * timer"); 0: none, sysmon times such calls. */
	__u64 retake_ns;
};

/*
 * struct kgo_obs_info - which probe set this is: the one entry of the
 * map kgo_info, written by the loader after the load and frozen, pinned
 * readable by every user of the probes. @set_id is random per load: a
 * thread registers only with the set whose id its process published
 * (kgo_obs_proc.set_id), so that two sets attached at once (kgo-probe's
 * and a root program's own, or two tests' with KGO_PIN_DIR) do not
 * both follow, and kick, the same threads. A runtime that finds no
 * kgo_info, or another @version, in the pin directory has probes of
 * another version there.
 */
struct kgo_obs_info {
	__u64 version;			/* KGO_OBS_VERSION */
	__u64 set_id;			/* never 0 */
};

#define KGO_OBS_MAGIC	0x6b676f6f62730001ULL	/* "kgoobs" 1 */

/*
 * struct kgo_obs_stats - the probes' own counters (map kgo_stats, one
 * entry per CPU), for kgo-probe status and the benchmarks.
 */
struct kgo_obs_stats {
	__u64 switches;		/* sched_switch runs with a registered side */
	__u64 regs, unregs;	/* registrations, explicit unregistrations */
	__u64 exits;		/* slots freed by a thread's exit */
	__u64 full;		/* registrations refused: no free slot */
	__u64 wakes;		/* signals sent to a sysmon or an idle M */
	__u64 wake_fail;	/* ... that could not be sent */
	__u64 read_fail;	/* user memory the probes could not read */
	__u64 wakes_m;		/* ... of the wakes, those to an idle M */
	__u64 timers;		/* kick timers armed (kick_delay_ns) */
	__u64 timer_quiet;	/* ... that found the block over: no kick */
	__u64 capped;		/* bpfp: refused, the user's cap reached */
	__u64 other_set;	/* registrations for another set or version */
	/* reg: why a registration was not taken, beside full and capped
	 * (task_rename): */
	__u64 reg_nostore;	/* no task storage (bpf_task_storage_get
				 * with F_CREATE returned NULL) */
	__u64 reg_unread;	/* the process's kgo_obs_proc unreadable */
	__u64 exits_late;	/* slots freed at sched_process_free: the
				 * kernel had skipped the exit's probe */
};

static inline __u32 kgo_obs_hash(__u32 tid)
{
	return (tid * 2654435761u) & (KGO_OBS_SLOTS - 1);
}

#if !defined(__bpf__) && defined(PR_SET_NAME) && defined(SYS_prctl)
/*
 * kgo_obs_prctl() - register (or, KGO_OBS_UNREG, unregister) the calling
 * thread with the probes: @op, @m_addr and @proc_addr as above. The
 * thread keeps its name: @name if given (a thread another thread may
 * be naming at the same time says what that name is), else the one it
 * has. User space only (<sys/prctl.h>, <sys/syscall.h>, <unistd.h>).
 * Return: prctl's (0; the probes' answer is in the records).
 */
static inline long kgo_obs_prctl(int op, const void *m_addr,
				 const void *proc_addr, const char *name)
{
	char now[16] = "";

	if (!name) {
		syscall(SYS_prctl, PR_GET_NAME, now, 0L, 0L, 0L);
		name = now;
	}
	return syscall(SYS_prctl, PR_SET_NAME, name,
		       (unsigned long)KGO_OBS_REG_ARG(op), m_addr, proc_addr);
}

/*
 * Registration's answer: kgo_obs_prctl() returns 0 whatever the probes
 * did; what they did is in the records @ms (mapped by the caller). When
 * the prctl returns, the probe has run inside it, on the caller's
 * thread, or never will for that call: the caller's record is there or
 * it is not, and why not is read from the records too:
 *  KGO_OBS_FULL     every slot of the window (KGO_OBS_PROBES from the
 *		     tid's hash) is held;
 *  KGO_OBS_CAPPED   the caller's uid (not root) holds KGO_OBS_UID_SLOTS;
 *  KGO_OBS_SKIPPED  neither: the kernel did not run the probe. It runs
 *		     a tracing program once per CPU at a time (the
 *		     program's recursion guard; `bpftool prog show name
 *		     kgo_rename`: recursion_misses); on a preemptible
 *		     kernel a thread preempted inside the probe makes it
 *		     skip every other registration on that CPU until the
 *		     thread runs again. Transient: sleep, register again.
 * (observe_bpf.c, "Registration's answer", has the measurements.)
 */
enum { KGO_OBS_TAKEN, KGO_OBS_FULL, KGO_OBS_CAPPED, KGO_OBS_SKIPPED };

#define kgo_obs_rd(x)	__atomic_load_n(&(x), __ATOMIC_ACQUIRE)

/* The slot of @owner's record in @ms, or -1: of its registration
 * (@m_addr, @op) when @op >= 0, any when @op < 0. Only the owner's
 * window (KGO_OBS_PROBES from its tid's hash): where the probe puts it. */
static inline int kgo_obs_find(const volatile struct kgo_obs_m *ms,
			       __u64 owner, __u64 m_addr, int op)
{
	__u32 h = kgo_obs_hash((__u32)owner), i, s;

	for (i = 0; i < KGO_OBS_PROBES; i++) {
		s = (h + i) & (KGO_OBS_SLOTS - 1);
		if (kgo_obs_rd(ms[s].owner) == owner &&
		    (op < 0 || (kgo_obs_rd(ms[s].m_addr) == m_addr &&
				kgo_obs_rd(ms[s].role) == (__u32)op)))
			return (int)s;
	}
	return -1;
}

/* Why thread @tid of user @uid has no record in @ms: KGO_OBS_*. */
static inline int kgo_obs_refusal(const volatile struct kgo_obs_m *ms,
				  __u32 tid, __u32 uid)
{
	__u32 h = kgo_obs_hash(tid), i, n = 0;

	for (i = 0; i < KGO_OBS_PROBES; i++)
		if (!kgo_obs_rd(ms[(h + i) & (KGO_OBS_SLOTS - 1)].owner))
			break;
	if (i == KGO_OBS_PROBES)
		return KGO_OBS_FULL;
	if (uid == 0)
		return KGO_OBS_SKIPPED;
	for (i = 0; i < KGO_OBS_SLOTS; i++)
		if (kgo_obs_rd(ms[i].owner) && kgo_obs_rd(ms[i].uid) == uid)
			n++;
	return n >= KGO_OBS_UID_SLOTS ? KGO_OBS_CAPPED : KGO_OBS_SKIPPED;
}

/* Tries of a registration the kernel skipped, and the sleep before the
 * first retry, doubled at each (0.1 ms up to 6.4 ms: 12.7 ms in all). */
#define KGO_OBS_TRIES		8
#define KGO_OBS_BACKOFF_NS	100000L

/*
 * kgo_obs_register() - register the calling thread (@tid, of process
 * @tgid and user @uid) as kgo_obs_prctl() does, and again while the
 * kernel skips the probe, up to KGO_OBS_TRIES times. User space only
 * (<time.h> too). Return: the slot, or -1 with the reason in *@why
 * (KGO_OBS_*); the retries made in *@retries.
 */
static inline int kgo_obs_register(const volatile struct kgo_obs_m *ms,
				   int op, const void *m_addr,
				   const void *proc_addr, const char *name,
				   __u32 tgid, __u32 tid, __u32 uid, int *why,
				   int *retries)
{
	__u64 owner = ((__u64)tgid << 32) | tid;
	struct timespec ts = { 0, 0 };
	int slot, try;

	for (try = 0;; try++) {
		*retries = try;
		kgo_obs_prctl(op, m_addr, proc_addr, name);
		slot = kgo_obs_find(ms, owner, (__u64)(unsigned long)m_addr,
				    op);
		if (slot >= 0) {
			*why = KGO_OBS_TAKEN;
			return slot;
		}
		*why = kgo_obs_refusal(ms, tid, uid);
		if (*why != KGO_OBS_SKIPPED || try + 1 == KGO_OBS_TRIES)
			return -1;
		ts.tv_nsec = KGO_OBS_BACKOFF_NS << try;
		nanosleep(&ts, NULL);
	}
}

/*
 * kgo_obs_unregister() - give the calling thread's record back
 * (KGO_OBS_UNREG), and again while it is still there: the kernel skips
 * an unregistration as it does a registration (KGO_OBS_SKIPPED), and
 * the record would stay until the thread exits, counted against its
 * user's cap and followed by the probes (a thread that outlives its
 * runtime: the process's main thread after kgo_run). Return: 0, or -1
 * if the record is there after KGO_OBS_TRIES.
 */
static inline int kgo_obs_unregister(const volatile struct kgo_obs_m *ms,
				     __u32 tgid, __u32 tid)
{
	__u64 owner = ((__u64)tgid << 32) | tid;
	struct timespec ts = { 0, 0 };
	int try;

	for (try = 0;; try++) {
		kgo_obs_prctl(KGO_OBS_UNREG, NULL, NULL, NULL);
		if (kgo_obs_find(ms, owner, 0, -1) < 0)
			return 0;
		if (try + 1 == KGO_OBS_TRIES)
			return -1;
		ts.tv_nsec = KGO_OBS_BACKOFF_NS << try;
		nanosleep(&ts, NULL);
	}
}
#endif

#endif /* KGO_OBSERVE_H */
