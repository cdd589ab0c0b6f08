/* SPDX-License-Identifier: MIT */
/*
 * Extended attributes: the one place where names are sorted into
 * namespaces (STYLE point 12; fuse-overlayfs's can_access_xattr). user.*
 * attributes are stored in the index like any filesystem stores them
 * (values up to TC_XATTR_SIZE_MAX); user.tiercache.* go to cacheattr.c;
 * trusted.*, security.* and system.* are not supported. XATTR_CREATE and
 * XATTR_REPLACE are honoured for both kinds.
 */
#include <errno.h>
#include <string.h>
#include <sys/xattr.h>

#include "engine_i.h"

/* listxattr(2) returns at most this many bytes (Linux XATTR_LIST_MAX) */
#define XATTR_LIST_LIMIT 65536
/* room kept for the user.tiercache.* names the listing adds */
#define XATTR_LIST_RESERVE 128
/* longest attribute name (Linux XATTR_NAME_MAX) */
#define XATTR_NAME_LIMIT 255

enum xattr_class { XA_USER, XA_TIERCACHE, XA_OTHER };

static enum xattr_class xattr_class(const char *name)
{
	if (!strncmp(name, TC_XATTR_PREFIX, strlen(TC_XATTR_PREFIX)))
		return XA_TIERCACHE;
	if (!strncmp(name, "user.", 5) && name[5])
		return XA_USER;
	return XA_OTHER;
}

/* Take the engine lock with @ino known to exist: 0, or -ENOENT unlocked. */
static int lock_existing(struct tc_engine *eng, uint64_t ino)
{
	struct tc_node *n;
	int rc;

	tc_lock(eng);
	rc = tc_node_get_locked(eng, ino, &n);
	if (rc) {
		tc_unlock(eng);
		return rc;
	}
	/* The pin is dropped at once: the engine lock keeps the row. */
	n->pins--;
	tc_node_release_locked(eng, n);
	return 0;
}

ssize_t tc_getxattr(struct tc_engine *eng, uint64_t ino, const char *name,
		    void *buf, size_t size)
{
	ssize_t rc;

	switch (xattr_class(name)) {
	case XA_OTHER:
		return -ENOTSUP;
	case XA_TIERCACHE:
		return tc_cacheattr_get(eng, ino, name, buf, size);
	case XA_USER:
		break;
	}
	rc = lock_existing(eng, ino);
	if (rc)
		return rc;
	rc = tc_index_xattr_get(&eng->ix, ino, name, buf, size);
	tc_unlock(eng);
	return rc;
}

/* -ENOSPC when one more name would make the listing of @ino longer than
 * listxattr(2) can return (cp -a and rsync -X would fail on the file):
 * refused like ext4 does when it is full. */
static int check_room_locked(struct tc_engine *eng, uint64_t ino,
			     const char *name)
{
	int64_t used = tc_index_xattr_names_len(&eng->ix, ino, name);

	if (used + (int64_t)strlen(name) + 1 + XATTR_LIST_RESERVE >
	    XATTR_LIST_LIMIT)
		return -ENOSPC;
	return 0;
}

int tc_setxattr(struct tc_engine *eng, uint64_t ino, const char *name,
		const void *value, size_t size, int flags)
{
	bool exists;
	int rc;

	switch (xattr_class(name)) {
	case XA_OTHER:
		return -ENOTSUP;
	case XA_TIERCACHE:
		return tc_cacheattr_set(eng, ino, name, value, size, flags);
	case XA_USER:
		break;
	}
	if (size > TC_XATTR_SIZE_MAX)
		return -E2BIG;
	if (strlen(name) > XATTR_NAME_LIMIT)
		return -ERANGE;
	if (tc_reserve_short(eng))
		(void)tc_commit_reclaim(eng); /* deleted files may free room */
	rc = lock_existing(eng, ino);
	if (rc)
		return rc;
	exists = tc_index_xattr_get(&eng->ix, ino, name, NULL, 0) >= 0;
	if (exists && (flags & XATTR_CREATE))
		rc = -EEXIST;
	else if (!exists && (flags & XATTR_REPLACE))
		rc = -ENODATA;
	else if (!exists)
		rc = check_room_locked(eng, ino, name);
	if (!rc && tc_reserve_short(eng))
		rc = -ENOSPC;
	if (!rc)
		rc = tc_txn_begin_locked(eng);
	if (!rc)
		rc = tc_txn_end_locked(eng, tc_index_xattr_set(&eng->ix, ino,
							       name, value,
							       size));
	tc_unlock(eng);
	return rc;
}

ssize_t tc_listxattr(struct tc_engine *eng, uint64_t ino, char *buf,
		     size_t size)
{
	size_t used;
	ssize_t rc;

	rc = lock_existing(eng, ino);
	if (rc)
		return rc;
	used = tc_index_xattr_list(&eng->ix, ino, buf, size);
	tc_unlock(eng);
	rc = tc_cacheattr_list(eng, ino, buf, size, used);
	if (rc >= 0 && size && (size_t)rc > size)
		return -ERANGE;
	return rc;
}

int tc_removexattr(struct tc_engine *eng, uint64_t ino, const char *name)
{
	int rc;

	switch (xattr_class(name)) {
	case XA_OTHER:
		return -ENOTSUP;
	case XA_TIERCACHE:
		return tc_cacheattr_remove(eng, ino, name);
	case XA_USER:
		break;
	}
	rc = lock_existing(eng, ino);
	if (rc)
		return rc;
	rc = tc_txn_begin_locked(eng);
	if (!rc)
		rc = tc_txn_end_locked(eng,
				       tc_index_xattr_delete(&eng->ix, ino, name));
	tc_unlock(eng);
	return rc;
}
