// SPDX-License-Identifier: MIT
/*
 * Description: test the test harness (harness.h) itself.
 *
 * Passing assertions, fixtures and variants are checked in place. What
 * must fail (EXPECT, ASSERT, a timeout, a crash, a missing signal) cannot
 * be checked by failing here, so this binary also carries "victim" tests
 * that misbehave on purpose. They are registered only when
 * KGO_HARNESS_VICTIMS=1 is in the environment, so a normal run neither
 * runs nor counts them; the checks below run this same binary with that
 * variable and -t VICTIM, and read its TAP output and exit status. If the
 * harness stops catching one of these, a check here fails.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* ------------------------------------------------------------------ */
/* Assertions and fixtures that pass                                  */
/* ------------------------------------------------------------------ */

enum colour { RED, GREEN };

TEST(assertions_pass)
{
	const char *s = "kgo";
	size_t three = 3;
	long minus = -1;
	int zero = 0;
	int *nil = NULL;
	double half = 0.5;

	ASSERT_EQ(3, three);
	ASSERT_NE(4, three);
	ASSERT_LT(minus, three);	/* as numbers, not as size_t */
	ASSERT_LE(three, 3);
	ASSERT_GT(three, minus);
	ASSERT_GE(0, minus);
	ASSERT_TRUE(three);
	ASSERT_FALSE(zero);
	ASSERT_NULL(nil);
	ASSERT_NONNULL(s);
	ASSERT_STREQ("kgo", s);
	ASSERT_STRNE("go", s);
	ASSERT_EQ(GREEN, 1);
	ASSERT_LT(0.25, half);
	ASSERT_EQ(-1, (signed char)-1);
	ASSERT_NE((unsigned long)-1, -1);	/* 2^64-1 is not -1 */
	EXPECT_EQ(NULL, nil);
	EXPECT_EQ(s, s);
	EXPECT_TRUE(half);
}

/* Each operand is evaluated once; the trailing statement runs only on
 * failure. */
TEST(assertions_evaluate_once)
{
	int n = 0, trailing = 0;

	ASSERT_EQ(1, ++n) trailing++;
	EXPECT_EQ(1, n);
	EXPECT_TRUE(++n == 2) trailing++;
	EXPECT_EQ(2, n);
	EXPECT_EQ(0, trailing);
}

FIXTURE(counter) {
	int value;
	int set_up;
};

FIXTURE_VARIANT(counter) {
	int start;
};

FIXTURE_VARIANT_ADD(counter, one) {
	.start = 1,
};

FIXTURE_VARIANT_ADD(counter, ten) {
	.start = 10,
};

FIXTURE_SETUP(counter)
{
	ASSERT_NONNULL(variant);
	ASSERT_EQ(0, self->value);	/* self starts zeroed */
	self->value = variant->start;
	self->set_up = 1;
}

FIXTURE_TEARDOWN(counter)
{
	EXPECT_EQ(1, self->set_up);
}

TEST_F(counter, starts_at_variant)
{
	ASSERT_EQ(1, self->set_up);
	ASSERT_EQ(variant->start, self->value);
	ASSERT_TRUE(variant->start == 1 || variant->start == 10);
}

/* A fixture without variants, setup or teardown. */
FIXTURE(bare) {
	int untouched;
};

TEST_F(bare, zeroed)
{
	ASSERT_NULL(variant);
	ASSERT_EQ(0, self->untouched);
}

/* ------------------------------------------------------------------ */
/* Victims: registered only under KGO_HARNESS_VICTIMS=1                */
/* ------------------------------------------------------------------ */

/*
 * VICTIM(name, timeout, signo): as TEST_TIMEOUT/TEST_SIGNAL, registered
 * only when the variable is set. Uses the harness's registration directly,
 * which only this file should do. Every victim is also kept in victims[],
 * for run_self()'s fallback below.
 */
static struct __th_test *victims[32];
static int nvictims;

static void victim_add(struct __th_test *t)
{
	const char *v = getenv("KGO_HARNESS_VICTIMS");

	if (nvictims < (int)(sizeof(victims) / sizeof(victims[0])))
		victims[nvictims++] = t;
	if (v && !strcmp(v, "1"))
		__th_register_test(t);
}

