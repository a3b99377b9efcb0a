// SPDX-License-Identifier: MIT
/*
 * io_net.c - the network and readiness calls of kgo.h: kgo's netpoller.
 *
 * A socket call first tries without waiting (MSG_DONTWAIT, or a zero
 * poll); when the socket is not ready, recv, send and accept park their
 * G on the netpoller (epoll, io.c, "The poll descriptor") and try again
 * when woken, with or without io_uring; a deadline there is a runtime
 * timer, and kgo_close, kgo_fd_cancel and kgo_fd_set_deadline reach the
 * G. connect, kgo_poll and what the netpoller cannot take (a second
 * waiter on one fd) go to the M's ring, where io_uring arms a poll on
 * the socket and runs the call when it is ready, with a linked timeout
 * for a deadline; without io_uring those wait in ppoll with the P
 * handed off.
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

/* A recv with these flags says nothing of what is left in the socket, or
 * must not wait (io.c, "Drained sockets"). */
#define RECV_NODRAIN	(MSG_PEEK | MSG_OOB | MSG_WAITALL | MSG_TRUNC | \
			 MSG_ERRQUEUE | MSG_DONTWAIT)

/*
 * recv_try() - one recv that does not wait. With @drain, a short one
 * records that it emptied the socket, against the count of read edges
 * from before it (io.c, "Drained sockets").
 */
static long recv_try(struct io_fdw *fw, bool drain, int fd, void *buf,
		     size_t n, int flags)
{
	uint32_t edges = drain ? io_fd_edges(fw) : 0;
	long r;

	r = io_raw(SYS_recvfrom, fd, (long)buf, n, flags | MSG_DONTWAIT, 0, 0);
	if (drain && r > 0 && (size_t)r < n)
		io_fd_drained(fw, edges);
	return r;
}

/*
 * sock_wait() - the recv (@write: send) said EAGAIN, or need not try
 * (io_fd_skip_try): wait on the netpoller and try again until it moves
 * data, fails, or the wait ends (io_fd_wait); where the netpoller
 * cannot take it, through the ring, else the syscall path.
 */
static long sock_wait(struct io_fdw *fw, bool write, int fd, void *buf,
		      size_t n, int flags)
{
	long nr = write ? SYS_sendto : SYS_recvfrom;
	bool drain = !write && !(flags & RECV_NODRAIN);
	struct io_op op;
	int64_t dl;
	long r;

	while ((r = io_fd_wait(fw, fd, write)) == 0) {
		if (write)
			r = io_raw(nr, fd, (long)buf, n, flags | MSG_DONTWAIT,
				   0, 0);
		else
			r = recv_try(fw, drain, fd, buf, n, flags);
		if (r != -EAGAIN)
			return r;
	}
	if (r != IO_NORING)
		return r;
	dl = io_fd_deadline(fw, write);
	if (io_ring_usable()) {
		if (write)
			io_uring_prep_send(&op.sqe, fd, buf, n, flags);
		else
			io_uring_prep_recv(&op.sqe, fd, buf, n, flags);
		r = io_ring_op(&op, dl);
		if (r != IO_NORING)
			return r;
	}
	if (dl < 0)
		return io_sys(true, nr, fd, (long)buf, n, flags, 0, 0);
	for (;;) {
		r = io_wait_ready(fd, write ? POLLOUT : POLLIN, dl);
		if (r < 0)
			return r;
		r = io_sys(false, nr, fd, (long)buf, n, flags | MSG_DONTWAIT,
			   0, 0);
		if (r != -EAGAIN)
			return r;
	}
}

ssize_t kgo_recv_dl(int fd, void *buf, size_t n, int flags, int64_t deadline)
{
	struct io_fdw fw;
	long r, rest;
	bool drain;

	/* The kernel clamps the count first (no error for SIZE_MAX); the
	 * ring must not see it cut to 32 bits (io_max_rw). */
	if (n > io_max_rw())
		n = io_max_rw();
	if (!getg())
		return io_raw(SYS_recvfrom, fd, (long)buf, n, flags, 0, 0);
	r = io_fd_begin(&fw, fd, false, deadline);
	if (r)
		return r;
	drain = !(flags & RECV_NODRAIN) && deadline != 0;
	if (flags & MSG_OOB)
		io_fd_nodrain(&fw);	/* a read may stop at the mark */
	/* The last read emptied the socket and no edge came since: a try
	 * would say EAGAIN (io.c, "Drained sockets"). */
	if (drain && io_fd_skip_try(&fw, fd)) {
		r = sock_wait(&fw, false, fd, buf, n, flags);
		/* A deadline passed before the wait: what is there is the
		 * answer, as with the try first. */
		if (r == -ETIMEDOUT) {
			rest = recv_try(&fw, true, fd, buf, n, flags);
			if (rest != -EAGAIN)
				r = rest;
		}
		io_fd_end(&fw);
		return r;
	}
	r = recv_try(&fw, drain, fd, buf, n, flags);
	if (r != -EAGAIN || (flags & MSG_DONTWAIT)) {
		io_count_nowait();
		/* MSG_WAITALL on a blocking socket waits for all of it. */
		if (r > 0 && (size_t)r < n && (flags & MSG_WAITALL) &&
		    !(flags & MSG_DONTWAIT) && deadline != 0 &&
		    !fd_nonblock(fd)) {
			rest = sock_wait(&fw, false, fd, (char *)buf + r, n - r,
					 flags);
			io_fd_end(&fw);
			if (rest > 0)
				r += rest;
		}
		return r;
	}
	if (deadline == 0 || fd_nonblock(fd))
		return -EAGAIN;
	r = sock_wait(&fw, false, fd, buf, n, flags);
	io_fd_end(&fw);
	return r;
}

