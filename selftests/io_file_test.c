// SPDX-License-Identifier: MIT
/*
 * Description: the file calls of kgo.h (user/runtime/io_file.c) give
 * what the plain syscalls give, through io_uring and through the
 * syscall path (each test runs in both: fixture variants uring and
 * syscalls, the latter with KGO_IOURING=0).
 *
 *   rw_same		reads and writes of a regular file, cached and not
 *			(the page cache dropped, so the ring path runs),
 *			partly cached (a short RWF_NOWAIT read goes on),
 *			vectored, at the file position and at offsets;
 *			short reads at EOF, reads at EOF; each compared
 *			with the plain syscall.
 *   rw_errors		ENOENT, EBADF (bad and closed fds), EISDIR, EFAULT
 *			(an unmapped buffer, cached and uncached), EINVAL
 *			(a negative offset), EPIPE: the same errno as the
 *			syscall.
 *   pipes		a read that waits for a writer G; short reads; EOF;
 *			O_NONBLOCK gives -EAGAIN at once, as read(2) does;
 *			a write larger than the pipe completes whole.
 *   meta		openat/statx/mkdirat/renameat/unlinkat/fallocate/
 *			ftruncate/fsync/fdatasync/close, results and errors
 *			against the syscalls.
 *   outside_g		called outside a runtime, the calls are the plain
 *			syscalls.
 *
 * io_uring refused by a seccomp filter, bad counts and fds, fd and
 * memory limits: faults_test.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kgo.h"
#include <sys/resource.h>
#include <limits.h>

#include "harness.h"

/* An fd number that is certainly not open: at the RLIMIT_NOFILE soft
 * limit, which no open(2) can return. */
static int closed_fd(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur > INT_MAX)
		return INT_MAX;
	return (int)rl.rlim_cur;
}

#define MS	1000000LL
#define FSIZE	(256 * 1024 + 123)	/* not a multiple of a page */

/* The plain syscall's result as kgo returns it. */
#define SYS(expr)	({ long __r = (long)(expr); __r < 0 ? -errno : __r; })

FIXTURE(io) {
	char dir[64];
};

FIXTURE_VARIANT(io) {
	bool uring;
};

FIXTURE_VARIANT_ADD(io, uring) { .uring = true };
FIXTURE_VARIANT_ADD(io, syscalls) { .uring = false };

FIXTURE_SETUP(io)
{
	snprintf(self->dir, sizeof(self->dir), "/var/tmp/kgo-io-test.XXXXXX");
	ASSERT_NONNULL(mkdtemp(self->dir));
	if (variant->uring)
		unsetenv("KGO_IOURING");
	else
		setenv("KGO_IOURING", "0", 1);
}

FIXTURE_TEARDOWN(io)
{
	char cmd[128];

	if (self->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", self->dir);
		if (system(cmd))
			TH_LOG("could not remove %s", self->dir);
	}
}

struct ctx {
	const char *dir;
	bool uring;
	char path[128];
};

static void run(void (*fn)(void *), struct ctx *c, int maxprocs)
{
	struct kgo_config cfg = { .maxprocs = maxprocs };

	ASSERT_EQ(0, kgo_run(fn, c, &cfg));
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 31 + (i >> 9));
}

/* Drop the file's pages from the cache (the ring path then runs). */
static void drop_cache(int fd, off_t off, off_t len)
{
	fdatasync(fd);
	posix_fadvise(fd, off, len, POSIX_FADV_DONTNEED);
}

static void expect_stats_used_backend(bool uring, uint64_t ring0,
				      uint64_t sys0)
{
	struct kgo_stats st;

	kgo_stats_get(&st, sizeof(st));
	if (uring)
		EXPECT_LT(ring0, st.io_uring_ops);
	else
		EXPECT_LT(sys0, st.io_fallback_ops);
	EXPECT_EQ(uring ? 1 : 0, st.io_uring);
}

/* ------------------------------------------------------------------ */

