// SPDX-License-Identifier: MIT
/*
 * signal.c - the runtime's signal handlers.
 *
 * SIGSEGV/SIGBUS: a G that runs past the bottom of its stack faults in
 * the guard below it. The fault cannot be handled on the G's stack (it
 * is full), so every M has an alternate signal stack, and the handler
 * runs there: it names the G and its stack size, then lets the fault
 * kill the process with the default action (a core dump where enabled).
 * Faults that are not a kgo stack overflow go to the handler that was
 * installed before kgo_run, or get the default action.
 *
 * SIGQUIT: dump every G with its state and wait reason, then exit 2
 * (Go's behaviour), unless the program installed its own handler.
 *
 * SIGURG: asynchronous preemption; its handler is in preempt.c.
 *
 * The signals a program asks for with kgo_signal_notify: their handler
 * records them, the signal thread sends them on ("Signals as channel
 * values" below).
 *
 * Handlers are installed by kgo_run and the previous ones restored when
 * it returns.
 *
 * Signal masks: every M runs with the mask of the thread that called
 * kgo_run, with SIGSEGV, SIGBUS and SIGURG unblocked (Go's
 * minitSignalMask). An M inherits its creator's mask, and Ms are also
 * created by sysmon, which blocks everything; hence signals_minit sets
 * it. m0 gets its own mask back when kgo_run returns.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime.h"
#include "chan.h"
#include "traceback.h"

#define ALTSTACK_SIZE (64 * 1024)

static struct sigaction old_segv, old_bus, old_quit;
static bool quit_installed;
static sigset_t m_sigmask;	/* every M's mask; set in signals_init */
static sigset_t m0_oldmask;	/* m0's mask before kgo_run */

const sigset_t *signals_mmask(void)
{
	return &m_sigmask;
}

static void chain(int sig, siginfo_t *si, void *uc, struct sigaction *old)
{
	if (old->sa_flags & SA_SIGINFO) {
		if (old->sa_sigaction) {
			old->sa_sigaction(sig, si, uc);
			return;
		}
	} else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
		return;
	}
	/* Default action: reset and return, so the fault happens again
	 * and kills the process with the right signal. */
	signal(sig, SIG_DFL);
}

static void sigsegv_handler(int sig, siginfo_t *si, void *uc)
{
	stack_check_overflow(si->si_addr);
	chain(sig, si, uc, sig == SIGBUS ? &old_bus : &old_segv);
}

static void sigquit_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	traceback_sigquit(uc);		/* traceback.c: "SIGQUIT" */
}

int signals_init(void)
{
	struct sigaction sa;

	pthread_sigmask(SIG_SETMASK, NULL, &m_sigmask);
	sigdelset(&m_sigmask, SIGSEGV);
	sigdelset(&m_sigmask, SIGBUS);
	sigdelset(&m_sigmask, SIGURG);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigsegv_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &old_segv) ||
	    sigaction(SIGBUS, &sa, &old_bus))
		return -errno;

	/* Only take SIGQUIT if the program left it at its default. */
	sigaction(SIGQUIT, NULL, &old_quit);
	quit_installed = false;
	if (!(old_quit.sa_flags & SA_SIGINFO) &&
	    old_quit.sa_handler == SIG_DFL) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = sigquit_handler;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		quit_installed = sigaction(SIGQUIT, &sa, NULL) == 0;
	}
	return 0;
}

static void sigq_handover(int sig, const struct sigaction *was,
			  const struct sigaction *now);

void signals_fini(void)
{
	struct sigaction cur, ours;

	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	if (quit_installed) {
		/* A channel notified of SIGQUIT since kgo_run took it: when
		 * it stops, the program's action comes back, not the dump. */
		memset(&ours, 0, sizeof(ours));
		ours.sa_sigaction = sigquit_handler;
		sigaction(SIGQUIT, NULL, &cur);
		if ((cur.sa_flags & SA_SIGINFO) &&
		    cur.sa_sigaction == sigquit_handler)
			sigaction(SIGQUIT, &old_quit, NULL);
		else
			sigq_handover(SIGQUIT, &ours, &old_quit);
	}
	quit_installed = false;
}

/* Give the M an alternate signal stack, unless it has one already
 * (m0 may belong to a program that set its own). */
int signals_minit(struct m *mp)
{
	stack_t ss, old;

	pthread_sigmask(SIG_SETMASK, &m_sigmask, mp->is_m0 ? &m0_oldmask : NULL);
	if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
		return 0;
	mp->altstack = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (mp->altstack == MAP_FAILED) {
		mp->altstack = NULL;
		return -ENOMEM;
	}
	ss.ss_sp = mp->altstack;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL)) {
		munmap(mp->altstack, ALTSTACK_SIZE);
		mp->altstack = NULL;
		return -errno;
	}
	return 0;
}

void signals_mexit(struct m *mp)
{
	stack_t ss = { .ss_flags = SS_DISABLE };

	if (mp->is_m0)
		pthread_sigmask(SIG_SETMASK, &m0_oldmask, NULL);
	if (!mp->altstack)
		return;
	sigaltstack(&ss, NULL);
	munmap(mp->altstack, ALTSTACK_SIZE);
	mp->altstack = NULL;
}

