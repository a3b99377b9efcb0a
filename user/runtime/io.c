// SPDX-License-Identifier: MIT
/*
 * io.c - file and network I/O through io_uring: the G parks, its M does
 * not block. The calls themselves are in io_file.c and io_net.c; this
 * file owns the rings.
 *
 * I/O and the scheduler
 * =====================
 *
 * Fast path first. Every read or write first tries the non-blocking way
 * (preadv2/pwritev2 with RWF_NOWAIT, recv/send with MSG_DONTWAIT): a
 * page-cache hit or a ready socket costs one plain syscall and no ring,
 * which is what Go's pread costs. Only when that would block does the G
 * hand the operation to io_uring and park (WAIT_IO, counted in
 * sched.nio so that checkdead knows a completion may still wake it),
 * or, for a recv without a deadline, wait on the netpoller (below).
 *
 * Rings belong to Ms
 * ------------------
 * Each M gets its own ring the first time one of its Gs needs one, and
 * drains and closes it in mexit, before the thread ends. Why per M:
 *
 *  - The kernel ties a request to the thread that submitted it: when
 *    that thread exits, its requests are cancelled, and a ring set up
 *    with IORING_SETUP_SINGLE_ISSUER takes submissions from its creating
 *    thread only (FACTS.md). A ring per P would move between threads
 *    with its P (handoff, syscalls) and could be neither.
 *  - io-wq, the kernel's pool of threads for work that cannot be done
 *    without blocking, is per submitting thread, so IORING_REGISTER_
 *    IOWQ_MAX_WORKERS on an M's ring caps exactly that M's pool: the
 *    cap is per M (io.iowq, KGO_IOWQ_MAX), and Ms are few.
 *  - A ring costs one fd and ~130 KiB (SQ 32, CQ 4096); the number of
 *    Ms is gomaxprocs plus those stuck in syscalls.
 *
 * Rejected: one ring for all, under a lock (every submission contends,
 * and its CQ is a hot cache line for every CPU); SQPOLL (a kernel thread
 * spinning per ring: a lost CPU on 2 vCPUs).
 *
 * Who submits: the owner only, on g0, from the unlockf of the G's
 * gopark, so that the G is off its stack before any thread can see its
 * completion (the rule of every wait list, proc.c). One io_uring_enter
 * per operation; the same call reaps what completed during submission
 * (an accept with a connection pending, an open of a cached path), and
 * then the G does not park at all. (Batching the submissions of several
 * Gs would save syscalls but hold an operation back while the M runs a
 * G that may not yield for a whole slice; the ring path is for
 * operations that wait anyway.)
 *
 * Who reaps: anyone, under the ring's CQ lock. SINGLE_ISSUER restricts
 * submitting, not reading the CQ from memory, and without DEFER_TASKRUN
 * the kernel posts completions itself (interrupting the owner with an
 * IPI to run the task_work that completes most requests; 10-50 us here,
 * even while the owner spins in user space). Where the completion finds
 * its G depends on what the owner is doing:
 *
 *  - In its scheduler: findrunnable reaps its own ring first thing
 *    (io_poll: one load when there is nothing) and queues the Gs on its
 *    P.
 *  - Idle: an M with a ring never sleeps on its futex. It sleeps in
 *    io_uring_enter(GETEVENTS) on its own ring, with an IORING_OP_FUTEX_
 *    WAIT armed on its park note, so that notewakeup completes in the
 *    ring and wakes it, and a timeout at its deadline (the timed
 *    sleeper's next timer). A completion wakes it; it puts the Gs on the
 *    global queue and findrunnable takes an idle P to run them: Go's
 *    blocking netpoll, per M.
 *  - Away (running a G, or in a syscall): the CQE is posted but nobody
 *    on that M looks. Every ring has the runtime's one eventfd
 *    registered, and an owner asleep in its ring turns its notifications
 *    off (IORING_CQ_EVENTFD_DISABLED), so the eventfd fires for
 *    completions on rings whose owner is away. One idle M at a time, the
 *    watcher, keeps a read of that eventfd armed in its own ring; when
 *    it completes, the watcher reaps the other rings (trylock: the owner
 *    may be at it) and runs what it found. When an operation is
 *    submitted while nobody watches and the submitter has other Gs to
 *    run, it wakes an M (wakep), which becomes the watcher when it finds
 *    nothing else to do.
 *  - Nobody idle (every P busy): the Gs could not run sooner anyway. The
 *    owner reaps at its next schedule, at the latest when its G is
 *    preempted after a slice, and sysmon reaps rings that nobody looked
 *    at for 10 ms (io_sysmon), as Go's sysmon polls the network.
 *
 * So a completion waits for nothing (owner in its scheduler), one
 * wakeup (idle owner), two (owner away: its task_work, then the
 * watcher), or a free P (all busy; bounded by the preemption slice,
 * 10 ms, as in Go). Measured by selftests/bench/io_wake.c (2 vCPUs, a
 * timerfd read while a G spins on the submitting M): p50 40-50 us, p99
 * 0.1-2.5 ms with the machine quiet; Go's netpoller, one hop (epoll
 * wakes its idle M), p50 ~19 us. With other processes busy on both
 * CPUs each hop can wait for a CPU and the p50 rose to 0.3-1.7 ms
 * where Go's stayed ~19 us: the price of completions that need their
 * submitter's task_work. (Rejected to shorten it: polling the other
 * rings from spinning Ms, which burns CPU; one shared ring, see above.)
 *
 * Not DEFER_TASKRUN: completions would appear only when the owner itself
 * enters the kernel, which an M running a G may not do for a slice, and
 * nobody else could reap them. Not COOP_TASKRUN: the same up to a tick
 * (4 ms, FACTS.md).
 *
 * Sockets: the netpoller
 * -----------------------
 * A recv without a deadline that finds no data does not go to the ring:
 * its G parks on the netpoller, Go's way. Through the ring the recv
 * completes in task_work on the submitting M, and the kernel forces that
 * with an IPI while the M runs (the default mode above). On io_echo
 * (1000 connections over loopback, every M busy) that was the cost of
 * the whole run: `perf record -g selftests/bench/io_echo -p 2 -n 200000
 * -w 1000` showed 28% of samples in sock_def_readable's irq-off wakeup
 * path and 10% in lock_sock, where the task_work's recv met the sender
 * still holding the socket; 6.9 s of CPU where Go took 4.8. An epoll
 * wakeup only queues the socket on a ready list: the same run took
 * 3.2 s. (COOP_TASKRUN also halves it, but strands completions for a
 * busy owner up to a tick, see below.)
 *
 * So: one epoll instance, sockets, pipes and ttys added edge-triggered
 * at their first wait and remembered in a hint (FDH_NETREG); a hint gone
 * stale behind kgo's back (close(2), the number back for another
 * socket) is caught by sysmon, which re-adds the fd of any wait it
 * finds parked at two looks (netpoll_check, with the figures). Each fd
 * has a poll descriptor with a read and a write slot (0, PD_READY, or
 * the waiting G); the waiter publishes itself in its gopark's unlockf
 * and whoever collects an edge readies it, or leaves PD_READY for the
 * next look, so no edge is lost between the failed try and the park.
 * One waiter per slot: a second one takes the ring. Who collects
 * (epoll_wait with no timeout): an M in findrunnable whose run queue is
 * empty (io_poll, as Go's findrunnable), the watcher, which keeps a
 * poll of the epoll fd armed in its ring next to its eventfd read, and
 * sysmon every 10 ms. Without a ring (the syscall path, or no
 * IORING_OP_FUTEX_WAIT before 6.7) the watcher sleeps in epoll_wait
 * itself (netpoll_sleep), so the syscall path has the netpoller too.
 * The parked Gs count in sched.nio as ring waits do; at kgo_run's end
 * those still parked are counted as cancelled. Deadlines, kgo_close,
 * kgo_fd_cancel: "The poll descriptor", below.
 *
 * Registered files and buffers: not used. The ring carries what the fast
 * path could not do: a cache miss that costs ~70 us of disk, a socket
 * that is not ready, a slow file system, where the fget and page
 * pinning that registration saves (tens to a few hundred ns) do not
 * show; the buffers are the caller's, anywhere in memory; and a
 * registered file table goes stale when the user closes an fd behind
 * kgo's back and the number comes back for another file. The ring's own
 * fd is registered (IORING_REGISTER_RING_FDS): every io_uring_enter then
 * skips an fdget on a multithreaded process's file table.
 *
 * Deadlines: a wait on the netpoller (sockets, pipes, ttys) with a
 * deadline costs a runtime timer on the G, no system call (below, "The
 * poll descriptor"); before, every such wait went through the ring with
 * a linked timeout, which cost the httpd example ~15x the io_uring_enter
 * and futex calls of a wait without one (issue 14). Operations that
 * still wait in the ring (regular files, connect, kgo_poll, a second
 * waiter on one fd) are linked to an IORING_OP_LINK_TIMEOUT at the
 * absolute CLOCK_MONOTONIC deadline; the kernel cancels the operation
 * when it fires; -ECANCELED is reported as -ETIMEDOUT. Those are not
 * reached by kgo_close or kgo_fd_cancel (SINGLE_ISSUER would refuse a
 * cancel from another thread).
 *
 * Shutdown: mexit cancels everything in the M's ring (ASYNC_CANCEL with
 * ANY|ALL) and waits for every CQE before the ring is closed and the
 * thread ends, so no request outlives the stacks and buffers it writes
 * to. Gs still waiting are abandoned with their stacks, as every G is
 * when main returns; their op records say -ECANCELED.
 *
 * Fallback: where io_uring_setup fails (a kernel without it, kernel.
 * io_uring_disabled, a seccomp filter answering ENOSYS or EPERM, as
 * container runtimes do) or KGO_IOURING=0, the same calls take the
 * syscall path (io_sys: kgo_syscall_begin/_end, the P handed off first
 * for a call that the fast path said will block). It is said once on
 * stderr, with the reason, and counted in io_fallback_ops.
 *
 * Limits: task_work runs on the owner, so a completion that needs it
 * (network operations, buffered reads that waited for a page) waits
 * while the owner sleeps uninterruptibly in some other syscall (a D
 * state: a disk wait, a hung NFS server); interruptible sleeps are
 * interrupted and restarted by the kernel. Kernels before 6.7 have no
 * FUTEX_WAIT operation: there an M with operations in flight sleeps in
 * its ring in 1 ms slices, and nobody watches the eventfd.
 *
 * Locks: io.lock (the list of rings, setup) > a ring's cq_lock. Reapers
 * take cq_lock only to consume CQEs and ready nothing while holding it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io.h"
#include "kgo_syscall.h"
#include "timer.h"

#ifdef KGO_TSAN
#include <sanitizer/tsan_interface.h>
/* The kernel orders an operation's submission before its completion
 * (io_uring_enter, then its release store of the CQ tail), which TSan
 * cannot see: say so, on the op record. */
#define tsan_release(p)	__tsan_release(p)
#define tsan_acquire(p)	__tsan_acquire(p)
#else
#define tsan_release(p)	do { } while (0)
#define tsan_acquire(p)	do { } while (0)
#endif

#define KGO_FUTEX2_SIZE_U32	0x02
#define KGO_FUTEX2_PRIVATE	128
#define KGO_FUTEX_BITSET_ANY	0xffffffffu

#define NSEC		1000000000LL
#define RING_SQ		32	/* we submit at most four SQEs at a time */
#define RING_CQ		4096	/* CQEs in flight per M before the syscall path */
#define RING_SPECIAL	4	/* CQ room kept for park, eventfd, netpoll, cancel */
#define SYSMON_POLL_NS	(10 * 1000 * 1000)	/* as Go's sysmon netpoll */
#define OLD_KERNEL_NAP	(1000 * 1000)	/* no FUTEX_WAIT: sleep in slices */
#define IO_SPIN_NS	30000	/* as NOTE_SPIN_NS in lock_futex.c */

/* user_data of the CQEs that carry no G; op records are addresses. */
enum {
	UD_IGNORE = 0,		/* linked timeouts and cancels */
	UD_PARK = 1,		/* the FUTEX_WAIT on the owner's park note */
	UD_EVENTFD = 2,		/* the watcher's read of io.efd */
	UD_NETPOLL = 3,		/* the watcher's poll of io.epfd */
};

enum io_mode {
	IO_UNKNOWN = 0,		/* no ring made yet */
	IO_URING,		/* rings work */
	IO_FALLBACK,		/* refused: everything takes the syscall path */
};

/*
 * struct io_ring - an M's ring (mp->io).
 * @ring:	SQ side: the owner only. CQ side: whoever holds @cq_lock.
 * @m:		the owner; immutable.
 * @cq_lock:	0 free, 1 held by a reaper.
 * @inflight:	CQEs still to come. The owner adds before it submits;
 *		reapers subtract what they consume.
 * @park_armed:	the FUTEX_WAIT on m->park is in flight (its CQE unseen).
 * @efd_armed:	the read of io.efd is in flight.
 * @ep_armed:	the poll of io.epfd is in flight.
 * @attending:	the owner is asleep in this ring and reaps it itself:
 *		scanners skip it and its eventfd notifications are off.
 * @efd_buf:	where the eventfd read lands.
 * @next:	io.rings; io.lock.
 */
