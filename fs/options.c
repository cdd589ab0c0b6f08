/* SPDX-License-Identifier: MIT */
/*
 * options.c - the command line of tiercachefs(8), SYNOPSIS, the mount options of tiercachefs(8), Mount options and
 * the config= INI file.
 *
 * We parse argv ourselves instead of with fuse_opt_parse(): options and
 * positional arguments come in any order (mount.fuse3 runs
 * `tiercachefs STORE MOUNTPOINT -o opts`), and every mistake must end in one
 * line naming it ("tiercachefs: ram_size: invalid size '12Q'"). Our options
 * are described once, in tcfs_opt_defs[], and parsed with the engine's own
 * parsers (tc_parse_size() & co.), so the command line, the config file and
 * the xattrs agree on every syntax. Any other -o option passes through to
 * libfuse, except the fstab options that only mount(8) cares about, which
 * are dropped here because libfuse would refuse them.
 *
 * Precedence: the command line wins over the config file, whatever their
 * order; cmdline_set remembers what the command line gave. The file is read
 * by the small parser under "Config file" below.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "tcfs.h"

enum tcfs_opt_kind {
	TCFS_K_PATH,
	TCFS_K_SIZE,
	TCFS_K_COUNT,
	TCFS_K_DURATION,
	TCFS_K_TTL_MODE,
	TCFS_K_SYNC,
	TCFS_K_SCHEMA,
	TCFS_K_CACHE_MODE,
	TCFS_K_SERVERS,
	TCFS_K_REPLICAS,
	TCFS_K_NAMESPACE,
};

struct tcfs_opt_def {
	const char *name;
	enum tcfs_opt_kind kind;
	size_t off;   /* of the field in struct tcfs_opts */
	bool in_file; /* allowed in the config file's [mount] section */
};

#define TCFS_FIELD(f) offsetof(struct tcfs_opts, f)

/* Our mount options (tiercachefs(8), Mount options). Bit i of cmdline_set is entry i. */
static const struct tcfs_opt_def tcfs_opt_defs[] = {
    {"store", TCFS_K_PATH, TCFS_FIELD(store), true},
    {"ram_size", TCFS_K_SIZE, TCFS_FIELD(cfg.ram_size), true},
    {"ram_items", TCFS_K_COUNT, TCFS_FIELD(cfg.ram_items), true},
    {"ram_ttl", TCFS_K_DURATION, TCFS_FIELD(cfg.ram_ttl_ns), true},
    {"max_ram_item", TCFS_K_SIZE, TCFS_FIELD(cfg.max_ram_item), true},
    {"disk_size", TCFS_K_SIZE, TCFS_FIELD(cfg.disk_size), true},
    {"disk_items", TCFS_K_COUNT, TCFS_FIELD(cfg.disk_items), true},
    {"ttl", TCFS_K_DURATION, TCFS_FIELD(cfg.ttl_ns), true},
    {"ttl_mode", TCFS_K_TTL_MODE, TCFS_FIELD(cfg.ttl_mode), true},
    {"schema", TCFS_K_SCHEMA, TCFS_FIELD(schema), true},
    {"sync", TCFS_K_SYNC, TCFS_FIELD(cfg.sync), true},
    {"config", TCFS_K_PATH, TCFS_FIELD(config_file), false},
    {"cache_mode", TCFS_K_CACHE_MODE, TCFS_FIELD(cache_mode), true},
    {"revalidate", TCFS_K_DURATION, TCFS_FIELD(revalidate_ns), true},
    {"shared", TCFS_K_SERVERS, TCFS_FIELD(shared), true},
    {"shared_replicas", TCFS_K_REPLICAS, TCFS_FIELD(cfg.shared_replicas), true},
    {"shared_revalidate", TCFS_K_DURATION,
     TCFS_FIELD(cfg.shared_revalidate_ns), true},
    {"shared_key", TCFS_K_PATH, TCFS_FIELD(shared_key_file), true},
    {"shared_namespace", TCFS_K_NAMESPACE, TCFS_FIELD(shared_namespace),
     true},
};

#define TCFS_N_OPTS (sizeof(tcfs_opt_defs) / sizeof(tcfs_opt_defs[0]))
#define TCFS_OPT_STORE 0

/* fstab options meant for mount(8) or systemd, not for the filesystem:
 * libfuse refuses them, so they are dropped (mount.fuse3 drops some too). */
