/* SPDX-License-Identifier: MIT */
/*
 * kgo.h - the one header a kgo user includes.
 *
 * kgo is a Go-style G/M/P runtime for C on Linux: goroutines (G) run on
 * OS threads (M) that hold processors (P). Blocking file and network
 * calls go through io_uring, so a G parks instead of its M blocking, and
 * (where the BPF probes are loaded) the kernel tells the runtime when one
 * of its threads blocks, so that the P is handed on at once.
 *
 * Conventions (liburing's and the kernel's): a call that acts returns 0
 * or a count on success and -errno on failure, and never sets errno;
 * predicates return bool; deadlines are absolute CLOCK_MONOTONIC
 * nanoseconds (kgo_now() + delta), a negative deadline waits forever and
 * a deadline of 0 does not wait at all.
 *
 * What user code must not keep across a call that can park (any kgo_*
 * call that can block, kgo_yield, or an asynchronous preemption): the
 * G may resume on another OS thread. So do not keep the address of a
 * thread-local variable (errno included: read errno right after the call
 * that set it, never across a kgo call), a pthread_self() value, or a
 * thread-bound resource (a held pthread mutex, a thread's signal mask)
 * across such a call. kgo_lock_m() pins the G to its M when that is
 * needed (Go's runtime.LockOSThread).
 *
 * Preemption. A G that runs longer than kgo_config.preempt_slice_us
 * (10 ms) is asked to stop: at its next kgo call, or at once by SIGURG
 * if it is running the program's own code (not libc, not the runtime),
 * holds no runtime lock, and is not in a function that libc, ld.so,
 * libgcc_s or libstdc++ called back (a dl_iterate_phdr callback, a
 * fopencookie function: they run under a lock of libc's), unless
 * qsort, qsort_r, bsearch, lfind, lsearch or the tsearch family called
 * it (they hold no lock: a long comparator stays preemptible). The
 * signal's handler saves and restores every register, SIMD included,
 * and errno's value goes with the G to the thread it resumes on. Not
 * the address of a thread-local: code that computed errno's (compilers
 * do, once per function: it is const in glibc) or another __thread
 * variable's before the preemption and uses it after may see the old
 * thread's; kgo_lock_m() keeps a G on one thread. It is SA_RESTART: a
 * system call the program makes directly may fail with EINTR only if
 * Linux never restarts it (poll, epoll_wait, nanosleep, select, ...),
 * as in Go; retry those. A G preempted while it holds a lock owned by
 * its thread (a pthread mutex, flockfile) keeps it while another G
 * runs on that thread: use kgo_mutex, or kgo_lock_m(). The same goes
 * for kgo calls inside a callback that libc runs under its lock: any
 * of them may switch the G out (it parks, or stops at the preemption
 * check on its way out): make none there. The signal frame is written
 * on the G's stack: keep ~5 KiB of it free (AT_MINSIGSTKSZ and the
 * handler). A G whose stack is used deeper than 1 MiB is preempted only
 * at its kgo calls. Off under ThreadSanitizer, in fully static
 * programs (libc's code cannot be told from the program's) and with
 * KGO_DEBUG=asyncpreemptoff=1; see kgo_stats.async_preempt.
 *
 * SIGURG. While kgo runs, the runtime's handler owns SIGURG, and passes
 * every SIGURG on to the handler the program installed, before
 * kgo_run or during it (with sigaction: the runtime takes SIGURG back
 * at its next preemption signal, and keeps passing them on). A SIGURG
 * the program sends (kill, tgkill, pthread_kill, sigqueue, or the
 * kernel for F_SETOWN urgent data) always reaches its handler; so do
 * some of the runtime's own (si_code SI_QUEUE, from this process), as
 * in Go: a standard signal is pending once per thread, so the
 * program's may have merged with one of the runtime's. A program's
 * SIGURG handler must therefore expect spurious calls. When kgo_run
 * returns, the program's handler is in place again.
 *
 * Calls from other threads. A thread that is not a G (one the program
 * made itself, or any thread while no kgo_run is running) may call kgo:
 *  - the sync types (kgo_mutex, kgo_rwmutex, kgo_cond, kgo_wg,
 *    kgo_once) work and, where they wait, block that thread (a G waits
 *    by parking, as always): Gs and threads may share them. A G waiting
 *    for a thread is readied by the thread's unlock, done or signal.
 *  - channel sends and receives work and, where they wait, block that
 *    thread until a G (or another thread) completes them, closes the
 *    channel or the deadline passes, with or without a runtime running
 *    (a thread sending into a server's channel waits for the G that
 *    receives). A NULL channel and a kgo_select that would wait return
 *    -EPERM (deadline 0 still gives -EAGAIN, a past one -ETIMEDOUT).
 *  - kgo_go and kgo_go_sized start the G while a kgo_run runs (its main
 *    has not returned), -EPERM otherwise.
 *  - kgo_sleep and kgo_sleep_until return -EPERM; kgo_yield, kgo_lock_m
 *    and kgo_unlock_m do nothing; kgo_self is 0.
 *  - kgo_syscall_begin/_end do nothing, kgo_syscall is syscall(2)
 *    returning -errno, and the file and network calls are the plain
 *    system calls, blocking the thread (of the deadlines, only
 *    kgo_poll's is kept there).
 * Once such a thread has used a sync type, a channel or kgo_go, the
 * deadlock report ("all goroutines are asleep") is off for good: that
 * thread may wake the Gs at any time (as in Go once cgo threads exist).
 * A thread that registers with kgo_foreign_enter() instead is counted
 * only while it is registered: a G waiting for it then is no deadlock,
 * even before its first call, and once every such thread has called
 * kgo_foreign_leave(), a deadlock is reported again.
 */
#ifndef KGO_H
#define KGO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct iovec;
struct statx;

/* ------------------------------------------------------------------ */
/* Running                                                            */
/* ------------------------------------------------------------------ */

