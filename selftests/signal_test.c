// SPDX-License-Identifier: MIT
/*
 * Description: signals as channel values (kgo_signal_notify and
 * kgo_signal_stop, user/runtime/signal.c): Go's os/signal.Notify.
 *
 *   deliver		SIGUSR1 sent to the process arrives on the channel
 *			as its number.
 *   masked_in_g	the program blocks SIGTERM before kgo_run (every M
 *			inherits that mask) and again in its main G with
 *			pthread_sigmask: SIGTERM still arrives on the
 *			channel (before: SIGTERM killed the process, 3
 *			runs in 3).
 *   multiple		three signals on one channel, each arrives; one
 *			signal notified on two channels reaches both.
 *   stop		after kgo_signal_stop the channel gets nothing and
 *			the program's own handler, installed before
 *			kgo_signal_notify, runs again; a second stop says
 *			-ENOENT.
 *   full		a signal that finds the channel full is dropped
 *			(Go does the same), the next one is sent.
 *   before_after_run	notified and sent before kgo_run: waits in the
 *			buffer and is received in the main G; sent after
 *			kgo_run returned: arrives too.
 *   select_ticker	kgo_select on a ticker and the signal channel:
 *			ticks come, then the signal wins.
 *   no_false_deadlock	the only G waits on the signal channel and a
 *			thread sends the signal later: no "deadlock!"
 *			report; after kgo_signal_stop a G that waits for
 *			ever is reported as a deadlock again.
 *   einval		bad numbers, signals no one may catch, the runtime's
 *			own, channels of the wrong element size.
 *
 * Every wait here is for an event (a value on a channel, a flag set by
 * a handler); none depends on how long anything takes.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "kgo.h"
#include "harness.h"
#include "kgo_run.h"
#include "child.h"

static struct kgo_chan *notified(size_t cap, const int *sigs, int n)
{
	struct kgo_chan *c = kgo_chan_make(sizeof(int), cap);

	ASSERT_NONNULL(c);
	ASSERT_EQ(0, kgo_signal_notify(c, sigs, n));
	return c;
}

/* Stop the notification of @c and free it. */
static void unnotify(struct kgo_chan *c)
{
	EXPECT_EQ(0, kgo_signal_stop(c));
	kgo_chan_free(c);
}

/* The next signal on @c; a bound of 60 s only so that a lost signal
 * fails the test with a line rather than the harness's timeout. */
static int next_sig(struct kgo_chan *c)
{
	int sig = 0;

	EXPECT_EQ(0, kgo_chan_recv_dl(c, &sig, kgo_now() + 60000 * MS));
	return sig;
}

/* ------------------------------------------------------------------ */

static void deliver_main(void *arg)
{
	int sigs[] = { SIGUSR1 };
	struct kgo_chan *c = notified(1, sigs, 1);

	(void)arg;
	ASSERT_EQ(0, kill(getpid(), SIGUSR1));
	EXPECT_EQ(SIGUSR1, next_sig(c));
	unnotify(c);
}

TEST(deliver)
{
	run(deliver_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

static void masked_main(void *arg)
{
	int sigs[] = { SIGTERM };
	struct kgo_chan *c;
	sigset_t set;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	ASSERT_EQ(0, pthread_sigmask(SIG_BLOCK, &set, NULL));
	c = notified(1, sigs, 1);
	ASSERT_EQ(0, kill(getpid(), SIGTERM));
	EXPECT_EQ(SIGTERM, next_sig(c));
	/* And again, the mask still blocked wherever the G runs now. */
	ASSERT_EQ(0, pthread_sigmask(SIG_BLOCK, &set, NULL));
	ASSERT_EQ(0, kill(getpid(), SIGTERM));
	EXPECT_EQ(SIGTERM, next_sig(c));
	unnotify(c);
}

TEST(masked_in_g)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	ASSERT_EQ(0, pthread_sigmask(SIG_BLOCK, &set, NULL));
	run(masked_main, NULL, 1);
}

/* ------------------------------------------------------------------ */

static void multiple_main(void *arg)
{
	int three[] = { SIGUSR1, SIGUSR2, SIGHUP }, one[] = { SIGUSR2 };
	struct kgo_chan *c = notified(4, three, 3), *d = notified(4, one, 1);
	int i;

	(void)arg;
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, kill(getpid(), three[i]));
		EXPECT_EQ(three[i], next_sig(c));
	}
	EXPECT_EQ(SIGUSR2, next_sig(d));
	unnotify(c);
	unnotify(d);
}

