// SPDX-License-Identifier: MIT
/*
 * Description: what sysmon costs while Gs make short blocking calls.
 * -w Gs (8) each loop -n times over nanosleep(50 us) and getppid, both
 * through kgo_syscall, so that sysmon keeps finding Ps in syscalls to
 * retake. Figures: sysmon's own CPU time (its thread, "kgo-sysmon", from
 * /proc/self/task/TID/schedstat) in ms and as a share of the wall time;
 * the whole process's CPU time; the wall time; the threads at the end;
 * sysmon's wakeups, the handoffs and the probes' kicks (kgo_stats).
 * Go peer: gobench sysmon_cpu (syscall.Nanosleep and Syscall(GETPPID);
 * its sysmon is the first thread the runtime starts).
 */
#include <dirent.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "bench.h"

static struct kgo_wg wg = KGO_WG_INIT;

/* CPU time of thread tid in ns, from schedstat; -1 if unknown. */
static int64_t thread_cpu_ns(long tid)
{
	char path[64];
	long long ns = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/schedstat", tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%lld", &ns) != 1)
		ns = -1;
	fclose(f);
	return ns;
}

static long sysmon_tid(void)
{
	struct dirent *de;
	char path[300], comm[64];
	long tid = -1;
	DIR *d = opendir("/proc/self/task");
	FILE *f;

	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) &&
		    !strncmp(comm, "kgo-sysmon", 10))
			tid = atol(de->d_name);
		fclose(f);
	}
	if (d)
		closedir(d);
	return tid;
}

static int64_t proc_cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static void worker(void *arg)
{
	const struct bench_opts *o = arg;
	struct timespec ts = { 0, 50000 };
	long i;

	for (i = 0; i < o->n; i++) {
		kgo_syscall(SYS_nanosleep, &ts, NULL);
		kgo_syscall(SYS_getppid);
	}
	kgo_wg_done(&wg);
}

static void bench(void *arg)
{
	struct bench_opts *o = arg;
	long tid = sysmon_tid();
	int64_t s0, p0, t0, s1, p1, t1;
	struct kgo_stats a, b;
	int i;

	if (tid < 0)
		die("sysmon_cpu: no kgo-sysmon thread");
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	kgo_stats_get(&a, sizeof(a));
	s0 = thread_cpu_ns(tid);
	p0 = proc_cpu_ns();
	t0 = kgo_now();
	kgo_wg_add(&wg, o->w);
	for (i = 0; i < o->w; i++)
		bench_go(o, worker, o);
	kgo_wg_wait(&wg);
	t1 = kgo_now();
	s1 = thread_cpu_ns(tid);
	p1 = proc_cpu_ns();
	kgo_stats_get(&b, sizeof(b));
	emit("sysmon_cpu_ms", (s1 - s0) / 1e6, "ms");
	emit("sysmon_cpu_pct", 100.0 * (s1 - s0) / (t1 - t0), "%");
	emit("proc_cpu_ms", (p1 - p0) / 1e6, "ms");
	emit("wall_ms", (t1 - t0) / 1e6, "ms");
	emit("threads", threads(), "threads");
	/* What woke whom: sysmon's wakeups, the handoffs, and (bpf mode)
	 * the probes' kicks. */
	emit("sysmon_wakeups", b.sysmon_wakeups - a.sysmon_wakeups, "");
	emit("handoffs", b.handoffs - a.handoffs, "");
	if (b.observe == KGO_OBSERVE_BPF)
		emit("kicks", b.observe_kicks + b.observe_kicks_m -
		     a.observe_kicks - a.observe_kicks_m, "");
	/* ... and sysmon's wakeups by cause: the probes' kicks, kicks an
	 * M passed on, and its own deadlines. */
	emit("wakeups_kick", b.sysmon_wakeups_kick - a.sysmon_wakeups_kick, "");
	emit("wakeups_passed", b.sysmon_wakeups_passed -
	     a.sysmon_wakeups_passed, "");
	emit("wakeups_timer", b.sysmon_wakeups_timer - a.sysmon_wakeups_timer,
	     "");
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .p = 2, .n = 10000, .w = 8 };

	bench_parse(argc, argv, &o);
	if (o.w < 1)
		bench_usage(argv[0]);
	bench_run(bench, &o);
	return 0;
}
