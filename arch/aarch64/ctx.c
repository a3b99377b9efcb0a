// SPDX-License-Identifier: MIT
/*
 * arch/aarch64/ctx.c - build the first frame of a new AAPCS64 context.
 *
 * kgo_ctx_make() writes on the new stack the 176-byte frame that
 * kgo_ctx_switch() (switch.S) loads, so that the first switch to the
 * context "returns" into kgo_ctx_entry, which calls fn(arg). With T the
 * top of the stack rounded down to 16 bytes:
 *
 *	T	+-----------------------+  (stack_lo + size, rounded down)
 *	T-16	| fpcr      | 0         |  sp is T again in kgo_ctx_entry
 *	T-32	| d14 = 0   | d15 = 0   |
 *	T-48	| d12 = 0   | d13 = 0   |
 *	T-64	| d10 = 0   | d11 = 0   |
 *	T-80	| d8 = 0    | d9 = 0    |
 *	T-96	| x27 = 0   | x28 = 0   |
 *	T-112	| x25 = 0   | x26 = 0   |
 *	T-128	| x23 = 0   | x24 = 0   |
 *	T-144	| x21 = 0   | x22 = 0   |
 *	T-160	| x19 = fn  | x20 = arg |
 *	T-176	| x29 = 0   | x30 = kgo_ctx_entry  <- c->sp
 *		|          ...          |  fn's frames grow down from T
 *	stack_lo+-----------------------+
 *
 * x29 = 0 becomes the parent link of fn's frame record, which ends
 * frame-pointer walks there.
 *
 * A new context inherits the FPCR (rounding mode, flush-to-zero) of the
 * thread that makes it, as a new thread inherits its creator's;
 * kgo_ctx_make_fp() takes it from an earlier kgo_ctx_fpctl() instead, so
 * that a context can be made later, or on another thread, with its
 * creator's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctx.h"

/* In switch.S. */
void kgo_ctx_entry(void);
/* Called by kgo_ctx_entry if fn returns. */
__attribute__((visibility("hidden"), noreturn))
void kgo_ctx_entry_returned(void);

/* The frame of switch.S, in 8-byte words from c->sp. */
enum {
	F_X29, F_X30, F_X19, F_X20,
	F_FPCR = 20,
	F_WORDS = 22,
};

uint64_t kgo_ctx_fpctl(void)
{
	uint64_t fpcr;

	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	return fpcr;
}

void kgo_ctx_make_fp(struct kgo_ctx *c, void *stack_lo, size_t size,
		     void (*fn)(void *), void *arg, uint64_t fpctl)
{
	uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
	uint64_t *sp = (uint64_t *)top - F_WORDS;

	memset(sp, 0, F_WORDS * sizeof(*sp));
	sp[F_X29] = 0;
	sp[F_X30] = (uintptr_t)kgo_ctx_entry;
	sp[F_X19] = (uintptr_t)fn;
	sp[F_X20] = (uintptr_t)arg;
	sp[F_FPCR] = fpctl;
	c->sp = sp;
}

void kgo_ctx_make(struct kgo_ctx *c, void *stack_lo, size_t size,
		  void (*fn)(void *), void *arg)
{
	kgo_ctx_make_fp(c, stack_lo, size, fn, arg, kgo_ctx_fpctl());
}

void kgo_ctx_entry_returned(void)
{
	static const char msg[] = "kgo: context entry returned\n";
	ssize_t n;

	n = write(2, msg, sizeof(msg) - 1);
	(void)n;
	abort();
}
