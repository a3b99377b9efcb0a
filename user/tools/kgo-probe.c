// SPDX-License-Identifier: MIT
/*
 * kgo-probe - load, show and unload kgo's BPF probes for every kgo
 * program of the machine (kgo-probe(8); the probes' design essay is at
 * the top of bpf/kgo_observe.bpf.c).
 *
 *	kgo-probe load [--group NAME] [-v]
 *	kgo-probe status
 *	kgo-probe unload
 *
 * load attaches the probes and pins their links and maps under
 * /sys/fs/bpf/kgo. The pinned links keep the programs attached after
 * kgo-probe exits. The record map is frozen (BPF_MAP_FREEZE: no write
 * from user space any more, by syscall or mapping; the programs still
 * write it) and pinned 0666 (0660 and the directory 0750 for the group
 * NAME), so that kgo programs of any user (of that group) map it and
 * run in bpf mode. The kernel maps a BPF map shared only through a
 * writable file (do_mmap drops VM_SHARED for a read-only one, and
 * bpf_map_mmap wants it): the freeze, not the file mode, is what keeps
 * users from writing it.
 *
 * unload removes the pins, which detaches the programs. Running
 * programs see at their next look that their records stopped moving
 * and poll from then on (observe_bpf.c, observe_check).
 *
 * Every failure is one sentence that says what to do, on stderr, and
 * exit status 1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/magic.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "observe_bpf.h"
#include "kgo_observe.skel.h"

/* The pin directory is obs_pin_dir(): KGO_PIN_DIR, else /sys/fs/bpf/kgo;
 * it must be on a BPF file system (its parent, before load). */
static char pin_root[PATH_MAX];
static char ms_pin[PATH_MAX], stats_pin[PATH_MAX], tick_stats_pin[PATH_MAX];
#define PIN_DIR		obs_pin_dir()
#define PIN_ROOT	pin_root
#define MS_PIN		ms_pin
#define STATS_PIN	stats_pin
#define TICK_STATS_PIN	tick_stats_pin

static void pin_paths(void)
{
	char *slash;

	snprintf(pin_root, sizeof(pin_root), "%s", PIN_DIR);
	slash = strrchr(pin_root, '/');
	if (slash && slash != pin_root)
		*slash = 0;
	else if (slash)
		slash[1] = 0;
	obs_pin_path(ms_pin, sizeof(ms_pin), "kgo_ms");
	obs_pin_path(stats_pin, sizeof(stats_pin), "kgo_stats");
	obs_pin_path(tick_stats_pin, sizeof(tick_stats_pin),
		     "kgo_tick_stats");
}

static const char *const link_names[] = {
	"task_rename", "sched_switch", "sched_wakeup", "sched_process_exit",
	"sched_process_free",
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("kgo-probe: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: kgo-probe load [--group NAME] [-v]   attach and pin the probes\n"
"       kgo-probe status                     what is loaded, who uses it\n"
"       kgo-probe unload                     detach; programs go on polling\n"
"\n"
"The probes tell kgo programs when their threads block and how much CPU\n"
"they got (see kgo-probe(8), and the design essay at the top of\n"
"bpf/kgo_observe.bpf.c).\n");
}

