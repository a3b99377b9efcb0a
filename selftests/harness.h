/* SPDX-License-Identifier: MIT */
/*
 * harness.h - kgo's kselftest-style test harness, in one header.
 *
 * The names are those of the kernel's selftest harness, so a kernel
 * developer reads our tests without a manual; the code is our own.
 *
 *	#include "harness.h"
 *
 *	TEST(chan_make)
 *	{
 *		struct kgo_chan *c = kgo_chan_make(sizeof(int), 0);
 *
 *		ASSERT_NONNULL(c);
 *		EXPECT_EQ(0, kgo_chan_cap(c));
 *	}
 *
 *	FIXTURE(ring) { int fd; };
 *	FIXTURE_VARIANT(ring) { unsigned int entries; };
 *	FIXTURE_VARIANT_ADD(ring, small) { .entries = 8 };
 *	FIXTURE_VARIANT_ADD(ring, big) { .entries = 4096 };
 *	FIXTURE_SETUP(ring) { self->fd = -1; ... variant->entries ... }
 *	FIXTURE_TEARDOWN(ring) { if (self->fd >= 0) close(self->fd); }
 *	TEST_F(ring, submit) { ... }	    (runs as ring.small.submit and
 *					     ring.big.submit)
 *	TEST_TIMEOUT(soak, 120) { ... }	    (a test allowed 120 s;
 *					     TEST_F_TIMEOUT(fixture, name, s))
 *	TEST_SIGNAL(wg_negative, SIGABRT)   (passes only if killed by it)
 *
 *	TEST_HARNESS_MAIN
 *
 * How a test runs. The harness process forks one child per test; the
 * child makes itself the leader of a new process group and runs the
 * test (fixture setup, body, teardown), so that whatever the test starts
 * (threads, helper processes) is killed with it. The parent waits at
 * most the test's timeout (30 s unless TEST_TIMEOUT/TEST_F_TIMEOUT says
 * otherwise), multiplied by KGO_TEST_TIMEOUT_SCALE (a number, may be
 * fractional; e.g. 10 under qemu or sanitizers). On timeout it kills the
 * whole group and fails the test with "timeout after N s"; a test killed
 * by a signal fails and the signal is named. Results travel back in a
 * shared page, so a child that crashes after an EXPECT failure is still
 * reported with both.
 *
 * Assertions. ASSERT_* stop the test at the first failure; EXPECT_*
 * record it and go on. Both print file:line, the expressions and both
 * values. Values are compared as numbers, not as C's usual conversions
 * would: ASSERT_LT(-1, sizeof(x)) holds. A statement may follow an
 * assertion; it runs only when the assertion fails, before the test
 * stops:
 *
 *	ASSERT_EQ(0, ret) TH_LOG("open %s: %s", path, strerror(-ret));
 *
 * Assertions work anywhere in the test's process: in helpers and in Gs
 * running on other threads or other stacks. When an ASSERT fails, the
 * fixture's teardown runs on the failing thread and the test process
 * exits at once; a teardown must therefore cope with a partial setup
 * (self starts zeroed) and with being called while Gs still run.
 *
 * SKIP(statement, fmt, ...) marks the test skipped with a reason, then
 * runs statement (usually `return`). A skip in FIXTURE_SETUP skips the
 * test body. A failure recorded before or after a skip wins.
 *
 * Output is TAP 13 on stdout ("ok 3 name # SKIP reason"); diagnostics
 * start with "# " (the tests' own on stderr). Exit status: 0 when no test
 * failed, 1 when one did, 4 when every test was skipped.
 *
 * Command line: -l lists the tests; -t NAME (repeatable) runs only the
 * tests whose full name (fixture.variant.test) or own name is NAME, or
 * matches NAME as a shell glob; -h helps.
 */
#ifndef KGO_SELFTEST_HARNESS_H
#define KGO_SELFTEST_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* kselftest's exit codes. */
#define KSFT_PASS	0
#define KSFT_FAIL	1
#define KSFT_SKIP	4

#define TH_DEFAULT_TIMEOUT	30	/* seconds, before scaling */

#define __th_unused	__attribute__((unused))

/* ------------------------------------------------------------------ */
/* Registration                                                       */
/* ------------------------------------------------------------------ */

struct __test_metadata;

struct __th_variant {
	const char *name;
	const void *data;
	int line;			/* source order */
	struct __th_variant *next;
};

struct __th_fixture {
	const char *name;
	struct __th_variant *variants;	/* NULL: no FIXTURE_VARIANT_ADD */
	void (*setup)(struct __test_metadata *, void *self, const void *variant);
	void (*teardown)(struct __test_metadata *, void *self,
			 const void *variant);
};

