/* SPDX-License-Identifier: MIT */
/*
 * proto.c - what the kernel and the daemon say to each other that libfuse
 * 3.14 does not pass on, read and written through its custom I/O hooks
 * (fuse_session_custom_io()).
 *
 * FUSE_HANDLE_KILLPRIV_V2 (Linux 5.11). Without it the kernel asks for
 * security.capability before every write(2), a round trip each; with it the
 * kernel asks once per inode (SB_NOSEC: again only after it refreshed the
 * inode's attributes, which may come from another client) and leaves
 * clearing the set-user-ID and set-group-ID bits on write, truncate and
 * chown to the filesystem. libfuse 3.14 neither offers the flag nor passes
 * on the per-request flags that say when to clear the bits
 * (FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID, FUSE_OPEN_KILL_SUIDGID). So
 * the reply to INIT gets the flag here when the kernel offered it, and every
 * request read is looked at for those flags. The thread that reads a request
 * is the one that handles it (libfuse's loops, single- and multi-threaded),
 * so a thread-local flag carries the request's to its handler, which calls
 * tcfs_proto_kill_suidgid().
 *
 * The store has no security.* attributes (engine/xattr.c), so there is never
 * a capability to remove.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tcfs.h"

/* The request this thread read last asked for set-ID bits to be cleared. */
static _Thread_local bool kill_pending;

static bool has_arg(ssize_t n, size_t size)
{
	return (size_t)n >= sizeof(struct fuse_in_header) + size;
}

/* The request's kill flag: @field of its argument (struct @type) has @flag. */
#define KILL_FLAG(type, field, flag)                                         \
	(kill_pending = has_arg(n, sizeof(struct type)) &&                   \
			(((const struct type *)arg)->field & (flag)))

static ssize_t proto_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);
	const struct fuse_in_header *h = buf;
	const void *arg = h + 1;
	struct tcfs_proto *p = &((struct tcfs *)userdata)->proto;

	kill_pending = false;
	if (n < (ssize_t)sizeof(*h))
		return n;
	switch (h->opcode) {
	case FUSE_INIT:
		if (has_arg(n, sizeof(struct fuse_init_in))) {
			const struct fuse_init_in *in = arg;
			p->init_unique = h->unique;
			atomic_store(&p->offers_v2,
				     (in->flags & FUSE_HANDLE_KILLPRIV_V2) != 0);
		}
		break;
	case FUSE_WRITE:
		KILL_FLAG(fuse_write_in, write_flags, FUSE_WRITE_KILL_SUIDGID);
		break;
	case FUSE_SETATTR:
		KILL_FLAG(fuse_setattr_in, valid, FATTR_KILL_SUIDGID);
		break;
	case FUSE_OPEN:
		KILL_FLAG(fuse_open_in, open_flags, FUSE_OPEN_KILL_SUIDGID);
		break;
	case FUSE_CREATE:
		KILL_FLAG(fuse_create_in, open_flags, FUSE_OPEN_KILL_SUIDGID);
		break;
	default:
		break;
	}
	return n;
}

static ssize_t proto_writev(int fd, struct iovec *iov, int count,
			    void *userdata)
{
	struct tcfs_proto *p = &((struct tcfs *)userdata)->proto;

	/* The INIT reply: libfuse sends the header and fuse_init_out. */
	if (!atomic_load(&p->answered) && count >= 2 &&
	    iov[0].iov_len >= sizeof(struct fuse_out_header) &&
	    iov[1].iov_len >= offsetof(struct fuse_init_out, flags) +
				  sizeof(uint32_t)) {
		struct fuse_out_header *oh = iov[0].iov_base;
		struct fuse_init_out *out = iov[1].iov_base;

		if (oh->unique == p->init_unique && oh->error == 0) {
			atomic_store(&p->answered, true);
			if (atomic_load(&p->offers_v2))
				out->flags |= FUSE_HANDLE_KILLPRIV_V2;
		}
	}
	return writev(fd, iov, count);
}

/* Given, so that libfuse keeps splicing replies (it does only when the
 * hook is there). */
static ssize_t proto_splice_send(int fdin, off_t *offin, int fdout,
				 off_t *offout, size_t len, unsigned int flags,
				 void *userdata)
{
	(void)userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

static const struct fuse_custom_io proto_io = {
    .read = proto_read,
    .writev = proto_writev,
    .splice_send = proto_splice_send,
};

int tcfs_proto_install(struct fuse_session *se)
{
	return fuse_session_custom_io(se, &proto_io, fuse_session_fd(se));
}

int tcfs_proto_kill_suidgid(struct tc_engine *eng, fuse_ino_t ino,
			    struct tc_attr *a)
{
	struct tc_attr now;
	struct stat st;
	mode_t mode;
	int rc;

	if (!kill_pending)
		return 0;
	kill_pending = false;
	if (!a) {
		rc = tc_getattr(eng, ino, &now);
		if (rc < 0)
			return rc;
		a = &now;
	}
	/* As the kernel's own rule: set-user-ID always, set-group-ID only
	 * with group execute (else it marks mandatory locking). */
	mode = a->st.st_mode & ~(mode_t)S_ISUID;
	if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		mode &= ~(mode_t)S_ISGID;
	if (mode == a->st.st_mode)
		return 0;
	memset(&st, 0, sizeof(st));
	st.st_mode = mode;
	return tc_setattr(eng, ino, &st, TC_SET_MODE, NULL, a);
}
