/* SPDX-License-Identifier: MIT */
/*
 * tags.c - the /.tags directory: which entries carry a tag.
 *
 * `ls /.tags` lists the tags some visible entry carries, and /.tags/TAG is
 * a read-only file listing the paths of the entries that carry TAG, one per
 * line ("/dir/key"). The engine answers from its tag table
 * (tc_tags_list(), tc_tag_paths()); this file makes a directory of it.
 * Like .stats it belongs to the daemon: the handlers (ops.c, fileops.c,
 * dirops.c) answer every request on the directory or on its files here,
 * and refuse every change (EPERM).
 *
 * A listing is never stale:
 *   - cache_mode=daemon: the file is rendered at every open into the
 *     handle and read with direct_io (fileops.c, as .stats), so its size
 *     attribute is 0;
 *   - cache_mode=kernel (no open reaches us, and the kernel keeps the pages
 *     of what it read): the file is rendered at every lookup, replied with
 *     an entry timeout of 0, so every path walk asks again. When the
 *     listing is what the last lookup of the tag found, the same inode is
 *     replied (the kernel keeps its pages: they are right); otherwise a new
 *     inode from a range of our own, whose attributes (the exact size)
 *     never change. A descriptor opened earlier reads its own snapshot.
 * The directory itself is never cached: its attributes time out at once
 * and its mtime is now, so the kernel of cache_mode=kernel drops its copy
 * of the listing at every opendir and asks again.
 *
 * Every file the kernel holds is in a list keyed by inode number, with its
 * lookup references, freed by FORGET; the list is bounded (FILES_MAX, the
 * oldest dropped first: the kernel then reads it as empty). Paths are one
 * per line, so the two bytes that would break a line are escaped: a
 * newline in a name as \n, a backslash as \\.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tcfs.h"

/* Most files kept. The kernel holds one per tag whose name it has cached,
 * and one per descriptor open on an older snapshot. */
#define FILES_MAX 1024

/* Cookies of a listing of /.tags: "." 1, ".." 2, then the tags from 3. */
#define FIRST_TAG_COOKIE 3

struct tcfs_tagfile {
	struct tcfs_tagfile *next;
	uint64_t ino;
	uint64_t nlookup;
	char tag[TC_NAME_MAX + 1];
	bool snapshot; /* text holds the listing (cache_mode=kernel) */
	struct timespec when;
	struct tcfs_text text;
};

void tcfs_tags_init(struct tcfs_tags *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
}

static void file_free(struct tcfs_tagfile *f)
{
	tcfs_text_free(&f->text);
	free(f);
}

void tcfs_tags_destroy(struct tcfs_tags *t)
{
	struct tcfs_tagfile *f, *next;

	for (f = t->head; f; f = next) {
		next = f->next;
		file_free(f);
	}
	t->head = NULL;
	t->n = 0;
	pthread_mutex_destroy(&t->lock);
}

bool tcfs_tagfile_ino(uint64_t ino)
{
	return ino >= TCFS_TAGFILE_INO_MIN && ino < TCFS_TAGFILE_INO_END;
}

static void owner_attr(struct tc_attr *a, uint64_t ino, mode_t mode,
		       const struct timespec *when)
{
	memset(a, 0, sizeof(*a));
	a->st.st_ino = ino;
	a->st.st_mode = mode;
	a->st.st_nlink = S_ISDIR(mode) ? 2 : 1;
	a->st.st_uid = geteuid();
	a->st.st_gid = getegid();
	a->st.st_blksize = 4096;
	a->st.st_atim = *when;
	a->st.st_mtim = *when;
	a->st.st_ctim = *when;
}

void tcfs_tags_dir_attr(struct tc_attr *out)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	owner_attr(out, TCFS_TAGS_INO, S_IFDIR | 0555, &now);
	out->valid_ns = 0;
}

/* Attributes of @f (t->lock held). */
static void file_attr(const struct tcfs_tagfile *f, struct tc_attr *a)
{
	struct timespec now;

	if (!f->snapshot) {
		/* Rendered at each open, read with direct_io: no size. */
		clock_gettime(CLOCK_REALTIME, &now);
		owner_attr(a, f->ino, S_IFREG | 0444, &now);
		a->valid_ns = TCFS_TIMEOUT_MAX_NS;
		return;
	}
	owner_attr(a, f->ino, S_IFREG | 0444, &f->when);
	a->st.st_size = (off_t)f->text.len;
	a->st.st_blocks = (blkcnt_t)((f->text.len + 511) / 512);
	a->valid_ns = INT64_MAX; /* a snapshot never changes */
}

