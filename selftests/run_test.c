// SPDX-License-Identifier: MIT
/*
 * Description: kgo_run() itself: who may run it, and how it ends.
 *
 *   two_threads_race	two pthreads call kgo_run at once, 200 times:
 *			every time one runs and the other gets -EBUSY
 *			(the winner's main waits until the loser has
 *			returned, or until both are in, which is the
 *			failure). It was an unsynchronised read of
 *			sched.running: aborts ("acquirep: already in
 *			go"), hangs.
 *
 * main returns while Gs are stuck in system calls: kgo_run returns at
 * once all the same, abandoning their Ms (kgo.h, kgo_run), and can be
 * run again; when the abandoned call returns later, its thread parks
 * for good: its G never runs again and nothing of the new runtime is
 * touched (the next run still works). Before, kgo_run waited for those
 * Ms for ever.
 *
 *   abandon_kgo_syscall	a G in kgo_syscall(SYS_read) on an idle
 *			pipe; afterwards a byte written to the pipe wakes
 *			the thread: the byte is consumed, the G's code
 *			after the call never runs, the thread stays
 *			asleep.
 *   abandon_plain_read	a G in read(2) on an idle pipe, not bracketed
 *			by kgo_syscall_begin/_end (its M holds its P):
 *			the thread is parked from the preemption signal,
 *			before the read is restarted, so a byte written
 *			later stays in the pipe. Needs asynchronous
 *			preemption (skips without it).
 *   abandon_syscall_backend	KGO_IOURING=0: Gs in kgo_read (pipe),
 *			kgo_recv (socketpair) and kgo_accept (listening
 *			socket) with nothing to come park on the netpoller
 *			(io.c), as with io_uring, not in a system call:
 *			kgo_run returns at once; each fd is then given its
 *			data or connection, and after the next run it is
 *			all still there: the abandoned waits take nothing.
 *   abandon_keeps_few_mappings	KGO_NO_MADV_GUARD=1 (Linux before 6.13:
 *			stack guards by mprotect, two mappings a slot):
 *			40 runs, each abandoning one M in kgo_syscall,
 *			add at most 8 mappings a run (the M's thread stack
 *			and its guard, its G's stack chunk kept: 2.9-3.3
 *			a run measured; 64 under TSan, see there). A kept chunk held its 2n+1
 *			mappings (515 a run: 256 slots) and, once merged
 *			back, 25-37 pieces: on 6.1 sysmon_test
 *			exit_amid_handoffs reached vm.max_map_count
 *			(kgo_run -ENOMEM after ~127 runs).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kgo.h"
#include "count_maps.h"
#include "harness.h"

#define MS	1000000LL

/* ------------------------------------------------------------------ */
/* Two pthreads race to kgo_run                                       */
/* ------------------------------------------------------------------ */

static _Atomic int race_inside, race_busy, race_go;

static void race_main(void *arg)
{
	(void)arg;
	atomic_fetch_add(&race_inside, 1);
	/* Stay in until the other caller has its answer: -EBUSY, or
	 * (the bug) a runtime of its own. */
	while (!atomic_load(&race_busy) && atomic_load(&race_inside) < 2)
		kgo_sleep(MS / 10);
}

static void *race_thread(void *arg)
{
	struct kgo_config cfg = { .maxprocs = 1 + (int)(long)arg };
	int r;

	while (!atomic_load(&race_go))
		;
	r = kgo_run(race_main, NULL, &cfg);
	if (r == -EBUSY)
		atomic_fetch_add(&race_busy, 1);
	return (void *)(long)r;
}

TEST_TIMEOUT(two_threads_race, 120)
{
	for (int i = 0; i < 200; i++) {
		pthread_t t[2];
		void *r[2];

		atomic_store(&race_inside, 0);
		atomic_store(&race_busy, 0);
		atomic_store(&race_go, 0);
		for (long k = 0; k < 2; k++)
			ASSERT_EQ(0, pthread_create(&t[k], NULL, race_thread,
						    (void *)k));
		atomic_store(&race_go, 1);
		for (int k = 0; k < 2; k++)
			ASSERT_EQ(0, pthread_join(t[k], &r[k]));
		ASSERT_EQ(1, atomic_load(&race_inside)) TH_LOG("round %d", i);
		ASSERT_EQ(1, atomic_load(&race_busy)) TH_LOG("round %d", i);
		ASSERT_EQ(-EBUSY, (long)r[0] + (long)r[1]) TH_LOG("round %d", i);
	}
}

