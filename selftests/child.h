/* SPDX-License-Identifier: MIT */
/*
 * child.h - run a kgo program in a child process and keep what it says:
 * for tests of what the runtime prints before it dies (fatal errors,
 * deadlock reports, goroutine dumps).
 */
#ifndef KGO_TEST_CHILD_H
#define KGO_TEST_CHILD_H

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kgo.h"

/*
 * child_run() - fork; the child runs fn(arg) under kgo_run with
 * @maxprocs Ps, its stderr (and stdout) into a pipe, no core dump, and
 * exits 0 if kgo_run returns 0. If @quit_on is not NULL, the parent sends
 * the child SIGQUIT once the child has written that string (a dump on
 * demand, when the child says it is ready for it: no timing guess).
 * Return: the wait status, -1 if fork or pipe failed; out gets what
 * the child wrote (NUL-terminated, cut at n - 1 bytes).
 */
static inline int child_run(void (*fn)(void *), void *arg, int maxprocs,
			    const char *quit_on, char *out, size_t n)
{
	int pfd[2], status = 0;
	size_t got = 0;
	ssize_t r;
	pid_t pid;

	if (pipe(pfd))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct kgo_config cfg = { .maxprocs = maxprocs };
		struct rlimit rl = { 0, 0 };

		setrlimit(RLIMIT_CORE, &rl);
		close(pfd[0]);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		_exit(kgo_run(fn, arg, &cfg) == 0 ? 0 : 1);
	}
	close(pfd[1]);
	while (got < n - 1 && (r = read(pfd[0], out + got, n - 1 - got)) > 0) {
		got += r;
		out[got] = 0;
		if (quit_on && strstr(out, quit_on)) {
			kill(pid, SIGQUIT);
			quit_on = NULL;
		}
	}
	out[got] = 0;
	close(pfd[0]);
	waitpid(pid, &status, 0);
	return status;
}

#endif /* KGO_TEST_CHILD_H */
