/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what the kgo benchmark programs share: their arguments, their
 * output, and a few measurements of the process.
 *
 * Every program, and its Go peer (go/, `gobench NAME`), takes the same
 * arguments and prints the same figures, one a line: "name value unit".
 * selftests/bench/run runs both and compares.
 *
 *	-p procs	Ps (kgo_config.maxprocs; Go's GOMAXPROCS)
 *	-n count	Gs, items or round trips, per program
 *	-w workers	producers and consumers each (chan_buf)
 *	-c cap		channel capacity (chan_buf)
 *	-m ms, -M ms	shortest and longest sleep (timers)
 *	-s bytes	G stack size; 0: kgo's default (Go ignores it)
 */
#ifndef KGO_BENCH_H
#define KGO_BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kgo.h>

struct bench_opts {
	int p;			/* -p */
	long n;			/* -n */
	int w;			/* -w */
	int c;			/* -c */
	int min_ms, max_ms;	/* -m, -M */
	size_t stack;		/* -s */
};

static inline void bench_usage(const char *name)
{
	fprintf(stderr, "usage: %s [-p procs] [-n count] [-w workers] "
		"[-c cap] [-m min_ms] [-M max_ms] [-s stack_bytes]\n", name);
	exit(2);
}

/*
 * bench_parse() - parse the common arguments over the program's defaults
 * (those of DESIGN.md, the same as in go/main.go).
 */
static inline void bench_parse(int argc, char **argv, struct bench_opts *o)
{
	int opt;

	while ((opt = getopt(argc, argv, "p:n:w:c:m:M:s:")) != -1) {
		switch (opt) {
		case 'p': o->p = atoi(optarg); break;
		case 'n': o->n = atol(optarg); break;
		case 'w': o->w = atoi(optarg); break;
		case 'c': o->c = atoi(optarg); break;
		case 'm': o->min_ms = atoi(optarg); break;
		case 'M': o->max_ms = atoi(optarg); break;
		case 's': o->stack = strtoul(optarg, NULL, 0); break;
		default:  bench_usage(argv[0]);
		}
	}
	if (optind < argc || o->p < 1 || o->n < 1)
		bench_usage(argv[0]);
}

/*
 * bench_run() - run main_fn as the main G on o->p Ps. The programs set
 * their P count here; the runner also exports KGO_MAXPROCS to the same.
 */
static inline void bench_run(void (*main_fn)(void *), struct bench_opts *o)
{
	struct kgo_config cfg = { .maxprocs = o->p };
	int ret;

	ret = kgo_run(main_fn, o, &cfg);
	if (ret) {
		fprintf(stderr, "kgo_run: %s\n", strerror(-ret));
		exit(1);
	}
}

/* bench_go() - start a G with -s's stack size; a failure ends the run. */
static inline void bench_go(const struct bench_opts *o, void (*fn)(void *),
			    void *arg)
{
	int ret = o->stack ? kgo_go_sized(fn, arg, o->stack) : kgo_go(fn, arg);

	if (ret) {
		fprintf(stderr, "kgo_go: %s\n", strerror(-ret));
		exit(1);
	}
}

static inline void emit(const char *name, double value, const char *unit)
{
	printf("%s %.6g %s\n", name, value, unit);
	fflush(stdout);
}

static inline void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* proc_status() - a number field of /proc/self/status, or -1. */
static inline long proc_status(const char *field)
{
	size_t len = strlen(field);
	char line[256];
	long v = -1;
	FILE *f;

	f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, field, len) && line[len] == ':') {
			v = atol(line + len + 1);
			break;
		}
	}
	fclose(f);
	return v;
}

/* Peak resident set (VmHWM) in MiB. */
static inline double max_rss_mb(void)
{
	return proc_status("VmHWM") / 1024.0;
}

static inline double threads(void)
{
	return proc_status("Threads");
}

/* The hash behind the timers bench's durations (go/proc.go has it too). */
static inline uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Nearest-rank percentile q (0-100) of sorted v[0..n). */
static inline int64_t percentile(const int64_t *v, long n, int q)
{
	long i = (q * n + 99) / 100 - 1;

	return v[i < 0 ? 0 : i];
}

#endif /* KGO_BENCH_H */