#define VICTIM(test_name, timeout_s, signo)				\
	static void test_name(struct __test_metadata *, void *,		\
			      const void *);				\
	static struct __th_test __victim_##test_name = {		\
		.name = #test_name,					\
		.file = __FILE__,					\
		.line = __LINE__,					\
		.fn = test_name,					\
		.timeout = timeout_s,					\
		.signal = signo,					\
	};								\
	static void __attribute__((constructor))			\
	__victim_reg_##test_name(void)					\
	{								\
		victim_add(&__victim_##test_name);			\
	}								\
	static void test_name(struct __test_metadata *_metadata __th_unused, \
			      void *self __th_unused,			\
			      const void *variant __th_unused)

VICTIM(victim_pass, 30, 0)
{
	ASSERT_TRUE(1);
}

VICTIM(victim_expect, 30, 0)
{
	int four = 4;

	EXPECT_EQ(3, four);
	EXPECT_STREQ("a", "b");
	TH_LOG("still running after EXPECT");
}

VICTIM(victim_assert, 30, 0)
{
	int four = 4;

	ASSERT_EQ(3, four) TH_LOG("trailing statement ran");
	TH_LOG("not reached after ASSERT");
}

VICTIM(victim_skip, 30, 0)
{
	SKIP(return, "no widget %d", 42);
	TH_LOG("not reached after SKIP");
}

VICTIM(victim_expect_then_skip, 30, 0)
{
	EXPECT_EQ(1, 2);
	SKIP(return, "skipping after a failure");
}

/*
 * Sleeps past its 1 s timeout, leaving a helper process in its group;
 * the harness must kill both.
 */
VICTIM(victim_timeout, 1, 0)
{
	pid_t helper = fork();

	if (helper == 0) {
		sleep(60);
		_exit(0);
	}
	TH_LOG("helper pid %d", (int)helper);
	sleep(60);
}

VICTIM(victim_crash, 30, 0)
{
	struct rlimit no_core = { 0, 0 };

	setrlimit(RLIMIT_CORE, &no_core);
	raise(SIGSEGV);
	TH_LOG("not reached after SIGSEGV");
}

VICTIM(victim_signal, 30, SIGABRT)
{
	struct rlimit no_core = { 0, 0 };

	setrlimit(RLIMIT_CORE, &no_core);
	abort();
}

VICTIM(victim_signal_missing, 30, SIGABRT)
{
}

VICTIM(victim_exit, 30, 0)
{
	exit(3);
}

/* An ASSERT on another thread (as in a G) ends the test at once. */
static void *assert_on_thread(void *arg)
{
	ASSERT_EQ(1, *(int *)arg);
	return NULL;
}

VICTIM(victim_thread_assert, 30, 0)
{
	pthread_t th;
	int two = 2;

	pthread_create(&th, NULL, assert_on_thread, &two);
	sleep(60);
	TH_LOG("not reached after the thread's ASSERT");
}

/*
 * A fixture whose teardown must run after a failed ASSERT, with its test
 * registered as the victims are (VICTIM_F mirrors TEST_F).
 */
#define VICTIM_F(fix, test_name)					\
	static void __victim_f_##test_name(struct __test_metadata *,	\
					   FIXTURE_DATA(fix) *,		\
					   const FIXTURE_VARIANT(fix) *); \
	static void __victim_ft_##test_name(struct __test_metadata *m,	\
					    void *s, const void *v)	\
	{								\
		__victim_f_##test_name(m, s, v);			\
	}								\
	static struct __th_test __victim_##test_name = {		\
		.name = #test_name,					\
		.file = __FILE__,					\
		.line = __LINE__,					\
		.fixture = &__th_fixture_##fix,				\
		.self_size = sizeof(FIXTURE_DATA(fix)),			\
		.fn = __victim_ft_##test_name,				\
		.timeout = 30,						\
	};								\
	static void __attribute__((constructor))			\
	__victim_reg_##test_name(void)					\
	{								\
		victim_add(&__victim_##test_name);			\
	}								\
	static void __victim_f_##test_name(				\
		struct __test_metadata *_metadata __th_unused,		\
		FIXTURE_DATA(fix) *self __th_unused,			\
		const FIXTURE_VARIANT(fix) *variant __th_unused)

FIXTURE(victim_fix) {
	int dummy;
};

FIXTURE_TEARDOWN(victim_fix)
{
	TH_LOG("teardown ran");
}

VICTIM_F(victim_fix, fails)
{
	ASSERT_EQ(1, 0);
}

/* ------------------------------------------------------------------ */
/* Running this binary with victims                                   */
/* ------------------------------------------------------------------ */

struct run {
	int status;		/* exit status, or -1 when it did not exit */
	double secs;
	char out[16384];	/* stdout and stderr */
};

static void __attribute__((noreturn)) run_in_process(int argc,
						      const char **argv)
{
	int i;

	for (i = 0; i < nvictims; i++)
		__th_register_test(victims[i]);
	optind = 1;
	_exit(test_harness_run(argc, (char **)argv));
}

/*
 * run_self() - run this binary with the victims and the given arguments
 * (NULL-terminated), timeouts unscaled unless @scale says otherwise, and
 * collect its output. Gives up after 30 s.
 */
