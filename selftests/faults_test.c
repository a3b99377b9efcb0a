// SPDX-License-Identifier: MIT
/*
 * Description: kgo under bad input and a hostile machine (issue 12). Each
 * test runs in its own process (the harness forks); those that change
 * the environment, limits or a seccomp filter do it in a child of their
 * own and read its stderr.
 *
 *   errno_table	bad arguments to the I/O calls (counts of SIZE_MAX,
 *			SSIZE_MAX and 4 GiB, bad iovec counts, fds -1, closed,
 *			write-only, of the wrong kind, a pty, which refuses
 *			RWF_NOWAIT as pipes do on 6.1; kgo_poll of fd -1)
 *			give what the syscall gives, on the io_uring path,
 *			the syscall path (KGO_IOURING=0) and outside a G.
 *   config_lines	every KGO_* variable the runtime reads, set to a bad
 *			value, gets exactly one stderr line naming it, what
 *			is wrong and what is used instead, and the program
 *			runs with that; every bad kgo_config field gets one
 *			line and kgo_run returns -EINVAL; good values print
 *			nothing.
 *
 * What already held when kgo was probed, kept so that it keeps holding:
 *
 *   refused.*		a seccomp filter makes io_uring_setup fail with
 *			EPERM, ENOSYS, EACCES or ENOMEM (variants): files,
 *			pipes, sockets and deadlines still work, through the
 *			syscall path; stderr says so once a run, with why.
 *   nofile		RLIMIT_NOFILE used up before kgo_run: io_uring's
 *			refusal (EMFILE) is said once, kgo_open gives
 *			-EMFILE, I/O on open fds works; no fd is left behind,
 *			and with fds free again the next run has io_uring.
 *   address_space	RLIMIT_AS reached by G stacks: kgo_go returns -ENOMEM
 *			(no crash); when the Gs end, kgo_go works again.
 *   writes_in_flight	writer Gs still writing when the main G returns:
 *			every write kgo reported done is on disk, whole; no
 *			region holds bytes its writer did not write; nothing
 *			is written after kgo_run returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <dirent.h>
#include <termios.h>
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
	int pty, pts;		/* a pty's master, empty, and its raw end */
	int closed;		/* a number no fd has */
} fx;

/* Static, so in the program's data: 4 GiB past it is still user memory
 * (past a G's stack near the top of the address space it may not be). */
static char buf[4096];

#define BIG	((size_t)1 << 32)	/* 0 in an SQE's 32-bit length */
#define WAIT_MS	20

static struct iovec iov_max = { buf, SIZE_MAX };
static struct iovec iov_ssize = { buf, SSIZE_MAX };
static struct iovec iov_one = { buf, 1 };

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

#define E(name, kgo_expr, sys_expr)				\
	static long k_##name(void) { return (kgo_expr); }		\
	static long s_##name(void) { return (sys_expr); }
#define ROW(name, waits)	{ #name, k_##name, s_##name, waits }

E(read_pipe_sizemax, kgo_read(fx.pipe[0], buf, SIZE_MAX),
  RAW(SYS_read, fx.pipe[0], buf, SIZE_MAX))
E(read_file_sizemax, kgo_read(fx.file, buf, SIZE_MAX),
  RAW(SYS_read, fx.file, buf, SIZE_MAX))
E(read_badfd_sizemax, kgo_read(-1, buf, SIZE_MAX),
  RAW(SYS_read, -1, buf, SIZE_MAX))
E(read_wronly_sizemax, kgo_read(fx.wronly, buf, SIZE_MAX),
  RAW(SYS_read, fx.wronly, buf, SIZE_MAX))
E(read_sock_sizemax, kgo_read(fx.sock[0], buf, SIZE_MAX),
  RAW(SYS_read, fx.sock[0], buf, SIZE_MAX))
E(read_dl_pipe_sizemax, kgo_read_dl(fx.pipe[0], buf, SIZE_MAX, dl()),
  RAW(SYS_read, fx.pipe[0], buf, SIZE_MAX))
E(read_dl_pipe_4g, kgo_read_dl(fx.pipe[0], buf, BIG, dl()),
  sys_read_dl(fx.pipe[0], BIG, false))
