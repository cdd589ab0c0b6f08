/* SPDX-License-Identifier: MIT */
/*
 * fuzz_engine: the engine's namespace and content API driven by the input,
 * against an in-memory model that predicts every result.
 *
 * Each input gets a fresh store (in /dev/shm when it exists) and an engine
 * with a fixed injected clock, no background thread (tc_engine_maintain()
 * runs as an operation), sync=never, a small RAM tier (so contents move
 * between RAM and disk) and a 1 GiB disk limit (so writes past it give
 * EFBIG). The input is a sequence of operations, each an opcode byte and
 * its arguments (see the op_*() functions): create, open (access mode,
 * O_TRUNC, O_APPEND), write at an offset, fallocate (every mode), read,
 * truncate (through a handle or not), flush, fsync, release, unlink, rename (plain, NOREPLACE,
 * EXCHANGE, invalid flags), link, mkdir, rmdir, mknod (FIFO, socket,
 * character and block devices with their numbers, bad type), symlink,
 * readlink, readdir (plain and plus, resumed from cookies), user.* xattrs,
 * getattr, holding and forgetting lookup references, flush=ram/disk,
 * maintenance with the clock moved on, and closing and reopening the engine.
 *
 * Names: "a".."h", plus ".stats", "", "x/y", a 255-byte and a 256-byte
 * name. Parents: the root, the paths a, b, a/b, b/c (walked with
 * tc_lookup(), each step checked against the model), or an inode held by a
 * lookup reference (possibly unlinked or gone). Up to 4 open handles and 4
 * held references at once.
 *
 * The model (struct mnode) is a tree of directories, files, FIFOs and
 * symlinks with link counts, open handles, held references, user.*
 * attributes, and for files the visible content (what every handle reads:
 * unpublished writes included) and the published one, with the engine's
 * publishing rules (tiercache.h): at flush of the last writer when written,
 * at fsync, at release of the last writer, at a truncate without a writer,
 * and at close. Every return code is predicted, in the engine's documented
 * order of checks; reads must return the visible content byte for byte;
 * lookups and getattr must give the model's inode, type, size and link
 * count; readdir must list exactly the model's entries, and the same again
 * when resumed from every cookie; statfs must count the linked files and
 * their published bytes. The end of every input compares the whole tree,
 * contents included, closes the engine, which publishes everything, and
 * runs tc_check() on the store, which must find it sound; the reopen
 * operation does the same and then reopens the store and compares the
 * whole tree again. The engine logging an error is a failure too (fuzz_eng.h).
 *
 * Set TC_FUZZ_TRACE=1 to print every operation as it runs (to report or
 * replay a finding by hand).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "fuzz_eng.h"

#define NHANDLE 4
#define NHOLD 4
#define NUX 3 /* user.a, user.b, user.c */
#define DISK_SIZE (UINT64_C(1) << 30)
/* Contents the model holds at most (visible + published), to keep large
 * writes from exhausting memory: past it, large sizes shrink. */
#define MODEL_BYTES_MAX ((size_t)32 << 20)

enum mtype { M_REG, M_DIR, M_FIFO, M_LNK, M_SOCK, M_CHR, M_BLK };

struct mdent {
	char *name;
	int child;
};

struct mnode {
	enum mtype type;
	uint64_t ino;
	bool dead;	/* gone from the engine: every call gives ENOENT */
	uint32_t links; /* names pointing at it (a directory: 0 or 1) */
	int parent;	/* directories: parent node, -1 when removed */
	struct fz_buf cur; /* visible content (reads see it) */
	struct fz_buf pub; /* published content */
	bool dirty;	   /* the engine holds dirty state */
	bool written;	   /* ... written or truncated since it began */
	int nopen, nwriters, refs;
	mode_t perm; /* permission bits */
	/* Lifetimes (ns; <0 unset): user.tiercache.ttl and ttl_mode of its
	 * own, for a file those its directories had at its creation, and its
	 * deadline (0: never). */
	int64_t ttl, dttl, expires;
	int tmode, dmode;
	struct mdent *ents; /* directories */
	size_t nents;
	bool ux[NUX];
	struct fz_buf uxv[NUX];
	char *target; /* symlinks */
	dev_t rdev;   /* device nodes */
};

struct handle {
	struct tc_file *f; /* NULL: free slot */
	int node;
	int flags;
};

struct hold {
	int node; /* -1: empty */
	bool ref; /* the lookup reference is still held */
};

static struct {
	struct fz_eng fx;
	struct mnode *n;
	size_t nn;
	struct handle h[NHANDLE];
	struct hold hold[NHOLD];
	size_t model_bytes;
	bool trace;
	unsigned long op_no;
	int64_t mount_ttl; /* ttl=, 0: none */
	int mount_mode;	   /* ttl_mode= */
	unsigned fail_armed; /* blob writes still to fail with ENOSPC */
	unsigned fail_fired; /* blob writes failed so far */
} M;

#define N(i) (&M.n[(i)])

#define TRACE(...)                                                           \
	do {                                                                 \
		if (M.trace) {                                               \
			fprintf(stderr, "op %lu: ", M.op_no);                \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
		}                                                            \
	} while (0)

static const char *const ux_names[NUX] = { "user.a", "user.b", "user.c" };

/*
 * Fault injection (tiercachefs(8), NOTES, STYLE 13): while armed, blob writes fail with
 * ENOSPC, as on a full store filesystem. Operations observe whether one
 * fired (M.fail_fired moved) and then expect -ENOSPC and the previous
 * content intact; reading never writes a blob, so a failure firing during
 * any other operation is a finding too.
 */
static ssize_t fz_pwrite(void *ctx, int fd, const void *buf, size_t n,
			 off_t off)
{
	(void)ctx;
	if (M.fail_armed) {
		M.fail_armed--;
		M.fail_fired++;
		errno = ENOSPC;
		return -1;
	}
	return pwrite(fd, buf, n, off);
}

static ssize_t fz_pread(void *ctx, int fd, void *buf, size_t n, off_t off)
{
	(void)ctx;
	return pread(fd, buf, n, off);
}

static int fz_fsync(void *ctx, int fd)
{
	(void)ctx;
	return fsync(fd);
}

static const struct tc_blob_ops fz_blob_ops = { fz_pwrite, fz_pread,
						fz_fsync, NULL };

/* ------------------------------------------------------------------ */
/* The model                                                          */
/* ------------------------------------------------------------------ */

static int node_new(enum mtype type, uint64_t ino)
{
	struct mnode *m;

	M.n = realloc(M.n, (M.nn + 1) * sizeof(*M.n));
	FZ_CHECK(M.n != NULL, "out of memory");
	m = N(M.nn);
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->ino = ino;
	m->parent = -1;
	m->perm = type == M_LNK ? 0777 : 0644; /* 0644 & ~umask 022 */
	m->ttl = m->dttl = -1;
	m->tmode = m->dmode = -1;
	return (int)M.nn++;
}

static void node_free_data(struct mnode *m)
{
	M.model_bytes -= m->cur.len + m->pub.len;
	fz_buf_free(&m->cur);
	fz_buf_free(&m->pub);
	for (int k = 0; k < NUX; k++)
		fz_buf_free(&m->uxv[k]);
	for (size_t k = 0; k < m->nents; k++)
		free(m->ents[k].name);
	free(m->ents);
	m->ents = NULL;
	m->nents = 0;
	free(m->target);
	m->target = NULL;
}

static bool is_linked(int i)
{
	return i == 0 || N(i)->links > 0;
}

/* The node leaves the engine when nothing holds it (node_maybe_free). */
static void maybe_die(int i)
{
	struct mnode *m = N(i);

	if (i == 0 || m->dead || m->links || m->nopen || m->refs || m->dirty)
		return;
	m->dead = true;
	node_free_data(m);
}

static uint32_t nlink_of(int i)
{
	struct mnode *m = N(i);
	uint32_t n = 2;

	if (m->type != M_DIR)
		return m->links;
	if (!is_linked(i))
		return 0;
	for (size_t k = 0; k < m->nents; k++)
		n += N(m->ents[k].child)->type == M_DIR;
	return n;
}

static int dir_find(int d, const char *name)
{
	struct mnode *m = N(d);

	for (size_t k = 0; k < m->nents; k++)
		if (!strcmp(m->ents[k].name, name))
			return m->ents[k].child;
	return -1;
}

static void dir_add(int d, const char *name, int child)
{
	struct mnode *m = N(d);

	m->ents = realloc(m->ents, (m->nents + 1) * sizeof(*m->ents));
	FZ_CHECK(m->ents != NULL, "out of memory");
	m->ents[m->nents].name = strdup(name);
	FZ_CHECK(m->ents[m->nents].name != NULL, "out of memory");
	m->ents[m->nents++].child = child;
	N(child)->links++;
	if (N(child)->type == M_DIR)
		N(child)->parent = d;
}

