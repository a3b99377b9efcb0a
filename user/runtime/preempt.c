// SPDX-License-Identifier: MIT
/*
 * preempt.c - asynchronous preemption: a G that has run past its time
 * slice is stopped by SIGURG and switched out from inside the signal
 * handler.
 *
 * Two ways to stop a G
 * --------------------
 * sysmon (sysmon.c) decides that the G running on a P has used up its
 * slice (kgo_config.preempt_slice_us, 10 ms by default, as Go). It then
 * sets gp->preempt, which the G checks at its next runtime call
 * (cooperative preemption, kgo_checkpreempt in proc.c: every call that
 * can park is a switch anyway, and the ones that do not check on their
 * way out: kgo_syscall_end, kgo_go, channel send/receive and select
 * that completed at once, mutex unlock and rwmutex runlock; tests:
 * preempt_test's cooperative.*), and sends
 * SIGURG to the G's M, for the G that makes no runtime call at all
 * (a loop of plain C). SIGURG because, as Go found, nothing else uses
 * it: it is ignored by default and means only "urgent data on a
 * socket", which programs that ask for it by F_SETOWN still get (the
 * handler passes foreign SIGURGs on to the handler that was there).
 *
 * Switching out from inside the handler
 * -------------------------------------
 * The handler runs on the G's own stack: it is installed without
 * SA_ONSTACK, so the kernel builds the signal frame just below the
 * interrupted stack pointer (below the 128-byte red zone on x86_64).
 * That frame holds every register of the interrupted code: the general
 * ones, the flags, and the whole FP/SIMD state (the xsave area with
 * xmm/ymm/zmm and the mask registers on x86_64; the FPSIMD and SVE
 * records on aarch64). If the handler decides the G may stop, it calls
 * gopreempt(), which is an ordinary mcall: it saves the handler's
 * callee-saved registers in gp->ctx and switches to g0, which puts the
 * G on the global run queue. Later some M (maybe another one) runs the
 * G again: its switch returns into the handler, the handler returns,
 * and rt_sigreturn restores every register from the frame. Nothing
 * here knows the register set, so there is no table of registers to
 * keep in step with new CPU features, and SIMD state is as safe as the
 * kernel makes it for any signal.
 *
 *	G's stack (grows down)
 *	+--------------------------+
 *	| interrupted frames       |
 *	| red zone (128 B, x86_64) |
 *	| signal frame: ucontext,  |  ~1 KiB + the xsave area: the kernel
 *	|   siginfo, fpstate       |  says how much in AT_MINSIGSTKSZ
 *	| sigurg_handler frame     |  (3376 B with AVX-512 here)
 *	| gopreempt, mcall,        |
 *	|   kgo_switch frames      |  <- gp->ctx.sp while switched out
 *	+--------------------------+
 *
 * Two things of the thread, not the G, come back with rt_sigreturn: the
 * signal mask and the alternate signal stack (uc_stack). When the G
 * resumes on another M the handler overwrites both in the frame with
 * the new M's own before it returns; otherwise the new M would take the
 * old M's altstack (which that M may unmap when it exits). errno is a
 * thread-local too: the handler saves the interrupted code's errno and
 * sets it again, on whichever thread it returns, so errno's value
 * travels with the G. The FS base (thread-locals) is not in the frame,
 * and is the thread's: code that computed a thread-local's address
 * before the point where it was preempted and uses it after sees the
 * old M's variable. Compilers do that with errno within a function
 * (__errno_location is const), so a program's errno = 0; strtol();
 * if (errno) can, in the few instructions around the call, read the old
 * thread's errno. Go has no such problem only because Go code keeps
 * nothing in thread-locals. kgo.h says what not to keep; kgo_lock_m()
 * keeps a G on one thread, preemptions included.
 *
 * Stack room. A G must have room below its deepest frame for the
 * signal frame and the handler: AT_MINSIGSTKSZ + 128 + about 1 KiB,
 * ~4.5 KiB with AVX-512 (11+ KiB if a program enables AMX tiles). The
 * default G stack is 64 KiB and KGO_STACK_MIN 16 KiB, so the signal
 * costs at most 7% of a default stack. A G that is within that of its
 * guard when the signal comes faults in the guard while the kernel
 * writes the frame, and is reported as a stack overflow: it would have
 * overflowed at its next signal or deeper call. The handler itself
 * refuses to switch when less than PREEMPT_STACK_MIN is left below it.
 *
 * Safe points
 * -----------
 * The handler stops the G only if all of these hold, else it returns
 * and leaves gp->preempt for the next runtime call (and sysmon sends
 * another signal a little later):
 *
 *  - the signal is for the G now running: gp->preempt is still set and
 *    the G is G_RUNNING with a P (not in a syscall, not on g0);
 *  - the interrupted stack pointer is on the G's stack (not on g0, not
 *    on an alternate stack);
 *  - the thread holds no runtime lock (kgo_tls_locks == 0);
 *  - the signal mask at the interruption is the M's usual one: else the
 *    G is inside a signal handler of its own, or changed its mask, and
 *    the mask must not leak to other Gs of this M;
 *  - the interrupted PC is in the program's own code. Not in the
 *    runtime (whose code the Makefile puts in the section kgo_text, so
 *    that the linker brackets it with __start_kgo_text/__stop_kgo_text,
 *    in a static link as in libkgo.so): runtime code keeps its M and P
 *    in registers. Not in libc, ld.so, the vDSO, libgcc_s, libstdc++,
 *    the sanitizer runtimes, or the libraries the runtime calls
 *    (liburing, libbpf): they hold locks that belong to the thread (a
 *    malloc arena, a stdio FILE, the loader lock) and keep
 *    thread-locals in registers. The ranges come from dl_iterate_phdr
 *    at kgo_run, and again when sysmon sees that dlopen changed the
 *    list. A PC in no known range (JIT code, a library loaded since) is
 *    not safe;
 *  - nor in a PLT stub of the program: the runtime calls libc through
 *    the program's PLT, and a PC there is still in the runtime's call
 *    (and the lazy-binding path pushes words the resolver needs). The
 *    stubs' ranges come from the section headers of each object's file
 *    (.plt, .plt.sec, .plt.got, .iplt), read once at the scan. The
 *    runtime calls nothing outside kgo_text but libc and liburing
 *    (check with nm -u on libkgo.a), both unsafe above as shared
 *    objects. Linked statically into a program, liburing's code would
 *    look like the program's: runtime code that calls it on a G's
 *    stack must keep kgo_tls_locks raised across the call. A return
 *    address is no help here: the program's G functions are called
 *    from the runtime too, so a leaf loop has one on top of its stack
 *    for as long as it runs.
 *
 * A statically linked libc cannot be told from the program (it is in
 * the executable), so asynchronous preemption stays off in fully
 * static programs, and under ThreadSanitizer, which runs a handler only
 * at its next interceptor (inside libtsan, never at a safe point).
 * KGO_DEBUG=asyncpreemptoff=1 turns it off, as GODEBUG does in Go.
 * Where it is off, a G that makes no runtime call is never preempted.
 *
 * What user code sees. The handler is SA_RESTART: a signal that lands
 * in a restartable system call (read, write, wait, ...) restarts it.
 * Calls that Linux never restarts (poll, epoll_wait, select, nanosleep,
 * clock_nanosleep, futex waits with a timeout, ...) fail with EINTR,
 * as in Go since 1.14. sysmon does not signal an M it sees asleep in
 * the kernel (/proc in polling mode), so this needs a race: a blocking
 * call made directly (not through kgo_syscall) right as the slice ends.
 * Code that calls those must retry on EINTR, as portable code does
 * anyway. The runtime's own waits (futexes) retry.
 *
 * Known hazard (as for any thread-identity lock): a G preempted while
 * it holds a lock that belongs to its thread (a pthread mutex it took in
 * its own code, flockfile) keeps it while switched out; another G on
 * the same M that wants it blocks the M, and with every P so blocked
 * the program stops. Use kgo_mutex, or kgo_lock_m() around such code.
 */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "runtime.h"

