/* SPDX-License-Identifier: MIT */
/*
 * fuzz_options: the daemon's command line, -o option lists and config= INI
 * file (tiercachefs(8), SYNOPSIS and Mount options), through tcfs_opts_parse() of fs/options.c, which
 * this target compiles in.
 *
 * The input is split at NUL bytes: the first field is the content of a
 * config file (when not empty, "-o config=FILE" naming it comes first on
 * the command line), the others are the arguments (at most 32). "@M" stands
 * for an existing directory to mount on and "@S" for a store path. Inputs
 * naming a config file themselves are skipped, so no other file is read.
 *
 * Properties:
 *  - no crash, leak or undefined behaviour, whatever the input;
 *  - tiercachefs(8), SYNOPSIS: a refused command line prints exactly one line on stderr,
 *    "tiercachefs: ..." (control characters in echoed values escaped, so
 *    even a value holding a newline), and an accepted one prints nothing;
 *  - every option of ours given on the command line (the last occurrence)
 *    is what was parsed, whatever the config file says (the command line
 *    wins), checked against tc_parse_*() of the value found by an
 *    independent splitter of the -o syntax ("\," escapes);
 *  - pass-through options reach libfuse in order, minus the fstab-only
 *    ones and ours;
 *  - round trip: the parsed result, written back as a canonical command
 *    line and config file (sizes in bytes, durations in seconds, commas
 *    escaped, tag rules as [tag NAME] sections), parses to the same result;
 *  - tcfs_opts_fuse_args() accepts every parsed result.
 *
 * Set TC_FUZZ_TRACE=1 to print each parse's result and message.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "tcfs.h"

#define MAX_ARGS 32

static struct {
	char dir[128];
	char mnt[160];	  /* an existing directory */
	char store[160];  /* a store path (never created) */
	char conf[160];	  /* the input's config file */
	char conf2[160];  /* the round trip's config file */
	char confopt[200];  /* "config=" conf */
	char confopt2[200]; /* "config=" conf2 */
} S;

/* Options of ours (tiercachefs(8), Mount options), as fs/options.c's table. */
enum kind { K_PATH, K_SIZE, K_DUR, K_MODE, K_SYNC, K_SCHEMA, K_CONFIG };

static const struct {
	const char *name;
	enum kind kind;
} our_opts[] = {
	{ "store", K_PATH },	    { "ram_size", K_SIZE },
	{ "ram_items", K_SIZE },    { "ram_ttl", K_DUR },
	{ "max_ram_item", K_SIZE }, { "disk_size", K_SIZE },
	{ "disk_items", K_SIZE },   { "ttl", K_DUR },
	{ "ttl_mode", K_MODE },	    { "schema", K_SCHEMA },
	{ "sync", K_SYNC },	    { "config", K_CONFIG },
	/* ours too (fs/optdefs.c), their values not modelled here: */
	{ "cache_mode", K_CONFIG }, { "revalidate", K_CONFIG },
	{ "shared", K_CONFIG },	    { "shared_replicas", K_CONFIG },
	{ "shared_revalidate", K_CONFIG }, { "shared_key", K_CONFIG },
	{ "shared_namespace", K_CONFIG },
};
#define N_OPTS (sizeof(our_opts) / sizeof(our_opts[0]))

/* fstab options only mount(8) cares about, which the daemon drops
 * (tiercachefs(8), SYNOPSIS: libfuse would refuse them), plus "x-*" and "comment=*". */
static const char *const dropped[] = {
	"defaults",    "auto",	       "noauto",   "user",	 "nouser",
	"users",       "owner",	       "group",	   "_netdev",	 "nofail",
	"relatime",    "norelatime",   "strictatime", "nostrictatime",
	"lazytime",    "nolazytime",   "diratime", "nodiratime", "silent",
	"loud",
};

