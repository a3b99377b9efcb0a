// SPDX-License-Identifier: MIT
/*
 * slowfs - a FUSE file system whose reads take a set time: the slow
 * disk of kgo's I/O tests and benchmarks (selftests/slowfs.h).
 *
 *	slowfs [-l latency_us] [-n nfiles] [-s size] [-r ready_fd] [-H] DIR
 *
 * Mounts on DIR a read-only root with files f0 .. f<nfiles-1>, each of
 * size bytes holding slowfs_byte(i, off). Every read request is answered
 * latency_us after it arrived, however many are waiting: a slow device,
 * not a busy one. That takes one thread that receives requests and one
 * that answers them from a queue in arrival order (all have the same
 * latency, so arrival order is deadline order); no thread per request.
 * Files are opened direct_io, so that every read(2) of a reader reaches
 * here, with no page cache or readahead in between. (io_uring's reads of
 * such a file are asynchronous FUSE requests, done without io-wq
 * threads; see sl_init.)
 *
 * With -H the reads are held, unanswered, until released: a read of the
 * file "release" answers every held read now and makes later reads
 * take latency_us again; a read of the file "held" gives the number of
 * reads waiting (text, "%u\n"). Both are answered at once. A test that
 * needs reads to wait in the file system for as long as it looks (not
 * for a time it hopes is long enough) holds them.
 *
 * When mounted, it writes one byte to ready_fd (if given) and closes it;
 * SIGTERM or SIGINT unmounts and exits.
 */
#define FUSE_USE_VERSION 35
#define SLOWFS_DAEMON

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "slowfs.h"

#define INO_ROOT	1
#define INO_FILE0	2
#define INO_HELD	(1u << 30)	/* -H: "held" and "release" */
#define INO_RELEASE	(INO_HELD + 1)
#define NAME_MAX_LEN	32

static long latency_ns = 1000000;
static unsigned nfiles = 16;
static off_t fsize = 1 << 20;
static int hold;		/* -H */

/* A read waiting for its time. */
struct pending {
	fuse_req_t req;
	unsigned file;
	off_t off;
	size_t size;
	int64_t due;
	struct pending *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pending *head, *tail;
	unsigned n;		/* reads in the queue */
	int held;		/* -H and not released: reads wait */
	int stop;
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0,
	0, 0 };

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int file_of(fuse_ino_t ino)
{
	return ino >= INO_FILE0 && ino < INO_FILE0 + nfiles ?
	       (int)(ino - INO_FILE0) : -1;
}

/* -H's two files. */
static int is_ctl(fuse_ino_t ino)
{
	return hold && (ino == INO_HELD || ino == INO_RELEASE);
}

static void fill_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == INO_HELD || ino == INO_RELEASE) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = 64;
	} else if (ino == INO_ROOT) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = fsize;
	}
}

/*
 * Reads that arrive asynchronously (io_uring's, on a direct_io file:
 * no io-wq thread is involved) are FUSE "background" requests, of which
 * the kernel lets max_background (12 by default) wait at once, and a
 * slow disk would look like a busy one. Synchronous reads (a thread
 * blocked in read(2)) have no such limit; give both the same room.
 */
static void sl_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_background = 4096;
	conn->congestion_threshold = 3072;
}

static void sl_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	char *end;
	unsigned long i;

	memset(&e, 0, sizeof(e));
	if (parent == INO_ROOT && hold && !strcmp(name, "held")) {
		e.ino = INO_HELD;
	} else if (parent == INO_ROOT && hold && !strcmp(name, "release")) {
		e.ino = INO_RELEASE;
	} else {
		if (parent != INO_ROOT || name[0] != 'f' || !name[1])
			goto noent;
		i = strtoul(name + 1, &end, 10);
		if (*end || i >= nfiles)
			goto noent;
		e.ino = INO_FILE0 + i;
	}
	e.attr_timeout = 3600;
	e.entry_timeout = 3600;
	fill_stat(e.ino, &e.attr);
	fuse_reply_entry(req, &e);
	return;
noent:
	fuse_reply_err(req, ENOENT);
}

static void sl_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino != INO_ROOT && file_of(ino) < 0 && !is_ctl(ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_stat(ino, &st);
	fuse_reply_attr(req, &st, 3600);
}

static void sl_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	char buf[4096], name[NAME_MAX_LEN];
	size_t used = 0, ent;
	struct stat st;
	off_t i;

	(void)fi;
	if (ino != INO_ROOT) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (size > sizeof(buf))
		size = sizeof(buf);
	/* Entries 0 and 1 are "." and "..", then the files. */
	for (i = off; i < (off_t)nfiles + 2; i++) {
		if (i < 2) {
			snprintf(name, sizeof(name), i ? ".." : ".");
			fill_stat(INO_ROOT, &st);
		} else {
			snprintf(name, sizeof(name), "f%u", (unsigned)(i - 2));
			fill_stat(INO_FILE0 + i - 2, &st);
		}
		ent = fuse_add_direntry(req, buf + used, size - used, name, &st,
					i + 1);
		if (ent > size - used)
			break;
		used += ent;
	}
	fuse_reply_buf(req, buf, used);
}

