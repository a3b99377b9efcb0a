/* SPDX-License-Identifier: MIT */
/*
 * arch/aarch64/switch.S - switch between two kgo contexts (AAPCS64).
 *
 * kgo_ctx_switch(from, to) is an ordinary call, so the compiler has
 * already spilled every caller-saved register it still needs. What
 * AAPCS64 says a callee must give back unchanged is all we keep:
 *
 *   - x19-x28, the frame pointer x29 and the link register x30 (the
 *     return address);
 *   - sp, kept in from->sp;
 *   - d8-d15, the low 64 bits of v8-v15: only those are callee-saved;
 *   - FPCR (rounding mode, flush-to-zero, default NaN), which the ABI
 *     makes callee-saved, so that each context keeps its own
 *     fesetround(). FPSR holds only sticky status, caller-saved: skipped.
 *
 * The frame, 176 bytes, stored on the stack being left (sp stays
 * 16-byte aligned throughout, as the hardware checks on Linux):
 *
 *	high	+-------------------+  <- sp before the call
 *	+160	| fpcr    | pad     |
 *	+144	| d14     | d15     |
 *	+128	| d12     | d13     |
 *	+112	| d10     | d11     |
 *	+96	| d8      | d9      |
 *	+80	| x27     | x28     |
 *	+64	| x25     | x26     |
 *	+48	| x23     | x24     |
 *	+32	| x21     | x22     |
 *	+16	| x19     | x20     |
 *	+0	| x29     | x30     |  <- ctx->sp
 *	low	+-------------------+
 *
 * A new context's frame (ctx.c) has x30 = kgo_ctx_entry, x19 = fn,
 * x20 = arg, x29 = 0 and the rest zero, so the switch's ret lands in
 * kgo_ctx_entry with sp at the aligned top of the stack. kgo_ctx_entry
 * is where backtraces end: its CFI marks x30 undefined, and x29 = 0
 * ends frame-record walks.
 *
 * Once from->sp is written the old stack is not touched again. There is
 * no barrier here, though: to another CPU the frame stores need not be
 * visible before the store to from->sp. So a runtime must not let
 * another thread resume *from until this switch is over, and must then
 * publish it with a release store (paired with the acquire of whoever
 * takes it), from the context switched to, as Go does on g0.
 *
 * Not done: pointer authentication and BTI. Return addresses are not
 * signed (a switch returns on a stack other than the one it was called
 * on), and this object carries no GNU property note, so a program that
 * links it runs without BTI.
 */

	.text

/* void kgo_ctx_switch(struct kgo_ctx *from (x0), struct kgo_ctx *to (x1)) */
	.globl	kgo_ctx_switch
	.type	kgo_ctx_switch, %function
	.p2align 4
kgo_ctx_switch:
	.cfi_startproc
	stp	x29, x30, [sp, #-176]!
	.cfi_def_cfa_offset 176
	.cfi_offset x29, -176
	.cfi_offset x30, -168
	stp	x19, x20, [sp, #16]
	.cfi_offset x19, -160
	.cfi_offset x20, -152
	stp	x21, x22, [sp, #32]
	.cfi_offset x21, -144
	.cfi_offset x22, -136
	stp	x23, x24, [sp, #48]
	.cfi_offset x23, -128
	.cfi_offset x24, -120
	stp	x25, x26, [sp, #64]
	.cfi_offset x25, -112
	.cfi_offset x26, -104
	stp	x27, x28, [sp, #80]
	.cfi_offset x27, -96
	.cfi_offset x28, -88
	stp	d8, d9, [sp, #96]
	.cfi_offset d8, -80
	.cfi_offset d9, -72
	stp	d10, d11, [sp, #112]
	.cfi_offset d10, -64
	.cfi_offset d11, -56
	stp	d12, d13, [sp, #128]
	.cfi_offset d12, -48
	.cfi_offset d13, -40
	stp	d14, d15, [sp, #144]
	.cfi_offset d14, -32
	.cfi_offset d15, -24
	mrs	x9, fpcr
	str	x9, [sp, #160]

	mov	x10, sp
	str	x10, [x0]
	ldr	x10, [x1]
	mov	sp, x10
	/*
	 * Now on the other stack. Its frame has the same shape, so the CFI
	 * above still describes it (as the other context's frame).
	 */

	/* Writing FPCR can stall the pipeline; skip it when unchanged. */
	ldr	x10, [sp, #160]
	cmp	x9, x10
	b.eq	1f
	msr	fpcr, x10
1:
	ldp	x19, x20, [sp, #16]
	ldp	x21, x22, [sp, #32]
	ldp	x23, x24, [sp, #48]
	ldp	x25, x26, [sp, #64]
	ldp	x27, x28, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	ldp	x29, x30, [sp], #176
	.cfi_def_cfa_offset 0
	.cfi_restore x29
	.cfi_restore x30
	.cfi_restore x19
	.cfi_restore x20
	.cfi_restore x21
	.cfi_restore x22
	.cfi_restore x23
	.cfi_restore x24
	.cfi_restore x25
	.cfi_restore x26
	.cfi_restore x27
	.cfi_restore x28
	.cfi_restore d8
	.cfi_restore d9
	.cfi_restore d10
	.cfi_restore d11
	.cfi_restore d12
	.cfi_restore d13
	.cfi_restore d14
	.cfi_restore d15
	ret
	.cfi_endproc
	.size	kgo_ctx_switch, .-kgo_ctx_switch

/*
 * The first code a new context runs, entered by kgo_ctx_switch's ret
 * with x19 = fn, x20 = arg, x29 = 0 and sp at the 16-byte aligned top
 * of the new stack. The return address is undefined here: unwinders
 * stop at this frame.
 */
	.globl	kgo_ctx_entry
	.hidden	kgo_ctx_entry
	.type	kgo_ctx_entry, %function
	.p2align 4
kgo_ctx_entry:
	.cfi_startproc
	.cfi_undefined x30
	mov	x0, x20
	blr	x19
	/* fn must not return; say so and abort. */
	bl	kgo_ctx_entry_returned
	brk	#0
	.cfi_endproc
	.size	kgo_ctx_entry, .-kgo_ctx_entry

	.section .note.GNU-stack,"",%progbits