E(pread_file_sizemax, kgo_pread(fx.file, buf, SIZE_MAX, 0),
  RAW(SYS_pread64, fx.file, buf, SIZE_MAX, (off_t)0))
E(pread_file_ssizemax, kgo_pread(fx.file, buf, SSIZE_MAX, 0),
  RAW(SYS_pread64, fx.file, buf, SSIZE_MAX, (off_t)0))
E(pread_file_4g, kgo_pread(fx.file, buf, BIG, 0),
  RAW(SYS_pread64, fx.file, buf, BIG, (off_t)0))
E(pread_pipe_sizemax, kgo_pread(fx.pipe[0], buf, SIZE_MAX, 0),
  RAW(SYS_pread64, fx.pipe[0], buf, SIZE_MAX, (off_t)0))
E(pread_file_negoff, kgo_pread(fx.file, buf, SIZE_MAX, (off_t)-1),
  RAW(SYS_pread64, fx.file, buf, SIZE_MAX, (off_t)-1))
E(pread_badfd_negoff, kgo_pread(-1, buf, 1, (off_t)-1),
  RAW(SYS_pread64, -1, buf, 1, (off_t)-1))
E(write_pipe_sizemax, kgo_write(fx.pipe[1], buf, SIZE_MAX),
  RAW(SYS_write, fx.pipe[1], buf, SIZE_MAX))
E(write_file_sizemax, kgo_write(fx.file, buf, SIZE_MAX),
  RAW(SYS_write, fx.file, buf, SIZE_MAX))
E(write_sock_sizemax, kgo_write(fx.sock[0], buf, SIZE_MAX),
  RAW(SYS_write, fx.sock[0], buf, SIZE_MAX))
E(write_closed_sizemax, kgo_write(fx.closed, buf, SIZE_MAX),
  RAW(SYS_write, fx.closed, buf, SIZE_MAX))
E(write_dl_pipe_sizemax, kgo_write_dl(fx.pipe[1], buf, SIZE_MAX, dl()),
  RAW(SYS_write, fx.pipe[1], buf, SIZE_MAX))
E(pwrite_file_sizemax, kgo_pwrite(fx.file, buf, SIZE_MAX, 0),
  RAW(SYS_pwrite64, fx.file, buf, SIZE_MAX, (off_t)0))
E(pwrite_pipe_sizemax, kgo_pwrite(fx.pipe[1], buf, SIZE_MAX, 0),
  RAW(SYS_pwrite64, fx.pipe[1], buf, SIZE_MAX, (off_t)0))
E(readv_file_sizemax, kgo_readv(fx.file, &iov_max, 1),
  RAW(SYS_readv, fx.file, &iov_max, 1))
E(readv_pipe_sizemax, kgo_readv(fx.pipe[0], &iov_max, 1),
  RAW(SYS_readv, fx.pipe[0], &iov_max, 1))
E(readv_badfd_sizemax, kgo_readv(-1, &iov_max, 1),
  RAW(SYS_readv, -1, &iov_max, 1))
E(readv_cnt_neg, kgo_readv(fx.file, &iov_max, -1L),
  RAW(SYS_readv, fx.file, &iov_max, -1L))
E(readv_cnt_1025, kgo_readv(fx.pipe[0], &iov_max, 1025),
  RAW(SYS_readv, fx.pipe[0], &iov_max, 1025))
E(readv_null_iov, kgo_readv(fx.file, NULL, 1),
  RAW(SYS_readv, fx.file, NULL, 1))
E(preadv_file_sizemax, kgo_preadv(fx.file, &iov_max, 1, 0),
  RAW(SYS_preadv, fx.file, &iov_max, 1, 0L, 0L))
E(preadv_file_ssizemax, kgo_preadv(fx.file, &iov_ssize, 1, 0),
  RAW(SYS_preadv, fx.file, &iov_ssize, 1, 0L, 0L))
E(preadv_pipe_sizemax, kgo_preadv(fx.pipe[0], &iov_max, 1, 0),
  RAW(SYS_preadv, fx.pipe[0], &iov_max, 1, 0L, 0L))
