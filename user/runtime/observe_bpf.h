/* SPDX-License-Identifier: MIT */
/*
 * observe_bpf.h - the probes' loader, shared by the runtime
 * (observe_bpf.c) and kgo-probe (user/tools/kgo-probe.c).
 */
#ifndef KGO_OBSERVE_BPF_H
#define KGO_OBSERVE_BPF_H

#include <stdbool.h>
#include <linux/types.h>

#include "kgo_observe.h"

#ifdef KGO_BPF
struct kgo_observe_bpf;

/* Open, load and attach the probes (libbpf's messages only if
 * @verbose). Return: the skeleton, or NULL with the errno in *err. */
struct kgo_observe_bpf *obs_load(bool verbose, int *err);
/* One sentence that says what to do about a load that failed with
 * errno @err. */
const char *obs_explain(int err);
/* The probes' counters in the per-CPU map @fd, summed. 0 or -errno. */
int obs_probe_stats(int fd, struct kgo_obs_stats *sum);
#endif

#endif /* KGO_OBSERVE_BPF_H */