static void run_self(struct run *r, const char *scale, ...)
{
	const char *argv[16] = { "/proc/self/exe" };
	double start = __th_now();
	size_t len = 0;
	int pfd[2], n = 1, wst;
	va_list ap;
	pid_t pid;

	va_start(ap, scale);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	argv[n] = NULL;
	va_end(ap);

	memset(r, 0, sizeof(*r));
	r->status = -1;
	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		dup2(pfd[1], STDERR_FILENO);
		setenv("KGO_HARNESS_VICTIMS", "1", 1);
		setenv("KGO_TEST_TIMEOUT_SCALE", scale, 1);
		/* Under a sanitizer, let victim_crash die of its SIGSEGV. */
		setenv("ASAN_OPTIONS", "handle_segv=0", 1);
		setenv("TSAN_OPTIONS", "handle_segv=0", 1);
		execv(argv[0], (char *const *)argv);
		/*
		 * No exec of ourselves (qemu-user without binfmt_misc): run
		 * the harness in this forked copy instead, as the exec'd
		 * binary would, with the victims registered.
		 */
		run_in_process(n, argv);
	}
	close(pfd[1]);
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		double left = start + 30 - __th_now();
		ssize_t got;

		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			break;
		got = read(pfd[0], r->out + len, sizeof(r->out) - 1 - len);
		if (got <= 0)
			break;
		len += got;
	}
	close(pfd[0]);
	if (__th_now() - start >= 30) {
		TH_LOG("run_self: no end of output after 30 s: killing it");
		kill(pid, SIGKILL);
	}
	if (waitpid(pid, &wst, 0) == pid && WIFEXITED(wst))
		r->status = WEXITSTATUS(wst);
	r->secs = __th_now() - start;
	r->out[len] = '\0';
}

/* has_line() - the output has a line that starts with @prefix. */
static bool has_line(const struct run *r, const char *prefix)
{
	const char *p = r->out;
	size_t n = strlen(prefix);

	while (p && *p) {
		if (!strncmp(p, prefix, n))
			return true;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

static bool has(const struct run *r, const char *needle)
{
	return strstr(r->out, needle) != NULL;
}

/* Print the victim's output when a check fails, to see why. */
#define SHOW(r)	TH_LOG("victim output:\n%s", (r)->out)

TEST(victims_hidden)
{
	struct run r;

	/* Listing with the victims shows them... */
	run_self(&r, "1", "-l", NULL);
	ASSERT_EQ(0, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "victim_timeout\n")) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "victim_fix.fails\n")) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "counter.one.starts_at_variant\n")) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "counter.ten.starts_at_variant\n")) SHOW(&r);
	/* ... and -t with a name that matches nothing is an error. */
	run_self(&r, "1", "-t", "no_such_test", NULL);
	ASSERT_EQ(KSFT_FAIL, r.status) SHOW(&r);
	ASSERT_TRUE(has(&r, "no test matches")) SHOW(&r);
}

TEST(pass_exits_0)
{
	struct run r;

	run_self(&r, "1", "-t", "victim_pass", NULL);
	ASSERT_EQ(KSFT_PASS, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "TAP version 13\n")) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "1..1\n")) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "ok 1 victim_pass\n")) SHOW(&r);
}

TEST(expect_fails_and_goes_on)
{
	struct run r;

	run_self(&r, "1", "-t", "victim_expect", NULL);
	ASSERT_EQ(KSFT_FAIL, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "not ok 1 victim_expect\n")) SHOW(&r);
	/* file:line, expressions and both values */
	ASSERT_TRUE(has(&r, "harness_test.c:")) SHOW(&r);
	ASSERT_TRUE(has(&r, "Expected 3 (3) == four (4)")) SHOW(&r);
	ASSERT_TRUE(has(&r, "\"a\" == \"b\" \"b\"")) SHOW(&r);
	ASSERT_TRUE(has(&r, "still running after EXPECT")) SHOW(&r);
}

TEST(assert_stops)
{
	struct run r;

	run_self(&r, "1", "-t", "victim_assert", NULL);
	ASSERT_EQ(KSFT_FAIL, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "not ok 1 victim_assert\n")) SHOW(&r);
	ASSERT_TRUE(has(&r, "Expected 3 (3) == four (4)")) SHOW(&r);
	ASSERT_TRUE(has(&r, "trailing statement ran")) SHOW(&r);
	ASSERT_FALSE(has(&r, "not reached")) SHOW(&r);
}

