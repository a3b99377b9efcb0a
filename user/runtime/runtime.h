/* SPDX-License-Identifier: MIT */
/*
 * runtime.h - the runtime's private structures: G, M, P, sched, and the
 * internal calls the parts of the runtime make of each other.
 *
 * Vocabulary and rules are Go's (src/runtime/runtime2.go, proc.go); the
 * protocols are explained at the top of proc.c. Every shared field says
 * what guards it. "owner" below means the M that holds the P (for P
 * fields) or the M running the G (for G fields).
 */
#ifndef KGO_RUNTIME_H
#define KGO_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <sys/types.h>

#include "kgo.h"
#include "ctx.h"

/*
 * Plain fields that other threads read without a lock (sysmon reads
 * pp->m and mp->curg, then looks into what they point to): written with
 * a release store and read with an acquire load, as the kernel's
 * smp_store_release/smp_load_acquire, so the reader sees the object
 * initialised. Both are plain moves on x86_64.
 */
#define smp_load_acquire(x)	__atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define smp_store_release(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#define READ_ONCE(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WRITE_ONCE(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)
#define __cacheline_aligned __attribute__((aligned(64)))

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define KGO_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define KGO_TSAN 1
#endif

/* Spin-wait hint to the CPU (and to the other hyperthread). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Fatal invariant break: "function: what", Go's throw(). */
void kgo_throw(const char *msg) __attribute__((noreturn, cold));
/* Fatal error caused by the user (Go's fatal()): message, exit status 2. */
void kgo_fatal(const char *fmt, ...) __attribute__((noreturn, cold, format(printf, 1, 2)));
/* Debug print to stderr without stdio locks (safe on any stack). */
void kgo_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * kgo_fallback() - say what the runtime does instead of a kernel feature
 * this kernel lacks ("kgo: kernel: ..." on stderr), once per @said flag,
 * and only with KGO_DEBUG=kernel=1 (tests read what other KGO_DEBUG
 * settings print): on Debian 12's 6.1 several apply, none an error.
 */