/* ------------------------------------------------------------------ */
/* Signals as channel values                                          */
/* ------------------------------------------------------------------ */

/*
 * kgo_signal_notify: the protocol (after Go's runtime/sigqueue.go, which
 * has a G where we have a thread).
 *
 *   The handler, on whatever thread the kernel chose: sets the signal's
 *   bit in sigq.pending and writes the eventfd sigq.efd. Nothing else:
 *   no lock, no channel, nothing that is not async-signal-safe.
 *
 *   The signal thread, a pthread that is no M (started by the first
 *   kgo_signal_notify, alive for the rest of the process): reads the
 *   eventfd, takes sigq.pending with one exchange, and sends each
 *   signal in it to each channel watching it, with deadline 0 (a full
 *   channel drops it, as Go's Notify does), in the order the channels
 *   were notified, under sigq.lock. A signal that comes twice before
 *   the thread takes it is sent once (one bit per signal, as in Go).
 *
 * Masks: the runtime owns them. A G that blocks a signal with
 * sigprocmask blocks it on the M it runs on, and a program that blocked
 * it before kgo_run blocked it on every M (they start with the caller's
 * mask). The signal thread keeps exactly the notified signals unblocked
 * (sigq.unblock, set again at every wakeup), so there is always a
 * thread the kernel can deliver them to: if every other thread blocks
 * one, it waits pending in the process until the signal thread takes
 * it. Rejected: setting each M's mask again in schedule() costs a
 * syscall per switch, and an idle M's mask would change only when it
 * wakes.
 *
 * Deadlocks: while a channel is notified the signal thread counts as a
 * foreign thread (foreign_count), so checkdead stays quiet: a G waiting
 * for a signal may get it at any time (in Go, os/signal's G waits in a
 * syscall, with the same effect). After the last kgo_signal_stop a
 * deadlock is reported again.
 *
 * Lock order: sigq.lock, then a channel's lock, then sched.lock.
 */

#define SIGQ_MAX	64		/* signals 1..64, one bit each */
#define SIGQ_BIT(sig)	(1ULL << ((sig) - 1))

struct sigwatch {
	struct kgo_chan *c;
	uint64_t mask;			/* SIGQ_BIT of each signal */
	struct sigwatch *next;
};

static struct {
	pthread_mutex_t lock;		/* guards all but the atomics */
	struct sigwatch *watch;		/* in the order notified */
	uint64_t handled;		/* our handler is installed */
	struct sigaction old[SIGQ_MAX + 1]; /* what it replaced */
	bool started;			/* signal thread and efd exist */
	int efd;			/* written by the handler */
	_Atomic uint64_t pending;	/* handler sets, thread takes */
	_Atomic uint64_t unblock;	/* the thread's unblocked signals */
} sigq = { .lock = PTHREAD_MUTEX_INITIALIZER, .efd = -1 };

static void sigq_handler(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	uint64_t one = 1;

	(void)si;
	(void)uc;
	atomic_fetch_or(&sigq.pending, SIGQ_BIT(sig));
	if (write(sigq.efd, &one, sizeof(one)) < 0) {
		/* Only EAGAIN (counter full): the thread is awake anyway. */
	}
	errno = saved;
}

static void sigq_kick(void)
{
	uint64_t one = 1;

	if (write(sigq.efd, &one, sizeof(one)) < 0) {
		/* As in the handler. */
	}
}

/* Block all but the notified signals and the synchronous faults. */
static void sigq_setmask(uint64_t unblock)
{
	sigset_t set;
	int sig;

	sigfillset(&set);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	for (sig = 1; sig <= SIGQ_MAX; sig++)
		if (unblock & SIGQ_BIT(sig))
			sigdelset(&set, sig);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
}

static void sigq_send(uint64_t pend)
{
	struct sigwatch *w;
	int sig;

	pthread_mutex_lock(&sigq.lock);
	for (sig = 1; sig <= SIGQ_MAX; sig++) {
		if (!(pend & SIGQ_BIT(sig)))
			continue;
		for (w = sigq.watch; w; w = w->next)
			if (w->mask & SIGQ_BIT(sig))
				kgo_chan_send_dl(w->c, &sig, 0);
	}
	pthread_mutex_unlock(&sigq.lock);
}

static void *sigq_loop(void *arg)
{
	struct pollfd pfd = { .fd = sigq.efd, .events = POLLIN };
	uint64_t v, unblock = 0, want, pend;

	(void)arg;
	kgo_tls_foreign = 1;		/* counted by kgo_signal_notify */
	for (;;) {
		want = atomic_load(&sigq.unblock);
		if (want != unblock) {
			unblock = want;
			sigq_setmask(unblock);
		}
		/*
		 * poll, then read: TSan runs a handler at once only on a
		 * thread inside a call it knows to block, which poll is
		 * and read (gcc 12's libtsan) is not; a SIGTERM that came
		 * here in read waited for ever (signal_test masked_in_g,
		 * TSan build, 4 runs in 4).
		 */
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			kgo_throw("sigq_loop: poll failed");
		if (read(sigq.efd, &v, sizeof(v)) < 0 && errno != EAGAIN &&
		    errno != EINTR)
			kgo_throw("sigq_loop: eventfd read failed");
		pend = atomic_exchange(&sigq.pending, 0);
		if (pend)
			sigq_send(pend);
	}
	return NULL;
}

