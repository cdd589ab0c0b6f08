/* SPDX-License-Identifier: MIT */
/*
 * options.c - the command line of tiercachefs(8), SYNOPSIS: flags, -o
 * lists, the positional store and mountpoint, then the config= file
 * (config.c), defaults and paths, and the shared tier's key file.
 *
 * We parse argv ourselves instead of with fuse_opt_parse(): options and
 * positional arguments come in any order (mount.fuse3 runs
 * `tiercachefs STORE MOUNTPOINT -o opts`), and every mistake must end in one
 * line naming it ("tiercachefs: ram_size: invalid size '12Q'"). Our options
 * are described once, in optdefs.c. Any other -o option passes through to
 * libfuse, except the fstab options that only mount(8) cares about, which
 * are dropped here because libfuse would refuse them.
 *
 * Precedence: the command line wins over the config file, whatever their
 * order; cmdline_set remembers what the command line gave.
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

/* fstab options meant for mount(8) or systemd, not for the filesystem:
 * libfuse refuses them, so they are dropped (mount.fuse3 drops some too). */
static const char *const tcfs_dropped_opts[] = {
    "defaults",	  "auto",	"noauto",      "user",		"nouser",
    "users",	  "owner",	"group",       "_netdev",	"nofail",
    "relatime",	  "norelatime", "strictatime", "nostrictatime", "lazytime",
    "nolazytime", "diratime",	"nodiratime",  "silent",	"loud",
};

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

/* True when the kernel must check permissions (default_permissions):
 * whenever a process that is not root can reach the mount, that is with
 * allow_other, or when the mounter is not root (its own mode bits bind
 * it), or when asked for. FUSE admits no other user to a mount by root
 * without allow_other, and root passes every check but exec, which the
 * kernel makes without default_permissions too (and access(2) asks the
 * daemon, tcfs_access). Leaving the checks out there spares a round
 * trip per create, unlink and rename: each changes its directory, and
 * the next check would ask for the directory's attributes again. */
static bool tcfs_opts_kernel_checks(const struct tcfs_opts *o)
{
	return getuid() != 0 || tcfs_has_opt(o, "allow_other") ||
	       tcfs_has_opt(o, "default_permissions");
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
	if (tcfs_opts_kernel_checks(o) &&
	    !tcfs_has_opt(o, "default_permissions") &&
	    fuse_opt_add_opt(&opts, "default_permissions") < 0)
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
"allow_other or auto_unmount pass through; default_permissions is on\n"
"unless root mounts without allow_other.\n"
"See tiercachefs(8).\n");
}
/* clang-format on */
