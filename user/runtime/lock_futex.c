// SPDX-License-Identifier: MIT
/*
 * lock_futex.c - the runtime's own locks and sleeps, on futexes.
 *
 * These block the thread (the M), not the G, so they only guard short
 * critical sections inside the runtime and put idle Ms to sleep. The
 * lock word is 0 free, 1 held; lock() spins briefly first (LOCK_SPINS
 * looks, LOCK_PAUSES apart), because critical sections here are a few
 * dozen ns and waking a sleeper on this VM costs ~47 us (FACTS.md).
 *
 * The asymmetric fence. Drepper's three-state mutex ("Futexes are
 * tricky") unlocks with an exchange, to learn atomically whether to
 * wake someone: a locked instruction, ~6.5 ns on this VM (AMD EPYC, a
 * loop of them), on every unlock, while sleepers are rare (a waiter
 * spins ~15 us first). Here the unlocker stores 0 and then loads the
 * sleeper count of the lock's bucket; a sleeper adds itself to that
 * count and then looks at the lock word before it sleeps. Each side is
 * a store then a load, and one of them must see the other's store. The
 * sleeper, rarely there, pays for the full fence for both:
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) runs a full barrier on
 * every CPU that runs one of our threads, so an unlocker either did its
 * load after that barrier (and sees the count) or did its store before
 * it (and the sleeper sees 0). The unlocker needs only a compiler
 * barrier (Linux's membarrier(2) pattern; folly's asymmetric fences).
 * Without membarrier (lock_asym false) unlock() fences itself, which
 * costs what the exchange did. The count lives in a global bucket, not
 * in the lock, because the unlocker reads it after its release: the
 * lock may be freed by then. Unrelated sleepers in the same bucket only
 * cost a spurious FUTEX_WAKE. A chan_rt round trip (build/bench/chan_rt
 * -p 1) has 4 unlocks: 8 -> 4 locked instructions (callgrind
 * --dump-instr=yes, lock-prefixed and xchg counted); figures in the
 * commit.
 *
 * A note is a one-shot event: clear, woken, or clear with its sleeper
 * in the kernel (so a wakeup must make the futex call). One M sleeps on
 * it.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

enum { NOTE_CLEAR = 0, NOTE_WOKEN = 1, NOTE_KERNEL = NOTE_KERNEL_VALUE,
       NOTE_POLL = 3 /* the sleeper is in io.c's netpoll_sleep */ };
#define NOTE_SPIN_NS	30000

/*
 * A waiter looks at the lock again only every LOCK_PAUSES pauses (Go:
 * 30 PAUSEs of ~140 cycles on Intel; one PAUSE is 26 ns on this VM, so
 * 60 is ~1.5 us). Looking more often is much worse when two Ms really
 * run at once: each look pulls the lock's line away from the holder,
 * whose unlock must take it back, and the holder never gets two
 * operations in a row. Channel with 4 producers and 4 consumers at P=2
 * on an idle machine (build/bench/chan_buf -p 2 -n 10000000 -w 4
 * -c 1024): 7 Mitems/s looking after every pause, 16-28 after 30,
 * 29.6 after 60, 30.0 after 120; Go 25. (On a loaded machine the host
 * runs the two Ms in turn and every variant does ~30.)
 */
#define LOCK_SPINS	10
#define LOCK_PAUSES	60

int64_t nanotime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * futex_wait() - sleep while *addr == val, until woken or @deadline
 * (absolute CLOCK_MONOTONIC ns; < 0 forever). Return: 0 woken (or
 * spurious: callers re-check), -ETIMEDOUT, -EAGAIN (value changed),
 * -EINTR (a signal: callers re-check and sleep again).
 */
int futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t deadline)
{
	struct timespec ts, *tsp = NULL;
	long r;

	if (deadline >= 0) {
		ts.tv_sec = deadline / 1000000000;
		ts.tv_nsec = deadline % 1000000000;
		tsp = &ts;
	}
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC timeout. */
	r = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
		    val, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
	return r < 0 ? -errno : 0;
}

void futex_wake(_Atomic uint32_t *addr, int n)
{
	syscall(SYS_futex, addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL,
		NULL, 0);
}

struct lock_bucket lock_buckets[LOCK_BUCKETS];
bool lock_asym;

static long membarrier(int cmd)
{
	return syscall(SYS_membarrier, cmd, 0, 0);
}

