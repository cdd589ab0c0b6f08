/* SPDX-License-Identifier: MIT */
/*
 * Engine fixture shared by the fuzz targets that drive a real engine
 * (fuzz_xattr, fuzz_engine): a store in a temporary directory, a
 * deterministic configuration (no background thread, sync=never, a clock
 * the target controls) and a log callback that treats any message at error
 * level as a finding, since nothing these targets do may make the engine
 * log an error (a failed publish, a corrupt blob, a broken index), unless
 * the target injected a fault since the current operation began.
 */
#ifndef TC_FUZZ_ENG_H
#define TC_FUZZ_ENG_H

#include <fcntl.h>
#include <stdio.h>

#include "fuzz_util.h"
#include "tiercache.h"

/* Injected clock start: a fixed, realistic time (2023-11-14), as the unit
 * tests use, so expiry arithmetic runs on real magnitudes. */
#define FZ_EPOCH_NS (INT64_C(1700000000) * 1000000000)

struct fz_eng {
	char dir[128];   /* temporary directory, removed by fz_eng_destroy */
	char store[160]; /* dir/store */
	struct tc_config cfg;
	struct tc_engine *eng;
	struct tc_ctx ctx;
	int64_t now; /* the injected clock, ns */
	/* Faults injected so far (NULL: none ever), and their number when
	 * the current operation began: errors are expected after one. */
	const unsigned *faults;
	unsigned faults_before;
};

static inline int64_t fz_eng_clock(void *ctx)
{
	return ((struct fz_eng *)ctx)->now;
}

static inline void __attribute__((format(printf, 3, 0)))
fz_eng_log(void *ctx, int level, const char *fmt, va_list ap)
{
	struct fz_eng *fx = ctx;

	if (fx->faults && *fx->faults != fx->faults_before)
		return; /* an injected fault: errors are expected */
	fprintf(stderr, "engine[%d]: ", level);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	FZ_CHECK(level > TC_LOG_ERR, "the engine logged an error (above)");
}

/** Prepare @p fx (a fresh temporary directory) without opening it. */
static inline void fz_eng_init(struct fz_eng *fx, const char *tag)
{
	memset(fx, 0, sizeof(*fx));
	fz_mkdtemp(fx->dir, sizeof(fx->dir), tag);
	snprintf(fx->store, sizeof(fx->store), "%s/store", fx->dir);
	tc_config_init(&fx->cfg);
	fx->cfg.store = fx->store;
	fx->cfg.background = false;
	fx->cfg.sync = TC_SYNC_NEVER;
	fx->cfg.clock = fz_eng_clock;
	fx->cfg.clock_ctx = fx;
	fx->cfg.log_fn = fz_eng_log;
	fx->cfg.log_ctx = fx;
	fx->cfg.log_level = TC_LOG_ERR;
	fx->now = FZ_EPOCH_NS;
	fx->ctx.uid = getuid();
	fx->ctx.gid = getgid();
	fx->ctx.umask = 022;
}

static inline void fz_eng_open(struct fz_eng *fx)
{
	int rc = tc_engine_open(&fx->cfg, &fx->eng);

	FZ_CHECK(rc == 0, "tc_engine_open(%s): %s (%s)", fx->store,
		 strerror(-rc), tc_engine_last_error());
}

static inline void fz_eng_close(struct fz_eng *fx)
{
	tc_engine_close(fx->eng);
	fx->eng = NULL;
}

/** Close the engine and remove the temporary directory. */
static inline void fz_eng_destroy(struct fz_eng *fx)
{
	fz_eng_close(fx);
	fz_rm_rf(fx->dir);
}

/** Make @p parent/@p name a file holding @p data (created: must be new).
 *  @return its inode (lookup reference dropped). */
static inline uint64_t fz_eng_put_new(struct fz_eng *fx, uint64_t parent,
				      const char *name, const void *data,
				      size_t len)
{
	struct tc_attr attr;
	struct tc_file *f;
	ssize_t n;
	int rc;

	rc = tc_create(fx->eng, parent, name, S_IFREG | 0644,
		       O_WRONLY | O_CREAT | O_TRUNC, &fx->ctx, &attr, &f);
	FZ_CHECK(rc == 0, "create %s: %s", name, strerror(-rc));
	n = tc_write(f, data, len, 0);
	FZ_CHECK(n == (ssize_t)len, "write %s: %zd", name, n);
	rc = tc_release(f);
	FZ_CHECK(rc == 0, "release %s: %s", name, strerror(-rc));
	tc_forget(fx->eng, attr.st.st_ino, 1);
	return attr.st.st_ino;
}

/** mkdir @p parent/@p name (must be new). @return its inode. */
static inline uint64_t fz_eng_mkdir(struct fz_eng *fx, uint64_t parent,
				    const char *name)
{
	struct tc_attr attr;
	int rc = tc_mknod(fx->eng, parent, name, S_IFDIR | 0755, 0, &fx->ctx,
			  &attr);

	FZ_CHECK(rc == 0, "mkdir %s: %s", name, strerror(-rc));
	tc_forget(fx->eng, attr.st.st_ino, 1);
	return attr.st.st_ino;
}

#endif /* TC_FUZZ_ENG_H */