/* Remove the name @name from @d (its node stays: the caller decides). */
static int dir_del(int d, const char *name)
{
	struct mnode *m = N(d);

	for (size_t k = 0; k < m->nents; k++) {
		int child = m->ents[k].child;

		if (strcmp(m->ents[k].name, name))
			continue;
		free(m->ents[k].name);
		m->ents[k] = m->ents[--m->nents];
		N(child)->links--;
		if (N(child)->type == M_DIR)
			N(child)->parent = -1;
		return child;
	}
	FZ_CHECK(0, "model: %s not in directory %d", name, d);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Lifetimes (tiercachefs(8), EXTENDED ATTRIBUTES): own ttl, else the directories' at creation, else
 * the mount's; resolved from the time of a write (publish), a change of
 * ttl or ttl_mode, or creation; a sliding one moves at every read. */

static int64_t eff_ttl(int i)
{
	if (N(i)->ttl >= 0)
		return N(i)->ttl;
	return N(i)->dttl >= 0 ? N(i)->dttl : M.mount_ttl;
}

static int eff_mode(int i)
{
	if (N(i)->tmode >= 0)
		return N(i)->tmode;
	return N(i)->dmode >= 0 ? N(i)->dmode : M.mount_mode;
}

/* from + ttl, or 0 (never) for no ttl or a sum past INT64_MAX. */
static int64_t deadline(int64_t from, int64_t ttl)
{
	return ttl <= 0 || from > INT64_MAX - ttl ? 0 : from + ttl;
}

static void resolve(int i)
{
	if (N(i)->type == M_REG)
		N(i)->expires = deadline(M.fx.now, eff_ttl(i));
}

static bool expired(int i)
{
	return N(i)->type == M_REG && N(i)->expires > 0 &&
	       N(i)->expires <= M.fx.now;
}

/* A counted open (for reading): a sliding deadline starts again. */
static void note_read(int i)
{
	if (N(i)->expires > 0 && eff_mode(i) == TC_TTL_SLIDING)
		N(i)->expires = deadline(M.fx.now, eff_ttl(i));
}

/* A new entry in @p copies the nearest ttl and ttl_mode above it. */
static void inherit(int i, int p)
{
	for (int d = p; d >= 0; d = d == 0 ? -1 : N(d)->parent) {
		if (N(i)->dttl < 0 && N(d)->ttl >= 0)
			N(i)->dttl = N(d)->ttl;
		if (N(i)->dmode < 0 && N(d)->tmode >= 0)
			N(i)->dmode = N(d)->tmode;
	}
}

static void drop_all(int i);

/* The entry @name of @d as a lookup sees it: an expired file met by name
 * is dropped (all its names) and absent. @return the child or -1. */
static int find_vis(int d, const char *name)
{
	int c = dir_find(d, name);

	if (c >= 0 && expired(c)) {
		drop_all(c);
		return -1;
	}
	return c;
}

/* The visible content becomes the published one. */
static void publish(int i)
{
	struct mnode *m = N(i);

	M.model_bytes -= m->pub.len;
	fz_buf_copy(&m->pub, &m->cur);
	M.model_bytes += m->pub.len;
	m->dirty = m->written = false;
	resolve(i);
}

static void cur_resize(int i, size_t len)
{
	struct mnode *m = N(i);

	M.model_bytes = M.model_bytes - m->cur.len + len;
	fz_buf_resize(&m->cur, len);
}

/* Remove every name of @i (expiry, flush=disk): tc_inode_drop_locked. */
static void drop_all(int i)
{
	for (size_t d = 0; d < M.nn; d++) {
		struct mnode *m = N(d);

		if (m->dead || m->type != M_DIR)
			continue;
		for (size_t k = 0; k < m->nents;) {
			if (m->ents[k].child == i)
				dir_del((int)d, m->ents[k].name);
			else
				k++;
		}
	}
	maybe_die(i);
}

/* Dirty state begins from the current content (dirty_begin). */
static void dirty_begin(int i)
{
	if (!N(i)->dirty) {
		N(i)->dirty = true;
		N(i)->written = false;
	}
}

/* The -errno dir_get_locked() gives for @i as a parent directory. */
static int dir_err(int i)
{
	if (N(i)->dead)
		return -ENOENT;
	if (N(i)->type != M_DIR)
		return -ENOTDIR;
	return is_linked(i) ? 0 : -ENOENT;
}

/* check_name(): the engine's name rules. */
static int name_err(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || strchr(name, '/'))
		return -EINVAL;
	return len > TC_NAME_MAX ? -ENAMETOOLONG : 0;
}

/* True when directory @anc is @i or one of its ancestors. */
static bool is_ancestor(int anc, int i)
{
	for (int depth = 0; i >= 0 && depth < 100000; depth++) {
		if (i == anc)
			return true;
		i = N(i)->parent;
	}
	return false;
}

static mode_t type_bits(enum mtype t)
{
	static const mode_t bits[] = { S_IFREG,	 S_IFDIR, S_IFIFO, S_IFLNK,
					S_IFSOCK, S_IFCHR, S_IFBLK };

	return bits[t];
}

static size_t size_of(int i)
{
	struct mnode *m = N(i);

	if (m->type == M_REG)
		return m->cur.len;
	if (m->type == M_LNK)
		return strlen(m->target);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Checks                                                             */
/* ------------------------------------------------------------------ */

static void check_attr(int i, const struct tc_attr *a, const char *what)
{
	struct mnode *m = N(i);

	FZ_CHECK(a->st.st_ino == m->ino, "%s: ino %llu, model %llu", what,
		 (unsigned long long)a->st.st_ino, (unsigned long long)m->ino);
	FZ_CHECK((a->st.st_mode & S_IFMT) == type_bits(m->type),
		 "%s: mode %o, model type %d", what, (unsigned)a->st.st_mode,
		 m->type);
	FZ_CHECK((a->st.st_mode & 07777) == m->perm,
		 "%s: permissions %o, model %o", what,
		 (unsigned)a->st.st_mode & 07777, (unsigned)m->perm);
	FZ_CHECK(a->st.st_rdev == m->rdev, "%s: rdev %#llx, model %#llx", what,
		 (unsigned long long)a->st.st_rdev,
		 (unsigned long long)m->rdev);
	FZ_CHECK((uint64_t)a->st.st_nlink == nlink_of(i),
		 "%s: nlink %llu, model %u", what,
		 (unsigned long long)a->st.st_nlink, nlink_of(i));
	if (m->type != M_DIR)
		FZ_CHECK((uint64_t)a->st.st_size == size_of(i),
			 "%s: size %lld, model %zu", what,
			 (long long)a->st.st_size, size_of(i));
}

static void check_getattr(int i)
{
	struct tc_attr a;
	int rc = tc_getattr(M.fx.eng, N(i)->ino, &a);

	FZ_EQ(rc, N(i)->dead ? -ENOENT : 0, "getattr");
	if (!rc)
		check_attr(i, &a, "getattr");
}

/* statfs counts the linked regular files and their published bytes. */
static void check_statfs(void)
{
	uint64_t items = 0, bytes = 0;
	struct tc_statfs sf;

	for (size_t i = 0; i < M.nn; i++)
		if (!N(i)->dead && N(i)->type == M_REG && N(i)->links) {
			items++;
			bytes += N(i)->pub.len;
		}
	tc_statfs(M.fx.eng, &sf);
	FZ_CHECK(sf.items == items && sf.used_bytes == bytes,
		 "statfs: %" PRIu64 " items %" PRIu64 " bytes, model %" PRIu64
		 " items %" PRIu64 " bytes", sf.items, sf.used_bytes, items,
		 bytes);
}

/* Read @len bytes at @off through @f; they must be the model's. */
static void check_read(struct tc_file *f, int i, uint64_t off, size_t len)
{
	const struct fz_buf *c = &N(i)->cur;
	size_t want = off >= c->len ? 0
				    : (len < c->len - off ? len : c->len - off);
	uint8_t *buf = malloc(len ? len : 1);
	ssize_t n;

	FZ_CHECK(buf != NULL, "out of memory");
	n = tc_read(f, buf, len, (off_t)off);
	FZ_CHECK(n == (ssize_t)want, "read %zu at %" PRIu64 ": %zd, model %zu",
		 len, off, n, want);
	for (size_t k = 0; k < want; k++)
		FZ_CHECK(buf[k] == c->p[off + k],
			 "read %zu at %" PRIu64 ": byte %zu is %u, model %u",
			 len, off, (size_t)off + k, buf[k], c->p[off + k]);
	free(buf);
}

/* tc_read_span() gives bytes only when nothing is unpublished: then they
 * are the published content, which is the visible one, from a descriptor
 * or straight from RAM. Checked from the start and from the middle. */
static void check_read_span_at(struct tc_file *f, int i, uint64_t off)
{
	const struct fz_buf *c = &N(i)->cur;
	size_t want = c->len - (size_t)off;
	struct tc_span sp;
	uint8_t *buf;
	ssize_t n;
	int rc = tc_read_span(f, (off_t)off, want, &sp);

	if (rc == -EAGAIN)
		return;
	FZ_EQ(rc, 0, "tc_read_span");
	FZ_CHECK(!N(i)->dirty || (N(i)->cur.len == N(i)->pub.len &&
				  !memcmp(N(i)->cur.p, N(i)->pub.p,
					  N(i)->cur.len)),
		 "tc_read_span gave bytes with unpublished writes");
	FZ_EQ(sp.len, want, "tc_read_span length");
	if (sp.fd >= 0) {
		buf = malloc(want + 1);
		FZ_CHECK(buf != NULL, "out of memory");
		n = pread(sp.fd, buf, want + 1, sp.pos);
		FZ_CHECK(n == (ssize_t)want &&
				 (!n || !memcmp(buf, c->p + off, want)),
			 "tc_read_span fd: %zd bytes, model %zu", n, want);
		free(buf);
	} else {
		FZ_CHECK(!memcmp(sp.data, c->p + off, want),
			 "tc_read_span data differs from the model");
	}
	tc_span_done(&sp);
}

static void check_read_span(struct tc_file *f, int i)
{
	check_read_span_at(f, i, 0);
	check_read_span_at(f, i, N(i)->cur.len / 2);
}

struct dirent_rec {
	char name[TC_NAME_MAX + 1];
	uint64_t ino;
	mode_t type;
	uint64_t cookie;
};

struct listing {
	struct dirent_rec *v;
	size_t n, cap;
	size_t take; /* entries to accept in this call (0: all) */
	size_t taken;
};

static int list_cb(void *ctx, const char *name, const struct tc_attr *attr,
		   uint64_t off)
{
	struct listing *l = ctx;
	struct dirent_rec *r;

	if (l->take && l->taken == l->take)
		return 1;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		FZ_CHECK(l->v != NULL, "out of memory");
	}
	r = &l->v[l->n++];
	FZ_CHECK(strlen(name) <= TC_NAME_MAX, "readdir: name too long");
	strcpy(r->name, name);
	r->ino = attr->st.st_ino;
	r->type = attr->st.st_mode & S_IFMT;
	r->cookie = off;
	l->taken++;
	return 0;
}