static const char *const tcfs_dropped_opts[] = {
    "defaults",	  "auto",	"noauto",      "user",		"nouser",
    "users",	  "owner",	"group",       "_netdev",	"nofail",
    "relatime",	  "norelatime", "strictatime", "nostrictatime", "lazytime",
    "nolazytime", "diratime",	"nodiratime",  "silent",	"loud",
};

/* Longest message we print; values in it are user input, cut if longer. */
#define TCFS_ERR_MAX 512

/* shared_replicas= at most (copies of every item: more is waste). */
#define TCFS_REPLICAS_MAX 16

union tcfs_val {
	uint64_t u;
	int64_t i;
	enum tc_ttl_mode mode;
	enum tc_sync sync;
	enum tcfs_cache_mode cache_mode;
	const char *s;
};

static void __attribute__((format(printf, 1, 2)))
tcfs_error(const char *fmt, ...)
{
	va_list ap;

	char msg[4096];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One line, whatever a value echoed in it contains. */
	fprintf(stderr, "%s: ", TCFS_NAME);
	for (const char *p = msg; *p; p++) {
		if (iscntrl((unsigned char)*p))
			fprintf(stderr, "\\x%02x", (unsigned char)*p);
		else
			fputc(*p, stderr);
	}
	fputc('\n', stderr);
}

