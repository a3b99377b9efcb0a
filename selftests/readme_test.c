// SPDX-License-Identifier: MIT
/*
 * Description: the example of README.md's "Using it" works as the README
 * says. The Makefile cuts the block out of README.md and builds it
 * beside this test (readme_using), so that an example that no longer
 * compiles breaks the build, and one that no longer runs fails here.
 *
 *   using_runs		the example runs its Gs and exits 0.
 *   using_says_why	when kgo_run fails (here: too little address
 *			space for its stacks and threads, RLIMIT_AS), the
 *			example prints kgo_run's error and exits 1; it
 *			used to exit 1 with nothing said (no limit made
 *			it print anything, 3 runs in 3). A limit that
 *			kills the runtime itself (a thread it cannot
 *			start) shows the runtime's own line instead. The limit is
 *			searched for from 8 MiB up, 2 MiB at a time, so
 *			the test needs no figure of this machine: below
 *			it the loader fails, above it kgo_run succeeds.
 *			Skipped under the sanitizers (their shadow memory
 *			needs terabytes of address space).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "child.h"

static char using_path[PATH_MAX];

/* readme_using, beside this program. */
static const char *using(void)
{
	ssize_t n = readlink("/proc/self/exe", using_path,
			     sizeof(using_path) - 32);
	char *slash;

	if (n <= 0)
		return NULL;
	using_path[n] = 0;
	slash = strrchr(using_path, '/');
	if (!slash)
		return NULL;
	strcpy(slash + 1, "readme_using");
	return access(using_path, X_OK) ? NULL : using_path;
}

struct using_run {
	const char *path;
	rlim_t as;			/* RLIMIT_AS; 0: none */
};

static void exec_using(void *arg)
{
	struct using_run *u = arg;

	if (u->as) {
		struct rlimit rl = { u->as, u->as };

		setrlimit(RLIMIT_AS, &rl);
	}
	execl(u->path, u->path, (char *)NULL);
}

/* Run it with RLIMIT_AS @as (0: no limit); its output in @out. */
static int run_using(const char *path, rlim_t as, char *out, size_t n)
{
	struct using_run u = { path, as };

	return child_spawn(exec_using, &u, NULL, out, n);
}

TEST(using_runs)
{
	const char *path = using();
	char out[4096];
	int st;

	if (!path) {
		SKIP(return, "readme_using is not beside this test (make tests)");
	}
	st = run_using(path, 0, out, sizeof(out));
	if (st)
		TH_LOG("%s", out);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(using_says_why)
{
	const char *path = using();
	char out[4096];
	bool said = false;
	rlim_t as;
	int st;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	SKIP(return, "sanitizers need more address space than any limit here");
#endif
	if (!path) {
		SKIP(return, "readme_using is not beside this test (make tests)");
	}
	for (as = 8 << 20; as <= 256 << 20; as += 2 << 20) {
		st = run_using(path, as, out, sizeof(out));
		if (strstr(out, "error while loading shared libraries"))
			continue;	/* too little for the loader */
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			break;		/* enough for kgo_run */
		/* Failed: never in silence. Where kgo_run returned (not
		 * where the runtime died of a fatal error of its own, a
		 * "kgo: " line), the example printed its error. */
		EXPECT_NE(0, (int)strlen(out));
		if (strstr(out, "kgo_run: ")) {
			EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1);
			said = true;
		}
	}
	EXPECT_TRUE(said);
	EXPECT_LE(as, (rlim_t)256 << 20);	/* it ran in the end */
}

TEST_HARNESS_MAIN