struct __th_test {
	const char *name;
	const char *file;
	int line;			/* source order */
	struct __th_fixture *fixture;	/* NULL for TEST() */
	size_t self_size;		/* sizeof the fixture's data */
	void (*fn)(struct __test_metadata *, void *self, const void *variant);
	int timeout;			/* seconds, before scaling */
	int signal;			/* TEST_SIGNAL: the expected signal */
	struct __th_test *next;
};

/*
 * The shared page: written by the test's process (possibly by several of
 * its threads at once, hence the atomics), read by the harness after the
 * test's process is gone.
 */
struct __th_result {
	int failed;			/* an EXPECT or ASSERT failed */
	int skipped;			/* SKIP() was called */
	char skip_reason[256];
};

/*
 * What a running test knows about itself. Lives in the test's process;
 * _metadata is passed to test bodies as in the kernel's harness, and the
 * assertion macros find it through the file-scope __th_cur, so they also
 * work in helpers and Gs that never see it (__th_meta() returns it).
 */
struct __test_metadata {
	const char *name;		/* full name, as printed */
	const struct __th_test *test;
	const struct __th_variant *variant;
	void *self;			/* fixture data, for a bailing ASSERT */
	pid_t pid;			/* the test's process, not a helper */
	int teardown_state;		/* 0 not run, 1 running or done */
	struct __th_result *res;
};

static struct __th_test *__th_tests;
static struct __th_test **__th_tests_tail = &__th_tests;
static struct __test_metadata *__th_cur;
static int __th_bailing;
static pid_t __th_child;		/* the running test's pid, in the parent */

static inline struct __test_metadata *__th_meta(void)
{
	return __th_cur;
}

static inline void __th_register_test(struct __th_test *t)
{
	*__th_tests_tail = t;
	__th_tests_tail = &t->next;
}

static inline void __th_register_variant(struct __th_fixture *f,
					 struct __th_variant *v)
{
	struct __th_variant **pp = &f->variants;

	/* Keep source order whatever the order of the constructors. */
	while (*pp && (*pp)->line < v->line)
		pp = &(*pp)->next;
	v->next = *pp;
	*pp = v;
}

#define __TH_TEST(test_name, timeout_s, sig)				\
	static void __th_fn_##test_name(struct __test_metadata *,	\
					void *, const void *);		\
	static struct __th_test __th_obj_##test_name = {		\
		.name = #test_name,					\
		.file = __FILE__,					\
		.line = __LINE__,					\
		.fn = __th_fn_##test_name,				\
		.timeout = timeout_s,					\
		.signal = sig,						\
	};								\
	static void __attribute__((constructor))			\
	__th_reg_##test_name(void)					\
	{								\
		__th_register_test(&__th_obj_##test_name);		\
	}								\
	static void __th_fn_##test_name(				\
		struct __test_metadata *_metadata __th_unused,		\
		void *self __th_unused,					\
		const void *variant __th_unused)

/* TEST(name) { body } - a test without a fixture. */
#define TEST(name)			__TH_TEST(name, TH_DEFAULT_TIMEOUT, 0)
/* TEST_TIMEOUT(name, seconds) - a test that may run longer (or shorter). */
#define TEST_TIMEOUT(name, seconds)	__TH_TEST(name, seconds, 0)
/* TEST_SIGNAL(name, signo) - passes only when the test dies of signo. */
#define TEST_SIGNAL(name, signo)	__TH_TEST(name, TH_DEFAULT_TIMEOUT, signo)

/*
 * FIXTURE(name) { members }; - the data each TEST_F gets as `self`,
 * zeroed before FIXTURE_SETUP runs.
 */
#define FIXTURE_DATA(name)	struct __th_data_##name
#define FIXTURE(fix)							\
	FIXTURE_VARIANT(fix);						\
	static struct __th_fixture __th_fixture_##fix = {		\
		.name = #fix,						\
	};								\
	FIXTURE_DATA(fix)

/* FIXTURE_VARIANT(name) { members }; - parameters of a fixture. */
#define FIXTURE_VARIANT(name)	struct __th_variant_##name

/*
 * FIXTURE_VARIANT_ADD(fixture, variant) { .member = value, }; - each
 * TEST_F of the fixture runs once per variant added.
 */
