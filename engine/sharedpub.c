/* SPDX-License-Identifier: MIT */
/*
 * What this mount tells the shared tier (tiercachefs(8), SHARED TIER), and
 * what it knows of each entry's version there.
 *
 * Pushes. A publish (publish.c) queues the content by its hash and a name
 * record for every name of the file: path, hash, size, mode, owner,
 * mtime, the absolute deadline, ttl mode, tags, schema, and a version (the
 * publish time, and this mount's writer id to break ties). Each record
 * also queues records of the directories above it, so that another mount
 * can walk down to it one lookup at a time; those are remembered for
 * DIR_REPUSH_NS by path (a flush forgets them: it makes every record on
 * the servers stale). unlink and rmdir (namespace.c) queue a tombstone, a
 * rename (rename.c) tombstones where the names were and records where
 * they are, for a directory's whole subtree. A metadata change that
 * travels with the name (cacheattr.c's ttl, tags, schema; setattr.c's mode
 * and owner) queues the records again. Everything here only queues
 * (tc_shared_push_*(): a copy in memory, or a descriptor of the blob, or
 * of one temporary file holding a content in chunks): nothing waits on
 * the network, and all but the publish run under the engine lock.
 *
 * Versions. For each entry it pushed or learned, the mount remembers the
 * version of the record it matches and when it last compared it with the
 * shared tier (sharedtier.c compares again after shared_revalidate), and
 * whether its content came from another mount (a RESYNC drops those).
 * The table is direct-mapped by inode number: a collision forgets an
 * entry, which then costs a comparison by content at its next lookup,
 * never a wrong answer. It lives in memory only: after a remount every
 * entry is compared again.
 *
 * Called by publish.c, namespace.c, rename.c, setattr.c, cacheattr.c and
 * sharedtier.c; calls the index, the node table and policy, and the
 * shared client. All functions but open/close need the engine lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine_i.h"

/* Versions remembered (direct-mapped): 64 Ki entries, 2.5 MiB, about
 * the entries one mount touches in the time it takes to fill it twice. */
#define SHVERS_BITS 16
#define SHVERS (1u << SHVERS_BITS)

/* Directories whose records were pushed lately, by path hash. */
#define SHDIRS 1024

/* A directory's record is pushed again after this long: an item the
 * servers evicted comes back with the next publish below it. */
#define DIR_REPUSH_NS (INT64_C(60) * TC_NS_PER_S)

/* Bytes copied per step of a content in chunks into its push file. */
#define COPY_STEP 65536

/* Names of one inode pushed (hard links beyond are left out). */
#define NAMES_MAX 64

/* Entries of a renamed directory's subtree told to the shared tier: the
 * push queue holds 64 Ki items anyway. */
#define SUBTREE_MAX 65536

/* Longest path, with its NUL. */
#define PATH_BUF (TC_SHARED_PATH_MAX + 1)

/* A tag list as the records carry it: 32 tags of 64 bytes and commas. */
#define TAGS_BUF (TC_SHARED_TAGS_MAX * 65 + 1)

int tc_sharedpub_open(struct tc_engine *eng)
{
	eng->shvers = calloc(SHVERS, sizeof(*eng->shvers));
	eng->shdirs = calloc(SHDIRS, sizeof(*eng->shdirs));
	if (!eng->shvers || !eng->shdirs) {
		tc_sharedpub_close(eng);
		return -ENOMEM;
	}
	return 0;
}

void tc_sharedpub_close(struct tc_engine *eng)
{
	free(eng->shvers);
	free(eng->shdirs);
	eng->shvers = NULL;
	eng->shdirs = NULL;
}

/* ------------------------------------------------------------------ */
/* Versions                                                           */
/* ------------------------------------------------------------------ */

static struct tc_shver *slot_of(struct tc_engine *eng, uint64_t ino)
{
	return &eng->shvers[(ino * UINT64_C(0x9E3779B97F4A7C15)) >>
			    (64 - SHVERS_BITS)];
}