E(writev_pipe_sizemax, kgo_writev(fx.pipe[1], &iov_max, 1),
  RAW(SYS_writev, fx.pipe[1], &iov_max, 1))
E(pwritev_file_sizemax, kgo_pwritev(fx.file, &iov_max, 1, 0),
  RAW(SYS_pwritev, fx.file, &iov_max, 1, 0L, 0L))
E(recv_sock_sizemax, kgo_recv(fx.sock[0], buf, SIZE_MAX, MSG_DONTWAIT),
  RAW(SYS_recvfrom, fx.sock[0], buf, SIZE_MAX, MSG_DONTWAIT,
      NULL, NULL))
E(recv_badfd_sizemax, kgo_recv(-1, buf, SIZE_MAX, 0),
  RAW(SYS_recvfrom, -1, buf, SIZE_MAX, 0, NULL, NULL))
E(recv_pipe_sizemax, kgo_recv(fx.pipe[0], buf, SIZE_MAX, 0),
  RAW(SYS_recvfrom, fx.pipe[0], buf, SIZE_MAX, MSG_DONTWAIT,
      NULL, NULL))
E(recv_dl_sock_4g, kgo_recv_dl(fx.sock[0], buf, BIG, 0, dl()),
  sys_read_dl(fx.sock[0], BIG, true))
E(send_badfd_sizemax, kgo_send(-1, buf, SIZE_MAX, 0),
  RAW(SYS_sendto, -1, buf, SIZE_MAX, 0, NULL, NULL))
E(send_pipe_sizemax, kgo_send(fx.pipe[1], buf, SIZE_MAX, 0),
  RAW(SYS_sendto, fx.pipe[1], buf, SIZE_MAX, 0, NULL, NULL))
E(poll_fd_neg_now, kgo_poll(-1, POLLIN, 0), sys_poll(-1, 0))
E(poll_fd_neg_dl, kgo_poll(-1, POLLIN, dl()), sys_poll(-1, WAIT_MS))
E(poll_fd_closed, kgo_poll(fx.closed, POLLIN, dl()),
  sys_poll(fx.closed, WAIT_MS))
/*
 * A pty refuses RWF_NOWAIT (on 6.18 too, as pipes and AF_UNIX sockets
 * do on 6.1): after a good read and write have taught kgo so, its bad
 * calls take the path for such fds (rw_special), which must fail them
 * at once as the syscall does, not wait for data (the readv and preadv
 * cases hung) or cut the write to PIPE_BUF and write that (writev).
 */
E(read_dl_pty_4g, kgo_read_dl(fx.pty, buf, BIG, dl()),
  sys_read_dl(fx.pty, BIG, false))
E(write_pty_1, kgo_write(fx.pty, buf, 1), RAW(SYS_write, fx.pty, buf, 1))
E(readv_pty_sizemax, kgo_readv(fx.pty, &iov_max, 1),
  RAW(SYS_readv, fx.pty, &iov_max, 1))
E(readv_pty_cnt_1025, kgo_readv(fx.pty, &iov_one, 1025),
  RAW(SYS_readv, fx.pty, &iov_one, 1025))
E(readv_pty_null_iov, kgo_readv(fx.pty, NULL, 1),
  RAW(SYS_readv, fx.pty, NULL, 1))
E(preadv_pty_1, kgo_preadv(fx.pty, &iov_one, 1, 0),
  RAW(SYS_preadv, fx.pty, &iov_one, 1, 0L, 0L))
E(writev_pty_sizemax, kgo_writev(fx.pty, &iov_max, 1),
  RAW(SYS_writev, fx.pty, &iov_max, 1))
