// SPDX-License-Identifier: MIT
/*
 * Description: the network and readiness calls of kgo.h (user/runtime/
 * io_net.c), through io_uring and through the syscall path (fixture
 * variants uring and syscalls, the latter with KGO_IOURING=0).
 *
 *   echo_1000		a TCP echo server and 1000 clients over loopback,
 *			all Gs, all connected at once, each sending
 *			messages of varying sizes; every byte comes back
 *			(a checksum per client).
 *   deadlines		recv_dl, read_dl, write_dl, send_dl, accept_dl,
 *			connect_dl and kgo_poll with a deadline that
 *			passes: -ETIMEDOUT, not early, not much late; and
 *			the operation was cancelled, not abandoned: data
 *			that comes afterwards (a byte, a connection) is
 *			still there for the next call, and nothing was
 *			written after the deadline. A deadline of 0 does
 *			not wait (-EAGAIN; connect: -EINPROGRESS).
 *   nowait_refused	read_dl, write_dl and O_NONBLOCK on fds whose
 *			preadv2/pwritev2 refuse RWF_NOWAIT (EOPNOTSUPP):
 *			a pty on every kernel, pipes and AF_UNIX sockets
 *			before 6.x (Debian 12's 6.1): a deadline of 0 does
 *			not wait (-EAGAIN), a deadline passes (-ETIMEDOUT),
 *			O_NONBLOCK answers -EAGAIN, data that is there is
 *			read, and what a full pipe or socket took is all
 *			that the reader finds.
 *   netpoller		recv without a deadline waits on the netpoller
 *			(io.c) and returns what recv(2) returns: data sent
 *			later, 0 at the peer's shutdown; two Gs waiting on
 *			one socket both get theirs (the second goes to the
 *			ring); an fd number closed with close(2) and
 *			reused for another socket still wakes its waiter;
 *			O_NONBLOCK set after a wait gives -EAGAIN (at
 *			sysmon's look at the wait: nonblock_cached);
 *			a deadline still cancels (-ETIMEDOUT, the data sent
 *			afterwards still there); nothing left waiting.
 *   deadline_timers	a wait with a fresh deadline per request (the httpd
 *			shape) moves its fd's timer later without a heap
 *			operation: 200 round trips, each side waiting each
 *			time, arm a few timers, not one per wait (kgo_stats
 *			timers_armed); an earlier deadline still fires,
 *			and a wait without one is not ended by the old.
 *   readiness		kgo_poll's revents as poll(2)'s: POLLIN, POLLOUT,
 *			POLLHUP, POLLNVAL; O_NONBLOCK sockets get -EAGAIN
 *			from recv and accept at once.
 *   nonblock_cached	the O_NONBLOCK flag is read once per fd, not at
 *			every wait (kgo_stats fd_flag_reads); kgo_accept's
 *			flags and kgo_close keep it right; set behind
 *			kgo's back it ends the wait at sysmon's look.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "kgo.h"
#include "fd_number.h"
#include "harness.h"
#include "sysmon_count.h"

#define MS	1000000LL

FIXTURE(net) {
	int dummy;
};

FIXTURE_VARIANT(net) {
	bool uring;
};

FIXTURE_VARIANT_ADD(net, uring) { .uring = true };
FIXTURE_VARIANT_ADD(net, syscalls) { .uring = false };

FIXTURE_SETUP(net)
{
	if (variant->uring)
		unsetenv("KGO_IOURING");
	else
		setenv("KGO_IOURING", "0", 1);
	signal(SIGPIPE, SIG_IGN);
}

FIXTURE_TEARDOWN(net)
{
}

static void run(void (*fn)(void *), void *arg, int maxprocs)
{
	struct kgo_config cfg = { .maxprocs = maxprocs };

	ASSERT_EQ(0, kgo_run(fn, arg, &cfg));
}

/* A loopback listener on an ephemeral port. */
static int listener(struct sockaddr_in *sa, int backlog)
{
	socklen_t len = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	ASSERT_LE(0, fd);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(0, bind(fd, (struct sockaddr *)sa, sizeof(*sa)));
	ASSERT_EQ(0, listen(fd, backlog));
	ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)sa, &len));
	return fd;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

/* ------------------------------------------------------------------ */

#define ECHO_CONNS	1000
#define ECHO_ROUNDS	8

struct echo {
	struct sockaddr_in sa;
	int lfd, conns;
	struct kgo_wg served, done;
	_Atomic uint64_t sent_sum, got_sum;
	_Atomic int failures;
};

static void echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	ssize_t n;

	while ((n = kgo_recv(fd, buf, sizeof(buf), 0)) > 0)
		ASSERT_EQ(n, kgo_send(fd, buf, n, 0));
	ASSERT_EQ(0, n);
	kgo_close(fd);
}

static void echo_server(void *arg)
{
	struct echo *e = arg;
	int i, fd;

	for (i = 0; i < e->conns; i++) {
		fd = kgo_accept(e->lfd, NULL, NULL, SOCK_CLOEXEC);
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, kgo_go(echo_conn, (void *)(intptr_t)fd));
	}
	kgo_wg_done(&e->served);
}

static uint64_t sum_bytes(const unsigned char *p, size_t n, uint64_t h)
{
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static void echo_client(void *arg)
{
	struct echo *e = arg;
	static _Atomic uint64_t seq;
	uint64_t id = atomic_fetch_add(&seq, 1), hs = 0xcbf29ce484222325ULL;
	uint64_t hr = hs;
	unsigned char out[3000], in[3000];
	int fd, r, one = 1;
	size_t len, got, i;
	ssize_t n;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, fd);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ASSERT_EQ(0, kgo_connect(fd, (struct sockaddr *)&e->sa, sizeof(e->sa)));
	for (r = 0; r < ECHO_ROUNDS; r++) {
		len = 1 + mix(id * 64 + r) % sizeof(out);
		for (i = 0; i < len; i++)
			out[i] = (unsigned char)mix(id ^ (r << 20) ^ i);
		ASSERT_EQ((ssize_t)len, kgo_send(fd, out, len, 0));
		hs = sum_bytes(out, len, hs);
		for (got = 0; got < len; got += n) {
			n = kgo_recv(fd, in + got, len - got, 0);
			ASSERT_LT(0, n);
		}
		hr = sum_bytes(in, len, hr);
		if (memcmp(in, out, len))
			atomic_fetch_add(&e->failures, 1);
	}
	ASSERT_EQ(0, kgo_close(fd));
	atomic_fetch_add(&e->sent_sum, hs);
	atomic_fetch_add(&e->got_sum, hr);
	kgo_wg_done(&e->done);
}