bool tc_sharedpub_get_locked(struct tc_engine *eng, uint64_t ino,
			     struct tc_shver *out)
{
	struct tc_shver *v;

	TC_ASSERT_LOCKED(eng);
	if (!eng->shvers)
		return false;
	v = slot_of(eng, ino);
	if (v->ino != ino)
		return false;
	*out = *v;
	return true;
}

void tc_sharedpub_note_locked(struct tc_engine *eng, const struct tc_shver *v)
{
	TC_ASSERT_LOCKED(eng);
	if (eng->shvers)
		*slot_of(eng, v->ino) = *v;
}

void tc_sharedpub_forget_locked(struct tc_engine *eng, uint64_t ino)
{
	struct tc_shver *v;

	TC_ASSERT_LOCKED(eng);
	if (!eng->shvers)
		return;
	v = slot_of(eng, ino);
	if (v->ino == ino)
		memset(v, 0, sizeof(*v));
}

void tc_sharedpub_untrust_locked(struct tc_engine *eng)
{
	TC_ASSERT_LOCKED(eng);
	for (size_t i = 0; eng->shvers && i < SHVERS; i++)
		eng->shvers[i].checked = 0;
}

size_t tc_sharedpub_learned_locked(struct tc_engine *eng, uint64_t *out,
				   size_t max)
{
	size_t n = 0;

	TC_ASSERT_LOCKED(eng);
	for (size_t i = 0; eng->shvers && i < SHVERS && n < max; i++)
		if (eng->shvers[i].ino && eng->shvers[i].learned)
			out[n++] = eng->shvers[i].ino;
	return n;
}

/* ------------------------------------------------------------------ */
/* Records                                                            */
/* ------------------------------------------------------------------ */

struct joined {
	char *out;
	size_t size, used;
};

static int join_tag(void *ctx, const char *tag)
{
	struct joined *j = ctx;
	int k = snprintf(j->out + j->used, j->size - j->used, "%s%s",
			 j->used ? "," : "", tag);

	if (k < 0 || (size_t)k >= j->size - j->used) {
		j->out[j->used] = '\0'; /* more than a record holds: cut */
		return 1;
	}
	j->used += (size_t)k;
	return 0;
}

int tc_sharedpub_record_locked(struct tc_engine *eng, const struct tc_inode *m,
			       const char *path, struct tc_shared_name *out)
{
	bool reg = S_ISREG(m->mode);
	char tags[TAGS_BUF] = "";
	struct joined j = { tags, sizeof(tags), 0 };

	TC_ASSERT_LOCKED(eng);
	memset(out, 0, sizeof(*out));
	if (reg)
		(void)!tc_index_tags_of(&eng->ix, m->ino, join_tag, &j);
	out->path = strdup(path);
	out->tags = strdup(tags);
	out->schema = strdup(m->schema);
	if (!out->path || !out->tags || !out->schema) {
		tc_shared_name_free(out);
		return -ENOMEM;
	}
	out->has_content = reg && m->hash_set && m->size > 0;
	if (out->has_content)
		memcpy(out->hash, m->hash, TC_HASH_LEN);
	out->size = reg ? m->size : 0;
	out->mode = m->mode;
	out->uid = m->uid;
	out->gid = m->gid;
	out->mtime_ns = m->mtime;
	out->expires_ns = reg ? m->expires : 0;
	out->ttl_mode = (int)tc_policy_mode(eng, m);
	out->version_ns = tc_now(eng);
	return 0;
}

/* Queue @r; a refusal (a path the records cannot hold) is only logged. */
static void push_record(struct tc_engine *eng, const struct tc_shared_name *r)
{
	int rc = tc_shared_push_name(eng->shared, r);

	if (rc)
		tc_dbg(eng, "shared tier: not pushing %s: %s", r->path,
		       strerror(-rc));
}

/* Queue the record of row @m at @path, version @version. */
static void push_row_locked(struct tc_engine *eng, const struct tc_inode *m,
			    const char *path, int64_t version)
{
	struct tc_shared_name r;

	if (tc_sharedpub_record_locked(eng, m, path, &r))
		return;
	r.version_ns = version;
	push_record(eng, &r);
	tc_shared_name_free(&r);
}

