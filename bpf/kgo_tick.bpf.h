// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * kgo_tick.bpf.h - the preemption tick: the kernel stops a G that has
 * had its slice of CPU time, with no wakeup of sysmon. Part of
 * kgo_observe.bpf.c (included by it: its sched_switch arms the tick,
 * and a BPF timer's callback lives in the object that starts it).
 *
 * What
 * ----
 * One BPF timer per CPU (map kgo_tick_cpu), pinned to its CPU, that
 * fires every KGO_TICK_NS while a registered M is on that CPU (less
 * often while one slice runs on: "The gap", below), and not
 * otherwise. sched_switch starts it when a registered M switches in on
 * a CPU whose tick is not armed (and so does the M's registration); the
 * callback, on that CPU in softirq with `current` the task it
 * interrupted, does the tick's work when current is a registered M and
 * starts itself again; when current is anything else (the CPU idles, or
 * runs another program) it lets itself lapse until the next M switches
 * in there. When the task it interrupts is a registered M (the records
 * and task storage of kgo_observe.bpf.c) whose P runs a G, it times
 * the G's slice in the CPU time the probes count for the M (struct
 * kgo_obs_m: cpu_ns up to the last switch out, plus now - since while
 * RUNNING), and once the slice is over it asks the G
 * to stop: a plain store in the M's record (tick_preempt = the slice's
 * schedtick + 1) and bpf_send_signal_thread(SIGURG) to the M itself.
 * It reads user memory and signals only when `current` is the
 * registered M of the slot (owner checked), as the perf_event program
 * it replaced did: ksoftirqd, or any other task, only makes it lapse.
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
 * The gap
 * -------
 * Each fire is an interrupt, and on this VM an interrupt is a guest
 * exit: at one every KGO_TICK_NS the tick cost a ping-pong of Gs 4.5-5%
 * (chan_rt -p 2, 10M rounds, bpf against poll; with the tick off, as
 * poll). But while one slice runs on, a fire only has to come by its
 * end: the slice's G cannot use CPU time faster than the clock runs.
 * So the gap to the next fire doubles, from KGO_TICK_NS up to
 * KGO_TICK_GAP_MAX (2 ms), at each fire that finds the same slice not
 * yet over, and the last fire comes at the slice's end (the CPU time
 * left, as wall time; if the M was off the CPU meanwhile, the fire
 * finds time left and waits again, or finds another task and lapses).
 * A new slice, a G with no slice (no P, between Gs), a slice over
 * (the resends), and an M's switch in (tick_arm) go back to
 * KGO_TICK_NS. A 10 ms slice now takes ~7 fires, not 20 (observe_test
 * pinned_tick counts them: 13 in a run of 38 ms of CPU, 39-42 before);
 * chan_rt -p 2 in bpf mode 1.026x poll (was 1.046-1.05x). The price:
 * a slice that begins inside a long gap is first seen up to
 * KGO_TICK_GAP_MAX after it began, and ends that much late at most.
 * Only the gap is per CPU (struct tick_cpu), written by the callback
 * and tick_arm on that CPU; the slice's own state stays in the record.
 *
 * When it helps, what it costs, its limits
 * ----------------------------------------
 * - It ends a slice late by at most the gap in which it began (half a
 *   tick, 0.5 ms, when Gs come and go; up to KGO_TICK_GAP_MAX after a
 *   long slice on that CPU): the slice is timed from the first fire
 *   that sees it, and ends at the fire at its end. Figures: README,
 *   spin_timer.
 * - It runs only on CPUs where a registered M runs, and only while it
 *   runs (a lapse costs one more tick after the M leaves the CPU). It
 *   was a perf_event program on a cpu-clock event of every CPU, which
 *   fired 2000 times a second on every CPU whatever ran there: that
 *   doubled the machine's timer interrupts when no kgo program ran at
 *   all (/proc/interrupts LOC, 2 CPUs: 2438 a second without it, 4882
 *   with a bare 2 kHz cpu-clock event on each, 2026-12-06), and each
 *   costs a guest exit or two on this VM: a fixed spin loop pinned to
 *   one CPU used 4.5-12% more CPU time with those events on (the
 *   README, "The cost to other programs"). A program on the timer
 *   interrupt cannot stop its own event (no helper does), and a BPF
 *   timer can be started from sched_switch, so the tick became one.
 * - On a CPU an M keeps, it costs up to KGO_TICK_HZ interrupts a
 *   second while Gs come and go, ~700 while one slice runs long ("The
 *   gap"), plus the start of the timer at an M's switch in after a
 *   lapse (at most one per lapse).
 * - Softirq context: the callback sees `current` as the task it
 *   interrupted, unless ksoftirqd runs the timers (a loaded CPU):
 *   then current is ksoftirqd, the tick lapses, and the M's switch
 *   back in after ksoftirqd starts it again. It needs
 *   BPF_F_TIMER_CPU_PIN (Linux 6.7; the probes need 6.13 anyway) so
 *   that the timer fires on its CPU; a start that fails is counted
 *   (`arm_fail`) and tried again at the next switch in.
 * - The timers are cancelled when the last user-space holder of the
 *   map goes (the kernel's rule for maps with timers): kgo-probe pins
 *   kgo_tick_cpu, a process that loads its own holds it.
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
#ifndef KGO_TICK_BPF_H
#define KGO_TICK_BPF_H

#include "kgo_tick.h"

#define SIGURG	23	/* x86 and arm64 alike */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kgo_tick_stats);
} kgo_tick_stats SEC(".maps");

/*
 * One per CPU (by CPU number): the tick's timer there, and whether it
 * is armed (started and its callback not yet run, or run and started
 * again). @armed is written only on that CPU, by sched_switch (irqs
 * off) and by the callback (softirq), which cannot interleave there.
 */
struct tick_cpu {
	struct bpf_timer timer;
	__u64 armed;
	__u64 inited;
	/* The gap to the next fire while one slice runs on ("The gap"):
	 * written by the callback only, reset by tick_arm. */
	__u64 gap;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KGO_TICK_CPUS);
	__type(key, __u32);
	__type(value, struct tick_cpu);
} kgo_tick_cpu SEC(".maps");

