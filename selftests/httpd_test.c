// SPDX-License-Identifier: MIT
/*
 * Description: the example server user/examples/httpd, built beside the
 * tests (build/examples/httpd), run as a user would, through io_uring
 * and through the syscall path (variants uring and syscalls).
 *
 *   keepalive	three requests one after the other on one connection,
 *		then two pipelined in one write: five answers, in order;
 *		"Connection: close" gets its answer, then the end of the
 *		stream.
 *   deadline	a connection that sends nothing is closed by the server
 *		once the read deadline (-d 300) has passed, and one that
 *		sends half a request too; the server serves on.
 *   sigterm	SIGTERM with an idle connection and one in the middle of
 *		a request: the server stops accepting, ends both (their
 *		reads fail at the deadline it moves into the past), and
 *		exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define GET	"GET / HTTP/1.1\r\nHost: t\r\n\r\n"

FIXTURE(httpd) {
	pid_t pid;
	int port;
};

FIXTURE_VARIANT(httpd) {
	bool uring;
};

FIXTURE_VARIANT_ADD(httpd, uring) { .uring = true };
FIXTURE_VARIANT_ADD(httpd, syscalls) { .uring = false };

/* build/examples/httpd, beside this test's directory (build/selftests). */
static bool httpd_path(char *path, size_t n)
{
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (len <= 0)
		return false;
	exe[len] = 0;
	snprintf(path, n, "%s/examples/httpd", dirname(dirname(exe)));
	return access(path, X_OK) == 0;
}

FIXTURE_SETUP(httpd)
{
	char path[PATH_MAX];

	self->pid = -1;
	if (!httpd_path(path, sizeof(path))) {
		SKIP(return, "%s not built (make examples)", path);
	}
	if (variant->uring)
		unsetenv("KGO_IOURING");
	else
		setenv("KGO_IOURING", "0", 1);
	signal(SIGPIPE, SIG_IGN);
}

/* Start the server with a read deadline of @dl_ms; learn its port. */
static void start(FIXTURE_DATA(httpd) *self, const char *dl_ms)
{
	char path[PATH_MAX], line[128];
	int out[2];
	FILE *f;

	ASSERT_TRUE(httpd_path(path, sizeof(path)));
	ASSERT_EQ(0, pipe(out));
	self->pid = fork();
	ASSERT_LE(0, self->pid);
	if (self->pid == 0) {
		dup2(out[1], 1);
		close(out[0]);
		close(out[1]);
		execl(path, path, "-p", "0", "-d", dl_ms, "-P", "2", NULL);
		_exit(127);
	}
	close(out[1]);
	f = fdopen(out[0], "r");
	ASSERT_NONNULL(f);
	ASSERT_NONNULL(fgets(line, sizeof(line), f)) TH_LOG("httpd said nothing");
	fclose(f);
	ASSERT_EQ(1, sscanf(line, "listening on 127.0.0.1:%d", &self->port))
		TH_LOG("httpd said: %s", line);
}

FIXTURE_TEARDOWN(httpd)
{
	if (self->pid > 0 && kill(self->pid, 0) == 0) {
		kill(self->pid, SIGKILL);
		waitpid(self->pid, NULL, 0);
	}
}

/* A connection to the server; reads give up after 20 s (a failure, not
 * a hang). */
static int dial(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 20 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ASSERT_LE(0, fd);
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(0, connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void say(int fd, const char *s)
{
	ASSERT_EQ((ssize_t)strlen(s), write(fd, s, strlen(s)));
}

/* Read one byte (the stream must not end or stall). */
static char get1(int fd)
{
	char c;
	ssize_t r = read(fd, &c, 1);

	ASSERT_EQ(1, r) TH_LOG("%s", r < 0 ? strerror(errno) : "EOF");
	return c;
}

/* Read exactly @n answers: "200 OK" heads whose Content-Length bodies
 * say "Hello, World!\n". */
static void expect_answers(int fd, int n)
{
	char head[512], body[64];
	size_t len, i;
	const char *cl;

	while (n--) {
		for (len = 0; len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4);)
			head[len++] = get1(fd);
		ASSERT_GT(sizeof(head), len);
		head[len] = 0;
		ASSERT_EQ(0, strncmp(head, "HTTP/1.1 200 OK\r\n", 17))
			TH_LOG("%s", head);
		cl = strcasestr(head, "\r\nContent-Length: ");
		ASSERT_NONNULL(cl);
		len = strtoul(cl + 18, NULL, 10);
		ASSERT_GT(sizeof(body), len);
		for (i = 0; i < len; i++)
			body[i] = get1(fd);
		body[len] = 0;
		ASSERT_EQ(0, strcmp(body, "Hello, World!\n"));
	}
}

/* The server closed its end: read says 0 (not a timeout). */
static void expect_eof(int fd)
{
	char c;
	ssize_t r = read(fd, &c, 1);

	ASSERT_EQ(0, r) TH_LOG("%s", r < 0 ? strerror(errno) : "data");
}

static int stop(pid_t pid)
{
	int st;

	ASSERT_EQ(0, kill(pid, SIGTERM));
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	return st;
}

TEST_F(httpd, keepalive)
{
	int fd;

	start(self, "10000");
	fd = dial(self->port);
	for (int i = 0; i < 3; i++) {
		say(fd, GET);
		expect_answers(fd, 1);
	}
	say(fd, GET GET);
	expect_answers(fd, 2);
	say(fd, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
	expect_answers(fd, 1);
	expect_eof(fd);
	close(fd);
	EXPECT_EQ(0, stop(self->pid));
	self->pid = -1;
}

TEST_F(httpd, deadline)
{
	int idle, half, fd;

	start(self, "300");
	idle = dial(self->port);
	half = dial(self->port);
	say(half, "GET / HTTP/1.1\r\n");
	expect_eof(idle);
	expect_eof(half);
	/* The server goes on: a new connection is served. */
	fd = dial(self->port);
	say(fd, GET);
	expect_answers(fd, 1);
	close(fd);
	close(idle);
	close(half);
	EXPECT_EQ(0, stop(self->pid));
	self->pid = -1;
}

TEST_F(httpd, sigterm)
{
	int idle, started, st;
	char line[8];

	start(self, "10000");
	idle = dial(self->port);
	started = dial(self->port);
	say(idle, GET);
	expect_answers(idle, 1);
	say(started, "GET / HTTP/1.1\r\n");
	ASSERT_EQ(0, kill(self->pid, SIGTERM));
	expect_eof(idle);
	/* Waiting for the rest of its request, it ends as the idle one
	 * does (the server may be gone before this write). */
	if (write(started, "\r\n", 2) < 0)
		EXPECT_TRUE(errno == EPIPE || errno == ECONNRESET);
	while (read(started, line, sizeof(line)) > 0)
		;
	ASSERT_EQ(self->pid, waitpid(self->pid, &st, 0));
	EXPECT_TRUE(WIFEXITED(st));
	EXPECT_EQ(0, WEXITSTATUS(st));
	self->pid = -1;
	close(idle);
	close(started);
}

TEST_HARNESS_MAIN