static void echo_main(void *arg)
{
	struct echo *e = arg;
	int i;

	e->lfd = listener(&e->sa, 4096);
	kgo_wg_add(&e->served, 1);
	kgo_go(echo_server, e);
	kgo_wg_add(&e->done, e->conns);
	for (i = 0; i < e->conns; i++)
		ASSERT_EQ(0, kgo_go(echo_client, e));
	kgo_wg_wait(&e->done);
	kgo_wg_wait(&e->served);
	close(e->lfd);
}

TEST_F_TIMEOUT(net, echo_1000, 60)
{
	static struct echo e = { .served = KGO_WG_INIT, .done = KGO_WG_INIT };
	struct rlimit rl;
	struct kgo_stats st;

	/* Two fds a connection, plus the rings: raise the soft limit. */
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 2 * ECHO_CONNS + 100) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < 2 * ECHO_CONNS + 100) {
		SKIP(return, "RLIMIT_NOFILE %lu: too few fds for %d connections",
		     (unsigned long)rl.rlim_cur, ECHO_CONNS);
	}
	e.conns = ECHO_CONNS;
	run(echo_main, &e, 2);
	EXPECT_EQ(0, atomic_load(&e.failures));
	EXPECT_EQ(atomic_load(&e.sent_sum), atomic_load(&e.got_sum));
	kgo_stats_get(&st, sizeof(st));
	if (variant->uring)
		EXPECT_LT(ECHO_CONNS, st.io_uring_ops);
	TH_LOG("%s: ring ops %llu, fast path %llu, syscall path %llu, Ms %llu",
	       kgo_io_backend(), (unsigned long long)st.io_uring_ops,
	       (unsigned long long)st.io_nowait_hits,
	       (unsigned long long)st.io_fallback_ops,
	       (unsigned long long)st.ms);
}

/* ------------------------------------------------------------------ */

/* The call took at least @ms, and not absurdly longer. */
#define EXPECT_TOOK(t0, ms) do {					\
		int64_t __el = kgo_now() - (t0);			\
		EXPECT_LE((ms) * MS, __el);				\
		EXPECT_GT((ms) * MS + 2000 * MS, __el);			\
	} while (0)

static void dl_recv_read(void)
{
	int sv[2], p[2];
	char buf[16];
	int64_t t0;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	EXPECT_EQ(-EAGAIN, kgo_recv_dl(sv[0], buf, sizeof(buf), 0, 0));
	t0 = kgo_now();
	EXPECT_EQ(-ETIMEDOUT, kgo_recv_dl(sv[0], buf, sizeof(buf), 0,
					  t0 + 50 * MS));
	EXPECT_TOOK(t0, 50);
	/* The cancelled recv took nothing: the byte is for the next one. */
	ASSERT_EQ(1, send(sv[1], "r", 1, 0));
	EXPECT_EQ(1, kgo_recv_dl(sv[0], buf, sizeof(buf), 0,
				 kgo_now() + 1000 * MS));
	EXPECT_EQ('r', buf[0]);
	/* A deadline in the past with data there: the data. */
	ASSERT_EQ(1, send(sv[1], "s", 1, 0));
	EXPECT_EQ(1, kgo_recv_dl(sv[0], buf, sizeof(buf), 0, 0));
	close(sv[0]);
	close(sv[1]);

	ASSERT_EQ(0, pipe(p));
	EXPECT_EQ(-EAGAIN, kgo_read_dl(p[0], buf, sizeof(buf), 0));
	t0 = kgo_now();
	EXPECT_EQ(-ETIMEDOUT, kgo_read_dl(p[0], buf, sizeof(buf), t0 + 30 * MS));
	EXPECT_TOOK(t0, 30);
	ASSERT_EQ(2, write(p[1], "ab", 2));
	EXPECT_EQ(2, kgo_read_dl(p[0], buf, sizeof(buf), kgo_now() + 1000 * MS));
	close(p[0]);
	close(p[1]);
}

static void dl_write_send(void)
{
	char buf[4096];
	size_t filled = 0, drained = 0;
	int p[2], sv[2];
	int64_t t0;
	ssize_t n;

	memset(buf, 'w', sizeof(buf));
	ASSERT_EQ(0, pipe(p));
	fcntl(p[1], F_SETPIPE_SZ, 4096);
	while ((n = kgo_write_dl(p[1], buf, sizeof(buf), 0)) > 0)
		filled += n;
	EXPECT_EQ(-EAGAIN, n);
	t0 = kgo_now();
	EXPECT_EQ(-ETIMEDOUT, kgo_write_dl(p[1], buf, 100, t0 + 30 * MS));
	EXPECT_TOOK(t0, 30);
	/* Nothing went in after the deadline. */
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	while ((n = read(p[0], buf, sizeof(buf))) > 0)
		drained += n;
	EXPECT_EQ(filled, drained);
	close(p[0]);
	close(p[1]);

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	filled = drained = 0;
	while ((n = kgo_send_dl(sv[0], buf, sizeof(buf), 0, 0)) > 0)
		filled += n;
	EXPECT_EQ(-EAGAIN, n);
	t0 = kgo_now();
	n = kgo_send_dl(sv[0], buf, sizeof(buf), 0, t0 + 30 * MS);
	EXPECT_EQ(-ETIMEDOUT, n);
	EXPECT_TOOK(t0, 30);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	while ((n = read(sv[1], buf, sizeof(buf))) > 0)
		drained += n;
	EXPECT_EQ(filled, drained);
	close(sv[0]);
	close(sv[1]);
}

