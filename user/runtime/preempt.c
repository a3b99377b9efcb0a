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
 * handler passes every SIGURG on to the program's handler: "The
 * program's SIGURGs" below).
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
 *  - no foreign frame below: no word on the G's stack, from the
 *    interrupted SP up to the top, points into foreign code (see
 *    "Frames below"), but for the functions known to call back with
 *    no lock held;
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
 * Frames below
 * ------------
 * The program's own code is not enough: libc calls the program back,
 * and some of those calls hold a lock of libc's. dl_iterate_phdr holds
 * the loader's lock around its callback; stdio holds the FILE's lock
 * around fopencookie's functions and printf's registered handlers;
 * dlopen runs constructors under the loader's lock. A G switched out
 * there keeps the lock, which belongs to the thread: another G on that
 * M takes the (recursive) lock again and enters the stream or the
 * object list in the middle of the first one's update (a cookie stream
 * lost 75% of its bytes and re-entered its callback 19 times), Gs of
 * other Ms and sysmon's dl_iterate_phdr wait for it, and when the G
 * resumes on another M glibc refuses its unlock and the lock stays
 * taken for ever (preempt_test dlphdr_callback_p2 hung 6 runs in 6).
 *
 * So the handler also scans the G's stack, from the interrupted SP up
 * to gp->stack.hi (the runtime knows every G's bounds), for a word
 * that points into foreign code: the executable segments of the
 * objects listed in unsafe_objs (libc, ld.so, libgcc_s, libstdc++, the
 * sanitizer runtimes, the vDSO, libkgo.so outside kgo_text). The
 * program's own code is the main executable's text and the shared
 * libraries that are not in that list: their locks are the program's,
 * taken where the program calls them, like its own pthread mutexes
 * (the hazard at the end of this comment), whereas libc's and the
 * loader's are taken behind its back, by the runtime and by sysmon
 * too. The scan is conservative: a stale word in an uninitialised
 * slot counts as a frame, which costs that G its asynchronous
 * preemption until the frame returns, never safety. Two kinds of word
 * do not count: one equal to a function's first byte is a function
 * pointer (`fn = qsort`), not a return address; and libc's sigreturn
 * trampoline (x86_64's sa_restorer), which every signal frame leaves
 * below the SP it interrupted, so that a G preempted once and then
 * calling deeper into uninitialised slots would never be preempted
 * again (a recursion to 195 KiB was not, 2 runs in 4, before it was
 * allowed; a live one means a handler of the program's is running,
 * and its interrupted PC is in the frame, scanned too). On aarch64
 * the kernel returns through the vDSO's trampoline instead, which is
 * not excepted yet: there such a G waits for its next runtime call,
 * as in the case of any other stale word. Stacks used
 * deeper than SCAN_MAX (1 MiB) are not scanned: such a G is preempted
 * only at its runtime calls.
 *
 * Some of libc's callers hold no lock: qsort and qsort_r, bsearch,
 * lfind and lsearch, the tsearch family (tsearch, tfind, tdelete,
 * twalk, twalk_r, tdestroy), as their source in glibc shows
 * (stdlib/msort.c, qsort.c, bsearch.c, misc/lsearch.c, tsearch.c). A
 * comparator that runs long inside a sort must stay preemptible, so
 * these are allowed: an allowlist, not a denylist, because the list of
 * lock holders is open (every stdio function reaches a cookie) and a
 * caller left out of an allowlist costs liveness, not safety. The
 * allowed code is measured at init, not assumed: allow_init() calls
 * each of them once with a callback that takes a backtrace (the real
 * unwinder, which is allowed its locks there, before any G exists) and
 * allows the whole function, from the object's .eh_frame_hdr, of each
 * frame between the callback and the caller: glibc's static helpers
 * (msort_with_tmp, trecurse) and a sanitizer's interceptors (ASan
 * wraps qsort's comparator) included. A path that the probes do not
 * take (glibc's _quicksort, for arrays too large to copy) stays
 * refused. Other callbacks (ftw, nftw, scandir's filter, glob's
 * error function) are not allowed: they run with directories open and
 * were not needed; a G in them waits for its next runtime call.
 *
 * Cost, measured with a G that spins under N KiB of frames at P=1
 * and 1 ms slices (clock_gettime around the scan in the handler, 300
 * signals a run, medians of two runs): 0.1-0.16 us with 1 KiB used,
 * 0.5-0.8 us with 4 KiB, 0.6-2.3 us with 16 KiB, 2.3-6.2 us with 64
 * KiB, 9-10 us with 256 KiB, 40 us with 1 MiB: 0.04-0.1 ns a byte,
 * 0.4% of a 10 ms slice at worst.
 * The preemption storms of preempt_test preempted as often as before
 * (storm_p1: 1009-1141 async preemptions of 5600-6044 signals, against
 * 769 of 6102 before).
 *
 * What this makes sure of for sysmon: no G is ever switched out by the
 * signal while libc's code or a locked callback of libc's is on its
 * stack, so no preempted G holds a lock of libc's (the malloc arenas,
 * the loader's lock, a FILE that libc locked), and sysmon's own
 * dl_iterate_phdr and malloc (maybe_rescan) cannot wait for one. What
 * is left is the program's own doing: a kgo call inside such a
 * callback, or a lock it took itself (flockfile): kgo.h says not to.
 *
 * A statically linked libc cannot be told from the program (it is in
 * the executable), so asynchronous preemption stays off in fully
 * static programs, and under ThreadSanitizer, which runs a handler only
 * at its next interceptor (inside libtsan, never at a safe point).
 * KGO_DEBUG=asyncpreemptoff=1 turns it off, as GODEBUG does in Go.
 * Where it is off, a G that makes no runtime call is never preempted.
 *
 * The program's SIGURGs. SIGURG also means urgent data on a socket
 * (F_SETOWN), and a program may send it to its threads itself. The
 * runtime sends its own with rt_tgsigqueueinfo, si_code SI_QUEUE and a
 * random cookie in si_value, which no tgkill, pthread_kill or kill can
 * forge and no sigqueue of the program knows; only those are taken as
 * a preemption request. Every SIGURG, the runtime's too, is passed on
 * to the handler the program had installed (Go does the same): a
 * standard signal is pending at most once per thread, so a program's
 * SIGURG sent while one of ours is pending merges with it, and would
 * be lost otherwise. A program that installs a SIGURG handler while
 * kgo runs replaces the runtime's; sysmon sees that at its next
 * preemption signal, takes SIGURG back and passes every signal on to
 * the new handler, and kgo_run's end leaves the program's handler in
 * place.
 *
 * The kernel's tick. In bpf mode with the probes' preemption tick
 * (bpf/kgo_tick.bpf.h, which has the protocol) the kernel itself sends
 * SIGURG to an M whose G's slice of CPU time is over, with
 * bpf_send_signal_thread: si_code SI_KERNEL, no cookie, and gp->preempt
 * not set (BPF cannot write the process's memory). Before it sends,
 * the tick writes in the M's record, which only the probes write, the
 * schedtick + 1 of the slice it found over; the handler takes an
 * SI_KERNEL SIGURG as a request only if that is the schedtick of its
 * P now (observe_tick_asks), and then sets gp->preempt itself and goes
 * on as for sysmon's signal: the same safe points, or the G's next
 * runtime call. A stale request (the G changed since) or a SIGURG of
 * a socket is only passed on to the program's handler. Like the
 * cookie, this cannot be forged by another user: SI_KERNEL comes only
 * from the kernel, and the records are frozen for users.
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
 * The same holds for a kgo call inside a callback that libc runs under
 * its lock (a dl_iterate_phdr callback, a fopencookie function): it
 * may park, or stop at the cooperative check on its way out, and the
 * runtime does not look for that lock there. (The check could scan the
 * stack as the handler does, but a stale word would then cost a G that
 * loops on runtime calls every preemption, not only the signal's.)
 */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <search.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "runtime.h"
#include "observe.h"

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
#define MAX_FOREIGN	128
#define MAX_ALLOW	64
#define RESCAN_NS	(1000 * 1000 * 1000)	/* look for dlopen at most 1/s */
/* The deepest stack the handler scans for foreign frames (see "Frames
 * below"); a G deeper than this is preempted only cooperatively. */
#define SCAN_MAX	(1024 * 1024)

struct xrange {
	uintptr_t lo, hi;
};

/* The program's code: where a PC may be preempted (r[0..n)), but for
 * its PLT stubs (the nholes after), and the foreign code, which must
 * not be on the stack (the nforeign after, sorted by address, within
 * [flo, fhi)). Immutable once published; replaced whole when the list
 * of objects changes. */
struct ptable {
	struct ptable *old;		/* earlier tables, freed at fini */
	int n, nholes, nforeign;
	uintptr_t flo, fhi;
	const unsigned char **fehdr;	/* each foreign range's .eh_frame_hdr */
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
	uid_t uid;
	uintptr_t restorer;		/* libc's sigreturn trampoline */
	uint64_t cookie;		/* in the runtime's SIGURGs (see below) */
	/* The program's SIGURG action, which every SIGURG is passed on to:
	 * a pointer into chain_slot, published (release) by kgo_run's
	 * thread at init and by sysmon when it takes SIGURG back, read
	 * (acquire) by the handler; slots are never reused before fini. */
	_Atomic(struct sigaction *) chain;
	struct sigaction chain_slot[8];
	int nchain;			/* slots used; init and sysmon only */
	_Atomic uint64_t refused;	/* signals that found no safe point */
	/* Functions of libc (and of the sanitizers' interceptors) known to
	 * call back without holding a lock: sorted, written at init before
	 * the handler is installed, then read-only. */
	struct xrange allow[MAX_ALLOW];
	int nallow;
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

/* Foreign code: an object's executable segment, with where its
 * .eh_frame_hdr is mapped (to find a function's bounds, at init). */
struct frange {
	uintptr_t lo, hi;
	const unsigned char *ehdr;
};

struct scan {
	struct xrange r[MAX_RANGES];
	struct xrange hole[MAX_HOLES];
	struct frange foreign[MAX_FOREIGN];
	int n, nholes, nforeign;
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

/* Is the object in @info one whose code is never the program's? */
static bool object_is_foreign(struct dl_phdr_info *info, const char *name)
{
	size_t i;
	int k;

	for (i = 0; i < sizeof(unsafe_objs) / sizeof(unsafe_objs[0]); i++)
		if (!strncmp(name, unsafe_objs[i], strlen(unsafe_objs[i])))
			return true;
	if (!info->dlpi_name || !info->dlpi_name[0])
		return false;		/* the main program */
	for (k = 0; k < info->dlpi_phnum; k++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		/* libkgo.so under another name: all of it is runtime. */
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) &&
		    pre.rt_lo >= lo && pre.rt_lo < lo + ph->p_memsz)
			return true;
	}
	return false;
}

static void add_foreign(struct scan *sc, struct dl_phdr_info *info)
{
	const unsigned char *ehdr = NULL;
	int k;

	for (k = 0; k < info->dlpi_phnum; k++)
		if (info->dlpi_phdr[k].p_type == PT_GNU_EH_FRAME)
			ehdr = (const unsigned char *)(info->dlpi_addr +
						info->dlpi_phdr[k].p_vaddr);
	for (k = 0; k < info->dlpi_phnum; k++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		if (sc->nforeign == MAX_FOREIGN) {
			sc->overflow = true;
			return;
		}
		sc->foreign[sc->nforeign].lo = lo;
		sc->foreign[sc->nforeign].hi = lo + ph->p_memsz;
		sc->foreign[sc->nforeign].ehdr = ehdr;
		sc->nforeign++;
	}
}

static int scan_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct scan *sc = arg;
	const char *name = basename_of(info->dlpi_name ? info->dlpi_name : "");
	int k;

	(void)size;
	sc->adds = info->dlpi_adds;
	sc->subs = info->dlpi_subs;
	if (!strncmp(name, "libc.so", 7))
		sc->libc_shared = true;
	if (object_is_foreign(info, name)) {
		add_foreign(sc, info);
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

static int cmp_frange(const void *a, const void *b)
{
	const struct frange *x = a, *y = b;

	return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Scan the loaded objects and publish a new table. Return: false when
 * out of memory (the old table stays). */
static bool publish_table(struct scan *sc)
{
	struct ptable *t;
	int i, nr = sc->n + sc->nholes + sc->nforeign;

	t = malloc(sizeof(*t) + nr * sizeof(t->r[0]) +
		   sc->nforeign * sizeof(t->fehdr[0]));
	if (!t)
		return false;
	t->n = sc->n;
	t->nholes = sc->nholes;
	t->nforeign = sc->nforeign;
	t->fehdr = (const unsigned char **)(t->r + nr);
	memcpy(t->r, sc->r, sc->n * sizeof(t->r[0]));
	memcpy(t->r + sc->n, sc->hole, sc->nholes * sizeof(t->r[0]));
	qsort(sc->foreign, sc->nforeign, sizeof(sc->foreign[0]), cmp_frange);
	t->flo = sc->nforeign ? sc->foreign[0].lo : 0;
	t->fhi = 0;
	for (i = 0; i < sc->nforeign; i++) {
		t->r[sc->n + sc->nholes + i].lo = sc->foreign[i].lo;
		t->r[sc->n + sc->nholes + i].hi = sc->foreign[i].hi;
		t->fehdr[i] = sc->foreign[i].ehdr;
		if (sc->foreign[i].hi > t->fhi)
			t->fhi = sc->foreign[i].hi;
	}
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
/* Frames below: libc callbacks that may be preempted                 */
/* ------------------------------------------------------------------ */

/* The range of sorted @r[0..n) that holds @a, or NULL. Signal-safe. */
static const struct xrange *range_find(const struct xrange *r, int n,
				       uintptr_t a)
{
	int lo = 0, hi = n;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (a < r[mid].lo)
			hi = mid;
		else if (a >= r[mid].hi)
			lo = mid + 1;
		else
			return &r[mid];
	}
	return NULL;
}

static bool fde_bounds(const unsigned char *ehdr, uintptr_t pc,
		       struct xrange *out);

/*
 * Is a word that may be a return address into foreign code live on the
 * stack between @sp and @hi, other than one into an allowed function?
 * Conservative: any word that points into foreign code counts, but for
 * the first byte of a function, which is a function pointer (the
 * program's `fn = qsort`), not a return address. Signal-safe: the
 * tables are the loaded objects' own, read-only. no_sanitize_address:
 * the words between frames include ASan's redzones.
 */
__attribute__((no_sanitize_address))
static bool foreign_frame_below(const struct ptable *t, uintptr_t sp,
				uintptr_t hi)
{
	const struct xrange *f = t->r + t->n + t->nholes, *in;
	const uintptr_t *w = (const uintptr_t *)(sp & ~(sizeof(*w) - 1));
	const uintptr_t *end = (const uintptr_t *)hi;
	struct xrange fn;

	if (hi - sp > SCAN_MAX)
		return true;
	for (; w < end; w++) {
		uintptr_t v = *w;

		if (v < t->flo || v >= t->fhi || in_runtime(v) ||
		    v == pre.restorer)
			continue;
		in = range_find(f, t->nforeign, v);
		if (!in || range_find(pre.allow, pre.nallow, v))
			continue;
		if (fde_bounds(t->fehdr[in - f], v, &fn) && fn.lo == v)
			continue;
		return true;
	}
	return false;
}

/*
 * The bounds of the function that holds @pc, from the object's
 * .eh_frame_hdr (the binary-search table the unwinder uses: every
 * function of libc has an FDE, static ones included, which the dynamic
 * symbol table does not list). Init only. Return: false if not found.
 */
static uintptr_t eh_read(const unsigned char **pp, unsigned enc,
			 uintptr_t datarel)
{
	const unsigned char *p = *pp;
	uintptr_t v, base = 0;

	switch (enc & 0x70) {
	case 0x10: base = (uintptr_t)p; break;		/* pcrel */
	case 0x30: base = datarel; break;		/* datarel */
	}
	switch (enc & 0x0f) {
	case 0x03: { uint32_t x; memcpy(&x, p, 4); v = x; p += 4; break; }
	case 0x0b: { int32_t x; memcpy(&x, p, 4); v = (uintptr_t)(intptr_t)x;
		     p += 4; break; }
	case 0x04: case 0x0c: { uint64_t x; memcpy(&x, p, 8); v = x; p += 8;
		     break; }
	case 0x00: memcpy(&v, p, sizeof(v)); p += sizeof(v); break;
	default: return 0;	/* not used by the toolchains here */
	}
	*pp = p;
	return v ? v + base : 0;
}

static uint64_t uleb(const unsigned char **pp)
{
	uint64_t v = 0;
	int shift = 0;

	while (**pp & 0x80 && shift < 63) {
		v |= (uint64_t)(**pp & 0x7f) << shift;
		shift += 7;
		(*pp)++;
	}
	v |= (uint64_t)(**pp & 0x7f) << shift;
	(*pp)++;
	return v;
}

/* The pointer encoding of the FDEs of the CIE at @cie ('R'). */
static int cie_fde_encoding(const unsigned char *cie)
{
	const unsigned char *p = cie + 8, *aug;
	int version = *p++;

	aug = p;
	p += strlen((const char *)aug) + 1;
	if (aug[0] != 'z')
		return 0x00;		/* absptr */
	uleb(&p);			/* code alignment */
	uleb(&p);			/* data alignment (sleb: same length) */
	if (version == 1)
		p++;
	else
		uleb(&p);		/* return address register */
	uleb(&p);			/* augmentation length */
	for (aug++; *aug; aug++) {
		if (*aug == 'R')
			return *p;
		if (*aug == 'L')
			p++;
		else if (*aug == 'P')
			p++, eh_read(&p, p[-1] & 0x0f, 0);
		else if (*aug != 'S' && *aug != 'B')
			return -1;
	}
	return 0x00;
}

static bool fde_bounds(const unsigned char *ehdr, uintptr_t pc,
		       struct xrange *out)
{
	const unsigned char *p = ehdr + 4, *tab, *fde;
	uint64_t count;
	int32_t e[2];
	size_t lo = 0, hi;
	int enc;

	if (!ehdr || ehdr[0] != 1 || ehdr[2] != 0x03 || ehdr[3] != 0x3b)
		return false;	/* udata4 count, datarel|sdata4 table */
	eh_read(&p, ehdr[1], 0);
	memcpy(e, p, 4);
	count = (uint32_t)e[0];
	tab = p + 4;
	hi = count;
	if (!count)
		return false;
	/* The last entry whose start is <= pc. */
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		memcpy(e, tab + 8 * mid, 8);
		if ((uintptr_t)ehdr + e[0] <= pc)
			lo = mid;
		else
			hi = mid;
	}
	memcpy(e, tab + 8 * lo, 8);
	fde = ehdr + e[1];
	{
		uint32_t len, cieoff;

		memcpy(&len, fde, 4);
		memcpy(&cieoff, fde + 4, 4);
		if (len == 0xffffffff)
			return false;
		enc = cie_fde_encoding(fde + 4 - cieoff);
		if (enc < 0)
			return false;
		p = fde + 8;
		out->lo = eh_read(&p, enc, 0);
		out->hi = out->lo + eh_read(&p, enc & 0x0f, 0);
	}
	return pc >= out->lo && pc < out->hi;
}

/*
 * The allowlist. glibc calls a program's function back under one of its
 * own locks in dl_iterate_phdr (the loader's lock), in stdio (the FILE
 * lock, around fopencookie's callbacks and printf's registered
 * handlers), in dlopen (constructors, under the loader's lock) and in
 * fork (atfork handlers): a G switched out there keeps the lock while
 * other Gs of its thread take it again (it is recursive, by thread) or
 * wait for it for ever, and the lock's owner moves with the G to
 * another thread, whose unlock glibc refuses. The list of such callers
 * is open (every stdio function that reaches a cookie), so we list the
 * other side: the callers known to hold no lock while they call back,
 * read in glibc's source (stdlib/msort.c, qsort.c, bsearch.c,
 * misc/lsearch.c, tsearch.c): qsort, qsort_r, bsearch, lfind,
 * lsearch and the tsearch family. A frame of anything else of libc, of
 * ld.so, libgcc_s, libstdc++ (call_once, its locale and iostream
 * locks) or the vDSO on a G's stack makes the G wait for its next
 * runtime call instead.
 *
 * Which functions hold those frames is measured, not assumed: each of
 * them is called here once with a callback that notes every foreign
 * word between itself and the caller, and the whole function that
 * holds each (its FDE, static helpers like msort_with_tmp included) is
 * allowed. So a sanitizer's interceptor in between (ASan wraps qsort's
 * comparator) is allowed too, and a libc whose qsort moves to another
 * helper needs no change here. A path not taken by the probes (glibc's
 * _quicksort, for arrays too large for a temporary copy) is not
 * allowed: safe, merely not preemptible by signal.
 */
static struct scan *probe_sc;

/* Allow the function that holds @pc. Return: false if @pc is in no
 * foreign object. */
static bool allow_add(uintptr_t pc)
{
	struct xrange fn;
	int i;

	for (i = 0; i < probe_sc->nforeign; i++) {
		struct frange *f = &probe_sc->foreign[i];

		if (pc < f->lo || pc >= f->hi)
			continue;
		if (!fde_bounds(f->ehdr, pc, &fn))
			return true;
		for (i = 0; i < pre.nallow; i++)
			if (pre.allow[i].lo == fn.lo)
				return true;
		if (pre.nallow < MAX_ALLOW)
			pre.allow[pre.nallow++] = fn;
		return true;
	}
	return false;
}

/*
 * Called back by a probed function: allow each function between this
 * callback and probe_callers(), found by the real unwinder (backtrace,
 * which follows the CFI). Not by a scan of the stack as the handler
 * does: the probed functions' frames hold stale words of calls made
 * before (malloc's, dl_iterate_phdr's at the scan), and at init there
 * is time to be exact.
 */
static void probe_note(void)
{
	void *ip[64];
	int n = backtrace(ip, 64), i;
	int phase = 0;	/* 0: backtrace (maybe an interceptor), 1: ours */

	for (i = 0; i < n; i++) {
		/* The call instruction before the return address: the
		 * function that called, even if the call was its last. */
		uintptr_t pc = (uintptr_t)ip[i] - 1;
		bool ours = in_runtime(pc);

		if (phase < 2) {
			if (ours)
				phase = 1;	/* probe_note(), the callback */
			else if (phase == 1)
				phase = 2;	/* the probed function */
			if (phase < 2)
				continue;
		}
		if (ours || !allow_add(pc))
			break;			/* back in probe_callers() */
	}
}

static int probe_cmp(const void *a, const void *b)
{
	probe_note();
	return (*(const int *)a > *(const int *)b) -
	       (*(const int *)a < *(const int *)b);
}

static int probe_cmp_r(const void *a, const void *b, void *arg)
{
	(void)arg;
	return probe_cmp(a, b);
}

static void probe_walk(const void *node, VISIT v, int depth)
{
	(void)node, (void)v, (void)depth;
	probe_note();
}

static void probe_walk_r(const void *node, VISIT v, void *arg)
{
	(void)node, (void)v, (void)arg;
	probe_note();
}

static void probe_free(void *node)
{
	(void)node;
	probe_note();
}

/* Through pointers that the compiler cannot see through: glibc's
 * bsearch is inline in stdlib.h when optimising, and the program's
 * calls go through the dynamic symbol (or a sanitizer's interceptor). */
static void (*volatile probe_qsort)(void *, size_t, size_t,
				    int (*)(const void *, const void *)) = qsort;
static void (*volatile probe_qsort_r)(void *, size_t, size_t,
				      int (*)(const void *, const void *,
					      void *), void *) = qsort_r;
static void *(*volatile probe_bsearch)(const void *, const void *, size_t,
				       size_t, int (*)(const void *,
						       const void *)) = bsearch;
static void *(*volatile probe_lfind)(const void *, const void *, size_t *,
				     size_t, int (*)(const void *,
						     const void *)) = lfind;
static void *(*volatile probe_lsearch)(const void *, void *, size_t *,
				       size_t, int (*)(const void *,
						       const void *)) = lsearch;
static void *(*volatile probe_tsearch)(const void *, void **,
				       int (*)(const void *,
					       const void *)) = tsearch;
static void *(*volatile probe_tfind)(const void *, void *const *,
				     int (*)(const void *,
					     const void *)) = tfind;
static void *(*volatile probe_tdelete)(const void *, void **,
				       int (*)(const void *,
					       const void *)) = tdelete;
static void (*volatile probe_twalk)(const void *, void (*)(const void *,
							   VISIT, int)) = twalk;
static void (*volatile probe_twalk_r)(const void *,
				      void (*)(const void *, VISIT, void *),
				      void *) = twalk_r;
static void (*volatile probe_tdestroy)(void *, void (*)(void *)) = tdestroy;

__attribute__((noinline))
static void probe_callers(void)
{
	int a[300], keys[3] = { 1, 2, 3 }, k = 2, i;
	size_t n = 3;
	void *root = NULL;

	for (i = 0; i < 300; i++)
		a[i] = (i * 37) % 300;
	probe_qsort(a, 300, sizeof(int), probe_cmp);	/* malloc'd copy */
	probe_qsort(a, 8, sizeof(int), probe_cmp);	/* on the stack */
	probe_qsort_r(a, 300, sizeof(int), probe_cmp_r, NULL);
	probe_bsearch(&k, a, 300, sizeof(int), probe_cmp);
	probe_lfind(&k, keys, &n, sizeof(int), probe_cmp);
	probe_lsearch(&k, keys, &n, sizeof(int), probe_cmp);
	for (i = 0; i < 3; i++)
		probe_tsearch(&keys[i], &root, probe_cmp);
	probe_tfind(&k, &root, probe_cmp);
	probe_twalk(root, probe_walk);
	probe_twalk_r(root, probe_walk_r, NULL);
	probe_tdelete(&k, &root, probe_cmp);
	probe_tdestroy(root, probe_free);
}

static int cmp_xrange(const void *a, const void *b)
{
	const struct xrange *x = a, *y = b;

	return (x->lo > y->lo) - (x->lo < y->lo);
}

static void allow_init(struct scan *sc)
{
	probe_sc = sc;
	pre.nallow = 0;
	probe_callers();
	qsort(pre.allow, pre.nallow, sizeof(pre.allow[0]), cmp_xrange);
	probe_sc = NULL;
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
	if (!pc_is_program(uc_pc(uc)))
		return false;
	/* Acquire: as in pc_is_program(). */
	return !foreign_frame_below(atomic_load_explicit(&pre.table,
							 memory_order_acquire),
				    sp, gp->stack.hi);
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
	/* Acquire pairs with the release in chain_publish(). */
	struct sigaction *old = atomic_load_explicit(&pre.chain,
						     memory_order_acquire);

	if (!old)
		return;
	if (old->sa_flags & SA_SIGINFO) {
		if (old->sa_sigaction)
			old->sa_sigaction(sig, si, uc);
	} else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
	}
}

/* Is this SIGURG one that preempt_signal() sent? */
static bool sigurg_is_ours(const siginfo_t *si)
{
	return si->si_code == SI_QUEUE && si->si_pid == pre.pid &&
	       (uint64_t)(uintptr_t)si->si_value.sival_ptr == pre.cookie;
}

/*
 * sigurg_unblock() - in the handler, before the G is switched out: the
 * kernel blocked SIGURG for the handler (no SA_NODEFER), and this M
 * goes on to run other Gs, which must be preemptible. Without it, the
 * handler ran with SIGURG unblocked throughout, and a SIGURG sent while
 * it ran (the BPF tick sends one at every tick while a slice stays
 * over) nested a new frame on the G's stack: on a loaded machine the
 * kernel delivered them one after another at the handler's first
 * instruction until the stack ran out (preempt_test storm_p2 under
 * ASan; sigurg_not_nested shows the nesting). A SIGURG pending here is
 * delivered now, in runtime code, where its handler refuses to stop
 * the G and returns: one nested frame at most. The G gets its own mask
 * back from the signal frame (rt_sigreturn), on a new M the new M's
 * (adopt_thread_state).
 */
static void sigurg_unblock(void)
{
	uint64_t set = 1ULL << (SIGURG - 1);

	syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &set, NULL, 8);
}

static void sigurg_handler(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	int saved_errno = errno_get();
	struct m *mp = getm();
	struct g *gp = mp ? mp->curg : NULL;

	/* The BPF probes' kick to sysmon (observe_bpf.c). */
	if (observe_sigurg(si))
		goto out;
	/*
	 * Every SIGURG goes to the program's handler, the runtime's too,
	 * as Go does: a SIGURG the program sent while one of ours was
	 * pending on this thread merged with it (a standard signal is
	 * pending once), and would be lost otherwise. Before the switch,
	 * on the thread the signal came to.
	 */
	chain(sig, si, ucv);
	errno_set(saved_errno);
	if (!gp)
		goto out;
	/* The kernel's tick (bpf mode) cannot send the cookie: its
	 * request is in the M's record (see "The kernel's tick"). */
	if (si->si_code == SI_KERNEL && observe_tick_asks(mp))
		atomic_store_explicit(&gp->preempt, true,
				      memory_order_relaxed);
	else if (!sigurg_is_ours(si))
		goto out;
	if (!pre.on)
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
	sigurg_unblock();
	gopreempt(true);
	/* Running again, maybe on another M. */
	if (getm() != mp)
		adopt_thread_state(uc);
out:
	errno_set(saved_errno);
}

/* Keep @sa as the program's SIGURG action. Return: false if out of
 * slots (the program replaced the runtime's handler 8 times). */
static bool chain_publish(const struct sigaction *sa)
{
	if (pre.nchain == (int)(sizeof(pre.chain_slot) /
				sizeof(pre.chain_slot[0])))
		return false;
	pre.chain_slot[pre.nchain] = *sa;
	atomic_store_explicit(&pre.chain, &pre.chain_slot[pre.nchain++],
			      memory_order_release);
	return true;
}

static bool action_is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) &&
	       sa->sa_sigaction == sigurg_handler;
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
 * Install the runtime's SIGURG handler over @theirs, the program's
 * action, which it passes every SIGURG on to. At init, and from sysmon
 * when the program installed its own handler while kgo runs.
 * Return: 0, -ENOSPC (no slot left: the program's handler stays), or
 * -errno from sigaction.
 */
static int take_sigurg(const struct sigaction *theirs)
{
	struct sigaction sa, prev;

	if (!chain_publish(theirs))
		return -ENOSPC;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigurg_handler;
	/* No SA_ONSTACK: the frame must be on the G's stack (see above).
	 * No SA_NODEFER: a SIGURG that comes while the handler runs waits
	 * for it (the frames of nested ones would pile up on the G's
	 * stack); the handler unblocks SIGURG itself before it switches
	 * the G out (sigurg_unblock). */
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGURG, &sa, &prev))
		return -errno;
	/* Replaced again between the look and the install. */
	if (!action_is_ours(&prev) &&
	    (prev.sa_sigaction != theirs->sa_sigaction ||
	     prev.sa_flags != theirs->sa_flags))
		chain_publish(&prev);
	return 0;
}

/* Can asynchronous preemption work here? pre.on says, pre.why why. */
static void preempt_decide(bool off)
{
	struct scan *sc;
	void *warm[1];

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
	if (sc->libc_shared) {
		/* glibc's backtrace (allow_init) dlopens libgcc_s at its
		 * first call: scan again after it, so that libgcc_s is
		 * foreign code in the table from the start. */
		backtrace(warm, 1);
		memset(sc, 0, sizeof(*sc));
		dl_iterate_phdr(scan_object, sc);
		allow_init(sc);
	}
	if (!sc->libc_shared) {
		set_off("off (libc is linked statically)");
	} else if (sc->overflow) {
		set_off("off (too many executable mappings)");
	} else if (!publish_table(sc)) {
		set_off("off (out of memory)");
	}
	free(sc);
}

/*
 * preempt_init() - decide whether asynchronous preemption can work, and
 * install the SIGURG handler: also where it cannot, for the handler
 * passes the program's SIGURGs on and takes the BPF probes' kick to
 * sysmon (observe_sigurg; with preemption off under TSan and without a
 * handler, observe_test handoff_kernel_observed saw 0 kicks). Called at
 * kgo_run's start, before any M but m0 exists. @off:
 * KGO_DEBUG=asyncpreemptoff=1.
 */
void preempt_init(bool off)
{
	struct sigaction sa;

	memset(&pre, 0, sizeof(pre));
	preempt_decide(off);
	pre.lastscan = nanotime();
	pre.uid = getuid();
	if (syscall(SYS_getrandom, &pre.cookie, sizeof(pre.cookie),
		    GRND_NONBLOCK) != sizeof(pre.cookie))
		pre.cookie = (uint64_t)nanotime() ^ (uintptr_t)&pre;
	pre.cookie |= 1;
	if (sigaction(SIGURG, NULL, &sa) || take_sigurg(&sa)) {
		set_off("off (sigaction failed)");
		return;
	}
#ifdef __x86_64__
	if (!sigaction(SIGURG, NULL, &sa))
		pre.restorer = (uintptr_t)sa.sa_restorer;
#endif
	pre.installed = true;
}

void preempt_fini(void)
{
	struct ptable *t, *old;
	struct sigaction cur;

	/* Give the program its action back, unless it replaced ours. */
	if (pre.installed && !sigaction(SIGURG, NULL, &cur) &&
	    action_is_ours(&cur))
		sigaction(SIGURG, atomic_load_explicit(&pre.chain,
						       memory_order_relaxed),
			  NULL);
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
	preempt_tend(now);
	return preempt_kick(mp);
}

/*
 * preempt_tend() - what sysmon does for the signal besides sending it:
 * the object table after a dlopen, and SIGURG taken back from a handler
 * the program installed since (passing every signal on to it). Also
 * called at sysmon's looks where the kernel's tick sends the signals
 * (observe_bpf.c): without it a program's handler installed while kgo
 * runs would take every tick for good (preempt_test
 * program_sigurg_handler_during_run hung). sysmon only.
 */
void preempt_tend(int64_t now)
{
	struct sigaction cur;

	if (!pre.on)
		return;
	maybe_rescan(now);
	if (!sigaction(SIGURG, NULL, &cur) && !action_is_ours(&cur))
		take_sigurg(&cur);
}

/* The signal alone, for threads other than sysmon (the rescan and the
 * take-back of SIGURG are sysmon's: its table is not safe to rebuild
 * from two threads). */
bool preempt_kick(struct m *mp)
{
	siginfo_t si;

	if (!pre.on || mp->tid <= 0)
		return false;
	/* Marked as the runtime's: a tgkill or pthread_kill of the
	 * program's own cannot forge si_code SI_QUEUE, and a sigqueue of
	 * its own does not know the cookie. The kernel lets a process
	 * queue any siginfo to its own threads. */
	memset(&si, 0, sizeof(si));
	si.si_signo = SIGURG;
	si.si_code = SI_QUEUE;
	si.si_pid = pre.pid;
	si.si_uid = pre.uid;
	si.si_value.sival_ptr = (void *)(uintptr_t)pre.cookie;
	return syscall(SYS_rt_tgsigqueueinfo, pre.pid, mp->tid, SIGURG,
		       &si) == 0;
}
