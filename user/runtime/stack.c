// SPDX-License-Identifier: MIT
/*
 * stack.c - G stacks: pooled, committed lazily, each with a guard.
 *
 * A G and its stack are one slot. The struct g sits at the top of the
 * slot, so a G that has just started touches one page for both:
 *
 *   high  +----------------------+  slot + guard + usable + PAGE
 *         | struct g             |
 *         +----------------------+  hi (stack top, 16-byte aligned)
 *         | stack, grows down    |
 *         |   ... untouched      |  not committed until touched
 *         +----------------------+  lo = slot + guard
 *         | guard (16 KiB)       |  faults; reported as an overflow
 *   low   +----------------------+  slot
 *
 * Slots are carved from chunks: one mmap holds many slots, so a million
 * Gs do not need a million mappings. The guard is made with
 * MADV_GUARD_INSTALL (Linux 6.13+), which marks page table entries and
 * does not split the mapping; older kernels get mprotect(PROT_NONE),
 * which splits it (two VMAs a slot, so vm.max_map_count, 65530 by
 * default, then caps live Gs at ~32k). The guard is 16 KiB rather than
 * one page so that a frame of a few KiB cannot jump over it into the
 * neighbouring slot.
 *
 * Chunks are MADV_NOHUGEPAGE: with THP, the first touch of a stack would
 * commit 2 MiB instead of 4 KiB.
 *
 * A dead G keeps its slot on a free list (per P in proc.c for the
 * default size, here for every size); a slot given back here is
 * MADV_DONTNEED'ed, so its memory returns to the kernel while its
 * address range and guard stay for reuse.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define GUARD_SIZE	(16 * 1024)
#define NCLASSES	17		/* 16 KiB << 0 .. 16 (1 GiB) */
#define CHUNK_SLOTS_MAX	256
#define CHUNK_BYTES	(32u << 20)	/* aim for chunks of ~32 MiB */

struct chunk {
	struct chunk *next;
	void *base;
	size_t len;
};

struct sclass {
	size_t usable;		/* stack bytes below the G page */
	size_t slot;		/* guard + usable + G page */
	char *bump, *end;	/* carving the current chunk */
	void **free;		/* released slots (their bases) */
	size_t nfree, capfree;
};

static struct {
	struct kgo_lock lock;
	struct sclass cls[NCLASSES];
	struct chunk *chunks;
	size_t page;
	size_t gpage;		/* bytes at the top for the G (>= sizeof g) */
	bool madv_guard;
	bool inited;
} pool = { .lock = KGO_LOCK_INIT };

const char *stack_guard_kind(void)
{
	return pool.madv_guard ? "madv_guard" : "mprotect";
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

/*
 * Does MADV_GUARD_INSTALL really work here? Check that the kernel takes
 * it and that the page then faults: a write(2) from it to a pipe must
 * fail with EFAULT (an emulator such as qemu-user may accept the advice
 * without doing anything).
 */
static bool probe_madv_guard(void)
{
	size_t pg = pool.page;
	char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fds[2];
	bool ok = false;

	if (m == MAP_FAILED)
		return false;
	if (madvise(m, pg, MADV_GUARD_INSTALL) == 0 && pipe(fds) == 0) {
		ok = write(fds[1], m, 1) < 0 && errno == EFAULT;
		close(fds[0]);
		close(fds[1]);
	}
	munmap(m, 2 * pg);
	return ok;
}

int stack_init(void)
{
	int c;

	if (pool.inited)
		return 0;
	pool.page = sysconf(_SC_PAGESIZE);
	pool.gpage = (sizeof(struct g) + 63) & ~(size_t)63;
	pool.madv_guard = getenv("KGO_NO_MADV_GUARD") ? false
						       : probe_madv_guard();
	for (c = 0; c < NCLASSES; c++) {
		struct sclass *sc = &pool.cls[c];

		sc->usable = (size_t)16 * 1024 << c;
		sc->slot = GUARD_SIZE + sc->usable + pool.page;
	}
	pool.inited = true;
	return 0;
}

static int guard(char *slot)
{
	if (pool.madv_guard)
		return madvise(slot, GUARD_SIZE, MADV_GUARD_INSTALL) ? -errno : 0;
	return mprotect(slot, GUARD_SIZE, PROT_NONE) ? -errno : 0;
}

/* Map a new chunk for class sc; pool.lock held. */
static int chunk_grow(struct sclass *sc)
{
	size_t n = CHUNK_BYTES / sc->slot, len;
	struct chunk *ck;
	void *m;

	if (n < 1)
		n = 1;
	if (n > CHUNK_SLOTS_MAX)
		n = CHUNK_SLOTS_MAX;
	len = n * sc->slot;
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
	ck->base = m;
	ck->len = len;
	ck->next = pool.chunks;
	pool.chunks = ck;
	sc->bump = m;
	sc->end = (char *)m + len;
	return 0;
}

static struct g *slot_g(struct sclass *sc, char *slot)
{
	return (struct g *)(slot + sc->slot - pool.gpage);
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
		slot = sc->free[--sc->nfree];
	} else {
		if (sc->bump == sc->end && chunk_grow(sc)) {
			unlock(&pool.lock);
			return NULL;
		}
		slot = sc->bump;
		sc->bump += sc->slot;
		if (guard(slot)) {
			unlock(&pool.lock);
			return NULL;
		}
	}
	unlock(&pool.lock);

	/* A fresh or released slot reads as zeroes: no memset needed for
	 * the page the G lives in (touching it commits it anyway). */
	gp = slot_g(sc, slot);
	gp->stack.guard = (uintptr_t)slot;
	gp->stack.lo = (uintptr_t)slot + GUARD_SIZE;
	gp->stack.hi = (uintptr_t)gp & ~(uintptr_t)15;
	gp->stack.size = size;
	gp->stack.cls = c;
	return gp;
}

void stack_free_g(struct g *gp)
{
	struct sclass *sc = &pool.cls[gp->stack.cls];
	char *slot = (char *)gp->stack.guard;

	/* Give the memory back; the range and its guard stay ours. */
	madvise(slot + GUARD_SIZE, sc->slot - GUARD_SIZE, MADV_DONTNEED);
	lock(&pool.lock);
	if (sc->nfree == sc->capfree) {
		size_t ncap = sc->capfree ? sc->capfree * 2 : 256;
		void **nf = realloc(sc->free, ncap * sizeof(void *));

		if (!nf) {
			/* Leak the range rather than fail a free. */
			unlock(&pool.lock);
			return;
		}
		sc->free = nf;
		sc->capfree = ncap;
	}
	sc->free[sc->nfree++] = slot;
	unlock(&pool.lock);
}

void stack_release_all(void)
{
	struct chunk *ck, *next;
	int c;

	lock(&pool.lock);
	for (ck = pool.chunks; ck; ck = next) {
		next = ck->next;
		munmap(ck->base, ck->len);
		free(ck);
	}
	pool.chunks = NULL;
	for (c = 0; c < NCLASSES; c++) {
		struct sclass *sc = &pool.cls[c];

		free(sc->free);
		sc->free = NULL;
		sc->nfree = sc->capfree = 0;
		sc->bump = sc->end = NULL;
	}
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