static void dl_accept_connect(void)
{
	struct sockaddr_in sa, sb;
	int lfd, c, a, i, fds[8], nfds = 0, timedout = 0;
	int64_t t0;

	lfd = listener(&sa, 16);
	EXPECT_EQ(-EAGAIN, kgo_accept_dl(lfd, NULL, NULL, 0, 0));
	t0 = kgo_now();
	EXPECT_EQ(-ETIMEDOUT, kgo_accept_dl(lfd, NULL, NULL, 0, t0 + 40 * MS));
	EXPECT_TOOK(t0, 40);
	/* A connection after the deadline waits for the next accept. */
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_EQ(0, kgo_connect_dl(c, (struct sockaddr *)&sa, sizeof(sa),
				    kgo_now() + 1000 * MS));
	a = kgo_accept_dl(lfd, NULL, NULL, 0, kgo_now() + 1000 * MS);
	EXPECT_LE(0, a);
	close(a);
	close(c);
	close(lfd);

	/* A listener that accepts nothing, with a backlog of 0: the first
	 * connection or two fill it, the next ones get no SYN-ACK. */
	lfd = listener(&sb, 0);
	for (i = 0; i < 6 && !timedout; i++) {
		c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ASSERT_LE(0, c);
		fds[nfds++] = c;
		t0 = kgo_now();
		a = kgo_connect_dl(c, (struct sockaddr *)&sb, sizeof(sb),
				   t0 + 100 * MS);
		if (a == -ETIMEDOUT) {
			EXPECT_TOOK(t0, 100);
			timedout = 1;
		} else {
			EXPECT_EQ(0, a);
		}
	}
	EXPECT_TRUE(timedout);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fds[nfds++] = c;
	EXPECT_EQ(-EINPROGRESS, kgo_connect_dl(c, (struct sockaddr *)&sb,
					       sizeof(sb), 0));
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	close(lfd);
}

static void dl_poll(void)
{
	int p[2];
	int64_t t0;

	ASSERT_EQ(0, pipe(p));
	EXPECT_EQ(-EAGAIN, kgo_poll(p[0], POLLIN, 0));
	t0 = kgo_now();
	EXPECT_EQ(-ETIMEDOUT, kgo_poll(p[0], POLLIN, t0 + 30 * MS));
	EXPECT_TOOK(t0, 30);
	close(p[0]);
	close(p[1]);
}

static void deadlines_main(void *arg)
{
	(void)arg;
	dl_recv_read();
	dl_write_send();
	dl_accept_connect();
	dl_poll();
}

TEST_F(net, deadlines)
{
	struct kgo_stats st;

	run(deadlines_main, NULL, 2);
	kgo_stats_get(&st, sizeof(st));
	if (variant->uring)
		EXPECT_LE(8, st.io_timeouts);
}

/* ------------------------------------------------------------------ */

struct np {
	int sv[2];
	int64_t delay;
	const char *msg;
	_Atomic int got;
	struct kgo_wg wg;
};

/* Sends np->msg (or shuts the socket down when NULL) after np->delay. */
static void np_send_later(void *arg)
{
	struct np *np = arg;
	/* Taken at once: the main G changes them once it has its data. */
	const char *msg = np->msg;
	int fd = np->sv[1];

	kgo_sleep(np->delay);
	if (msg)
		ASSERT_EQ((ssize_t)strlen(msg), kgo_send(fd, msg, strlen(msg), 0));
	else
		ASSERT_EQ(0, shutdown(fd, SHUT_WR));
}

static void np_recv_one(void *arg)
{
	struct np *np = arg;
	char c;

	ASSERT_EQ(1, kgo_recv(np->sv[0], &c, 1, 0));
	EXPECT_EQ('z', c);
	atomic_fetch_add(&np->got, 1);
	kgo_wg_done(&np->wg);
}

static void np_pair(struct np *np)
{
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, np->sv));
}

static void netpoller_main(void *arg)
{
	struct np np = { .wg = KGO_WG_INIT };
	char buf[16];
	int old, i;
	int64_t t0;

	(void)arg;
	/* Data sent while the G waits. */
	np_pair(&np);
	np.delay = 20 * MS;
	np.msg = "hello";
	/* t0 before the sender starts: with P=2 it may start its 20 ms
	 * sleep at once on the other P, while this G is held off (asan
	 * under load: 14.86 ms measured from a t0 taken after kgo_go). */
	t0 = kgo_now();
	kgo_go(np_send_later, &np);
	ASSERT_EQ(5, kgo_recv(np.sv[0], buf, sizeof(buf), 0));
	EXPECT_EQ(0, memcmp(buf, "hello", 5));
	EXPECT_LE(15 * MS, kgo_now() - t0);
	/* The peer's shutdown wakes it with 0, as recv(2). */
	np.msg = NULL;
	kgo_go(np_send_later, &np);
	EXPECT_EQ(0, kgo_recv(np.sv[0], buf, sizeof(buf), 0));
	old = np.sv[0];
	close(np.sv[1]);

	/* The number comes back for another socket: its waiter still wakes.
	 * The fd hint still says "registered" (close(2) is behind kgo's
	 * back), so the waiter parks with the new socket not in the epoll:
	 * sysmon's check of long waits (io.c, netpoll_check) registers it.
	 * Without that check this recv sleeps for ever (timeout).
	 * dup2 puts the new socket on the old number in one step; waiting
	 * for "the lowest free number" raced with sysmon, which opens
	 * /proc/self/task/N/stat at a syscall's first look and took the
	 * number first in a CI run (3 where 4 was expected). */
	np_pair(&np);
	ASSERT_EQ(old, dup2(np.sv[0], old));
	close(np.sv[0]);
	np.sv[0] = old;
	np.msg = "again";
	kgo_go(np_send_later, &np);
	ASSERT_EQ(5, kgo_recv(np.sv[0], buf, sizeof(buf), 0));
	EXPECT_EQ(0, memcmp(buf, "again", 5));

	/* Two Gs waiting on one socket: both get a byte. */
	kgo_wg_add(&np.wg, 2);
	for (i = 0; i < 2; i++)
		kgo_go(np_recv_one, &np);
	kgo_sleep(10 * MS);
	np.msg = "z";
	np.delay = 0;
	for (i = 0; i < 2; i++) {
		kgo_go(np_send_later, &np);
		kgo_sleep(10 * MS);
	}
	kgo_wg_wait(&np.wg);
	EXPECT_EQ(2, atomic_load(&np.got));

	/* A deadline still cancels, and leaves later data in place. */
	t0 = kgo_now();
	EXPECT_EQ(-ETIMEDOUT, kgo_recv_dl(np.sv[0], buf, sizeof(buf), 0,
					  t0 + 30 * MS));
	EXPECT_LE(25 * MS, kgo_now() - t0);
	ASSERT_EQ(1, send(np.sv[1], "q", 1, 0));
	ASSERT_EQ(1, kgo_recv(np.sv[0], buf, sizeof(buf), 0));
	EXPECT_EQ('q', buf[0]);

	/* O_NONBLOCK set after waits: -EAGAIN at once. */
	ASSERT_EQ(0, fcntl(np.sv[0], F_SETFL, O_NONBLOCK));
	EXPECT_EQ(-EAGAIN, kgo_recv(np.sv[0], buf, sizeof(buf), 0));
	close(np.sv[0]);
	close(np.sv[1]);
}