/* The runtime's code, bracketed by the linker (see above). Weak: a
 * build without the section (check-aarch64.sh) has neither symbol, and
 * asynchronous preemption then stays off. */
extern const char __start_kgo_text[] __attribute__((weak, visibility("hidden")));
extern const char __stop_kgo_text[] __attribute__((weak, visibility("hidden")));

#ifdef KGO_ASAN
#define PREEMPT_STACK_MIN	(8 * 1024)
#else
#define PREEMPT_STACK_MIN	(2 * 1024)
#endif

#define MAX_RANGES	256
#define MAX_HOLES	64
#define RESCAN_NS	(1000 * 1000 * 1000)	/* look for dlopen at most 1/s */

struct xrange {
	uintptr_t lo, hi;
};

/* The program's code: where a PC may be preempted (r[0..n)), but for
 * its PLT stubs (r[n..n+nholes)). Immutable once published; replaced
 * whole when the list of objects changes. */
struct ptable {
	struct ptable *old;		/* earlier tables, freed at fini */
	int n, nholes;
	struct xrange r[];
};

static struct {
	bool on;			/* set at init, read by the handler */
	const char *why;		/* why it is off, or "on" */
	pid_t pid;
	uintptr_t rt_lo, rt_hi;		/* the runtime's text */
	_Atomic(struct ptable *) table;	/* release by sysmon, acquire by handlers */
	unsigned long long adds, subs;	/* dl_iterate_phdr's counters at the scan */
	int64_t lastscan;		/* sysmon only */
	bool installed;
	struct sigaction old;		/* the program's SIGURG action */
	_Atomic uint64_t refused;	/* signals that found no safe point */
} pre;