void kgo_fallback(_Atomic bool *said, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * KGO_* variables (env.c, which says the rule). env_long() reads @name as
 * a whole number in [@lo, @hi]: true with *@v set; false when unset or
 * empty, or, after one line "kgo: ignoring NAME=VALUE: why; @instead",
 * when bad. env_parse_long() checks a value found elsewhere (a KGO_DEBUG
 * key), env_check_long() too but only says why in @why; env_flag()
 * reads 0 or 1, @def otherwise; env_warn() prints the line.
 */
bool env_long(const char *name, long lo, long hi, long *v,
	      const char *instead);
bool env_parse_long(const char *name, const char *s, long lo, long hi,
		    long *v, const char *instead);
bool env_check_long(const char *s, long lo, long hi, long *v, char *why,
		    size_t n);
bool env_flag(const char *name, bool def, const char *instead);
void env_warn(const char *name, const char *value, const char *why,
	      const char *instead);

/* ------------------------------------------------------------------ */
/* Low-level locks (lock_futex.c)                                     */
/* ------------------------------------------------------------------ */

/*
 * struct kgo_lock - the runtime's own mutex: spins a little, then sleeps
 * on a futex. It blocks the M, so it only guards short critical sections
 * inside the runtime; user-facing locks (kgo_mutex) park the G instead.
 *
 * unlock() is a plain release store and a load, no locked instruction:
 * whether anyone sleeps is not in the lock word but in a count per
 * bucket of locks (lock_sleepers, global, so never freed under the
 * unlocker), and the unlocker's store-then-load is ordered against the
 * sleeper's count-then-look by an asymmetric fence (lock_futex.c): the
 * rare sleeper pays a membarrier(2), the unlocker a compiler barrier.
 */
struct kgo_lock {
	_Atomic uint32_t key;	/* 0 unlocked, 1 locked */
};
#define KGO_LOCK_INIT	{ 0 }
/* Runtime locks this thread holds: a G is never switched out (nor
 * preempted by a signal) while it holds one. Only this thread writes it;
 * its signal handler reads it, hence volatile. */
extern __thread volatile int kgo_tls_locks
	__attribute__((tls_model("initial-exec")));
void lock_slow(struct kgo_lock *l);
void unlock_wake(struct kgo_lock *l);

/*
 * Sleepers on the locks of each bucket (lock_bucket): a sleeper counts
 * itself with a seq_cst add, unlockers read it relaxed. One line each,
 * written only when an M goes to sleep on a lock.
 */
#define LOCK_BUCKETS	64
struct lock_bucket {
	_Atomic uint32_t sleepers;
} __attribute__((aligned(64)));
extern struct lock_bucket lock_buckets[LOCK_BUCKETS];
/* true: sleepers fence with membarrier(2) and unlock() needs only a
 * compiler barrier; false (no membarrier): unlock() fences itself. Set
 * once, before any thread of the runtime runs (lock_futex.c). */
extern bool lock_asym;

/* The heavy side of an asymmetric fence: membarrier(2), which runs a
 * full barrier in every running thread of the process, so that their
 * plain store-then-load sequences act as if fenced (lock_futex.c). A
 * full fence of our own when lock_asym is false. */
void lock_fence_heavy(void);

/* A full fence. TSan does not take atomic_thread_fence (-Wtsan); a
 * seq_cst read-modify-write is one too (lock xadd, ldaddal). */
static inline void lock_fence_full(void)
{
#ifdef KGO_TSAN
	static _Atomic uint32_t fence_word;

	atomic_fetch_add(&fence_word, 0);
#else
	atomic_thread_fence(memory_order_seq_cst);
#endif
}

static inline struct lock_bucket *lock_bucket(struct kgo_lock *l)
{
	uintptr_t a = (uintptr_t)l;

	return &lock_buckets[(a >> 6) % LOCK_BUCKETS];
}

/*
 * lock()/unlock() - the uncontended case inline, no call: lock() is one
 * locked instruction, unlock() none (a chan_rt round trip takes four of
 * each).
 */
static inline void lock(struct kgo_lock *l)
{
	uint32_t c = 0;

	/* Acquire pairs with unlock's release. */
	if (__builtin_expect(!atomic_compare_exchange_strong_explicit(&l->key,
			&c, 1, memory_order_acquire, memory_order_relaxed), 0))
		lock_slow(l);
	kgo_tls_locks++;
}

static inline void unlock(struct kgo_lock *l)
{
	kgo_tls_locks--;
	/* Release pairs with lock's acquire. */
	atomic_store_explicit(&l->key, 0, memory_order_release);
	/* The store before the load of the sleepers: lock_futex.c, "the
	 * asymmetric fence". */
	if (__builtin_expect(lock_asym, 1))
		atomic_signal_fence(memory_order_seq_cst);
	else
		lock_fence_full();
	if (__builtin_expect(atomic_load_explicit(&lock_bucket(l)->sleepers,
			memory_order_relaxed) != 0, 0))
		unlock_wake(l);
}

/*
 * struct note - a one-shot event an M sleeps on (Go's note): notesleep
 * blocks the calling thread until notewakeup; noteclear re-arms it. At
 * most one sleeper and one waker per arming.
 */
struct note {
	_Atomic uint32_t key;
};
void noteclear(struct note *n);
void notewakeup(struct note *n);
void notesleep(struct note *n);
/* Sleep until woken or @deadline (CLOCK_MONOTONIC ns, < 0: forever).
 * Return: true if woken. */
bool notesleep_until(struct note *n, int64_t deadline);
/* A note's key while its sleeper waits in the kernel (futex value). */
#define NOTE_KERNEL_VALUE 2
bool note_enter_kernel(struct note *n);
bool note_leave_kernel(struct note *n);
bool note_is_woken(struct note *n);
/* As note_enter_kernel/_leave_kernel for a sleeper in epoll_wait (io.c,
 * netpoll_sleep): notewakeup calls io_netpoll_break(). */
bool note_enter_poll(struct note *n);
bool note_leave_poll(struct note *n);
void io_netpoll_break(void);
/* The same without the short spin before sleeping (see lock_futex.c):
 * for threads that wake on a timer anyway, such as sysmon. */
bool notesleep_until_nospin(struct note *n, int64_t deadline);

int futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t deadline);
void futex_wake(_Atomic uint32_t *addr, int n);

int64_t nanotime(void);

/* ------------------------------------------------------------------ */
/* G, M, P                                                            */
/* ------------------------------------------------------------------ */

/*
 * G states. Who owns the G's stack in each, and what is valid:
 *  G_IDLE	just allocated, not yet initialised; nobody runs it.
 *  G_RUNNABLE	on a run queue; ctx holds its saved state; not running.
 *  G_RUNNING	owns its stack; gp->m is the M running it, which holds a P.
 *  G_SYSCALL	running a syscall: owns its stack, gp->m valid, and the M
 *		may or may not still hold a P.
 *  G_WAITING	parked (gopark); on some wait list; ctx valid; the party
 *		that calls goready() takes ownership.
 *  G_DEAD	finished; on a free list, stack kept for reuse.
 *  G_PREEMPTED	stopped by a preemption, goes straight back on a runq.
 */
enum gstatus {
	G_IDLE = 0,
	G_RUNNABLE,
	G_RUNNING,
	G_SYSCALL,
	G_WAITING,
	G_DEAD,
	G_PREEMPTED,
};

/* Why a G is waiting: shown in the deadlock report and scheddetail. */
enum waitreason {
	WAIT_NONE = 0,
	WAIT_CHAN_RECV,
	WAIT_CHAN_SEND,
	WAIT_SELECT,
	WAIT_SELECT_NO_CASES,
	WAIT_MUTEX,
	WAIT_RWMUTEX_R,
	WAIT_RWMUTEX_W,
	WAIT_COND,
	WAIT_WG,
	WAIT_SLEEP,
	WAIT_SEMA,
	WAIT_IO,
	WAIT_LOCKED_M,
	WAIT_NREASONS,
};
extern const char *const waitreason_str[WAIT_NREASONS];
/* enum gstatus by name: "waiting", for messages and dumps. */
extern const char *const gstatus_str[];

struct m;
struct p;