static bool bpffs_mounted(void)
{
	struct statfs st;

	return statfs(PIN_ROOT, &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

static bool loaded(void)
{
	return access(MS_PIN, F_OK) == 0;
}

/* Pin @fd's object at @name under the pin directory, mode @mode. */
static int pin(int fd, const char *name, mode_t mode, gid_t gid)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", PIN_DIR, name);
	if (bpf_obj_pin(fd, path))
		return -errno;
	if (chown(path, 0, gid) || chmod(path, mode))
		return -errno;
	return 0;
}

/* Every pin in the directory (the links and the maps), then the
 * directory. */
static void remove_pins(void)
{
	char path[PATH_MAX + 256];
	struct dirent *de;
	DIR *d = opendir(PIN_DIR);

	if (d) {
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", PIN_DIR,
				 de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(PIN_DIR);
}

/*
 * Pin the timers' maps: the kick timers' (kgo_observe.bpf.c, "The
 * retake timer"; its pin says to the runtime that the kernel times
 * retakes) and the preemption tick's (bpf/kgo_tick.bpf.h), because the
 * kernel cancels a map's timers, and refuses to start them, when no
 * one in user space holds the map; the tick's counters last, because
 * their pin says to the runtime that the tick is there. Return: 0 or
 * -errno.
 */
static int pin_tick(struct kgo_observe_bpf *skel, mode_t fmode, gid_t gid)
{
	int err = pin(bpf_map__fd(skel->maps.kgo_kick), "kgo_kick", 0600, 0);

	if (!err)
		err = pin(bpf_map__fd(skel->maps.kgo_tick_cpu), "kgo_tick_cpu",
			  0600, 0);
	if (err)
		return err;
	return pin(bpf_map__fd(skel->maps.kgo_tick_stats), "kgo_tick_stats",
		   fmode & 0444, gid);
}

static int cmd_load(const char *group, bool verbose)
{
	struct kgo_observe_bpf *skel;
	struct bpf_link *links[5];
	mode_t fmode = 0666, dmode = 0755;
	gid_t gid = 0;
	size_t i;
	int err;

	if (geteuid() != 0)
		return fail("loading the probes needs root: run "
			    "`sudo kgo-probe load`.");
	if (group) {
		struct group *gr = getgrnam(group);

		if (!gr)
			return fail("there is no group named %s: name an "
				    "existing group with --group.", group);
		gid = gr->gr_gid;
		fmode = 0660;
		dmode = 0750;
	}
	if (!bpffs_mounted())
		return fail("the BPF file system is not mounted on %s: "
			    "`mount -t bpf bpf %s`, then load again.",
			    PIN_ROOT, PIN_ROOT);
	if (loaded())
		return fail("the probes are loaded already (%s): "
			    "`kgo-probe unload` first to load them again.",
			    PIN_DIR);
	obs_btf_path = getenv("VMLINUX_BTF");
	if (obs_btf_path && !*obs_btf_path)
		obs_btf_path = NULL;
	skel = obs_load(verbose, &err);
	if (!skel)
		return fail("%s.", obs_explain(err));
	if (mkdir(PIN_DIR, dmode) && errno != EEXIST) {
		err = errno;
		goto out_fail;
	}
	if (chown(PIN_DIR, 0, gid) || chmod(PIN_DIR, dmode)) {
		err = errno;
		goto out_fail;
	}
	links[0] = skel->links.kgo_rename;
	links[1] = skel->links.kgo_switch;
	links[2] = skel->links.kgo_wakeup;
	links[3] = skel->links.kgo_exit;
	links[4] = skel->links.kgo_free;
	for (i = 0; i < 5; i++) {
		char name[64];

		snprintf(name, sizeof(name), "link_%s", link_names[i]);
		err = -pin(bpf_link__fd(links[i]), name, 0600, 0);
		if (err)
			goto out_fail;
	}
	err = bpf_map_freeze(bpf_map__fd(skel->maps.kgo_ms)) ? errno : 0;
	if (!err)
		err = -pin(bpf_map__fd(skel->maps.kgo_ms), "kgo_ms", fmode, gid);
	if (!err)
		err = -pin(bpf_map__fd(skel->maps.kgo_stats), "kgo_stats",
			   fmode & 0444, gid);
	if (!err)
		err = -pin(bpf_map__fd(skel->maps.kgo_info), "kgo_info",
			   fmode & 0444, gid);
	if (!err)
		err = -pin_tick(skel, fmode, gid);
	if (err)
		goto out_fail;
	kgo_observe_bpf__destroy(skel);	/* the pins keep them */
	printf("kgo-probe: probes loaded and pinned in %s%s%s, with the "
	       "preemption tick\n", PIN_DIR, group ? " for group " : "",
	       group ? group : " for every user");
	return 0;

out_fail:
	remove_pins();
	kgo_observe_bpf__destroy(skel);
	return fail("could not pin the probes in %s (%s): is %s writable "
		    "by root?", PIN_DIR, strerror(err), PIN_ROOT);
}

static int open_pinned(const char *path, bool rdonly);

/* The preemption tick's line of status. */
static void tick_status(void)
{
	struct kgo_tick_stats t;
	int fd = open_pinned(TICK_STATS_PIN, true);

	if (fd < 0 || percpu_sum(fd, (__u64 *)&t, sizeof(t) / sizeof(__u64))) {
		printf("tick:     not loaded (slices are timed by each "
		       "program's sysmon)\n");
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	printf("tick:     loaded, %d Hz on the CPUs where a kgo M runs; "
	       "ticks on kgo Ms %llu, slices timed %llu, signals sent %llu "
	       "(failed %llu), records not running %llu; timer starts %llu, "
	       "fires %llu, lapses %llu, refused %llu\n", KGO_TICK_HZ,
	       (unsigned long long)t.ticks, (unsigned long long)t.slices,
	       (unsigned long long)t.signals,
	       (unsigned long long)t.signal_fail,
	       (unsigned long long)t.stale, (unsigned long long)t.arms,
	       (unsigned long long)t.fires, (unsigned long long)t.lapses,
	       (unsigned long long)t.arm_fail);
}

static int open_pinned(const char *path, bool rdonly)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.pathname = (__u64)(uintptr_t)path;
	attr.file_flags = rdonly ? BPF_F_RDONLY : 0;
	return (int)syscall(SYS_bpf, BPF_OBJ_GET, &attr, sizeof(attr));
}

/*
 * The times the kernel skipped the program behind the pinned link
 * link_@name (its recursion guard: the program was running on that CPU
 * already, which a preemptible kernel allows when a thread is preempted
 * inside it; observe_bpf.c, "Registration's answer"), as `bpftool prog
 * show` says in recursion_misses. -1: unknown (not root).
 */
static long long prog_skipped(const char *name)
{
	struct bpf_link_info link;
	struct bpf_prog_info prog;
	char path[PATH_MAX + 32];
	__u32 len = sizeof(link);
	int fd, pfd;

	snprintf(path, sizeof(path), "%s/link_%s", PIN_DIR, name);
	fd = open_pinned(path, false);
	if (fd < 0)
		return -1;
	memset(&link, 0, sizeof(link));
	if (bpf_obj_get_info_by_fd(fd, &link, &len)) {
		close(fd);
		return -1;
	}
	close(fd);
	pfd = bpf_prog_get_fd_by_id(link.prog_id);
	if (pfd < 0)
		return -1;
	len = sizeof(prog);
	memset(&prog, 0, sizeof(prog));
	if (bpf_obj_get_info_by_fd(pfd, &prog, &len))
		prog.recursion_misses = (__u64)-1;
	close(pfd);
	return (long long)prog.recursion_misses;
}

/* One registered process, as status shows it. */
struct proc_row {
	__u32 tgid, uid;
	int ms, sysmon;
	__u64 nblock, nwake;
};

static int cmd_status(void)
{
	const struct kgo_obs_m *ms;
	struct kgo_obs_stats st;
	struct proc_row rows[256];
	size_t len = (size_t)KGO_OBS_SLOTS * sizeof(*ms);
	int fd, sfd, nrows = 0, used = 0, i, j;

	if (!bpffs_mounted() || !loaded()) {
		printf("kgo-probe: not loaded (kgo programs of root load "
		       "their own; others poll). `sudo kgo-probe load` "
		       "loads them for everyone.\n");
		return 0;
	}
	fd = open_pinned(MS_PIN, false);
	if (fd < 0)
		return fail("cannot open %s (%s): run status as root or as "
			    "a member of the probes' group.", MS_PIN,
			    strerror(errno));
	ms = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (ms == MAP_FAILED)
		return fail("cannot map %s (%s): the probes are of another "
			    "version; `sudo kgo-probe unload` and load again.",
			    MS_PIN, strerror(errno));
	printf("probes:   loaded, pinned in %s\n", PIN_DIR);
	printf("uses:     tp_btf/sched_switch, tp_btf/sched_wakeup, "
	       "tp_btf/sched_process_exit, tp_btf/sched_process_free, "
	       "tp_btf/task_rename; task storage; "
	       "an mmapped array of %d records (at most %d per user but "
	       "root); kfunc "
	       "bpf_send_signal_task%s\n", KGO_OBS_SLOTS, KGO_OBS_UID_SLOTS,
	       access(TICK_STATS_PIN, F_OK) ? "" :
	       "; a BPF timer on each CPU while a kgo M runs there, "
	       "bpf_send_signal_thread");
	for (i = 0; i < KGO_OBS_SLOTS; i++) {
		__u64 owner = __atomic_load_n(&ms[i].owner, __ATOMIC_ACQUIRE);
		__u32 tgid = owner >> 32;

		if (!owner)
			continue;
		used++;
		for (j = 0; j < nrows && rows[j].tgid != tgid; j++)
			;
		if (j == nrows) {
			if (nrows == 256)
				continue;
			memset(&rows[j], 0, sizeof(rows[j]));
			rows[j].tgid = tgid;
			rows[j].uid = ms[i].uid;
			nrows++;
		}
		if (ms[i].role == KGO_OBS_REG_SYSMON)
			rows[j].sysmon = 1;
		else
			rows[j].ms++;
		rows[j].nblock += ms[i].nblock;
		rows[j].nwake += ms[i].nwake;
	}
	printf("records:  %d of %d in use\n", used, KGO_OBS_SLOTS);
	printf("%8s %-10s %-16s %4s %-6s %10s %8s\n", "PID", "USER",
	       "COMMAND", "MS", "MODE", "BLOCKS", "WAKEUPS");
	for (j = 0; j < nrows; j++) {
		char path[64], comm[32] = "?";
		struct passwd *pw = getpwuid(rows[j].uid);
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%u/comm", rows[j].tgid);
		f = fopen(path, "r");
		if (f) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = 0;
			fclose(f);
		}
		printf("%8u %-10s %-16s %4d %-6s %10llu %8llu\n", rows[j].tgid,
		       pw ? pw->pw_name : "?", comm, rows[j].ms,
		       rows[j].sysmon ? "bpf" : "-",
		       (unsigned long long)rows[j].nblock,
		       (unsigned long long)rows[j].nwake);
	}
	sfd = open_pinned(STATS_PIN, true);
	if (sfd >= 0 && !obs_probe_stats(sfd, &st))
		printf("counters: switches %llu, registrations %llu, "
		       "unregistrations %llu, exits %llu (late %llu), "
		       "table full %llu, "
		       "wakeups %llu (failed %llu), unreadable %llu\n",
		       (unsigned long long)st.switches,
		       (unsigned long long)st.regs,
		       (unsigned long long)st.unregs,
		       (unsigned long long)st.exits,
		       (unsigned long long)st.exits_late,
		       (unsigned long long)st.full,
		       (unsigned long long)st.wakes,
		       (unsigned long long)st.wake_fail,
		       (unsigned long long)st.read_fail);
	if (sfd >= 0)
		printf("          refused over the per-user cap %llu, "
		       "for another probe set %llu\n",
		       (unsigned long long)st.capped,
		       (unsigned long long)st.other_set);
	if (sfd >= 0)
		printf("          not taken: no task storage %llu, process "
		       "memory unreadable %llu\n",
		       (unsigned long long)st.reg_nostore,
		       (unsigned long long)st.reg_unread);
	if (geteuid() == 0)
		printf("skipped by the kernel (a thread was in the probe on "
		       "the same CPU): registrations %lld, exits %lld "
		       "(then freed late)\n",
		       prog_skipped("task_rename"),
		       prog_skipped("sched_process_exit"));
	tick_status();
	return 0;
}

static int cmd_unload(void)
{
	if (geteuid() != 0)
		return fail("unloading the probes needs root: run "
			    "`sudo kgo-probe unload`.");
	if (!bpffs_mounted() || !loaded())
		return fail("the probes are not loaded: nothing to unload.");
	remove_pins();
	if (loaded())
		return fail("could not remove %s: remove it by hand.",
			    PIN_DIR);
	printf("kgo-probe: probes unloaded; running kgo programs poll\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *group = NULL;
	bool verbose = false;
	int i;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--group") && i + 1 < argc)
			group = argv[++i];
		else if (!strcmp(argv[i], "-v"))
			verbose = true;
		else
			return fail("unknown argument %s: see `kgo-probe "
				    "--help`.", argv[i]);
	}
	if (PIN_DIR[0] != '/')
		return fail("%s=%s is not an absolute path: name a directory "
			    "on a BPF file system, such as /sys/fs/bpf/NAME.",
			    KGO_OBS_PIN_ENV, PIN_DIR);
	pin_paths();
	if (!strcmp(argv[1], "load"))
		return cmd_load(group, verbose);
	if (group || verbose)
		return fail("--group and -v go with load only.");
	if (!strcmp(argv[1], "status"))
		return cmd_status();
	if (!strcmp(argv[1], "unload"))
		return cmd_unload();
	return fail("unknown command %s: load, status or unload.", argv[1]);
}