static void rw_same_main(void *arg)
{
	struct ctx *c = arg;
	static uint8_t data[FSIZE], a[FSIZE + 4096], b[FSIZE + 4096];
	struct kgo_stats st;
	struct iovec iov[3];
	int fd, ref, i;
	ssize_t n, m;

	kgo_stats_get(&st, sizeof(st));
	for (i = 0; i < FSIZE; i++)
		data[i] = pattern(i);
	snprintf(c->path, sizeof(c->path), "%s/rw", c->dir);
	fd = kgo_open(c->path, O_CREAT | O_RDWR | O_TRUNC, 0644);
	ASSERT_LE(0, fd);

	/* Writes: plain, at an offset, vectored, vectored at an offset. */
	ASSERT_EQ(1000, kgo_write(fd, data, 1000));
	ASSERT_EQ(4096, kgo_pwrite(fd, data + 1000, 4096, 1000));
	iov[0] = (struct iovec){ data + 5096, 100 };
	iov[1] = (struct iovec){ data + 5196, 0 };
	iov[2] = (struct iovec){ data + 5196, 10000 };
	ASSERT_EQ(0, lseek(fd, 5096, SEEK_SET) - 5096);
	ASSERT_EQ(10100, kgo_writev(fd, iov, 3));
	iov[0] = (struct iovec){ data + 15196, FSIZE - 15196 - 7 };
	iov[1] = (struct iovec){ data + FSIZE - 7, 7 };
	ASSERT_EQ(FSIZE - 15196, kgo_pwritev(fd, iov, 2, 15196));
	ASSERT_EQ(FSIZE, lseek(fd, 0, SEEK_END));

	ref = open(c->path, O_RDONLY);
	ASSERT_LE(0, ref);
	ASSERT_EQ(FSIZE, SYS(pread(ref, b, FSIZE, 0)));
	ASSERT_EQ(0, memcmp(data, b, FSIZE));

	/* Cached, then uncached (ring path), then cached but for a hole
	 * (a short RWF_NOWAIT read that must go on): always all of it. */
	for (i = 0; i < 3; i++) {
		if (i == 1)
			drop_cache(fd, 0, 0);
		if (i == 2) {
			ASSERT_EQ(FSIZE, SYS(pread(ref, b, FSIZE, 0)));
			drop_cache(fd, 64 * 1024, 64 * 1024);
		}
		memset(a, 0, sizeof(a));
		n = kgo_pread(fd, a, FSIZE, 0);
		ASSERT_EQ(FSIZE, n) TH_LOG("pass %d", i);
		ASSERT_EQ(0, memcmp(data, a, FSIZE)) TH_LOG("pass %d", i);
	}

	/* Short read at EOF, read at EOF, past EOF: as pread. */
	drop_cache(fd, 0, 0);
	n = kgo_pread(fd, a, 4096, FSIZE - 100);
	m = SYS(pread(ref, b, 4096, FSIZE - 100));
	ASSERT_EQ(m, n);
	ASSERT_EQ(100, n);
	ASSERT_EQ(0, memcmp(a, b, 100));
	ASSERT_EQ(0, kgo_pread(fd, a, 4096, FSIZE));
	ASSERT_EQ(0, kgo_pread(fd, a, 4096, FSIZE + 10000));

	/* At the file position: kgo_read moves it as read(2) does. */
	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	drop_cache(fd, 0, 0);
	ASSERT_EQ(7000, kgo_read(fd, a, 7000));
	ASSERT_EQ(7000, lseek(fd, 0, SEEK_CUR));
	iov[0] = (struct iovec){ a + 7000, 3 };
	iov[1] = (struct iovec){ a + 7003, FSIZE };
	n = kgo_readv(fd, iov, 2);
	ASSERT_EQ(FSIZE - 7000, n);
	ASSERT_EQ(0, memcmp(data, a, FSIZE));
	ASSERT_EQ(0, kgo_read(fd, a, 10));
	iov[0] = (struct iovec){ a, 10 };
	iov[1] = (struct iovec){ a + 10, 20 };
	drop_cache(fd, 0, 0);
	ASSERT_EQ(30, kgo_preadv(fd, iov, 2, 4000));
	ASSERT_EQ(0, memcmp(data + 4000, a, 30));

	ASSERT_EQ(0, kgo_close(fd));
	close(ref);
	expect_stats_used_backend(c->uring, st.io_uring_ops, st.io_fallback_ops);
}

