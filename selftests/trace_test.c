// SPDX-License-Identifier: MIT
/*
 * Description: KGO_TRACE (trace.c).
 *
 *   json		a run with Gs created, run, parked, readied, a
 *			syscall that loses its P, preemption and stealing
 *			writes a file that is valid JSON (python3 -m
 *			json.tool when python3 is there), whose slices
 *			nest per thread (B/E never below zero), and that
 *			has each kind of event the run caused.
 *   twice		kgo_run twice with KGO_TRACE: each run writes its
 *			own complete file (per-thread buffers of the first
 *			run are not reused).
 *   bad_path		an unwritable path is reported and the run goes on.
 *   kernel_block	bpf mode (root, or pinned probes; skips otherwise):
 *			the read that blocks in the kernel shows as a
 *			"kernel block" slice on its M's row, inside the
 *			syscall's slice, with a duration.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kgo.h"
#include "harness.h"

#define MS	1000000LL

static struct kgo_stats stats(void)
{
	struct kgo_stats st;

	memset(&st, 0, sizeof(st));
	kgo_stats_get(&st, sizeof(st));
	return st;
}

static atomic_int stop;
static int pfd[2];
static struct kgo_wg wg = KGO_WG_INIT;
static struct kgo_stats last;

static void worker(void *arg)
{
	int i;

	for (i = 0; i < 5; i++) {
		volatile int x = 0;

		while (x < 20000)
			x++;
		kgo_yield();
	}
	kgo_sleep(MS);
	kgo_wg_done(&wg);
	(void)arg;
}

static void writer(void *arg)
{
	(void)arg;
	/* Past sysmon's 10 ms "retake anyway" rule. */
	kgo_sleep(30 * MS);
	ASSERT_EQ(1, write(pfd[1], "t", 1));
}

static void spinner(void *arg)
{
	unsigned long x = 0;

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		x++;
	kgo_wg_done(&wg);
}

static void trace_main(void *arg)
{
	struct kgo_stats st0 = stats();
	char c;
	int i;

	(void)arg;
	atomic_store(&stop, 0);
	/* Many Gs from one G: the other P steals some. */
	kgo_wg_add(&wg, 64);
	for (i = 0; i < 64; i++)
		ASSERT_EQ(0, kgo_go(worker, NULL));
	/* A read that blocks until the writer runs: sysmon hands off. */
	ASSERT_EQ(0, kgo_go(writer, NULL));
	ASSERT_EQ(1, kgo_syscall(SYS_read, pfd[0], &c, 1));
	kgo_wg_wait(&wg);
	/* A spinner: preempted by signal where that is on. */
	if (stats().async_preempt) {
		kgo_wg_add(&wg, 2);
		ASSERT_EQ(0, kgo_go(spinner, NULL));
		ASSERT_EQ(0, kgo_go(spinner, NULL));
		kgo_sleep(40 * MS);
		atomic_store(&stop, 1);
		kgo_wg_wait(&wg);
	}
	last = stats();
	/* These two count over every run of the process. */
	last.handoffs -= st0.handoffs;
	last.preempt_async -= st0.preempt_async;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		r = fread(buf + n, 1, 4096, f);
		if (!r)
			break;
		n += r;
	}
	fclose(f);
	buf[n] = 0;
	*len = n;
	return buf;
}

static bool have_python(void)
{
	return system("python3 -c 'import json' >/dev/null 2>&1") == 0;
}

/*
 * Check the file line by line as trace.c writes it (one event a line):
 * every line an object, B/E nesting per thread never below zero.
 * Return: the number of events, -1 on a malformed line.
 */
#define MAXTID 128
static long check_lines(char *text, int *depth_max)
{
	int depth[MAXTID] = { 0 };
	char *line, *save;
	long events = 0;

	*depth_max = 0;
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		const char *t = strstr(line, "\"tid\":");
		size_t len = strlen(line);
		int tid = -1;

		if (!strncmp(line, "{\"displayTimeUnit\"", 18) ||
		    !strncmp(line, "],\"otherData\"", 13))
			continue;
		if (line[0] != '{' ||
		    !(line[len - 1] == '}' || (len > 1 && line[len - 2] == '}' &&
					      line[len - 1] == ',')))
			return -1;
		events++;
		if (t)
			tid = atoi(t + 6);
		if (tid >= 100000)
			tid = MAXTID - 1 - (tid - 100000) % 8;
		if (tid < 0 || tid >= MAXTID)
			continue;
		if (strstr(line, "\"ph\":\"B\"")) {
			if (++depth[tid] > *depth_max)
				*depth_max = depth[tid];
		} else if (strstr(line, "\"ph\":\"E\"")) {
			if (--depth[tid] < 0)
				return -1;
		}
	}
	return events;
}

static void run_traced_mode(const char *path, int observe)
{
	struct kgo_config cfg = { .maxprocs = 2, .observe = observe };

	setenv("KGO_TRACE", path, 1);
	ASSERT_EQ(0, pipe(pfd));
	ASSERT_EQ(0, kgo_run(trace_main, NULL, &cfg));
	unsetenv("KGO_TRACE");
	close(pfd[0]);
	close(pfd[1]);
}

