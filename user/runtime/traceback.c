// SPDX-License-Identifier: MIT
/*
 * traceback.c - what a person reads when a kgo program is stuck: every
 * G with its id, name, state or wait reason and how long it has waited,
 * and its stack, function+offset and file:line per frame (Go's
 * goroutine dump). Also the names of Gs (kgo_set_name) and the message
 * of a G that parks inside a syscall section.
 *
 * Walking a stack. A parked G's registers are in its saved context
 * (arch/<arch>/switch.S draws the frame: the frame pointer and the
 * return address are at fixed offsets from ctx.sp; the ucontext build
 * keeps them in uc_mcontext). From there the walk follows the frame
 * pointer chain (the runtime is built with -fno-omit-frame-pointer, and
 * so should a program be to show its own frames; a frame without one
 * is skipped over to its caller's caller), each step checked to stay
 * inside the G's stack [lo, hi) and to move towards hi, so a torn chain
 * ends the walk instead of faulting. The chain ends at the G's first
 * frame, whose saved frame pointer is 0 (kgo_ctx_entry).
 *
 * Which frames are shown: the program's frames, and of the runtime's
 * (the kgo_text section, see the Makefile) only those called by the
 * program: the kgo_* call it is in (kgo_chan_recv), not the runtime's
 * insides (gopark, direct_switch).
 *
 * Symbols: elfutils' libdw (Dwfl on /proc/self/maps: the ELF symbol
 * tables for function+offset, DWARF line tables for file:line), set up
 * for each dump and dropped after it. Built without libdw, or when it
 * fails, the names are dladdr's (exported symbols only, no file:line),
 * and the dump says so in its first line.
 *
 * Where a dump runs, and why there: libdw allocates. checkdead dumps on
 * an idle M's thread stack, in ordinary thread context with every other
 * M idle. A SIGQUIT handler may have interrupted its thread inside
 * malloc, so it does no symbolizing itself: it records its thread's
 * registers (so that the G it interrupted is shown too) and asks sysmon
 * to dump (sysmon_quit_pending, looked at by sysmon at the top of every
 * round), then waits. Only if it may not (it interrupted a runtime lock
 * holder, which sysmon_wake could need) or sysmon does not answer
 * within 2 s does the handler print the dump itself, with dladdr's
 * names. Other Ms keep running during a SIGQUIT dump: a G that runs
 * meanwhile may show a torn stack, which the bounded walk tolerates.
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "runtime.h"
#include "trace.h"
#include "traceback.h"

#ifdef KGO_HAVE_LIBDW
#include <elfutils/libdwfl.h>
#endif

_Atomic int64_t park_clock;

/* The runtime's code (Makefile: the kgo_text section). */
extern const char __start_kgo_text[] __attribute__((weak, visibility("hidden")));
extern const char __stop_kgo_text[] __attribute__((weak, visibility("hidden")));

static bool in_runtime(uintptr_t pc)
{
	return pc >= (uintptr_t)__start_kgo_text &&
	       pc < (uintptr_t)__stop_kgo_text;
}

/* ------------------------------------------------------------------ */
/* Names                                                              */
/* ------------------------------------------------------------------ */

/*
 * A G's name is valid while gp->name_goid == gp->goid: a reused G starts
 * nameless with no store by newproc. The owner writes the bytes
 * (relaxed) then name_goid (release); readers (dumps, schedtrace, on
 * other threads) load name_goid (acquire), copy, and check it again.
 */
int kgo_set_name(const char *name)
{
	struct g *gp = getg();
	size_t i;

	if (!gp)
		return -EPERM;
	if (!name)
		return -EINVAL;
	atomic_store_explicit(&gp->name_goid, 0, memory_order_relaxed);
	for (i = 0; i < sizeof(gp->name) - 1 && name[i]; i++)
		__atomic_store_n(&gp->name[i], name[i], __ATOMIC_RELAXED);
	__atomic_store_n(&gp->name[i], 0, __ATOMIC_RELAXED);
	atomic_store_explicit(&gp->name_goid, gp->goid, memory_order_release);
	/* The copy is trace.c's to free; made only when tracing. */
	TRACE(TR_GO_NAME, gp->goid, (uint64_t)(uintptr_t)strdup(gp->name));
	return 0;
}