TEST_F(io, rw_same)
{
	struct ctx c = { .dir = self->dir, .uring = variant->uring };

	run(rw_same_main, &c, 2);
}

/* ------------------------------------------------------------------ */

static void rw_errors_main(void *arg)
{
	struct ctx *c = arg;
	char buf[4096], *bad;
	int fd, dfd, p[2];

	snprintf(c->path, sizeof(c->path), "%s/e", c->dir);
	fd = kgo_open(c->path, O_CREAT | O_RDWR, 0600);
	ASSERT_LE(0, fd);
	memset(buf, 'x', sizeof(buf));
	ASSERT_EQ(4096, kgo_write(fd, buf, sizeof(buf)));

	EXPECT_EQ(SYS(open("/nonexistent/x", O_RDONLY)),
		  kgo_open("/nonexistent/x", O_RDONLY, 0));
	EXPECT_EQ(-ENOENT, kgo_open("/nonexistent/x", O_RDONLY, 0));
	EXPECT_EQ(SYS(read(-1, buf, 10)), kgo_read(-1, buf, 10));
	EXPECT_EQ(-EBADF, kgo_pread(-1, buf, 10, 0));
	EXPECT_EQ(-EBADF, kgo_write(-1, buf, 10));
	EXPECT_EQ(-EBADF, kgo_fsync(-1));

	/* A directory. */
	dfd = kgo_open(c->dir, O_RDONLY | O_DIRECTORY, 0);
	ASSERT_LE(0, dfd);
	EXPECT_EQ(SYS(pread(dfd, buf, 10, 0)), kgo_pread(dfd, buf, 10, 0));
	EXPECT_EQ(-EISDIR, kgo_read(dfd, buf, 10));
	EXPECT_EQ(-EBADF, kgo_write(dfd, buf, 10));
	EXPECT_EQ(0, kgo_close(dfd));
	/* Closed fd. Not dfd itself: the runtime opens fds of its own at
	 * any time (an M's ring, the eventfd), which may take its number. */
	EXPECT_EQ(-EBADF, kgo_read(closed_fd(), buf, 10));
	EXPECT_EQ(-EBADF, kgo_close(closed_fd()));

	/* A buffer that is not mapped: EFAULT, cached and not. */
	bad = mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, bad);
	EXPECT_EQ(SYS(pread(fd, bad, 100, 0)), kgo_pread(fd, bad, 100, 0));
	EXPECT_EQ(-EFAULT, kgo_pread(fd, bad, 100, 0));
	drop_cache(fd, 0, 0);
	EXPECT_EQ(-EFAULT, kgo_pread(fd, bad, 100, 0));
	EXPECT_EQ(SYS(pwrite(fd, bad, 100, 0)), kgo_pwrite(fd, bad, 100, 0));
	munmap(bad, 8192);

	EXPECT_EQ(SYS(pread(fd, buf, 10, -1)), kgo_pread(fd, buf, 10, -1));
	EXPECT_EQ(-EINVAL, kgo_pwrite(fd, buf, 10, -5));

	/* Writing to a pipe whose reader is gone. */
	signal(SIGPIPE, SIG_IGN);
	ASSERT_EQ(0, pipe(p));
	close(p[0]);
	EXPECT_EQ(-EPIPE, kgo_write(p[1], buf, 10));
	close(p[1]);
	/* Reading a write-only fd. */
	ASSERT_EQ(0, pipe(p));
	EXPECT_EQ(SYS(read(p[1], buf, 1)), kgo_read(p[1], buf, 1));
	close(p[0]);
	close(p[1]);
	kgo_close(fd);
}

