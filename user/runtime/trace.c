// SPDX-License-Identifier: MIT
/*
 * trace.c - KGO_TRACE: scheduler events as a Chrome trace-event file.
 *
 * KGO_TRACE=path makes kgo_run record what the scheduler does (Gs
 * created, run, parked, readied, preempted; syscalls entered and left;
 * Ps handed off; Gs stolen) and write it to path when kgo_run returns,
 * as the JSON that chrome://tracing and Perfetto (ui.perfetto.dev)
 * open. Each M is a thread of the trace: a G running on it is a slice
 * named after the G ("G12", "G12 worker" once it has called
 * kgo_set_name: the last name it set), a syscall is a slice nested in it, and the
 * rest are instants on the thread that saw them. sysmon is a thread of
 * its own.
 *
 * Kernel blocks (bpf mode): the probes keep each M's last block in the
 * kernel (bpf/kgo_observe.h: blk_state, blk_end). When a syscall or a
 * G's run ends on an M whose block count moved since it began, the
 * last such block is drawn on the M's row as a slice "kernel block"
 * (or "kernel block (iowait)"), inside the syscall or the G it stopped:
 * the off-CPU time in the kernel that no user-space trace shows. Only
 * the last block of each syscall or run is drawn (its args say how
 * many there were); reading the record costs two loads.
 *
 * Cost. Off, every event site is one relaxed load of trace_on and a
 * branch that is never taken (TRACE() in trace.h). On, an event is a
 * clock read and a 32-byte store into the calling thread's own buffer:
 * no lock, no shared cache line. Buffers are chains of 1 MiB chunks
 * taken with mmap, so an event may be recorded anywhere, the SIGURG
 * handler included (preempt.c), and never recurses into malloc. A
 * thread records at most TRACE_MAX_CHUNKS chunks (2M events); later
 * events are counted as dropped, and the count is written in the file.
 *
 *   tls_tb --> struct tbuf --> chunk --> chunk --> ... (per thread)
 *                  |
 *   bufs ------> tbuf -> tbuf -> ...   (every buffer of this run, for
 *                                       the writer; pushed by CAS)
 *
 * A thread finds its buffer through a thread-local pointer, tagged with
 * the run (kgo_run may be called again; m0's thread outlives a run).
 * The file is written by trace_stop(), called when every M and sysmon
 * have stopped, so nothing writes a buffer while it is read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "runtime.h"
#include "observe.h"
#include "trace.h"

#define CHUNK_BYTES		(1u << 20)
#define TRACE_MAX_CHUNKS	64

struct tev {
	int64_t ts;
	uint32_t ev;
	uint32_t pad;
	uint64_t g, arg;
};

struct tchunk {
	struct tchunk *next;
	uint32_t n;
	struct tev ev[];
};

#define CHUNK_EVENTS \
	((CHUNK_BYTES - sizeof(struct tchunk)) / sizeof(struct tev))

struct tbuf {
	struct tbuf *next;		/* trace.bufs; pushed by CAS */
	uint64_t gen;			/* run that owns it */
	int tid;			/* M id, or 100000+ for non-M threads */
	char name[24];
	struct tchunk *head, *cur;	/* owner thread only */
	uint32_t nchunks;
	uint64_t dropped;
	uint64_t nblock;		/* the M's kernel blocks at the last
					 * syscall enter or G start; owner */
};

_Atomic bool trace_on;

static struct {
	FILE *f;
	char *path;
	uint64_t gen;			/* run number; 0: never started */
	int64_t t0;
	_Atomic(struct tbuf *) bufs;
	_Atomic int nothers;		/* threads without an M seen */
} trace;

static __thread struct tbuf *tls_tb __attribute__((tls_model("initial-exec")));
static __thread uint64_t tls_gen __attribute__((tls_model("initial-exec")));