const char *g_name(struct g *gp, char *buf, size_t n)
{
	uint64_t id = atomic_load_explicit(&gp->name_goid,
					   memory_order_acquire);
	size_t i;

	if (!id || id != gp->goid || n == 0)
		return NULL;
	for (i = 0; i < n - 1 && i < sizeof(gp->name); i++) {
		buf[i] = __atomic_load_n(&gp->name[i], __ATOMIC_RELAXED);
		if (!buf[i])
			break;
	}
	buf[i < n - 1 ? i : n - 1] = 0;
	if (atomic_load_explicit(&gp->name_goid, memory_order_acquire) != id)
		return NULL;
	return buf;
}

/* ------------------------------------------------------------------ */
/* Walking                                                            */
/* ------------------------------------------------------------------ */

#define TB_MAX_FRAMES	64

/*
 * tb_walk() - return addresses from frame pointer @fp up, within [lo,
 * hi). @pc, if not 0, is the innermost frame's pc. Another G's stack:
 * the sanitizers would see reads of frames they did not see written.
 */
__attribute__((no_sanitize_address, no_sanitize("thread")))
static int tb_walk(uintptr_t pc, uintptr_t fp, uintptr_t lo, uintptr_t hi,
		   uintptr_t *pcs, int max)
{
	int n = 0;

	if (pc)
		pcs[n++] = pc;
	while (n < max && fp >= lo && fp <= hi - 2 * sizeof(uintptr_t) &&
	       !(fp & (sizeof(uintptr_t) - 1))) {
		const uintptr_t *fr = (const uintptr_t *)fp;
		uintptr_t next = fr[0], ra = fr[1];

		if (!ra)
			break;
		pcs[n++] = ra;
		if (next <= fp)
			break;
		fp = next;
	}
	return n;
}

/* A parked G's innermost pc and frame pointer, from its saved context. */
static void g_saved_regs(struct g *gp, uintptr_t *pc, uintptr_t *fp)
{
#if defined(KGO_CTX_UCONTEXT) && defined(__x86_64__)
	*pc = gp->ctx.uc.uc_mcontext.gregs[REG_RIP];
	*fp = gp->ctx.uc.uc_mcontext.gregs[REG_RBP];
#elif defined(KGO_CTX_UCONTEXT) && defined(__aarch64__)
	*pc = gp->ctx.uc.uc_mcontext.pc;
	*fp = gp->ctx.uc.uc_mcontext.regs[29];
#elif defined(__x86_64__)
	/* switch.S: mxcsr/fcw, r15, r14, r13, r12, rbx, rbp, return. */
	const uintptr_t *sp = gp->ctx.sp;

	*fp = sp[6];
	*pc = sp[7];
#elif defined(__aarch64__)
	/* switch.S: x29, x30 at ctx->sp. */
	const uintptr_t *sp = gp->ctx.sp;

	*fp = sp[0];
	*pc = sp[1];
#else
	*pc = 0;
	*fp = 0;
#endif
}

/* ------------------------------------------------------------------ */
/* Symbols                                                            */
/* ------------------------------------------------------------------ */

struct tb_sym {
	const char *func;	/* NULL: unknown */
	uintptr_t off;		/* pc - start of func */
	const char *file;	/* NULL: no line info */
	int line;
	const char *module;	/* the ELF file, when func is unknown */
	uintptr_t modoff;
};

struct symbolizer {
#ifdef KGO_HAVE_LIBDW
	Dwfl *dwfl;
#endif
	bool in_signal;		/* dladdr only */
};

#ifdef KGO_HAVE_LIBDW
static char *tb_debuginfo_path;
static const Dwfl_Callbacks tb_callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.debuginfo_path = &tb_debuginfo_path,
};
#endif

static const char *sym_begin(struct symbolizer *sy, bool in_signal)
{
	memset(sy, 0, sizeof(*sy));
	sy->in_signal = in_signal;
	if (in_signal)
		return "dladdr (no file:line: printed from a signal handler)";
#ifdef KGO_HAVE_LIBDW
	sy->dwfl = dwfl_begin(&tb_callbacks);
	if (sy->dwfl && (dwfl_linux_proc_report(sy->dwfl, getpid()) ||
			 dwfl_report_end(sy->dwfl, NULL, NULL))) {
		dwfl_end(sy->dwfl);
		sy->dwfl = NULL;
	}
	if (sy->dwfl)
		return "libdw";
	return "dladdr (libdw failed: no file:line)";
#else
	return "dladdr (built without libdw: no file:line)";
#endif
}

