// SPDX-License-Identifier: MIT
/*
 * stack.c - G stacks: pooled, committed lazily, each with a guard.
 *
 * Slots are carved from chunks: one mmap holds many slots, so a million
 * Gs do not need a million mappings. The chunk's structs g sit together
 * at its bottom, one per slot, 64-byte aligned (no two share a cache
 * line), and are not on the stack's pages:
 *
 *   high  +----------------------+  chunk end
 *         | slot n-1             |
 *         |        ...           |
 *         +----------------------+
 *         | stack, grows down    |  hi = slot + guard + usable
 *         |   ... untouched      |  not committed until touched
 *         +----------------------+  lo = slot + guard
 *         | guard (16 KiB)       |  faults; reported as an overflow
 *         +----------------------+  slot 0
 *         | struct g [n]         |  ~16 a page
 *   low   +----------------------+  chunk base
 *
 * So making a G writes only the dense g array: its stack's first page is
 * touched by the G's first frame, which proc.c writes on the M that
 * first runs it, so the page faults of a burst of new Gs are spread over
 * the Ps instead of all landing on the creator. (On this VM a fresh page
 * costs 1.5-2.4 us to fault in, mostly the host backing it; 1M Gs are
 * 1M fresh pages. parked_1m: the creator spent ~40% of its time in
 * faults on the G page while the other P's M spun idle.)
 *
 * The guard is made with MADV_GUARD_INSTALL (Linux 6.13+), which marks
 * page table entries and does not split the mapping; older kernels get
 * mprotect(PROT_NONE), which splits it (two VMAs a slot, so
 * vm.max_map_count, 65530 by default, then caps live Gs at ~32k). The
 * guard is 16 KiB rather than one page so that a frame of a few KiB
 * cannot jump over it into the neighbouring slot. All of a chunk's
 * guards are installed when it is mapped, with one process_madvise()
 * over PIDFD_SELF (Linux 6.15+; from 6.13 over a pidfd_open() of our own
 * pid) where the kernel takes it: 0.66 us a slot against 0.8-0.97 us for
 * one madvise() each (1M slots of 84 KiB, 256 a chunk, on this 6.18 VM).
 *
 * Before 6.13 (Debian 12's 6.1) mprotect guards cost two mappings a
 * slot, and a process that reaches vm.max_map_count can map nothing
 * more: not a chunk, not an M's stack, not a ring. So mprotect guards
 * get half of vm.max_map_count; slots carved beyond that come from
 * chunks without guards (one mapping for the chunk), which the runtime
 * says once on stderr. A stack overflow there runs into the 16 KiB gap
 * below the stack, then into the neighbouring slot, as on a thread
 * stack with no guard. core_test million_gs_alive_fit_map_count:
 *   make vmtest -k 6.1 VMTEST_TESTS=core_test
 *
 * Populating in batches. A new slot's top page (where the G's first
 * frame goes) and its struct g are populated ahead, POPULATE_BATCH slots
 * at a time, with one process_madvise(MADV_POPULATE_WRITE) made by the
 * M that takes the first slot of a batch, outside the pool lock. Whether
 * that pays depends on the hypervisor, so it was measured on both kinds
 * of VM these machines have been (1M pages 80 KiB apart, 2 threads):
 *   - nested VM of 2026-11: first-touch faults 1.7 s; populate in
 *     batches of 256 then touch, 2.2 s (slower: the cost was in backing
 *     the page, which populate does as well);
 *   - PVM guest of 2026-12 (shadow page tables: pvm_* in perf): first
 *     touch 10.8-11.8 s, populate then touch 5.3-8.8 s; parked_1m's
 *     creation 11.9-13.5 s -> 9.8-10 s. A fault there is a round trip
 *     guest user -> host -> guest kernel -> host; populate leaves only
 *     the shadow fill on the first user touch.
 * It is on by default, since the loss where it loses is smaller than the
 * gain where it wins; KGO_STACK_POPULATE=0 turns it off. Before 6.13
 * process_madvise takes no MADV_POPULATE_WRITE, so the batch is one
 * madvise() a range there (5.14+); older kernels leave it to the faults.
 *   (cd /tmp && for v in 0 1; do KGO_STACK_POPULATE=$v \
 *     build/bench/parked -p 2 -n 1000000 | head -1; done)
 * Neither removes the floor: a live G holds at least one page of its own
 * (its stack's top), and 1M first touches of fresh pages cost 5-12 s on
 * the PVM guest whatever touches them.
 *
 * Chunks are MADV_NOHUGEPAGE: with THP, the first touch of a stack would
 * commit 2 MiB instead of 4 KiB.
 *
 * A dead G keeps its slot on a free list (per P in proc.c for the
 * default size, here for every size); a slot given back here is
 * MADV_DONTNEED'ed, so its stack memory returns to the kernel while its
 * address range and guard stay for reuse.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef PIDFD_SELF
#define PIDFD_SELF	(-10000)	/* linux/pidfd.h, 6.15+: this task */
#endif

