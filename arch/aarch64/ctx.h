/* SPDX-License-Identifier: MIT */
/*
 * arch/aarch64/ctx.h - the AAPCS64 context: one stack pointer.
 *
 * Everything else a switch must keep (x19-x30, d8-d15 and FPCR) is
 * stored on the stack being left, so struct kgo_ctx is only where that
 * stack pointer is kept. switch.S describes the frame. Include this
 * through arch/ctx.h.
 */
#ifndef KGO_ARCH_AARCH64_CTX_H
#define KGO_ARCH_AARCH64_CTX_H

#include <stddef.h>
#include <stdint.h>

#define KGO_CTX_IMPL "aarch64"

struct kgo_ctx {
	void *sp;	/* saved sp; switch.S reads and writes offset 0 */
};

_Static_assert(offsetof(struct kgo_ctx, sp) == 0,
	       "switch.S expects kgo_ctx.sp at offset 0");

void kgo_ctx_make(struct kgo_ctx *c, void *stack_lo, size_t size,
		  void (*fn)(void *), void *arg);
void kgo_ctx_make_fp(struct kgo_ctx *c, void *stack_lo, size_t size,
		     void (*fn)(void *), void *arg, uint64_t fpctl);
uint64_t kgo_ctx_fpctl(void);
void kgo_ctx_switch(struct kgo_ctx *from, struct kgo_ctx *to);

#endif /* KGO_ARCH_AARCH64_CTX_H */