/* ------------------------------------------------------------------ */
/* Rendering                                                          */
/* ------------------------------------------------------------------ */

/* tc_path_fn: one line, with newline and backslash escaped. */
static int add_path(void *ctx, const char *path, size_t len)
{
	struct tcfs_text *t = ctx;
	size_t n;

	while (len > 0) {
		n = strcspn(path, "\\\n");
		if (n > len)
			n = len;
		tcfs_text_add(t, path, n);
		path += n;
		len -= n;
		if (len == 0)
			break;
		tcfs_text_add(t, *path == '\n' ? "\\n" : "\\\\", 2);
		path++;
		len--;
	}
	tcfs_text_add(t, "\n", 1);
	return t->err != 0;
}

static int render(struct tc_engine *eng, const char *tag,
		  struct tcfs_text *out)
{
	int rc = tc_tag_paths(eng, tag, add_path, out);

	return rc ? rc : out->err;
}

int tcfs_tags_render(struct tcfs_tags *t, struct tc_engine *eng, uint64_t ino,
		     struct tcfs_text *out)
{
	char tag[TC_NAME_MAX + 1];
	struct tcfs_tagfile *f;

	pthread_mutex_lock(&t->lock);
	for (f = t->head; f && f->ino != ino; f = f->next)
		;
	if (f)
		memcpy(tag, f->tag, sizeof(tag));
	pthread_mutex_unlock(&t->lock);
	if (!f)
		return -ENOENT;
	return render(eng, tag, out);
}

/* ------------------------------------------------------------------ */
/* The files the kernel holds                                         */
/* ------------------------------------------------------------------ */

/* The newest file of @tag (t->lock held), or NULL. */
static struct tcfs_tagfile *find_tag_locked(struct tcfs_tags *t,
					    const char *tag)
{
	struct tcfs_tagfile *f;

	for (f = t->head; f && strcmp(f->tag, tag) != 0; f = f->next)
		;
	return f;
}

/* Add @f, newest, with a new inode number (t->lock held). */
static void add_locked(struct tcfs_tags *t, struct tcfs_tagfile *f)
{
	struct tcfs_tagfile **pp;

	f->ino = TCFS_TAGFILE_INO_MIN +
		 t->seq++ % (TCFS_TAGFILE_INO_END - TCFS_TAGFILE_INO_MIN);
	f->nlookup = 1;
	f->next = t->head;
	t->head = f;
	if (++t->n > FILES_MAX) {
		/* the oldest is at the end */
		for (pp = &t->head; (*pp)->next; pp = &(*pp)->next)
			;
		file_free(*pp);
		*pp = NULL;
		t->n--;
	}
}

/* The same listing as @f's snapshot. */
static bool same_text(const struct tcfs_tagfile *f, const struct tcfs_text *x)
{
	return f->snapshot && f->text.len == x->len &&
	       (x->len == 0 || memcmp(f->text.buf, x->buf, x->len) == 0);
}

int tcfs_tags_lookup(struct tcfs_tags *t, struct tc_engine *eng, bool kernel,
		     const char *name, struct tc_attr *out)
{
	struct tcfs_tagfile *f = calloc(1, sizeof(*f)), *old;
	int rc;

	if (!f)
		return -ENOMEM;
	if (!tc_tag_valid(name, strlen(name))) {
		rc = -ENOENT;
		goto fail;
	}
	snprintf(f->tag, sizeof(f->tag), "%s", name);
	f->snapshot = kernel;
	if (kernel) {
		rc = render(eng, name, &f->text);
		if (!rc && f->text.len == 0)
			rc = -ENOENT;
	} else {
		rc = tc_tag_in_use(eng, name);
	}
	if (rc)
		goto fail;
	clock_gettime(CLOCK_REALTIME, &f->when);
	pthread_mutex_lock(&t->lock);
	old = find_tag_locked(t, name);
	/* Daemon mode: one file per tag. Kernel mode: a listing that did not
	 * change keeps its inode, and the kernel its pages. */
	if (old && (!kernel || same_text(old, &f->text))) {
		old->nlookup++;
		file_attr(old, out);
		pthread_mutex_unlock(&t->lock);
		file_free(f);
		return 0;
	}
	add_locked(t, f);
	file_attr(f, out);
	pthread_mutex_unlock(&t->lock);
	return 0;
fail:
	file_free(f);
	return rc == -EINVAL ? -ENOENT : rc;
}