static int rec_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dirent_rec *)a)->name,
		      ((const struct dirent_rec *)b)->name);
}

/* Forget the references readdir-plus took on the entries in @l. */
static void forget_plus(const struct listing *l, size_t from)
{
	for (size_t k = from; k < l->n; k++)
		if (strcmp(l->v[k].name, ".") && strcmp(l->v[k].name, ".."))
			tc_forget(M.fx.eng, l->v[k].ino, 1);
}

/*
 * readdir of directory @d (as the engine sees inode @ino): the whole
 * listing must be the model's entries, and a listing resumed from the
 * cookies, @chunk entries at a time, the same sequence again.
 */
static void check_readdir(int d, bool plus, size_t chunk)
{
	struct listing all = { 0 }, part = { 0 };
	struct dirent_rec *want;
	size_t nwant = 0;
	int err = dir_err(d), rc;
	uint64_t off = 0;

	rc = tc_readdir(M.fx.eng, N(d)->ino, 0, plus, list_cb, &all);
	FZ_EQ(rc, err, "readdir");
	if (rc)
		return;
	if (plus)
		forget_plus(&all, 0);
	want = calloc(N(d)->nents + 3, sizeof(*want));
	FZ_CHECK(want != NULL, "out of memory");
	strcpy(want[nwant].name, ".");
	want[nwant].ino = N(d)->ino;
	want[nwant++].type = S_IFDIR;
	strcpy(want[nwant].name, "..");
	want[nwant].ino = N(d == 0 ? 0 : N(d)->parent)->ino;
	want[nwant++].type = S_IFDIR;
	for (size_t k = 0; k < N(d)->nents; k++) {
		int c = N(d)->ents[k].child;

		if (expired(c))
			continue; /* left out, not dropped */
		strcpy(want[nwant].name, N(d)->ents[k].name);
		want[nwant].ino = N(c)->ino;
		want[nwant++].type = type_bits(N(c)->type);
	}
	/* Resumed listing: compare before sorting @all. */
	part.take = chunk;
	for (int calls = 0;; calls++) {
		part.taken = 0;
		FZ_CHECK(calls < 1000, "readdir does not end");
		rc = tc_readdir(M.fx.eng, N(d)->ino, off, plus, list_cb, &part);
		FZ_EQ(rc, 0, "readdir (resumed)");
		if (plus)
			forget_plus(&part, part.n - part.taken);
		if (!part.taken)
			break;
		off = part.v[part.n - 1].cookie;
	}
	FZ_CHECK(part.n == all.n, "readdir resumed by %zu: %zu entries, "
		 "whole %zu", chunk, part.n, all.n);
	for (size_t k = 0; k < all.n; k++)
		FZ_CHECK(!strcmp(part.v[k].name, all.v[k].name) &&
			 part.v[k].cookie == all.v[k].cookie,
			 "readdir resumed by %zu: entry %zu is '%s', whole '%s'",
			 chunk, k, part.v[k].name, all.v[k].name);
	qsort(want, nwant, sizeof(*want), rec_cmp);
	qsort(all.v, all.n, sizeof(*all.v), rec_cmp);
	FZ_CHECK(all.n == nwant, "readdir: %zu entries, model %zu", all.n,
		 nwant);
	for (size_t k = 0; k < nwant; k++) {
		FZ_CHECK(!strcmp(all.v[k].name, want[k].name),
			 "readdir: '%s', model '%s'", all.v[k].name,
			 want[k].name);
		FZ_CHECK(all.v[k].ino == want[k].ino,
			 "readdir: %s is inode %llu, model %llu", want[k].name,
			 (unsigned long long)all.v[k].ino,
			 (unsigned long long)want[k].ino);
		if (strcmp(want[k].name, ".."))
			FZ_CHECK(all.v[k].type == want[k].type,
				 "readdir: %s has type %o, model %o",
				 want[k].name, (unsigned)all.v[k].type,
				 (unsigned)want[k].type);
	}
	free(want);
	free(all.v);
	free(part.v);
}

static void check_xattrs(int i)
{
	struct tc_engine *eng = M.fx.eng;
	struct mnode *m = N(i);
	char list[128];
	size_t nwant = 0;
	ssize_t n;

	for (int k = 0; k < NUX; k++) {
		uint8_t buf[256];

		n = tc_getxattr(eng, m->ino, ux_names[k], buf, sizeof(buf));
		if (m->dead) {
			FZ_EQ(n, -ENOENT, "getxattr of a dead inode");
			continue;
		}
		if (!m->ux[k]) {
			FZ_EQ(n, -ENODATA, "getxattr of an absent attribute");
			continue;
		}
		nwant++;
		FZ_CHECK(n == (ssize_t)m->uxv[k].len &&
				 (!n || !memcmp(buf, m->uxv[k].p, (size_t)n)),
			 "getxattr %s: %zd bytes, model %zu", ux_names[k], n,
			 m->uxv[k].len);
	}
	n = tc_listxattr(eng, m->ino, list, sizeof(list));
	if (m->dead) {
		FZ_EQ(n, -ENOENT, "listxattr of a dead inode");
		return;
	}
	/* The user.tiercache.* ones set on files and directories too. */
	if (m->type == M_REG || m->type == M_DIR)
		nwant += (m->ttl >= 0) + (m->tmode >= 0);
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(list + off) + 1) {
		const char *x = list + off;
		bool ok = false;

		for (int k = 0; k < NUX && !ok; k++)
			ok = m->ux[k] && !strcmp(x, ux_names[k]);
		ok = ok || (m->ttl >= 0 && !strcmp(x, TC_XATTR_PREFIX "ttl"));
		ok = ok || (m->tmode >= 0 &&
			    !strcmp(x, TC_XATTR_PREFIX "ttl_mode"));
		FZ_CHECK(ok, "listxattr lists '%s'", x);
		FZ_CHECK(nwant > 0, "listxattr lists too many names");
		nwant--;
	}
	FZ_CHECK(n >= 0 && nwant == 0, "listxattr: %zd, %zu names missing", n,
		 nwant);
}

/* Read the whole content of file @i through a new read-only handle. */
static void check_content(int i)
{
	struct tc_file *f;
	int rc = tc_open(M.fx.eng, N(i)->ino, O_RDONLY, &f);

	FZ_EQ(rc, 0, "open for verification");
	note_read(i);
	check_read(f, i, 0, N(i)->cur.len + 1);
	FZ_EQ(tc_release(f), 0, "release after verification");
}

/* The whole tree below directory @d, recursively (a lookup of an expired
 * file drops it, as the engine's does). */
static int lookup_both(int dir, const char *name);