TEST_F(net, netpoller)
{
	struct kgo_stats st;

	run(netpoller_main, NULL, 2);
	kgo_stats_get(&st, sizeof(st));
	EXPECT_EQ(0, st.io_waiting);
}

/*
 * Waits on the netpoller that trust the "registered" hint keep sysmon
 * out of its deep sleep until it has checked them (io.c,
 * netpoll_check); after that, and once no G waits at all, sysmon must
 * sleep again: an idle runtime polls nothing.
 */
static void netpoller_idle_main(void *arg)
{
	struct np np = { .wg = KGO_WG_INIT };
	struct np last = { .msg = "z", .delay = 0 };
	uint64_t *wakeups = arg;
	char buf[16];
	int i;

	np_pair(&np);
	np.msg = "x";
	np.delay = 2 * MS;
	/* The first wait adds the socket; the next ones trust the hint
	 * and end before sysmon looks at them. (np is not written again:
	 * its readers are ordered after us only through the socket, which
	 * TSan does not see.) */
	for (i = 0; i < 3; i++) {
		kgo_go(np_send_later, &np);
		ASSERT_EQ(1, kgo_recv(np.sv[0], buf, sizeof(buf), 0));
	}
	/* 100 ms to let sysmon settle, then 300 ms counted
	 * (sysmon_count.h). */
	wakeups[0] = sysmon_wakeups_idle(100 * MS, 300 * MS);
	/* A G left waiting on a trusted hint: checked, then sleep. */
	kgo_wg_add(&np.wg, 1);
	kgo_go(np_recv_one, &np);
	wakeups[1] = sysmon_wakeups_idle(100 * MS, 300 * MS);
	last.sv[1] = np.sv[1];
	kgo_go(np_send_later, &last);
	kgo_wg_wait(&np.wg);
	close(np.sv[0]);
	close(np.sv[1]);
}

/* The kernel's io_uring has IORING_OP_FUTEX_WAIT (51, 6.7+; liburing
 * 2.3 does not name it), which an idle M needs to watch the netpoller
 * (user/runtime/io.c, io_notesleep). */
static bool ring_has_futex_wait(void)
{
	struct io_uring_probe *p = io_uring_get_probe();
	bool ok = p && io_uring_opcode_supported(p, 51);

	if (p)
		io_uring_free_probe(p);
	return ok;
}

TEST_F(net, netpoller_idle)
{
	uint64_t wakeups[2];

	if (!variant->uring) {
		SKIP(return, "no netpoller without io_uring: a recv there waits "
		     "in a syscall, which sysmon watches as Go's does");
	}
	run(netpoller_idle_main, wakeups, 2);
	/* Awake, sysmon looks every 10 ms at least (~30 times in 300 ms);
	 * asleep, none. */
	EXPECT_LT(wakeups[0], 15) TH_LOG("no G waiting: sysmon woke %llu "
					 "times in 300 ms",
					 (unsigned long long)wakeups[0]);
	if (!ring_has_futex_wait()) {
		SKIP(return, "a checked wait needs IORING_OP_FUTEX_WAIT (Linux "
		     "6.7+): without it no idle M watches the netpoller and "
		     "sysmon polls it (woke %llu times in 300 ms)",
		     (unsigned long long)wakeups[1]);
	}
	EXPECT_LT(wakeups[1], 15) TH_LOG("a checked wait: sysmon woke %llu "
					 "times in 300 ms",
					 (unsigned long long)wakeups[1]);
}

/* ------------------------------------------------------------------ */

/* The fd's reads refuse RWF_NOWAIT, as pipes and AF_UNIX sockets do on
 * 6.1 and ptys on every kernel here (EOPNOTSUPP; a pipe on 6.18 says
 * EAGAIN). */
static bool nowait_refused(int fd)
{
	char c;
	struct iovec iov = { &c, 1 };

	return preadv2(fd, &iov, 1, -1, RWF_NOWAIT) < 0 && errno == EOPNOTSUPP;
}

static void set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/*
 * One reader and writer pair, both empty: reads with deadlines (twice
 * each: the first call learns that the fd refuses RWF_NOWAIT, the next
 * ones go by the hint), O_NONBLOCK, then, with @fill, writes of 512
 * bytes with deadline 0, a deadline and O_NONBLOCK until the fd is
 * full; what they took is what the reader finds.
 */
