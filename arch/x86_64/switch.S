/* SPDX-License-Identifier: MIT */
/*
 * arch/x86_64/switch.S - switch between two kgo contexts (x86_64 SysV).
 *
 * kgo_ctx_switch(from, to) is an ordinary call, so the compiler has
 * already spilled every caller-saved register it still needs. What the
 * SysV ABI says a callee must give back unchanged is all we keep:
 *
 *   - rbx, rbp, r12, r13, r14, r15;
 *   - rsp, kept in from->sp, and the return address, already on the
 *     stack thanks to the call;
 *   - the MXCSR control bits and the x87 control word (rounding mode,
 *     precision, exception masks), which the ABI makes callee-saved, so
 *     that each context keeps its own fesetround() and friends. MXCSR
 *     is saved whole: its sticky exception flags then also follow the
 *     context, which is harmless and saves masking them.
 *
 * No xmm register is callee-saved in SysV, so none is saved. The frame
 * is pushed on the stack being left; struct kgo_ctx keeps only rsp.
 *
 * The frame, as kgo_ctx_switch leaves it (and kgo_ctx_make builds it):
 *
 *	high	+-----------------------+
 *		| return address        |  <- where the switch returns
 *		| rbp                   |
 *		| rbx                   |
 *		| r12                   |
 *		| r13                   |
 *		| r14                   |
 *		| r15                   |
 *		| pad:16 fcw:16 mxcsr:32|  <- ctx->sp
 *	low	+-----------------------+
 *
 * A new context's frame has kgo_ctx_entry as its return address, fn in
 * rbx, arg in r12 and rbp = 0; see ctx.c for the words above it.
 * kgo_ctx_entry is where backtraces end: its CFI marks the return
 * address as undefined, and rbp = 0 ends frame-pointer walks.
 *
 * Once from->sp is written the old stack is not touched again. There is
 * no barrier here, though: to another CPU the frame stores need not be
 * visible before the store to from->sp. So a runtime must not let
 * another thread resume *from until this switch is over, and must then
 * publish it with a release store (paired with the acquire of whoever
 * takes it), from the context switched to, as Go does on g0.
 *
 * Not done: CET shadow stacks. This object carries no GNU property
 * note, so the linker marks a program using it as not shadow-stack
 * safe, and the kernel leaves shadow stacks off for it.
 */

	.text

/* void kgo_ctx_switch(struct kgo_ctx *from (rdi), struct kgo_ctx *to (rsi)) */
	.globl	kgo_ctx_switch
	.type	kgo_ctx_switch, @function
	.p2align 4
kgo_ctx_switch:
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbx, 0
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r12, 0
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r13, 0
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r14, 0
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r15, 0
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)

	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	/*
	 * Now on the other stack. Its frame has the same shape, so the CFI
	 * above still describes it (as the other context's frame).
	 */

	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r15
	popq	%r14
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r14
	popq	%r13
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r13
	popq	%r12
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r12
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbx
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbp
	ret
	.cfi_endproc
	.size	kgo_ctx_switch, .-kgo_ctx_switch

/*
 * The first code a new context runs, entered by kgo_ctx_switch's ret
 * with rbx = fn, r12 = arg, rbp = 0 and rsp 16-byte aligned, so that
 * the call below gives fn the alignment the ABI promises at a call.
 * The return address is undefined here: unwinders stop at this frame.
 */
	.globl	kgo_ctx_entry
	.hidden	kgo_ctx_entry
	.type	kgo_ctx_entry, @function
	.p2align 4
kgo_ctx_entry:
	.cfi_startproc
	.cfi_undefined %rip
	movq	%r12, %rdi
	call	*%rbx
	/* fn must not return; say so and abort. */
	call	kgo_ctx_entry_returned@PLT
	ud2
	.cfi_endproc
	.size	kgo_ctx_entry, .-kgo_ctx_entry

	.section .note.GNU-stack,"",%progbits