static void verify_dir(int d)
{
	size_t n = N(d)->nents;
	struct mdent *snap = calloc(n + 1, sizeof(*snap));

	FZ_CHECK(snap != NULL, "out of memory");
	for (size_t k = 0; k < n; k++) {
		snap[k].name = strdup(N(d)->ents[k].name);
		FZ_CHECK(snap[k].name != NULL, "out of memory");
	}
	check_readdir(d, false, 3);
	for (size_t k = 0; k < n; k++) {
		int c = lookup_both(d, snap[k].name);

		free(snap[k].name);
		if (c < 0)
			continue;
		check_xattrs(c);
		if (N(c)->type == M_REG) {
			check_content(c);
		} else if (N(c)->type == M_DIR) {
			verify_dir(c);
		} else if (N(c)->type == M_LNK) {
			char t[4200];

			FZ_EQ(tc_readlink(M.fx.eng, N(c)->ino, t, sizeof(t)), 0,
			      "readlink for verification");
			FZ_CHECK(!strcmp(t, N(c)->target),
				 "readlink for verification: '%s'", t);
		}
	}
	free(snap);
}

static void verify_all(void)
{
	verify_dir(0);
	for (int k = 0; k < NHOLD; k++)
		if (M.hold[k].node >= 0)
			check_getattr(M.hold[k].node);
	check_statfs();
}

/* ------------------------------------------------------------------ */
/* Input decoding                                                     */
/* ------------------------------------------------------------------ */

static char long255[256], long256[257];

static const char *pick_name(struct fz_in *in)
{
	static const char *const normal[] = { "a", "b", "c", "d",
					      "e", "f", "g", "h" };
	static const char *const special[] = { ".stats", "", "x/y",
					       long255, long256 };
	uint8_t c = fz_u8(in);

	return c < 240 ? normal[c % 8] : special[(c - 240) % 5];
}

/* A place: a node and, when reached through a name, its parent. */
struct loc {
	int node;
	int parent; /* -1: reached through a held reference */
	const char *name;
};

/* tc_lookup() of @name in @dir, compared with the model; the reference
 * is dropped. @return the child, or -1 (the error was as predicted). */
static int lookup_both(int dir, const char *name)
{
	struct tc_attr a;
	int want = name_err(name), child = -1, rc;

	if (!want)
		want = dir_err(dir);
	if (!want) {
		child = find_vis(dir, name);
		if (child < 0)
			want = -ENOENT;
	}
	rc = tc_lookup(M.fx.eng, N(dir)->ino, name, &a);
	FZ_CHECK(rc == want, "lookup '%s' in %llu: %d (%s), model %d (%s)",
		 name, (unsigned long long)N(dir)->ino, rc, strerror(-rc), want,
		 strerror(-want));
	if (rc)
		return -1;
	check_attr(child, &a, "lookup");
	tc_forget(M.fx.eng, a.st.st_ino, 1);
	return child;
}

/*
 * A directory to operate in: the root, a path walked from it (each step
 * checked), or a held node (which may be unlinked, gone, or no directory).
 * @return false when the walk stopped early: the operation is skipped, as
 * the kernel would not have sent it.
 */
static bool pick_parent(struct fz_in *in, int *out)
{
	static const char *const paths[][2] = {
		{ NULL, NULL }, { NULL, NULL }, { NULL, NULL }, { "a", NULL },
		{ "b", NULL },	{ "a", "b" },	{ "b", "c" },
	};
	uint8_t c = fz_u8(in) % 8;
	int cur = 0;

	if (c == 7) {
		int h = M.hold[fz_u8(in) % NHOLD].node;

		*out = h >= 0 ? h : 0;
		return true;
	}
	for (int k = 0; k < 2 && paths[c][k]; k++) {
		cur = lookup_both(cur, paths[c][k]);
		if (cur < 0)
			return false;
	}
	*out = cur;
	return true;
}

/* An existing node: parent and name looked up, or a held node. */
static bool pick_entry(struct fz_in *in, struct loc *l)
{
	uint8_t c = fz_u8(in);

	if (c % 8 == 7) {
		l->node = M.hold[(c / 8) % NHOLD].node;
		l->parent = -1;
		l->name = NULL;
		return l->node >= 0;
	}
	if (!pick_parent(in, &l->parent))
		return false;
	l->name = pick_name(in);
	l->node = lookup_both(l->parent, l->name);
	return l->node >= 0;
}

/* Deterministic content: a few seeds give equal contents (deduplicated
 * blobs), positions are mixed in so misplaced bytes show. */
static void gen(uint8_t *buf, size_t len, uint8_t seed)
{
	for (size_t k = 0; k < len; k++)
		buf[k] = (uint8_t)(seed * 151u + k * 7u + (k >> 7));
}

static size_t pick_len(struct fz_in *in)
{
	uint8_t c = fz_u8(in);
	size_t len;

	switch (c >> 6) {
	case 0:
		len = c & 15;
		break;
	case 1:
		len = fz_u8(in);
		break;
	case 2:
		len = fz_u16(in) % 8192;
		break;
	default: /* across 64 KiB (dirty_begin's copy chunk) */
		len = 65536 + fz_u8(in) * 16u;
		break;
	}
	if (len > 4096 && M.model_bytes > MODEL_BYTES_MAX)
		len = 16;
	return len;
}

/* An offset: from the end, small, medium, or special. */
static int64_t pick_off(struct fz_in *in, int node)
{
	uint8_t c = fz_u8(in);

	switch (c >> 6) {
	case 0:
		return (int64_t)N(node)->cur.len;
	case 1:
		return c & 63;
	case 2:
		return fz_u16(in);
	default:
		switch (c & 3) {
		case 0: /* across the 1 MiB spill threshold */
			return M.model_bytes > MODEL_BYTES_MAX
				       ? 0
				       : (INT64_C(1) << 20) - 100;
		case 1:
			return (int64_t)DISK_SIZE; /* EFBIG */
		case 2:
			return INT64_MAX - 3; /* EFBIG, not overflow */
		default:
			return -1; /* EINVAL */
		}
	}
}

/* ------------------------------------------------------------------ */
/* Operations                                                         */
/* ------------------------------------------------------------------ */

static int pick_flags(struct fz_in *in)
{
	static const int acc[] = { O_RDONLY, O_WRONLY, O_RDWR, O_RDWR };
	uint8_t c = fz_u8(in);

	return acc[c & 3] | (c & 4 ? O_TRUNC : 0) | (c & 8 ? O_APPEND : 0);
}

static void op_release_slot(int s)
{
	struct handle *h = &M.h[s];
	int i = h->node, acc = h->flags & O_ACCMODE;
	bool writer = acc != O_RDONLY;
	unsigned fired;
	int rc;

	if (!h->f)
		return;
	TRACE("release handle %d (inode %llu)", s,
	      (unsigned long long)N(i)->ino);
	fired = M.fail_fired;
	rc = tc_release(h->f);
	if (M.fail_fired != fired) {
		/* Publishing failed: nobody can publish it any more, the
		 * unpublished state is dropped, the published one stays. */
		FZ_EQ(rc, -ENOSPC, "release with a failing blob write");
		FZ_CHECK(writer && N(i)->dirty, "release wrote a blob, but "
			 "the model has nothing to publish");
		M.model_bytes -= N(i)->cur.len;
		fz_buf_copy(&N(i)->cur, &N(i)->pub);
		M.model_bytes += N(i)->cur.len;
		N(i)->dirty = N(i)->written = false;
	} else {
		FZ_EQ(rc, 0, "release");
		if (writer && N(i)->nwriters <= 1 && N(i)->dirty)
			publish(i);
	}
	N(i)->nopen--;
	if (writer)
		N(i)->nwriters--;
	h->f = NULL;
	maybe_die(i);
}

/* A new handle on @i in slot @s (the engine's open_node). */
static void handle_opened(int s, struct tc_file *f, int i, int flags)
{
	int acc = flags & O_ACCMODE;

	M.h[s] = (struct handle){ f, i, flags };
	N(i)->nopen++;
	if (acc != O_RDONLY) {
		N(i)->nwriters++;
		if (flags & O_TRUNC) {
			dirty_begin(i);
			N(i)->written = false;
			cur_resize(i, 0);
		}
	}
}

static void op_create(struct fz_in *in)
{
	struct tc_attr a;
	struct tc_file *f = NULL;
	const char *name;
	int p, flags, s, want, rc, i;

	if (!pick_parent(in, &p))
		return;
	name = pick_name(in);
	flags = pick_flags(in) & ~O_TRUNC;
	s = fz_u8(in) % NHANDLE;
	op_release_slot(s);
	want = name_err(name);
	if (!want)
		want = dir_err(p);
	if (!want && find_vis(p, name) >= 0)
		want = -EEXIST;
	TRACE("create '%s' in %llu flags %#x -> handle %d", name,
	      (unsigned long long)N(p)->ino, (unsigned)flags, s);
	rc = tc_create(M.fx.eng, N(p)->ino, name, S_IFREG | 0644, flags,
		       &M.fx.ctx, &a, &f);
	FZ_CHECK(rc == want, "create '%s': %d (%s), model %d (%s)", name, rc,
		 strerror(-rc), want, strerror(-want));
	if (rc)
		return;
	i = node_new(M_REG, a.st.st_ino);
	dir_add(p, name, i);
	inherit(i, p);
	resolve(i);
	FZ_CHECK((a.st.st_mode & 07777) == 0644, "create: mode %o",
		 (unsigned)a.st.st_mode);
	/* A writable create truncates (an empty dirty state), as O_TRUNC. */
	handle_opened(s, f, i,
		      (flags & O_ACCMODE) == O_RDONLY ? flags
						      : flags | O_TRUNC);
	M.h[s].flags = flags;
	check_attr(i, &a, "create");
	tc_forget(M.fx.eng, a.st.st_ino, 1);
}