E(pwritev_pty_1, kgo_pwritev(fx.pty, &iov_one, 1, 0),
  RAW(SYS_pwritev, fx.pty, &iov_one, 1, 0L, 0L))

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
	ROW(read_dl_pty_4g, 1),		ROW(write_pty_1, 0),
	ROW(readv_pty_sizemax, 0),	ROW(readv_pty_cnt_1025, 0),
	ROW(readv_pty_null_iov, 0),	ROW(preadv_pty_1, 0),
	ROW(writev_pty_sizemax, 0),	ROW(pwritev_pty_1, 0),
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
		EXPECT_EQ(s, k) TH_LOG("%s on %s: syscall %ld (%s), kgo %ld "
				       "(%s)",
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
	struct termios tio;
	struct rlimit rl;

	fx.file = mkstemp(path);
	ASSERT_LE(0, fx.file);
	ASSERT_EQ(5, pwrite(fx.file, "hello", 5, 0));
	fx.wronly = open(path, O_WRONLY);
	ASSERT_LE(0, fx.wronly);
	unlink(path);
	ASSERT_EQ(0, pipe(fx.pipe));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, fx.sock));
	/* Raw, so that what is written to the master is not echoed back
	 * to be read: the master stays empty. */
	fx.pty = posix_openpt(O_RDWR | O_NOCTTY);
	ASSERT_LE(0, fx.pty) TH_LOG("posix_openpt: %m");
	ASSERT_EQ(0, grantpt(fx.pty));
	ASSERT_EQ(0, unlockpt(fx.pty));
	fx.pts = open(ptsname(fx.pty), O_RDWR | O_NOCTTY);
	ASSERT_LE(0, fx.pts) TH_LOG("%s: %m", ptsname(fx.pty));
	ASSERT_EQ(0, tcgetattr(fx.pts, &tio));
	cfmakeraw(&tio);
	ASSERT_EQ(0, tcsetattr(fx.pts, TCSANOW, &tio));
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
	{ .cfg = { field }, .lines = 1, .ret = -EINVAL,			\
	  .says = { __VA_ARGS__ } }

static const struct ccase ccases[] = {
	{ "KGO_MAXPROCS", "99999", { 0 }, 1, 0, 1,
	  { "KGO_MAXPROCS=99999: above 1024",
	    "using 1 (kgo_config.maxprocs)" } },
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
	  { "KGO_IOWQ_MAX=4,99999: above 1024", "using 16,16" } },
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
		/*
		 * Polling, unless the case is KGO_OBSERVE's: the lines
		 * counted are the configuration's, and the BPF observer
		 * has lines of its own for its own tests (observe_test).
		 * As root auto loads the probes, and in the 7.2 TCG guest
		 * they missed an M's registration now and then: "the BPF
		 * probes gave this process no slot" made two lines.
		 */
		setenv("KGO_OBSERVE", "poll", 1);
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

/* ------------------------------------------------------------------ */
/* What held: io_uring refused                                        */
/* ------------------------------------------------------------------ */

#if defined(__x86_64__)
#define AUDIT_ARCH_SELF AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_SELF AUDIT_ARCH_AARCH64
#endif

/* Make io_uring_setup fail with @err, as container runtimes do (Docker's
 * default profile: ENOSYS; others EPERM). Return: 0, -errno. */
static int refuse_io_uring(int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_SELF, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		return -errno;
	return 0;
}

/* A child process whose stderr goes to a file the parent reads. */
struct child {
	pid_t pid;
	int errfd;
	int status;		/* exit status; -1: killed or lost */
	char err[4096];
};

/* Fork; in the child (return true) stderr goes to c->errfd. */
static bool child_start(struct child *c)
{
	char path[] = "/var/tmp/kgo-faults-err.XXXXXX";

	c->errfd = mkstemp(path);
	if (c->errfd < 0)
		return false;
	unlink(path);
	c->pid = fork();
	if (c->pid == 0) {
		dup2(c->errfd, 2);
		return true;
	}
	return false;
}

static void child_wait(struct child *c)
{
	int st;
	ssize_t n;

	c->status = -1;
	if (c->pid > 0 && waitpid(c->pid, &st, 0) == c->pid && WIFEXITED(st))
		c->status = WEXITSTATUS(st);
	n = pread(c->errfd, c->err, sizeof(c->err) - 1, 0);
	c->err[n > 0 ? n : 0] = 0;
	close(c->errfd);
}

