/* SPDX-License-Identifier: MIT */
/*
 * tcfs.h - private declarations of the tiercachefs daemon (fs/).
 *
 * The daemon is split by concern, each file with one job:
 *   main.c     startup and shutdown: --check, fork/detach, session, loop
 *   options.c  command line and -o options, the store and mountpoint
 *   config.c   the config= INI file
 *   optdefs.c  the mount options described once: check and store a value
 *   ops.c      the libfuse low-level operations table, init and the
 *              namespace handlers; each handler is a thin translation to
 *              one engine call (tiercache.h)
 *   request.c  what every handler needs of a request and its reply
 *   fileops.c  the file I/O handlers, and .stats's open, read and release
 *   dirops.c   the directory handlers: listings, with .stats and .tags in
 *              the root's
 *   xattrops.c the extended-attribute handlers
 *   stats.c    rendering of the engine's statistics as Prometheus text
 *   inval.c    the thread that forwards the engine's invalidations to the
 *              kernel
 *   snapshots.c  .stats in cache_mode=kernel: one inode per snapshot
 *   tags.c     the /.tags directory: the tags in use, a file per tag
 *              listing the paths of the entries that carry it
 *   proto.c    the protocol libfuse 3.14 does not pass on (killing set-ID
 *              bits), through its custom I/O hooks
 *
 * All state lives in one struct tcfs owned by main(); libfuse hands it to
 * every operation as the session's userdata. Nothing here is global, except
 * the log destination in main.c, because fuse_set_log_func() takes no
 * context pointer, and proto.c's per-thread flag of the request in hand.
 */
#ifndef TCFS_H
#define TCFS_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <fuse_lowlevel.h>

#include "tiercache.h"

#define TCFS_NAME "tiercachefs"

/* The virtual statistics file at the root. The daemon owns it: its name is
 * reserved (nothing may be created, removed or renamed there: EPERM) and
 * its inode number is one the engine never allocates (inode numbers are
 * row ids counted from 1). */
#define TCFS_STATS_NAME ".stats"
#define TCFS_STATS_INO UINT64_C(0x7fffffffffffff00)

/* In cache_mode=kernel every lookup of .stats gets a new inode from this
 * range (snapshots.c), below TCFS_STATS_INO and far above any row id. */
#define TCFS_SNAP_INO_MIN (UINT64_C(1) << 62)
#define TCFS_SNAP_INO_END (UINT64_C(1) << 62 | UINT64_C(1) << 61)

/* The virtual directory of tags at the root (tags.c), reserved like .stats,
 * with an inode number next to it. */
#define TCFS_TAGS_NAME ".tags"
#define TCFS_TAGS_INO UINT64_C(0x7fffffffffffff01)

/* The files of /.tags get inode numbers from this range (one per lookup
 * that found a new listing), above the snapshots' and below TCFS_STATS_INO. */
#define TCFS_TAGFILE_INO_MIN TCFS_SNAP_INO_END
#define TCFS_TAGFILE_INO_END (TCFS_SNAP_INO_END + (UINT64_C(1) << 60))

/* Longest the kernel may cache an entry or its attributes, in ns. Every
 * change that does not come through this mount's requests (eviction,
 * expiry sweep, flush, evict_tag, a lifetime or schema change) invalidates
 * the kernel's entry (fs/inval.c), and a deadline bounds the timeout of
 * each reply (tcfs_timeout), so the kernel may keep entries for long; the
 * cap only limits how stale a lost invalidation (queue full) can leave a
 * name. */
#define TCFS_TIMEOUT_MAX_NS 60000000000LL

/* Where hits are served (tiercachefs(8), cache_mode=). */
enum tcfs_cache_mode {
	TCFS_CACHE_KERNEL = 0,
	TCFS_CACHE_DAEMON,
};

/* The default cache_mode. */
#define TCFS_CACHE_DEFAULT TCFS_CACHE_DAEMON
#define TCFS_CACHE_DEFAULT_NAME "daemon"