#define FIXTURE_VARIANT_ADD(fix, vname)					\
	static const FIXTURE_VARIANT(fix) __th_vdata_##fix##_##vname;	\
	static struct __th_variant __th_vobj_##fix##_##vname = {	\
		.name = #vname,						\
		.data = &__th_vdata_##fix##_##vname,			\
		.line = __LINE__,					\
	};								\
	static void __attribute__((constructor))			\
	__th_vreg_##fix##_##vname(void)					\
	{								\
		__th_register_variant(&__th_fixture_##fix,		\
				      &__th_vobj_##fix##_##vname);	\
	}								\
	static const FIXTURE_VARIANT(fix) __th_vdata_##fix##_##vname =

/*
 * FIXTURE_SETUP(name) { body } and FIXTURE_TEARDOWN(name) { body }: both
 * optional; they see `self` and `variant` (NULL without variants).
 */
#define __TH_FIXTURE_HOOK(fix, hook)					\
	static void __th_##hook##_##fix(struct __test_metadata *_metadata, \
					FIXTURE_DATA(fix) *self,	\
					const FIXTURE_VARIANT(fix) *variant); \
	static void __th_##hook##_tramp_##fix(struct __test_metadata *m, \
					      void *s, const void *v)	\
	{								\
		__th_##hook##_##fix(m, s, v);				\
	}								\
	static void __attribute__((constructor))			\
	__th_##hook##_reg_##fix(void)					\
	{								\
		__th_fixture_##fix.hook = __th_##hook##_tramp_##fix;	\
	}								\
	static void __th_##hook##_##fix(				\
		struct __test_metadata *_metadata __th_unused,		\
		FIXTURE_DATA(fix) *self __th_unused,			\
		const FIXTURE_VARIANT(fix) *variant __th_unused)

#define FIXTURE_SETUP(fix)	__TH_FIXTURE_HOOK(fix, setup)
#define FIXTURE_TEARDOWN(fix)	__TH_FIXTURE_HOOK(fix, teardown)

#define __TH_TEST_F(fix, test_name, timeout_s)				\
	static void __th_tf_##fix##_##test_name(			\
		struct __test_metadata *_metadata,			\
		FIXTURE_DATA(fix) *self,				\
		const FIXTURE_VARIANT(fix) *variant);			\
	static void __th_tft_##fix##_##test_name(			\
		struct __test_metadata *m, void *s, const void *v)	\
	{								\
		__th_tf_##fix##_##test_name(m, s, v);			\
	}								\
	static struct __th_test __th_tfobj_##fix##_##test_name = {	\
		.name = #test_name,					\
		.file = __FILE__,					\
		.line = __LINE__,					\
		.fixture = &__th_fixture_##fix,				\
		.self_size = sizeof(FIXTURE_DATA(fix)),			\
		.fn = __th_tft_##fix##_##test_name,			\
		.timeout = timeout_s,					\
	};								\
	static void __attribute__((constructor))			\
	__th_tfreg_##fix##_##test_name(void)				\
	{								\
		__th_register_test(&__th_tfobj_##fix##_##test_name);	\
	}								\
	static void __th_tf_##fix##_##test_name(			\
		struct __test_metadata *_metadata __th_unused,		\
		FIXTURE_DATA(fix) *self __th_unused,			\
		const FIXTURE_VARIANT(fix) *variant __th_unused)

/* TEST_F(fixture, name) { body } - a test with a fixture's self/variant. */
#define TEST_F(fix, name)		__TH_TEST_F(fix, name, TH_DEFAULT_TIMEOUT)
#define TEST_F_TIMEOUT(fix, name, seconds) __TH_TEST_F(fix, name, seconds)

/* ------------------------------------------------------------------ */
/* Logging, skipping, failing                                         */
/* ------------------------------------------------------------------ */

/*
 * Diagnostics of a running test go to stderr, every line prefixed with
 * "# " (so that a message never passes for a TAP line), in one write(2)
 * so that lines from several threads do not interleave, and never through
 * stdio buffers that an exiting test would lose.
 */
static void __th_unused __attribute__((format(printf, 1, 2)))
__th_diag(const char *fmt, ...)
{
	char small[1024], *msg = small, *out, *o;
	const char *m;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n >= (int)sizeof(small)) {
		msg = malloc(n + 1);
		if (!msg) {
			msg = small;
		} else {
			va_start(ap, fmt);
			vsnprintf(msg, n + 1, fmt, ap);
			va_end(ap);
		}
	}
	/* Worst case: every character a newline that gains "# ". */
	out = malloc(3 * strlen(msg) + 4);
	if (out) {
		o = out;
		*o++ = '#';
		*o++ = ' ';
		for (m = msg; *m; m++) {
			*o++ = *m;
			if (*m == '\n' && m[1]) {
				*o++ = '#';
				*o++ = ' ';
			}
		}
		if (o[-1] != '\n')
			*o++ = '\n';
		if (write(STDERR_FILENO, out, o - out) < 0)
			o = out;
		free(out);
	}
	if (msg != small)
		free(msg);
}