/* ------------------------------------------------------------------ */
/* Which code is the program's                                        */
/* ------------------------------------------------------------------ */

/* Objects whose code is never a safe point, by file-name prefix. */
static const char *const unsafe_objs[] = {
	"ld-linux", "ld64.so", "ld.so", "libc.so", "libc-", "libpthread",
	"libdl.", "librt.", "libgcc_s", "libstdc++", "libasan", "libtsan",
	"libubsan", "liblsan", "libhwasan", "libkgo", "liburing", "libbpf",
	"libelf", "libz.", "linux-vdso", "linux-gate",
};

struct scan {
	struct xrange r[MAX_RANGES];
	struct xrange hole[MAX_HOLES];
	int n, nholes;
	bool libc_shared;
	bool no_sections;		/* an object's PLT could not be found */
	bool overflow;
	unsigned long long adds, subs;
};

static bool in_runtime(uintptr_t pc)
{
	return pc >= pre.rt_lo && pc < pre.rt_hi;
}

static const char *basename_of(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static bool pread_all(int fd, void *buf, size_t n, off_t off)
{
	return pread(fd, buf, n, off) == (ssize_t)n;
}

/* Add the PLT sections of the object in @path, loaded at @base, to the
 * holes. Return: false if its section headers could not be read. */
static bool add_plt_holes(struct scan *sc, const char *path, uintptr_t base)
{
	ElfW(Ehdr) eh;
	ElfW(Shdr) *sh = NULL;
	char *names = NULL;
	bool ok = false;
	int fd, i;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (!pread_all(fd, &eh, sizeof(eh), 0) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_shentsize != sizeof(ElfW(Shdr)) || !eh.e_shnum ||
	    eh.e_shstrndx >= eh.e_shnum)
		goto out;
	sh = calloc(eh.e_shnum, sizeof(*sh));
	if (!sh || !pread_all(fd, sh, eh.e_shnum * sizeof(*sh), eh.e_shoff))
		goto out;
	names = malloc(sh[eh.e_shstrndx].sh_size + 1);
	if (!names || !pread_all(fd, names, sh[eh.e_shstrndx].sh_size,
				 sh[eh.e_shstrndx].sh_offset))
		goto out;
	names[sh[eh.e_shstrndx].sh_size] = 0;
	for (i = 0; i < eh.e_shnum; i++) {
		const char *nm = sh[i].sh_name < sh[eh.e_shstrndx].sh_size ?
				 names + sh[i].sh_name : "";

		if (!(sh[i].sh_flags & SHF_EXECINSTR) ||
		    (strncmp(nm, ".plt", 4) && strcmp(nm, ".iplt")))
			continue;
		if (sc->nholes == MAX_HOLES) {
			sc->overflow = true;
			break;
		}
		sc->hole[sc->nholes].lo = base + sh[i].sh_addr;
		sc->hole[sc->nholes].hi = base + sh[i].sh_addr + sh[i].sh_size;
		sc->nholes++;
	}
	ok = true;
out:
	free(names);
	free(sh);
	close(fd);
	return ok;
}

static int scan_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct scan *sc = arg;
	const char *name = basename_of(info->dlpi_name ? info->dlpi_name : "");
	size_t i;
	int k;

	(void)size;
	sc->adds = info->dlpi_adds;
	sc->subs = info->dlpi_subs;
	if (!strncmp(name, "libc.so", 7))
		sc->libc_shared = true;
	for (i = 0; i < sizeof(unsafe_objs) / sizeof(unsafe_objs[0]); i++)
		if (!strncmp(name, unsafe_objs[i], strlen(unsafe_objs[i])))
			return 0;
	for (k = 0; k < info->dlpi_phnum; k++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		/* libkgo.so under another name: all of it is runtime. */
		if (pre.rt_lo >= lo && pre.rt_lo < lo + ph->p_memsz &&
		    info->dlpi_name && info->dlpi_name[0])
			return 0;
	}
	/* The main program's name is empty: its file is /proc/self/exe. */
	if (!add_plt_holes(sc, info->dlpi_name && info->dlpi_name[0] ?
			   info->dlpi_name : "/proc/self/exe", info->dlpi_addr)) {
		sc->no_sections = true;
		return 0;	/* its code stays unsafe */
	}
	for (k = 0; k < info->dlpi_phnum; k++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		if (sc->n == MAX_RANGES) {
			sc->overflow = true;
			return 0;
		}
		sc->r[sc->n].lo = lo;
		sc->r[sc->n].hi = lo + ph->p_memsz;
		sc->n++;
	}
	return 0;
}