/*
 * struct stack - a G's stack slot: [lo, hi) is usable stack; below lo
 * lies the guard region [guard, lo). The struct g lives at the top of
 * the slot, just above hi (see stack.c for the drawing).
 */
struct stack {
	uintptr_t lo, hi;
	uintptr_t guard;
	size_t size;		/* requested size, for messages */
	uint8_t cls;		/* size class index (stack.c) */
};

/*
 * struct sudog - a G waiting on something (a channel, a semaphore), on
 * that thing's wait list. Lives on the waiting G's stack while it waits;
 * guarded by the lock of the list it is on.
 */
struct sudog {
	struct g *g;
	struct sudog *next, *prev;
	void *elem;		/* data to send, or where to receive */
	void *c;		/* the channel (or sema address) waited on */
	uintptr_t addr;		/* sema: address waited on */
	int64_t ticket;		/* sema: handoff / starvation bookkeeping */
	int64_t acquiretime;
	bool is_select;		/* part of a select; g->selectdone arbitrates */
	bool success;		/* woken by a successful operation (not close) */
	bool retry;		/* chan: woken to try the operation again
				 * (chan.h, settle) */
	struct sudog *waitlink;	/* select: the G's list of sudogs */
	struct note *note;	/* g NULL: a thread that is not a G sleeps
				 * here (sema.c, sync.c: sudog_ready) */
};

struct g {
	struct kgo_ctx ctx;		/* saved state when not running; owner */
	struct stack stack;		/* immutable while the G exists */
	uint64_t goid;			/* set at creation; immutable */
	_Atomic uint32_t status;	/* enum gstatus; CAS by whoever changes it */
	struct m *m;			/* M running it; owner */
	struct m *lockedm;		/* kgo_lock_m: the M it is wired to */
	uint32_t lockedcount;		/* nesting of kgo_lock_m; owner */
	struct g *schedlink;		/* run queue / free list link; queue's lock */
	void (*fn)(void *);		/* entry point; set before first run */
	void *arg;
	uint8_t waitreason;		/* enum waitreason; set in gopark */
	_Atomic bool preempt;		/* preemption requested; any thread sets */
	_Atomic uint32_t selectdone;	/* select: 0 until a case wins; CAS */
	struct sudog *waiting;		/* select: sudogs, in lock order */
	void *param;			/* passed by the waker (the winning sudog) */
	int64_t waitsince;		/* when it parked (ns), for the dump */
	struct g *alllink, *allprev;	/* allgs list; sched.allglock */
	bool is_main;			/* the main G of kgo_run */
	bool abandoned;			/* its M was abandoned in a syscall at
					 * kgo_run's end: stack kept; m0 */
	_Atomic bool unstarted;		/* ctx not made yet: newproc leaves the
					 * stack untouched (proc.c, gstart) */
	uint64_t fpctl;			/* creator's FP control, for gstart */
	void *timer;			/* kgo_sleep's timer (timer.c) */
	uint64_t slice_start;		/* schedtick seen by sysmon; sysmon */
	void *fake_stack;		/* ASan fiber bookkeeping */
	void *tsan_fiber;		/* TSan fiber */
	/* kgo_set_name: valid while name_goid == goid (traceback.c). */
	char name[16];
	_Atomic uint64_t name_goid;
};

/* P states. */
enum pstatus {
	P_IDLE = 0,	/* on sched.pidle, no M */
	P_RUNNING,	/* owned by an M running user code or the scheduler */
	P_SYSCALL,	/* its M is in a syscall; sysmon may take it */
	P_STOPPED,	/* runtime shutting down */
};

/*
 * struct timer - a one-shot timer on a P's heap (timer.c). fn runs on
 * whichever M runs the heap, with no runtime lock held, and must not
 * park (it may goready()).
 */
struct timer {
	int64_t when;			/* guarded by the heap's lock */
	void (*fn)(void *arg, uint64_t seq);
	void *arg;
	uint64_t seq;			/* passed to fn; lets fn see staleness */
	int32_t idx;			/* heap index, -1 when not in a heap */
	struct p *pp;			/* heap it is in; guarded by pp->timers.lock */
};

struct timers {
	struct kgo_lock lock;
	struct timer **heap;		/* 4-ary min-heap on when; lock */
	int32_t len, cap;		/* lock */
	_Atomic int64_t next;		/* earliest when, INT64_MAX if none;
					 * written under lock, read without */
	_Atomic uint64_t armed;		/* timer_add()s; written under lock */
};

#define RUNQ_SIZE 256
#define GFREE_LOCAL_MAX 64

