# kgo - a Go-style G/M/P runtime for C on Linux.
#
#   make            libkgo.a, libkgo.so, kgo.pc and the examples in build/
#   make check      every test: core, sync, sanitizers, aarch64 (qemu-user)
#   make vmtest     the selftests as root in a VM on one of Debian's kernels
#                   (VMTEST_KERNEL=6.1|7|path, default 7; selftests/vmtest)
#   make vmtest-matrix  the same on every kernel kgo supports (6.1, 7)
#   make demo       install what is missing, build, run the demo
#   make bench      kgo against Go 1.23, side by side (not part of check)
#   make deps       install the Debian packages kgo needs (sudo if not root)
#   make install PREFIX=/usr/local
#
# V=1 shows the commands. CI=true (or WERROR=1) adds -Werror.
# BPF (bpf/*.bpf.c, kernel observation): built with clang and bpftool
# when they, libbpf and BTF are there; VMLINUX_BTF=file (default
# /sys/kernel/btf/vmlinux) or VMLINUX_H=file choose the kernel types,
# KGO_BPF=0 leaves BPF out (the runtime then polls, and says why).
# KGO_CTX=ucontext builds the portable context switch instead of arch/.
# BUILD=dir puts everything in another directory (default: build).

BUILD    ?= build
.DEFAULT_GOAL := all
PREFIX   ?= /usr/local
CC       ?= gcc
AR       ?= ar
VERSION  := 0.1.0

ifeq ($(V),1)
Q :=
else
Q := @
endif

WARN     := -Wall -Wextra -Wno-unused-parameter
ifneq ($(filter true 1,$(CI) $(WERROR)),)
WARN     += -Werror
endif
OPT      ?= -O2 -g
CFLAGS_K := $(OPT) $(WARN) -std=gnu11 -fPIC -pthread -D_GNU_SOURCE \
	    -fno-omit-frame-pointer -Iinclude -Iarch -Iuser/runtime \
	    $(EXTRA_CFLAGS)
LDLIBS_K := -pthread -luring -lm $(EXTRA_LDFLAGS)

# elfutils' libdw symbolizes goroutine dumps (user/runtime/traceback.c:
# function+offset, file:line). Asked of the compiler in use, so that a
# cross build without it falls back to dladdr's names, as the dump says.
HAVE_LIBDW := $(shell printf '\043include <elfutils/libdwfl.h>\nint main(void) { return !dwfl_begin; }\n' | \
	$(CC) -x c - -ldw -o /dev/null 2>/dev/null && echo 1)
ifeq ($(HAVE_LIBDW),1)
CFLAGS_K += -DKGO_HAVE_LIBDW
LDLIBS_K += -ldw
PC_LIBDW := -ldw
endif
DEPFLAGS  = -MMD -MP

# The runtime's code goes in one section, kgo_text, which the linker
# brackets with __start_kgo_text/__stop_kgo_text (in a program linked
# with libkgo.a as in libkgo.so): the SIGURG handler must tell the
# runtime's code from the program's by the interrupted PC (preempt.c).
# No .text.hot/.text.unlikely split, so .text is all there is to rename.
OBJCOPY  ?= $(shell $(CC) -print-prog-name=objcopy)
KGO_TEXT_CFLAGS := -fno-reorder-functions -fno-reorder-blocks-and-partition
KGO_TEXT  = $(OBJCOPY) --rename-section .text=kgo_text $@