static void refused_pair(const char *what, int rfd, int wfd, bool fill)
{
	char buf[512];
	size_t filled = 0, drained = 0;
	int64_t t0;
	ssize_t n;
	int i;

	TH_LOG("%s: reads %s RWF_NOWAIT", what,
	       nowait_refused(rfd) ? "refuse" : "take");
	for (i = 0; i < 2; i++)
		EXPECT_EQ(-EAGAIN, kgo_read_dl(rfd, buf, sizeof(buf), 0));
	for (i = 0; i < 2; i++) {
		t0 = kgo_now();
		EXPECT_EQ(-ETIMEDOUT, kgo_read_dl(rfd, buf, sizeof(buf),
						  t0 + 30 * MS));
		EXPECT_TOOK(t0, 30);
	}
	ASSERT_EQ(2, write(wfd, "ab", 2));
	/* (A pty passes the bytes on from a kernel worker, later.) */
	EXPECT_EQ(POLLIN, kgo_poll(rfd, POLLIN, -1));
	EXPECT_EQ(2, kgo_read_dl(rfd, buf, sizeof(buf), 0));
	set_nonblock(rfd, true);
	EXPECT_EQ(-EAGAIN, kgo_read(rfd, buf, sizeof(buf)));
	set_nonblock(rfd, false);
	EXPECT_EQ(1, kgo_write_dl(wfd, "c", 1, 0));
	EXPECT_EQ(1, kgo_read(rfd, buf, sizeof(buf)));
	if (!fill)
		return;

	/*
	 * RWF_NOWAIT may say EAGAIN where a blocking write would still find
	 * room (a pipe's last page, a socket under its limit), so each kind
	 * of write goes on until it says "full" its own way; every byte a
	 * call took is counted.
	 */
	memset(buf, 'w', sizeof(buf));
	for (i = 0; i < 100000; i++) {
		n = kgo_write_dl(wfd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		filled += n;
	}
	EXPECT_EQ(-EAGAIN, n);
	for (i = 0; i < 1000; i++) {
		t0 = kgo_now();
		n = kgo_write_dl(wfd, buf, sizeof(buf), t0 + 30 * MS);
		if (n <= 0)
			break;
		filled += n;
	}
	EXPECT_EQ(-ETIMEDOUT, n);
	EXPECT_TOOK(t0, 30);
	set_nonblock(wfd, true);
	for (i = 0; i < 1000; i++) {
		n = kgo_write(wfd, buf, sizeof(buf));
		if (n <= 0)
			break;
		filled += n;
	}
	EXPECT_EQ(-EAGAIN, n);
	set_nonblock(rfd, true);
	while ((n = read(rfd, buf, sizeof(buf))) > 0)
		drained += n;
	EXPECT_EQ(filled, drained);
}

static void nowait_refused_main(void *arg)
{
	struct termios raw;
	int p[2], sv[2], master, slave;

	(void)arg;
	/* A pty in raw mode: no echo, no line discipline holding bytes. */
	ASSERT_EQ(0, openpty(&master, &slave, NULL, NULL, NULL));
	tcgetattr(slave, &raw);
	cfmakeraw(&raw);
	tcsetattr(slave, TCSANOW, &raw);
	refused_pair("pty", master, slave, false);
	close(master);
	close(slave);

	ASSERT_EQ(0, pipe(p));
	fcntl(p[1], F_SETPIPE_SZ, 4096);
	refused_pair("pipe", p[0], p[1], true);
	close(p[0]);
	close(p[1]);

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	refused_pair("AF_UNIX", sv[0], sv[1], true);
	close(sv[0]);
	close(sv[1]);
}

TEST_F(net, nowait_refused)
{
	run(nowait_refused_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

/*
 * The netpoller cannot starve the global queue. A P whose Gs wait on
 * sockets finds its own queue empty at each wait, polls, and gets the
 * next G from the poll; Gs on the global queue (readied by sysmon's
 * poll, or made from a thread of no runtime) must run before it polls
 * again, as in Go's findRunnable (local queue, global queue, then the
 * netpoller). When the poll came first, the poll's Gs always refilled
 * the local queue, and the global queue was served by the fairness
 * rule alone, one G every 61 switches: 64 Gs waited ~2000 round trips
 * of a socket pair here, and in the HTTP server under wrk, Gs that
 * sysmon's poll had readied waited 10-30 ms (a p99 of 12-24 ms in one
 * run of three: README, "HTTP under wrk").
 */
#define STARVE_GS	64
#define STARVE_WARM	200		/* round trips before the spawn */
#define STARVE_CAP	200000L		/* round trips at most */

static struct {
	int sv[2];
	_Atomic long rounds, queued_at, last_at;
	_Atomic int ran;
	_Atomic bool spawned;
} starve;

static void starve_g(void *arg)
{
	long r = atomic_load(&starve.rounds);
	long last = atomic_load(&starve.last_at);

	(void)arg;
	while (r > last &&
	       !atomic_compare_exchange_weak(&starve.last_at, &last, r))
		;
	atomic_fetch_add(&starve.ran, 1);
}

/* A thread of no runtime: its kgo_go puts the Gs on the global queue. */
static void *starve_thread(void *arg)
{
	int i;

	(void)arg;
	while (atomic_load(&starve.rounds) < STARVE_WARM)
		usleep(100);
	for (i = 0; i < STARVE_GS; i++)
		if (kgo_go(starve_g, NULL))
			break;
	/* After the last is queued: each must run at the P's next look
	 * (the pair's round counts are what the test is in). */
	atomic_store(&starve.queued_at, atomic_load(&starve.rounds));
	atomic_store(&starve.spawned, true);
	return NULL;
}

static void starve_echo(void *arg)
{
	char c;

	(void)arg;
	while (kgo_read(starve.sv[1], &c, 1) == 1)
		if (kgo_write(starve.sv[1], &c, 1) != 1)
			break;
}

static void starve_main(void *arg)
{
	pthread_t t;
	char c = 'x';

	(void)arg;
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				starve.sv));
	ASSERT_EQ(0, kgo_go(starve_echo, NULL));
	ASSERT_EQ(0, pthread_create(&t, NULL, starve_thread, NULL));
	while (atomic_load(&starve.ran) < STARVE_GS &&
	       atomic_load(&starve.rounds) < STARVE_CAP) {
		ASSERT_EQ(1, kgo_write(starve.sv[0], &c, 1));
		ASSERT_EQ(1, kgo_read(starve.sv[0], &c, 1));
		atomic_fetch_add(&starve.rounds, 1);
	}
	while (!atomic_load(&starve.spawned))
		kgo_yield();
	pthread_join(t, NULL);
	kgo_close(starve.sv[0]);	/* the echo G reads 0 and ends */
	while (atomic_load(&starve.ran) < STARVE_GS)
		kgo_yield();
}

TEST_F(net, netpoll_cannot_starve_global_queue)
{
	long waited;

	memset(&starve, 0, sizeof(starve));
	run(starve_main, NULL, 1);
	kgo_close(starve.sv[1]);
	waited = atomic_load(&starve.last_at) - atomic_load(&starve.queued_at);
	TH_LOG("the last of %d Gs on the global queue ran %ld round trips "
	       "of the socket pair after they were all queued (%ld in all)",
	       STARVE_GS, waited, atomic_load(&starve.rounds));
	EXPECT_EQ(STARVE_GS, atomic_load(&starve.ran));
	/* A round trip has two waits: the P takes the batch at the next
	 * (1 at most; 2 for slack). */
	EXPECT_GE(2, waited);
}

/*
 * A netpoller wait whose edge no M collects, because the only M runs a
 * G that yields in a loop (on the local queue: its P never finds both
 * queues empty, and never polls, as in Go), is left to sysmon's poll,
 * every 10 ms while Gs wait there, in both modes. In bpf mode sysmon
 * slept a second (TICK_LOOK) when it last looked with no G waiting,
 * and a wait that began during that sleep waited for its end: 1 s a
 * round here, a timeout. Not timed: the harness's timeout is the test.
 */
#define YIELD_ROUNDS	100

static _Atomic int yield_seen;

static void yield_echo(void *arg)
{
	char c;

	(void)arg;
	while (kgo_read(starve.sv[1], &c, 1) == 1)
		atomic_fetch_add(&yield_seen, 1);
}

static void yield_main(void *arg)
{
	uint64_t *readies = arg;
	struct kgo_stats st;
	int i;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				starve.sv));
	ASSERT_EQ(0, kgo_go(yield_echo, NULL));
	for (i = 1; i <= YIELD_ROUNDS; i++) {
		ASSERT_EQ(1, kgo_write(starve.sv[0], "y", 1));
		while (atomic_load(&yield_seen) < i)
			kgo_yield();
	}
	kgo_stats_get(&st, sizeof(st));
	*readies = st.netpoll_sysmon_readies;
	kgo_close(starve.sv[0]);
}

