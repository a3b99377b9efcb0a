/* SPDX-License-Identifier: MIT */
/*
 * io.h - what the I/O files share: the ring machinery of io.c and the
 * calls built on it in io_file.c and io_net.c. The design is explained
 * at the top of io.c.
 */
#ifndef KGO_IO_H
#define KGO_IO_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <unistd.h>

#include "runtime.h"

/* Opcodes liburing 2.3 does not know (it stops at 48); prepared by hand
 * with io_uring_prep_rw(). */
#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT	51	/* 6.7 */
#endif
#ifndef IORING_OP_FTRUNCATE
#define IORING_OP_FTRUNCATE	55	/* 6.9 */
#endif

/*
 * struct io_op - one operation a G hands to its M's ring, on the G's
 * stack while it waits.
 * @sqe:	prepared by the G with liburing's io_uring_prep_*(); the
 *		submitter copies it into the ring (user_data is its own).
 * @ts:		the absolute deadline of the linked timeout.
 * @gp:		the waiting G.
 * @deadline:	> 0: link an IORING_OP_LINK_TIMEOUT at this CLOCK_MONOTONIC
 *		time; < 0: none.
 * @res:	the CQE's result, written by the reaper before it readies
 *		@gp; IO_NORING when the op never reached a ring.
 * @inline_done: it completed while being submitted (the G did not wait).
 */
struct io_op {
	struct io_uring_sqe sqe;
	struct __kernel_timespec ts;
	struct g *gp;
	int64_t deadline;
	int32_t res;
	bool inline_done;
};

/* The op could not go to a ring (io_uring refused, ring full): the
 * caller takes the syscall path instead. Not an errno value. */
#define IO_NORING	INT32_MIN

/*
 * io_ring_op() - submit @op on the calling G's M and park until it
 * completes. Return: the CQE's result (-ETIMEDOUT when the deadline
 * cancelled it), or IO_NORING.
 */
long io_ring_op(struct io_op *op, int64_t deadline);

/* The calling code runs on a G of a running runtime whose ring path is
 * not known to be refused: worth preparing a ring op. */
bool io_ring_usable(void);

/*
 * io_sys() - the syscall path: syscall(nr, ...) bracketed by
 * kgo_syscall_begin/_end, or, with @blocking (the call is known to
 * block), with the P handed off first. EINTR from the runtime's own
 * signals is retried. Counted in io_fallback_ops. Outside a G it is a
 * plain syscall. Return: the result or -errno.
 */
long io_sys(bool blocking, long nr, long a0, long a1, long a2, long a3,
	    long a4, long a5);

/* A plain syscall with -errno, for calls that never block. */
long io_raw(long nr, long a0, long a1, long a2, long a3, long a4, long a5);

/*
 * io_max_rw() - the most bytes one read, write, recv or send moves: the
 * kernel's MAX_RW_COUNT (INT_MAX rounded down to a page), to which it
 * clamps every count. Counts given to the ring are clamped to it first:
 * an SQE's length is 32 bits, and a count of 4 GiB would reach the
 * kernel as 0 (a read that returns 0 at once, as at EOF).
 */
static inline size_t io_max_rw(void)
{
	return (size_t)INT_MAX & ~((size_t)getpagesize() - 1);
}

/* IORING_OP_FTRUNCATE is known to work (6.9+). */
bool io_has_ftruncate(void);

/* poll(2) with a zero timeout. Return: revents, 0, -errno. */
int io_poll0(int fd, short events);

/*
 * io_wait_ready() - the syscall path's way to wait with a deadline: ppoll
 * until @fd is ready for @events or @deadline (< 0: no deadline; 0: do
 * not wait). Return: revents (> 0), -ETIMEDOUT, -EAGAIN (deadline 0).
 */
int io_wait_ready(int fd, short events, int64_t deadline);

/*
 * struct io_fdw - a call's hold on its fd's poll descriptor (io.c, "The
 * poll descriptor"): what the fd's generation and cancel count were when
 * the call began, and its own deadline.
 */
struct io_fdw {
	void *pd;		/* struct pdesc, NULL: none for this fd */
	uint32_t gen, cseq;
	int64_t deadline;	/* the call's: < 0 none, 0 do not wait */
	bool held;		/* counted in the descriptor's refs */
};