enum kgo_observe {
	KGO_OBSERVE_AUTO = 0,	/* the best the machine offers */
	KGO_OBSERVE_BPF = 1,	/* tracing programs on sched_switch/wakeup */
	KGO_OBSERVE_SCX = 2,	/* the sched_ext scheduler */
	KGO_OBSERVE_POLL = 3,	/* no kernel help: sysmon polls, as Go does */
};

/**
 * struct kgo_config - how kgo_run() sets the runtime up.
 * @maxprocs:	number of Ps; 0: the CPUs the process may use.
 * @stack_size:	default G stack size in bytes; 0: KGO_STACK_DEFAULT.
 * @observe:	enum kgo_observe.
 * @max_threads: cap on Ms; 0: 10000, as Go's debug.SetMaxThreads.
 * @preempt_slice_us: a G's time slice; 0: 10000 (10 ms, as Go).
 * @reserved:	must be zero; room to grow without breaking the ABI.
 *
 * A zero-initialised struct asks for the defaults.
 */
struct kgo_config {
	int maxprocs;
	size_t stack_size;
	int observe;
	int max_threads;
	int preempt_slice_us;
	long reserved[6];
};

#define KGO_STACK_DEFAULT	(64 * 1024)
#define KGO_STACK_MIN		(16 * 1024)
#define KGO_STACK_MAX		(1024L * 1024 * 1024)

/**
 * kgo_run() - start the runtime and run main_fn(arg) as the main G.
 *
 * main_fn runs as a G on one of the runtime's threads; the calling
 * thread runs no G and waits. kgo_run returns as soon as main_fn
 * returns: the other Gs are abandoned, as when Go's main returns, and
 * those parked or runnable are freed with their stacks. May be called
 * again after it returns, but not from inside a G. Environment
 * variables override @cfg: KGO_MAXPROCS (1..1024; 0: as unset),
 * KGO_OBSERVE (auto, bpf, scx or poll), KGO_DEBUG, KGO_TRACE.
 *
 * A G blocked in a system call is not waited for either (after a grace
 * of 1 ms): its thread (M) is abandoned. A call made through
 * kgo_syscall() or between kgo_syscall_begin/_end (so also the file and
 * network calls when io_uring is not used) goes on; when it returns,
 * its thread parks for good: the G never runs again, and nothing of
 * the runtime, this run's or a later kgo_run's, is touched. Such a
 * call, like an abandoned ring's operation, uses its buffers whenever
 * the kernel gets to it, which may be after kgo_run returned: a write
 * in flight may write what the buffer holds then. A G blocked
 * in a waiting call it made itself (read(2), recv, accept, poll, a
 * sleep..., without kgo_syscall_begin) is stopped by the preemption
 * signal before the call is restarted, so the call takes nothing, and
 * its thread parks there; where that cannot be done (no asynchronous
 * preemption, an uninterruptible sleep, SIGURG blocked, or the call
 * holding its P at kgo_maxprocs() == 1 so that main cannot even
 * return), kgo_run waits for it. An abandoned thread keeps, for the
 * life of the process, its stack, its G's stack (and its chunk of
 * address space), the io_uring ring and operations it had in flight
 * (which keep every stack of that run mapped), and whatever locks it
 * held (a stdio lock taken by an fgets that never returned).
 *
 * KGO_DEBUG is a comma-separated list, with GODEBUG's names:
 * schedtrace=MS prints Go's "SCHED ..." line to stderr every MS ms,
 * scheddetail=1 adds a line per P, M and G; asyncpreemptoff=1 turns
 * SIGURG preemption off; kernel=1 says once what the runtime does
 * instead of each kernel feature it lacks here ("kgo: kernel: ..."; the
 * README's Kernels table lists them); observe=1 prints, at the start,
 * which KGO_OBSERVE mode is in force and why. KGO_OBSERVE=auto|bpf|poll|scx
 * (else @cfg->observe): bpf takes the BPF probes pinned by `kgo-probe
 * load`, or loads them when the process may (root), and falls back to
 * poll saying why once; auto does the same silently; scx is not built
 * yet (poll). Probes pinned that are of another version are not
 * taken: root loads its own, others poll (the reason says which).
 * KGO_PIN_DIR=dir takes the probes pinned in dir instead of
 * /sys/fs/bpf/kgo (kgo-probe pins there too with it set; ignored by
 * set-id programs): tests that run at once use one each.
 * KGO_TRACE=path writes the scheduler's events
 * (Gs created, run, parked, readied, preempted; syscalls; handoffs;
 * steals) to path when kgo_run returns, as Chrome trace-event JSON that
 * ui.perfetto.dev and chrome://tracing open.
 *
 * Mistakes are said, once each: a KGO_* variable set to a bad value (or
 * a bad KGO_DEBUG key) is ignored with one line on stderr that says
 * what is wrong and what is used instead, and the program runs; each bad
 * field of @cfg gets one line, and kgo_run refuses with -EINVAL.
 *
 * When every G waits and nothing can wake them, kgo prints "all
 * goroutines are asleep - deadlock!" and a dump of every G (id, name,
 * wait reason and time, stack with function+offset and file:line where
 * debug info exists) and exits 2, as Go does; SIGQUIT prints the same
 * dump and exits 2 unless the program handles SIGQUIT itself.
 *
 * Return: 0, -EINVAL (NULL main_fn, bad config, reserved fields set),
 * -EBUSY (a runtime is running: called from one of its Gs, or from
 * another thread meanwhile; of two threads that call at once, one runs
 * and the other gets -EBUSY), -ENOMEM, or -errno from thread creation.
 */
int kgo_run(void (*main_fn)(void *), void *arg, const struct kgo_config *cfg);

/* ------------------------------------------------------------------ */
/* Goroutines                                                         */
/* ------------------------------------------------------------------ */

/**
 * kgo_go() - start fn(arg) as a new G with the default stack size.
 * Callable from a G, and from a thread that is no G while a kgo_run runs
 * ("Calls from other threads"). Return: 0, -EINVAL (NULL fn), -ENOMEM,
 * -EPERM (from a thread that is no G: no kgo_run running, or its main
 * has returned; from a G inside kgo_syscall_begin/_end).
 */