#define GUARD_SIZE	(16 * 1024)
#define NCLASSES	17		/* 16 KiB << 0 .. 16 (1 GiB) */
#define CHUNK_SLOTS_MAX	256		/* <= UIO_MAXIOV (1024) */
#define CHUNK_BYTES	(32u << 20)	/* aim for chunks of ~32 MiB */
#define POPULATE_BATCH	64		/* slots populated ahead at a time */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct chunk {
	struct chunk *next;
	void *base;
	size_t len;
	bool keep;		/* stack_keep: never unmapped; pool.lock */
};

struct sclass {
	size_t usable;		/* stack bytes */
	size_t slot;		/* guard + usable */
	char *bump, *end;	/* carving the current chunk's slots */
	char *gbump;		/* and its structs g, in step */
	size_t carved;		/* slots carved from this chunk so far */
	struct g **free;	/* released slots (their Gs) */
	size_t nfree, capfree;
};

enum guard_kind {
	GUARD_MPROTECT,		/* mprotect(PROT_NONE): a VMA split a slot */
	GUARD_MADVISE,		/* madvise(MADV_GUARD_INSTALL) a slot */
	GUARD_BATCH,		/* process_madvise(PIDFD_SELF) a chunk */
};

static struct {
	struct kgo_lock lock;
	struct sclass cls[NCLASSES];
	struct chunk *chunks;
	size_t page;
	size_t gsize;		/* sizeof(struct g), 64-byte aligned */
	enum guard_kind guard;
	long guard_budget;	/* mprotect guards: mappings they may still add */
	bool unguarded;		/* a chunk went without guards (said once) */
	_Atomic bool populate;	/* populate new slots ahead; relaxed: a hint */
	bool pop_batch;		/* ... with one process_madvise, not madvises */
	int pidfd;		/* ours for process_madvise (PIDFD_SELF is
				 * negative); -1: none */
	pid_t pidfd_pid;	/* whose it is (a forked child opens its own) */
	bool inited;
} pool = { .lock = KGO_LOCK_INIT, .pidfd = -1 };

static _Atomic bool said_guard, said_pidfd, said_populate;

const char *stack_guard_kind(void)
{
	static const char *const name[] = {
		[GUARD_MPROTECT] = "mprotect",
		[GUARD_MADVISE] = "madv_guard",
		[GUARD_BATCH] = "madv_guard_batch",
	};

	return name[pool.guard];
}

size_t stack_round(size_t size)
{
	size_t u = 16 * 1024;

	while (u < size)
		u <<= 1;
	return u;
}

static int size_class(size_t size)
{
	int c = 0;

	while (c < NCLASSES && ((size_t)16 * 1024 << c) < size)
		c++;
	return c < NCLASSES ? c : -1;
}

static long pmadvise(const struct iovec *iov, size_t n, int advice)
{
	return syscall(__NR_process_madvise, pool.pidfd, iov, n, advice, 0);
}

/*
 * A pidfd of our own for process_madvise: PIDFD_SELF (6.15+), else
 * pidfd_open(getpid()) (5.3+; O_CLOEXEC). Checked with MADV_WILLNEED,
 * which process_madvise takes on every kernel that has it (5.10+).
 * Called by stack_init only, before any G runs.
 */