static int tcfs_opt_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < TCFS_N_OPTS; i++)
		if (strlen(tcfs_opt_defs[i].name) == len &&
		    strncmp(tcfs_opt_defs[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

/* What a failed parse of @p kind is called in messages, and a hint. */
static const char *tcfs_kind_what(enum tcfs_opt_kind kind, int rc,
				  const char **hint)
{
	*hint = "";
	switch (kind) {
	case TCFS_K_PATH:
		return "empty path";
	case TCFS_K_SIZE:
		return rc == -ERANGE ? "size out of range" : "invalid size";
	case TCFS_K_COUNT:
		return rc == -ERANGE ? "number out of range" : "invalid number";
	case TCFS_K_DURATION:
		return rc == -ERANGE ? "duration out of range"
				     : "invalid duration";
	case TCFS_K_TTL_MODE:
		*hint = " (absolute or sliding)";
		return "invalid mode";
	case TCFS_K_SYNC:
		*hint = " (fsync, close or never)";
		return "invalid value";
	case TCFS_K_SCHEMA:
		*hint = " ([A-Za-z0-9_.+-], at most 64)";
		return "invalid schema version";
	case TCFS_K_CACHE_MODE:
		*hint = " (kernel or daemon)";
		return "invalid mode";
	case TCFS_K_SERVERS:
		return "invalid servers";
	case TCFS_K_REPLICAS:
		*hint = " (1 to 16)";
		return "invalid number";
	case TCFS_K_NAMESPACE:
		*hint = " ([A-Za-z0-9_.-], 1 to 32)";
		return "invalid namespace";
	}
	return "invalid value";
}

/*
 * Parse @p val for option @p d into @p v. On error writes the message
 * ("ram_size: invalid size '12Q'") into @p err and returns -EINVAL/-ERANGE.
 */
static int tcfs_opt_check(const struct tcfs_opt_def *d, const char *val,
			  union tcfs_val *v, char *err, size_t errlen)
{
	const char *what, *hint;
	int rc = 0;

	switch (d->kind) {
	case TCFS_K_PATH:
		rc = *val ? 0 : -EINVAL;
		v->s = val;
		break;
	case TCFS_K_SIZE:
	case TCFS_K_COUNT:
		rc = tc_parse_size(val, &v->u);
		break;
	case TCFS_K_DURATION:
		rc = tc_parse_duration(val, &v->i);
		break;
	case TCFS_K_TTL_MODE:
		rc = tc_parse_ttl_mode(val, &v->mode);
		break;
	case TCFS_K_SYNC:
		rc = tc_parse_sync(val, &v->sync);
		break;
	case TCFS_K_SCHEMA:
		rc = tc_schema_valid(val, strlen(val)) ? 0 : -EINVAL;
		v->s = val;
		break;
	case TCFS_K_CACHE_MODE:
		rc = 0;
		if (strcmp(val, "kernel") == 0)
			v->cache_mode = TCFS_CACHE_KERNEL;
		else if (strcmp(val, "daemon") == 0)
			v->cache_mode = TCFS_CACHE_DAEMON;
		else
			rc = -EINVAL;
		break;
	case TCFS_K_SERVERS: {
		char why[TCFS_ERR_MAX / 2];

		v->s = val;
		if (tc_shared_check_servers(val, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s: %s", d->name, why);
			return -EINVAL;
		}
		break;
	}
	case TCFS_K_REPLICAS:
		rc = tc_parse_size(val, &v->u);
		if (rc == 0 && (v->u < 1 || v->u > TCFS_REPLICAS_MAX))
			rc = -EINVAL;
		break;
	case TCFS_K_NAMESPACE:
		v->s = val;
		rc = *val && strlen(val) <= 32 &&
			     strspn(val, "abcdefghijklmnopqrstuvwxyz"
					 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					 "0123456789_.-") == strlen(val)
			 ? 0
			 : -EINVAL;
		break;
	}
	if (rc < 0) {
		what = tcfs_kind_what(d->kind, rc, &hint);
		snprintf(err, errlen, "%s: %s '%s'%s", d->name, what, val,
			 hint);
	}
	return rc;
}

/* Store a parsed value into its field. @return 0 or -ENOMEM. */
static int tcfs_opt_assign(struct tcfs_opts *o, const struct tcfs_opt_def *d,
			   const union tcfs_val *v)
{
	void *field = (char *)o + d->off;
	char *dup;

	switch (d->kind) {
	case TCFS_K_PATH:
	case TCFS_K_SCHEMA:
	case TCFS_K_SERVERS:
	case TCFS_K_NAMESPACE:
		dup = strdup(v->s);
		if (!dup)
			return -ENOMEM;
		free(*(char **)field);
		*(char **)field = dup;
		break;
	case TCFS_K_SIZE:
	case TCFS_K_COUNT:
		*(uint64_t *)field = v->u;
		break;
	case TCFS_K_DURATION:
		*(int64_t *)field = v->i;
		break;
	case TCFS_K_TTL_MODE:
		*(enum tc_ttl_mode *)field = v->mode;
		break;
	case TCFS_K_SYNC:
		*(enum tc_sync *)field = v->sync;
		break;
	case TCFS_K_CACHE_MODE:
		*(enum tcfs_cache_mode *)field = v->cache_mode;
		break;
	case TCFS_K_REPLICAS:
		*(unsigned *)field = (unsigned)v->u;
		break;
	}
	if (strncmp(d->name, "shared_", 7) == 0)
		o->shared_extra = d->name; /* needs shared= (checked last) */
	return 0;
}

static bool tcfs_opt_dropped(const char *opt)
{
	size_t i;

	if (strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0)
		return true;
	for (i = 0; i < sizeof(tcfs_dropped_opts) / sizeof(char *); i++)
		if (strcmp(opt, tcfs_dropped_opts[i]) == 0)
			return true;
	return false;
}

static int tcfs_opt_passthrough(struct tcfs_opts *o, const char *opt)
{
	char **v;

	if (tcfs_opt_dropped(opt))
		return 0;
	v = realloc(o->fuse_opts, (o->n_fuse_opts + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	o->fuse_opts = v;
	v[o->n_fuse_opts] = strdup(opt);
	if (!v[o->n_fuse_opts])
		return -ENOMEM;
	o->n_fuse_opts++;
	return 0;
}

/* One -o element, unescaped. Prints the error. @return 0 or -1. */
static int tcfs_opt_cmdline(struct tcfs_opts *o, const char *opt)
{
	const char *eq = strchr(opt, '=');
	size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
	int idx = tcfs_opt_find(opt, klen);
	char err[TCFS_ERR_MAX];
	union tcfs_val v;

	if (strcmp(opt, "debug") == 0) {
		o->debug = o->foreground = true;
		return 0;
	}
	/* A bare "sync" is the kernel's synchronous-writes mount flag. */
	if (idx < 0 || (!eq && strcmp(opt, "sync") == 0)) {
		if (tcfs_opt_passthrough(o, opt) == 0)
			return 0;
		tcfs_error("out of memory");
		return -1;
	}
	if (!eq) {
		tcfs_error("%s: missing value (%s=...)", opt, opt);
		return -1;
	}
	if (tcfs_opt_check(&tcfs_opt_defs[idx], eq + 1, &v, err, sizeof(err)) <
	    0) {
		tcfs_error("%s", err);
		return -1;
	}
	if (tcfs_opt_assign(o, &tcfs_opt_defs[idx], &v) < 0) {
		tcfs_error("out of memory");
		return -1;
	}
	o->cmdline_set |= 1u << idx;
	return 0;
}

/* Split an -o list at unescaped commas ("\," is a comma inside a value, as
 * in libfuse) and handle each element. @return 0 or -1. */
static int tcfs_opt_list(struct tcfs_opts *o, const char *list)
{
	char *buf = malloc(strlen(list) + 1);
	const char *s = list;
	int rc = 0;
	size_t n;

	if (!buf) {
		tcfs_error("out of memory");
		return -1;
	}
	for (;;) {
		n = 0;
		while (*s && *s != ',') {
			if (*s == '\\' && s[1])
				s++;
			buf[n++] = *s++;
		}
		buf[n] = '\0';
		if (n > 0)
			rc = tcfs_opt_cmdline(o, buf);
		if (rc < 0 || !*s)
			break;
		s++;
	}
	free(buf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Config file                                                        */
/* ------------------------------------------------------------------ */

/*
 * The config file is read by a parser of our own, not libinih: Debian's
 * inih reads lines into a fixed 200-byte buffer (a 300-byte store path did
 * not fit), cuts a line at an embedded NUL without saying so, and reports a
 * bad section header only at its first key, on the wrong line. Ours reads
 * whole lines with getline(), so every error names its own line.
 *
 * Syntax: blank lines; comments starting with ';' or '#'; "[mount]" or
 * "[tag NAME]"; "name = value" (spaces around both are trimmed).
 */
struct tcfs_ini {
	struct tcfs_opts *o;
	unsigned int line;     /* current line number */
	unsigned int err_line; /* line of the first error, or 0 */
	char err[TCFS_ERR_MAX];
	char tag[TCFS_ERR_MAX]; /* [tag NAME]: NAME; "" in [mount] */
	bool in_section;
};

static int __attribute__((format(printf, 2, 3)))
tcfs_ini_fail(struct tcfs_ini *c, const char *fmt, ...)
{
	va_list ap;

	if (c->err_line)
		return -1;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	c->err_line = c->line;
	return -1;
}

/* Trim spaces and tabs at both ends of @p s, in place. */
static char *tcfs_trim(char *s)
{
	char *end;

	s += strspn(s, " \t");
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
			   end[-1] == '\r' || end[-1] == '\n'))
		*--end = '\0';
	return s;
}

/* A "[...]" line: [mount] or [tag NAME]. */
static int tcfs_ini_section(struct tcfs_ini *c, char *s)
{
	char *end = strrchr(s, ']');
	char *name;

	if (!end || end[1])
		return tcfs_ini_fail(c, "syntax error (expected [section] "
					"or name=value)");
	*end = '\0';
	name = tcfs_trim(s + 1);
	c->in_section = true;
	c->tag[0] = '\0';
	if (strcmp(name, "mount") == 0)
		return 0;
	if (strncmp(name, "tag", 3) == 0 &&
	    (name[3] == ' ' || name[3] == '\t' || name[3] == '\0')) {
		char *tag = tcfs_trim(name + 3);
		if (!tc_tag_valid(tag, strlen(tag)))
			return tcfs_ini_fail(c, "invalid tag name in [%s]",
					     name);
		snprintf(c->tag, sizeof(c->tag), "%s", tag);
		return 0;
	}
	return tcfs_ini_fail(c, "unknown section [%s]", name);
}

static int tcfs_ini_mount(struct tcfs_ini *c, const char *name,
			  const char *value)
{
	int idx = tcfs_opt_find(name, strlen(name));
	const struct tcfs_opt_def *d;
	union tcfs_val v;

	if (idx < 0 || !tcfs_opt_defs[idx].in_file)
		return tcfs_ini_fail(c, "unknown option '%s'", name);
	d = &tcfs_opt_defs[idx];
	if (tcfs_opt_check(d, value, &v, c->err, sizeof(c->err)) < 0) {
		c->err_line = c->line;
		return -1;
	}
	if (c->o->cmdline_set & (1u << idx))
		return 0; /* the command line wins */
	if (tcfs_opt_assign(c->o, d, &v) < 0)
		return tcfs_ini_fail(c, "out of memory");
	return 0;
}

/* The rule for @p tag, created (both durations unset) if new. */
static struct tc_tag_rule *tcfs_rule_get(struct tcfs_opts *o, const char *tag)
{
	struct tc_tag_rule *r;
	size_t i;

	for (i = 0; i < o->n_rules; i++)
		if (strcmp(o->rules[i].tag, tag) == 0)
			return &o->rules[i];
	r = realloc(o->rules, (o->n_rules + 1) * sizeof(*r));
	if (!r)
		return NULL;
	o->rules = r;
	r = &o->rules[o->n_rules];
	r->tag = strdup(tag);
	if (!r->tag)
		return NULL;
	r->ttl_ns = -1;
	r->ram_ttl_ns = -1;
	o->n_rules++;
	return r;
}

static int tcfs_ini_tag(struct tcfs_ini *c, const char *tag, const char *name,
			const char *value)
{
	struct tc_tag_rule *r;
	const char *hint;
	int64_t ns;
	int rc;

	if (!tc_tag_valid(tag, strlen(tag)))
		return tcfs_ini_fail(c, "invalid tag name '%s'", tag);
	if (strcmp(name, "ttl") != 0 && strcmp(name, "ram_ttl") != 0)
		return tcfs_ini_fail(c, "unknown option '%s' in [tag %s]", name,
				     tag);
	rc = tc_parse_duration(value, &ns);
	if (rc < 0)
		return tcfs_ini_fail(c, "%s: %s '%s'", name,
				     tcfs_kind_what(TCFS_K_DURATION, rc, &hint),
				     value);
	r = tcfs_rule_get(c->o, tag);
	if (!r)
		return tcfs_ini_fail(c, "out of memory");
	if (strcmp(name, "ttl") == 0)
		r->ttl_ns = ns;
	else
		r->ram_ttl_ns = ns;
	return 0;
}

/* One line of the file. */
static int tcfs_ini_line(struct tcfs_ini *c, char *line)
{
	char *s = tcfs_trim(line), *eq, *name, *value;

	if (!*s || *s == ';' || *s == '#')
		return 0;
	if (*s == '[')
		return tcfs_ini_section(c, s);
	eq = strchr(s, '=');
	if (!eq)
		return tcfs_ini_fail(c, "syntax error (expected [section] or "
					"name=value)");
	*eq = '\0';
	name = tcfs_trim(s);
	value = tcfs_trim(eq + 1);
	if (!*name)
		return tcfs_ini_fail(c, "syntax error (no option name)");
	if (!c->in_section)
		return tcfs_ini_fail(c, "option '%s' outside a section", name);
	if (c->tag[0])
		return tcfs_ini_tag(c, c->tag, name, value);
	return tcfs_ini_mount(c, name, value);
}

/* Read o->config_file. Prints the error. @return 0 or -1. */
static int tcfs_config_load(struct tcfs_opts *o)
{
	struct tcfs_ini c = {.o = o};
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	struct stat st;
	FILE *f;

	f = fopen(o->config_file, "r");
	if (!f) {
		tcfs_error("config: %s: %s", o->config_file, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
		tcfs_error("config: %s: not a regular file", o->config_file);
		fclose(f);
		return -1;
	}
	while (!c.err_line && (len = getline(&line, &cap, f)) >= 0) {
		c.line++;
		if (memchr(line, '\0', (size_t)len)) {
			tcfs_ini_fail(&c, "NUL byte in line");
			break;
		}
		(void)tcfs_ini_line(&c, line);
	}
	if (!c.err_line && ferror(f))
		tcfs_error("config: %s: %s", o->config_file, strerror(errno));
	free(line);
	fclose(f);
	if (c.err_line) {
		tcfs_error("%s:%u: %s", o->config_file, c.err_line, c.err);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Paths                                                              */
/* ------------------------------------------------------------------ */

/* $XDG_CACHE_HOME/tiercachefs, else $HOME/.cache/tiercachefs. The parent is
 * created (0700) when missing, as the XDG spec asks. */
static char *tcfs_default_store(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	struct passwd *pw;
	char *parent = NULL, *store = NULL;

	if (xdg && xdg[0] == '/') {
		parent = strdup(xdg);
	} else {
		if (!home || !*home) {
			pw = getpwuid(getuid());
			home = pw ? pw->pw_dir : "/";
		}
		if (asprintf(&parent, "%s/.cache", home) < 0)
			parent = NULL;
	}
	if (!parent)
		return NULL;
	/* On failure tc_engine_open() reports the real problem. */
	(void)mkdir(parent, 0700);
	if (asprintf(&store, "%s/%s", parent, TCFS_NAME) < 0)
		store = NULL;
	free(parent);
	return store;
}

/* Make @p *path absolute against the working directory: the daemon changes
 * to / when it detaches. @return 0 or -1 (printed). */
static int tcfs_absolute(char **path)
{
	char cwd[PATH_MAX];
	char *abs;

	if ((*path)[0] == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd))) {
		tcfs_error("cannot get the working directory: %s",
			   strerror(errno));
		return -1;
	}
	if (asprintf(&abs, "%s/%s", cwd, *path) < 0) {
		tcfs_error("out of memory");
		return -1;
	}
	free(*path);
	*path = abs;
	return 0;
}

/* Resolve the mountpoint; /dev/fd/N (mount.fuse3's drop_privileges passes
 * an open /dev/fuse descriptor so) is left to libfuse. */
static int tcfs_mountpoint(struct tcfs_opts *o, const char *arg)
{
	struct stat st;

	if (strncmp(arg, "/dev/fd/", 8) == 0) {
		o->mountpoint = strdup(arg);
	} else {
		o->mountpoint = realpath(arg, NULL);
		if (!o->mountpoint && errno == ENOTCONN) {
			tcfs_error("%s: a FUSE mount whose daemon is gone "
				   "(Transport endpoint is not connected); "
				   "clear it with 'fusermount3 -u %s' and "
				   "mount again",
				   arg, arg);
			return -1;
		}
		if (!o->mountpoint && errno != ENOMEM) {
			tcfs_error("%s: %s", arg, strerror(errno));
			return -1;
		}
	}
	if (!o->mountpoint) {
		tcfs_error("out of memory");
		return -1;
	}
	/* libfuse would mount on a file too, with a root of the wrong type */
	if (strncmp(arg, "/dev/fd/", 8) != 0 && stat(o->mountpoint, &st) < 0 &&
	    errno == ENOTCONN) {
		tcfs_error("%s: a FUSE mount whose daemon is gone (Transport "
			   "endpoint is not connected); clear it with "
			   "'fusermount3 -u %s' and mount again",
			   arg, arg);
		return -1;
	}
	if (strncmp(arg, "/dev/fd/", 8) != 0 &&
	    (stat(o->mountpoint, &st) < 0 || !S_ISDIR(st.st_mode))) {
		tcfs_error("%s: not a directory", arg);
		return -1;
	}
	return 0;
}

/* Assign the positional arguments: [STORE] MOUNTPOINT, or STORE with
 * --check. The positional STORE counts as given on the command line. */
static int tcfs_positionals(struct tcfs_opts *o, char **pos, int npos)
{
	const char *store = NULL, *mnt = NULL;

	if (o->check) {
		if (npos > 1) {
			tcfs_error("too many arguments: '%s' (usage: "
				   "tiercachefs --check [--fix] STORE)",
				   pos[1]);
			return -1;
		}
		store = npos ? pos[0] : NULL;
	} else {
		if (npos == 0) {
			tcfs_error("missing mountpoint (see --help)");
			return -1;
		}
		store = npos == 2 ? pos[0] : NULL;
		mnt = pos[npos - 1];
	}
	if (store && o->store && strcmp(store, o->store) != 0) {
		tcfs_error("two stores given: '%s' and store=%s", store,
			   o->store);
		return -1;
	}
	if (store && !o->store) {
		o->store = strdup(store);
		if (!o->store) {
			tcfs_error("out of memory");
			return -1;
		}
	}
	if (o->store)
		o->cmdline_set |= 1u << TCFS_OPT_STORE;
	return mnt ? tcfs_mountpoint(o, mnt) : 0;
}

/* The store after the config file: default, absolute. */
static int tcfs_store_finish(struct tcfs_opts *o)
{
	if (!o->store) {
		o->store = tcfs_default_store();
		if (!o->store) {
			tcfs_error("out of memory");
			return -1;
		}
	}
	return tcfs_absolute(&o->store);
}

/* The shared tier's options after the config file: shared_* need
 * shared=, the key file is read now (so a bad one is one line before
 * anything starts). @return 0 or -1 (printed). */
static int tcfs_shared_finish(struct tcfs_opts *o)
{
	char why[TCFS_ERR_MAX];

	if (!o->shared) {
		if (!o->shared_extra)
			return 0;
		tcfs_error("%s: needs shared=HOST:PORT[,HOST:PORT...]",
			   o->shared_extra);
		return -1;
	}
	if (o->shared_key_file &&
	    tc_shared_load_key(o->shared_key_file, &o->shared_key,
			       &o->shared_key_len, why, sizeof(why)) < 0) {
		tcfs_error("shared_key: %s", why);
		return -1;
	}
	o->cfg.shared_servers = o->shared;
	o->cfg.shared_key = o->shared_key;
	o->cfg.shared_key_len = o->shared_key_len;
	o->cfg.shared_namespace = o->shared_namespace;
	return 0;
}

/* ------------------------------------------------------------------ */
/* argv                                                               */
/* ------------------------------------------------------------------ */

/* Short flags, possibly combined ("-fd"). @return 0, or -1 if @p a holds a
 * letter we do not know. */
static int tcfs_short_flags(struct tcfs_opts *o, const char *a)
{
	const char *p;

	if (a[strspn(a + 1, "fdshV") + 1] != '\0')
		return -1;
	for (p = a + 1; *p; p++) {
		if (*p == 'f')
			o->foreground = true;
		else if (*p == 'd')
			o->debug = o->foreground = true;
		else if (*p == 's')
			o->single_thread = true;
		else if (*p == 'h')
			o->help = true;
		else
			o->version = true;
	}
	return 0;
}

/* One argument starting with '-'. @p i advances past an -o argument. */
static int tcfs_arg_option(struct tcfs_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];

	if (strcmp(a, "-o") == 0) {
		if (++*i >= argc) {
			tcfs_error("-o: missing argument");
			return -1;
		}
		return tcfs_opt_list(o, argv[*i]);
	}
	if (strncmp(a, "-o", 2) == 0)
		return tcfs_opt_list(o, a + 2);
	if (strcmp(a, "--help") == 0)
		o->help = true;
	else if (strcmp(a, "--version") == 0)
		o->version = true;
	else if (strcmp(a, "--check") == 0)
		o->check = true;
	else if (strcmp(a, "--fix") == 0)
		o->fix = true;
	else if (strcmp(a, "--debug") == 0)
		o->debug = o->foreground = true;
	else if (strcmp(a, "--foreground") == 0)
		o->foreground = true;
	else if (a[1] == '-' || tcfs_short_flags(o, a) < 0) {
		tcfs_error("unknown option '%s' (see --help)", a);
		return -1;
	}
	return 0;
}

int tcfs_opts_parse(int argc, char **argv, struct tcfs_opts *o)
{
	char *pos[2];
	int npos = 0, i;
	bool dashdash = false;

	memset(o, 0, sizeof(*o));
	tc_config_init(&o->cfg);
	o->cache_mode = TCFS_CACHE_DEFAULT;
	o->revalidate_ns = TCFS_REVALIDATE_DEFAULT_NS;
	for (i = 1; i < argc; i++) {
		if (!dashdash && strcmp(argv[i], "--") == 0) {
			dashdash = true;
		} else if (!dashdash && argv[i][0] == '-' && argv[i][1]) {
			if (tcfs_arg_option(o, argc, argv, &i) < 0)
				return -1;
		} else if (npos < 2) {
			pos[npos++] = argv[i];
		} else {
			tcfs_error("too many arguments: '%s' (see --help)",
				   argv[i]);
			return -1;
		}
	}
	if (o->help || o->version)
		return 0;
	if (o->fix && !o->check) {
		tcfs_error("--fix goes with --check");
		return -1;
	}
	if (tcfs_positionals(o, pos, npos) < 0)
		return -1;
	if (o->config_file && tcfs_config_load(o) < 0)
		return -1;
	if (tcfs_store_finish(o) < 0 || tcfs_shared_finish(o) < 0)
		return -1;
	o->cfg.store = o->store;
	o->cfg.schema = o->schema;
	o->cfg.tag_rules = o->rules;
	o->cfg.n_tag_rules = o->n_rules;
	/* The kernel caches pages and sends writes without handles: the
	 * engine publishes them on its own (tiercachefs(8), cache_mode=). */
	o->cfg.handleless_writes = o->cache_mode == TCFS_CACHE_KERNEL;
	if (o->revalidate_ns > 0)
		o->cfg.quiet_ns = o->revalidate_ns;
	return 0;
}

void tcfs_opts_free(struct tcfs_opts *o)
{
	size_t i;

	for (i = 0; i < o->n_rules; i++)
		free(o->rules[i].tag);
	free(o->rules);
	for (i = 0; i < o->n_fuse_opts; i++)
		free(o->fuse_opts[i]);
	free(o->fuse_opts);
	free(o->store);
	free(o->mountpoint);
	free(o->schema);
	free(o->config_file);
	free(o->shared);
	free(o->shared_key_file);
	free(o->shared_namespace);
	tc_shared_key_free(o->shared_key, o->shared_key_len);
	memset(o, 0, sizeof(*o));
}

/* True when the pass-through options already set @p key ("fsname="). */
static bool tcfs_has_opt(const struct tcfs_opts *o, const char *key)
{
	size_t i;

	for (i = 0; i < o->n_fuse_opts; i++)
		if (strncmp(o->fuse_opts[i], key, strlen(key)) == 0)
			return true;
	return false;
}

int tcfs_opts_fuse_args(const struct tcfs_opts *o, struct fuse_args *args)
{
	char *opts = NULL, *fsname = NULL;
	int rc = -ENOMEM;
	size_t i;

	if (fuse_opt_add_arg(args, TCFS_NAME) < 0 ||
	    (o->debug && fuse_opt_add_arg(args, "-d") < 0))
		goto out;
	/* Mode bits are enforced by the kernel: the engine stores them but
	 * does no permission checks of its own. */
	if (fuse_opt_add_opt(&opts, "default_permissions") < 0)
		goto out;
	if (!tcfs_has_opt(o, "fsname=")) {
		if (asprintf(&fsname, "fsname=%s", o->store) < 0) {
			fsname = NULL;
			goto out;
		}
		if (fuse_opt_add_opt_escaped(&opts, fsname) < 0)
			goto out;
	}
	if (!tcfs_has_opt(o, "subtype=") &&
	    fuse_opt_add_opt(&opts, "subtype=" TCFS_NAME) < 0)
		goto out;
	for (i = 0; i < o->n_fuse_opts; i++)
		if (fuse_opt_add_opt_escaped(&opts, o->fuse_opts[i]) < 0)
			goto out;
	if (fuse_opt_add_arg(args, "-o") < 0 ||
	    fuse_opt_add_arg(args, opts) < 0)
		goto out;
	rc = 0;
out:
	free(fsname);
	free(opts);
	return rc;
}

/* clang-format off */
void tcfs_opts_usage(FILE *out)
{
	fprintf(out,
"usage: tiercachefs [-f] [-d] [-s] [-o OPT[,OPT...]] [STORE] MOUNTPOINT\n"
"       tiercachefs --check [--fix] STORE\n"
"       tiercachefs --help | --version\n"
"\n"
"A filesystem that is a cache: files are keys, contents are values, kept\n"
"in RAM and in a content-addressed store on disk.\n"
"\n"
"  -f                 stay in the foreground\n"
"  -d                 debug output (implies -f)\n"
"  -s                 single-threaded\n"
"  -o OPT[,OPT...]    mount options (below); others go to FUSE\n"
"  --check            verify a store that is not mounted; exit 0 when\n"
"                     sound, 1 when problems were found, 2 on failure\n"
"  --fix              with --check: repair what was found\n"
"  -h, --help         print this help\n"
"  -V, --version      print the version\n"
"\n"
"Mount options:\n"
"  store=DIR          store directory (default $XDG_CACHE_HOME/tiercachefs,\n"
"                     else ~/.cache/tiercachefs)\n"
"  ram_size=SIZE      RAM tier byte limit (256M)\n"
"  ram_items=N        RAM tier item limit (none)\n"
"  ram_ttl=DUR        an item not read for this long leaves RAM (1h)\n"
"  max_ram_item=SIZE  larger items are never held in RAM (16M)\n"
"  disk_size=SIZE     disk tier limit, logical bytes (10G)\n"
"  disk_items=N       disk tier item limit (none)\n"
"  ttl=DUR            default lifetime of an entry (none)\n"
"  ttl_mode=MODE      absolute or sliding (absolute)\n"
"  schema=VER         expected schema version at the root (none)\n"
"  sync=WHEN          fsync, close or never (fsync)\n"
"  cache_mode=MODE    kernel (the kernel's caches serve repeat reads and\n"
"                     stats) or daemon (every open reaches the daemon);\n"
"                     default " TCFS_CACHE_DEFAULT_NAME "\n"
"  revalidate=DUR     cache_mode=kernel: how long the kernel trusts an\n"
"                     entry before asking again (1s)\n"
"  shared=HOST:PORT[,HOST:PORT...]\n"
"                     memcached servers of a shared tier: mounts with the\n"
"                     same servers (and key) share what they publish\n"
"  shared_replicas=N  copies of each item on distinct servers (1)\n"
"  shared_revalidate=DUR  how long what the shared tier said is trusted\n"
"                     before it is asked again (1s)\n"
"  shared_key=FILE    secret (32 to 4096 bytes, mode 0600) that\n"
"                     authenticates every shared record\n"
"  shared_namespace=NAME  keys' namespace on the servers (derived from\n"
"                     the key, or \"pub\")\n"
"  config=FILE        INI file: [mount] takes these options, [tag NAME]\n"
"                     takes ttl= and ram_ttl=; the command line wins\n"
"\n"
"Sizes take K, M, G, T (powers of 1024); durations s, m, h, d (a bare\n"
"number is seconds); 0 or none means no limit. FUSE options such as\n"
"allow_other or auto_unmount pass through; default_permissions is on.\n"
"See tiercachefs(8).\n");
}
/* clang-format on */
