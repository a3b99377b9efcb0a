/* SPDX-License-Identifier: MIT */
/*
 * slowfs.h - the slow file system of the I/O tests and benchmarks: what
 * its files hold, and how a test starts and stops it.
 *
 * slowfs (selftests/slowfs.c, built as build/selftests/slowfs beside the
 * tests) is a read-only FUSE file system of @nfiles files "f0", "f1",
 * ... of @size bytes each, whose every read request is answered after
 * @latency_us, with as many requests waiting at once as the kernel
 * sends: a disk that is slow, not busy. Files are opened direct_io, so
 * every read reaches it (no page cache). Byte @off of file @i is
 * slowfs_byte(i, off), so readers can check what they got.
 *
 * A test starts it with slowfs_start(), which mounts it on a fresh
 * directory under /tmp and returns once the mount is up, or fails with
 * a reason for SKIP (no /dev/fuse, no binary, mounting refused); and
 * stops it with slowfs_stop(), which unmounts (lazily if it must) and
 * reaps the daemon. With @latency_us SLOWFS_HOLD the reads are held,
 * unanswered, until slowfs_release(); slowfs_held() counts them.
 */
#ifndef KGO_SLOWFS_H
#define KGO_SLOWFS_H

#include <stdint.h>

static inline uint8_t slowfs_byte(unsigned file, uint64_t off)
{
	uint64_t x = off * 0x9e3779b97f4a7c15ULL + file * 0x632be59bd9b4e019ULL;

	return (uint8_t)(x >> 56) ^ (uint8_t)(off >> 12);
}

#ifndef SLOWFS_DAEMON		/* the test side */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct slowfs {
	pid_t pid;
	char dir[64];
};

/* slowfs_start's latency: hold every read until slowfs_release(). */
#define SLOWFS_HOLD	(-1)

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* The daemon's binary: $KGO_SLOWFS, else "slowfs" beside this program,
 * else build/selftests/slowfs from the current directory. */
static inline int slowfs_binary(char *buf, size_t n)
{
	const char *env = getenv("KGO_SLOWFS");
	char self[PATH_MAX - 32];
	ssize_t len;

	if (env && *env) {
		snprintf(buf, n, "%s", env);
		return access(buf, X_OK);
	}
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len > 0) {
		self[len] = 0;
		snprintf(buf, n, "%s/slowfs", dirname(self));
		if (!access(buf, X_OK))
			return 0;
		/* A bench binary in build/bench: the tests' is next door. */
		snprintf(buf, n, "%s/../selftests/slowfs", self);
		if (!access(buf, X_OK))
			return 0;
	}
	snprintf(buf, n, "build/selftests/slowfs");
	return access(buf, X_OK);
}

/*
 * A test killed by its timeout takes its daemon with it (same process
 * group) and leaves the mount behind, dead: "Transport endpoint is not
 * connected". Clear such leftovers; live mounts of other runs answer
 * stat and are left alone.
 */
static inline void slowfs_sweep(void)
{
	char path[300];
	struct dirent *de;
	struct stat st;
	DIR *d = opendir("/tmp");

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "kgo-slowfs.", 11))
			continue;
		snprintf(path, sizeof(path), "/tmp/%s", de->d_name);
		if (stat(path, &st) && errno == ENOTCONN) {
			umount2(path, MNT_DETACH);
			rmdir(path);
		}
	}
	closedir(d);
}

/*
 * slowfs_start() - mount a slowfs. Return: 0, or -1 with the reason in
 * @why (for SKIP).
 */
