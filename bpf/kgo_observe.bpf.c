// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * kgo_observe.bpf.c - the kernel tells kgo's sysmon when an M blocks
 * and how much CPU it got.
 *
 * What
 * ----
 * Four tracing programs follow the threads that kgo processes register
 * (their Ms and their sysmon) and keep, per thread, in one record of the
 * mmappable array kgo_ms (kgo_observe.h, struct kgo_obs_m): on a CPU,
 * runnable but kept off one by the kernel, or blocked (since when, and
 * whether in iowait), and its CPU time.
 *
 *   tp_btf/task_rename          registration: prctl(PR_SET_NAME, ...)
 *   tp_btf/sched_switch         the state and the CPU time; the wakeup
 *   tp_btf/sched_wakeup         BLOCKED -> RUNNABLE
 *   tp_btf/sched_process_exit   the slot of an exiting thread is freed
 *   tp_btf/sched_process_free   ... when the kernel skipped that one
 *
 * When an M blocks while the P it left in a kgo syscall has work waiting
 * (the only event that needs action at once), sched_switch wakes one
 * thread of the process with bpf_send_signal_task, the P in si_value:
 * an idle M, which takes the P itself (user/runtime/proc.c, "Handoff
 * from the kernel"), or sysmon when no M idles, which then hands the P
 * off as its retake does. Everything else the runtime reads with plain
 * loads when it looks anyway: no syscall, no wakeup.
 *
 * Whom to wake: the idle M won. `build/bench/handoff -p 1 -n 500`,
 * bpf mode, 2026-12-06 on the loaded 2-vCPU VM, two runs each: kick to
 * the idle M p50 23.6/31.9 us, p99 99/112 us, against a floor (the
 * same kicks' arrival in the woken thread's handler) of 20.3/27.5 and
 * 85/107 us; kick to sysmon, which then futex-wakes an M
 * (KGO_DEBUG=kickm=0), p50 45/69 us, p99 628/1638 us: two wakeups in a
 * row, and sysmon's look between them. A ring buffer was not tried:
 * the idle Ms sleep in their io_uring or a futex, not in epoll, the
 * buffer's wakeup measured no cheaper than the signal (FACTS.md), and
 * a ring that every user's programs write would have to be kept apart
 * per user.
 *
 * Why this way
 * ------------
 * Go's sysmon guesses: a P in the same syscall at two looks 20 us - 10
 * ms apart is taken, and a G whose tick did not move for 10 ms of wall
 * time is preempted. It looks every 20 us while there is anything to
 * guess about. The kernel knows: sched_switch says that the thread went
 * to sleep (prev_state) and when, so a blocked M's P is handed off at
 * the block, a busy M in a long non-blocking syscall (a big getrandom, a
 * read from the page cache) keeps its P, and a G's slice is CPU time,
 * so a G whose M the kernel kept off the CPU has not used it.
 *
 * tp_btf, not kprobes or fentry: on the machines this was built on
 * kprobes are not built and BPF trampolines are refused even to root
 * (../shared/FACTS.md, "BPF that works"). Task storage finds a thread's
 * slot in ~100 ns per switch against ~140 ns for a hash, and it goes
 * with the task. The runtime tells the probes what they need (the
 * addresses of its run queues) in its own memory, which they read with
 * bpf_probe_read_user of `current`: bpf_probe_write_user is refused here
 * (lockdown=integrity), and a shared map every user may write could not
 * keep users apart.
 *
 * When it helps, and what it costs
 * --------------------------------
 * It helps where Ms block in syscalls while Gs wait (handoff at the
 * block: a signal from BPF to sysmon, 13-17 us p50 on this VM, against
 * a look every 20 us and a /proc read), where syscalls run long on a
 * CPU (no spurious handoff), and on a loaded machine (no early
 * preemption of a G that waited for a CPU). It costs every context
 * switch of the machine two task-storage lookups (most of them finding
 * nothing), every wakeup one, and every thread rename a compare
 * (task_rename; no other syscall): see the README's benchmark table
 * (`perf bench sched pipe` with and without the probes).
 *
 * Where the cost to other programs went (cost, 2026-12-06; the
 * commands are in the README, "The cost to other programs"): with no
 * kgo process running, bpf_stats over one `perf bench sched pipe -l
 * 100000` gave sched_switch 61 ns a run and sched_wakeup 62 ns against
 * 48 and 50 ns for empty programs on the same tracepoints (so ~12 ns
 * each is ours, the rest is the tracepoint's), and the tick 202 ns a
 * run 2000 times a second on every CPU; the tick's timer interrupts
 * themselves were the dearest part (kgo_tick.bpf.h, "When it helps"),
 * so the tick now runs only where a kgo M runs. Tried and dropped: a
 * pre-filter in front of the task-storage lookup, one array lookup of
 * a count per hash bucket of tgids kept by the claim and free paths,
 * made sched_switch 100-116 ns a run and sched_wakeup 136-139 ns
 * against 70-81 and 73-91 without it (three alternations, same
 * machine): the lookup of a task that has no storage at all reads
 * task->bpf_storage, a line of the task the scheduler has just
 * touched, while the filter's counts and its mask are lines of their
 * own, cold under load.
 *
 * Limits
 * ------
 * - KGO_OBS_SLOTS threads at once, in all processes together; a
 *   registration that finds no free slot within KGO_OBS_PROBES of its
 *   hash fails (counted in `full`), and that M is handled by polling.
 * - The kernel runs each tracing program once per CPU at a time and
 *   skips a call that finds it running there (recursion_misses in
 *   `bpftool prog show`; kgo-probe status: "skipped by the kernel").
 *   On a preemptible kernel task_rename and sched_process_exit run
 *   preemptible, so a thread preempted inside kgo_rename or kgo_exit
 *   makes the kernel skip the others' on that CPU: the runtime finds
 *   no record and registers again (observe_bpf.c, "Registration's
 *   answer"), and kgo_free frees what kgo_exit missed.
 * - bpf_probe_read_user cannot fault pages in: the runtime touches what
 *   it publishes before it registers.
 * - Ids are the kernel's (init pid namespace); a runtime in another pid
 *   namespace does not find its slot and polls (said once).
 * - The wakeup needs the kfunc bpf_send_signal_task (Linux 6.13); older
 *   kernels refuse to load the program and the runtime polls.
 *
 * Threat model
 * ------------
 * The probes run as root for every user's processes; users are the
 * adversaries of each other, not of the kernel (root, who loads the
 * probes, is trusted, and so is every thread of a process by the
 * others: they share its memory anyway). What a process can do through
 * them:
 * - register only itself: the thread registered is `current` of the
 *   prctl, with tid, tgid and uid from the kernel; the arguments are
 *   only addresses in the caller's own memory. KGO_OBS_UNREG frees
 *   only the caller's own slot. A slot is taken from another owner
 *   only when that owner is dead (owner_alive).
 * - make the probes read only its own memory (bpf_probe_read_user runs
 *   as `current`, which is the registered thread at its own switch, or
 *   at its own tick in kgo_tick.bpf.h) and signal only its own threads:
 *   the wakeup's target's tgid is checked against the blocking
 *   thread's, and the tick signals only the thread it interrupted. A
 *   process that publishes lies gets its own Ms handed off, woken or
 *   preempted, or not; it cannot reach another process.
 * - write the records: no. kgo-probe freezes the record map before it
 *   pins it (BPF_MAP_FREEZE: no update and no writable mapping from
 *   user space); a root process that loads its own copy maps it
 *   read-only. So a record that says "blocked" or "slice over" was
 *   written by the probes about that thread.
 * - signal another user's process: only as the kernel lets it (kill's
 *   rules); the runtime acts on a SIGURG of the tick (SI_KERNEL, which
 *   only the kernel sends across processes) only when its own record
 *   says its running G's slice is over (preempt.c).
 * - exhaust slots: at most KGO_OBS_UID_SLOTS (a quarter of the table)
 *   per uid but root's (trusted: root can unload the probes anyway,
 *   and its programs may run thousands of Ms), counted in kgo_uids; a
 *   registration over the cap is refused (`capped` in kgo-probe
 *   status) and that M is polled, said once on the process's stderr
 *   (KGO_OBSERVE=bpf; auto is silent); when sysmon is refused the
 *   whole process polls (its reason in kgo_stats). Four users can still fill
 *   the table together; the cap bounds what one can take.
 * - read: users map the record map (0660 for the probes' group with
 *   --group, else 0666, and frozen): they see each registered thread's
 *   tid, tgid, uid, run state and CPU time, which /proc/<pid>/task/
 *   <tid>/stat shows them anyway, and the addresses its runtime
 *   registered (which /proc/<pid>/maps shows only to its owner: an
 *   address-space layout leak across users, left to do: a per-process
 *   key in the record instead of the address).
 * - be confused by stale state: a record of a slot reused by another
 *   thread has another owner or gen; the runtime checks the owner
 *   before it believes a record, and goes to poll mode when its own
 *   sysmon's record stops moving (probes unloaded).
  */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "kgo_observe.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define PR_SET_NAME	15

#if defined(__TARGET_ARCH_x86)
#define NR_prctl	157
#define syscall_nr(regs)	BPF_CORE_READ(regs, orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define NR_prctl	167
struct pt_regs___kgo_arm64 {
	int syscallno;
} __attribute__((preserve_access_index));
#define syscall_nr(regs) \
	BPF_CORE_READ((struct pt_regs___kgo_arm64 *)(regs), syscallno)
#else
#error "kgo_observe.bpf.c: prctl's number for this architecture"
#endif

#define TASK_INTERRUPTIBLE	0x1
#define TASK_UNINTERRUPTIBLE	0x2

#include "kgo_maps.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kgo_obs_stats);
} kgo_stats SEC(".maps");

