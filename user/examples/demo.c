// SPDX-License-Identifier: MIT
/*
 * demo - hash every file under a directory tree, a goroutine per file.
 *
 *	demo [-v] [-l] [-p procs] [-j max_open] [DIR...]	(default: /usr/include)
 *
 * One G walks the tree (getdents64 through kgo_syscall); for each regular
 * file it starts a G that opens, reads and hashes the file with kgo's
 * I/O calls: a read that the page cache can serve costs one syscall; one
 * that must wait for the disk parks its G on an io_uring completion and
 * the thread runs another G. At most -j files are open at once (a
 * buffered channel used as a semaphore). At the end the per-file hashes
 * are sorted by path and combined into one digest of the tree, so two
 * runs over the same files print the same digest however the Gs were
 * scheduled.
 *
 * The hash is a 64-bit multiply-rotate over 8-byte words: quick, not
 * cryptographic. -l prints "hash size path" for every file; -v prints
 * kgo's counters: threads, and how the reads went (fast path, ring,
 * syscall path).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <kgo.h>

#define CHUNK		(64 * 1024)
#define MS		1000000LL

struct file {
	char *path;
	uint64_t size, hash;
};

static struct {
	int max_open;
	bool verbose, list;
	char **roots;
	int nroots;

	struct kgo_chan *slots;		/* capacity max_open: a semaphore */
	struct kgo_wg wg;		/* hashers still running */
	struct kgo_mutex mu;		/* files, nfiles, cap, errors */
	struct file *files;
	size_t nfiles, cap;
	long errors;
	_Atomic bool done;		/* the sampler can stop */
	int threads_max, iowq_max;	/* the sampler's peaks */
} d = {
	.max_open = 256,
	.wg = KGO_WG_INIT,
	.mu = KGO_MUTEX_INIT,
};

static uint64_t rotl(uint64_t x, int r)
{
	return x << r | x >> (64 - r);
}

static uint64_t hash_step(uint64_t h, const unsigned char *p, size_t n)
{
	uint64_t w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = rotl(h ^ (w * 0x9e3779b97f4a7c15ULL), 31) * 0xbf58476d1ce4e5b9ULL;
	}
	if (n) {
		w = 0;
		memcpy(&w, p, n);
		h = rotl(h ^ (w * 0x9e3779b97f4a7c15ULL) ^ n, 29) *
		    0x94d049bb133111ebULL;
	}
	return h;
}

static uint64_t hash_final(uint64_t h, uint64_t len)
{
	h ^= len;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static void record(char *path, uint64_t size, uint64_t hash, bool ok)
{
	kgo_mutex_lock(&d.mu);
	if (!ok) {
		d.errors++;
		free(path);
	} else {
		if (d.nfiles == d.cap) {
			size_t cap = d.cap ? 2 * d.cap : 1024;
			struct file *f = realloc(d.files, cap * sizeof(*f));

			if (!f) {
				fprintf(stderr, "demo: out of memory\n");
				exit(1);
			}
			d.files = f;
			d.cap = cap;
		}
		d.files[d.nfiles++] = (struct file){ path, size, hash };
	}
	kgo_mutex_unlock(&d.mu);
}

/* A G per file: read it all, hash it, give the slot back. */
static void hasher(void *arg)
{
	char *path = arg;
	unsigned char *buf = malloc(CHUNK);
	uint64_t h = 0x243f6a8885a308d3ULL, size = 0;
	ssize_t n = -ENOMEM;
	int fd;

	fd = buf ? kgo_open(path, O_RDONLY | O_CLOEXEC, 0) : -ENOMEM;
	if (fd >= 0) {
		/* A CHUNK is a multiple of 8: the words line up. */
		while ((n = kgo_read(fd, buf, CHUNK)) > 0) {
			h = hash_step(h, buf, n);
			size += n;
		}
		kgo_close(fd);
	} else {
		n = fd;
	}
	if (n < 0)
		fprintf(stderr, "demo: %s: %s\n", path, strerror(-n));
	record(path, size, hash_final(h, size), n == 0);
	free(buf);
	kgo_chan_recv(d.slots, NULL);
	kgo_wg_done(&d.wg);
}

static void start_hasher(char *path)
{
	kgo_chan_send(d.slots, &(char){ 0 });	/* waits for a free slot */
	kgo_wg_add(&d.wg, 1);
	if (kgo_go(hasher, path)) {
		fprintf(stderr, "demo: cannot start a goroutine\n");
		exit(1);
	}
}

/* Walk @dir (a path), starting a hasher per regular file. Symbolic links
 * are not followed: a tree is hashed as it is stored. */
static void walk(const char *dir)
{
	const size_t bufsz = 32 * 1024;
	char *buf, *path;
	struct dirent64 *de;
	struct stat st;
	long n, off;
	int fd;

	fd = kgo_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "demo: %s: %s\n", dir, strerror(-fd));
		record(NULL, 0, 0, false);
		return;
	}
	/* Not on the stack: a G's stack is small (64 KiB by default) and
	 * this recurses. */
	buf = malloc(bufsz);
	if (!buf)
		exit(1);
	/* Directory reads can wait for the disk: the syscall path lets the
	 * P go on with the hashers if they do. */
	while ((n = kgo_syscall(SYS_getdents64, fd, buf, bufsz)) > 0) {
		for (off = 0; off < n; off += de->d_reclen) {
			de = (struct dirent64 *)(buf + off);
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
				exit(1);
			if (de->d_type == DT_UNKNOWN) {
				if (lstat(path, &st)) {
					free(path);
					continue;
				}
				de->d_type = S_ISDIR(st.st_mode) ? DT_DIR :
					     S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
			}
			if (de->d_type == DT_DIR) {
				walk(path);
				free(path);
			} else if (de->d_type == DT_REG) {
				start_hasher(path);	/* it frees path */
			} else {
				free(path);
			}
		}
	}
	if (n < 0)
		fprintf(stderr, "demo: %s: %s\n", dir, strerror(-n));
	free(buf);
	kgo_close(fd);
}