static void push_tombstone(struct tc_engine *eng, const char *path)
{
	struct tc_shared_name r = { 0 };

	r.path = (char *)path; /* read, never kept or freed */
	r.version_ns = tc_now(eng);
	r.deleted = true;
	push_record(eng, &r);
}

/* "@dir/@name" into @out (PATH_BUF), or false when too long. */
static bool join_path(const char *dir, const char *name, char *out)
{
	int k = snprintf(out, PATH_BUF, "%s%s%s", dir,
			 strcmp(dir, "/") ? "/" : "", name);

	return k > 0 && k < PATH_BUF;
}

/* Queue the records of directory @dir and those above it, up to one
 * pushed lately. */
static void push_dirs_locked(struct tc_engine *eng, uint64_t dir)
{
	int64_t now = tc_now(eng);
	char path[PATH_BUF];

	for (int depth = 0; dir != TC_ROOT_INO && depth < 4096; depth++) {
		struct tc_inode m;
		struct tc_shslot *s;
		uint64_t h;

		if (tc_node_path_locked(eng, dir, path, sizeof(path)) ||
		    tc_node_meta_locked(eng, dir, &m))
			return;
		h = XXH3_64bits(path, strlen(path));
		s = &eng->shdirs[h % SHDIRS];
		if (s->h == h && now - s->at < DIR_REPUSH_NS)
			return; /* and its ancestors with it */
		push_row_locked(eng, &m, path, now);
		s->h = h;
		s->at = now;
		if (tc_index_parent_of(&eng->ix, dir, &dir))
			return;
	}
}

struct name_list {
	struct {
		uint64_t parent, ino;
		char name[TC_NAME_MAX + 1];
	} *v;
	size_t n, cap, max;
};

static int add_to_list(void *ctx, uint64_t parent, const char *name,
		       size_t len, uint64_t ino)
{
	struct name_list *l = ctx;

	if (len > TC_NAME_MAX)
		return 0;
	if (l->n == l->max)
		return 1;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		void *nv = realloc(l->v, cap * sizeof(*l->v));

		if (!nv)
			return 1;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n].parent = parent;
	l->v[l->n].ino = ino;
	memcpy(l->v[l->n].name, name, len);
	l->v[l->n].name[len] = '\0';
	l->n++;
	return 0;
}

/* Queue a record of regular file @m at each of its names (and their
 * directories), with version @version. */
static void push_names_locked(struct tc_engine *eng, const struct tc_inode *m,
			      int64_t version)
{
	struct name_list l = { .max = NAMES_MAX };
	char dir[PATH_BUF], path[PATH_BUF];

	/* Collected first: a path is walked with the same statement. */
	(void)!tc_index_names_of(&eng->ix, m->ino, add_to_list, &l);
	for (size_t i = 0; i < l.n; i++) {
		if (tc_node_path_locked(eng, l.v[i].parent, dir, sizeof(dir)) ||
		    !join_path(dir, l.v[i].name, path))
			continue;
		push_dirs_locked(eng, l.v[i].parent);
		push_row_locked(eng, m, path, version);
	}
	free(l.v);
}

/* Remember that @ino now matches the record this mount pushed. */
static void note_own_locked(struct tc_engine *eng, uint64_t ino,
			    int64_t version)
{
	struct tc_shver v = { .ino = ino, .version = version,
			      .writer = eng->shared_writer,
			      .checked = tc_now(eng) };

	tc_sharedpub_note_locked(eng, &v);
}

/* ------------------------------------------------------------------ */
/* What the other files call                                          */
/* ------------------------------------------------------------------ */

/* Queue a content in chunks: copied from @d into a temporary file (the
 * push reads it when it is sent), hashed on the way when @hash is not
 * known yet (*@known). */