static void *map(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Name a buffer "M<id>" without stdio (we may be in a signal handler). */
static void name_m(char *buf, int id)
{
	char digits[12];
	int n = 0;

	*buf++ = 'M';
	do {
		digits[n++] = '0' + id % 10;
		id /= 10;
	} while (id && n < (int)sizeof(digits));
	while (n)
		*buf++ = digits[--n];
	*buf = 0;
}

/* The calling thread's buffer for this run, made on its first event. */
static struct tbuf *tbuf_get(void)
{
	struct tbuf *tb = tls_tb;
	struct m *mp;

	/* The tag lives beside the pointer: a buffer of an earlier run
	 * has been unmapped. */
	if (likely(tb && tls_gen == trace.gen))
		return tb;
	tb = map(sizeof(*tb));
	if (!tb)
		return NULL;
	tb->gen = trace.gen;
	mp = getm();
	if (mp) {
		tb->tid = mp->id;
		name_m(tb->name, mp->id);
	} else {
		/* Only sysmon records events without an M. */
		tb->tid = 100000 + atomic_fetch_add_explicit(&trace.nothers, 1,
						memory_order_relaxed);
		strcpy(tb->name, "sysmon");
	}
	/* Release: the buffer's fields are set before the writer can
	 * reach it (the writer also runs only after every thread stopped). */
	tb->next = atomic_load_explicit(&trace.bufs, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&trace.bufs, &tb->next,
			tb, memory_order_release, memory_order_relaxed))
		;
	tls_tb = tb;
	tls_gen = trace.gen;
	return tb;
}

static void tev_put(struct tbuf *tb, int64_t ts, enum trace_ev ev,
		    uint64_t g, uint64_t arg)
{
	struct tchunk *c = tb->cur;
	struct tev *e;

	if (unlikely(!c || c->n == CHUNK_EVENTS)) {
		struct tchunk *nc = NULL;

		if (tb->nchunks < TRACE_MAX_CHUNKS)
			nc = map(CHUNK_BYTES);
		if (!nc) {
			tb->dropped++;
			if (ev == TR_GO_NAME)
				free((void *)(uintptr_t)arg);
			return;
		}
		tb->nchunks++;
		if (c)
			c->next = nc;
		else
			tb->head = nc;
		tb->cur = c = nc;
	}
	e = &c->ev[c->n];
	e->ts = ts;
	e->ev = ev;
	e->g = g;
	e->arg = arg;
	c->n++;
}

void trace_event(enum trace_ev ev, uint64_t g, uint64_t arg)
{
	struct tbuf *tb = tbuf_get();
	struct kblock kb;

	if (!tb)
		return;
	/* The kernel's view: blocks since the syscall or G began. */
	if (ev == TR_SYSCALL_ENTER || ev == TR_GO_START) {
		observe_last_block(&tb->nblock, NULL);
	} else if ((ev == TR_SYSCALL_EXIT || ev == TR_GO_STOP) &&
		   observe_last_block(&tb->nblock, &kb)) {
		tev_put(tb, kb.start, TR_KBLOCK, 0,
			(uint64_t)(kb.end - kb.start) << 8 |
			(kb.n > 127 ? 127 : kb.n) | (kb.iowait ? 0x80 : 0));
	}
	tev_put(tb, nanotime(), ev, g, arg);
}

int trace_start(void)
{
	const char *path = getenv("KGO_TRACE");

	if (!path || !*path)
		return 0;
	trace.f = fopen(path, "w");
	if (!trace.f) {
		kgo_printf("kgo: KGO_TRACE=%s: %s; not tracing\n", path,
			   strerror(errno));
		return 0;
	}
	trace.path = strdup(path);
	trace.gen++;
	trace.t0 = nanotime();
	atomic_store_explicit(&trace.bufs, NULL, memory_order_relaxed);
	atomic_store_explicit(&trace.nothers, 0, memory_order_relaxed);
	/* Before any M or sysmon exists: pthread_create orders it. */
	atomic_store_explicit(&trace_on, true, memory_order_relaxed);
	return 0;
}

/*
 * Names of Gs for the writer (TR_GO_NAME): goid -> the name of the
 * latest event, in an open-addressing table of a power-of-two size at
 * least twice the events, built by trace_stop before it writes.
 */
static struct {
	uint64_t *id;
	const char **name;
	int64_t *ts;
	size_t mask;
} gnames;

static size_t gnames_slot(uint64_t id)
{
	size_t i = (size_t)(id * 0x9e3779b97f4a7c15ull) & gnames.mask;

	while (gnames.id[i] && gnames.id[i] != id)
		i = (i + 1) & gnames.mask;
	return i;
}

