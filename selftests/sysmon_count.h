/* SPDX-License-Identifier: MIT */
/*
 * sysmon_count.h - how often sysmon woke while the runtime sat idle,
 * counted by a plain thread outside the runtime. Shared by
 * sysmon_test.c (deep_sleep) and io_net_test.c (netpoller_idle).
 *
 * Why a thread: a G that counts from its own sleep has to wake at the
 * end, and that takes a P, which wakes sysmon, which looks every 20 us
 * until the G runs. With both CPUs busy elsewhere (CI's other jobs) the
 * woken M waited ms for a CPU, and that end alone gave 56 wakeups
 * (`sysmon_test -t deep_sleep` beside two busy loops, 3 runs in 10).
 * The thread's window starts after the G's park and ends before its
 * wakeup, so it holds no P transition of the test's own.
 */
#ifndef KGO_SELFTESTS_SYSMON_COUNT_H
#define KGO_SELFTESTS_SYSMON_COUNT_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "kgo.h"

struct sysmon_count {
	int64_t settle_ns, window_ns;
	uint64_t wakeups;
};

static inline uint64_t sysmon_wakeups_now(void)
{
	struct kgo_stats st;

	memset(&st, 0, sizeof(st));
	kgo_stats_get(&st, sizeof(st));
	return st.sysmon_wakeups;
}

static inline void *sysmon_count_thread(void *arg)
{
	struct sysmon_count *c = arg;
	struct timespec settle = { c->settle_ns / 1000000000,
				   c->settle_ns % 1000000000 };
	struct timespec window = { c->window_ns / 1000000000,
				   c->window_ns % 1000000000 };

	nanosleep(&settle, NULL);
	c->wakeups = sysmon_wakeups_now();
	nanosleep(&window, NULL);
	c->wakeups = sysmon_wakeups_now() - c->wakeups;
	return NULL;
}

/*
 * sysmon_wakeups_idle() - from a G: sleep settle_ns + window_ns + 50 ms
 * and return sysmon's wakeups in [settle_ns, settle_ns + window_ns) of
 * it, or UINT64_MAX if the thread could not start.
 */
static inline uint64_t sysmon_wakeups_idle(int64_t settle_ns,
					   int64_t window_ns)
{
	struct sysmon_count c = { settle_ns, window_ns, 0 };
	pthread_t t;

	if (pthread_create(&t, NULL, sysmon_count_thread, &c))
		return UINT64_MAX;
	kgo_sleep(settle_ns + window_ns + 50000000);
	pthread_join(t, NULL);	/* the thread is done by now, or nearly */
	return c.wakeups;
}

#endif
