/* SPDX-License-Identifier: MIT */
/*
 * arch/ucontext/ctx.h - the portable context: a ucontext_t.
 *
 * Chosen with -DKGO_CTX_UCONTEXT (KGO_CTX=ucontext). It runs wherever
 * libc has getcontext()/makecontext()/swapcontext(), and the sanitizers
 * understand it, but every switch also saves and restores the signal
 * mask with a system call, so it is many times slower than the
 * assembly versions. ctx.c says more. Include this through arch/ctx.h.
 */
#ifndef KGO_ARCH_UCONTEXT_CTX_H
#define KGO_ARCH_UCONTEXT_CTX_H

#include <stddef.h>
#include <stdint.h>
#include <ucontext.h>

#define KGO_CTX_IMPL "ucontext"

struct kgo_ctx {
	ucontext_t uc;
};

void kgo_ctx_make(struct kgo_ctx *c, void *stack_lo, size_t size,
		  void (*fn)(void *), void *arg);
void kgo_ctx_make_fp(struct kgo_ctx *c, void *stack_lo, size_t size,
		     void (*fn)(void *), void *arg, uint64_t fpctl);
uint64_t kgo_ctx_fpctl(void);
void kgo_ctx_switch(struct kgo_ctx *from, struct kgo_ctx *to);

#endif /* KGO_ARCH_UCONTEXT_CTX_H */
