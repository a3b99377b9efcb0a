// SPDX-License-Identifier: MIT
/*
 * Description: the context switch in arch/, on its own.
 *
 * Depends only on arch/ (not on the runtime), so it is the first thing
 * to run on a new architecture or a new switch.S. Each test is built to
 * fail when the switch is wrong, not merely to exercise it:
 *
 *   callee_saved_regs	a context that loads garbage into every
 *			callee-saved register switches back; the registers
 *			loaded before the switch must be intact (and sp).
 *   fp_control		two contexts set different rounding modes (and on
 *			x86_64 x87 precisions) and each sees its own after
 *			the other ran; the maker's state is untouched; a new
 *			context inherits its maker's state.
 *   ping_pong		1,000,000 switches with a counter checked on both
 *			sides; reports the cost of one switch.
 *   entry_alignment	fn starts with the stack aligned as at a call,
 *			even on a misaligned stack; aligned SIMD locals and
 *			printf("%f") work there.
 *   many_contexts	1000 contexts on their own stacks pass a token
 *			round a ring; each keeps its own locals; no stack
 *			is overrun.
 *   entry_return_aborts	a returning fn ends the process with SIGABRT
 *			and the documented message.
 *   unwind_ends_at_entry	an unwinder walking from fn stops cleanly at
 *			the entry frame (what gdb's backtrace relies on).
 *
 * Build: cc -O2 -Iarch -Iselftests selftests/ctx_test.c with
 * arch/<arch>/ctx.c and arch/<arch>/switch.S (or arch/ucontext/ctx.c and
 * -DKGO_CTX_UCONTEXT).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

#include "ctx.h"
#include "harness.h"

#define STACK_SIZE	(64 * 1024)

static void *stack_alloc(size_t size)
{
	void *p = malloc(size);

	if (!p) {
		perror("malloc");
		abort();
	}
	return p;
}

__attribute__((format(printf, 1, 2)))
static void diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("# ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Callee-saved registers                                             */
/* ------------------------------------------------------------------ */

/*
 * void ctx_test_regs_probe(struct kgo_ctx *from, struct kgo_ctx *to,
 *			    const uint64_t *in, uint64_t *out);
 *
 * Loads in[0..NREGS) into the callee-saved registers, switches from ->
 * to, and once switched back stores those registers into out[0..NREGS),
 * with sp before the switch in out[NREGS] and after it in out[NREGS+1].
 * It keeps its own caller's callee-saved registers, like any function.
 * Written in assembly because only there can we own those registers
 * across the call.
 */
void ctx_test_regs_probe(struct kgo_ctx *from, struct kgo_ctx *to,
			 const uint64_t *in, uint64_t *out);