/* Call fn on every TR_GO_NAME event of the run. */
static void names_visit(struct tbuf *bufs, void (*fn)(struct tev *e))
{
	struct tchunk *c;
	struct tbuf *tb;
	uint32_t k;

	for (tb = bufs; tb; tb = tb->next)
		for (c = tb->head; c; c = c->next)
			for (k = 0; k < c->n; k++)
				if (c->ev[k].ev == TR_GO_NAME)
					fn(&c->ev[k]);
}

static size_t gnames_n;

static void gname_count(struct tev *e)
{
	(void)e;
	gnames_n++;
}

static void gname_put(struct tev *e)
{
	size_t i;

	if (!e->g || !e->arg)
		return;
	i = gnames_slot(e->g);
	if (gnames.id[i] && gnames.ts[i] > e->ts)
		return;
	gnames.id[i] = e->g;
	gnames.ts[i] = e->ts;
	gnames.name[i] = (const char *)(uintptr_t)e->arg;
}

static void gnames_build(struct tbuf *bufs)
{
	size_t cap = 16;

	gnames_n = 0;
	names_visit(bufs, gname_count);
	if (!gnames_n)
		return;
	while (cap < 2 * gnames_n)
		cap *= 2;
	gnames.id = calloc(cap, sizeof(*gnames.id));
	gnames.name = calloc(cap, sizeof(*gnames.name));
	gnames.ts = calloc(cap, sizeof(*gnames.ts));
	if (!gnames.id || !gnames.name || !gnames.ts) {
		/* Unnamed, then: the events still go out. */
		free(gnames.id);
		free(gnames.name);
		free(gnames.ts);
		memset(&gnames, 0, sizeof(gnames));
		return;
	}
	gnames.mask = cap - 1;
	names_visit(bufs, gname_put);
}

static const char *gname(uint64_t id)
{
	size_t i;

	if (!gnames.id || !id)
		return NULL;
	i = gnames_slot(id);
	return gnames.id[i] ? gnames.name[i] : NULL;
}

static void gname_free(struct tev *e)
{
	free((void *)(uintptr_t)e->arg);
}

static void gnames_free(struct tbuf *bufs)
{
	names_visit(bufs, gname_free);
	free(gnames.id);
	free(gnames.name);
	free(gnames.ts);
	memset(&gnames, 0, sizeof(gnames));
}

/* A JSON string's contents: quotes, backslashes, controls escaped. */
static void put_str(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
}

/* Microseconds since the start, with ns precision, as Chrome wants. */
static void put_ts(FILE *f, int64_t ts)
{
	int64_t d = ts - trace.t0;

	if (d < 0)
		d = 0;
	fprintf(f, "\"ts\":%lld.%03lld", (long long)(d / 1000),
		(long long)(d % 1000));
}

static void put_event(FILE *f, const struct tbuf *tb, const struct tev *e)
{
	unsigned long long g = e->g, a = e->arg;

	fprintf(f, ",\n{\"pid\":1,\"tid\":%d,", tb->tid);
	put_ts(f, e->ts);
	switch (e->ev) {
	case TR_GO_START:
		fprintf(f, ",\"ph\":\"B\",\"name\":\"G%llu", g);
		if (gname(g)) {
			fputc(' ', f);
			put_str(f, gname(g));
		}
		fprintf(f, "\",\"cat\":\"g\",\"args\":{\"g\":%llu,\"p\":%llu}}",
			g, a);
		return;
	case TR_GO_STOP:
		fprintf(f, ",\"ph\":\"E\"}");
		return;
	case TR_SYSCALL_ENTER:
		fprintf(f, ",\"ph\":\"B\",\"name\":\"syscall\",\"cat\":"
			"\"syscall\",\"args\":{\"g\":%llu,\"blocking\":%llu}}",
			g, a);
		return;
	case TR_SYSCALL_EXIT:
		fprintf(f, ",\"ph\":\"E\",\"args\":{\"fast\":%llu}}", a);
		return;
	case TR_KBLOCK:
		/* ts: the block's start; arg: its duration << 8 |
		 * iowait 0x80 | blocks in the syscall or run (to 127). */
		fprintf(f, ",\"ph\":\"X\",\"dur\":%llu.%03llu,\"name\":"
			"\"kernel block%s\",\"cat\":\"kernel\",\"args\":"
			"{\"blocks\":%llu}}", (a >> 8) / 1000, (a >> 8) % 1000,
			a & 0x80 ? " (iowait)" : "", a & 0x7f);
		return;
	default:
		break;
	}
	fprintf(f, ",\"ph\":\"i\",\"s\":\"t\",");
	switch (e->ev) {
	case TR_GO_CREATE:
		fprintf(f, "\"name\":\"go create\",\"args\":{\"g\":%llu,"
			"\"parent\":%llu}}", g, a);
		break;
	case TR_GO_PARK:
		fprintf(f, "\"name\":\"park\",\"args\":{\"g\":%llu,"
			"\"reason\":\"%s\"}}", g,
			a < WAIT_NREASONS ? waitreason_str[a] : "?");
		break;
	case TR_GO_READY:
		fprintf(f, "\"name\":\"ready\",\"args\":{\"g\":%llu,"
			"\"by\":%llu}}", g, a);
		break;
	case TR_HANDOFF:
		fprintf(f, "\"name\":\"handoff\",\"args\":{\"p\":%llu,"
			"\"kernel_observed\":%llu}}", g, a);
		break;
	case TR_PREEMPT:
		fprintf(f, "\"name\":\"preempt\",\"args\":{\"g\":%llu,"
			"\"async\":%llu}}", g, a);
		break;
	case TR_STEAL:
		fprintf(f, "\"name\":\"steal\",\"args\":{\"from_p\":%llu,"
			"\"n\":%llu}}", g, a);
		break;
	case TR_GO_NAME:
		fprintf(f, "\"name\":\"name\",\"args\":{\"g\":%llu,"
			"\"name\":\"", g);
		if (a)
			put_str(f, (const char *)(uintptr_t)a);
		fprintf(f, "\"}}");
		break;
	default:
		fprintf(f, "\"name\":\"event %u\"}", e->ev);
		break;
	}
}