/* ------------------------------------------------------------------ */
/* main returns while Gs are stuck in system calls                    */
/* ------------------------------------------------------------------ */

#define NSTUCK	3

static _Atomic int stuck_in;		/* Gs about to block */
static _Atomic long stuck_after;	/* Gs whose code ran on after the call */
static _Atomic pid_t stuck_tid[NSTUCK];
static int stuck_fd[NSTUCK];
static struct sockaddr_in stuck_addr;

static void stuck_enter(int i)
{
	atomic_store(&stuck_tid[i], (pid_t)syscall(SYS_gettid));
	atomic_fetch_add(&stuck_in, 1);
}

enum stuck_call {
	IN_KGO_SYSCALL, IN_READ, IN_KGO_READ, IN_KGO_RECV, IN_KGO_ACCEPT,
};

struct stuck_plan {
	enum stuck_call call[NSTUCK];
	int n;
	bool parked;		/* the Gs park (netpoller), no M blocks */
	int async_preempt;	/* out: kgo_stats.async_preempt */
};

static struct stuck_plan *stuck_pl;

/* G i of the plan: blocks in its call on stuck_fd[i]; the code after
 * the call must never run. */
static void stuck_g(void *arg)
{
	int i = (int)(long)arg, fd = stuck_fd[i];
	char c;
	long r = 0;

	stuck_enter(i);
	switch (stuck_pl->call[i]) {
	case IN_KGO_SYSCALL:
		r = kgo_syscall(SYS_read, fd, &c, 1);
		break;
	case IN_READ:
		r = read(fd, &c, 1);
		break;
	case IN_KGO_READ:
		r = kgo_read(fd, &c, 1);
		break;
	case IN_KGO_RECV:
		r = kgo_recv(fd, &c, 1, 0);
		break;
	case IN_KGO_ACCEPT:
		r = kgo_accept(fd, NULL, NULL, 0);
		break;
	}
	atomic_fetch_add(&stuck_after, 1 + r);
}


/* Is the thread asleep in the kernel? (/proc: S or D) */
static bool tid_sleeping(pid_t tid)
{
	char path[64], buf[256], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return false;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	p = p ? strrchr(buf, ')') : NULL;
	return p && (p[2] == 'S' || p[2] == 'D');
}

static void stuck_main(void *arg)
{
	struct stuck_plan *pl = arg;
	struct kgo_stats st;
	int i;

	kgo_stats_get(&st, sizeof(st));
	pl->async_preempt = st.async_preempt;
	for (i = 0; i < pl->n; i++)
		ASSERT_EQ(0, kgo_go(stuck_g, (void *)(long)i));
	/* Until each is asleep in its call (not needed for kgo_run to
	 * return, only for the test to test what it says). */
	while (atomic_load(&stuck_in) < pl->n)
		kgo_sleep(MS / 4);
	for (;;) {
		kgo_stats_get(&st, sizeof(st));
		if (!pl->parked || st.io_waiting >= (uint64_t)pl->n)
			break;
		kgo_sleep(MS / 4);
	}
	for (i = 0; i < pl->n && !pl->parked; i++)
		while (!tid_sleeping(atomic_load(&stuck_tid[i])))
			kgo_sleep(MS / 4);
}

/* An ordinary program: Gs, a channel, a timer, a mutex. */
static struct kgo_mutex after_mu = KGO_MUTEX_INIT;
static long after_sum;

static struct kgo_chan *after_in, *after_out;

static void after_g(void *arg)
{
	long v = 0;

	(void)arg;
	ASSERT_EQ(0, kgo_chan_recv(after_in, &v));
	kgo_sleep(MS / 10);
	kgo_mutex_lock(&after_mu);
	after_sum += v;
	kgo_mutex_unlock(&after_mu);
	ASSERT_EQ(0, kgo_chan_send(after_out, &v));
}