/* The default revalidate=: how long the kernel may trust an entry in
 * cache_mode=kernel before it asks again. */
#define TCFS_REVALIDATE_DEFAULT_NS INT64_C(1000000000)

/* ------------------------------------------------------------------ */
/* Options (options.c)                                                 */
/* ------------------------------------------------------------------ */

/**
 * Everything the command line and the config file decided. Filled by
 * tcfs_opts_parse(), freed by tcfs_opts_free(). cfg's strings point into the
 * fields below, so cfg stays valid as long as the struct.
 */
struct tcfs_opts {
	struct tc_config cfg;
	char *store;		   /* absolute path, owned */
	char *mountpoint;	   /* resolved path, owned; NULL with --check */
	char *schema;		   /* owned, or NULL */
	char *config_file;	   /* owned, or NULL */
	struct tc_tag_rule *rules; /* owned, with their tag strings */
	size_t n_rules;
	char **fuse_opts; /* pass-through -o options, unescaped, owned */
	size_t n_fuse_opts;
	enum tcfs_cache_mode cache_mode;
	int64_t revalidate_ns;	  /* 0: bounded by deadlines only */
	char *shared;		  /* shared= servers, owned, or NULL */
	char *shared_key_file;	  /* owned, or NULL */
	char *shared_namespace;	  /* owned, or NULL */
	uint8_t *shared_key;	  /* the key file's secret (tc_shared_key_free) */
	size_t shared_key_len;
	const char *shared_extra; /* a shared_* option given (its name) */
	unsigned int cmdline_set; /* bit per option given on the command line */
	bool foreground;
	bool debug;
	bool single_thread;
	bool check;
	bool fix;
	bool help;
	bool version;
};

/* ------------------------------------------------------------------ */
/* Option definitions (optdefs.c) and the config file (config.c)        */
/* ------------------------------------------------------------------ */

enum tcfs_opt_kind {
	TCFS_K_PATH,
	TCFS_K_SIZE,
	TCFS_K_COUNT,
	TCFS_K_DURATION,
	TCFS_K_TTL_MODE,
	TCFS_K_SYNC,
	TCFS_K_SCHEMA,
	TCFS_K_CACHE_MODE,
	TCFS_K_SERVERS,
	TCFS_K_REPLICAS,
	TCFS_K_NAMESPACE,
};

struct tcfs_opt_def {
	const char *name;
	enum tcfs_opt_kind kind;
	size_t off;   /* of the field in struct tcfs_opts */
	bool in_file; /* allowed in the config file's [mount] section */
};

struct tcfs_opts;

/* Our mount options (tiercachefs(8), Mount options), in a fixed order:
 * bit i of tcfs_opts.cmdline_set is entry i, entry TCFS_OPT_STORE is
 * store=. */
extern const struct tcfs_opt_def tcfs_opt_defs[];
extern const size_t tcfs_n_opts;
#define TCFS_OPT_STORE 0
#define TCFS_FIELD(f) offsetof(struct tcfs_opts, f)

/* Longest message we print; values in it are user input, cut if longer. */
#define TCFS_ERR_MAX 512


union tcfs_val {
	uint64_t u;
	int64_t i;
	enum tc_ttl_mode mode;
	enum tc_sync sync;
	enum tcfs_cache_mode cache_mode;
	const char *s;
};

/** Print "tiercachefs: MESSAGE" on stderr as one line (control
 *  characters of user input escaped). */
void tcfs_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** The index of option @p name (@p len bytes) in tcfs_opt_defs, or -1. */
int tcfs_opt_find(const char *name, size_t len);

/** What a failed parse of @p kind is called in messages, and a hint. */
const char *tcfs_kind_what(enum tcfs_opt_kind kind, int rc, const char **hint);

/** Parse @p val for option @p d into @p v; on error the one-line message
 *  ("ram_size: invalid size '12Q'") in @p err, -EINVAL or -ERANGE. */