ARCH     := $(shell $(CC) -dumpmachine | cut -d- -f1)
ifeq ($(KGO_CTX),ucontext)
ARCH_SRC := arch/ucontext/ctx.c
CFLAGS_K += -DKGO_CTX_UCONTEXT
else
ARCH_SRC := $(wildcard arch/$(ARCH)/*.c arch/$(ARCH)/*.S)
endif

# ------------------------------------------------------------ BPF
# CO-RE programs for the build machine's architecture; everything
# generated (vmlinux.h, objects, skeletons) goes to $(BUILD)/bpf.
CLANG       ?= clang
LLVM_STRIP  ?= llvm-strip
BPFTOOL     ?= $(firstword $(shell command -v bpftool 2>/dev/null) \
		$(wildcard /usr/sbin/bpftool /sbin/bpftool))
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
VMLINUX_H   ?=
KGO_BPF     ?= 1
BPF_ARCH    := $(patsubst x86_64,x86,$(patsubst aarch64,arm64,$(ARCH)))
HOST_ARCH   := $(shell uname -m)

BPF_MISSING :=
ifneq ($(KGO_BPF),1)
BPF_MISSING := built with KGO_BPF=0
else ifneq ($(ARCH),$(HOST_ARCH))
BPF_MISSING := cross build
else ifeq ($(shell command -v $(CLANG) 2>/dev/null),)
BPF_MISSING := no clang at build time (make deps)
else ifeq ($(BPFTOOL),)
BPF_MISSING := no bpftool at build time (make deps)
else ifeq ($(shell pkg-config --exists libbpf && echo y),)
BPF_MISSING := no libbpf at build time (make deps)
else ifeq ($(VMLINUX_H)$(wildcard $(VMLINUX_BTF)),)
BPF_MISSING := no kernel BTF at build time (VMLINUX_BTF= or VMLINUX_H=)
endif

BPF_SRC  := $(wildcard bpf/*.bpf.c)
BPF_SKEL := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.skel.h,$(BPF_SRC))
ifeq ($(BPF_MISSING),)
CFLAGS_K += -DKGO_BPF -I$(BUILD)/bpf -Ibpf
LDLIBS_BPF := -lbpf -lelf -lz
LDLIBS_K += $(LDLIBS_BPF)
else
CFLAGS_K += -Ibpf -DKGO_BPF_MISSING='"$(BPF_MISSING)"'
LDLIBS_BPF :=
BPF_SKEL :=
endif
# kgo-probe: the probes' loader for the whole machine (needs BPF).
ifeq ($(BPF_MISSING),)
TOOLS := $(BUILD)/kgo-probe
endif
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(BPF_ARCH) \
	      -I$(BUILD)/bpf -Ibpf -Wall -fms-extensions \
	      $(shell $(CLANG) -Werror -Wno-microsoft-anon-tag -E -x c /dev/null \
			-o /dev/null 2>/dev/null && echo -Wno-microsoft-anon-tag)

$(BUILD)/bpf/vmlinux.h: $(VMLINUX_H)
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
ifneq ($(VMLINUX_H),)
	$(Q)cp $(VMLINUX_H) $@
else
	$(Q)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@
endif

# Stripped before the skeleton: with its DWARF the header is 2 MB.
$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) $(BUILD)/bpf/vmlinux.h Makefile
	@echo "  BPF     $<"
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	@echo "  SKEL    $@"
	$(Q)$(BPFTOOL) gen skeleton $< name $*_bpf > $@.tmp && mv $@.tmp $@

RT_SRC   := $(wildcard user/runtime/*.c)
LIB_OBJ  := $(patsubst %,$(BUILD)/obj/%.o,$(basename $(RT_SRC) $(ARCH_SRC)))
ARCH_OBJ := $(patsubst %,$(BUILD)/obj/%.o,$(basename $(ARCH_SRC)))

TEST_SRC := $(wildcard selftests/*_test.c)
TESTS    := $(patsubst selftests/%.c,$(BUILD)/selftests/%,$(TEST_SRC))
# Tests that need only arch/ or only the harness, not the runtime.
ARCH_TESTS    := $(BUILD)/selftests/ctx_test
HARNESS_TESTS := $(BUILD)/selftests/harness_test

EXAMPLES := $(patsubst user/examples/%.c,$(BUILD)/examples/%,$(wildcard user/examples/*.c))

.PHONY: FORCE all lib tests examples tools check check-core check-asan \
	check-tsan check-aarch64 vmtest vmtest-matrix demo bench deps install \
	clean

all: lib examples tools

lib: $(BUILD)/libkgo.a $(BUILD)/libkgo.so $(BUILD)/kgo.pc

# Objects depend on this Makefile: a rule that changes (as the kgo_text
# rename of the .S files once did) must reach objects built before it.
# A stale switch.o in .text let SIGURG preempt a G inside
# kgo_ctx_switch (ASan saw the nested fiber switch).
$(BUILD)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_K) $(KGO_TEXT_CFLAGS) $(DEPFLAGS) -c $< -o $@
	$(Q)$(KGO_TEXT)

$(BUILD)/obj/%.o: %.S Makefile
	@mkdir -p $(dir $@)
	@echo "  AS      $<"
	$(Q)$(CC) $(CFLAGS_K) $(DEPFLAGS) -c $< -o $@
	$(Q)$(KGO_TEXT)

# The runtime's loader includes the skeletons.
$(BUILD)/obj/user/runtime/observe_bpf.o: $(BPF_SKEL)
$(BUILD)/obj/user/runtime/observe_tick.o: $(BPF_SKEL)

$(BUILD)/libkgo.a: $(LIB_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/libkgo.so: $(LIB_OBJ) user/runtime/libkgo.map
	@echo "  LD      $@"
	$(Q)$(CC) -shared -o $@ $(LIB_OBJ) -Wl,-z,defs \
		-Wl,--version-script=user/runtime/libkgo.map \
		-Wl,-soname,libkgo.so.0 $(LDLIBS_K)

# kgo.pc names PREFIX, so it is remade when PREFIX changes.
$(BUILD)/kgo.pc: Makefile FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' 'prefix=$(PREFIX)' 'includedir=$${prefix}/include' \
		'libdir=$${prefix}/lib' '' 'Name: kgo' \
		'Description: Go-style G/M/P runtime for C, assisted by the kernel' \
		'Version: $(VERSION)' 'Cflags: -I$${includedir}' \
		'Libs: -L$${libdir} -lkgo' \
		'Libs.private: -pthread -luring -lm $(LDLIBS_BPF) $(PC_LIBDW)' \
		> $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@

FORCE:

# The slow FUSE file system of the I/O tests and benches (selftests/
# slowfs.h): a helper the tests start, not a test. Without libfuse3 it
# is not built and those tests skip.
FUSE_CFLAGS := $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS   := $(shell pkg-config --libs fuse3 2>/dev/null)
ifneq ($(FUSE_LIBS),)
SLOWFS   := $(BUILD)/selftests/slowfs
endif

tests: $(TESTS) $(SLOWFS) $(TOOLS) $(BUILD)/examples/httpd

$(BUILD)/selftests/slowfs: selftests/slowfs.c selftests/slowfs.h
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_K) $(FUSE_CFLAGS) $< -o $@ $(FUSE_LIBS) -pthread

# The I/O tests start slowfs: build it with them.
$(patsubst selftests/%.c,$(BUILD)/selftests/%,$(wildcard selftests/io_*_test.c)): $(SLOWFS) selftests/slowfs.h

$(BUILD)/selftests/%: selftests/%.c $(BUILD)/libkgo.a selftests/harness.h
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_K) -Iselftests $(DEPFLAGS) $< -o $@ \
		$(BUILD)/libkgo.a $(LDLIBS_K)

# The example of README's "Using it", cut out of README.md, built and run
# by readme_test, so that it cannot rot.
$(BUILD)/selftests/readme_using.c: README.md
	@mkdir -p $(dir $@)
	$(Q)awk '/^## Using it/ {u = 1} u && /^```c$$/ {c = 1; next} \
		c && /^```$$/ {exit} c' $< > $@
	$(Q)test -s $@ || { echo "README.md: no C block in Using it"; exit 1; }

$(BUILD)/selftests/readme_using: $(BUILD)/selftests/readme_using.c $(BUILD)/libkgo.a
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_K) $< -o $@ $(BUILD)/libkgo.a $(LDLIBS_K)

$(BUILD)/selftests/readme_test: $(BUILD)/selftests/readme_using

examples: $(EXAMPLES)

tools: $(TOOLS)

$(BUILD)/kgo-probe: user/tools/kgo-probe.c $(BUILD)/libkgo.a $(BPF_SKEL)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_K) $(DEPFLAGS) $< -o $@ $(BUILD)/libkgo.a $(LDLIBS_K)

$(BUILD)/examples/%: user/examples/%.c $(BUILD)/libkgo.a
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_K) $< -o $@ $(BUILD)/libkgo.a $(LDLIBS_K)

# ---------------------------------------------------------------- tests

RUNNER := selftests/run_tests

# The tests of one build, through the runner (its last line counts).
check-core: tests
	$(Q)$(RUNNER) $(TESTS)

SAN_ASAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
SAN_TSAN := -fsanitize=thread

check-asan:
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/asan OPT="-O1 -g" \
		EXTRA_CFLAGS="$(SAN_ASAN)" EXTRA_LDFLAGS="$(SAN_ASAN)" tests

check-tsan:
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/tsan OPT="-O1 -g" \
		KGO_CTX=ucontext EXTRA_CFLAGS="$(SAN_TSAN)" \
		EXTRA_LDFLAGS="$(SAN_TSAN)" tests

check-aarch64:
	$(Q)selftests/check-aarch64.sh

# make check: build every variant, then one runner over all of them, so
# that its last line ("N passed, N failed, N skipped") is the total.
# Sanitizer builds run every runtime test (ASan+UBSan with the asm
# switch; TSan with the ucontext one, which TSan understands).
SAN_TESTS = $(filter-out $(ARCH_TESTS) $(HARNESS_TESTS),$(TESTS))
ASAN_TESTS = $(subst $(BUILD)/selftests,$(BUILD)/asan/selftests,$(SAN_TESTS))
TSAN_TESTS = $(subst $(BUILD)/selftests,$(BUILD)/tsan/selftests,$(SAN_TESTS))

check: lib tests examples
	$(Q)$(MAKE) --no-print-directory check-asan check-tsan
	$(Q)$(RUNNER) --timeout-scale 4 $(TESTS) $(ASAN_TESTS) $(TSAN_TESTS) \
		selftests/check-aarch64.sh

# The tests of the plain build (the host's dynamic binaries), as root in a
# VM under QEMU; whatever make builds into $(TESTS) runs there.
vmtest: tests
	$(Q)selftests/vmtest $(TESTS)

vmtest-matrix: tests
	$(Q)selftests/vmtest --matrix $(TESTS)

demo: deps all
	$(Q)$(BUILD)/examples/demo

bench: lib examples $(SLOWFS)
	$(Q)selftests/bench/run

deps:
	$(Q)scripts/install-deps

install: lib tools
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/kgo.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libkgo.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libkgo.so $(DESTDIR)$(PREFIX)/lib/libkgo.so.0
	ln -sf libkgo.so.0 $(DESTDIR)$(PREFIX)/lib/libkgo.so
	install -m 644 $(BUILD)/kgo.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	@# A prefix the dynamic linker searches gets its cache refreshed, or
	@# programs miss libkgo.so.0 until the next ldconfig; any other
	@# prefix is said to need an rpath (README, "Using it").
	@if [ -z "$(DESTDIR)" ] && { [ "$(PREFIX)" = /usr ] || \
	    ldconfig -v -N 2>/dev/null | grep -q '^$(PREFIX)/lib:'; }; then \
		echo "  LDCONFIG $(PREFIX)/lib"; ldconfig; \
	else \
		echo "kgo: $(DESTDIR)$(PREFIX)/lib is not searched by the dynamic linker: link with -Wl,-rpath,$(PREFIX)/lib or run with LD_LIBRARY_PATH=$(PREFIX)/lib (README, Using it)"; \
	fi
ifneq ($(TOOLS),)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 $(BUILD)/kgo-probe $(DESTDIR)$(PREFIX)/sbin/
	install -m 644 user/tools/kgo-probe.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g' user/tools/kgo-probe.service \
		> $(DESTDIR)$(PREFIX)/lib/systemd/system/kgo-probe.service
endif

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/selftests -name '*.d' 2>/dev/null)
