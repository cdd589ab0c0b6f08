/* SPDX-License-Identifier: MIT */
/*
 * Opening and closing a store, and keeping it tidy while it is open.
 *
 * Opening takes the store lock (flock on STORE/lock: one engine per store),
 * sets up the blob directories, opens the index (a full integrity check
 * only after an unclean shutdown), and reclaims what a crash left behind:
 * temporary files, inodes that were unlinked while open, blob files of
 * publishes that never committed. Closing publishes what is still dirty,
 * writes the batched access times, and marks the index clean so the next
 * open is constant-time. The maintenance thread runs once a second:
 * other mounts' events (with a shared tier), access-time flush, expiry
 * sweep, RAM idle expiry. The shared tier is opened after the store and
 * closed after the last publish (sharedtier.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine_i.h"

/* Longest path SQLite's unix VFS opens (its MAX_PATHNAME). */
#define STORE_PATH_MAX 512

/* Interval of the background maintenance thread. */
#define MAINTAIN_INTERVAL_S 1

/* With a shared tier revalidated faster than that, its events are polled
 * as often as it says, but not more than 10 times a second. */
#define SHARED_STEP_MIN_NS (INT64_C(100) * 1000000)

void tc_config_init(struct tc_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ram_size = UINT64_C(256) << 20;
	cfg->ram_ttl_ns = INT64_C(3600) * TC_NS_PER_S;
	cfg->max_ram_item = UINT64_C(16) << 20;
	cfg->disk_size = UINT64_C(10) << 30;
	cfg->ttl_mode = TC_TTL_ABSOLUTE;
	cfg->sync = TC_SYNC_FSYNC;
	cfg->inline_max = UINT64_C(64) << 10;
	cfg->commit_interval_ns = INT64_C(5000000);
	cfg->chunk_size = UINT64_C(1) << 20;
	cfg->background = true;
	cfg->log_level = TC_LOG_INFO;
	cfg->quiet_ns = TC_NS_PER_S;
	cfg->shared_replicas = 1;
	cfg->shared_revalidate_ns = TC_NS_PER_S;
}

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

