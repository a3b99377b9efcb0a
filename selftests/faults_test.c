// SPDX-License-Identifier: MIT
/*
 * Description: kgo under bad input and a hostile machine (issue 12). Each
 * test runs in its own process (the harness forks); those that change
 * the environment, limits or a seccomp filter do it in a child of their
 * own and read its stderr.
 *
 *   errno_table	bad arguments to the I/O calls (counts of SIZE_MAX,
 *			SSIZE_MAX and 4 GiB, bad iovec counts, fds -1, closed,
 *			write-only, of the wrong kind; kgo_poll of fd -1)
 *			give what the syscall gives, on the io_uring path,
 *			the syscall path (KGO_IOURING=0) and outside a G.
 *   config_lines	every KGO_* variable the runtime reads, set to a bad
 *			value, gets exactly one stderr line naming it, what
 *			is wrong and what is used instead, and the program
 *			runs with that; every bad kgo_config field gets one
 *			line and kgo_run returns -EINVAL; good values print
 *			nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "kgo.h"

#define MS	1000000LL

/* The plain syscall's result as kgo returns it. */
#define SYS(expr)	({ long __r = (long)(expr); __r < 0 ? -errno : __r; })
/* The raw syscall (no libc wrapper between, no fortify checks). */
#define RAW(...)	SYS(syscall(__VA_ARGS__))

/* ------------------------------------------------------------------ */
/* errno_table                                                        */
/* ------------------------------------------------------------------ */

/*
 * The fds every case works on. Cases that would move data read from
 * the file at an offset (the position stays 0) or fail before moving
 * any, so each case sees the same state on every path.
 */
static struct {
	int file;		/* "hello", read-write */
	int wronly;		/* the same file, O_WRONLY */
	int pipe[2];		/* empty */
	int sock[2];		/* AF_UNIX stream pair, empty */
	int closed;		/* a number no fd has */
} fx;

/* Static, so in the program's data: 4 GiB past it is still user memory
 * (past a G's stack near the top of the address space it may not be). */
static char buf[4096];

#define BIG	((size_t)1 << 32)	/* 0 in an SQE's 32-bit length */
#define WAIT_MS	20

static struct iovec iov_max = { buf, SIZE_MAX };
static struct iovec iov_ssize = { buf, SSIZE_MAX };

