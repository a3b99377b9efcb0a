/* SPDX-License-Identifier: MIT */
/*
 * observe_bpf.h - the probes' loader, shared by the runtime
 * (observe_bpf.c) and kgo-probe (user/tools/kgo-probe.c).
 */
#ifndef KGO_OBSERVE_BPF_H
#define KGO_OBSERVE_BPF_H

#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <linux/types.h>

#include "kgo_observe.h"
#include "kgo_tick.h"

#ifdef KGO_BPF
struct kgo_observe_bpf;

/* Open, load and attach the probes (libbpf's messages only if
 * @verbose). Return: the skeleton, or NULL with the errno in *err. */
struct kgo_observe_bpf *obs_load(bool verbose, int *err);
/* One sentence that says what to do about a load that failed with
 * errno @err. */
const char *obs_explain(int err);
/* The set's kgo_info entry, from the map @fd. 0 or -errno. */
int obs_info_read(int fd, struct kgo_obs_info *in);
/* The probes' counters in the per-CPU map @fd, summed. 0 or -errno. */
int obs_probe_stats(int fd, struct kgo_obs_stats *sum);

/* The kernel BTF to load with, NULL: the kernel's own (kgo-probe:
 * VMLINUX_BTF, for kernels whose BTF is a file of its own). */
extern const char *obs_btf_path;
/* libbpf's print function that prints nothing. */
enum libbpf_print_level;
int obs_silent_print(enum libbpf_print_level l, const char *f, va_list ap);

/* Sum the per-CPU entry 0 of map @fd, @nfields u64s. 0 or -errno. */
int percpu_sum(int fd, __u64 *sum, size_t nfields);
#endif

/* The pin directory: $KGO_PIN_DIR (ignored by set-id programs), else
 * KGO_OBS_PIN_DIR; and the path of @name in it. kgo-probe pins there
 * kgo_ms, kgo_stats, kgo_info, the links, kgo_tick_cpu (the tick's
 * timers, which the kernel cancels when no one holds the map),
 * kgo_kick (the kick timers', likewise; its presence says the kernel
 * times retakes) and kgo_tick_stats, whose presence says the tick is
 * attached. */
const char *obs_pin_dir(void);
void obs_pin_path(char *buf, size_t n, const char *name);


#endif /* KGO_OBSERVE_BPF_H */