#if defined(__x86_64__)
/* rbx, rbp, r12, r13, r14, r15 */
#define NREGS 6
static const char *const reg_names[NREGS] = {
	"rbx", "rbp", "r12", "r13", "r14", "r15",
};
__asm__(
"	.text\n"
"	.globl	ctx_test_regs_probe\n"
"	.hidden	ctx_test_regs_probe\n"
"	.type	ctx_test_regs_probe, @function\n"
"ctx_test_regs_probe:\n"
"	pushq	%rbp\n"
"	pushq	%rbx\n"
"	pushq	%r12\n"
"	pushq	%r13\n"
"	pushq	%r14\n"
"	pushq	%r15\n"
"	pushq	%rcx\n"		/* out; a 7th push aligns rsp */
"	movq	%rsp, 48(%rcx)\n"
"	movq	0(%rdx), %rbx\n"
"	movq	8(%rdx), %rbp\n"
"	movq	16(%rdx), %r12\n"
"	movq	24(%rdx), %r13\n"
"	movq	32(%rdx), %r14\n"
"	movq	40(%rdx), %r15\n"
"	call	kgo_ctx_switch@PLT\n"
"	movq	(%rsp), %rax\n"
"	movq	%rbx, 0(%rax)\n"
"	movq	%rbp, 8(%rax)\n"
"	movq	%r12, 16(%rax)\n"
"	movq	%r13, 24(%rax)\n"
"	movq	%r14, 32(%rax)\n"
"	movq	%r15, 40(%rax)\n"
"	movq	%rsp, 56(%rax)\n"
"	popq	%rcx\n"
"	popq	%r15\n"
"	popq	%r14\n"
"	popq	%r13\n"
"	popq	%r12\n"
"	popq	%rbx\n"
"	popq	%rbp\n"
"	ret\n"
"	.size	ctx_test_regs_probe, .-ctx_test_regs_probe\n"
);
#elif defined(__aarch64__)
/* x19-x28, x29, d8-d15 */
#define NREGS 19
static const char *const reg_names[NREGS] = {
	"x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28",
	"x29", "d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15",
};
__asm__(
"	.text\n"
"	.globl	ctx_test_regs_probe\n"
"	.hidden	ctx_test_regs_probe\n"
"	.type	ctx_test_regs_probe, %function\n"
"ctx_test_regs_probe:\n"
"	stp	x29, x30, [sp, #-176]!\n"
"	stp	x19, x20, [sp, #16]\n"
"	stp	x21, x22, [sp, #32]\n"
"	stp	x23, x24, [sp, #48]\n"
"	stp	x25, x26, [sp, #64]\n"
"	stp	x27, x28, [sp, #80]\n"
"	stp	d8, d9, [sp, #96]\n"
"	stp	d10, d11, [sp, #112]\n"
"	stp	d12, d13, [sp, #128]\n"
"	stp	d14, d15, [sp, #144]\n"
"	str	x3, [sp, #160]\n"		/* out */
"	mov	x9, sp\n"
"	str	x9, [x3, #152]\n"
"	ldp	x19, x20, [x2, #0]\n"
"	ldp	x21, x22, [x2, #16]\n"
"	ldp	x23, x24, [x2, #32]\n"
"	ldp	x25, x26, [x2, #48]\n"
"	ldp	x27, x28, [x2, #64]\n"
"	ldr	x29, [x2, #80]\n"
"	ldp	d8, d9, [x2, #88]\n"
"	ldp	d10, d11, [x2, #104]\n"
"	ldp	d12, d13, [x2, #120]\n"
"	ldp	d14, d15, [x2, #136]\n"
"	bl	kgo_ctx_switch\n"
"	ldr	x9, [sp, #160]\n"
"	stp	x19, x20, [x9, #0]\n"
"	stp	x21, x22, [x9, #16]\n"
"	stp	x23, x24, [x9, #32]\n"
"	stp	x25, x26, [x9, #48]\n"
"	stp	x27, x28, [x9, #64]\n"
"	str	x29, [x9, #80]\n"
"	stp	d8, d9, [x9, #88]\n"
"	stp	d10, d11, [x9, #104]\n"
"	stp	d12, d13, [x9, #120]\n"
"	stp	d14, d15, [x9, #136]\n"
"	mov	x10, sp\n"
"	str	x10, [x9, #160]\n"
"	ldp	x19, x20, [sp, #16]\n"
"	ldp	x21, x22, [sp, #32]\n"
"	ldp	x23, x24, [sp, #48]\n"
"	ldp	x25, x26, [sp, #64]\n"
"	ldp	x27, x28, [sp, #80]\n"
"	ldp	d8, d9, [sp, #96]\n"
"	ldp	d10, d11, [sp, #112]\n"
"	ldp	d12, d13, [sp, #128]\n"
"	ldp	d14, d15, [sp, #144]\n"
"	ldp	x29, x30, [sp], #176\n"
"	ret\n"
"	.size	ctx_test_regs_probe, .-ctx_test_regs_probe\n"
);
#endif

#ifdef NREGS
struct regs_test {
	struct kgo_ctx main, clobber;
	uint64_t garbage[NREGS];
	uint64_t seen[NREGS + 2];	/* what the clobberer got back */
};