/* poll(2)'s answer in kgo_poll's words: 0 is -EAGAIN or -ETIMEDOUT. */
static long sys_poll(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int64_t end = kgo_now() + ms * MS, left;
	int r;

	/* Again after EINTR (kgo's preemption signal), for what is left. */
	do {
		left = end - kgo_now();
		r = poll(&pfd, 1, left > 0 ? (int)((left + MS - 1) / MS) : 0);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return ms ? -ETIMEDOUT : -EAGAIN;
	return pfd.revents;
}

/* A read(2) or recv(2) with a deadline: poll first, as kgo_read_dl and
 * kgo_recv_dl promise. */
static long sys_read_dl(int fd, size_t n, bool sock)
{
	long r = sys_poll(fd, WAIT_MS);

	if (r < 0)
		return r;
	if (sock)
		return RAW(SYS_recvfrom, fd, buf, n, 0, NULL, NULL);
	return RAW(SYS_read, fd, buf, n);
}

static int64_t dl(void)
{
	return kgo_now() + WAIT_MS * MS;
}

struct ecase {
	const char *name;
	long (*kgo)(void);
	long (*sys)(void);
	bool waits;		/* not outside a G: the syscall would wait */
};

#define E(name, waits, kgo_expr, sys_expr)				\
	static long k_##name(void) { return (kgo_expr); }		\
	static long s_##name(void) { return (sys_expr); }
#define ROW(name, waits)	{ #name, k_##name, s_##name, waits }

E(read_pipe_sizemax, 0, kgo_read(fx.pipe[0], buf, SIZE_MAX),
  RAW(SYS_read, fx.pipe[0], buf, SIZE_MAX))
E(read_file_sizemax, 0, kgo_read(fx.file, buf, SIZE_MAX),
  RAW(SYS_read, fx.file, buf, SIZE_MAX))
E(read_badfd_sizemax, 0, kgo_read(-1, buf, SIZE_MAX),
  RAW(SYS_read, -1, buf, SIZE_MAX))
E(read_wronly_sizemax, 0, kgo_read(fx.wronly, buf, SIZE_MAX),
  RAW(SYS_read, fx.wronly, buf, SIZE_MAX))
E(read_sock_sizemax, 0, kgo_read(fx.sock[0], buf, SIZE_MAX),
  RAW(SYS_read, fx.sock[0], buf, SIZE_MAX))
E(read_dl_pipe_sizemax, 0, kgo_read_dl(fx.pipe[0], buf, SIZE_MAX, dl()),
  RAW(SYS_read, fx.pipe[0], buf, SIZE_MAX))
E(read_dl_pipe_4g, 1, kgo_read_dl(fx.pipe[0], buf, BIG, dl()),
  sys_read_dl(fx.pipe[0], BIG, false))
E(pread_file_sizemax, 0, kgo_pread(fx.file, buf, SIZE_MAX, 0),
  RAW(SYS_pread64, fx.file, buf, SIZE_MAX, (off_t)0))
E(pread_file_ssizemax, 0, kgo_pread(fx.file, buf, SSIZE_MAX, 0),
  RAW(SYS_pread64, fx.file, buf, SSIZE_MAX, (off_t)0))
E(pread_file_4g, 0, kgo_pread(fx.file, buf, BIG, 0),
  RAW(SYS_pread64, fx.file, buf, BIG, (off_t)0))
E(pread_pipe_sizemax, 0, kgo_pread(fx.pipe[0], buf, SIZE_MAX, 0),
  RAW(SYS_pread64, fx.pipe[0], buf, SIZE_MAX, (off_t)0))
E(pread_file_negoff, 0, kgo_pread(fx.file, buf, SIZE_MAX, (off_t)-1),
  RAW(SYS_pread64, fx.file, buf, SIZE_MAX, (off_t)-1))
E(pread_badfd_negoff, 0, kgo_pread(-1, buf, 1, (off_t)-1),
  RAW(SYS_pread64, -1, buf, 1, (off_t)-1))
E(write_pipe_sizemax, 0, kgo_write(fx.pipe[1], buf, SIZE_MAX),
  RAW(SYS_write, fx.pipe[1], buf, SIZE_MAX))
E(write_file_sizemax, 0, kgo_write(fx.file, buf, SIZE_MAX),
  RAW(SYS_write, fx.file, buf, SIZE_MAX))
E(write_sock_sizemax, 0, kgo_write(fx.sock[0], buf, SIZE_MAX),
  RAW(SYS_write, fx.sock[0], buf, SIZE_MAX))
E(write_closed_sizemax, 0, kgo_write(fx.closed, buf, SIZE_MAX),
  RAW(SYS_write, fx.closed, buf, SIZE_MAX))
E(write_dl_pipe_sizemax, 0, kgo_write_dl(fx.pipe[1], buf, SIZE_MAX, dl()),
  RAW(SYS_write, fx.pipe[1], buf, SIZE_MAX))
E(pwrite_file_sizemax, 0, kgo_pwrite(fx.file, buf, SIZE_MAX, 0),
  RAW(SYS_pwrite64, fx.file, buf, SIZE_MAX, (off_t)0))
E(pwrite_pipe_sizemax, 0, kgo_pwrite(fx.pipe[1], buf, SIZE_MAX, 0),
  RAW(SYS_pwrite64, fx.pipe[1], buf, SIZE_MAX, (off_t)0))
E(readv_file_sizemax, 0, kgo_readv(fx.file, &iov_max, 1),
  RAW(SYS_readv, fx.file, &iov_max, 1))
E(readv_pipe_sizemax, 0, kgo_readv(fx.pipe[0], &iov_max, 1),
  RAW(SYS_readv, fx.pipe[0], &iov_max, 1))
E(readv_badfd_sizemax, 0, kgo_readv(-1, &iov_max, 1),
  RAW(SYS_readv, -1, &iov_max, 1))
E(readv_cnt_neg, 0, kgo_readv(fx.file, &iov_max, -1L),
  RAW(SYS_readv, fx.file, &iov_max, -1L))
E(readv_cnt_1025, 0, kgo_readv(fx.pipe[0], &iov_max, 1025),
  RAW(SYS_readv, fx.pipe[0], &iov_max, 1025))
E(readv_null_iov, 0, kgo_readv(fx.file, NULL, 1),
  RAW(SYS_readv, fx.file, NULL, 1))
E(preadv_file_sizemax, 0, kgo_preadv(fx.file, &iov_max, 1, 0),
  RAW(SYS_preadv, fx.file, &iov_max, 1, 0L, 0L))
E(preadv_file_ssizemax, 0, kgo_preadv(fx.file, &iov_ssize, 1, 0),
  RAW(SYS_preadv, fx.file, &iov_ssize, 1, 0L, 0L))
E(preadv_pipe_sizemax, 0, kgo_preadv(fx.pipe[0], &iov_max, 1, 0),
  RAW(SYS_preadv, fx.pipe[0], &iov_max, 1, 0L, 0L))
E(writev_pipe_sizemax, 0, kgo_writev(fx.pipe[1], &iov_max, 1),
  RAW(SYS_writev, fx.pipe[1], &iov_max, 1))
E(pwritev_file_sizemax, 0, kgo_pwritev(fx.file, &iov_max, 1, 0),
  RAW(SYS_pwritev, fx.file, &iov_max, 1, 0L, 0L))
E(recv_sock_sizemax, 0, kgo_recv(fx.sock[0], buf, SIZE_MAX, MSG_DONTWAIT),
  RAW(SYS_recvfrom, fx.sock[0], buf, SIZE_MAX, MSG_DONTWAIT,
      NULL, NULL))
E(recv_badfd_sizemax, 0, kgo_recv(-1, buf, SIZE_MAX, 0),
  RAW(SYS_recvfrom, -1, buf, SIZE_MAX, 0, NULL, NULL))
E(recv_pipe_sizemax, 0, kgo_recv(fx.pipe[0], buf, SIZE_MAX, 0),
  RAW(SYS_recvfrom, fx.pipe[0], buf, SIZE_MAX, MSG_DONTWAIT,
      NULL, NULL))
E(recv_dl_sock_4g, 1, kgo_recv_dl(fx.sock[0], buf, BIG, 0, dl()),
  sys_read_dl(fx.sock[0], BIG, true))
E(send_badfd_sizemax, 0, kgo_send(-1, buf, SIZE_MAX, 0),
  RAW(SYS_sendto, -1, buf, SIZE_MAX, 0, NULL, NULL))
E(send_pipe_sizemax, 0, kgo_send(fx.pipe[1], buf, SIZE_MAX, 0),
  RAW(SYS_sendto, fx.pipe[1], buf, SIZE_MAX, 0, NULL, NULL))
E(poll_fd_neg_now, 0, kgo_poll(-1, POLLIN, 0), sys_poll(-1, 0))
E(poll_fd_neg_dl, 1, kgo_poll(-1, POLLIN, dl()), sys_poll(-1, WAIT_MS))
E(poll_fd_closed, 0, kgo_poll(fx.closed, POLLIN, dl()),
  sys_poll(fx.closed, WAIT_MS))

static const struct ecase ecases[] = {
	ROW(read_pipe_sizemax, 0),	ROW(read_file_sizemax, 0),
	ROW(read_badfd_sizemax, 0),	ROW(read_wronly_sizemax, 0),
	ROW(read_sock_sizemax, 0),	ROW(read_dl_pipe_sizemax, 0),
	ROW(read_dl_pipe_4g, 1),	ROW(pread_file_sizemax, 0),
	ROW(pread_file_ssizemax, 0),	ROW(pread_file_4g, 0),
	ROW(pread_pipe_sizemax, 0),	ROW(pread_file_negoff, 0),
	ROW(pread_badfd_negoff, 0),	ROW(write_pipe_sizemax, 0),
	ROW(write_file_sizemax, 0),	ROW(write_sock_sizemax, 0),
	ROW(write_closed_sizemax, 0),	ROW(write_dl_pipe_sizemax, 0),
	ROW(pwrite_file_sizemax, 0),	ROW(pwrite_pipe_sizemax, 0),
	ROW(readv_file_sizemax, 0),	ROW(readv_pipe_sizemax, 0),
	ROW(readv_badfd_sizemax, 0),	ROW(readv_cnt_neg, 0),
	ROW(readv_cnt_1025, 0),		ROW(readv_null_iov, 0),
	ROW(preadv_file_sizemax, 0),	ROW(preadv_file_ssizemax, 0),
	ROW(preadv_pipe_sizemax, 0),	ROW(writev_pipe_sizemax, 0),
	ROW(pwritev_file_sizemax, 0),	ROW(recv_sock_sizemax, 0),
	ROW(recv_badfd_sizemax, 0),	ROW(recv_pipe_sizemax, 0),
	ROW(recv_dl_sock_4g, 1),	ROW(send_badfd_sizemax, 0),
	ROW(send_pipe_sizemax, 0),	ROW(poll_fd_neg_now, 0),
	ROW(poll_fd_neg_dl, 1),		ROW(poll_fd_closed, 0),
};

static const char *ebackend;

static void ecases_run(void *arg)
{
	size_t i;
	long k, s;

	(void)arg;
	for (i = 0; i < sizeof(ecases) / sizeof(ecases[0]); i++) {
		if (ecases[i].waits && !kgo_self())
			continue;
		s = ecases[i].sys();
		k = ecases[i].kgo();
		EXPECT_EQ(s, k) TH_LOG("%s on %s: syscall %ld (%s), kgo %ld (%s)",
				       ecases[i].name, ebackend, s,
				       strerrorname_np((int)-s), k,
				       strerrorname_np((int)-k));
	}
}

static void ecases_in_runtime(bool uring)
{
	struct kgo_config cfg = { .maxprocs = 2 };
	struct kgo_stats st;

	ebackend = uring ? "io_uring" : "syscalls (KGO_IOURING=0)";
	if (uring)
		unsetenv("KGO_IOURING");
	else
		setenv("KGO_IOURING", "0", 1);
	ASSERT_EQ(0, kgo_run(ecases_run, NULL, &cfg));
	kgo_stats_get(&st, sizeof(st));
	ASSERT_EQ(uring, st.io_uring) TH_LOG("%s", kgo_io_backend());
}

TEST(errno_table)
{
	char path[] = "/var/tmp/kgo-faults.XXXXXX";
	struct rlimit rl;

	fx.file = mkstemp(path);
	ASSERT_LE(0, fx.file);
	ASSERT_EQ(5, pwrite(fx.file, "hello", 5, 0));
	fx.wronly = open(path, O_WRONLY);
	ASSERT_LE(0, fx.wronly);
	unlink(path);
	ASSERT_EQ(0, pipe(fx.pipe));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, fx.sock));
	ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &rl));
	fx.closed = rl.rlim_cur < INT_MAX ? (int)rl.rlim_cur : INT_MAX;

	ecases_in_runtime(true);
	ecases_in_runtime(false);
	ebackend = "no runtime";
	ecases_run(NULL);
}

