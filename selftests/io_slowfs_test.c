// SPDX-License-Identifier: MIT
/*
 * Description: I/O on a slow file system (selftests/slowfs.c, a FUSE
 * file system whose reads take a set time): Gs park, Ms do not block.
 * Skips when /dev/fuse is missing or mounting fails.
 *
 *   cpu_runs_during_read	P=1: a CPU-bound G that never makes a
 *			runtime call runs while another G waits 1 s for a
 *			read, and the read's data is right. (Through
 *			io_uring the M never blocks; through the syscall
 *			path the P is handed off first.)
 *   thousand_readers	1000 Gs read the slow file system at once (four
 *			4 KiB reads each at 5 ms a read, data checked):
 *			the process never has more than P+4 threads of its
 *			own (sampled from /proc/self/task every 2 ms), and
 *			io_uring's io-wq workers ("iou-wrk-*", counted
 *			apart) stay within their cap.
 *   shutdown_inflight	main returns while 40 Gs wait for reads that the
 *			file system holds until main has returned, and 40
 *			for sockets that never get data: while the reads
 *			wait, no thread of kgo's own waits in the file
 *			system (io-wq's or the kernel's do: on 6.1
 *			io_uring would run them inline in an M), every
 *			operation is accounted for (cancelled or
 *			completed), nothing is written to a buffer after
 *			kgo_run returns (data sent to the sockets
 *			afterwards is all still there), and a second
 *			kgo_run works.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kgo.h"
#include "harness.h"
#include "slowfs.h"
#include "thread_count.h"

#define MS	1000000LL

FIXTURE(slow) {
	struct slowfs fs;
};

FIXTURE_VARIANT(slow) {
	bool uring;
};

FIXTURE_VARIANT_ADD(slow, uring) { .uring = true };
FIXTURE_VARIANT_ADD(slow, syscalls) { .uring = false };

FIXTURE_SETUP(slow)
{
	self->fs.pid = -1;
	if (variant->uring)
		unsetenv("KGO_IOURING");
	else
		setenv("KGO_IOURING", "0", 1);
}

FIXTURE_TEARDOWN(slow)
{
	slowfs_stop(&self->fs);
}

static void mount_or_skip(struct __test_metadata *_metadata,
			  struct slowfs *fs, int latency_us, int nfiles)
{
	char why[256];

	if (slowfs_start(fs, latency_us, nfiles, 1 << 20, why, sizeof(why))) {
		SKIP(return, "%s", why);
	}
}

static bool check_data(const unsigned char *buf, size_t n, unsigned file,
		       uint64_t off)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (buf[i] != slowfs_byte(file, off + i))
			return false;
	return true;
}

/* ------------------------------------------------------------------ */

struct cpu_ctx {
	char path[PATH_MAX];
	_Atomic bool read_done;
	int64_t read_start, read_end;
	long spins;		/* spinner's rounds with the read in flight */
	struct kgo_wg wg;
};

static void slow_reader(void *arg)
{
	struct cpu_ctx *c = arg;
	unsigned char buf[8192];
	int fd = kgo_open(c->path, O_RDONLY, 0);

	ASSERT_LE(0, fd);
	c->read_start = kgo_now();
	ASSERT_EQ((ssize_t)sizeof(buf), kgo_pread(fd, buf, sizeof(buf), 40960));
	c->read_end = kgo_now();
	atomic_store(&c->read_done, true);
	EXPECT_TRUE(check_data(buf, sizeof(buf), 0, 40960));
	kgo_close(fd);
	kgo_wg_done(&c->wg);
}

/*
 * No runtime call in the loop: only preemption can take the P away. It
 * spins until the read is done, counting the rounds that saw it still in
 * flight. An M blocked in the read would hold the only P until the read
 * returned: the spinner would start after it, with no round to count.
 * (It used to spin 400 ms and fail on a gap over 100 ms: the host held
 * the whole process off for 189 ms in a loaded make check.)
 */
