/* SPDX-License-Identifier: MIT */
/**
 * @file tiercache.h
 * @brief The tiercache engine: a two-tier (RAM + content-addressed disk) cache
 *        that presents a POSIX-like namespace. No FUSE dependency.
 *
 * This is the only header the daemon (fs/) and the tests include.
 *
 * Model
 * -----
 * The store is a directory holding an SQLite index (the namespace and all
 * metadata) and immutable blobs named by the XXH3-128 of their content. An
 * inode is identified by a 64-bit number (the index rowid, never reused);
 * the root directory is ::TC_ROOT_INO. Directory entries (parent, name) point
 * at inodes, so hard links share one inode.
 *
 * Reference counts mirror the kernel's: every successful call documented as
 * "takes a lookup reference" must be balanced by tc_forget(). An inode whose
 * link count dropped to zero (unlinked, evicted, expired) survives as long as
 * it has lookup references or open handles, then disappears.
 *
 * Content is read and written through open handles (struct tc_file). Writes
 * go to dirty state shared by all handles on the inode (every reader sees
 * them at once) and are published atomically to the store on tc_flush() of
 * the last writable handle, on tc_fsync() and on tc_release().
 *
 * Errors
 * ------
 * Every function returning int returns 0 on success or a negative errno.
 *
 * Threads
 * -------
 * All functions are thread-safe: one engine may be used by many threads at
 * once. A struct tc_file may be used by several threads at once too.
 */
#ifndef TIERCACHE_H
#define TIERCACHE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TC_WUR __attribute__((warn_unused_result))

/** Inode number of the root directory. */
#define TC_ROOT_INO 1

/** Longest name of one path component, in bytes. */
#define TC_NAME_MAX 255

/** Largest value of one extended attribute, in bytes. */
#define TC_XATTR_SIZE_MAX 65536

/** Prefix of the cache-control extended attributes. */
#define TC_XATTR_PREFIX "user.tiercache."

struct tc_engine;
struct tc_file;

/** When published content is made durable (tiercachefs(8), NOTES, Durability). */
enum tc_sync {
	TC_SYNC_FSYNC = 0, /**< durable when the program's fsync returns */
	TC_SYNC_CLOSE,     /**< durable at every publish (close) */
	TC_SYNC_NEVER,     /**< never fsync, even on request */
};

/** How an entry's lifetime is counted. */
enum tc_ttl_mode {
	TC_TTL_ABSOLUTE = 0, /**< from the last write */
	TC_TTL_SLIDING,      /**< every read restarts it */
};

/** Log levels, as syslog's. */
enum tc_log_level {
	TC_LOG_ERR = 3,
	TC_LOG_WARNING = 4,
	TC_LOG_INFO = 6,
	TC_LOG_DEBUG = 7,
};

/**
 * Log callback. @p fmt and @p ap are printf-style; called from any thread.
 * The engine checks the level before formatting anything.
 */
typedef void (*tc_log_fn)(void *ctx, int level, const char *fmt, va_list ap);

/** Clock callback: wall-clock time in nanoseconds since the Unix epoch. */
typedef int64_t (*tc_clock_fn)(void *ctx);

/**
 * A TTL rule for a tag (config file section [tag NAME]).
 * Negative durations mean "not set by this rule".
 */
struct tc_tag_rule {
	char *tag;          /**< tag name, owned by the config */
	int64_t ttl_ns;     /**< lifetime, 0 = never expires, <0 unset */
	int64_t ram_ttl_ns; /**< RAM idle time, 0 = never, <0 unset */
};

/**
 * Blob I/O operations, replaceable for fault injection (tests make them
 * fail with EIO or ENOSPC). Each returns what the libc call of the same name
 * returns and sets errno the same way.
 */
struct tc_blob_ops {
	ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t n, off_t off);
	ssize_t (*pread)(void *ctx, int fd, void *buf, size_t n, off_t off);
	int (*fsync)(void *ctx, int fd);
	void *ctx;
};

/**
 * Engine configuration. Initialise with tc_config_init(), then override.
 * Strings are borrowed: they must stay valid until tc_engine_open() returns.
 * Limits of 0 mean "no limit"; durations of 0 mean "never".
 */
