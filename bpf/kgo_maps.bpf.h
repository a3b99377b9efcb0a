/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * kgo_maps.bpf.h - the maps that the observer (kgo_observe.bpf.c) and
 * the preemption tick (kgo_tick.bpf.h) share. The tick was an object
 * of its own that took these with bpf_map__reuse_fd; it is part of the
 * observer's since it became a timer that sched_switch starts. BPF
 * side only, after vmlinux.h and kgo_observe.h.
 */
#ifndef KGO_MAPS_BPF_H
#define KGO_MAPS_BPF_H

/* The records (kgo_observe.h, struct kgo_obs_m), mmapped by users. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, KGO_OBS_SLOTS);
	__type(key, __u32);
	__type(value, struct kgo_obs_m);
} kgo_ms SEC(".maps");

/* A registered thread's slot + 1 (0: none). With the task: freed by
 * the kernel when the task goes, even if sched_process_exit missed it. */
struct obs_task {
	__u32 slot1;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct obs_task);
} kgo_task SEC(".maps");

#endif /* KGO_MAPS_BPF_H */
