/* SPDX-License-Identifier: MIT */
/*
 * kgo_run.h - what most runtime tests share: MS, and run(), which runs
 * fn(arg) as the main G of a kgo_run with @maxprocs Ps and fails the
 * test unless kgo_run returns 0. Include it after harness.h.
 */
#ifndef KGO_TEST_RUN_H
#define KGO_TEST_RUN_H

#include "kgo.h"

#define MS	1000000LL		/* nanoseconds in a millisecond */

static inline void run(void (*fn)(void *), void *arg, int maxprocs)
{
	struct kgo_config cfg = { .maxprocs = maxprocs };

	ASSERT_EQ(0, kgo_run(fn, arg, &cfg));
}

#endif /* KGO_TEST_RUN_H */
