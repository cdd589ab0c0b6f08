/* SPDX-License-Identifier: MIT */
/*
 * Private declarations shared by the engine's modules. Nothing here is part
 * of the public API; tests may reach it through the static library.
 *
 * The modules stand on floors: a file calls only files on floors below it,
 * never one above, and no two files call each other. From the bottom:
 *
 *   shared*.c            the shared tier's client (memcached; it knows
 *                          nothing of the engine: sharedclient_i.h)
 *   base.c parse.c       clock, log, error text, locks; value grammars
 *   ram.c                the RAM tier (contents by hash)
 *   index.c              SQLite: the connection, transactions, every
 *   index_inode.c          statement of the engine (check's included)
 *   index_query.c
 *   index_check.c
 *   blob.c               blob files and a blob's whole life: reference
 *                          counts, pending files, deletion after commit
 *   dirty.c              unpublished content of a writer
 *   txn.c                transactions with the counters they move
 *   nodebody.c           node bodies: rows loaded on demand, the bounded
 *                          cache of idle ones
 *   nodetab.c            the node table's storage: slabs, index by ino
 *   node.c               the node table, invalidations, access times
 *   policy.c             lifetimes, schema, limits, sweeps
 *   sharedpub.c          what this mount pushes to the shared tier, and
 *                          the version there of each entry it knows
 *   namespace.c          lookup, create, link, unlink, readdir, ...
 *   tags.c               the tags in use and the paths that carry one
 *   rename.c             rename and exchange
 *   content.c            open, read, write, publish, promotion, setattr
 *   cacheattr.c          the user.tiercache.* attributes and controls
 *   xattr.c              user.* storage and the namespace filter
 *   stats.c              reporting counters (the daemon formats them)
 *   sharedtier.c         lookups answered and revalidated from the shared
 *                          tier, other mounts' events applied
 *   store.c              opening and closing a store, maintenance thread
 *   check.c              the offline --check
 *
 * Lock discipline (outermost first):
 *
 *   node->lock  ->  eng->lock  ->  ram->lock
 *
 *   - eng->lock protects the SQLite connection, the node table, every
 *     node's reference counts, body and metadata copy (node->body->meta),
 *     the body cache, the access-time batch and the disk counters.
 *     Functions that require it end in _locked and assert it
 *     (TC_ASSERT_LOCKED).
 *   - node->lock (node->body->lock, there while the node is pinned or
 *     open) protects a node's data: its dirty state and its loaded
 *     content. A publish holds node->lock and takes eng->lock for the
 *     commit. Code holding eng->lock never takes a node lock. Functions
 *     that require it end in _nlocked and assert it.
 *   - ram->lock is internal to ram.c (suffix _rlocked there).
 */
#ifndef TC_ENGINE_I_H
#define TC_ENGINE_I_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>

#include "shared_i.h"
#include "tiercache.h"

#define TC_HASH_LEN 16
#define TC_HASH_HEX 32

#define TC_NOINLINE __attribute__((noinline))

#define TC_NS_PER_S INT64_C(1000000000)

/* ------------------------------------------------------------------ */
/* base.c: clock, log, error text, locks                              */
/* ------------------------------------------------------------------ */

/* What every layer needs from its engine: where to log, what time it is. */
struct tc_base {
	tc_log_fn log_fn;
	void *log_ctx;
	int log_level;
	tc_clock_fn clock;
	void *clock_ctx;
};