int tcfs_opt_check(const struct tcfs_opt_def *d, const char *val,
		   union tcfs_val *v, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/** Store a parsed value into its field of @p o. @return 0 or -ENOMEM. */
int tcfs_opt_assign(struct tcfs_opts *o, const struct tcfs_opt_def *d,
		    const union tcfs_val *v) __attribute__((warn_unused_result));

/** Read o->config_file (the command line wins over it). Prints the error,
 *  naming FILE:LINE. @return 0 or -1. */
int tcfs_config_load(struct tcfs_opts *o) __attribute__((warn_unused_result));

/**
 * Parse @p argv (options and positional arguments in any order, as
 * mount.fuse3 passes them), then the config file when one is named, then
 * fill in defaults (the store) and resolve paths.
 * @return 0, or -1 after printing one line naming the problem on stderr.
 * @p o must be freed with tcfs_opts_free() in both cases.
 */
int tcfs_opts_parse(int argc, char **argv, struct tcfs_opts *o)
    __attribute__((warn_unused_result));

/** Free what tcfs_opts_parse() allocated. */
void tcfs_opts_free(struct tcfs_opts *o);

/** Print the usage text of --help to @p out. */
void tcfs_opts_usage(FILE *out);

/**
 * Build the argument vector for fuse_session_new(): the pass-through options
 * plus ours (default_permissions unless root mounts without allow_other,
 * fsname, subtype, debug).
 * @return 0 or -ENOMEM; free @p args with fuse_opt_free_args().
 */
int tcfs_opts_fuse_args(const struct tcfs_opts *o, struct fuse_args *args)
    __attribute__((warn_unused_result));

/* ------------------------------------------------------------------ */
/* Invalidation queue (inval.c)                                        */
/* ------------------------------------------------------------------ */

struct tcfs_inval_item;

/**
 * Entries the engine removed on its own (eviction, expiry, flush), queued by
 * the engine's callback and handed to the kernel by a dedicated thread: the
 * callback may run on any thread, and a notification may block on a kernel
 * directory lock held by a request in flight, so it is never sent from the
 * callback itself.
 */
struct tcfs_inval {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct tcfs_inval_item *head; /* protected by lock */
	struct tcfs_inval_item *tail; /* protected by lock */
	size_t len;		      /* protected by lock */
	bool stop;		      /* protected by lock */
	struct fuse_session *se;      /* set before start, then read-only */
	bool dirs;		      /* set before start, then read-only */
	pthread_t thread;
	bool started;
};

/** Initialise @p q (no thread yet). */
void tcfs_inval_init(struct tcfs_inval *q, struct fuse_session *se);

/** Start the notifying thread. @return 0 or -errno. */
int tcfs_inval_start(struct tcfs_inval *q) __attribute__((warn_unused_result));

/**
 * The engine's tc_inval_fn; @p ctx is the struct tcfs_inval. A NULL
 * @p name asks to drop the kernel's attributes and pages of @p ino (its
 * content changed under the same inode). With @p q->dirs (cache_mode=
 * kernel, where the kernel caches listings) each removed name also drops
 * the cached listing of its directory.
 */
void tcfs_inval_queue(void *ctx, uint64_t parent, const char *name,
		      uint64_t ino);

/**
 * Stop and join the thread, dropping what is still queued. Later calls of
 * tcfs_inval_queue() are ignored; the struct must outlive the engine.
 * @return 0, or -ETIMEDOUT when the thread is stuck in a notification: then
 *         the session must not be destroyed (the thread still uses it).
 */
int tcfs_inval_stop(struct tcfs_inval *q);

/** Free @p q's resources (after tcfs_inval_stop() and tc_engine_close()). */
void tcfs_inval_destroy(struct tcfs_inval *q);

/* ------------------------------------------------------------------ */
/* Daemon state and operations (ops.c)                                 */
/* ------------------------------------------------------------------ */

/** A growable text buffer. */
struct tcfs_text {
	char *buf; /* owned, NUL-terminated when len > 0 */
	size_t len;
	size_t cap;
	int err; /* first error while appending (-ENOMEM), sticky */
};

/* ------------------------------------------------------------------ */
/* .stats snapshots of cache_mode=kernel (snapshots.c)                  */
/* ------------------------------------------------------------------ */

struct tcfs_snap;

/** The live snapshots, keyed by inode number. */
struct tcfs_snaps {
	pthread_mutex_t lock;
	struct tcfs_snap *head; /* newest first; protected by lock */
	size_t n;		/* protected by lock */
	uint64_t seq;		/* protected by lock */
};

void tcfs_snaps_init(struct tcfs_snaps *s);
void tcfs_snaps_destroy(struct tcfs_snaps *s);

/** True when @p ino is in the snapshots' range. */
bool tcfs_snap_ino(uint64_t ino);

/**
 * Render a new snapshot of @p eng's statistics under a new inode number,
 * with one lookup reference (balanced by tcfs_snap_forget()); its
 * attributes in @p out. @return 0 or -ENOMEM.
 */
int tcfs_snap_new(struct tcfs_snaps *s, struct tc_engine *eng,
		  struct tc_attr *out) __attribute__((warn_unused_result));

/** Attributes of snapshot @p ino. @return 0 or -ENOENT. */
int tcfs_snap_attr(struct tcfs_snaps *s, uint64_t ino, struct tc_attr *out)
    __attribute__((warn_unused_result));

/** Copy up to @p size bytes of snapshot @p ino at @p off into @p buf;
 *  returns how many (0 past the end, or for a snapshot no longer kept). */
size_t tcfs_snap_read(struct tcfs_snaps *s, uint64_t ino, char *buf,
		      size_t size, uint64_t off);

/** Drop @p nlookup references; the last one frees the snapshot. */
void tcfs_snap_forget(struct tcfs_snaps *s, uint64_t ino, uint64_t nlookup);

/* ------------------------------------------------------------------ */
/* The /.tags directory (tags.c)                                       */
/* ------------------------------------------------------------------ */

struct tcfs_tagfile;

/** The files of /.tags the kernel holds, keyed by inode number. */
struct tcfs_tags {
	pthread_mutex_t lock;
	struct tcfs_tagfile *head; /* newest first; protected by lock */
	size_t n;		   /* protected by lock */
	uint64_t seq;		   /* protected by lock */
};

void tcfs_tags_init(struct tcfs_tags *t);
void tcfs_tags_destroy(struct tcfs_tags *t);

/** True when @p ino is one of the files of /.tags. */
bool tcfs_tagfile_ino(uint64_t ino);

/** Attributes of the /.tags directory: 0555 of the daemon's owner, never
 *  cached (its mtime is now, so the kernel's copy of its listing in
 *  cache_mode=kernel is dropped at every opendir). */
void tcfs_tags_dir_attr(struct tc_attr *out);

/**
 * Look up the file of tag @p name in /.tags, with one lookup reference
 * (balanced by tcfs_tags_forget()); its attributes in @p out. With
 * @p kernel (cache_mode=kernel, where no open reaches the daemon) the
 * listing is rendered now and the file is its snapshot: the same inode as
 * the last lookup when the listing did not change, else a new one. Without,
 * the listing is rendered at each open (tcfs_tags_render()).
 * @return 0, -ENOENT (no visible entry carries it, or no valid tag), -ENOMEM.
 */
int tcfs_tags_lookup(struct tcfs_tags *t, struct tc_engine *eng, bool kernel,
		     const char *name, struct tc_attr *out)
    __attribute__((warn_unused_result));

/** Attributes of file @p ino of /.tags. @return 0 or -ENOENT. */
int tcfs_tags_attr(struct tcfs_tags *t, uint64_t ino, struct tc_attr *out)
    __attribute__((warn_unused_result));

/** Render the listing of the tag of file @p ino into @p out (zeroed; free
 *  with tcfs_text_free() in every case). @return 0, -ENOENT, -ENOMEM. */
int tcfs_tags_render(struct tcfs_tags *t, struct tc_engine *eng, uint64_t ino,
		     struct tcfs_text *out) __attribute__((warn_unused_result));

/** Copy up to @p size bytes of the snapshot of file @p ino at @p off into
 *  @p buf; returns how many (0 past the end, or for a file not kept). */
size_t tcfs_tags_read(struct tcfs_tags *t, uint64_t ino, char *buf,
		      size_t size, uint64_t off);

/** Drop @p nlookup references; the last one frees the file. */
void tcfs_tags_forget(struct tcfs_tags *t, uint64_t ino, uint64_t nlookup);

/** Reply to a READDIR(PLUS) of /.tags of @p size bytes from cookie @p off:
 *  ".", "..", then the tags in use (no lookup reference is handed out). */
void tcfs_tags_readdir(fuse_req_t req, struct tc_engine *eng, size_t size,
		       off_t off, bool plus);

/* What proto.c learnt of the INIT request: its unique (to find our reply)
 * and whether the kernel offered FUSE_HANDLE_KILLPRIV_V2. Written by the
 * read of INIT, before any other request is read. */
struct tcfs_proto {
	uint64_t init_unique;
	atomic_bool offers_v2;
	atomic_bool answered; /* our reply has gone, with the flag if offered */
};

/** The daemon: userdata of the FUSE session. */
struct tcfs {
	struct tc_engine *eng; /* set before the mount, then read-only */
	struct fuse_session *se;
	struct tcfs_inval inval;
	/* cache_mode=kernel in force: set before the mount, and cleared by
	 * the init request when the kernel cannot do without opens. */
	bool kernel;
	bool flush_publishes;  /* sync=close: closes must reach us (kernel) */
	int64_t timeout_max_ns; /* longest entry/attribute timeout */
	int64_t daemon_timeout_ns; /* ... in daemon mode (a shared tier's
				    * revalidation bounds it) */
	struct tcfs_snaps snaps;
	struct tcfs_tags tags;
	/* sysfs file of the mount's readahead, found after the mount and
	 * raised by the init request; "" when not found */
	char readahead_knob[64];
	struct tcfs_proto proto;
	int log_level; /* engine messages above it are dropped */
	/* While tc_engine_open() runs, its messages are held back: on
	 * failure main() prints tc_engine_last_error() as the one line and
	 * drops them, on success they are logged. */
	pthread_mutex_t log_lock;
	bool opening;	       /* protected by log_lock */
	struct tcfs_text held; /* protected by log_lock */
};

/** Block SIGINT, SIGTERM and SIGHUP in the calling thread (before creating
 *  a thread that must leave them to the FUSE workers); @p old gets the
 *  previous mask, to restore with pthread_sigmask(). (inval.c) */
void tcfs_block_signals(sigset_t *old);

/** Read and write the session's device through proto.c's hooks (after
 *  the mount). @return 0 or -errno. */
int tcfs_proto_install(struct fuse_session *se)
    __attribute__((warn_unused_result));

/**
 * When the request in hand (read on this thread) asked the filesystem to
 * clear set-ID bits, clear them on @p ino: set-user-ID, and set-group-ID
 * when group execute is set, as the kernel's own rule. @p a is the inode's
 * attributes when the caller has them (updated), or NULL.
 * @return 0 or -errno.
 */
int tcfs_proto_kill_suidgid(struct tc_engine *eng, fuse_ino_t ino,
			    struct tc_attr *a) __attribute__((warn_unused_result));

/** The low-level operations table. */
extern const struct fuse_lowlevel_ops tcfs_ops;

/* ------------------------------------------------------------------ */
/* What the handlers share (request.c)                                */
/* ------------------------------------------------------------------ */

/* statfs and .stats block size: the unit df(1) counts in. */
#define TCFS_BLOCK_SIZE 4096

/** The daemon, the session's userdata. */
struct tcfs *tcfs_of(fuse_req_t req);

/** The engine handle of an open file, kept in fi->fh. */
struct tc_file *tcfs_file(const struct fuse_file_info *fi);

/** Fill @p e from @p a, its timeouts bounded by @p a's deadline. */
void tcfs_entry_fill(fuse_req_t req, struct fuse_entry_param *e,
		     const struct tc_attr *a);

/** True for the daemon's own inodes: .stats, its snapshots, /.tags and the
 *  files in it. */
bool tcfs_is_virtual_ino(fuse_ino_t ino);

/** True for a virtual file read from the text its open rendered. */
bool tcfs_is_text_ino(fuse_ino_t ino);

/** The requester's uid, gid and umask. */
struct tc_ctx tcfs_ctx(fuse_req_t req);

/** Reply EPERM and return true when @p name in @p parent is reserved
 *  (.stats, .tags, any name in /.tags). */
bool tcfs_refuse_reserved(fuse_req_t req, fuse_ino_t parent, const char *name);

/** True for .stats, or .tags, in the root. */
bool tcfs_is_stats_name(fuse_ino_t parent, const char *name);
bool tcfs_is_tags_name(fuse_ino_t parent, const char *name);

/** Timeout of a reply in seconds: what @p valid_ns allows, within the
 *  mount's bound. */
double tcfs_timeout(fuse_req_t req, int64_t valid_ns);

/** Drop @p nlookup references the kernel held on @p ino (forget). */
void tcfs_forget_one(struct tcfs *fs, fuse_ino_t ino, uint64_t nlookup);

/** Reply with an entry whose reference the engine took, dropped again when
 *  the kernel did not get the reply. */
void tcfs_reply_entry(fuse_req_t req, const struct tc_attr *a);

/* ------------------------------------------------------------------ */
/* The handlers (ops.c, fileops.c, dirops.c, xattrops.c)              */
/* ------------------------------------------------------------------ */


/** Attributes of .stats in daemon mode. (fileops.c) */
void tcfs_stats_attr(struct tc_attr *a);

/* Handlers named only by tcfs_ops. fileops.c: a file's content. */
void tcfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tcfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode, struct fuse_file_info *fi);
void tcfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	       struct fuse_file_info *fi);
void tcfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		off_t off, struct fuse_file_info *fi);
void tcfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tcfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tcfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		struct fuse_file_info *fi);
void tcfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
		    off_t len, struct fuse_file_info *fi);
void tcfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			  struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			  off_t off_out, struct fuse_file_info *fi_out,
			  size_t len, int flags);

/* dirops.c: listings. */
void tcfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tcfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi);
void tcfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi);
void tcfs_releasedir(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi);
void tcfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		   struct fuse_file_info *fi);

/* xattrops.c: extended attributes. */
void tcfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		   const char *value, size_t size, int flags);
void tcfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		   size_t size);
void tcfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void tcfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ------------------------------------------------------------------ */
/* Text and the .stats rendering (stats.c)                             */
/* ------------------------------------------------------------------ */

/**
 * Render the engine's statistics in the Prometheus text exposition format
 * into @p out (which must be zeroed), with the cache_mode in force
 * (@p kernel) and the HELP texts of that mode. @return 0 or -ENOMEM; free @p out with
 * tcfs_text_free() in both cases.
 */
int tcfs_stats_render(struct tc_engine *eng, bool kernel,
		      struct tcfs_text *out) __attribute__((warn_unused_result));

/** Append @p n bytes of @p s to @p t (errors are kept in t->err). */
void tcfs_text_add(struct tcfs_text *t, const char *s, size_t n);

/** Free @p t's buffer. */
void tcfs_text_free(struct tcfs_text *t);

#endif /* TCFS_H */
