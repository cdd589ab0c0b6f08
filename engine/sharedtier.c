/* SPDX-License-Identifier: MIT */
/*
 * The shared tier seen from the engine's top (tiercachefs(8), SHARED
 * TIER): lookups answered and revalidated from it, and the other mounts'
 * events applied here. Pushes are sharedpub.c's; the client (shared*.c)
 * knows nothing of the engine.
 *
 * A lookup (tc_lookup_shared(), which the daemon calls for every LOOKUP)
 * is first a local one. A name absent here is asked of the shared tier by
 * its path: a directory's record makes a local directory, a regular
 * file's a local file with the record's content and metadata, created
 * through the namespace and published like a write (publish.c) whose
 * dirty state says it came from the shared tier, so it is not pushed
 * back. The content comes from the local store when it holds that hash
 * (RAM, the index or a blob file: identical content is never fetched
 * twice), else from the servers, verified by the client (each piece's MAC
 * with a key, the whole against its hash) and again by the publish's own
 * hash; it is attached to the new node before its name becomes visible,
 * so no reader ever sees it empty. Absent answers are remembered for
 * shared_revalidate (SHNEG slots, by path hash).
 *
 * A regular file found here is trusted for shared_revalidate after it was
 * last compared with the shared tier (sharedpub.c keeps the versions),
 * then compared again at its next lookup: a newer record (version_ns,
 * then writer id) that differs replaces it (new content comes as a new
 * inode under the name, as the writer's own rename made it there, so a
 * reader of the old one never sees a mix; new metadata alone changes it
 * in place and drops the kernel's attributes), a newer tombstone removes
 * it; an older one, an absent one or a server's trouble leaves it as it
 * is. The daemon bounds the
 * kernel's entry timeouts by shared_revalidate, so lookups do come. An
 * entry with unpublished writes here is never replaced: they are newer.
 *
 * Events (tc_sharedtier_maintain(), from the maintenance round about once
 * per shared_revalidate): another mount's flush, evict_tag and directory
 * schema change are applied with the local policy functions; a RESYNC
 * (events were lost) drops what this mount learned from the shared tier
 * since it was mounted and checks everything else again.
 *
 * The shared tier's trouble is never a program's error here: a lookup
 * that cannot be answered is a miss (counted in shared_misses).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine_i.h"

/* Negative answers remembered (direct-mapped by path hash). */
#define SHNEG 4096

/* Contents up to this size are fetched into memory, larger ones into a
 * temporary file of the store (bounded memory per lookup). */
#define FETCH_MEM_MAX (UINT64_C(1) << 20)

/* Bytes copied per step from a local blob file. */
#define COPY_CHUNK 65536

/* Learned entries a RESYNC drops in one go (the rest are checked again
 * at their next lookup anyway). */
#define RESYNC_MAX 65536

/* Events are polled at most this often, whatever shared_revalidate says:
 * each poll is a request. */
#define POLL_MIN_NS (INT64_C(100) * 1000000)

/* Pushes still queued at unmount get this long to reach the servers. */
#define CLOSE_DRAIN_NS (INT64_C(3) * TC_NS_PER_S)

/* Longest path, with its NUL. */
#define PATH_BUF (TC_SHARED_PATH_MAX + 1)

/* ------------------------------------------------------------------ */
/* Opening and closing                                                */
/* ------------------------------------------------------------------ */

static void ignore_event(void *ctx, const struct tc_shared_event *ev)
{
	(void)ctx;
	(void)ev;
}