int kgo_go(void (*fn)(void *), void *arg);

/**
 * kgo_go_sized() - kgo_go() with a stack of at least @stack_size bytes
 * (rounded up to pages). Return: as kgo_go(), and -EINVAL if @stack_size
 * is below KGO_STACK_MIN or above KGO_STACK_MAX (0 means the default).
 */
int kgo_go_sized(void (*fn)(void *), void *arg, size_t stack_size);

/** kgo_yield() - let other Gs run (Go's runtime.Gosched). */
void kgo_yield(void);

/** kgo_exit() - end the calling G (Go's runtime.Goexit). Does not return.
 * Called from the main G, it ends the main G: kgo_run() returns. */
void kgo_exit(void) __attribute__((noreturn));

/** kgo_self() - this G's id (> 0), or 0 when not called from a G. */
uint64_t kgo_self(void);

/**
 * kgo_set_name() - name the calling G: the name shows in goroutine dumps
 * (the deadlock report, SIGQUIT), in KGO_DEBUG=scheddetail=1 lines and
 * in KGO_TRACE. Copied (at most KGO_NAME_MAX - 1 bytes, longer names are
 * cut); it ends with the G. Return: 0, -EINVAL (NULL name), -EPERM (not
 * called from a G).
 */
int kgo_set_name(const char *name);
#define KGO_NAME_MAX	16

/** kgo_maxprocs() - the number of Ps, or 0 when no runtime is running. */
int kgo_maxprocs(void);

/**
 * kgo_lock_m() - wire the calling G to its current M (thread): until the
 * matching kgo_unlock_m(), the G only runs on this thread and the thread
 * runs no other G (Go's runtime.LockOSThread). Calls nest.
 */
void kgo_lock_m(void);
/** kgo_unlock_m() - undo one kgo_lock_m(). */
void kgo_unlock_m(void);

/* ------------------------------------------------------------------ */
/* Time                                                               */
/* ------------------------------------------------------------------ */

/** kgo_now() - CLOCK_MONOTONIC in nanoseconds. */
int64_t kgo_now(void);

/**
 * kgo_sleep() - park the calling G for at least @ns nanoseconds
 * (ns <= 0 yields). Return: 0, -EPERM outside a G.
 */
int kgo_sleep(int64_t ns);

/** kgo_sleep_until() - park until kgo_now() >= @deadline. A deadline of
 * 0 or in the past returns at once (after a yield for a past one); a
 * negative deadline parks for ever, as the deadline convention says.
 * Return: 0, -EPERM outside a G. */
int kgo_sleep_until(int64_t deadline);

/* ------------------------------------------------------------------ */
/* Timers as channels (Go's time.NewTimer, NewTicker, AfterFunc)      */
/* ------------------------------------------------------------------ */

/*
 * A struct kgo_timer fires once (kgo_timer_after), every period
 * (kgo_ticker_make) or runs a function in a new G (kgo_after_func).
 * The first two deliver on a channel of capacity 1 (kgo_timer_chan)
 * the int64_t kgo_now() at which they fired, by a send that never
 * waits: a tick that finds the previous one still unreceived is
 * dropped, so a slow reader gets the latest tick later, never a
 * backlog (Go's Ticker). The channel takes part in kgo_select like any
 * other.
 *
 * Stop and reset (Go 1.23's rules): once kgo_timer_stop(),
 * kgo_timer_reset(), kgo_ticker_stop() or kgo_ticker_reset() has
 * returned, no value from before the call is received: one already in
 * the channel is taken out. None of them waits for a function started
 * by kgo_after_func.
 *
 * kgo_timer_free() stops and frees any of them, the channel with it;
 * no G may be waiting on the channel then (as kgo_chan_free), and the
 * pointer is invalid after. A timer may be freed after its kgo_run
 * returned, and must be freed to give its memory back: nothing else
 * frees it. Arming needs a running runtime; the calls may be made from
 * any thread while it runs. One struct kgo_timer must not be used by
 * two calls at once when one of them is kgo_timer_free().
 */
struct kgo_timer;
struct kgo_chan;

/**
 * kgo_timer_after() - a timer that sends kgo_now() on its channel once,
 * @ns nanoseconds from now (<= 0: at once). Go's time.NewTimer (and
 * time.After: kgo_timer_chan(kgo_timer_after(ns)), then free it).
 * Return: the timer, or NULL: out of memory, or no runtime running.
 */
struct kgo_timer *kgo_timer_after(int64_t ns);

/**
 * kgo_ticker_make() - a ticker that sends kgo_now() on its channel every
 * @period ns, the first @period from now. Ticks a slow reader misses
 * are dropped, and the following ones stay on the period's grid (Go's
 * time.NewTicker). Return: the ticker, or NULL: @period <= 0, out of
 * memory, or no runtime running.
 */
struct kgo_timer *kgo_ticker_make(int64_t period);

/**
 * kgo_after_func() - in @ns nanoseconds, run fn(arg) in a G of its own
 * (Go's time.AfterFunc). The G is not waited for by anyone. Return: the
 * timer (no channel: kgo_timer_chan() gives NULL), or NULL: NULL @fn,
 * out of memory, or no runtime running.
 */
struct kgo_timer *kgo_after_func(int64_t ns, void (*fn)(void *), void *arg);

/** kgo_timer_chan() - the channel a timer or ticker sends on (elements
 * of sizeof(int64_t)); NULL for kgo_after_func's or a NULL timer. */
struct kgo_chan *kgo_timer_chan(struct kgo_timer *t);

/**
 * kgo_timer_stop() - stop the timer (any kind). Return: 1 if this call
 * stopped it before its value was received (it was armed, or had fired
 * into the channel unreceived: that value is taken out) or before its
 * function was started; 0 if it had already fired and been received,
 * run its function, or been stopped; -EINVAL (NULL).
 */
int kgo_timer_stop(struct kgo_timer *t);

/**
 * kgo_timer_reset() - stop the timer as kgo_timer_stop() does, then arm
 * it to fire once @ns from now (a ticker becomes a one-shot timer; use
 * kgo_ticker_reset to keep it ticking). Return: as kgo_timer_stop()
 * (1: it had been active), -EINVAL (NULL), -EPERM (no runtime running).
 */