static void op_open(struct fz_in *in)
{
	struct tc_file *f = NULL;
	struct loc l;
	int flags, s, want = 0, rc;

	if (!pick_entry(in, &l))
		return;
	flags = pick_flags(in);
	s = fz_u8(in) % NHANDLE;
	op_release_slot(s);
	if (N(l.node)->dead)
		want = -ENOENT;
	else if (N(l.node)->type == M_DIR)
		want = -EISDIR;
	else if (N(l.node)->type != M_REG)
		want = -EINVAL;
	TRACE("open %llu flags %#x -> handle %d",
	      (unsigned long long)N(l.node)->ino, (unsigned)flags, s);
	rc = tc_open(M.fx.eng, N(l.node)->ino, flags, &f);
	FZ_EQ(rc, want, "open");
	if (rc)
		return;
	handle_opened(s, f, l.node, flags);
	if ((flags & O_ACCMODE) != O_WRONLY)
		note_read(l.node);
}

static struct handle *pick_handle(struct fz_in *in)
{
	struct handle *h = &M.h[fz_u8(in) % NHANDLE];

	return h->f ? h : NULL;
}

static void op_write(struct fz_in *in)
{
	struct handle *h = pick_handle(in);
	int64_t off;
	size_t len;
	uint8_t seed, *buf;
	ssize_t want, rc;
	unsigned fired;
	int i;

	if (!h)
		return;
	i = h->node;
	off = pick_off(in, i);
	len = pick_len(in);
	seed = fz_u8(in);
	buf = malloc(len ? len : 1);
	FZ_CHECK(buf != NULL, "out of memory");
	gen(buf, len, seed);
	TRACE("write handle %d (inode %llu) %zu bytes at %" PRId64
	      "%s (seed %u)", (int)(h - M.h), (unsigned long long)N(i)->ino,
	      len, off, h->flags & O_APPEND ? " append" : "", seed);
	/* Predict first; apply after the call, unless a blob write failed
	 * and the write says so (it then changes nothing; a chunk that
	 * could not be sealed into a file may also stay in memory, and the
	 * write succeed). */
	if ((h->flags & O_ACCMODE) == O_RDONLY)
		want = -EBADF;
	else if (off < 0)
		want = -EINVAL;
	else if ((uint64_t)(h->flags & O_APPEND ? (int64_t)N(i)->cur.len
						 : off) + len > DISK_SIZE)
		want = -EFBIG;
	else
		want = (ssize_t)len;
	fired = M.fail_fired;
	rc = tc_write(h->f, buf, len, (off_t)off);
	if (M.fail_fired != fired && rc != want) {
		FZ_CHECK(rc == -ENOSPC, "write %zu bytes at %" PRId64
			 " with a failing blob write: %zd", len, off, rc);
		free(buf);
		return;
	}
	if (want >= 0 || want == -EFBIG)
		dirty_begin(i);
	if (want >= 0) {
		if (h->flags & O_APPEND)
			off = (int64_t)N(i)->cur.len;
		/* POSIX: writing nothing changes nothing. */
		if (len) {
			size_t end = (size_t)off + len;

			if (end > N(i)->cur.len)
				cur_resize(i, end);
			memcpy(N(i)->cur.p + off, buf, len);
		}
		N(i)->written = true;
	}
	FZ_CHECK(rc == want, "write %zu bytes at %" PRId64 ": %zd, model %zd",
		 len, off, rc, want);
	free(buf);
}

/* fallocate through a handle: allocation (the size grows, zeros),
 * keep-size (nothing changes), punch-hole and zero-range (zeros below the
 * size; zero-range without keep-size also grows), and one mode refused. */
static void op_fallocate(struct fz_in *in)
{
	static const int modes[] = {
		0,
		FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_ZERO_RANGE,
		FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_PUNCH_HOLE, /* without keep-size: EOPNOTSUPP */
	};
	struct handle *h = pick_handle(in);
	uint64_t end, size, zero_end;
	bool zero, grow;
	int64_t off;
	size_t len;
	unsigned fired;
	int mode, want = 0, rc, i;

	if (!h)
		return;
	i = h->node;
	mode = modes[fz_u8(in) % 6];
	off = pick_off(in, i);
	len = pick_len(in);
	end = (uint64_t)off + len;
	if (off < 0 || len == 0)
		want = -EINVAL;
	else if (mode == FALLOC_FL_PUNCH_HOLE)
		want = -EOPNOTSUPP;
	else if ((h->flags & O_ACCMODE) == O_RDONLY)
		want = -EBADF;
	else if (N(i)->type == M_DIR)
		want = -EISDIR;
	else if (N(i)->type != M_REG)
		want = -ENODEV;
	else if (end > DISK_SIZE)
		want = -EFBIG;
	TRACE("fallocate handle %d (inode %llu) mode %#x, %zu bytes at %" PRId64,
	      (int)(h - M.h), (unsigned long long)N(i)->ino, mode, len, off);
	fired = M.fail_fired;
	rc = tc_fallocate(h->f, mode, (off_t)off, (off_t)len);
	if (M.fail_fired != fired && rc != want) {
		FZ_CHECK(rc == -ENOSPC, "fallocate with a failing blob write: %d",
			 rc);
		return;
	}
	FZ_CHECK(rc == want, "fallocate mode %#x, %zu bytes at %" PRId64
		 ": %d, model %d", mode, len, off, rc, want);
	if (rc)
		return;
	size = N(i)->cur.len;
	zero_end = end < size ? end : size;
	zero = (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) &&
	       (uint64_t)off < zero_end;
	grow = !(mode & FALLOC_FL_KEEP_SIZE) && end > size;
	if (!zero && !grow)
		return; /* the bytes and the size stay: no dirty state */
	dirty_begin(i);
	if (zero)
		memset(N(i)->cur.p + off, 0, (size_t)(zero_end - (uint64_t)off));
	if (grow)
		cur_resize(i, (size_t)end);
	N(i)->written = true;
}

static void op_read(struct fz_in *in)
{
	struct handle *h = pick_handle(in);
	int64_t off;
	size_t len;
	uint8_t dummy[1];
	ssize_t rc;

	if (!h)
		return;
	off = pick_off(in, h->node);
	len = pick_len(in);
	TRACE("read handle %d %zu bytes at %" PRId64, (int)(h - M.h), len,
	      off);
	if ((h->flags & O_ACCMODE) == O_WRONLY || off < 0) {
		rc = tc_read(h->f, dummy, sizeof(dummy), (off_t)off);
		FZ_EQ(rc, (h->flags & O_ACCMODE) == O_WRONLY ? -EBADF : -EINVAL,
		      "read");
		return;
	}
	check_read(h->f, h->node, (uint64_t)off, len);
	check_read_span(h->f, h->node);
}

static void op_truncate(struct fz_in *in)
{
	uint8_t how = fz_u8(in), c;
	struct tc_file *f = NULL;
	struct tc_attr a;
	struct stat st;
	struct loc l;
	uint64_t size;
	unsigned fired;
	int want = 0, rc, i;

	if (how & 1) {
		struct handle *h = pick_handle(in);

		if (!h)
			return;
		f = h->f;
		i = h->node;
	} else {
		if (!pick_entry(in, &l))
			return;
		i = l.node;
	}
	c = fz_u8(in);
	switch (c >> 6) {
	case 0:
		size = c & 63;
		break;
	case 1:
		size = fz_u8(in);
		break;
	case 2:
		size = fz_u16(in);
		break;
	default:
		size = c & 1 ? DISK_SIZE + 1
			     : (M.model_bytes > MODEL_BYTES_MAX
					? 0
					: (UINT64_C(1) << 20) + 5);
		break;
	}
	if (N(i)->dead)
		want = -ENOENT;
	else if (N(i)->type == M_DIR)
		want = -EISDIR;
	else if (N(i)->type != M_REG)
		want = -EINVAL;
	else if (size > DISK_SIZE)
		want = -EFBIG;
	TRACE("truncate inode %llu to %" PRIu64 "%s",
	      (unsigned long long)N(i)->ino, size, f ? " (handle)" : "");
	memset(&st, 0, sizeof(st));
	st.st_size = (off_t)size;
	fired = M.fail_fired;
	rc = tc_setattr(M.fx.eng, N(i)->ino, &st, TC_SET_SIZE, f, &a);
	if (M.fail_fired != fired) {
		/* tiercachefs(8), NOTES: the call fails, the previous content stays. */
		FZ_EQ(rc, -ENOSPC, "truncate with a failing blob write");
		return;
	}
	FZ_EQ(rc, want, "truncate");
	if (rc)
		return;
	dirty_begin(i);
	cur_resize(i, (size_t)size);
	N(i)->written = true;
	/* Without a writable handle (given or open), published at once. */
	if (N(i)->nwriters == 0)
		publish(i);
	check_attr(i, &a, "truncate");
}