TEST_F(net, yield_loop_polls)
{
	uint64_t readies = 0;

	memset(&starve, 0, sizeof(starve));
	atomic_store(&yield_seen, 0);
	run(yield_main, &readies, 1);
	kgo_close(starve.sv[1]);
	TH_LOG("%d wakeups of a G that a yielding G waited for: %llu by "
	       "sysmon's poll", YIELD_ROUNDS, (unsigned long long)readies);
	EXPECT_EQ(YIELD_ROUNDS, atomic_load(&yield_seen));
}

/* ------------------------------------------------------------------ */

struct poll_ctx {
	int p[2];
};

static void close_later(void *arg)
{
	struct poll_ctx *pc = arg;

	kgo_sleep(20 * MS);
	close(pc->p[1]);
}

static void readiness_main(void *arg)
{
	struct poll_ctx pc;
	struct sockaddr_in sa;
	struct pollfd pfd;
	int sv[2], lfd, r;
	char buf[8];

	(void)arg;
	ASSERT_EQ(0, pipe(pc.p));
	EXPECT_EQ(POLLOUT, kgo_poll(pc.p[1], POLLOUT, -1));
	ASSERT_EQ(1, write(pc.p[1], "x", 1));
	EXPECT_EQ(POLLIN, kgo_poll(pc.p[0], POLLIN | POLLOUT, -1));
	ASSERT_EQ(1, read(pc.p[0], buf, 1));
	/* Waits, then sees the hang-up as poll(2) reports it. */
	kgo_go(close_later, &pc);
	r = kgo_poll(pc.p[0], POLLIN, kgo_now() + 2000 * MS);
	pfd = (struct pollfd){ .fd = pc.p[0], .events = POLLIN };
	ASSERT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_EQ(pfd.revents, r);
	EXPECT_TRUE(r & POLLHUP);
	close(pc.p[0]);
	/* A closed fd: POLLNVAL, as poll(2). */
	EXPECT_EQ(POLLNVAL, kgo_poll(pc.p[0], POLLIN, -1));

	/* O_NONBLOCK sockets do not wait. */
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
	EXPECT_EQ(-EAGAIN, kgo_recv(sv[0], buf, sizeof(buf), 0));
	EXPECT_EQ(-EAGAIN, kgo_recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT));
	close(sv[0]);
	close(sv[1]);
	lfd = listener(&sa, 4);
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	EXPECT_EQ(-EAGAIN, kgo_accept(lfd, NULL, NULL, 0));
	close(lfd);
	ASSERT_EQ(0, pipe(pc.p));
	EXPECT_EQ(-ENOTSOCK, kgo_accept(pc.p[0], NULL, NULL, 0));
	EXPECT_EQ(-ENOTSOCK, kgo_recv(pc.p[0], buf, 1, 0));
	close(pc.p[0]);
	close(pc.p[1]);
	EXPECT_EQ(-EBADF, kgo_recv(lfd, buf, 1, 0));
	EXPECT_EQ(-EBADF, kgo_send(lfd, buf, 1, 0));
}

/*
 * deadline_timers: before, every wait with a deadline put a timer on a
 * P's heap when it parked and took it off when it woke (two heap
 * operations under a heap lock, often another P's); now the fd's timer
 * stays armed and is moved later lazily (io.c, "The poll descriptor").
 * With P=1 each side's recv waits every time: the peer runs only once
 * it parked.
 */
#define DT_PINGS	200
#define DT_LATER	(10000 * MS)

struct dt {
	int sv[2];
	struct kgo_wg wg;
};

static void dt_echo(void *arg)
{
	struct dt *dt = arg;
	char c;

	while (kgo_recv_dl(dt->sv[1], &c, 1, 0, kgo_now() + DT_LATER) == 1)
		ASSERT_EQ(1, kgo_send(dt->sv[1], &c, 1, 0));
	kgo_wg_done(&dt->wg);
}

static void dt_send_later(void *arg)
{
	struct dt *dt = arg;

	kgo_sleep(30 * MS);
	ASSERT_EQ(1, send(dt->sv[1], "l", 1, 0));
}

static void deadline_timers_main(void *arg)
{
	struct dt dt = { .wg = KGO_WG_INIT };
	uint64_t *armed = arg;
	struct kgo_stats st;
	char c = 'p';
	int i;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, dt.sv));
	kgo_wg_add(&dt.wg, 1);
	kgo_go(dt_echo, &dt);
	kgo_stats_get(&st, sizeof(st));
	armed[0] = st.timers_armed;
	for (i = 0; i < DT_PINGS; i++) {
		ASSERT_EQ(1, kgo_send(dt.sv[0], &c, 1, 0));
		ASSERT_EQ(1, kgo_recv_dl(dt.sv[0], &c, 1, 0,
					 kgo_now() + DT_LATER));
		ASSERT_EQ('p', c);
	}
	kgo_stats_get(&st, sizeof(st));
	armed[1] = st.timers_armed;
	/* Earlier than the fd's timer (armed for ~10 s): it fires. */
	EXPECT_EQ(-ETIMEDOUT, kgo_recv_dl(dt.sv[0], &c, 1, 0,
					  kgo_now() + 20 * MS));
	/* No deadline, after ones that passed: only the data ends it. */
	kgo_go(dt_send_later, &dt);
	ASSERT_EQ(1, kgo_recv(dt.sv[0], &c, 1, 0));
	EXPECT_EQ('l', c);
	ASSERT_EQ(0, shutdown(dt.sv[0], SHUT_WR));
	kgo_wg_wait(&dt.wg);
	close(dt.sv[0]);
	close(dt.sv[1]);
}

TEST_F(net, deadline_timers)
{
	uint64_t armed[2];

	run(deadline_timers_main, armed, 1);
	/* 2 * DT_PINGS waits: one timer per fd, rearmed at most once a
	 * DT_LATER; a tenth is room for a run slower than that. */
	EXPECT_GE(DT_PINGS / 10, armed[1] - armed[0]);
	TH_LOG("%llu timers armed for %d waits",
	       (unsigned long long)(armed[1] - armed[0]), 2 * DT_PINGS);
}

TEST_F(net, readiness)
{
	run(readiness_main, NULL, 2);
}

