// SPDX-License-Identifier: MIT
/*
 * arch/x86_64/ctx.c - build the first frame of a new x86_64 context.
 *
 * kgo_ctx_make() writes on the new stack the frame kgo_ctx_switch()
 * (switch.S) pops, so that the first switch to the context "returns"
 * into kgo_ctx_entry, which calls fn(arg). With T the top of the stack
 * rounded down to 16 bytes:
 *
 *	T	+-----------------------+  (stack_lo + size, rounded down)
 *	T-8	| 0  (pad)              |
 *	T-16	| 0  (fake return addr) |  <- rsp in kgo_ctx_entry
 *	T-24	| kgo_ctx_entry         |  <- popped by switch's ret
 *	T-32	| rbp = 0               |  ends frame-pointer walks
 *	T-40	| rbx = fn              |
 *	T-48	| r12 = arg             |
 *	T-56	| r13 = 0               |
 *	T-64	| r14 = 0               |
 *	T-72	| r15 = 0               |
 *	T-80	| fcw | mxcsr           |  <- c->sp
 *		|         ...           |  fn's frames grow down from T-16
 *	stack_lo+-----------------------+
 *
 * The SysV ABI wants rsp + 8 to be a multiple of 16 when a function is
 * entered, which the call in kgo_ctx_entry gives from an aligned T-16.
 * The zero word at T-16 is what a frame walker would read as the entry
 * frame's return address. T-8 is only padding.
 *
 * A new context inherits the FP control state (MXCSR control bits and
 * the x87 control word) of the thread that makes it, as a new thread
 * inherits its creator's; MXCSR's sticky exception flags start clear.
 * kgo_ctx_make_fp() takes that state from an earlier kgo_ctx_fpctl()
 * instead, so that a context can be made later, or on another thread,
 * with its creator's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "ctx.h"

/* In switch.S. */
void kgo_ctx_entry(void);
/* Called by kgo_ctx_entry if fn returns. */
__attribute__((visibility("hidden"), noreturn))
void kgo_ctx_entry_returned(void);

#define MXCSR_FLAGS	0x3fu	/* IE DE ZE OE UE PE: sticky status */

uint64_t kgo_ctx_fpctl(void)
{
	uint32_t mxcsr;
	uint16_t fcw;

	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(fcw));
	return (uint64_t)fcw << 32 | (mxcsr & ~MXCSR_FLAGS);
}

void kgo_ctx_make_fp(struct kgo_ctx *c, void *stack_lo, size_t size,
		     void (*fn)(void *), void *arg, uint64_t fpctl)
{
	uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
	uint64_t *sp = (uint64_t *)top;

	*--sp = 0;				/* pad */
	*--sp = 0;				/* fake return address */
	*--sp = (uintptr_t)kgo_ctx_entry;	/* switch's ret goes here */
	*--sp = 0;				/* rbp */
	*--sp = (uintptr_t)fn;			/* rbx */
	*--sp = (uintptr_t)arg;			/* r12 */
	*--sp = 0;				/* r13 */
	*--sp = 0;				/* r14 */
	*--sp = 0;				/* r15 */
	*--sp = fpctl;				/* fcw | mxcsr */
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