void tc_logb(const struct tc_base *b, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Wall-clock time in ns, from the injected clock when there is one. */
int64_t tc_base_now(const struct tc_base *b);
/* Record the one-line message tc_engine_last_error() returns (and log it
 * as an error). */
void tc_set_last_error(const struct tc_base *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void tc_clear_last_error(void);
void tc_ns_to_ts(int64_t ns, struct timespec *ts);

/*
 * A mutex that knows its owner in debug builds, so a function can assert
 * that its caller holds it (SQLite's sqlite3_mutex_held(), the kernel's
 * lockdep_assert_held()).
 */
struct tc_mutex {
	pthread_mutex_t m;
#ifndef NDEBUG
	_Atomic(pthread_t) owner;
	atomic_bool held;
#endif
};

void tc_mutex_init(struct tc_mutex *l);
void tc_mutex_destroy(struct tc_mutex *l);
/* A condition variable on the monotonic clock, and waits on it with @l
 * held (released during the wait, held again after). */
void tc_cond_init(pthread_cond_t *cond);
void tc_mutex_wait(struct tc_mutex *l, pthread_cond_t *cond);
void tc_mutex_timedwait(struct tc_mutex *l, pthread_cond_t *cond,
			int64_t ns);
/* Monotonic time in ns (intervals, not deadlines of entries). */
int64_t tc_mono_ns(void);

static inline void tc_mutex_lock(struct tc_mutex *l)
{
	pthread_mutex_lock(&l->m);
#ifndef NDEBUG
	atomic_store_explicit(&l->owner, pthread_self(), memory_order_relaxed);
	atomic_store_explicit(&l->held, true, memory_order_relaxed);
#endif
}

static inline void tc_mutex_unlock(struct tc_mutex *l)
{
#ifndef NDEBUG
	atomic_store_explicit(&l->held, false, memory_order_relaxed);
#endif
	pthread_mutex_unlock(&l->m);
}

#ifndef NDEBUG
static inline bool tc_mutex_held(struct tc_mutex *l)
{
	return atomic_load_explicit(&l->held, memory_order_relaxed) &&
	       pthread_equal(atomic_load_explicit(&l->owner,
						  memory_order_relaxed),
			     pthread_self());
}
#define TC_ASSERT_HELD(l) assert(tc_mutex_held(l))
#else
#define TC_ASSERT_HELD(l) ((void)0)
#endif

/* A name the kernel may have cached that changed behind its back. */
struct tc_inval {
	uint64_t parent;
	uint64_t ino;
	char *name;
};

/* Collected under the engine lock, delivered after it (node.c). */
struct tc_inval_list {
	struct tc_inval *v;
	size_t n, cap;
};

/* Append (a copy of @len bytes of @name); on ENOMEM the entry is dropped:
 * the kernel's entry then times out instead. */
void tc_inval_add(struct tc_inval_list *l, uint64_t parent, const char *name,
		  size_t len, uint64_t ino);

/* ------------------------------------------------------------------ */
/* stats.c: counters                                                  */
/* ------------------------------------------------------------------ */

/* The counters of .stats (tiercachefs(8), STATISTICS). Atomic so the hot
 * path needs no lock. */
struct tc_counters {
	atomic_uint_fast64_t gets, ram_hits, disk_hits, misses, puts, deletes,
		ram_evictions, disk_evictions, expirations, schema_discards,
		promotions, corruptions, read_bytes, write_bytes;
};

#define tc_count(eng, field, n)                                               \
	atomic_fetch_add_explicit(&(eng)->counters.field, (n),                 \
				  memory_order_relaxed)

/* ------------------------------------------------------------------ */
/* ram.c: the RAM tier                                                */
/* ------------------------------------------------------------------ */

/*
 * One content in RAM, keyed by its hash. refs counts the table's own
 * reference (while in_table) plus one per pin (an open handle's content).
 * data[] is immutable once inserted.
 */
struct tc_ram_item {
	uint8_t hash[TC_HASH_LEN];
	size_t size;
	atomic_uint refs;
	bool in_table;             /* protected by ram->lock */
	int64_t last_access;       /* ns; protected by ram->lock */
	int64_t ttl_ns;            /* idle limit: <0 the tier's, 0 never */
	struct tc_ram_item *hnext; /* hash chain; ram->lock */
	struct tc_ram_item *prev, *next; /* LRU list, head = most recent */
	char data[];
};

struct tc_ram;

int tc_ram_open(struct tc_counters *counters, struct tc_ram **out) TC_WUR;
void tc_ram_close(struct tc_ram *ram);
void tc_ram_set_limits(struct tc_ram *ram, uint64_t bytes, uint64_t items,
		       uint64_t max_item, int64_t ttl_ns);
/* Pinned item for @hash (caller unrefs), or NULL. Refreshes its recency. */
struct tc_ram_item *tc_ram_get(struct tc_ram *ram, const uint8_t *hash,
			       int64_t now);
/* New unlinked item of @size bytes with one reference (the caller's). */
struct tc_ram_item *tc_ram_alloc(size_t size);
/*
 * Offer @item to the tier. Returns the item to use (pinned for the caller):
 * @item itself, or an equal one already there (then @item is unref'd). Items
 * over max_ram_item or the byte limit are not inserted but stay usable.
 * Evicts least recently used unpinned items to respect the limits.
 * @ttl_ns: this content's idle limit from a tag rule (<0: the tier's).
 */
struct tc_ram_item *tc_ram_insert(struct tc_ram *ram, struct tc_ram_item *item,
				  int64_t now, int64_t ttl_ns);
void tc_ram_unref(struct tc_ram_item *item);
bool tc_ram_contains(struct tc_ram *ram, const uint8_t *hash);
bool tc_ram_fits(struct tc_ram *ram, uint64_t size);
/* Drop items idle since before now - ram_ttl; returns how many. */
uint64_t tc_ram_expire(struct tc_ram *ram, int64_t now);
/* Set the idle limit of content @hash if it is in RAM (<0: the tier's). */
void tc_ram_retune(struct tc_ram *ram, const uint8_t *hash, int64_t ttl_ns);
/* Drop one content (corrupt, or its last entry went away). */
void tc_ram_drop(struct tc_ram *ram, const uint8_t *hash);
/* Drop everything unpinned (flush=ram). */
void tc_ram_flush(struct tc_ram *ram);
void tc_ram_usage(struct tc_ram *ram, uint64_t *items, uint64_t *bytes);

/* ------------------------------------------------------------------ */
/* index*.c: SQLite                                                   */
/* ------------------------------------------------------------------ */

/* One inode row. Times in ns. hash_set false = empty content. */
struct tc_inode {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint64_t rdev, size;
	int64_t atime, mtime, ctime;
	bool hash_set;
	uint8_t hash[TC_HASH_LEN];
	int64_t ttl;      /* own ttl: <0 unset, 0 never, >0 ns */
	int ttl_mode;     /* own mode: <0 unset */
	int64_t dttl;     /* inherited at creation (dirs: their default) */
	int dttl_mode;
	int64_t expires;  /* 0 = never */
	char schema[65];  /* "" = none */
	int64_t lru;      /* last access ns (regular files) */
	uint32_t nchunks; /* > 1: the content is that many chunk rows, and hash
			   * (when hash_set) is the whole content's, holding
			   * no reference; else hash is the one blob's */
	const char *target; /* symlink target, for insert only (borrowed) */
};

/* True when @m's hash names its one blob (and holds a reference to it). */
static inline bool tc_inode_owns_hash(const struct tc_inode *m)
{
	return m->hash_set && m->nchunks < 2;
}

/* The size counters the index keeps for a clean shutdown. */
struct tc_index_counters {
	uint64_t disk_bytes, disk_items, blob_bytes;
};

/*
 * The SQLite connection and its prepared statements. Used under the
 * engine lock (@lock) by a live engine, alone by the offline check (@lock
 * NULL). Every SQL statement of the engine is in index*.c.
 */
struct tc_index {
	struct sqlite3 *db;
	struct sqlite3_stmt **st;   /* prepared once, by enum in index.c */
	const struct tc_base *base;
	struct tc_mutex *lock;
	char path[4096];            /* STORE/index.db */
	bool clean;                 /* opened after a clean shutdown */
	bool ready;                 /* opened and prepared */
	int wal_fd;                 /* STORE/index.db-wal, for fsync */
};

#define TC_FORMAT_VERSION 2

/* Bits of meta "dir_flags": some directory has ever had a schema / ttl. */
#define TC_DIR_SCHEMA 1
#define TC_DIR_TTL 2

/* Open (creating when @create) STORE/index.db with the engine's settings;
 * @counters receives the size counters (kept at a clean shutdown, else
 * counted). -EPROTONOSUPPORT for a newer format, -EPROTO when corrupt. */
int tc_index_open(struct tc_index *ix, const char *store,
		  const struct tc_base *base, struct tc_mutex *lock,
		  bool sync_off, bool create,
		  struct tc_index_counters *counters) TC_WUR;
void tc_index_close(struct tc_index *ix);
/* The last error message of the connection (for one-line reports). */
const char *tc_index_errmsg(struct tc_index *ix);
int tc_index_begin(struct tc_index *ix) TC_WUR;
/* Commit; @durable makes this commit fsync (synchronous=FULL). */
int tc_index_commit(struct tc_index *ix, bool durable) TC_WUR;
void tc_index_rollback(struct tc_index *ix);
/* A savepoint inside the open transaction (one operation of a group):
 * released into it, or rolled back alone. */
int tc_index_savepoint(struct tc_index *ix) TC_WUR;
int tc_index_release(struct tc_index *ix) TC_WUR;
int tc_index_rollback_to(struct tc_index *ix) TC_WUR;
bool tc_index_in_txn(struct tc_index *ix);
/* A descriptor of the WAL file (owned by the index), to fsync it: with
 * synchronous=NORMAL a commit writes its frames without syncing them, and
 * one fsync of the WAL makes every commit before it durable. */
int tc_index_wal_fd(struct tc_index *ix, int *fd) TC_WUR;
int tc_index_checkpoint(struct tc_index *ix) TC_WUR;
/* Record the counters and a clean-shutdown mark (the next open then skips
 * the full integrity check and the counting queries). */
int tc_index_mark_clean(struct tc_index *ix,
			const struct tc_index_counters *c) TC_WUR;
int tc_index_meta_set(struct tc_index *ix, const char *key,
		      int64_t value) TC_WUR;
/* The integer meta value @key, or @dflt when there is none. */
int64_t tc_index_meta_get(struct tc_index *ix, const char *key, int64_t dflt);
/* The dir_flags bits, from meta or (once) by scanning the inodes. */
int tc_index_dir_flags(struct tc_index *ix, int64_t *flags) TC_WUR;

/* index_inode.c: inode rows */
int tc_index_inode_get(struct tc_index *ix, uint64_t ino,
		       struct tc_inode *out) TC_WUR;
/* Insert @o with inode number o->ino (AUTOINCREMENT keeps the highest). */
int tc_index_inode_insert(struct tc_index *ix, struct tc_inode *o) TC_WUR;
/* Make @o what reading its row back would give (the columns written as
 * NULL, the borrowed target gone). */
void tc_index_inode_as_stored(struct tc_inode *o);
int tc_index_inode_update(struct tc_index *ix,
			  const struct tc_inode *o) TC_WUR;
/* Write only @o's mtime and ctime (a directory's queued row). */
int tc_index_inode_times(struct tc_index *ix, const struct tc_inode *o) TC_WUR;
/* Write only @o's nlink, mtime and ctime, what a change of names changes
 * (the rest of the row is current: every other change writes it). */
int tc_index_inode_links(struct tc_index *ix,
			 const struct tc_inode *o) TC_WUR;
/* Write only @o's mode, owner and times (what a SETATTR other than a
 * truncate changes). */
int tc_index_inode_attrs(struct tc_index *ix,
			 const struct tc_inode *o) TC_WUR;
/* Delete the row of @ino with its xattrs and tags. */
int tc_index_inode_purge(struct tc_index *ix, uint64_t ino) TC_WUR;
/* Recency (only forward) and, when @expires > 0, a new deadline. */
int tc_index_set_lru(struct tc_index *ix, uint64_t ino, int64_t lru,
		     int64_t expires) TC_WUR;
/* The highest inode number ever given out. */
int tc_index_last_ino(struct tc_index *ix, uint64_t *ino) TC_WUR;
/* Symlink target into @buf (NUL-terminated); -ERANGE when too small. */
int tc_index_readlink(struct tc_index *ix, uint64_t ino, char *buf,
		      size_t size) TC_WUR;
/* Inodes without links (a crash's unlinked-but-open files), in a new
 * array (*out, freed by the caller). */
int tc_index_orphans(struct tc_index *ix, uint64_t **out,
		     size_t *count) TC_WUR;

/* index_query.c: dentries */
int tc_index_dentry_get(struct tc_index *ix, uint64_t parent,
			const char *name, uint64_t *ino) TC_WUR;
int tc_index_dentry_insert(struct tc_index *ix, uint64_t parent,
			   const char *name, uint64_t ino) TC_WUR;
int tc_index_dentry_delete(struct tc_index *ix, uint64_t parent,
			   const char *name) TC_WUR;
int tc_index_dentry_move(struct tc_index *ix, uint64_t p1, const char *n1,
			 uint64_t p2, const char *n2) TC_WUR;
/* Delete every name of @ino. */
int tc_index_dentries_drop(struct tc_index *ix, uint64_t ino) TC_WUR;
/* Parent directory of @ino (its first name); -ENOENT for none. */
int tc_index_parent_of(struct tc_index *ix, uint64_t ino,
		       uint64_t *parent) TC_WUR;
bool tc_index_dir_empty(struct tc_index *ix, uint64_t dir);
/* One name of an inode: a callback of the iterations below. The name is
 * @len bytes, not NUL-terminated, valid during the call. Nonzero stops. */
typedef int (*tc_index_name_fn)(void *ctx, uint64_t parent, const char *name,
				size_t len, uint64_t ino);
int tc_index_names_of(struct tc_index *ix, uint64_t ino, tc_index_name_fn fn,
		      void *ctx) TC_WUR;
/* Every name in directory @dir and, recursively, in its subdirectories. */
int tc_index_subtree_names(struct tc_index *ix, uint64_t dir,
			   tc_index_name_fn fn, void *ctx) TC_WUR;
/* One entry of a listing: dentry id (the cookie), name, its inode row.
 * The callback may use every other index function. Nonzero stops. */
typedef int (*tc_index_dirent_fn)(void *ctx, uint64_t id, const char *name,
				  size_t len, const struct tc_inode *m);
int tc_index_list_dir(struct tc_index *ix, uint64_t dir, uint64_t after_id,
		      tc_index_dirent_fn fn, void *ctx) TC_WUR;

/* index_query.c: blob rows and pending blob files */
/* References of blob @hash (0 when unknown). */
int64_t tc_index_blob_refs(struct tc_index *ix, const uint8_t *hash);
/* One more reference to @hash of @size bytes, inserting the row (with
 * @inline_data when not NULL) when it is new. */
int tc_index_blob_ref(struct tc_index *ix, const uint8_t *hash, uint64_t size,
		      const void *inline_data) TC_WUR;
/* One reference less: *@refs left, the blob's *@size, *@file when its
 * content is a file (not inline). The row goes with its last reference
 * (*@refs 0). Unknown blobs report refs 1. */
int tc_index_blob_unref(struct tc_index *ix, const uint8_t *hash,
			int64_t *refs, uint64_t *size, bool *file) TC_WUR;
/* Copy the inline content of @hash (exactly @len bytes) into @dst:
 * -ENOENT when the blob is a file (or unknown), -EIO when the row's data
 * has another length. */
int tc_index_blob_data(struct tc_index *ix, const uint8_t *hash, void *dst,
		       size_t len) TC_WUR;
/* True when the content of @hash lives inside the index. */
bool tc_index_blob_is_inline(struct tc_index *ix, const uint8_t *hash);
int tc_index_pending_add(struct tc_index *ix, const uint8_t *hash) TC_WUR;
int tc_index_pending_del(struct tc_index *ix, const uint8_t *hash) TC_WUR;
/* Every pending hash, in a new array (*out, freed by the caller). */
int tc_index_pending_list(struct tc_index *ix, uint8_t (**out)[TC_HASH_LEN],
			  size_t *count) TC_WUR;

/* index_query.c: chunks of contents larger than one chunk */
/* The chunk hashes of @ino in order (idx 0, 1, ...), in a new array (*out,
 * freed by the caller); -EIO when the rows have a gap. */
int tc_index_chunks(struct tc_index *ix, uint64_t ino,
		    uint8_t (**out)[TC_HASH_LEN], size_t *count) TC_WUR;
int tc_index_chunk_set(struct tc_index *ix, uint64_t ino, uint64_t idx,
		       const uint8_t *hash) TC_WUR;
/* Delete @ino's chunk rows from @idx on; their hashes (each held one blob
 * reference, for the caller to drop) in a new array. */
int tc_index_chunks_cut(struct tc_index *ix, uint64_t ino, uint64_t idx,
			uint8_t (**out)[TC_HASH_LEN], size_t *count) TC_WUR;

/* index_query.c: user.* attributes */
/* Value of @name into @buf: its length, -ENODATA, -ERANGE (size 0 asks
 * for the length). */
ssize_t tc_index_xattr_get(struct tc_index *ix, uint64_t ino,
			   const char *name, void *buf, size_t size);
int tc_index_xattr_set(struct tc_index *ix, uint64_t ino, const char *name,
		       const void *value, size_t size) TC_WUR;
/* Bytes the listing of @ino's names takes, @name's excluded. */
int64_t tc_index_xattr_names_len(struct tc_index *ix, uint64_t ino,
				 const char *name);
/* The names, NUL-separated, into @buf when they fit @size; returns the
 * bytes they take. */
size_t tc_index_xattr_list(struct tc_index *ix, uint64_t ino, char *buf,
			   size_t size);
/* -ENODATA when @ino has no attribute @name. */
int tc_index_xattr_delete(struct tc_index *ix, uint64_t ino,
			  const char *name) TC_WUR;

/* index_query.c: tags */
int tc_index_tags_set(struct tc_index *ix, uint64_t ino, char tags[][65],
		      int count) TC_WUR;
/* Each tag of @ino, in the order it was written. Nonzero stops. */
typedef int (*tc_index_tag_fn)(void *ctx, const char *tag);
int tc_index_tags_of(struct tc_index *ix, uint64_t ino, tc_index_tag_fn fn,
		     void *ctx) TC_WUR;
/* Inodes with links carrying @tag, in a new array (*out, freed by the
 * caller): unlinked ones, open somewhere or waiting for their purge, are
 * no entries. */
int tc_index_tag_inos(struct tc_index *ix, const char *tag, uint64_t **out,
		      size_t *count) TC_WUR;
/* Up to @max inodes carrying @tag with numbers above @after, ascending
 * (pages of a long list, from the tag table's primary key). */
int tc_index_tag_inos_after(struct tc_index *ix, const char *tag,
			    uint64_t after, uint64_t *out, size_t max,
			    size_t *count) TC_WUR;
/* The smallest tag some entry carries that sorts after @after ("" for the
 * first) into @out; -ENOENT past the last. One index seek, so the tags in
 * use are listed without reading who carries them. */
int tc_index_tag_next(struct tc_index *ix, const char *after,
		      char out[65]) TC_WUR;

/* index_query.c: paths */
/* The path of directory @dir from the root, "/a/b" ("" for the root), in
 * a new string (*out, freed by the caller; *len its length), walking up
 * its names. Uses a statement of its own: may run inside the iterations
 * above. -ENOENT when a directory on the way has no name, -ELOOP. */
int tc_index_dir_path(struct tc_index *ix, uint64_t dir, char **out,
		      size_t *len) TC_WUR;

/* index_query.c: scans; each fills @out with up to @max inode numbers */
/* Least recently used entries first, ties broken by name. */
int tc_index_lru_oldest(struct tc_index *ix, uint64_t *out, size_t max,
			size_t *count) TC_WUR;
/* Entries whose deadline is at or before @now. */
int tc_index_expired(struct tc_index *ix, int64_t now, uint64_t *out,
		     size_t max, size_t *count) TC_WUR;
/* Non-directory entries with inode numbers above @after, ascending. */
int tc_index_nondirs(struct tc_index *ix, uint64_t after, uint64_t *out,
		     size_t max, size_t *count) TC_WUR;

/* index_check.c: the offline check's queries (a connection of its own) */
int tc_index_check_open(struct tc_index *ix, const char *store,
			const struct tc_base *base) TC_WUR;
/* Each inode with a content: its hash (NULL when the column is malformed),
 * size, and inline data (NULL when the content is a file). */
typedef void (*tc_index_content_fn)(void *ctx, int64_t ino,
				    const uint8_t *hash, uint64_t size,
				    const void *data, size_t data_len);
int tc_index_check_contents(struct tc_index *ix, tc_index_content_fn fn,
			    void *ctx) TC_WUR;
/* Remember @ino as untrustworthy (dropped by the repair). */
int tc_index_check_mark_bad(struct tc_index *ix, int64_t ino) TC_WUR;
/* Count blob rows whose refcount disagrees with the inodes. */
int tc_index_check_refcounts(struct tc_index *ix, uint64_t *drift) TC_WUR;
/* Is blob @hash used by an inode (all inodes, or only those not marked
 * bad when @after_repair), and is it pending? */
int tc_index_check_blob_state(struct tc_index *ix, const uint8_t *hash,
			      bool after_repair, bool *used,
			      bool *pending) TC_WUR;
/* Drop the bad inodes and rewrite the blob table from the inodes. */
int tc_index_check_repair(struct tc_index *ix) TC_WUR;

/* ------------------------------------------------------------------ */
/* blob.c: blob files and a blob's life                               */
/* ------------------------------------------------------------------ */

struct tc_blob_store {
	int store_fd; /* the store directory */
	int blobs_fd; /* STORE/blobs */
	int tmp_fd;   /* STORE/tmp */
	const struct tc_blob_ops *ops;
	atomic_uint_fast64_t tmp_seq;
};

/* "ab/cdef…" (2 + 1 + 30 characters + NUL). */
#define TC_BLOB_NAME_LEN (TC_HASH_HEX + 2)
void tc_hash_hex(const uint8_t *hash, char out[TC_HASH_HEX + 1]);
int tc_hash_parse(const char *hex, uint8_t *hash);
void tc_blob_name(const uint8_t *hash, char out[TC_BLOB_NAME_LEN]);
void tc_hash_buf(const void *buf, size_t len, uint8_t *hash);

int tc_blob_store_open(struct tc_blob_store *bs, int store_fd,
		       const struct tc_blob_ops *ops) TC_WUR;
void tc_blob_store_close(struct tc_blob_store *bs);
/* Remove every file in tmp/; returns how many were removed. */
uint64_t tc_blob_clean_tmp(struct tc_blob_store *bs);
/* Create a temporary file in tmp/; *name receives its name. */
int tc_blob_tmp_create(struct tc_blob_store *bs, int *fd,
		       char name[32]) TC_WUR;
void tc_blob_tmp_discard(struct tc_blob_store *bs, int fd, const char *name);
/* Write @len bytes of @buf at @off fully (through the ops table). */
int tc_blob_pwrite_all(struct tc_blob_store *bs, int fd, const void *buf,
		       size_t len, off_t off) TC_WUR;
int tc_blob_pread_all(struct tc_blob_store *bs, int fd, void *buf, size_t len,
		      off_t off) TC_WUR;
int tc_blob_fsync(struct tc_blob_store *bs, int fd) TC_WUR;
/* Start writing @fd's dirty pages back, without waiting (a hint for the
 * fsync that follows: several files' writeback then overlaps). */
void tc_blob_start_sync(int fd);
/* fsync blob directory @dir, where the blobs whose hash starts with that
 * byte are. */
int tc_blob_sync_dir(struct tc_blob_store *bs, uint8_t dir) TC_WUR;
/* Move temporary file @name into place as the blob @hash (fsync it first,
 * and its directory after, when @durable); the fd stays open and owned by
 * the caller. */
int tc_blob_commit_tmp(struct tc_blob_store *bs, int fd, const char *name,
		       const uint8_t *hash, bool durable) TC_WUR;
/* Move blob @hash's file into tmp/ under a new name (in @name), for the
 * reaper to delete it without the engine lock. */
int tc_blob_uncommit(struct tc_blob_store *bs, const uint8_t *hash,
		     char name[32]) TC_WUR;
int tc_blob_open_read(struct tc_blob_store *bs, const uint8_t *hash,
		      int *fd) TC_WUR;
/* Read the whole blob into @buf (exactly @len bytes) and verify its hash:
 * -EIO when short, long or mismatched. */
int tc_blob_read_verified(struct tc_blob_store *bs, const uint8_t *hash,
			  void *buf, size_t len) TC_WUR;
/* Check that blob file @hash holds @size bytes hashing to @hash, reading
 * through the ops table: 0, -ENOENT, -EIO. */
int tc_blob_verify(struct tc_blob_store *bs, const uint8_t *hash,
		   uint64_t size) TC_WUR;
int tc_blob_unlink(struct tc_blob_store *bs, const uint8_t *hash);

struct tc_engine;
struct tc_hold {
	uint8_t hash[TC_HASH_LEN];
	uint32_t count;
};
/* The blob's life in the index, inside the caller's transaction: */
bool tc_blob_known_locked(struct tc_engine *eng, const uint8_t *hash);
/* Note that a file for @hash is about to be written (before it exists), so
 * a crash before the commit that references it leaves no orphan. */
int tc_blob_pending_locked(struct tc_engine *eng, const uint8_t *hash) TC_WUR;
/* One more reference to content @hash of @size bytes (@inline_data: kept
 * in the index); @wrote: this publish wrote its file (no longer pending). */
int tc_blob_ref_locked(struct tc_engine *eng, const uint8_t *hash,
		       uint64_t size, const void *inline_data,
		       bool wrote) TC_WUR;
/* One reference less; the last one deletes the row, and the file once
 * that commit is durable (tc_blob_retire_locked, tc_blob_reap_locked). */
int tc_blob_unref_locked(struct tc_engine *eng, const uint8_t *hash) TC_WUR;
/* After a commit: the blobs that lost their last reference in it wait for
 * a WAL fsync covering it (commit.c), then for tc_blob_reap_locked(). */
void tc_blob_retire_locked(struct tc_engine *eng);
/* Delete the files of retired blobs a WAL fsync covered (unless
 * referenced again, or held). With @aside, at most @max of them, moved
 * into tmp/ under the names put in @aside for the caller to delete with
 * tc_blob_tmp_discard() after dropping the lock; returns how many. */
size_t tc_blob_reap_locked(struct tc_engine *eng, char (*aside)[32],
			   size_t max);
/* A hold keeps blob @hash's file while nothing references it (a dirty
 * slot naming it until its publish). The last release of a blob nothing
 * references deletes its file. */
void tc_blob_hold_locked(struct tc_engine *eng, const uint8_t *hash);
void tc_blob_release_locked(struct tc_engine *eng, const uint8_t *hash);
/* Chunks read from disk and found to match their hash since the store was
 * opened (files are immutable: checked once). Their own lock. */
bool tc_blob_is_verified(struct tc_engine *eng, const uint8_t *hash);
void tc_blob_set_verified(struct tc_engine *eng, const uint8_t *hash);
/* Delete the blob files a crash left pending and unreferenced. */
int tc_blob_reclaim_pending_locked(struct tc_engine *eng) TC_WUR;

/* ------------------------------------------------------------------ */
/* dirty.c: unpublished content                                        */
/* ------------------------------------------------------------------ */

/* Where dirty state reads the chunks it did not write (content.c): bytes
 * of the chunk @hash (@len long), verified; and holds that keep a blob's
 * file from deletion while a slot names it (blob.c). */
struct tc_chunk_src {
	int (*read)(void *ctx, const uint8_t *hash, uint64_t len, uint64_t off,
		    void *buf, size_t n);
	void (*hold)(void *ctx, const uint8_t *hash);
	void (*release)(void *ctx, const uint8_t *hash);
	void *ctx;
};

struct tc_dslot;

/* Unpublished content of a node being written (dirty.c's top comment). */
struct tc_dirty {
	uint64_t size;
	uint64_t chunk;          /* chunk size of the store */
	struct tc_dslot *slots;  /* one per chunk */
	size_t nslots, cap, nmem;
	uint64_t clock;
	uint8_t zero_hash[TC_HASH_LEN]; /* of a whole chunk of zeros */
	bool zero_hashed;
	struct tc_chunk_src src;
	void *hstate;     /* XXH3 state of the whole, while sequential; made
			   * only once the content outgrows a chunk */
	uint64_t hashed;  /* sequential bytes from 0 (fed to hstate, when
			   * there is one) */
	bool hash_broken; /* a write went elsewhere: the whole hash unknown */
	bool written;     /* written or truncated since it began (an O_TRUNC
			   * open alone waits for the last close) */
	int64_t mtime;
	int64_t touched;  /* last write or truncate (the quiet period of
			   * handle-less writes counts from it) */
	int failed;       /* a handle-less write into it failed (-errno):
			   * never published */
	bool complained;  /* a failed quiet publish was logged */
	/* Filled from the shared tier (sharedtier.c): its publish is not
	 * pushed back. Any write or truncate clears it. */
	bool from_shared;
};

/* One chunk of dirty state as the publish sees it. */
struct tc_dirty_slot {
	uint64_t len;
	uint8_t hash[TC_HASH_LEN]; /* after tc_dirty_seal() */
	bool changed;      /* not the published chunk */
	bool held;         /* a blob held in memory (shared, or stored) */
	int file;          /* a sealed temporary file, or -1 */
	const char *data;  /* in memory (the inline case), or NULL */
};

/* Empty dirty state of chunks of @chunk bytes. */
struct tc_dirty *tc_dirty_new(uint64_t chunk,
			      const struct tc_chunk_src *src);
void tc_dirty_free(struct tc_blob_store *bs, struct tc_dirty *d);
/* Start from the published content: @size bytes in chunks @hashes. */
int tc_dirty_set_base(struct tc_dirty *d, uint64_t size,
		      const uint8_t (*hashes)[TC_HASH_LEN], size_t n) TC_WUR;
int tc_dirty_write(struct tc_blob_store *bs, struct tc_dirty *d,
		   const void *buf, size_t len, uint64_t off) TC_WUR;
int tc_dirty_truncate(struct tc_blob_store *bs, struct tc_dirty *d,
		      uint64_t size) TC_WUR;
ssize_t tc_dirty_read(struct tc_blob_store *bs, struct tc_dirty *d, void *buf,
		      size_t size, uint64_t off);
/* The hash of the whole content when writes kept it (sequential); false
 * when unknown (or it could not be computed). */
bool tc_dirty_whole_hash(struct tc_blob_store *bs, struct tc_dirty *d,
			 uint8_t *hash);
/* Zero [@off, @off + @len) below the size (which stays): whole chunks in
 * it become holes, without reading or writing their bytes. */
int tc_dirty_zero(struct tc_blob_store *bs, struct tc_dirty *d, uint64_t off,
		  uint64_t len) TC_WUR;
/* Hash every changed chunk: into temporary files, except one small chunk
 * of a content of at most @inline_max bytes, kept in memory. Whole chunks
 * of zeros after the first get its hash and no file of their own (they
 * stay holes; the publish stores the first). */
int tc_dirty_seal(struct tc_blob_store *bs, struct tc_dirty *d,
		  uint64_t inline_max) TC_WUR;
size_t tc_dirty_slots(const struct tc_dirty *d);
void tc_dirty_slot(const struct tc_dirty *d, size_t i,
		   struct tc_dirty_slot *out);
/* Rename sealed slot @i's file into place as its blob (fsync first when
 * @durable); the slot then holds the blob. */
int tc_dirty_slot_store(struct tc_blob_store *bs, struct tc_dirty *d, size_t i,
			bool durable) TC_WUR;
/* Sealed slot @i's content is a blob already, and the caller took a hold
 * for the slot: drop the temporary file. */
void tc_dirty_slot_discard_tmp(struct tc_blob_store *bs, struct tc_dirty *d,
			       size_t i);
/* Slot @i becomes blob @hash, on a hold the caller took for it. */
int tc_dirty_share(struct tc_blob_store *bs, struct tc_dirty *d, size_t i,
		   const uint8_t *hash) TC_WUR;

/* ------------------------------------------------------------------ */
/* nodebody.c: node bodies and the bounded cache of idle ones         */
/* ------------------------------------------------------------------ */

/* A body outside the cache's slots (freed as soon as it is idle). */
#define TC_NBODY_UNCACHED UINT32_MAX

/* Bodies kept while idle, by default: 16 Ki bodies of about 330 bytes
 * (5 MiB) cover the files a workload uses again and again; beyond them a
 * getattr or open of a name the kernel holds reads its row (one SQLite
 * lookup) instead of a 1,000,000-name tree costing 300 MiB. */
#define TC_NBODY_CACHE 16384

/* The clock over idle bodies (SQLite pcache1's pinned pages are skipped
 * the same way: busy bodies stay in their slots, unevictable). */
struct tc_nbody_cache {
	struct tc_node **slots;  /* cap nodes whose body is cached, or NULL */
	uint32_t cap, hand;
	/* Every body, cached or not: what the maintenance round walks, so
	 * that its cost follows the bodies, not the names the kernel holds. */
	struct tc_nbody *all;
	uint64_t live;           /* bodies allocated */
	uint64_t loads;          /* bodies read from the index */
};

struct tc_node;
struct tc_content;

int tc_nbody_cache_init(struct tc_nbody_cache *c, uint32_t cap) TC_WUR;
/* Free the slots (every node is gone by then). */
void tc_nbody_cache_free(struct tc_nbody_cache *c);
/* Keep at most @cap idle bodies (tests make it small); bodies beyond are
 * freed when idle, else left uncached. -ENOMEM keeps the old size. */
int tc_nbody_cache_limit_locked(struct tc_engine *eng, uint32_t cap) TC_WUR;
/* Give @n a body read from its row when it has none (the row missing:
 * -ENOENT), and mark it used. The cache may evict other idle bodies: a
 * caller keeps only bodies it pinned. */
int tc_nbody_load_locked(struct tc_engine *eng, struct tc_node *n) TC_WUR;
/* The same with the row known (@row, or NULL: read it). */
int tc_nbody_attach_locked(struct tc_engine *eng, struct tc_node *n,
			   const struct tc_inode *row) TC_WUR;
/* True when something needs @n's body: it must not be evicted. */
bool tc_nbody_busy(const struct tc_node *n);
/* @n's body may have become idle: free it when the cache does not hold
 * it. */
void tc_nbody_idle_locked(struct tc_engine *eng, struct tc_node *n);
/* Free @n's body now (the node leaves the table): its loaded content is
 * unreferenced, its dirty state must be gone. */
void tc_nbody_free_locked(struct tc_engine *eng, struct tc_node *n);
/* Drop one reference to loaded content (the last one frees it). */
void tc_node_content_unref(struct tc_content *c);

/* ------------------------------------------------------------------ */
/* The engine and its nodes                                           */
/* ------------------------------------------------------------------ */

/* Published content loaded for reading, shared by the handles of a node. */
struct tc_content {
	atomic_uint refs;
	uint64_t size;
	struct tc_ram_item *ram; /* in RAM, or */
	int fd;                  /* a (verified) blob file, or -1 */
	/* A content in chunks (nchunks > 1), loaded chunk by chunk as it is
	 * read (content.c): */
	struct tc_engine *eng;
	uint64_t ino;            /* whose entry a corrupt chunk drops */
	uint64_t chunk;
	size_t nchunks;
	struct tc_cchunk *chunks;
	bool promote;            /* chunks may enter RAM (size fits) */
	int64_t ram_ttl;
	pthread_mutex_t lock;    /* chunks[].ram and .fd as they load */
};

/* One chunk of a loaded content. */
struct tc_cchunk {
	uint8_t hash[TC_HASH_LEN];
	struct tc_ram_item *ram; /* in RAM, or */
	int fd;                  /* its verified blob file, or -1: not yet */
	bool bad;                /* failed verification: EIO, counted once */
};

/*
 * What a node holds only while something uses it (nodebody.c): the copy of
 * its row, its handle counts, and its data with the mutex that protects
 * it. A node has its body while it is pinned or open, has dirty state, a
 * batched access time or no links left (its row is purged when it goes);
 * an idle body stays in the engine's bounded cache (eng->bodies) until the
 * clock evicts it, and is read again from the index when needed.
 */
struct tc_nbody {
	struct tc_inode meta;    /* copy of the row; eng->lock */
	uint32_t nopen;          /* open handles; eng->lock */
	uint32_t nwriters;       /* writable open handles; eng->lock */
	uint32_t slot;           /* in eng->bodies, or TC_NBODY_UNCACHED */
	bool used;               /* the clock's reference bit; eng->lock */
	bool atime_pending;      /* in eng->atimes; eng->lock */
	bool row_pending;        /* a directory's times newer than its row,
				  * in eng->rows; eng->lock */
	bool content_read;       /* read without a handle since the last
				  * maintenance round; node->lock */
	bool corrupt;            /* its blob failed verification: reads
				  * without a handle fail; node->lock */
	struct tc_mutex lock;    /* "node->lock": protects dirty, content */
	struct tc_dirty *dirty;
	struct tc_content *content;
	struct tc_node *node;    /* whose body it is */
	struct tc_nbody *prev, *next; /* eng->bodies.all; eng->lock */
};

/*
 * An inode the kernel or a handle holds: what every lookup reference costs,
 * so it stays small (56 bytes); the rest is in its body, loaded on demand.
 * body is never NULL while the node is pinned or open.
 */
struct tc_node {
	uint64_t ino;
	struct tc_nbody *body;   /* or NULL (not loaded); eng->lock */
	uint32_t nlookup;        /* kernel lookup references, saturating at
				  * UINT32_MAX (tc_node_ref_lookup()); a
				  * saturated node stays; eng->lock */
	uint32_t pins;           /* transient references; eng->lock */
	uint32_t data_gen;       /* bumped at every publish (compared for
				  * equality only); eng->lock */
	uint32_t cached_gen;     /* data_gen the kernel last cached */
	uint32_t pub_group;      /* (low bits of the) group of the last
				  * publish; eng->lock */
	int lost_err;            /* that group was lost: report once */
};

/* One more kernel lookup reference on @n (eng->lock). */
static inline void tc_node_ref_lookup(struct tc_node *n)
{
	if (n->nlookup != UINT32_MAX)
		n->nlookup++;
}

/*
 * The storage of the node table (nodetab.c): nodes in slabs, found by inode
 * number through an open-addressing index. The caller (node.c) holds
 * eng->lock and keeps inode numbers unique in it.
 */
#define TC_NTAB_SLAB 1024 /* nodes per slab: 40 KiB */

struct tc_ntab {
	uint32_t *slots;        /* node number + 1, 0 empty */
	size_t mask;            /* slots - 1 (a power of two) */
	unsigned shift;         /* 64 - log2(slots) */
	size_t count;           /* nodes in the index */
	struct tc_node **slabs; /* each TC_NTAB_SLAB nodes */
	size_t nslabs;
	uint32_t used;          /* node numbers ever handed out */
	uint32_t free;          /* first free node number, 0 none */
};

int tc_ntab_init(struct tc_ntab *t) TC_WUR;
/* Frees every slab: pointers to nodes are invalid after. */
void tc_ntab_fini(struct tc_ntab *t);
/* The node of @ino, or NULL. */
struct tc_node *tc_ntab_find(const struct tc_ntab *t, uint64_t ino);
/* A new zeroed node for @ino (absent from the table), in the index; NULL
 * for want of memory. It stays at its address until tc_ntab_free(). */
struct tc_node *tc_ntab_add(struct tc_ntab *t, uint64_t ino) TC_WUR;
/* Take @n out of the index (tc_ntab_find() no longer sees it); it stays
 * readable until tc_ntab_free() of the number returned. */
uint32_t tc_ntab_unlink(struct tc_ntab *t, struct tc_node *n);
/* Give back node number @num (from tc_ntab_unlink()) for reuse. */
void tc_ntab_free(struct tc_ntab *t, uint32_t num);
/* Iteration: the node at or after slot *@pos, advancing *@pos (start at
 * 0); NULL at the end. Adding or unlinking during an iteration may move
 * nodes to slots already passed or not yet reached. */
struct tc_node *tc_ntab_next(const struct tc_ntab *t, size_t *pos);

struct tc_file {
	struct tc_engine *eng;
	struct tc_node *node;
	int flags;
	bool keep_cache;
	struct tc_file *prev, *next; /* eng->files; eng->lock */
};

/* A slot of the shared tier's small direct-mapped tables: a hash (of a
 * path) and a time. */
struct tc_shslot {
	uint64_t h;
	int64_t at;
};

struct tc_tag_rule_i {
	char *tag;
	int64_t ttl_ns;
	int64_t ram_ttl_ns;
};

/* Operations after which the committer is woken at once: bounds the
 * memory an open group holds in SQLite's page cache. */
#define TC_GROUP_MAX_OPS 2048

/* Access times are written to the index in batches of this many, or at the
 * next maintenance round (about a second), whichever comes first. */
#define TC_ATIME_BATCH 4096

/* Lookups of absent names remembered, to count one miss per program. */
#define TC_RECENT_MISSES 64

struct tc_engine {
	/* configuration, immutable after open */
	struct tc_base base;
	char *store;
	uint64_t ram_size, ram_items, max_ram_item, disk_size, disk_items;
	uint64_t inline_max;
	int64_t ram_ttl_ns, ttl_ns;
	enum tc_ttl_mode ttl_mode;
	char *schema;
	enum tc_sync sync;
	bool handleless;   /* tc_config::handleless_writes */
	int64_t quiet_ns;  /* tc_config::quiet_ns */
	struct tc_tag_rule_i *rules;
	size_t n_rules;

	int store_fd;
	int lock_fd;
	struct tc_blob_store blobs;
	struct tc_ram *ram;
	struct tc_counters counters;
	int64_t started_ns;

	struct tc_mutex lock;
	struct tc_index ix;            /* eng->lock */
	struct tc_ntab nodes;          /* the node table; eng->lock */
	struct tc_nbody_cache bodies;  /* eng->lock */
	struct tc_file *files;         /* open handles; eng->lock */
	struct tc_index_counters size; /* eng->lock */
	uint64_t last_ino;             /* highest given out; eng->lock */
	int reserve_fd;                /* STORE/reserve (reserve.c) */
	uint64_t reserve_bytes;
	bool reserve_given;            /* given up to the index; eng->lock */
	/* Group commit (txn.c), all eng->lock: */
	struct tc_index_counters saved;     /* at the operation's begin */
	struct tc_index_counters committed; /* as of the last commit */
	bool group_open;        /* BEGIN done: operations since the commit */
	bool in_op;             /* an operation's savepoint is open */
	uint64_t group_id;      /* of the open group, or of the last one */
	uint64_t group_ops;     /* operations released into the group */
	int64_t group_started;  /* tc_mono_ns() at its BEGIN */
	uint64_t lost_group;    /* newest group a failed commit lost */
	int lost_err;           /* and why */
	bool lost_pending;      /* the nodes are not reloaded yet */
	/* Names the open group created, removed or moved: when it is lost,
	 * the kernel must forget what it cached of them. */
	struct tc_inval_list group_names;
	size_t op_names;        /* where the open operation's part begins */
	/* Nodes whose copy of the row the open operation changed behind
	 * its callers (dropped entries): reloaded if it rolls back. */
	struct tc_node **op_nodes;
	size_t n_op_nodes, cap_op_nodes;
	int commit_err;         /* last failed commit, while still open */
	int64_t commit_interval_ns;
	pthread_cond_t commit_cond;   /* wakes the committer */
	pthread_cond_t reaped_cond;   /* the committer deleted a batch */
	unsigned reaping;	      /* batches being deleted unlocked */
	pthread_t committer;
	bool committer_running, committer_stop;
	/* Blobs whose last reference went in the open group: their files are
	 * deleted after it commits (unless referenced again). op_doomed is
	 * where the open operation's part begins. */
	uint8_t (*doomed)[TC_HASH_LEN]; /* eng->lock */
	size_t n_doomed, cap_doomed, op_doomed;
	/* Blobs whose last reference went in a committed group. Their files
	 * go only once a WAL fsync made that commit durable: unlinked first,
	 * a crash of the machine could leave a committed-but-lost row naming
	 * a missing file. retired[] holds numbers [reaped_seq, retired_seq)
	 * of all ever retired; a WAL fsync covered those below synced_seq.
	 * eng->lock. */
	uint8_t (*retired)[TC_HASH_LEN];
	size_t cap_retired;
	uint64_t retired_seq, reaped_seq, synced_seq;
	int64_t unsynced_since; /* mono ns: the oldest not synced retired */
	struct tc_hold *holds;          /* blob.c; eng->lock */
	size_t n_holds, cap_holds;
	pthread_mutex_t verified_lock;
	uint8_t (*verified)[TC_HASH_LEN]; /* direct-mapped; verified_lock */
	uint64_t chunk_size;            /* of the store (meta chunk_size) */
	bool any_dir_schema;           /* eng->lock */
	bool any_dir_ttl;              /* eng->lock */
	uint64_t *atimes;  /* inodes whose node->atime_pending; eng->lock */
	size_t n_atimes;
	/* Work for the next group commit (node.c), all eng->lock: inodes
	 * without links that the kernel forgot, whose rows go then; and
	 * directories whose times changed, whose rows are written then, once
	 * however many names changed in them. */
	uint64_t *purges;
	size_t n_purges, cap_purges;
	uint64_t *rows;
	size_t n_rows, cap_rows;
	int64_t later_since; /* tc_mono_ns() when the first was queued */
	struct {
		uint64_t parent;
		uint64_t name_hash;
		int64_t when;
	} recent_miss[TC_RECENT_MISSES]; /* eng->lock */
	unsigned recent_miss_pos;

	/* The shared tier (sharedpub.c, sharedtier.c); NULL without one. */
	struct tc_shared *shared;      /* the client, set at open */
	int64_t shared_revalidate_ns;  /* immutable after open */
	uint64_t shared_writer;        /* this mount's writer id */
	struct tc_shver *shvers;       /* direct-mapped by inode; eng->lock */
	struct tc_shslot *shdirs;      /* directories pushed; eng->lock */
	struct tc_shslot *shneg;       /* negative answers; eng->lock */
	_Atomic int64_t shared_polled; /* last event poll (tc_mono_ns) */
	struct {
		atomic_uint_fast64_t hits, misses, updates, removals, events;
	} shc;
	struct { /* the client's counters at the last reset */
		atomic_uint_fast64_t errors, rejected, pushed_bytes,
			fetched_bytes, pushes, push_dropped;
	} shared_zero;

	pthread_mutex_t inval_lock;
	tc_inval_fn inval_fn;
	void *inval_ctx;

	pthread_t thread;
	bool thread_running;
	pthread_mutex_t thread_lock;
	pthread_cond_t thread_cond;
	bool thread_stop;
};

#define tc_err(eng, ...) tc_logb(&(eng)->base, TC_LOG_ERR, __VA_ARGS__)
#define tc_warn(eng, ...) tc_logb(&(eng)->base, TC_LOG_WARNING, __VA_ARGS__)
#define tc_info(eng, ...) tc_logb(&(eng)->base, TC_LOG_INFO, __VA_ARGS__)
#define tc_dbg(eng, ...) tc_logb(&(eng)->base, TC_LOG_DEBUG, __VA_ARGS__)
#define tc_now(eng) tc_base_now(&(eng)->base)

#define tc_lock(eng) tc_mutex_lock(&(eng)->lock)
#define tc_unlock(eng) tc_mutex_unlock(&(eng)->lock)
#define TC_ASSERT_LOCKED(eng) TC_ASSERT_HELD(&(eng)->lock)
#define TC_ASSERT_NLOCKED(n) TC_ASSERT_HELD(&(n)->body->lock)

/* ------------------------------------------------------------------ */
/* reserve.c: space kept back for commits                             */
/* ------------------------------------------------------------------ */

/* Create the reserve file (no error: without it commits just may fail). */
void tc_reserve_open(struct tc_engine *eng);
void tc_reserve_close(struct tc_engine *eng);
/* Give the reserve to the index when the filesystem is short of room. */
void tc_reserve_before_commit_locked(struct tc_engine *eng);
/* True while the reserve is given and space is still short: operations
 * that add contents or names fail with ENOSPC before they are accepted. */
bool tc_reserve_short(struct tc_engine *eng);
/* Take the reserve back when there is room (maintenance). */
void tc_reserve_refill_locked(struct tc_engine *eng);

/* ------------------------------------------------------------------ */
/* txn.c: operations, group commit, and the counters they move        */
/* ------------------------------------------------------------------ */

/* Begin one operation: a savepoint in the open group (opening one). */
int tc_txn_begin_locked(struct tc_engine *eng) TC_WUR;
/* End it well: its changes join the group, committed within the commit
 * interval (durable only after tc_txn_sync()). */
int tc_txn_commit_locked(struct tc_engine *eng) TC_WUR;
/* Undo the operation alone and restore the counters as they were at its
 * begin. */
void tc_txn_rollback_locked(struct tc_engine *eng);
/* Commit when @rc is 0, else roll back; returns the outcome. */
int tc_txn_end_locked(struct tc_engine *eng, int rc) TC_WUR;
/* True inside an operation. */
bool tc_txn_in_op_locked(struct tc_engine *eng);
/* The operation changed @n->meta: reload it if the operation rolls back. */
void tc_txn_note_node_locked(struct tc_engine *eng, struct tc_node *n);
/* The operation creates, removes or moves @name in @parent (to @ino). */
void tc_txn_note_name_locked(struct tc_engine *eng, uint64_t parent,
			     const char *name, uint64_t ino);
/* A commit (or the rows before it) failed with @rc and the group stays
 * open for the next round: logged once per run of failures, kept in
 * eng->commit_err. */
void tc_txn_commit_failed_locked(struct tc_engine *eng, int rc);
/* Commit the open group now (not durable: synchronous=NORMAL). On
 * failure the group stays open when SQLite kept it (commit.c retries), or
 * it is lost: the counters are back at the last commit, and lost_pending
 * tells commit.c to bring the nodes back in line. */
int tc_txn_group_commit_locked(struct tc_engine *eng) TC_WUR;
/* Move the disk tier's logical size and item counters. */
void tc_txn_account_locked(struct tc_engine *eng, int64_t dbytes,
			   int64_t ditems);

/* ------------------------------------------------------------------ */
/* node.c: the node table, invalidations, access times                */
/* ------------------------------------------------------------------ */

/* Queue an invalidation of the kernel's attributes and pages of @ino (its
 * content changed under the same inode number; tc_inval_fn's NULL name). */
void tc_inval_add_inode(struct tc_inval_list *l, uint64_t ino);
/* Queue an invalidation of every name of @ino. */
void tc_inval_names_locked(struct tc_engine *eng, uint64_t ino,
			   struct tc_inval_list *inv);
/* Hand the list to the daemon's callback and empty it. */
void tc_inval_deliver(struct tc_engine *eng, struct tc_inval_list *l);

struct tc_node *tc_node_find_locked(struct tc_engine *eng, uint64_t ino);
/* Pinned node for @ino with its body, loading its row when not in the
 * table or not in its body (-ENOENT when there is none). */
int tc_node_get_locked(struct tc_engine *eng, uint64_t ino,
		       struct tc_node **out) TC_WUR;
/* The same for the inode whose row @row the caller has just written
 * (a create): nothing is read back. */
int tc_node_get_new_locked(struct tc_engine *eng, const struct tc_inode *row,
			   struct tc_node **out) TC_WUR;
/* The same, taking the engine lock. */
int tc_node_get(struct tc_engine *eng, uint64_t ino,
		struct tc_node **out) TC_WUR;
/* One more lookup reference on @ino's node, added to the table without a
 * body when new (the caller just read its row: readdirplus). */
int tc_node_hold_locked(struct tc_engine *eng, uint64_t ino) TC_WUR;
void tc_node_unpin_locked(struct tc_engine *eng, struct tc_node *n);
void tc_node_unpin(struct tc_engine *eng, struct tc_node *n);
/* Free @n when nothing holds it any more. */
void tc_node_release_locked(struct tc_engine *eng, struct tc_node *n);
/* Reload the rows of pinned nodes after a rolled-back transaction. */
void tc_node_reload_locked(struct tc_engine *eng, struct tc_node **v,
			   size_t n);
/* A group was lost with @err: reload every node's row, give the nodes
 * whose last publish it held, or whose row it created, the error to report
 * (tc_node.lost_err), and queue an invalidation of every name of each. */
void tc_node_reload_all_locked(struct tc_engine *eng, uint64_t group, int err,
			       struct tc_inval_list *inv);
/* The mount-relative path of @ino ("/" for the root, "/a/b"), through
 * its first name at each level, into @buf of @size bytes: 0, -ENOENT (not
 * linked), -ENAMETOOLONG. */
int tc_node_path_locked(struct tc_engine *eng, uint64_t ino, char *buf,
			size_t size) TC_WUR;
/* The row of @ino, fresh from the node table when the node is live. */
int tc_node_meta_locked(struct tc_engine *eng, uint64_t ino,
			struct tc_inode *out) TC_WUR;
/*
 * Remove every name of inode @ino (eviction, expiry, schema discard,
 * evict_tag, flush). The caller holds a transaction. A node still held by
 * the kernel or a handle keeps its row with nlink 0 until released.
 */
int tc_node_drop_locked(struct tc_engine *eng, uint64_t ino,
			struct tc_inval_list *inv) TC_WUR;
/* Delete the inodes a crash left without links. */
int tc_node_drop_orphans_locked(struct tc_engine *eng) TC_WUR;
/*
 * Directory @n (pinned, with its body) gained or lost a name: its mtime
 * and ctime (in n->body->meta) reach its row at the group's commit, once
 * however many names changed, or at once without the committer. @links:
 * its link count changed too, and the row is written now. Inside an
 * operation; 0 or -errno.
 */
int tc_node_dir_changed_locked(struct tc_engine *eng, struct tc_node *n,
			       bool links) TC_WUR;
/* Write the queued rows (inside an operation). */
int tc_node_write_rows_locked(struct tc_engine *eng) TC_WUR;
/* Forget them: their group was lost. */
void tc_node_drop_rows_locked(struct tc_engine *eng);
/* Delete the rows of the forgotten inodes without links that releases
 * queued for the committer, in one operation (not inside one). On failure
 * they stay as orphans, which the next mount deletes. */
int tc_node_purge_forgotten_locked(struct tc_engine *eng) TC_WUR;
void tc_node_fill_attr(struct tc_engine *eng, const struct tc_inode *m,
		       struct tc_attr *out);
/* Attributes of a pinned node, with the size and mtime of unpublished
 * writes. Takes node->lock, so eng->lock must not be held. */
void tc_node_attr(struct tc_engine *eng, struct tc_node *n,
		  struct tc_attr *out);
/* Put @n in the access-time batch (its meta holds the new values). */
void tc_node_touch_locked(struct tc_engine *eng, struct tc_node *n);
/* Write the batched access times inside the caller's transaction. */
int tc_node_apply_atimes_locked(struct tc_engine *eng) TC_WUR;
/* Write them in a transaction of their own. */
int tc_node_flush_atimes_locked(struct tc_engine *eng) TC_WUR;

/* ------------------------------------------------------------------ */
/* commit.c: the committer thread and durability                      */
/* ------------------------------------------------------------------ */

/* Commit the open group now; when the commit lost it, reload the nodes
 * from the index and queue invalidations of every name the kernel holds. */
int tc_commit_locked(struct tc_engine *eng, struct tc_inval_list *inv) TC_WUR;
/* Make every operation so far durable (as sync= allows): commit, then
 * fsync the WAL with the engine lock dropped. Call without the lock. */
int tc_commit_sync(struct tc_engine *eng) TC_WUR;
/* The store is full: sync the WAL and delete the files of every retired
 * blob now. True when there were some (worth trying again). Call
 * without the lock. */
bool tc_commit_reclaim(struct tc_engine *eng);
/* At close, after the last commit: sync and delete the retired blobs. */
void tc_commit_close_locked(struct tc_engine *eng);
/* Start and stop the thread that commits groups. Stopping commits. */
int tc_commit_start(struct tc_engine *eng) TC_WUR;
void tc_commit_stop(struct tc_engine *eng);

/* ------------------------------------------------------------------ */
/* policy.c: lifetimes, tags, schema, limits                          */
/* ------------------------------------------------------------------ */

/* @from + @ttl, or 0 (never) when @ttl is 0 or the sum would not fit:
 * a lifetime of centuries is no lifetime. */
static inline int64_t tc_deadline(int64_t from, int64_t ttl)
{
	if (ttl <= 0 || from > INT64_MAX - ttl)
		return 0;
	return from + ttl;
}

/* Recompute @ino's expiry from its own ttl, tag rules, inherited and mount
 * defaults, counted from @from. Updates ino->expires. */
void tc_policy_resolve_locked(struct tc_engine *eng, struct tc_inode *ino,
			      int64_t from);
/* Effective ttl mode of @ino. */
enum tc_ttl_mode tc_policy_mode(struct tc_engine *eng,
				const struct tc_inode *ino);
/* RAM idle limit from the first tag rule of @ino with one, or -1. */
int64_t tc_policy_ram_ttl_locked(struct tc_engine *eng, uint64_t ino);
/* Effective ttl of @ino in ns (0 = never). */
int64_t tc_policy_ttl_locked(struct tc_engine *eng, const struct tc_inode *ino);
/* True when the entry @ino (found in directory @parent) is visible now;
 * otherwise it has been expired or discarded (and counted). */
bool tc_policy_visible_locked(struct tc_engine *eng, uint64_t parent,
			      struct tc_inode *ino, int64_t now);
/* Expected schema for entries in directory @dir ("" = none), in @out. */
int tc_policy_dir_schema_locked(struct tc_engine *eng, uint64_t dir,
				char out[65]) TC_WUR;
/* Inherited defaults for a new entry in @parent (ttl, mode, schema). */
int tc_policy_inherit_locked(struct tc_engine *eng, uint64_t parent,
			     struct tc_inode *child) TC_WUR;
/* Remember that @n was read at @now: LRU recency and sliding expiry. */
void tc_policy_note_access_locked(struct tc_engine *eng, struct tc_node *n,
				  int64_t now);
/* Make room for @dbytes more bytes and @ditems more items by evicting least
 * recently used entries other than @keep. -EFBIG, -ENOSPC. */
int tc_policy_make_room_locked(struct tc_engine *eng, int64_t dbytes,
			       int64_t ditems, uint64_t keep,
			       struct tc_inval_list *inv) TC_WUR;
/* Expiry sweep: drop every entry whose deadline passed. */
int tc_policy_sweep_locked(struct tc_engine *eng,
			   struct tc_inval_list *inv) TC_WUR;
/* Remove every entry that carries @tag. */
int tc_policy_evict_tag_locked(struct tc_engine *eng, const char *tag,
			       struct tc_inval_list *inv) TC_WUR;
/* Remove every non-directory entry (flush=disk|all). */
int tc_policy_flush_disk_locked(struct tc_engine *eng,
				struct tc_inval_list *inv) TC_WUR;

/* ------------------------------------------------------------------ */
/* sharedpub.c: pushes to the shared tier, versions of entries        */
/* ------------------------------------------------------------------ */

/* What this mount knows of an entry's version on the shared tier. */
struct tc_shver {
	uint64_t ino;     /* 0: a free slot */
	int64_t version;  /* version_ns of the record the entry matches */
	uint64_t writer;  /* and its writer */
	int64_t checked;  /* when last compared with the shared tier (0:
			   * never: check at the next lookup) */
	bool learned;     /* its content came from another mount */
};

/* Set up (with a shared tier) and free the tables below. */
int tc_sharedpub_open(struct tc_engine *eng) TC_WUR;
void tc_sharedpub_close(struct tc_engine *eng);
/* The version known for @ino into @out: false when none is. */
bool tc_sharedpub_get_locked(struct tc_engine *eng, uint64_t ino,
			     struct tc_shver *out);
void tc_sharedpub_note_locked(struct tc_engine *eng, const struct tc_shver *v);
void tc_sharedpub_forget_locked(struct tc_engine *eng, uint64_t ino);
/* Check everything again at its next lookup (events were lost). */
void tc_sharedpub_untrust_locked(struct tc_engine *eng);
/* Up to @max inodes whose content was learned, into @out; how many. */
size_t tc_sharedpub_learned_locked(struct tc_engine *eng, uint64_t *out,
				   size_t max);
/* The record of row @m at @path as a push would send it (strings
 * allocated: tc_shared_name_free()), version now. 0 or -ENOMEM. */
int tc_sharedpub_record_locked(struct tc_engine *eng, const struct tc_inode *m,
			       const char *path,
			       struct tc_shared_name *out) TC_WUR;
/* @n was just published from @d (which still names its chunks): queue
 * its content and a name record for each of its names (and their
 * directories). A content in chunks is copied into one temporary file
 * first, its whole hash computed when the writes did not keep it. Call
 * with @n's lock held and without the engine lock. */
void tc_sharedpub_publish(struct tc_engine *eng, struct tc_node *n,
			  struct tc_dirty *d);
/* Queue name records for every name of regular file @ino (its metadata
 * changed). */
void tc_sharedpub_names_locked(struct tc_engine *eng, uint64_t ino);
/* Queue @ino's content and records again with their version @version:
 * the servers hold an older one (a push overtaken by an older push of
 * another mount, or lost). */
void tc_sharedpub_repush_locked(struct tc_engine *eng, uint64_t ino,
				int64_t version);
/* Queue a tombstone for @name in directory @parent (it was removed). */
void tc_sharedpub_tombstone_locked(struct tc_engine *eng, uint64_t parent,
				   const char *name);
/* @ino was renamed from @old_path (NULL: exchanged, no tombstones):
 * tombstones at the old paths, records at the new ones, its subtree's
 * too for a directory. */
void tc_sharedpub_moved_locked(struct tc_engine *eng, uint64_t ino,
			       const char *old_path);
/* This mount flushed, or learned another's flush: directories' records
 * must be pushed again. */
void tc_sharedpub_flushed_locked(struct tc_engine *eng);

/* ------------------------------------------------------------------ */
/* namespace.c                                                        */
/* ------------------------------------------------------------------ */

/* 0 for a valid name; -EINVAL, -ENAMETOOLONG. */
int tc_ns_check_name(const char *name) TC_WUR;
/* Directory node of @parent, pinned, or -ENOTDIR/-ENOENT. */
int tc_ns_dir_get_locked(struct tc_engine *eng, uint64_t parent,
			 struct tc_node **out) TC_WUR;
/* Find the visible entry @name in @parent and pin its node. Expired or
 * schema-discarded entries are dropped on the way and reported -ENOENT. */
int tc_ns_find_locked(struct tc_engine *eng, uint64_t parent,
		      const char *name, struct tc_node **out,
		      struct tc_inval_list *inv) TC_WUR;
/* A name was created in @parent: a miss counted for it just before was a
 * put, not a miss. */
void tc_ns_unnote_miss_locked(struct tc_engine *eng, uint64_t parent,
			      const char *name);
/* Remove the dentry @name -> @victim from @dir inside the caller's
 * transaction. */
int tc_ns_remove_dentry_locked(struct tc_engine *eng, struct tc_node *dir,
			       const char *name, struct tc_node *victim) TC_WUR;
/* Create node @m (type and mode set) named @name in @parent for @ctx, and
 * pin it with one lookup reference taken. @dirty (a regular file's, or
 * NULL) becomes the new node's dirty state before anyone can see the
 * name, so its first readers read it (the node owns it from then on; on
 * failure the caller still does). With @replace, a regular file of that
 * name is replaced in the same operation, as by a rename over it (those
 * who hold the old inode keep reading it). */
int tc_ns_make_node(struct tc_engine *eng, uint64_t parent, const char *name,
		    struct tc_inode *m, const struct tc_ctx *ctx,
		    struct tc_dirty *dirty, bool replace,
		    struct tc_node **out) TC_WUR;

/* ------------------------------------------------------------------ */
/* content.c                                                          */
/* ------------------------------------------------------------------ */

/* Publish @n's dirty state: hash, store the blob, commit. On failure the
 * dirty state and the previous content stay as they were. */
int tc_content_publish_nlocked(struct tc_engine *eng, struct tc_node *n,
			       bool durable) TC_WUR;
/* Create @n's dirty state from its current content (or empty, when
 * @empty), unless it has one. */
int tc_content_dirty_begin_nlocked(struct tc_engine *eng, struct tc_node *n,
				   bool empty) TC_WUR;
/* Drop @n's dirty state unpublished. */
void tc_content_dirty_end_nlocked(struct tc_engine *eng, struct tc_node *n);
/* content.c: a new, empty content of @size bytes (one reference). */
struct tc_content *tc_content_new(uint64_t size);
/* Replace the content @n's readers use by @c. */
void tc_content_set_nlocked(struct tc_node *n, struct tc_content *c);
/* Load @n's published content onto the node; *@ram_hit: from RAM. */
int tc_content_load_nlocked(struct tc_engine *eng, struct tc_node *n,
			    bool *ram_hit) TC_WUR;
/* Copy from loaded content @c (no engine lock needed). */
ssize_t tc_content_read(struct tc_content *c, void *buf, size_t size,
			uint64_t off);
/* Read from node @n: its dirty state, else its content, which @load
 * (called with @n's lock held) makes present; counts read_bytes. */
ssize_t tc_content_read_node(struct tc_engine *eng, struct tc_node *n,
			     void *buf, size_t size, uint64_t off,
			     int (*load)(struct tc_engine *eng,
					 struct tc_node *n));
/* Where bytes [@off, @off + @size) of @c are, in one RAM item (held in
 * @s) or one verified blob file (valid while @c is held); -EAGAIN when they
 * span chunks or start at the end. @s->fd is -1 and @s->hold NULL on entry. */
int tc_content_span(struct tc_content *c, uint64_t off, size_t size,
		    struct tc_span *s) TC_WUR;
/* False when a loaded content has neither RAM, file nor chunks. */
bool tc_content_ok(const struct tc_content *c);
/* Where dirty state reads, holds and releases chunks. */
void tc_content_chunk_src(struct tc_engine *eng, struct tc_chunk_src *src);
/* Empty dirty state of this store's chunks, reading them through the
 * engine; its mtime now. NULL when out of memory. */
struct tc_dirty *tc_content_dirty_new(struct tc_engine *eng);
/* Remember @hash as the whole content's in the row of @was->ino, unless
 * its content changed since @was was read. Takes the engine lock. */
void tc_content_remember_hash(struct tc_engine *eng,
			      const struct tc_inode *was, const uint8_t *hash);
/* The hash of @ino's whole content (computed and remembered for a content
 * in chunks whose hash is not known yet). */
int tc_content_whole_hash(struct tc_engine *eng, uint64_t ino,
			  uint8_t *hash) TC_WUR;
/* Make @n's published content and the index durable (a clean fsync). */
int tc_content_sync_nlocked(struct tc_engine *eng, struct tc_node *n) TC_WUR;
/* A maintenance round of content without handles: publish dirty state no
 * writable handle holds after the quiet period, let go of loaded content
 * no handle holds and nobody read since the previous round. Returns the
 * first publish error (the dirty state is kept, tried again next round). */
int tc_content_maintain(struct tc_engine *eng) TC_WUR;

/* ------------------------------------------------------------------ */
/* cacheattr.c: user.tiercache.*                                      */
/* ------------------------------------------------------------------ */

ssize_t tc_cacheattr_get(struct tc_engine *eng, uint64_t ino,
			 const char *name, void *buf, size_t size);
/* @flags: XATTR_CREATE / XATTR_REPLACE as setxattr(2). */
int tc_cacheattr_set(struct tc_engine *eng, uint64_t ino, const char *name,
		     const char *value, size_t size, int flags);
int tc_cacheattr_remove(struct tc_engine *eng, uint64_t ino,
			const char *name);
/* Set directory @ino's expected schema to @schema ("" none) as the
 * attribute does, without telling the shared tier (another mount's
 * change, learned from it). 0, -ENOTDIR, -EINVAL, -errno. */
int tc_cacheattr_dir_schema(struct tc_engine *eng, uint64_t ino,
			    const char *schema) TC_WUR;
/* Append the names a user set to a listing of @used bytes so far. */
ssize_t tc_cacheattr_list(struct tc_engine *eng, uint64_t ino, char *buf,
			  size_t size, size_t used);

/* ------------------------------------------------------------------ */
/* sharedtier.c                                                       */
/* ------------------------------------------------------------------ */

/* A maintenance round's part: poll other mounts' events when due (about
 * once per shared_revalidate) and apply them. */
void tc_sharedtier_maintain(struct tc_engine *eng);
/* Open the client as @cfg says (0 without shared_servers), and close it
 * (pushes still queued get a moment to go out). */
int tc_sharedtier_open(struct tc_engine *eng,
		       const struct tc_config *cfg) TC_WUR;
void tc_sharedtier_close(struct tc_engine *eng);

#endif /* TC_ENGINE_I_H */
