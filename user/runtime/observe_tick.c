// SPDX-License-Identifier: MIT
/*
 * observe_tick.c - the preemption tick's counters, for the runtime
 * (observe_bpf.c) and kgo-probe. The tick itself (bpf/kgo_tick.bpf.h,
 * which has the design and the protocol) is part of the observer's
 * probes since it became a BPF timer that their sched_switch starts
 * (cost, 2026-12-06): it loads, attaches and goes with them, and needs
 * no loading of its own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "observe_bpf.h"

#ifdef KGO_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

int percpu_sum(int fd, __u64 *sum, size_t nfields)
{
	int n = libbpf_num_possible_cpus(), i;
	__u32 zero = 0;
	__u64 *v;
	size_t f;

	memset(sum, 0, nfields * sizeof(*sum));
	if (n <= 0)
		return -EINVAL;
	v = calloc((size_t)n * nfields, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &zero, v)) {
		free(v);
		return -errno;
	}
	for (i = 0; i < n; i++)
		for (f = 0; f < nfields; f++)
			sum[f] += v[(size_t)i * nfields + f];
	free(v);
	return 0;
}
#endif /* KGO_BPF */