static inline const char *__th_base(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static inline const char *__th_cur_name(void)
{
	return __th_cur ? __th_cur->name : "?";
}

/* TH_LOG(fmt, ...) - a diagnostic line naming where it comes from. */
#define TH_LOG(fmt, ...)						\
	__th_diag("%s:%d:%s: " fmt, __th_base(__FILE__), __LINE__,	\
		  __th_cur_name(), ##__VA_ARGS__)

static inline void __th_set_failed(void)
{
	if (__th_cur)
		__atomic_store_n(&__th_cur->res->failed, 1, __ATOMIC_SEQ_CST);
}

/*
 * __th_bail() - end the test after a failed ASSERT: run the fixture's
 * teardown once (on whichever thread failed), then leave the process.
 * A second thread failing meanwhile waits for the first to finish.
 */
static void __th_unused __attribute__((noreturn)) __th_bail(void)
{
	struct __test_metadata *m = __th_cur;

	if (__atomic_exchange_n(&__th_bailing, 1, __ATOMIC_SEQ_CST)) {
		for (;;)
			pause();
	}
	if (m && m->test->fixture && m->test->fixture->teardown &&
	    m->self && !m->teardown_state && m->pid == getpid()) {
		m->teardown_state = 1;
		m->test->fixture->teardown(m, m->self,
					   m->variant ? m->variant->data : NULL);
	}
	fflush(stdout);
	_exit(KSFT_FAIL);
}

static void __th_unused __attribute__((format(printf, 3, 4)))
__th_skip(const char *file, int line, const char *fmt, ...)
{
	struct __th_result *r = __th_cur ? __th_cur->res : NULL;
	char reason[sizeof(r->skip_reason)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	__th_diag("%s:%d:%s: SKIP %s", __th_base(file), line,
		  __th_cur_name(), reason);
	if (!r)
		return;
	if (!__atomic_exchange_n(&r->skipped, 1, __ATOMIC_SEQ_CST))
		memcpy(r->skip_reason, reason, sizeof(reason));
}

/* SKIP(statement, fmt, ...) - skip the test, then run statement. */
#define SKIP(statement, fmt, ...)					\
	if (1) {							\
		__th_skip(__FILE__, __LINE__, fmt, ##__VA_ARGS__);	\
		statement;						\
	} else								\
		((void)0)

/* ------------------------------------------------------------------ */
/* Assertions                                                         */
/* ------------------------------------------------------------------ */

/*
 * A value under test, kept in its own kind so that comparisons are the
 * mathematical ones (a negative signed value is less than any unsigned
 * one) and printing shows it as it is.
 */
enum { __TH_S, __TH_U, __TH_F, __TH_P };

struct __th_val {
	int kind;
	long long s;
	unsigned long long u;
	long double f;
	const volatile void *p;
};

static inline struct __th_val __th_v_s(long long v)
{
	return (struct __th_val){ .kind = __TH_S, .s = v };
}

static inline struct __th_val __th_v_u(unsigned long long v)
{
	return (struct __th_val){ .kind = __TH_U, .u = v };
}

static inline struct __th_val __th_v_f(long double v)
{
	return (struct __th_val){ .kind = __TH_F, .f = v };
}

static inline struct __th_val __th_v_p(const volatile void *v)
{
	return (struct __th_val){ .kind = __TH_P, .p = v };
}

/* Pointers (and anything not listed) fall to the default branch. */
#define __th_val(x) _Generic((x),					\
	_Bool: __th_v_u,						\
	char: __th_v_s,							\
	signed char: __th_v_s,						\
	short: __th_v_s,						\
	int: __th_v_s,							\
	long: __th_v_s,							\
	long long: __th_v_s,						\
	unsigned char: __th_v_u,					\
	unsigned short: __th_v_u,					\
	unsigned int: __th_v_u,						\
	unsigned long: __th_v_u,					\
	unsigned long long: __th_v_u,					\
	float: __th_v_f,						\
	double: __th_v_f,						\
	long double: __th_v_f,						\
	default: __th_v_p)(x)

static inline long double __th_ld(struct __th_val v)
{
	switch (v.kind) {
	case __TH_S: return v.s;
	case __TH_U: return v.u;
	case __TH_F: return v.f;
	default:     return (uintptr_t)v.p;
	}
}

/* __th_cmp() - a <=> b as -1, 0, 1; 2 when unordered (NaN). */
static inline int __th_cmp(struct __th_val a, struct __th_val b)
{
	if (a.kind == __TH_F || b.kind == __TH_F) {
		long double fa = __th_ld(a), fb = __th_ld(b);

		if (fa != fa || fb != fb)
			return 2;
		return fa < fb ? -1 : fa > fb;
	}
	if (a.kind == __TH_P)
		a = __th_v_u((uintptr_t)a.p);
	if (b.kind == __TH_P)
		b = __th_v_u((uintptr_t)b.p);
	if (a.kind == __TH_S && b.kind == __TH_S)
		return a.s < b.s ? -1 : a.s > b.s;
	if (a.kind == __TH_S) {
		if (a.s < 0)
			return -1;
		a = __th_v_u(a.s);
	}
	if (b.kind == __TH_S) {
		if (b.s < 0)
			return 1;
		b = __th_v_u(b.s);
	}
	return a.u < b.u ? -1 : a.u > b.u;
}

static inline const char *__th_fmt(char *buf, size_t size, struct __th_val v)
{
	switch (v.kind) {
	case __TH_S:
		snprintf(buf, size, "%lld", v.s);
		break;
	case __TH_U:
		if (v.u > 0xffff)
			snprintf(buf, size, "%llu (%#llx)", v.u, v.u);
		else
			snprintf(buf, size, "%llu", v.u);
		break;
	case __TH_F:
		snprintf(buf, size, "%Lg", v.f);
		break;
	default:
		if (v.p)
			snprintf(buf, size, "%p", (const void *)v.p);
		else
			snprintf(buf, size, "NULL");
	}
	return buf;
}

enum { __TH_EQ, __TH_NE, __TH_LT, __TH_LE, __TH_GT, __TH_GE };

/*
 * __th_check() - compare, and on failure say so and record it.
 * Return: true when the assertion failed.
 */
static inline bool __th_check(const char *file, int line, int op,
			      const char *es, struct __th_val e,
			      const char *ss, struct __th_val s)
{
	static const char *const opstr[] = { "==", "!=", "<", "<=", ">", ">=" };
	char eb[64], sb[64];
	int c = __th_cmp(e, s);
	bool ok;

	switch (op) {
	case __TH_EQ: ok = c == 0; break;
	case __TH_NE: ok = c != 0; break;
	case __TH_LT: ok = c == -1; break;
	case __TH_LE: ok = c == -1 || c == 0; break;
	case __TH_GT: ok = c == 1; break;
	default:      ok = c == 1 || c == 0; break;
	}
	if (ok)
		return false;
	__th_diag("%s:%d:%s: Expected %s (%s) %s %s (%s)", __th_base(file),
		  line, __th_cur_name(), es, __th_fmt(eb, sizeof(eb), e),
		  opstr[op], ss, __th_fmt(sb, sizeof(sb), s));
	__th_set_failed();
	return true;
}

/* __th_check_bool() - x must be true (want) or false/NULL (!want). */
static inline bool __th_check_bool(const char *file, int line, bool want,
				   const char *what, const char *xs,
				   struct __th_val x)
{
	struct __th_val zero = __th_v_s(0);
	char xb[64];

	if ((__th_cmp(x, zero) != 0) == want)
		return false;
	__th_diag("%s:%d:%s: Expected %s (%s) %s", __th_base(file), line,
		  __th_cur_name(), xs, __th_fmt(xb, sizeof(xb), x), what);
	__th_set_failed();
	return true;
}

static inline bool __th_check_str(const char *file, int line, bool eq,
				  const char *es, const char *e,
				  const char *ss, const char *s)
{
	bool same = (e && s) ? strcmp(e, s) == 0 : e == s;

	if (same == eq)
		return false;
	__th_diag("%s:%d:%s: Expected %s \"%s\" %s %s \"%s\"",
		  __th_base(file), line, __th_cur_name(), es,
		  e ? e : "(null)", eq ? "==" : "!=", ss, s ? s : "(null)");
	__th_set_failed();
	return true;
}

/*
 * __th_done() - after a failed assertion and its optional statement:
 * an ASSERT ends the test; an EXPECT returns 0 to end the loop below.
 */
static inline int __th_done(bool is_assert)
{
	if (is_assert)
		__th_bail();
	return 0;
}

/*
 * The for loop runs the statement that follows the macro (or the empty
 * statement `;`) only when the check failed, then ends the test or goes
 * on. Each operand is evaluated exactly once.
 */
#define __TH_CMP(is_assert, op, exp, seen)				\
	for (int __th_trig = __th_check(__FILE__, __LINE__, op,		\
					#exp, __th_val(exp),		\
					#seen, __th_val(seen));		\
	     __th_trig; __th_trig = __th_done(is_assert))

#define __TH_BOOL(is_assert, want, what, x)				\
	for (int __th_trig = __th_check_bool(__FILE__, __LINE__, want,	\
					     what, #x, __th_val(x));	\
	     __th_trig; __th_trig = __th_done(is_assert))

#define __TH_STR(is_assert, eq, exp, seen)				\
	for (int __th_trig = __th_check_str(__FILE__, __LINE__, eq,	\
					    #exp, (exp), #seen, (seen)); \
	     __th_trig; __th_trig = __th_done(is_assert))

#define ASSERT_EQ(expected, seen)	__TH_CMP(1, __TH_EQ, expected, seen)
#define ASSERT_NE(expected, seen)	__TH_CMP(1, __TH_NE, expected, seen)
#define ASSERT_LT(expected, seen)	__TH_CMP(1, __TH_LT, expected, seen)
#define ASSERT_LE(expected, seen)	__TH_CMP(1, __TH_LE, expected, seen)
#define ASSERT_GT(expected, seen)	__TH_CMP(1, __TH_GT, expected, seen)
#define ASSERT_GE(expected, seen)	__TH_CMP(1, __TH_GE, expected, seen)
#define ASSERT_TRUE(seen)		__TH_BOOL(1, true, "to be true", seen)
#define ASSERT_FALSE(seen)		__TH_BOOL(1, false, "to be false", seen)
#define ASSERT_NULL(seen)		__TH_BOOL(1, false, "to be NULL", seen)
#define ASSERT_NONNULL(seen)		__TH_BOOL(1, true, "to be non-NULL", seen)
#define ASSERT_STREQ(expected, seen)	__TH_STR(1, true, expected, seen)
#define ASSERT_STRNE(expected, seen)	__TH_STR(1, false, expected, seen)

#define EXPECT_EQ(expected, seen)	__TH_CMP(0, __TH_EQ, expected, seen)
#define EXPECT_NE(expected, seen)	__TH_CMP(0, __TH_NE, expected, seen)
#define EXPECT_LT(expected, seen)	__TH_CMP(0, __TH_LT, expected, seen)
#define EXPECT_LE(expected, seen)	__TH_CMP(0, __TH_LE, expected, seen)
#define EXPECT_GT(expected, seen)	__TH_CMP(0, __TH_GT, expected, seen)
#define EXPECT_GE(expected, seen)	__TH_CMP(0, __TH_GE, expected, seen)
#define EXPECT_TRUE(seen)		__TH_BOOL(0, true, "to be true", seen)
#define EXPECT_FALSE(seen)		__TH_BOOL(0, false, "to be false", seen)
#define EXPECT_NULL(seen)		__TH_BOOL(0, false, "to be NULL", seen)
#define EXPECT_NONNULL(seen)		__TH_BOOL(0, true, "to be non-NULL", seen)
#define EXPECT_STREQ(expected, seen)	__TH_STR(0, true, expected, seen)
#define EXPECT_STRNE(expected, seen)	__TH_STR(0, false, expected, seen)

/* ------------------------------------------------------------------ */
/* Running                                                            */
/* ------------------------------------------------------------------ */

/* One test as run: a test, and the variant it runs with. */
struct __th_case {
	const struct __th_test *test;
	const struct __th_variant *variant;
	char name[256];
};

static double __th_unused __th_scale(void)
{
	const char *s = getenv("KGO_TEST_TIMEOUT_SCALE");
	char *end;
	double v;

	if (!s || !*s)
		return 1.0;
	v = strtod(s, &end);
	if (*end || !(v > 0)) {
		fprintf(stderr, "# ignoring KGO_TEST_TIMEOUT_SCALE=%s\n", s);
		return 1.0;
	}
	return v;
}

static inline double __th_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* In the test's process: run setup, body, teardown; exit with the verdict. */
static void __th_unused __attribute__((noreturn))
__th_run_child(const struct __th_case *tc, struct __th_result *res)
{
	const struct __th_test *t = tc->test;
	const void *vdata = tc->variant ? tc->variant->data : NULL;
	struct __th_fixture *f = t->fixture;
	struct __test_metadata meta = {
		.name = tc->name,
		.test = t,
		.variant = tc->variant,
		.res = res,
		.pid = getpid(),
	};
	void *self = NULL;

	__th_cur = &meta;
	if (t->self_size) {
		self = calloc(1, t->self_size);
		if (!self) {
			__th_diag("%s: out of memory for the fixture", tc->name);
			_exit(KSFT_FAIL);
		}
	}
	meta.self = self;
	if (f && f->setup)
		f->setup(&meta, self, vdata);
	if (!__atomic_load_n(&res->skipped, __ATOMIC_SEQ_CST) &&
	    !__atomic_load_n(&res->failed, __ATOMIC_SEQ_CST))
		t->fn(&meta, self, vdata);
	if (f && f->teardown && !meta.teardown_state) {
		meta.teardown_state = 1;
		f->teardown(&meta, self, vdata);
	}
	fflush(stdout);
	fflush(stderr);
	if (__atomic_load_n(&res->failed, __ATOMIC_SEQ_CST))
		_exit(KSFT_FAIL);
	_exit(__atomic_load_n(&res->skipped, __ATOMIC_SEQ_CST) ?
	      KSFT_SKIP : KSFT_PASS);
}

/* The harness forwards SIGINT/SIGTERM to the running test's group. */
static void __th_unused __th_on_signal(int sig)
{
	if (__th_child > 0)
		kill(-__th_child, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * __th_wait() - wait until the test's process exits or @timeout seconds
 * pass. The process is left unreaped (a zombie), so its pid, which is
 * also its process group's id, cannot be reused before the group is
 * killed. Return: 1 exited, 0 timed out.
 */
static int __th_wait(pid_t pid, double timeout)
{
	double deadline = __th_now() + timeout;
	siginfo_t si;
	int pidfd, ms, ret = 0;

	pidfd = syscall(SYS_pidfd_open, pid, 0);
	for (;;) {
		double left = deadline - __th_now();

		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid) {
			ret = 1;
			break;
		}
		if (left <= 0)
			break;
		ms = left > 3600 ? 3600000 : (int)(left * 1000) + 1;
		if (pidfd >= 0) {
			struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

			poll(&pfd, 1, ms);
		} else {
			/* No pidfd (old kernel, some emulators): poll at 10 ms. */
			struct timespec ts = { 0, 10 * 1000 * 1000 };

			if (ms < 10)
				ts.tv_nsec = ms * 1000 * 1000L;
			nanosleep(&ts, NULL);
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	return ret;
}

/*
 * __th_run_case() - run one test in its own process group and print its
 * TAP line. Return: KSFT_PASS, KSFT_FAIL or KSFT_SKIP.
 */
static int __th_run_case(const struct __th_case *tc, int num,
			 struct __th_result *res, double scale)
{
	const struct __th_test *t = tc->test;
	double scaled = t->timeout * scale;
	int timeout = (int)scaled + ((int)scaled < scaled);
	int status, verdict;
	bool exited;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		printf("# %s: fork: %s\n", tc->name, strerror(errno));
		printf("not ok %d %s\n", num, tc->name);
		return KSFT_FAIL;
	}
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		/* Do not outlive a harness killed outright. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(KSFT_FAIL);
		__th_run_child(tc, res);
	}
	/* Also in the parent, so the group exists before we might kill it. */
	setpgid(pid, pid);
	__th_child = pid;

	exited = __th_wait(pid, timeout);
	/* Kill the group: on timeout the test, else what it left behind. */
	kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	__th_child = 0;

	verdict = KSFT_FAIL;
	if (!exited) {
		printf("# %s: timeout after %d s\n", tc->name, timeout);
	} else if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);

		if (t->signal && sig == t->signal && !res->failed)
			verdict = KSFT_PASS;
		else
			printf("# %s: killed by signal %d (SIG%s: %s)%s\n",
			       tc->name, sig, sigabbrev_np(sig) ?: "?",
			       strsignal(sig), WCOREDUMP(status) ?
			       ", core dumped" : "");
	} else if (t->signal) {
		printf("# %s: exited with status %d, expected signal %d (SIG%s)\n",
		       tc->name, WEXITSTATUS(status), t->signal,
		       sigabbrev_np(t->signal) ?: "?");
	} else if (res->failed) {
		verdict = KSFT_FAIL;
	} else if (WEXITSTATUS(status) == KSFT_PASS) {
		verdict = KSFT_PASS;
	} else if (WEXITSTATUS(status) == KSFT_SKIP && res->skipped) {
		verdict = KSFT_SKIP;
	} else {
		printf("# %s: exited with status %d\n", tc->name,
		       WEXITSTATUS(status));
	}

	if (verdict == KSFT_SKIP)
		printf("ok %d %s # SKIP %s\n", num, tc->name,
		       res->skip_reason[0] ? res->skip_reason : "(no reason)");
	else
		printf("%sok %d %s\n", verdict == KSFT_PASS ? "" : "not ",
		       num, tc->name);
	return verdict;
}

static bool __th_unused __th_selected(const struct __th_case *tc, char **filters,
			  int nfilters)
{
	int i;

	if (!nfilters)
		return true;
	for (i = 0; i < nfilters; i++) {
		if (!strcmp(filters[i], tc->name) ||
		    !strcmp(filters[i], tc->test->name) ||
		    !fnmatch(filters[i], tc->name, 0))
			return true;
	}
	return false;
}

/* Sort tests into source order: constructors may run in any order. */
static void __th_unused __th_sort(void)
{
	struct __th_test *sorted = NULL, *t, **pp;

	while ((t = __th_tests)) {
		__th_tests = t->next;
		pp = &sorted;
		while (*pp && (strcmp((*pp)->file, t->file) < 0 ||
			       (!strcmp((*pp)->file, t->file) &&
				(*pp)->line <= t->line)))
			pp = &(*pp)->next;
		t->next = *pp;
		*pp = t;
	}
	__th_tests = sorted;
	for (pp = &__th_tests; *pp; pp = &(*pp)->next)
		;
	__th_tests_tail = pp;
}

/* __th_cases() - expand tests x variants. Return: the count, or -1. */
static int __th_cases(struct __th_case **out)
{
	struct __th_case *cases = NULL, *tmp;
	const struct __th_variant *v;
	struct __th_test *t;
	int n = 0;

	__th_sort();
	for (t = __th_tests; t; t = t->next) {
		v = t->fixture ? t->fixture->variants : NULL;
		do {
			tmp = realloc(cases, (n + 1) * sizeof(*cases));
			if (!tmp) {
				free(cases);
				return -1;
			}
			cases = tmp;
			cases[n].test = t;
			cases[n].variant = v;
			if (!t->fixture)
				snprintf(cases[n].name, sizeof(cases[n].name),
					 "%s", t->name);
			else if (!v)
				snprintf(cases[n].name, sizeof(cases[n].name),
					 "%s.%s", t->fixture->name, t->name);
			else
				snprintf(cases[n].name, sizeof(cases[n].name),
					 "%s.%s.%s", t->fixture->name, v->name,
					 t->name);
			n++;
			v = v ? v->next : NULL;
		} while (v);
	}
	*out = cases;
	return n;
}

static void __th_unused __th_usage(const char *argv0, FILE *f)
{
	fprintf(f, "usage: %s [-l] [-t NAME]...\n"
		"  -l       list the tests\n"
		"  -t NAME  run only NAME (full name, test name or glob);"
		" repeatable\n"
		"env: KGO_TEST_TIMEOUT_SCALE=N multiplies every timeout\n",
		argv0);
}

/*
 * test_harness_run() - what TEST_HARNESS_MAIN's main() does.
 * Return: KSFT_PASS, KSFT_FAIL or KSFT_SKIP (every test skipped).
 */
static int __attribute__((unused)) test_harness_run(int argc, char **argv)
{
	int ncases = 0, nsel = 0, nfilters = 0, i, opt, num = 0;
	int pass = 0, fail = 0, skip = 0, ret = KSFT_FAIL;
	struct __th_case *cases = NULL;
	struct __th_result *res;
	bool list = false;
	char **filters;
	double scale;

	filters = calloc(argc, sizeof(*filters));
	if (!filters)
		return KSFT_FAIL;
	while ((opt = getopt(argc, argv, "lt:h")) != -1) {
		switch (opt) {
		case 'l':
			list = true;
			break;
		case 't':
			filters[nfilters++] = optarg;
			break;
		case 'h':
			__th_usage(argv[0], stdout);
			ret = KSFT_PASS;
			goto out_free_filters;
		default:
			__th_usage(argv[0], stderr);
			goto out_free_filters;
		}
	}
	if (optind < argc) {
		__th_usage(argv[0], stderr);
		goto out_free_filters;
	}

	ncases = __th_cases(&cases);
	if (ncases < 0) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		goto out_free_filters;
	}
	for (i = 0; i < ncases; i++)
		nsel += __th_selected(&cases[i], filters, nfilters);
	if (list) {
		for (i = 0; i < ncases; i++)
			if (__th_selected(&cases[i], filters, nfilters))
				printf("%s\n", cases[i].name);
		ret = KSFT_PASS;
		goto out_free_cases;
	}
	if (nfilters && !nsel) {
		fprintf(stderr, "%s: no test matches -t", argv[0]);
		for (i = 0; i < nfilters; i++)
			fprintf(stderr, " %s", filters[i]);
		fprintf(stderr, " (-l lists them)\n");
		goto out_free_cases;
	}

	res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED) {
		fprintf(stderr, "%s: mmap: %s\n", argv[0], strerror(errno));
		goto out_free_cases;
	}
	scale = __th_scale();
	signal(SIGINT, __th_on_signal);
	signal(SIGTERM, __th_on_signal);
	/* TAP lines must reach a pipe in order with the tests' stderr. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("TAP version 13\n1..%d\n", nsel);
	if (scale != 1.0)
		printf("# timeouts scaled by %g\n", scale);
	for (i = 0; i < ncases; i++) {
		if (!__th_selected(&cases[i], filters, nfilters))
			continue;
		switch (__th_run_case(&cases[i], ++num, res, scale)) {
		case KSFT_PASS: pass++; break;
		case KSFT_SKIP: skip++; break;
		default:	fail++; break;
		}
	}
	printf("# Totals: pass:%d fail:%d skip:%d\n", pass, fail, skip);
	munmap(res, sizeof(*res));
	if (fail)
		ret = KSFT_FAIL;
	else if (nsel && skip == nsel)
		ret = KSFT_SKIP;
	else
		ret = KSFT_PASS;
out_free_cases:
	free(cases);
out_free_filters:
	free(filters);
	return ret;
}

#define TEST_HARNESS_MAIN						\
	int main(int argc, char **argv)					\
	{								\
		return test_harness_run(argc, argv);			\
	}

#endif /* KGO_SELFTEST_HARNESS_H */
