/* SPDX-License-Identifier: MIT */
/*
 * Transactions as the engine sees them: an index transaction plus the
 * in-memory counters it moves (logical size and items of the disk tier,
 * physical blob bytes) and the blob files it dooms. A rollback restores the
 * counters as they were at begin; a commit deletes the files of blobs whose
 * last reference went (blob.c), never before, so a crash or a rollback can
 * not leave a row naming a deleted file.
 *
 * Callers hold the engine lock from begin to commit or rollback.
 */
#include "engine_i.h"

int tc_txn_begin_locked(struct tc_engine *eng)
{
	TC_ASSERT_LOCKED(eng);
	eng->saved = eng->size;
	eng->n_doomed = 0;
	return tc_index_begin(&eng->ix);
}

void tc_txn_rollback_locked(struct tc_engine *eng)
{
	TC_ASSERT_LOCKED(eng);
	tc_index_rollback(&eng->ix);
	eng->size = eng->saved;
	eng->n_doomed = 0;
}

int tc_txn_commit_locked(struct tc_engine *eng, bool durable)
{
	int rc;

	TC_ASSERT_LOCKED(eng);
	rc = tc_index_commit(&eng->ix, durable && eng->sync != TC_SYNC_NEVER);
	if (rc)
		tc_txn_rollback_locked(eng);
	else
		tc_blob_reap_locked(eng);
	return rc;
}

int tc_txn_end_locked(struct tc_engine *eng, int rc)
{
	if (rc) {
		tc_txn_rollback_locked(eng);
		return rc;
	}
	return tc_txn_commit_locked(eng, false);
}

void tc_txn_account_locked(struct tc_engine *eng, int64_t dbytes,
			   int64_t ditems)
{
	TC_ASSERT_LOCKED(eng);
	eng->size.disk_bytes = (uint64_t)((int64_t)eng->size.disk_bytes + dbytes);
	eng->size.disk_items = (uint64_t)((int64_t)eng->size.disk_items + ditems);
}
