/* SPDX-License-Identifier: MIT */
/*
 * Space kept back for the index, so that a full filesystem fails the
 * writes of contents (with ENOSPC, at once, to the program writing) and not
 * the commit of a group of changes programs were already told succeeded.
 *
 * STORE/reserve is a preallocated file of reserve_bytes. Before each
 * group commit (commit.c), when the store's filesystem has less than that
 * free, the reserve is given up, and the WAL grows into it; writes of new
 * contents and operations that add names then fail up front with ENOSPC
 * while the space is short (tc_reserve_short()), so the reserve goes to
 * commits and to the operations that free space. The maintenance thread
 * takes the reserve back once there is room again. (Databases keep such a
 * "ballast" file for the same reason.)
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "engine_i.h"

/* The reserve is this fraction of the store filesystem, within bounds:
 * enough for the WAL to grow until the next checkpoint restarts it. */
#define RESERVE_SHARE 32
#define RESERVE_MIN (UINT64_C(64) << 10)
#define RESERVE_MAX (UINT64_C(4) << 20)

static uint64_t free_bytes(struct tc_engine *eng)
{
	struct statvfs sv;

	if (fstatvfs(eng->store_fd, &sv))
		return UINT64_MAX;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* (Re)allocate the reserve; false when the filesystem has no room. */
static bool fill(struct tc_engine *eng)
{
	if (eng->reserve_fd < 0)
		return false;
	if (posix_fallocate(eng->reserve_fd, 0, (off_t)eng->reserve_bytes))
		return false;
	eng->reserve_given = false;
	return true;
}

void tc_reserve_open(struct tc_engine *eng)
{
	struct statvfs sv;
	uint64_t size;

	eng->reserve_fd = -1;
	if (fstatvfs(eng->store_fd, &sv))
		return;
	size = (uint64_t)sv.f_blocks * sv.f_frsize / RESERVE_SHARE;
	size = size < RESERVE_MIN ? RESERVE_MIN
				  : size > RESERVE_MAX ? RESERVE_MAX : size;
	eng->reserve_bytes = size;
	eng->reserve_fd = openat(eng->store_fd, "reserve",
				 O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (eng->reserve_fd >= 0 && !fill(eng)) {
		/* Full already: the reserve is given (to nobody) until the
		 * maintenance thread finds room for it. */
		(void)!ftruncate(eng->reserve_fd, 0);
		eng->reserve_given = true;
	}
}

void tc_reserve_close(struct tc_engine *eng)
{
	if (eng->reserve_fd >= 0)
		close(eng->reserve_fd);
	eng->reserve_fd = -1;
}

void tc_reserve_before_commit_locked(struct tc_engine *eng)
{
	TC_ASSERT_LOCKED(eng);
	if (eng->reserve_fd < 0 || eng->reserve_given ||
	    free_bytes(eng) >= eng->reserve_bytes)
		return;
	if (ftruncate(eng->reserve_fd, 0) == 0) {
		eng->reserve_given = true;
		tc_warn(eng, "store filesystem nearly full: the index uses its "
			     "reserve; new contents fail with ENOSPC");
	}
}

bool tc_reserve_short(struct tc_engine *eng)
{
	return eng->reserve_given && free_bytes(eng) < eng->reserve_bytes;
}

void tc_reserve_refill_locked(struct tc_engine *eng)
{
	TC_ASSERT_LOCKED(eng);
	if (eng->reserve_given && free_bytes(eng) > 2 * eng->reserve_bytes &&
	    fill(eng))
		tc_info(eng, "store filesystem has room again: reserve restored");
}
