/* SPDX-License-Identifier: MIT */
/*
 * Private declarations shared by the engine's modules. Nothing here is part
 * of the public API; tests may reach it through the static library.
 *
 * Lock discipline (outermost first):
 *
 *   node->lock  ->  eng->lock  ->  ram->lock
 *
 *   - eng->lock protects the SQLite connection, the node table, every
 *     node's reference counts and metadata copy (node->meta), the access-time
 *     batch and the disk counters.
 *   - node->lock protects a node's data: its dirty state and its loaded
 *     content. A publish holds node->lock and takes eng->lock for the
 *     commit. Code holding eng->lock never takes a node lock.
 *   - ram->lock is internal to ram.c.
 *
 * Functions with a _locked suffix must be called with eng->lock held.
 */
#ifndef TC_ENGINE_I_H
#define TC_ENGINE_I_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "tiercache.h"

#define TC_HASH_LEN 16
#define TC_HASH_HEX 32

#define TC_NOINLINE __attribute__((noinline))

/* ------------------------------------------------------------------ */
/* stats.c                                                            */
/* ------------------------------------------------------------------ */

/* Counters of SPEC §7. Atomic so the hot path needs no lock. */
struct tc_counters {
	atomic_uint_fast64_t gets, ram_hits, disk_hits, misses, puts, deletes,
		ram_evictions, disk_evictions, expirations, schema_discards,
		promotions, corruptions, read_bytes, write_bytes;
};

#define tc_count(eng, field, n)                                               \
	atomic_fetch_add_explicit(&(eng)->counters.field, (n),                 \
				  memory_order_relaxed)

/* ------------------------------------------------------------------ */
/* log                                                                */
/* ------------------------------------------------------------------ */

struct tc_engine;
void tc_log(struct tc_engine *eng, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define tc_err(eng, ...) tc_log(eng, TC_LOG_ERR, __VA_ARGS__)
#define tc_warn(eng, ...) tc_log(eng, TC_LOG_WARNING, __VA_ARGS__)
#define tc_info(eng, ...) tc_log(eng, TC_LOG_INFO, __VA_ARGS__)
#define tc_dbg(eng, ...) tc_log(eng, TC_LOG_DEBUG, __VA_ARGS__)

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
/* blob.c: the content-addressed blob directory                       */
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
/* Move temporary file @name into place as the blob @hash (fsync first when
 * @durable); the fd stays open and owned by the caller. */
int tc_blob_commit_tmp(struct tc_blob_store *bs, int fd, const char *name,
		       const uint8_t *hash, bool durable) TC_WUR;
/* Write a whole blob from memory (temporary file, then rename). */
int tc_blob_write(struct tc_blob_store *bs, const uint8_t *hash,
		  const void *buf, size_t len, bool durable) TC_WUR;
/* Move blob @hash back to a new temporary file (a publish that renamed
 * its spilled file into place failed to commit); its name in @name. */
int tc_blob_uncommit(struct tc_blob_store *bs, const uint8_t *hash,
		     char name[32]) TC_WUR;
int tc_blob_open_read(struct tc_blob_store *bs, const uint8_t *hash,
		      int *fd) TC_WUR;
/* Read the whole blob into @buf (exactly @len bytes) and verify its hash:
 * -EIO when short, long or mismatched. */
int tc_blob_read_verified(struct tc_blob_store *bs, const uint8_t *hash,
			  void *buf, size_t len) TC_WUR;
int tc_blob_unlink(struct tc_blob_store *bs, const uint8_t *hash);

/* ------------------------------------------------------------------ */
/* index.c: SQLite                                                    */
/* ------------------------------------------------------------------ */

/* Prepared statements, indexes into eng->st[]. */
enum tc_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INODE_GET,
	ST_INODE_INSERT,
	ST_INODE_UPDATE,
	ST_INODE_DELETE,
	ST_INODE_SET_LRU,
	ST_DENTRY_GET,
	ST_DENTRY_INSERT,
	ST_DENTRY_DELETE,
	ST_DENTRY_MOVE,
	ST_DENTRY_ANY_CHILD,
	ST_DENTRY_LIST,
	ST_DENTRY_PARENT,
	ST_DENTRY_OF_INO,
	ST_DENTRY_DELETE_INO,
	ST_BLOB_GET,
	ST_BLOB_DATA,
	ST_BLOB_REF,
	ST_BLOB_UNREF,
	ST_BLOB_DELETE,
	ST_XATTR_GET,
	ST_XATTR_SET,
	ST_XATTR_DELETE,
	ST_XATTR_LIST,
	ST_XATTR_DELETE_INO,
	ST_TAG_ADD,
	ST_TAG_DELETE_INO,
	ST_TAG_LIST_INO,
	ST_TAG_INOS,
	ST_META_SET,
	ST_LRU_OLDEST,
	ST_EXPIRED,
	ST_ORPHANS,
	ST_READLINK,
	ST_PENDING_ADD,
	ST_PENDING_DEL,
	ST_PENDING_LIST,
	ST_XATTR_NAMES_LEN,
	ST_NONDIR_INOS,
	ST_DIR_SCHEMA_ANY,
	ST__COUNT
};

