// SPDX-License-Identifier: MIT
/*
 * httpd - a tiny HTTP/1.1 keep-alive server on kgo: one G per
 * connection, a read deadline on every request, graceful shutdown on
 * SIGTERM or SIGINT.
 *
 *	httpd [-a addr] [-p port] [-d ms] [-P procs]
 *
 *   -a addr	address to listen on (default 127.0.0.1)
 *   -p port	port (default 8080; 0: any free one)
 *   -d ms	read deadline of each request, from the moment the server
 *		starts waiting for it (default 10000; 0: none)
 *   -P procs	KGO_MAXPROCS (default: the CPUs)
 *
 * Prints "listening on ADDR:PORT" once it accepts connections; with
 * HTTPD_STATS=1 in the environment, the runtime's counters at the end
 * (kgo_stats: switches, handoffs, sysmon wakeups...) on stderr. Every
 * request gets "200 OK" and "Hello, World!\n" (requests may be
 * pipelined; "Connection: close" closes after the answer). A
 * connection that sends nothing for the deadline is closed: kgo_recv_dl
 * returns -ETIMEDOUT. On SIGTERM the server stops accepting (the
 * listener's read deadline goes into the past: the accepting G's
 * kgo_accept fails with -ETIMEDOUT, now or at its next call, and that G,
 * the listener's only user, closes it), puts
 * every connection's read deadline in the past (kgo_fd_set_deadline:
 * connections waiting for a request, or for the rest of one, end at
 * once; one sending an answer finishes it first), waits for the
 * connection Gs to finish and exits 0.
 *
 * Load it with wrk (selftests/bench/wrk_pair does, for make bench):
 *
 *	build/examples/httpd -p 8080 &
 *	wrk -t1 -c100 -d5s --latency http://127.0.0.1:8080/
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kgo.h>

#define MS		1000000LL
#define MAXCONNS	65536
#define BUFSZ		4096

static const char answer[] =
	"HTTP/1.1 200 OK\r\n"
	"Content-Type: text/plain\r\n"
	"Content-Length: 14\r\n"
	"\r\n"
	"Hello, World!\n";

static const char too_big[] =
	"HTTP/1.1 431 Request Header Fields Too Large\r\n"
	"Content-Length: 0\r\n"
	"Connection: close\r\n"
	"\r\n";

static struct {
	const char *addr;
	int port;
	int64_t deadline;	/* ns; 0: none */
	int lfd;
	/* The open connections, for the shutdown: fds[fd] is set while
	 * a G serves fd. Guarded by lock. */
	struct kgo_mutex lock;
	unsigned char open[MAXCONNS];
	bool stopping;		/* lock */
	struct kgo_wg conns;
} srv = {
	.addr = "127.0.0.1", .port = 8080, .deadline = 10000 * MS,
	.lock = KGO_MUTEX_INIT, .conns = KGO_WG_INIT,
};

/* ------------------------------------------------------------------ */
/* Waiting for the shutdown request                                   */
/* ------------------------------------------------------------------ */

/*
 * SIGTERM and SIGINT arrive as values on a channel (kgo_signal_notify,
 * Go's signal.Notify): the main G receives the first one. The channel
 * has room for both, so neither is dropped while nobody receives.
 */
static struct kgo_chan *sigch;

static int shutdown_notify(void)
{
	static const int sigs[] = { SIGTERM, SIGINT };

	sigch = kgo_chan_make(sizeof(int), 2);
	if (!sigch)
		return -ENOMEM;
	return kgo_signal_notify(sigch, sigs, 2);
}

/* Return: the signal that asked for the shutdown. */
static int shutdown_wait(void)
{
	int sig = 0;

	kgo_chan_recv(sigch, &sig);
	kgo_signal_stop(sigch);		/* a second one kills, as usual */
	return sig;
}

/* ------------------------------------------------------------------ */
/* Serving                                                            */
/* ------------------------------------------------------------------ */

/* The end of the request head in buf[0..n), or NULL. */
static char *head_end(char *buf, size_t n)
{
	return memmem(buf, n, "\r\n\r\n", 4);
}

static bool wants_close(const char *head, size_t n)
{
	const char *p = head, *end = head + n;

	while ((p = memchr(p, '\n', end - p)) && ++p < end) {
		if ((size_t)(end - p) >= 17 &&
		    !strncasecmp(p, "connection: close", 17))
			return true;
	}
	return false;
}

static void serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[BUFSZ];
	size_t have = 0, used;
	bool close_after = false;
	char *end;
	ssize_t n;

	for (;;) {
		/* Answer every complete request in the buffer. */
		while ((end = head_end(buf, have))) {
			used = end + 4 - buf;
			close_after = wants_close(buf, used);
			if (kgo_send(fd, answer, sizeof(answer) - 1, 0) < 0)
				goto out;
			memmove(buf, buf + used, have - used);
			have -= used;
			if (close_after)
				goto out;
		}
		if (have == sizeof(buf)) {
			kgo_send(fd, too_big, sizeof(too_big) - 1, 0);
			goto out;
		}
		n = kgo_recv_dl(fd, buf + have, sizeof(buf) - have, 0,
				srv.deadline ? kgo_now() + srv.deadline : -1);
		if (n <= 0)
			break;	/* 0: the client closed; -ETIMEDOUT: idle */
		have += n;
	}
out:
	kgo_mutex_lock(&srv.lock);
	srv.open[fd] = 0;
	kgo_mutex_unlock(&srv.lock);
	kgo_close(fd);
	kgo_wg_done(&srv.conns);
}

