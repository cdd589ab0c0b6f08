/* SPDX-License-Identifier: MIT */
/*
 * The committer: the thread that commits the open group of operations
 * (txn.c) every commit interval, and the durability calls on top of it.
 *
 * A group is committed with synchronous=NORMAL: its frames go to the WAL
 * without an fsync, which a program's fsync(2) (or a close under
 * sync=close) then pays for once, with the engine lock dropped, through
 * the blob ops table: tc_commit_sync() commits the group holding the
 * caller's changes and fsyncs the WAL, which makes every commit before it
 * durable. Concurrent fsyncs share the work the kernel already did.
 *
 * A commit that fails (disk full, I/O error) does not silently drop what
 * programs were told had succeeded. While SQLite keeps the transaction
 * open, the group stays and the next round retries; fsyncs meanwhile
 * fail with the error. When SQLite ended the transaction itself, the group
 * is lost: the nodes are reloaded from the index, the kernel's entries are
 * invalidated, and each file whose publish the group held reports the
 * error at its next fsync or close, as the kernel reports writeback
 * errors.
 *
 * The rows of unlinked files the kernel forgot go with the next group too
 * (node.c queues them): the FORGET that follows every unlink costs no
 * SQLite work of its own.
 *
 * Blob files that lost their last reference are deleted only once a WAL
 * fsync made the commit that dropped it durable (blob.c): a program's
 * fsync, or the committer's own when none comes, and the committer does
 * the unlinks, so an fsync(2) pays for neither.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"

/* How long retired blobs wait for a program's fsync before the committer
 * syncs the WAL for them itself. */
#define REAP_SYNC_DELAY_NS INT64_C(50000000)

/* Files the committer reaps per round of the lock. */
#define REAP_BATCH 64

/* Bring the nodes back in line after a lost group. */
static void recover_locked(struct tc_engine *eng, struct tc_inval_list *inv)
{
	struct tc_inval_list *names = &eng->group_names;

	if (!eng->lost_pending)
		return;
	eng->lost_pending = false;
	tc_node_reload_all_locked(eng, eng->lost_group, eng->lost_err, inv);
	/* What the kernel cached of the names the group changed is wrong. */
	for (size_t i = 0; i < names->n; i++) {
		struct tc_inval *v = &names->v[i];
		if (inv)
			tc_inval_add(inv, v->parent, v->name, strlen(v->name),
				     v->ino);
		free(v->name);
	}
	names->n = 0;
}

/* What the group's operations left for its commit, written into it: the
 * rows of the directories whose names they changed (a group without them
 * does not commit: it is retried) and of the unlinked files the kernel
 * forgot (if that fails they are orphans for the next mount; the rest
 * commits). */
static int before_commit_locked(struct tc_engine *eng)
{
	int rc = 0;

	if (eng->in_op)
		return 0;
	if (eng->n_rows) {
		rc = tc_txn_begin_locked(eng);
		if (!rc)
			rc = tc_txn_end_locked(eng,
					       tc_node_write_rows_locked(eng));
		if (rc) {
			tc_txn_commit_failed_locked(eng, rc);
			return rc;
		}
	}
	if (tc_node_purge_forgotten_locked(eng))
		tc_warn(eng, "could not delete forgotten files: the next mount"
			     " does");
	return 0;
}

int tc_commit_locked(struct tc_engine *eng, struct tc_inval_list *inv)
{
	int rc;

	/* A lost group's queued rows are not written into the next one:
	 * the nodes reload what was committed (recover_locked). */
	if (eng->lost_pending)
		tc_node_drop_rows_locked(eng);
	rc = before_commit_locked(eng);
	if (!rc && eng->group_open)
		tc_reserve_before_commit_locked(eng);
	if (!rc)
		rc = tc_txn_group_commit_locked(eng);

	recover_locked(eng, inv);
	return rc;
}

/* A WAL fsync covered the commits that retired blobs up to @seq: their
 * files may go (the committer deletes them, off the caller's path). */
static void synced_locked(struct tc_engine *eng, uint64_t seq)
{
	if (seq <= eng->synced_seq)
		return;
	eng->synced_seq = seq;
	if (seq < eng->retired_seq)
		eng->unsynced_since = tc_mono_ns();
	if (eng->committer_running)
		pthread_cond_signal(&eng->commit_cond);
	else
		(void)tc_blob_reap_locked(eng, NULL, 0);
}

/* The committer's part: move a batch of reaped files aside under the lock
 * and delete them without it. */
static void reap_locked(struct tc_engine *eng)
{
	char aside[REAP_BATCH][32];
	size_t n = tc_blob_reap_locked(eng, aside, REAP_BATCH);

	if (!n)
		return;
	eng->reaping++;
	tc_unlock(eng);
	for (size_t i = 0; i < n; i++)
		tc_blob_tmp_discard(&eng->blobs, -1, aside[i]);
	tc_lock(eng);
	eng->reaping--;
	pthread_cond_broadcast(&eng->reaped_cond);
}