int kgo_timer_reset(struct kgo_timer *t, int64_t ns);

/** kgo_ticker_stop() - stop ticking; no tick from before the call is
 * received after it. Return: 0, -EINVAL (NULL). */
int kgo_ticker_stop(struct kgo_timer *t);

/** kgo_ticker_reset() - stop, then tick every @period from now on.
 * Return: 0, -EINVAL (NULL t, @period <= 0), -EPERM (no runtime). */
int kgo_ticker_reset(struct kgo_timer *t, int64_t period);

/** kgo_timer_free() - stop and free (see above). NULL is ignored. */
void kgo_timer_free(struct kgo_timer *t);

/* ------------------------------------------------------------------ */
/* Channels and select                                                */
/* ------------------------------------------------------------------ */

struct kgo_chan;

/** kgo_chan_make() - a channel of @cap elements of @elem_size bytes
 * (cap 0: unbuffered). Return: the channel, or NULL (out of memory, or
 * elem_size * cap overflows). */
struct kgo_chan *kgo_chan_make(size_t elem_size, size_t cap);

/** kgo_chan_send() - send *elem (NULL sends zeros). A value is copied
 * straight to a parked receiver, else into the buffer, else the sender
 * parks. A NULL channel is never ready (Go's nil channel): the send
 * parks for ever. Return: 0, -EPIPE (closed: nothing sent). */
int kgo_chan_send(struct kgo_chan *c, const void *elem);
/** kgo_chan_recv() - receive into elem (may be NULL to discard).
 * Return: 0, -EPIPE (closed and drained; *elem is zeroed). */
int kgo_chan_recv(struct kgo_chan *c, void *elem);
/** Deadline variants. Return also -EAGAIN (deadline 0 and not ready),
 * -ETIMEDOUT (the deadline passed, or had passed at the call), -EPERM
 * (not ready, and the caller is not a G, so cannot park). */
int kgo_chan_send_dl(struct kgo_chan *c, const void *elem, int64_t deadline);
int kgo_chan_recv_dl(struct kgo_chan *c, void *elem, int64_t deadline);
/** kgo_chan_close() - close; wakes every waiter. Return: 0, -EPIPE
 * (already closed), -EINVAL (NULL). */
int kgo_chan_close(struct kgo_chan *c);
/** kgo_chan_free() - free a channel no G is using any more (a G still
 * parked on it is a fatal error). NULL is ignored. */
void kgo_chan_free(struct kgo_chan *c);
size_t kgo_chan_len(struct kgo_chan *c);
size_t kgo_chan_cap(struct kgo_chan *c);

enum { KGO_SEND = 1, KGO_RECV = 2 };

/**
 * struct kgo_case - one case of kgo_select().
 * @ch:		the channel; NULL is never ready, as a nil channel in Go.
 * @op:		KGO_SEND or KGO_RECV.
 * @elem:	the value to send, or where to receive (may be NULL).
 * @closed:	out: this receive saw a closed channel (elem zeroed).
 */
struct kgo_case {
	struct kgo_chan *ch;
	int op;
	void *elem;
	bool closed;
};

/**
 * kgo_select() - run one ready case, chosen uniformly among the ready
 * ones, waiting until @deadline for one to become ready.
 * Return: the index of the case that ran; -EAGAIN (deadline 0 and none
 * ready: Go's default case); -ETIMEDOUT; -EINVAL (bad op, ncases < 0,
 * NULL cases with ncases > 0); -ENOMEM (more than 8 cases with a channel
 * need an allocation); -EPERM (none ready and not called from a G).
 * -EPIPE is never returned: a send case on a closed channel is reported
 * as its index with @closed set, and no value sent. With no case that
 * has a channel, it waits for the deadline only (for ever if negative).
 * A channel may appear in several cases.
 */
int kgo_select(struct kgo_case *cases, int ncases, int64_t deadline);

/* ------------------------------------------------------------------ */
/* Synchronisation: these park the G, never the M (a thread that is   */
/* not a G blocks instead: "Calls from other threads", top of file)   */
/* ------------------------------------------------------------------ */

/*
 * The fields are private; the structs are public so users can embed
 * them and initialise them statically (the *_INIT macros; all-zero
 * memory is also a valid initial state). They are Go's package sync:
 * unlocking what is not locked is a fatal error (message, exit status
 * 2), and none of them may be copied once used. A wait in any of them
 * shows in the deadlock report with its reason.
 */

/**
 * struct kgo_mutex - a mutual exclusion lock (Go's sync.Mutex). Not
 * owned: any G may unlock it. Normally a woken waiter competes with Gs
 * that just arrived; a waiter left waiting more than 1 ms switches the
 * mutex to starvation mode, where unlock hands it to the first waiter,
 * so no waiter is passed over for ever.
 */
struct kgo_mutex {
	uint32_t state;		/* locked, woken, starving, waiters */
	uint32_t sema;		/* waiters park on this address */
};
#define KGO_MUTEX_INIT	{ 0, 0 }
void kgo_mutex_lock(struct kgo_mutex *mu);
void kgo_mutex_unlock(struct kgo_mutex *mu);
/** kgo_mutex_trylock() - true if the lock was taken. */
bool kgo_mutex_trylock(struct kgo_mutex *mu);

/**
 * struct kgo_rwmutex - a reader/writer lock (Go's sync.RWMutex): many
 * readers or one writer. Once a writer waits, new readers wait for it,
 * so a stream of readers cannot starve writers (and a G must not take a
 * read lock it already holds again: that can deadlock).
 */
struct kgo_rwmutex {
	struct kgo_mutex w;
	uint32_t writer_sem;
	uint32_t reader_sem;
	int32_t reader_count;
	int32_t reader_wait;
};
#define KGO_RWMUTEX_INIT { KGO_MUTEX_INIT, 0, 0, 0, 0 }
void kgo_rwmutex_rlock(struct kgo_rwmutex *rw);
void kgo_rwmutex_runlock(struct kgo_rwmutex *rw);
void kgo_rwmutex_lock(struct kgo_rwmutex *rw);
void kgo_rwmutex_unlock(struct kgo_rwmutex *rw);

