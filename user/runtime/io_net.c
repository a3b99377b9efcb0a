// SPDX-License-Identifier: MIT
/*
 * io_net.c - the network and readiness calls of kgo.h: kgo's netpoller.
 *
 * A socket call first tries without waiting (MSG_DONTWAIT, or a zero
 * poll); when the socket is not ready a recv without a deadline parks
 * its G on the netpoller (epoll, io.c) and tries again when woken; the
 * other calls go to the M's ring, where io_uring arms a poll on the
 * socket and runs the call when it is ready, and the G parks (io.c). A
 * deadline is a timeout linked to the operation in the ring. Without
 * io_uring, the syscall path waits in ppoll with the P handed off.
 *
 * As read(2) and friends, the calls honour O_NONBLOCK and MSG_DONTWAIT
 * (EAGAIN at once); a blocking send sends everything, as send(2) on a
 * blocking stream socket does.
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "io.h"

/* A deadline of 0 through the ring: a linked timeout already expired,
 * so the kernel tries once (the operation is issued before its timeout
 * is armed) and cancels it if it would wait. */
#define DL_PAST		1

static long ring_dl(int64_t deadline)
{
	return deadline == 0 ? DL_PAST : deadline;
}

static long recv_wait(int fd, void *buf, size_t n, int flags,
		      int64_t deadline)
{
	struct io_op op;
	uint8_t h;
	long r;

	/* No deadline: wait for readiness on the netpoller, then recv. */
	while (deadline < 0 && io_net_wait(fd) == 0) {
		r = io_raw(SYS_recvfrom, fd, (long)buf, n, flags | MSG_DONTWAIT,
			   0, 0);
		if (r != -EAGAIN)
			return r;
	}
	if (io_ring_usable()) {
		io_uring_prep_recv(&op.sqe, fd, buf, n, flags);
		r = io_ring_op(&op, deadline);
		if (r != IO_NORING) {
			/* Remember whether it had to wait (see kgo_recv_dl). */
			h = fdh_get(fd);
			if (!op.inline_done != !!(h & FDH_RECV_WAITS))
				fdh_set(fd, h ^ FDH_RECV_WAITS);
			return r;
		}
	}
	if (deadline < 0)
		return io_sys(true, SYS_recvfrom, fd, (long)buf, n, flags, 0, 0);
	for (;;) {
		r = io_wait_ready(fd, POLLIN, deadline);
		if (r < 0)
			return r;
		r = io_sys(false, SYS_recvfrom, fd, (long)buf, n,
			   flags | MSG_DONTWAIT, 0, 0);
		if (r != -EAGAIN)
			return r;
	}
}

ssize_t kgo_recv_dl(int fd, void *buf, size_t n, int flags, int64_t deadline)
{
	long r, rest;

	/* The kernel clamps the count first (no error for SIZE_MAX); the
	 * ring must not see it cut to 32 bits (io_max_rw). */
	if (n > io_max_rw())
		n = io_max_rw();
	if (!getg())
		return io_raw(SYS_recvfrom, fd, (long)buf, n, flags, 0, 0);
	/*
	 * A socket whose last recv through the ring had to wait (a
	 * request-response peer: the answer is never there yet) goes to the
	 * ring at once, which tries the recv while submitting anyway: one
	 * syscall, not a failed recvfrom first. It goes back to the fast
	 * path as soon as a recv finds data waiting. Only with a deadline:
	 * without one the netpoller waits, and it needs the failed try.
	 */
	if (deadline > 0 && (fdh_get(fd) & FDH_RECV_WAITS) &&
	    !(flags & MSG_DONTWAIT) && io_ring_usable() && !fd_nonblock(fd))
		return recv_wait(fd, buf, n, flags, deadline);
	if (deadline < 0)
		io_net_reset(fd);
	r = io_raw(SYS_recvfrom, fd, (long)buf, n, flags | MSG_DONTWAIT, 0, 0);
	if (r != -EAGAIN || (flags & MSG_DONTWAIT)) {
		io_count_nowait();
		/* MSG_WAITALL on a blocking socket waits for all of it. */
		if (r > 0 && (size_t)r < n && (flags & MSG_WAITALL) &&
		    !(flags & MSG_DONTWAIT) && deadline != 0 &&
		    !fd_nonblock(fd)) {
			rest = recv_wait(fd, (char *)buf + r, n - r, flags,
					 deadline);
			if (rest > 0)
				r += rest;
		}
		return r;
	}
	if (deadline == 0 || fd_nonblock(fd))
		return -EAGAIN;
	return recv_wait(fd, buf, n, flags, deadline);
}

ssize_t kgo_recv(int fd, void *buf, size_t n, int flags)
{
	return kgo_recv_dl(fd, buf, n, flags, -1);
}

static long send_wait(int fd, const void *buf, size_t n, int flags,
		      int64_t deadline)
{
	struct io_op op;
	long r;

	if (io_ring_usable()) {
		io_uring_prep_send(&op.sqe, fd, buf, n, flags);
		r = io_ring_op(&op, deadline);
		if (r != IO_NORING)
			return r;
	}
	if (deadline < 0)
		return io_sys(true, SYS_sendto, fd, (long)buf, n, flags, 0, 0);
	for (;;) {
		r = io_wait_ready(fd, POLLOUT, deadline);
		if (r < 0)
			return r;
		r = io_sys(false, SYS_sendto, fd, (long)buf, n,
			   flags | MSG_DONTWAIT, 0, 0);
		if (r != -EAGAIN)
			return r;
	}
}