int tc_sharedtier_open(struct tc_engine *eng, const struct tc_config *cfg)
{
	struct tc_shared_config sc;
	int rc;

	if (!cfg->shared_servers)
		return 0;
	tc_shared_config_init(&sc);
	sc.servers = cfg->shared_servers;
	sc.replicas = cfg->shared_replicas ? cfg->shared_replicas : 1;
	sc.revalidate_ns = cfg->shared_revalidate_ns;
	sc.key = cfg->shared_key;
	sc.key_len = cfg->shared_key_len;
	sc.name_space = cfg->shared_namespace;
	sc.log_fn = eng->base.log_fn;
	sc.log_ctx = eng->base.log_ctx;
	sc.log_level = eng->base.log_level;
	sc.clock = eng->base.clock;
	sc.clock_ctx = eng->base.clock_ctx;
	eng->shared_revalidate_ns = cfg->shared_revalidate_ns;
	eng->shneg = calloc(SHNEG, sizeof(*eng->shneg));
	rc = eng->shneg ? tc_sharedpub_open(eng) : -ENOMEM;
	if (!rc)
		rc = tc_shared_open(&sc, &eng->shared);
	if (rc) {
		tc_set_last_error(&eng->base, "shared tier: cannot start: %s",
				  strerror(-rc));
		eng->shared = NULL;
		tc_sharedpub_close(eng);
		free(eng->shneg);
		eng->shneg = NULL;
		return rc;
	}
	eng->shared_writer = tc_shared_writer(eng->shared);
	/* Where the event log stands now: what others do from here on is
	 * applied here (a first poll reports nothing). */
	if (tc_shared_poll(eng->shared, ignore_event, NULL) == 0)
		atomic_store(&eng->shared_polled, tc_mono_ns());
	return 0;
}