/* Before main, so before any thread of ours: lock_asym never changes
 * while an unlock() reads it. */
__attribute__((constructor)) static void lock_init(void)
{
	long q = membarrier(MEMBARRIER_CMD_QUERY);

	lock_asym = q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
		    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

/* The sleeper's side of the asymmetric fence (above): ~10 us here.
 * Also the thief's side of the meeting over a P's runnext (proc.c). */
void lock_fence_heavy(void)
{
	if (!lock_asym) {
		lock_fence_full();
		return;
	}
	if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
		return;
	/* A child of fork() is not registered (the mm is new). */
	if (errno == EPERM &&
	    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
	    membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
		return;
	kgo_throw("lock: membarrier failed");
}

/* lock_slow() - lock() found the lock held: spin a little, then sleep. */
void lock_slow(struct kgo_lock *l)
{
	_Atomic uint32_t *sleepers = &lock_bucket(l)->sleepers;
	uint32_t c;
	int i;

	for (i = 0; i < LOCK_SPINS; i++) {
		for (int k = 0; k < LOCK_PAUSES; k++)
			cpu_relax();
		c = 0;
		if (atomic_load_explicit(&l->key, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_weak_explicit(&l->key, &c, 1,
				memory_order_acquire, memory_order_relaxed))
			return;
	}
	/*
	 * Count ourselves, fence, then look: an unlock that our look
	 * missed sees the count and wakes us (the asymmetric fence,
	 * above). Every later unlock sees it too, while we sleep or retry.
	 */
	atomic_fetch_add(sleepers, 1);
	lock_fence_heavy();
	for (;;) {
		c = 0;
		if (atomic_compare_exchange_strong_explicit(&l->key, &c, 1,
				memory_order_acquire, memory_order_relaxed))
			break;
		futex_wait(&l->key, 1, -1);
	}
	atomic_fetch_sub_explicit(sleepers, 1, memory_order_relaxed);
}

/* unlock_wake() - unlock() saw sleepers in l's bucket: wake one of l's
 * (FUTEX_WAKE on a private futex only hashes the address, so l may be
 * gone by now). */
void unlock_wake(struct kgo_lock *l)
{
	futex_wake(&l->key, 1);
}

void noteclear(struct note *n)
{
	atomic_store_explicit(&n->key, NOTE_CLEAR, memory_order_relaxed);
}

void notewakeup(struct note *n)
{
	/* Release: what the waker wrote before is seen by the sleeper. */
	uint32_t old = atomic_exchange_explicit(&n->key, NOTE_WOKEN,
						memory_order_release);

	if (old == NOTE_WOKEN)
		kgo_throw("notewakeup: double wakeup");
	/* Only a sleeper already in the kernel needs the syscall. */
	if (old == NOTE_KERNEL)
		futex_wake(&n->key, 1);
	else if (old == NOTE_POLL)
		io_netpoll_break();
}

static bool note_wait(struct note *n, int64_t deadline, int64_t spin_ns);

/*
 * For a sleeper that waits for the note inside something else (io.c: an
 * IORING_OP_FUTEX_WAIT on n->key, expecting NOTE_KERNEL_VALUE, so that
 * a ring completion or notewakeup wakes it): mark the note as having
 * its sleeper in the kernel, so notewakeup makes the futex call.
 * Return: false if it was woken already.
 */
bool note_enter_kernel(struct note *n)
{
	uint32_t k = NOTE_CLEAR;

	return atomic_compare_exchange_strong_explicit(&n->key, &k,
			NOTE_KERNEL, memory_order_acquire,
			memory_order_acquire) || k == NOTE_KERNEL;
}

/* Undo note_enter_kernel. Return: false if a wakeup came first. */
bool note_leave_kernel(struct note *n)
{
	uint32_t k = NOTE_KERNEL;

	return atomic_compare_exchange_strong_explicit(&n->key, &k, NOTE_CLEAR,
			memory_order_acquire, memory_order_acquire);
}

/* The same for a sleeper in epoll_wait (io.c, netpoll_sleep): notewakeup
 * then writes the netpoller's break eventfd instead of a FUTEX_WAKE. */
bool note_enter_poll(struct note *n)
{
	uint32_t k = NOTE_CLEAR;

	return atomic_compare_exchange_strong_explicit(&n->key, &k, NOTE_POLL,
			memory_order_acquire, memory_order_acquire);
}

bool note_leave_poll(struct note *n)
{
	uint32_t k = NOTE_POLL;

	return atomic_compare_exchange_strong_explicit(&n->key, &k, NOTE_CLEAR,
			memory_order_acquire, memory_order_acquire);
}

bool note_is_woken(struct note *n)
{
	/* Acquire pairs with notewakeup's release. */
	return atomic_load_explicit(&n->key, memory_order_acquire) ==
	       NOTE_WOKEN;
}

void notesleep(struct note *n)
{
	notesleep_until(n, -1);
}

/*
 * notesleep_until() - spin for NOTE_SPIN_NS, then sleep in the kernel.
 *
 * Why spin: on this VM a futex wakeup costs ~47 us from wake to run
 * (FACTS.md), and an M that runs out of work is often handed some a few
 * microseconds later (a G made or readied on another P). Spinning
 * first makes both sides cheap: the waker sees the sleeper has not
 * gone to the kernel and skips FUTEX_WAKE, and the sleeper needs no
 * wakeup at all. The 1M-parked-Gs bench spent 29% of its time in futex
 * calls without it. The price is at most NOTE_SPIN_NS of CPU per idle
 * transition; an idle runtime still sleeps in the kernel.
 */
bool notesleep_until(struct note *n, int64_t deadline)
{
	return note_wait(n, deadline, NOTE_SPIN_NS);
}

/* For sleepers that wake on a timer anyway (sysmon): no spinning. */
bool notesleep_until_nospin(struct note *n, int64_t deadline)
{
	return note_wait(n, deadline, 0);
}

static bool note_wait(struct note *n, int64_t deadline, int64_t spin_ns)
{
	int64_t spin_until = spin_ns ? nanotime() + spin_ns : 0;
	uint32_t k;
	int i;

	if (deadline >= 0 && deadline < spin_until)
		spin_until = deadline;
	while (spin_until) {
		for (i = 0; i < 64; i++) {
			/* Acquire pairs with notewakeup's release. */
			if (atomic_load_explicit(&n->key, memory_order_acquire) ==
			    NOTE_WOKEN)
				return true;
			cpu_relax();
		}
		if (nanotime() >= spin_until)
			break;
	}
	for (;;) {
		int r;

		k = NOTE_CLEAR;
		if (!atomic_compare_exchange_strong_explicit(&n->key, &k,
				NOTE_KERNEL, memory_order_acquire,
				memory_order_acquire) && k == NOTE_WOKEN)
			return true;
		r = futex_wait(&n->key, NOTE_KERNEL, deadline);
		if (atomic_load_explicit(&n->key, memory_order_acquire) ==
		    NOTE_WOKEN)
			return true;
		if (r == -ETIMEDOUT) {
			/* Back to clear, unless a wakeup slipped in. */
			k = NOTE_KERNEL;
			return !atomic_compare_exchange_strong_explicit(&n->key,
					&k, NOTE_CLEAR, memory_order_acquire,
					memory_order_acquire);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Messages                                                           */
/* ------------------------------------------------------------------ */

static void vprint(const char *fmt, va_list ap)
{
	char buf[1024];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);

	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	if (n > 0 && write(2, buf, n) < 0) {
		/* Nothing left to report it to. */
	}
}

void kgo_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprint(fmt, ap);
	va_end(ap);
}

void kgo_fallback(_Atomic bool *said, const char *fmt, ...)
{
	const char *dbg = getenv("KGO_DEBUG"), *k;
	va_list ap;

	/* KGO_DEBUG=kernel=1, alone or among others (schedtrace=...). */
	for (k = dbg; k && (k = strstr(k, "kernel=")); k++)
		if ((k == dbg || k[-1] == ',') && k[7] > '0' && k[7] <= '9')
			break;
	if (!k || atomic_exchange_explicit(said, true, memory_order_relaxed))
		return;
	kgo_printf("kgo: kernel: ");
	va_start(ap, fmt);
	vprint(fmt, ap);
	va_end(ap);
	kgo_printf("\n");
}

void kgo_throw(const char *msg)
{
	kgo_printf("kgo: fatal error: %s\n", msg);
	abort();
}

void kgo_fatal(const char *fmt, ...)
{
	va_list ap;

	kgo_printf("kgo: ");
	va_start(ap, fmt);
	vprint(fmt, ap);
	va_end(ap);
	kgo_printf("\n");
	_exit(2);
}
