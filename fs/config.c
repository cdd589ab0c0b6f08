/* SPDX-License-Identifier: MIT */
/*
 * config.c - the config= INI file of tiercachefs(8), FILES: [mount] takes
 * the mount options (checked and stored by optdefs.c), [tag NAME] the tag
 * rules. Called by options.c after the command line, which wins.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tcfs.h"

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
int tcfs_config_load(struct tcfs_opts *o)
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