static void spinner(void *arg)
{
	struct cpu_ctx *c = arg;
	struct timespec ts;
	int64_t start, now;

	/* At most 3 s: without asynchronous preemption (TSan) nothing
	 * takes the P from it, and the reader could never finish. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	start = ts.tv_sec * 1000000000LL + ts.tv_nsec;
	do {
		if (!atomic_load(&c->read_done))
			c->spins++;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = ts.tv_sec * 1000000000LL + ts.tv_nsec;
	} while (!atomic_load(&c->read_done) && now - start < 3000 * MS);
	kgo_wg_done(&c->wg);
}

static void cpu_main(void *arg)
{
	struct cpu_ctx *c = arg;

	kgo_wg_add(&c->wg, 2);
	kgo_go(slow_reader, c);
	kgo_yield();		/* the reader opens, reads and parks */
	kgo_go(spinner, c);
	kgo_wg_wait(&c->wg);
}

TEST_F_TIMEOUT(slow, cpu_runs_during_read, 30)
{
	static struct cpu_ctx c = { .wg = KGO_WG_INIT };
	struct kgo_config cfg = { .maxprocs = 1 };
	struct kgo_stats st;

	mount_or_skip(_metadata, &self->fs, 1000000, 1);
	slowfs_path(&self->fs, 0, c.path, sizeof(c.path));
	ASSERT_EQ(0, kgo_run(cpu_main, &c, &cfg));
	kgo_stats_get(&st, sizeof(st));
	ASSERT_TRUE(atomic_load(&c.read_done));
	EXPECT_LE(990 * MS, c.read_end - c.read_start);
	/* The spinner ran while the read was in flight. */
	EXPECT_LT(0, c.spins);
	TH_LOG("read %lld ms; %ld spinner rounds during it; %s",
	       (long long)((c.read_end - c.read_start) / MS), c.spins,
	       kgo_io_backend());
	if (variant->uring)
		EXPECT_EQ(0, st.handoffs);
}

/* ------------------------------------------------------------------ */

#define READERS		1000
#define READS_EACH	4
#define NFILES		16

struct sample {
	_Atomic bool stop;
	int base;		/* threads before kgo_run, the main one too */
	int own_max, iou_max;
};

static void *no_thread(void *arg)
{
	return arg;
}

static void *sampler(void *arg)
{
	struct sample *s = arg;
	int own, iou;

	while (!atomic_load(&s->stop)) {
		count_threads(&own, &iou);
		/* The sampler counts in place of the main thread (m0). */
		own -= s->base;
		if (own > s->own_max)
			s->own_max = own;
		if (iou > s->iou_max)
			s->iou_max = iou;
		usleep(2000);
	}
	return NULL;
}

struct readers {
	const struct slowfs *fs;
	struct kgo_wg wg;
	_Atomic int bad;
	int ms_max;
};

static void reader(void *arg)
{
	struct readers *r = arg;
	static _Atomic unsigned seq;
	unsigned id = atomic_fetch_add(&seq, 1), file = id % NFILES;
	unsigned char buf[4096];
	char path[PATH_MAX];
	uint64_t off;
	int fd, i;

	slowfs_path(r->fs, file, path, sizeof(path));
	fd = kgo_open(path, O_RDONLY, 0);
	ASSERT_LE(0, fd);
	for (i = 0; i < READS_EACH; i++) {
		off = ((id * 7 + i * 13) % 200) * 4096 + id % 4096;
		ASSERT_EQ((ssize_t)sizeof(buf), kgo_pread(fd, buf, sizeof(buf), off));
		if (!check_data(buf, sizeof(buf), file, off))
			atomic_fetch_add(&r->bad, 1);
	}
	kgo_close(fd);
	kgo_wg_done(&r->wg);
}

static void readers_main(void *arg)
{
	struct readers *r = arg;
	struct kgo_stats st;
	int i;

	kgo_wg_add(&r->wg, READERS);
	for (i = 0; i < READERS; i++)
		ASSERT_EQ(0, kgo_go(reader, r));
	kgo_wg_wait(&r->wg);
	kgo_stats_get(&st, sizeof(st));
	r->ms_max = st.ms;
}