static void sym_end(struct symbolizer *sy)
{
#ifdef KGO_HAVE_LIBDW
	if (sy->dwfl)
		dwfl_end(sy->dwfl);
	sy->dwfl = NULL;
#endif
	(void)sy;
}

/* Describe @pc; @ret: it is a return address (its call is at pc - 1). */
static void sym_lookup(struct symbolizer *sy, uintptr_t pc, bool ret,
		       struct tb_sym *s)
{
	uintptr_t q = ret ? pc - 1 : pc;
	Dl_info info;

	memset(s, 0, sizeof(*s));
#ifdef KGO_HAVE_LIBDW
	if (sy->dwfl) {
		Dwfl_Module *mod = dwfl_addrmodule(sy->dwfl, q);
		GElf_Off off = 0;
		GElf_Sym sym;
		Dwfl_Line *line;
		Dwarf_Addr base;

		if (mod) {
			s->func = dwfl_module_addrinfo(mod, q, &off, &sym,
						       NULL, NULL, NULL);
			s->off = off + (pc - q);
			line = dwfl_module_getsrc(mod, q);
			if (line)
				s->file = dwfl_lineinfo(line, NULL, &s->line,
							NULL, NULL, NULL);
			s->module = dwfl_module_info(mod, NULL, &base, NULL,
						     NULL, NULL, NULL, NULL);
			s->modoff = pc - base;
			if (s->func)
				return;
		}
	}
#endif
	if (dladdr((void *)q, &info)) {
		if (info.dli_sname) {
			s->func = info.dli_sname;
			s->off = pc - (uintptr_t)info.dli_saddr;
		}
		s->module = info.dli_fname;
		s->modoff = pc - (uintptr_t)info.dli_fbase;
	}
}

static void print_frame(struct symbolizer *sy, uintptr_t pc, bool ret)
{
	struct tb_sym s;

	sym_lookup(sy, pc, ret, &s);
	if (s.func)
		kgo_printf("%s+%#lx\n", s.func, (unsigned long)s.off);
	else if (s.module)
		kgo_printf("%s+%#lx\n", s.module, (unsigned long)s.modoff);
	else
		kgo_printf("%#lx\n", (unsigned long)pc);
	if (s.file)
		kgo_printf("\t%s:%d\n", s.file, s.line);
}

/*
 * print_stack() - the frames of @pcs worth a reader's time: the
 * program's, and of the runtime's those the program called (pcs[i] is
 * in the runtime and pcs[i + 1], its caller, is not). pcs[0] is a pc,
 * the others return addresses; @pc0_ret: pcs[0] is one too.
 */
static void print_stack(struct symbolizer *sy, const uintptr_t *pcs, int n,
			bool pc0_ret)
{
	int i, shown = 0;

	for (i = 0; i < n; i++) {
		if (in_runtime(pcs[i]) &&
		    (i + 1 >= n || in_runtime(pcs[i + 1])))
			continue;
		print_frame(sy, pcs[i], i > 0 || pc0_ret);
		shown++;
	}
	/* Nothing outside the runtime (the symbols of the section are
	 * missing, or a runtime G): all of it then. */
	if (!shown)
		for (i = 0; i < n; i++)
			print_frame(sy, pcs[i], i > 0 || pc0_ret);
}

/* ------------------------------------------------------------------ */
/* The dump                                                           */
/* ------------------------------------------------------------------ */

/* "1.25 s", "340 ms", "12 minutes": Go prints minutes only. */
static void fmt_wait(char *buf, size_t n, int64_t d)
{
	if (d >= 120 * 1000000000LL)
		snprintf(buf, n, ", %lld minutes", (long long)(d / 60000000000LL));
	else if (d >= 1000000000LL)
		snprintf(buf, n, ", %lld.%02lld s", (long long)(d / 1000000000),
			 (long long)(d % 1000000000 / 10000000));
	else
		snprintf(buf, n, ", %lld ms", (long long)(d / 1000000));
}