struct p {
	int32_t id;
	_Atomic uint32_t status;	/* enum pstatus; CAS (syscall handoff) */
	struct m *m;			/* owner M, NULL when idle; owner/sched.lock;
					 * smp_store_release/smp_load_acquire */
	struct p *link;			/* sched.pidle list; sched.lock */
	/* ++ per time slice: per G run that does not inherit its slice
	 * from the G that readied it (proc.c, "Time slices and
	 * fairness"); sysmon and the BPF tick time a slice by it. Owner
	 * writes. */
	_Atomic uint64_t schedtick;
	_Atomic int64_t preempted_at;	/* when its G last gave way to a
					 * preemption (ns); owner writes,
					 * sysmon reads (relaxed: a hint) */
	_Atomic uint64_t syscalltick;	/* ++ per syscall; owner writes */
	/* The thread in the current syscall (sysmon asks /proc whether it
	 * sleeps there). Owner writes in entersyscall; relaxed: a hint
	 * that sysmon checks against syscalltick. */
	_Atomic pid_t syscalltid;
	/* A G went to runnext without a wakep (proc.c, "Deferred
	 * wakeups"): 1 just now, 2 armed by the readier's next runtime
	 * call. Owner writes (sysmon clears it after its own wakep); relaxed:
	 * a hint, never a correctness condition. */
	_Atomic uint8_t wakep_due;

	/* Local run queue (Go's runq): a ring the owner pushes at tail and
	 * pops at head, thieves pop at head with a CAS. runnext is the G
	 * readied by the running G, run next, inheriting its time slice. */
	_Atomic uint32_t runqhead __cacheline_aligned;	/* CAS by all */
	_Atomic uint32_t runqtail;	/* owner, store-release */
	_Atomic(struct g *) runq[RUNQ_SIZE];
	_Atomic(struct g *) runnext;	/* owner: plain or CAS, thieves:
					 * CAS (proc.c, top: "runnext
					 * without a locked instruction") */
	_Atomic uint8_t runnext_owning;	/* owner: inside its plain access */
	_Atomic uint32_t runnext_thieves; /* thieves at runnext; locked add */

	/* Dead Gs with their stacks, for reuse (default size only); owner. */
	struct g *gfree __cacheline_aligned;
	int32_t ngfree;

	struct timers timers;

	/* Statistics; owner writes, anyone reads (relaxed). */
	_Atomic uint64_t nsteal;
	/* Reads and writes done by the RWF_NOWAIT fast path; owner writes
	 * (a shared counter cost 2% of the pread bench in line bouncing). */
	_Atomic uint64_t io_nowait;
	/* Recvs that skipped their MSG_DONTWAIT try (io.c, "Drained
	 * sockets"); owner writes, as io_nowait. */
	_Atomic uint64_t net_skipped;
	_Atomic uint64_t nglobal;
	/* ++ per switch to a G, runnext included: the fairness rule counts
	 * these (proc.c, "Time slices and fairness"). */
	_Atomic uint64_t nswitch;
	/* nswitch when findrunnable last looked at the global and local
	 * queues before runnext; owner only. */
	uint64_t fairtick;
	_Atomic uint64_t ngexit;	/* Gs that finished on this P */
	/* Of those, freed by the G they switched straight to (kgo_exit's
	 * direct switch) rather than on g0. */
	_Atomic uint64_t ngexit_direct;
	/* Gs made on this P. Live Gs are the sum over the Ps of gs_created
	 * - ngexit: one shared counter, written by every kgo_go and every
	 * exit, moved its line between the CPUs twice per G at P=2. */
	_Atomic uint64_t gs_created;
	uint64_t goidcache, goidcacheend;	/* batch of G ids; owner */

	/* Per-P io state (io.c) hangs here when it exists. */
	void *io;
} __cacheline_aligned;

struct m {
	struct kgo_ctx g0ctx;		/* the scheduler's context; owner */
	struct g *curg;			/* G running, NULL on g0; owner;
					 * smp_store_release/smp_load_acquire */
	struct p *p;			/* attached P; owner */
	struct p *nextp;		/* P to take on wakeup; waker, then owner */
	struct p *oldp;			/* P before a syscall; owner */
	int32_t id;
	pid_t tid;
	pthread_t thread;
	bool spinning;			/* looking for work, counted in
					 * sched.nmspinning; owner */
	bool is_m0;			/* never set: kgo_run's thread is no M
					 * (proc.c, run) */
	bool exited;
	bool lockedidle;		/* asleep in stoplockedm, no wakeup
					 * owed yet; sched.lock */
	bool lockedwoken;		/* startlockedm woke it before it
					 * got to sleep; sched.lock */
	struct m *schedlink;		/* sched.midle; sched.lock */
	struct m *alllink;		/* sched.allm; sched.lock */
	struct note park;		/* sleeps here when idle */
	struct g *lockedg;		/* G wired by kgo_lock_m */
	/* The probes' kick (proc.c, "Handoff from the kernel"): enum
	 * m_kick; stopm arms it, the SIGURG handler on this thread and the
	 * wakers of idle Ms race for it by exchange. kickp: the P the kick
	 * names; handler, then owner. */
	_Atomic uint32_t kick;
	struct p *kickp;
	struct p *kickp2;		/* a second kick's P (proc.c, "Two
					 * kicks"); handler, then owner */
	/* proc.c, "Kicks to an M awake": kick_keep is up from stopm until
	 * the M's next G runs (owner); kickp_late, a kick's P that the M
	 * then hands on itself (handler, then owner: one thread). */
	volatile bool kick_keep;
	struct p *_Atomic kickp_late;