void trace_stop(void)
{
	struct tbuf *tb, *next;
	uint64_t dropped = 0;
	FILE *f = trace.f;

	if (!f)
		return;
	atomic_store_explicit(&trace_on, false, memory_order_relaxed);
	/* Acquire pairs with the CAS in tbuf_get(). */
	tb = atomic_load_explicit(&trace.bufs, memory_order_acquire);
	/* "ts" is in microseconds whatever displayTimeUnit says (the
	 * format's rule, which Perfetto follows since 2022; before that it
	 * read "ns" here as the unit of "ts"). "ns" still matters to
	 * Catapult (chrome://tracing): it nests slices at the precision of
	 * the display unit, and at "ms" (1 us) it puts an instant that
	 * follows a G's end within the same microsecond inside the G. */
	gnames_build(tb);
	fprintf(f, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n"
		"{\"pid\":1,\"ph\":\"M\",\"name\":\"process_name\","
		"\"args\":{\"name\":\"kgo\"}}");
	for (; tb; tb = tb->next) {
		struct tchunk *c;
		uint32_t i;

		fprintf(f, ",\n{\"pid\":1,\"tid\":%d,\"ph\":\"M\",\"name\":"
			"\"thread_name\",\"args\":{\"name\":\"%s\"}}",
			tb->tid, tb->name);
		fprintf(f, ",\n{\"pid\":1,\"tid\":%d,\"ph\":\"M\",\"name\":"
			"\"thread_sort_index\",\"args\":{\"sort_index\":%d}}",
			tb->tid, tb->tid);
		for (c = tb->head; c; c = c->next)
			for (i = 0; i < c->n; i++)
				put_event(f, tb, &c->ev[i]);
		dropped += tb->dropped;
	}
	fprintf(f, "\n],\"otherData\":{\"dropped_events\":\"%llu\"}}\n",
		(unsigned long long)dropped);
	if (fclose(f))
		kgo_printf("kgo: KGO_TRACE=%s: write failed: %s\n", trace.path,
			   strerror(errno));
	trace.f = NULL;
	gnames_free(atomic_load_explicit(&trace.bufs, memory_order_relaxed));
	free(trace.path);
	trace.path = NULL;
	for (tb = atomic_load_explicit(&trace.bufs, memory_order_relaxed);
	     tb; tb = next) {
		struct tchunk *c, *cn;

		next = tb->next;
		for (c = tb->head; c; c = cn) {
			cn = c->next;
			munmap(c, CHUNK_BYTES);
		}
		munmap(tb, sizeof(*tb));
	}
	atomic_store_explicit(&trace.bufs, NULL, memory_order_relaxed);
	/* tls_tb pointers left in living threads are stale by trace.gen. */
}