struct io_ring {
	struct io_uring ring;
	struct m *m;
	_Atomic uint32_t cq_lock;
	_Atomic int32_t inflight;
	_Atomic bool park_armed;
	_Atomic bool efd_armed;
	_Atomic bool ep_armed;
	_Atomic bool attending;
	uint64_t efd_buf;
	struct io_ring *next;
};

static struct {
	_Atomic int mode;		/* enum io_mode; release store, acquire load */
	char why[200];			/* why the fallback; io.lock */
	_Atomic bool warned;		/* the fallback was reported */
	_Atomic int efd;		/* eventfd for away completions; -1 none;
					 * set under io.lock, read by idle Ms */
	bool probed;			/* the opcode probe ran; io.lock */
	_Atomic bool futex_op;		/* IORING_OP_FUTEX_WAIT works */
	_Atomic bool ftruncate_op;	/* IORING_OP_FTRUNCATE works */
	unsigned iowq[2];		/* io-wq caps per ring: bounded, unbounded */
	struct kgo_lock lock;
	struct io_ring *rings;		/* every open ring; io.lock */
	_Atomic int32_t nrings;
	_Atomic(struct m *) watcher;	/* the M watching io.efd, or NULL */
	_Atomic int64_t last_scan;	/* io_sysmon's last look */
	_Atomic int epfd;		/* the netpoller's epoll; -1 none yet */
	_Atomic int wepfd;		/* netpoll_sleep's: epfd and breakfd */
	_Atomic int breakfd;		/* eventfd that wakes netpoll_sleep */
	_Atomic int32_t nnet;		/* Gs parked on the netpoller */
	/* Waits that trusted their FDH_NETREG hint: ++ by each, after it
	 * is in its slot; sysmon sets checked_gen to the value it read
	 * before a round of netpoll_check that left nothing unchecked, and
	 * sleeps deeply only while the two are equal. seq_cst. */
	_Atomic uint64_t trust_gen, checked_gen;
	/* Statistics; relaxed. Kept across runs like sched's io counters. */
	_Atomic uint64_t timeouts, cancelled, inline_ops;
	_Atomic uint64_t flag_reads;	/* F_GETFL for O_NONBLOCK */
	_Atomic uint64_t sysmon_readies; /* netpoller Gs io_sysmon readied */
} io = { .efd = -1, .epfd = -1, .wepfd = -1, .breakfd = -1 };

/* ------------------------------------------------------------------ */
/* Consuming completions                                              */
/* ------------------------------------------------------------------ */

/*
 * CQEs waiting in r. A hint when read without cq_lock (the head moves
 * under it); both loads are atomic because other reapers write the head
 * (liburing's io_uring_cq_ready reads it plainly, for one thread). The
 * acquire on the tail pairs with the kernel's release store.
 */
static unsigned cq_ready(struct io_ring *r)
{
	return __atomic_load_n(r->ring.cq.ktail, __ATOMIC_ACQUIRE) -
	       __atomic_load_n(r->ring.cq.khead, __ATOMIC_RELAXED);
}

static bool cq_trylock(struct io_ring *r)
{
	uint32_t z = 0;

	/* Acquire pairs with cq_unlock's release: the CQ head and the
	 * flags the last reaper wrote are seen by the next. */
	return atomic_compare_exchange_strong_explicit(&r->cq_lock, &z, 1,
			memory_order_acquire, memory_order_relaxed);
}

static void cq_lock(struct io_ring *r)
{
	/* Held only while CQEs are consumed: a few hundred ns. */
	while (!cq_trylock(r))
		cpu_relax();
}

static void cq_unlock(struct io_ring *r)
{
	atomic_store_explicit(&r->cq_lock, 0, memory_order_release);
}

/*
 * struct reaped - what reaping found: the Gs to ready (linked through
 * schedlink: a parked G's is free) and how many operations completed.
 * sched.nio is lowered by @nops only once the Gs are on a run queue
 * (reaped_ready), so that checkdead, which may run meanwhile on an M
 * that is idle by its count while it reaps, never sees a G that is in
 * neither place.
 */
struct reaped {
	struct g *list;
	int ngs;
	int nops;
};

/*
 * reap_locked() - consume every CQE of @r into @rp; cq_lock held. The G
 * of @self, whose submitter is still deciding whether to park it, is
 * not pushed: *self_done tells it. *efd is set when the eventfd read
 * completed.
 */
static void reap_locked(struct io_ring *r, struct io_op *self,
			bool *self_done, struct reaped *rp, bool *efd)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;

	/* io_uring_for_each_cqe loads the kernel's tail with acquire: the
	 * CQEs (and what the operations wrote) are visible. */
	io_uring_for_each_cqe(&r->ring, head, cqe) {
		uint64_t ud = cqe->user_data;
		struct io_op *op;

		seen++;
		if (ud == UD_IGNORE)
			continue;
		if (ud == UD_PARK) {
			atomic_store_explicit(&r->park_armed, false,
					      memory_order_relaxed);
			continue;
		}
		if (ud == UD_EVENTFD || ud == UD_NETPOLL) {
			atomic_store_explicit(ud == UD_EVENTFD ? &r->efd_armed :
					      &r->ep_armed, false,
					      memory_order_relaxed);
			if (efd)
				*efd = true;
			continue;
		}
		op = (struct io_op *)(uintptr_t)ud;
		tsan_acquire(op);
		op->res = cqe->res;
		rp->nops++;
		if (op == self) {
			*self_done = true;
			continue;
		}
		/* After this, op is the G's again once it runs: read gp
		 * first. */
		op->gp->schedlink = rp->list;
		rp->list = op->gp;
		rp->ngs++;
	}
	if (seen) {
		/* Release store of the head: the kernel may reuse the slots. */
		io_uring_cq_advance(&r->ring, seen);
		atomic_fetch_sub_explicit(&r->inflight, seen,
					  memory_order_relaxed);
	}
}

/*
 * reaped_ready() - make the reaped Gs runnable: on our P's run queue
 * when we hold one, else on the global queue, for whoever takes a P
 * next (the caller sees to that); then lower sched.nio.
 */
static void reaped_ready(struct reaped *rp)
{
	struct m *mp = getm();
	struct g *gp;

	if (mp && mp->p) {
		while ((gp = rp->list)) {
			rp->list = gp->schedlink;
			gp->schedlink = NULL;
			goready_tail(gp);
		}
	} else if (rp->list) {
		injectglist(rp->list);
		rp->list = NULL;
	}
	if (rp->nops)
		atomic_fetch_sub_explicit(&sched.nio, rp->nops,
					  memory_order_relaxed);
	rp->ngs = rp->nops = 0;
}

/*
 * scan_rings() - reap into @rp the rings whose owners are away: not
 * @self's, not those of owners asleep in them (they reap their own),
 * not those being reaped right now.
 */
static void scan_rings(struct m *self, struct reaped *rp)
{
	struct io_ring *r;

	lock(&io.lock);
	for (r = io.rings; r; r = r->next) {
		if (r->m == self ||
		    atomic_load_explicit(&r->attending, memory_order_relaxed) ||
		    !cq_ready(r) || !cq_trylock(r))
			continue;
		reap_locked(r, NULL, NULL, rp, NULL);
		cq_unlock(r);
	}
	unlock(&io.lock);
}

/* ------------------------------------------------------------------ */
/* The netpoller: socket readiness through one epoll instance         */
/* ------------------------------------------------------------------ */

/*
 * The poll descriptor
 * -------------------
 * A call on a socket, pipe or tty that finds it not ready parks its G
 * here rather than in the ring (the essay at the top: "Sockets"), with
 * or without a deadline, on every backend: Go's pollDesc. Each fd
 * number has a struct pdesc in a two-level table like the fd hints',
 * pages made on demand and kept. Its fields:
 *
 *  - rg, wg: the read and write slots: 0, PD_READY (an edge came and
 *    nobody waited), or the G that waits for the fd to become readable
 *    (writable). The waiter publishes itself in its gopark's unlockf
 *    (net_park) with a CAS from 0; whoever takes a G out of a slot by
 *    CAS (an edge, a timer, kgo_close, kgo_fd_cancel, a new deadline)
 *    readies it, and only that one: the slot's CAS is the whole
 *    protocol between the wakers. One waiter per slot: a second takes
 *    the ring (or the syscall path), where none of the below reach it.
 *  - gen: ++ by kgo_close before it closes the fd. A call reads it when
 *    it begins; a wait that finds it moved ends with -EBADF and never
 *    touches the fd again, so a number closed and reused at once (a
 *    pipe where a socket was) never completes a stale wait. kgo_close
 *    also waits (PD_CLOSING in refs) until the calls inside a wait have
 *    left before it closes the fd: between a wakeup and its retry no
 *    other file can get the number (Go's fdMutex).
 *  - cseq: ++ by kgo_fd_cancel; waits that began before end with
 *    -ECANCELED.
 *  - rd, wd, dseq: kgo_fd_set_deadline's deadlines (-1: none), and ++
 *    at each change, which wakes the side's waiter to look again.
 *
 * Every waker changes its field first and then looks at the slot;
 * net_park publishes the G first and then looks at the fields (both
 * seq_cst): one of them sees the other, so no wake is lost.
 *
 * A deadline (the call's, or the fd's, whichever comes first) costs a
 * runtime timer, no system call, no ring: each side of the fd has one
 * (rt, wt), which takes the G out of its slot when it fires (Go's
 * netpoll deadline timers). The waiter publishes itself and its
 * deadline (rdl, wdl) together under the descriptor's tlock (net_park,
 * pd_publish), and the timer's fn looks at both under it (pd_dl_fire),
 * so a deadline always belongs to the G in the slot. The timer is not
 * disarmed when the wait ends, and a later deadline does not move it:
 * it fires at its old time, finds the deadline moved, and arms itself
 * again for that (Go's modtimer, which marks a timer moved later and
 * fixes the heap when it comes up). A server that waits with a fresh
 * 10 s deadline for each request thus costs a heap operation per fd
 * every 10 s, where a timer armed at the park and disarmed at the
 * wakeup cost two a request, under a P's heap lock, often another P's
 * (kgo_stats.timers_armed; io_net_test deadline_timers: 400 timers for
 * 400 waits before, 2 now). Only an earlier deadline than the armed
 * one moves the timer at once.
 *
 * Registration: an fd is added to the epoll at its first wait
 * (edge-triggered, in and out), and the hint FDH_NETREG spares the
 * epoll_ctl at the next ones (it cost a syscall, ~1.1 us here, at every
 * wait: io_echo 62.8 -> 75.6 k req/s without it, medians of 5
 * alternating runs). The event carries the fd and its gen: events of a
 * file that kgo_close closed while a dup kept it in the epoll are
 * dropped. A file that epoll refuses (a regular file: EPERM) is marked
 * with gen + 1 in nopoll and waits in the ring. kgo_close and
 * kgo_accept reset the hint; but a user who closes the fd with close(2)
 * and gets the number back for another socket leaves it stale, and the
 * new socket's waiter would sleep for ever. So sysmon checks long waits
 * (netpoll_check): a wait it finds parked at two looks, SYSMON_POLL_NS
 * apart, gets one EPOLL_CTL_MOD of its fd, which re-arms the edge when
 * the hint was right (a file ready now is reported now: "Drained
 * sockets", below), answers ENOENT when the file is not in the epoll,
 * which then gets an EPOLL_CTL_ADD that registers it and reports its
 * readiness at once, and EBADF when the fd was closed behind kgo's
 * back: then the waiter is woken, and its retry fails with EBADF as
 * the call would. A stale hint thus costs one wait 10-20 ms (plus the
 * scan's round, PD_SCAN_PAGES pages a look), never a hang (io_close_test
 * plain_close). sysmon does not sleep deeply while such a wait is
 * unchecked (trust_gen, checked_gen; io_netpoll_unchecked), and each
 * new wait wakes it; once every wait is checked, or with no G on the
 * netpoller, it sleeps as before (io_net_test netpoller_idle). Limit:
 * each wait is checked once, so a close(2) of an fd more than 10-20 ms
 * into a wait on it is not noticed, and its G waits until the number's
 * next kgo_close, kgo_fd_cancel or deadline: close with kgo_close.
 *
 * Drained sockets
 * ---------------
 * A keep-alive server's recv, after it answered the last request,
 * almost always finds nothing: its MSG_DONTWAIT try says EAGAIN, the G
 * parks, an edge wakes it and a second recv gets the request. Each
 * syscall entry is dear here (a PVM guest): the try was a third of the
 * httpd example's socket syscalls, 4.8% of its samples in the kernel's
 * syscall entry alone. So a recv that can know the socket is empty
 * goes straight to the wait (Tokio's PollEvented does the same with
 * its readiness "tick": a read that did not fill the buffer showed the
 * socket drained). The kernel facts it rests on, for TCP (6.18):
 *
 *  - tcp_recvmsg_locked() returns fewer bytes than asked only when its
 *    walk of the receive queue found nothing more (after processing
 *    the backlog; what lands in the backlog later is processed at
 *    release_sock and raises sk_data_ready), or at a FIN, an error, a
 *    shutdown, or the urgent mark. A short read thus emptied the queue,
 *    except at the last three and the mark.
 *  - With EPOLLET, every sk_data_ready (and state change, error report)
 *    after the item was collected queues it again, and epoll_wait
 *    polls the socket when it hands the item out: data that arrives
 *    after a read emptied the queue is reported by a later collection,
 *    with EPOLLIN; a FIN or shutdown with EPOLLRDHUP, an error with
 *    EPOLLERR, urgent data (TCP_URG_VALID, set before its
 *    sk_data_ready) with EPOLLPRI, which is registered for this.
 *
 * The protocol: netpoll_ready increments redges for every read-side
 * event of the fd's gen (seq_cst, before it takes the slot). A recv
 * that may wait reads redges before its try (recv_try in io_net.c),
 * and when the try returns 0 < r < n on a TCP socket it records
 * rdrain = pd_key(gen, that count) + 1: "empty at a moment after
 * redges read this". The next recv skips its try when rdrain still
 * matches redges and gen (no edge collected since, not closed by
 * kgo_close), the fd is in the epoll (FDH_NETREG) and blocking
 * (FDH_BLOCKING), and rkind says TCP for this gen; it goes to
 * io_fd_wait, which finds PD_READY if an edge came meanwhile, or
 * parks until one does. An edge collected after the check either finds
 * the G in the slot or leaves PD_READY; one collected before it moved
 * redges. io_fd_begin's pd_reset runs before the check and acquires
 * what it clears, so an edge it cleared is one whose increment the
 * check sees. Two Gs on one socket: each record stands alone (any
 * record that still matches was true when made: later reads only
 * empty the queue further, data that arrives makes an edge), and a
 * second waiter takes the ring, whose recv does not depend on edges.
 *
 * What never skips: datagram, unix and raw sockets, pipes and ttys
 * (rkind: SO_TYPE and SO_PROTOCOL read once per fd and gen, at the
 * first record that could be used); MSG_PEEK, MSG_OOB, MSG_WAITALL,
 * MSG_TRUNC, MSG_ERRQUEUE, MSG_DONTWAIT, a deadline of 0 and
 * O_NONBLOCK fds (they see EAGAIN as before); and a socket whose gen
 * saw EPOLLRDHUP, EPOLLHUP, EPOLLERR or EPOLLPRI, or a MSG_OOB recv
 * (rkind PD_KIND_NODRAIN: a read that stopped at the FIN, an error or
 * the mark leaves something the next read must see at once, and no
 * edge will come for it). A skipped call whose own deadline had
 * passed still tries once before it reports -ETIMEDOUT. With
 * SO_RCVLOWAT a skipped call waits, as every netpoller wait does, for
 * the edge that the kernel raises at that many bytes (tcp_data_ready),
 * where its try would have returned fewer.
 *
 * Stale state: kgo_close moves gen, kgo_accept and kgo_open clear
 * rdrain and rkind (io_fd_fresh). A number closed with close(2) and
 * reused behind kgo's back may skip once wrongly: its wait is then a
 * stale-hint wait, which sysmon's look ends 10-20 ms into it: its
 * EPOLL_CTL_MOD reports the file's readiness now; ENOENT says the file
 * on the number is not the one registered (the epoll keys an item by
 * file and number), so it forgets rkind, and the next call reads
 * SO_TYPE again, before the ADD. A wrong skip thus costs at most what a
 * stale FDH_NETREG costs, never a hang; so does what the facts above
 * do not cover (kTLS control records, a protocol this list forgot).
 */
