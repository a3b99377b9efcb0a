// SPDX-License-Identifier: MIT
/*
 * Description: what a person reads when a program goes wrong: misuse
 * messages and goroutine dumps (user/runtime/traceback.c). Each test
 * runs a program in a child process (selftests/child.h) and reads what
 * it printed.
 *
 *   misuse.*		a G that waits between kgo_syscall_begin and
 *			kgo_syscall_end (kgo_sleep, a channel receive, a
 *			contended kgo_mutex, kgo_read of an empty pipe,
 *			kgo_yield) dies by SIGABRT after one line
 *			"kgo: fatal error: <call> called between
 *			kgo_syscall_begin and kgo_syscall_end", not by a
 *			bare SIGSEGV.
 *   deadlock_dump	this (PIE) binary deadlocks on purpose: the report
 *			names each G ("main-waiter", "stuck-worker"),
 *			its wait reason, how long it waited (at least the
 *			300 ms it did), and its stack: the kgo call, then
 *			the program's functions with file:line of the
 *			calls.
 *   sigquit_dump	SIGQUIT to a program whose Gs wait: the same dump,
 *			then exit status 2.
 *   names		kgo_set_name: cut at KGO_NAME_MAX - 1 bytes;
 *			-EPERM outside a G, -EINVAL for NULL; the name
 *			shows in KGO_DEBUG=scheddetail=1 lines and in
 *			the KGO_TRACE file (the G's slices, a name event).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kgo.h"
#include "harness.h"
#include "child.h"

#define MS	1000000LL

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define KGO_TEST_SANITIZED 1
#endif

/* ------------------------------------------------------------------ */
/* Waiting inside a syscall section                                   */
/* ------------------------------------------------------------------ */

static void misuse_sleep(void *arg)
{
	(void)arg;
	kgo_syscall_begin();
	kgo_sleep(1 * MS);
	kgo_syscall_end();
}

static void misuse_chan(void *arg)
{
	struct kgo_chan *c = kgo_chan_make(sizeof(int), 0);

	(void)arg;
	kgo_syscall_begin();
	kgo_chan_recv(c, NULL);
	kgo_syscall_end();
}

static void misuse_mutex(void *arg)
{
	static struct kgo_mutex mu = KGO_MUTEX_INIT;

	(void)arg;
	kgo_mutex_lock(&mu);
	kgo_syscall_begin();
	kgo_mutex_lock(&mu);		/* held: it must wait */
	kgo_syscall_end();
}

static void misuse_read(void *arg)
{
	int fds[2];
	char b;

	(void)arg;
	if (pipe(fds))
		return;
	kgo_syscall_begin();
	kgo_read(fds[0], &b, 1);	/* empty: it must wait */
	kgo_syscall_end();
}

static void misuse_yield(void *arg)
{
	(void)arg;
	kgo_syscall_begin();
	kgo_yield();
	kgo_syscall_end();
}

FIXTURE(misuse) {
	char out[8192];
};
FIXTURE_VARIANT(misuse) {
	void (*fn)(void *);
	const char *call;
	const char *generic;	/* what is said when the frame is gone */
};
FIXTURE_VARIANT_ADD(misuse, sleep) { misuse_sleep, "kgo_sleep", NULL };
FIXTURE_VARIANT_ADD(misuse, chan_recv) { misuse_chan, "kgo_chan_recv", NULL };
FIXTURE_VARIANT_ADD(misuse, mutex) { misuse_mutex, "kgo_mutex_lock", NULL };
FIXTURE_VARIANT_ADD(misuse, read) {
	misuse_read, "kgo_read", "a kgo I/O call"
};
FIXTURE_VARIANT_ADD(misuse, yield) { misuse_yield, "kgo_yield", NULL };
FIXTURE_SETUP(misuse)
{
}
FIXTURE_TEARDOWN(misuse)
{
}

TEST_F(misuse, says_so)
{
	char want[128];
	int st = child_run(variant->fn, NULL, 1, NULL, self->out,
			   sizeof(self->out));

	ASSERT_TRUE(WIFSIGNALED(st)) TH_LOG("status %#x: %s", st, self->out);
	EXPECT_EQ(SIGABRT, WTERMSIG(st)) TH_LOG("%s", self->out);
	EXPECT_NONNULL(strstr(self->out, "kgo: fatal error: "))
		TH_LOG("%s", self->out);
	/* kgo_sleep may show as kgo_sleep_until, kgo_chan_recv as
	 * kgo_chan_recv_dl: the call the program's frame made. */
	snprintf(want, sizeof(want), "fatal error: %s", variant->call);
	/* kgo_read's frame is gone when it tail-calls io_rw1 (as it does
	 * once io_rw1 is too big to inline): the wait reason names it. */
	if (!strstr(self->out, want) && variant->generic)
		snprintf(want, sizeof(want), "fatal error: %s",
			 variant->generic);
	EXPECT_NONNULL(strstr(self->out, want)) TH_LOG("%s", self->out);
	EXPECT_NONNULL(strstr(self->out, "called between kgo_syscall_begin "
			      "and kgo_syscall_end"))
		TH_LOG("%s", self->out);
}