/* What the SIGQUIT handler saw on its own thread. */
static struct {
	struct g *gp;		/* the G it interrupted, or NULL */
	uintptr_t pc, fp;
	int m;			/* the M, -1: not one of ours */
} quit_regs;

static void dump_g(struct symbolizer *sy, struct g *gp, int64_t now)
{
	uint32_t st = atomic_load_explicit(&gp->status, memory_order_acquire);
	uintptr_t pcs[TB_MAX_FRAMES], pc, fp;
	char name[sizeof(gp->name) + 3], nbuf[sizeof(gp->name)];
	char waited[32] = "";
	const char *what;
	struct m *mp;
	int n = 0;

	if (st == G_DEAD || st == G_IDLE)
		return;
	name[0] = 0;
	if (g_name(gp, nbuf, sizeof(nbuf)))
		snprintf(name, sizeof(name), " \"%s\"", nbuf);
	what = st == G_WAITING ? waitreason_str[gp->waitreason] :
				 gstatus_str[st];
	if (st == G_WAITING && gp->waitsince > 0 && now > gp->waitsince)
		fmt_wait(waited, sizeof(waited), now - gp->waitsince);
	kgo_printf("goroutine %llu%s [%s%s]:\n", (unsigned long long)gp->goid,
		   name, what, waited);

	if (gp == quit_regs.gp) {
		n = tb_walk(quit_regs.pc, quit_regs.fp, gp->stack.lo,
			    gp->stack.hi, pcs, TB_MAX_FRAMES);
		kgo_printf("(interrupted by SIGQUIT on M%d)\n", quit_regs.m);
		print_stack(sy, pcs, n, false);
	} else if (atomic_load_explicit(&gp->unstarted,
					memory_order_relaxed)) {
		kgo_printf("(not started yet)\n");
	} else if (st == G_WAITING || st == G_RUNNABLE ||
		   st == G_PREEMPTED) {
		g_saved_regs(gp, &pc, &fp);
		n = tb_walk(pc, fp, gp->stack.lo, gp->stack.hi, pcs,
			    TB_MAX_FRAMES);
		print_stack(sy, pcs, n, true);
	} else {
		mp = READ_ONCE(gp->m);
		kgo_printf("(running on M%d: stack unavailable)\n",
			   mp ? READ_ONCE(mp->id) : -1);
	}
	kgo_printf("goroutine entry: ");
	print_frame(sy, (uintptr_t)gp->fn, false);
	kgo_printf("\n");
}

static void dump_all(bool in_signal)
{
	struct symbolizer sy;
	const char *how = sym_begin(&sy, in_signal);
	int64_t now = nanotime();
	struct g *gp;

	kgo_printf("(symbols: %s)\n\n", how);
	/* No allglock: every M is idle (checkdead), or the process is about
	 * to end and the lock may be held by the thread we interrupted. */
	for (gp = sched.allgs; gp; gp = gp->alllink)
		dump_g(&sy, gp, now);
	sym_end(&sy);
}

void dump_goroutines(void)
{
	dump_all(false);
}

/* ------------------------------------------------------------------ */
/* SIGQUIT                                                            */
/* ------------------------------------------------------------------ */

_Atomic bool sysmon_quit_pending;

/* sysmon, at the top of a round, when sysmon_quit_pending is set. */
void sysmon_quit(void)
{
	kgo_printf("SIGQUIT: quit\n");
	if (quit_regs.m >= 0)
		kgo_printf("PC=%#lx m=%d\n", (unsigned long)quit_regs.pc,
			   quit_regs.m);
	kgo_printf("\n");
	dump_all(false);
	_exit(2);
}

static void sig_regs(void *uc, uintptr_t *pc, uintptr_t *fp)
{
	ucontext_t *u = uc;

#if defined(__x86_64__)
	*pc = u->uc_mcontext.gregs[REG_RIP];
	*fp = u->uc_mcontext.gregs[REG_RBP];
#elif defined(__aarch64__)
	*pc = u->uc_mcontext.pc;
	*fp = u->uc_mcontext.regs[29];
#else
	*pc = 0;
	*fp = 0;
#endif
}