static void op_flush(struct fz_in *in)
{
	struct handle *h = pick_handle(in);
	unsigned fired;
	int i, rc;

	if (!h)
		return;
	i = h->node;
	TRACE("flush handle %d", (int)(h - M.h));
	fired = M.fail_fired;
	rc = tc_flush(h->f);
	if (M.fail_fired != fired) {
		/* Not published: the dirty state is kept for later. */
		FZ_EQ(rc, -ENOSPC, "flush with a failing blob write");
		return;
	}
	FZ_EQ(rc, 0, "flush");
	if ((h->flags & O_ACCMODE) != O_RDONLY && N(i)->nwriters <= 1 &&
	    N(i)->dirty && N(i)->written)
		publish(i);
}

static void op_fsync(struct fz_in *in)
{
	struct handle *h = pick_handle(in);
	unsigned fired;
	int rc;

	if (!h)
		return;
	TRACE("fsync handle %d", (int)(h - M.h));
	fired = M.fail_fired;
	rc = tc_fsync(h->f, fz_u8(in) & 1);
	if (M.fail_fired != fired) {
		FZ_EQ(rc, -ENOSPC, "fsync with a failing blob write");
		return;
	}
	FZ_EQ(rc, 0, "fsync");
	if (N(h->node)->dirty)
		publish(h->node);
}

static void op_release(struct fz_in *in)
{
	op_release_slot(fz_u8(in) % NHANDLE);
}

static void op_unlink(struct fz_in *in)
{
	const char *name;
	int p, want, rc, c = -1;

	if (!pick_parent(in, &p))
		return;
	name = pick_name(in);
	want = name_err(name);
	if (!want)
		want = dir_err(p);
	if (!want) {
		c = find_vis(p, name);
		if (c < 0)
			want = -ENOENT;
		else if (N(c)->type == M_DIR)
			want = -EISDIR;
	}
	TRACE("unlink '%s' in %llu", name, (unsigned long long)N(p)->ino);
	rc = tc_unlink(M.fx.eng, N(p)->ino, name);
	FZ_EQ(rc, want, "unlink");
	if (rc)
		return;
	dir_del(p, name);
	maybe_die(c);
}

/* mkdir, mknod and symlink: @type's node named @name in @p. */
static void op_make(struct fz_in *in, int kind)
{
	static const mode_t modes[] = { S_IFDIR, S_IFIFO, S_IFSOCK, S_IFREG,
					S_IFCHR, S_IFBLK, 0,	   S_IFLNK };
	char target[4100];
	struct tc_attr a;
	const char *name;
	mode_t mode;
	dev_t rdev = 0;
	int p, want = 0, rc, i;
	enum mtype type;

	if (!pick_parent(in, &p))
		return;
	name = pick_name(in);
	if (kind < 0) { /* symlink */
		uint8_t c = fz_u8(in);
		size_t tl = c < 250 ? 1 + c % 8 : (c & 1 ? 4095 : 4096);

		if (c == 250)
			tl = 0;
		memset(target, 't', tl);
		target[tl] = '\0';
		if (tl)
			target[0] = (char)('0' + c % 10);
		if (tl == 0)
			want = -ENOENT;
		else if (tl >= 4096)
			want = -ENAMETOOLONG;
		type = M_LNK;
		mode = S_IFLNK;
	} else {
		mode = modes[kind % 8] | 0644;
		switch (mode & S_IFMT) {
		case S_IFDIR:
			type = M_DIR;
			break;
		case S_IFREG:
			type = M_REG;
			break;
		case S_IFCHR:
		case S_IFBLK:
			/* Numbers from the name, so no input byte is spent
			 * (the corpus keeps its meaning). */
			type = S_ISCHR(mode) ? M_CHR : M_BLK;
			rdev = makedev(1 + (unsigned char)name[0] % 250,
				       (unsigned)strlen(name) * 4099);
			break;
		case S_IFIFO:
			type = M_FIFO;
			break;
		case S_IFSOCK:
			type = M_SOCK;
			break;
		default:
			want = -EINVAL;
			type = M_FIFO;
			break;
		}
	}
	if (!want)
		want = name_err(name);
	if (!want)
		want = dir_err(p);
	if (!want && find_vis(p, name) >= 0)
		want = -EEXIST;
	TRACE("%s '%s' in %llu (mode %o)", kind < 0 ? "symlink" : "mknod",
	      name, (unsigned long long)N(p)->ino, (unsigned)mode);
	if (kind < 0)
		rc = tc_symlink(M.fx.eng, N(p)->ino, name, target, &M.fx.ctx,
				&a);
	else
		rc = tc_mknod(M.fx.eng, N(p)->ino, name, mode, rdev, &M.fx.ctx,
			      &a);
	FZ_CHECK(rc == want, "%s '%s' mode %o: %d (%s), model %d (%s)",
		 kind < 0 ? "symlink" : "mknod", name, (unsigned)mode, rc,
		 strerror(-rc), want, strerror(-want));
	if (rc)
		return;
	i = node_new(type, a.st.st_ino);
	N(i)->rdev = rdev;
	if (type == M_DIR && (N(p)->perm & S_ISGID))
		N(i)->perm |= S_ISGID; /* a new directory inherits it */
	if (type == M_LNK) {
		N(i)->target = strdup(target);
		FZ_CHECK(N(i)->target != NULL, "out of memory");
	}
	dir_add(p, name, i);
	inherit(i, p);
	resolve(i);
	check_attr(i, &a, "mknod");
	tc_forget(M.fx.eng, a.st.st_ino, 1);
}

static void op_rmdir(struct fz_in *in)
{
	const char *name;
	int p, want, rc, c = -1;
	uint8_t dots;

	if (!pick_parent(in, &p))
		return;
	dots = fz_u8(in);
	name = dots == 1 ? "." : dots == 2 ? ".." : pick_name(in);
	if (!strcmp(name, "."))
		want = -EINVAL;
	else if (!strcmp(name, ".."))
		want = -ENOTEMPTY;
	else
		want = name_err(name);
	if (!want)
		want = dir_err(p);
	if (!want) {
		c = find_vis(p, name);
		if (c < 0)
			want = -ENOENT;
		else if (N(c)->type != M_DIR)
			want = -ENOTDIR;
		else if (N(c)->nents)
			want = -ENOTEMPTY;
	}
	TRACE("rmdir '%s' in %llu", name, (unsigned long long)N(p)->ino);
	rc = tc_rmdir(M.fx.eng, N(p)->ino, name);
	FZ_EQ(rc, want, "rmdir");
	if (rc)
		return;
	dir_del(p, name);
	maybe_die(c);
}

static void op_link(struct fz_in *in)
{
	struct tc_attr a;
	const char *name;
	struct loc l;
	int p, want, rc;

	if (!pick_entry(in, &l) || !pick_parent(in, &p))
		return;
	name = pick_name(in);
	want = name_err(name);
	if (!want)
		want = dir_err(p);
	if (!want && N(l.node)->dead)
		want = -ENOENT;
	if (!want && N(l.node)->type == M_DIR)
		want = -EPERM;
	if (!want && !N(l.node)->links)
		want = -ENOENT;
	if (!want && find_vis(p, name) >= 0)
		want = -EEXIST;
	TRACE("link %llu as '%s' in %llu", (unsigned long long)N(l.node)->ino,
	      name, (unsigned long long)N(p)->ino);
	rc = tc_link(M.fx.eng, N(l.node)->ino, N(p)->ino, name, &a);
	FZ_EQ(rc, want, "link");
	if (rc)
		return;
	dir_add(p, name, l.node);
	check_attr(l.node, &a, "link");
	tc_forget(M.fx.eng, a.st.st_ino, 1);
}

/* Predict and apply a rename (renameat2 semantics, the engine's order). */
static int model_rename(int sp, const char *sn, int dp, const char *dn,
			unsigned flags)
{
	int src, dst, rc;

	if (flags & ~3u || flags == 3)
		return -EINVAL;
	rc = name_err(sn);
	if (!rc)
		rc = name_err(dn);
	if (!rc)
		rc = dir_err(sp);
	if (!rc)
		rc = dir_err(dp);
	if (rc)
		return rc;
	src = find_vis(sp, sn);
	if (src < 0)
		return -ENOENT;
	dst = find_vis(dp, dn);
	if (dst == src)
		return 0; /* two names of one inode: nothing to do */
	if (N(src)->type == M_DIR && sp != dp && is_ancestor(src, dp))
		return -EINVAL;
	if (flags & TC_RENAME_EXCHANGE) {
		if (dst < 0)
			return -ENOENT;
		if (N(dst)->type == M_DIR && sp != dp && is_ancestor(dst, sp))
			return -EINVAL;
		dir_del(sp, sn);
		dir_del(dp, dn);
		dir_add(sp, sn, dst);
		dir_add(dp, dn, src);
		return 0;
	}
	if (dst >= 0) {
		if (flags & TC_RENAME_NOREPLACE)
			return -EEXIST;
		if (N(src)->type == M_DIR && N(dst)->type != M_DIR)
			return -ENOTDIR;
		if (N(src)->type != M_DIR && N(dst)->type == M_DIR)
			return -EISDIR;
		if (N(dst)->type == M_DIR && N(dst)->nents)
			return -ENOTEMPTY;
		dir_del(dp, dn);
		maybe_die(dst);
	}
	dir_del(sp, sn);
	dir_add(dp, dn, src);
	return 0;
}