static void accept_loop(void *arg)
{
	int fd, one = 1;

	(void)arg;
	for (;;) {
		fd = kgo_accept(srv.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd == -ETIMEDOUT)
			break;		/* its deadline passed: shutdown */
		if (fd < 0) {
			if (fd != -ECONNABORTED && fd != -EINTR)
				fprintf(stderr, "httpd: accept: %s\n",
					strerror(-fd));
			if (fd == -EMFILE || fd == -ENFILE)
				kgo_sleep(10 * MS);
			continue;
		}
		if (fd >= MAXCONNS) {
			kgo_close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		kgo_mutex_lock(&srv.lock);
		if (srv.stopping) {
			kgo_mutex_unlock(&srv.lock);
			kgo_close(fd);
			continue;
		}
		srv.open[fd] = 1;
		kgo_wg_add(&srv.conns, 1);
		kgo_mutex_unlock(&srv.lock);
		if (kgo_go(serve, (void *)(intptr_t)fd)) {
			kgo_mutex_lock(&srv.lock);
			srv.open[fd] = 0;
			kgo_mutex_unlock(&srv.lock);
			kgo_close(fd);
			kgo_wg_done(&srv.conns);
		}
	}
	/*
	 * Closed here, by its only user, not by the G that asks for the
	 * shutdown: closed there, a kgo_accept that had not begun yet would
	 * run on a closed number, or on whatever file took it next (sysmon
	 * opens /proc files: -ENOTSOCK for ever, 1 run in 6 of httpd_test
	 * sigterm under TSan).
	 */
	kgo_close(srv.lfd);
	kgo_wg_done(&srv.conns);
}

static int listen_on(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd, one = 1;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "httpd: %s: not an IPv4 address\n", addr);
		return -EINVAL;
	}
	sa.sin_port = htons(port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(fd, 1024) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len)) {
		int err = -errno;

		fprintf(stderr, "httpd: %s:%d: %s\n", addr, port,
			strerror(errno));
		close(fd);
		return err;
	}
	srv.port = ntohs(sa.sin_port);
	return fd;
}

static void httpd_main(void *arg)
{
	int *status = arg, sig, fd;

	srv.lfd = listen_on(srv.addr, srv.port);
	if (srv.lfd < 0) {
		*status = 1;
		return;
	}
	printf("listening on %s:%d\n", srv.addr, srv.port);
	fflush(stdout);
	kgo_wg_add(&srv.conns, 1);	/* the accepting G */
	kgo_go(accept_loop, NULL);

	sig = shutdown_wait();
	fprintf(stderr, "httpd: %s: shutting down\n", strsignal(sig));
	kgo_mutex_lock(&srv.lock);
	srv.stopping = true;
	/* Idle connections end now; busy ones after their answer. */
	for (fd = 0; fd < MAXCONNS; fd++)
		if (srv.open[fd])
			kgo_fd_set_deadline(fd, 0, KGO_DEADLINE_KEEP);
	kgo_mutex_unlock(&srv.lock);
	/* The accepting G's kgo_accept fails, now or at its next call. */
	kgo_fd_set_deadline(srv.lfd, 0, KGO_DEADLINE_KEEP);
	kgo_wg_wait(&srv.conns);
	*status = 0;
}

/* HTTPD_STATS=1: the runtime's counters of the run, on stderr, for
 * the measurements in README's network section. */
static void print_stats(void)
{
	struct kgo_stats st;
	const struct {
		const char *name;
		const uint64_t *v;
	} f[] = {
		{ "switches", &st.context_switches },
		{ "handoffs", &st.handoffs },
		{ "sysmon_wakeups", &st.sysmon_wakeups },
		{ "preempt_signals", &st.preempt_signals },
		{ "steals", &st.steals },
		{ "globrunq", &st.global_runq_gets },
		{ "io_uring_ops", &st.io_uring_ops },
		{ "nowait", &st.io_nowait_hits },
		{ "timers_armed", &st.timers_armed },
		{ "fd_flag_reads", &st.fd_flag_reads },
		{ "netpoll_sysmon_readies", &st.netpoll_sysmon_readies },
		{ "net_tries_skipped", &st.net_tries_skipped },
	};
	size_t i;

	if (kgo_stats_get(&st, sizeof(st)) < 0)
		return;
	fprintf(stderr, "stats:");
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		fprintf(stderr, " %s %llu", f[i].name,
			(unsigned long long)*f[i].v);
	fprintf(stderr, "\n");
}

int main(int argc, char **argv)
{
	struct kgo_config cfg = { 0 };
	int opt, status = 1, err;

	while ((opt = getopt(argc, argv, "a:p:d:P:h")) != -1) {
		switch (opt) {
		case 'a':
			srv.addr = optarg;
			break;
		case 'p':
			srv.port = atoi(optarg);
			break;
		case 'd':
			srv.deadline = atoll(optarg) * MS;
			break;
		case 'P':
			cfg.maxprocs = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-a addr] [-p port] "
				"[-d deadline_ms, 0: none] [-P procs]\n",
				argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (srv.port < 0 || srv.port > 65535 || srv.deadline < 0) {
		fprintf(stderr, "httpd: bad port or deadline\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	err = shutdown_notify();
	if (err) {
		fprintf(stderr, "httpd: signals: %s\n", strerror(-err));
		return 1;
	}
	err = kgo_run(httpd_main, &status, &cfg);
	if (err) {
		fprintf(stderr, "httpd: kgo_run: %s\n", strerror(-err));
		return 1;
	}
	if (getenv("HTTPD_STATS"))
		print_stats();
	return status;
}
