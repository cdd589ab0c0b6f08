/* SPDX-License-Identifier: MIT */
/*
 * snapshots.c - the /.stats file in cache_mode=kernel.
 *
 * In daemon mode .stats is rendered at each open and read with direct_io
 * (fileops.c). In kernel mode no open reaches the daemon, and the kernel keeps
 * the pages and the size of a file it has read: a fixed inode would show
 * the first snapshot for ever. So every lookup of the name renders a new
 * snapshot under a new inode number, replied with an entry timeout of 0
 * (the next path walk looks the name up again, and gets a newer inode)
 * and attributes that never change (they are the snapshot's). The kernel
 * then never holds stale pages for the current name, and a descriptor
 * opened earlier keeps reading its own whole snapshot from its own inode.
 *
 * Snapshots live in a list keyed by inode number, each with the lookup
 * references the kernel holds; FORGET frees them. The list is bounded
 * (SNAPS_MAX): beyond it the oldest is dropped, and a kernel still holding
 * it reads it as empty. Inode numbers come from a range the engine never
 * allocates (row ids count from 1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tcfs.h"

/* Most snapshots kept. The kernel holds one per .stats dentry it has and
 * one per descriptor open on an older one: a handful in practice. */
#define SNAPS_MAX 1024

struct tcfs_snap {
	struct tcfs_snap *next;
	uint64_t ino;
	uint64_t nlookup;
	struct timespec when;
	struct tcfs_text text;
};

void tcfs_snaps_init(struct tcfs_snaps *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
}

static void snap_free(struct tcfs_snap *p)
{
	tcfs_text_free(&p->text);
	free(p);
}

void tcfs_snaps_destroy(struct tcfs_snaps *s)
{
	struct tcfs_snap *p, *next;

	for (p = s->head; p; p = next) {
		next = p->next;
		snap_free(p);
	}
	s->head = NULL;
	s->n = 0;
	pthread_mutex_destroy(&s->lock);
}

bool tcfs_snap_ino(uint64_t ino)
{
	return ino >= TCFS_SNAP_INO_MIN && ino < TCFS_SNAP_INO_END;
}

static void snap_attr(const struct tcfs_snap *p, struct tc_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->st.st_ino = p->ino;
	a->st.st_mode = S_IFREG | 0444;
	a->st.st_nlink = 1;
	a->st.st_uid = geteuid();
	a->st.st_gid = getegid();
	a->st.st_size = (off_t)p->text.len;
	a->st.st_blksize = 4096;
	a->st.st_blocks = (blkcnt_t)((p->text.len + 511) / 512);
	a->st.st_atim = p->when;
	a->st.st_mtim = p->when;
	a->st.st_ctim = p->when;
	a->valid_ns = INT64_MAX;
}

/* Snapshot @ino (s->lock held), or NULL. */
static struct tcfs_snap *snap_find_locked(struct tcfs_snaps *s, uint64_t ino)
{
	struct tcfs_snap *p;

	for (p = s->head; p && p->ino != ino; p = p->next)
		;
	return p;
}

int tcfs_snap_new(struct tcfs_snaps *s, struct tc_engine *eng,
		  struct tc_attr *out)
{
	struct tcfs_snap *p = calloc(1, sizeof(*p)), **pp;

	if (!p)
		return -ENOMEM;
	if (tcfs_stats_render(eng, true, &p->text) < 0) {
		snap_free(p);
		return -ENOMEM;
	}
	clock_gettime(CLOCK_REALTIME, &p->when);
	p->nlookup = 1;
	pthread_mutex_lock(&s->lock);
	p->ino = TCFS_SNAP_INO_MIN +
		 s->seq++ % (TCFS_SNAP_INO_END - TCFS_SNAP_INO_MIN);
	p->next = s->head;
	s->head = p;
	if (++s->n > SNAPS_MAX) {
		/* the oldest is at the end */
		for (pp = &s->head; (*pp)->next; pp = &(*pp)->next)
			;
		snap_free(*pp);
		*pp = NULL;
		s->n--;
	}
	snap_attr(p, out);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int tcfs_snap_attr(struct tcfs_snaps *s, uint64_t ino, struct tc_attr *out)
{
	struct tcfs_snap *p;

	pthread_mutex_lock(&s->lock);
	p = snap_find_locked(s, ino);
	if (p)
		snap_attr(p, out);
	pthread_mutex_unlock(&s->lock);
	return p ? 0 : -ENOENT;
}

size_t tcfs_snap_read(struct tcfs_snaps *s, uint64_t ino, char *buf,
		      size_t size, uint64_t off)
{
	struct tcfs_snap *p;
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	p = snap_find_locked(s, ino);
	if (p && off < p->text.len) {
		n = p->text.len - (size_t)off;
		if (n > size)
			n = size;
		memcpy(buf, p->text.buf + off, n);
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

void tcfs_snap_forget(struct tcfs_snaps *s, uint64_t ino, uint64_t nlookup)
{
	struct tcfs_snap **pp, *p;

	pthread_mutex_lock(&s->lock);
	for (pp = &s->head; *pp && (*pp)->ino != ino; pp = &(*pp)->next)
		;
	p = *pp;
	if (p && p->nlookup <= nlookup) {
		*pp = p->next;
		s->n--;
		snap_free(p);
	} else if (p) {
		p->nlookup -= nlookup;
	}
	pthread_mutex_unlock(&s->lock);
}