ssize_t kgo_recv(int fd, void *buf, size_t n, int flags)
{
	return kgo_recv_dl(fd, buf, n, flags, -1);
}

ssize_t kgo_send_dl(int fd, const void *buf, size_t n, int flags,
		    int64_t deadline)
{
	struct io_fdw fw;
	size_t done = 0;
	long r;

	if (n > io_max_rw())
		n = io_max_rw();	/* as in kgo_recv_dl */
	if (!getg())
		return io_raw(SYS_sendto, fd, (long)buf, n, flags, 0, 0);
	r = io_fd_begin(&fw, fd, true, deadline);
	if (r)
		return r;
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
		r = sock_wait(&fw, true, fd, (char *)buf + done, n - done,
			      flags);
		if (r <= 0)
			break;
		done += r;
	}
	io_fd_end(&fw);
	return done ? (long)done : r;
}

ssize_t kgo_send(int fd, const void *buf, size_t n, int flags)
{
	return kgo_send_dl(fd, buf, n, flags, -1);
}

/*
 * kgo_accept_dl() - accept4(2) has no MSG_DONTWAIT: a listener that polls
 * readable is accepted from on the syscall path (a connection another G
 * took first makes that call wait, with the P handed on by sysmon, as
 * in a blocking accept); otherwise the G waits on the netpoller, where
 * kgo_close and kgo_fd_cancel reach it. The wait's hold on the fd is
 * dropped before the accept4, which may block.
 */
int kgo_accept_dl(int fd, struct sockaddr *addr, socklen_t *len, int flags,
		  int64_t deadline)
{
	socklen_t olen = sizeof(int);
	struct io_fdw fw;
	struct io_op op;
	int on = 0;
	long r;

	if (!getg() || fd_nonblock(fd))
		return io_raw(SYS_accept4, fd, (long)addr, (long)len, flags, 0, 0);
	r = io_fd_begin(&fw, fd, false, deadline);
	if (r)
		return r;
	for (;;) {
		r = io_poll0(fd, POLLIN);
		if (r != 0) {
			io_fd_end(&fw);
			if (r < 0 || (r & POLLNVAL))
				return r < 0 ? r : -EBADF;
			r = io_sys(false, SYS_accept4, fd, (long)addr,
				   (long)len, flags, 0, 0);
			goto out;
		}
		if (deadline == 0)
			return -EAGAIN;
		/* Before the first wait: a file that accept4 refuses at once
		 * (a pipe, a socket not listening) must not wait. */
		if (!fw.held) {
			r = io_raw(SYS_getsockopt, fd, SOL_SOCKET,
				   SO_ACCEPTCONN, (long)&on, (long)&olen, 0);
			if (r < 0 || !on)
				return r < 0 ? r : -EINVAL;
		}
		r = io_fd_wait(&fw, fd, false);
		if (r == IO_NORING)
			break;
		if (r < 0) {
			io_fd_end(&fw);
			return r;
		}
	}
	deadline = io_fd_deadline(&fw, false);
	if (io_ring_usable()) {
		io_uring_prep_accept(&op.sqe, fd, addr, len, flags);
		r = io_ring_op(&op, ring_dl(deadline));
		if (r != IO_NORING)
			goto out;
	}
	if (deadline >= 0) {
		r = io_wait_ready(fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
	r = io_sys(true, SYS_accept4, fd, (long)addr, (long)len, flags, 0, 0);
out:
	if (r >= 0) {
		fdh_set(r, FDH_KNOWN | FDH_FROM_FLAGS(flags));
		io_fd_fresh(r);
	}
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