static int push_chunked(struct tc_engine *eng, struct tc_dirty *d,
			uint8_t *hash, bool *known)
{
	XXH3_state_t *hs = *known ? NULL : XXH3_createState();
	char name[32], *buf = malloc(COPY_STEP);
	XXH128_canonical_t can;
	int fd = -1, rc;

	rc = buf && (*known || hs) ? 0 : -ENOMEM;
	if (!rc)
		rc = tc_blob_tmp_create(&eng->blobs, &fd, name);
	if (hs)
		XXH3_128bits_reset(hs);
	for (uint64_t off = 0; !rc && off < d->size;) {
		ssize_t k = tc_dirty_read(&eng->blobs, d, buf, COPY_STEP, off);

		if (k <= 0) {
			rc = k ? (int)k : -EIO;
			break;
		}
		if (pwrite(fd, buf, (size_t)k, (off_t)off) != k)
			rc = -EIO;
		if (hs)
			XXH3_128bits_update(hs, buf, (size_t)k);
		off += (uint64_t)k;
	}
	if (!rc && hs) {
		XXH128_canonicalFromHash(&can, XXH3_128bits_digest(hs));
		memcpy(hash, can.digest, TC_HASH_LEN);
		*known = true;
	}
	if (!rc)
		rc = tc_shared_push_content_fd(eng->shared, hash, d->size, fd);
	if (fd >= 0)
		tc_blob_tmp_discard(&eng->blobs, fd, name);
	XXH3_freeState(hs);
	free(buf);
	return rc;
}

void tc_sharedpub_publish(struct tc_engine *eng, struct tc_node *n,
			  struct tc_dirty *d)
{
	uint8_t hash[TC_HASH_LEN];
	struct tc_dirty_slot s;
	bool known = true;
	struct tc_inode m;
	int64_t version;
	int fd, rc = 0;

	if (!eng->shared)
		return;
	tc_lock(eng);
	m = n->body->meta;
	tc_unlock(eng);
	if (m.nlink == 0 || !S_ISREG(m.mode))
		return;
	/* The content first: a record is useless to whoever cannot fetch
	 * what it names. One blob is read from its file when it is sent,
	 * not copied here. */
	memcpy(hash, m.hash, TC_HASH_LEN);
	if (m.size > 0 && tc_dirty_slots(d) == 1) {
		tc_dirty_slot(d, 0, &s);
		if (s.data)
			rc = tc_shared_push_content(eng->shared, hash, s.data,
						    m.size);
		else if (!(rc = tc_blob_open_read(&eng->blobs, hash, &fd))) {
			rc = tc_shared_push_content_fd(eng->shared, hash,
						       m.size, fd);
			close(fd);
		}
	} else if (m.size > 0) {
		known = m.hash_set;
		rc = push_chunked(eng, d, hash, &known);
		if (known && !m.hash_set)
			tc_content_remember_hash(eng, &m, hash);
	}
	if (rc)
		tc_dbg(eng, "shared tier: content of inode %llu not pushed: %s",
		       (unsigned long long)n->ino, strerror(-rc));
	tc_lock(eng);
	m = n->body->meta;
	if (known && m.size > 0 && !m.hash_set) {
		m.hash_set = true; /* the row's hint was not kept: still ours */
		memcpy(m.hash, hash, TC_HASH_LEN);
	}
	version = tc_now(eng);
	push_names_locked(eng, &m, version);
	note_own_locked(eng, n->ino, version);
	tc_unlock(eng);
}

void tc_sharedpub_names_locked(struct tc_engine *eng, uint64_t ino)
{
	struct tc_inode m;
	int64_t version;

	TC_ASSERT_LOCKED(eng);
	if (!eng->shared || tc_node_meta_locked(eng, ino, &m) ||
	    !S_ISREG(m.mode) || m.nlink == 0)
		return;
	version = tc_now(eng);
	push_names_locked(eng, &m, version);
	note_own_locked(eng, ino, version);
}