static void self_pidfd(void)
{
	char *m;
	struct iovec iov;

	if (pool.pidfd_pid == getpid())
		return;
	if (pool.pidfd >= 0)
		close(pool.pidfd);	/* a forked child's copy: the parent's */
	pool.pidfd = -1;
	pool.pidfd_pid = getpid();
	m = mmap(NULL, pool.page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return;
	iov = (struct iovec){ .iov_base = m, .iov_len = pool.page };
	pool.pidfd = PIDFD_SELF;
	if (pmadvise(&iov, 1, MADV_WILLNEED) < 0) {
		pool.pidfd = syscall(SYS_pidfd_open, getpid(), 0);
		if (pool.pidfd >= 0 && pmadvise(&iov, 1, MADV_WILLNEED) < 0) {
			close(pool.pidfd);
			pool.pidfd = -1;
		}
		kgo_fallback(&said_pidfd, "no PIDFD_SELF (6.15+): "
			     "process_madvise over %s",
			     pool.pidfd >= 0 ? "pidfd_open(getpid())" :
			     "nothing (none works here)");
	}
	munmap(m, pool.page);
}

/* How MADV_POPULATE_WRITE can be had here: one process_madvise for a
 * batch (6.13+), a madvise a range (5.14+), or not at all. */
static void probe_populate(void)
{
	char *m = mmap(NULL, pool.page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iovec iov = { .iov_base = m, .iov_len = pool.page };

	if (m == MAP_FAILED)
		return;
	pool.pop_batch = pool.pidfd != -1 &&
			 pmadvise(&iov, 1, MADV_POPULATE_WRITE) == (long)pool.page;
	if (!pool.pop_batch) {
		if (madvise(m, pool.page, MADV_POPULATE_WRITE))
			atomic_store_explicit(&pool.populate, false,
					      memory_order_relaxed);
		kgo_fallback(&said_populate, "process_madvise takes no "
			     "MADV_POPULATE_WRITE (6.13+): new stacks %s",
			     atomic_load_explicit(&pool.populate,
						  memory_order_relaxed) ?
			     "populated with one madvise a slot" :
			     "left to page faults");
	}
	munmap(m, pool.page);
}

/* vm.max_map_count, the cap on a process's mappings. */
static long max_map_count(void)
{
	char buf[32] = "";
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	long v = 0;

	if (f) {
		if (fgets(buf, sizeof(buf), f))
			v = strtol(buf, NULL, 10);
		fclose(f);
	}
	return v > 0 ? v : 65530;	/* the kernel's default */
}

/*
 * Does the guard advice really work here? Check that the kernel takes
 * it and that the page then faults: a write(2) from it to a pipe must
 * fail with EFAULT (an emulator such as qemu-user may accept the advice
 * without doing anything). @batch: through process_madvise, which takes
 * any advice on one's own mm from 6.13 (PIDFD_SELF from 6.15).
 * On the 6.18 VM this was written on, both work:
 *   strace -e process_madvise build/bench/parked -n 1000
 * shows process_madvise(-10000, [...], 256, 0x66, 0) = 4194304.
 */
static bool probe_guard(bool batch)
{
	size_t pg = pool.page;
	char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iovec iov = { .iov_base = m, .iov_len = pg };
	int fds[2];
	bool ok = false, took;

	if (m == MAP_FAILED || (batch && pool.pidfd == -1))
		goto out;
	took = batch ? pmadvise(&iov, 1, MADV_GUARD_INSTALL) == (long)pg
		     : madvise(m, pg, MADV_GUARD_INSTALL) == 0;
	if (took && pipe(fds) == 0) {
		ok = write(fds[1], m, 1) < 0 && errno == EFAULT;
		close(fds[0]);
		close(fds[1]);
	}
out:
	if (m != MAP_FAILED)
		munmap(m, 2 * pg);
	return ok;
}

int stack_init(void)
{
	int c;

	if (pool.inited) {
		self_pidfd();
		return 0;
	}
	pool.page = sysconf(_SC_PAGESIZE);
	pool.gsize = (sizeof(struct g) + 63) & ~(size_t)63;
	self_pidfd();
	if (env_flag("KGO_NO_MADV_GUARD", false, "using MADV_GUARD_INSTALL "
		     "where the kernel has it"))
		pool.guard = GUARD_MPROTECT;
	else if (!env_flag("KGO_NO_GUARD_BATCH", false, "guard pages "
			   "installed in batches") && probe_guard(true))
		pool.guard = GUARD_BATCH;
	else if (probe_guard(false))
		pool.guard = GUARD_MADVISE;
	else
		pool.guard = GUARD_MPROTECT;
	pool.guard_budget = max_map_count() / 2;
	if (pool.guard == GUARD_MPROTECT)
		kgo_fallback(&said_guard, "no MADV_GUARD_INSTALL (6.13+): "
			     "stack guards by mprotect, two mappings a G, for "
			     "the first %ld Gs (half of vm.max_map_count)",
			     pool.guard_budget / 2);
	atomic_store_explicit(&pool.populate,
			      env_flag("KGO_STACK_POPULATE", true, "populating "
				       "stack slots ahead"),
			      memory_order_relaxed);
	if (atomic_load_explicit(&pool.populate, memory_order_relaxed))
		probe_populate();
	for (c = 0; c < NCLASSES; c++) {
		struct sclass *sc = &pool.cls[c];

		sc->usable = (size_t)16 * 1024 << c;
		sc->slot = GUARD_SIZE + sc->usable;
	}
	pool.inited = true;
	return 0;
}

/* Guard the n slots from @first, @stride apart. */
static int guard(char *first, size_t n, size_t stride)
{
	struct iovec iov[CHUNK_SLOTS_MAX];
	size_t i;
	long r;

	if (pool.guard == GUARD_BATCH) {
		for (i = 0; i < n; i++) {
			iov[i].iov_base = first + i * stride;
			iov[i].iov_len = GUARD_SIZE;
		}
		r = pmadvise(iov, n, MADV_GUARD_INSTALL);
		if (r == (long)(n * GUARD_SIZE))
			return 0;
		/* Partial (the kernel stops at the first failure): the rest
		 * one by one, which reports the error. */
		i = r > 0 ? (size_t)r / GUARD_SIZE : 0;
	} else {
		i = 0;
	}
	for (; i < n; i++) {
		char *s = first + i * stride;

		if (pool.guard == GUARD_MPROTECT ?
		    mprotect(s, GUARD_SIZE, PROT_NONE) :
		    madvise(s, GUARD_SIZE, MADV_GUARD_INSTALL))
			return -errno;
	}
	return 0;
}

/* Map a new chunk for class sc, its guards installed; pool.lock held. */
static int chunk_grow(struct sclass *sc)
{
	size_t n = CHUNK_BYTES / sc->slot, garr, len;
	struct chunk *ck;
	char *m;

	if (n < 1)
		n = 1;
	if (n > CHUNK_SLOTS_MAX)
		n = CHUNK_SLOTS_MAX;
	garr = (n * pool.gsize + pool.page - 1) & ~(pool.page - 1);
	len = garr + n * sc->slot;
	ck = malloc(sizeof(*ck));
	if (!ck)
		return -ENOMEM;
	m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
		 -1, 0);
	if (m == MAP_FAILED) {
		free(ck);
		return -ENOMEM;
	}
	madvise(m, len, MADV_NOHUGEPAGE);
	/* A write (to the first struct g's page) gives the chunk its
	 * anon_vma before mprotect splits it: its pieces share that one
	 * and can merge again (stack_release_all). Pieces faulted in after the
	 * split get one each and stay apart: a kept chunk then still held
	 * 25-37 mappings a run in abandon_keeps_few_mappings, 3 with it. */
	if (pool.guard == GUARD_MPROTECT)
		*(volatile char *)m = 0;
	if (pool.guard == GUARD_MPROTECT && pool.guard_budget < (long)(2 * n)) {
		if (!pool.unguarded)
			kgo_printf("kgo: stacks of new Gs have no guard pages: "
				   "mprotect guards cost two mappings a G and "
				   "have used half of vm.max_map_count (%ld); "
				   "Linux 6.13+ guards without mappings\n",
				   max_map_count());
		pool.unguarded = true;
	} else if (guard(m + garr, n, sc->slot)) {
		munmap(m, len);
		free(ck);
		return -ENOMEM;
	} else if (pool.guard == GUARD_MPROTECT) {
		pool.guard_budget -= 2 * n;
	}
	ck->base = m;
	ck->keep = false;
	ck->len = len;
	ck->next = pool.chunks;
	pool.chunks = ck;
	sc->gbump = m;
	sc->bump = m + garr;
	sc->end = sc->bump + n * sc->slot;
	sc->carved = 0;
	return 0;
}

/*
 * Populate the top pages of the n slots from @slot (carved in a row,
 * their structs g from @g): see "Populating in batches" above. Advice
 * only: a failure (an old kernel without PIDFD_SELF or the advice) just
 * leaves the pages to be faulted in, and turns the batching off.
 */
static void populate(struct sclass *sc, char *slot, char *g, size_t n)
{
	struct iovec iov[POPULATE_BATCH + 1];
	uintptr_t glo = (uintptr_t)g & ~(pool.page - 1);
	uintptr_t ghi = ((uintptr_t)g + n * pool.gsize + pool.page - 1) &
			~(pool.page - 1);
	size_t i;

	for (i = 0; i < n; i++) {
		iov[i].iov_base = slot + (i + 1) * sc->slot - pool.page;
		iov[i].iov_len = pool.page;
	}
	iov[n].iov_base = (void *)glo;
	iov[n].iov_len = ghi - glo;
	if (!pool.pop_batch) {
		for (i = 0; i <= n; i++)
			madvise(iov[i].iov_base, iov[i].iov_len,
				MADV_POPULATE_WRITE);
		return;
	}
	if (pmadvise(iov, n + 1, MADV_POPULATE_WRITE) < 0 &&
	    errno != ENOMEM && errno != EINTR)
		atomic_store_explicit(&pool.populate, false,
				      memory_order_relaxed);
}

struct g *stack_alloc_g(size_t size)
{
	struct sclass *sc;
	struct g *gp;
	char *slot;
	int c = size_class(size);

	if (c < 0)
		return NULL;
	sc = &pool.cls[c];
	lock(&pool.lock);
	if (sc->nfree) {
		gp = sc->free[--sc->nfree];
		unlock(&pool.lock);
		slot = (char *)gp->stack.guard;
		/* The G's fields outlive the slot's release. */
		memset(gp, 0, sizeof(*gp));
	} else {
		if (sc->bump == sc->end && chunk_grow(sc)) {
			unlock(&pool.lock);
			return NULL;
		}
		size_t ahead = 0;

		slot = sc->bump;
		sc->bump += sc->slot;
		gp = (struct g *)sc->gbump;
		sc->gbump += pool.gsize;
		if (atomic_load_explicit(&pool.populate,
					 memory_order_relaxed) &&
		    sc->carved++ % POPULATE_BATCH == 0) {
			ahead = (size_t)(sc->end - slot) / sc->slot;
			if (ahead > POPULATE_BATCH)
				ahead = POPULATE_BATCH;
		}
		unlock(&pool.lock);
		/* Fresh from mmap: already zeroes. The chunk stays mapped
		 * until stack_release_all(), so populating after the
		 * unlock is safe even while others carve the batch. */
		if (ahead)
			populate(sc, slot, (char *)gp, ahead);
	}
	gp->stack.guard = (uintptr_t)slot;
	gp->stack.lo = (uintptr_t)slot + GUARD_SIZE;
	gp->stack.hi = ((uintptr_t)slot + sc->slot) & ~(uintptr_t)15;
	gp->stack.size = size;
	gp->stack.cls = c;
	return gp;
}

void stack_free_g(struct g *gp)
{
	struct sclass *sc = &pool.cls[gp->stack.cls];
	char *slot = (char *)gp->stack.guard;

	/* Give the stack's memory back; the range and its guard stay ours. */
	madvise(slot + GUARD_SIZE, sc->usable, MADV_DONTNEED);
	lock(&pool.lock);
	if (sc->nfree == sc->capfree) {
		size_t ncap = sc->capfree ? sc->capfree * 2 : 256;
		struct g **nf = realloc(sc->free, ncap * sizeof(*nf));

		if (!nf) {
			/* Leak the range rather than fail a free. */
			unlock(&pool.lock);
			return;
		}
		sc->free = nf;
		sc->capfree = ncap;
	}
	sc->free[sc->nfree++] = gp;
	unlock(&pool.lock);
}

/*
 * stack_release_all() - unmap the chunks but those kept (stack_keep).
 *
 * A chunk kept for an abandoned M stays mapped for good;
 * with mprotect guards it would keep its 2n+1 mappings too, and a
 * program whose runs each abandon an M (main returning while Gs sleep
 * in system calls) then ran into vm.max_map_count after ~127 runs: 6.1
 * guest, sysmon_test exit_amid_handoffs, kgo_run -ENOMEM; run_test
 * abandon_keeps_few_mappings: 515 mappings a run. So its guards go: one
 * mprotect over the chunk, which merges it back into one mapping, as
 * MADV_GUARD_INSTALL's chunks are. Its Gs never run again; an abandoned
 * thread only returns from its call and parks (proc.c, "Abandoning Ms"),
 * a few frames, and the memory under it is unchanged.
 */
void stack_release_all(void)
{
	struct chunk *ck, *next;
	int c;

	lock(&pool.lock);
	for (ck = pool.chunks; ck; ck = next) {
		next = ck->next;
		if (!ck->keep)
			munmap(ck->base, ck->len);
		else if (pool.guard == GUARD_MPROTECT)
			mprotect(ck->base, ck->len, PROT_READ | PROT_WRITE);
		free(ck);
	}
	pool.chunks = NULL;
	pool.guard_budget = max_map_count() / 2;
	for (c = 0; c < NCLASSES; c++) {
		struct sclass *sc = &pool.cls[c];

		free(sc->free);
		sc->free = NULL;
		sc->nfree = sc->capfree = 0;
		sc->bump = sc->end = sc->gbump = NULL;
	}
	unlock(&pool.lock);
}

/*
 * stack_keep() - leave gp's chunk (NULL: every chunk) mapped when the
 * pool is released: forgotten, never reused, so that a thread left in
 * a system call at kgo_run's end, which runs on its G's stack, or I/O
 * still writing to the stacks, never meets the next run's memory.
 */
void stack_keep(struct g *gp)
{
	uintptr_t a = (uintptr_t)gp;
	struct chunk *ck;

	lock(&pool.lock);
	for (ck = pool.chunks; ck; ck = ck->next)
		if (!gp || (a >= (uintptr_t)ck->base &&
			    a < (uintptr_t)ck->base + ck->len))
			ck->keep = true;
	unlock(&pool.lock);
}

static void fmt_size(char *buf, size_t n, size_t sz)
{
	static const char *const unit[] = { "bytes", "KiB", "MiB", "GiB" };
	int u = 0;

	while (u < 3 && sz >= 1024 && sz % 1024 == 0) {
		sz /= 1024;
		u++;
	}
	snprintf(buf, n, "%zu %s", sz, unit[u]);
}

void stack_check_overflow(void *addr)
{
	struct g *gp = getg();
	uintptr_t a = (uintptr_t)addr;
	char sz[32];

	if (!gp || a < gp->stack.guard || a >= gp->stack.lo)
		return;
	fmt_size(sz, sizeof(sz), gp->stack.size);
	kgo_printf("kgo: goroutine %llu overflowed its %s stack "
		   "(fault at %p in its guard page); "
		   "give it a bigger stack with kgo_go_sized()\n",
		   (unsigned long long)gp->goid, sz, addr);
	/* The caller restores SIGSEGV's default action: the process dies
	 * of the fault, with a core dump where enabled. */
}