/* Which set this is (kgo_observe.h, struct kgo_obs_info): written by
 * the loader, then frozen. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kgo_obs_info);
} kgo_info SEC(".maps");

/* Does the process whose runtime published @proc_addr (the caller's own
 * memory) run this version and choose this probe set? 1 yes, 0 no, -1
 * unreadable (a page not present: bpf_probe_read_user cannot fault). */
static __always_inline int proc_chose_us(__u64 proc_addr)
{
	struct kgo_obs_proc pr;
	struct kgo_obs_info *in;
	__u32 zero = 0;

	in = bpf_map_lookup_elem(&kgo_info, &zero);
	if (!in || !in->set_id)
		return 0;
	if (bpf_probe_read_user(&pr, sizeof(pr), (void *)proc_addr))
		return -1;
	return pr.magic == KGO_OBS_MAGIC && pr.version == KGO_OBS_VERSION &&
	       pr.set_id == in->set_id;
}

/* Slots held per uid, for the cap (KGO_OBS_UID_SLOTS; see "Threat
 * model"). Changed only with atomic adds: at a claim (task_rename) and a
 * free (slot_free, and a dead owner's slot taken over). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KGO_OBS_UIDS);
	__type(key, __u32);
	__type(value, __u64);
} kgo_uids SEC(".maps");

extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern int bpf_send_signal_task(struct task_struct *task, int sig,
				enum pid_type type, u64 value) __ksym;

static __always_inline struct kgo_obs_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&kgo_stats, &zero);
}

#define COUNT(field) do {				\
	struct kgo_obs_stats *st__ = stats();		\
	if (st__)					\
		st__->field++;				\
} while (0)

static __always_inline struct kgo_obs_m *slot_of(struct task_struct *t,
						 __u32 *i)
{
	struct obs_task *ot = bpf_task_storage_get(&kgo_task, t, 0, 0);

	if (!ot || !ot->slot1)
		return 0;
	*i = ot->slot1 - 1;
	return bpf_map_lookup_elem(&kgo_ms, i);
}

#define CLOCK_MONOTONIC	1

#include "kgo_tick.bpf.h"

/* The count of slots @uid holds (created at 0 if @create). */
static __always_inline __u64 *uid_count(__u32 uid, bool create)
{
	__u64 zero = 0, *n = bpf_map_lookup_elem(&kgo_uids, &uid);

	if (!n && create) {
		bpf_map_update_elem(&kgo_uids, &uid, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&kgo_uids, &uid);
	}
	return n;
}