/*
 * The other context: load garbage into every callee-saved register,
 * switch back, and when resumed check our garbage came back too.
 */
static void regs_clobber(void *arg)
{
	struct regs_test *t = arg;

	ctx_test_regs_probe(&t->clobber, &t->main, t->garbage, t->seen);
	kgo_ctx_switch(&t->clobber, &t->main);
	abort();	/* never resumed again */
}
#endif

TEST(callee_saved_regs)
{
#ifdef NREGS
	struct regs_test t;
	uint64_t in[NREGS], out[NREGS + 2], in2[NREGS], out2[NREGS + 2];
	void *stack = stack_alloc(STACK_SIZE);
	int i;

	for (i = 0; i < NREGS; i++) {
		in[i] = 0x0123456789abcdefull ^ ((uint64_t)(i + 1) << 56) ^
			(uint64_t)i * 0x0101010101ull;
		in2[i] = ~in[i];
		t.garbage[i] = 0xdead0000beef0000ull | (uint64_t)i << 20 | i;
	}
	memset(out, 0, sizeof(out));
	memset(out2, 0, sizeof(out2));
	memset(t.seen, 0, sizeof(t.seen));
	kgo_ctx_make(&t.clobber, stack, STACK_SIZE, regs_clobber, &t);

	/* Ours survive the clobberer... */
	ctx_test_regs_probe(&t.main, &t.clobber, in, out);
	for (i = 0; i < NREGS; i++) {
		if (out[i] != in[i])
			diag("%s: loaded %#llx, got back %#llx", reg_names[i],
			     (unsigned long long)in[i],
			     (unsigned long long)out[i]);
		EXPECT_EQ(in[i], out[i]);
	}
	EXPECT_EQ(out[NREGS], out[NREGS + 1]);	/* sp */

	/* ...and the clobberer's survive us, in the other direction. */
	ctx_test_regs_probe(&t.main, &t.clobber, in2, out2);
	for (i = 0; i < NREGS; i++) {
		if (t.seen[i] != t.garbage[i])
			diag("%s (other context): loaded %#llx, got back %#llx",
			     reg_names[i], (unsigned long long)t.garbage[i],
			     (unsigned long long)t.seen[i]);
		EXPECT_EQ(t.garbage[i], t.seen[i]);
		EXPECT_EQ(in2[i], out2[i]);
	}
	EXPECT_EQ(t.seen[NREGS], t.seen[NREGS + 1]);
	EXPECT_EQ(out2[NREGS], out2[NREGS + 1]);
	free(stack);
#else
	SKIP(return, "no register probe for this architecture");
#endif
}

/* ------------------------------------------------------------------ */
/* FP control state                                                   */
/* ------------------------------------------------------------------ */

/*
 * The FP control state the ABI makes callee-saved, as one value, and
 * the bits of it we compare (the rounding and precision controls; not
 * sticky status flags, which any FP operation may set).
 */
#if defined(__x86_64__)
struct fpctl {
	uint32_t mxcsr;
	uint16_t fcw;
};

#define MXCSR_RC_MASK	0x6000u
#define MXCSR_RC_DOWN	0x2000u
#define MXCSR_RC_ZERO	0x6000u
#define FCW_CTL_MASK	0x0f00u		/* precision and rounding */

static struct fpctl fpctl_get(void)
{
	struct fpctl f;

