/* SPDX-License-Identifier: MIT */
/*
 * handoff_pair.h - the pipe a G blocks on and the G that writes it, for
 * the handoff tests of sysmon_test.c and observe_test.c: with one P the
 * writer runs only if the blocked reader's P is handed off. Include
 * after harness.h.
 */
#ifndef KGO_SELFTESTS_HANDOFF_PAIR_H
#define KGO_SELFTESTS_HANDOFF_PAIR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "kgo.h"

struct pipe_pair {
	int fds[2];
	atomic_int writer_ran;
	bool blocking;
	char got;
};

static inline void writer(void *arg)
{
	struct pipe_pair *pp = arg;

	atomic_store(&pp->writer_ran, 1);
	ASSERT_EQ(1, write(pp->fds[1], "k", 1));
}

/* kgo_stats of the running (or last) runtime, zeroed past what the
 * library fills. */
static inline struct kgo_stats stats(void)
{
	struct kgo_stats st;

	memset(&st, 0, sizeof(st));
	kgo_stats_get(&st, sizeof(st));
	return st;
}

#endif /* KGO_SELFTESTS_HANDOFF_PAIR_H */