#define PD_READY	((uintptr_t)1)
#define PD_CLOSING	0x80000000u	/* in refs: kgo_close is at it */
#define PD_PAGE		4096
#define PD_NPAGES	1024
#define PD_SCAN_PAGES	16
#define NETPOLL_BATCH	128
#define NETPOLL_BREAK	UINT64_MAX	/* epoll data of io.breakfd */

struct pdesc {
	_Atomic uintptr_t rg, wg;	/* 0, PD_READY or the waiting G */
	_Atomic uint32_t gen;		/* ++ by kgo_close */
	_Atomic uint32_t cseq;		/* ++ by kgo_fd_cancel */
	_Atomic uint32_t dseq;		/* ++ when rd or wd change */
	_Atomic uint32_t refs;		/* calls in a wait; | PD_CLOSING */
	_Atomic uint32_t closer;	/* sema: kgo_close waits for refs 0 */
	_Atomic uint32_t nopoll;	/* gen + 1: epoll refused the file */
	_Atomic int64_t rd, wd;		/* fd deadlines, -1 none */
	_Atomic uint32_t wseq;		/* ++ at each wait; the waiter */
	uint64_t seen;			/* wseq << 1 at sysmon's last look,
					 * | 1 once checked; sysmon only */
	/* The deadline timers: tlock guards what follows, and orders a
	 * waiter's publication in rg/wg with its deadline. */
	struct kgo_lock tlock;
	_Atomic int64_t rdl, wdl;	/* the deadline of the G in the slot
					 * (0: none; stale once it left);
					 * written under tlock */
	int64_t rkey, wkey;		/* when rt, wt were armed for */
	bool rarmed, warmed;		/* armed, or popped and its fn not
					 * yet past tlock */
	struct timer rt, wt;
	/* The read side's drain record ("Drained sockets", below); each
	 * keyed by gen in its top half. */
	_Atomic uint32_t redges;	/* ++ at each read edge collected */
	_Atomic uint64_t rdrain;	/* pd_key(gen, redges before a short
					 * read) + 1; 0: none */
	_Atomic uint64_t rkind;		/* pd_key(gen, PD_KIND_*) */
};

static _Atomic(struct pdesc *) pd_pages[PD_NPAGES];
/* The highest fd that ever waited on the netpoller: netpoll_check looks
 * no further. Its scan of a whole page of descriptors every 10 ms, a
 * cache miss each, was 0.95% of the httpd example's samples with 100
 * connections on fds below 120 (`perf record -g -p PID` under wrk;
 * perf annotate io_sysmon: 79% on the load of rg). seq_cst: stored
 * before the wait counts in trust_gen, loaded after sysmon's round
 * read trust_gen, so a round that counts the wait also scans its fd. */
static _Atomic int pd_maxfd = -1;

static struct pdesc *pd_get(int fd, bool make)
{
	struct pdesc *pg, *fresh, *none = NULL;
	int i;

	if (fd < 0 || fd >= PD_PAGE * PD_NPAGES)
		return NULL;
	/* Acquire pairs with the release CAS that published the page. */
	pg = atomic_load_explicit(&pd_pages[fd / PD_PAGE], memory_order_acquire);
	if (!pg && make) {
		fresh = calloc(PD_PAGE, sizeof(*fresh));
		if (!fresh)
			return NULL;
		for (i = 0; i < PD_PAGE; i++) {
			atomic_init(&fresh[i].rd, -1);
			atomic_init(&fresh[i].wd, -1);
		}
		if (atomic_compare_exchange_strong_explicit(
				&pd_pages[fd / PD_PAGE], &none, fresh,
				memory_order_acq_rel, memory_order_acquire)) {
			pg = fresh;
		} else {
			free(fresh);
			pg = none;
		}
	}
	return pg ? &pg[fd % PD_PAGE] : NULL;
}

/* rkind's low half: what the file on the number is, for the gen in
 * its top half ("Drained sockets"). 0: not known. */
#define PD_KIND_TCP	1	/* a TCP stream socket: a short read drains */
#define PD_KIND_OTHER	2	/* anything else: always try */
#define PD_KIND_NODRAIN	3	/* TCP that saw an end, an error or urgent
				 * data: always try, until gen moves */

static uint64_t pd_key(uint32_t gen, uint32_t lo)
{
	return (uint64_t)gen << 32 | lo;
}

/* Add @fd to the netpoller's epoll (@op EPOLL_CTL_ADD: EEXIST when it
 * was), or with EPOLL_CTL_MOD have its readiness looked at again (ENOENT
 * when it is not there), edge-triggered, tagged with its gen. */
static long netpoll_ctl(int epfd, int op, int fd, uint32_t gen)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET,
		.data.u64 = pd_key(gen, (uint32_t)fd),
	};

	return io_raw(SYS_epoll_ctl, epfd, op, fd, (long)&ev, 0, 0);
}

/*
 * pd_take() - take the G out of @slot, if one waits there, leaving
 * @leave (0, or PD_READY for an edge). Return: the G, which the caller
 * must ready (pd_ready), or NULL.
 */
static struct g *pd_take(_Atomic uintptr_t *slot, uintptr_t leave)
{
	uintptr_t old = atomic_load_explicit(slot, memory_order_acquire);

	for (;;) {
		if (old == PD_READY || (old == 0 && leave == 0))
			return NULL;
		/* Acquire on success pairs with net_park's release: the G
		 * is off its stack and parked. */
		if (atomic_compare_exchange_weak_explicit(slot, &old, leave,
				memory_order_acq_rel, memory_order_acquire))
			break;
	}
	if (old == 0)
		return NULL;	/* an edge, left for the next waiter */
	atomic_fetch_sub_explicit(&io.nnet, 1, memory_order_relaxed);
	return (struct g *)old;
}

static void rp_push(struct reaped *rp, struct g *gp)
{
	gp->schedlink = rp->list;
	rp->list = gp;
	rp->ngs++;
	rp->nops++;	/* sched.nio counted it, as a ring op */
}

/*
 * netpoll_ready() - the file @key (fd and gen, as registered) is ready
 * for @events: ready its waiters into @rp, or leave PD_READY for the
 * next ones that look.
 */
static void netpoll_ready(uint64_t key, uint32_t events, struct reaped *rp)
{
	struct pdesc *pd = pd_get((int)(uint32_t)key, false);
	struct g *gp;

	if (!pd || atomic_load_explicit(&pd->gen, memory_order_relaxed) !=
	    (uint32_t)(key >> 32))
		return;		/* a file kgo_close closed: not this one */
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI)) {
		/* "Drained sockets": what a read may stop short at, then the
		 * edge's count, both before the slot (seq_cst). */
		if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI))
			atomic_store(&pd->rkind,
				     pd_key((uint32_t)(key >> 32), PD_KIND_NODRAIN));
		atomic_fetch_add(&pd->redges, 1);
		gp = pd_take(&pd->rg, PD_READY);
		if (gp)
			rp_push(rp, gp);
	}
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
		gp = pd_take(&pd->wg, PD_READY);
		if (gp)
			rp_push(rp, gp);
	}
}

/*
 * netpoll() - collect the files that became ready since the last look,
 * without waiting, and their waiters into @rp. Anyone may call it;
 * epoll hands each edge to one caller.
 */
static void netpoll(struct reaped *rp)
{
	struct epoll_event ev[NETPOLL_BATCH];
	int epfd = atomic_load_explicit(&io.epfd, memory_order_acquire);
	int n, i;

	if (epfd < 0)
		return;
	do {
		n = epoll_wait(epfd, ev, NETPOLL_BATCH, 0);
		for (i = 0; i < n; i++)
			netpoll_ready(ev[i].data.u64, ev[i].events, rp);
	} while (n == NETPOLL_BATCH);
}

/* Ready what pd_take took, from a G or g0 holding a P or not. */
static void pd_ready(struct g *gp)
{
	struct reaped rp = { 0 };

	if (!gp)
		return;
	rp_push(&rp, gp);
	reaped_ready(&rp);
}

/* Wake both sides' waiters of @pd (they look at its fields again). */
static void pd_wake(struct pdesc *pd, bool r, bool w)
{
	if (r)
		pd_ready(pd_take(&pd->rg, 0));
	if (w)
		pd_ready(pd_take(&pd->wg, 0));
}

/*
 * kgo_run's end, every M gone: Gs still parked on the netpoller were
 * abandoned with main's return, as every G is. Their waits end as the
 * ring's do in io_mexit: counted as cancelled, out of sched.nio. The
 * kernel holds nothing of theirs (epoll writes into no buffer). The
 * descriptors' deadlines and counts go with the runtime.
 */
static void netpoll_fini(void)
{
	int fd = atomic_exchange(&io.epfd, -1);
	_Atomic uintptr_t *slot;
	struct pdesc *pg;
	uintptr_t v;
	int i, j, k;

	if (fd >= 0)
		close(fd);
	for (k = 0; k < 2; k++) {
		fd = atomic_exchange(k ? &io.wepfd : &io.breakfd, -1);
		if (fd >= 0)
			close(fd);
	}
	for (i = 0; i < PD_NPAGES; i++) {
		pg = atomic_load(&pd_pages[i]);
		for (j = 0; pg && j < PD_PAGE; j++) {
			for (k = 0; k < 2; k++) {
				slot = k ? &pg[j].wg : &pg[j].rg;
				v = atomic_exchange_explicit(slot, 0,
						memory_order_acquire);
				if (v == 0 || v == PD_READY)
					continue;
				atomic_fetch_add(&io.cancelled, 1);
				atomic_fetch_sub(&sched.nio, 1);
				atomic_fetch_sub(&io.nnet, 1);
			}
			atomic_store(&pg[j].rd, -1);
			atomic_store(&pg[j].wd, -1);
			atomic_store(&pg[j].refs, 0);
			atomic_store(&pg[j].nopoll, 0);
			atomic_store(&pg[j].rdrain, 0);
			atomic_store(&pg[j].rkind, 0);
			/* timers_destroy has taken the timers off. */
			atomic_store(&pg[j].rdl, 0);
			atomic_store(&pg[j].wdl, 0);
			pg[j].rarmed = pg[j].warmed = false;
		}
	}
	if (atomic_load(&io.nnet))
		kgo_throw("netpoll_fini: lost count of netpoller waiters");
}