/* One inode row. Times in ns. hash_set false = empty content. */
struct tc_inode {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint64_t rdev, size;
	int64_t atime, mtime, ctime;
	bool hash_set;
	uint8_t hash[TC_HASH_LEN];
	int64_t ttl;      /* own ttl: <0 unset, 0 none, >0 ns */
	int ttl_mode;     /* own mode: <0 unset */
	int64_t dttl;     /* inherited at creation (dirs: their default) */
	int dttl_mode;
	int64_t expires;  /* 0 = never */
	char schema[65];  /* "" = none */
	int64_t lru;      /* last access ns (regular files) */
	const char *target; /* symlink target, for insert only (borrowed) */
};

#define TC_FORMAT_VERSION 1

int tc_index_open(struct tc_engine *eng, bool create) TC_WUR;
void tc_index_close(struct tc_engine *eng);
int tc_index_begin_locked(struct tc_engine *eng) TC_WUR;
int tc_index_commit_locked(struct tc_engine *eng, bool durable) TC_WUR;
void tc_index_rollback_locked(struct tc_engine *eng);
sqlite3_stmt *tc_stmt_locked(struct tc_engine *eng, enum tc_stmt which);
int tc_step_done(struct tc_engine *eng, sqlite3_stmt *st) TC_WUR;
/* Run statement @which, whose only parameter is an inode number, to its
 * end. */
int tc_exec_ino_locked(struct tc_engine *eng, enum tc_stmt which,
		       uint64_t ino) TC_WUR;
int tc_sql_errno(int rc);
int tc_inode_get_locked(struct tc_engine *eng, uint64_t ino,
			struct tc_inode *out) TC_WUR;
void tc_inode_from_row(sqlite3_stmt *st, int col, struct tc_inode *out);
int tc_inode_insert_locked(struct tc_engine *eng, struct tc_inode *ino) TC_WUR;
int tc_inode_update_locked(struct tc_engine *eng,
			   const struct tc_inode *ino) TC_WUR;
int tc_meta_set_locked(struct tc_engine *eng, const char *key,
		       int64_t value) TC_WUR;
int64_t tc_meta_get(sqlite3 *db, const char *key, int64_t dflt, bool *found);
/* Step the bound statement @st to its end, collecting its first column as
 * inode numbers into a new array (*out, freed by the caller). -ENOMEM. */
int tc_collect_inos_locked(struct tc_engine *eng, sqlite3_stmt *st,
			   uint64_t **out, size_t *count) TC_WUR;