	/* What the G that switched straight to another (direct_switch)
	 * left for the other side to do: requeue it, park it, or free it
	 * (enum switch_why in proc.c). owner. */
	struct g *after_g;
	uint8_t after_why;

	/* What to do on g0 after the G switched out (mcall). */
	void (*mcall_fn)(struct g *gp);
	struct g *mcall_g;		/* the G that called mcall */
	bool (*park_unlock)(struct g *gp, void *arg);
	void *park_arg;

	void *altstack;			/* sigaltstack for overflow reports */

	/* Abandoning Ms at kgo_run's end (proc.c, "Abandoning Ms"). */
	_Atomic uint32_t insyscall;	/* 1: in a syscall window, touching
					 * nothing of the runtime; owner,
					 * store-release (m0 loads) */
	_Atomic uint32_t abandon;	/* enum m_abandon; m0 stores REQ, then
					 * m0 and owner race by CAS */
	bool abandoned;			/* m0 left it behind; m0 only */
	_Atomic bool in_runtime;	/* preempt safety: runtime code running */
	_Atomic int32_t locks;		/* runtime locks held (no preemption) */
	uint32_t fastrand[2];
	void *io;			/* per-M io state (io.c) */
	void *tsan_fiber;
	void *asan_stack_bottom;
	size_t asan_stack_size;
	void *asan_fake;
};

/*
 * struct sched - global scheduler state. Fields marked "lock" are
 * guarded by sched.lock.
 */
struct sched {
	struct kgo_lock lock;

	struct m *midle;		/* idle Ms; lock */
	int32_t nmidle;			/* lock */
	int32_t nmidlelocked;		/* Ms idle because their G is locked; lock */
	int32_t mnext;			/* Ms created, next id; lock */
	int32_t maxmcount;		/* cap on Ms */
	int32_t nmsys;			/* Ms not counted for deadlock (sysmon) */
	int32_t nmexited;		/* lock */
	struct m *allm;			/* every M; lock */

	struct p *pidle;		/* idle Ps; lock */
	_Atomic int32_t npidle;		/* written under lock, read anywhere */
	_Atomic int32_t nmspinning;	/* Ms spinning for work */

	/* Global run queue; lock (runqsize also read without it). */
	struct g *runqhead, *runqtail;
	_Atomic int32_t runqsize;

	/* Global free Gs (dead, stack kept); gflock. */
	struct kgo_lock gflock;
	struct g *gfree;
	int32_t ngfree;			/* gflock; READ_ONCE outside it */
	/* Dead Gs gfree_scavenge took off gfree and has not yet given to
	 * the stack pool: counted under gflock as they leave the list,
	 * uncounted once stack_free_g returned. newproc waits for them
	 * before it says -ENOMEM. */
	_Atomic int32_t gscavenging;

	struct kgo_lock allglock;
	struct g *allgs;		/* every G with a stack; allglock */

	_Atomic uint64_t goidgen;
	struct p **allp;
	int32_t gomaxprocs;
	size_t stack_size;

	/* The idle M that sleeps with a timeout until the next timer (Go's
	 * blocking netpoll). Guarded by lock; until also read without. */
	struct m *sleeper;
	_Atomic int64_t sleeper_until;	/* 0: none */

	_Atomic bool exiting;		/* main G returned */
	struct g *maing;
	struct note main_done;		/* main G returned: wakes kgo_run's
					 * thread, which runs no G */
	_Atomic uint32_t exitseq;	/* ++ by each M that exits; kgo_run's
					 * thread waits on it (futex) */
	int32_t nmrunning_shutdown;

	/* Syscalls and io outstanding (for checkdead). */
	_Atomic int64_t nsyscall;	/* Gs in G_SYSCALL */
	_Atomic int64_t nio;		/* Gs waiting for an io completion */

	/* Counters for kgo_stats. */
	_Atomic uint64_t gs_created;
	_Atomic uint64_t gs_created_nop; /* by threads with no P (kgo_go) */
	_Atomic uint64_t handoffs, handoffs_kernel;
	_Atomic uint64_t handoffs_m;	/* ... taken by the kicked idle M */
	_Atomic uint64_t preempt_sync, preempt_async;
	_Atomic uint64_t io_nowait_hits, io_uring_ops, io_fallback_ops;
	_Atomic uint64_t net_tries_skipped;	/* the Ps' net_skipped */

	/* The idle M the BPF probes kick to take a blocked M's P: the
	 * head of midle, 0: none (or the kick goes to sysmon: kick_m off).
	 * sched.lock; read by the probes from this process's memory. */
	int32_t kick_tid;
	bool kick_m;			/* set by observe_start */

	int observe;			/* enum kgo_observe in force */
	const char *observe_why;
	int64_t slice_ns;		/* preemption slice */
	bool running;			/* between kgo_run's start and end */
};

extern struct sched sched;

/*
 * Threads that are not Gs ("foreign" pthreads) may use the sync types
 * and channels (kgo.h, "Calls from other threads"). Once one has, a
 * state with every G asleep is no deadlock: that thread may wake them
 * at any time, so checkdead stays quiet from then on, for the life of
 * the process (Go's checkdead is as quiet once cgo threads exist).
 * Set with a relaxed store before the call acts, so that a G that
 * parks behind what the thread did (a lock it took) finds it set.
 */
