/* SPDX-License-Identifier: MIT */
/*
 * arch/ctx.h - the one header that picks a context switch.
 *
 * The runtime switches between Gs (and between a G and its M's g0) with
 * two calls, declared by every implementation below:
 *
 *	void kgo_ctx_make(struct kgo_ctx *c, void *stack_lo, size_t size,
 *			  void (*fn)(void *), void *arg);
 *	void kgo_ctx_switch(struct kgo_ctx *from, struct kgo_ctx *to);
 *
 * and two for making a context later than its creation:
 *
 *	uint64_t kgo_ctx_fpctl(void);
 *	void kgo_ctx_make_fp(struct kgo_ctx *c, void *stack_lo, size_t size,
 *			     void (*fn)(void *), void *arg, uint64_t fpctl);
 *
 * kgo_ctx_make() prepares c so that the first kgo_ctx_switch() to it
 * calls fn(arg) on the stack [stack_lo, stack_lo + size), aligned as the
 * ABI wants at a call. fn must never return: if it does, the process
 * writes "kgo: context entry returned" to fd 2 and aborts.
 *
 * kgo_ctx_switch() saves the caller's callee-saved state in *from and
 * resumes *to; it returns when someone switches back to *from.
 *
 * A made context starts with the FP control state (rounding, exception
 * masks, flush-to-zero) of the thread that makes it. To make it later or
 * on another thread with the state of now, save kgo_ctx_fpctl() and pass
 * it to kgo_ctx_make_fp(), which is otherwise kgo_ctx_make() (the
 * runtime does this: a new G's frame is written by the M that first
 * runs it). The ucontext fallback cannot set it and ignores it.
 *
 * KGO_CTX_IMPL names the implementation ("x86_64", "aarch64",
 * "ucontext") so that the runtime can report which one it runs.
 *
 * The assembly versions are the default. The ucontext one is the
 * portable fallback, chosen with -DKGO_CTX_UCONTEXT (KGO_CTX=ucontext);
 * sanitizer builds may use it because the sanitizers know swapcontext().
 */
#ifndef KGO_ARCH_CTX_H
#define KGO_ARCH_CTX_H

#if defined(KGO_CTX_UCONTEXT)	/* portable fallback: -DKGO_CTX_UCONTEXT */
#include "ucontext/ctx.h"
#elif defined(__x86_64__)
#include "x86_64/ctx.h"
#elif defined(__aarch64__)
#include "aarch64/ctx.h"
#else
#error "kgo: no context switch for this architecture; build with KGO_CTX=ucontext"
#endif

#endif /* KGO_ARCH_CTX_H */
