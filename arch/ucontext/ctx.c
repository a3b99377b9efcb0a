// SPDX-License-Identifier: MIT
/*
 * arch/ucontext/ctx.c - the portable context switch, on libc's ucontext.
 *
 * What is saved: swapcontext() keeps the whole user context, more than
 * the ABI asks for: all general registers, the stack pointer, the
 * floating-point environment (on x86_64 the x87 environment and MXCSR,
 * on aarch64 FPCR and FPSR), and the signal mask. The signal mask costs
 * an rt_sigprocmask() system call on every switch, which is why this is
 * the fallback and not the default: it is for architectures without a
 * switch.S, and for sanitizer builds (ASan intercepts swapcontext()).
 *
 * makecontext() passes only int arguments, so fn and arg are each split
 * into two 32-bit halves and joined again in kgo_ctx_entry(). That keeps
 * no state outside the context itself: no static, no thread-local, so
 * any thread may make or start any context.
 *
 * The new stack, as makecontext() lays it out (libc aligns it):
 *
 *	stack_lo + size	+---------------------------+
 *			| libc's start frame        |  uc_link = NULL: never
 *			|   (returns to its exit)   |  reached, see below
 *			| kgo_ctx_entry(fn, arg)    |
 *			| fn(arg)                   |
 *			|           ...             |
 *	stack_lo	+---------------------------+
 *
 * fn must never return; if it does, kgo_ctx_entry() says so on fd 2 and
 * aborts instead of letting libc end the thread. libc's start frame
 * also ends backtraces.
 *
 * A new context inherits the signal mask and the FP environment that
 * the making thread has when it calls kgo_ctx_make(), which getcontext()
 * captures, as a new thread inherits its creator's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "ctx.h"

static void die(const char *msg, size_t len)
{
	ssize_t n;

	n = write(2, msg, len);
	(void)n;
	abort();
}

#define DIE(msg) die(msg, sizeof(msg) - 1)

static void kgo_ctx_entry(unsigned int fn_hi, unsigned int fn_lo,
			  unsigned int arg_hi, unsigned int arg_lo)
{
	void (*fn)(void *);
	void *arg;

	fn = (void (*)(void *))(uintptr_t)((uint64_t)fn_hi << 32 | fn_lo);
	arg = (void *)(uintptr_t)((uint64_t)arg_hi << 32 | arg_lo);
	fn(arg);
	DIE("kgo: context entry returned\n");
}

void kgo_ctx_make(struct kgo_ctx *c, void *stack_lo, size_t size,
		  void (*fn)(void *), void *arg)
{
	uint64_t f = (uintptr_t)fn, a = (uintptr_t)arg;

	if (getcontext(&c->uc) != 0)
		DIE("kgo_ctx_make: getcontext failed\n");
	c->uc.uc_stack.ss_sp = stack_lo;
	c->uc.uc_stack.ss_size = size;
	c->uc.uc_link = NULL;
	makecontext(&c->uc, (void (*)(void))kgo_ctx_entry, 4,
		    (unsigned int)(f >> 32), (unsigned int)f,
		    (unsigned int)(a >> 32), (unsigned int)a);
}

/*
 * getcontext() gives the new context the FP state of the thread that
 * makes it; there is no portable way to set another, so @fpctl is not
 * used: made later or elsewhere, a context gets the maker's state.
 */
uint64_t kgo_ctx_fpctl(void)
{
	return 0;
}

void kgo_ctx_make_fp(struct kgo_ctx *c, void *stack_lo, size_t size,
		     void (*fn)(void *), void *arg, uint64_t fpctl)
{
	(void)fpctl;
	kgo_ctx_make(c, stack_lo, size, fn, arg);
}

void kgo_ctx_switch(struct kgo_ctx *from, struct kgo_ctx *to)
{
	if (swapcontext(&from->uc, &to->uc) != 0)
		DIE("kgo_ctx_switch: swapcontext failed\n");
}