/*
 * nonblock_cached: a call that would wait reads the fd's O_NONBLOCK
 * flag; it read it with an fcntl(F_GETFL) at every wait (one system
 * call per request in the httpd example), and now keeps the answer
 * "blocking" until kgo_close (io.c, "The O_NONBLOCK flag"). Counted in
 * kgo_stats.fd_flag_reads: the DT_PINGS round trips of deadline_timers
 * (P=1, each side waiting each time) read it once per fd, not once per
 * wait; an fd from kgo_accept is known from its flags (no read); a
 * number closed with kgo_close and reused for an O_NONBLOCK socket gets
 * -EAGAIN at once; O_NONBLOCK set behind kgo's back ends the next wait
 * with -EAGAIN at sysmon's look (not timed here).
 */
struct nbc {
	uint64_t reads[8];	/* kgo_stats.fd_flag_reads before and after */
	int64_t nb_late;	/* ns until O_NONBLOCK behind our back ended
				 * the wait */
};

static uint64_t flag_reads(void)
{
	struct kgo_stats st;

	kgo_stats_get(&st, sizeof(st));
	return st.fd_flag_reads;
}

static void nonblock_cached_main(void *arg)
{
	struct dt dt = { .wg = KGO_WG_INIT };
	struct nbc *nbc = arg;
	struct sockaddr_in sa;
	int lfd, cfd, afd, nsv[2], fd;
	char c = 'p';
	int64_t t0;
	int i;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, dt.sv));
	/* A number of the test's own, to close and take again below. */
	dt.sv[0] = fd_high(dt.sv[0]);
	ASSERT_LE(FD_TEST_BASE, dt.sv[0]);
	kgo_wg_add(&dt.wg, 1);
	kgo_go(dt_echo, &dt);
	nbc->reads[0] = flag_reads();
	for (i = 0; i < DT_PINGS; i++) {
		ASSERT_EQ(1, kgo_send(dt.sv[0], &c, 1, 0));
		ASSERT_EQ(1, kgo_recv(dt.sv[0], &c, 1, 0));
		ASSERT_EQ('p', c);
	}
	nbc->reads[1] = flag_reads();

	/* Accepted blocking: known from the flags, no read at its wait
	 * (the listener's own flag read first, by a call that does not
	 * wait). Accepted non-blocking: -EAGAIN; such an fd's flag is
	 * read at each call that would wait, never kept. */
	lfd = listener(&sa, 4);
	EXPECT_EQ(-EAGAIN, kgo_accept_dl(lfd, NULL, NULL, SOCK_CLOEXEC, 0));
	for (i = 0; i < 2; i++) {
		cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ASSERT_LE(0, cfd);
		ASSERT_EQ(0, connect(cfd, (struct sockaddr *)&sa, sizeof(sa)));
		afd = kgo_accept(lfd, NULL, NULL,
				 SOCK_CLOEXEC | (i ? SOCK_NONBLOCK : 0));
		ASSERT_LE(0, afd);
		nbc->reads[2 + i] = flag_reads();
		if (i)
			EXPECT_EQ(-EAGAIN, kgo_recv(afd, &c, 1, 0));
		else
			EXPECT_EQ(-ETIMEDOUT, kgo_recv_dl(afd, &c, 1, 0,
						kgo_now() + 5 * MS));
		nbc->reads[4 + i] = flag_reads();
		kgo_close(afd);
		close(cfd);
	}
	close(lfd);

	/* kgo_close forgets: the number again, non-blocking this time. */
	fd = dt.sv[0];
	ASSERT_EQ(0, kgo_close(fd));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
				SOCK_NONBLOCK, 0, nsv));
	ASSERT_EQ(fd, fd_onto(nsv[0], fd));	/* fd_number.h */
	nbc->reads[6] = flag_reads();
	EXPECT_EQ(-EAGAIN, kgo_recv(fd, &c, 1, 0));
	nbc->reads[7] = flag_reads();

	/* Made blocking behind kgo's back: waits (the flag is read at
	 * each would-be wait of a non-blocking fd). Made non-blocking
	 * again behind its back, once known as blocking: -EAGAIN when
	 * sysmon looks at the wait. */
	ASSERT_EQ(0, fcntl(fd, F_SETFL, 0));
	EXPECT_EQ(-ETIMEDOUT, kgo_recv_dl(fd, &c, 1, 0, kgo_now() + 5 * MS));
	ASSERT_EQ(0, fcntl(fd, F_SETFL, O_NONBLOCK));
	t0 = kgo_now();
	EXPECT_EQ(-EAGAIN, kgo_recv(fd, &c, 1, 0));
	nbc->nb_late = kgo_now() - t0;

	ASSERT_EQ(0, shutdown(nsv[1], SHUT_WR));
	close(dt.sv[1]);	/* the echo G's recv sees the end */
	kgo_wg_wait(&dt.wg);
	close(fd);
	close(nsv[1]);
}

TEST_F(net, nonblock_cached)
{
	struct nbc nbc = { 0 };

	run(nonblock_cached_main, &nbc, 1);
	/* One read per fd of the pair, not one per wait. */
	EXPECT_GE(2, nbc.reads[1] - nbc.reads[0]);
	/* Accepted blocking: none; non-blocking: the one of its call. */
	EXPECT_EQ(0, nbc.reads[4] - nbc.reads[2]);
	EXPECT_EQ(1, nbc.reads[5] - nbc.reads[3]);
	/* The number again after kgo_close: read, and found non-blocking. */
	EXPECT_EQ(1, nbc.reads[7] - nbc.reads[6]);
	TH_LOG("%llu flag reads for %d waits; O_NONBLOCK behind kgo's back "
	       "seen after %lld ms", (unsigned long long)(nbc.reads[1] -
	       nbc.reads[0]), 2 * DT_PINGS, (long long)(nbc.nb_late / MS));
}

/*
 * drained: a recv whose last read on a TCP socket was short (it emptied
 * the socket) and that saw no edge since goes straight to the
 * netpoller, without its MSG_DONTWAIT try (io.c, "Drained sockets"),
 * counted in kgo_stats.net_tries_skipped; and never where a short read
 * leaves something behind: a datagram socket (unix, UDP) with two
 * datagrams queued, a MSG_PEEK, a FIN after the data. Each of those is
 * asserted on the counters (no skip; the next datagram read by the
 * try, io_nowait_hits), not on time: a wrong skip costs a wait that
 * sysmon's look ends 10-20 ms into it, and a skipped call whose
 * deadline passed still tries once before -ETIMEDOUT.
 */
#define DR_ROUNDS	100
#define DR_LATER	(10000 * MS)

struct dr {
	int sv[2];
	struct kgo_wg wg;
};

static void dr_stats(struct kgo_stats *st)
{
	ASSERT_LT(0, kgo_stats_get(st, sizeof(*st)));
}