void traceback_sigquit(void *uc)
{
	struct m *mp = getm();
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int i;

	quit_regs.m = mp ? mp->id : -1;
	quit_regs.gp = mp ? mp->curg : NULL;
	sig_regs(uc, &quit_regs.pc, &quit_regs.fp);
	/* seq_cst, before sysmon_wake's look at sysmon_sleeping: either
	 * sysmon, about to sleep deeply, sees the flag after it set
	 * sysmon_sleeping, or we see it asleep and wake it. Its acquire
	 * load at the top of a round sees quit_regs. */
	atomic_store(&sysmon_quit_pending, true);
	if (!kgo_tls_locks && sched.running) {
		sysmon_wake();
		for (i = 0; i < 200; i++)	/* sysmon _exits when done */
			nanosleep(&ts, NULL);
	}
	kgo_printf("SIGQUIT: quit\nPC=%#lx m=%d\n\n",
		   (unsigned long)quit_regs.pc, quit_regs.m);
	dump_all(true);
	_exit(2);
}

/* ------------------------------------------------------------------ */
/* Parking in a syscall section                                       */
/* ------------------------------------------------------------------ */

/* The kgo call behind each wait, when the stack does not name it. */
static const char *const waitreason_call[WAIT_NREASONS] = {
	[WAIT_CHAN_RECV] = "kgo_chan_recv",
	[WAIT_CHAN_SEND] = "kgo_chan_send",
	[WAIT_SELECT] = "kgo_select",
	[WAIT_SELECT_NO_CASES] = "kgo_select",
	[WAIT_MUTEX] = "kgo_mutex_lock",
	[WAIT_RWMUTEX_R] = "kgo_rwmutex_rlock",
	[WAIT_RWMUTEX_W] = "kgo_rwmutex_lock",
	[WAIT_COND] = "kgo_cond_wait",
	[WAIT_WG] = "kgo_wg_wait",
	[WAIT_SLEEP] = "kgo_sleep",
	[WAIT_SEMA] = "a kgo call that waits",
	[WAIT_IO] = "a kgo I/O call",
	[WAIT_LOCKED_M] = "a kgo call that waits",
	[WAIT_NONE] = "kgo_yield",
};

/* What park_misuse's helper thread needs, and finds. */
struct misuse {
	uintptr_t pcs[TB_MAX_FRAMES];
	int n;
	const char *call;
};

/*
 * On a thread of its own: libdw wants more stack than a G may have
 * left (64 KiB overflowed here), and the G's M has no P to lend.
 */
static void *misuse_symbolize(void *arg)
{
	struct misuse *mu = arg;
	struct symbolizer sy;
	struct tb_sym s;
	static char name[128];
	int i;

	/* The outermost runtime frame under the program's: the kgo_*
	 * call it made. */
	sym_begin(&sy, false);
	for (i = 0; i + 1 < mu->n; i++) {
		if (!in_runtime(mu->pcs[i]) || in_runtime(mu->pcs[i + 1]))
			continue;
		sym_lookup(&sy, mu->pcs[i], true, &s);
		if (s.func && !strncmp(s.func, "kgo_", 4)) {
			snprintf(name, sizeof(name), "%s", s.func);
			mu->call = name;
		}
		break;
	}
	sym_end(&sy);
	return NULL;
}

void park_misuse(enum waitreason reason)
{
	static struct misuse mu;
	struct g *gp = getg();
	pthread_t th;

	mu.n = tb_walk(0, (uintptr_t)__builtin_frame_address(0),
		       gp->stack.lo, gp->stack.hi, mu.pcs, TB_MAX_FRAMES);
	if (!pthread_create(&th, NULL, misuse_symbolize, &mu))
		pthread_join(th, NULL);
	if (!mu.call)
		mu.call = reason < WAIT_NREASONS && waitreason_call[reason] ?
			  waitreason_call[reason] : "a kgo call that waits";
	kgo_printf("kgo: fatal error: %s called between kgo_syscall_begin "
		   "and kgo_syscall_end (goroutine %llu): a G may not wait "
		   "there; end the section first\n", mu.call,
		   (unsigned long long)gp->goid);
	abort();
}