/* A slot of @uid's was given back. */
static __always_inline void uid_put(__u32 uid)
{
	__u64 *n = uid_count(uid, false);

	if (n && *n)
		__sync_fetch_and_add(n, -1);
}

/* Give slot @s back, if @owner still holds it. */
static __always_inline void slot_free(struct kgo_obs_m *s, __u64 owner)
{
	if (s->owner != owner)
		return;
	uid_put(s->uid);
	s->role = 0;
	s->m_addr = 0;
	s->proc_addr = 0;
	s->state = 0;
	__sync_val_compare_and_swap(&s->owner, owner, 0);
}

/* Does the owner recorded in a slot still exist? A slot can outlive its
 * thread only if the probes were not attached when it exited (a reload
 * over pinned maps): such a slot may be taken over. */
static __always_inline bool owner_alive(__u64 owner)
{
	struct task_struct *t = bpf_task_from_pid((s32)(__u32)owner);
	bool alive = false;

	if (t) {
		alive = (__u32)t->tgid == (__u32)(owner >> 32);
		bpf_task_release(t);
	}
	return alive;
}

/* ------------------------------------------------------------------ */
/* Registration                                                       */
/* ------------------------------------------------------------------ */

/*
 * Registration rides on prctl(PR_SET_NAME), whose tracepoint
 * (task_rename) fires only when a thread is named: the runtime names
 * the thread what it is already called and passes KGO_OBS_REG_ARG(op),
 * m_addr and proc_addr as the call's unused arguments 3-5
 * (kgo_obs_prctl in kgo_observe.h). The kernel ignores those; the
 * program reads them from the calling thread's own syscall registers.
 *
 * Not tp_btf/sys_enter, as it was: that ran on every syscall of every
 * process of the machine, and cost kgo's own I/O most (io_echo, bpf mode:
 * bpf_trace_run2 7.2% of the profile against 1.6% in poll mode,
 * `perf record -g build/bench/io_echo -p 2 -n 100000 -w 1000`; README,
 * "Kernel-observed scheduling").
 *
 * Only a thread's own rename of itself by that prctl counts: `task` is
 * `current` and the syscall in its registers is prctl(PR_SET_NAME) (a
 * write to /proc/<tid>/comm names another task, or runs write(2); exec
 * names the thread from execve).
 */
