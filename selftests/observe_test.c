// SPDX-License-Identifier: MIT
/*
 * Description: kernel-observed scheduling (observe_bpf.c, bpf/).
 *
 *   probes_load		KGO_OBSERVE=bpf as root: the probes load,
 *				attach, and register the runtime's Ms (and
 *				sysmon, which is not counted as an M).
 *   handoff_kernel_observed	P=1: a G blocked in read(2) on a pipe
 *				through kgo_syscall loses its P, with the
 *				cause kernel-observed, and the probes woke
 *				sysmon for it.
 *   handoff_poll		the same in poll mode: handed off by
 *				sysmon's guess, no kernel-observed cause.
 *   busy_syscall_keeps_p	bpf: an M in long getrandom(2) calls (a few
 *				ms on a CPU each, never asleep) keeps its P
 *				although a G waits for it: no handoff.
 *   busy_syscall_loses_p	poll: the same calls lose the P (the guess
 *				cannot tell busy from blocked).
 *   slice_is_cpu_time		bpf: a spinning G shares its CPU with a busy
 *				process pinned to the same CPU; it is
 *				preempted only after it had a whole slice of
 *				CPU time, not of wall time.
 *   sigkill_detaches		a kgo process killed with SIGKILL leaves no
 *				program of its probes behind.
 *   two_processes		two kgo processes at once, each with its own
 *				kernel-observed handoffs.
 *
 * BPF tests need root (or probes pinned by kgo-probe load) and a kernel
 * that takes the probes; they skip with the runtime's reason elsewhere.
 */
#include <errno.h>
#include <dirent.h>
#include <linux/bpf.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kgo.h"
#include "harness.h"
#include "handoff_pair.h"

#define MS	1000000LL


static void nop(void *arg)
{
	(void)arg;
}

/*
 * Can a process have bpf mode? If not, why (for SKIP). Asked in a
 * child: a process keeps the probes it loaded for its next kgo_run
 * (observe_bpf.c), and the tests' children must load their own.
 */
static const char *bpf_missing(void)
{
	struct kgo_config cfg = { .maxprocs = 1, .observe = KGO_OBSERVE_BPF };
	static char why[256];
	struct kgo_stats st;
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	unsetenv("KGO_OBSERVE");
	if (pipe(fds))
		return "pipe failed";
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		if (kgo_run(nop, NULL, &cfg))
			_exit(1);
		st = stats();
		if (st.observe != KGO_OBSERVE_BPF &&
		    write(fds[1], st.observe_why, strlen(st.observe_why)) < 0)
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], why, sizeof(why) - 1);
	close(fds[0]);
	waitpid(pid, &status, 0);
	if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return "kgo_run failed";
	if (n <= 0)
		return NULL;
	why[n] = 0;
	return why;
}

#define REQUIRE_BPF() do {						\
	const char *why__ = bpf_missing();				\
	if (why__) {							\
		SKIP(return, "%s", why__);				\
	}								\
} while (0)

static void run(void (*fn)(void *), void *arg, int maxprocs, int mode,
		int slice_us)
{
	struct kgo_config cfg = { .maxprocs = maxprocs, .observe = mode,
				  .preempt_slice_us = slice_us };

	unsetenv("KGO_OBSERVE");
	ASSERT_EQ(0, kgo_run(fn, arg, &cfg));
	ASSERT_EQ(mode, stats().observe);
}

/* ------------------------------------------------------------------ */

static void probes_main(void *arg)
{
	struct kgo_stats st = stats();

	(void)arg;
	EXPECT_EQ(KGO_OBSERVE_BPF, st.observe);
	/* m0 at least; every M registers as it starts. */
	EXPECT_LE(1, st.observe_ms);
	EXPECT_LE(st.ms, st.observe_ms);
}

TEST(probes_load)
{
	REQUIRE_BPF();
	run(probes_main, NULL, 2, KGO_OBSERVE_BPF, 0);
}

/* ------------------------------------------------------------------ */


/*
 * The writer goes to runnext: with one P it can run only if our
 * blocked read lets the P go. Three rounds: a block before sysmon has
 * registered with the probes wakes nobody (sysmon's first look finds
 * it); the first handoff is sysmon's doing, so it has by the second.
 */
#define ROUNDS	3

static void handoff_main(void *arg)
{
	struct pipe_pair *pp = arg;
	char c = 0;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		atomic_store(&pp->writer_ran, 0);
		ASSERT_EQ(0, kgo_go(writer, pp));
		ASSERT_EQ(1, kgo_syscall(SYS_read, pp->fds[0], &c, 1));
		EXPECT_EQ('k', c);
		EXPECT_EQ(1, atomic_load(&pp->writer_ran));
	}
}