/* Scan the loaded objects and publish a new table. Return: false when
 * out of memory (the old table stays). */
static bool publish_table(struct scan *sc)
{
	struct ptable *t = malloc(sizeof(*t) +
				  (sc->n + sc->nholes) * sizeof(t->r[0]));

	if (!t)
		return false;
	t->n = sc->n;
	t->nholes = sc->nholes;
	memcpy(t->r, sc->r, sc->n * sizeof(t->r[0]));
	memcpy(t->r + sc->n, sc->hole, sc->nholes * sizeof(t->r[0]));
	t->old = atomic_load_explicit(&pre.table, memory_order_relaxed);
	/* Release: the ranges are written before a handler can see them;
	 * pairs with the acquire in pc_is_program(). Old tables are kept
	 * until fini: a handler may still be reading one. */
	atomic_store_explicit(&pre.table, t, memory_order_release);
	pre.adds = sc->adds;
	pre.subs = sc->subs;
	return true;
}

static int peek_counters(struct dl_phdr_info *info, size_t size, void *arg)
{
	unsigned long long *c = arg;

	(void)size;
	c[0] = info->dlpi_adds;
	c[1] = info->dlpi_subs;
	return 1;	/* the first object is enough */
}

/* sysmon: rescan if dlopen/dlclose changed the objects since. */
static void maybe_rescan(int64_t now)
{
	unsigned long long c[2] = { 0, 0 };
	struct scan *sc;

	if (now - pre.lastscan < RESCAN_NS)
		return;
	pre.lastscan = now;
	dl_iterate_phdr(peek_counters, c);
	if (c[0] == pre.adds && c[1] == pre.subs)
		return;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return;
	dl_iterate_phdr(scan_object, sc);
	publish_table(sc);
	free(sc);
}