	__asm__ volatile("stmxcsr %0" : "=m"(f.mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(f.fcw));
	return f;
}

static void fpctl_set(struct fpctl f)
{
	__asm__ volatile("ldmxcsr %0" : : "m"(f.mxcsr));
	__asm__ volatile("fldcw %0" : : "m"(f.fcw));
}

static int fpctl_same(struct fpctl a, struct fpctl b)
{
	return (a.mxcsr & ~0x3fu) == (b.mxcsr & ~0x3fu) &&
	       (a.fcw & FCW_CTL_MASK) == (b.fcw & FCW_CTL_MASK);
}

/* Round toward zero; x87: single precision, round toward zero. */
static struct fpctl fpctl_mode_a(struct fpctl base)
{
	base.mxcsr = (base.mxcsr & ~MXCSR_RC_MASK) | MXCSR_RC_ZERO;
	base.fcw = (base.fcw & ~FCW_CTL_MASK) | 0x0c00;
	return base;
}

/* Round down; x87: double precision, round down. */
static struct fpctl fpctl_mode_b(struct fpctl base)
{
	base.mxcsr = (base.mxcsr & ~MXCSR_RC_MASK) | MXCSR_RC_DOWN;
	base.fcw = (base.fcw & ~FCW_CTL_MASK) | 0x0600;
	return base;
}

static unsigned long long fpctl_show(struct fpctl f)
{
	return (unsigned long long)f.fcw << 32 | f.mxcsr;
}
#elif defined(__aarch64__)
struct fpctl {
	uint64_t fpcr;
};

#define FPCR_RMODE_MASK	(3ull << 22)
#define FPCR_RMODE_RP	(1ull << 22)	/* toward plus infinity */
#define FPCR_RMODE_RZ	(3ull << 22)	/* toward zero */
#define FPCR_FZ		(1ull << 24)	/* flush denormals to zero */

static struct fpctl fpctl_get(void)
{
	struct fpctl f;