void tc_sharedtier_close(struct tc_engine *eng)
{
	if (!eng->shared)
		return;
	if (tc_shared_drain(eng->shared, CLOSE_DRAIN_NS))
		tc_warn(eng, "shared tier: unmount: pushes still queued are "
			     "dropped");
	tc_shared_close(eng->shared);
	eng->shared = NULL;
	tc_sharedpub_close(eng);
	free(eng->shneg);
	eng->shneg = NULL;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                      */
/* ------------------------------------------------------------------ */

#define shc_count(eng, f) \
	atomic_fetch_add_explicit(&(eng)->shc.f, 1, memory_order_relaxed)

static uint64_t path_hash(const char *path)
{
	return XXH3_64bits(path, strlen(path));
}

static bool neg_fresh_locked(struct tc_engine *eng, uint64_t h, int64_t now)
{
	const struct tc_shslot *s = &eng->shneg[h % SHNEG];

	return s->h == h && now < s->at;
}

static void neg_put_locked(struct tc_engine *eng, uint64_t h, int64_t now)
{
	struct tc_shslot *s = &eng->shneg[h % SHNEG];

	s->h = h;
	s->at = now + eng->shared_revalidate_ns;
}

static void neg_clear_locked(struct tc_engine *eng)
{
	memset(eng->shneg, 0, SHNEG * sizeof(*eng->shneg));
}

/* The path of @name in directory @parent into @out: 0 or -ENOENT. */
static int path_of_locked(struct tc_engine *eng, uint64_t parent,
			  const char *name, char *out)
{
	char dir[PATH_BUF];
	int k;

	if (tc_node_path_locked(eng, parent, dir, sizeof(dir)))
		return -ENOENT;
	k = snprintf(out, PATH_BUF, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "",
		     name);
	return k > 0 && k < PATH_BUF ? 0 : -ENOENT;
}

/* "a,b" into @tags; how many (at most TC_SHARED_TAGS_MAX: the client
 * checked the list). */
static int split_tags(const char *list, char tags[][65])
{
	int n = 0;

	for (const char *p = list; *p && n < TC_SHARED_TAGS_MAX;) {
		size_t len = strcspn(p, ",");

		if (len && len <= 64) {
			memcpy(tags[n], p, len);
			tags[n++][len] = '\0';
		}
		p += len + (p[len] == ',');
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Contents                                                           */
/* ------------------------------------------------------------------ */

/* Write the first @size bytes of file @fd into @d, in order. */
static int copy_fd(struct tc_engine *eng, int fd, uint64_t size,
		   struct tc_dirty *d)
{
	char *buf = malloc(COPY_CHUNK);
	int rc = buf ? 0 : -ENOMEM;

	for (uint64_t off = 0; !rc && off < size;) {
		size_t k = size - off < COPY_CHUNK ? (size_t)(size - off)
						   : COPY_CHUNK;

		rc = tc_blob_pread_all(&eng->blobs, fd, buf, k, (off_t)off);
		if (!rc)
			rc = tc_dirty_write(&eng->blobs, d, buf, k, off);
		off += k;
	}
	free(buf);
	return rc;
}

/* Fill @d with content @hash of @size bytes from this store, if it holds
 * it: 0, or -ENOENT (fetch it). */
static int copy_local(struct tc_engine *eng, const uint8_t *hash,
		      uint64_t size, struct tc_dirty *d)
{
	struct tc_ram_item *it = tc_ram_get(eng->ram, hash, tc_now(eng));
	bool known, inline_data = false;
	char *buf = NULL;
	int fd, rc = 0;

	if (it) {
		rc = it->size == size
			     ? tc_dirty_write(&eng->blobs, d, it->data, size, 0)
			     : -ENOENT;
		tc_ram_unref(it);
		return rc;
	}
	tc_lock(eng);
	known = tc_blob_known_locked(eng, hash);
	if (known && tc_index_blob_is_inline(&eng->ix, hash)) {
		inline_data = true;
		buf = malloc(size);
		rc = buf ? tc_index_blob_data(&eng->ix, hash, buf, size)
			 : -ENOMEM;
	}
	tc_unlock(eng);
	if (inline_data) {
		if (!rc)
			rc = tc_dirty_write(&eng->blobs, d, buf, size, 0);
		free(buf);
		return rc ? -ENOENT : 0;
	}
	if (!known || tc_blob_open_read(&eng->blobs, hash, &fd))
		return -ENOENT;
	rc = copy_fd(eng, fd, size, d);
	close(fd);
	return rc ? -ENOENT : 0;
}

/* Fill @d with content @hash of @size bytes from the servers. */
static int fetch(struct tc_engine *eng, const uint8_t *hash, uint64_t size,
		 struct tc_dirty *d)
{
	char name[32];
	void *buf;
	int fd, rc;

	if (size <= FETCH_MEM_MAX) {
		buf = malloc(size);
		if (!buf)
			return -ENOMEM;
		rc = tc_shared_get_content(eng->shared, hash, size, buf);
		if (!rc)
			rc = tc_dirty_write(&eng->blobs, d, buf, size, 0);
		free(buf);
		return rc;
	}
	/* Larger: through a temporary file, then into the chunks. */
	rc = tc_blob_tmp_create(&eng->blobs, &fd, name);
	if (rc)
		return rc;
	rc = tc_shared_get_content_fd(eng->shared, hash, size, fd);
	if (!rc)
		rc = copy_fd(eng, fd, size, d);
	tc_blob_tmp_discard(&eng->blobs, fd, name);
	return rc;
}

/*
 * New dirty state holding the content of record @r, verified against its
 * hash, marked as coming from the shared tier (*@out, the caller's). -EIO
 * when it cannot be had or does not verify: a miss.
 */
static int content_of(struct tc_engine *eng, const struct tc_shared_name *r,
		      struct tc_dirty **out)
{
	struct tc_dirty *d = tc_content_dirty_new(eng);
	uint8_t got[TC_HASH_LEN];
	int rc = 0;

	if (!d)
		return -ENOMEM;
	if (r->has_content && r->size > 0) {
		rc = copy_local(eng, r->hash, r->size, d);
		if (rc)
			rc = fetch(eng, r->hash, r->size, d);
		/* Written in order from the start: the whole hash is known. */
		if (!rc && !tc_dirty_whole_hash(&eng->blobs, d, got))
			rc = -EIO;
		if (!rc && (d->size != r->size ||
			    memcmp(got, r->hash, TC_HASH_LEN))) {
			tc_warn(eng, "shared tier: %s: content does not match "
				     "its hash: ignored",
				r->path);
			rc = -EIO;
		}
	}
	if (rc) {
		tc_dirty_free(&eng->blobs, d);
		return rc;
	}
	d->mtime = d->touched = r->mtime_ns;
	d->written = true;
	d->from_shared = true; /* after the writes: they clear it */
	*out = d;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Entries                                                            */
/* ------------------------------------------------------------------ */

/* Give regular file @n the metadata of record @r (its content is in
 * place): mode, owner, mtime, tags, schema, and the record's deadline,
 * so the entry expires at the same moment on every mount. */
static int apply_meta_locked(struct tc_engine *eng, struct tc_node *n,
			     const struct tc_shared_name *r)
{
	char tags[TC_SHARED_TAGS_MAX][65];
	int ntags = split_tags(r->tags, tags), rc;
	struct tc_inode m = n->body->meta;

	m.mode = (m.mode & S_IFMT) | (r->mode & 07777);
	m.uid = r->uid;
	m.gid = r->gid;
	m.mtime = r->mtime_ns;
	m.expires = r->expires_ns;
	if (r->ttl_mode == TC_TTL_SLIDING && r->expires_ns > r->version_ns) {
		m.ttl_mode = TC_TTL_SLIDING; /* reads here extend it alike */
		m.ttl = r->expires_ns - r->version_ns;
	}
	snprintf(m.schema, sizeof(m.schema), "%s", r->schema);
	rc = tc_txn_begin_locked(eng);
	if (rc)
		return rc;
	rc = tc_index_tags_set(&eng->ix, m.ino, tags, ntags);
	if (!rc)
		rc = tc_index_inode_update(&eng->ix, &m);
	rc = tc_txn_end_locked(eng, rc);
	if (!rc)
		n->body->meta = m;
	return rc;
}

/* Remember that @ino now matches record @r, learned from another mount
 * (unless the record is this mount's own). */
static void note_record_locked(struct tc_engine *eng, uint64_t ino,
			       const struct tc_shared_name *r)
{
	struct tc_shver v = { .ino = ino, .version = r->version_ns,
			      .writer = r->writer, .checked = tc_now(eng),
			      .learned = r->writer != eng->shared_writer };

	tc_sharedpub_note_locked(eng, &v);
}

/* Drop the entry of @ino (a publish failed, a newer tombstone, a resync):
 * its names go, open handles keep reading. */
static void drop_entry(struct tc_engine *eng, uint64_t ino)
{
	struct tc_inval_list inv = { 0 };

	tc_lock(eng);
	if (tc_txn_begin_locked(eng) == 0)
		(void)!tc_txn_end_locked(eng,
					 tc_node_drop_locked(eng, ino, &inv));
	tc_sharedpub_forget_locked(eng, ino);
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
}

/* Publish the content attached to node @n (from content_of(), when it
 * has one) and give it @r's metadata. On failure the content is dropped
 * unpublished; -EBUSY when a program wrote @n meanwhile. */
static int settle(struct tc_engine *eng, struct tc_node *n,
		  const struct tc_shared_name *r)
{
	int rc = 0;

	tc_mutex_lock(&n->body->lock);
	if (n->body->dirty && n->body->dirty->from_shared)
		rc = tc_content_publish_nlocked(eng, n, false);
	else if (n->body->dirty)
		rc = -EBUSY; /* written here meanwhile: that is newer */
	if (rc && n->body->dirty && n->body->dirty->from_shared)
		tc_content_dirty_end_nlocked(eng, n);
	tc_mutex_unlock(&n->body->lock);
	if (rc)
		return rc;
	tc_lock(eng);
	rc = apply_meta_locked(eng, n, r);
	if (!rc)
		note_record_locked(eng, n->ino, r);
	tc_unlock(eng);
	return rc;
}

/* Create directory @name in @parent from record @r. */
static int learn_dir(struct tc_engine *eng, uint64_t parent, const char *name,
		     const struct tc_shared_name *r)
{
	struct tc_ctx ctx = { .uid = r->uid, .gid = r->gid, .umask = 0 };
	struct tc_inode m = { .mode = S_IFDIR | (r->mode & 07777) };
	struct tc_node *n;
	int rc = tc_ns_make_node(eng, parent, name, &m, &ctx, NULL, false, &n);

	if (rc)
		return rc == -EEXIST ? 0 : rc;
	if (r->schema[0] && tc_cacheattr_dir_schema(eng, n->ino, r->schema))
		tc_warn(eng, "shared tier: %s: schema not applied", r->path);
	tc_node_unpin(eng, n);
	tc_forget(eng, n->ino, 1);
	return 0;
}

/* Create regular file @name in @parent from record @r; with @replace in
 * place of the regular file there (as a rename over it would: whoever
 * reads the old one goes on reading it whole). */
static int learn_file(struct tc_engine *eng, uint64_t parent,
		      const char *name, const struct tc_shared_name *r,
		      bool replace)
{
	struct tc_ctx ctx = { .uid = r->uid, .gid = r->gid, .umask = 0 };
	struct tc_inode m = { .mode = S_IFREG | (r->mode & 07777) };
	struct tc_dirty *d;
	struct tc_node *n;
	uint64_t ino;
	int rc;

	if (eng->disk_size && r->size > eng->disk_size)
		return -EFBIG;
	rc = content_of(eng, r, &d);
	if (rc)
		return rc;
	rc = tc_ns_make_node(eng, parent, name, &m, &ctx, d, replace, &n);
	if (rc) {
		tc_dirty_free(&eng->blobs, d);
		/* a racing lookup made it (or, replacing, not a file) */
		return rc == -EEXIST && !replace ? 0 : rc;
	}
	ino = n->ino;
	rc = settle(eng, n, r);
	tc_node_unpin(eng, n);
	if (rc == -EBUSY) /* a program wrote it meanwhile: keep that */
		rc = 0;
	if (rc)
		drop_entry(eng, ino);
	tc_forget(eng, ino, 1);
	return rc;
}

/* @name is not in @parent here: ask the shared tier. 0 when it made the
 * entry (look it up again), else a miss. */
static int learn(struct tc_engine *eng, uint64_t parent, const char *name)
{
	struct tc_shared_name r;
	char path[PATH_BUF];
	int64_t now = tc_now(eng);
	uint64_t h = 0;
	int rc;

	tc_lock(eng);
	rc = path_of_locked(eng, parent, name, path);
	if (!rc && neg_fresh_locked(eng, path_hash(path), now))
		rc = -EAGAIN; /* answered lately: still absent */
	else if (!rc)
		h = path_hash(path);
	tc_unlock(eng);
	if (rc)
		goto miss;
	rc = tc_shared_get_name(eng->shared, path, &r);
	if (rc)
		goto miss;
	if (r.deleted)
		rc = -ENOENT;
	else if (S_ISDIR(r.mode))
		rc = learn_dir(eng, parent, name, &r);
	else if (S_ISREG(r.mode))
		rc = learn_file(eng, parent, name, &r, false);
	else
		rc = -ENOENT;
	tc_shared_name_free(&r);
	if (!rc) {
		shc_count(eng, hits);
		return 0;
	}
miss:
	shc_count(eng, misses);
	if (h) {
		tc_lock(eng);
		neg_put_locked(eng, h, now);
		tc_unlock(eng);
	}
	return -ENOENT;
}

/* Does record @r describe what regular file @m holds? */
static bool same_locked(struct tc_engine *eng, const struct tc_inode *m,
			const struct tc_shared_name *r)
{
	struct tc_shared_name l;
	bool same;

	if (tc_sharedpub_record_locked(eng, m, r->path, &l))
		return false;
	same = l.has_content == r->has_content && l.size == r->size &&
	       (!l.has_content || !memcmp(l.hash, r->hash, TC_HASH_LEN)) &&
	       l.mode == r->mode && l.uid == r->uid && l.gid == r->gid &&
	       l.expires_ns == r->expires_ns && !strcmp(l.tags, r->tags) &&
	       !strcmp(l.schema, r->schema);
	tc_shared_name_free(&l);
	return same;
}

/* True when @ino has unpublished writes here (they are newer than
 * anything the shared tier says). */
static bool busy(struct tc_engine *eng, uint64_t ino)
{
	struct tc_node *n;
	bool dirty;

	if (tc_node_get(eng, ino, &n))
		return true;
	tc_mutex_lock(&n->body->lock);
	dirty = n->body->dirty != NULL;
	tc_mutex_unlock(&n->body->lock);
	tc_node_unpin(eng, n);
	return dirty;
}

/* Give @ino the metadata of newer record @r, whose content it holds. */
static int update_meta(struct tc_engine *eng, uint64_t ino,
		       const struct tc_shared_name *r)
{
	struct tc_inval_list inv = { 0 };
	struct tc_node *n;
	int rc;

	rc = tc_node_get(eng, ino, &n);
	if (rc)
		return rc;
	rc = settle(eng, n, r);
	tc_node_unpin(eng, n);
	/* The kernel may cache the old attributes. */
	tc_inval_add_inode(&inv, ino);
	tc_inval_deliver(eng, &inv);
	return rc;
}

/* Regular file @name of @parent, inode @ino, was found here: compare it
 * with the shared tier if it is due. 0 (@out refreshed), or -ENOENT when
 * a newer tombstone removed it (its lookup reference dropped). */
static int revalidate(struct tc_engine *eng, uint64_t parent,
		      const char *name, struct tc_attr *out)
{
	uint64_t ino = out->st.st_ino;
	int64_t now = tc_now(eng), lv;
	struct tc_shared_name r;
	struct tc_shver v = { .ino = ino };
	char path[PATH_BUF];
	struct tc_inode m;
	uint64_t lw;
	bool have, newer, same;
	int rc;

	tc_lock(eng);
	have = tc_sharedpub_get_locked(eng, ino, &v);
	if (have && v.checked && now - v.checked < eng->shared_revalidate_ns) {
		tc_unlock(eng);
		return 0;
	}
	rc = path_of_locked(eng, parent, name, path);
	if (!rc)
		rc = tc_node_meta_locked(eng, ino, &m);
	v.ino = ino;
	v.checked = now; /* whatever the answer, trusted for a while */
	tc_sharedpub_note_locked(eng, &v);
	tc_unlock(eng);
	if (rc || tc_shared_get_name(eng->shared, path, &r))
		return 0; /* absent, stale or unreachable: keep ours */
	if (!r.deleted && !S_ISREG(r.mode)) {
		tc_shared_name_free(&r);
		return 0; /* a directory there now: ours is a file, keep it */
	}
	/* Unknown versions (a remount, a forgotten slot) are the entry's
	 * ctime, which a publish sets from the writes it publishes. */
	lv = have && v.version ? v.version : m.ctime;
	lw = have && v.version ? v.writer : 0;
	newer = r.version_ns > lv || (r.version_ns == lv && r.writer > lw);
	tc_lock(eng);
	same = !r.deleted && same_locked(eng, &m, &r);
	if (same) {
		struct tc_shver nv = {
			.ino = ino, .version = r.version_ns, .writer = r.writer,
			.checked = now,
			.learned = have ? v.learned
					: r.writer != eng->shared_writer };

		tc_sharedpub_note_locked(eng, &nv);
	} else if (!newer && have && v.version && !v.learned &&
		   v.writer == eng->shared_writer && v.version > r.version_ns) {
		/* Ours is newer, yet the servers hold an older version (two
		 * mounts' pushes crossed): push ours again, or the mounts
		 * would disagree for good. */
		tc_sharedpub_repush_locked(eng, ino, v.version);
	}
	tc_unlock(eng);
	if (r.deleted && newer) {
		drop_entry(eng, ino);
		tc_forget(eng, ino, 1);
		tc_lock(eng);
		neg_put_locked(eng, path_hash(path), now);
		tc_unlock(eng);
		shc_count(eng, removals);
		rc = -ENOENT;
	} else if (!same && newer && !busy(eng, ino)) {
		bool content = r.has_content != m.hash_set || r.size != m.size ||
			       (r.has_content &&
				memcmp(r.hash, m.hash, TC_HASH_LEN));

		/* New content is a new inode under the name, as the writer's
		 * rename made it there; new metadata changes this one. */
		if (!content && update_meta(eng, ino, &r) == 0) {
			(void)!tc_getattr(eng, ino, out);
			shc_count(eng, updates);
		} else if (content &&
			   learn_file(eng, parent, name, &r, true) == 0) {
			tc_forget(eng, ino, 1);
			tc_lock(eng);
			tc_sharedpub_forget_locked(eng, ino);
			tc_unlock(eng);
			rc = tc_lookup(eng, parent, name, out);
			shc_count(eng, updates);
		}
	}
	tc_shared_name_free(&r);
	return rc;
}

int tc_lookup_shared(struct tc_engine *eng, uint64_t parent, const char *name,
		     struct tc_attr *out)
{
	int rc = tc_lookup(eng, parent, name, out);

	if (!eng->shared || (rc && rc != -ENOENT))
		return rc;
	if (rc == 0)
		return S_ISREG(out->st.st_mode)
			       ? revalidate(eng, parent, name, out)
			       : 0;
	if (learn(eng, parent, name))
		return -ENOENT;
	return tc_lookup(eng, parent, name, out);
}

/* ------------------------------------------------------------------ */
/* Events                                                             */
/* ------------------------------------------------------------------ */

/* The directory at @path here, or 0. */
static uint64_t dir_at_locked(struct tc_engine *eng, const char *path)
{
	uint64_t ino = TC_ROOT_INO;
	char name[TC_NAME_MAX + 1];

	for (const char *p = path; *p;) {
		size_t len;

		p += strspn(p, "/");
		len = strcspn(p, "/");
		if (!len)
			break;
		if (len > TC_NAME_MAX)
			return 0;
		memcpy(name, p, len);
		name[len] = '\0';
		if (tc_index_dentry_get(&eng->ix, ino, name, &ino))
			return 0;
		p += len;
	}
	return ino;
}

/* Drop what this mount learned from the shared tier (events were lost:
 * it may have been flushed or evicted meanwhile); check the rest again. */
static int resync_locked(struct tc_engine *eng, struct tc_inval_list *inv)
{
	uint64_t *inos = malloc(RESYNC_MAX * sizeof(*inos));
	size_t n;
	int rc;

	tc_sharedpub_untrust_locked(eng);
	tc_sharedpub_flushed_locked(eng); /* the servers may have lost them */
	neg_clear_locked(eng);
	if (!inos)
		return -ENOMEM;
	n = tc_sharedpub_learned_locked(eng, inos, RESYNC_MAX);
	rc = tc_txn_begin_locked(eng);
	for (size_t i = 0; !rc && i < n; i++) {
		rc = tc_node_drop_locked(eng, inos[i], inv);
		tc_sharedpub_forget_locked(eng, inos[i]);
	}
	if (!rc || tc_txn_in_op_locked(eng))
		rc = tc_txn_end_locked(eng, rc);
	free(inos);
	tc_info(eng, "shared tier: events were lost: %zu learned entries "
		     "dropped, the others are checked again",
		n);
	return rc;
}

static void on_event(void *ctx, const struct tc_shared_event *ev)
{
	struct tc_engine *eng = ctx;
	struct tc_inval_list inv = { 0 };
	uint64_t dir = 0;
	int rc = 0;

	shc_count(eng, events);
	if (ev->type == TC_SHARED_EV_FLUSH)
		tc_ram_flush(eng->ram);
	tc_lock(eng);
	switch (ev->type) {
	case TC_SHARED_EV_FLUSH:
		rc = tc_policy_flush_disk_locked(eng, &inv);
		tc_sharedpub_flushed_locked(eng);
		neg_clear_locked(eng);
		break;
	case TC_SHARED_EV_EVICT_TAG:
		rc = tc_policy_evict_tag_locked(eng, ev->tag, &inv);
		break;
	case TC_SHARED_EV_SCHEMA:
		dir = dir_at_locked(eng, ev->dir);
		neg_clear_locked(eng);
		break;
	case TC_SHARED_EV_RESYNC:
		rc = resync_locked(eng, &inv);
		break;
	}
	if (!rc)
		rc = tc_commit_locked(eng, &inv);
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
	if (dir)
		rc = tc_cacheattr_dir_schema(eng, dir, ev->schema);
	if (rc && rc != -ENOTDIR)
		tc_warn(eng, "shared tier: applying another mount's event: %s",
			strerror(-rc));
}

void tc_sharedtier_maintain(struct tc_engine *eng)
{
	int64_t now = tc_mono_ns(), last, every;

	if (!eng->shared)
		return;
	every = eng->shared_revalidate_ns > POLL_MIN_NS
			? eng->shared_revalidate_ns
			: POLL_MIN_NS;
	last = atomic_load(&eng->shared_polled);
	if (last && now - last < every)
		return;
	atomic_store(&eng->shared_polled, now);
	if (tc_shared_poll(eng->shared, on_event, eng) < 0)
		tc_dbg(eng, "shared tier: events could not be read (later)");
}
