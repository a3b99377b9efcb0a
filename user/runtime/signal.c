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
#include <sys/mman.h>
#include <unistd.h>

#include "runtime.h"
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

void signals_fini(void)
{
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	if (quit_installed)
		sigaction(SIGQUIT, &old_quit, NULL);
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