static void op_rename(struct fz_in *in)
{
	static const unsigned flag_sets[] = {
		0, 0, 0, TC_RENAME_NOREPLACE, TC_RENAME_EXCHANGE,
		TC_RENAME_EXCHANGE, 3, 4,
	};
	const char *sn, *dn;
	unsigned flags;
	int sp, dp, want, rc;

	if (!pick_parent(in, &sp))
		return;
	sn = pick_name(in);
	if (!pick_parent(in, &dp))
		return;
	dn = pick_name(in);
	flags = flag_sets[fz_u8(in) % 8];
	TRACE("rename '%s' in %llu to '%s' in %llu flags %u", sn,
	      (unsigned long long)N(sp)->ino, dn,
	      (unsigned long long)N(dp)->ino, flags);
	want = model_rename(sp, sn, dp, dn, flags);
	rc = tc_rename(M.fx.eng, N(sp)->ino, sn, N(dp)->ino, dn, flags);
	FZ_CHECK(rc == want, "rename '%s' -> '%s' flags %u: %d (%s), model "
		 "%d (%s)", sn, dn, flags, rc, strerror(-rc), want,
		 strerror(-want));
}

static void op_readdir(struct fz_in *in)
{
	uint8_t c;
	int d;

	if (!pick_parent(in, &d))
		return;
	c = fz_u8(in);
	TRACE("readdir %llu%s by %u", (unsigned long long)N(d)->ino,
	      c & 1 ? " plus" : "", 1 + (c >> 1) % 4);
	check_readdir(d, c & 1, 1 + (c >> 1) % 4);
}

static void op_xattr(struct fz_in *in)
{
	static uint8_t big[TC_XATTR_SIZE_MAX + 1];
	uint8_t c = fz_u8(in), vc;
	struct tc_engine *eng = M.fx.eng;
	int k = (c >> 2) % NUX, flags = (c >> 4) & 3, want = 0, rc;
	struct loc l;
	struct mnode *m;
	size_t len;

	if (!pick_entry(in, &l))
		return;
	m = N(l.node);
	switch (c & 3) {
	case 0: /* set */
		vc = fz_u8(in);
		len = vc == 255 ? TC_XATTR_SIZE_MAX + 1 : vc;
		gen(big, len, fz_u8(in));
		if (len > TC_XATTR_SIZE_MAX)
			want = -E2BIG;
		else if (m->dead)
			want = -ENOENT;
		else if (m->ux[k] && (flags & 1))
			want = -EEXIST;
		else if (!m->ux[k] && (flags & 2))
			want = -ENODATA;
		TRACE("setxattr %llu %s %zu bytes flags %d",
		      (unsigned long long)m->ino, ux_names[k], len, flags);
		rc = tc_setxattr(eng, m->ino, ux_names[k], big, len, flags);
		FZ_EQ(rc, want, "setxattr");
		if (!rc) {
			m->ux[k] = true;
			m->uxv[k].len = 0;
			fz_buf_write(&m->uxv[k], 0, big, len);
		}
		break;
	case 1: /* remove */
		want = m->dead ? -ENOENT : m->ux[k] ? 0 : -ENODATA;
		TRACE("removexattr %llu %s", (unsigned long long)m->ino,
		      ux_names[k]);
		rc = tc_removexattr(eng, m->ino, ux_names[k]);
		FZ_EQ(rc, want, "removexattr");
		if (!rc) {
			m->ux[k] = false;
			fz_buf_free(&m->uxv[k]);
		}
		break;
	default: /* get, list */
		TRACE("getxattr/listxattr %llu", (unsigned long long)m->ino);
		break;
	}
	check_xattrs(l.node);
}

static void op_getattr(struct fz_in *in)
{
	struct loc l;

	if (!pick_entry(in, &l))
		return;
	TRACE("getattr %llu", (unsigned long long)N(l.node)->ino);
	check_getattr(l.node);
}

static void op_readlink(struct fz_in *in)
{
	char buf[4200];
	struct loc l;
	size_t size;
	int want = 0, rc;
	uint8_t c;

	if (!pick_entry(in, &l))
		return;
	c = fz_u8(in);
	size = c & 1 ? sizeof(buf) : c % 8; /* small: ERANGE */
	if (N(l.node)->dead)
		want = -ENOENT;
	else if (N(l.node)->type != M_LNK)
		want = -EINVAL;
	else if (strlen(N(l.node)->target) + 1 > size)
		want = -ERANGE;
	TRACE("readlink %llu size %zu", (unsigned long long)N(l.node)->ino,
	      size);
	rc = tc_readlink(M.fx.eng, N(l.node)->ino, buf, size);
	FZ_EQ(rc, want, "readlink");
	if (!rc)
		FZ_CHECK(!strcmp(buf, N(l.node)->target), "readlink: '%s'",
			 buf);
}

static void hold_drop(int s)
{
	struct hold *h = &M.hold[s];

	if (h->node >= 0 && h->ref) {
		TRACE("forget hold %d (inode %llu)", s,
		      (unsigned long long)N(h->node)->ino);
		tc_forget(M.fx.eng, N(h->node)->ino, 1);
		N(h->node)->refs--;
		maybe_die(h->node);
	}
	h->ref = false;
}

static void op_hold(struct fz_in *in)
{
	struct tc_attr a;
	struct loc l;
	int s, rc;

	if (!pick_entry(in, &l) || l.parent < 0)
		return;
	s = fz_u8(in) % NHOLD;
	hold_drop(s);
	TRACE("hold %llu in slot %d", (unsigned long long)N(l.node)->ino, s);
	rc = tc_lookup(M.fx.eng, N(l.parent)->ino, l.name, &a);
	FZ_EQ(rc, 0, "lookup to hold");
	M.hold[s] = (struct hold){ l.node, true };
	N(l.node)->refs++;
}

static void op_forget(struct fz_in *in)
{
	hold_drop(fz_u8(in) % NHOLD);
}

/* Close the engine (it publishes everything) and check the store offline:
 * tc_check() must find it sound. */
static void close_and_check(void)
{
	struct tc_check_report rep;
	int rc;

	TRACE("close, check");
	M.fail_armed = 0; /* close publishes, ignoring errors */
	fz_eng_close(&M.fx);
	for (int s = 0; s < NHANDLE; s++)
		M.h[s].f = NULL;
	for (int s = 0; s < NHOLD; s++)
		M.hold[s].ref = false;
	for (size_t i = 0; i < M.nn; i++) {
		struct mnode *m = N(i);

		if (m->dead)
			continue;
		if (m->dirty)
			publish((int)i);
		m->nopen = m->nwriters = m->refs = 0;
		maybe_die((int)i);
	}
	memset(&rep, 0, sizeof(rep));
	rc = tc_check(M.fx.store, false, NULL, &rep, NULL, NULL);
	/* A clean close leaves no temporary or pending files either (those
	 * are a crash's leftovers, which tc_check() tolerates). */
	FZ_CHECK(rc == 0 && rep.temp_files == 0 && rep.pending_blobs == 0,
		 "tc_check after close: %d: missing %" PRIu64
		 " corrupt %" PRIu64 " orphans %" PRIu64 " refcount %" PRIu64
		 " counters %" PRIu64 " temp %" PRIu64 " pending %" PRIu64, rc,
		 rep.missing_blobs, rep.corrupt_blobs, rep.orphan_blobs,
		 rep.refcount_drift, rep.counter_drift, rep.temp_files,
		 rep.pending_blobs);
}

/* ... then reopen it: everything published must be there. */
static void reopen(void)
{
	close_and_check();
	TRACE("reopen");
	fz_eng_open(&M.fx);
	verify_all();
}

static void op_reopen(struct fz_in *in)
{
	if (fz_u8(in) % 4 == 0)
		reopen();
}

/* Every linked file past its deadline loses its names (the sweep). */
static void sweep(void)
{
	for (size_t i = 0; i < M.nn; i++)
		if (!N(i)->dead && N(i)->links && expired((int)i))
			drop_all((int)i);
}

/* The clock moves on (lifetimes; ram_ttl is 1 h), and maintenance runs. */
static void op_maintain(struct fz_in *in)
{
	static const int64_t steps[] = { 0, 1, 2, 30, 61, 600, 7200, 86400 };
	uint8_t c = fz_u8(in);
	int64_t step = steps[c & 7] * 1000000000;

	M.fx.now += step;
	TRACE("clock +%" PRId64 " s%s", step / 1000000000,
	      c & 8 ? ", maintain" : "");
	if (!(c & 8))
		return;
	FZ_EQ(tc_engine_maintain(M.fx.eng), 0, "maintain");
	sweep();
}