/* Bits of meta "dir_flags": some directory has ever had a schema / ttl. */
#define TC_DIR_SCHEMA 1
#define TC_DIR_TTL 2
int tc_index_exec(sqlite3 *db, const char *sql) TC_WUR;
/* Record the counters and a clean-shutdown mark (the next open then skips
 * the full integrity check and the counting queries). */
int tc_index_mark_clean_locked(struct tc_engine *eng) TC_WUR;

/* ------------------------------------------------------------------ */
/* engine.c: nodes, namespace and content                             */
/* ------------------------------------------------------------------ */

/* Published content loaded for reading, shared by the handles of a node. */
struct tc_content {
	atomic_uint refs;
	uint64_t size;
	struct tc_ram_item *ram; /* in RAM, or */
	int fd;                  /* a blob file, or -1 (empty content) */
};

/* Unpublished content of a node being written. */
struct tc_dirty {
	uint64_t size;
	char *buf; /* in memory while small */
	size_t cap;
	int fd;    /* spilled to a temporary file, or -1 */
	char tmpname[32];
	void *hstate;     /* XXH3 state while writes are sequential */
	uint64_t hashed;  /* bytes fed to hstate */
	bool hash_broken; /* a write went elsewhere: rehash at publish */
	bool written;     /* written or truncated since it began (an O_TRUNC
			   * open alone waits for the last close) */
	int64_t mtime;
};

/* An inode the kernel or a handle holds. */
struct tc_node {
	uint64_t ino;
	struct tc_node *hnext;   /* node table chain; eng->lock */
	uint64_t nlookup;        /* kernel lookup references; eng->lock */
	uint32_t nopen;          /* open handles; eng->lock */
	uint32_t nwriters;       /* writable open handles; eng->lock */
	uint32_t pins;           /* transient references; eng->lock */
	struct tc_inode meta;    /* copy of the row; eng->lock */
	uint64_t data_gen;       /* bumped at every publish; eng->lock */
	uint64_t cached_gen;     /* data_gen the kernel last cached */
	bool atime_pending;      /* in eng->atimes; eng->lock */
	pthread_mutex_t lock;    /* protects dirty and content */
	struct tc_dirty *dirty;
	struct tc_content *content;
};

struct tc_file {
	struct tc_engine *eng;
	struct tc_node *node;
	int flags;
	bool keep_cache;
	struct tc_file *prev, *next; /* eng->files; eng->lock */
};

struct tc_inval {
	uint64_t parent;
	uint64_t ino;
	char *name;
};

struct tc_inval_list {
	struct tc_inval *v;
	size_t n, cap;
};

struct tc_tag_rule_i {
	char *tag;
	int64_t ttl_ns;
	int64_t ram_ttl_ns;
};

struct tc_engine {
	/* configuration, immutable after open */
	char *store;
	uint64_t ram_size, ram_items, max_ram_item, disk_size, disk_items;
	uint64_t inline_max;
	int64_t ram_ttl_ns, ttl_ns;
	enum tc_ttl_mode ttl_mode;
	char *schema;
	enum tc_sync sync;
	struct tc_tag_rule_i *rules;
	size_t n_rules;
	tc_log_fn log_fn;
	void *log_ctx;
	int log_level;
	tc_clock_fn clock;
	void *clock_ctx;

	int store_fd;
	int lock_fd;
	struct tc_blob_store blobs;
	struct tc_ram *ram;
	struct tc_counters counters;
	int64_t started_ns;