/* Lines of @s that contain @what. */
static int count_lines(const char *s, const char *what)
{
	const char *p;
	int n = 0;

	for (p = s; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

static char dir[64];

/* dir and the one file the tests make in it. */
static void dir_remove(void)
{
	char path[96];

	snprintf(path, sizeof(path), "%s/f", dir);
	unlink(path);
	rmdir(dir);
}

/* The I/O a program does, with no ring: file, pipe, socket, deadline. */
static void pipe_writer(void *arg)
{
	int fd = *(int *)arg;

	kgo_sleep(5 * MS);
	if (kgo_write(fd, "later", 5) != 5)
		_exit(10);
}

static void io_main(void *arg)
{
	char path[96], b[16];
	struct kgo_stats st;
	int fd, p[2], sv[2];

	(void)arg;
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = kgo_open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	ASSERT_LE(0, fd);
	ASSERT_EQ(6, kgo_pwrite(fd, "kgo io", 6, 0));
	ASSERT_EQ(6, kgo_pread(fd, b, sizeof(b), 0));
	ASSERT_EQ(0, memcmp(b, "kgo io", 6));
	ASSERT_EQ(0, kgo_close(fd));
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, kgo_go(pipe_writer, &p[1]));
	ASSERT_EQ(5, kgo_read(p[0], b, sizeof(b)));	/* waits for it */
	ASSERT_EQ(-ETIMEDOUT, kgo_read_dl(p[0], b, 1, kgo_now() + 10 * MS));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	ASSERT_EQ(0, kgo_go(pipe_writer, &sv[1]));
	ASSERT_EQ(5, kgo_recv(sv[0], b, sizeof(b), 0));
	ASSERT_EQ(-ETIMEDOUT, kgo_poll(sv[0], POLLIN, kgo_now() + 10 * MS));
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
	kgo_stats_get(&st, sizeof(st));
	ASSERT_EQ(0, st.io_uring);
	ASSERT_EQ(0, st.io_uring_ops);
	ASSERT_LT(3, st.io_fallback_ops);
}

FIXTURE(refused) {
	struct child c;
};

FIXTURE_VARIANT(refused) {
	int err;
	const char *says;
};

FIXTURE_VARIANT_ADD(refused, eperm) { EPERM, "EPERM" };
FIXTURE_VARIANT_ADD(refused, enosys) { ENOSYS, "ENOSYS" };
FIXTURE_VARIANT_ADD(refused, eacces) { EACCES, "EACCES" };
FIXTURE_VARIANT_ADD(refused, enomem) { ENOMEM, "ENOMEM" };

FIXTURE_SETUP(refused)
{
	snprintf(dir, sizeof(dir), "/var/tmp/kgo-faults.XXXXXX");
	ASSERT_NONNULL(mkdtemp(dir));
}

FIXTURE_TEARDOWN(refused)
{
	dir_remove();
}

TEST_F(refused, api_works_and_says_why_once)
{
	struct kgo_config cfg = { .maxprocs = 2 };
	int r;

	if (child_start(&self->c)) {
		/* The lines counted are io_uring's (see run_child). */
		setenv("KGO_OBSERVE", "poll", 1);
		r = refuse_io_uring(variant->err);
		if (r) {
			fprintf(stderr, "seccomp: %s\n", strerror(-r));
			_exit(4);
		}
		/* Twice: the reason is given once per run. */
		if (kgo_run(io_main, NULL, &cfg))
			_exit(2);
		cfg.maxprocs = 1;
		_exit(kgo_run(io_main, NULL, &cfg) ? 3 : 0);
	}
	child_wait(&self->c);
	if (self->c.status == 4) {
		SKIP(return, "cannot install a seccomp filter: %s",
		     self->c.err);
	}
	ASSERT_EQ(0, self->c.status) TH_LOG("stderr: %s", self->c.err);
	EXPECT_EQ(2, count_lines(self->c.err, "\n"))
		TH_LOG("stderr: %s", self->c.err);
	EXPECT_EQ(2, count_lines(self->c.err, "kgo: io_uring not used ("))
		TH_LOG("stderr: %s", self->c.err);
	EXPECT_EQ(2, count_lines(self->c.err, variant->says))
		TH_LOG("stderr: %s", self->c.err);
}

/* ------------------------------------------------------------------ */
/* What held: RLIMIT_NOFILE                                           */
/* ------------------------------------------------------------------ */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;		/* opendir's own */
}

