// SPDX-License-Identifier: MIT
/*
 * Description: completion-to-running latency. A G arms a timerfd to
 * expire 0.5 ms later, starts a G that spins for 3 ms without a runtime
 * call, and reads the timerfd with kgo_read, which parks it on the ring.
 * The latency is from the timer's expiry to the reader running again,
 * on two Ps. Samples where the spinner ran on the M that submitted the
 * read (the reader's thread before it parked) measure a busy owner:
 * another M must notice the completion (io.c: the eventfd watcher).
 * The others (the spinner went to the other P; the submitting M slept
 * in its ring) measure an idle owner. Figures: p50 and p99 of each, in
 * us, and how many samples were of the busy kind. Go peer: gobench
 * io_wake (the timerfd through os.NewFile: Go's netpoller).
 */
#include <sys/syscall.h>
#include <sys/timerfd.h>

#include "io_bench.h"

#define SPIN_NS		(3 * 1000 * 1000LL)
#define EXPIRE_NS	(500 * 1000LL)

static struct {
	_Atomic pid_t spinner_tid;
	struct kgo_wg spun;
} w = { .spun = KGO_WG_INIT };

static int64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void spinner(void *arg)
{
	int64_t t0 = mono();

	(void)arg;
	atomic_store(&w.spinner_tid, (pid_t)syscall(SYS_gettid));
	while (mono() - t0 < SPIN_NS)
		;
	kgo_wg_done(&w.spun);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	int64_t *busy = calloc(o->n, 8), *idle = calloc(o->n, 8), at;
	struct itimerspec its = { 0 };
	long i, nb = 0, ni = 0;
	uint64_t ticks;
	pid_t tid;
	int tfd;

	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (!busy || !idle || tfd < 0)
		die("io_wake: setup");
	for (i = 0; i < o->n; i++) {
		atomic_store(&w.spinner_tid, 0);
		kgo_wg_add(&w.spun, 1);
		at = mono() + EXPIRE_NS;
		its.it_value.tv_sec = at / 1000000000;
		its.it_value.tv_nsec = at % 1000000000;
		if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL))
			die("io_wake: timerfd_settime");
		bench_go(o, spinner, NULL);
		tid = (pid_t)syscall(SYS_gettid);
		if (kgo_read(tfd, &ticks, 8) != 8)
			die("io_wake: read");
		if (atomic_load(&w.spinner_tid) == tid)
			busy[nb++] = mono() - at;
		else
			idle[ni++] = mono() - at;
		kgo_wg_wait(&w.spun);
	}
	qsort(busy, nb, 8, cmp64);
	qsort(idle, ni, 8, cmp64);
	if (nb) {
		emit("wake_busy_owner_p50_us", percentile(busy, nb, 50) / 1e3, "us");
		emit("wake_busy_owner_p99_us", percentile(busy, nb, 99) / 1e3, "us");
	}
	if (ni) {
		emit("wake_idle_owner_p50_us", percentile(idle, ni, 50) / 1e3, "us");
		emit("wake_idle_owner_p99_us", percentile(idle, ni, 99) / 1e3, "us");
	}
	emit("wake_busy_owner_samples", nb, "samples");
	/* Few: the spinner mostly lands on the reader's M (its runnext). */
	emit("wake_idle_owner_samples", ni, "samples");
	emit("wake_threads", threads(), "threads");
	free(busy);
	free(idle);
	close(tfd);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 2, .n = 300 };

	bench_parse(argc, argv, &o);
	bench_run(bench, &o);
	return 0;
}