static void handoff(int mode)
{
	struct pipe_pair pp = { 0 };
	struct kgo_stats a = stats(), b;

	ASSERT_EQ(0, pipe(pp.fds));
	run(handoff_main, &pp, 1, mode, 0);
	b = stats();
	EXPECT_LE(a.handoffs + ROUNDS, b.handoffs);
	if (mode == KGO_OBSERVE_BPF) {
		EXPECT_LE(a.handoffs_kernel_observed + ROUNDS,
			  b.handoffs_kernel_observed);
		EXPECT_LE(ROUNDS - 1, b.observe_kicks);
	} else {
		EXPECT_EQ(a.handoffs_kernel_observed,
			  b.handoffs_kernel_observed);
		EXPECT_LE(a.handoffs_poll + 1, b.handoffs_poll);
	}
	close(pp.fds[0]);
	close(pp.fds[1]);
}

TEST_TIMEOUT(handoff_kernel_observed, 30)
{
	REQUIRE_BPF();
	handoff(KGO_OBSERVE_BPF);
}

TEST_TIMEOUT(handoff_poll, 30)
{
	handoff(KGO_OBSERVE_POLL);
}

/* ------------------------------------------------------------------ */

#define RANDOM_BYTES	(4 << 20)	/* ~12 ms of getrandom here */

struct busy {
	char *buf;
	int mode;
	atomic_int waiter_ran;
	uint64_t handoffs;
	int calls;
};

static void waiter(void *arg)
{
	struct busy *b = arg;

	atomic_store(&b->waiter_ran, 1);
}

static void busy_main(void *arg)
{
	struct busy *b = arg;
	uint64_t h0;
	int i;

	ASSERT_EQ(0, kgo_go(waiter, b));	/* waits in runnext */
	h0 = stats().handoffs;
	/*
	 * bpf: ten calls, and no handoff: the M never sleeps in them.
	 * poll: as many as it takes for sysmon's guess to take the P
	 * (the test's timeout if it never does).
	 */
	for (i = 0; b->mode == KGO_OBSERVE_POLL ||
		    i < 10; i++) {
		long r = kgo_syscall(SYS_getrandom, b->buf, RANDOM_BYTES, 0);

		ASSERT_LE(1, r);
		b->calls++;
		if (b->mode == KGO_OBSERVE_POLL && stats().handoffs > h0)
			break;
	}
	b->handoffs = stats().handoffs - h0;
}

static void busy_syscall(int mode)
{
	struct busy b = { .mode = mode };

	b.buf = malloc(RANDOM_BYTES);
	ASSERT_TRUE(b.buf != NULL);
	memset(b.buf, 1, RANDOM_BYTES);	/* no page fault in the call */
	/* A slice of 5 s: the calls' CPU time never ends it. */
	run(busy_main, &b, 1, mode, 5000000);
	TH_LOG("%s: %d calls, %llu handoffs", mode == KGO_OBSERVE_BPF ?
	       "bpf" : "poll", b.calls, (unsigned long long)b.handoffs);
	if (mode == KGO_OBSERVE_BPF)
		EXPECT_EQ(0, b.handoffs);
	else
		EXPECT_LE(1, b.handoffs);
	free(b.buf);
}

TEST_TIMEOUT(busy_syscall_keeps_p, 60)
{
	REQUIRE_BPF();
	busy_syscall(KGO_OBSERVE_BPF);
}

TEST_TIMEOUT(busy_syscall_loses_p, 60)
{
	busy_syscall(KGO_OBSERVE_POLL);
}

/* ------------------------------------------------------------------ */

#define SLICE_US	20000

static int64_t thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct spin {
	_Atomic int64_t used;		/* the spinner's CPU time so far */
	atomic_int stop;
	int64_t seen;			/* ... when the main G ran again */
};

static void spinner(void *arg)
{
	struct spin *s = arg;
	int64_t t0 = thread_cpu();
	volatile unsigned long x = 0;
	int i;

	/* Spin in our own code (an async safe point), noting our CPU
	 * time now and then, until main runs again and says stop, or
	 * ten slices if preemption never came. */
	while (!atomic_load(&s->stop)) {
		for (i = 0; i < 20000; i++)
			x += i;
		atomic_store(&s->used, thread_cpu() - t0);
		if (atomic_load(&s->used) > 10LL * SLICE_US * 1000)
			break;
	}
}