/* Is pc in the program's own code? Async-signal-safe. */
static bool pc_is_program(uintptr_t pc)
{
	/* Acquire pairs with the release in publish_table(). */
	struct ptable *t = atomic_load_explicit(&pre.table,
						memory_order_acquire);
	int i;

	if (in_runtime(pc) || !t)
		return false;
	for (i = t->n; i < t->n + t->nholes; i++)
		if (pc >= t->r[i].lo && pc < t->r[i].hi)
			return false;
	for (i = 0; i < t->n; i++)
		if (pc >= t->r[i].lo && pc < t->r[i].hi)
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* The handler                                                        */
/* ------------------------------------------------------------------ */

static uintptr_t uc_pc(const ucontext_t *uc)
{
#if defined(__x86_64__)
	return uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	return uc->uc_mcontext.pc;
#else
	return 0;
#endif
}

static uintptr_t uc_sp(const ucontext_t *uc)
{
#if defined(__x86_64__)
	return uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	return uc->uc_mcontext.sp;
#else
	return 0;
#endif
}

/* Does the interrupted mask equal the one every M runs with? Only the
 * kernel's 64 bits: the rest of glibc's sigset_t is not in the frame. */
static bool mask_is_usual(const ucontext_t *uc)
{
	return !memcmp(&uc->uc_sigmask, signals_mmask(), 8);
}

static bool async_safe_point(struct m *mp, struct g *gp, ucontext_t *uc)
{
	uintptr_t sp = uc_sp(uc);
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);

	if (!atomic_load_explicit(&gp->preempt, memory_order_relaxed))
		return false;		/* stale, or not for this G */
	if (kgo_tls_locks != 0)
		return false;
	if (atomic_load_explicit(&gp->status, memory_order_relaxed) !=
	    G_RUNNING || !mp->p)
		return false;
	if (sp < gp->stack.lo || sp >= gp->stack.hi ||
	    here < gp->stack.lo + PREEMPT_STACK_MIN)
		return false;
	if (!mask_is_usual(uc))
		return false;
	return pc_is_program(uc_pc(uc));
}

/*
 * The system calls a G may wait in for ever, for abandon_point: if the
 * signal interrupted one, the thread may be parked there at kgo_run's
 * end (proc.c, "Abandoning Ms"). Not futex, mmap, brk and the like:
 * libc makes those holding its own locks (malloc's), which m0 needs.
 */
static bool syscall_waits(long nr)
{
	switch (nr) {
	case SYS_read: case SYS_readv: case SYS_pread64: case SYS_preadv:
	case SYS_preadv2: case SYS_write: case SYS_writev:
	case SYS_pwrite64: case SYS_pwritev: case SYS_pwritev2:
	case SYS_recvfrom: case SYS_recvmsg: case SYS_recvmmsg:
	case SYS_sendto: case SYS_sendmsg: case SYS_sendmmsg:
	case SYS_accept: case SYS_accept4: case SYS_connect:
	case SYS_openat: case SYS_wait4: case SYS_waitid:
	case SYS_flock: case SYS_msgrcv: case SYS_msgsnd:
	case SYS_restart_syscall:
		return true;
	}
	return false;
}

/*
 * Did the signal interrupt a system call that waits? Restartable calls
 * (SA_RESTART) come back with the PC on the syscall instruction and its
 * number in place to be made again; the others (poll, select,
 * epoll_wait, pause, nanosleep...) just after it, returning -EINTR.
 */