static bool is_dropped(const char *o)
{
	if (!strncmp(o, "x-", 2) || !strncmp(o, "comment=", 8))
		return true;
	for (size_t i = 0; i < sizeof(dropped) / sizeof(*dropped); i++)
		if (!strcmp(o, dropped[i]))
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Running the parser                                                 */
/* ------------------------------------------------------------------ */

/* tcfs_opts_parse() with stderr captured into *@p err (malloc'd). */
static int parse_captured(int argc, char **argv, struct tcfs_opts *o,
			  char **err, size_t *errlen)
{
	FILE *saved = stderr, *mem = open_memstream(err, errlen);
	int rc;

	FZ_CHECK(mem != NULL, "open_memstream: %s", strerror(errno));
	stderr = mem;
	rc = tcfs_opts_parse(argc, argv, o);
	stderr = saved;
	fclose(mem);
	return rc;
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	FZ_CHECK(f != NULL, "%s: %s", path, strerror(errno));
	FZ_CHECK(fwrite(data, 1, len, f) == len, "writing %s", path);
	fclose(f);
}

/* ------------------------------------------------------------------ */
/* An independent reading of the -o lists                             */
/* ------------------------------------------------------------------ */

struct ref {
	const char *last[N_OPTS]; /* last value given, or NULL */
	char *vals[4096]; /* elements: at most one per two input bytes */
	size_t nvals;
	char *pass[4096]; /* pass-through options, in order */
	size_t npass;
	bool debug;
};

static void ref_element(struct ref *r, char *e)
{
	const char *eq = strchr(e, '=');
	size_t klen = eq ? (size_t)(eq - e) : strlen(e);

	if (!strcmp(e, "debug")) {
		r->debug = true;
		free(e);
		return;
	}
	for (size_t i = 0; i < N_OPTS; i++) {
		if (strlen(our_opts[i].name) != klen ||
		    strncmp(e, our_opts[i].name, klen))
			continue;
		if (!eq && !strcmp(e, "sync"))
			break; /* the kernel's mount flag: passed through */
		r->last[i] = eq ? eq + 1 : NULL;
		r->vals[r->nvals++] = e;
		return;
	}
	if (is_dropped(e)) {
		free(e);
		return;
	}
	r->pass[r->npass++] = e;
}

/* Split @list at unescaped commas, unescaping "\x" to "x". */
static void ref_list(struct ref *r, const char *list)
{
	size_t len = strlen(list);
	char *cur = malloc(len + 1);
	size_t n = 0;

	FZ_CHECK(cur != NULL, "out of memory");
	for (size_t i = 0; i <= len; i++) {
		if (i == len || list[i] == ',') {
			if (n) {
				cur[n] = '\0';
				ref_element(r, cur);
				cur = malloc(len + 1);
				FZ_CHECK(cur != NULL, "out of memory");
			}
			n = 0;
			continue;
		}
		if (list[i] == '\\' && i + 1 < len)
			i++;
		cur[n++] = list[i];
	}
	free(cur);
}

/* Read the -o lists of a command line that tcfs_opts_parse() accepted. */
static void ref_argv(struct ref *r, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			ref_list(r, argv[++i]);
		else if (!strncmp(argv[i], "-o", 2))
			ref_list(r, argv[i] + 2);
	}
}

static void ref_free(struct ref *r)
{
	for (size_t i = 0; i < r->nvals; i++)
		free(r->vals[i]);
	for (size_t i = 0; i < r->npass; i++)
		free(r->pass[i]);
}

