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
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kgo.h"
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

TEST_HARNESS_MAIN