static bool uc_in_waiting_syscall(const ucontext_t *uc)
{
#if defined(__x86_64__)
	const uint8_t *pc = (const uint8_t *)uc->uc_mcontext.gregs[REG_RIP];
	long ax = uc->uc_mcontext.gregs[REG_RAX];

	if (pc[0] == 0x0f && pc[1] == 0x05)		/* syscall */
		return syscall_waits(ax);
	/* Not before the page the PC is in: it may be unmapped. */
	return ax == -EINTR && ((uintptr_t)pc & 4095) >= 2 &&
	       pc[-2] == 0x0f && pc[-1] == 0x05;
#elif defined(__aarch64__)
	const uint32_t *pc = (const uint32_t *)uc->uc_mcontext.pc;

	if (pc[0] == 0xd4000001)			/* svc #0 */
		return syscall_waits((long)uc->uc_mcontext.regs[8]);
	return (long)uc->uc_mcontext.regs[0] == -EINTR &&
	       ((uintptr_t)pc & 4095) >= 4 && pc[-1] == 0xd4000001;
#else
	(void)uc;
	return false;
#endif
}

/*
 * abandon_point() - m0 asked for mp at kgo_run's end, and may have it
 * here: gp runs (it is not in a kgo syscall window, which has its own
 * way), holds no runtime lock, and was stopped in a waiting system call
 * outside the runtime's code.
 */
static bool abandon_point(struct m *mp, struct g *gp, ucontext_t *uc)
{
	return atomic_load_explicit(&mp->abandon, memory_order_relaxed) ==
	       ABANDON_REQ && kgo_tls_locks == 0 &&
	       atomic_load_explicit(&gp->status, memory_order_relaxed) ==
	       G_RUNNING && !in_runtime(uc_pc(uc)) &&
	       uc_in_waiting_syscall(uc);
}

/* The G resumed on another M: make rt_sigreturn restore the thread
 * state of this M, not of the one the signal came to. */
static void adopt_thread_state(ucontext_t *uc)
{
	uint64_t kmask;
	stack_t ss;

	if (sigaltstack(NULL, &ss) == 0)
		uc->uc_stack = ss;
	if (syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &kmask, 8) == 0)
		memcpy(&uc->uc_sigmask, &kmask, 8);
}

/*
 * errno of the thread we run on now. noipa: glibc declares
 * __errno_location const, so within one function the compiler computes
 * errno's address once, and after a switch that address may be another
 * thread's (the trap DESIGN.md warns of). Each call here computes it.
 */
static __attribute__((noipa)) int errno_get(void)
{
	return errno;
}

static __attribute__((noipa)) void errno_set(int v)
{
	errno = v;
}

static void chain(int sig, siginfo_t *si, void *uc)
{
	struct sigaction *old = &pre.old;

	if (old->sa_flags & SA_SIGINFO) {
		if (old->sa_sigaction)
			old->sa_sigaction(sig, si, uc);
	} else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
	}
}

static void sigurg_handler(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	int saved_errno = errno_get();
	struct m *mp = getm();
	struct g *gp = mp ? mp->curg : NULL;

	/* Ours come from tgkill in this process; pass the others on. */
	if (si->si_code != SI_TKILL || si->si_pid != pre.pid) {
		chain(sig, si, ucv);
		goto out;
	}
	if (!gp || !pre.on)
		goto out;
	if (unlikely(abandon_point(mp, gp, uc)))
		m_park_abandoned(mp);	/* returns if m0 did not ask */
	if (!async_safe_point(mp, gp, uc)) {
		atomic_fetch_add_explicit(&pre.refused, 1,
					  memory_order_relaxed);
		goto out;
	}
	/* Relaxed: only this thread runs gp now. */
	atomic_store_explicit(&gp->preempt, false, memory_order_relaxed);
	gopreempt(true);
	/* Running again, maybe on another M. */
	if (getm() != mp)
		adopt_thread_state(uc);
out:
	errno_set(saved_errno);
}

/* ------------------------------------------------------------------ */
/* Setup, and sysmon's side                                           */
/* ------------------------------------------------------------------ */