/* ------------------------------------------------------------------ */
/* Dumps                                                              */
/* ------------------------------------------------------------------ */

/*
 * The calls the dumps must show, each with its line: a frame's line is
 * that of the call it made. A call followed by more work, so that it is
 * not a tail call (which would leave no frame of ours).
 */
static atomic_int sink;
static struct kgo_chan *stuck_chan;

enum { STUCK_LINE = __LINE__ + 4 };
static __attribute__((noinline)) void stuck_worker_blocks(void)
{
	int v = 0;
	kgo_chan_recv(stuck_chan, &v);
	atomic_fetch_add(&sink, v);
}

static void stuck_worker(void *arg)
{
	(void)arg;
	kgo_set_name("stuck-worker");
	stuck_worker_blocks();
	atomic_fetch_add(&sink, 1);
}

enum { WAITER_LINE = __LINE__ + 3 };	/* its kgo_sleep */
static __attribute__((noinline)) void main_waiter_waits(struct kgo_wg *wg)
{
	kgo_sleep(300 * MS);
	kgo_wg_wait(wg);
	atomic_fetch_add(&sink, 1);
}

static void deadlock_main(void *arg)
{
	struct kgo_wg wg = KGO_WG_INIT;

	(void)arg;
	kgo_set_name("main-waiter");
	stuck_chan = kgo_chan_make(sizeof(int), 0);
	kgo_go(stuck_worker, NULL);
	kgo_wg_add(&wg, 1);
	main_waiter_waits(&wg);
}

/* The block of the dump about the G named @name, cut at its end. */
static char *g_block(const char *out, const char *name, char *buf,
		     size_t n)
{
	char key[64];
	const char *s, *e, *hdr;

	snprintf(key, sizeof(key), "\"%s\" [", name);
	s = strstr(out, key);
	if (!s)
		return NULL;
	hdr = s;
	while (hdr > out && hdr[-1] != '\n')
		hdr--;
	e = strstr(s, "\n\n");
	if (!e)
		e = s + strlen(s);
	snprintf(buf, n, "%.*s", (int)(e - hdr), hdr);
	return buf;
}

/* "[reason, 1.25 s]" or "[reason, 340 ms]": the wait in ms, -1 if none. */
static long waited_ms(const char *block)
{
	const char *p = strchr(block, '[');
	long a, b;
	char unit[8];

	if (!p || !(p = strchr(p, ',')))
		return -1;
	if (sscanf(p, ", %ld.%ld %7s", &a, &b, unit) == 3 && unit[0] == 's')
		return a * 1000 + b * 10;
	if (sscanf(p, ", %ld %7s", &a, unit) == 2) {
		if (!strncmp(unit, "ms", 2))
			return a;
		if (!strncmp(unit, "minutes", 7))
			return a * 60000;
	}
	return -1;
}

static void check_dump(struct __test_metadata *_metadata, const char *out,
		       bool quit, const char *main_fn)
{
	char block[4096], line[64];
	bool libdw = strstr(out, "(symbols: libdw)") != NULL;

	/* The worker: name, reason, time, the kgo call, our frames. */
	ASSERT_NONNULL(g_block(out, "stuck-worker", block, sizeof(block)))
		TH_LOG("%s", out);
	EXPECT_NONNULL(strstr(block, "[chan receive")) TH_LOG("%s", block);
	EXPECT_NONNULL(strstr(block, "kgo_chan_recv")) TH_LOG("%s", block);
	EXPECT_NONNULL(strstr(block, "stuck_worker_blocks+0x"))
		TH_LOG("%s", block);
	EXPECT_NONNULL(strstr(block, "stuck_worker+0x")) TH_LOG("%s", block);
	EXPECT_NULL(strstr(block, "gopark")) TH_LOG("%s", block);
	if (!quit)
		EXPECT_LE(300, waited_ms(block)) TH_LOG("%s", block);
	if (libdw) {
		snprintf(line, sizeof(line), "debug_test.c:%d", STUCK_LINE);
		EXPECT_NONNULL(strstr(block, line))
			TH_LOG("want %s in %s", line, block);
	}

	ASSERT_NONNULL(g_block(out, "main-waiter", block, sizeof(block)))
		TH_LOG("%s", out);
	EXPECT_NONNULL(strstr(block, quit ? "[sleep" :
					    "[sync.WaitGroup.Wait"))
		TH_LOG("%s", block);
	EXPECT_NONNULL(strstr(block, "main_waiter_waits+0x"))
		TH_LOG("%s", block);
	EXPECT_NONNULL(strstr(block, main_fn)) TH_LOG("%s", block);
	if (libdw) {
		snprintf(line, sizeof(line), "debug_test.c:%d",
			 WAITER_LINE + (quit ? 0 : 1));	/* sleep, wg */
		EXPECT_NONNULL(strstr(block, line))
			TH_LOG("want %s in %s", line, block);
	}
}

