// SPDX-License-Identifier: MIT
/*
 * tracedemo - a short run (about 50 ms) to look at with KGO_TRACE.
 *
 *	KGO_TRACE=trace.json tracedemo
 *
 * then open trace.json in Perfetto (see README.md, "Tracing"). Two Ps
 * (KGO_MAXPROCS overrides), and in that time:
 *
 *   - G "sleeper" makes a plain blocking syscall (nanosleep, 15 ms)
 *     through kgo_syscall(): its M blocks in the kernel holding the G,
 *     sysmon takes the P away from it ("handoff") and another M runs
 *     the Gs that were waiting for it;
 *   - two "spinners" burn CPU for 25 ms without calling kgo: each runs
 *     past its 10 ms slice and sysmon preempts it (SIGURG), so the two
 *     share a P in turns;
 *   - "ping" and "pong" pass a token through unbuffered channels every
 *     millisecond: parks and readies, and Gs moving between Ms.
 *
 * Prints nothing unless something fails.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <kgo.h>

#define MS	1000000LL

static struct kgo_wg wg = KGO_WG_INIT;
static struct kgo_chan *to_pong, *to_ping;
static _Atomic int failed;

static void sleeper(void *arg)
{
	struct timespec ts = { 0, 15 * MS };

	(void)arg;
	kgo_sleep(2 * MS);
	if (kgo_syscall(SYS_nanosleep, &ts, NULL))
		atomic_store(&failed, 1);
	kgo_wg_done(&wg);
}

static void spinner(void *arg)
{
	int64_t end;
	volatile unsigned long x = 0;

	(void)arg;
	kgo_sleep(4 * MS);
	end = kgo_now() + 25 * MS;
	/* Plain C between two looks at the clock: SIGURG lands here and
	 * not in the runtime (kgo_now), where a G is not preempted. */
	while (kgo_now() < end) {
		int i;

		for (i = 0; i < 100000; i++)
			x++;
	}
	kgo_wg_done(&wg);
}

static void ping(void *arg)
{
	int i, v;

	(void)arg;
	for (i = 0; i < 30; i++) {
		if (kgo_chan_send(to_pong, &i) || kgo_chan_recv(to_ping, &v))
			atomic_store(&failed, 1);
		kgo_sleep(MS);
	}
	v = -1;
	kgo_chan_send(to_pong, &v);
	kgo_wg_done(&wg);
}

static void pong(void *arg)
{
	int v;

	(void)arg;
	while (!kgo_chan_recv(to_pong, &v) && v >= 0)
		kgo_chan_send(to_ping, &v);
	kgo_wg_done(&wg);
}

static void main_g(void *arg)
{
	(void)arg;
	to_pong = kgo_chan_make(sizeof(int), 0);
	to_ping = kgo_chan_make(sizeof(int), 0);
	if (!to_pong || !to_ping) {
		atomic_store(&failed, 1);
		return;
	}
	kgo_wg_add(&wg, 5);
	kgo_go(sleeper, NULL);
	kgo_go(spinner, NULL);
	kgo_go(spinner, NULL);
	kgo_go(ping, NULL);
	kgo_go(pong, NULL);
	kgo_wg_wait(&wg);
	kgo_chan_free(to_pong);
	kgo_chan_free(to_ping);
}

int main(void)
{
	struct kgo_config cfg = { .maxprocs = 2 };

	if (kgo_run(main_g, NULL, &cfg) || atomic_load(&failed)) {
		fprintf(stderr, "tracedemo: failed\n");
		return 1;
	}
	return 0;
}