/**
 * struct kgo_cond - a condition variable (Go's sync.Cond): waiters are
 * woken in the order they began to wait. Signal and broadcast need not
 * hold the mutex; one with no waiter is not remembered.
 */
struct kgo_cond {
	uint32_t wait;
	uint32_t notify;
	uint32_t lock;
	void *head, *tail;
};
#define KGO_COND_INIT	{ 0, 0, 0, NULL, NULL }
/** kgo_cond_wait() - unlock @mu, park until signalled, lock @mu again. */
void kgo_cond_wait(struct kgo_cond *c, struct kgo_mutex *mu);
void kgo_cond_signal(struct kgo_cond *c);
void kgo_cond_broadcast(struct kgo_cond *c);

/**
 * struct kgo_wg - a wait group (Go's sync.WaitGroup): kgo_wg_wait()
 * parks until the counter is zero. It may be reused once every wait of
 * the previous round has returned.
 */
struct kgo_wg {
	uint64_t state;		/* counter << 32 | waiters */
	uint32_t sema;
};
#define KGO_WG_INIT	{ 0, 0 }
/** kgo_wg_add() - add @n (may be negative). A counter going negative is
 * a misuse: it is reported on stderr and the process aborts, as Go's
 * "sync: negative WaitGroup counter" panic. */
void kgo_wg_add(struct kgo_wg *wg, int n);
void kgo_wg_done(struct kgo_wg *wg);
void kgo_wg_wait(struct kgo_wg *wg);

struct kgo_once {
	uint32_t done;
	struct kgo_mutex mu;
};
#define KGO_ONCE_INIT	{ 0, KGO_MUTEX_INIT }
/** kgo_once_do() - call fn(arg) if no call on @once has yet; every call
 * returns only after that fn has returned (Go's sync.Once.Do). */
void kgo_once_do(struct kgo_once *once, void (*fn)(void *), void *arg);

/* ------------------------------------------------------------------ */
/* Syscalls and blocking libraries                                    */
/* ------------------------------------------------------------------ */

/**
 * kgo_syscall_begin() - the G is about to make a call that may block
 * its thread (Go's entersyscall). Pair with kgo_syscall_end(). In
 * between, the G keeps its thread but not its P: sysmon gives the P to
 * another thread if the call blocks, so call no other kgo function
 * there (kgo_go returns -EPERM; a call that parks is fatal). A
 * second begin before the end, or an end without a begin, does nothing.
 * The G is never preempted in between. Outside a G both do nothing.
 */
void kgo_syscall_begin(void);
/** kgo_syscall_begin_blocking() - as kgo_syscall_begin(), for a call that
 * will block: the P is handed off at once (Go's entersyscallblock). */
void kgo_syscall_begin_blocking(void);
/** kgo_syscall_end() - the call returned (Go's exitsyscall). */
void kgo_syscall_end(void);
/** kgo_syscall() - begin + syscall(2) + end. Return: the syscall's result
 * or -errno. */
long kgo_syscall(long nr, ...);

/* ------------------------------------------------------------------ */
/* File I/O: io_uring, with the RWF_NOWAIT fast path                  */
/* ------------------------------------------------------------------ */

/*
 * Each call does what the syscall of the same name does and returns what
 * it would: the result, or -errno where it sets errno (and never sets
 * errno). Called from a G, a read or write first tries without waiting
 * (preadv2/pwritev2 with RWF_NOWAIT: a page-cache hit costs one plain
 * syscall); when it would wait, the G parks on an io_uring completion
 * and its thread runs other Gs. Where io_uring is missing or refused
 * (kernel.io_uring_disabled, a seccomp filter, KGO_IOURING=0) the calls
 * take the syscall path (kgo_syscall_begin/_end), say so once on stderr,
 * and count it in kgo_stats.io_fallback_ops. Called outside a G, they
 * are the plain syscalls.
 *
 * Semantics kept from the syscalls: reads of regular files are short
 * only at end of file; reads of pipes, sockets and terminals return
 * what is there; writes and sends on blocking fds move everything;
 * O_NONBLOCK fds (and MSG_DONTWAIT) get -EAGAIN instead of waiting.
 * Bad arguments get the syscall's errno on every path: a count above
 * SSIZE_MAX is -EFAULT from kgo_read/kgo_write (after -EBADF, -ESPIPE)
 * and -EINVAL in an iovec; one call moves at most the kernel's
 * MAX_RW_COUNT (2 GiB less a page), recv and send clamp to it too.
 *
 * Deadlines (the _dl calls): absolute CLOCK_MONOTONIC ns; < 0 waits
 * for ever, 0 does not wait (-EAGAIN where the call would wait), and a
 * deadline that passes cancels the operation and returns -ETIMEDOUT,
 * having moved no data (a write: no more data; it returns what it
 * moved before). On sockets, pipes and ttys a deadline costs a timer,
 * no system call; see also kgo_fd_set_deadline(). A read of a regular
 * file that the kernel is already doing in a worker thread may finish
 * after its deadline rather than be abandoned halfway.
 *
 * Closing: kgo_close() wakes every G waiting on the fd in kgo_read,
 * kgo_write, kgo_recv, kgo_send or kgo_accept (and their _dl forms);
 * their calls return -EBADF ("use of closed network connection" in
 * Go), waits for them to leave the fd, and only then closes it, so a
 * call that began on the old file never touches a new one that gets
 * the number. A plain close(2) of an fd a G waits on is not seen by
 * kgo: sysmon notices it only in its one look at each wait 10-20 ms
 * after the wait began (the G then gets -EBADF); later, the G waits
 * until a deadline, kgo_fd_cancel or kgo_close of that number. Not
 * reached by either: kgo_connect, kgo_poll, a second G waiting on the
 * same side of one fd at once, and reads of regular files.
 *
 * When kgo_run returns, operations still in flight are cancelled and
 * waited for: no buffer is written after it returns. The exception is
 * the ring of a thread abandoned in a system call (kgo_run), whose
 * operations stay in flight: the stacks are kept for them, but a
 * buffer elsewhere may still be written.
 *
 * An fd's O_NONBLOCK flag is read when a call would first wait (taken
 * from the flags of kgo_open and kgo_accept), and an answer "blocking"
 * is kept until kgo_close of the fd: an fd made O_NONBLOCK later behind
 * kgo's back (fcntl(F_SETFL), ioctl(FIONBIO), a close(2) and reuse of
 * the number) gets -EAGAIN only when sysmon looks at its wait, 10-20 ms
 * into it (measured ~1 s with KGO_OBSERVE=bpf), not at once. kgo also keeps a few hints per fd number
 * (O_DIRECT, what RWF_NOWAIT does on it), which cost at most a wasted
 * try if the fd is closed and reused behind kgo's back. Environment: KGO_IOURING=0 takes the syscall path on purpose;
 * KGO_IOWQ_MAX=N[,M] caps io_uring's worker threads per thread of the
 * runtime (bounded work, e.g. regular files; unbounded), 16 each by
 * default.
 */