TEST(deadlock_dump)
{
	char out[32768];
	int st = child_run(deadlock_main, NULL, 2, NULL, out, sizeof(out));

	ASSERT_TRUE(WIFEXITED(st)) TH_LOG("status %#x: %s", st, out);
	EXPECT_EQ(2, WEXITSTATUS(st)) TH_LOG("%s", out);
	EXPECT_NONNULL(strstr(out, "all goroutines are asleep - deadlock"))
		TH_LOG("%s", out);
#ifndef KGO_TEST_SANITIZED
	/* Built with libdw here (make deps installs it). */
	EXPECT_NONNULL(strstr(out, "(symbols: libdw)")) TH_LOG("%s", out);
#endif
	check_dump(_metadata, out, false, "deadlock_main+0x");
}

/*
 * SIGQUIT: main sleeps in main_waiter_waits (the line of its kgo_sleep),
 * the worker waits on its channel. P=1 and nothing runs long enough to
 * be preempted, so the order is fixed: main parks in its sleep, the
 * reporter (made last, so run first: runnext) yields to the worker,
 * which parks, and then says READY; the parent then sends SIGQUIT.
 */
static void quit_reporter(void *arg)
{
	static const char ready[] = "READY\n";

	(void)arg;
	kgo_yield();
	if (write(1, ready, sizeof(ready) - 1) < 0)
		return;
}

static void quit_main(void *arg)
{
	struct kgo_wg wg = KGO_WG_INIT;

	(void)arg;
	kgo_set_name("main-waiter");
	stuck_chan = kgo_chan_make(sizeof(int), 0);
	kgo_go(stuck_worker, NULL);
	kgo_go(quit_reporter, NULL);
	for (;;)
		main_waiter_waits(&wg);
}

TEST(sigquit_dump)
{
	char out[32768];
	int st = child_run(quit_main, NULL, 1, "READY\n", out, sizeof(out));

	ASSERT_TRUE(WIFEXITED(st)) TH_LOG("status %#x: %s", st, out);
	EXPECT_EQ(2, WEXITSTATUS(st)) TH_LOG("%s", out);
	EXPECT_NONNULL(strstr(out, "SIGQUIT: quit")) TH_LOG("%s", out);
	check_dump(_metadata, out, true, "quit_main+0x");
}

/* ------------------------------------------------------------------ */

static void names_main(void *arg)
{
	static const char ready[] = "READY\n";

	(void)arg;
	EXPECT_EQ(-EINVAL, kgo_set_name(NULL));
	EXPECT_EQ(0, kgo_set_name("a-name-longer-than-fifteen"));
	kgo_sleep(60 * MS);
	if (write(1, ready, sizeof(ready) - 1) < 0)
		return;
}

TEST(names)
{
	char out[65536];
	int st;

	EXPECT_EQ(-EPERM, kgo_set_name("x"));
	setenv("KGO_DEBUG", "schedtrace=10,scheddetail=1", 1);
	st = child_run(names_main, NULL, 1, NULL, out, sizeof(out));
	unsetenv("KGO_DEBUG");
	ASSERT_TRUE(WIFEXITED(st)) TH_LOG("status %#x: %s", st, out);
	EXPECT_EQ(0, WEXITSTATUS(st)) TH_LOG("%s", out);
	/* 15 bytes kept. */
	EXPECT_NONNULL(strstr(out, "name=\"a-name-longer-t\""))
		TH_LOG("%.2000s", out);
	EXPECT_NULL(strstr(out, "a-name-longer-th")) TH_LOG("%.2000s", out);

	/* KGO_TRACE: the G's slices are "G<id> <name>", and the name is an
	 * event of its own. */
	{
		char path[] = "/tmp/kgo-names-XXXXXX", *json;
		int fd = mkstemp(path);
		FILE *f;
		long n;

		ASSERT_LE(0, fd);
		close(fd);
		setenv("KGO_TRACE", path, 1);
		st = child_run(names_main, NULL, 1, NULL, out, sizeof(out));
		unsetenv("KGO_TRACE");
		EXPECT_EQ(0, WEXITSTATUS(st)) TH_LOG("%s", out);
		f = fopen(path, "r");
		ASSERT_NONNULL(f);
		json = calloc(1, 1 << 20);
		ASSERT_NONNULL(json);
		n = fread(json, 1, (1 << 20) - 1, f);
		fclose(f);
		unlink(path);
		EXPECT_LT(0, n);
		EXPECT_NONNULL(strstr(json, "\"name\":\"G1 a-name-longer-t\""))
			TH_LOG("%.3000s", json);
		EXPECT_NONNULL(strstr(json, "\"name\":\"a-name-longer-t\""))
			TH_LOG("%.3000s", json);
		free(json);
	}
}

TEST_HARNESS_MAIN
