/* SPDX-License-Identifier: MIT */
/*
 * arch/kgo_syscall.h - one system call, straight to the kernel.
 *
 *	long kgo_arch_syscall6(long nr, long a0, long a1, long a2,
 *			       long a3, long a4, long a5);
 *
 * returns what the kernel returns: the result, or -errno in
 * [-4095, -1]. kgo_syscall() uses it instead of glibc's syscall(3),
 * which would store errno only for the runtime to read it back (a few
 * ns of the syscall fast path's budget: `selftests/bench/run syscall`).
 * The registers are the kernel's calling convention for each CPU
 * (x86_64: rax, then rdi rsi rdx r10 r8 r9, rcx and r11 clobbered;
 * aarch64: x8, then x0-x5, svc 0). Other CPUs go through syscall(3).
 */
#ifndef KGO_ARCH_SYSCALL_H
#define KGO_ARCH_SYSCALL_H

#if defined(__x86_64__)
static inline long kgo_arch_syscall6(long nr, long a0, long a1, long a2,
				     long a3, long a4, long a5)
{
	register long r10 __asm__("r10") = a3;
	register long r8 __asm__("r8") = a4;
	register long r9 __asm__("r9") = a5;
	long ret;

	__asm__ __volatile__("syscall"
			     : "=a"(ret)
			     : "a"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10),
			       "r"(r8), "r"(r9)
			     : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
static inline long kgo_arch_syscall6(long nr, long a0, long a1, long a2,
				     long a3, long a4, long a5)
{
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a0;
	register long x1 __asm__("x1") = a1;
	register long x2 __asm__("x2") = a2;
	register long x3 __asm__("x3") = a3;
	register long x4 __asm__("x4") = a4;
	register long x5 __asm__("x5") = a5;

	__asm__ __volatile__("svc 0"
			     : "+r"(x0)
			     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4),
			       "r"(x5)
			     : "memory");
	return x0;
}
#else
#include <errno.h>
#include <unistd.h>

static inline long kgo_arch_syscall6(long nr, long a0, long a1, long a2,
				     long a3, long a4, long a5)
{
	long r = syscall(nr, a0, a1, a2, a3, a4, a5);

	return r == -1 ? -errno : r;
}
#endif

#endif /* KGO_ARCH_SYSCALL_H */