/*
 * The netpoller's epoll instance, made the first time a G waits on it,
 * with what an idle M needs to sleep on it without a ring (netpoll_
 * sleep): a second epoll holding the first and an eventfd that
 * notewakeup writes. Return: its fd, or -1 (then the G takes the ring
 * path).
 */
static int netpoll_fd(void)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int fd = atomic_load_explicit(&io.epfd, memory_order_acquire);
	int wfd, bfd;

	if (fd >= 0)
		return fd;
	lock(&io.lock);
	fd = atomic_load_explicit(&io.epfd, memory_order_relaxed);
	if (fd < 0) {
		fd = epoll_create1(EPOLL_CLOEXEC);
		wfd = epoll_create1(EPOLL_CLOEXEC);
		bfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fd >= 0 && wfd >= 0 && bfd >= 0) {
			ev.data.u64 = 0;
			epoll_ctl(wfd, EPOLL_CTL_ADD, fd, &ev);
			ev.data.u64 = NETPOLL_BREAK;
			epoll_ctl(wfd, EPOLL_CTL_ADD, bfd, &ev);
			atomic_store(&io.breakfd, bfd);
			atomic_store(&io.wepfd, wfd);
		} else {
			if (wfd >= 0)
				close(wfd);
			if (bfd >= 0)
				close(bfd);
		}
		/* Release: a reader of epfd may use the instance. */
		if (fd >= 0)
			atomic_store_explicit(&io.epfd, fd, memory_order_release);
	}
	unlock(&io.lock);
	return fd;
}

/* notewakeup of a note whose sleeper is in netpoll_sleep's epoll_wait
 * (lock_futex.c, NOTE_POLL). */
void io_netpoll_break(void)
{
	uint64_t one = 1;
	int fd = atomic_load_explicit(&io.breakfd, memory_order_acquire);

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the count is full, so the sleeper is awake. */
	}
}

/* ------------------------------------------------------------------ */
/* Making rings                                                       */
/* ------------------------------------------------------------------ */

static const char *errname(int err)
{
	const char *s = strerrorname_np(err);

	return s ? s : "?";
}

/* Why io_uring_setup failed, in words a user can act on. */
static void refusal_reason(int err, char *buf, size_t n)
{
	char v[8] = "";
	int fd;

	if (err == EPERM || err == EACCES) {
		fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (read(fd, v, sizeof(v) - 1) < 0)
				v[0] = 0;
			close(fd);
		}
		if (v[0] == '2') {
			snprintf(buf, n, "kernel.io_uring_disabled=2");
			return;
		}
		if (v[0] == '1') {
			snprintf(buf, n, "kernel.io_uring_disabled=1 and not "
				 "in kernel.io_uring_group");
			return;
		}
		snprintf(buf, n, "io_uring_setup: %s: refused by a seccomp "
			 "filter or security module", errname(err));
		return;
	}
	if (err == ENOSYS) {
		snprintf(buf, n, "io_uring_setup: ENOSYS: no io_uring in this "
			 "kernel, or a seccomp filter refuses it");
		return;
	}
	snprintf(buf, n, "io_uring_setup: %s (%s)", errname(err),
		 strerror(err));
}

/*
 * io_uring refused: from now on every call takes the syscall path; say
 * so once. If other Ms have rings already (a resource limit hit later,
 * say), only this M goes without: its calls take the syscall path.
 */
static void io_refuse(const char *why)
{
	bool some = false;

	lock(&io.lock);
	if (atomic_load_explicit(&io.mode, memory_order_relaxed) != IO_URING) {
		snprintf(io.why, sizeof(io.why), "%s", why);
		/* Release: why is written before anyone reads the mode. */
		atomic_store_explicit(&io.mode, IO_FALLBACK,
				      memory_order_release);
	} else {
		some = true;
	}
	unlock(&io.lock);
	if (atomic_exchange_explicit(&io.warned, true, memory_order_relaxed))
		return;
	if (some)
		kgo_printf("kgo: an M could not make its io_uring ring (%s): "
			   "its calls take the syscall path\n", why);
	else
		kgo_printf("kgo: io_uring not used (%s): file and network "
			   "calls take the syscall path\n", why);
}

static int ring_setup(struct io_uring *ring)
{
	struct io_uring_params p;
	int err;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_SUBMIT_ALL |
		  IORING_SETUP_CQSIZE;
	p.cq_entries = RING_CQ;
	err = io_uring_queue_init_params(RING_SQ, ring, &p);
	if (err != -EINVAL)
		return err;
	/* Before 6.0: no SINGLE_ISSUER. */
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = RING_CQ;
	return io_uring_queue_init_params(RING_SQ, ring, &p);
}

static _Atomic bool said_futex_op, said_ftruncate_op;

/* What this kernel's io_uring can do, once per run; io.lock held. */
static void ring_probe(struct io_ring *r)
{
	struct io_uring_probe *probe;

	io.probed = true;
	probe = io_uring_get_probe_ring(&r->ring);
	if (probe) {
		atomic_store(&io.futex_op,
			     io_uring_opcode_supported(probe, IORING_OP_FUTEX_WAIT));
		atomic_store(&io.ftruncate_op,
			     io_uring_opcode_supported(probe, IORING_OP_FTRUNCATE));
		io_uring_free_probe(probe);
	}
	io.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!atomic_load(&io.futex_op))
		kgo_fallback(&said_futex_op, "no IORING_OP_FUTEX_WAIT (6.7+): "
			     "an idle M with I/O in flight naps in its ring in "
			     "%d ms slices, and nobody watches the eventfd",
			     OLD_KERNEL_NAP / 1000000);
	if (!atomic_load(&io.ftruncate_op))
		kgo_fallback(&said_ftruncate_op, "no IORING_OP_FTRUNCATE "
			     "(6.9+): kgo_ftruncate takes the syscall path");
}

/*
 * ring_create() - give mp its ring; on g0 of mp (the owner must be the
 * thread that creates a SINGLE_ISSUER ring). Return: the ring, or NULL
 * (io_uring refused, or no memory): the caller takes the syscall path.
 */
static struct io_ring *ring_create(struct m *mp)
{
	struct io_ring *r;
	char why[sizeof(io.why)];
	int err;

	if (atomic_load_explicit(&io.mode, memory_order_acquire) == IO_FALLBACK)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	err = ring_setup(&r->ring);
	if (err) {
		free(r);
		refusal_reason(-err, why, sizeof(why));
		io_refuse(why);
		return NULL;
	}
	r->m = mp;
	/* Best effort, each: a ring without them still works. */
	io_uring_register_ring_fd(&r->ring);
	if (io.iowq[0] || io.iowq[1]) {
		unsigned v[2] = { io.iowq[0], io.iowq[1] };

		io_uring_register_iowq_max_workers(&r->ring, v);
	}

	lock(&io.lock);
	if (!io.probed)
		ring_probe(r);
	if (io.efd >= 0)
		io_uring_register_eventfd(&r->ring, io.efd);
	r->next = io.rings;
	io.rings = r;
	atomic_fetch_add_explicit(&io.nrings, 1, memory_order_relaxed);
	if (atomic_load_explicit(&io.mode, memory_order_relaxed) == IO_UNKNOWN)
		atomic_store_explicit(&io.mode, IO_URING, memory_order_release);
	unlock(&io.lock);
	mp->io = r;
	return r;
}

/* ------------------------------------------------------------------ */
/* Submitting                                                         */
/* ------------------------------------------------------------------ */

/* Push what the SQ holds to the kernel; owner only. */
static void ring_submit(struct io_ring *r)
{
	int ret;

	while (io_uring_sq_ready(&r->ring)) {
		ret = io_uring_submit(&r->ring);
		if (ret >= 0 || ret == -EINTR)
			continue;
		if (ret == -EAGAIN || ret == -EBUSY) {
			/* Out of kernel memory for a moment, or CQ overflow
			 * (the cap makes that unlikely): let reapers run. */
			sched_yield();
			continue;
		}
		kgo_printf("kgo: io_uring_enter: %s\n", strerror(-ret));
		kgo_throw("ring_submit: cannot submit");
	}
}

/* Sleep in the ring until a CQE arrives or @ns passed (< 0: forever),
 * submitting what the SQ holds first; owner only. */
static void ring_wait(struct io_ring *r, int64_t ns)
{
	struct __kernel_timespec ts, *tsp = NULL;
	struct io_uring_cqe *cqe;
	int ret;

	if (ns >= 0) {
		ts.tv_sec = ns / NSEC;
		ts.tv_nsec = ns % NSEC;
		tsp = &ts;
	}
	ret = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, tsp, NULL);
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN &&
	    ret != -EBUSY) {
		kgo_printf("kgo: io_uring_enter: %s\n", strerror(-ret));
		kgo_throw("ring_wait: cannot wait");
	}
}

static bool runq_has_work(struct p *pp)
{
	return atomic_load_explicit(&pp->runqhead, memory_order_relaxed) !=
	       atomic_load_explicit(&pp->runqtail, memory_order_relaxed) ||
	       atomic_load_explicit(&pp->runnext, memory_order_relaxed);
}

/*
 * submit_park() - the unlockf of io_ring_op's gopark, on the M the G
 * parked on once the G is off its stack and G_WAITING: on g0, or (after
 * a direct switch, proc.c) on the G switched to. Return: false to make
 * the G runnable again at once (completed during submission, or no
 * ring: op->res says).
 */
static bool submit_park(struct g *gp, void *arg)
{
	struct io_op *op = arg;
	struct m *mp = getm();
	struct io_ring *r = mp->io ? mp->io : ring_create(mp);
	int need = op->deadline > 0 ? 2 : 1;
	struct io_uring_sqe *sqe;
	struct reaped rp = { 0 };
	bool self_done = false;

	(void)gp;
	if (!r || atomic_load_explicit(&r->inflight, memory_order_relaxed) +
	    need > RING_CQ - RING_SPECIAL) {
		op->res = IO_NORING;
		return false;
	}
	/* The SQ is empty between submissions: these cannot fail. */
	sqe = io_uring_get_sqe(&r->ring);
	*sqe = op->sqe;
	io_uring_sqe_set_data(sqe, op);
	if (need == 2) {
		sqe->flags |= IOSQE_IO_LINK;
		op->ts.tv_sec = op->deadline / NSEC;
		op->ts.tv_nsec = op->deadline % NSEC;
		sqe = io_uring_get_sqe(&r->ring);
		/* The kernel copies ts while submitting. */
		io_uring_prep_link_timeout(sqe, &op->ts, IORING_TIMEOUT_ABS);
		sqe->user_data = UD_IGNORE;
	}
	/* Counted before the kernel can complete it: a reaper on another
	 * M subtracts as soon as the CQE is there. Relaxed: the CQE itself
	 * orders the reaper after this (the kernel's release store of the
	 * CQ tail, io_uring_enter being a full barrier before it). */
	atomic_fetch_add_explicit(&r->inflight, need, memory_order_relaxed);
	atomic_fetch_add_explicit(&sched.nio, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&sched.io_uring_ops, 1, memory_order_relaxed);
	tsan_release(op);
	ring_submit(r);

	/* From here op belongs to whoever reaps its CQE: touch it only if
	 * that is us (self_done). */
	if (cq_ready(r)) {
		cq_lock(r);
		reap_locked(r, op, &self_done, &rp, NULL);
		cq_unlock(r);
		reaped_ready(&rp);
	}
	if (self_done) {
		op->inline_done = true;
		atomic_fetch_add_explicit(&io.inline_ops, 1,
					  memory_order_relaxed);
		return false;
	}
	/* Nobody watches the rings of busy Ms and this one runs, or is
	 * about to run, another G: get an idle M going, to become the
	 * watcher. */
	if (!atomic_load_explicit(&io.watcher, memory_order_relaxed) &&
	    atomic_load_explicit(&sched.npidle, memory_order_relaxed) > 0 &&
	    (mp->curg || runq_has_work(mp->p)))
		wakep();
	return true;
}

long io_ring_op(struct io_op *op, int64_t deadline)
{
	op->gp = getg();
	op->deadline = deadline;
	op->res = IO_NORING;
	op->inline_done = false;
	gopark(submit_park, op, WAIT_IO);
	/* Cancelled by its linked timeout: -ECANCELED, or -EINTR when an
	 * io-wq worker was interrupted in a blocking call. */
	if (deadline > 0 && (op->res == -ECANCELED ||
			     (op->res == -EINTR && nanotime() >= deadline))) {
		atomic_fetch_add_explicit(&io.timeouts, 1, memory_order_relaxed);
		return -ETIMEDOUT;
	}
	return op->res;
}