int     kgo_open(const char *path, int flags, mode_t mode);
int     kgo_openat(int dirfd, const char *path, int flags, mode_t mode);
int     kgo_close(int fd);
ssize_t kgo_read(int fd, void *buf, size_t n);
ssize_t kgo_pread(int fd, void *buf, size_t n, off_t off);
ssize_t kgo_readv(int fd, const struct iovec *iov, int iovcnt);
ssize_t kgo_preadv(int fd, const struct iovec *iov, int iovcnt, off_t off);
ssize_t kgo_write(int fd, const void *buf, size_t n);
ssize_t kgo_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t kgo_writev(int fd, const struct iovec *iov, int iovcnt);
ssize_t kgo_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off);
int     kgo_fsync(int fd);
int     kgo_fdatasync(int fd);
int     kgo_statx(int dirfd, const char *path, int flags, unsigned mask,
		  struct statx *st);
int     kgo_unlinkat(int dirfd, const char *path, int flags);
int     kgo_renameat(int olddirfd, const char *oldpath, int newdirfd,
		     const char *newpath);
int     kgo_mkdirat(int dirfd, const char *path, mode_t mode);
int     kgo_fallocate(int fd, int mode, off_t off, off_t len);
int     kgo_ftruncate(int fd, off_t len);

/** kgo_read_dl() - kgo_read() until @deadline. Return: also -ETIMEDOUT,
 * -EAGAIN (deadline 0 and nothing to read without waiting). */
ssize_t kgo_read_dl(int fd, void *buf, size_t n, int64_t deadline);
/** kgo_write_dl() - kgo_write() until @deadline. Return: the bytes
 * written before the deadline passed, else -ETIMEDOUT or -EAGAIN. */
ssize_t kgo_write_dl(int fd, const void *buf, size_t n, int64_t deadline);

/* ------------------------------------------------------------------ */
/* Network and readiness: kgo's netpoller                             */
/* ------------------------------------------------------------------ */

/* As accept4(2), connect(2), recv(2), send(2); the same rules as the
 * file calls above. */
int     kgo_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int     kgo_connect(int fd, const struct sockaddr *addr, socklen_t len);
ssize_t kgo_recv(int fd, void *buf, size_t n, int flags);
ssize_t kgo_send(int fd, const void *buf, size_t n, int flags);

/** The same until @deadline: also -ETIMEDOUT, and -EAGAIN for a deadline
 * of 0 (kgo_connect_dl: -EINPROGRESS, as a non-blocking connect, the
 * connection going on in the background; after -ETIMEDOUT too, so close
 * the socket). kgo_send_dl returns the bytes sent if the deadline
 * passes after some were. */
int     kgo_accept_dl(int fd, struct sockaddr *addr, socklen_t *len,
		      int flags, int64_t deadline);
int     kgo_connect_dl(int fd, const struct sockaddr *addr, socklen_t len,
		       int64_t deadline);
ssize_t kgo_recv_dl(int fd, void *buf, size_t n, int flags, int64_t deadline);
ssize_t kgo_send_dl(int fd, const void *buf, size_t n, int flags,
		    int64_t deadline);

/**
 * kgo_poll() - wait until @fd is ready for @events (POLLIN, POLLOUT...).
 * Return: the revents, as poll(2) sets them (POLLERR, POLLHUP, POLLNVAL
 * included), -ETIMEDOUT when @deadline passed, -EAGAIN when @deadline
 * is 0 and the fd is not ready. A negative @fd is ignored, as poll(2)
 * ignores it: it is never ready, so -EAGAIN with deadline 0, -ETIMEDOUT
 * at the deadline, and with no deadline the call waits for ever, on
 * either I/O path (an fd number that is not open gets POLLNVAL).
 */
int kgo_poll(int fd, short events, int64_t deadline);

/**
 * KGO_DEADLINE_KEEP - for kgo_fd_set_deadline(): leave this deadline as
 * it is.
 */
#define KGO_DEADLINE_KEEP	INT64_MIN

/**
 * kgo_fd_set_deadline() - deadlines on every read and every write of
 * @fd, Go's SetReadDeadline and SetWriteDeadline, from any G.
 * @fd:		a socket, pipe or tty (on a regular file they bound only the
 *		calls that wait on its readiness, which file reads do not).
 * @rd:		absolute CLOCK_MONOTONIC time (kgo_now() + delta) after
 *		which kgo_read, kgo_readv, kgo_recv and kgo_accept (and their
 *		_dl forms) on @fd fail with -ETIMEDOUT; a time already
 *		passed (0 included) fails them at once, even where data is
 *		waiting, as Go's do; -1 (any negative but KGO_DEADLINE_KEEP):
 *		none; KGO_DEADLINE_KEEP: unchanged.
 * @wd:		the same for kgo_write, kgo_writev, kgo_send (and _dl).
 *
 * Gs already waiting on @fd see the new deadline at once: one moved
 * later lets them wait on, one moved into the past wakes them with
 * -ETIMEDOUT. A call's own deadline (the _dl forms) still applies: the
 * earlier of the two ends the wait. Cost: a timer on the waiting G, no
 * system call. The deadlines stay with the fd number until changed or
 * until kgo_close(). A write that times out after moving some bytes
 * returns their count.
 *
 * Return: 0, -EBADF (@fd negative or beyond the runtime's table).
 */