struct tc_config {
	const char *store;      /**< store directory (required) */
	uint64_t ram_size;      /**< RAM tier byte limit; default 256 MiB */
	uint64_t ram_items;     /**< RAM tier item limit; default none */
	int64_t ram_ttl_ns;     /**< idle time before leaving RAM; default 1 h */
	uint64_t max_ram_item;  /**< larger items never enter RAM; 16 MiB */
	uint64_t disk_size;     /**< disk tier logical byte limit; 10 GiB */
	uint64_t disk_items;    /**< disk tier item limit; default none */
	int64_t ttl_ns;         /**< default entry lifetime; default never */
	enum tc_ttl_mode ttl_mode; /**< default TTL mode; absolute */
	const char *schema;     /**< expected schema at the root, or NULL */
	enum tc_sync sync;      /**< durability; default TC_SYNC_FSYNC */
	/** Contents up to this size live inside the index, still addressed
	 *  by their hash, instead of one blob file each (a file costs an
	 *  inode, a directory entry and a rename). Default 64 KiB (SQLite's
	 *  own measurements put the break-even between 50 and 100 KiB); 0
	 *  keeps every content in a blob file. */
	uint64_t inline_max;
	/** Changes are committed to the index in groups, one transaction per
	 *  this interval at most (a program's fsync commits at once). Default
	 *  5 ms: short enough that a crash loses little that was not synced,
	 *  long enough to share one commit among hundreds of operations. 0
	 *  commits after every operation. */
	int64_t commit_interval_ns;
	/** Contents larger than this are stored as chunks of this size, so a
	 *  change costs the chunks it touches, identical chunks are stored
	 *  once, and copy_file_range shares them. Default 1 MiB (a FUSE write
	 *  request's size, and few enough files per GiB); a multiple of 4 KiB
	 *  up to 64 MiB. A store keeps the size it was created with. */
	uint64_t chunk_size;
	const struct tc_tag_rule *tag_rules; /**< borrowed, copied at open */
	size_t n_tag_rules;
	/** Start a background thread for maintenance (access-time flushes,
	 *  expiry sweeps, RAM idle expiry). Tests leave it off and call
	 *  tc_engine_maintain() themselves. Default true. */
	bool background;
	tc_log_fn log_fn;       /**< NULL: no logging */
	void *log_ctx;
	int log_level;          /**< messages above this level are dropped */
	tc_clock_fn clock;      /**< NULL: CLOCK_REALTIME */
	void *clock_ctx;
	const struct tc_blob_ops *blob_ops; /**< NULL: the libc calls */
	/** Writes may arrive without a handle (tc_write_ino(): the kernel's
	 *  writeback cache, tiercachefs's cache_mode=kernel). Then a truncate
	 *  without a writable handle does not publish at once: it starts dirty
	 *  state that the writes after it complete; and dirty state that no
	 *  writable handle holds is published by tc_engine_maintain() once no
	 *  write has arrived for @p quiet_ns (besides tc_publish_ino(),
	 *  tc_publish_name() and tc_engine_close()). Default false. */
	bool handleless_writes;
	/** Quiet period of @p handleless_writes; default 1 s. */
	int64_t quiet_ns;
	/** The shared tier (tiercachefs(8), SHARED TIER): memcached servers
	 *  "HOST:PORT[,HOST:PORT...]" (tc_shared_check_servers()), or NULL
	 *  for none. Publishes are pushed there, lookups that miss here are
	 *  answered from there (tc_lookup_shared()). */
	const char *shared_servers;
	/** Copies of each item on distinct servers; default 1. */
	unsigned shared_replicas;
	/** How long what was learned from (or told to) the shared tier is
	 *  trusted before it is checked again; default 1 s, 0 checks at every
	 *  lookup. Bounds how late other mounts' changes are seen. */
	int64_t shared_revalidate_ns;
	/** The secret of tc_shared_load_key() (borrowed; copied at open), or
	 *  NULL: records are not authenticated. */
	const uint8_t *shared_key;
	size_t shared_key_len;
	/** Namespace of the keys on the servers, [A-Za-z0-9_.-]{1,32}, or
	 *  NULL: "pub" without a key, one derived from the key with one. */
	const char *shared_namespace;
};

/** Fill @p cfg with the defaults of tiercachefs(8), Mount options. @p cfg->store stays NULL. */
void tc_config_init(struct tc_config *cfg);

/**
 * Open (creating if missing, mode 0700) the store named by @p cfg->store.
 * Takes an exclusive lock on the store, removes leftover temporary files,
 * drops inodes left unlinked by a crash.
 *
 * @return 0 and *@p out, or -EBUSY when another process holds the store,
 *         -EPROTO when the index is corrupt, -EPROTONOSUPPORT when it is of a
 *         newer format, another -errno on I/O errors. On failure a message
 *         naming the problem has been logged at TC_LOG_ERR, and
 *         tc_engine_last_error() describes it.
 */
int tc_engine_open(const struct tc_config *cfg, struct tc_engine **out) TC_WUR;

/**
 * Human-readable reason for the last failed tc_engine_open() in this thread
 * (thread-local storage, valid until the next tc_engine_open() on the same
 * thread), or "" when there is none.
 */
const char *tc_engine_last_error(void);

