// SPDX-License-Identifier: MIT
/*
 * Description: TCP echo over loopback. A server G accepts -w (1000)
 * connections and echoes each in a G of its own; -w client Gs, all
 * connected at once, make -n round trips of 64 bytes in all (send, then
 * receive the echo). Figures: round trips (requests) per second, the
 * peak of the process's own threads and of io-wq workers. Go peer:
 * gobench io_echo (package net, the netpoller).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "io_bench.h"

#define MSG	64

static struct {
	struct sockaddr_in sa;
	int lfd, conns;
	long per;
	struct kgo_wg served, done;
	_Atomic long bad;
} b = { .served = KGO_WG_INIT, .done = KGO_WG_INIT };

static void echo(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	ssize_t n;

	while ((n = kgo_recv(fd, buf, sizeof(buf), 0)) > 0)
		if (kgo_send(fd, buf, n, 0) != n)
			break;
	kgo_close(fd);
}

static void server(void *arg)
{
	int i, fd;

	(void)arg;
	for (i = 0; i < b.conns; i++) {
		fd = kgo_accept(b.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			die("io_echo: accept: %s", strerror(-fd));
		if (kgo_go(echo, (void *)(intptr_t)fd))
			die("io_echo: kgo_go");
	}
	kgo_wg_done(&b.served);
}

static void client(void *arg)
{
	char out[MSG], in[MSG];
	int fd, one = 1, r;
	long i;
	ssize_t n, got;

	memset(out, (int)(uintptr_t)arg, sizeof(out));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	r = kgo_connect(fd, (struct sockaddr *)&b.sa, sizeof(b.sa));
	if (r)
		die("io_echo: connect: %s", strerror(-r));
	for (i = 0; i < b.per; i++) {
		if (kgo_send(fd, out, MSG, 0) != MSG)
			atomic_fetch_add(&b.bad, 1);
		for (got = 0; got < MSG; got += n) {
			n = kgo_recv(fd, in + got, MSG - got, 0);
			if (n <= 0) {
				atomic_fetch_add(&b.bad, 1);
				break;
			}
		}
		if (memcmp(in, out, MSG))
			atomic_fetch_add(&b.bad, 1);
	}
	kgo_close(fd);
	kgo_wg_done(&b.done);
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	socklen_t len = sizeof(b.sa);
	struct tsample ts;
	int64_t t0, el;
	long i;

	b.conns = o->w;
	b.per = o->n / o->w;
	b.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	b.sa.sin_family = AF_INET;
	b.sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(b.lfd, (struct sockaddr *)&b.sa, sizeof(b.sa)) ||
	    listen(b.lfd, 4096) ||
	    getsockname(b.lfd, (struct sockaddr *)&b.sa, &len))
		die("io_echo: listen: %s", strerror(errno));
	kgo_wg_add(&b.served, 1);
	kgo_wg_add(&b.done, b.conns);
	tsample_start(&ts);
	bench_go(o, server, NULL);
	t0 = kgo_now();
	for (i = 0; i < b.conns; i++)
		bench_go(o, client, (void *)(uintptr_t)(i + 1));
	kgo_wg_wait(&b.done);
	el = kgo_now() - t0;
	kgo_wg_wait(&b.served);
	tsample_stop(&ts);
	if (atomic_load(&b.bad))
		die("io_echo: %ld bad round trips", atomic_load(&b.bad));
	emit("echo_req_per_s", b.per * b.conns / (el / 1e9), "req/s");
	emit("echo_threads", ts.own_max, "threads");
	emit("echo_iowq_workers", ts.iowq_max, "threads");
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 2, .n = 200000, .w = 1000 };
	struct rlimit rl;

	bench_parse(argc, argv, &o);
	/* Two fds a connection: raise the soft limit, as Go does. */
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	bench_run(bench, &o);
	return 0;
}
