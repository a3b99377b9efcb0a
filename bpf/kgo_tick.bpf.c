// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * kgo_tick.bpf.c - the preemption tick: the kernel stops a G that has
 * had its slice of CPU time, with no wakeup of sysmon.
 *
 * What
 * ----
 * One perf_event program, attached to a cpu-clock event on every CPU
 * that fires KGO_TICK_HZ times a second of that CPU's time. When the
 * task it interrupts is a registered M (the records and task storage
 * of kgo_observe.bpf.c, shared with it through bpf_map__reuse_fd) whose
 * P runs a G, it times the G's slice in the CPU time the probes count
 * for the M (struct kgo_obs_m: cpu_ns up to the last switch out, plus
 * now - since while RUNNING), and once the slice is over it asks the G
 * to stop: a plain store in the M's record (tick_preempt = the slice's
 * schedtick + 1) and bpf_send_signal_thread(SIGURG) to the M itself.
 *
 * Why
 * ---
 * In polling mode sysmon times a slice in wall time and looks every
 * 20 us - 10 ms; in bpf mode without the tick it sleeps until the
 * earliest a slice can end and then asks the kernel (the thread's CPU
 * clock) how much was used: a wakeup of sysmon for every slice that
 * runs out, and a G whose M waited for a CPU is woken for and looked at
 * again. The tick is on the CPU the G runs on, when it runs: it sees
 * the CPU time as it is spent, and a G whose M the kernel kept off the
 * CPU is not ticked at all. sysmon sleeps through long-running Gs.
 *
 * The protocol with the runtime
 * -----------------------------
 * runtime -> tick (plain stores in the process's own memory, read with
 *   bpf_probe_read_user of `current`, which is the M itself):
 *	struct kgo_obs_proc: off_m_p, off_p_schedtick, p_running and
 *	slice_ns (0: the runtime does not want the tick); m->p, and the
 *	P's status and schedtick, which the scheduler writes anyway (one
 *	increment per G run: a new schedtick is a new slice).
 * tick -> runtime: the record's tick_* block, written only here, on the
 *   M's CPU while the M runs (nothing else writes those fields, and
 *   this program does not run nested on one CPU):
 *	tick_slice = schedtick + 1 when a new slice is first seen, with
 *	tick_cpu0 the M's CPU time then; tick_preempt = schedtick + 1
 *	once cpu - tick_cpu0 >= slice_ns; then SIGURG to the M.
 * The SIGURG handler (user/runtime/preempt.c) takes a SIGURG with
 * si_code SI_KERNEL as the tick's only if the M's own record (its slot,
 * its owner) says tick_preempt == its P's schedtick + 1: the slice of
 * the G running now is over. It then sets gp->preempt and goes on as
 * for sysmon's signal (safe point, or the G's next runtime call). A
 * BPF signal cannot carry the runtime's cookie (bpf_send_signal_thread
 * sends SI_KERNEL with no value), and SI_KERNEL SIGURGs also come from
 * sockets (F_SETOWN urgent data); such a one that arrives while the
 * record says "over" stops a G the tick wanted stopped anyway, and
 * every SIGURG still goes on to the program's handler. Nobody but the
 * kernel can send SI_KERNEL to another process, and nobody but this
 * program writes the record (a frozen map for users), so no user can
 * make another's G stop early.
 *
 * While the slice stays over (the G was not at a safe point, and makes
 * no runtime call) the tick sends again as sysmon does, backing off in
 * the M's CPU time: KGO_TICK_RESEND_MIN after the first signal, then
 * twice as long each time, up to the slice (tick_next, tick_gap). It
 * sent one at every tick (2000 a second) before: a G in a long libc
 * call took 2 signals a ms of CPU, each one refused by the handler
 * (observe_test tick_backs_off: 300 ms of memchr, slice 20 ms).
 *
 * When it helps, what it costs, its limits
 * ----------------------------------------
 * - It ends a slice at most one tick (1 ms) of CPU time late: the
 *   slice is timed from the first tick that sees it, and ends at the
 *   first tick after it is over. Figures: README, spin_timer.
 * - Every CPU takes KGO_TICK_HZ timer interrupts a second, idle or not
 *   (a cpu-clock event is an hrtimer): the program itself costs a
 *   task-storage lookup on other tasks (~100 ns: 0.01% of a CPU at 1
 *   kHz), but an idle CPU no longer sleeps through ticks, which costs
 *   power, and on a VM a guest exit per tick. kgo-probe status counts
 *   the ticks.
 * - CPU time is the probes' (ktime between switches), which on a VM
 *   includes time the hypervisor stole; the thread's CPU clock leaves
 *   steal out. Measured here: no steal (/proc/stat).
 * - A record whose switch-in the probes missed (observe_bpf.c,
 *   observe_confirm) is not RUNNING: its time does not count until the
 *   next switch, so that slice ends late, never early (counted:
 *   `stale`).
 * - A program that installs a SIGURG handler of its own while kgo runs
 *   gets the tick's signals; sysmon takes SIGURG back only when it
 *   signals itself, which it does not while the tick works.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "kgo_observe.h"
