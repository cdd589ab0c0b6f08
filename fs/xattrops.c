/* SPDX-License-Identifier: MIT */
/*
 * xattrops.c - the FUSE extended-attribute operations: setxattr, getxattr,
 * listxattr and removexattr.
 *
 * Each goes to the engine unchanged: it keeps the user.* attributes, serves
 * the user.tiercache.* ones (lifetimes, tags, schema, the root's controls)
 * and filters the other namespaces. The daemon's virtual inodes (.stats,
 * /.tags and its files) carry no attributes: setting or removing one is
 * refused (EPERM), reading one finds none. In cache_mode=kernel what the
 * kernel wrote back may not be published yet, so it is published before a
 * user.tiercache.* attribute is read: the computed ones (hash, tier) must
 * describe what was written.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tcfs.h"

void tcfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		   const char *value, size_t size, int flags)
{
	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fuse_reply_err(req, -tc_setxattr(tcfs_of(req)->eng, ino, name, value,
					 size, flags));
}

/* Reply to getxattr/listxattr: the length when @p size is 0, else the
 * value. @p n is the engine's result for the same @p size. */
static void tcfs_reply_xattr(fuse_req_t req, size_t size, const char *buf,
			     ssize_t n)
{
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

void tcfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		   size_t size)
{
	char *buf = NULL;
	ssize_t n;

	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	/* Kernel mode: what the kernel wrote back may wait for a quiet
	 * period; the computed attributes (hash, tier) describe what was
	 * written, so publish it first. */
	if (tcfs_of(req)->kernel &&
	    strncmp(name, TC_XATTR_PREFIX, strlen(TC_XATTR_PREFIX)) == 0)
		(void)!tc_publish_ino(tcfs_of(req)->eng, ino, false);
	if (size > 0) {
		buf = malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	n = tc_getxattr(tcfs_of(req)->eng, ino, name, buf, size);
	tcfs_reply_xattr(req, size, buf, n);
	free(buf);
}

void tcfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = NULL;
	ssize_t n;

	if (tcfs_is_virtual_ino(ino)) {
		tcfs_reply_xattr(req, size, NULL, 0);
		return;
	}
	if (size > 0) {
		buf = malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	n = tc_listxattr(tcfs_of(req)->eng, ino, buf, size);
	tcfs_reply_xattr(req, size, buf, n);
	free(buf);
}

void tcfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fuse_reply_err(req, -tc_removexattr(tcfs_of(req)->eng, ino, name));
}
