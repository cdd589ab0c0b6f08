/* SPDX-License-Identifier: MIT */
/*
 * The engine: opening a store, the node table, the namespace operations and
 * content I/O with publishing. Policy (lifetimes, tags, schema, limits,
 * cache-control xattrs) lives in policy.c, the tiers in ram.c and blob.c,
 * SQLite in index.c.
 *
 * Nodes. An inode the kernel knows (lookup references) or that has open
 * handles is a struct tc_node in a hash table keyed by inode number. It
 * caches the index row (node->meta) so getattr and open of a known inode do
 * not touch SQLite, carries the shared dirty state of writers and the
 * loaded content of readers. A node leaves the table when the kernel has
 * forgotten it, no handle is open and no thread pins it; if its link count
 * is zero by then, its row and its blob reference go too (unlinked-but-open
 * files, passthrough_ll's refcount mirroring the kernel's lookup count).
 *
 * Writes. The first write to a node creates its dirty state (a copy of the
 * current content, in memory while small, spilled to a temporary file in
 * the store when large). Every handle reads through it. Publishing hashes
 * the content (incrementally while writes are sequential), stores the blob
 * (a spilled file is renamed into place, so a large write touches the disk
 * once) and commits one transaction that points the inode at it and moves
 * blob reference counts. A crash before the commit leaves the old content;
 * after it, the new.
 *
 * Reads. A get (open for reading) pins the content: a RAM item (a hit, or
 * promoted from its blob after verifying the hash) or, for items larger
 * than max_ram_item, the blob file's descriptor. Reads copy from the pinned
 * content without any engine lock.
 *
 * Lock order and ownership: see engine_i.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine_i.h"

/*
 * Dirty content stays in memory up to this size, then moves to a temporary
 * file in the store: bounds the RAM one writer can hold, while small values
 * (the common case for a cache) never touch the disk before publishing.
 */
#define DIRTY_SPILL (UINT64_C(1) << 20)

/* Access times are written to the index in batches of this many, or at the
 * next maintenance round (about a second), whichever comes first. */
#define ATIME_BATCH 4096

/* A second miss of the same name this soon after the first is the kernel
 * retrying its own lookup, not a program asking again. */
#define MISS_REPEAT_NS INT64_C(10000000)

/* Reads of one entry closer together than this record one access. */
#define ACCESS_GRANULARITY_NS INT64_C(1000000000)

/* Longest path SQLite's unix VFS opens (its MAX_PATHNAME). */
#define STORE_PATH_MAX 512

/* Interval of the background maintenance thread. */
#define MAINTAIN_INTERVAL_NS INT64_C(1000000000)

static _Thread_local char last_error[8192];

const char *tc_engine_last_error(void)
{
	return last_error;
}