/* ------------------------------------------------------------------ */
/* config_lines                                                       */
/* ------------------------------------------------------------------ */

/* Every variable the runtime reads (grep getenv user/runtime). */
static const char *const kgo_vars[] = {
	"KGO_MAXPROCS", "KGO_OBSERVE", "KGO_DEBUG", "KGO_TRACE",
	"KGO_IOURING", "KGO_IOWQ_MAX", "KGO_NO_MADV_GUARD",
	"KGO_NO_GUARD_BATCH", "KGO_STACK_POPULATE",
};

struct ccase {
	const char *env, *val;		/* a variable, or NULL */
	struct kgo_config cfg;		/* maxprocs 0 means 1 here */
	int lines;			/* stderr lines expected */
	int ret;			/* of kgo_run */
	int procs;			/* Ps in use, when it runs */
	const char *says[2];		/* in the stderr */
};

#define BADCFG(field, ...)						\
	{ .cfg = { field }, .lines = 1, .ret = -EINVAL, .says = { __VA_ARGS__ } }

static const struct ccase ccases[] = {
	{ "KGO_MAXPROCS", "99999", { 0 }, 1, 0, 1,
	  { "KGO_MAXPROCS=99999: above 1024", "using 1 (kgo_config.maxprocs)" } },
	{ "KGO_MAXPROCS", "-5", { 0 }, 1, 0, 1, { "-5: below 0", "using" } },
	{ "KGO_MAXPROCS", "2x", { 0 }, 1, 0, 1, { "not a whole number" } },
	{ "KGO_MAXPROCS", "2", { 0 }, 0, 0, 2, { NULL } },
	{ "KGO_MAXPROCS", "0", { 0 }, 0, 0, 1, { NULL } },
	{ "KGO_OBSERVE", "ebpf", { 0 }, 1, 0, 1,
	  { "KGO_OBSERVE=ebpf: not auto, bpf, scx or poll", "using auto" } },
	{ "KGO_OBSERVE", "poll", { 0 }, 0, 0, 1, { NULL } },
	{ "KGO_DEBUG", "schedtrace=abc", { 0 }, 1, 0, 1,
	  { "KGO_DEBUG key schedtrace=abc", "no schedtrace" } },
	{ "KGO_DEBUG", "asyncpreemptoff=2,scheddetail=0", { 0 }, 1, 0, 1,
	  { "asyncpreemptoff=2: above 1", "stays on" } },
	{ "KGO_DEBUG", "scheddetail", { 0 }, 1, 0, 1,
	  { "scheddetail=: not a whole number" } },
	{ "KGO_DEBUG", "asyncpreemptof=1", { 0 }, 1, 0, 1,
	  { "no key asyncpreemptof", "other keys apply" } },
	{ "KGO_DEBUG", "asyncpreemptoff=1,scheddetail=0", { 0 }, 0, 0, 1,
	  { NULL } },
	{ "KGO_TRACE", "/nonexistent/kgo/trace.json", { 0 }, 1, 0, 1,
	  { "KGO_TRACE=/nonexistent/kgo/trace.json", "not tracing" } },
	{ "KGO_IOURING", "off", { 0 }, 1, 0, 1,
	  { "KGO_IOURING=off", "using io_uring" } },
	{ "KGO_IOURING", "1", { 0 }, 0, 0, 1, { NULL } },
	{ "KGO_IOWQ_MAX", "many", { 0 }, 1, 0, 1,
	  { "KGO_IOWQ_MAX=many: not a whole number", "using 16,16" } },
	{ "KGO_IOWQ_MAX", "4,99999", { 0 }, 1, 0, 1,
	  { "99999: above 1024", "using 16,16" } },
	{ "KGO_IOWQ_MAX", "4,8", { 0 }, 0, 0, 1, { NULL } },
	{ "KGO_NO_MADV_GUARD", "yes", { 0 }, 1, 0, 1,
	  { "KGO_NO_MADV_GUARD=yes", "using MADV_GUARD_INSTALL" } },
	{ "KGO_NO_GUARD_BATCH", "2", { 0 }, 1, 0, 1,
	  { "KGO_NO_GUARD_BATCH=2: not 0 or 1", "in batches" } },
	{ "KGO_STACK_POPULATE", "no", { 0 }, 1, 0, 1,
	  { "KGO_STACK_POPULATE=no", "populating" } },
	{ "KGO_STACK_POPULATE", "0", { 0 }, 0, 0, 1, { NULL } },
	BADCFG(.maxprocs = 99999, "kgo_config.maxprocs=99999",
					    "-EINVAL"),
	BADCFG(.maxprocs = -1, "kgo_config.maxprocs=-1"),
	BADCFG(.stack_size = 100, "kgo_config.stack_size=100"),
	BADCFG(.observe = 7, "kgo_config.observe=7"),
	BADCFG(.max_threads = -1, "kgo_config.max_threads=-1"),
	BADCFG(.preempt_slice_us = -2, "kgo_config.preempt_slice_us=-2"),
	BADCFG(.reserved[3] = 5, "kgo_config.reserved[3]=5"),
	{ NULL, NULL, { .maxprocs = -1, .observe = 9 }, 2, -EINVAL, 0,
	  { "maxprocs=-1", "observe=9" } },
};