TEST_F_TIMEOUT(slow, thousand_readers, 60)
{
	static struct readers r = { .wg = KGO_WG_INIT };
	struct kgo_config cfg = { .maxprocs = 2 };
	struct sample s = { 0 };
	pthread_t thr;
	int64_t t0, el;
	int i;

	if (!variant->uring) {
		/* The syscall path blocks an M per read, as Go does: the
		 * thread bound is io_uring's to keep. */
		SKIP(return, "the thread bound is for the io_uring path");
	}
	mount_or_skip(_metadata, &self->fs, 5000, NFILES);
	r.fs = &self->fs;
	/* Count the threads the runtime makes and the main thread (m0):
	 * not the sampler, nor what was there before (a sanitizer's).
	 * TSan starts its background thread at the first pthread_create
	 * after a fork (the harness forks each test), which was the
	 * sampler's: it was counted as the runtime's, and TSan's own
	 * went 5-7 where the others' went 4 (7 > 6 failed a CI run,
	 * 2026-12-07). A thread made and joined first starts it here. */
	ASSERT_EQ(0, pthread_create(&thr, NULL, no_thread, NULL));
	ASSERT_EQ(0, pthread_join(thr, NULL));
	count_threads(&s.base, &i);
	ASSERT_EQ(0, pthread_create(&thr, NULL, sampler, &s));
	t0 = kgo_now();
	ASSERT_EQ(0, kgo_run(readers_main, &r, &cfg));
	el = kgo_now() - t0;
	atomic_store(&s.stop, true);
	pthread_join(thr, NULL);
	EXPECT_EQ(0, atomic_load(&r.bad));
	/* P Ms running Gs, sysmon, and a few idle or spinning Ms. */
	EXPECT_GE(cfg.maxprocs + 4, s.own_max);
	/* io-wq: at most the cap (16 by default) per ring, one ring per M. */
	EXPECT_GE(16 * (cfg.maxprocs + 4), s.iou_max);
	TH_LOG("%d reads in %lld ms: %.0f reads/s; threads of our own %d "
	       "(Ms %d), io-wq workers %d", READERS * READS_EACH,
	       (long long)(el / MS), READERS * READS_EACH / (el / 1e9),
	       s.own_max, r.ms_max, s.iou_max);
}

/* ------------------------------------------------------------------ */

#define SHUT_READS	40
#define SHUT_RECVS	40

struct shut {
	const struct slowfs *fs;
	int sv[SHUT_RECVS][2];
	char rbuf[SHUT_RECVS][64];
	unsigned char fbuf[SHUT_READS][4096];
	_Atomic int started, opened;
	long held;		/* reads the file system held at the look */
	int in_fs;		/* our threads that waited in it then */
	int wchan_known;	/* our threads whose wchan the kernel showed */
	char in_fs_names[512];
	_Atomic int64_t returned;	/* when shut_main returned */
};

static void shut_read(void *arg)
{
	struct shut *s = arg;
	int i = atomic_fetch_add(&s->started, 1);
	char path[PATH_MAX];
	int fd;

	slowfs_path(s->fs, 0, path, sizeof(path));
	fd = kgo_open(path, O_RDONLY, 0);
	ASSERT_LE(0, fd);
	atomic_fetch_add(&s->opened, 1);
	kgo_pread(fd, s->fbuf[i], sizeof(s->fbuf[i]), 0);
}

static void shut_recv(void *arg)
{
	struct shut *s = arg;
	int i = atomic_fetch_add(&s->started, 1) - SHUT_READS;

	kgo_recv(s->sv[i][0], s->rbuf[i], sizeof(s->rbuf[i]), 0);
	/* Never here: nothing is sent before kgo_run returns. */
	ASSERT_TRUE(false);
}

static void shut_main(void *arg)
{
	struct shut *s = arg;
	struct kgo_stats st;
	int i, own, iowq;

	for (i = 0; i < SHUT_READS; i++)
		kgo_go(shut_read, s);
	/* Opened: no lookup or open is left in the file system. */
	while (atomic_load(&s->opened) < SHUT_READS)
		kgo_sleep(MS);
	for (i = 0; i < SHUT_RECVS; i++)
		kgo_go(shut_recv, s);
	/* Let them all park. */
	for (i = 0; i < 100; i++) {
		kgo_sleep(5 * MS);
		kgo_stats_get(&st, sizeof(st));
		if (st.io_waiting + st.io_fallback_ops >= SHUT_READS + SHUT_RECVS)
			break;
	}
	/*
	 * A read the file system holds is one the kernel took: from then
	 * on, an M that waited in it (io_uring running it inline, as 6.1's
	 * did before io_file.c sent such reads to io-wq) would wait there
	 * until the reads are released, after main returns. So look for
	 * one once a read is held: whenever the look comes, the answer of
	 * a correct runtime is none. (On 6.1 without IOSQE_ASYNC for such
	 * reads the look never came: both Ps' Ms sat in the held reads and
	 * main never ran again, so the test ran out of its time, 1 run of
	 * 1; with it, 17 reads held, none in an M, kgo_run 162 ms after
	 * main: VMTEST_KERNEL=6.1 VMTEST_CMD='./io_slowfs_test -t
	 * slow.uring.shutdown_inflight' make vmtest.)
	 */
	while ((s->held = slowfs_held(s->fs)) == 0)
		kgo_sleep(MS);
	scan_threads(&own, &iowq, "fuse|request_wait", &s->in_fs,
		     &s->wchan_known, s->in_fs_names, sizeof(s->in_fs_names));
	atomic_store(&s->returned, kgo_now());
}