extern _Atomic bool kgo_foreign_seen;
extern __thread struct m *kgo_tls_m __attribute__((tls_model("initial-exec")));

/*
 * count_on_p() - add 1 to @own, a counter of a P that only its owner
 * writes (a plain load and store: no locked instruction), or, for a
 * caller with no P (@own NULL), to @shared with an atomic add.
 */
static inline void count_on_p(_Atomic uint64_t *own, _Atomic uint64_t *shared)
{
	if (own)
		atomic_store_explicit(own, atomic_load_explicit(own,
				      memory_order_relaxed) + 1,
				      memory_order_relaxed);
	else
		atomic_fetch_add_explicit(shared, 1, memory_order_relaxed);
}

/*
 * Foreign threads that are counted instead (Go's extra Ms of cgo
 * callbacks): one registered with kgo_foreign_enter, one waiting inside
 * a kgo call, and the runtime's signal thread while a channel is
 * notified (signal.c). kgo_foreign_n is their number (atomic); while
 * it is not 0 checkdead stays quiet, and once it falls back to 0 a
 * deadlock is reported again. Such a thread has kgo_tls_foreign > 0 and
 * does not set kgo_foreign_seen.
 */
extern _Atomic int kgo_foreign_n;
extern __thread int kgo_tls_foreign __attribute__((tls_model("initial-exec")));

/* foreign_count() - add @delta (+1, -1) to kgo_foreign_n; when it falls
 * to 0, look for a deadlock at once (every M may be idle already, and
 * none would look again). Any thread, no lock held. */
void foreign_count(int delta);

static inline void foreign_note(void)
{
	if (unlikely(!kgo_tls_m) && !kgo_tls_foreign &&
	    !atomic_load_explicit(&kgo_foreign_seen, memory_order_relaxed))
		atomic_store_explicit(&kgo_foreign_seen, true,
				      memory_order_relaxed);
}

/* Wake the waiter of sudog @s taken off its list: a G, or a thread that
 * is not one (s->note). s may be gone once this returns. */
void sudog_ready(struct sudog *s);

/* ------------------------------------------------------------------ */
/* The current M and G                                                 */
/* ------------------------------------------------------------------ */

/*
 * getm() - the M this code runs on. A G may move to another M at every
 * call that can park, so re-read it after one. It is noipa so that the
 * compiler cannot cache the thread-local's address across a switch (the
 * glibc errno trap that DESIGN.md warns about).
 */
struct m *getm(void);
/* getg() - the running G, or NULL on g0 or outside the runtime. */
struct g *getg(void);

/* ------------------------------------------------------------------ */
/* Scheduler (proc.c)                                                 */
/* ------------------------------------------------------------------ */

/*
 * gopark() - park the running G. On g0, unlockf(gp, arg) is called (if
 * not NULL); if it returns false the G is made runnable again at once.
 * This is how a G releases the lock of the wait list it put itself on
 * only after it is safely off its stack: a waker that takes the lock and
 * calls goready() then finds the G already switched out.
 */
void gopark(bool (*unlockf)(struct g *gp, void *arg), void *arg,
	    enum waitreason reason);
/* goparkunlock() - gopark() releasing the runtime lock l. */
void goparkunlock(struct kgo_lock *l, enum waitreason reason);
/* goready() - make a G parked with gopark() runnable (runnext of the
 * caller's P when it has one, so it runs soon; the global queue if not). */
void goready(struct g *gp);
/* Same, but to the tail of the local run queue (fairness: no runnext). */
void goready_tail(struct g *gp);
/* injectglist() - make the parked Gs on @list (linked by schedlink)
 * runnable from a thread that may hold no P (io completions reaped by
 * an idle M or sysmon): all onto the global queue, under one lock. The
 * caller gets them run: takes a P itself, or wakep(). */
void injectglist(struct g *list);

/* newproc_g0() - start fn(arg) as a new G from g0 (a timer's fn, where
 * kgo_go refuses: no current G); the M must hold a P, as every M that
 * runs timers does. Return: 0, -ENOMEM. */
int newproc_g0(void (*fn)(void *), void *arg);

/* m->abandon (proc.c, "Abandoning Ms"). */
enum m_abandon {
	ABANDON_NONE = 0,
	ABANDON_REQ,		/* m0 asks the M to stop for good */
	ABANDON_GONE,		/* m0 left it in its syscall: it parks on
				 * return, touching nothing */
	ABANDON_PARKED,		/* it parked for good while m0 waited */
};
/* The SIGURG handler, when mp's G is blocked in a system call of its
 * own and m0 asked for mp (preempt.c decides): park the thread for good.
 * Returns only if m0 did not ask. */
void m_park_abandoned(struct m *mp);

/* Wake an idle M if there is an idle P and nobody spinning (Go's wakep). */
void wakep(void);
/* A timer at @when was added: make sure someone will run it in time. */
void wake_for_timer(int64_t when);

/* runqempty() - pp has no G in its local queue nor in runnext (a
 * consistent snapshot); any thread may ask. */