static int nofile_pipe[2];
static bool nofile_uring;

static void nofile_main(void *arg)
{
	char path[96], b[16];
	struct kgo_stats st;
	int fd;

	(void)arg;
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = kgo_open(path, O_CREAT | O_RDWR, 0600);
	if (!nofile_uring) {
		ASSERT_EQ(-EMFILE, fd);
	} else {
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, kgo_close(fd));
	}
	/* The fds already open still work, a read waiting included. */
	ASSERT_EQ(0, kgo_go(pipe_writer, &nofile_pipe[1]));
	ASSERT_EQ(5, kgo_read(nofile_pipe[0], b, sizeof(b)));
	ASSERT_EQ(-ETIMEDOUT, kgo_read_dl(nofile_pipe[0], b, 1,
					  kgo_now() + 10 * MS));
	kgo_stats_get(&st, sizeof(st));
	ASSERT_EQ(nofile_uring, st.io_uring) TH_LOG("%s", kgo_io_backend());
}

/* Exit with @code if the fds open now are not the @n0 of before. */
static void nofile_expect_fds(int n0, int code)
{
	int n = count_fds();

	if (n != n0) {
		fprintf(stderr, "fds: %d before, %d after\n", n0, n);
		_exit(code);
	}
}

#define NOFILE_LIMIT	64

TEST(nofile)
{
	struct kgo_config cfg = { .maxprocs = 2 };
	struct rlimit rl;
	int filler[NOFILE_LIMIT], n, i;
	struct child c;

	snprintf(dir, sizeof(dir), "/var/tmp/kgo-faults.XXXXXX");
	ASSERT_NONNULL(mkdtemp(dir));
	if (child_start(&c)) {
		/* Room for what is open and a few more, then fill it. */
		rl.rlim_cur = rl.rlim_max = count_fds() + NOFILE_LIMIT;
		if (pipe(nofile_pipe) || setrlimit(RLIMIT_NOFILE, &rl))
			_exit(5);
		for (n = 0; n < NOFILE_LIMIT && (filler[n] = dup(0)) >= 0; n++)
			;
		if (n == NOFILE_LIMIT || errno != EMFILE)
			_exit(6);
		i = count_fds();
		if (kgo_run(nofile_main, NULL, &cfg))
			_exit(7);
		nofile_expect_fds(i, 8);
		/* fds free again: the next run has io_uring. */
		for (i = 0; i < n; i++)
			close(filler[i]);
		nofile_uring = true;
		if (kgo_run(nofile_main, NULL, &cfg))
			_exit(9);
		/* The first run with fds to spare may have loaded the BPF
		 * probes (as root), which stay open for the next kgo_run
		 * (observe_bpf.c, obs_close): a leak is growth from one run
		 * to the next. */
		i = count_fds();
		if (kgo_run(nofile_main, NULL, &cfg))
			_exit(9);
		nofile_expect_fds(i, 10);
		_exit(0);
	}
	child_wait(&c);
	dir_remove();
	ASSERT_EQ(0, c.status) TH_LOG("stderr: %s", c.err);
	EXPECT_EQ(1, count_lines(c.err, "\n")) TH_LOG("stderr: %s", c.err);
	EXPECT_EQ(1, count_lines(c.err, "io_uring not used (io_uring_setup: "
				 "EMFILE")) TH_LOG("stderr: %s", c.err);
}

/* ------------------------------------------------------------------ */
/* What held: RLIMIT_AS                                               */
/* ------------------------------------------------------------------ */

#define AS_ROOM		(96L << 20)	/* address space left to G stacks */
#define AS_MAX_GS	100000		/* far more than AS_ROOM holds */

static struct kgo_chan *as_gate;
static struct kgo_wg as_wg = KGO_WG_INIT;

