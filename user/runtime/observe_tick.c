// SPDX-License-Identifier: MIT
/*
 * observe_tick.c - loading the preemption tick (bpf/kgo_tick.bpf.c,
 * which has the design and the protocol) next to the observer's probes,
 * for the runtime (observe_bpf.c) and kgo-probe.
 *
 * The tick is one perf_event program attached to a cpu-clock event on
 * every online CPU, KGO_TICK_HZ times a second. It shares the
 * observer's record and task-storage maps (bpf_map__reuse_fd), so it
 * loads only after them. A kernel that refuses it (no perf events, no
 * task storage for perf_event programs) costs only the tick: the
 * observer runs without it, and sysmon times slices itself.
 */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "observe_bpf.h"

#ifdef KGO_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "kgo_observe.skel.h"
#include "kgo_tick.skel.h"

/* A cpu-clock event on @cpu, KGO_TICK_HZ a second. */
static int tick_event(int cpu)
{
	struct perf_event_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_CPU_CLOCK;
	attr.sample_period = 1000000000ULL / KGO_TICK_HZ;
	return (int)syscall(SYS_perf_event_open, &attr, -1, cpu, -1,
			    PERF_FLAG_FD_CLOEXEC);
}

void tick_destroy(struct obs_tick *t)
{
	int i;

	if (!t)
		return;
	for (i = 0; i < t->nlinks; i++)
		bpf_link__destroy(t->links[i]);	/* closes the event too */
	kgo_tick_bpf__destroy(t->skel);
	free(t->links);
	free(t);
}

struct obs_tick *tick_load(struct kgo_observe_bpf *obs, bool verbose,
			   int *err)
{
	libbpf_print_fn_t old = libbpf_set_print(verbose ? NULL :
						 obs_silent_print);
	int ncpu = libbpf_num_possible_cpus(), cpu, fd, e = 0;
	struct obs_tick *t;

	if (verbose)
		libbpf_set_print(old);
	t = calloc(1, sizeof(*t));
	if (!t || ncpu <= 0 || !(t->links = calloc(ncpu, sizeof(*t->links)))) {
		e = ncpu <= 0 ? -ncpu : ENOMEM;
		goto fail;
	}
	t->skel = kgo_tick_bpf__open();
	if (!t->skel) {
		e = errno ? errno : EINVAL;
		goto fail;
	}
	e = -bpf_map__reuse_fd(t->skel->maps.kgo_ms,
			       bpf_map__fd(obs->maps.kgo_ms));
	if (!e)
		e = -bpf_map__reuse_fd(t->skel->maps.kgo_task,
				       bpf_map__fd(obs->maps.kgo_task));
	if (!e)
		e = -kgo_tick_bpf__load(t->skel);
	if (e)
		goto fail;
	for (cpu = 0; cpu < ncpu; cpu++) {
		struct bpf_link *l;

		fd = tick_event(cpu);
		if (fd < 0) {
			if (errno == ENODEV)
				continue;	/* offline */
			e = errno;
			goto fail;
		}
		l = bpf_program__attach_perf_event(t->skel->progs.kgo_tick, fd);
		if (!l) {
			e = errno ? errno : EINVAL;
			close(fd);
			goto fail;
		}
		t->links[t->nlinks++] = l;
	}
	if (!t->nlinks) {
		e = ENODEV;
		goto fail;
	}
	libbpf_set_print(old);
	*err = 0;
	return t;
fail:
	tick_destroy(t);
	libbpf_set_print(old);
	*err = e;
	return NULL;
}

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