static void sl_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (file_of(ino) < 0 && !is_ctl(ino)) {
		fuse_reply_err(req, ino == INO_ROOT ? EISDIR : ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fuse_reply_open(req, fi);
}

/* A read of "held" or "release" (-H), answered at once. */
static void ctl_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
	struct pending *p;
	char text[32];
	int n;

	pthread_mutex_lock(&q.lock);
	if (ino == INO_RELEASE && q.held) {
		q.held = 0;
		for (p = q.head; p; p = p->next)
			p->due = now_ns();
		pthread_cond_signal(&q.cond);
	}
	n = snprintf(text, sizeof(text), "%u\n", ino == INO_HELD ? q.n : 0);
	pthread_mutex_unlock(&q.lock);
	if (off >= n)
		n = 0;
	else if ((size_t)(n - off) < size)
		size = n - off;
	fuse_reply_buf(req, text + (n ? off : 0), n ? size : 0);
}

static void sl_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct pending *p;

	(void)fi;
	if (is_ctl(ino)) {
		ctl_read(req, ino, size, off);
		return;
	}
	p = malloc(sizeof(*p));
	if (!p) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p->req = req;
	p->file = file_of(ino);
	p->off = off;
	p->size = size;
	p->next = NULL;
	pthread_mutex_lock(&q.lock);
	p->due = q.held ? INT64_MAX : now_ns() + latency_ns;
	q.n++;
	if (q.tail)
		q.tail->next = p;
	else
		q.head = p;
	q.tail = p;
	pthread_cond_signal(&q.cond);
	pthread_mutex_unlock(&q.lock);
}

/* Answer p from the replier's buffer *buf of *cap bytes (grown here). */
static void answer(struct pending *p, char **buf, size_t *cap)
{
	size_t n = 0, i;

	if (p->off < fsize)
		n = p->size < (size_t)(fsize - p->off) ? p->size :
		    (size_t)(fsize - p->off);
	if (n > *cap) {
		free(*buf);
		*buf = malloc(n);
		*cap = *buf ? n : 0;
		if (!*buf) {
			fuse_reply_err(p->req, ENOMEM);
			return;
		}
	}
	for (i = 0; i < n; i++)
		(*buf)[i] = (char)slowfs_byte(p->file, p->off + i);
	fuse_reply_buf(p->req, *buf, n);
}

/* The thread that answers reads when they are due. */
static void *replier(void *arg)
{
	struct pending *p;
	struct timespec ts;
	char *buf = NULL;
	size_t cap = 0;
	int64_t t;

	(void)arg;
	pthread_mutex_lock(&q.lock);
	for (;;) {
		while (!q.head && !q.stop)
			pthread_cond_wait(&q.cond, &q.lock);
		if (q.stop)
			break;
		p = q.head;
		t = now_ns();
		if (p->due == INT64_MAX) {
			/* Held (-H): until "release" is read. */
			pthread_cond_wait(&q.cond, &q.lock);
			continue;
		}
		if (p->due > t) {
			/* The condvar uses CLOCK_MONOTONIC (set in main). */
			ts.tv_sec = p->due / 1000000000;
			ts.tv_nsec = p->due % 1000000000;
			pthread_cond_timedwait(&q.cond, &q.lock, &ts);
			continue;
		}
		q.head = p->next;
		if (!q.head)
			q.tail = NULL;
		q.n--;
		pthread_mutex_unlock(&q.lock);
		answer(p, &buf, &cap);
		free(p);
		pthread_mutex_lock(&q.lock);
	}
	/* Stopping: the kernel aborts the requests still waiting. */
	while ((p = q.head)) {
		q.head = p->next;
		free(p);
	}
	pthread_mutex_unlock(&q.lock);
	free(buf);
	return NULL;
}

static const struct fuse_lowlevel_ops ops = {
	.init = sl_init,
	.lookup = sl_lookup,
	.getattr = sl_getattr,
	.readdir = sl_readdir,
	.open = sl_open,
	.read = sl_read,
};

static void usage(void)
{
	fprintf(stderr, "usage: slowfs [-l latency_us] [-n nfiles] [-s size] "
		"[-r ready_fd] [-H] DIR\n");
	exit(2);
}

int main(int argc, char **argv)
{
	char *fargv[] = { argv[0], "-o", "fsname=slowfs,subtype=slowfs", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_session *se;
	pthread_condattr_t ca;
	pthread_t thr;
	int opt, ready = -1, ret = 1;

	while ((opt = getopt(argc, argv, "l:n:s:r:H")) != -1) {
		switch (opt) {
		case 'l': latency_ns = atol(optarg) * 1000L; break;
		case 'n': nfiles = strtoul(optarg, NULL, 0); break;
		case 's': fsize = strtoll(optarg, NULL, 0); break;
		case 'r': ready = atoi(optarg); break;
		case 'H': hold = q.held = 1; break;
		default: usage();
		}
	}
	if (optind != argc - 1)
		usage();

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q.cond, &ca);

	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se))
		goto out_destroy;
	if (fuse_session_mount(se, argv[optind]))
		goto out_signals;
	if (pthread_create(&thr, NULL, replier, NULL))
		goto out_unmount;
	if (ready >= 0) {
		if (write(ready, "1", 1) != 1)
			perror("slowfs: ready fd");
		close(ready);
	}
	ret = fuse_session_loop(se) ? 1 : 0;

	pthread_mutex_lock(&q.lock);
	q.stop = 1;
	pthread_cond_signal(&q.cond);
	pthread_mutex_unlock(&q.lock);
	pthread_join(thr, NULL);
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	return ret;
}
