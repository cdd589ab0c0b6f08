/* SPDX-License-Identifier: MIT */
/*
 * optdefs.c - our mount options, described once: their names, kinds and
 * fields (tcfs_opt_defs[]), and how a value is checked and stored. The
 * command line (options.c) and the config file (config.c) both go through
 * here, with the engine's own parsers (tc_parse_size() & co.), so they and
 * the xattrs agree on every syntax, and every mistake is one line naming
 * it ("tiercachefs: ram_size: invalid size '12Q'").
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcfs.h"

/* shared_replicas= at most (copies of every item: more is waste). */
#define TCFS_REPLICAS_MAX 16

/* Our mount options (tiercachefs(8), Mount options). Bit i of cmdline_set is entry i. */
const struct tcfs_opt_def tcfs_opt_defs[] = {
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


const size_t tcfs_n_opts = sizeof(tcfs_opt_defs) / sizeof(tcfs_opt_defs[0]);

void tcfs_error(const char *fmt, ...)
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

int tcfs_opt_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < tcfs_n_opts; i++)
		if (strlen(tcfs_opt_defs[i].name) == len &&
		    strncmp(tcfs_opt_defs[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

/* What a failed parse of @p kind is called in messages, and a hint. */
const char *tcfs_kind_what(enum tcfs_opt_kind kind, int rc,
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
int tcfs_opt_check(const struct tcfs_opt_def *d, const char *val,
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
int tcfs_opt_assign(struct tcfs_opts *o, const struct tcfs_opt_def *d,
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