static void set_last_error(struct tc_engine *eng, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_last_error(struct tc_engine *eng, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	tc_err(eng, "%s", last_error);
}

void tc_log(struct tc_engine *eng, int level, const char *fmt, ...)
{
	va_list ap;

	if (!eng->log_fn || level > eng->log_level)
		return;
	va_start(ap, fmt);
	eng->log_fn(eng->log_ctx, level, fmt, ap);
	va_end(ap);
}

int64_t tc_now(struct tc_engine *eng)
{
	struct timespec ts;

	if (eng->clock)
		return eng->clock(eng->clock_ctx);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void tc_config_init(struct tc_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ram_size = UINT64_C(256) << 20;
	cfg->ram_ttl_ns = INT64_C(3600) * 1000000000;
	cfg->max_ram_item = UINT64_C(16) << 20;
	cfg->disk_size = UINT64_C(10) << 30;
	cfg->ttl_mode = TC_TTL_ABSOLUTE;
	cfg->sync = TC_SYNC_FSYNC;
	cfg->inline_max = UINT64_C(64) << 10;
	cfg->background = true;
	cfg->log_level = TC_LOG_INFO;
}

/* ------------------------------------------------------------------ */
/* Invalidation                                                       */
/* ------------------------------------------------------------------ */

void tc_inval_add(struct tc_inval_list *l, uint64_t parent, const char *name,
		  size_t len, uint64_t ino)
{
	struct tc_inval *v;
	char *copy;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return; /* the kernel's entry times out instead */
		l->v = v;
		l->cap = cap;
	}
	copy = strndup(name, len);
	if (!copy)
		return;
	l->v[l->n++] = (struct tc_inval){ parent, ino, copy };
}

void tc_inval_deliver(struct tc_engine *eng, struct tc_inval_list *l)
{
	tc_inval_fn fn;
	void *ctx;

	pthread_mutex_lock(&eng->inval_lock);
	fn = eng->inval_fn;
	ctx = eng->inval_ctx;
	pthread_mutex_unlock(&eng->inval_lock);
	for (size_t i = 0; i < l->n; i++) {
		if (fn)
			fn(ctx, l->v[i].parent, l->v[i].name, l->v[i].ino);
		free(l->v[i].name);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void tc_engine_set_inval(struct tc_engine *eng, tc_inval_fn fn, void *ctx)
{
	pthread_mutex_lock(&eng->inval_lock);
	eng->inval_fn = fn;
	eng->inval_ctx = ctx;
	pthread_mutex_unlock(&eng->inval_lock);
}

/* ------------------------------------------------------------------ */
/* Nodes                                                              */
/* ------------------------------------------------------------------ */

static size_t node_bucket(const struct tc_engine *eng, uint64_t ino)
{
	return (size_t)((ino * UINT64_C(0x9E3779B97F4A7C15)) >> 20) &
	       (eng->nbuckets - 1);
}

struct tc_node *tc_node_find_locked(struct tc_engine *eng, uint64_t ino)
{
	struct tc_node *n = eng->nodes[node_bucket(eng, ino)];

	while (n && n->ino != ino)
		n = n->hnext;
	return n;
}

static void node_table_grow_locked(struct tc_engine *eng)
{
	size_t old = eng->nbuckets, nb = old * 2;
	struct tc_node **b = calloc(nb, sizeof(*b)), **ob = eng->nodes;

	if (!b)
		return;
	eng->nodes = b;
	eng->nbuckets = nb;
	for (size_t i = 0; i < old; i++) {
		struct tc_node *n = ob[i], *next;
		for (; n; n = next) {
			size_t k = node_bucket(eng, n->ino);
			next = n->hnext;
			n->hnext = b[k];
			b[k] = n;
		}
	}
	free(ob);
}

/* Pinned node for @ino, loading its row when not in the table. */
static int node_get_locked(struct tc_engine *eng, uint64_t ino,
			   struct tc_node **out)
{
	struct tc_node *n = tc_node_find_locked(eng, ino);
	size_t b;
	int rc;

	if (n) {
		n->pins++;
		*out = n;
		return 0;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	rc = tc_inode_get_locked(eng, ino, &n->meta);
	if (rc) {
		free(n);
		return rc;
	}
	n->ino = ino;
	n->pins = 1;
	pthread_mutex_init(&n->lock, NULL);
	if (eng->nnodes >= eng->nbuckets)
		node_table_grow_locked(eng);
	b = node_bucket(eng, ino);
	n->hnext = eng->nodes[b];
	eng->nodes[b] = n;
	eng->nnodes++;
	*out = n;
	return 0;
}

static void content_unref(struct tc_content *c)
{
	if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	tc_ram_unref(c->ram);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void dirty_free(struct tc_engine *eng, struct tc_dirty *d)
{
	if (!d)
		return;
	if (d->fd >= 0)
		tc_blob_tmp_discard(&eng->blobs, d->fd, d->tmpname);
	free(d->buf);
	if (d->hstate)
		XXH3_freeState(d->hstate);
	free(d);
}

/* Remove the row of an inode that has no links left and drop its blob. */
/* Delete the row of inode @m with its xattrs and tags and drop its blob
 * reference, inside the caller's transaction. */
static int purge_inode_locked(struct tc_engine *eng, const struct tc_inode *m)
{
	int rc = tc_exec_ino_locked(eng, ST_INODE_DELETE, m->ino);

	if (!rc)
		rc = tc_exec_ino_locked(eng, ST_XATTR_DELETE_INO, m->ino);
	if (!rc)
		rc = tc_exec_ino_locked(eng, ST_TAG_DELETE_INO, m->ino);
	if (!rc && m->hash_set)
		rc = tc_blob_unref_locked(eng, m->hash);
	return rc;
}

static int inode_destroy_locked(struct tc_engine *eng, struct tc_inode *m)
{
	int rc = tc_index_begin_locked(eng);

	if (rc)
		return rc;
	rc = purge_inode_locked(eng, m);
	if (!rc)
		rc = tc_index_commit_locked(eng, false);
	else
		tc_index_rollback_locked(eng);
	return rc;
}

/* Free @n when nothing holds it any more. */
static void node_maybe_free_locked(struct tc_engine *eng, struct tc_node *n)
{
	struct tc_node **pp;

	if (n->nlookup || n->nopen || n->pins || n->dirty)
		return;
	/* The row must carry the batched recency (and a sliding deadline)
	 * before the node, which is fresher than the row, goes away. */
	if (n->atime_pending) {
		if (sqlite3_get_autocommit(eng->db))
			(void)!tc_flush_atimes_locked(eng);
		else
			(void)!tc_apply_atimes_locked(eng);
		n->atime_pending = false;
	}
	pp = &eng->nodes[node_bucket(eng, n->ino)];
	while (*pp != n)
		pp = &(*pp)->hnext;
	*pp = n->hnext;
	eng->nnodes--;
	if (n->meta.nlink == 0 && n->ino != TC_ROOT_INO)
		(void)!inode_destroy_locked(eng, &n->meta);
	content_unref(n->content);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

void tc_node_unpin_locked(struct tc_engine *eng, struct tc_node *n)
{
	n->pins--;
	node_maybe_free_locked(eng, n);
}

static void node_unpin(struct tc_engine *eng, struct tc_node *n)
{
	pthread_mutex_lock(&eng->lock);
	tc_node_unpin_locked(eng, n);
	pthread_mutex_unlock(&eng->lock);
}

static void ns_to_ts(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
	if (ts->tv_nsec < 0) {
		ts->tv_sec--;
		ts->tv_nsec += 1000000000;
	}
}

static void fill_attr(struct tc_engine *eng, const struct tc_inode *m,
		      struct tc_attr *out)
{
	struct stat *st = &out->st;
	int64_t now;

	memset(out, 0, sizeof(*out));
	st->st_ino = m->ino;
	st->st_mode = m->mode;
	st->st_nlink = m->nlink;
	st->st_uid = m->uid;
	st->st_gid = m->gid;
	st->st_rdev = m->rdev;
	st->st_size = (off_t)m->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((m->size + 511) / 512);
	ns_to_ts(m->atime, &st->st_atim);
	ns_to_ts(m->mtime, &st->st_mtim);
	ns_to_ts(m->ctime, &st->st_ctim);
	out->valid_ns = INT64_MAX;
	if (m->expires > 0) {
		now = tc_now(eng);
		out->valid_ns = m->expires > now ? m->expires - now : 0;
	}
}

/* Attributes of a pinned node, with the size and mtime of unpublished
 * writes. Takes node->lock, so eng->lock must not be held. */
static void node_attr(struct tc_engine *eng, struct tc_node *n,
		      struct tc_attr *out)
{
	struct tc_inode m;

	pthread_mutex_lock(&eng->lock);
	m = n->meta;
	pthread_mutex_unlock(&eng->lock);
	pthread_mutex_lock(&n->lock);
	if (n->dirty) {
		m.size = n->dirty->size;
		m.mtime = m.ctime = n->dirty->mtime;
	}
	pthread_mutex_unlock(&n->lock);
	fill_attr(eng, &m, out);
}

/* ------------------------------------------------------------------ */
/* Opening and closing a store                                        */
/* ------------------------------------------------------------------ */

/* mkdir -p, the last component with mode 0700. */
static int make_store_dir(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static int copy_rules(struct tc_engine *eng, const struct tc_config *cfg)
{
	if (!cfg->n_tag_rules)
		return 0;
	eng->rules = calloc(cfg->n_tag_rules, sizeof(*eng->rules));
	if (!eng->rules)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_tag_rules; i++) {
		eng->rules[i].tag = strdup(cfg->tag_rules[i].tag);
		if (!eng->rules[i].tag)
			return -ENOMEM;
		eng->rules[i].ttl_ns = cfg->tag_rules[i].ttl_ns;
		eng->rules[i].ram_ttl_ns = cfg->tag_rules[i].ram_ttl_ns;
		eng->n_rules++;
	}
	return 0;
}

/* Delete blob files whose publish a crash cut short (see publish()). */
static int reclaim_pending_locked(struct tc_engine *eng)
{
	sqlite3_stmt *st = tc_stmt_locked(eng, ST_PENDING_LIST);
	uint8_t (*v)[TC_HASH_LEN] = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	while (sqlite3_step(st) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != TC_HASH_LEN)
			continue;
		if (n == cap) {
			void *nv;
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		memcpy(v[n++], sqlite3_column_blob(st, 0), TC_HASH_LEN);
	}
	sqlite3_reset(st);
	for (size_t i = 0; !rc && i < n; i++) {
		if (!tc_blob_known_locked(eng, v[i]))
			(void)tc_blob_unlink(&eng->blobs, v[i]);
		st = tc_stmt_locked(eng, ST_PENDING_DEL);
		sqlite3_bind_blob(st, 1, v[i], TC_HASH_LEN, SQLITE_STATIC);
		rc = tc_step_done(eng, st);
	}
	free(v);
	return rc;
}

/* Drop inodes a crash left without links (unlinked while open). */
static int drop_orphans_locked(struct tc_engine *eng)
{
	uint64_t *inos;
	size_t n;
	int rc;

	rc = tc_collect_inos_locked(eng, tc_stmt_locked(eng, ST_ORPHANS), &inos,
				    &n);
	for (size_t i = 0; !rc && i < n; i++) {
		struct tc_inode m;
		if (tc_inode_get_locked(eng, inos[i], &m) == 0)
			rc = inode_destroy_locked(eng, &m);
	}
	free(inos);
	return rc;
}

static void *maintain_thread(void *arg);

static int open_store(struct tc_engine *eng, const struct tc_config *cfg)
{
	int rc;

	/* SQLite's unix VFS handles paths of at most 512 bytes. */
	if (strlen(cfg->store) + sizeof("/index.db-wal") > STORE_PATH_MAX) {
		set_last_error(eng,
			       "store path too long (%zu bytes; the index "
			       "needs it under %zu)",
			       strlen(cfg->store),
			       STORE_PATH_MAX - sizeof("/index.db-wal") + 1);
		return -ENAMETOOLONG;
	}
	rc = make_store_dir(cfg->store);
	if (rc) {
		set_last_error(eng, "cannot create store %s: %s", cfg->store,
			       strerror(-rc));
		return rc;
	}
	eng->store_fd = open(cfg->store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (eng->store_fd < 0) {
		rc = -errno;
		set_last_error(eng, "cannot open store %s: %s", cfg->store,
			       strerror(-rc));
		return rc;
	}
	eng->lock_fd = openat(eng->store_fd, "lock",
			      O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (eng->lock_fd < 0) {
		rc = -errno;
		set_last_error(eng, "cannot write to store %s: %s",
			       cfg->store, strerror(-rc));
		return rc;
	}
	if (flock(eng->lock_fd, LOCK_EX | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		set_last_error(eng, "store %s is in use by another process",
			       cfg->store);
		return rc;
	}
	rc = tc_blob_store_open(&eng->blobs, eng->store_fd, cfg->blob_ops);
	if (rc) {
		set_last_error(eng, "cannot set up blob directories in %s: %s",
			       cfg->store, strerror(-rc));
		return rc;
	}
	tc_blob_clean_tmp(&eng->blobs);
	rc = tc_index_open(eng, true);
	if (rc == -EPROTONOSUPPORT) {
		set_last_error(eng,
			       "index of store %s has a newer format than "
			       "this tiercachefs supports",
			       cfg->store);
		return rc;
	}
	if (rc) {
		set_last_error(eng,
			       "index of store %s is corrupt or unreadable "
			       "(%s); run tiercachefs --check %s",
			       cfg->store,
			       eng->db ? sqlite3_errmsg(eng->db)
				       : strerror(-rc),
			       cfg->store);
		return rc == -ENOSPC || rc == -EACCES ? rc : -EPROTO;
	}
	rc = drop_orphans_locked(eng);
	if (!rc)
		rc = reclaim_pending_locked(eng);
	if (!rc) {
		/* Kept in meta when set: scanning every inode for them took
		 * seconds per mount at a million entries. */
		bool found;
		int64_t flags = tc_meta_get(eng->db, "dir_flags", 0, &found);
		if (!found) {
			sqlite3_stmt *st = tc_stmt_locked(eng,
							  ST_DIR_SCHEMA_ANY);
			if (sqlite3_step(st) == SQLITE_ROW)
				flags = (sqlite3_column_type(st, 0) !=
						 SQLITE_NULL
					 ? TC_DIR_SCHEMA
					 : 0) |
					(sqlite3_column_type(st, 1) !=
							 SQLITE_NULL
						 ? TC_DIR_TTL
						 : 0);
			sqlite3_reset(st);
			rc = tc_meta_set_locked(eng, "dir_flags", flags);
		}
		eng->any_dir_schema = flags & TC_DIR_SCHEMA;
		eng->any_dir_ttl = flags & TC_DIR_TTL;
	}
	if (rc)
		set_last_error(eng, "cannot clean store %s: %s", cfg->store,
			       strerror(-rc));
	return rc;
}

int tc_engine_open(const struct tc_config *cfg, struct tc_engine **out)
{
	struct tc_engine *eng;
	int rc;

	last_error[0] = '\0';
	if (!cfg || !cfg->store || !*cfg->store) {
		snprintf(last_error, sizeof(last_error), "no store given");
		return -EINVAL;
	}
	eng = calloc(1, sizeof(*eng));
	if (!eng)
		return -ENOMEM;
	eng->store_fd = eng->lock_fd = -1;
	eng->blobs.blobs_fd = eng->blobs.tmp_fd = -1;
	eng->log_fn = cfg->log_fn;
	eng->log_ctx = cfg->log_ctx;
	eng->log_level = cfg->log_level;
	eng->clock = cfg->clock;
	eng->clock_ctx = cfg->clock_ctx;
	eng->ram_size = cfg->ram_size;
	eng->ram_items = cfg->ram_items;
	eng->ram_ttl_ns = cfg->ram_ttl_ns;
	eng->max_ram_item = cfg->max_ram_item;
	eng->disk_size = cfg->disk_size;
	eng->disk_items = cfg->disk_items;
	eng->inline_max = cfg->inline_max;
	eng->ttl_ns = cfg->ttl_ns;
	eng->ttl_mode = cfg->ttl_mode;
	eng->sync = cfg->sync;
	pthread_mutex_init(&eng->lock, NULL);
	pthread_mutex_init(&eng->inval_lock, NULL);
	pthread_mutex_init(&eng->thread_lock, NULL);
	pthread_cond_init(&eng->thread_cond, NULL);
	eng->nbuckets = 1024;
	eng->nodes = calloc(eng->nbuckets, sizeof(*eng->nodes));
	eng->store = strdup(cfg->store);
	eng->schema = cfg->schema ? strdup(cfg->schema) : NULL;
	eng->atimes = calloc(ATIME_BATCH, sizeof(*eng->atimes));
	if (!eng->nodes || !eng->store || !eng->atimes ||
	    (cfg->schema && !eng->schema) || copy_rules(eng, cfg)) {
		rc = -ENOMEM;
		goto fail;
	}
	if (cfg->schema && !tc_schema_valid(cfg->schema, strlen(cfg->schema))) {
		set_last_error(eng, "invalid schema version '%s'", cfg->schema);
		rc = -EINVAL;
		goto fail;
	}
	rc = tc_ram_open(&eng->counters, &eng->ram);
	if (rc)
		goto fail;
	tc_ram_set_limits(eng->ram, cfg->ram_size, cfg->ram_items,
			  cfg->max_ram_item, cfg->ram_ttl_ns);
	eng->started_ns = tc_now(eng);
	pthread_mutex_lock(&eng->lock);
	rc = open_store(eng, cfg);
	pthread_mutex_unlock(&eng->lock);
	if (rc)
		goto fail;
	if (cfg->background) {
		rc = -pthread_create(&eng->thread, NULL, maintain_thread, eng);
		if (rc)
			goto fail;
		eng->thread_running = true;
	}
	*out = eng;
	return 0;
fail:
	tc_engine_close(eng);
	return rc;
}

static int publish(struct tc_engine *eng, struct tc_node *n, bool durable);

void tc_engine_close(struct tc_engine *eng)
{
	if (!eng)
		return;
	if (eng->thread_running) {
		pthread_mutex_lock(&eng->thread_lock);
		eng->thread_stop = true;
		pthread_cond_signal(&eng->thread_cond);
		pthread_mutex_unlock(&eng->thread_lock);
		pthread_join(eng->thread, NULL);
	}
	/* Handles the daemon never released (unmounted with files open). */
	while (eng->files) {
		struct tc_file *f = eng->files;
		eng->files = f->next;
		free(f);
	}
	/* Publish what is still dirty and free every node. */
	for (size_t b = 0; eng->nodes && b < eng->nbuckets; b++) {
		while (eng->nodes[b]) {
			struct tc_node *n = eng->nodes[b];
			pthread_mutex_lock(&n->lock);
			if (n->dirty)
				(void)!publish(eng, n, false);
			dirty_free(eng, n->dirty);
			n->dirty = NULL;
			pthread_mutex_unlock(&n->lock);
			pthread_mutex_lock(&eng->lock);
			n->nlookup = n->nopen = n->pins = 0;
			node_maybe_free_locked(eng, n);
			pthread_mutex_unlock(&eng->lock);
		}
	}
	if (eng->db && eng->st[0]) {
		pthread_mutex_lock(&eng->lock);
		(void)!tc_flush_atimes_locked(eng);
		if (tc_index_mark_clean_locked(eng))
			tc_warn(eng, "could not mark the index clean: the next "
				     "mount checks it in full");
		pthread_mutex_unlock(&eng->lock);
	}
	tc_index_close(eng);
	tc_blob_store_close(&eng->blobs);
	tc_ram_close(eng->ram);
	if (eng->lock_fd >= 0)
		close(eng->lock_fd); /* releases the flock */
	if (eng->store_fd >= 0)
		close(eng->store_fd);
	for (size_t i = 0; i < eng->n_rules; i++)
		free(eng->rules[i].tag);
	free(eng->rules);
	free(eng->nodes);
	free(eng->atimes);
	free(eng->doomed);
	free(eng->store);
	free(eng->schema);
	pthread_mutex_destroy(&eng->lock);
	pthread_mutex_destroy(&eng->inval_lock);
	pthread_mutex_destroy(&eng->thread_lock);
	pthread_cond_destroy(&eng->thread_cond);
	free(eng);
}

int tc_engine_maintain(struct tc_engine *eng)
{
	struct tc_inval_list inv = { 0 };
	int rc;

	tc_ram_expire(eng->ram, tc_now(eng));
	pthread_mutex_lock(&eng->lock);
	rc = tc_flush_atimes_locked(eng);
	if (!rc)
		rc = tc_policy_sweep_locked(eng, &inv);
	pthread_mutex_unlock(&eng->lock);
	tc_inval_deliver(eng, &inv);
	return rc;
}

static void *maintain_thread(void *arg)
{
	struct tc_engine *eng = arg;
	struct timespec deadline;

	pthread_mutex_lock(&eng->thread_lock);
	while (!eng->thread_stop) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += MAINTAIN_INTERVAL_NS / 1000000000;
		pthread_cond_timedwait(&eng->thread_cond, &eng->thread_lock,
				       &deadline);
		if (eng->thread_stop)
			break;
		pthread_mutex_unlock(&eng->thread_lock);
		if (tc_engine_maintain(eng))
			tc_warn(eng, "maintenance round failed");
		pthread_mutex_lock(&eng->thread_lock);
	}
	pthread_mutex_unlock(&eng->thread_lock);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Bookkeeping shared with policy.c                                    */
/* ------------------------------------------------------------------ */

void tc_disk_account_locked(struct tc_engine *eng, int64_t dbytes,
			    int64_t ditems)
{
	eng->disk_bytes = (uint64_t)((int64_t)eng->disk_bytes + dbytes);
	eng->disk_items_now = (uint64_t)((int64_t)eng->disk_items_now + ditems);
}

int tc_blob_unref_locked(struct tc_engine *eng, const uint8_t *hash)
{
	sqlite3_stmt *st = tc_stmt_locked(eng, ST_BLOB_UNREF);
	int64_t refs = 1, size = 0;
	bool file = false;
	int rc;

	sqlite3_bind_blob(st, 1, hash, TC_HASH_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		refs = sqlite3_column_int64(st, 0);
		size = sqlite3_column_int64(st, 1);
		file = sqlite3_column_int(st, 2) != 0;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return tc_sql_errno(rc);
	if (refs > 0)
		return 0;
	st = tc_stmt_locked(eng, ST_BLOB_DELETE);
	sqlite3_bind_blob(st, 1, hash, TC_HASH_LEN, SQLITE_STATIC);
	rc = tc_step_done(eng, st);
	if (!rc && file) {
		/* The file is deleted after the commit: until then (and if a
		 * crash comes first) the pending row says it may be garbage,
		 * and the next open deletes it. */
		st = tc_stmt_locked(eng, ST_PENDING_ADD);
		sqlite3_bind_blob(st, 1, hash, TC_HASH_LEN, SQLITE_STATIC);
		rc = tc_step_done(eng, st);
	}
	if (rc)
		return rc;
	eng->blob_bytes -= (uint64_t)size;
	if (eng->n_doomed == eng->cap_doomed) {
		size_t cap = eng->cap_doomed ? eng->cap_doomed * 2 : 64;
		void *v = realloc(eng->doomed, cap * sizeof(*eng->doomed));
		if (!v)
			return -ENOMEM;
		eng->doomed = v;
		eng->cap_doomed = cap;
	}
	memcpy(eng->doomed[eng->n_doomed++], hash, TC_HASH_LEN);
	return 0;
}

/*
 * Remove every name of inode @ino (eviction, expiry, schema discard,
 * evict_tag, flush). The caller holds a transaction. A node still held by
 * the kernel or a handle keeps its row with nlink 0 until released.
 */
int tc_inode_drop_locked(struct tc_engine *eng, uint64_t ino,
			 struct tc_inval_list *inv)
{
	struct tc_node *n = tc_node_find_locked(eng, ino);
	struct tc_inode m;
	sqlite3_stmt *st;
	int rc;

	rc = tc_inode_get_locked(eng, ino, &m);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	st = tc_stmt_locked(eng, ST_DENTRY_OF_INO);
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (inv)
			tc_inval_add(inv,
				     (uint64_t)sqlite3_column_int64(st, 0),
				     sqlite3_column_blob(st, 1),
				     (size_t)sqlite3_column_bytes(st, 1), ino);
	}
	sqlite3_reset(st);
	rc = tc_exec_ino_locked(eng, ST_DENTRY_DELETE_INO, ino);
	if (rc)
		return rc;
	if (S_ISREG(m.mode) && m.nlink > 0)
		tc_disk_account_locked(eng, -(int64_t)m.size, -1);
	m.nlink = 0;
	if (n) {
		n->meta.nlink = 0;
		return tc_inode_update_locked(eng, &m);
	}
	return purge_inode_locked(eng, &m);
}

/* Write the batched access times inside the caller's transaction. */
int tc_apply_atimes_locked(struct tc_engine *eng)
{
	sqlite3_stmt *st;
	int rc = 0;

	for (size_t i = 0; !rc && i < eng->n_atimes; i++) {
		struct tc_node *n = tc_node_find_locked(eng, eng->atimes[i]);
		/* Gone: it wrote its row when it left the table. */
		if (!n || !n->atime_pending)
			continue;
		st = tc_stmt_locked(eng, ST_INODE_SET_LRU);
		sqlite3_bind_int64(st, 1, (int64_t)n->ino);
		sqlite3_bind_int64(st, 2, n->meta.lru);
		if (n->meta.expires > 0)
			sqlite3_bind_int64(st, 3, n->meta.expires);
		rc = tc_step_done(eng, st);
		n->atime_pending = false;
	}
	if (!rc)
		eng->n_atimes = 0;
	return rc;
}

int tc_flush_atimes_locked(struct tc_engine *eng)
{
	int rc;

	if (!eng->n_atimes)
		return 0;
	rc = tc_index_begin_locked(eng);
	if (rc)
		return rc;
	rc = tc_apply_atimes_locked(eng);
	if (!rc)
		rc = tc_index_commit_locked(eng, false);
	else
		tc_index_rollback_locked(eng);
	eng->n_atimes = 0; /* recency is a hint: never retry forever */
	return rc;
}

/*
 * Remember that @n was read now: LRU recency and sliding expiry. The node
 * holds the values; the batch lists each pending node once, and the row is
 * written at the next maintenance round (or when the node leaves the
 * table). Reads less than ACCESS_GRANULARITY_NS after the last recorded
 * one change nothing: disk LRU order at one-second granularity is all a
 * disk tier needs, and hot keys then cost no bookkeeping at all.
 */
static void note_access_locked(struct tc_engine *eng, struct tc_node *n,
			       int64_t now)
{
	bool changed = false;

	/* A sliding deadline moves at every read, exactly. */
	if (n->meta.expires > 0 &&
	    tc_policy_mode(eng, &n->meta) == TC_TTL_SLIDING) {
		int64_t ttl = tc_policy_ttl_locked(eng, &n->meta);
		if (ttl > 0) {
			n->meta.expires = tc_deadline(now, ttl);
			changed = true;
		}
	}
	if (now - n->meta.lru >= ACCESS_GRANULARITY_NS) {
		n->meta.lru = now;
		changed = true;
	}
	if (!changed || n->atime_pending)
		return;
	if (eng->n_atimes == ATIME_BATCH)
		(void)!tc_flush_atimes_locked(eng);
	eng->atimes[eng->n_atimes++] = n->ino;
	n->atime_pending = true;
}

/* ------------------------------------------------------------------ */
/* Misses                                                             */
/* ------------------------------------------------------------------ */

static uint64_t name_hash(const char *name)
{
	return XXH3_64bits(name, strlen(name));
}

/* A lookup found nothing: count a miss, remembered so that a create of the
 * same name right after can take it back (creating is a put, not a miss). */
static void note_miss_locked(struct tc_engine *eng, uint64_t parent,
			     const char *name)
{
	uint64_t h = name_hash(name);
	unsigned last = (eng->recent_miss_pos + 63) % 64, i;
	int64_t now = tc_now(eng);

	/* The kernel asks twice for a cached name that turned out absent
	 * (revalidation, then a fresh lookup): one miss, not two. */
	if (eng->recent_miss[last].parent == parent &&
	    eng->recent_miss[last].name_hash == h &&
	    now - eng->recent_miss[last].when < MISS_REPEAT_NS)
		return;
	i = eng->recent_miss_pos++ % 64;
	eng->recent_miss[i].parent = parent;
	eng->recent_miss[i].name_hash = h;
	eng->recent_miss[i].when = now;
	tc_count(eng, misses, 1);
}

static void unnote_miss_locked(struct tc_engine *eng, uint64_t parent,
			       const char *name)
{
	uint64_t h = name_hash(name);

	for (unsigned i = 0; i < 64; i++) {
		if (eng->recent_miss[i].parent == parent &&
		    eng->recent_miss[i].name_hash == h) {
			eng->recent_miss[i].parent = 0;
			atomic_fetch_sub(&eng->counters.misses, 1);
			return;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Namespace                                                          */
/* ------------------------------------------------------------------ */

static int check_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || strchr(name, '/'))
		return -EINVAL;
	if (len > TC_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

static bool is_stats(uint64_t parent, const char *name)
{
	return parent == TC_ROOT_INO && strcmp(name, TC_STATS_NAME) == 0;
}

/* Inode number of @name in @parent, or -ENOENT. */
static int dentry_get_locked(struct tc_engine *eng, uint64_t parent,
			     const char *name, uint64_t *ino)
{
	sqlite3_stmt *st = tc_stmt_locked(eng, ST_DENTRY_GET);
	int rc;

	sqlite3_bind_int64(st, 1, (int64_t)parent);
	sqlite3_bind_blob(st, 2, name, (int)strlen(name), SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ino = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : tc_sql_errno(rc);
	}
	sqlite3_reset(st);
	return rc;
}

/* Directory node of @parent, pinned, or -ENOTDIR/-ENOENT. */
static int dir_get_locked(struct tc_engine *eng, uint64_t parent,
			  struct tc_node **out)
{
	int rc = node_get_locked(eng, parent, out);

	if (rc)
		return rc;
	if (!S_ISDIR((*out)->meta.mode))
		rc = -ENOTDIR;
	else if ((*out)->meta.nlink == 0)
		rc = -ENOENT;
	if (rc) {
		tc_node_unpin_locked(eng, *out);
		*out = NULL;
	}
	return rc;
}

/*
 * Find the visible entry @name in @parent and pin its node. Expired or
 * schema-discarded entries are dropped on the way and reported -ENOENT.
 */
static int find_entry_locked(struct tc_engine *eng, uint64_t parent,
			     const char *name, struct tc_node **out,
			     struct tc_inval_list *inv)
{
	uint64_t ino = 0;
	int rc;

	rc = dentry_get_locked(eng, parent, name, &ino);
	if (rc)
		return rc;
	rc = node_get_locked(eng, ino, out);
	if (rc)
		return rc;
	if (!tc_policy_visible_locked(eng, parent, &(*out)->meta,
				      tc_now(eng))) {
		rc = tc_index_begin_locked(eng);
		if (!rc)
			rc = tc_inode_drop_locked(eng, ino, inv);
		if (!rc)
			rc = tc_index_commit_locked(eng, false);
		else
			tc_index_rollback_locked(eng);
		tc_node_unpin_locked(eng, *out);
		*out = NULL;
		return rc ? rc : -ENOENT;
	}
	return 0;
}

int tc_lookup(struct tc_engine *eng, uint64_t parent, const char *name,
	      struct tc_attr *out)
{
	struct tc_inval_list inv = { 0 };
	struct tc_node *dir = NULL, *n = NULL;
	int rc;

	rc = check_name(name);
	if (rc)
		return rc;
	pthread_mutex_lock(&eng->lock);
	rc = dir_get_locked(eng, parent, &dir);
	if (rc)
		goto out;
	if (is_stats(parent, name)) {
		rc = -ENOENT;
		goto out;
	}
	rc = find_entry_locked(eng, parent, name, &n, &inv);
	if (rc == -ENOENT)
		note_miss_locked(eng, parent, name);
	if (rc)
		goto out;
	n->nlookup++;
out:
	if (dir)
		tc_node_unpin_locked(eng, dir);
	pthread_mutex_unlock(&eng->lock);
	if (n) {
		node_attr(eng, n, out);
		node_unpin(eng, n);
	}
	tc_inval_deliver(eng, &inv);
	return rc;
}

void tc_forget(struct tc_engine *eng, uint64_t ino, uint64_t nlookup)
{
	struct tc_node *n;

	pthread_mutex_lock(&eng->lock);
	n = tc_node_find_locked(eng, ino);
	if (n) {
		n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
		node_maybe_free_locked(eng, n);
	}
	pthread_mutex_unlock(&eng->lock);
}

int tc_getattr(struct tc_engine *eng, uint64_t ino, struct tc_attr *out)
{
	struct tc_node *n;
	int rc;

	pthread_mutex_lock(&eng->lock);
	rc = node_get_locked(eng, ino, &n);
	pthread_mutex_unlock(&eng->lock);
	if (rc)
		return rc;
	node_attr(eng, n, out);
	node_unpin(eng, n);
	return 0;
}

void tc_statfs(struct tc_engine *eng, struct tc_statfs *out)
{
	pthread_mutex_lock(&eng->lock);
	out->limit_bytes = eng->disk_size;
	out->used_bytes = eng->disk_bytes;
	out->items = eng->disk_items_now;
	out->limit_items = eng->disk_items;
	pthread_mutex_unlock(&eng->lock);
	if (!out->limit_bytes) {
		struct statvfs sv;
		if (fstatvfs(eng->store_fd, &sv) == 0)
			out->limit_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
		if (out->limit_bytes < out->used_bytes)
			out->limit_bytes = out->used_bytes;
	}
}

/* Create inode @m (type, mode, owner set by the caller) named @name in
 * @dir and pin it. Runs its own transaction. */
static int create_locked(struct tc_engine *eng, struct tc_node *dir,
			 const char *name, struct tc_inode *m,
			 struct tc_node **out, struct tc_inval_list *inv)
{
	sqlite3_stmt *st;
	uint64_t ino = 0;
	int64_t now = tc_now(eng);
	int rc;

	rc = dentry_get_locked(eng, dir->ino, name, &ino);
	if (rc == 0) {
		/* An invisible (expired/discarded) entry does not block. */
		struct tc_node *old = NULL;
		rc = find_entry_locked(eng, dir->ino, name, &old, inv);
		if (rc == 0) {
			tc_node_unpin_locked(eng, old);
			return -EEXIST;
		}
	}
	if (rc != -ENOENT)
		return rc;
	m->atime = m->mtime = m->ctime = now;
	m->nlink = S_ISDIR(m->mode) ? 2 : 1;
	m->lru = now;
	m->ttl = -1;
	m->ttl_mode = -1;
	rc = tc_policy_inherit_locked(eng, dir->ino, m);
	if (rc)
		return rc;
	rc = tc_index_begin_locked(eng);
	if (rc)
		return rc;
	if (S_ISREG(m->mode)) {
		rc = tc_policy_make_room_locked(eng, 0, 1, 0, inv);
		if (!rc)
			rc = tc_policy_resolve_locked(eng, m, now);
	}
	if (!rc)
		rc = tc_inode_insert_locked(eng, m);
	if (!rc) {
		st = tc_stmt_locked(eng, ST_DENTRY_INSERT);
		sqlite3_bind_int64(st, 1, (int64_t)dir->ino);
		sqlite3_bind_blob(st, 2, name, (int)strlen(name),
				  SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (int64_t)m->ino);
		rc = tc_step_done(eng, st);
	}
	if (!rc) {
		dir->meta.mtime = dir->meta.ctime = now;
		if (S_ISDIR(m->mode))
			dir->meta.nlink++;
		rc = tc_inode_update_locked(eng, &dir->meta);
	}
	if (!rc)
		rc = tc_index_commit_locked(eng, false);
	if (rc) {
		tc_index_rollback_locked(eng);
		/* dir->meta may be ahead of the row now: reload it. */
		(void)!tc_inode_get_locked(eng, dir->ino, &dir->meta);
		return rc;
	}
	if (S_ISREG(m->mode))
		tc_disk_account_locked(eng, 0, 1);
	unnote_miss_locked(eng, dir->ino, name);
	return node_get_locked(eng, m->ino, out);
}

/* Shared front of mknod, symlink and create. */
static int make_node(struct tc_engine *eng, uint64_t parent, const char *name,
		     struct tc_inode *m, const struct tc_ctx *ctx,
		     struct tc_node **out)
{
	struct tc_inval_list inv = { 0 };
	struct tc_node *dir = NULL;
	int rc;

	*out = NULL;
	rc = check_name(name);
	if (rc)
		return rc;
	if (is_stats(parent, name))
		return -EPERM;
	pthread_mutex_lock(&eng->lock);
	rc = dir_get_locked(eng, parent, &dir);
	if (rc)
		goto out;
	m->uid = ctx->uid;
	m->gid = ctx->gid;
	if (dir->meta.mode & S_ISGID) {
		m->gid = dir->meta.gid;
		if (S_ISDIR(m->mode))
			m->mode |= S_ISGID;
	}
	rc = create_locked(eng, dir, name, m, out, &inv);
	if (!rc)
		(*out)->nlookup++;
out:
	if (dir)
		tc_node_unpin_locked(eng, dir);
	pthread_mutex_unlock(&eng->lock);
	tc_inval_deliver(eng, &inv);
	return rc;
}

int tc_mknod(struct tc_engine *eng, uint64_t parent, const char *name,
	     mode_t mode, dev_t rdev, const struct tc_ctx *ctx,
	     struct tc_attr *out)
{
	struct tc_inode m = { 0 };
	struct tc_node *n;
	int rc;

	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFIFO:
	case S_IFSOCK:
		break;
	case S_IFCHR:
	case S_IFBLK:
		/* Stored inert: a FUSE mount is nodev, so opening one as a
		 * device is refused by the kernel; only the numbers matter. */
		m.rdev = (uint64_t)rdev;
		break;
	default:
		return -EINVAL;
	}
	m.mode = (mode & S_IFMT) | (mode & 07777 & ~ctx->umask);
	rc = make_node(eng, parent, name, &m, ctx, &n);
	if (rc)
		return rc;
	node_attr(eng, n, out);
	node_unpin(eng, n);
	return 0;
}

int tc_symlink(struct tc_engine *eng, uint64_t parent, const char *name,
	       const char *target, const struct tc_ctx *ctx,
	       struct tc_attr *out)
{
	struct tc_inode m = { 0 };
	struct tc_node *n;
	size_t len = strlen(target);
	int rc;

	if (len == 0)
		return -ENOENT;
	if (len >= 4096)
		return -ENAMETOOLONG;
	m.mode = S_IFLNK | 0777;
	m.size = len;
	m.target = target;
	rc = make_node(eng, parent, name, &m, ctx, &n);
	if (rc)
		return rc;
	node_attr(eng, n, out);
	node_unpin(eng, n);
	return 0;
}

int tc_readlink(struct tc_engine *eng, uint64_t ino, char *buf, size_t size)
{
	sqlite3_stmt *st;
	struct tc_node *n;
	int rc;

	pthread_mutex_lock(&eng->lock);
	rc = node_get_locked(eng, ino, &n);
	if (rc)
		goto out;
	if (!S_ISLNK(n->meta.mode)) {
		rc = -EINVAL;
	} else {
		st = tc_stmt_locked(eng, ST_READLINK);
		sqlite3_bind_int64(st, 1, (int64_t)ino);
		rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -EIO;
		if (!rc) {
			size_t len = (size_t)sqlite3_column_bytes(st, 0);
			if (len + 1 > size) {
				rc = -ERANGE;
			} else {
				memcpy(buf, sqlite3_column_blob(st, 0), len);
				buf[len] = '\0';
			}
		}
		sqlite3_reset(st);
	}
	tc_node_unpin_locked(eng, n);
out:
	pthread_mutex_unlock(&eng->lock);
	return rc;
}

int tc_link(struct tc_engine *eng, uint64_t ino, uint64_t newparent,
	    const char *newname, struct tc_attr *out)
{
	struct tc_inval_list inv = { 0 };
	struct tc_node *dir = NULL, *n = NULL, *old = NULL;
	sqlite3_stmt *st;
	uint64_t other;
	int rc;

	rc = check_name(newname);
	if (rc)
		return rc;
	if (is_stats(newparent, newname))
		return -EPERM;
	pthread_mutex_lock(&eng->lock);
	rc = dir_get_locked(eng, newparent, &dir);
	if (!rc)
		rc = node_get_locked(eng, ino, &n);
	if (rc)
		goto out;
	if (S_ISDIR(n->meta.mode)) {
		rc = -EPERM;
		goto out;
	}
	if (n->meta.nlink == 0) {
		rc = -ENOENT;
		goto out;
	}
	rc = dentry_get_locked(eng, newparent, newname, &other);
	if (rc == 0) {
		rc = find_entry_locked(eng, newparent, newname, &old, &inv);
		if (rc == 0) {
			rc = -EEXIST;
			goto out;
		}
	}
	if (rc != -ENOENT)
		goto out;
	rc = tc_index_begin_locked(eng);
	if (rc)
		goto out;
	st = tc_stmt_locked(eng, ST_DENTRY_INSERT);
	sqlite3_bind_int64(st, 1, (int64_t)newparent);
	sqlite3_bind_blob(st, 2, newname, (int)strlen(newname), SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)ino);
	rc = tc_step_done(eng, st);
	if (!rc) {
		n->meta.nlink++;
		n->meta.ctime = tc_now(eng);
		rc = tc_inode_update_locked(eng, &n->meta);
	}
	if (!rc) {
		dir->meta.mtime = dir->meta.ctime = n->meta.ctime;
		rc = tc_inode_update_locked(eng, &dir->meta);
	}
	if (!rc)
		rc = tc_index_commit_locked(eng, false);
	if (rc) {
		tc_index_rollback_locked(eng);
		(void)!tc_inode_get_locked(eng, ino, &n->meta);
		(void)!tc_inode_get_locked(eng, newparent, &dir->meta);
		goto out;
	}
	unnote_miss_locked(eng, newparent, newname);
	n->nlookup++;
out:
	if (old)
		tc_node_unpin_locked(eng, old);
	if (dir)
		tc_node_unpin_locked(eng, dir);
	pthread_mutex_unlock(&eng->lock);
	if (n) {
		if (!rc)
			node_attr(eng, n, out);
		node_unpin(eng, n);
	}
	tc_inval_deliver(eng, &inv);
	return rc;
}

/*
 * Remove the dentry @name -> @victim from @dir inside the caller's
 * transaction: link count, directory times, and when the last link goes
 * and nothing holds the inode, its row and its blob reference.
 */
static int remove_dentry_locked(struct tc_engine *eng, struct tc_node *dir,
				const char *name, struct tc_node *victim)
{
	sqlite3_stmt *st = tc_stmt_locked(eng, ST_DENTRY_DELETE);
	int64_t now = tc_now(eng);
	int rc;

	sqlite3_bind_int64(st, 1, (int64_t)dir->ino);
	sqlite3_bind_blob(st, 2, name, (int)strlen(name), SQLITE_STATIC);
	rc = tc_step_done(eng, st);
	if (rc)
		return rc;
	if (S_ISDIR(victim->meta.mode)) {
		victim->meta.nlink = 0;
		dir->meta.nlink--;
	} else {
		victim->meta.nlink--;
	}
	victim->meta.ctime = now;
	dir->meta.mtime = dir->meta.ctime = now;
	if (S_ISREG(victim->meta.mode) && victim->meta.nlink == 0) {
		tc_disk_account_locked(eng, -(int64_t)victim->meta.size, -1);
		tc_count(eng, deletes, 1);
	}
	rc = tc_inode_update_locked(eng, &victim->meta);
	if (!rc)
		rc = tc_inode_update_locked(eng, &dir->meta);
	return rc;
}

static bool dir_empty_locked(struct tc_engine *eng, uint64_t ino)
{
	sqlite3_stmt *st = tc_stmt_locked(eng, ST_DENTRY_ANY_CHILD);
	bool empty;

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	empty = sqlite3_step(st) != SQLITE_ROW;
	sqlite3_reset(st);
	return empty;
}

/* Reload the rows of pinned nodes after a rolled-back transaction. */
static void reload_locked(struct tc_engine *eng, struct tc_node **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i])
			(void)!tc_inode_get_locked(eng, v[i]->ino, &v[i]->meta);
}

static int remove_entry(struct tc_engine *eng, uint64_t parent,
			const char *name, bool want_dir)
{
	struct tc_inval_list inv = { 0 };
	struct tc_node *dir = NULL, *n = NULL;
	int rc;

	rc = check_name(name);
	if (rc)
		return rc;
	if (is_stats(parent, name))
		return -EPERM;
	pthread_mutex_lock(&eng->lock);
	rc = dir_get_locked(eng, parent, &dir);
	if (!rc)
		rc = find_entry_locked(eng, parent, name, &n, &inv);
	if (rc)
		goto out;
	if (want_dir && !S_ISDIR(n->meta.mode))
		rc = -ENOTDIR;
	else if (!want_dir && S_ISDIR(n->meta.mode))
		rc = -EISDIR;
	else if (want_dir && !dir_empty_locked(eng, n->ino))
		rc = -ENOTEMPTY;
	if (rc)
		goto out;
	rc = tc_index_begin_locked(eng);
	if (rc)
		goto out;
	rc = remove_dentry_locked(eng, dir, name, n);
	if (!rc)
		rc = tc_index_commit_locked(eng, false);
	if (rc) {
		tc_index_rollback_locked(eng);
		reload_locked(eng, (struct tc_node *[]){ dir, n }, 2);
	}
out:
	if (n)
		tc_node_unpin_locked(eng, n);
	if (dir)
		tc_node_unpin_locked(eng, dir);
	pthread_mutex_unlock(&eng->lock);
	tc_inval_deliver(eng, &inv);
	return rc;
}

int tc_unlink(struct tc_engine *eng, uint64_t parent, const char *name)
{
	return remove_entry(eng, parent, name, false);
}

int tc_rmdir(struct tc_engine *eng, uint64_t parent, const char *name)
{
	if (!strcmp(name, "."))
		return -EINVAL;
	if (!strcmp(name, ".."))
		return -ENOTEMPTY;
	return remove_entry(eng, parent, name, true);
}

/* True when directory @anc is @ino or one of its ancestors. */
static int is_ancestor_locked(struct tc_engine *eng, uint64_t anc,
			      uint64_t ino, bool *out)
{
	sqlite3_stmt *st;
	int depth = 0;

	*out = false;
	while (ino != TC_ROOT_INO) {
		if (ino == anc) {
			*out = true;
			return 0;
		}
		if (++depth > 100000)
			return -ELOOP;
		st = tc_stmt_locked(eng, ST_DENTRY_PARENT);
		sqlite3_bind_int64(st, 1, (int64_t)ino);
		if (sqlite3_step(st) != SQLITE_ROW) {
			sqlite3_reset(st);
			return 0;
		}
		ino = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	*out = anc == TC_ROOT_INO;
	return 0;
}

static int move_dentry_locked(struct tc_engine *eng, uint64_t p1,
			      const char *n1, uint64_t p2, const char *n2)
{
	sqlite3_stmt *st = tc_stmt_locked(eng, ST_DENTRY_MOVE);

	sqlite3_bind_int64(st, 1, (int64_t)p1);
	sqlite3_bind_blob(st, 2, n1, (int)strlen(n1), SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)p2);
	sqlite3_bind_blob(st, 4, n2, (int)strlen(n2), SQLITE_STATIC);
	return tc_step_done(eng, st);
}

struct rename_op {
	struct tc_node *sdir, *ddir, *src, *dst;
	uint64_t sp, dp;
	const char *sn, *dn;
	unsigned flags;
};

static int rename_check_locked(struct tc_engine *eng, struct rename_op *r)
{
	bool loop;
	int rc;

	if (r->dst && r->dst->ino == r->src->ino)
		return 0;
	if (S_ISDIR(r->src->meta.mode) && r->sdir != r->ddir) {
		rc = is_ancestor_locked(eng, r->src->ino, r->dp, &loop);
		if (rc)
			return rc;
		if (loop)
			return -EINVAL;
	}
	if (r->flags & TC_RENAME_EXCHANGE) {
		if (!r->dst)
			return -ENOENT;
		if (S_ISDIR(r->dst->meta.mode) && r->sdir != r->ddir) {
			rc = is_ancestor_locked(eng, r->dst->ino, r->sp, &loop);
			if (rc)
				return rc;
			if (loop)
				return -EINVAL;
		}
		return 0;
	}
	if (!r->dst)
		return 0;
	if (r->flags & TC_RENAME_NOREPLACE)
		return -EEXIST;
	if (S_ISDIR(r->src->meta.mode) && !S_ISDIR(r->dst->meta.mode))
		return -ENOTDIR;
	if (!S_ISDIR(r->src->meta.mode) && S_ISDIR(r->dst->meta.mode))
		return -EISDIR;
	if (S_ISDIR(r->dst->meta.mode) && !dir_empty_locked(eng, r->dst->ino))
		return -ENOTEMPTY;
	return 0;
}

static int rename_apply_locked(struct tc_engine *eng, struct rename_op *r)
{
	int64_t now = tc_now(eng);
	char tmp[40];
	int rc = 0;

	if (r->flags & TC_RENAME_EXCHANGE) {
		/* Swap through a name no user can create (contains '/'). */
		snprintf(tmp, sizeof(tmp), "/x%llu",
			 (unsigned long long)r->src->ino);
		rc = move_dentry_locked(eng, r->sp, r->sn, r->sp, tmp);
		if (!rc)
			rc = move_dentry_locked(eng, r->dp, r->dn, r->sp, r->sn);
		if (!rc)
			rc = move_dentry_locked(eng, r->sp, tmp, r->dp, r->dn);
		if (!rc && r->sdir != r->ddir) {
			int sd = S_ISDIR(r->src->meta.mode),
			    dd = S_ISDIR(r->dst->meta.mode);
			r->sdir->meta.nlink += (uint32_t)(dd - sd);
			r->ddir->meta.nlink += (uint32_t)(sd - dd);
		}
		r->dst->meta.ctime = now;
	} else {
		if (r->dst)
			rc = remove_dentry_locked(eng, r->ddir, r->dn, r->dst);
		if (!rc)
			rc = move_dentry_locked(eng, r->sp, r->sn, r->dp, r->dn);
		if (!rc && S_ISDIR(r->src->meta.mode) && r->sdir != r->ddir) {
			r->sdir->meta.nlink--;
			r->ddir->meta.nlink++;
		}
	}
	r->src->meta.ctime = now;
	r->sdir->meta.mtime = r->sdir->meta.ctime = now;
	r->ddir->meta.mtime = r->ddir->meta.ctime = now;
	if (!rc)
		rc = tc_inode_update_locked(eng, &r->src->meta);
	if (!rc && r->dst)
		rc = tc_inode_update_locked(eng, &r->dst->meta);
	if (!rc)
		rc = tc_inode_update_locked(eng, &r->sdir->meta);
	if (!rc && r->ddir != r->sdir)
		rc = tc_inode_update_locked(eng, &r->ddir->meta);
	return rc;
}

int tc_rename(struct tc_engine *eng, uint64_t parent, const char *name,
	      uint64_t newparent, const char *newname, unsigned int flags)
{
	struct tc_inval_list inv = { 0 };
	struct rename_op r = { .sp = parent, .dp = newparent, .sn = name,
			       .dn = newname, .flags = flags };
	int rc;

	if (flags & ~(unsigned)(TC_RENAME_NOREPLACE | TC_RENAME_EXCHANGE) ||
	    (flags & TC_RENAME_NOREPLACE && flags & TC_RENAME_EXCHANGE))
		return -EINVAL;
	rc = check_name(name);
	if (!rc)
		rc = check_name(newname);
	if (rc)
		return rc;
	if (is_stats(parent, name) || is_stats(newparent, newname))
		return -EPERM;
	pthread_mutex_lock(&eng->lock);
	rc = dir_get_locked(eng, parent, &r.sdir);
	if (!rc)
		rc = dir_get_locked(eng, newparent, &r.ddir);
	if (!rc)
		rc = find_entry_locked(eng, parent, name, &r.src, &inv);
	if (rc)
		goto out;
	rc = find_entry_locked(eng, newparent, newname, &r.dst, &inv);
	if (rc && rc != -ENOENT)
		goto out;
	rc = rename_check_locked(eng, &r);
	if (rc || (r.dst && r.dst->ino == r.src->ino))
		goto out; /* renaming a link onto itself does nothing */
	rc = tc_index_begin_locked(eng);
	if (rc)
		goto out;
	rc = rename_apply_locked(eng, &r);
	if (!rc)
		rc = tc_index_commit_locked(eng, false);
	if (rc) {
		tc_index_rollback_locked(eng);
		reload_locked(eng, (struct tc_node *[]){ r.sdir, r.ddir, r.src,
							r.dst }, 4);
		goto out;
	}
	if (!r.dst)
		unnote_miss_locked(eng, newparent, newname);
out:
	for (int i = 0; i < 4; i++) {
		struct tc_node *v[] = { r.dst, r.src, r.ddir, r.sdir };
		if (v[i])
			tc_node_unpin_locked(eng, v[i]);
	}
	pthread_mutex_unlock(&eng->lock);
	tc_inval_deliver(eng, &inv);
	return rc;
}

int tc_readdir(struct tc_engine *eng, uint64_t ino, uint64_t off, bool plus,
	       tc_dirent_fn fn, void *ctx)
{
	struct tc_node *dir = NULL;
	struct tc_attr a;
	sqlite3_stmt *st;
	uint64_t parent = TC_ROOT_INO;
	int64_t now = tc_now(eng);
	char want_schema[65];
	int rc;

	pthread_mutex_lock(&eng->lock);
	rc = dir_get_locked(eng, ino, &dir);
	if (rc)
		goto out;
	/* Cookies: 1 ".", 2 "..", 3 ".stats" (root), then dentry id + 3. */
	if (off < 1) {
		fill_attr(eng, &dir->meta, &a);
		if (fn(ctx, ".", &a, 1))
			goto out;
	}
	if (off < 2) {
		st = tc_stmt_locked(eng, ST_DENTRY_PARENT);
		sqlite3_bind_int64(st, 1, (int64_t)ino);
		if (sqlite3_step(st) == SQLITE_ROW)
			parent = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		memset(&a, 0, sizeof(a));
		a.st.st_ino = parent;
		a.st.st_mode = S_IFDIR;
		if (fn(ctx, "..", &a, 2))
			goto out;
	}
	if (off < 3 && ino == TC_ROOT_INO) {
		memset(&a, 0, sizeof(a));
		a.st.st_ino = TC_STATS_INO;
		a.st.st_mode = S_IFREG | 0444;
		a.st.st_nlink = 1;
		ns_to_ts(eng->started_ns, &a.st.st_mtim);
		a.st.st_atim = a.st.st_ctim = a.st.st_mtim;
		if (fn(ctx, TC_STATS_NAME, &a, 3))
			goto out;
	}
	/* Entries of another schema version are absent here too (they are
	 * discarded, and counted, when looked up). */
	if (tc_policy_dir_schema_locked(eng, ino, want_schema))
		want_schema[0] = '\0';
	st = tc_stmt_locked(eng, ST_DENTRY_LIST);
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, off > 3 ? (int64_t)(off - 3) : 0);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
		size_t len = (size_t)sqlite3_column_bytes(st, 1);
		char name[TC_NAME_MAX + 1];
		struct tc_inode m;
		struct tc_node *n;

		if (len > TC_NAME_MAX || len == 0)
			continue;
		memcpy(name, sqlite3_column_blob(st, 1), len);
		name[len] = '\0';
		tc_inode_from_row(st, 2, &m);
		n = tc_node_find_locked(eng, m.ino);
		if (n)
			m = n->meta; /* fresher: sliding expiry, sizes */
		if (m.expires > 0 && m.expires <= now)
			continue;
		if (want_schema[0] && S_ISREG(m.mode) &&
		    strcmp(want_schema, m.schema))
			continue;
		fill_attr(eng, &m, &a);
		if (fn(ctx, name, &a, id + 3))
			break;
		if (plus) {
			struct tc_node *pn;
			/* The listing statement is live: node_get must not
			 * reset it, and it only uses ST_INODE_GET. */
			if (node_get_locked(eng, m.ino, &pn) == 0) {
				pn->nlookup++;
				pn->pins--;
			}
		}
	}
	sqlite3_reset(st);
	rc = 0;
out:
	if (dir)
		tc_node_unpin_locked(eng, dir);
	pthread_mutex_unlock(&eng->lock);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Content                                                            */
/* ------------------------------------------------------------------ */

static struct tc_content *content_new(uint64_t size)
{
	struct tc_content *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	atomic_init(&c->refs, 1);
	c->size = size;
	c->fd = -1;
	return c;
}

/* Drop an entry whose blob is missing or corrupt (SPEC §6). */
static void drop_corrupt(struct tc_engine *eng, struct tc_node *n,
			 const uint8_t *hash)
{
	struct tc_inval_list inv = { 0 };
	char hex[TC_HASH_HEX + 1];

	tc_hash_hex(hash, hex);
	tc_err(eng, "blob %s of inode %llu is missing or corrupt: entry dropped",
	       hex, (unsigned long long)n->ino);
	tc_count(eng, corruptions, 1);
	tc_ram_drop(eng->ram, hash);
	pthread_mutex_lock(&eng->lock);
	if (tc_index_begin_locked(eng) == 0) {
		if (tc_inode_drop_locked(eng, n->ino, &inv) == 0)
			(void)!tc_index_commit_locked(eng, false);
		else
			tc_index_rollback_locked(eng);
	}
	pthread_mutex_unlock(&eng->lock);
	tc_inval_deliver(eng, &inv);
}

/*
 * Content kept inside the index: copy it out under the engine lock, verify
 * it, and hand it over in RAM (inserted in the tier when it fits, else a
 * private item of this node's readers). -ENOENT when the content is a
 * file, -EIO when the row's data is not what its hash says.
 */
static int load_inline(struct tc_engine *eng, const struct tc_inode *m,
		       int64_t ram_ttl, int64_t now, struct tc_ram_item **out)
{
	struct tc_ram_item *it = NULL;
	uint8_t got[TC_HASH_LEN];
	sqlite3_stmt *st;
	int rc = -ENOENT;

	pthread_mutex_lock(&eng->lock);
	st = tc_stmt_locked(eng, ST_BLOB_DATA);
	sqlite3_bind_blob(st, 1, m->hash, TC_HASH_LEN, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const void *data = sqlite3_column_blob(st, 0);
		size_t len = (size_t)sqlite3_column_bytes(st, 0);
		rc = -EIO;
		if (len == m->size) {
			it = tc_ram_alloc(len);
			rc = it ? 0 : -ENOMEM;
		}
		if (it)
			memcpy(it->data, data, len);
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&eng->lock);
	if (rc)
		return rc;
	tc_hash_buf(it->data, it->size, got);
	if (memcmp(got, m->hash, TC_HASH_LEN)) {
		tc_ram_unref(it);
		return -EIO;
	}
	memcpy(it->hash, m->hash, TC_HASH_LEN);
	if (tc_ram_fits(eng->ram, it->size)) {
		it = tc_ram_insert(eng->ram, it, now, ram_ttl);
		tc_count(eng, promotions, 1);
	}
	*out = it;
	return 0;
}

/*
 * The content of @m is not in RAM: load it from the index (inline) or its
 * blob file, promoting it into RAM when it fits (verified first), or keep
 * the blob's descriptor for large items. Kept out of the hit path (STYLE.md
 * point 7): only here is the tag-rule query for a RAM idle limit made.
 */
static TC_NOINLINE int load_from_disk(struct tc_engine *eng, struct tc_node *n,
				      const struct tc_inode *m,
				      struct tc_content *c, int64_t now)
{
	struct tc_ram_item *it;
	int64_t ram_ttl;
	int rc;

	pthread_mutex_lock(&eng->lock);
	ram_ttl = tc_policy_ram_ttl_locked(eng, n->ino);
	pthread_mutex_unlock(&eng->lock);
	rc = load_inline(eng, m, ram_ttl, now, &c->ram);
	if (rc != -ENOENT)
		goto out;
	if (tc_ram_fits(eng->ram, m->size)) {
		it = tc_ram_alloc(m->size);
		if (!it)
			return -ENOMEM;
		memcpy(it->hash, m->hash, TC_HASH_LEN);
		rc = tc_blob_read_verified(&eng->blobs, m->hash, it->data,
					   m->size);
		if (rc) {
			tc_ram_unref(it);
			goto out;
		}
		c->ram = tc_ram_insert(eng->ram, it, now, ram_ttl);
		tc_count(eng, promotions, 1);
		return 0;
	}
	rc = tc_blob_open_read(&eng->blobs, m->hash, &c->fd);
	if (!rc) {
		struct stat st;
		if (fstat(c->fd, &st) || (uint64_t)st.st_size != m->size)
			rc = -EIO;
	}
out:
	if (rc == -EIO)
		drop_corrupt(eng, n, m->hash);
	return rc;
}

/*
 * Load the published content of @n (node->lock held) and pin it on the
 * node. The hit path is a RAM probe and a pin; *@ram_hit says which tier
 * served it.
 */
static int load_content(struct tc_engine *eng, struct tc_node *n,
			bool *ram_hit)
{
	int64_t now = tc_now(eng);
	struct tc_content *c;
	struct tc_inode m;
	int rc = 0;

	pthread_mutex_lock(&eng->lock);
	m = n->meta;
	pthread_mutex_unlock(&eng->lock);
	c = content_new(m.size);
	if (!c)
		return -ENOMEM;
	*ram_hit = true;
	if (m.hash_set && m.size > 0) {
		c->ram = tc_ram_get(eng->ram, m.hash, now);
		if (!c->ram) {
			*ram_hit = false;
			rc = load_from_disk(eng, n, &m, c, now);
		}
	}
	if (rc) {
		content_unref(c);
		return rc;
	}
	content_unref(n->content);
	n->content = c;
	return 0;
}

static struct tc_dirty *dirty_new(void)
{
	struct tc_dirty *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->fd = -1;
	d->hstate = XXH3_createState();
	if (!d->hstate) {
		free(d);
		return NULL;
	}
	XXH3_128bits_reset(d->hstate);
	return d;
}

/* Move in-memory dirty content to a temporary file. */
static int dirty_spill(struct tc_engine *eng, struct tc_dirty *d)
{
	int rc = tc_blob_tmp_create(&eng->blobs, &d->fd, d->tmpname);

	if (rc)
		return rc;
	rc = tc_blob_pwrite_all(&eng->blobs, d->fd, d->buf, d->size, 0);
	if (rc) {
		tc_blob_tmp_discard(&eng->blobs, d->fd, d->tmpname);
		d->fd = -1;
		d->tmpname[0] = '\0';
		return rc;
	}
	free(d->buf);
	d->buf = NULL;
	d->cap = 0;
	return 0;
}

/* Write into dirty state; sizes beyond DIRTY_SPILL go to a file. */
static int dirty_write(struct tc_engine *eng, struct tc_dirty *d,
		       const void *buf, size_t len, uint64_t off)
{
	uint64_t end = off + len;
	int rc;

	if (len == 0)
		return 0; /* writes nothing, extends nothing (POSIX) */
	if (d->fd < 0 && end > DIRTY_SPILL) {
		rc = dirty_spill(eng, d);
		if (rc)
			return rc;
	}
	if (d->fd >= 0) {
		rc = tc_blob_pwrite_all(&eng->blobs, d->fd, buf, len,
					(off_t)off);
		if (rc)
			return rc;
	} else {
		if (end > d->cap) {
			size_t cap = d->cap ? d->cap : 4096;
			char *nb;
			while (cap < end)
				cap *= 2;
			nb = realloc(d->buf, cap);
			if (!nb)
				return -ENOMEM;
			d->buf = nb;
			d->cap = cap;
		}
		if (off > d->size)
			memset(d->buf + d->size, 0, off - d->size);
		memcpy(d->buf + off, buf, len);
	}
	/* Keep the hash going while writes are sequential appends. */
	if (!d->hash_broken && off == d->hashed && off >= d->size) {
		XXH3_128bits_update(d->hstate, buf, len);
		d->hashed = end;
	} else if (off < d->hashed || off > d->size) {
		d->hash_broken = true;
	}
	if (end > d->size)
		d->size = end;
	return 0;
}

static int dirty_truncate(struct tc_engine *eng, struct tc_dirty *d,
			  uint64_t size)
{
	if (size == d->size)
		return 0;
	if (size < d->hashed || size > d->size)
		d->hash_broken = true;
	if (d->fd >= 0) {
		if (ftruncate(d->fd, (off_t)size))
			return -errno;
	} else if (size > DIRTY_SPILL) {
		int rc = dirty_spill(eng, d);
		if (rc)
			return rc;
		if (ftruncate(d->fd, (off_t)size))
			return -errno;
	} else if (size > d->size) {
		static const char zero[4096];
		uint64_t pos = d->size;
		while (pos < size) {
			size_t k = size - pos > sizeof(zero) ? sizeof(zero)
							      : size - pos;
			int rc = dirty_write(eng, d, zero, k, pos);
			if (rc)
				return rc;
			pos += k;
		}
		d->hash_broken = true;
	}
	d->size = size;
	return 0;
}

static ssize_t dirty_read(struct tc_engine *eng, struct tc_dirty *d, void *buf,
			  size_t size, uint64_t off)
{
	ssize_t n;

	if (off >= d->size)
		return 0;
	if (size > d->size - off)
		size = d->size - off;
	if (d->fd < 0) {
		memcpy(buf, d->buf + off, size);
		return (ssize_t)size;
	}
	n = pread(d->fd, buf, size, (off_t)off);
	return n < 0 ? -errno : n;
}

static ssize_t content_read(struct tc_content *c, void *buf, size_t size,
			    uint64_t off)
{
	ssize_t n;

	if (off >= c->size)
		return 0;
	if (size > c->size - off)
		size = c->size - off;
	if (c->ram) {
		memcpy(buf, c->ram->data + off, size);
		return (ssize_t)size;
	}
	if (c->fd < 0)
		return 0;
	n = pread(c->fd, buf, size, (off_t)off);
	return n < 0 ? -errno : n;
}

/* Create @n's dirty state from its current content (node->lock held). */
static int dirty_begin(struct tc_engine *eng, struct tc_node *n, bool empty)
{
	struct tc_dirty *d;
	bool hit;
	int rc = 0;

	if (n->dirty)
		return 0;
	d = dirty_new();
	if (!d)
		return -ENOMEM;
	if (!empty) {
		if (!n->content)
			rc = load_content(eng, n, &hit);
		for (uint64_t off = 0; !rc && n->content &&
				       off < n->content->size;) {
			char buf[65536];
			ssize_t k = content_read(n->content, buf, sizeof(buf),
						 off);
			if (k <= 0) {
				rc = k ? (int)k : -EIO;
				break;
			}
			rc = dirty_write(eng, d, buf, (size_t)k, off);
			off += (uint64_t)k;
		}
	}
	if (rc) {
		dirty_free(eng, d);
		return rc;
	}
	d->mtime = tc_now(eng);
	n->dirty = d;
	return 0;
}

/* Hash of dirty content, re-reading it when writes were not sequential. */
static int dirty_hash(struct tc_engine *eng, struct tc_dirty *d, uint8_t *hash)
{
	XXH128_canonical_t c;
	XXH128_hash_t h;

	if (d->hash_broken || d->hashed != d->size) {
		XXH3_128bits_reset(d->hstate);
		if (d->fd < 0) {
			XXH3_128bits_update(d->hstate, d->buf, d->size);
		} else {
			char *buf = malloc(1 << 20);
			if (!buf)
				return -ENOMEM;
			for (uint64_t off = 0; off < d->size;) {
				size_t k = d->size - off > (1 << 20)
						   ? (1 << 20)
						   : d->size - off;
				int rc = tc_blob_pread_all(&eng->blobs, d->fd,
							   buf, k, (off_t)off);
				if (rc) {
					free(buf);
					return rc;
				}
				XXH3_128bits_update(d->hstate, buf, k);
				off += k;
			}
			free(buf);
		}
		d->hashed = d->size;
		d->hash_broken = false;
	}
	h = XXH3_128bits_digest(d->hstate);
	XXH128_canonicalFromHash(&c, h);
	memcpy(hash, c.digest, TC_HASH_LEN);
	return 0;
}

/* Store the dirty content as blob @hash unless the index has it. */
static int store_blob(struct tc_engine *eng, struct tc_dirty *d,
		      const uint8_t *hash, bool durable)
{
	int rc;

	if (d->fd >= 0) {
		rc = tc_blob_commit_tmp(&eng->blobs, d->fd, d->tmpname, hash,
					durable);
		if (!rc)
			d->tmpname[0] = '\0'; /* the file is the blob now */
		return rc;
	}
	return tc_blob_write(&eng->blobs, hash, d->buf, d->size, durable);
}

/*
 * Publish @n's dirty state (node->lock held): hash, store the blob, commit
 * one transaction, swap the loaded content. On failure the dirty state and
 * the previous content stay as they were.
 */
static int publish(struct tc_engine *eng, struct tc_node *n, bool durable)
{
	struct tc_inval_list inv = { 0 };
	struct tc_dirty *d = n->dirty;
	struct tc_inode m;
	struct tc_content *c = NULL;
	uint8_t hash[TC_HASH_LEN], old_hash[TC_HASH_LEN];
	bool had_hash, wrote = false, known, inline_data;
	int64_t now = tc_now(eng), ram_ttl;
	sqlite3_stmt *st;
	int rc;

	if (!d)
		return 0;
	if (eng->sync == TC_SYNC_CLOSE)
		durable = true;
	if (eng->sync == TC_SYNC_NEVER)
		durable = false;
	if (eng->disk_size && d->size > eng->disk_size)
		return -EFBIG;
	inline_data = d->fd < 0 && d->size <= eng->inline_max;
	if (d->size > 0) {
		rc = dirty_hash(eng, d, hash);
		if (rc)
			return rc;
		pthread_mutex_lock(&eng->lock);
		known = tc_blob_known_locked(eng, hash);
		if (!known && !inline_data) {
			/* Remembered until the commit that references it, so
			 * a crash in between leaves no orphan behind. */
			st = tc_stmt_locked(eng, ST_PENDING_ADD);
			sqlite3_bind_blob(st, 1, hash, TC_HASH_LEN,
					  SQLITE_STATIC);
			rc = tc_step_done(eng, st);
			if (rc) {
				pthread_mutex_unlock(&eng->lock);
				return rc;
			}
		}
		pthread_mutex_unlock(&eng->lock);
		if (!known && !inline_data) {
			rc = store_blob(eng, d, hash, durable);
			if (rc)
				return rc;
			wrote = true;
		}
	}

	pthread_mutex_lock(&eng->lock);
	m = n->meta;
	had_hash = m.hash_set;
	memcpy(old_hash, m.hash, TC_HASH_LEN);
	rc = tc_index_begin_locked(eng);
	if (rc)
		goto unlock;
	if (m.nlink > 0 && S_ISREG(m.mode))
		rc = tc_policy_make_room_locked(eng,
						(int64_t)d->size -
							(int64_t)m.size,
						0, n->ino, &inv);
	if (!rc && d->size > 0) {
		/* The blob may have lost its last reference since we looked:
		 * then its file is gone or going, write it now. */
		known = tc_blob_known_locked(eng, hash);
		if (!wrote && !known && !inline_data) {
			rc = store_blob(eng, d, hash, durable);
			wrote = !rc;
		}
		if (!rc) {
			st = tc_stmt_locked(eng, ST_BLOB_REF);
			sqlite3_bind_blob(st, 1, hash, TC_HASH_LEN,
					  SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (int64_t)d->size);
			if (inline_data)
				sqlite3_bind_blob(st, 3, d->buf, (int)d->size,
						  SQLITE_STATIC);
			rc = tc_step_done(eng, st);
			if (!rc && !known)
				eng->blob_bytes += d->size;
		}
		if (!rc && wrote) {
			st = tc_stmt_locked(eng, ST_PENDING_DEL);
			sqlite3_bind_blob(st, 1, hash, TC_HASH_LEN,
					  SQLITE_STATIC);
			rc = tc_step_done(eng, st);
		}
	}
	if (!rc && had_hash)
		rc = tc_blob_unref_locked(eng, old_hash);
	if (!rc) {
		if (m.nlink > 0 && S_ISREG(m.mode))
			tc_disk_account_locked(eng,
					       (int64_t)d->size -
						       (int64_t)m.size,
					       0);
		m.size = d->size;
		m.hash_set = d->size > 0;
		memcpy(m.hash, hash, TC_HASH_LEN);
		m.mtime = m.ctime = d->mtime;
		m.lru = now;
		rc = tc_policy_resolve_locked(eng, &m, now);
	}
	if (!rc)
		rc = tc_inode_update_locked(eng, &m);
	if (!rc)
		rc = tc_index_commit_locked(eng, durable);
	if (rc) {
		tc_index_rollback_locked(eng);
		if (wrote && d->fd >= 0 && !d->tmpname[0])
			/* The spilled file became the blob: take it back so
			 * later writes cannot touch a published blob. */
			(void)!tc_blob_uncommit(&eng->blobs, hash, d->tmpname);
		goto unlock;
	}
	n->meta = m;
	n->data_gen++;
	ram_ttl = tc_policy_ram_ttl_locked(eng, n->ino);
	/* Blob bytes grow by the new blob when it was new to the index. */
	pthread_mutex_unlock(&eng->lock);

	tc_count(eng, puts, 1);
	tc_count(eng, write_bytes, d->size);
	c = content_new(d->size);
	if (c && d->size > 0) {
		if (d->fd < 0 && tc_ram_fits(eng->ram, d->size)) {
			struct tc_ram_item *it = tc_ram_alloc(d->size);
			if (it) {
				memcpy(it->hash, hash, TC_HASH_LEN);
				memcpy(it->data, d->buf, d->size);
				c->ram = tc_ram_insert(eng->ram, it, now,
						       ram_ttl);
			}
		}
		if (!c->ram && tc_blob_open_read(&eng->blobs, hash, &c->fd)) {
			content_unref(c);
			c = NULL; /* loaded again at the next read */
		}
	}
	content_unref(n->content);
	n->content = c;
	dirty_free(eng, d);
	n->dirty = NULL;
	tc_inval_deliver(eng, &inv);
	return 0;
unlock:
	pthread_mutex_unlock(&eng->lock);
	tc_inval_deliver(eng, &inv);
	return rc;
}

static int open_node(struct tc_engine *eng, struct tc_node *n, int flags,
		     struct tc_file **out)
{
	int acc = flags & O_ACCMODE;
	struct tc_file *f;
	bool hit = true, counted;
	int rc = 0;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->eng = eng;
	f->node = n;
	f->flags = flags;
	pthread_mutex_lock(&n->lock);
	if (flags & O_TRUNC && acc != O_RDONLY) {
		dirty_free(eng, n->dirty);
		n->dirty = NULL;
		rc = dirty_begin(eng, n, true);
	} else if (acc != O_WRONLY && !n->dirty) {
		if (!n->content)
			rc = load_content(eng, n, &hit);
		else
			hit = n->content->ram || n->content->size == 0;
		if (!rc && n->content && !n->content->ram &&
		    n->content->fd < 0 && n->content->size > 0)
			rc = -EIO;
	}
	pthread_mutex_unlock(&n->lock);
	if (rc) {
		free(f);
		return rc;
	}
	counted = acc != O_WRONLY;
	if (counted) {
		tc_count(eng, gets, 1);
		if (hit)
			tc_count(eng, ram_hits, 1);
		else
			tc_count(eng, disk_hits, 1);
	}
	pthread_mutex_lock(&eng->lock);
	f->next = eng->files;
	if (eng->files)
		eng->files->prev = f;
	eng->files = f;
	n->nopen++;
	if (acc != O_RDONLY)
		n->nwriters++;
	if (counted)
		note_access_locked(eng, n, tc_now(eng));
	f->keep_cache = n->cached_gen == n->data_gen;
	n->cached_gen = n->data_gen;
	pthread_mutex_unlock(&eng->lock);
	*out = f;
	return 0;
}

int tc_open(struct tc_engine *eng, uint64_t ino, int flags,
	    struct tc_file **out)
{
	struct tc_node *n;
	int rc;

	pthread_mutex_lock(&eng->lock);
	rc = node_get_locked(eng, ino, &n);
	if (!rc && S_ISDIR(n->meta.mode))
		rc = -EISDIR;
	else if (!rc && !S_ISREG(n->meta.mode))
		rc = -EINVAL;
	pthread_mutex_unlock(&eng->lock);
	if (rc == -EISDIR || rc == -EINVAL)
		node_unpin(eng, n);
	if (rc)
		return rc;
	rc = open_node(eng, n, flags, out);
	node_unpin(eng, n);
	return rc;
}

int tc_create(struct tc_engine *eng, uint64_t parent, const char *name,
	      mode_t mode, int flags, const struct tc_ctx *ctx,
	      struct tc_attr *out, struct tc_file **fout)
{
	struct tc_inode m = { 0 };
	struct tc_node *n;
	int rc;

	m.mode = S_IFREG | (mode & 07777 & ~ctx->umask);
	rc = make_node(eng, parent, name, &m, ctx, &n);
	if (rc)
		return rc;
	/* A new file is empty: no get, no content to load. Opened writable
	 * it starts an empty dirty state, so its close publishes a put. */
	rc = open_node(eng, n,
		       (flags & ~O_ACCMODE) | O_WRONLY |
			       ((flags & O_ACCMODE) == O_RDONLY ? 0 : O_TRUNC),
		       fout);
	if (!rc) {
		(*fout)->flags = flags;
		if ((flags & O_ACCMODE) == O_RDONLY) {
			pthread_mutex_lock(&eng->lock);
			n->nwriters--;
			pthread_mutex_unlock(&eng->lock);
		}
		node_attr(eng, n, out);
	} else {
		tc_forget(eng, n->ino, 1);
	}
	node_unpin(eng, n);
	return rc;
}

ssize_t tc_read(struct tc_file *f, void *buf, size_t size, off_t off)
{
	struct tc_node *n = f->node;
	struct tc_content *c;
	ssize_t rc;

	if ((f->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (off < 0)
		return -EINVAL;
	pthread_mutex_lock(&n->lock);
	if (n->dirty) {
		rc = dirty_read(f->eng, n->dirty, buf, size, (uint64_t)off);
		pthread_mutex_unlock(&n->lock);
		goto out;
	}
	if (!n->content) {
		bool hit;
		rc = load_content(f->eng, n, &hit);
		if (rc) {
			pthread_mutex_unlock(&n->lock);
			return rc;
		}
	}
	c = n->content;
	atomic_fetch_add(&c->refs, 1);
	pthread_mutex_unlock(&n->lock);
	rc = content_read(c, buf, size, (uint64_t)off);
	content_unref(c);
out:
	if (rc > 0)
		tc_count(f->eng, read_bytes, (uint64_t)rc);
	return rc;
}

int tc_read_fd(struct tc_file *f, int *fd)
{
	struct tc_node *n = f->node;
	int rc = -EAGAIN;

	pthread_mutex_lock(&n->lock);
	if (!n->dirty && n->content && !n->content->ram &&
	    n->content->fd >= 0) {
		/* The handle pins the content through the node (nopen > 0),
		 * which keeps this descriptor open until tc_release(). */
		*fd = n->content->fd;
		rc = 0;
	}
	pthread_mutex_unlock(&n->lock);
	return rc;
}

ssize_t tc_write(struct tc_file *f, const void *buf, size_t size, off_t off)
{
	struct tc_engine *eng = f->eng;
	struct tc_node *n = f->node;
	uint64_t end;
	int rc;

	if ((f->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	if (off < 0)
		return -EINVAL;
	pthread_mutex_lock(&n->lock);
	rc = dirty_begin(eng, n, false);
	if (rc)
		goto out;
	if (f->flags & O_APPEND)
		off = (off_t)n->dirty->size;
	end = (uint64_t)off + size;
	if (end < (uint64_t)off || (eng->disk_size && end > eng->disk_size)) {
		rc = -EFBIG;
		goto out;
	}
	rc = dirty_write(eng, n->dirty, buf, size, (uint64_t)off);
	if (!rc) {
		n->dirty->mtime = tc_now(eng);
		n->dirty->written = true;
	}
out:
	pthread_mutex_unlock(&n->lock);
	return rc ? rc : (ssize_t)size;
}

int tc_flush(struct tc_file *f)
{
	struct tc_engine *eng = f->eng;
	struct tc_node *n = f->node;
	bool last;
	int rc = 0;

	if ((f->flags & O_ACCMODE) == O_RDONLY)
		return 0;
	pthread_mutex_lock(&eng->lock);
	last = n->nwriters <= 1;
	pthread_mutex_unlock(&eng->lock);
	if (!last)
		return 0;
	pthread_mutex_lock(&n->lock);
	/* A shell's "> file" closes a dup of the handle before writing:
	 * publishing the bare truncation then would be a put of nothing. */
	if (n->dirty && n->dirty->written)
		rc = publish(eng, n, false);
	pthread_mutex_unlock(&n->lock);
	return rc;
}

int tc_fsync(struct tc_file *f, bool datasync)
{
	struct tc_engine *eng = f->eng;
	struct tc_node *n = f->node;
	int rc;

	(void)datasync;
	pthread_mutex_lock(&n->lock);
	if (n->dirty) {
		rc = publish(eng, n, true);
	} else if (eng->sync != TC_SYNC_NEVER) {
		/* Published at close without fsync: make the blob and the
		 * index durable now. */
		struct tc_inode m;
		int fd;
		pthread_mutex_lock(&eng->lock);
		m = n->meta;
		pthread_mutex_unlock(&eng->lock);
		rc = 0;
		if (m.hash_set && tc_blob_open_read(&eng->blobs, m.hash, &fd) == 0) {
			rc = tc_blob_fsync(&eng->blobs, fd);
			close(fd);
		}
		pthread_mutex_lock(&eng->lock);
		if (!rc)
			rc = tc_index_exec(eng->db,
					   "PRAGMA wal_checkpoint(PASSIVE)");
		pthread_mutex_unlock(&eng->lock);
	} else {
		rc = 0;
	}
	pthread_mutex_unlock(&n->lock);
	return rc;
}

int tc_release(struct tc_file *f)
{
	struct tc_content *c = NULL;
	struct tc_engine *eng;
	struct tc_node *n;
	bool writer, last;
	int rc = 0;

	if (!f)
		return 0;
	eng = f->eng;
	n = f->node;
	writer = (f->flags & O_ACCMODE) != O_RDONLY;
	pthread_mutex_lock(&n->lock);
	pthread_mutex_lock(&eng->lock);
	last = writer && n->nwriters <= 1;
	pthread_mutex_unlock(&eng->lock);
	if (last && n->dirty) {
		rc = publish(eng, n, false);
		if (rc) {
			/* Nobody can publish it any more: drop it. */
			tc_err(eng, "publishing inode %llu failed: %s",
			       (unsigned long long)n->ino, strerror(-rc));
			dirty_free(eng, n->dirty);
			n->dirty = NULL;
		}
	}
	/* Content is swapped under node->lock (readers hold it to look at
	 * n->content); the pin keeps the node alive until the unref. */
	pthread_mutex_lock(&eng->lock);
	if (f->prev)
		f->prev->next = f->next;
	else
		eng->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	n->nopen--;
	if (writer)
		n->nwriters--;
	if (n->nopen == 0) {
		/* Unpin the content; the RAM tier or the blob keeps it. */
		c = n->content;
		n->content = NULL;
	}
	n->pins++;
	pthread_mutex_unlock(&eng->lock);
	pthread_mutex_unlock(&n->lock);
	content_unref(c);
	pthread_mutex_lock(&eng->lock);
	tc_node_unpin_locked(eng, n);
	pthread_mutex_unlock(&eng->lock);
	free(f);
	return rc;
}

uint64_t tc_file_ino(const struct tc_file *f)
{
	return f->node->ino;
}

bool tc_file_keep_cache(const struct tc_file *f)
{
	return f->keep_cache;
}

/* ------------------------------------------------------------------ */
/* Attributes                                                         */
/* ------------------------------------------------------------------ */

static int setattr_size(struct tc_engine *eng, struct tc_node *n,
			uint64_t size, struct tc_file *f)
{
	int rc;

	if (S_ISDIR(n->meta.mode))
		return -EISDIR;
	if (!S_ISREG(n->meta.mode))
		return -EINVAL;
	if (eng->disk_size && size > eng->disk_size)
		return -EFBIG;
	bool writers, had_dirty;

	pthread_mutex_lock(&n->lock);
	pthread_mutex_lock(&eng->lock);
	writers = n->nwriters > 0;
	pthread_mutex_unlock(&eng->lock);
	had_dirty = n->dirty != NULL;
	rc = dirty_begin(eng, n, size == 0);
	if (!rc)
		rc = dirty_truncate(eng, n->dirty, size);
	if (!rc) {
		n->dirty->mtime = tc_now(eng);
		n->dirty->written = true;
	}
	/* Without a writable handle nobody else will publish it: publish
	 * now, and when that fails the truncation must not stay visible. */
	if (!writers && (!f || (f->flags & O_ACCMODE) == O_RDONLY)) {
		if (!rc)
			rc = publish(eng, n, false);
		if (rc && !had_dirty && n->dirty) {
			dirty_free(eng, n->dirty);
			n->dirty = NULL;
		}
	}
	pthread_mutex_unlock(&n->lock);
	return rc;
}

int tc_setattr(struct tc_engine *eng, uint64_t ino, const struct stat *st,
	       int to_set, struct tc_file *f, struct tc_attr *out)
{
	struct tc_node *n;
	int64_t now = tc_now(eng);
	int rc;

	pthread_mutex_lock(&eng->lock);
	rc = node_get_locked(eng, ino, &n);
	pthread_mutex_unlock(&eng->lock);
	if (rc)
		return rc;
	if (to_set & TC_SET_SIZE) {
		rc = setattr_size(eng, n, (uint64_t)st->st_size, f);
		if (rc)
			goto out;
	}
	pthread_mutex_lock(&eng->lock);
	if (to_set & TC_SET_MODE)
		n->meta.mode = (n->meta.mode & S_IFMT) | (st->st_mode & 07777);
	if (to_set & TC_SET_UID)
		n->meta.uid = st->st_uid;
	if (to_set & TC_SET_GID)
		n->meta.gid = st->st_gid;
	if (to_set & TC_SET_ATIME)
		n->meta.atime = (int64_t)st->st_atim.tv_sec * 1000000000 +
				st->st_atim.tv_nsec;
	if (to_set & TC_SET_ATIME_NOW)
		n->meta.atime = now;
	if (to_set & (TC_SET_MTIME | TC_SET_MTIME_NOW)) {
		int64_t t = to_set & TC_SET_MTIME_NOW
				    ? now
				    : (int64_t)st->st_mtim.tv_sec * 1000000000 +
					      st->st_mtim.tv_nsec;
		n->meta.mtime = t;
		/* Unpublished writes must not override an explicit mtime. */
	}
	if (to_set & TC_SET_CTIME)
		n->meta.ctime = (int64_t)st->st_ctim.tv_sec * 1000000000 +
				st->st_ctim.tv_nsec;
	else if (to_set & ~TC_SET_SIZE)
		n->meta.ctime = now;
	if (to_set & ~TC_SET_SIZE) {
		rc = tc_inode_update_locked(eng, &n->meta);
		if (rc)
			(void)!tc_inode_get_locked(eng, ino, &n->meta);
	}
	pthread_mutex_unlock(&eng->lock);
	if (!rc && to_set & (TC_SET_MTIME | TC_SET_MTIME_NOW)) {
		pthread_mutex_lock(&n->lock);
		if (n->dirty)
			n->dirty->mtime = n->meta.mtime;
		pthread_mutex_unlock(&n->lock);
	}
out:
	if (!rc)
		node_attr(eng, n, out);
	node_unpin(eng, n);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Extended attributes: the namespace filter (one place, STYLE 12)    */
/* ------------------------------------------------------------------ */

/* listxattr(2) returns at most this many bytes (Linux XATTR_LIST_MAX) */
#define XATTR_LIST_LIMIT 65536
/* room kept for the user.tiercache.* names the listing adds */
#define XATTR_LIST_RESERVE 128

enum xattr_class { XA_USER, XA_TIERCACHE, XA_OTHER };

static enum xattr_class xattr_class(const char *name)
{
	if (!strncmp(name, TC_XATTR_PREFIX, strlen(TC_XATTR_PREFIX)))
		return XA_TIERCACHE;
	if (!strncmp(name, "user.", 5) && name[5])
		return XA_USER;
	return XA_OTHER;
}

static int node_exists(struct tc_engine *eng, uint64_t ino)
{
	struct tc_node *n;
	int rc;

	pthread_mutex_lock(&eng->lock);
	rc = node_get_locked(eng, ino, &n);
	if (!rc)
		tc_node_unpin_locked(eng, n);
	pthread_mutex_unlock(&eng->lock);
	return rc;
}

ssize_t tc_getxattr(struct tc_engine *eng, uint64_t ino, const char *name,
		    void *buf, size_t size)
{
	sqlite3_stmt *st;
	ssize_t rc;

	switch (xattr_class(name)) {
	case XA_OTHER:
		return -ENOTSUP;
	case XA_TIERCACHE:
		return tc_policy_getxattr(eng, ino, name, buf, size);
	case XA_USER:
		break;
	}
	rc = node_exists(eng, ino);
	if (rc)
		return rc;
	pthread_mutex_lock(&eng->lock);
	st = tc_stmt_locked(eng, ST_XATTR_GET);
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(st, 0);
		if (size == 0)
			rc = (ssize_t)len;
		else if (len > size)
			rc = -ERANGE;
		else {
			if (len)
				memcpy(buf, sqlite3_column_blob(st, 0), len);
			rc = (ssize_t)len;
		}
	} else {
		rc = -ENODATA;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&eng->lock);
	return rc;
}

int tc_setxattr(struct tc_engine *eng, uint64_t ino, const char *name,
		const void *value, size_t size, int flags)
{
	sqlite3_stmt *st;
	bool exists;
	int rc;

	switch (xattr_class(name)) {
	case XA_OTHER:
		return -ENOTSUP;
	case XA_TIERCACHE:
		return tc_policy_setxattr(eng, ino, name, value, size);
	case XA_USER:
		break;
	}
	if (size > TC_XATTR_SIZE_MAX)
		return -E2BIG;
	if (strlen(name) > 255)
		return -ERANGE;
	rc = node_exists(eng, ino);
	if (rc)
		return rc;
	pthread_mutex_lock(&eng->lock);
	st = tc_stmt_locked(eng, ST_XATTR_GET);
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	exists = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	if (exists && (flags & 1 /* XATTR_CREATE */))
		rc = -EEXIST;
	else if (!exists && (flags & 2 /* XATTR_REPLACE */))
		rc = -ENODATA;
	if (!rc && !exists) {
		/* The name list must stay listable (listxattr returns at most
		 * XATTR_LIST_MAX bytes), or cp -a and rsync -X fail on the
		 * file: refuse like ext4 does when it is full. */
		int64_t used;
		st = tc_stmt_locked(eng, ST_XATTR_NAMES_LEN);
		sqlite3_bind_int64(st, 1, (int64_t)ino);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		used = sqlite3_step(st) == SQLITE_ROW
			       ? sqlite3_column_int64(st, 0)
			       : 0;
		sqlite3_reset(st);
		if (used + (int64_t)strlen(name) + 1 + XATTR_LIST_RESERVE >
		    XATTR_LIST_LIMIT)
			rc = -ENOSPC;
	}
	if (!rc) {
		st = tc_stmt_locked(eng, ST_XATTR_SET);
		sqlite3_bind_int64(st, 1, (int64_t)ino);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, size ? value : "", (int)size,
				  SQLITE_STATIC);
		rc = tc_step_done(eng, st);
	}
	pthread_mutex_unlock(&eng->lock);
	return rc;
}

ssize_t tc_listxattr(struct tc_engine *eng, uint64_t ino, char *buf,
		     size_t size)
{
	sqlite3_stmt *st;
	size_t used = 0;
	ssize_t rc;

	rc = node_exists(eng, ino);
	if (rc)
		return rc;
	pthread_mutex_lock(&eng->lock);
	st = tc_stmt_locked(eng, ST_XATTR_LIST);
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	while (sqlite3_step(st) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(st, 0) + 1;
		if (size && used + len <= size)
			memcpy(buf + used, sqlite3_column_text(st, 0), len);
		used += len;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&eng->lock);
	rc = tc_policy_listxattr(eng, ino, buf, size, used);
	if (rc >= 0 && size && (size_t)rc > size)
		return -ERANGE;
	return rc;
}

int tc_removexattr(struct tc_engine *eng, uint64_t ino, const char *name)
{
	sqlite3_stmt *st;
	int rc;

	switch (xattr_class(name)) {
	case XA_OTHER:
		return -ENOTSUP;
	case XA_TIERCACHE:
		return tc_policy_removexattr(eng, ino, name);
	case XA_USER:
		break;
	}
	rc = node_exists(eng, ino);
	if (rc)
		return rc;
	pthread_mutex_lock(&eng->lock);
	st = tc_stmt_locked(eng, ST_XATTR_DELETE);
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = tc_step_done(eng, st);
	if (!rc && sqlite3_changes(eng->db) == 0)
		rc = -ENODATA;
	pthread_mutex_unlock(&eng->lock);
	return rc;
}

/* ------------------------------------------------------------------ */
/* fallocate                                                          */
/* ------------------------------------------------------------------ */

/* Zero [@off, @off + @len) of dirty state that covers it (node->lock). */
static int dirty_zero(struct tc_engine *eng, struct tc_dirty *d, uint64_t off,
		      uint64_t len)
{
	static const char zero[65536];

	while (len > 0) {
		size_t k = len > sizeof(zero) ? sizeof(zero) : (size_t)len;
		int rc = dirty_write(eng, d, zero, k, off);

		if (rc)
			return rc;
		off += k;
		len -= k;
	}
	return 0;
}

int tc_fallocate(struct tc_file *f, int mode, off_t off, off_t len)
{
	struct tc_engine *eng = f->eng;
	struct tc_node *n = f->node;
	uint64_t size, end, zero_end;
	bool zero, grow;
	mode_t type;
	int rc = 0;

	if (off < 0 || len <= 0)
		return -EINVAL;
	switch (mode) {
	case 0:
	case FALLOC_FL_KEEP_SIZE:
		zero = false;
		break;
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		zero = true;
		break;
	default:
		return -EOPNOTSUPP;
	}
	grow = !(mode & FALLOC_FL_KEEP_SIZE);
	if ((f->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	pthread_mutex_lock(&eng->lock);
	type = n->meta.mode & S_IFMT;
	pthread_mutex_unlock(&eng->lock);
	if (S_ISDIR(type))
		return -EISDIR;
	if (!S_ISREG(type))
		return -ENODEV;
	end = (uint64_t)off + (uint64_t)len; /* both < 2^63: no wrap */
	if (end > INT64_MAX || (eng->disk_size && end > eng->disk_size))
		return -EFBIG;

	pthread_mutex_lock(&n->lock);
	if (n->dirty) {
		size = n->dirty->size;
	} else {
		pthread_mutex_lock(&eng->lock);
		size = n->meta.size;
		pthread_mutex_unlock(&eng->lock);
	}
	zero_end = end < size ? end : size;
	zero = zero && (uint64_t)off < zero_end;
	grow = grow && end > size;
	if (!zero && !grow)
		goto out; /* the bytes and the size stay: no dirty state */
	rc = dirty_begin(eng, n, false);
	if (!rc && zero)
		rc = dirty_zero(eng, n->dirty, (uint64_t)off,
				zero_end - (uint64_t)off);
	if (!rc && grow)
		rc = dirty_truncate(eng, n->dirty, end);
	if (!rc) {
		n->dirty->mtime = tc_now(eng);
		n->dirty->written = true;
	}
out:
	pthread_mutex_unlock(&n->lock);
	return rc;
}