TEST_F(io, rw_errors)
{
	struct ctx c = { .dir = self->dir, .uring = variant->uring };

	run(rw_errors_main, &c, 2);
}

/* ------------------------------------------------------------------ */

struct pipe_ctx {
	int p[2];
	_Atomic int64_t wrote_at;	/* atomic: the pipe orders it, unseen by TSan */
	struct kgo_wg wg;
};

static void late_writer(void *arg)
{
	struct pipe_ctx *pc = arg;

	kgo_sleep(30 * MS);
	pc->wrote_at = kgo_now();
	ASSERT_EQ(5, kgo_write(pc->p[1], "hello", 5));
	kgo_wg_done(&pc->wg);
}

static void big_reader(void *arg)
{
	struct pipe_ctx *pc = arg;
	static char in[1 << 20];
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(in)) {
		n = kgo_read(pc->p[0], in + got, sizeof(in) - got);
		ASSERT_LT(0, n);
		got += n;
	}
	for (got = 0; got < sizeof(in); got++)
		ASSERT_EQ(pattern(got), (uint8_t)in[got]);
	kgo_wg_done(&pc->wg);
}

static void pipes_main(void *arg)
{
	struct pipe_ctx pc = { .wg = KGO_WG_INIT };
	static char out[1 << 20];
	char buf[100];
	size_t i;

	(void)arg;
	ASSERT_EQ(0, pipe(pc.p));
	kgo_wg_add(&pc.wg, 1);
	kgo_go(late_writer, &pc);
	/* Waits for the writer; gets what there is (short read). */
	ASSERT_EQ(5, kgo_read(pc.p[0], buf, sizeof(buf)));
	ASSERT_LE(pc.wrote_at, kgo_now());
	ASSERT_EQ(0, memcmp(buf, "hello", 5));
	kgo_wg_wait(&pc.wg);

	/* O_NONBLOCK: -EAGAIN at once, as read(2). */
	fcntl(pc.p[0], F_SETFL, O_NONBLOCK);
	EXPECT_EQ(SYS(read(pc.p[0], buf, 10)), kgo_read(pc.p[0], buf, 10));
	EXPECT_EQ(-EAGAIN, kgo_read(pc.p[0], buf, 10));
	fcntl(pc.p[0], F_SETFL, 0);

	/* A write 16x the pipe's size completes whole, as write(2). */
	for (i = 0; i < sizeof(out); i++)
		out[i] = pattern(i);
	kgo_wg_add(&pc.wg, 1);
	kgo_go(big_reader, &pc);
	ASSERT_EQ((ssize_t)sizeof(out), kgo_write(pc.p[1], out, sizeof(out)));
	kgo_wg_wait(&pc.wg);

	/* EOF once the writer is closed. */
	ASSERT_EQ(0, kgo_close(pc.p[1]));
	ASSERT_EQ(0, kgo_read(pc.p[0], buf, sizeof(buf)));
	kgo_close(pc.p[0]);
}

TEST_F(io, pipes)
{
	struct ctx c = { .dir = self->dir, .uring = variant->uring };

	run(pipes_main, &c, 2);
}

/* ------------------------------------------------------------------ */