int tcfs_tags_attr(struct tcfs_tags *t, uint64_t ino, struct tc_attr *out)
{
	struct tcfs_tagfile *f;

	pthread_mutex_lock(&t->lock);
	for (f = t->head; f && f->ino != ino; f = f->next)
		;
	if (f)
		file_attr(f, out);
	pthread_mutex_unlock(&t->lock);
	return f ? 0 : -ENOENT;
}

size_t tcfs_tags_read(struct tcfs_tags *t, uint64_t ino, char *buf,
		      size_t size, uint64_t off)
{
	struct tcfs_tagfile *f;
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	for (f = t->head; f && f->ino != ino; f = f->next)
		;
	if (f && off < f->text.len) {
		n = f->text.len - (size_t)off;
		if (n > size)
			n = size;
		memcpy(buf, f->text.buf + off, n);
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

void tcfs_tags_forget(struct tcfs_tags *t, uint64_t ino, uint64_t nlookup)
{
	struct tcfs_tagfile **pp, *f;

	pthread_mutex_lock(&t->lock);
	for (pp = &t->head; *pp && (*pp)->ino != ino; pp = &(*pp)->next)
		;
	f = *pp;
	if (f && f->nlookup <= nlookup) {
		*pp = f->next;
		t->n--;
		file_free(f);
	} else if (f) {
		f->nlookup -= nlookup;
	}
	pthread_mutex_unlock(&t->lock);
}

/* ------------------------------------------------------------------ */
/* Listing                                                            */
/* ------------------------------------------------------------------ */

/* A reply being filled. */
struct listing {
	fuse_req_t req;
	bool plus;
	char *buf;
	size_t size, used;
	uint64_t skip;   /* tags before the resume point */
	uint64_t cookie; /* of the next entry */
	bool full;
};

/* Add one entry: false when it did not fit. No lookup reference is handed
 * out (nodeid 0 in readdirplus): a tag's file is made by its lookup. */
static bool list_add(struct listing *l, const char *name,
		     const struct tc_attr *a)
{
	size_t room = l->size - l->used, len;

	if (l->plus) {
		struct fuse_entry_param e;

		memset(&e, 0, sizeof(e));
		e.attr = a->st;
		len = fuse_add_direntry_plus(l->req, l->buf + l->used, room,
					     name, &e, (off_t)l->cookie);
	} else {
		len = fuse_add_direntry(l->req, l->buf + l->used, room, name,
					&a->st, (off_t)l->cookie);
	}
	if (len > room) {
		l->full = true;
		return false;
	}
	l->used += len;
	return true;
}

/* tc_tag_fn: one tag of the listing. */
static int list_tag(void *ctx, const char *tag)
{
	struct listing *l = ctx;
	struct timespec now = { 0, 0 };
	struct tc_attr a;

	if (l->skip) {
		l->skip--;
		return 0;
	}
	owner_attr(&a, TCFS_TAGFILE_INO_MIN + l->cookie, S_IFREG | 0444,
		   &now);
	if (!list_add(l, tag, &a))
		return 1;
	l->cookie++;
	return 0;
}

void tcfs_tags_readdir(fuse_req_t req, struct tc_engine *eng, size_t size,
		       off_t off, bool plus)
{
	struct listing l = {.req = req, .plus = plus, .size = size};
	uint64_t from = off < 0 ? 0 : (uint64_t)off;
	struct tc_attr a;
	int rc = 0;

	l.buf = malloc(size ? size : 1);
	if (!l.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	l.cookie = from + 1;
	if (from < 1) {
		tcfs_tags_dir_attr(&a);
		list_add(&l, ".", &a);
	}
	if (from < 2 && !l.full) {
		memset(&a, 0, sizeof(a));
		a.st.st_ino = TC_ROOT_INO;
		a.st.st_mode = S_IFDIR;
		l.cookie = 2;
		list_add(&l, "..", &a);
	}
	/* The tags resume by position: a tag created or gone between two
	 * replies of one listing may shift the rest by one, as any directory
	 * changing under a reader may (readdir(3)). */
	l.cookie = from < FIRST_TAG_COOKIE ? FIRST_TAG_COOKIE : from + 1;
	l.skip = l.cookie - FIRST_TAG_COOKIE;
	if (!l.full)
		rc = tc_tags_list(eng, list_tag, &l);
	if (rc < 0 && l.used == 0)
		fuse_reply_err(req, -rc);
	else if (l.full && l.used == 0)
		fuse_reply_err(req, EINVAL); /* not even one entry fits */
	else
		fuse_reply_buf(req, l.buf, l.used);
	free(l.buf);
}