ssize_t kgo_send_dl(int fd, const void *buf, size_t n, int flags,
		    int64_t deadline)
{
	size_t done = 0;
	long r;

	if (n > io_max_rw())
		n = io_max_rw();	/* as in kgo_recv_dl */
	if (!getg())
		return io_raw(SYS_sendto, fd, (long)buf, n, flags, 0, 0);
	r = io_raw(SYS_sendto, fd, (long)buf, n, flags | MSG_DONTWAIT, 0, 0);
	if (r >= 0) {
		io_count_nowait();
		if ((size_t)r == n || (flags & MSG_DONTWAIT))
			return r;
		done = r;
	} else if (r != -EAGAIN || (flags & MSG_DONTWAIT)) {
		return r;
	}
	if (deadline == 0 || fd_nonblock(fd))
		return done ? (long)done : -EAGAIN;
	while (done < n) {
		r = send_wait(fd, (const char *)buf + done, n - done, flags,
			      deadline);
		if (r <= 0)
			return done ? (long)done : r;
		done += r;
	}
	return done;
}

ssize_t kgo_send(int fd, const void *buf, size_t n, int flags)
{
	return kgo_send_dl(fd, buf, n, flags, -1);
}

int kgo_accept_dl(int fd, struct sockaddr *addr, socklen_t *len, int flags,
		  int64_t deadline)
{
	struct io_op op;
	long r;

	if (!getg() || fd_nonblock(fd))
		return io_raw(SYS_accept4, fd, (long)addr, (long)len, flags, 0, 0);
	if (io_ring_usable()) {
		io_uring_prep_accept(&op.sqe, fd, addr, len, flags);
		r = io_ring_op(&op, ring_dl(deadline));
		if (r != IO_NORING) {
			if (r == -ETIMEDOUT && deadline == 0)
				r = -EAGAIN;
			goto out;
		}
	}
	if (deadline >= 0) {
		r = io_wait_ready(fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
	r = io_sys(true, SYS_accept4, fd, (long)addr, (long)len, flags, 0, 0);
out:
	if (r >= 0)
		fdh_set(r, FDH_KNOWN);
	return r;
}

int kgo_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	return kgo_accept_dl(fd, addr, len, flags, -1);
}

/* The syscall path of a connect: non-blocking connect, then wait (until
 * @deadline, < 0: for ever) for the socket to be writable. Interrupted
 * by a signal, a blocking connect could not be retried. */
static int connect_sys_dl(int fd, const struct sockaddr *addr, socklen_t len,
			  int64_t deadline)
{
	long fl = io_raw(SYS_fcntl, fd, F_GETFL, 0, 0, 0, 0);
	socklen_t elen = sizeof(int);
	int err = 0;
	long r;

	if (fl < 0)
		return fl;
	io_raw(SYS_fcntl, fd, F_SETFL, fl | O_NONBLOCK, 0, 0, 0);
	r = io_sys(false, SYS_connect, fd, (long)addr, len, 0, 0, 0);
	if (r == -EINPROGRESS && deadline != 0) {
		r = io_wait_ready(fd, POLLOUT, deadline);
		if (r > 0) {
			r = io_raw(SYS_getsockopt, fd, SOL_SOCKET, SO_ERROR,
				   (long)&err, (long)&elen, 0);
			if (r == 0)
				r = -err;
		}
	}
	io_raw(SYS_fcntl, fd, F_SETFL, fl, 0, 0, 0);
	return r;
}

int kgo_connect_dl(int fd, const struct sockaddr *addr, socklen_t len,
		   int64_t deadline)
{
	struct io_op op;
	long r;

	if (!getg() || fd_nonblock(fd))
		return io_raw(SYS_connect, fd, (long)addr, len, 0, 0, 0);
	if (io_ring_usable()) {
		io_uring_prep_connect(&op.sqe, fd, addr, len);
		r = io_ring_op(&op, ring_dl(deadline));
		if (r != IO_NORING) {
			/* Deadline 0: as a non-blocking connect, the attempt
			 * goes on in the background. */
			if (r == -ETIMEDOUT && deadline == 0)
				r = -EINPROGRESS;
			return r;
		}
	}
	return connect_sys_dl(fd, addr, len, deadline);
}

int kgo_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	return kgo_connect_dl(fd, addr, len, -1);
}

int kgo_poll(int fd, short events, int64_t deadline)
{
	struct io_op op;
	long r;

	r = io_poll0(fd, events);
	if (r != 0) {
		if (r > 0)
			io_count_nowait();
		return r;
	}
	if (deadline == 0)
		return -EAGAIN;
	/*
	 * poll(2) ignores a negative fd (revents 0: never ready), where
	 * io_uring's poll says EBADF: the G waits for the deadline alone,
	 * parked on a timer, as kgo_select() with no channel does.
	 */
	if (fd < 0 && getg())
		return kgo_select(NULL, 0, deadline);
	if (io_ring_usable()) {
		io_uring_prep_poll_add(&op.sqe, fd, (unsigned short)events);
		r = io_ring_op(&op, deadline);
		if (r != IO_NORING)
			return r;
	}
	return io_wait_ready(fd, events, deadline);
}