/* sigq.lock held. Start the signal thread once, with every signal
 * blocked: it unblocks the notified ones itself. */
static int sigq_start(void)
{
	sigset_t all, old;
	pthread_t t;
	int err;

	if (sigq.started)
		return 0;
	sigq.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sigq.efd < 0)
		return -errno;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&t, NULL, sigq_loop, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		close(sigq.efd);
		sigq.efd = -1;
		return -err;
	}
	pthread_detach(t);
	sigq.started = true;
	return 0;
}

static bool sigq_is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == sigq_handler;
}

/* sigq.lock held. Give the signals in @bits back to the actions our
 * handler replaced, unless the program has set another since. */
static void sigq_restore(uint64_t bits)
{
	struct sigaction cur;
	int sig;

	for (sig = 1; sig <= SIGQ_MAX; sig++) {
		if (!(bits & sigq.handled & SIGQ_BIT(sig)))
			continue;
		if (!sigaction(sig, NULL, &cur) && sigq_is_ours(&cur))
			sigaction(sig, &sigq.old[sig], NULL);
		sigq.handled &= ~SIGQ_BIT(sig);
	}
}

/* signals_fini: the action that kgo_signal_stop will give @sig back is
 * @now where it was @was (an action of the runtime that is gone). */
static void sigq_handover(int sig, const struct sigaction *was,
			  const struct sigaction *now)
{
	pthread_mutex_lock(&sigq.lock);
	if ((sigq.handled & SIGQ_BIT(sig)) &&
	    (sigq.old[sig].sa_flags & SA_SIGINFO) &&
	    sigq.old[sig].sa_sigaction == was->sa_sigaction)
		sigq.old[sig] = *now;
	pthread_mutex_unlock(&sigq.lock);
}

/* A signal a channel may be notified of? */
static bool sigq_valid(int sig)
{
	if (sig < 1 || sig > SIGQ_MAX)
		return false;
	switch (sig) {
	case SIGKILL:
	case SIGSTOP:
	case SIGURG:			/* preemption (preempt.c) */
	case SIGSEGV:
	case SIGBUS:			/* stack overflow (above) */
		return false;
	}
	/* glibc keeps 32 and 33 for itself (cancellation, setxid). */
	return sig < 32 || sig >= SIGRTMIN;
}

int kgo_signal_notify(struct kgo_chan *c, const int *sigs, int n)
{
	struct sigwatch **pw, *w;
	struct sigaction sa;
	uint64_t want = 0, fresh;
	bool first;
	int i, sig, err;

	if (!c || !sigs || n < 1 || c->elemsize != sizeof(int))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!sigq_valid(sigs[i]))
			return -EINVAL;
		want |= SIGQ_BIT(sigs[i]);
	}

	pthread_mutex_lock(&sigq.lock);
	err = sigq_start();
	if (err)
		goto out;
	first = !sigq.watch;
	for (pw = &sigq.watch; *pw && (*pw)->c != c; pw = &(*pw)->next)
		;
	w = *pw;
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w) {
			err = -ENOMEM;
			goto out;
		}
		w->c = c;
		*pw = w;
		if (first)
			foreign_count(1);
	}
	w->mask |= want;
	/* The thread unblocks them before our handler is in: one that
	 * comes in between gets the action it had. */
	atomic_fetch_or(&sigq.unblock, want);
	sigq_kick();

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigq_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	fresh = want & ~sigq.handled;
	for (sig = 1; sig <= SIGQ_MAX; sig++) {
		if (!(fresh & SIGQ_BIT(sig)))
			continue;
		if (sigaction(sig, &sa, &sigq.old[sig])) {
			err = -errno;	/* sigq_valid let through a bad one */
			break;
		}
		sigq.handled |= SIGQ_BIT(sig);
	}
out:
	pthread_mutex_unlock(&sigq.lock);
	return err;
}

int kgo_signal_stop(struct kgo_chan *c)
{
	struct sigwatch **pw, *w;
	uint64_t still = 0;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&sigq.lock);
	for (pw = &sigq.watch; *pw && (*pw)->c != c; pw = &(*pw)->next)
		;
	w = *pw;
	if (!w) {
		pthread_mutex_unlock(&sigq.lock);
		return -ENOENT;
	}
	*pw = w->next;
	free(w);
	for (w = sigq.watch; w; w = w->next)
		still |= w->mask;
	sigq_restore(~still);
	atomic_store(&sigq.unblock, still);
	sigq_kick();
	w = sigq.watch;
	pthread_mutex_unlock(&sigq.lock);
	if (!w)
		foreign_count(-1);
	return 0;
}