bool io_ring_usable(void)
{
	return getg() && atomic_load_explicit(&io.mode, memory_order_relaxed) !=
			 IO_FALLBACK;
}

/*
 * struct net_wait - a G parking on the netpoller (io_fd_wait), on its
 * stack while it waits.
 * @pd, @slot:	its fd's descriptor and the side's slot.
 * @gen, @cseq, @dseq: what the wait began with; a change ends it.
 * @deadline:	the earlier of the call's and the fd's; < 0 none.
 * @res:	0: readied, or an edge was there: look again; IO_NORING:
 *		another G waits on this side (take the ring).
 */
struct net_wait {
	struct pdesc *pd;
	_Atomic uintptr_t *slot;
	uint32_t gen, cseq, dseq;
	int64_t deadline;
	int res;
	bool write;
	bool trusted;		/* parked on the FDH_NETREG hint alone */
};

static void pd_dl_fire(void *arg, uint64_t write);

/* Arm @pd's timer of one side for @when; tlock held. */
static void pd_dl_arm(struct pdesc *pd, bool write, int64_t when)
{
	struct timer *t = write ? &pd->wt : &pd->rt;

	/* fn again each time: timers_destroy clears it at kgo_run's end. */
	t->fn = pd_dl_fire;
	t->arg = pd;
	t->seq = write;
	t->idx = -1;
	timer_add(t, when);
	*(write ? &pd->wkey : &pd->rkey) = when;
	*(write ? &pd->warmed : &pd->rarmed) = true;
}

/*
 * pd_publish() - net_park: put @gp in @slot, the @write side's of @pd,
 * with its @deadline (<= 0 none), the timer armed for it (the poll
 * descriptor's comment). Its arguments are values, not the net_wait:
 * once the G is in the slot it may run again and its stack be reused.
 * Return: what was in the slot (0: published).
 */
static uintptr_t pd_publish(struct pdesc *pd, _Atomic uintptr_t *slot,
			    bool write, struct g *gp, int64_t deadline)
{
	_Atomic int64_t *dl = write ? &pd->wdl : &pd->rdl;
	uintptr_t old = 0;

	if (deadline < 0)
		deadline = 0;
	/* No deadline, and none left by a wait before: the timer's fn
	 * takes no G while dl is 0, and only a G in the slot sets it. */
	if (!deadline && !atomic_load_explicit(dl, memory_order_relaxed)) {
		atomic_compare_exchange_strong(slot, &old, (uintptr_t)gp);
		return old;
	}
	lock(&pd->tlock);
	/* seq_cst: as the CAS without the lock. */
	if (atomic_compare_exchange_strong(slot, &old, (uintptr_t)gp)) {
		atomic_store_explicit(dl, deadline, memory_order_relaxed);
		/* Later than the armed one: its fn moves it (pd_dl_fire).
		 * Earlier: now; a timer popped meanwhile has its fn waiting
		 * for tlock, which will see the new deadline. */
		if (deadline && !(write ? pd->warmed : pd->rarmed))
			pd_dl_arm(pd, write, deadline);
		else if (deadline && deadline < (write ? pd->wkey : pd->rkey) &&
			 timer_del(write ? &pd->wt : &pd->rt))
			pd_dl_arm(pd, write, deadline);
	}
	unlock(&pd->tlock);
	return old;
}

/* kgo_close: the file's deadline timers go with it (a timer popped
 * meanwhile finds no deadline and stays idle). */
static void pd_dl_disarm(struct pdesc *pd)
{
	lock(&pd->tlock);
	atomic_store_explicit(&pd->rdl, 0, memory_order_relaxed);
	atomic_store_explicit(&pd->wdl, 0, memory_order_relaxed);
	if (pd->rarmed && timer_del(&pd->rt))
		pd->rarmed = false;
	if (pd->warmed && timer_del(&pd->wt))
		pd->warmed = false;
	unlock(&pd->tlock);
}

/*
 * pd_dl_fire() - a side's deadline timer: the deadline of the G in the
 * slot has passed: take it out (the slot's CAS decides against every
 * other waker); or it moved later: fire then.
 */
static void pd_dl_fire(void *arg, uint64_t write)
{
	struct pdesc *pd = arg;
	_Atomic int64_t *dl = write ? &pd->wdl : &pd->rdl;
	struct g *gp = NULL;
	int64_t d;

	lock(&pd->tlock);
	d = atomic_load_explicit(dl, memory_order_relaxed);
	if (d > nanotime()) {
		pd_dl_arm(pd, write, d);
	} else {
		*(write ? &pd->warmed : &pd->rarmed) = false;
		if (d) {
			atomic_store_explicit(dl, 0, memory_order_relaxed);
			gp = pd_take(write ? &pd->wg : &pd->rg, 0);
		}
	}
	unlock(&pd->tlock);
	pd_ready(gp);
}

/* The wait's fields moved since it began (kgo_close, a cancel, a new
 * deadline). seq_cst: against the wakers' change-then-look. */
static bool pd_moved(struct pdesc *pd, uint32_t gen, uint32_t cseq,
		     uint32_t dseq)
{
	return atomic_load(&pd->gen) != gen || atomic_load(&pd->cseq) != cseq ||
	       atomic_load(&pd->dseq) != dseq;
}

/* The unlockf of io_fd_wait's gopark: arm the deadline, then publish the
 * G in its slot, now that it is off its stack. Return: false when it
 * must not sleep. */
static bool net_park(struct g *gp, void *arg)
{
	struct net_wait *w = arg;
	struct m *mp = getm();
	uintptr_t old;
	/* Read now: once the CAS below has published the G, it may be
	 * woken and running, and w (on its stack) gone. */
	struct pdesc *pd = w->pd;
	_Atomic uintptr_t *slot = w->slot;
	uint32_t gen = w->gen, cseq = w->cseq, dseq = w->dseq;
	int64_t deadline = w->deadline;
	bool trusted = w->trusted, write = w->write;

	/* Counted before the G can be found: whoever takes it from the
	 * slot subtracts them. */
	atomic_fetch_add_explicit(&sched.nio, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&io.nnet, 1, memory_order_relaxed);
	/* seq_cst: the wakers change a field and then look at the slot;
	 * we publish and then look at the fields (pd_moved). Release for
	 * whoever takes the G. */
	old = pd_publish(pd, slot, write, gp, deadline);
	if (old == 0) {
		/* A deadline that passed before the G was in the slot has
		 * its timer due now; the look spares the park (faults_test
		 * errno_table hung in 1 run of 4 under TSan without this
		 * look, when the timer was armed apart from the slot). */
		if (pd_moved(pd, gen, cseq, dseq) ||
		    (deadline > 0 && nanotime() >= deadline)) {
			/* Take ourselves back, unless a waker did. */
			if (pd_take(slot, 0) != gp)
				return true;
			atomic_fetch_sub_explicit(&sched.nio, 1,
						  memory_order_relaxed);
			w->res = 0;
			return false;
		}
		/* Trusting the hint: sysmon must stay up to check this
		 * wait should it last, and to poll every 10 ms while it
		 * does; seq_cst, against sysmon's deep or long sleep (sets
		 * its flag, then io_netpoll_unchecked). */
		if (trusted) {
			atomic_fetch_add(&io.trust_gen, 1);
			sysmon_wake_for_netpoll();
		}
		/* As submit_park: get an idle M going to watch. */
		if (!atomic_load_explicit(&io.watcher, memory_order_relaxed) &&
		    atomic_load_explicit(&sched.npidle, memory_order_relaxed) > 0 &&
		    (mp->curg || runq_has_work(mp->p)))
			wakep();
		return true;
	}
	atomic_fetch_sub_explicit(&io.nnet, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&sched.nio, 1, memory_order_relaxed);
	w->res = old == PD_READY ? 0 : IO_NORING;
	return false;
}

/* An edge seen before the caller's next try is stale: that try finds
 * the data anyway (Go's pollReset). Acquire: an edge cleared here had
 * its redges increment seen by io_fd_skip_try ("Drained sockets"). */
static void pd_reset(_Atomic uintptr_t *slot)
{
	uintptr_t ready = PD_READY;

	if (atomic_load_explicit(slot, memory_order_relaxed) == PD_READY)
		atomic_compare_exchange_strong_explicit(slot, &ready, 0,
				memory_order_acquire, memory_order_relaxed);
}

/* The earlier of two deadlines (< 0: none). */
static int64_t dl_min(int64_t a, int64_t b)
{
	if (a < 0)
		return b;
	return b >= 0 && b < a ? b : a;
}

static bool dl_passed(int64_t dl)
{
	return dl == 0 || (dl > 0 && nanotime() >= dl);
}

int io_fd_begin(struct io_fdw *fw, int fd, bool write, int64_t deadline)
{
	struct pdesc *pd = pd_get(fd, true);

	fw->pd = pd;
	fw->held = false;
	fw->deadline = deadline;
	if (!pd)
		return 0;
	/* Acquire: pairs with kgo_close's increment. */
	fw->gen = atomic_load_explicit(&pd->gen, memory_order_acquire);
	fw->cseq = atomic_load_explicit(&pd->cseq, memory_order_relaxed);
	if (dl_passed(atomic_load_explicit(write ? &pd->wd : &pd->rd,
					   memory_order_relaxed)))
		return -ETIMEDOUT;
	pd_reset(write ? &pd->wg : &pd->rg);
	return 0;
}

int64_t io_fd_deadline(struct io_fdw *fw, bool write)
{
	struct pdesc *pd = fw->pd;

	if (!pd)
		return fw->deadline;
	return dl_min(fw->deadline, atomic_load_explicit(write ? &pd->wd :
					&pd->rd, memory_order_relaxed));
}

/* Drop the call's count in refs; the last one out wakes kgo_close. */
static void pd_unhold(struct io_fdw *fw)
{
	struct pdesc *pd = fw->pd;
	uint32_t v;

	fw->held = false;
	v = atomic_fetch_sub(&pd->refs, 1);
	if (v == (PD_CLOSING | 1))
		semrelease(&pd->closer, false);
}

void io_fd_end(struct io_fdw *fw)
{
	if (fw->held)
		pd_unhold(fw);
}

/* Why a wait that began with @fw must end, or 0; *dl gets its deadline. */
static int pd_check(struct io_fdw *fw, bool write, int64_t *dl)
{
	struct pdesc *pd = fw->pd;

	if (atomic_load(&pd->gen) != fw->gen)
		return -EBADF;
	if (atomic_load(&pd->cseq) != fw->cseq)
		return -ECANCELED;
	if (fw->deadline == 0)
		return -EAGAIN;
	*dl = io_fd_deadline(fw, write);
	return dl_passed(*dl) ? -ETIMEDOUT : 0;
}

static void pd_note_maxfd(int fd)
{
	int old = atomic_load(&pd_maxfd);

	while (fd > old && !atomic_compare_exchange_weak(&pd_maxfd, &old, fd))
		;
}

int io_fd_wait(struct io_fdw *fw, int fd, bool write)
{
	struct pdesc *pd = fw->pd;
	struct net_wait w = { .pd = pd, .res = 0, .write = write };
	int64_t dl;
	uint8_t h;
	int epfd;
	long r;

	if (!pd || !getg() ||
	    atomic_load_explicit(&pd->nopoll, memory_order_relaxed) == fw->gen + 1)
		return IO_NORING;
	epfd = netpoll_fd();
	if (epfd < 0)
		return IO_NORING;
	/* Counted in refs while inside: kgo_close waits for us to leave
	 * before it closes the fd, so our retry after a wakeup cannot meet
	 * another file on the number. seq_cst: against its PD_CLOSING. */
	if (!fw->held) {
		fw->held = true;
		if (atomic_fetch_add(&pd->refs, 1) & PD_CLOSING)
			return -EBADF;
	}
	/* Edge-triggered, added at the first wait; the hint may be stale
	 * (the poll descriptor's comment, above pd_get): sysmon checks. */
	h = fdh_get(fd);
	if (!(h & FDH_NETREG)) {
		r = netpoll_ctl(epfd, EPOLL_CTL_ADD, fd, fw->gen);
		if (r < 0 && r != -EEXIST) {
			/* Not pollable (a regular file: EPERM), or no
			 * memory: the ring waits for it. */
			if (r == -EPERM)
				atomic_store_explicit(&pd->nopoll, fw->gen + 1,
						      memory_order_relaxed);
			pd_unhold(fw);
			return IO_NORING;
		}
		fdh_or(fd, FDH_NETREG);
	}
	/* Every wait, also one that just registered its fd: sysmon's one
	 * look at it is also what notices a close(2) behind kgo's back. */
	w.trusted = true;		/* net_park tells sysmon */
	w.slot = write ? &pd->wg : &pd->rg;
	w.gen = fw->gen;
	w.cseq = fw->cseq;
	/* Before the deadlines are read: a change after it ends the wait. */
	w.dseq = atomic_load(&pd->dseq);
	r = pd_check(fw, write, &dl);
	if (r)
		return r;
	/* The callers read the flag before their first wait, so this is
	 * the hint's answer; after sysmon found O_NONBLOCK set behind our
	 * back and woke us, a fresh read ("The O_NONBLOCK flag"). */
	if (fd_nonblock(fd))
		return -EAGAIN;
	w.deadline = dl;
	if (fd > atomic_load_explicit(&pd_maxfd, memory_order_relaxed))
		pd_note_maxfd(fd);
	atomic_store_explicit(&pd->wseq,
		atomic_load_explicit(&pd->wseq, memory_order_relaxed) + 1,
		memory_order_relaxed);
	gopark(net_park, &w, WAIT_IO);
	if (w.res == IO_NORING) {
		pd_unhold(fw);
		return IO_NORING;
	}
	/* The deadline's timer fires at or after it, by the same clock:
	 * woken by it, pd_check finds it passed. */
	r = pd_check(fw, write, &dl);
	if (r == -ETIMEDOUT)
		atomic_fetch_add_explicit(&io.timeouts, 1, memory_order_relaxed);
	if (r)
		return r;
	pd_reset(w.slot);		/* the edge that woke us */
	return 0;
}