static void as_parked(void *arg)
{
	char c;

	(void)arg;
	kgo_chan_recv(as_gate, &c);	/* until the gate closes */
	kgo_wg_done(&as_wg);
}

/* Start parked Gs until kgo_go fails. Return: how many started. */
static long as_fill(int *err)
{
	long n;
	int r = 0;

	for (n = 0; n < AS_MAX_GS; n++) {
		kgo_wg_add(&as_wg, 1);
		r = kgo_go(as_parked, NULL);
		if (r) {
			kgo_wg_done(&as_wg);
			break;
		}
	}
	*err = r;
	return n;
}

static void as_main(void *arg)
{
	struct rlimit rl, low;
	long vm, n1, n2;
	FILE *f;
	int err;

	(void)arg;
	as_gate = kgo_chan_make(1, 0);
	ASSERT_NONNULL(as_gate);
	f = fopen("/proc/self/statm", "r");
	ASSERT_NONNULL(f);
	ASSERT_EQ(1, fscanf(f, "%ld", &vm));
	fclose(f);
	ASSERT_EQ(0, getrlimit(RLIMIT_AS, &rl));
	low = rl;
	low.rlim_cur = vm * sysconf(_SC_PAGESIZE) + AS_ROOM;
	ASSERT_EQ(0, setrlimit(RLIMIT_AS, &low));

	n1 = as_fill(&err);
	EXPECT_EQ(-ENOMEM, err) TH_LOG("%ld Gs started", n1);
	EXPECT_LT(100, n1);
	/* Memory freed: the Gs end, and as many start again. */
	kgo_chan_close(as_gate);
	kgo_wg_wait(&as_wg);
	kgo_chan_free(as_gate);
	as_gate = kgo_chan_make(1, 0);
	ASSERT_NONNULL(as_gate);
	n2 = as_fill(&err);
	EXPECT_EQ(-ENOMEM, err);
	EXPECT_LE(n1, n2);
	kgo_chan_close(as_gate);
	kgo_wg_wait(&as_wg);
	ASSERT_EQ(0, setrlimit(RLIMIT_AS, &rl));
	kgo_wg_add(&as_wg, 1);
	ASSERT_EQ(0, kgo_go(as_parked, NULL));
	kgo_wg_wait(&as_wg);
	kgo_chan_free(as_gate);
}

TEST(address_space)
{
	struct kgo_config cfg = { .maxprocs = 1 };

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	SKIP(return, "the sanitizers reserve terabytes of address space");
#endif
	ASSERT_EQ(0, kgo_run(as_main, NULL, &cfg));
}

/* ------------------------------------------------------------------ */
/* What held: main returns with writes in flight                      */
/* ------------------------------------------------------------------ */

#define WR_GS		16		/* writer Gs */
#define WR_REC		8192		/* bytes per record */
#define WR_RECS		256		/* records per writer, at most */
#define WR_REGION	((off_t)WR_REC * WR_RECS)
#define WR_POISON	0xee		/* the buffers, once kgo_run returned */

static int wr_fd;
static _Atomic long wr_done[WR_GS];	/* records kgo reported written */
static char wr_buf[WR_GS][WR_REC];	/* each writer's buffer */

static uint8_t wr_byte(long g, long rec, long i)
{
	return (uint8_t)(1 + (g * 131 + rec * 31 + i) % 251);	/* never 0 */
}

static void wr_writer(void *arg)
{
	long g = (long)arg, rec, i;

	for (rec = 0; rec < WR_RECS; rec++) {
		for (i = 0; i < WR_REC; i++)
			wr_buf[g][i] = wr_byte(g, rec, i);
		if (kgo_pwrite(wr_fd, wr_buf[g], WR_REC,
			       g * WR_REGION + rec * WR_REC) != WR_REC)
			return;
		atomic_store(&wr_done[g], rec + 1);
		if (rec % 8 == 0)
			kgo_fdatasync(wr_fd);	/* some writes wait longer */
	}
}

static void wr_main(void *arg)
{
	long g;

	(void)arg;
	for (g = 0; g < WR_GS; g++)
		ASSERT_EQ(0, kgo_go(wr_writer, (void *)g));
	/* Return once every writer has written: the rest are in flight. */
	for (g = 0; g < WR_GS; g++)
		while (atomic_load(&wr_done[g]) < 1)
			kgo_yield();
}