static void after_main(void *arg)
{
	long v, i;

	(void)arg;
	after_in = kgo_chan_make(sizeof(long), 0);
	after_out = kgo_chan_make(sizeof(long), 0);
	ASSERT_NONNULL(after_in);
	ASSERT_NONNULL(after_out);
	for (i = 1; i <= 100; i++)
		ASSERT_EQ(0, kgo_go(after_g, NULL));
	for (i = 1; i <= 100; i++)
		ASSERT_EQ(0, kgo_chan_send(after_in, &i));
	for (i = 1; i <= 100; i++)
		ASSERT_EQ(0, kgo_chan_recv(after_out, &v));
	kgo_chan_free(after_in);
	kgo_chan_free(after_out);
}

static void run_after(int maxprocs)
{
	struct kgo_config cfg = { .maxprocs = maxprocs };

	after_sum = 0;
	ASSERT_EQ(0, kgo_run(after_main, NULL, &cfg));
	EXPECT_EQ(5050, after_sum);
}

/* Run @pl at @maxprocs: kgo_run returns though its Gs stay blocked;
 * then a normal run. Return: false if the plan needed asynchronous
 * preemption and there was none. */
static bool run_stuck(struct stuck_plan *pl, int maxprocs, bool need_async)
{
	struct kgo_config cfg = { .maxprocs = maxprocs };

	stuck_pl = pl;
	atomic_store(&stuck_in, 0);
	atomic_store(&stuck_after, 0);
	for (int i = 0; i < NSTUCK; i++)
		atomic_store(&stuck_tid[i], 0);
	ASSERT_EQ(0, kgo_run(stuck_main, pl, &cfg));
	if (need_async && !pl->async_preempt)
		return false;
	for (int i = 0; i < pl->n && !pl->parked; i++)
		EXPECT_TRUE(tid_sleeping(atomic_load(&stuck_tid[i])));
	run_after(maxprocs);
	EXPECT_EQ(0, atomic_load(&stuck_after));
	return true;
}

/* Wait until @fd has nothing more to read (the abandoned thread took
 * it). */
static void wait_drained(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	while (poll(&pfd, 1, 0) == 1)
		usleep(1000);
}

TEST_TIMEOUT(abandon_kgo_syscall, 60)
{
	struct stuck_plan pl = { .call = { IN_KGO_SYSCALL }, .n = 1 };

	for (int p = 1; p <= 2; p++) {
		int fds[2];
		pid_t tid;

		ASSERT_EQ(0, pipe(fds));
		stuck_fd[0] = fds[0];
		run_stuck(&pl, p, false);
		/* The read returns now: its thread takes the byte, sees it
		 * was abandoned and parks, touching nothing. */
		tid = atomic_load(&stuck_tid[0]);
		ASSERT_EQ(1, write(fds[1], "x", 1));
		wait_drained(fds[0]);
		while (!tid_sleeping(tid))
			usleep(1000);
		run_after(p);
		EXPECT_EQ(0, atomic_load(&stuck_after));
		EXPECT_TRUE(tid_sleeping(tid));
		close(fds[0]);
		close(fds[1]);
	}
}

static void probe_main(void *arg)
{
	struct kgo_stats st;

	kgo_stats_get(&st, sizeof(st));
	*(int *)arg = st.async_preempt;
}

TEST_TIMEOUT(abandon_plain_read, 60)
{
	struct stuck_plan pl = { .call = { IN_READ }, .n = 1 };
	int async = 0;

	ASSERT_EQ(0, kgo_run(probe_main, &async, NULL));
	if (!async) {
		/* Then kgo_run would wait for the read, as kgo.h says. */
		SKIP(return, "no asynchronous preemption (%s)",
		     "KGO_DEBUG=asyncpreemptoff or ThreadSanitizer");
	}

	/* P=2: a G in read(2) keeps its P (that is what begin/_end are
	 * for); at P=1 main would never run again to return. */
	for (int p = 2; p <= 2; p++) {
		struct pollfd pfd;
		int fds[2];
		char c;

		ASSERT_EQ(0, pipe(fds));
		stuck_fd[0] = fds[0];
		ASSERT_TRUE(run_stuck(&pl, p, true));
		/* Parked before its read was restarted: the byte is ours. */
		ASSERT_EQ(1, write(fds[1], "y", 1));
		pfd.fd = fds[0];
		pfd.events = POLLIN;
		ASSERT_EQ(1, poll(&pfd, 1, -1));
		ASSERT_EQ(1, read(fds[0], &c, 1));
		EXPECT_EQ('y', c);
		run_after(p);
		EXPECT_EQ(0, atomic_load(&stuck_after));
		close(fds[0]);
		close(fds[1]);
	}
}