int kgo_fd_set_deadline(int fd, int64_t rd, int64_t wd);

/**
 * kgo_fd_cancel() - end every wait on @fd now, from another G: calls
 * parked in kgo_read, kgo_write, kgo_recv, kgo_send, kgo_accept (and
 * their _dl forms) on @fd return -ECANCELED, having moved nothing more
 * (a write returns the bytes it moved before). Calls that start
 * afterwards are not affected, and the fd is left open and as it was:
 * data that arrives later is there for the next call. To stop all
 * later calls too, set a deadline in the past (kgo_fd_set_deadline) or
 * kgo_close() the fd.
 *
 * Return: 0, -EBADF (@fd negative or beyond the runtime's table).
 */
int kgo_fd_cancel(int fd);

/**
 * kgo_io_backend() - how the I/O calls run: "io_uring", or "syscalls
 * (why)" after a fallback. A static string, valid until the next call.
 */
const char *kgo_io_backend(void);

/* ------------------------------------------------------------------ */
/* Observability                                                      */
/* ------------------------------------------------------------------ */

/**
 * struct kgo_stats - counters of the running (or last) runtime.
 * Append only: kgo_stats_get() fills as much as @size says.
 */
struct kgo_stats {
	int observe;			/* enum kgo_observe in force */
	uint64_t gs_created, gs_live;
	uint64_t ms, ms_idle, ps;
	uint64_t handoffs, handoffs_kernel_observed;
	uint64_t preempt_sync, preempt_async;
	uint64_t io_nowait_hits, io_uring_ops, io_fallback_ops;
	uint64_t steals;		/* Gs taken from other Ps */
	uint64_t global_runq_gets;	/* Gs taken from the global queue */
	uint64_t stacks_cached;		/* stacks kept for reuse */
	uint64_t context_switches;	/* G switches done by the runtime */
	uint64_t sysmon_wakeups;	/* sysmon's wakeups: the cost of polling */
	uint64_t preempt_signals;	/* SIGURGs sent to preempt a G */
	int async_preempt;		/* 1: SIGURG preemption in use */
	int io_uring;			/* 1: I/O through io_uring; 0: syscalls */
	uint64_t io_inline;		/* ring ops done during submission */
	uint64_t io_timeouts;		/* ops cancelled by their deadline */
	uint64_t io_cancelled;		/* ops cancelled at kgo_run's end */
	uint64_t io_rings;		/* rings open (one per M that did io) */
	uint64_t io_waiting;		/* Gs parked on an io completion */
	/* Kernel observation (KGO_OBSERVE): why @observe is what it is,
	 * a static string ("probes loaded by this process", "no probes
	 * pinned ... (sudo kgo-probe load)", ...). */
	const char *observe_why;
	/* Handoffs by cause: handoffs_kernel_observed (above: the kernel
	 * saw the M block), poll (sysmon's guess: the same syscall at two
	 * looks), timeout (the syscall ran a slice of CPU time, or 10 ms
	 * with nothing seen). */
	uint64_t handoffs_poll;
	uint64_t handoffs_timeout;
	uint64_t observe_kicks;		/* sysmon wakeups sent by the probes */
	uint64_t observe_ms;		/* Ms registered with the probes */
	/* Records that said an M was blocked while the kernel (/proc)
	 * said it ran: events the probes missed (observe_bpf.c). */
	uint64_t observe_misses;
	/* The probes' kicks that reached an idle M (observe_kicks counts
	 * those to sysmon), and the kernel-observed handoffs such an M
	 * took itself, with no sysmon in between. */
	uint64_t observe_kicks_m;
	uint64_t handoffs_kicked_m;
	/* When the last kick reached its thread's signal handler
	 * (kgo_now()'s clock; 0: none yet): a benchmark times the BPF
	 * wakeup alone from it (selftests/bench/handoff.c). */
	int64_t observe_kick_ns;
	/* The kernel's preemption tick (bpf mode, bpf/kgo_tick.bpf.h):
	 * 1 if it times the running Gs' slices in their Ms' CPU time and
	 * sends the SIGURG itself (sysmon then neither looks nor
	 * signals); its SIGURGs that found their G's slice over. */
	int preempt_tick;
	uint64_t preempt_ticks;
	/* Timers put on a P's heap (kgo_sleep, the deadlines of waits,
	 * kgo timers). A socket wait's deadline arms one only when its
	 * fd's timer is idle or must fire earlier: a fresh deadline per
	 * request costs none (the poll descriptor in user/runtime/io.c). */
	uint64_t timers_armed;
	/* fcntl(F_GETFL) calls made to honour O_NONBLOCK: one per fd that
	 * kgo did not open or accept (its answer "blocking" is kept until
	 * kgo_close), and one per wait on an O_NONBLOCK fd; not counted:
	 * sysmon's one per wait that lasts 10-20 ms. */
	uint64_t fd_flag_reads;
	/* Gs waiting on the netpoller that sysmon's look (every 10 ms
	 * while Gs wait) readied: their fd was ready and no M had looked
	 * since, for up to that period. A share of a server's wakeups
	 * here is a share of its requests delayed that long. They go to
	 * the global queue, which an M serves before it polls again. */
	uint64_t netpoll_sysmon_readies;
	/* bpf mode: the probes' kicks that found their idle M kicked
	 * already by another block (it hands that P on itself:
	 * user/runtime/proc.c, "Two kicks"), and those that found it
	 * woken by a waker, which pass the P to sysmon. */
	uint64_t observe_kicks_second;
	uint64_t observe_kicks_passed;
	/* sysmon_wakeups by cause (a wakeup may have several): the
	 * probes' signal, an M that passed a kick on, a deferred wakeup
	 * (user/runtime/sysmon.c, "Deferred wakeups in bpf mode"), and
	 * sysmon's own deadlines (a slice's end, a syscall's retake, its
	 * polling period, schedtrace). */
	uint64_t sysmon_wakeups_kick;
	uint64_t sysmon_wakeups_passed;
	uint64_t sysmon_wakeups_wakep;
	uint64_t sysmon_wakeups_timer;
	/* Registrations with the BPF probes made again because the kernel
	 * had skipped the probe (its recursion guard on a preemptible
	 * kernel: observe_bpf.c, "Registration's answer"), and Ms left
	 * with no record (polled). */
	uint64_t observe_reg_retries;
	uint64_t observe_ms_unreg;
	/* Receives on a TCP socket that went straight to the netpoller
	 * without their MSG_DONTWAIT try: the read before had emptied the
	 * socket and no edge came since (user/runtime/io.c, "Drained
	 * sockets"). About one per request of a keep-alive server. */
	uint64_t net_tries_skipped;
	/* bpf mode: the memory fences (membarrier(2), an IPI to every CPU
	 * that runs a thread of the process) sysmon made to arm the
	 * deferred wakeups' flag (user/runtime/sysmon.c, "One fence per
	 * arming"). */
	uint64_t sysmon_fences;
	/* bpf mode: the probes' kicks that found their M awake on its way
	 * out of its idle sleep, which it handed on itself instead of
	 * sysmon (user/runtime/proc.c, "Kicks to an M awake"). */
	uint64_t observe_kicks_kept;
	/* ... and those that found it running a G, which it sent on to
	 * the idle M then at the head of the idle list (with a signal,
	 * as the probes do; user/runtime/observe_bpf.c, "Kicks sent
	 * on"), instead of sysmon. */
	uint64_t observe_kicks_forwarded;
};