static void run_traced(const char *path)
{
	run_traced_mode(path, KGO_OBSERVE_AUTO);
}

static void check_file(const char *path)
{
	static const char *const must[] = {
		"\"name\":\"go create\"", "\"name\":\"park\"",
		"\"name\":\"ready\"", "\"name\":\"syscall\"",
		"\"name\":\"thread_name\"",
		"\"ph\":\"B\",\"name\":\"G", "\"ph\":\"E\"",
	};
	char cmd[512], *text;
	int depth_max;
	size_t len, i;
	long events;

	text = slurp(path, &len);
	ASSERT_NONNULL(text) TH_LOG("%s: %s", path, strerror(errno));
	ASSERT_LT(100, len);
	for (i = 0; i < sizeof(must) / sizeof(must[0]); i++)
		EXPECT_NONNULL(strstr(text, must[i])) TH_LOG("no %s", must[i]);
	if (last.preempt_async)
		EXPECT_NONNULL(strstr(text, "\"name\":\"preempt\""));
	if (last.steals)
		EXPECT_NONNULL(strstr(text, "\"name\":\"steal\""));
	if (last.handoffs)
		EXPECT_NONNULL(strstr(text, "\"name\":\"handoff\""));
	else
		TH_LOG("no handoff happened in this run");
	events = check_lines(text, &depth_max);
	EXPECT_LT(200, events);
	EXPECT_LE(1, depth_max);
	free(text);
	if (have_python()) {
		snprintf(cmd, sizeof(cmd),
			 "python3 -m json.tool '%s' >/dev/null", path);
		EXPECT_EQ(0, system(cmd)) TH_LOG("json.tool rejects %s", path);
	} else {
		TH_LOG("python3 not found: line checks only");
	}
}

TEST_TIMEOUT(json, 30)
{
	char path[] = "/tmp/kgo-trace-XXXXXX";
	int fd = mkstemp(path);

	ASSERT_LE(0, fd);
	close(fd);
	run_traced(path);
	check_file(path);
	unlink(path);
}

TEST_TIMEOUT(twice, 30)
{
	char p1[] = "/tmp/kgo-trace1-XXXXXX", p2[] = "/tmp/kgo-trace2-XXXXXX";
	int fd;

	fd = mkstemp(p1);
	ASSERT_LE(0, fd);
	close(fd);
	fd = mkstemp(p2);
	ASSERT_LE(0, fd);
	close(fd);
	/* Each file checked after its own run: check_file() compares it
	 * with that run's counters (last), not the next run's. */
	run_traced(p1);
	check_file(p1);
	run_traced(p2);
	check_file(p2);
	unlink(p1);
	unlink(p2);
}

/*
 * The kernel block of the read: an "X" event on the row (tid) of the
 * syscall slice that contains it, with a duration. The read is the
 * only syscall of trace_main that waits for another G (the writer).
 */
TEST_TIMEOUT(kernel_block, 30)
{
	char path[] = "/tmp/kgo-trace3-XXXXXX", *text, *k, *line, *save;
	int fd, ntid = -1, found = 0, inside = 0;
	double dur = 0;
	size_t len;

	fd = mkstemp(path);
	ASSERT_LE(0, fd);
	close(fd);
	unsetenv("KGO_OBSERVE");
	run_traced_mode(path, KGO_OBSERVE_BPF);
	if (last.observe != KGO_OBSERVE_BPF) {
		unlink(path);
		SKIP(return, "no bpf mode: %s", last.observe_why);
	}
	text = slurp(path, &len);
	ASSERT_NONNULL(text);
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		k = strstr(line, "\"name\":\"kernel block");
		if (!k || !strstr(line, "\"ph\":\"X\""))
			continue;
		found++;
		k = strstr(line, "\"dur\":");
		ASSERT_NONNULL(k);
		if (atof(k + 6) > dur) {
			dur = atof(k + 6);
			ntid = atoi(strstr(line, "\"tid\":") + 6);
		}
		/* Written just before the end of its syscall's slice. */
		line = strtok_r(NULL, "\n", &save);
		if (line && strstr(line, "\"ph\":\"E\",\"args\":{\"fast\""))
			inside++;
	}
	TH_LOG("%d kernel blocks, the longest %.1f us on tid %d", found, dur,
	       ntid);
	EXPECT_LE(1, found);
	EXPECT_LT(0, dur);
	EXPECT_LE(0, ntid);
	EXPECT_LE(1, inside);
	free(text);
	check_file(path);
	unlink(path);
}

static void nothing(void *arg)
{
	(void)arg;
	kgo_yield();
}

TEST(bad_path)
{
	struct kgo_config cfg = { .maxprocs = 1 };

	setenv("KGO_TRACE", "/nonexistent-dir/kgo.json", 1);
	EXPECT_EQ(0, kgo_run(nothing, NULL, &cfg));
	unsetenv("KGO_TRACE");
}

TEST_HARNESS_MAIN