/* The parsed value of our option @i must be what its last -o gave. */
static void check_opt(const struct tcfs_opts *o, size_t i, const char *v)
{
	const struct tc_config *c = &o->cfg;
	uint64_t u = 0, got = 0;
	int64_t d = 0;
	enum tc_ttl_mode mode;
	enum tc_sync sync;

	switch (our_opts[i].kind) {
	case K_SIZE:
		FZ_CHECK(!tc_parse_size(v, &u), "accepted bad size '%s'", v);
		got = i == 1 ? c->ram_size : i == 2 ? c->ram_items
				: i == 4 ? c->max_ram_item
				: i == 5 ? c->disk_size : c->disk_items;
		FZ_CHECK(got == u, "%s=%s gave %" PRIu64, our_opts[i].name, v,
			 got);
		break;
	case K_DUR:
		FZ_CHECK(!tc_parse_duration(v, &d), "accepted bad duration "
			 "'%s'", v);
		FZ_CHECK((i == 3 ? c->ram_ttl_ns : c->ttl_ns) == d,
			 "%s=%s gave %" PRId64, our_opts[i].name, v,
			 i == 3 ? c->ram_ttl_ns : c->ttl_ns);
		break;
	case K_MODE:
		FZ_CHECK(!tc_parse_ttl_mode(v, &mode) && c->ttl_mode == mode,
			 "ttl_mode=%s", v);
		break;
	case K_SYNC:
		FZ_CHECK(!tc_parse_sync(v, &sync) && c->sync == sync,
			 "sync=%s", v);
		break;
	case K_SCHEMA:
		FZ_CHECK(o->schema && !strcmp(o->schema, v) &&
				 c->schema == o->schema,
			 "schema=%s gave %s", v, o->schema);
		break;
	case K_PATH:
		/* Made absolute against the working directory. */
		FZ_CHECK(o->store && c->store == o->store &&
				 strlen(o->store) >= strlen(v) &&
				 !strcmp(o->store + strlen(o->store) -
						 strlen(v),
					 v),
			 "store=%s gave %s", v, o->store);
		break;
	case K_CONFIG:
		break;
	}
}

static void check_against_ref(const struct tcfs_opts *o, int argc,
			      char **argv)
{
	struct ref r;

	memset(&r, 0, sizeof(r));
	ref_argv(&r, argc, argv);
	for (size_t i = 0; i < N_OPTS; i++)
		if (r.last[i])
			check_opt(o, i, r.last[i]);
	if (r.debug)
		FZ_CHECK(o->debug && o->foreground, "-o debug ignored");
	FZ_CHECK(o->n_fuse_opts == r.npass,
		 "%zu pass-through options, reference %zu", o->n_fuse_opts,
		 r.npass);
	for (size_t i = 0; i < r.npass; i++)
		FZ_CHECK(!strcmp(o->fuse_opts[i], r.pass[i]),
			 "pass-through option %zu: '%s', reference '%s'", i,
			 o->fuse_opts[i], r.pass[i]);
	ref_free(&r);
}

/* ------------------------------------------------------------------ */
/* Round trip                                                         */
/* ------------------------------------------------------------------ */

struct text {
	char *p;
	size_t len;
	FILE *f;
};

/* Append @s with "," and "\" escaped (the -o syntax). */
static void put_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == ',' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
}

static void put_opts(FILE *f, const struct tcfs_opts *o)
{
	const struct tc_config *c = &o->cfg;

	fputs("store=", f);
	put_escaped(f, o->store);
	fprintf(f, ",ram_size=%" PRIu64 ",ram_items=%" PRIu64
		",ram_ttl=%" PRId64 "s,max_ram_item=%" PRIu64
		",disk_size=%" PRIu64 ",disk_items=%" PRIu64 ",ttl=%" PRId64
		"s,ttl_mode=%s,sync=%s",
		c->ram_size, c->ram_items, c->ram_ttl_ns / 1000000000,
		c->max_ram_item, c->disk_size, c->disk_items,
		c->ttl_ns / 1000000000,
		c->ttl_mode == TC_TTL_SLIDING ? "sliding" : "absolute",
		c->sync == TC_SYNC_FSYNC ? "fsync"
		: c->sync == TC_SYNC_CLOSE ? "close" : "never");
	if (o->schema)
		fprintf(f, ",schema=%s", o->schema);
	for (size_t i = 0; i < o->n_fuse_opts; i++) {
		fputc(',', f);
		put_escaped(f, o->fuse_opts[i]);
	}
}