/**
 * Publish all dirty state (also that of handles still open: those handles
 * are freed and must not be used afterwards), flush batched access times,
 * close the index and release the store lock. Everything is freed whatever
 * happens. NULL is a no-op.
 * @return 0, or the error of the first publish that failed (its writes are
 *         lost, and logged as an error): the caller must report it.
 */
int tc_engine_close(struct tc_engine *eng);

/**
 * Run one round of maintenance now: flush batched access times, sweep
 * expired entries (reclaiming their blobs), drop idle items from RAM.
 * Thread-safe; the background thread calls it periodically.
 */
int tc_engine_maintain(struct tc_engine *eng) TC_WUR;

/**
 * Invalidation callback: the engine removed @p name from directory
 * @p parent (eviction, expiry, schema discard, evict_tag, flush) without a
 * request from the kernel. The daemon tells the kernel to drop its cached
 * dentry. Called without engine locks held, possibly from the background
 * thread. @p name is valid for the call only. A NULL @p name means that
 * the content or attributes of inode @p ino changed under the same inode
 * number without a request from the kernel (@p parent is then 0): the
 * daemon drops the kernel's cached attributes and pages of @p ino.
 */
typedef void (*tc_inval_fn)(void *ctx, uint64_t parent, const char *name,
			    uint64_t ino);