/* The store directory, its lock, the blob directories. */
static int open_dirs(struct tc_engine *eng, const struct tc_config *cfg)
{
	const char *store = cfg->store;
	int rc;

	/* SQLite's unix VFS handles paths of at most 512 bytes. */
	if (strlen(store) + sizeof("/index.db-wal") > STORE_PATH_MAX) {
		tc_set_last_error(&eng->base,
				  "store path too long (%zu bytes; the index "
				  "needs it under %zu)",
				  strlen(store),
				  STORE_PATH_MAX - sizeof("/index.db-wal") + 1);
		return -ENAMETOOLONG;
	}
	rc = make_store_dir(store);
	if (rc) {
		tc_set_last_error(&eng->base, "cannot create store %s: %s",
				  store, strerror(-rc));
		return rc;
	}
	eng->store_fd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (eng->store_fd < 0) {
		rc = -errno;
		tc_set_last_error(&eng->base, "cannot open store %s: %s", store,
				  strerror(-rc));
		return rc;
	}
	eng->lock_fd = openat(eng->store_fd, "lock",
			      O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (eng->lock_fd < 0) {
		rc = -errno;
		tc_set_last_error(&eng->base, "cannot write to store %s: %s",
				  store, strerror(-rc));
		return rc;
	}
	if (flock(eng->lock_fd, LOCK_EX | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		tc_set_last_error(&eng->base,
				  "store %s is in use by another process", store);
		return rc;
	}
	rc = tc_blob_store_open(&eng->blobs, eng->store_fd, cfg->blob_ops);
	if (rc)
		tc_set_last_error(&eng->base,
				  "cannot set up blob directories in %s: %s",
				  store, strerror(-rc));
	return rc;
}

/* The chunk size is the store's, fixed when it was created: contents in
 * chunks are laid out by it. */
static int store_chunk_size_locked(struct tc_engine *eng)
{
	int64_t have = tc_index_meta_get(&eng->ix, "chunk_size", 0);
	int rc;

	if (have > 0) {
		eng->chunk_size = (uint64_t)have;
		return 0;
	}
	rc = tc_txn_begin_locked(eng);
	if (!rc)
		rc = tc_txn_end_locked(eng,
				       tc_index_meta_set(&eng->ix, "chunk_size",
							 (int64_t)eng->chunk_size));
	return rc;
}

static int open_store_locked(struct tc_engine *eng, const struct tc_config *cfg)
{
	int64_t flags;
	int rc;

	rc = open_dirs(eng, cfg);
	if (rc)
		return rc;
	tc_blob_clean_tmp(&eng->blobs);
	tc_reserve_open(eng);
	rc = tc_index_open(&eng->ix, cfg->store, &eng->base, &eng->lock,
			   eng->sync == TC_SYNC_NEVER, true, &eng->size);
	if (rc == -EPROTONOSUPPORT) {
		tc_set_last_error(&eng->base,
				  "index of store %s has a newer format than "
				  "this tiercachefs supports",
				  cfg->store);
		return rc;
	}
	if (rc) {
		tc_set_last_error(&eng->base,
				  "index of store %s is corrupt or unreadable "
				  "(%s); run tiercachefs --check %s",
				  cfg->store, tc_index_errmsg(&eng->ix),
				  cfg->store);
		return rc == -ENOSPC || rc == -EACCES ? rc : -EPROTO;
	}
	rc = tc_node_drop_orphans_locked(eng);
	if (!rc)
		rc = tc_blob_reclaim_pending_locked(eng);
	if (!rc)
		rc = tc_index_dir_flags(&eng->ix, &flags);
	if (!rc)
		rc = tc_index_last_ino(&eng->ix, &eng->last_ino);
	if (!rc)
		rc = store_chunk_size_locked(eng);
	if (rc) {
		tc_set_last_error(&eng->base, "cannot clean store %s: %s",
				  cfg->store, strerror(-rc));
		return rc;
	}
	eng->any_dir_schema = flags & TC_DIR_SCHEMA;
	eng->any_dir_ttl = flags & TC_DIR_TTL;
	/* The kernel holds the root from the mount on (one lookup reference,
	 * which its FORGET at the unmount returns): so does the node table,
	 * or every operation in the root would load its row and free it. */
	rc = tc_node_hold_locked(eng, TC_ROOT_INO);
	if (rc)
		return rc;
	return tc_commit_locked(eng, NULL);
}

static void *maintain_thread(void *arg);

/* Copy the settings of @cfg into a new engine (nothing opened yet). */
static struct tc_engine *engine_new(const struct tc_config *cfg)
{
	struct tc_engine *eng = calloc(1, sizeof(*eng));

	if (!eng)
		return NULL;
	eng->store_fd = eng->lock_fd = -1;
	eng->blobs.blobs_fd = eng->blobs.tmp_fd = -1;
	eng->ix.wal_fd = -1;
	eng->reserve_fd = -1;
	eng->base = (struct tc_base){ cfg->log_fn, cfg->log_ctx,
				      cfg->log_level, cfg->clock,
				      cfg->clock_ctx };
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
	eng->commit_interval_ns = cfg->commit_interval_ns;
	eng->chunk_size = cfg->chunk_size;
	pthread_mutex_init(&eng->verified_lock, NULL);
	eng->handleless = cfg->handleless_writes;
	eng->quiet_ns = cfg->quiet_ns;
	tc_mutex_init(&eng->lock);
	tc_cond_init(&eng->commit_cond);
	tc_cond_init(&eng->reaped_cond);
	pthread_mutex_init(&eng->inval_lock, NULL);
	pthread_mutex_init(&eng->thread_lock, NULL);
	pthread_cond_init(&eng->thread_cond, NULL);
	return eng;
}

int tc_engine_open(const struct tc_config *cfg, struct tc_engine **out)
{
	struct tc_engine *eng;
	int rc;

	tc_clear_last_error();
	if (!cfg || !cfg->store || !*cfg->store) {
		struct tc_base quiet = { 0 };
		tc_set_last_error(&quiet, "no store given");
		return -EINVAL;
	}
	eng = engine_new(cfg);
	if (!eng)
		return -ENOMEM;
	eng->store = strdup(cfg->store);
	eng->schema = cfg->schema ? strdup(cfg->schema) : NULL;
	eng->atimes = calloc(TC_ATIME_BATCH, sizeof(*eng->atimes));
	eng->verified = calloc(16384, sizeof(*eng->verified));
	if (cfg->chunk_size < 4096 || cfg->chunk_size % 4096 ||
	    cfg->chunk_size > (UINT64_C(64) << 20)) {
		tc_set_last_error(&eng->base, "chunk size %llu is not a "
					      "multiple of 4 KiB up to 64 MiB",
				  (unsigned long long)cfg->chunk_size);
		rc = -EINVAL;
		goto fail;
	}
	if (tc_ntab_init(&eng->nodes) || !eng->store || !eng->atimes || !eng->verified ||
	    (cfg->schema && !eng->schema) || copy_rules(eng, cfg) ||
	    tc_nbody_cache_init(&eng->bodies, TC_NBODY_CACHE)) {
		rc = -ENOMEM;
		goto fail;
	}
	if (cfg->schema && !tc_schema_valid(cfg->schema, strlen(cfg->schema))) {
		tc_set_last_error(&eng->base, "invalid schema version '%s'",
				  cfg->schema);
		rc = -EINVAL;
		goto fail;
	}
	rc = tc_ram_open(&eng->counters, &eng->ram);
	if (rc)
		goto fail;
	tc_ram_set_limits(eng->ram, cfg->ram_size, cfg->ram_items,
			  cfg->max_ram_item, cfg->ram_ttl_ns);
	eng->started_ns = tc_now(eng);
	tc_lock(eng);
	rc = open_store_locked(eng, cfg);
	tc_unlock(eng);
	if (!rc)
		rc = tc_sharedtier_open(eng, cfg);
	if (rc)
		goto fail;
	if (cfg->background) {
		rc = -pthread_create(&eng->thread, NULL, maintain_thread, eng);
		if (rc)
			goto fail;
		eng->thread_running = true;
		rc = tc_commit_start(eng);
		if (rc)
			goto fail;
	}
	*out = eng;
	return 0;
fail:
	(void)tc_engine_close(eng);
	return rc;
}

/* Publish what is still dirty and free every node; the first failed
 * publish's error. */
static int close_nodes(struct tc_engine *eng)
{
	int first = 0;

	for (size_t b = 0; eng->nodes.slots && b <= eng->nodes.mask; b++) {
		while (eng->nodes.slots[b]) {
			size_t pos = b;
			struct tc_node *n = tc_ntab_next(&eng->nodes, &pos);
			int rc = 0;

			if (!n->body)
				goto release;
			tc_mutex_lock(&n->body->lock);
			/* (A version one of whose writes failed is not
			 * published: its writer was told at close or fsync.) */
			if (n->body->dirty && !n->body->dirty->failed)
				rc = tc_content_publish_nlocked(eng, n, false);
			if (rc) {
				tc_err(eng, "unmount: publishing inode %llu "
					    "failed, its last writes are "
					    "lost: %s",
				       (unsigned long long)n->ino,
				       strerror(-rc));
				if (!first)
					first = rc;
			}
			tc_dirty_free(&eng->blobs, n->body->dirty);
			n->body->dirty = NULL;
			tc_mutex_unlock(&n->body->lock);
		release:
			tc_lock(eng);
			if (n->body)
				n->body->nopen = 0;
			n->nlookup = n->pins = 0;
			tc_node_release_locked(eng, n);
			tc_unlock(eng);
		}
	}
	return first;
}

int tc_engine_close(struct tc_engine *eng)
{
	int rc;

	if (!eng)
		return 0;
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
	rc = close_nodes(eng);
	/* What the last publishes queued gets a moment to go out. */
	tc_sharedtier_close(eng);
	tc_commit_stop(eng);
	if (eng->ix.ready) {
		tc_lock(eng);
		(void)!tc_node_flush_atimes_locked(eng);
		if (tc_commit_locked(eng, NULL) && !rc)
			rc = eng->lost_err ? eng->lost_err : -EIO;
		tc_commit_close_locked(eng);
		if (tc_index_mark_clean(&eng->ix, &eng->size))
			tc_warn(eng, "could not mark the index clean: the next "
				     "mount checks it in full");
		tc_unlock(eng);
	}
	tc_index_close(&eng->ix);
	tc_reserve_close(eng);
	tc_blob_store_close(&eng->blobs);
	tc_ram_close(eng->ram);
	if (eng->lock_fd >= 0)
		close(eng->lock_fd); /* releases the flock */
	if (eng->store_fd >= 0)
		close(eng->store_fd);
	for (size_t i = 0; i < eng->n_rules; i++)
		free(eng->rules[i].tag);
	free(eng->rules);
	tc_ntab_fini(&eng->nodes);
	tc_nbody_cache_free(&eng->bodies);
	free(eng->atimes);
	free(eng->purges);
	free(eng->rows);
	free(eng->verified);
	free(eng->holds);
	pthread_mutex_destroy(&eng->verified_lock);
	free(eng->doomed);
	free(eng->retired);
	free(eng->op_nodes);
	for (size_t i = 0; i < eng->group_names.n; i++)
		free(eng->group_names.v[i].name);
	free(eng->group_names.v);
	free(eng->store);
	free(eng->schema);
	tc_mutex_destroy(&eng->lock);
	pthread_mutex_destroy(&eng->inval_lock);
	pthread_mutex_destroy(&eng->thread_lock);
	pthread_cond_destroy(&eng->thread_cond);
	pthread_cond_destroy(&eng->commit_cond);
	pthread_cond_destroy(&eng->reaped_cond);
	free(eng);
	return rc;
}

int tc_engine_maintain(struct tc_engine *eng)
{
	struct tc_inval_list inv = { 0 };
	int rc;

	/* Other mounts' flushes and evictions first: less to sweep. */
	tc_sharedtier_maintain(eng);
	/* Then publishing, so the access times and the sweep see it. */
	rc = tc_content_maintain(eng);
	if (rc)
		tc_warn(eng, "maintenance: a quiet publish failed: %s",
			strerror(-rc));
	tc_ram_expire(eng->ram, tc_now(eng));
	tc_lock(eng);
	tc_reserve_refill_locked(eng);
	rc = tc_node_flush_atimes_locked(eng);
	if (!rc)
		rc = tc_policy_sweep_locked(eng, &inv);
	/* Without the committer (background off), groups commit here. */
	if (!eng->committer_running && !rc)
		rc = tc_commit_locked(eng, &inv);
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
	return rc;
}

/* How often the thread wakes: every round, or more often with a shared
 * tier revalidated faster (its events are polled then, the rest of a
 * round still runs once per interval). */
static int64_t maintain_step(const struct tc_engine *eng)
{
	int64_t step = MAINTAIN_INTERVAL_S * TC_NS_PER_S;

	if (eng->shared && eng->shared_revalidate_ns < step)
		step = eng->shared_revalidate_ns > SHARED_STEP_MIN_NS
			       ? eng->shared_revalidate_ns
			       : SHARED_STEP_MIN_NS;
	return step;
}

static void *maintain_thread(void *arg)
{
	struct tc_engine *eng = arg;
	int64_t step = maintain_step(eng), last = tc_mono_ns();
	struct timespec deadline;

	pthread_mutex_lock(&eng->thread_lock);
	while (!eng->thread_stop) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += (time_t)(step / TC_NS_PER_S);
		deadline.tv_nsec += (long)(step % TC_NS_PER_S);
		if (deadline.tv_nsec >= TC_NS_PER_S) {
			deadline.tv_sec++;
			deadline.tv_nsec -= TC_NS_PER_S;
		}
		pthread_cond_timedwait(&eng->thread_cond, &eng->thread_lock,
				       &deadline);
		if (eng->thread_stop)
			break;
		pthread_mutex_unlock(&eng->thread_lock);
		if (tc_mono_ns() - last <
		    MAINTAIN_INTERVAL_S * TC_NS_PER_S - step / 2) {
			tc_sharedtier_maintain(eng);
		} else {
			last = tc_mono_ns();
			if (tc_engine_maintain(eng))
				tc_warn(eng, "maintenance round failed");
		}
		pthread_mutex_lock(&eng->thread_lock);
	}
	pthread_mutex_unlock(&eng->thread_lock);
	return NULL;
}