int tc_commit_sync(struct tc_engine *eng)
{
	struct tc_inval_list inv = { 0 };
	uint64_t seq;
	int fd = -1, rc;

	tc_lock(eng);
	rc = tc_commit_locked(eng, &inv);
	seq = eng->retired_seq;
	if (!rc && eng->sync != TC_SYNC_NEVER)
		rc = tc_index_wal_fd(&eng->ix, &fd);
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
	if (rc == -ENOENT)
		return 0; /* no WAL yet: nothing was ever written */
	if (!rc && fd >= 0)
		rc = tc_blob_fsync(&eng->blobs, fd);
	if (!rc && fd >= 0) {
		tc_lock(eng);
		synced_locked(eng, seq);
		tc_unlock(eng);
	}
	return rc;
}

/* The committer's own WAL fsync, when blobs wait for one that no program
 * asked for. Drops the lock meanwhile; 0 or a negative errno. */
static int sync_for_reap_locked(struct tc_engine *eng)
{
	uint64_t seq = eng->retired_seq;
	int fd = -1, rc;

	rc = tc_index_wal_fd(&eng->ix, &fd);
	if (rc == -ENOENT || (!rc && fd < 0)) {
		synced_locked(eng, seq);
		return 0;
	}
	if (rc)
		return rc;
	tc_unlock(eng);
	rc = tc_blob_fsync(&eng->blobs, fd);
	tc_lock(eng);
	if (!rc)
		synced_locked(eng, seq);
	return rc;
}

bool tc_commit_reclaim(struct tc_engine *eng)
{
	bool waiting;
	uint64_t before;

	tc_lock(eng);
	before = eng->reaped_seq;
	waiting = eng->group_open || eng->n_purges ||
		  eng->retired_seq > before || eng->reaping;
	tc_unlock(eng);
	if (!waiting || tc_commit_sync(eng))
		return false;
	tc_lock(eng);
	(void)tc_blob_reap_locked(eng, NULL, 0);
	/* The committer may be deleting a batch it moved aside. */
	while (eng->reaping)
		tc_mutex_wait(&eng->lock, &eng->reaped_cond);
	tc_unlock(eng);
	return true;
}

void tc_commit_close_locked(struct tc_engine *eng)
{
	TC_ASSERT_LOCKED(eng);
	if (eng->retired_seq > eng->synced_seq)
		(void)!sync_for_reap_locked(eng);
	(void)tc_blob_reap_locked(eng, NULL, 0);
}

int tc_sync(struct tc_engine *eng)
{
	return tc_commit_sync(eng);
}

/* Directory rows or purges queued for the next commit (node.c). */
static bool later_work(const struct tc_engine *eng)
{
	return eng->n_rows || eng->n_purges;
}

static void *committer(void *arg)
{
	struct tc_engine *eng = arg;

	tc_lock(eng);
	while (!eng->committer_stop) {
		struct tc_inval_list inv = { 0 };
		int64_t age;

		if (eng->synced_seq > eng->reaped_seq) {
			reap_locked(eng);
			continue;
		}
		if (eng->retired_seq > eng->synced_seq) {
			/* A program's fsync usually comes first and covers
			 * them; else the committer syncs them itself. */
			age = tc_mono_ns() - eng->unsynced_since;
			if (age >= REAP_SYNC_DELAY_NS) {
				if (sync_for_reap_locked(eng))
					/* The files stay a little longer. */
					tc_mutex_timedwait(
						&eng->lock, &eng->commit_cond,
						10 * REAP_SYNC_DELAY_NS);
				continue;
			}
			if (!eng->group_open && !eng->lost_pending &&
			    !later_work(eng)) {
				tc_mutex_timedwait(&eng->lock,
						   &eng->commit_cond,
						   REAP_SYNC_DELAY_NS - age);
				continue;
			}
		}
		if (!eng->group_open && !eng->lost_pending &&
		    !later_work(eng)) {
			tc_mutex_wait(&eng->lock, &eng->commit_cond);
			continue;
		}
		age = tc_mono_ns() - (eng->group_open ? eng->group_started
						      : eng->later_since);
		if ((eng->group_open || later_work(eng)) &&
		    age < eng->commit_interval_ns &&
		    eng->group_ops < TC_GROUP_MAX_OPS) {
			tc_mutex_timedwait(&eng->lock, &eng->commit_cond,
					   eng->commit_interval_ns - age);
			continue;
		}
		(void)!tc_commit_locked(eng, &inv);
		if (eng->group_open && eng->commit_err) {
			/* Failing: try again a little later, not in a loop. */
			tc_mutex_timedwait(&eng->lock, &eng->commit_cond,
					   10 * eng->commit_interval_ns);
		}
		tc_unlock(eng);
		tc_inval_deliver(eng, &inv);
		tc_lock(eng);
	}
	tc_unlock(eng);
	return NULL;
}

int tc_commit_start(struct tc_engine *eng)
{
	int rc = -pthread_create(&eng->committer, NULL, committer, eng);

	if (!rc)
		eng->committer_running = true;
	return rc;
}

void tc_commit_stop(struct tc_engine *eng)
{
	if (!eng->committer_running)
		return;
	tc_lock(eng);
	eng->committer_stop = true;
	pthread_cond_signal(&eng->commit_cond);
	tc_unlock(eng);
	pthread_join(eng->committer, NULL);
	eng->committer_running = false;
}
