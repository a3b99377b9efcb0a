/* SPDX-License-Identifier: MIT */
/*
 * kgo_tick.h - what the preemption tick (kgo_tick.bpf.h, part of
 * kgo_observe.bpf.c) shares with its loaders (observe_bpf.c,
 * kgo-probe): its rate and its counters. The per-M fields it writes
 * are in kgo_observe.h (struct kgo_obs_m, the tick_* block), the
 * runtime's in struct kgo_obs_proc.
 */
#ifndef KGO_TICK_H
#define KGO_TICK_H

/* Ticks a second on a CPU while a kgo M runs there and its Gs come and
 * go (fewer while one slice runs on: KGO_TICK_GAP_MAX). */
#define KGO_TICK_HZ		2000
#define KGO_TICK_NS		(1000000000ULL / KGO_TICK_HZ)

/* While one slice runs on, the gap between fires doubles from
 * KGO_TICK_NS up to this, and the fire before the slice's end comes at
 * its end (kgo_tick.bpf.h, "The gap"); never sooner than
 * KGO_TICK_MIN_NS. */
#define KGO_TICK_GAP_MAX	(2 * 1000 * 1000ULL)
#define KGO_TICK_MIN_NS		(50 * 1000ULL)

/* CPUs the tick can serve (map kgo_tick_cpu, by CPU number); an M on a
 * CPU numbered higher is not ticked, and sysmon's looks stop its Gs. */
#define KGO_TICK_CPUS		1024

/* The first resend of a SIGURG for a slice that stays over comes this
 * much CPU time after the first; each next one twice as long after the
 * last, up to the slice (sysmon's RESEND_MIN and rule, sysmon.c). */
#define KGO_TICK_RESEND_MIN	(1000 * 1000ULL)

/*
 * struct kgo_tick_stats - the tick's counters (map kgo_tick_stats, one
 * entry per CPU).
 */
struct kgo_tick_stats {
	__u64 ticks;		/* ticks that found a registered M running */
	__u64 slices;		/* slices the tick started timing */
	__u64 signals;		/* SIGURGs sent: a slice was over */
	__u64 signal_fail;	/* ... that could not be sent */
	__u64 stale;		/* the M's record was not RUNNING */
	__u64 fires;		/* the timer's callbacks, M or not */
	__u64 arms;		/* starts at an M's switch in (or register) */
	__u64 lapses;		/* fires that stopped it (no M there, or a
				 * start refused): arms - lapses run now */
	__u64 arm_fail;		/* timer starts the kernel refused */
};

#endif /* KGO_TICK_H */