	__asm__ volatile("mrs %0, fpcr" : "=r"(f.fpcr));
	return f;
}

static void fpctl_set(struct fpctl f)
{
	__asm__ volatile("msr fpcr, %0" : : "r"(f.fpcr));
}

static int fpctl_same(struct fpctl a, struct fpctl b)
{
	return a.fpcr == b.fpcr;
}

/* Round toward zero, flush-to-zero. */
static struct fpctl fpctl_mode_a(struct fpctl base)
{
	base.fpcr = (base.fpcr & ~FPCR_RMODE_MASK) | FPCR_RMODE_RZ | FPCR_FZ;
	return base;
}

/* Round toward plus infinity. */
static struct fpctl fpctl_mode_b(struct fpctl base)
{
	base.fpcr = (base.fpcr & ~(FPCR_RMODE_MASK | FPCR_FZ)) |
		    FPCR_RMODE_RP;
	return base;
}

static unsigned long long fpctl_show(struct fpctl f)
{
	return f.fpcr;
}
#endif

#ifdef MXCSR_RC_MASK
#define FPCTL_TEST 1
#elif defined(FPCR_RMODE_MASK)
#define FPCTL_TEST 1
#endif

#ifdef FPCTL_TEST
/*
 * 1/3 and -1/3 computed now: under round-toward-zero (mode a) they are
 * exact opposites; under a directed rounding (mode b) they are not.
 * This checks that the hardware really computes with the mode we read.
 */
static int fp_rounds_symmetric(void)
{
	volatile double one = 1.0, three = 3.0;
	volatile double up = one / three, dn = -one / three;

	return -dn == up;
}

struct fp_test {
	struct kgo_ctx main, a, b, c;
	struct fpctl mode_a, mode_b;
	struct fpctl seen_a, seen_b, seen_c;
	int sym_a, sym_b;
};

static void fp_a(void *arg)
{
	struct fp_test *t = arg;

	fpctl_set(t->mode_a);
	kgo_ctx_switch(&t->a, &t->b);
	/* b has set its own mode meanwhile. */
	t->seen_a = fpctl_get();
	t->sym_a = fp_rounds_symmetric();
	kgo_ctx_switch(&t->a, &t->b);
	abort();
}

static void fp_b(void *arg)
{
	struct fp_test *t = arg;

	fpctl_set(t->mode_b);
	kgo_ctx_switch(&t->b, &t->a);
	/* a has looked at its mode meanwhile. */
	t->seen_b = fpctl_get();
	t->sym_b = fp_rounds_symmetric();
	kgo_ctx_switch(&t->b, &t->main);
	abort();
}

static void fp_c(void *arg)
{
	struct fp_test *t = arg;

	t->seen_c = fpctl_get();
	kgo_ctx_switch(&t->c, &t->main);
	abort();
}
#endif

TEST(fp_control)
{
#ifdef FPCTL_TEST
	struct fp_test t;
	struct fpctl orig = fpctl_get(), seen_main;
	void *sa = stack_alloc(STACK_SIZE), *sb = stack_alloc(STACK_SIZE);
	void *sc = stack_alloc(STACK_SIZE);

	memset(&t, 0, sizeof(t));
	t.mode_a = fpctl_mode_a(orig);
	t.mode_b = fpctl_mode_b(orig);
	kgo_ctx_make(&t.a, sa, STACK_SIZE, fp_a, &t);
	kgo_ctx_make(&t.b, sb, STACK_SIZE, fp_b, &t);

	kgo_ctx_switch(&t.main, &t.a);
	seen_main = fpctl_get();

	/* A new context starts with its maker's state. */
	fpctl_set(t.mode_a);
	kgo_ctx_make(&t.c, sc, STACK_SIZE, fp_c, &t);
	fpctl_set(orig);
	kgo_ctx_switch(&t.main, &t.c);
	fpctl_set(orig);

	diag("fp control: a set %#llx saw %#llx; b set %#llx saw %#llx",
	     fpctl_show(t.mode_a), fpctl_show(t.seen_a),
	     fpctl_show(t.mode_b), fpctl_show(t.seen_b));
	EXPECT_EQ(1, fpctl_same(t.seen_a, t.mode_a));
	EXPECT_EQ(1, fpctl_same(t.seen_b, t.mode_b));
	EXPECT_EQ(1, fpctl_same(seen_main, orig));
	EXPECT_EQ(1, fpctl_same(t.seen_c, t.mode_a));
	EXPECT_EQ(1, t.sym_a);
	EXPECT_EQ(0, t.sym_b);
	free(sa);
	free(sb);
	free(sc);
#else
	SKIP(return, "no FP control probe for this architecture");
#endif
}

/* ------------------------------------------------------------------ */
/* Ping-pong                                                          */
/* ------------------------------------------------------------------ */

#define PING_PONG_SWITCHES	1000000

struct pp_test {
	struct kgo_ctx main, other;
	volatile long counter;
	long bad;		/* times the other side saw a wrong count */
};

static void pp_other(void *arg)
{
	struct pp_test *t = arg;
	long want = 1;

	for (;;) {
		if (t->counter != want)
			t->bad++;
		t->counter++;
		want += 2;
		kgo_ctx_switch(&t->other, &t->main);
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

TEST(ping_pong)
{
	struct pp_test t = { .counter = 0 };
	void *stack = stack_alloc(STACK_SIZE);
	long i, bad_main = 0;
	uint64_t t0, t1;

	kgo_ctx_make(&t.other, stack, STACK_SIZE, pp_other, &t);
	t0 = now_ns();
	for (i = 0; i < PING_PONG_SWITCHES / 2; i++) {
		t.counter++;
		kgo_ctx_switch(&t.main, &t.other);
		if (t.counter != 2 * (i + 1))
			bad_main++;
	}
	t1 = now_ns();
	diag("ping-pong (%s): %d switches, %.1f ns per switch",
	     KGO_CTX_IMPL, PING_PONG_SWITCHES,
	     (double)(t1 - t0) / PING_PONG_SWITCHES);
	EXPECT_EQ(0, bad_main);
	EXPECT_EQ(0, t.bad);
	EXPECT_EQ((long)PING_PONG_SWITCHES, (long)t.counter);
	free(stack);
}

/* ------------------------------------------------------------------ */
/* Alignment at entry                                                 */
/* ------------------------------------------------------------------ */

typedef float v4sf __attribute__((vector_size(16)));

struct align_test {
	struct kgo_ctx main, ctx;
	uintptr_t lo, hi;
	uintptr_t frame;
	int frame_misalign, local_misalign;
	char printed[64];
	float sum;
	int say;		/* printf() from the new context too */
};

static __attribute__((noinline)) void align_entry(void *arg)
{
	struct align_test *t = arg;
	alignas(16) volatile char local[16];
	volatile v4sf a = { 1, 2, 3, 4 }, b = { 10, 20, 30, 40 };
	v4sf c;

	/*
	 * The frame address is rsp - 8 on entry on x86_64 (the pushed rbp)
	 * and sp after the prologue on aarch64: 16-aligned in both cases
	 * exactly when fn was entered as the ABI says.
	 */
	t->frame = (uintptr_t)__builtin_frame_address(0);
	t->frame_misalign = (int)(t->frame % 16);
	t->local_misalign = (int)((uintptr_t)local % 16);
	local[0] = 1;

	/* Aligned vector spills: movaps on x86_64 faults if misaligned. */
	c = a + b;
	t->sum = c[0] + c[1] + c[2] + c[3];
	/* glibc's printf keeps aligned SSE temporaries on the stack. */
	snprintf(t->printed, sizeof(t->printed), "%f %.2f", 3.25,
		 (double)t->sum);
	if (t->say) {
		printf("# in the new context: %s\n", t->printed);
		fflush(stdout);
	}
	kgo_ctx_switch(&t->ctx, &t->main);
	abort();
}

TEST(entry_alignment)
{
	static const size_t sizes[] = { STACK_SIZE, STACK_SIZE - 1,
					STACK_SIZE - 8, STACK_SIZE - 13 };
	char *mem = stack_alloc(STACK_SIZE + 64);
	unsigned int i, off;

	/* Every misalignment of both ends of the stack. */
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (off = 0; off < 16; off += 3) {
			struct align_test t;

			memset(&t, 0, sizeof(t));
			t.lo = (uintptr_t)(mem + off);
			t.hi = t.lo + sizes[i];
			t.say = i == 0 && off == 0;
			kgo_ctx_make(&t.ctx, mem + off, sizes[i],
				     align_entry, &t);
			kgo_ctx_switch(&t.main, &t.ctx);
			ASSERT_EQ(0, t.frame_misalign);
			ASSERT_EQ(0, t.local_misalign);
			ASSERT_TRUE(t.frame > t.lo && t.frame < t.hi);
			ASSERT_EQ(0, strcmp(t.printed, "3.250000 110.00"));
		}
	}
	free(mem);
}

/* ------------------------------------------------------------------ */
/* Many contexts                                                      */
/* ------------------------------------------------------------------ */

#define RING_CONTEXTS	1000
#define RING_ROUNDS	100
#define RING_STACK	(16 * 1024)
#define RING_CANARY	1024	/* bottom bytes that must stay put */

struct ring;

struct ring_member {
	struct kgo_ctx ctx;
	struct ring *ring;
	unsigned int id;
	char *stack;
	long rounds;
};

struct ring {
	struct kgo_ctx main;
	struct ring_member *m;
	unsigned int token;	/* who should run next */
	long bad;		/* wrong token or lost local seen */
};

static void ring_entry(void *arg)
{
	struct ring_member *me = arg;
	struct ring *r = me->ring;
	/* A local of this stack only; another context's must not leak in. */
	volatile uint64_t mine = 0x9e3779b97f4a7c15ull * (me->id + 1);
	struct kgo_ctx *next;

	for (;;) {
		if (r->token != me->id ||
		    mine != 0x9e3779b97f4a7c15ull * (me->id + 1))
			r->bad++;
		me->rounds++;
		if (me->id + 1 == RING_CONTEXTS) {
			r->token = 0;
			next = &r->main;
		} else {
			r->token = me->id + 1;
			next = &r->m[me->id + 1].ctx;
		}
		kgo_ctx_switch(&me->ctx, next);
	}
}

TEST(many_contexts)
{
	struct ring r = { .token = 0 };
	unsigned int i, j, round;
	long canary_bad = 0, rounds_bad = 0;

	r.m = calloc(RING_CONTEXTS, sizeof(*r.m));
	ASSERT_NE(NULL, r.m);
	for (i = 0; i < RING_CONTEXTS; i++) {
		struct ring_member *m = &r.m[i];

		m->ring = &r;
		m->id = i;
		m->stack = stack_alloc(RING_STACK);
		memset(m->stack, 0xa5, RING_CANARY);
		kgo_ctx_make(&m->ctx, m->stack, RING_STACK, ring_entry, m);
	}
	for (round = 0; round < RING_ROUNDS; round++) {
		kgo_ctx_switch(&r.main, &r.m[0].ctx);
		ASSERT_EQ(0u, r.token);
	}
	for (i = 0; i < RING_CONTEXTS; i++) {
		for (j = 0; j < RING_CANARY; j++)
			canary_bad += (unsigned char)r.m[i].stack[j] != 0xa5;
		rounds_bad += r.m[i].rounds != RING_ROUNDS;
		free(r.m[i].stack);
	}
	free(r.m);
	EXPECT_EQ(0, r.bad);
	EXPECT_EQ(0, canary_bad);
	EXPECT_EQ(0, rounds_bad);
}

/* ------------------------------------------------------------------ */
/* Returning from fn                                                  */
/* ------------------------------------------------------------------ */

static void returns(void *arg)
{
	(void)arg;
}

TEST(entry_return_aborts)
{
	static const char want[] = "kgo: context entry returned";
	char buf[256];
	int pipefd[2], status;
	ssize_t n, len = 0;
	pid_t pid;

	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_NE(-1, pid);
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		struct kgo_ctx self, ctx;
		void *stack = stack_alloc(STACK_SIZE);

		setrlimit(RLIMIT_CORE, &no_core);
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		kgo_ctx_make(&ctx, stack, STACK_SIZE, returns, NULL);
		kgo_ctx_switch(&self, &ctx);
		_exit(0);	/* not reached when the switch is right */
	}
	close(pipefd[1]);
	while ((n = read(pipefd[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += n;
	buf[len] = '\0';
	close(pipefd[0]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGABRT, WTERMSIG(status));
	EXPECT_EQ(1, strstr(buf, want) != NULL);
}

/* ------------------------------------------------------------------ */
/* Unwinding                                                          */
/* ------------------------------------------------------------------ */

struct unwind_test {
	struct kgo_ctx main, ctx;
	int frames;
	_Unwind_Reason_Code end;
};

static _Unwind_Reason_Code count_frame(struct _Unwind_Context *uc, void *arg)
{
	int *frames = arg;

	(void)uc;
	if (++*frames > 64)
		return _URC_NORMAL_STOP;	/* runaway: off the stack */
	return _URC_NO_REASON;
}

static __attribute__((noinline)) void unwind_entry(void *arg)
{
	struct unwind_test *t = arg;

	t->end = _Unwind_Backtrace(count_frame, &t->frames);
	kgo_ctx_switch(&t->ctx, &t->main);
	abort();
}

TEST(unwind_ends_at_entry)
{
	struct unwind_test t;
	void *stack = stack_alloc(STACK_SIZE);

	memset(&t, 0, sizeof(t));
	kgo_ctx_make(&t.ctx, stack, STACK_SIZE, unwind_entry, &t);
	kgo_ctx_switch(&t.main, &t.ctx);
	diag("unwind from a new context: %d frames, reason %d",
	     t.frames, (int)t.end);
	/* The walk ends by running out of frames, not by an error. */
	EXPECT_EQ((int)_URC_END_OF_STACK, (int)t.end);
	EXPECT_EQ(1, t.frames >= 2 && t.frames <= 8);
	free(stack);
}

TEST_HARNESS_MAIN