int io_fd_close_begin(int fd)
{
	struct pdesc *pd = pd_get(fd, false);
	int spins = 0;

	if (!pd)
		return 0;
	/* seq_cst, each: against io_fd_wait's count in refs and
	 * net_park's look at gen after it published its G. */
	atomic_fetch_or(&pd->refs, PD_CLOSING);
	atomic_fetch_add(&pd->gen, 1);
	pd_wake(pd, true, true);
	/* The calls woken, or between a wakeup and their retry, leave. */
	while (atomic_load(&pd->refs) & ~PD_CLOSING) {
		if (getg())
			semacquire(&pd->closer, false, WAIT_IO);
		else if (++spins > 100)
			sched_yield();
		else
			cpu_relax();
	}
	/* A release that came after our last look only costs the next
	 * close of this number one more look. */
	atomic_store(&pd->closer, 0);
	pd_dl_disarm(pd);
	atomic_store(&pd->rd, -1);
	atomic_store(&pd->wd, -1);
	atomic_store(&pd->nopoll, 0);
	atomic_fetch_and(&pd->refs, ~PD_CLOSING);
	return 0;
}

void io_fd_fresh(int fd)
{
	struct pdesc *pd = pd_get(fd, false);

	if (!pd)
		return;
	/* A number closed with close(2) behind kgo's back keeps what was
	 * set for the old file: a new connection starts without. */
	if (atomic_load_explicit(&pd->rd, memory_order_relaxed) != -1)
		atomic_store(&pd->rd, -1);
	if (atomic_load_explicit(&pd->wd, memory_order_relaxed) != -1)
		atomic_store(&pd->wd, -1);
	if (atomic_load_explicit(&pd->nopoll, memory_order_relaxed))
		atomic_store(&pd->nopoll, 0);
	/* Nor what was known of the old file's queue ("Drained sockets"). */
	if (atomic_load_explicit(&pd->rdrain, memory_order_relaxed))
		atomic_store(&pd->rdrain, 0);
	if (atomic_load_explicit(&pd->rkind, memory_order_relaxed))
		atomic_store(&pd->rkind, 0);
}

uint32_t io_fd_edges(struct io_fdw *fw)
{
	return fw->pd ? atomic_load(&((struct pdesc *)fw->pd)->redges) : 0;
}

void io_fd_drained(struct io_fdw *fw, uint32_t edges)
{
	struct pdesc *pd = fw->pd;

	/* Relaxed: every record that still matches redges was true when
	 * it was made, whichever one a reader sees. */
	if (pd)
		atomic_store_explicit(&pd->rdrain, pd_key(fw->gen, edges) + 1,
				      memory_order_relaxed);
}

void io_fd_nodrain(struct io_fdw *fw)
{
	struct pdesc *pd = fw->pd;

	if (pd)
		atomic_store(&pd->rkind, pd_key(fw->gen, PD_KIND_NODRAIN));
}

/* rkind for @gen: a TCP stream socket or not, read once per gen; the
 * CAS from what was read (@old) keeps a NODRAIN stored meanwhile. */
static uint64_t pd_learn_kind(struct pdesc *pd, int fd, uint32_t gen,
			      uint64_t old)
{
	int type = 0, proto = 0;
	socklen_t len = sizeof(int);
	uint64_t kind = pd_key(gen, PD_KIND_OTHER);

	if (!io_raw(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, (long)&type,
		    (long)&len, 0) && type == SOCK_STREAM &&
	    !io_raw(SYS_getsockopt, fd, SOL_SOCKET, SO_PROTOCOL, (long)&proto,
		    (long)&len, 0) && proto == IPPROTO_TCP)
		kind = pd_key(gen, PD_KIND_TCP);
	if (!atomic_compare_exchange_strong(&pd->rkind, &old, kind))
		return old;
	return kind;
}

bool io_fd_skip_try(struct io_fdw *fw, int fd)
{
	struct pdesc *pd = fw->pd;
	uint8_t need = FDH_NETREG | FDH_BLOCKING;
	uint64_t d, kind;
	struct m *mp;

	if (!pd)
		return false;
	d = atomic_load_explicit(&pd->rdrain, memory_order_relaxed);
	/* seq_cst, after io_fd_begin's pd_reset (the comment above). */
	if (!d || d != pd_key(fw->gen, atomic_load(&pd->redges)) + 1 ||
	    (fdh_get(fd) & need) != need)
		return false;
	kind = atomic_load_explicit(&pd->rkind, memory_order_relaxed);
	if ((uint32_t)(kind >> 32) != fw->gen || !(kind & 3))
		kind = pd_learn_kind(pd, fd, fw->gen, kind);
	if (kind != pd_key(fw->gen, PD_KIND_TCP))
		return false;
	mp = getm();
	count_on_p(mp && mp->p ? &mp->p->net_skipped : NULL,
		   &sched.net_tries_skipped);
	return true;
}

int kgo_fd_cancel(int fd)
{
	struct pdesc *pd;

	if (fd < 0 || fd >= PD_PAGE * PD_NPAGES)
		return -EBADF;
	pd = pd_get(fd, false);
	if (!pd)
		return 0;	/* nobody ever waited on it */
	atomic_fetch_add(&pd->cseq, 1);	/* seq_cst: then look (net_park) */
	pd_wake(pd, true, true);
	return 0;
}

int kgo_fd_set_deadline(int fd, int64_t rd, int64_t wd)
{
	struct pdesc *pd;

	if (fd < 0 || fd >= PD_PAGE * PD_NPAGES)
		return -EBADF;
	pd = pd_get(fd, true);
	if (!pd)
		return -ENOMEM;
	if (rd != KGO_DEADLINE_KEEP)
		atomic_store(&pd->rd, rd < 0 ? -1 : rd);
	if (wd != KGO_DEADLINE_KEEP)
		atomic_store(&pd->wd, wd < 0 ? -1 : wd);
	/* seq_cst: then look at the slots (net_park looks at dseq after
	 * it published): the waiters look at their deadline again. */
	atomic_fetch_add(&pd->dseq, 1);
	pd_wake(pd, rd != KGO_DEADLINE_KEEP, wd != KGO_DEADLINE_KEEP);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The scheduler's hooks                                              */
/* ------------------------------------------------------------------ */

/* findrunnable, first thing: the owner reaps its ring onto its P; with
 * nothing else to run, it looks at the netpoller too (Go's findrunnable
 * polls the network when its run queues are empty). */
void io_poll(struct m *mp)
{
	struct io_ring *r = mp->io;
	struct reaped rp = { 0 };
	bool efd = false, net;

	/* Not while the global queue has Gs: findrunnable takes a batch
	 * of them first and polls after (io_poll_net), so that the poll's
	 * Gs queue behind them. Polled first, its Gs refilled the local
	 * queue at every wait, and Gs on the global queue (sysmon's poll
	 * puts its Gs there) ran one per 61 switches (io_net_test
	 * netpoll_cannot_starve_global_queue: 64 such Gs waited ~1860
	 * round trips of a socket pair, 0 now; the HTTP server's p99 was
	 * 12-24 ms in one run of three). */
	net = atomic_load_explicit(&io.nnet, memory_order_relaxed) > 0 &&
	      mp->p && !runq_has_work(mp->p) &&
	      !atomic_load_explicit(&sched.runqsize, memory_order_relaxed);
	if (!r) {
		/* No ring (the syscall path): the netpoller only. */
		if (net) {
			netpoll(&rp);
			reaped_ready(&rp);
		}
		return;
	}
	if (!cq_ready(r) && !net)
		return;
	cq_lock(r);
	reap_locked(r, NULL, NULL, &rp, &efd);
	cq_unlock(r);
	/* Our eventfd read or netpoller poll (armed when we last watched)
	 * fired while we were away: someone's completions wait; we are
	 * here, look. */
	if (efd)
		scan_rings(mp, &rp);
	if (efd || net)
		netpoll(&rp);
	reaped_ready(&rp);
}

void io_poll_net(struct m *mp)
{
	struct reaped rp = { 0 };

	/* Go polls only once both queues are empty (findRunnable), so a
	 * G that a yielding or CPU-bound G keeps on the global queue
	 * leaves the netpoller to sysmon's 10 ms look; here each batch
	 * taken for an empty local queue polls too. */
	if (!mp->p || !atomic_load_explicit(&io.nnet, memory_order_relaxed))
		return;
	netpoll(&rp);
	reaped_ready(&rp);
}

/* Notifications of r's completions to io.efd on (owner away) or off
 * (owner asleep in the ring, reaping it itself); owner only. */
static void attend(struct io_ring *r, bool on)
{
	unsigned *kflags = r->ring.cq.kflags, f;

	atomic_store_explicit(&r->attending, on, memory_order_relaxed);
	if (!kflags)
		return;
	/* The kernel only reads this word; relaxed: a notification lost
	 * to the race when turning them back on finds the owner, which
	 * reaps in findrunnable next (or io_sysmon does). */
	f = __atomic_load_n(kflags, __ATOMIC_RELAXED);
	f = on ? f | IORING_CQ_EVENTFD_DISABLED : f & ~IORING_CQ_EVENTFD_DISABLED;
	__atomic_store_n(kflags, f, __ATOMIC_RELAXED);
}

static void arm_park(struct io_ring *r, struct m *mp)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	/* Completes when notewakeup sees NOTE_KERNEL_VALUE and makes its
	 * FUTEX_WAKE, or at once if the key is something else by the time
	 * the kernel looks: no lost wakeup (lock_futex.c, note_enter_kernel). */
	io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe,
			 KGO_FUTEX2_SIZE_U32 | KGO_FUTEX2_PRIVATE,
			 (void *)&mp->park.key, 0, 0);
	sqe->addr2 = NOTE_KERNEL_VALUE;	/* the value to sleep on */
	sqe->addr3 = KGO_FUTEX_BITSET_ANY;
	sqe->user_data = UD_PARK;
	atomic_store_explicit(&r->park_armed, true, memory_order_relaxed);
	atomic_fetch_add_explicit(&r->inflight, 1, memory_order_relaxed);
}

/* The watcher's poll of the netpoller's epoll: it completes when a
 * socket has an edge that nobody collected. */
static void arm_netpoll(struct io_ring *r, int epfd)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	io_uring_prep_poll_add(sqe, epfd, POLLIN);
	sqe->user_data = UD_NETPOLL;
	atomic_store_explicit(&r->ep_armed, true, memory_order_relaxed);
	atomic_fetch_add_explicit(&r->inflight, 1, memory_order_relaxed);
}

static void arm_eventfd(struct io_ring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	/* Reading resets the count: signals from before are consumed here
	 * (at worst one wakeup for nothing), and any after it complete it. */
	io_uring_prep_read(sqe, io.efd, &r->efd_buf, sizeof(r->efd_buf),
			   (uint64_t)-1);
	sqe->user_data = UD_EVENTFD;
	atomic_store_explicit(&r->efd_armed, true, memory_order_relaxed);
	atomic_fetch_add_explicit(&r->inflight, 1, memory_order_relaxed);
}

/* An idle M should take the watch: operations are in flight and nobody
 * watches. */
static bool watch_wanted(void)
{
	return atomic_load_explicit(&sched.nio, memory_order_relaxed) > 0 &&
	       !atomic_load_explicit(&io.watcher, memory_order_relaxed) &&
	       io.efd >= 0 && atomic_load(&io.futex_op);
}

/* Spin as notesleep_until does before sleeping (lock_futex.c: work often
 * comes within microseconds, and then nobody pays for a wakeup), until
 * the note is woken or the ring has a completion. Return: woken. */
static bool spin_before_sleep(struct io_ring *r, struct m *mp,
			      int64_t deadline)
{
	int64_t until = nanotime() + IO_SPIN_NS;
	int i;

	if (deadline >= 0 && deadline < until)
		until = deadline;
	do {
		for (i = 0; i < 64; i++) {
			if (note_is_woken(&mp->park))
				return true;
			if (cq_ready(r))
				return false;
			cpu_relax();
		}
	} while (nanotime() < until);
	return false;
}