/* user.tiercache.ttl and ttl_mode of an entry: set or removed. */
static void op_ttl(struct fz_in *in)
{
	static const char *const vals[] = { "1", "60", "1h", "none" };
	uint8_t c = fz_u8(in);
	struct loc l;
	struct mnode *m;
	bool mode = c & 4, rm = c & 8, regdir;
	const char *name = mode ? TC_XATTR_PREFIX "ttl_mode"
				: TC_XATTR_PREFIX "ttl";
	const char *v = mode ? (c & 1 ? "sliding" : "absolute") : vals[c & 3];
	int want = 0, rc;

	if (!pick_entry(in, &l))
		return;
	m = N(l.node);
	regdir = m->type == M_REG || m->type == M_DIR;
	if (m->dead)
		want = -ENOENT;
	else if (rm && (!regdir || (mode ? m->tmode : m->ttl) < 0))
		want = -ENODATA;
	else if (!rm && !regdir)
		want = -EPERM;
	TRACE("%s %s%s%s on %llu", rm ? "remove" : "set", name, rm ? "" : "=",
	      rm ? "" : v, (unsigned long long)m->ino);
	if (rm)
		rc = tc_removexattr(M.fx.eng, m->ino, name);
	else
		rc = tc_setxattr(M.fx.eng, m->ino, name, v, strlen(v), 0);
	FZ_EQ(rc, want, "ttl attribute");
	if (rc)
		return;
	if (mode)
		m->tmode = rm ? -1 : (c & 1 ? TC_TTL_SLIDING : TC_TTL_ABSOLUTE);
	else if (rm || (c & 3) == 3)
		m->ttl = -1; /* "none" removes it */
	else
		m->ttl = ((c & 3) == 0 ? 1 : (c & 3) == 1 ? 60 : 3600) *
			 INT64_C(1000000000);
	resolve(l.node);
	check_xattrs(l.node);
}

static void op_control(struct fz_in *in)
{
	uint8_t c = fz_u8(in) % 3;
	bool disk = c == 1;
	const char *v = disk ? "disk" : "ram";
	int rc;

	if (c == 2) {
		TRACE("expire");
		rc = tc_setxattr(M.fx.eng, TC_ROOT_INO,
				 TC_XATTR_PREFIX "expire", "", 0, 0);
		FZ_EQ(rc, 0, "expire");
		sweep();
		return;
	}
	TRACE("flush=%s", v);
	rc = tc_setxattr(M.fx.eng, TC_ROOT_INO, TC_XATTR_PREFIX "flush", v,
			 strlen(v), 0);
	FZ_EQ(rc, 0, "flush");
	if (!disk)
		return;
	/* Every entry but directories loses all its names. */
	for (size_t d = 0; d < M.nn; d++) {
		struct mnode *m = N(d);

		if (m->dead || m->type != M_DIR)
			continue;
		for (size_t k = 0; k < m->nents;) {
			int e = m->ents[k].child;

			if (N(e)->type == M_DIR) {
				k++;
				continue;
			}
			dir_del((int)d, m->ents[k].name);
			maybe_die(e);
		}
	}
}

static void op_arm(struct fz_in *in)
{
	M.fail_armed = 1 + (fz_u8(in) & 1);
	TRACE("the next %u blob writes fail with ENOSPC", M.fail_armed);
}

static void op_chmod(struct fz_in *in)
{
	static const mode_t modes[] = { 0600, 0644, 0755, 02755,
					04755, 01777, 0,    07777 };
	mode_t mode = modes[fz_u8(in) % 8];
	struct tc_attr a;
	struct stat st;
	struct loc l;
	int rc;

	if (!pick_entry(in, &l))
		return;
	TRACE("chmod %llu %o", (unsigned long long)N(l.node)->ino,
	      (unsigned)mode);
	memset(&st, 0, sizeof(st));
	st.st_mode = mode;
	rc = tc_setattr(M.fx.eng, N(l.node)->ino, &st, TC_SET_MODE, NULL, &a);
	FZ_EQ(rc, N(l.node)->dead ? -ENOENT : 0, "chmod");
	if (rc)
		return;
	N(l.node)->perm = mode;
	check_attr(l.node, &a, "chmod");
}

static void op_verify(struct fz_in *in)
{
	(void)in;
	TRACE("verify all");
	verify_all();
}

/* ------------------------------------------------------------------ */
/* Driver                                                             */
/* ------------------------------------------------------------------ */

static void op_mkdir(struct fz_in *in)
{
	op_make(in, 0);
}

static void op_mknod(struct fz_in *in)
{
	uint8_t c = fz_u8(in);

	op_make(in, c % 9 == 8 ? -1 : c % 8);
}

typedef void (*op_fn)(struct fz_in *in);

/* Opcode byte -> operation; common operations appear several times. */
static const op_fn ops[] = {
	op_create,  op_create,	 op_create,  op_open,	 op_open,
	op_open,    op_write,	 op_write,   op_write,	 op_write,
	op_write,   op_read,	 op_read,    op_read,	 op_truncate,
	op_truncate, op_flush,	 op_fsync,   op_release, op_release,
	op_unlink,  op_rename,	 op_rename,  op_link,	 op_mkdir,
	op_mkdir,   op_rmdir,	 op_readdir, op_xattr,	 op_xattr,
	op_getattr, op_hold,	 op_forget,  op_mknod,	 op_readlink,
	op_reopen,  op_maintain, op_control, op_verify, op_arm,
	op_chmod,   op_ttl,	 op_ttl,     op_maintain, op_fallocate,
};

static void model_free(void)
{
	for (size_t i = 0; i < M.nn; i++)
		node_free_data(N(i));
	free(M.n);
	M.n = NULL;
	M.nn = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *t = getenv("TC_FUZZ_TRACE");

	(void)argc;
	(void)argv;
	M.trace = t && *t && strcmp(t, "0");
	memset(long255, 'n', 255);
	memset(long256, 'n', 256);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t inline_sizes[] = { 0, 64 << 10, 100, 4096 };
	static const int64_t mount_ttls[] = { 0, 0, INT64_C(60) * 1000000000,
					      INT64_C(3600) * 1000000000 };
	struct fz_in in = { data, size };
	uint8_t cfgbyte;
	int root;

	memset(M.h, 0, sizeof(M.h));
	for (int s = 0; s < NHOLD; s++)
		M.hold[s] = (struct hold){ -1, false };
	M.model_bytes = 0;
	M.op_no = 0;
	fz_eng_init(&M.fx, "engine");
	/* The first byte picks where contents live: all in blob files (the
	 * only ones the injected faults reach), inline up to the default
	 * 64 KiB, or up to a small size, so both kinds mix. */
	cfgbyte = fz_u8(&in);
	M.fx.cfg.inline_max = inline_sizes[cfgbyte & 3];
	/* ... and the mount's ttl= (none, 60 s, 1 h) and ttl_mode=. */
	M.mount_ttl = mount_ttls[(cfgbyte >> 2) & 3];
	M.mount_mode = cfgbyte & 16 ? TC_TTL_SLIDING : TC_TTL_ABSOLUTE;
	M.fx.cfg.ttl_ns = M.mount_ttl;
	M.fx.cfg.ttl_mode = (enum tc_ttl_mode)M.mount_mode;
	M.fx.cfg.ram_size = 64 << 10;
	M.fx.cfg.ram_items = 8;
	M.fx.cfg.max_ram_item = 16 << 10;
	/* Small chunks: contents beyond 4 KiB are in chunks, so chunk
	 * boundaries, copy-on-write and sharing are exercised. */
	M.fx.cfg.chunk_size = 4096;
	M.fx.cfg.disk_size = DISK_SIZE;
	M.fx.cfg.blob_ops = &fz_blob_ops;
	M.fail_armed = M.fail_fired = 0;
	M.fx.faults = &M.fail_fired;
	fz_eng_open(&M.fx);
	root = node_new(M_DIR, TC_ROOT_INO);
	N(root)->perm = 0755;

	while (fz_more(&in)) {
		op_fn fn = ops[fz_u8(&in) % (sizeof(ops) / sizeof(ops[0]))];
		unsigned fired = M.fail_fired;

		M.op_no++;
		M.fx.faults_before = fired;
		fn(&in);
		/* Only writing operations may write blobs. */
		FZ_CHECK(M.fail_fired == fired || fn == op_write ||
				 fn == op_truncate || fn == op_flush ||
				 fn == op_fsync || fn == op_release ||
				 fn == op_create || fn == op_open,
			 "a blob write failed during a reading operation");
		check_statfs();
	}
	M.fail_armed = 0;
	verify_all();
	close_and_check();
	fz_eng_destroy(&M.fx);
	model_free();
	return 0;
}