void tc_sharedpub_repush_locked(struct tc_engine *eng, uint64_t ino,
				int64_t version)
{
	struct tc_inode m;
	int fd;

	TC_ASSERT_LOCKED(eng);
	if (!eng->shared || tc_node_meta_locked(eng, ino, &m) ||
	    !S_ISREG(m.mode) || m.nlink == 0)
		return;
	/* The content too: the servers may have lost it with the name. A
	 * content in the index is read into memory, a blob by descriptor. */
	if (m.hash_set && m.size > 0 &&
	    tc_blob_open_read(&eng->blobs, m.hash, &fd) == 0) {
		(void)!tc_shared_push_content_fd(eng->shared, m.hash, m.size,
						 fd);
		close(fd);
	} else if (m.hash_set && m.size > 0 && m.size <= eng->inline_max) {
		void *buf = malloc(m.size);

		if (buf && !tc_index_blob_data(&eng->ix, m.hash, buf, m.size))
			(void)!tc_shared_push_content(eng->shared, m.hash, buf,
						      m.size);
		free(buf);
	}
	push_names_locked(eng, &m, version);
}

void tc_sharedpub_tombstone_locked(struct tc_engine *eng, uint64_t parent,
				   const char *name)
{
	char dir[PATH_BUF], path[PATH_BUF];

	TC_ASSERT_LOCKED(eng);
	if (!eng->shared ||
	    tc_node_path_locked(eng, parent, dir, sizeof(dir)) ||
	    !join_path(dir, name, path))
		return;
	push_tombstone(eng, path);
}

/* A renamed directory @dir, now at @new_path, was at @old_path (or NULL):
 * its subtree's names move with it. */
static void moved_subtree_locked(struct tc_engine *eng, uint64_t dir,
				 const char *new_path, const char *old_path)
{
	struct name_list l = { .max = SUBTREE_MAX };
	size_t prefix = strlen(new_path);
	char ppath[PATH_BUF], path[PATH_BUF], old[PATH_BUF];
	int64_t version = tc_now(eng);

	(void)!tc_index_subtree_names(&eng->ix, dir, add_to_list, &l);
	if (l.n == SUBTREE_MAX)
		tc_warn(eng, "shared tier: a rename of more than %d entries: "
			     "the others stay at their old paths there until "
			     "they expire",
			SUBTREE_MAX);
	for (size_t i = 0; i < l.n; i++) {
		struct tc_inode m;

		if (tc_node_path_locked(eng, l.v[i].parent, ppath,
					sizeof(ppath)) ||
		    !join_path(ppath, l.v[i].name, path) ||
		    tc_node_meta_locked(eng, l.v[i].ino, &m))
			continue;
		if (old_path && strncmp(path, new_path, prefix) == 0 &&
		    snprintf(old, sizeof(old), "%s%s", old_path,
			     path + prefix) < (int)sizeof(old))
			push_tombstone(eng, old);
		if (S_ISREG(m.mode)) {
			push_row_locked(eng, &m, path, version);
			note_own_locked(eng, m.ino, version);
		} else if (S_ISDIR(m.mode)) {
			push_row_locked(eng, &m, path, version);
		}
	}
	free(l.v);
}

void tc_sharedpub_moved_locked(struct tc_engine *eng, uint64_t ino,
			       const char *old_path)
{
	char path[PATH_BUF];
	struct tc_inode m;

	TC_ASSERT_LOCKED(eng);
	if (!eng->shared || tc_node_meta_locked(eng, ino, &m))
		return;
	if (old_path)
		push_tombstone(eng, old_path);
	if (S_ISREG(m.mode)) {
		tc_sharedpub_names_locked(eng, ino);
	} else if (S_ISDIR(m.mode) &&
		   !tc_node_path_locked(eng, ino, path, sizeof(path))) {
		push_dirs_locked(eng, ino);
		moved_subtree_locked(eng, ino, path, old_path);
	}
}

void tc_sharedpub_flushed_locked(struct tc_engine *eng)
{
	TC_ASSERT_LOCKED(eng);
	if (eng->shdirs)
		memset(eng->shdirs, 0, SHDIRS * sizeof(*eng->shdirs));
}