static int listener(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ASSERT_LE(0, fd);
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(0, bind(fd, (struct sockaddr *)addr, sizeof(*addr)));
	ASSERT_EQ(0, listen(fd, 4));
	ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)addr, &len));
	return fd;
}

static bool readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

TEST_TIMEOUT(abandon_syscall_backend, 60)
{
	struct stuck_plan pl = {
		.call = { IN_KGO_READ, IN_KGO_RECV, IN_KGO_ACCEPT }, .n = 3,
		.parked = true,
	};

	ASSERT_EQ(0, setenv("KGO_IOURING", "0", 1));
	for (int p = 1; p <= 2; p++) {
		int fds[2], sv[2], lfd, cfd;

		ASSERT_EQ(0, pipe(fds));
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
		lfd = listener(&stuck_addr);
		stuck_fd[0] = fds[0];
		stuck_fd[1] = sv[0];
		stuck_fd[2] = lfd;
		run_stuck(&pl, p, false);
		EXPECT_EQ(0, strncmp(kgo_io_backend(), "syscalls", 8));

		/* Data for each: the abandoned waits never take it. */
		ASSERT_EQ(1, write(fds[1], "x", 1));
		ASSERT_EQ(1, send(sv[1], "x", 1, 0));
		cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ASSERT_EQ(0, connect(cfd, (struct sockaddr *)&stuck_addr,
				     sizeof(stuck_addr)));
		run_after(p);
		EXPECT_EQ(0, atomic_load(&stuck_after));
		EXPECT_TRUE(readable(fds[0]));
		EXPECT_TRUE(readable(sv[0]));
		EXPECT_TRUE(readable(lfd));
		close(cfd);
		close(lfd);
		close(sv[0]);
		close(sv[1]);
		close(fds[0]);
		close(fds[1]);
	}
	unsetenv("KGO_IOURING");
}

#define KEEP_RUNS	40
/* Mappings a run may add: the abandoned M's thread stack and guard and
 * its G's chunk (2.9-3.3 measured); under TSan each thread costs ~20
 * more of TSan's own (20.5-21.6 measured), its shadow and metadata. */
#if defined(__SANITIZE_THREAD__)
#define KEEP_MAPS_A_RUN	64
#else
#define KEEP_MAPS_A_RUN	8
#endif

TEST_TIMEOUT(abandon_keeps_few_mappings, 60)
{
	struct stuck_plan pl = { .call = { IN_KGO_SYSCALL }, .n = 1 };
	struct kgo_config cfg = { .maxprocs = 2 };
	long before = 0, after;
	int fds[2], i;

	/* Read once per process, at the first kgo_run: this test's own
	 * process (the harness forks one a test). */
	ASSERT_EQ(0, setenv("KGO_NO_MADV_GUARD", "1", 1));
	ASSERT_EQ(0, pipe(fds));
	stuck_fd[0] = fds[0];
	stuck_pl = &pl;
	for (i = 0; i <= KEEP_RUNS; i++) {
		if (i == 1)	/* the pool, rings, arenas of a first run */
			before = count_maps();
		atomic_store(&stuck_in, 0);
		ASSERT_EQ(0, kgo_run(stuck_main, &pl, &cfg));
	}
	after = count_maps();
	TH_LOG("%d runs, each abandoning an M: %ld -> %ld mappings",
	       KEEP_RUNS, before, after);
	EXPECT_LE(after - before, KEEP_MAPS_A_RUN * KEEP_RUNS);
	EXPECT_EQ(0, atomic_load(&stuck_after));
	unsetenv("KGO_NO_MADV_GUARD");
}

TEST_HARNESS_MAIN
