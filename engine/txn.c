/* SPDX-License-Identifier: MIT */
/*
 * Operations and group commit.
 *
 * Every change the engine makes (a create, a publish, an unlink, a chmod,
 * an eviction, ...) is one operation: a SQLite savepoint inside one long
 * transaction, the group. An operation that fails rolls back alone (ROLLBACK
 * TO); one that succeeds is released into the group, which commit.c's
 * thread commits every few milliseconds (or sooner, when many operations
 * wait, or when a program asks for durability). So the index sees one
 * commit per group instead of one per operation: pages that many
 * operations touch are written to the WAL once, and no request thread waits
 * for a commit unless it asked to. Lookups read through the same
 * connection and see the group's changes at once. A crash loses at most
 * the open group, never part of one: SQLite commits each group atomically.
 *
 * The in-memory counters move with the operations: saved at each begin and
 * restored by a rollback; kept as of the last commit, and restored when a
 * failed commit loses a group. Blob files whose last reference went in the
 * group are deleted after the group commits (blob.c), never before.
 *
 * Callers hold the engine lock from begin to commit or rollback.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"

/* Open a group when none is: BEGIN, and wake the committer. */
static int group_begin_locked(struct tc_engine *eng)
{
	int rc;

	if (eng->group_open)
		return 0;
	rc = tc_index_begin(&eng->ix);
	if (rc)
		return rc;
	eng->group_open = true;
	eng->group_id++;
	eng->group_ops = 0;
	eng->group_started = tc_mono_ns();
	eng->committed = eng->size;
	pthread_cond_signal(&eng->commit_cond);
	return 0;
}

/* SQLite ended the transaction itself (some errors roll it back whole):
 * the group's changes are gone. */
static void group_lost_locked(struct tc_engine *eng, int rc)
{
	tc_err(eng, "index: a group of changes could not be committed and is "
		    "lost: %s",
	       rc == -ENOSPC ? "the store's filesystem is full"
			     : "I/O error");
	tc_index_rollback(&eng->ix);
	eng->group_open = false;
	eng->in_op = false;
	eng->size = eng->committed;
	eng->n_doomed = 0; /* their rows are back: the files stay */
	eng->lost_group = eng->group_id;
	eng->lost_err = rc;
	eng->lost_pending = true; /* commit.c reloads the nodes */
}

void tc_txn_note_name_locked(struct tc_engine *eng, uint64_t parent,
			     const char *name, uint64_t ino)
{
	TC_ASSERT_LOCKED(eng);
	tc_inval_add(&eng->group_names, parent, name, strlen(name), ino);
}

void tc_txn_note_node_locked(struct tc_engine *eng, struct tc_node *n)
{
	TC_ASSERT_LOCKED(eng);
	if (eng->n_op_nodes == eng->cap_op_nodes) {
		size_t cap = eng->cap_op_nodes ? 2 * eng->cap_op_nodes : 16;
		void *v = realloc(eng->op_nodes, cap * sizeof(*eng->op_nodes));
		if (!v)
			return; /* rare: the row is reread when the node goes */
		eng->op_nodes = v;
		eng->cap_op_nodes = cap;
	}
	eng->op_nodes[eng->n_op_nodes++] = n;
}

/* Drop the names noted from index @from on. */
static void names_truncate(struct tc_inval_list *l, size_t from)
{
	while (l->n > from)
		free(l->v[--l->n].name);
}

bool tc_txn_in_op_locked(struct tc_engine *eng)
{
	TC_ASSERT_LOCKED(eng);
	return eng->in_op;
}

int tc_txn_begin_locked(struct tc_engine *eng)
{
	int rc;

	TC_ASSERT_LOCKED(eng);
	assert(!eng->in_op);
	rc = group_begin_locked(eng);
	if (!rc)
		rc = tc_index_savepoint(&eng->ix);
	if (rc)
		return rc;
	eng->in_op = true;
	eng->saved = eng->size;
	eng->op_doomed = eng->n_doomed;
	eng->op_names = eng->group_names.n;
	eng->n_op_nodes = 0;
	return 0;
}