#define TICK_COUNT(st, field) do {			\
	if (st)						\
		(st)->field++;				\
} while (0)

static __always_inline struct kgo_tick_stats *tick_stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&kgo_tick_stats, &zero);
}

/*
 * tick_m() - the tick's work on this CPU, if `current` is a registered
 * M. Return: when to fire next (ns from now), or 0 if it is not one
 * (the tick lapses).
 */
static __always_inline __u64 tick_m(struct kgo_tick_stats *st,
				    struct tick_cpu *tc)
{
	struct task_struct *cur = bpf_get_current_task_btf();
	struct kgo_obs_proc pr;
	struct kgo_obs_m *s;
	__u64 pp = 0, tick = 0, w, cpu, now, slice1, gap, left;
	__u32 status = 0, idx;

	s = slot_of(cur, &idx);
	if (!s || s->owner != bpf_get_current_pid_tgid() ||
	    s->role != KGO_OBS_REG_M)
		return 0;
	TICK_COUNT(st, ticks);
	/* The process's own memory, as its runtime published it. */
	if (bpf_probe_read_user(&pr, sizeof(pr), (void *)s->proc_addr) ||
	    pr.magic != KGO_OBS_MAGIC || pr.version != KGO_OBS_VERSION ||
	    !pr.slice_ns)
		return 0;	/* it does not want the tick */
	/* Anything but a slice that runs on: the next fire one tick on. */
	gap = tc->gap;
	tc->gap = KGO_TICK_NS;
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
		 * The tick goes on: the M may take a G with no switch.
		 */
		return KGO_TICK_NS;
	now = bpf_ktime_get_ns();
	w = s->state;
	cpu = s->cpu_ns;
	if (kgo_obs_state(w) == KGO_OBS_RUNNING && now > kgo_obs_since(w))
		cpu += now - kgo_obs_since(w);
	else
		TICK_COUNT(st, stale);
	slice1 = tick + 1;
	if (s->tick_slice != slice1) {
		s->tick_slice = slice1;
		s->tick_cpu0 = cpu;
		TICK_COUNT(st, slices);
		return KGO_TICK_NS;
	}
	if (cpu - s->tick_cpu0 < pr.slice_ns) {
		/* The same slice on: fire at its end, or after the gap,
		 * doubled since the slice was first seen, if sooner. */
		left = pr.slice_ns - (cpu - s->tick_cpu0);
		gap = gap < KGO_TICK_NS ? KGO_TICK_NS : 2 * gap;
		if (gap > KGO_TICK_GAP_MAX)
			gap = KGO_TICK_GAP_MAX;
		tc->gap = gap;
		if (left < gap)
			gap = left < KGO_TICK_MIN_NS ? KGO_TICK_MIN_NS : left;
		return gap;
	}
	/* Sent for this slice already: the next one only after the gap,
	 * which doubles up to the slice. */
	if (s->tick_preempt == slice1) {
		if (cpu < s->tick_next)
			return KGO_TICK_NS;
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
		TICK_COUNT(st, signals);
	} else {
		TICK_COUNT(st, signal_fail);
	}
	return KGO_TICK_NS;
}

/* The timer's callback: on its CPU (BPF_F_TIMER_CPU_PIN), in softirq. */
static int tick_fire(void *map, __u32 *key, struct tick_cpu *tc)
{
	struct kgo_tick_stats *st = tick_stats();
	__u64 next = 0;

	TICK_COUNT(st, fires);
	/* Not its CPU: that one went offline and the timer moved. */
	if (*key == bpf_get_smp_processor_id())
		next = tick_m(st, tc);
	if (!next) {
		tc->armed = 0;
		TICK_COUNT(st, lapses);
		return 0;
	}
	if (bpf_timer_start(&tc->timer, next, BPF_F_TIMER_CPU_PIN)) {
		tc->armed = 0;
		TICK_COUNT(st, lapses);		/* so arms - lapses runs */
		TICK_COUNT(st, arm_fail);
	}
	return 0;
}

/*
 * tick_arm() - a registered M is (about to be) on this CPU: start its
 * tick unless it runs. Called with irqs off (sched_switch, or the
 * registration's task_rename, where current is the M).
 */
static __always_inline void tick_arm(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct kgo_tick_stats *st;
	struct tick_cpu *tc;

	tc = bpf_map_lookup_elem(&kgo_tick_cpu, &cpu);
	if (!tc || tc->armed)
		return;
	st = tick_stats();
	if (!tc->inited) {
		/* -EBUSY when done before: the timer is kept. */
		bpf_timer_init(&tc->timer, &kgo_tick_cpu, CLOCK_MONOTONIC);
		if (bpf_timer_set_callback(&tc->timer, tick_fire)) {
			TICK_COUNT(st, arm_fail);
			return;
		}
		tc->inited = 1;
	}
	if (bpf_timer_start(&tc->timer, KGO_TICK_NS, BPF_F_TIMER_CPU_PIN)) {
		TICK_COUNT(st, arm_fail);
		return;
	}
	tc->gap = KGO_TICK_NS;
	tc->armed = 1;
	TICK_COUNT(st, arms);
}

#endif /* KGO_TICK_BPF_H */