/*
 * What is on disk for writer g, whose wr_done was @done when kgo_run
 * returned. kgo.h (kgo_run) promises that a G never runs again once main
 * has returned, and that a call between kgo_syscall_begin/_end (the
 * file calls without io_uring) or on an abandoned M's ring "goes on":
 * it is abandoned, not cancelled. So:
 *
 *  - records below @done are whole (they were reported written);
 *  - record @done may be the call in flight: it may land after kgo_run
 *    returned, copying the buffer as it is then, so each byte is 0, its
 *    own or the poison (a mix: the kernel copies while we poison);
 *  - records past @done were never started: all 0.
 *
 * Before, record @done had to be 0 or its own, and `bad` was not reset
 * per record, so the one record in flight failed every record after
 * it ("record 254 (1 of 256 reported written)", 8160 bad). Measured:
 * taskset -c 0 beside a CPU hog, ASan, -t writes.syscalls.*: 1 run in
 * 60 found poison at record @done, the M abandoned in its window
 * before pwritev(2) copied the buffer.
 */
static long wr_bad(long g, long r, long done, const uint8_t *rec)
{
	long i, bad = 0;

	for (i = 0; i < WR_REC; i++) {
		uint8_t own = wr_byte(g, r, i);

		if (r < done)
			bad += rec[i] != own;
		else if (r == done)
			bad += rec[i] != own && rec[i] != 0 &&
			       rec[i] != WR_POISON;
		else
			bad += rec[i] != 0;
	}
	return bad;
}

static void wr_check(const long *done)
{
	static uint8_t rec[WR_REC];
	long g, r, bad;

	for (g = 0; g < WR_GS; g++) {
		for (r = 0; r < WR_RECS; r++) {
			ASSERT_EQ(WR_REC, pread(wr_fd, rec, WR_REC,
						g * WR_REGION + r * WR_REC));
			bad = wr_bad(g, r, done[g], rec);
			EXPECT_EQ(0, bad) TH_LOG("G %ld record %ld (%ld of %ld "
						 "reported written)", g, r,
						 done[g], (long)WR_RECS);
		}
		/* No writer ran after kgo_run returned. */
		EXPECT_EQ(done[g], atomic_load(&wr_done[g]))
			TH_LOG("G %ld went on after kgo_run returned", g);
	}
}

FIXTURE(writes) {
	char path[64];
};

FIXTURE_VARIANT(writes) {
	bool uring;
};

FIXTURE_VARIANT_ADD(writes, uring) { .uring = true };
FIXTURE_VARIANT_ADD(writes, syscalls) { .uring = false };

FIXTURE_SETUP(writes)
{
	snprintf(self->path, sizeof(self->path), "/var/tmp/kgo-wr.XXXXXX");
	wr_fd = mkstemp(self->path);
	ASSERT_LE(0, wr_fd);
	ASSERT_EQ(0, ftruncate(wr_fd, WR_REGION * WR_GS));
	if (variant->uring)
		unsetenv("KGO_IOURING");
	else
		setenv("KGO_IOURING", "0", 1);
}

FIXTURE_TEARDOWN(writes)
{
	if (self->path[0])
		unlink(self->path);
}

TEST_F(writes, in_flight_when_main_returns)
{
	struct kgo_config cfg = { .maxprocs = 2 };
	long g, done[WR_GS];

	ASSERT_EQ(0, kgo_run(wr_main, NULL, &cfg));
	for (g = 0; g < WR_GS; g++)
		done[g] = atomic_load(&wr_done[g]);
	/* No G writes after kgo_run returns, and only a call in flight
	 * may still land (wr_bad): poison the buffers, wait, and look for
	 * the poison on disk. */
	memset(wr_buf, WR_POISON, sizeof(wr_buf));
	usleep(50 * 1000);
	for (g = 0; g < WR_GS; g++)
		ASSERT_LE(1, done[g]);
	wr_check(done);
}

TEST_HARNESS_MAIN