TEST(skip_reported)
{
	struct run r;

	/* Every test skipped: exit 4. */
	run_self(&r, "1", "-t", "victim_skip", NULL);
	ASSERT_EQ(KSFT_SKIP, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "ok 1 victim_skip # SKIP no widget 42\n")) SHOW(&r);
	ASSERT_FALSE(has(&r, "not reached")) SHOW(&r);

	/* A skip beside a pass: exit 0. */
	run_self(&r, "1", "-t", "victim_skip", "-t", "victim_pass", NULL);
	ASSERT_EQ(KSFT_PASS, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "1..2\n")) SHOW(&r);

	/* A failure before a skip wins. */
	run_self(&r, "1", "-t", "victim_expect_then_skip", NULL);
	ASSERT_EQ(KSFT_FAIL, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "not ok 1 victim_expect_then_skip\n")) SHOW(&r);
}

/* wait_gone() - true once @pid no longer runs (gone, or a zombie). */
static bool wait_gone(pid_t pid)
{
	char path[64], buf[256], *p;
	int i, fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (i = 0; i < 200; i++) {
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return true;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			return true;
		buf[n] = '\0';
		p = strrchr(buf, ')');
		if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
			return true;
		usleep(10000);
	}
	return false;
}

TEST(timeout_kills_group)
{
	struct run r;
	const char *h;
	int helper;

	run_self(&r, "1", "-t", "victim_timeout", NULL);
	ASSERT_EQ(KSFT_FAIL, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "not ok 1 victim_timeout\n")) SHOW(&r);
	ASSERT_TRUE(has(&r, "victim_timeout: timeout after 1 s")) SHOW(&r);
	ASSERT_LT(r.secs, 10.0) SHOW(&r);
	h = strstr(r.out, "helper pid ");
	ASSERT_NONNULL(h) SHOW(&r);
	helper = atoi(h + strlen("helper pid "));
	ASSERT_LT(1, helper);
	EXPECT_TRUE(wait_gone(helper)) TH_LOG("helper %d outlived the test", helper);

	/* KGO_TEST_TIMEOUT_SCALE stretches it. */
	run_self(&r, "2", "-t", "victim_timeout", NULL);
	ASSERT_EQ(KSFT_FAIL, r.status) SHOW(&r);
	ASSERT_TRUE(has(&r, "victim_timeout: timeout after 2 s")) SHOW(&r);
	ASSERT_GE(r.secs, 1.9) SHOW(&r);
}

TEST(crash_reported)
{
	struct run r;

	run_self(&r, "1", "-t", "victim_crash", NULL);
	ASSERT_EQ(KSFT_FAIL, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "not ok 1 victim_crash\n")) SHOW(&r);
	ASSERT_TRUE(has(&r, "victim_crash: killed by signal 11 (SIGSEGV")) SHOW(&r);
	ASSERT_FALSE(has(&r, "not reached")) SHOW(&r);
}

TEST(expected_signal)
{
	struct run r;

	run_self(&r, "1", "-t", "victim_signal", NULL);
	ASSERT_EQ(KSFT_PASS, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "ok 1 victim_signal\n")) SHOW(&r);

	run_self(&r, "1", "-t", "victim_signal_missing", NULL);
	ASSERT_EQ(KSFT_FAIL, r.status) SHOW(&r);
	ASSERT_TRUE(has(&r, "expected signal 6 (SIGABRT)")) SHOW(&r);
}

TEST(exit_status_reported)
{
	struct run r;

	run_self(&r, "1", "-t", "victim_exit", NULL);
	ASSERT_EQ(KSFT_FAIL, r.status) SHOW(&r);
	ASSERT_TRUE(has(&r, "victim_exit: exited with status 3")) SHOW(&r);
}

TEST(thread_assert_ends_test)
{
	struct run r;

	run_self(&r, "1", "-t", "victim_thread_assert", NULL);
	ASSERT_EQ(KSFT_FAIL, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "not ok 1 victim_thread_assert\n")) SHOW(&r);
	ASSERT_TRUE(has(&r, "Expected 1 (1) == *(int *)arg (2)")) SHOW(&r);
	ASSERT_FALSE(has(&r, "not reached")) SHOW(&r);
	ASSERT_LT(r.secs, 10.0) SHOW(&r);
}

TEST(teardown_after_assert)
{
	struct run r;

	run_self(&r, "1", "-t", "victim_fix.fails", NULL);
	ASSERT_EQ(KSFT_FAIL, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "not ok 1 victim_fix.fails\n")) SHOW(&r);
	ASSERT_TRUE(has(&r, "teardown ran")) SHOW(&r);
}

/* All victims at once: the plan and the counts add up. */
TEST(victims_all)
{
	struct run r;

	run_self(&r, "1", "-t", "victim_*", NULL);
	ASSERT_EQ(KSFT_FAIL, r.status) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "1..12\n")) SHOW(&r);
	ASSERT_TRUE(has_line(&r, "# Totals: pass:2 fail:9 skip:1\n")) SHOW(&r);
}

TEST_HARNESS_MAIN