#include "kgo_tick.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define SIGURG	23	/* x86 and arm64 alike */

/* kgo_observe.bpf.c's maps (the loader points these at the
 * observer's with bpf_map__reuse_fd). */
#include "kgo_maps.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kgo_tick_stats);
} kgo_tick_stats SEC(".maps");

#define COUNT(st, field) do {				\
	if (st)						\
		(st)->field++;				\
} while (0)

SEC("perf_event")
int kgo_tick(struct bpf_perf_event_data *ctx)
{
	struct task_struct *cur = bpf_get_current_task_btf();
	struct kgo_tick_stats *st;
	struct kgo_obs_proc pr;
	struct kgo_obs_m *s;
	struct obs_task *ot;
	__u64 pp = 0, tick = 0, w, cpu, now, slice1;
	__u32 status = 0, idx, zero = 0;

	ot = bpf_task_storage_get(&kgo_task, cur, 0, 0);
	if (!ot || !ot->slot1)
		return 0;
	idx = ot->slot1 - 1;
	s = bpf_map_lookup_elem(&kgo_ms, &idx);
	if (!s || s->owner != bpf_get_current_pid_tgid() ||
	    s->role != KGO_OBS_REG_M)
		return 0;
	st = bpf_map_lookup_elem(&kgo_tick_stats, &zero);
	COUNT(st, ticks);
	/* The process's own memory, as its runtime published it. */
	if (bpf_probe_read_user(&pr, sizeof(pr), (void *)s->proc_addr) ||
	    pr.magic != KGO_OBS_MAGIC || pr.version != KGO_OBS_VERSION ||
	    !pr.slice_ns)
		return 0;
	if (bpf_probe_read_user(&pp, sizeof(pp),
				(void *)(s->m_addr + pr.off_m_p)) || !pp ||
	    bpf_probe_read_user(&status, sizeof(status),
				(void *)(pp + pr.off_p_status)) ||
	    status != pr.p_running ||
	    bpf_probe_read_user(&tick, sizeof(tick),
				(void *)(pp + pr.off_p_schedtick)))
		/*
		 * No G of its own runs: no P (in a syscall: entersyscall
		 * clears m->p; between two Gs), or memory we cannot read.
		 * The slice goes on: it was restarted here once, and a G
		 * that loops on syscall brackets, with no P at some of
		 * the ticks, had a new slice every few ticks and was never
		 * stopped (preempt_test cooperative.*.tick_stops_loop_bpf:
		 * each 1 ms sleep beside it waited 1-8 s for sysmon). The
		 * G back from its call on the same P has the same
		 * schedtick: the same slice, its call's CPU time in it,
		 * as sysmon counts it. A new G, or another P, is another
		 * schedtick, so another slice (two Ps' schedticks that
		 * meet make a slice end early: one early stop, no more).
		 */
		return 0;
	now = bpf_ktime_get_ns();
	w = s->state;
	cpu = s->cpu_ns;
	if (kgo_obs_state(w) == KGO_OBS_RUNNING && now > kgo_obs_since(w))
		cpu += now - kgo_obs_since(w);
	else
		COUNT(st, stale);
	slice1 = tick + 1;
	if (s->tick_slice != slice1) {
		s->tick_slice = slice1;
		s->tick_cpu0 = cpu;
		COUNT(st, slices);
		return 0;
	}
	if (cpu - s->tick_cpu0 < pr.slice_ns)
		return 0;
	/* Sent for this slice already: the next one only after the gap,
	 * which doubles up to the slice. */
	if (s->tick_preempt == slice1) {
		if (cpu < s->tick_next)
			return 0;
		if (s->tick_gap < pr.slice_ns)
			s->tick_gap *= 2;
	} else {
		s->tick_gap = KGO_TICK_RESEND_MIN;
	}
	s->tick_next = cpu + s->tick_gap;
	/* Before the signal: the handler runs on this thread after it. */
	s->tick_preempt = slice1;
	if (!bpf_send_signal_thread(SIGURG)) {
		s->tick_sent++;
		COUNT(st, signals);
	} else {
		COUNT(st, signal_fail);
	}
	return 0;
}