static void meta_main(void *arg)
{
	struct ctx *c = arg;
	struct statx a, b;
	struct stat st;
	char p1[160], p2[160];
	int dfd, fd;

	dfd = kgo_openat(AT_FDCWD, c->dir, O_RDONLY | O_DIRECTORY, 0);
	ASSERT_LE(0, dfd);
	fd = kgo_openat(dfd, "f", O_CREAT | O_EXCL | O_WRONLY, 0640);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EEXIST, kgo_openat(dfd, "f", O_CREAT | O_EXCL | O_WRONLY, 0640));
	EXPECT_EQ(-ENOENT, kgo_openat(dfd, "nothere", O_RDONLY, 0));
	EXPECT_EQ(-ENOTDIR, kgo_openat(fd, "x", O_RDONLY, 0));

	/* statx: the same fields as the syscall's. */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	ASSERT_EQ(0, kgo_statx(dfd, "f", 0, STATX_BASIC_STATS, &a));
	ASSERT_EQ(0, statx(dfd, "f", 0, STATX_BASIC_STATS, &b));
	EXPECT_EQ(b.stx_ino, a.stx_ino);
	EXPECT_EQ(b.stx_mode, a.stx_mode);
	EXPECT_EQ(b.stx_size, a.stx_size);
	EXPECT_EQ(SYS(statx(dfd, "no", 0, STATX_BASIC_STATS, &b)),
		  kgo_statx(dfd, "no", 0, STATX_BASIC_STATS, &a));

	/* fallocate, ftruncate, fsync, fdatasync. */
	ASSERT_EQ(0, kgo_fallocate(fd, 0, 0, 100000));
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(100000, st.st_size);
	EXPECT_EQ(SYS(fallocate(fd, 0, -1, 10)), kgo_fallocate(fd, 0, -1, 10));
	ASSERT_EQ(0, kgo_ftruncate(fd, 12345));
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(12345, st.st_size);
	EXPECT_EQ(SYS(ftruncate(fd, -1)), kgo_ftruncate(fd, -1));
	EXPECT_EQ(-EINVAL, kgo_ftruncate(fd, -1));
	EXPECT_EQ(0, kgo_fsync(fd));
	EXPECT_EQ(0, kgo_fdatasync(fd));

	/* mkdirat, renameat, unlinkat. */
	EXPECT_EQ(0, kgo_mkdirat(dfd, "d", 0755));
	EXPECT_EQ(-EEXIST, kgo_mkdirat(dfd, "d", 0755));
	EXPECT_EQ(SYS(mkdirat(dfd, "d", 0755)), kgo_mkdirat(dfd, "d", 0755));
	EXPECT_EQ(0, kgo_renameat(dfd, "f", dfd, "d/g"));
	EXPECT_EQ(-ENOENT, kgo_renameat(dfd, "f", dfd, "h"));
	snprintf(p1, sizeof(p1), "%s/d/g", c->dir);
	EXPECT_EQ(0, stat(p1, &st));
	EXPECT_EQ(SYS(unlinkat(dfd, "d", 0)), kgo_unlinkat(dfd, "d", 0));
	EXPECT_EQ(-ENOTEMPTY, kgo_unlinkat(dfd, "d", AT_REMOVEDIR));
	EXPECT_EQ(0, kgo_unlinkat(dfd, "d/g", 0));
	EXPECT_EQ(-ENOENT, kgo_unlinkat(dfd, "d/g", 0));
	EXPECT_EQ(0, kgo_unlinkat(dfd, "d", AT_REMOVEDIR));
	snprintf(p2, sizeof(p2), "%s/d", c->dir);
	EXPECT_EQ(-1, stat(p2, &st));

	EXPECT_EQ(0, kgo_close(fd));
	EXPECT_EQ(-EBADF, kgo_fsync(closed_fd()));	/* see rw_errors */
	EXPECT_EQ(0, kgo_close(dfd));
}

TEST_F(io, meta)
{
	struct ctx c = { .dir = self->dir, .uring = variant->uring };

	run(meta_main, &c, 2);
}

/* ------------------------------------------------------------------ */

TEST(outside_g)
{
	char path[] = "/var/tmp/kgo-io-outside.XXXXXX", buf[16];
	int fd = mkstemp(path);

	ASSERT_LE(0, fd);
	ASSERT_EQ(5, kgo_write(fd, "abcde", 5));
	ASSERT_EQ(3, kgo_pread(fd, buf, 3, 2));
	ASSERT_EQ(0, memcmp(buf, "cde", 3));
	ASSERT_EQ(-EBADF, kgo_read(-1, buf, 1));
	ASSERT_EQ(0, kgo_close(fd));
	ASSERT_EQ(0, kgo_unlinkat(AT_FDCWD, path, 0));
}

/* ------------------------------------------------------------------ */

TEST_HARNESS_MAIN