static int seen_procs;	/* written by the main G, read after kgo_run */

static void procs_main(void *arg)
{
	(void)arg;
	seen_procs = kgo_maxprocs();
}

/*
 * Run kgo_run in a child with @c's variable and config, its stderr in
 * @err (NUL-terminated). Return the child's exit status: kgo_run's
 * result negated, or 100 + the Ps it ran with.
 */
static int run_child(const struct ccase *c, char *err, size_t size)
{
	char path[] = "/var/tmp/kgo-faults-err.XXXXXX";
	struct kgo_config cfg = c->cfg;
	int fd = mkstemp(path), status, r;
	ssize_t n;
	size_t i;
	pid_t pid;

	if (fd < 0)
		return -1;
	unlink(path);
	pid = fork();
	if (pid == 0) {
		for (i = 0; i < sizeof(kgo_vars) / sizeof(*kgo_vars); i++)
			unsetenv(kgo_vars[i]);
		if (c->env)
			setenv(c->env, c->val, 1);
		if (!c->ret && !cfg.maxprocs)
			cfg.maxprocs = 1;
		dup2(fd, 2);
		r = kgo_run(procs_main, NULL, &cfg);
		_exit(r ? -r : 100 + seen_procs);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	n = pread(fd, err, size - 1, 0);
	err[n > 0 ? n : 0] = 0;
	close(fd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(config_lines)
{
	char err[4096], name[80];
	const struct ccase *c;
	const char *p;
	int status, lines, j;
	size_t i;

	for (i = 0; i < sizeof(ccases) / sizeof(ccases[0]); i++) {
		c = &ccases[i];
		if (c->env)
			snprintf(name, sizeof(name), "%s=%s", c->env, c->val);
		else
			snprintf(name, sizeof(name), "kgo_config #%zu", i);
		status = run_child(c, err, sizeof(err));
		EXPECT_EQ(c->ret ? -c->ret : 100 + c->procs, status)
			TH_LOG("%s: stderr: %s", name, err);
		for (lines = 0, p = err; *p; p++)
			lines += *p == '\n';
		EXPECT_EQ(c->lines, lines) TH_LOG("%s: stderr: %s", name, err);
		for (j = 0; j < 2; j++)
			if (c->says[j])
				EXPECT_NONNULL(strstr(err, c->says[j]))
					TH_LOG("%s: no \"%s\" in: %s", name,
					       c->says[j], err);
	}
}

TEST_HARNESS_MAIN