	pthread_mutex_t lock;
	sqlite3 *db;                   /* eng->lock */
	sqlite3_stmt *st[ST__COUNT];   /* eng->lock */
	struct tc_node **nodes;        /* eng->lock */
	struct tc_file *files;         /* open handles; eng->lock */
	size_t nnodes, nbuckets;       /* eng->lock */
	uint64_t disk_bytes, disk_items_now; /* eng->lock */
	uint64_t blob_bytes;           /* eng->lock */
	/* Counters as they were at BEGIN, restored by a rollback. */
	uint64_t saved_disk_bytes, saved_disk_items, saved_blob_bytes;
	/* Blobs whose last reference went in the open transaction: their
	 * files are deleted after COMMIT (unless referenced again). */
	uint8_t (*doomed)[TC_HASH_LEN]; /* eng->lock */
	size_t n_doomed, cap_doomed;
	bool any_dir_schema;           /* eng->lock */
	bool any_dir_ttl;              /* eng->lock */
	uint64_t *atimes;  /* inodes whose node->atime_pending; eng->lock */
	size_t n_atimes;
	struct {
		uint64_t parent;
		uint64_t name_hash;
		int64_t when;
	} recent_miss[64];            /* eng->lock */
	unsigned recent_miss_pos;

	pthread_mutex_t inval_lock;
	tc_inval_fn inval_fn;
	void *inval_ctx;

	pthread_t thread;
	bool thread_running;
	pthread_mutex_t thread_lock;
	pthread_cond_t thread_cond;
	bool thread_stop;
};

int64_t tc_now(struct tc_engine *eng);
struct tc_node *tc_node_find_locked(struct tc_engine *eng, uint64_t ino);
void tc_node_unpin_locked(struct tc_engine *eng, struct tc_node *n);
int tc_inode_drop_locked(struct tc_engine *eng, uint64_t ino,
			 struct tc_inval_list *inv) TC_WUR;
int tc_blob_unref_locked(struct tc_engine *eng, const uint8_t *hash) TC_WUR;
void tc_inval_add(struct tc_inval_list *l, uint64_t parent, const char *name,
		  size_t len, uint64_t ino);
void tc_inval_deliver(struct tc_engine *eng, struct tc_inval_list *l);
int tc_flush_atimes_locked(struct tc_engine *eng) TC_WUR;
int tc_apply_atimes_locked(struct tc_engine *eng) TC_WUR;
bool tc_blob_known_locked(struct tc_engine *eng, const uint8_t *hash);
void tc_disk_account_locked(struct tc_engine *eng, int64_t dbytes,
			    int64_t ditems);

/* ------------------------------------------------------------------ */
/* policy.c: lifetimes, tags, schema, limits, xattrs                  */
/* ------------------------------------------------------------------ */

/* Recompute @ino's expiry from its own ttl, tag rules, inherited and mount
 * defaults, counted from @from. Updates ino->expires. */
int tc_policy_resolve_locked(struct tc_engine *eng, struct tc_inode *ino,
			     int64_t from) TC_WUR;
/* @from + @ttl, or 0 (never) when @ttl is 0 or the sum would not fit:
 * a lifetime of centuries is no lifetime. */
static inline int64_t tc_deadline(int64_t from, int64_t ttl)
{
	if (ttl <= 0 || from > INT64_MAX - ttl)
		return 0;
	return from + ttl;
}

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
/* Make room for @dbytes more bytes and @ditems more items by evicting least
 * recently used entries other than @keep. -EFBIG, -ENOSPC. */
int tc_policy_make_room_locked(struct tc_engine *eng, int64_t dbytes,
			       int64_t ditems, uint64_t keep,
			       struct tc_inval_list *inv) TC_WUR;
/* Expiry sweep: drop every entry whose deadline passed. */
int tc_policy_sweep_locked(struct tc_engine *eng,
			   struct tc_inval_list *inv) TC_WUR;

ssize_t tc_policy_getxattr(struct tc_engine *eng, uint64_t ino,
			   const char *name, void *buf, size_t size);
int tc_policy_setxattr(struct tc_engine *eng, uint64_t ino, const char *name,
		       const char *value, size_t size);
int tc_policy_removexattr(struct tc_engine *eng, uint64_t ino,
			  const char *name);
ssize_t tc_policy_listxattr(struct tc_engine *eng, uint64_t ino, char *buf,
			    size_t size, size_t used);

#endif /* TC_ENGINE_I_H */