/*
 * io_fd_begin() - a read (@write false) or write call on @fd begins,
 * before its first try. Return: 0, or -ETIMEDOUT when the fd's deadline
 * for that side (kgo_fd_set_deadline) has passed: fail without trying.
 */
int io_fd_begin(struct io_fdw *fw, int fd, bool write, int64_t deadline);

/*
 * io_fd_wait() - after a try said EAGAIN: park the calling G on the
 * netpoller until @fd may be ready for the side, then try again (a
 * wakeup can be spurious). Return: 0 (try again), -EBADF (kgo_close
 * closed the fd meanwhile: do not touch it), -ECANCELED (kgo_fd_cancel),
 * -ETIMEDOUT (the call's or the fd's deadline), -EAGAIN (the call's
 * deadline is 0), or IO_NORING when the netpoller cannot take it
 * (another G waits on this side, the fd is not pollable): take the ring
 * path with io_fd_deadline(). Call io_fd_end() before returning.
 */
int io_fd_wait(struct io_fdw *fw, int fd, bool write);

/* The earlier of the call's deadline and the fd's, for the ring path. */
int64_t io_fd_deadline(struct io_fdw *fw, bool write);

/* The call is over: kgo_close may close the fd. */
void io_fd_end(struct io_fdw *fw);

/* A new fd from kgo_accept or kgo_open: no deadlines from a file that
 * had the number before. */
void io_fd_fresh(int fd);

/*
 * io_fd_close_begin() - kgo_close, before it closes @fd: end every wait
 * on it (-EBADF) and wait until the woken calls have left. Return: 0.
 */
int io_fd_close_begin(int fd);

/*
 * The read side's drain record (io.c, "Drained sockets"): a recv that
 * may wait reads io_fd_edges() before its MSG_DONTWAIT try, and after a
 * short one records io_fd_drained() with that count; the next one asks
 * io_fd_skip_try() (after io_fd_begin) whether to go straight to
 * io_fd_wait. io_fd_nodrain(): a MSG_OOB recv, never skip again until
 * the fd's number is closed by kgo_close.
 */
uint32_t io_fd_edges(struct io_fdw *fw);
void io_fd_drained(struct io_fdw *fw, uint32_t edges);
bool io_fd_skip_try(struct io_fdw *fw, int fd);
void io_fd_nodrain(struct io_fdw *fw);

/* Fast-path accounting. */
void io_count_nowait(void);

/*
 * Per-fd hints for the fast path. They are hints only: a stale one (the
 * user closed the fd and got the number back for another file behind
 * kgo's back) costs a wasted try or a skipped fast path, never a wrong
 * result.
 */
#define FDH_KNOWN	0x01	/* the flags below were filled in */
#define FDH_DIRECT	0x02	/* O_DIRECT: RWF_NOWAIT still waits for the device */
#define FDH_NO_RNOWAIT	0x04	/* preadv2 refuses RWF_NOWAIT (EOPNOTSUPP) */
#define FDH_NO_WNOWAIT	0x08	/* pwritev2 refuses RWF_NOWAIT */
#define FDH_BLOCKING	0x10	/* no O_NONBLOCK (fd_nonblock; io.c, "The
				 * O_NONBLOCK flag": sysmon catches a
				 * stale one in a wait) */
#define FDH_NETREG	0x20	/* added to the netpoller's epoll (io.c,
				 * netpoll_check: sysmon catches a stale one) */
#define FDH_SPECIAL	0x40	/* not a file nor a block device (pipe,
				 * socket, tty): set with FDH_NO_*NOWAIT */
#define FDH_SOCK	0x80	/* ... and a socket */
uint8_t fdh_get(int fd);
void fdh_set(int fd, uint8_t v);
/* Set, clear @bits of @fd's hints, leaving the others as they are. */
void fdh_or(int fd, uint8_t bits);
void fdh_clear(int fd, uint8_t bits);

/* The fd is O_NONBLOCK now: its calls must not wait. */
bool fd_nonblock(int fd);
/* The FDH_BLOCKING hint of an fd just made with these open(2) or
 * accept4(2) flags (SOCK_NONBLOCK is O_NONBLOCK). */
#define FDH_FROM_FLAGS(flags)	((flags) & O_NONBLOCK ? 0 : FDH_BLOCKING)

#endif /* KGO_IO_H */
