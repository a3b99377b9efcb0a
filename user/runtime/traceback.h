/* SPDX-License-Identifier: MIT */
/*
 * traceback.h - stacks of Gs, symbolized, for the deadlock report, the
 * SIGQUIT dump and misuse messages (traceback.c); Gs' names; the clock
 * that says how long a G has waited.
 */
#ifndef KGO_TRACEBACK_H
#define KGO_TRACEBACK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime.h"

/*
 * The park clock: a coarse CLOCK_MONOTONIC that sysmon stores at the
 * top of each of its rounds (every 20 us to 10 ms while a P runs), and
 * that gopark copies into gp->waitsince: a load, where a clock read
 * (7.5 ns a call for CLOCK_MONOTONIC_COARSE, 52 for CLOCK_MONOTONIC,
 * measured here under load with a loop of 20M clock_gettime calls)
 * would cost a chan_rt round trip of ~120 ns two of them. It is never
 * later than the park it stamps, so a waited time shown is the true one
 * plus at most the clock's age: one of sysmon's sleeps (longer if
 * sysmon waits for a CPU). 0 while sysmon
 * sleeps deeply (every P idle) and until its first round after: a G
 * that parks then (one just off the idle list) reads the clock itself.
 */
extern _Atomic int64_t park_clock;

/* gopark's stamp: the park clock, or the clock itself while the park
 * clock is 0 (sysmon asleep or not yet round: rare, and then exact). */
static inline int64_t park_stamp(void)
{
	int64_t t = atomic_load_explicit(&park_clock, memory_order_relaxed);

	return likely(t) ? t : nanotime();
}

/* sysmon: @now at the top of a round; 0 before it sleeps deeply. */
static inline void park_clock_set(int64_t now)
{
	atomic_store_explicit(&park_clock, now, memory_order_relaxed);
}

/* The G's name if it has one (kgo_set_name), else NULL. */
const char *g_name(struct g *gp, char *buf, size_t n);

/*
 * dump_goroutines() (runtime.h) prints every G as Go does: id, name,
 * state or wait reason and how long it has waited, then its stack,
 * function+offset and file:line per frame. Call it where the world is
 * stopped (checkdead: every M idle) or about to end (SIGQUIT).
 */

/* SIGQUIT: set by the handler, looked at by sysmon at the top of each
 * round, which then calls sysmon_quit(): the dump, and _exit(2). */
extern _Atomic bool sysmon_quit_pending;
void sysmon_quit(void) __attribute__((noreturn));

/* SIGQUIT: the dump from a signal handler; @uc is the handler's
 * ucontext (the interrupted thread's registers). Does not return. */
void traceback_sigquit(void *uc) __attribute__((noreturn));

/*
 * park_misuse() - the running G tried to park (gopark, kgo_yield) with
 * no P: it is between kgo_syscall_begin and kgo_syscall_end. Prints
 * "kgo: fatal error: kgo_sleep called between kgo_syscall_begin and
 * kgo_syscall_end" (naming the kgo call the program made, found on the
 * G's own stack) and aborts. @reason: what the G waits for, the name's
 * fallback.
 */
void park_misuse(enum waitreason reason) __attribute__((noreturn, cold));

#endif /* KGO_TRACEBACK_H */