static inline int slowfs_start(struct slowfs *fs, int latency_us, int nfiles,
			       long size, char *why, size_t whylen)
{
	char bin[PATH_MAX], lat[24], nf[24], sz[24], rfd[24];
	int pfd[2], fd;
	char c;
	struct pollfd p;

	fs->pid = -1;
	fs->dir[0] = 0;
	slowfs_sweep();
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "/dev/fuse: %s", strerror(errno));
		return -1;
	}
	close(fd);
	if (slowfs_binary(bin, sizeof(bin))) {
		snprintf(why, whylen, "slowfs not built (%.100s)", bin);
		return -1;
	}
	snprintf(fs->dir, sizeof(fs->dir), "/tmp/kgo-slowfs.XXXXXX");
	if (!mkdtemp(fs->dir) || pipe2(pfd, O_CLOEXEC)) {
		snprintf(why, whylen, "mkdtemp/pipe: %s", strerror(errno));
		fs->dir[0] = 0;
		return -1;
	}
	snprintf(lat, sizeof(lat), "%d", latency_us < 0 ? 0 : latency_us);
	snprintf(nf, sizeof(nf), "%d", nfiles);
	snprintf(sz, sizeof(sz), "%ld", size);
	snprintf(rfd, sizeof(rfd), "%d", pfd[1]);
	fs->pid = fork();
	if (fs->pid == 0) {
		/* The ready pipe's write end must survive the exec. */
		fcntl(pfd[1], F_SETFD, 0);
		execl(bin, "slowfs", "-l", lat, "-n", nf, "-s", sz, "-r", rfd,
		      latency_us == SLOWFS_HOLD ? "-H" : fs->dir,
		      latency_us == SLOWFS_HOLD ? fs->dir : (char *)NULL,
		      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	if (fs->pid < 0) {
		close(pfd[0]);
		snprintf(why, whylen, "fork: %s", strerror(errno));
		rmdir(fs->dir);
		fs->dir[0] = 0;
		return -1;
	}
	p.fd = pfd[0];
	p.events = POLLIN;
	if (poll(&p, 1, 10000) != 1 || read(pfd[0], &c, 1) != 1) {
		close(pfd[0]);
		kill(fs->pid, SIGKILL);
		waitpid(fs->pid, NULL, 0);
		fs->pid = -1;
		umount2(fs->dir, MNT_DETACH);
		rmdir(fs->dir);
		fs->dir[0] = 0;
		snprintf(why, whylen, "mounting slowfs failed (see its stderr)");
		return -1;
	}
	close(pfd[0]);
	return 0;
}

/* A file's path in the mounted slowfs. */
static inline void slowfs_path(const struct slowfs *fs, int i, char *buf,
			       size_t n)
{
	snprintf(buf, n, "%s/f%d", fs->dir, i);
}

/* Read the control file @name of a held slowfs: its number, or -errno. */
static inline long slowfs_ctl(const struct slowfs *fs, const char *name)
{
	char path[PATH_MAX], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", fs->dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

/* The reads a SLOWFS_HOLD slowfs holds now, or -errno. */
static inline long slowfs_held(const struct slowfs *fs)
{
	return slowfs_ctl(fs, "held");
}

/* Answer every held read now; later ones are answered at once. */
static inline int slowfs_release(const struct slowfs *fs)
{
	long r = slowfs_ctl(fs, "release");

	return r < 0 ? (int)r : 0;
}

static inline void slowfs_stop(struct slowfs *fs)
{
	int i;

	if (fs->pid > 0) {
		/* SIGTERM: the daemon leaves its loop and unmounts. */
		kill(fs->pid, SIGTERM);
		for (i = 0; i < 200; i++) {
			if (waitpid(fs->pid, NULL, WNOHANG) == fs->pid)
				break;
			usleep(10000);
		}
		if (i == 200) {
			kill(fs->pid, SIGKILL);
			waitpid(fs->pid, NULL, 0);
		}
		fs->pid = -1;
	}
	if (fs->dir[0]) {
		umount2(fs->dir, MNT_DETACH);
		rmdir(fs->dir);
		fs->dir[0] = 0;
	}
}

#endif /* !SLOWFS_DAEMON */
#endif /* KGO_SLOWFS_H */
