// SPDX-License-Identifier: MIT
/*
 * Description: the syscall fast path. -n getpid calls through
 * kgo_syscall (entersyscall + syscall + exitsyscall, the P kept), then
 * -n plain syscall(SYS_getpid) for the floor. Figures: ns per call of
 * each. Go peer: gobench syscall (syscall.Syscall, which does
 * entersyscall/exitsyscall, and syscall.RawSyscall, which does not).
 */
#include <sys/syscall.h>

#include "bench.h"

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	int64_t t0, t1, t2;
	long i, sum = 0;

	t0 = kgo_now();
	for (i = 0; i < o->n; i++)
		sum += kgo_syscall(SYS_getpid);
	t1 = kgo_now();
	for (i = 0; i < o->n; i++)
		sum += syscall(SYS_getpid);
	t2 = kgo_now();
	if (sum != 2 * o->n * (long)getpid())
		die("syscall: wrong results");
	emit("getpid_entersyscall_ns", (double)(t1 - t0) / o->n, "ns");
	emit("getpid_raw_ns", (double)(t2 - t1) / o->n, "ns");
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 1, .n = 2000000 };

	bench_parse(argc, argv, &o);
	bench_run(bench, &o);
	return 0;
}