/** Install the invalidation callback (NULL to remove). */
void tc_engine_set_inval(struct tc_engine *eng, tc_inval_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Attributes and namespace                                            */
/* ------------------------------------------------------------------ */

/**
 * What the engine knows of an inode. @p valid_ns is how long from now the
 * kernel may cache this entry and these attributes: the remaining lifetime
 * when the entry expires, INT64_MAX when it never does. @p unsettled (only
 * in listings) says a writer's content is not published yet: the size and
 * times are the published ones, not what the kernel may already know, so
 * they must not be handed to it (a listing then gives only the name).
 */
struct tc_attr {
	struct stat st;
	int64_t valid_ns;
	bool unsettled;
};

/** Identity of the caller, for ownership of new entries. */
struct tc_ctx {
	uid_t uid;
	gid_t gid;
	mode_t umask;
};

/**
 * Look @p name up in directory @p parent. Takes a lookup reference on
 * success. An entry that is expired or schema-discarded is absent (and
 * counted as a miss).
 * @return 0, -ENOENT, -ENOTDIR, -ENAMETOOLONG.
 */
int tc_lookup(struct tc_engine *eng, uint64_t parent, const char *name,
	      struct tc_attr *out) TC_WUR;

/**
 * tc_lookup(), and with a shared tier (tc_config::shared_servers): a name
 * absent here is asked of the shared tier, and when another mount
 * published it, created here with its content (fetched unless the store
 * holds it, verified by its hash) and metadata; a regular file found here
 * that was not compared with the shared tier for shared_revalidate is
 * compared again, updated when the shared record is newer, removed when a
 * newer tombstone says it was unlinked. Negative answers are remembered
 * for shared_revalidate. The shared tier's trouble is never an error
 * here: it is a miss. Takes a lookup reference on success, as tc_lookup().
 * Without a shared tier it is tc_lookup().
 * @return as tc_lookup().
 */
int tc_lookup_shared(struct tc_engine *eng, uint64_t parent, const char *name,
		     struct tc_attr *out) TC_WUR;

/** Drop @p n lookup references on @p ino (the kernel's forget). */
void tc_forget(struct tc_engine *eng, uint64_t ino, uint64_t n);

/** Attributes of @p ino (sizes include unpublished writes). -ENOENT. */
int tc_getattr(struct tc_engine *eng, uint64_t ino, struct tc_attr *out) TC_WUR;

/** Bits of tc_setattr()'s @p to_set. */
enum {
	TC_SET_MODE = 1 << 0,
	TC_SET_UID = 1 << 1,
	TC_SET_GID = 1 << 2,
	TC_SET_SIZE = 1 << 3,
	TC_SET_ATIME = 1 << 4,
	TC_SET_MTIME = 1 << 5,
	TC_SET_ATIME_NOW = 1 << 6,
	TC_SET_MTIME_NOW = 1 << 7,
	TC_SET_CTIME = 1 << 8,
};

/**
 * Change attributes of @p ino: the fields of @p st named by @p to_set.
 * A size change truncates or extends the content (as dirty state, published
 * like a write; through @p f when given). Only permission bits and
 * S_ISUID/S_ISGID/S_ISVTX of st_mode are used.
 * @return 0 and the new attributes in @p out; -ENOENT, -EISDIR (size on a
 *         directory), -EFBIG.
 */
int tc_setattr(struct tc_engine *eng, uint64_t ino, const struct stat *st,
	       int to_set, struct tc_file *f, struct tc_attr *out) TC_WUR;

/**
 * Create a node of type S_IFREG, S_IFDIR, S_IFIFO, S_IFSOCK, S_IFCHR or
 * S_IFBLK in @p parent, owned by @p ctx (group from a setgid parent, which a
 * new directory inherits). Takes a lookup reference.
 * @param rdev  device number of a S_IFCHR or S_IFBLK node, stored and
 *              reported as st_rdev (the node is never opened as a device:
 *              a FUSE mount is nodev); ignored for the other types.
 * Whether the caller may create a device node (CAP_MKNOD) is the kernel's
 * check, made before the request reaches the daemon.
 * @return 0, -EEXIST, -ENOENT, -ENOTDIR, -EPERM (the reserved .stats at the
 *         root), -ENAMETOOLONG, -EINVAL (another file type).
 */
int tc_mknod(struct tc_engine *eng, uint64_t parent, const char *name,
	     mode_t mode, dev_t rdev, const struct tc_ctx *ctx,
	     struct tc_attr *out) TC_WUR;

/** Create a symlink to @p target. Lookup reference as tc_mknod(). */
int tc_symlink(struct tc_engine *eng, uint64_t parent, const char *name,
	       const char *target, const struct tc_ctx *ctx,
	       struct tc_attr *out) TC_WUR;

/**
 * Read a symlink's target into @p buf (NUL-terminated).
 * @return 0, -EINVAL (not a symlink), -ERANGE (buffer too small), -ENOENT.
 */
int tc_readlink(struct tc_engine *eng, uint64_t ino, char *buf,
		size_t size) TC_WUR;

/**
 * Add a hard link @p newparent/@p newname to @p ino (not a directory).
 * Takes a lookup reference on @p ino.
 * @return 0, -EEXIST, -EPERM (directory), -ENOENT.
 */
int tc_link(struct tc_engine *eng, uint64_t ino, uint64_t newparent,
	    const char *newname, struct tc_attr *out) TC_WUR;

/**
 * Remove the entry @p name (not a directory). An inode left without links
 * stays readable through open handles and lookup references.
 * @return 0, -ENOENT, -EISDIR, -EPERM (.stats).
 */
int tc_unlink(struct tc_engine *eng, uint64_t parent, const char *name) TC_WUR;

/** Remove the empty directory @p name. -ENOTEMPTY, -ENOTDIR, -ENOENT. */
int tc_rmdir(struct tc_engine *eng, uint64_t parent, const char *name) TC_WUR;

/** Flags of tc_rename(), as renameat2(2)'s. */
enum {
	TC_RENAME_NOREPLACE = 1 << 0,
	TC_RENAME_EXCHANGE = 1 << 1,
};

/**
 * Rename atomically, replacing an existing target (a directory only by an
 * empty directory). Renaming a directory is one index update.
 * @return 0, -ENOENT, -EEXIST (NOREPLACE), -ENOTEMPTY, -EISDIR, -ENOTDIR,
 *         -EINVAL (a directory into its own subtree, or unknown flags),
 *         -EPERM (.stats).
 */
int tc_rename(struct tc_engine *eng, uint64_t parent, const char *name,
	      uint64_t newparent, const char *newname,
	      unsigned int flags) TC_WUR;

/**
 * Directory listing callback. @p off is the cookie to resume after this
 * entry. @p attr is only valid for the call. Return 0 when the entry was
 * taken, non-zero when it did not fit (the listing stops there and, with
 * @p plus, no lookup reference is taken for it).
 */
typedef int (*tc_dirent_fn)(void *ctx, const char *name,
			    const struct tc_attr *attr, uint64_t off);

/**
 * List directory @p ino from cookie @p off (0: the start, including "." and
 * "..", cookies 1 and 2; every other entry's cookie is above 2). With
 * @p plus each entry taken (except "." and "..", and those whose attributes
 * are unsettled) gets a lookup reference. Expired and schema-discarded
 * entries are left out.
 * @return 0, -ENOTDIR, -ENOENT.
 */
int tc_readdir(struct tc_engine *eng, uint64_t ino, uint64_t off, bool plus,
	       tc_dirent_fn fn, void *ctx) TC_WUR;

/** Disk tier figures for statfs(2). */
struct tc_statfs {
	uint64_t limit_bytes; /**< disk_size, or the store filesystem's size */
	uint64_t used_bytes;  /**< logical bytes of all entries */
	uint64_t items;
	uint64_t limit_items; /**< disk_items, or 0 */
};

/** Fill @p out. */
void tc_statfs(struct tc_engine *eng, struct tc_statfs *out);

/**
 * Make every change made so far durable, as sync= allows (fsyncdir, and
 * syncfs): the open group of changes is committed and the index synced.
 * @return 0, -ENOSPC or -EIO when the commit or the sync failed.
 */
int tc_sync(struct tc_engine *eng) TC_WUR;

/* ------------------------------------------------------------------ */
/* Content                                                            */
/* ------------------------------------------------------------------ */

/**
 * Open regular file @p ino. @p flags are open(2)'s: the access mode,
 * O_TRUNC and O_APPEND are honoured. An open with read access is a "get"
 * (counted as a RAM or disk hit) and may promote the content into RAM.
 * The handle keeps the content readable until tc_release(), whatever
 * happens to the entry meanwhile.
 * @return 0 and *@p out (free with tc_release()); -ENOENT, -EISDIR,
 *         -EIO (blob missing or corrupt: the entry is dropped).
 */
int tc_open(struct tc_engine *eng, uint64_t ino, int flags,
	    struct tc_file **out) TC_WUR;

/**
 * tc_mknod() of a regular file followed by tc_open() (O_CREAT semantics;
 * O_EXCL is the caller's business: it gets -EEXIST from here either way).
 * Takes a lookup reference.
 */
int tc_create(struct tc_engine *eng, uint64_t parent, const char *name,
	      mode_t mode, int flags, const struct tc_ctx *ctx,
	      struct tc_attr *out, struct tc_file **fout) TC_WUR;

/**
 * Read up to @p size bytes at @p off into @p buf. Sees unpublished writes.
 * @return bytes read (0 at end of file), or -errno.
 */
ssize_t tc_read(struct tc_file *f, void *buf, size_t size, off_t off) TC_WUR;

/**
 * Where published bytes can be served from without a copy (tc_read_span()
 * and tc_read_span_ino() fill it; tc_span_done() lets go of it).
 */
struct tc_span {
	int fd;           /**< >= 0: the bytes are at @c pos of this blob file
			       (verified against its hash); else in @c data */
	off_t pos;        /**< where in @c fd */
	const void *data; /**< fd < 0: the bytes themselves, @c len of them */
	size_t len;       /**< how many bytes (clipped at the end of the
			       file) */
	void *hold;       /**< private: what keeps @c data valid */
	bool own_fd;      /**< private: @c fd is the caller's to close */
};

/**
 * Where bytes [@p off, @p off + @p size) of an open file are when there are
 * no unpublished writes and they lie in one RAM item or one blob file (one
 * chunk of a large file): fills @p s and returns 0. The bytes stay valid
 * until tc_span_done(), whatever happens to the entry meanwhile. Otherwise
 * -EAGAIN (dirty, across chunks, at the end of the file: use tc_read()),
 * or -EIO for a corrupt chunk (the entry is dropped).
 */
int tc_read_span(struct tc_file *f, off_t off, size_t size,
		 struct tc_span *s) TC_WUR;

/** Let go of what a tc_read_span() or tc_read_span_ino() gave. */
void tc_span_done(struct tc_span *s);

/**
 * Write @p size bytes at @p off (at the end of file with O_APPEND).
 * @return bytes written, or -EBADF (read-only handle), -EFBIG, -ENOSPC, -EIO.
 */
ssize_t tc_write(struct tc_file *f, const void *buf, size_t size,
		 off_t off) TC_WUR;

/**
 * fallocate(2) on an open file, with the Linux FALLOC_FL_* bits in @p mode:
 *  - 0: allocate; when @p off + @p len is past the end, the file grows to
 *    it with zeros;
 *  - FALLOC_FL_KEEP_SIZE: allocate without growing: nothing changes (the
 *    store has no preallocation; later writes take space as usual);
 *  - FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE: the bytes of the range
 *    that lie within the file become zeros, the size stays;
 *  - FALLOC_FL_ZERO_RANGE, with or without FALLOC_FL_KEEP_SIZE: the range
 *    reads as zeros; without KEEP_SIZE the file grows to cover it.
 * A change is dirty state, published like a write (tc_flush(), tc_fsync(),
 * tc_release()). Checks in vfs_fallocate()'s order.
 * @return 0, or -EINVAL (@p off < 0 or @p len <= 0), -EOPNOTSUPP (any other
 *         mode), -EBADF (read-only handle), -EISDIR, -ENODEV (not a regular
 *         file), -EFBIG (@p off + @p len past disk_size), -ENOSPC, -EIO.
 */
int tc_fallocate(struct tc_file *f, int mode, off_t off, off_t len) TC_WUR;

/**
 * copy_file_range(2): copy @p len bytes at @p off_in of regular file
 * @p ino_in to @p off_out of @p ino_out (open for writing: its dirty state
 * takes them, published as any write). Whole chunks at the same alignment
 * are shared, not copied. @return bytes copied (fewer at the source's end,
 * 0 past it), or -errno (-EFBIG past disk_size, -EISDIR, -EINVAL).
 */
ssize_t tc_copy_range(struct tc_engine *eng, uint64_t ino_in, off_t off_in,
		      uint64_t ino_out, off_t off_out, size_t len) TC_WUR;

/** tc_fallocate() without a handle (cache_mode=kernel: the kernel opened
 *  the file itself and checked it is writable). */
int tc_fallocate_ino(struct tc_engine *eng, uint64_t ino, int mode, off_t off,
		     off_t len) TC_WUR;

/**
 * The program closed a descriptor of this handle: publish the dirty state if
 * this is the last writable handle on the inode and the content was written
 * or truncated since the last publish (an O_TRUNC open alone is published
 * at tc_release(): a shell's "> f" closes a dup before writing). With
 * sync=close, durably.
 * @return 0 or the error of publishing (-ENOSPC, -EIO, -EFBIG): the
 *         previous content stays intact and the dirty state is kept.
 */
int tc_flush(struct tc_file *f) TC_WUR;

/**
 * Publish the dirty state now and (unless sync=never) make it durable.
 */
int tc_fsync(struct tc_file *f, bool datasync) TC_WUR;

/**
 * Release the handle: publish what is still dirty if it was the last
 * writable one, unpin the content, free @p f. Returns the publish error,
 * but @p f is freed in every case.
 */
int tc_release(struct tc_file *f);

/* ------------------------------------------------------------------ */
/* Content without handles                                            */
/* ------------------------------------------------------------------ */

/*
 * When the kernel caches pages itself (tiercachefs's cache_mode=kernel) it
 * opens files without telling the daemon: reads and writes then name only
 * the inode. These calls work on the node's shared state, as handles do:
 * reads see unpublished writes, writes go to the dirty state every reader
 * sees. While the kernel holds a lookup reference on @p ino the content a
 * read loaded stays loaded (pinned in RAM, or a blob descriptor), so later
 * reads do not load it again; tc_engine_maintain() lets go of content not
 * read since its previous round, so the RAM tier can still evict it. All
 * are thread-safe; each fails with -ENOENT (unknown inode), -EISDIR or
 * -EINVAL (not a regular file).
 */

/**
 * Read up to @p size bytes of @p ino at @p off into @p buf. The first read
 * that loads the content is a get (a RAM or disk hit, with LRU recency and
 * a sliding TTL refreshed, as an open for reading in tc_open()).
 * @return bytes read (0 at end of file), or -errno (-EIO: blob missing or
 *         corrupt, the entry is dropped).
 */
ssize_t tc_read_ino(struct tc_engine *eng, uint64_t ino, void *buf,
		    size_t size, off_t off) TC_WUR;

/**
 * Like tc_read_span() for @p ino (kernel mode: reads without handles).
 * Loads the content as tc_read_ino() does.
 */
int tc_read_span_ino(struct tc_engine *eng, uint64_t ino, off_t off,
		     size_t size, struct tc_span *s) TC_WUR;

/**
 * Write @p size bytes at @p off of @p ino into its dirty state (@p off is
 * exact: whoever computed it handled O_APPEND). Published like writes of a
 * handle, or as tc_config::handleless_writes says.
 * @return bytes written, or -EFBIG, -ENOSPC, -EIO, -EINVAL.
 */
ssize_t tc_write_ino(struct tc_engine *eng, uint64_t ino, const void *buf,
		     size_t size, off_t off) TC_WUR;

/**
 * Publish the dirty state of @p ino now (nothing when there is none). With
 * @p durable (an fsync) also make it, or the content published before,
 * durable unless sync=never; sync=close makes every publish durable.
 * @return 0, or the error of publishing (-ENOSPC, -EIO, -EFBIG): the
 *         previous content stays intact and the dirty state is kept.
 */
int tc_publish_ino(struct tc_engine *eng, uint64_t ino, bool durable) TC_WUR;

/**
 * Publish the dirty state of the entry @p name in directory @p parent, if
 * it has any (a rename of it is coming: whoever wrote it has closed it, and
 * after a crash the new name must hold a whole version). No lookup
 * reference is taken and nothing is counted. @return 0 (also when there is
 * no such regular file), or the error of publishing as tc_publish_ino().
 */
int tc_publish_name(struct tc_engine *eng, uint64_t parent,
		    const char *name) TC_WUR;

/**
 * The kernel revalidated @p ino (a lookup after its entry timeout): LRU
 * recency and a sliding TTL are refreshed, as by a get. Cheap (no SQLite
 * write: recency is batched). Unknown inodes are ignored.
 */
void tc_touch(struct tc_engine *eng, uint64_t ino);

/** Inode number of an open handle. */
uint64_t tc_file_ino(const struct tc_file *f);

/** True when the handle's content did not change since the last time the
 *  inode was opened (the kernel may keep its page cache). */
bool tc_file_keep_cache(const struct tc_file *f);

/* ------------------------------------------------------------------ */
/* Extended attributes                                                */
/* ------------------------------------------------------------------ */

/**
 * Get xattr @p name of @p ino into @p buf (@p size 0: only return the
 * length). Handles user.* (stored) and user.tiercache.* (computed).
 * @return value length, or -ENODATA, -ERANGE, -ENOTSUP (namespaces other
 *         than user.), -ENOENT.
 */
ssize_t tc_getxattr(struct tc_engine *eng, uint64_t ino, const char *name,
		    void *buf, size_t size) TC_WUR;

/**
 * Set xattr @p name. @p flags are XATTR_CREATE / XATTR_REPLACE.
 * user.tiercache.* values are validated (-EINVAL), read-only ones give
 * -EPERM, root-only control attributes act at once.
 * @return 0, -EINVAL, -EPERM, -EEXIST, -ENODATA, -E2BIG (value too large),
 *         -ENOTSUP, -ENOSPC.
 */
int tc_setxattr(struct tc_engine *eng, uint64_t ino, const char *name,
		const void *value, size_t size, int flags) TC_WUR;

/**
 * List xattr names (NUL-separated) into @p buf (@p size 0: length only):
 * stored user.* names and the user.tiercache.* ones set on the entry (ttl,
 * ttl_mode, tags, schema); computed ones (expires, tier, hash) are read by
 * name only, so copies with cp -a or rsync -X never try to write them.
 * @return total length, -ERANGE, -ENOENT.
 */
ssize_t tc_listxattr(struct tc_engine *eng, uint64_t ino, char *buf,
		     size_t size) TC_WUR;

/** Remove xattr @p name. user.tiercache.ttl etc. reset to "unset".
 *  @return 0, -ENODATA, -EPERM, -ENOTSUP. */
int tc_removexattr(struct tc_engine *eng, uint64_t ino, const char *name) TC_WUR;

/* ------------------------------------------------------------------ */
/* Tags                                                               */
/* ------------------------------------------------------------------ */

/*
 * Which entries carry a tag (user.tiercache.tags), answered from the tag
 * table of the index, which is keyed by tag: listing the tags in use costs
 * one index seek per tag, and the entries of one tag are read without
 * looking at any other entry. Only visible entries count: an expired, a
 * schema-discarded or an unlinked entry (still open somewhere) is left
 * out, as a lookup would find it absent. Nothing is counted in the
 * statistics and nothing is dropped on the way (the sweep does that).
 *
 * The callbacks are called without engine locks held (the results are
 * gathered in batches under the lock, then handed out), so they may call
 * the engine. A change made meanwhile may or may not be seen by a listing
 * in progress; every listing started after it sees it.
 */

/** One tag in use (NUL-terminated, valid for the call). Nonzero stops. */
typedef int (*tc_tag_fn)(void *ctx, const char *tag);

/**
 * One path of an entry: @p path, from the root of the store, as
 * "/dir/key", NUL-terminated and @p len bytes long; any bytes but NUL may
 * appear in it (names are bytes: a newline too). Valid for the call.
 * Nonzero stops.
 */
typedef int (*tc_path_fn)(void *ctx, const char *path, size_t len);

/**
 * Call @p fn for each tag that at least one visible entry carries, in
 * byte order (strcmp), each once.
 * @return 0 (also when @p fn stopped it), or -ENOMEM, -EIO.
 */
int tc_tags_list(struct tc_engine *eng, tc_tag_fn fn, void *ctx) TC_WUR;

/**
 * Whether a visible entry carries @p tag.
 * @return 0 when one does, -ENOENT when none does, -EINVAL when @p tag is
 *         not a valid tag (tc_tag_valid()), -EIO.
 */
int tc_tag_in_use(struct tc_engine *eng, const char *tag) TC_WUR;

/**
 * Call @p fn with the path of every visible entry that carries @p tag: one
 * call per name (an entry with hard links has several), entries in the
 * order they were created.
 * @return 0 (also when no entry carries it, or @p fn stopped it), or
 *         -EINVAL (not a valid tag), -ENOMEM, -EIO.
 */
int tc_tag_paths(struct tc_engine *eng, const char *tag, tc_path_fn fn,
		 void *ctx) TC_WUR;

/* ------------------------------------------------------------------ */
/* Statistics                                                         */
/* ------------------------------------------------------------------ */

/** Kind of a statistic, for the exposition format. */
enum tc_stat_kind {
	TC_STAT_COUNTER,
	TC_STAT_GAUGE,
};

/**
 * Statistics callback: @p name without the tiercache_ prefix or _total
 * suffix (e.g. "ram_hits"), @p help one line of text. Strings are valid for
 * the call only.
 */
typedef void (*tc_stat_fn)(void *ctx, const char *name, const char *help,
			   enum tc_stat_kind kind, double value);

/** Report every metric of tiercachefs(8), STATISTICS, through @p fn, in a fixed order. */
void tc_engine_stats(struct tc_engine *eng, tc_stat_fn fn, void *ctx);

/** Zero the counters (gauges keep their values). */
void tc_engine_reset_stats(struct tc_engine *eng);

/* ------------------------------------------------------------------ */
/* Parsing helpers shared by the daemon, the config file and xattrs   */
/* ------------------------------------------------------------------ */

/**
 * Parse a size: digits with an optional K, M, G or T suffix (powers of
 * 1024, case-insensitive; a trailing B is accepted, as in "16MB"), or
 * "none"/"0" for 0. @return 0, or -EINVAL (malformed, negative, empty),
 * -ERANGE (overflow).
 */
int tc_parse_size(const char *s, uint64_t *out) TC_WUR;

/**
 * Parse a duration: digits with an optional s, m, h or d suffix (a bare
 * number is seconds), or "none"/"0" for 0. Result in nanoseconds.
 * @return 0, -EINVAL, -ERANGE.
 */
int tc_parse_duration(const char *s, int64_t *out_ns) TC_WUR;

/** Parse "absolute" or "sliding". @return 0 or -EINVAL. */
int tc_parse_ttl_mode(const char *s, enum tc_ttl_mode *out) TC_WUR;

/** Parse "fsync", "close" or "never". @return 0 or -EINVAL. */
int tc_parse_sync(const char *s, enum tc_sync *out) TC_WUR;

/** True when @p s is a valid tag: [A-Za-z0-9_.:-]{1,64}. */
bool tc_tag_valid(const char *s, size_t len);

/** True when @p s is a valid schema version: [A-Za-z0-9_.+-]{1,64}. */
bool tc_schema_valid(const char *s, size_t len);

/**
 * Check a servers string of tc_config::shared_servers without connecting
 * to anything: HOST:PORT[,HOST:PORT...], HOST a name, an IPv4 address or
 * a bracketed IPv6 address, at most 256 servers, none twice.
 * @return 0, or -EINVAL with a one-line reason in @p err (may be NULL)
 *         that quotes the malformed part.
 */
int tc_shared_check_servers(const char *servers, char *err,
			    size_t errlen) TC_WUR;

/**
 * Read the key file of shared_key=FILE: its whole content, any bytes, 32
 * to 4096 of them (`head -c 32 /dev/urandom` makes one). Refused when it
 * is not a regular file, is not owned by the caller's effective uid (or
 * root), or is readable or writable by group or others: whoever can read
 * it can forge records for every mount of the cache, whoever can write it
 * can swap it.
 * @return 0 and *@p key (free with tc_shared_key_free()) and *@p len, or
 *         -errno with a one-line reason in @p err.
 */
int tc_shared_load_key(const char *path, uint8_t **key, size_t *len,
		       char *err, size_t errlen) TC_WUR;

/** Wipe and free a key from tc_shared_load_key(). NULL is a no-op. */
void tc_shared_key_free(uint8_t *key, size_t len);

/* ------------------------------------------------------------------ */
/* Offline integrity check                                            */
/* ------------------------------------------------------------------ */

/** Findings of tc_check(). */
struct tc_check_report {
	uint64_t entries;         /**< regular-file inodes examined */
	uint64_t blobs;           /**< blob files examined */
	uint64_t missing_blobs;   /**< rows whose blob is missing */
	uint64_t corrupt_blobs;   /**< blobs whose content mismatches */
	uint64_t orphan_blobs;    /**< blobs no row references */
	uint64_t refcount_drift;  /**< blob rows with a wrong refcount */
	uint64_t counter_drift;   /**< size/item counters that were wrong */
	uint64_t temp_files;      /**< leftover temporary files (a crash's
				       leftovers: reclaimed by the next mount,
				       not counted as problems) */
	uint64_t pending_blobs;   /**< blob files of publishes a crash cut
				       short (reclaimed by the next mount,
				       not counted as problems) */
	uint64_t fixed;           /**< problems repaired (with fix) */
};

/**
 * Verify the store @p store offline (it must not be mounted: takes the
 * store lock, -EBUSY otherwise). With @p fix, repair: drop entries whose
 * blob is missing or corrupt, delete orphan blobs and temporary files,
 * recompute refcounts and counters. What a crash legitimately leaves
 * behind (temporary files, blob files of publishes that did not commit)
 * is reported but is not a problem: the next mount reclaims it.
 * Blob files are read through @p ops (NULL: the libc calls), so tests can
 * make them fail.
 * @return 0 when the store is sound (after fixing, with @p fix), 1 when
 *         problems remain, or -errno when the check could not run.
 */
int tc_check(const char *store, bool fix, const struct tc_blob_ops *ops,
	     struct tc_check_report *rep, tc_log_fn log_fn,
	     void *log_ctx) TC_WUR;

#ifdef __cplusplus
}
#endif

#endif /* TIERCACHE_H */