bool runqempty(struct p *pp);

/* Take a P that is in P_SYSCALL from its M and hand it off (sysmon's
 * retake). Return: true if this call took it. */
bool retake_syscall(struct p *pp, bool kernel_observed);
/* Hand pp (not owned by anyone) to an M if there is work for it, else
 * put it on the idle list (Go's handoffp). */
void handoffp(struct p *pp);
/* The BPF probes' kick reached M thread of this process @mp (its SIGURG
 * handler, observe_bpf.c) naming @pp: KICK_TOOK if an idle M took it
 * on, KICK_SECOND if a kicked one keeps it to hand on (proc.c, "Two
 * kicks"), KICK_REFUSED if the caller must hand it to sysmon.
 * Async-signal-safe. */
enum kick_take { KICK_REFUSED, KICK_TOOK, KICK_SECOND };
enum kick_take kick_m_take(struct m *mp, struct p *pp);
/* In the handler: keep a kick that found @mp awake, for @mp to hand on
 * (proc.c, "Kicks to an M awake")? false: sysmon's to hand on. */
bool kick_m_keep(struct m *mp, struct p *pp);
/* bpf mode: is @pp in P_SYSCALL with its M seen blocked in that call by
 * the kernel? (observe_bpf.c; false in poll mode.) */
bool observe_syscall_blocked(struct p *pp, int64_t now);
/* Is @pp one of this run's Ps? Async-signal-safe. */
bool p_valid(const struct p *pp);
/* Called by entersyscall after the P went P_SYSCALL (sysmon.c): wakes
 * sysmon from its deep sleep so that it can retake the P. */
void syscall_entered(struct p *pp);

/* sysmon: give memory of surplus dead Gs back to the kernel (proc.c). */
void gfree_scavenge(int64_t now);

/* The monitor thread (sysmon.c). sysmon_start/stop also start and stop
 * asynchronous preemption and KGO_TRACE. */
int sysmon_start(void);
void sysmon_stop(void);
/* sysmon sleeps deeply while every P is idle; whoever takes a P off the
 * idle list then calls sysmon_wake() (sched.lock may be held: sysmon's
 * lock is after it). seq_cst against sched.npidle. */
extern _Atomic bool sysmon_sleeping;
/* bpf mode: sysmon left blocked calls untimed while a P idled; the
 * taker of the last idle P calls sysmon_untimed_wake (sysmon.c,
 * "Blocked calls beside an idle P"). May be called with sched.lock. */
extern _Atomic bool sysmon_untimed;
void sysmon_untimed_wake(void);
void sysmon_wake(void);
/* The same, after a seq_cst store the sleeper looks at (cheap when it
 * is awake: one load). */
void sysmon_wake_if_sleeping(void);
/* The same for a new netpoller wait, which also ends a sleep of sysmon
 * past its 10 ms period (bpf mode: sysmon.c, sysmon_long_sleep). */
void sysmon_wake_for_netpoll(void);
/* bpf mode: sysmon sleeps long, and the next deferred wakeup wakes it
 * (sysmon.c, "Deferred wakeups in bpf mode"). */
extern _Atomic bool sysmon_wakep_armed;
void sysmon_wakep_kick(void);
/* ready(), after it marked p->wakep_due: the store before the load of
 * the flag (sysmon fences with membarrier, as the lock sleepers do). */
static inline void sysmon_wakep_deferred(void)
{
	if (__builtin_expect(lock_asym, 1))
		atomic_signal_fence(memory_order_seq_cst);
	else
		lock_fence_full();
	if (__builtin_expect(atomic_load_explicit(&sysmon_wakep_armed,
			memory_order_relaxed), 0))
		sysmon_wakep_kick();
}
/* sysmon's and preemption's fields of kgo_stats. */
void sysmon_stats(struct kgo_stats *st);
/* Name a new M's thread after kgo_run's (sysmon's name is inherited by
 * the Ms it creates otherwise). */
void sysmon_minit(struct m *mp);

/* Preemption point: yields if the G was asked to (cooperative
 * preemption). Call it on the paths of public calls that do not park;
 * it does nothing while a runtime lock is held. */
void kgo_checkpreempt(void);
/* sysmon: a P's deferred wakeup is still due (proc.c). */
void wakep_overdue(struct p *pp);
/* Switch the running G out to the global run queue, counted as a
 * preemption; @async: from the SIGURG handler (proc.c). */
void gopreempt(bool async);

/* Asynchronous preemption (preempt.c). */
void preempt_init(bool off);
void preempt_fini(void);
bool preempt_async_on(void);
const char *preempt_async_why(void);
uint64_t preempt_refused(void);
/* sysmon: SIGURG to mp, whose G has g->preempt set. */
bool preempt_signal(struct m *mp, int64_t now);
/* sysmon: the table and the SIGURG take-back, without a signal. */
void preempt_tend(int64_t now);
/* kgo_run's end: the same SIGURG, without sysmon's rescan (proc.c,
 * "Abandoning Ms"). */
bool preempt_kick(struct m *mp);

uint32_t fastrand(void);
uint32_t fastrandn(uint32_t n);