/*
 * netpoll_sleep() - the watcher without a ring (the syscall path, or a
 * kernel without IORING_OP_FUTEX_WAIT): sleep in epoll_wait on io.wepfd,
 * which holds the netpoller's epoll and io.breakfd, until a file has an
 * edge, @deadline, or notewakeup (the note says NOTE_POLL, and the waker
 * writes io.breakfd: lock_futex.c). Go's blocking netpoll with its
 * netpollBreak. The caller made us io.watcher. Return: as io_notesleep
 * with wake_on_io.
 */
static bool netpoll_sleep(struct m *mp, int64_t deadline)
{
	int wfd = atomic_load_explicit(&io.wepfd, memory_order_acquire);
	struct reaped rp = { 0 };
	struct epoll_event ev[2];
	struct timespec ts, *tsp;
	bool woken = false;
	uint64_t junk;
	int64_t now;
	int n, i;

	for (;;) {
		netpoll(&rp);
		n = rp.ngs;
		reaped_ready(&rp);	/* onto the global queue: no P */
		if (n) {
			if (n > 1)
				wakep();
			break;
		}
		if (note_is_woken(&mp->park)) {
			woken = true;
			break;
		}
		now = nanotime();
		if ((deadline >= 0 && now >= deadline) || wfd < 0 ||
		    !atomic_load_explicit(&io.nnet, memory_order_relaxed)) {
			/* Nothing to watch any more: the note alone. */
			atomic_store_explicit(&io.watcher, NULL,
					      memory_order_relaxed);
			return deadline >= 0 && now >= deadline ? false :
			       notesleep_until(&mp->park, deadline);
		}
		tsp = NULL;
		if (deadline >= 0) {
			ts.tv_sec = (deadline - now) / NSEC;
			ts.tv_nsec = (deadline - now) % NSEC;
			tsp = &ts;
		}
		if (!note_enter_poll(&mp->park)) {
			woken = true;
			break;
		}
		n = io_raw(SYS_epoll_pwait2, wfd, (long)ev, 2, (long)tsp, 0, 0);
		for (i = 0; i < n; i++)
			if (ev[i].data.u64 == NETPOLL_BREAK &&
			    read(atomic_load(&io.breakfd), &junk,
				 sizeof(junk)) < 0)
				break;	/* reset: EAGAIN, someone read it */
		if (!note_leave_poll(&mp->park)) {
			woken = true;
			break;
		}
	}
	atomic_store_explicit(&io.watcher, NULL, memory_order_relaxed);
	return woken;
}

/*
 * io_notesleep() - an idle M sleeps on its park note (notesleep_until's
 * contract: true when woken, false at @deadline), in its ring when it
 * has one, so that its completions wake it too. With @wake_on_io it
 * also returns false when it readied Gs (onto the global queue), for
 * findrunnable to run them; without, it gets them run by others (wakep)
 * and sleeps on.
 */
bool io_notesleep(struct m *mp, int64_t deadline, bool wake_on_io)
{
	struct io_ring *r = mp->io;
	struct m *none = NULL;
	bool watch = false, woken = false, futex_op;
	int64_t now, nap;
	int epfd;

	if (!r && wake_on_io && watch_wanted())
		r = ring_create(mp);
	futex_op = atomic_load_explicit(&io.futex_op, memory_order_relaxed);
	if (!r || (!futex_op &&
		   atomic_load_explicit(&r->inflight, memory_order_relaxed) == 0)) {
		if (wake_on_io &&
		    atomic_load_explicit(&io.nnet, memory_order_relaxed) > 0 &&
		    atomic_compare_exchange_strong(&io.watcher, &none, mp))
			return netpoll_sleep(mp, deadline);
		return notesleep_until(&mp->park, deadline);
	}
	if (spin_before_sleep(r, mp, deadline))
		return true;

	if (wake_on_io && watch_wanted())
		watch = atomic_compare_exchange_strong(&io.watcher, &none, mp);
	attend(r, true);
	for (;;) {
		struct reaped rp = { 0 };
		bool efd = false;
		int n;

		cq_lock(r);
		reap_locked(r, NULL, NULL, &rp, &efd);
		cq_unlock(r);
		if (watch) {
			scan_rings(mp, &rp);
			netpoll(&rp);
		}
		n = rp.ngs;
		reaped_ready(&rp);	/* onto the global queue: no P */
		if (n) {
			if (wake_on_io) {
				/* We take one P ourselves; help for the rest. */
				if (n > 1)
					wakep();
				break;
			}
			wakep();
		}
		if (note_is_woken(&mp->park)) {
			woken = true;
			break;
		}
		now = nanotime();
		if (deadline >= 0 && now >= deadline)
			break;
		nap = deadline >= 0 ? deadline - now : -1;
		if (!futex_op && (nap < 0 || nap > OLD_KERNEL_NAP))
			nap = OLD_KERNEL_NAP;
		/* From here notewakeup makes the FUTEX_WAKE that completes
		 * our FUTEX_WAIT; the eventfd read, armed after the look at
		 * the other rings, catches what completes there from now. */
		if (!note_enter_kernel(&mp->park)) {
			woken = true;
			break;
		}
		if (futex_op &&
		    !atomic_load_explicit(&r->park_armed, memory_order_relaxed))
			arm_park(r, mp);
		if (watch &&
		    !atomic_load_explicit(&r->efd_armed, memory_order_relaxed))
			arm_eventfd(r);
		epfd = atomic_load_explicit(&io.epfd, memory_order_acquire);
		if (watch && epfd >= 0 &&
		    !atomic_load_explicit(&r->ep_armed, memory_order_relaxed))
			arm_netpoll(r, epfd);
		ring_wait(r, nap);
		if (!note_leave_kernel(&mp->park)) {
			woken = true;
			break;
		}
	}
	attend(r, false);
	if (watch)
		atomic_store_explicit(&io.watcher, NULL, memory_order_relaxed);
	return woken;
}

/* sysmon, at its look at a lasting wait on @fd: O_NONBLOCK was set
 * behind kgo's back on an fd it knows as blocking ("The O_NONBLOCK
 * flag", above): drop the mark; the caller wakes the waiters. */
static bool fd_nonblock_changed(int fd)
{
	long fl;

	if (!(fdh_get(fd) & FDH_BLOCKING))
		return false;
	/* Not counted in flag_reads: how many waits last that long is the
	 * load's (io_net_test nonblock_cached counts the calls' reads). */
	fl = io_raw(SYS_fcntl, fd, F_GETFL, 0, 0, 0, 0);
	if (fl < 0 || !(fl & O_NONBLOCK))
		return false;
	fdh_clear(fd, FDH_BLOCKING);
	return true;
}

/*
 * netpoll_check() - sysmon, before its netpoll: one EPOLL_CTL_MOD (and
 * an ADD where it says ENOENT) for each wait found parked at two looks (the netpoller's comment, above
 * pd_get), PD_SCAN_PAGES pages of fds a look.
 */
static void netpoll_check(struct reaped *rp)
{
	static int next_page;
	static bool round_unchecked;
	static uint64_t round_gen;
	uint64_t gen = atomic_load(&io.trust_gen);
	int epfd = atomic_load_explicit(&io.epfd, memory_order_acquire);
	int scanned = 0, i, j, k, fd;
	struct pdesc *pg;
	uintptr_t v;
	uint64_t seq, kind;
	uint32_t gen32;
	int maxj;
	long r;

	/* gen before nnet: a waiter counted in gen counted in nnet first. */
	if (epfd < 0 || !atomic_load(&io.nnet)) {
		atomic_store(&io.checked_gen, gen);
		return;
	}
	for (k = 0; k < PD_NPAGES && scanned < PD_SCAN_PAGES; k++) {
		i = next_page;
		next_page = (next_page + 1) % PD_NPAGES;
		if (next_page == 0) {
			/* A round is over: the waits counted in trust_gen
			 * before it began were all in their slots during it;
			 * if it found none unchecked, sysmon may sleep. */
			if (!round_unchecked)
				atomic_store(&io.checked_gen, round_gen);
			round_unchecked = false;
			round_gen = atomic_load(&io.trust_gen);
		}
		pg = atomic_load_explicit(&pd_pages[i], memory_order_acquire);
		if (!pg)
			continue;
		scanned++;
		maxj = atomic_load(&pd_maxfd) - i * PD_PAGE;
		for (j = 0; j < PD_PAGE && j <= maxj; j++) {
			v = atomic_load_explicit(&pg[j].rg, memory_order_relaxed);
			if (v == 0 || v == PD_READY)
				v = atomic_load_explicit(&pg[j].wg,
							 memory_order_relaxed);
			if (v == 0 || v == PD_READY) {
				pg[j].seen = 0;
				continue;
			}
			seq = (uint64_t)atomic_load_explicit(&pg[j].wseq,
					memory_order_relaxed) << 1;
			if ((pg[j].seen & ~1ULL) != seq) {
				pg[j].seen = seq;	/* a new wait */
				round_unchecked = true;
				continue;
			}
			if (pg[j].seen & 1)
				continue;		/* checked */
			pg[j].seen |= 1;
			/* MOD: the file's readiness looked at again, which
			 * ends a wait that a wrong skip of the try began
			 * ("Drained sockets"); ENOENT: not in the epoll (a
			 * stale hint), add it; EBADF: closed behind kgo's
			 * back, the waiters' retries say so (the poll
			 * descriptor's comment). */
			gen32 = atomic_load(&pg[j].gen);
			fd = i * PD_PAGE + j;
			r = netpoll_ctl(epfd, EPOLL_CTL_MOD, fd, gen32);
			if (r == -ENOENT) {
				/* Another file on the number: what was
				 * learnt of the old one's kind goes. */
				kind = pd_key(gen32, PD_KIND_TCP);
				atomic_compare_exchange_strong(&pg[j].rkind,
							       &kind, 0);
				r = netpoll_ctl(epfd, EPOLL_CTL_ADD, fd, gen32);
			}
			if (r == -EBADF)
				netpoll_ready((uint64_t)gen32 << 32 |
					      (uint32_t)fd, EPOLLERR, rp);
			/* O_NONBLOCK set behind kgo's back: the waiters
			 * look again ("The O_NONBLOCK flag"). */
			else if (fd_nonblock_changed(fd))
				netpoll_ready((uint64_t)gen32 << 32 |
					      (uint32_t)fd, EPOLLIN | EPOLLOUT,
					      rp);
		}
	}
}

bool io_netpoll_unchecked(void)
{
	/* seq_cst, trust_gen first: against net_park's nnet++, then
	 * trust_gen++, then its look at sysmon_sleeping. With no G on the
	 * netpoller there is nothing to check (and no io_sysmon round to
	 * catch checked_gen up): sysmon may sleep. */
	uint64_t gen = atomic_load(&io.trust_gen);

	return atomic_load(&io.checked_gen) != gen &&
	       atomic_load(&io.nnet) > 0;
}

/* sysmon: reap the rings nobody looked at (owners busy or blocked), at
 * most every 10 ms while Gs wait for io. */
void io_sysmon(int64_t now)
{
	struct reaped rp = { 0 };
	int n;
	int64_t last = atomic_load_explicit(&io.last_scan, memory_order_relaxed);

	if (atomic_load_explicit(&sched.nio, memory_order_relaxed) == 0 ||
	    now - last < SYSMON_POLL_NS ||
	    !atomic_compare_exchange_strong(&io.last_scan, &last, now))
		return;
	scan_rings(NULL, &rp);
	n = rp.ngs;
	netpoll_check(&rp);
	netpoll(&rp);
	/* Edges nobody else collected since they came, up to a period
	 * ago: a request's wait that sysmon ended (README, "HTTP under
	 * wrk": where the slow requests wait). */
	if (rp.ngs > n)
		atomic_fetch_add_explicit(&io.sysmon_readies, rp.ngs - n,
					  memory_order_relaxed);
	if (rp.ngs) {
		reaped_ready(&rp);
		wakep();
	}
}

/*
 * io_mexit() - the M is leaving: cancel what is in flight in its ring,
 * wait for every CQE, close the ring. Called on the M's own thread.
 */
void io_mexit(struct m *mp)
{
	struct io_ring *r = mp->io, **pr;
	struct io_uring_sqe *sqe;
	struct m *self = mp;
	int64_t warn = nanotime() + 5 * NSEC;

	if (!r)
		return;
	/* Off the list first: once io.lock is released no scanner is in
	 * this ring or can find it. */
	lock(&io.lock);
	for (pr = &io.rings; *pr != r; pr = &(*pr)->next)
		;
	*pr = r->next;
	atomic_fetch_sub_explicit(&io.nrings, 1, memory_order_relaxed);
	unlock(&io.lock);
	atomic_compare_exchange_strong(&io.watcher, &self, NULL);

	if (atomic_load(&r->inflight) > 0) {
		sqe = io_uring_get_sqe(&r->ring);
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY |
					       IORING_ASYNC_CANCEL_ALL);
		sqe->user_data = UD_IGNORE;
		atomic_fetch_add(&r->inflight, 1);
		ring_submit(r);
	}
	while (atomic_load(&r->inflight) > 0) {
		struct reaped rp = { 0 };
		struct g *gp;

		cq_lock(r);
		reap_locked(r, NULL, NULL, &rp, NULL);
		cq_unlock(r);
		atomic_fetch_add_explicit(&io.cancelled, rp.ngs,
					  memory_order_relaxed);
		if (atomic_load(&sched.exiting)) {
			/* Abandoned with main's return, as every G is. */
			while ((gp = rp.list)) {
				rp.list = gp->schedlink;
				gp->schedlink = NULL;
			}
		}
		reaped_ready(&rp);
		if (atomic_load(&r->inflight) == 0)
			break;
		ring_wait(r, NSEC / 10);
		if (nanotime() > warn) {
			kgo_printf("kgo: M%d waits for %d io operations to "
				   "finish before it exits\n", mp->id,
				   (int)atomic_load(&r->inflight));
			warn += 5 * NSEC;
		}
	}
	io_uring_queue_exit(&r->ring);
	mp->io = NULL;
	free(r);
}