static void same(const struct tcfs_opts *a, const struct tcfs_opts *b)
{
	const struct tc_config *x = &a->cfg, *y = &b->cfg;

	FZ_CHECK(x->ram_size == y->ram_size && x->ram_items == y->ram_items &&
			 x->ram_ttl_ns == y->ram_ttl_ns &&
			 x->max_ram_item == y->max_ram_item &&
			 x->disk_size == y->disk_size &&
			 x->disk_items == y->disk_items &&
			 x->ttl_ns == y->ttl_ns && x->ttl_mode == y->ttl_mode &&
			 x->sync == y->sync,
		 "round trip changed a mount option");
	FZ_CHECK(!strcmp(a->store, b->store), "round trip: store '%s' -> "
		 "'%s'", a->store, b->store);
	FZ_CHECK(!a->mountpoint == !b->mountpoint &&
			 (!a->mountpoint ||
			  !strcmp(a->mountpoint, b->mountpoint)),
		 "round trip changed the mountpoint");
	FZ_CHECK(!a->schema == !b->schema &&
			 (!a->schema || !strcmp(a->schema, b->schema)),
		 "round trip changed the schema");
	FZ_CHECK(a->foreground == b->foreground && a->debug == b->debug &&
			 a->single_thread == b->single_thread &&
			 a->check == b->check && a->fix == b->fix,
		 "round trip changed a flag");
	FZ_CHECK(a->n_rules == b->n_rules, "round trip: %zu tag rules -> %zu",
		 a->n_rules, b->n_rules);
	for (size_t i = 0; i < a->n_rules; i++)
		FZ_CHECK(!strcmp(a->rules[i].tag, b->rules[i].tag) &&
				 a->rules[i].ttl_ns == b->rules[i].ttl_ns &&
				 a->rules[i].ram_ttl_ns ==
					 b->rules[i].ram_ttl_ns,
			 "round trip changed tag rule %zu (%s)", i,
			 a->rules[i].tag);
	FZ_CHECK(a->n_fuse_opts == b->n_fuse_opts,
		 "round trip: %zu pass-through options -> %zu",
		 a->n_fuse_opts, b->n_fuse_opts);
	for (size_t i = 0; i < a->n_fuse_opts; i++)
		FZ_CHECK(!strcmp(a->fuse_opts[i], b->fuse_opts[i]),
			 "round trip: pass-through '%s' -> '%s'",
			 a->fuse_opts[i], b->fuse_opts[i]);
}

static void round_trip(const struct tcfs_opts *o)
{
	struct tcfs_opts o2;
	struct text opts = { 0 }, conf = { 0 };
	char *argv[12], flags[8] = "-", *err = NULL;
	size_t errlen = 0;
	int argc = 0, rc;

	opts.f = open_memstream(&opts.p, &opts.len);
	conf.f = open_memstream(&conf.p, &conf.len);
	FZ_CHECK(opts.f && conf.f, "open_memstream");
	put_opts(opts.f, o);
	fclose(opts.f);
	for (size_t i = 0; i < o->n_rules; i++) {
		const struct tc_tag_rule *r = &o->rules[i];

		fprintf(conf.f, "[tag %s]\n", r->tag);
		if (r->ttl_ns >= 0)
			fprintf(conf.f, "ttl=%" PRId64 "s\n",
				r->ttl_ns / 1000000000);
		if (r->ram_ttl_ns >= 0)
			fprintf(conf.f, "ram_ttl=%" PRId64 "s\n",
				r->ram_ttl_ns / 1000000000);
	}
	fclose(conf.f);
	write_file(S.conf2, conf.p, conf.len);

	argv[argc++] = (char *)"tiercachefs";
	if (o->single_thread)
		strcat(flags, "s");
	if (o->debug)
		strcat(flags, "d");
	else if (o->foreground)
		strcat(flags, "f");
	if (flags[1])
		argv[argc++] = flags;
	if (o->check)
		argv[argc++] = (char *)"--check";
	if (o->fix)
		argv[argc++] = (char *)"--fix";
	argv[argc++] = (char *)"-o";
	argv[argc++] = opts.p;
	if (o->n_rules) {
		argv[argc++] = (char *)"-o";
		argv[argc++] = S.confopt2;
	}
	if (o->mountpoint) {
		argv[argc++] = (char *)"--";
		argv[argc++] = o->mountpoint;
	}
	argv[argc] = NULL;
	rc = parse_captured(argc, argv, &o2, &err, &errlen);
	FZ_CHECK(rc == 0, "round trip refused: %s\n  -o %s\n  config:\n%s",
		 err, opts.p, conf.p);
	same(o, &o2);
	tcfs_opts_free(&o2);
	free(err);
	free(opts.p);
	free(conf.p);
}