static void slice_main(void *arg)
{
	struct spin *s = arg;

	ASSERT_EQ(0, kgo_go(spinner, s));
	kgo_yield();			/* the spinner runs until preempted */
	s->seen = atomic_load(&s->used);
	atomic_store(&s->stop, 1);
}

TEST_TIMEOUT(slice_is_cpu_time, 60)
{
	struct spin s = { 0 };
	cpu_set_t set;
	pid_t hog;
	int st;

	REQUIRE_BPF();
	/* This process and a busy one on the same CPU: the spinner's M
	 * gets about half of it. */
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(set), &set));
	hog = fork();
	ASSERT_LE(0, hog);
	if (hog == 0) {
		volatile unsigned long x = 0;

		for (;;)
			x++;
	}
	run(slice_main, &s, 1, KGO_OBSERVE_BPF, SLICE_US);
	kill(hog, SIGKILL);
	waitpid(hog, &st, 0);
	TH_LOG("spinner ran %.1f ms of CPU before main ran again (slice "
	       "%d ms); sysmon woke %llu times, sent %llu signals",
	       s.seen / 1e6, SLICE_US / 1000,
	       (unsigned long long)stats().sysmon_wakeups,
	       (unsigned long long)stats().preempt_signals);
	/* Preempted at all (else it would have spun 10 slices), and not
	 * before a slice of CPU time (5% for the two clocks' views). */
	EXPECT_GE(10LL * SLICE_US * 1000, s.seen);
	EXPECT_LE(SLICE_US * 1000LL * 95 / 100, s.seen);
}

/* ------------------------------------------------------------------ */

/* The ids of the BPF programs process @pid holds (its fdinfo). */
static int prog_ids(pid_t pid, unsigned *ids, int max)
{
	char path[320], line[256];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int)pid,
			 de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f) && n < max)
			if (sscanf(line, "prog_id: %u", &ids[n]) == 1)
				n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

static bool prog_exists(unsigned id)
{
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_id = id;
	fd = (int)syscall(SYS_bpf, BPF_PROG_GET_FD_BY_ID, &attr, sizeof(attr));
	if (fd >= 0) {
		close(fd);
		return true;
	}
	return errno != ENOENT;
}

static int ready_fd;

static void block_forever(void *arg)
{
	char c;

	(void)arg;
	ASSERT_EQ(1, write(ready_fd, "r", 1));
	for (;;)
		pause();
	(void)c;
}

TEST_TIMEOUT(sigkill_detaches, 60)
{
	unsigned ids[32];
	int fds[2], n, i, st;
	char c;
	pid_t pid;

	REQUIRE_BPF();
	ASSERT_EQ(0, pipe(fds));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct kgo_config cfg = { .maxprocs = 1,
					  .observe = KGO_OBSERVE_BPF };

		ready_fd = fds[1];
		_exit(kgo_run(block_forever, NULL, &cfg) ? 1 : 0);
	}
	close(fds[1]);
	ASSERT_EQ(1, read(fds[0], &c, 1));
	n = prog_ids(pid, ids, 32);
	/* Our own loaded copy, inherited: the child may hold those ids
	 * too; only the ones the parent does not hold are the child's. */
	{
		unsigned mine[32];
		int m = prog_ids(getpid(), mine, 32), j, k = 0;

		for (i = 0; i < n; i++) {
			for (j = 0; j < m && mine[j] != ids[i]; j++)
				;
			if (j == m)
				ids[k++] = ids[i];
		}
		n = k;
	}
	TH_LOG("the child holds %d programs of its own", n);
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	/* The kernel frees them after an RCU grace period: wait for it
	 * (the test's timeout if they stay). */
	for (i = 0; i < n; i++)
		while (prog_exists(ids[i]))
			usleep(10000);
	close(fds[0]);
}

/* ------------------------------------------------------------------ */

TEST_TIMEOUT(two_processes, 60)
{
	pid_t pid[2];
	int i, st;

	REQUIRE_BPF();
	for (i = 0; i < 2; i++) {
		pid[i] = fork();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0) {
			int k;

			for (k = 0; k < 20; k++)
				handoff(KGO_OBSERVE_BPF);
			_exit(stats().handoffs_kernel_observed >=
			      20 * ROUNDS ? 0 : 1);
		}
	}
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(pid[i], waitpid(pid[i], &st, 0));
		EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
}

TEST_HARNESS_MAIN