/* The server's side of the loop: a request of 4 bytes into a buffer of
 * 64 (short reads), an answer of 4, until the peer closes. */
static void dr_serve(void *arg)
{
	struct dr *dr = arg;
	char buf[64];
	ssize_t n;

	while ((n = kgo_recv_dl(dr->sv[1], buf, sizeof(buf), 0,
				kgo_now() + DR_LATER)) > 0) {
		ASSERT_EQ(4, n);
		ASSERT_EQ(0, memcmp(buf, "ping", 4));
		ASSERT_EQ(4, kgo_send(dr->sv[1], "pong", 4, 0));
	}
	ASSERT_EQ(0, n);
	kgo_wg_done(&dr->wg);
}

/* A connected TCP pair over loopback: sv[0] connected, sv[1] accepted. */
static void dr_tcp_pair(int sv[2])
{
	struct sockaddr_in sa;
	int lfd = listener(&sa, 1), one = 1;

	sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, sv[0]);
	ASSERT_EQ(0, kgo_connect(sv[0], (struct sockaddr *)&sa, sizeof(sa)));
	sv[1] = kgo_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
	ASSERT_LE(0, sv[1]);
	setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	close(lfd);
}

static void dr_send_two(void *arg)
{
	struct dr *dr = arg;

	/* Both before this G yields (P = 1): the edge that wakes the
	 * reader is collected with both datagrams queued, and no other
	 * comes after the reader's first, short read. */
	kgo_sleep(10 * MS);
	ASSERT_EQ(1, send(dr->sv[1], "a", 1, 0));
	ASSERT_EQ(2, send(dr->sv[1], "bb", 2, 0));
}

/* Two datagrams queued: the short read of the first must not make the
 * second wait for an edge that will not come. */
static void dr_dgram(struct dr *dr, const char *what)
{
	struct kgo_stats a, b;
	char buf[64];

	kgo_go(dr_send_two, dr);
	ASSERT_EQ(1, kgo_recv_dl(dr->sv[0], buf, sizeof(buf), 0,
				 kgo_now() + DR_LATER));
	EXPECT_EQ('a', buf[0]);
	dr_stats(&a);
	ASSERT_EQ(2, kgo_recv_dl(dr->sv[0], buf, sizeof(buf), 0,
				 kgo_now() + DR_LATER));
	dr_stats(&b);
	EXPECT_EQ(0, memcmp(buf, "bb", 2));
	EXPECT_EQ(0, b.net_tries_skipped - a.net_tries_skipped);
	/* Read by the try, not after a wait. */
	EXPECT_EQ(1, b.io_nowait_hits - a.io_nowait_hits);
	TH_LOG("%s: second datagram read by the try: %s", what,
	       b.io_nowait_hits - a.io_nowait_hits == 1 ? "yes" : "no");
	close(dr->sv[0]);
	close(dr->sv[1]);
}

static void drained_main(void *arg)
{
	struct dr dr = { .wg = KGO_WG_INIT };
	struct kgo_stats a, b;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	uint64_t *skipped = arg;
	char buf[64];
	int i;

	/* The request/response loop on TCP: both sides skip their try
	 * from the second round on (P = 1: each side calls recv before
	 * the peer runs). */
	dr_tcp_pair(dr.sv);
	kgo_wg_add(&dr.wg, 1);
	kgo_go(dr_serve, &dr);
	dr_stats(&a);
	for (i = 0; i < DR_ROUNDS; i++) {
		ASSERT_EQ(4, kgo_send(dr.sv[0], "ping", 4, 0));
		ASSERT_EQ(4, kgo_recv_dl(dr.sv[0], buf, sizeof(buf), 0,
					 kgo_now() + DR_LATER));
		ASSERT_EQ(0, memcmp(buf, "pong", 4));
	}
	dr_stats(&b);
	skipped[0] = b.net_tries_skipped - a.net_tries_skipped;

	/* MSG_PEEK says nothing of the queue: the read after it, of the
	 * same bytes, does not skip its try. */
	ASSERT_EQ(4, kgo_send(dr.sv[0], "ping", 4, 0));
	ASSERT_EQ(4, kgo_recv(dr.sv[0], buf, sizeof(buf), MSG_PEEK));
	dr_stats(&a);
	ASSERT_EQ(4, kgo_recv(dr.sv[0], buf, sizeof(buf), 0));
	dr_stats(&b);
	EXPECT_EQ(0, memcmp(buf, "pong", 4));
	EXPECT_EQ(0, b.net_tries_skipped - a.net_tries_skipped);

	/* The request and the FIN together (P = 1: both sent before the
	 * server runs): its read stops short at the FIN, and its next one
	 * must find the end by its try, as no edge will come. */
	dr_stats(&a);
	ASSERT_EQ(4, kgo_send(dr.sv[0], "ping", 4, 0));
	ASSERT_EQ(0, shutdown(dr.sv[0], SHUT_WR));
	ASSERT_EQ(4, kgo_recv(dr.sv[0], buf, sizeof(buf), 0));
	kgo_wg_wait(&dr.wg);	/* dr_serve read 0 */
	dr_stats(&b);
	/* This side's recv of the answer may skip (its last read drained
	 * and the answer came after): at most that one. */
	skipped[1] = b.net_tries_skipped - a.net_tries_skipped;
	EXPECT_GE(1, skipped[1]);
	close(dr.sv[0]);
	close(dr.sv[1]);

	/* Datagrams: unix, then UDP over loopback. */
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dr.sv));
	dr_dgram(&dr, "unix");
	for (i = 0; i < 2; i++) {
		dr.sv[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		ASSERT_LE(0, dr.sv[i]);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(0, bind(dr.sv[0], (struct sockaddr *)&sa, sizeof(sa)));
	ASSERT_EQ(0, getsockname(dr.sv[0], (struct sockaddr *)&sa, &len));
	ASSERT_EQ(0, connect(dr.sv[1], (struct sockaddr *)&sa, sizeof(sa)));
	dr_dgram(&dr, "udp");
}

TEST_F(net, drained)
{
	uint64_t skipped[2];

	run(drained_main, skipped, 1);
	TH_LOG("%llu of %d round trips' recvs skipped their try; %llu at the FIN",
	       (unsigned long long)skipped[0], 2 * DR_ROUNDS,
	       (unsigned long long)skipped[1]);
	/* Both sides, from the second round on. */
	EXPECT_LE(DR_ROUNDS, skipped[0]);
}

TEST_HARNESS_MAIN
