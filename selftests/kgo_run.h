/* SPDX-License-Identifier: MIT */
/*
 * kgo_run.h - what most runtime tests share: MS, and run(), which runs
 * fn(arg) as the main G of a kgo_run with @maxprocs Ps and fails the
 * test unless kgo_run returns 0, and chan_echo(). Include it after
 * harness.h.
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

/*
 * chan_echo() - the other half of a ping-pong: send back on @out each
 * long received on @in, until @in is closed or a send fails.
 */
static inline void chan_echo(struct kgo_chan *in, struct kgo_chan *out)
{
	long v;

	while (kgo_chan_recv(in, &v) == 0)
		if (kgo_chan_send(out, &v))
			break;
}

#endif /* KGO_TEST_RUN_H */