static void set_off(const char *why)
{
	pre.on = false;
	pre.why = why;
}

/*
 * preempt_init() - decide whether asynchronous preemption can work, and
 * if so install the SIGURG handler. Called at kgo_run's start, before
 * any M but m0 exists. @off: KGO_DEBUG=asyncpreemptoff=1.
 */
void preempt_init(bool off)
{
	struct sigaction sa;
	struct scan *sc;

	memset(&pre, 0, sizeof(pre));
	pre.pid = getpid();
	pre.rt_lo = (uintptr_t)__start_kgo_text;
	pre.rt_hi = (uintptr_t)__stop_kgo_text;
	pre.on = true;
	pre.why = "on";
#if defined(KGO_TSAN)
	set_off("off (ThreadSanitizer runs signal handlers late)");
	return;
#elif !defined(__x86_64__) && !defined(__aarch64__)
	set_off("off (no signal context support for this architecture)");
	return;
#endif
	if (off) {
		set_off("off (KGO_DEBUG=asyncpreemptoff=1)");
		return;
	}
	if (!pre.rt_lo || pre.rt_hi <= pre.rt_lo) {
		set_off("off (runtime built without the kgo_text section)");
		return;
	}
	/* The context switch must count as runtime code: a SIGURG in the
	 * middle of it must not switch (an object built before its .S was
	 * renamed did exactly that; Makefile). */
	if ((uintptr_t)kgo_ctx_switch < pre.rt_lo ||
	    (uintptr_t)kgo_ctx_switch >= pre.rt_hi) {
		set_off("off (kgo_ctx_switch is outside kgo_text: rebuild the runtime)");
		return;
	}
	sc = calloc(1, sizeof(*sc));
	if (!sc) {
		set_off("off (out of memory)");
		return;
	}
	dl_iterate_phdr(scan_object, sc);
	if (!sc->libc_shared) {
		set_off("off (libc is linked statically)");
	} else if (sc->overflow) {
		set_off("off (too many executable mappings)");
	} else if (!publish_table(sc)) {
		set_off("off (out of memory)");
	}
	free(sc);
	if (!pre.on)
		return;
	pre.lastscan = nanotime();

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigurg_handler;
	/* No SA_ONSTACK: the frame must be on the G's stack (see above).
	 * SA_NODEFER: SIGURG stays unblocked while the handler's G is
	 * switched out, so this M's other Gs can be preempted. */
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGURG, &sa, &pre.old)) {
		set_off("off (sigaction failed)");
		return;
	}
	pre.installed = true;
}

void preempt_fini(void)
{
	struct ptable *t, *old;

	if (pre.installed)
		sigaction(SIGURG, &pre.old, NULL);
	pre.installed = false;
	pre.on = false;
	for (t = atomic_load_explicit(&pre.table, memory_order_relaxed); t;
	     t = old) {
		old = t->old;
		free(t);
	}
	atomic_store_explicit(&pre.table, NULL, memory_order_relaxed);
}

bool preempt_async_on(void)
{
	return pre.on;
}

const char *preempt_async_why(void)
{
	return pre.why ? pre.why : "off (not started)";
}

uint64_t preempt_refused(void)
{
	return atomic_load_explicit(&pre.refused, memory_order_relaxed);
}

/*
 * preempt_signal() - send SIGURG to mp, whose G sysmon has asked to
 * stop (gp->preempt is set). sysmon only. Return: true if sent.
 */
bool preempt_signal(struct m *mp, int64_t now)
{
	if (!pre.on || mp->tid <= 0)
		return false;
	maybe_rescan(now);
	return preempt_kick(mp);
}

/* The signal alone, for threads other than sysmon (the rescan is
 * sysmon's: its table is not safe to rebuild from two threads). */
bool preempt_kick(struct m *mp)
{
	if (!pre.on || mp->tid <= 0)
		return false;
	return syscall(SYS_tgkill, pre.pid, mp->tid, SIGURG) == 0;
}
