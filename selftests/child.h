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
 * child_spawn() - fork; the child, with its stdout and stderr into a
 * pipe, runs in_child(arg), which must not return (it execs or exits).
 * If @quit_on is not NULL, the parent sends the child SIGQUIT once the
 * child has written that string (a dump on demand, when the child says
 * it is ready for it: no timing guess). Return: the wait status, -1 if
 * fork or pipe failed; out gets what the child wrote (NUL-terminated,
 * cut at n - 1 bytes).
 */
static inline int child_spawn(void (*in_child)(void *), void *arg,
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
		close(pfd[0]);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		in_child(arg);
		_exit(127);
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

struct child_kgo {
	void (*fn)(void *);
	void *arg;
	int maxprocs;
};

static inline void child_kgo_run(void *arg)
{
	struct child_kgo *ck = arg;
	struct kgo_config cfg = { .maxprocs = ck->maxprocs };
	struct rlimit rl = { 0, 0 };

	setrlimit(RLIMIT_CORE, &rl);
	_exit(kgo_run(ck->fn, ck->arg, &cfg) == 0 ? 0 : 1);
}

/*
 * child_run() - child_spawn() of fn(arg) under kgo_run with @maxprocs
 * Ps and no core dump; the child exits 0 if kgo_run returns 0.
 */
static inline int child_run(void (*fn)(void *), void *arg, int maxprocs,
			    const char *quit_on, char *out, size_t n)
{
	struct child_kgo ck = { fn, arg, maxprocs };

	return child_spawn(child_kgo_run, &ck, quit_on, out, n);
}

#endif /* KGO_TEST_CHILD_H */