/* Releases the held reads once main has returned. */
static void *shut_release(void *arg)
{
	struct shut *s = arg;

	while (!atomic_load(&s->returned))
		usleep(1000);
	return (void *)(intptr_t)slowfs_release(s->fs);
}

static void again_main(void *arg)
{
	char buf[4];
	int p[2];

	(void)arg;
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(3, kgo_write(p[1], "abc", 3));
	ASSERT_EQ(3, kgo_read_dl(p[0], buf, sizeof(buf), kgo_now() + 1000 * MS));
	close(p[0]);
	close(p[1]);
}

TEST_F_TIMEOUT(slow, shutdown_inflight, 30)
{
	static struct shut s;
	struct kgo_config cfg = { .maxprocs = 2 };
	struct kgo_stats before, after;
	char buf[64];
	pthread_t rel;
	void *released;
	int64_t el;
	int i;

	if (!variant->uring) {
		/* Ms blocked in syscalls cannot be made to leave. */
		SKIP(return, "only io_uring operations can be cancelled");
	}
	mount_or_skip(_metadata, &self->fs, SLOWFS_HOLD, 1);
	s.fs = &self->fs;
	for (i = 0; i < SHUT_RECVS; i++)
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, s.sv[i]));
	memset(s.rbuf, 0x5a, sizeof(s.rbuf));
	kgo_stats_get(&before, sizeof(before));
	ASSERT_EQ(0, pthread_create(&rel, NULL, shut_release, &s));
	ASSERT_EQ(0, kgo_run(shut_main, &s, &cfg));
	el = kgo_now() - atomic_load(&s.returned);
	ASSERT_EQ(0, pthread_join(rel, &released));
	ASSERT_EQ(0, (intptr_t)released);
	kgo_stats_get(&after, sizeof(after));

	/*
	 * The reads waited in the file system at once, none in an M: how
	 * long kgo_run then takes is the machine's business (it was a
	 * timed bound once, 2 s, then 6 s; 3.1 s in a loaded TCG guest
	 * failed the first), so it is only logged.
	 */
	ASSERT_LT(0, s.held) TH_LOG("slowfs held: %ld", s.held);
	EXPECT_EQ(0, s.in_fs) TH_LOG("waiting in the file system:%s",
				    s.in_fs_names);
	/* Every op accounted for: the recvs all cancelled, the reads
	 * cancelled or finished. */
	EXPECT_LE(SHUT_RECVS, after.io_cancelled - before.io_cancelled);
	EXPECT_EQ(0, after.io_waiting);
	EXPECT_EQ(0, after.io_rings);
	/* Nothing is left in the kernel to write into the buffers. */
	for (i = 0; i < SHUT_RECVS; i++)
		ASSERT_EQ(4, write(s.sv[i][1], "data", 4));
	usleep(20000);
	for (i = 0; i < SHUT_RECVS; i++) {
		ASSERT_EQ(4, recv(s.sv[i][0], buf, sizeof(buf), MSG_DONTWAIT));
		EXPECT_EQ(0x5a, s.rbuf[i][0]);
	}
	TH_LOG("kgo_run returned %lld ms after main; %ld reads held; "
	       "cancelled %llu", (long long)(el / MS), s.held,
	       (unsigned long long)(after.io_cancelled - before.io_cancelled));
	/* And the runtime starts again. */
	ASSERT_EQ(0, kgo_run(again_main, NULL, &cfg));
	if (!s.wchan_known) {
		SKIP(return, "the kernel shows no thread's wchan: "
		     "whether an M waited in the file system is unknown");
	}
}

TEST_HARNESS_MAIN