/**
 * kgo_stats_get() - copy the counters into @st, at most @size bytes.
 * Return: the number of bytes written, or -EINVAL (NULL st).
 */
int kgo_stats_get(struct kgo_stats *st, size_t size);

/**
 * kgo_p_stat() - per-P counters, for tests and schedtrace.
 * @p:	 index of the P (0 .. kgo_maxprocs() - 1).
 * @ran: out: Gs that have finished on this P so far.
 * Return: 0, -EINVAL (no such P), -EPERM (no runtime).
 */
int kgo_p_stat(int p, uint64_t *ran);

/** kgo_ctx_impl() - which context switch this build uses ("x86_64",
 * "aarch64" or "ucontext"). */
const char *kgo_ctx_impl(void);

/* ------------------------------------------------------------------ */
/* Foreign threads                                                    */
/* ------------------------------------------------------------------ */

/**
 * kgo_foreign_enter() - register the calling thread, which is no G (a
 * library's callback thread), as one that may wake Gs (send on their
 * channels, unlock, kgo_go) at any time (Go's cgo callbacks, needm):
 * while it is registered, Gs waiting for it are not reported as a
 * deadlock, and its calls do not turn the report off for good ("Calls
 * from other threads", top of file). Calls nest; each needs its
 * kgo_foreign_leave(). Return: 0, -EINVAL (called from a G).
 */
int kgo_foreign_enter(void);

/**
 * kgo_foreign_leave() - end the calling thread's kgo_foreign_enter().
 * After the last one, if every G waits with nothing left to wake them,
 * the deadlock is reported at once. Return: 0, -EINVAL (not registered,
 * or called from a G).
 */
int kgo_foreign_leave(void);

/* ------------------------------------------------------------------ */
/* Signals as channel values (Go's os/signal.Notify)                  */
/* ------------------------------------------------------------------ */

/*
 * The runtime owns the signal masks of its threads: a notified signal is
 * received by a thread of the runtime that never blocks it (user/runtime/
 * signal.c), so a G that blocks it with sigprocmask or pthread_sigmask
 * (which changes only the mask of the M it happens to run on) still gets
 * it on its channel. The handler only records the signal; a thread of
 * the runtime sends it on. Delivery works with or without a kgo_run
 * running (a signal that comes before kgo_run waits in the channel's
 * buffer) and from one kgo_run to the next.
 *
 * Like Go, the runtime never blocks to deliver: a signal that finds the
 * channel full (or an unbuffered one with no receiver waiting) is
 * dropped, so give the channel a buffer of one per signal you must not
 * miss; and a signal that comes again before the first was sent on is
 * sent once. While a channel is notified, the deadlock report ("all
 * goroutines are asleep") is off: a signal may come at any time.
 */

/**
 * kgo_signal_notify() - send the signals in @sigs to @c as they come.
 * @c:	  a channel made with kgo_chan_make(sizeof(int), cap); each
 *	  element is the number of the signal that came.
 * @sigs: the signal numbers to catch; calls for one channel add up.
 * @n:	  how many.
 *
 * The program's own action for a signal (or its default) comes back
 * when no channel watches it any more (kgo_signal_stop). Callable from
 * a G, from any thread, and with no runtime running.
 * Return: 0; -EINVAL: NULL @c or @sigs, @n < 1, a channel whose elements
 * are not int, a number that is no signal, or a signal no program may
 * catch or that the runtime needs itself (SIGKILL, SIGSTOP; SIGURG:
 * preemption; SIGSEGV, SIGBUS: stack overflow detection; glibc's own,
 * 32 and 33); nothing is changed then. -EAGAIN or -ENOMEM: the
 * runtime's signal thread could not be started.
 */
int kgo_signal_notify(struct kgo_chan *c, const int *sigs, int n);

/**
 * kgo_signal_stop() - send no more signals to @c. When it returns, no
 * signal is sent to @c any more (one already in its buffer stays).
 * Return: 0, -EINVAL (NULL @c), -ENOENT (@c was not notified).
 */
int kgo_signal_stop(struct kgo_chan *c);

#ifdef __cplusplus
}
#endif
#endif /* KGO_H */
