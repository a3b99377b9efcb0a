/* SPDX-License-Identifier: MIT */
/*
 * trace.h - scheduler events for KGO_TRACE (trace.c).
 *
 * The scheduler calls TRACE(ev, g, arg) where something worth seeing
 * happens. When KGO_TRACE is not set this costs one load and one
 * predictable branch; when it is, trace.c appends a 32-byte record to
 * the calling thread's buffer (no lock, no syscall but for a new chunk)
 * and writes them all as Chrome trace-event JSON when kgo_run ends.
 */
#ifndef KGO_TRACE_H
#define KGO_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* What happened. @g and @arg mean what each line says. */
enum trace_ev {
	TR_GO_CREATE = 1,	/* g: new G, arg: creating G (0: none) */
	TR_GO_START,		/* g started running on this M, arg: P */
	TR_GO_STOP,		/* the G on this M stopped running */
	TR_GO_PARK,		/* g parked, arg: enum waitreason */
	TR_GO_READY,		/* g made runnable, arg: readying G */
	TR_SYSCALL_ENTER,	/* g entered a syscall, arg: 1 if blocking */
	TR_SYSCALL_EXIT,	/* g left it, arg: 1 fast path (kept its P) */
	TR_HANDOFF,		/* g: P taken from a syscall, arg: kernel seen */
	TR_PREEMPT,		/* g preempted, arg: 1 async (SIGURG) */
	TR_STEAL,		/* g: victim P, arg: Gs stolen */
	TR_GO_NAME,		/* g named itself, arg: a strdup'd copy of
				 * the name, freed by trace_stop */
	TR_KBLOCK,		/* the M's last block in the kernel (bpf
				 * mode); its ts is the block's start
				 * (trace.c, "Kernel blocks") */
	TR_NEVENTS
};

/* Written once before the runtime's threads start and after they end;
 * read relaxed on every event site. */
extern _Atomic bool trace_on;

void trace_event(enum trace_ev ev, uint64_t g, uint64_t arg);

#define TRACE(ev, g, arg)						\
	do {								\
		if (__builtin_expect(atomic_load_explicit(&trace_on,	\
				memory_order_relaxed), 0))		\
			trace_event(ev, g, arg);			\
	} while (0)

/* Called by sysmon_start()/sysmon_stop(), i.e. at kgo_run's start and
 * end: open the trace if KGO_TRACE names a file; write it out. */
int trace_start(void);
void trace_stop(void);

#endif /* KGO_TRACE_H */