/*
 * io_abandon() - m0, at kgo_run's end: mp was left behind in a system
 * call (proc.c, "Abandoning Ms") and will never drain its ring. Closing
 * it from here would not end it: the thread's registered ring fd holds
 * the file. So the ring is taken off the list and left open, with what
 * is in flight in it; the park, eventfd and netpoll reads write only to
 * mp and the ring, kept with them.
 */
bool io_abandon(struct m *mp)
{
	struct io_ring *r = mp->io, **pr;
	struct m *self = mp;
	int32_t ops;

	if (!r)
		return false;
	lock(&io.lock);
	for (pr = &io.rings; *pr != r; pr = &(*pr)->next)
		;
	*pr = r->next;
	atomic_fetch_sub_explicit(&io.nrings, 1, memory_order_relaxed);
	unlock(&io.lock);
	atomic_compare_exchange_strong(&io.watcher, &self, NULL);
	ops = atomic_load(&r->inflight) - atomic_load(&r->park_armed) -
	      atomic_load(&r->efd_armed) - atomic_load(&r->ep_armed);
	return ops > 0;
}

/* ------------------------------------------------------------------ */
/* The syscall path                                                   */
/* ------------------------------------------------------------------ */

long io_raw(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	/* Straight to the kernel, -errno back: glibc's wrappers cost ~4%
	 * of the pread bench (cancellation points, errno). */
	return kgo_arch_syscall6(nr, a0, a1, a2, a3, a4, a5);
}

long io_sys(bool blocking, long nr, long a0, long a1, long a2, long a3,
	    long a4, long a5)
{
	long r;

	if (!getg())
		return io_raw(nr, a0, a1, a2, a3, a4, a5);
	atomic_fetch_add_explicit(&sched.io_fallback_ops, 1,
				  memory_order_relaxed);
	if (blocking)
		kgo_syscall_begin_blocking();
	else
		kgo_syscall_begin();
	/* The runtime's signals (preemption) must not show as EINTR; but a
	 * close is never retried (the fd is gone either way), nor a call
	 * whose caller recomputes its timeout. */
	do {
		r = io_raw(nr, a0, a1, a2, a3, a4, a5);
	} while (r == -EINTR && nr != SYS_close && nr != SYS_ppoll &&
		 nr != SYS_connect);
	kgo_syscall_end();
	return r;
}

int io_poll0(int fd, short events)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	struct timespec zero = { 0, 0 };
	long r;

	/* A try: a signal that lands during it (SIGURG preemption under
	 * load) is no reason to fail. .ci/run beside two busy loops saw a
	 * try-accept return -EINTR (io_net_test syscalls.deadlines). */
	do
		r = io_raw(SYS_ppoll, (long)&pfd, 1, (long)&zero, 0, 0, 0);
	while (r == -EINTR);
	return r > 0 ? pfd.revents : (int)r;
}

int io_wait_ready(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	struct timespec ts, *tsp;
	int64_t left;
	long r;

	if (deadline == 0) {
		r = io_poll0(fd, events);
		return r == 0 ? -EAGAIN : r;
	}
	for (;;) {
		tsp = NULL;
		if (deadline > 0) {
			left = deadline - nanotime();
			if (left <= 0)
				return -ETIMEDOUT;
			ts.tv_sec = left / NSEC;
			ts.tv_nsec = left % NSEC;
			tsp = &ts;
		}
		r = io_sys(true, SYS_ppoll, (long)&pfd, 1, (long)tsp, 0, 0, 0);
		if (r > 0)
			return pfd.revents;
		if (r < 0 && r != -EINTR)
			return r;
	}
}

void io_count_nowait(void)
{
	struct m *mp = getm();
	struct p *pp = mp ? mp->p : NULL;

	count_on_p(pp ? &pp->io_nowait : NULL, &sched.io_nowait_hits);
}

/*
 * The O_NONBLOCK flag
 * -------------------
 * kgo.h promises -EAGAIN instead of a wait on an O_NONBLOCK fd, so a
 * call that would wait must know the flag. It lives in the open file
 * description, where a fcntl(F_SETFL), an ioctl(FIONBIO), another
 * process sharing the file, or a close(2) and reuse of the number can
 * change it without kgo seeing. Reading it before every wait cost an
 * fcntl(F_GETFL) per request in the httpd example, 5.5% of the server's
 * samples (`perf record -g -p $(pidof httpd)` under `wrk -t1 -c100`:
 * 3.1% in the kernel under fd_nonblock, 2.4% in its io_raw). So the
 * answer "blocking" is kept in the fd's hint byte (FDH_BLOCKING), Go's
 * way (an os.File knows whether it is non-blocking from its creation):
 *
 *  - set by the first read of the flag that finds it clear, and by
 *    kgo_accept and kgo_open from the flags they made the fd with;
 *  - dropped by kgo_close (with every hint), and by sysmon's one look
 *    at each wait that lasts (netpoll_check, SYSMON_POLL_NS to twice
 *    that into it): it reads the flag of a waiting fd marked blocking,
 *    and finding O_NONBLOCK it drops the mark and wakes the waiters,
 *    whose io_fd_wait reads the flag again and returns -EAGAIN.
 *
 * So O_NONBLOCK set behind kgo's back on an fd it knows as blocking is
 * honoured 10-20 ms into the next wait rather than at once (kgo.h says
 * so), and a "non-blocking" answer is never kept: such fds read the
 * flag at each call that would wait, as before. The calls' reads are
 * counted in kgo_stats.fd_flag_reads (io_net_test nonblock_cached),
 * sysmon's are not.
 */
bool fd_nonblock(int fd)
{
	long fl;

	if (fdh_get(fd) & FDH_BLOCKING)
		return false;
	fl = io_raw(SYS_fcntl, fd, F_GETFL, 0, 0, 0, 0);
	atomic_fetch_add_explicit(&io.flag_reads, 1, memory_order_relaxed);
	if (fl < 0)
		return false;
	if (!(fl & O_NONBLOCK))
		fdh_or(fd, FDH_BLOCKING);
	return fl & O_NONBLOCK;
}

/* ------------------------------------------------------------------ */
/* Per-fd hints: a two-level table of bytes, pages made on demand     */
/* ------------------------------------------------------------------ */

#define FDH_PAGE	4096
#define FDH_NPAGES	1024

static _Atomic(_Atomic uint8_t *) fdh_pages[FDH_NPAGES];

/* @fd's hint byte; its page made on demand with @make, else NULL when
 * there is none yet (or @fd is past the table). */
static _Atomic uint8_t *fdh_byte(int fd, bool make)
{
	_Atomic uint8_t *pg, *fresh, *none = NULL;

	if (fd < 0 || fd >= FDH_PAGE * FDH_NPAGES)
		return NULL;
	/* Acquire pairs with the release CAS that published the page. */
	pg = atomic_load_explicit(&fdh_pages[fd / FDH_PAGE], memory_order_acquire);
	if (!pg && make) {
		fresh = calloc(FDH_PAGE, 1);
		if (!fresh)
			return NULL;
		if (atomic_compare_exchange_strong_explicit(
				&fdh_pages[fd / FDH_PAGE], &none, fresh,
				memory_order_acq_rel, memory_order_acquire)) {
			pg = fresh;
		} else {
			free(fresh);
			pg = none;
		}
	}
	return pg ? &pg[fd % FDH_PAGE] : NULL;
}

uint8_t fdh_get(int fd)
{
	_Atomic uint8_t *h = fdh_byte(fd, false);

	return h ? atomic_load_explicit(h, memory_order_relaxed) : 0;
}

void fdh_set(int fd, uint8_t v)
{
	_Atomic uint8_t *h = fdh_byte(fd, v != 0);

	if (h)
		atomic_store_explicit(h, v, memory_order_relaxed);
}

/* One RMW each: sysmon may clear a bit while a G sets another. */
void fdh_or(int fd, uint8_t bits)
{
	_Atomic uint8_t *h = fdh_byte(fd, true);

	if (h)
		atomic_fetch_or_explicit(h, bits, memory_order_relaxed);
}

void fdh_clear(int fd, uint8_t bits)
{
	_Atomic uint8_t *h = fdh_byte(fd, false);

	if (h)
		atomic_fetch_and_explicit(h, (uint8_t)~bits,
					  memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* Start, end, statistics                                             */
/* ------------------------------------------------------------------ */

/*
 * KGO_IOWQ_MAX=bounded[,unbounded], 0..IOWQ_MAX each (0: the kernel's
 * default). A bad value is ignored as a whole, with a line (env.c).
 */
#define IOWQ_MAX	1024

static void parse_iowq(const char *w)
{
	char part[24], use[48], why[64];
	const char *comma = strchr(w, ',');
	size_t n = comma ? (size_t)(comma - w) : strlen(w);
	long b, u;

	snprintf(part, sizeof(part), "%.*s", (int)n, w);
	if (env_check_long(part, 0, IOWQ_MAX, &b, why, sizeof(why)) &&
	    (!comma || env_check_long(comma + 1, 0, IOWQ_MAX, &u, why,
				      sizeof(why)))) {
		io.iowq[0] = b;
		io.iowq[1] = comma ? u : b;
		return;
	}
	snprintf(use, sizeof(use), "using %u,%u", io.iowq[0], io.iowq[1]);
	env_warn("KGO_IOWQ_MAX", w, why, use);
}

void io_init(void)
{
	const char *w = getenv("KGO_IOWQ_MAX");

	atomic_store(&io.mode, IO_UNKNOWN);
	atomic_store(&io.warned, false);
	atomic_store(&io.watcher, NULL);
	atomic_store(&io.last_scan, 0);
	atomic_store(&io.futex_op, false);
	atomic_store(&io.ftruncate_op, false);
	io.why[0] = 0;
	io.probed = false;
	io.rings = NULL;
	io.efd = -1;
	atomic_store(&io.epfd, -1);
	atomic_store(&io.nnet, 0);
	atomic_store(&io.trust_gen, 0);
	atomic_store(&io.checked_gen, 0);
	/*
	 * io-wq caps per M ring: "bounded[,unbounded]". Bounded work is
	 * regular-file and block I/O that could not go non-blocking (a
	 * slow file system, O_DIRECT on some drivers); unbounded is work
	 * that may wait forever (a file that cannot be polled). 16 each
	 * keeps a 1000-G pile-up on a slow file system at a few dozen
	 * threads per M, against Go's one thread per blocked G.
	 */
	io.iowq[0] = io.iowq[1] = 16;
	if (w && *w)
		parse_iowq(w);
	if (!env_flag("KGO_IOURING", true, "using io_uring (0 turns it off)"))
		io_refuse("KGO_IOURING=0");
}

void io_fini(void)
{
	if (io.rings)
		kgo_throw("io_fini: a ring outlived its M");
	if (io.efd >= 0)
		close(io.efd);
	io.efd = -1;
	netpoll_fini();
}

const char *kgo_io_backend(void)
{
	static __thread char buf[sizeof(io.why) + 32];

	switch (atomic_load_explicit(&io.mode, memory_order_acquire)) {
	case IO_URING:
		return "io_uring";
	case IO_FALLBACK:
		snprintf(buf, sizeof(buf), "syscalls (%s)", io.why);
		return buf;
	default:
		return "io_uring (no ring yet)";
	}
}

void io_stats(struct kgo_stats *s)
{
	s->io_timeouts = atomic_load_explicit(&io.timeouts, memory_order_relaxed);
	s->io_cancelled = atomic_load_explicit(&io.cancelled, memory_order_relaxed);
	s->io_inline = atomic_load_explicit(&io.inline_ops, memory_order_relaxed);
	s->io_rings = atomic_load_explicit(&io.nrings, memory_order_relaxed);
	s->io_waiting = atomic_load_explicit(&sched.nio, memory_order_relaxed);
	s->io_uring = atomic_load_explicit(&io.mode, memory_order_relaxed) !=
		      IO_FALLBACK;
	s->fd_flag_reads = atomic_load_explicit(&io.flag_reads,
						memory_order_relaxed);
	s->netpoll_sysmon_readies = atomic_load_explicit(&io.sysmon_readies,
							 memory_order_relaxed);
}

bool io_has_ftruncate(void)
{
	return atomic_load_explicit(&io.ftruncate_op, memory_order_relaxed);
}