/* ------------------------------------------------------------------ */
/* Driver                                                             */
/* ------------------------------------------------------------------ */

/* True when @s, its escapes removed, could name a config file. */
static bool names_config(const char *s)
{
	char buf[4096];
	size_t n = 0;

	for (; *s && n + 1 < sizeof(buf); s++)
		if (*s != '\\')
			buf[n++] = *s;
	buf[n] = '\0';
	return strstr(buf, "config") != NULL;
}

static void cleanup(void)
{
	fz_rm_rf(S.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char xdg[200];

	(void)argc;
	(void)argv;
	fz_mkdtemp(S.dir, sizeof(S.dir), "options");
	snprintf(S.mnt, sizeof(S.mnt), "%s/mnt", S.dir);
	snprintf(S.store, sizeof(S.store), "%s/store", S.dir);
	snprintf(S.conf, sizeof(S.conf), "%s/a.conf", S.dir);
	snprintf(S.conf2, sizeof(S.conf2), "%s/b.conf", S.dir);
	snprintf(S.confopt, sizeof(S.confopt), "config=%s", S.conf);
	snprintf(S.confopt2, sizeof(S.confopt2), "config=%s", S.conf2);
	snprintf(xdg, sizeof(xdg), "%s/xdg", S.dir);
	FZ_CHECK(mkdir(S.mnt, 0755) == 0 && mkdir(xdg, 0755) == 0, "mkdir");
	/* The default store (no store given) lands in here. */
	setenv("XDG_CACHE_HOME", xdg, 1);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *argv[MAX_ARGS + 4], *err = NULL;
	const char *fields[MAX_ARGS + 1];
	size_t nfields = 0, errlen = 0;
	struct tcfs_opts o;
	int argc = 0, rc;

	FZ_CHECK(copy != NULL, "out of memory");
	if (size > 4096) { /* bounds struct ref's arrays */
		free(copy);
		return 0;
	}
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (size_t i = 0; i <= size && nfields <= MAX_ARGS;) {
		fields[nfields++] = copy + i;
		i += strlen(copy + i) + 1;
	}
	argv[argc++] = (char *)"tiercachefs";
	if (fields[0][0]) {
		write_file(S.conf, fields[0], strlen(fields[0]));
		argv[argc++] = (char *)"-o";
		argv[argc++] = S.confopt;
	}
	for (size_t i = 1; i < nfields; i++) {
		const char *a = fields[i];

		if (names_config(a))
			goto out; /* could read any file: not ours to test */
		if (!strcmp(a, "@M"))
			a = S.mnt;
		else if (!strcmp(a, "@S"))
			a = S.store;
		argv[argc++] = (char *)a;
	}
	argv[argc] = NULL;

	rc = parse_captured(argc, argv, &o, &err, &errlen);
	if (getenv("TC_FUZZ_TRACE"))
		fprintf(stderr, "parse: %d %s", rc, rc ? err : "accepted\n");
	if (rc) {
		FZ_CHECK(rc == -1, "tcfs_opts_parse returned %d", rc);
		FZ_CHECK(errlen > 13 && !strncmp(err, "tiercachefs: ", 13),
			 "refused without a message naming us: '%s'", err);
		FZ_CHECK(strchr(err, '\n') == err + errlen - 1,
			 "refused with other than one line: '%s'", err);
	} else {
		FZ_CHECK(errlen == 0, "accepted, but printed '%s'", err);
		if (!o.help && !o.version) {
			struct fuse_args fa = FUSE_ARGS_INIT(0, NULL);

			check_against_ref(&o, argc, argv);
			round_trip(&o);
			FZ_EQ(tcfs_opts_fuse_args(&o, &fa), 0,
			      "tcfs_opts_fuse_args");
			fuse_opt_free_args(&fa);
		}
	}
	tcfs_opts_free(&o);
out:
	free(err);
	free(copy);
	return 0;
}