void tc_txn_rollback_locked(struct tc_engine *eng)
{
	TC_ASSERT_LOCKED(eng);
	if (!eng->in_op)
		return;
	eng->in_op = false;
	eng->size = eng->saved;
	eng->n_doomed = eng->op_doomed;
	names_truncate(&eng->group_names, eng->op_names);
	if (eng->group_ops == 0) {
		/* Nothing else in the group: end it with the operation. */
		tc_index_rollback(&eng->ix);
		eng->group_open = false;
	} else if (!tc_index_in_txn(&eng->ix)) {
		group_lost_locked(eng, -EIO);
	} else if (tc_index_rollback_to(&eng->ix) != 0) {
		group_lost_locked(eng, -EIO);
	}
	/* Nodes are pinned by the caller for the operation's length, or
	 * held by the kernel with a body that their zero links keep. */
	for (size_t i = 0; i < eng->n_op_nodes; i++)
		if (eng->op_nodes[i]->body)
			(void)!tc_index_inode_get(
			    &eng->ix, eng->op_nodes[i]->ino,
			    &eng->op_nodes[i]->body->meta);
	eng->n_op_nodes = 0;
}

int tc_txn_commit_locked(struct tc_engine *eng)
{
	int rc;

	TC_ASSERT_LOCKED(eng);
	assert(eng->in_op);
	rc = tc_index_in_txn(&eng->ix) ? tc_index_release(&eng->ix) : -EIO;
	if (rc) {
		tc_txn_rollback_locked(eng);
		return rc;
	}
	eng->in_op = false;
	/* No committer (background off, or not started yet): every
	 * operation commits by itself, as tests expect. */
	if (!eng->committer_running)
		return tc_txn_group_commit_locked(eng);
	if (++eng->group_ops >= TC_GROUP_MAX_OPS || !eng->commit_interval_ns)
		pthread_cond_signal(&eng->commit_cond);
	return 0;
}

int tc_txn_end_locked(struct tc_engine *eng, int rc)
{
	if (rc) {
		tc_txn_rollback_locked(eng);
		return rc;
	}
	return tc_txn_commit_locked(eng);
}

void tc_txn_commit_failed_locked(struct tc_engine *eng, int rc)
{
	TC_ASSERT_LOCKED(eng);
	/* Said once per run of failures: each round tries again. */
	if (eng->group_open && !eng->commit_err)
		tc_warn(eng, "index: commit failed (%d), will retry", rc);
	eng->commit_err = rc;
}

int tc_txn_group_commit_locked(struct tc_engine *eng)
{
	int rc;

	TC_ASSERT_LOCKED(eng);
	if (!eng->group_open || eng->in_op)
		return 0;
	rc = tc_index_commit(&eng->ix, false);
	if (!rc) {
		eng->group_open = false;
		eng->commit_err = 0;
		eng->committed = eng->size;
		names_truncate(&eng->group_names, 0);
		tc_blob_retire_locked(eng);
		/* Without the committer (tests), nothing waits for a sync. */
		if (!eng->committer_running) {
			eng->synced_seq = eng->retired_seq;
			(void)tc_blob_reap_locked(eng, NULL, 0);
		}
		return 0;
	}
	if (tc_index_in_txn(&eng->ix)) {
		/* Still open: the next round tries again (space may come). */
		tc_txn_commit_failed_locked(eng, rc);
		return rc;
	}
	group_lost_locked(eng, rc);
	return rc;
}

void tc_txn_account_locked(struct tc_engine *eng, int64_t dbytes,
			   int64_t ditems)
{
	TC_ASSERT_LOCKED(eng);
	eng->size.disk_bytes = (uint64_t)((int64_t)eng->size.disk_bytes + dbytes);
	eng->size.disk_items = (uint64_t)((int64_t)eng->size.disk_items + ditems);
}