/* checkdead - called with sched.lock held when an M goes idle: reports
 * a deadlock (every G asleep with nothing to wake it) and exits 2. */
void checkdead(void);
/* Dump every G with its state and wait reason to stderr. */
void dump_goroutines(void);

/* ------------------------------------------------------------------ */
/* Stacks (stack.c)                                                   */
/* ------------------------------------------------------------------ */

/* Take a stack slot for a G of @size usable bytes: returns the G that
 * lives at the slot's top, zeroed but for g->stack. NULL: -ENOMEM. */
struct g *stack_alloc_g(size_t size);
/* Give a dead G's slot back to the pool (memory released to the kernel). */
void stack_free_g(struct g *gp);
/* Free every slot and chunk: end of kgo_run. */
void stack_release_all(void);
/* gp's slot (NULL: every slot) outlives stack_release_all: a thread
 * abandoned at kgo_run's end still runs on it, or its I/O may still
 * write to it (proc.c, "Abandoning Ms"). */
void stack_keep(struct g *gp);
int stack_init(void);
/* "madv_guard" or "mprotect": how guard pages are made. */
const char *stack_guard_kind(void);
/* If @addr is in the guard of the running G's stack, report the overflow
 * and die; called from the SIGSEGV handler. */
void stack_check_overflow(void *addr);
size_t stack_round(size_t size);

/* ------------------------------------------------------------------ */
/* Timers (timer.c)                                                   */
/* ------------------------------------------------------------------ */

void timers_init(struct timers *ts);
void timers_destroy(struct timers *ts);
/* Arm @t to fire at @when on the current P's heap (any P if none). */
void timer_add(struct timer *t, int64_t when);
/* Disarm; true if it was armed (so fn will not run). */
bool timer_del(struct timer *t);
/* Run pp's timers due by @now; return the next when (INT64_MAX: none). */
int64_t timers_run(struct p *pp, int64_t now);
/* Move pp's timers to the heap of another P (pp is being stopped). */
void timers_move(struct p *from, struct p *to);
/* kgo_stats_get: the timers armed so far (kgo_stats.timers_armed). */
void timers_stats(struct kgo_stats *st);

/* ------------------------------------------------------------------ */
/* Semaphores (sema.c): Go's semacquire/semrelease on an address.     */
/* ------------------------------------------------------------------ */

void semacquire(_Atomic uint32_t *addr, bool lifo, enum waitreason r);
/* Return: 0, or -ETIMEDOUT when @deadline passed first. */
int semacquire_until(_Atomic uint32_t *addr, bool lifo, enum waitreason r,
		     int64_t deadline);
void semrelease(_Atomic uint32_t *addr, bool handoff);

/* ------------------------------------------------------------------ */
/* Signals (signal.c)                                                 */
/* ------------------------------------------------------------------ */

int signals_init(void);
void signals_fini(void);
int signals_minit(struct m *mp);
void signals_mexit(struct m *mp);
/* The signal mask every M runs with (set by signals_minit). */
const sigset_t *signals_mmask(void);

/* ------------------------------------------------------------------ */
/* I/O through io_uring (io.c): the scheduler's hooks                 */
/* ------------------------------------------------------------------ */

/* kgo_run, before any M runs: read KGO_IOURING, KGO_IOWQ_MAX. */
void io_init(void);
/* kgo_run, after every M left: the rings are closed by then. */
void io_fini(void);
/* findrunnable, first thing: reap mp's ring onto its P, and look at the
 * netpoller when the P has nothing else to run, global queue included. */
void io_poll(struct m *mp);
/* findrunnable, after it took a batch from the global queue for an
 * empty local one: the netpoller's Gs, queued behind the batch. */
void io_poll_net(struct m *mp);
/* What stopm and stoplockedm sleep in instead of notesleep_until(&mp->
 * park, deadline): the M's ring when it has one, so that completions
 * wake it too. @wake_on_io: also return false after readying Gs onto
 * the global queue (findrunnable then takes a P to run them). */
bool io_notesleep(struct m *mp, int64_t deadline, bool wake_on_io);
/* mexit, on the M's thread: cancel and drain the ring, close it. */
void io_mexit(struct m *mp);
/* kgo_run's end, m0: mp was abandoned and will never drain its ring:
 * take it off the list, leave it open. Return: true if Gs' operations
 * are still in flight in it (the caller keeps every stack). */
bool io_abandon(struct m *mp);
/* sysmon, every round: reap rings nobody looked at for 10 ms. */
void io_sysmon(int64_t now);
/* Gs wait on the netpoller that sysmon has not checked yet (io.c,
 * netpoll_check): sysmon must not sleep deeply. */
bool io_netpoll_unchecked(void);
/* kgo_stats_get: the io_* fields kept by io.c. */
void io_stats(struct kgo_stats *st);

/* ------------------------------------------------------------------ */
/* Context switch wrappers with sanitizer bookkeeping (proc.c)        */
/* ------------------------------------------------------------------ */

void kgo_switch(struct kgo_ctx *from, struct kgo_ctx *to,
		struct g *from_g, struct g *to_g);

#endif /* KGO_RUNTIME_H */