TEST(multiple)
{
	run(multiple_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

static _Atomic int own_handler_ran;

static void own_handler(int sig)
{
	(void)sig;
	atomic_fetch_add(&own_handler_ran, 1);
}

static void stop_main(void *arg)
{
	int sigs[] = { SIGUSR1 }, sig;
	struct kgo_chan *c = notified(4, sigs, 1);

	(void)arg;
	ASSERT_EQ(0, kill(getpid(), SIGUSR1));
	EXPECT_EQ(SIGUSR1, next_sig(c));
	EXPECT_EQ(0, atomic_load(&own_handler_ran));
	EXPECT_EQ(0, kgo_signal_stop(c));
	EXPECT_EQ(-ENOENT, kgo_signal_stop(c));
	ASSERT_EQ(0, kill(getpid(), SIGUSR1));
	while (atomic_load(&own_handler_ran) == 0)
		kgo_sleep(MS / 4);
	EXPECT_EQ(-EAGAIN, kgo_chan_recv_dl(c, &sig, 0));
	kgo_chan_free(c);
}

TEST(stop)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = own_handler;
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	run(stop_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

/*
 * The channel of one slot is notified first, the witness second: the
 * signal thread sends one signal to the channels in the order they were
 * notified, so once the witness has the second SIGUSR1, the send to the
 * full channel was tried (and dropped).
 */
static void full_main(void *arg)
{
	int sigs[] = { SIGUSR1 }, sig;
	struct kgo_chan *c = notified(1, sigs, 1);
	struct kgo_chan *witness = notified(4, sigs, 1);

	(void)arg;
	ASSERT_EQ(0, kill(getpid(), SIGUSR1));
	EXPECT_EQ(SIGUSR1, next_sig(witness));
	ASSERT_EQ(0, kill(getpid(), SIGUSR1));
	EXPECT_EQ(SIGUSR1, next_sig(witness));
	EXPECT_EQ(1, (long)kgo_chan_len(c));
	EXPECT_EQ(SIGUSR1, next_sig(c));
	EXPECT_EQ(-EAGAIN, kgo_chan_recv_dl(c, &sig, 0));
	/* Room again: the next one is sent. */
	ASSERT_EQ(0, kill(getpid(), SIGUSR1));
	EXPECT_EQ(SIGUSR1, next_sig(witness));
	EXPECT_EQ(SIGUSR1, next_sig(c));
	unnotify(c);
	unnotify(witness);
}

TEST(full)
{
	run(full_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

static void wait_len(struct kgo_chan *c, size_t n)
{
	while (kgo_chan_len(c) < n)
		usleep(250);
}

static void before_main(void *arg)
{
	EXPECT_EQ(SIGUSR2, next_sig(arg));
}

TEST(before_after_run)
{
	int sigs[] = { SIGUSR2 }, sig = 0;
	struct kgo_chan *c = notified(2, sigs, 1);

	ASSERT_EQ(0, kill(getpid(), SIGUSR2));
	wait_len(c, 1);
	run(before_main, c, 2);
	ASSERT_EQ(0, kill(getpid(), SIGUSR2));
	wait_len(c, 1);
	EXPECT_EQ(0, kgo_chan_recv_dl(c, &sig, 0));
	EXPECT_EQ(SIGUSR2, sig);
	unnotify(c);
}

/* ------------------------------------------------------------------ */

static void select_main(void *arg)
{
	int sigs[] = { SIGUSR1 }, sig = 0, ticks = 0, r;
	struct kgo_chan *c = notified(1, sigs, 1);
	struct kgo_timer *t = kgo_ticker_make(MS);
	int64_t when;
	struct kgo_case cs[2];

	(void)arg;
	ASSERT_NONNULL(t);
	memset(cs, 0, sizeof(cs));
	cs[0].ch = kgo_timer_chan(t);
	cs[0].op = KGO_RECV;
	cs[0].elem = &when;
	cs[1].ch = c;
	cs[1].op = KGO_RECV;
	cs[1].elem = &sig;
	for (;;) {
		r = kgo_select(cs, 2, -1);
		ASSERT_TRUE(r == 0 || r == 1);
		if (r == 1)
			break;
		if (++ticks == 3)
			ASSERT_EQ(0, kill(getpid(), SIGUSR1));
	}
	EXPECT_EQ(SIGUSR1, sig);
	EXPECT_GE(ticks, 3);
	kgo_timer_free(t);
	unnotify(c);
}

TEST(select_ticker)
{
	run(select_main, NULL, 2);
}

/* ------------------------------------------------------------------ */

/* A thread that is no G sends the signal once the main G waits. */
static void *late_kill(void *arg)
{
	(void)arg;
	usleep(200 * 1000);
	kill(getpid(), SIGUSR1);
	return NULL;
}

static void lonely_main(void *arg)
{
	int sigs[] = { SIGUSR1 };
	struct kgo_chan *c = notified(1, sigs, 1);
	pthread_t t;

	(void)arg;
	ASSERT_EQ(0, pthread_create(&t, NULL, late_kill, NULL));
	EXPECT_EQ(SIGUSR1, next_sig(c));
	pthread_join(t, NULL);
	unnotify(c);
}

static void stopped_main(void *arg)
{
	int sigs[] = { SIGUSR1 }, v;
	struct kgo_chan *c = notified(1, sigs, 1);

	(void)arg;
	ASSERT_EQ(0, kgo_signal_stop(c));
	kgo_chan_recv(c, &v);		/* nothing can send: a deadlock */
}

TEST(no_false_deadlock)
{
	char out[4096];
	int st;

	st = child_run(lonely_main, NULL, 1, NULL, out, sizeof(out));
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	EXPECT_NULL(strstr(out, "deadlock"));
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		TH_LOG("%s", out);

	st = child_run(stopped_main, NULL, 1, NULL, out, sizeof(out));
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	EXPECT_NONNULL(strstr(out, "all goroutines are asleep - deadlock!"));
}

/* ------------------------------------------------------------------ */

TEST(einval)
{
	int bad[] = { 0, -1, 65, 1000, SIGKILL, SIGSTOP, SIGURG, SIGSEGV,
		      SIGBUS, 32, 33 };
	int good[] = { SIGUSR1, 0 };
	struct kgo_chan *c = kgo_chan_make(sizeof(int), 1);
	struct kgo_chan *wide = kgo_chan_make(sizeof(long long), 1);
	unsigned i;

	ASSERT_NONNULL(c);
	ASSERT_NONNULL(wide);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TH_LOG("signal %d", bad[i]);
		EXPECT_EQ(-EINVAL, kgo_signal_notify(c, &bad[i], 1));
	}
	EXPECT_EQ(-EINVAL, kgo_signal_notify(NULL, good, 1));
	EXPECT_EQ(-EINVAL, kgo_signal_notify(c, NULL, 1));
	EXPECT_EQ(-EINVAL, kgo_signal_notify(c, good, 0));
	EXPECT_EQ(-EINVAL, kgo_signal_notify(wide, good, 1));
	/* All or nothing: a bad one after a good one changes nothing. */
	EXPECT_EQ(-EINVAL, kgo_signal_notify(c, good, 2));
	EXPECT_EQ(-ENOENT, kgo_signal_stop(c));
	EXPECT_EQ(-EINVAL, kgo_signal_stop(NULL));
	kgo_chan_free(c);
	kgo_chan_free(wide);
}

TEST_HARNESS_MAIN