/* Count this process's threads: its own, and io_uring's io-wq workers. */
static void count_threads(int *own, int *iowq)
{
	char path[300], comm[32];
	struct dirent *de;
	DIR *dir = opendir("/proc/self/task");
	int fd, n;

	*own = *iowq = 0;
	if (!dir)
		return;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 de->d_name);
		fd = kgo_open(path, O_RDONLY, 0);
		if (fd < 0)
			continue;
		n = kgo_read(fd, comm, sizeof(comm) - 1);
		kgo_close(fd);
		comm[n > 0 ? n : 0] = 0;
		if (!strncmp(comm, "iou-wrk-", 8))
			(*iowq)++;
		else
			(*own)++;
	}
	closedir(dir);
}

/* A G that samples the thread counts every 10 ms (for -v). */
static void sampler(void *arg)
{
	struct kgo_wg *wg = arg;
	int own, iowq;

	while (!d.done) {
		count_threads(&own, &iowq);
		if (own > d.threads_max)
			d.threads_max = own;
		if (iowq > d.iowq_max)
			d.iowq_max = iowq;
		kgo_sleep(10 * MS);
	}
	kgo_wg_done(wg);
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct file *)a)->path,
		      ((const struct file *)b)->path);
}

static void main_g(void *arg)
{
	struct kgo_wg sampled = KGO_WG_INIT;
	struct kgo_stats st;
	uint64_t digest = 0x6a09e667f3bcc908ULL, bytes = 0;
	int64_t t0 = kgo_now(), el;
	size_t i;
	int r;

	(void)arg;
	d.slots = kgo_chan_make(1, d.max_open);
	if (!d.slots)
		exit(1);
	if (d.verbose) {
		kgo_wg_add(&sampled, 1);
		kgo_go(sampler, &sampled);
	}
	for (r = 0; r < d.nroots; r++)
		walk(d.roots[r]);
	kgo_wg_wait(&d.wg);
	el = kgo_now() - t0;
	kgo_stats_get(&st, sizeof(st));
	d.done = true;
	if (d.verbose)
		kgo_wg_wait(&sampled);

	qsort(d.files, d.nfiles, sizeof(*d.files), by_path);
	for (i = 0; i < d.nfiles; i++) {
		struct file *f = &d.files[i];

		digest = hash_step(digest, (const unsigned char *)f->path,
				   strlen(f->path));
		digest = hash_step(digest, (const unsigned char *)&f->hash, 8);
		bytes += f->size;
		if (d.list)
			printf("%016llx %10llu %s\n", (unsigned long long)f->hash,
			       (unsigned long long)f->size, f->path);
		free(f->path);
	}
	printf("%zu files, %.1f MiB in %.0f ms (%.0f MiB/s)\n", d.nfiles,
	       bytes / 1048576.0, el / 1e6,
	       bytes / 1048576.0 / (el > 0 ? el / 1e9 : 1e-9));
	if (d.errors)
		printf("%ld files or directories could not be read\n",
		       d.errors);
	printf("digest %016llx\n",
	       (unsigned long long)hash_final(digest, d.nfiles));
	if (d.verbose) {
		printf("kgo: %d Ps, %llu Gs made; threads at most %d of our own "
		       "+ %d io-wq workers\n", kgo_maxprocs(),
		       (unsigned long long)st.gs_created, d.threads_max,
		       d.iowq_max);
		printf("kgo: I/O through %s: %llu calls done at once (page "
		       "cache, RWF_NOWAIT), %llu through the ring (%llu done "
		       "while submitting), %llu through the syscall path\n",
		       kgo_io_backend(), (unsigned long long)st.io_nowait_hits,
		       (unsigned long long)st.io_uring_ops,
		       (unsigned long long)st.io_inline,
		       (unsigned long long)st.io_fallback_ops);
		printf("kgo: %llu G switches, %llu steals, %llu preemptions\n",
		       (unsigned long long)st.context_switches,
		       (unsigned long long)st.steals,
		       (unsigned long long)(st.preempt_sync + st.preempt_async));
	}
	free(d.files);
	kgo_chan_free(d.slots);
}

static void usage(void)
{
	fprintf(stderr, "usage: demo [-v] [-l] [-p procs] [-j max_open] "
		"[DIR...]\n"
		"  hashes every file under DIR (default /usr/include), a "
		"goroutine per file\n"
		"  -v  kgo's counters   -l  list each file's hash\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static char *def_root[] = { "/usr/include" };
	struct kgo_config cfg = { 0 };
	int opt, r;

	while ((opt = getopt(argc, argv, "vlp:j:h")) != -1) {
		switch (opt) {
		case 'v': d.verbose = true; break;
		case 'l': d.list = true; break;
		case 'p': cfg.maxprocs = atoi(optarg); break;
		case 'j': d.max_open = atoi(optarg); break;
		default: usage();
		}
	}
	if (d.max_open < 1 || cfg.maxprocs < 0)
		usage();
	d.roots = optind < argc ? argv + optind : def_root;
	d.nroots = optind < argc ? argc - optind : 1;
	r = kgo_run(main_g, NULL, &cfg);
	if (r) {
		fprintf(stderr, "demo: kgo_run: %s\n", strerror(-r));
		return 1;
	}
	return d.errors ? 1 : 0;
}