SEC("tp_btf/task_rename")
int BPF_PROG(kgo_rename, struct task_struct *task, const char *comm)
{
	struct task_struct *cur = bpf_get_current_task_btf();
	struct pt_regs *regs;
	struct obs_task *ot;
	struct kgo_obs_m *s = 0;
	__u64 owner, m_addr, proc_addr, seen, arg, *nuid = 0;
	__u32 i, idx, tid, op, uid;

	if (task != cur)
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(cur);
	if (!regs || syscall_nr(regs) != NR_prctl ||
	    PT_REGS_PARM1_CORE_SYSCALL(regs) != PR_SET_NAME)
		return 0;
	arg = PT_REGS_PARM3_CORE_SYSCALL(regs);
	if ((__u32)arg != KGO_OBS_PRCTL)
		return 0;
	op = arg >> 32;
	m_addr = PT_REGS_PARM4_CORE_SYSCALL(regs);
	proc_addr = PT_REGS_PARM5_CORE_SYSCALL(regs);
	owner = bpf_get_current_pid_tgid();
	tid = (__u32)owner;
	cur = bpf_get_current_task_btf();
	ot = bpf_task_storage_get(&kgo_task, cur, 0,
				  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!ot) {
		COUNT(reg_nostore);
		return 0;
	}
	if (ot->slot1) {
		idx = ot->slot1 - 1;
		s = bpf_map_lookup_elem(&kgo_ms, &idx);
		if (s && s->owner != owner)
			s = 0;		/* taken over: register afresh */
	}
	if (op == KGO_OBS_UNREG) {
		if (s) {
			slot_free(s, owner);
			COUNT(unregs);
		}
		ot->slot1 = 0;
		return 0;
	}
	if (op != KGO_OBS_REG_M && op != KGO_OBS_REG_SYSMON)
		return 0;
	/* Another set's process (or another version's): not ours. */
	switch (proc_chose_us(proc_addr)) {
	case 0:
		COUNT(other_set);
		return 0;
	case -1:
		COUNT(reg_unread);
		return 0;
	}
	/* bpfp: the per-uid cap. Checked before the claim and counted
	 * after it, so that CPUs registering at once can pass it by one
	 * each: a cap, not an exact count. */
	uid = (__u32)bpf_get_current_uid_gid();
	if (!s && uid != 0) {
		nuid = uid_count(uid, true);
		if (!nuid || *nuid >= KGO_OBS_UID_SLOTS) {
			ot->slot1 = 0;
			COUNT(capped);
			return 0;
		}
	}
	for (i = 0; !s && i < KGO_OBS_PROBES; i++) {
		idx = (kgo_obs_hash(tid) + i) & (KGO_OBS_SLOTS - 1);
		s = bpf_map_lookup_elem(&kgo_ms, &idx);
		if (!s)
			return 0;
		seen = __sync_val_compare_and_swap(&s->owner, 0, owner);
		if (seen == 0) {
			if (nuid)
				__sync_fetch_and_add(nuid, 1);
			break;
		}
		if (owner_alive(seen) ||
		    __sync_val_compare_and_swap(&s->owner, seen, owner) != seen) {
			s = 0;
		} else {
			uid_put(s->uid);	/* the dead owner's */
			if (nuid)
				__sync_fetch_and_add(nuid, 1);
		}
	}
	if (!s) {
		ot->slot1 = 0;
		COUNT(full);
		return 0;
	}
	if (!nuid && s->uid != uid) {
		/* Registered again under another uid (setuid). */
		uid_put(s->uid);
		nuid = uid_count(uid, true);
		if (nuid)
			__sync_fetch_and_add(nuid, 1);
	}
	s->uid = uid;
	s->tick_slice = s->tick_cpu0 = s->tick_preempt = s->tick_sent = 0;
	s->tick_next = s->tick_gap = 0;
	s->role = op;
	s->gen++;
	s->version = KGO_OBS_VERSION;
	s->m_addr = m_addr;
	s->proc_addr = proc_addr;
	s->cpu_ns = 0;
	s->nblock = s->niowait = s->npreempt = s->nwake = 0;
	s->state = (bpf_ktime_get_ns() << KGO_OBS_STATE_SHIFT) | KGO_OBS_RUNNING;
	ot->slot1 = idx + 1;
	COUNT(regs);
	if (op == KGO_OBS_REG_M)
		tick_arm();		/* it may spin with no switch */
	return 0;
}

