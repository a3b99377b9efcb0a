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
	int blocked;		/* reads that began before the writer ran */
	bool blocking;
	char got;
};

static inline void writer(void *arg)
{
	struct pipe_pair *pp = arg;

	atomic_store(&pp->writer_ran, 1);
	ASSERT_EQ(1, write(pp->fds[1], "k", 1));
}

/*
 * Did the read about to start block the P? kgo_go() is a safe point
 * (kgo_checkpreempt): if the reader's slice is over there (sysmon times
 * it in wall time, and a loaded machine or TSan stretches it), the
 * reader yields and the writer, in runnext, runs first; the read then
 * returns at once and needs no handoff. If the writer has not run when
 * this is read, it cannot run before the read gives up the P: with one
 * P only the P's owner runs Gs, and between here and the P_SYSCALL of
 * kgo_syscall the reader makes no runtime call. So such a read is
 * followed by one counted handoff at least (sysmon's retake, a kicked
 * M's, or take_blocked_p; all count in kgo_stats.handoffs).
 */
static inline bool read_will_block(struct pipe_pair *pp)
{
	bool blocks = !atomic_load(&pp->writer_ran);

	pp->blocked += blocks;
	return blocks;
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