/* Thread @p is gone: give its slot back. Return: true if it had one. */
static __always_inline bool exit_free(struct task_struct *p)
{
	struct obs_task *ot = bpf_task_storage_get(&kgo_task, p, 0, 0);
	struct kgo_obs_m *s;
	__u32 idx;

	if (!ot || !ot->slot1)
		return false;
	idx = ot->slot1 - 1;
	ot->slot1 = 0;
	s = bpf_map_lookup_elem(&kgo_ms, &idx);
	if (s)
		slot_free(s, ((__u64)p->tgid << 32) | (__u32)p->pid);
	return s;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(kgo_exit, struct task_struct *p)
{
	if (exit_free(p))
		COUNT(exits);
	return 0;
}

/*
 * The exit's second chance. The kernel skips kgo_exit for a thread
 * that exits on a CPU where another exiting thread was preempted inside
 * it (the recursion guard of tracing programs; sched_process_exit runs
 * preemptible on a preemptible kernel): in the 7.2 guest (preempt=lazy),
 * 452 of 1040 threads killed at once (observe_test pinned_uid_cap's
 * SIGKILL) left their records behind (`bpftool prog show name kgo_exit`:
 * recursion_misses 452). sched_process_free comes a grace period after
 * the thread was reaped, from an RCU callback (softirq: nothing
 * preempts it, and callbacks on one CPU run one after another), while
 * the task storage is still there (it goes with the task's last
 * reference, after this).
 */
SEC("tp_btf/sched_process_free")
int BPF_PROG(kgo_free, struct task_struct *p)
{
	if (exit_free(p))
		COUNT(exits_late);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The wakeup                                                         */
/* ------------------------------------------------------------------ */

/*
 * kick() - send @sig with si_value @value to thread @tid, if it is a
 * thread of process @tgid. Return: true if sent.
 */
static __always_inline bool kick(__u32 tid, __u32 tgid, __u32 sig,
				 __u64 value)
{
	struct task_struct *t = bpf_task_from_pid((s32)tid);
	bool sent = false;

	if (!t)
		return false;
	if ((__u32)t->tgid == tgid &&
	    !bpf_send_signal_task(t, sig, PIDTYPE_PID, value))
		sent = true;
	bpf_task_release(t);
	return sent;
}

/* A kick that waits for kick_delay_ns (struct kgo_obs_proc): armed at
 * the block, fired only if the M is still in that block. One per slot,
 * beside the record (a map with a bpf_timer cannot be mmapped). */
struct kick_timer {
	struct bpf_timer timer;
	__u64 block;		/* the record's state word at the block */
	__u64 value;		/* si_value: the P */
	__u32 tid, tgid;	/* whom to wake */
	__u32 sig;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KGO_OBS_SLOTS);
	__type(key, __u32);
	__type(value, struct kick_timer);
} kgo_kick SEC(".maps");

/* The timer's callback (softirq, any task current): user memory cannot
 * be read here, so the target was chosen at the block. */
static int kick_fire(void *map, __u32 *key, struct kick_timer *k)
{
	struct kgo_obs_m *s = bpf_map_lookup_elem(&kgo_ms, key);

	if (!s)
		return 0;
	if (s->state != k->block ||
	    (__u32)(s->owner >> 32) != k->tgid) {
		COUNT(timer_quiet);
		return 0;
	}
	if (kick(k->tid, k->tgid, k->sig, k->value)) {
		s->nwake++;
		COUNT(wakes);
	} else {
		COUNT(wake_fail);
	}
	return 0;
}

/*
 * The retake timer
 * ----------------
 * A P whose M blocks in a kgo syscall with nothing waiting, while a P
 * idles or an M spins, needs no one now; Go's sysmon takes it after
 * 10 ms in the call, and kgo's did too: it slept until 10 ms after the
 * look that first saw each such call, or (with a P idle) until the
 * last idle P was taken, and found the call long over nearly every
 * time (`KGO_DEBUG=observe=1 KGO_OBSERVE=bpf build/bench/sysmon_cpu -p
 * 2 -n 10000 -w 8`: 70-110 of its 190-260 wakeups, the "slice" and
 * "untimed" ones, for calls of 50 us). The kernel sees the block: it
 * arms the slot's kick timer for retake_ns (struct kgo_obs_proc) at
 * the block, and the kick goes out only if the M is still in that
 * block then (kick_fire), to the M or sysmon chosen at the block, as
 * any kick. One bpf_timer_start per such block (the timer is the
 * slot's, initialised once); a block that ends first costs its
 * callback one compare. The bound is Go's: a P in a blocked call with
 * nothing waiting is taken within retake_ns of the block, where it was
 * at once when the last idle P was taken; a P with work waiting, or
 * blocked when no P idles, is still kicked at the block.
 */

/*
 * An M (current) went to sleep. If the P it left in a kgo syscall has
 * work waiting, wake a thread of its process to hand it on: an idle M,
 * which takes the P itself (observe_bpf.c, observe_sigurg), else its
 * sysmon. Everything read here is the blocking process's own memory,
 * published by its runtime (struct kgo_obs_proc); the signal goes only
 * to a thread of the same process.
 */
static __always_inline void wake_if_needed(struct kgo_obs_m *s,
					   struct task_struct *prev,
					   __u32 slot, __u64 block)
{
	struct kgo_obs_proc pr;
	struct kick_timer *k;
	struct kgo_obs_m *sm;
	__u64 oldp, runnext = 0, delay;
	__u32 st = 0, head = 0, tail = 0, idx, tid = 0;
	bool quiet;
	__u32 tgid = (__u32)prev->tgid;
	__s32 gq = 0, npidle = 0, nspin = 0, ktid = 0;

	if (bpf_probe_read_user(&pr, sizeof(pr), (void *)s->proc_addr) ||
	    bpf_probe_read_user(&oldp, sizeof(oldp),
				(void *)(s->m_addr + pr.off_m_oldp))) {
		COUNT(read_fail);
		return;
	}
	if (pr.magic != KGO_OBS_MAGIC || pr.version != KGO_OBS_VERSION ||
	    !oldp)
		return;
	if (bpf_probe_read_user(&st, sizeof(st),
				(void *)(oldp + pr.off_p_status)) ||
	    st != pr.p_syscall)
		return;
	if (bpf_probe_read_user(&head, sizeof(head),
				(void *)(oldp + pr.off_p_runqhead)) ||
	    bpf_probe_read_user(&tail, sizeof(tail),
				(void *)(oldp + pr.off_p_runqtail)) ||
	    bpf_probe_read_user(&runnext, sizeof(runnext),
				(void *)(oldp + pr.off_p_runnext)) ||
	    bpf_probe_read_user(&gq, sizeof(gq), (void *)pr.runqsize_addr) ||
	    bpf_probe_read_user(&npidle, sizeof(npidle),
				(void *)pr.npidle_addr) ||
	    bpf_probe_read_user(&nspin, sizeof(nspin),
				(void *)pr.nmspinning_addr)) {
		COUNT(read_fail);
		return;
	}
	/* Nothing waits, and an idle P or a spinning M takes what comes:
	 * the P can wait for its M, up to retake_ns ("The retake timer"),
	 * or until sysmon takes it after 10 ms. */
	quiet = head == tail && !runnext && gq <= 0 && npidle + nspin > 0;
	if (quiet && !pr.retake_ns)
		return;
	/* Whom to wake: an idle M, which takes the P itself (one wakeup
	 * from the block to the next G), else sysmon. */
	if (pr.kick_tid_addr)
		bpf_probe_read_user(&ktid, sizeof(ktid),
				    (void *)pr.kick_tid_addr);
	if (ktid > 0) {
		tid = ktid;
	} else if (pr.sysmon_slot >= 0 && pr.sysmon_slot < KGO_OBS_SLOTS) {
		idx = pr.sysmon_slot;
		sm = bpf_map_lookup_elem(&kgo_ms, &idx);
		if (!sm || (__u32)(sm->owner >> 32) != tgid ||
		    sm->role != KGO_OBS_REG_SYSMON)
			return;
		tid = (__u32)sm->owner;
	}
	if (!tid)
		return;
	delay = quiet ? pr.retake_ns : pr.kick_delay_ns;
	if (delay) {
		k = bpf_map_lookup_elem(&kgo_kick, &slot);
		if (!k)
			return;
		k->block = block;
		k->value = oldp;
		k->tid = tid;
		k->tgid = tgid;
		k->sig = pr.wake_sig;
		bpf_timer_init(&k->timer, &kgo_kick, CLOCK_MONOTONIC);
		bpf_timer_set_callback(&k->timer, kick_fire);
		if (!bpf_timer_start(&k->timer, delay, 0))
			COUNT(timers);
		return;
	}
	if (kick(tid, tgid, pr.wake_sig, oldp)) {
		s->nwake++;
		COUNT(wakes);
		if (ktid > 0)
			COUNT(wakes_m);
	} else {
		COUNT(wake_fail);
	}
}

/* ------------------------------------------------------------------ */
/* Switches and wakeups                                               */
/* ------------------------------------------------------------------ */

SEC("tp_btf/sched_switch")
int BPF_PROG(kgo_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next, unsigned int prev_state)
{
	struct kgo_obs_m *s;
	__u64 now = 0, w, cpu;
	__u32 slot = 0;
	bool blocked;

	s = slot_of(prev, &slot);
	if (s) {
		now = bpf_ktime_get_ns();
		w = s->state;
		cpu = s->cpu_ns;
		if (kgo_obs_state(w) == KGO_OBS_RUNNING &&
		    now > kgo_obs_since(w))
			cpu += now - kgo_obs_since(w);
		blocked = prev_state & (TASK_INTERRUPTIBLE |
					TASK_UNINTERRUPTIBLE);
		w = now << KGO_OBS_STATE_SHIFT;
		if (blocked) {
			w |= KGO_OBS_BLOCKED;
			if (BPF_CORE_READ_BITFIELD_PROBED(prev, in_iowait)) {
				w |= KGO_OBS_IOWAIT;
				s->niowait++;
			}
			s->nblock++;
		} else {
			w |= KGO_OBS_RUNNABLE;
			s->npreempt++;
		}
		/* seq odd: cpu_ns and state change together (one writer:
		 * the thread's own CPU). The atomic adds order the
		 * stores for readers on weakly ordered CPUs too. */
		__sync_fetch_and_add(&s->seq, 1);
		s->cpu_ns = cpu;
		s->state = w;
		if (blocked)
			s->blk_state = w;
		__sync_fetch_and_add(&s->seq, 1);
		COUNT(switches);
		if (blocked && s->role == KGO_OBS_REG_M)
			wake_if_needed(s, prev, slot, w);
	}
	s = slot_of(next, &slot);
	if (s) {
		if (!now)
			now = bpf_ktime_get_ns();
		__sync_fetch_and_add(&s->seq, 1);
		/* The wakeup was missed (or came before the block was
		 * recorded): the block ends now. */
		if (kgo_obs_since(s->blk_end) < kgo_obs_since(s->blk_state))
			s->blk_end = now << KGO_OBS_STATE_SHIFT;
		s->state = (now << KGO_OBS_STATE_SHIFT) | KGO_OBS_RUNNING;
		__sync_fetch_and_add(&s->seq, 1);
		COUNT(switches);
		if (s->role == KGO_OBS_REG_M)
			tick_arm();
	}
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(kgo_wakeup, struct task_struct *p)
{
	struct kgo_obs_m *s;
	__u32 slot;
	__u64 w;

	s = slot_of(p, &slot);
	if (!s)
		return 0;
	w = s->state;
	/* Only BLOCKED -> RUNNABLE: a switch in on another CPU may have
	 * come first, and must not be undone. */
	if (kgo_obs_state(w) == KGO_OBS_BLOCKED) {
		__u64 now = bpf_ktime_get_ns() << KGO_OBS_STATE_SHIFT;

		if (__sync_val_compare_and_swap(&s->state, w,
				now | KGO_OBS_RUNNABLE) == w)
			s->blk_end = now;
	}
	return 0;
}
