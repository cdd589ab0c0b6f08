/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the shared tier's client (engine/shared*.c) against real
 * memcached servers the test starts itself: three on free loopback ports,
 * started by the group setup, each waited for until it accepts
 * connections, and killed by PID in the group teardown, at exit, and from
 * a fatal signal, so no run leaves one behind.
 *
 * Two (or three) tc_shared instances on the same servers stand for mounts.
 * Each test works in its own namespace so generations and events of one
 * test never reach another. Time that matters to the module (revalidation,
 * the event log's grace) passes through an injected clock; waits for the
 * push thread use tc_shared_drain(), waits for servers a deadline.
 *
 * The tests know the key scheme and the envelope (they write garbage and
 * move records with a raw libmemcached client): that is what they test.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libmemcached/memcached.h>
#include <xxhash.h>

#include "shared_i.h"

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define EPOCH_NS (INT64_C(1700000000) * SEC)
#define NSERVERS 3

/* ------------------------------------------------------------------ */
/* Servers                                                            */
/* ------------------------------------------------------------------ */

static pid_t pids[NSERVERS];      /* 0: not running */
static unsigned ports[NSERVERS];  /* ascending */
static char servers[128];         /* "127.0.0.1:P,..." */

static void kill_all_now(void)
{
	for (int i = 0; i < NSERVERS; i++) {
		if (pids[i] > 0) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], NULL, 0);
			pids[i] = 0;
		}
	}
}

/* Fatal signal: kill our servers (kill() is async-signal-safe), then die
 * of the signal as we would have. */
static void on_fatal(int sig)
{
	for (int i = 0; i < NSERVERS; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static void pause_ms(int ms)
{
	struct timespec ts = { 0, ms * MS };

	nanosleep(&ts, NULL);
}

static unsigned free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned port = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool accepts(unsigned port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Start server @i on ports[i]; wait (5 s at most) until it accepts.
 * False if it exited or never listened (the port was taken). */
static bool start_server(int i)
{
	char port[16];
	int64_t deadline = mono() + 5 * SEC;
	pid_t pid;

	snprintf(port, sizeof(port), "%u", ports[i]);
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 1);
		dup2(null, 2);
		if (geteuid() == 0)
			execlp("memcached", "memcached", "-u", "nobody", "-l",
			       "127.0.0.1", "-p", port, "-U", "0", "-m", "64",
			       (char *)NULL);
		else
			execlp("memcached", "memcached", "-l", "127.0.0.1",
			       "-p", port, "-U", "0", "-m", "64", (char *)NULL);
		_exit(127);
	}
	pids[i] = pid;
	while (mono() < deadline) {
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			pids[i] = 0;
			return false;
		}
		if (accepts(ports[i]))
			return true;
		pause_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	pids[i] = 0;
	return false;
}

static void stop_server(int i)
{
	if (pids[i] > 0) {
		kill(pids[i], SIGKILL);
		waitpid(pids[i], NULL, 0);
		pids[i] = 0;
	}
}

static int cmp_uint(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return (x > y) - (x < y);
}

static int group_setup(void **state)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGABRT, SIGSEGV,
				    SIGBUS, SIGFPE, SIGHUP };

	atexit(kill_all_now);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); i++)
		signal(sigs[i], on_fatal);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < NSERVERS; i++) {
		int tries = 0;

		do {
			ports[i] = free_port();
		} while (ports[i] && !start_server(i) && ++tries < 5);
		if (!pids[i]) {
			fprintf(stderr, "cannot start memcached\n");
			kill_all_now();
			return -1;
		}
	}
	/* every mount sorts its list; so do we, to write where it reads */
	{
		pid_t p[NSERVERS];
		unsigned sorted[NSERVERS];

		memcpy(sorted, ports, sizeof(sorted));
		qsort(sorted, NSERVERS, sizeof(*sorted), cmp_uint);
		for (int i = 0; i < NSERVERS; i++)
			for (int j = 0; j < NSERVERS; j++)
				if (ports[j] == sorted[i])
					p[i] = pids[j];
		memcpy(ports, sorted, sizeof(ports));
		memcpy(pids, p, sizeof(pids));
	}
	snprintf(servers, sizeof(servers), "127.0.0.1:%u,127.0.0.1:%u,127.0.0.1:%u",
		 ports[0], ports[1], ports[2]);
	(void)state;
	return 0;
}

static int group_teardown(void **state)
{
	kill_all_now();
	(void)state;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Mounts                                                             */
/* ------------------------------------------------------------------ */

static int64_t fake_now = EPOCH_NS;

static int64_t test_clock(void *ctx)
{
	(void)ctx;
	return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

static void advance(int64_t ns)
{
	__atomic_add_fetch(&fake_now, ns, __ATOMIC_RELAXED);
}

static void test_log(void *ctx, int level, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void test_log(void *ctx, int level, const char *fmt, va_list ap)
{
	fprintf(stderr, "[%s] shared[%d]: ", (const char *)ctx, level);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

struct mopt {
	const char *ns;
	const uint8_t *key;
	size_t key_len;
	unsigned replicas;
	size_t queue;
	const char *label;
};

static struct tc_shared *mount_opt(const struct mopt *o)
{
	struct tc_shared_config cfg;
	struct tc_shared *sh = NULL;

	tc_shared_config_init(&cfg);
	cfg.servers = servers;
	cfg.name_space = o->ns;
	cfg.key = o->key;
	cfg.key_len = o->key_len;
	cfg.replicas = o->replicas ? o->replicas : 1;
	cfg.queue_max_bytes = o->queue;
	cfg.revalidate_ns = SEC;
	cfg.clock = test_clock;
	cfg.log_fn = test_log;
	cfg.log_ctx = (void *)(o->label ? o->label : "m");
	cfg.log_level = getenv("TC_SHARED_DEBUG") ? TC_LOG_DEBUG : TC_LOG_ERR;
	assert_int_equal(tc_shared_open(&cfg, &sh), 0);
	return sh;
}

static struct tc_shared *mount(const char *ns)
{
	struct mopt o = { .ns = ns };

	return mount_opt(&o);
}

static void drain(struct tc_shared *sh)
{
	assert_int_equal(tc_shared_drain(sh, 10 * SEC), 0);
}

static struct tc_shared_stats stats(struct tc_shared *sh)
{
	struct tc_shared_stats st;

	tc_shared_stats(sh, &st);
	return st;
}

static void hash_of(const void *buf, size_t len, uint8_t out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(buf, len));
	memcpy(out, c.digest, 16);
}

/* A name record for @path pointing at @data. */
static struct tc_shared_name name_of(const char *path, const void *data,
				     size_t len, const char *tags,
				     const char *schema)
{
	struct tc_shared_name n = {
		.path = (char *)path,
		.has_content = len > 0,
		.size = len,
		.mode = S_IFREG | 0644,
		.uid = 1000,
		.gid = 1000,
		.mtime_ns = fake_now - SEC,
		.tags = (char *)tags,
		.schema = (char *)schema,
		.version_ns = fake_now,
	};

	if (len)
		hash_of(data, len, n.hash);
	return n;
}

static void push_file(struct tc_shared *sh, const char *path,
		      const void *data, size_t len, const char *tags,
		      const char *schema)
{
	struct tc_shared_name n = name_of(path, data, len, tags, schema);
	uint8_t h[16];

	hash_of(data, len, h);
	assert_int_equal(tc_shared_push_content(sh, h, data, len), 0);
	assert_int_equal(tc_shared_push_name(sh, &n), 0);
}

static int get_rc(struct tc_shared *sh, const char *path)
{
	struct tc_shared_name n;
	int rc = tc_shared_get_name(sh, path, &n);

	if (rc == 0)
		tc_shared_name_free(&n);
	return rc;
}

/* @path is visible on @sh with content @data, read back byte-exact. */
static void assert_file(struct tc_shared *sh, const char *path,
			const void *data, size_t len)
{
	struct tc_shared_name n;
	void *buf = malloc(len ? len : 1);
	int rc = tc_shared_get_name(sh, path, &n);

	assert_non_null(buf);
	if (rc)
		fail_msg("get_name(%s): %s", path, strerror(-rc));
	assert_false(n.deleted);
	assert_string_equal(n.path, path);
	assert_int_equal(n.size, len);
	if (len) {
		assert_true(n.has_content);
		assert_int_equal(tc_shared_get_content(sh, n.hash, n.size, buf),
				 0);
		assert_memory_equal(buf, data, len);
	}
	tc_shared_name_free(&n);
	free(buf);
}

static void fill(void *buf, size_t len, unsigned seed)
{
	unsigned char *p = buf;
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

/* A raw client placing keys as the module does (for @replicas copies). */
static memcached_st *raw_client(unsigned replicas)
{
	memcached_st *mc = memcached_create(NULL);

	assert_non_null(mc);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA, 1);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_NUMBER_OF_REPLICAS,
			       replicas - 1);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 200);
	memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 200);
	for (int i = 0; i < NSERVERS; i++)
		memcached_server_add(mc, "127.0.0.1", (in_port_t)ports[i]);
	return mc;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* The memcached key of a path-addressed record ('n' names, 'd' dirs). */
static void path_key(const char *ns, char kind, const char *path,
		     char out[160])
{
	uint8_t h[16];
	char x[33];

	hash_of(path, strlen(path), h);
	hex(h, 16, x);
	snprintf(out, 160, "tc1:%s:%c:%s", ns, kind, x);
}

static void piece_key(const char *ns, const uint8_t *hash, unsigned i,
		      char out[160])
{
	char x[33];

	hex(hash, 16, x);
	snprintf(out, 160, "tc1:%s:c:%s:%x", ns, x, i);
}

static void raw_set(memcached_st *mc, const char *key, const void *v,
		    size_t len)
{
	assert_int_equal(memcached_set(mc, key, strlen(key), v, len, 0, 0),
			 MEMCACHED_SUCCESS);
}

static char *raw_get(memcached_st *mc, const char *key, size_t *len)
{
	memcached_return_t rc;
	uint32_t flags;

	return memcached_get(mc, key, strlen(key), len, &flags, &rc);
}

/* ------------------------------------------------------------------ */
/* Configuration                                                      */
/* ------------------------------------------------------------------ */

static void test_servers_string(void **state)
{
	static const char *const good[] = {
		"127.0.0.1:11211", "a:1,b:2", "mc-1.example.org:65535",
		"[::1]:11211,10.0.0.1:1",
	};
	static const char *const bad[] = {
		"", "host", "host:", ":11211", "host:0", "host:65536",
		"host:12x", "a:1,", ",a:1", "a:1,,b:2", "a b:1", "a:1 ",
		"[::1:11211", "[]:1", "a:1,a:1", "host:+1", "h/x:1",
	};
	char err[200];

	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		assert_int_equal(tc_shared_check_servers(good[i], err,
							 sizeof(err)),
				 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err[0] = '\0';
		if (tc_shared_check_servers(bad[i], err, sizeof(err)) !=
		    -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
		assert_true(err[0] != '\0');
	}
	assert_int_equal(tc_shared_check_servers("x:1,y", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "'y'"));
	(void)state;
}

static void test_key_file(void **state)
{
	char dir[] = "/tmp/tcshared.XXXXXX", path[64];
	uint8_t secret[40], *key = NULL;
	size_t len = 0;
	char err[200];
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key", dir);
	fill(secret, sizeof(secret), 7);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, secret, sizeof(secret)), sizeof(secret));
	close(fd);
	assert_int_equal(tc_shared_load_key(path, &key, &len, err,
					    sizeof(err)),
			 0);
	assert_int_equal(len, sizeof(secret));
	assert_memory_equal(key, secret, len);
	tc_shared_key_free(key, len);
	/* readable by others: refused */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(tc_shared_load_key(path, &key, &len, err,
					    sizeof(err)),
			 -EPERM);
	assert_non_null(strstr(err, "chmod 600"));
	/* too short */
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(truncate(path, 16), 0);
	assert_int_equal(tc_shared_load_key(path, &key, &len, err,
					    sizeof(err)),
			 -EINVAL);
	assert_int_equal(tc_shared_load_key(dir, &key, &len, err,
					    sizeof(err)),
			 -EINVAL);
	unlink(path);
	assert_int_equal(tc_shared_load_key(path, &key, &len, err,
					    sizeof(err)),
			 -ENOENT);
	rmdir(dir);
	(void)state;
}

static void test_bad_config(void **state)
{
	struct tc_shared_config cfg;
	struct tc_shared *sh = NULL;
	uint8_t shortkey[8] = { 0 };

	tc_shared_config_init(&cfg);
	cfg.servers = "nothing-like-a-list";
	assert_int_equal(tc_shared_open(&cfg, &sh), -EINVAL);
	cfg.servers = servers;
	cfg.key = shortkey;
	cfg.key_len = sizeof(shortkey);
	assert_int_equal(tc_shared_open(&cfg, &sh), -EINVAL);
	cfg.key = NULL;
	cfg.name_space = "has space";
	assert_int_equal(tc_shared_open(&cfg, &sh), -EINVAL);
	assert_null(sh);
	(void)state;
}

/* ------------------------------------------------------------------ */
/* Names and contents                                                 */
/* ------------------------------------------------------------------ */

static void test_name_roundtrip(void **state)
{
	struct tc_shared *a = mount("t-names"), *b = mount("t-names");
	struct tc_shared_name n = name_of("/dir/file", "hello", 5, "red,blue",
					  "v1"),
			      got;
	struct tc_shared_stats st;

	n.expires_ns = fake_now + 3600 * SEC;
	n.ttl_mode = TC_TTL_ABSOLUTE;
	n.mode = S_IFREG | 0640;
	n.uid = 42;
	n.gid = 43;
	assert_int_equal(tc_shared_push_name(a, &n), 0);
	drain(a);
	assert_int_equal(tc_shared_get_name(b, "/dir/file", &got), 0);
	assert_string_equal(got.path, "/dir/file");
	assert_memory_equal(got.hash, n.hash, 16);
	assert_true(got.has_content);
	assert_int_equal(got.size, 5);
	assert_int_equal(got.mode, S_IFREG | 0640);
	assert_int_equal(got.uid, 42);
	assert_int_equal(got.gid, 43);
	assert_int_equal(got.mtime_ns, n.mtime_ns);
	assert_int_equal(got.expires_ns, n.expires_ns);
	assert_int_equal(got.ttl_mode, TC_TTL_ABSOLUTE);
	assert_string_equal(got.tags, "red,blue");
	assert_string_equal(got.schema, "v1");
	assert_int_equal(got.version_ns, n.version_ns);
	assert_true(got.writer == tc_shared_writer(a));
	assert_true(tc_shared_writer(a) != tc_shared_writer(b));
	assert_false(got.deleted);
	tc_shared_name_free(&got);

	/* absent, malformed */
	assert_int_equal(get_rc(b, "/dir/other"), -ENOENT);
	assert_int_equal(get_rc(b, "relative"), -EINVAL);
	assert_int_equal(get_rc(b, "/a//b"), -EINVAL);
	n.path = "/x/";
	assert_int_equal(tc_shared_push_name(a, &n), -EINVAL);
	n.path = "/x";
	n.tags = "bad tag";
	assert_int_equal(tc_shared_push_name(a, &n), -EINVAL);
	n.tags = "";
	n.schema = "no spaces";
	assert_int_equal(tc_shared_push_name(a, &n), -EINVAL);

	/* an overwrite is seen at once: names are not cached */
	n = name_of("/dir/file", "world!", 6, "", "");
	assert_int_equal(tc_shared_push_name(a, &n), 0);
	drain(a);
	assert_int_equal(tc_shared_get_name(b, "/dir/file", &got), 0);
	assert_int_equal(got.size, 6);
	assert_string_equal(got.tags, "");
	tc_shared_name_free(&got);

	/* expired: absent everywhere at the same moment */
	n = name_of("/dir/brief", "x", 1, "", "");
	n.expires_ns = fake_now + 10 * SEC;
	assert_int_equal(tc_shared_push_name(a, &n), 0);
	drain(a);
	assert_int_equal(get_rc(b, "/dir/brief"), 0);
	advance(10 * SEC);
	assert_int_equal(get_rc(b, "/dir/brief"), -ENOENT);
	assert_int_equal(get_rc(a, "/dir/brief"), -ENOENT);

	st = stats(b);
	assert_true(st.hits >= 3);
	assert_true(st.misses >= 2);
	assert_int_equal(st.rejected, 0);
	assert_int_equal(stats(a).pushes, 3);
	tc_shared_close(a);
	tc_shared_close(b);
	(void)state;
}

static void test_content_roundtrip(void **state)
{
	struct tc_shared *a = mount("t-content"), *b = mount("t-content");
	size_t big = 5 * 1024 * 1024 + 123; /* 11 pieces, the last short */
	unsigned char *data = malloc(big), *buf = malloc(big);
	char tmpl[] = "/tmp/tcshared.XXXXXX";
	uint8_t hs[16], hb[16], hx[16];
	struct stat st;
	int fd;

	assert_non_null(data);
	assert_non_null(buf);
	fill(data, big, 1);
	hash_of(data, 100, hs);
	hash_of(data, big, hb);
	assert_int_equal(tc_shared_push_content(a, hs, data, 100), 0);
	assert_int_equal(tc_shared_push_content(a, hb, data, big), 0);
	drain(a);

	memset(buf, 0, big);
	assert_int_equal(tc_shared_get_content(b, hs, 100, buf), 0);
	assert_memory_equal(buf, data, 100);
	memset(buf, 0, big);
	assert_int_equal(tc_shared_get_content(b, hb, big, buf), 0);
	assert_memory_equal(buf, data, big);
	assert_int_equal(stats(b).fetched_bytes, 100 + big);

	/* streaming into a file */
	fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(tc_shared_get_content_fd(b, hb, big, fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, big);
	assert_int_equal(pread(fd, buf, big, 0), big);
	assert_memory_equal(buf, data, big);

	/* pushed from a file: no copy */
	fill(data, big, 2);
	hash_of(data, big, hx);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, data, big, 0), big);
	assert_int_equal(tc_shared_push_content_fd(a, hx, big, fd), 0);
	close(fd);
	drain(a);
	assert_int_equal(tc_shared_get_content(b, hx, big, buf), 0);
	assert_memory_equal(buf, data, big);

	/* absent; present with another size */
	hs[0] ^= 1;
	assert_int_equal(tc_shared_get_content(b, hs, 100, buf), -ENOENT);
	hs[0] ^= 1;
	assert_int_equal(tc_shared_get_content(b, hs, 99, buf), -EIO);
	assert_int_equal(stats(b).rejected, 1);
	/* the empty content is never stored, never needed */
	hash_of("", 0, hx);
	assert_int_equal(tc_shared_push_content(a, hx, "", 0), 0);
	assert_int_equal(tc_shared_get_content(b, hx, 0, buf), 0);
	tc_shared_close(a);
	tc_shared_close(b);
	free(data);
	free(buf);
	(void)state;
}

static void test_tombstone(void **state)
{
	struct tc_shared *a = mount("t-tomb"), *b = mount("t-tomb");
	struct tc_shared_name n = name_of("/gone", "abc", 3, "", ""), got;

	push_file(a, "/gone", "abc", 3, "", "");
	drain(a);
	assert_file(b, "/gone", "abc", 3);
	n.deleted = true;
	n.has_content = false;
	n.size = 0;
	n.version_ns = fake_now + 1;
	assert_int_equal(tc_shared_push_name(a, &n), 0);
	drain(a);
	assert_int_equal(tc_shared_get_name(b, "/gone", &got), 0);
	assert_true(got.deleted);
	assert_int_equal(got.version_ns, fake_now + 1);
	assert_true(got.writer == tc_shared_writer(a));
	tc_shared_name_free(&got);
	tc_shared_close(a);
	tc_shared_close(b);
	(void)state;
}

/* ------------------------------------------------------------------ */
/* Generations and schemas                                            */
/* ------------------------------------------------------------------ */

static void test_evict_tag(void **state)
{
	struct tc_shared *a = mount("t-evict"), *b = mount("t-evict");

	push_file(a, "/r", "red", 3, "red", "");
	push_file(a, "/rb", "red+blue", 8, "blue,red", "");
	push_file(a, "/b", "blue", 4, "blue", "");
	push_file(a, "/n", "none", 4, "", "");
	drain(a);
	assert_file(b, "/r", "red", 3);
	assert_file(b, "/rb", "red+blue", 8);

	assert_int_equal(tc_shared_evict_tag(a, "red"), 0);
	assert_int_equal(tc_shared_evict_tag(a, "not valid"), -EINVAL);
	/* the evicting mount sees it at once */
	assert_int_equal(get_rc(a, "/r"), -ENOENT);
	assert_int_equal(get_rc(a, "/rb"), -ENOENT);
	/* the other trusts what it learned for revalidate_ns, then not */
	assert_int_equal(get_rc(b, "/r"), 0);
	advance(SEC + 1);
	assert_int_equal(get_rc(b, "/r"), -ENOENT);
	assert_int_equal(get_rc(b, "/rb"), -ENOENT);
	assert_file(b, "/b", "blue", 4);
	assert_file(b, "/n", "none", 4);
	assert_true(stats(b).stale >= 2);

	/* pushed after the eviction: visible */
	push_file(a, "/r", "red again", 9, "red", "");
	drain(a);
	assert_file(b, "/r", "red again", 9);
	tc_shared_close(a);
	tc_shared_close(b);
	(void)state;
}

static void test_flush(void **state)
{
	struct tc_shared *a = mount("t-flush"), *b = mount("t-flush");

	push_file(a, "/one", "1", 1, "", "");
	push_file(a, "/two", "22", 2, "t", "");
	drain(a);
	assert_file(b, "/one", "1", 1);
	assert_int_equal(tc_shared_flush(b), 0);
	assert_int_equal(get_rc(b, "/one"), -ENOENT);
	advance(SEC + 1);
	assert_int_equal(get_rc(a, "/one"), -ENOENT);
	assert_int_equal(get_rc(a, "/two"), -ENOENT);
	push_file(a, "/one", "1 after", 7, "", "");
	drain(a);
	assert_file(b, "/one", "1 after", 7);

	/* names queued before the mount's own flush are not sent after it */
	tc_shared_hold(a, true);
	push_file(a, "/queued", "q", 1, "", "");
	assert_int_equal(tc_shared_flush(a), 0);
	tc_shared_hold(a, false);
	drain(a);
	assert_int_equal(get_rc(b, "/queued"), -ENOENT);
	tc_shared_close(a);
	tc_shared_close(b);
	(void)state;
}

static void test_schema(void **state)
{
	struct tc_shared *a = mount("t-schema"), *b = mount("t-schema");

	push_file(a, "/d/old", "o", 1, "", "v1");
	push_file(a, "/d/new", "n", 1, "", "v2");
	push_file(a, "/d/sub/deep", "d", 1, "", "v2");
	push_file(a, "/d/none", "x", 1, "", "");
	push_file(a, "/e/other", "e", 1, "", "v1");
	drain(a);
	assert_file(b, "/d/old", "o", 1);

	assert_int_equal(tc_shared_set_schema(a, "/d", "v2"), 0);
	assert_int_equal(tc_shared_set_schema(a, "/d", "bad schema"), -EINVAL);
	advance(SEC + 1);
	assert_int_equal(get_rc(b, "/d/old"), -ENOENT);
	assert_int_equal(get_rc(b, "/d/none"), -ENOENT);
	assert_file(b, "/d/new", "n", 1);
	assert_file(b, "/d/sub/deep", "d", 1);
	assert_file(b, "/e/other", "e", 1);

	/* the nearest directory with a schema decides */
	assert_int_equal(tc_shared_set_schema(a, "/d/sub", "v3"), 0);
	advance(SEC + 1);
	assert_int_equal(get_rc(b, "/d/sub/deep"), -ENOENT);
	assert_file(b, "/d/new", "n", 1);
	/* removing it: the one above applies again */
	assert_int_equal(tc_shared_set_schema(a, "/d/sub", ""), 0);
	advance(SEC + 1);
	assert_file(b, "/d/sub/deep", "d", 1);
	/* a flush leaves directories' schemas */
	assert_int_equal(tc_shared_flush(a), 0);
	push_file(a, "/d/old", "o", 1, "", "v1");
	drain(a);
	advance(SEC + 1);
	assert_int_equal(get_rc(b, "/d/old"), -ENOENT);
	tc_shared_close(a);
	tc_shared_close(b);
	(void)state;
}

/* ------------------------------------------------------------------ */
/* Events                                                             */
/* ------------------------------------------------------------------ */

struct evlog {
	int n;
	struct {
		enum tc_shared_event_type type;
		char arg[80], schema[80];
		uint64_t writer;
	} v[16];
};

static void on_event(void *ctx, const struct tc_shared_event *ev)
{
	struct evlog *l = ctx;

	assert_true(l->n < 16);
	l->v[l->n].type = ev->type;
	snprintf(l->v[l->n].arg, 80, "%s",
		 ev->type == TC_SHARED_EV_SCHEMA ? ev->dir : ev->tag);
	snprintf(l->v[l->n].schema, 80, "%s", ev->schema);
	l->v[l->n].writer = ev->writer;
	l->n++;
}

static int poll_into(struct tc_shared *sh, struct evlog *l)
{
	memset(l, 0, sizeof(*l));
	return tc_shared_poll(sh, on_event, l);
}

static void test_poll(void **state)
{
	struct tc_shared *a = mount("t-poll"), *b = mount("t-poll");
	memcached_st *raw = raw_client(1);
	struct evlog l;
	char *v;
	size_t len;
	unsigned long long seq;
	char key[160];

	/* first polls only find where the log is (it does not exist yet) */
	assert_int_equal(poll_into(a, &l), 0);
	assert_int_equal(poll_into(b, &l), 0);
	assert_int_equal(tc_shared_flush(a), 0);
	assert_int_equal(tc_shared_evict_tag(a, "x"), 0);
	assert_int_equal(tc_shared_set_schema(a, "/s", "v9"), 0);
	assert_int_equal(tc_shared_evict_tag(b, "mine"), 0);

	assert_int_equal(poll_into(b, &l), 3);
	assert_int_equal(l.v[0].type, TC_SHARED_EV_FLUSH);
	assert_int_equal(l.v[1].type, TC_SHARED_EV_EVICT_TAG);
	assert_string_equal(l.v[1].arg, "x");
	assert_int_equal(l.v[2].type, TC_SHARED_EV_SCHEMA);
	assert_string_equal(l.v[2].arg, "/s");
	assert_string_equal(l.v[2].schema, "v9");
	for (int i = 0; i < 3; i++)
		assert_true(l.v[i].writer == tc_shared_writer(a));
	assert_int_equal(poll_into(b, &l), 0);
	/* a's own three are not reported to it, b's one is */
	assert_int_equal(poll_into(a, &l), 1);
	assert_int_equal(l.v[0].type, TC_SHARED_EV_EVICT_TAG);
	assert_string_equal(l.v[0].arg, "mine");

	/* an event lost to eviction: the next ones wait for it a grace
	 * period (its writer may be between incr and set), then RESYNC */
	assert_int_equal(tc_shared_flush(a), 0);
	assert_int_equal(tc_shared_evict_tag(a, "y"), 0);
	v = raw_get(raw, "tc1:t-poll:e:seq", &len);
	assert_non_null(v);
	seq = strtoull(v, NULL, 10);
	free(v);
	snprintf(key, sizeof(key), "tc1:t-poll:e:%016llx", seq - 1);
	assert_int_equal(memcached_delete(raw, key, strlen(key), 0),
			 MEMCACHED_SUCCESS);
	assert_int_equal(poll_into(b, &l), 0);
	advance(3 * SEC);
	assert_int_equal(poll_into(b, &l), 2);
	assert_int_equal(l.v[0].type, TC_SHARED_EV_RESYNC);
	assert_int_equal(l.v[1].type, TC_SHARED_EV_EVICT_TAG);
	assert_string_equal(l.v[1].arg, "y");

	/* the counter itself lost (a server restarted): RESYNC, and the
	 * events of the new counter are all reported */
	assert_int_equal(memcached_delete(raw, "tc1:t-poll:e:seq",
					  strlen("tc1:t-poll:e:seq"), 0),
			 MEMCACHED_SUCCESS);
	assert_int_equal(poll_into(b, &l), 1);
	assert_int_equal(l.v[0].type, TC_SHARED_EV_RESYNC);
	assert_int_equal(tc_shared_evict_tag(a, "z"), 0);
	assert_int_equal(poll_into(b, &l), 1);
	assert_int_equal(l.v[0].type, TC_SHARED_EV_EVICT_TAG);
	assert_string_equal(l.v[0].arg, "z");

	/* garbage in an event: rejected, RESYNC */
	assert_int_equal(tc_shared_evict_tag(a, "w"), 0);
	v = raw_get(raw, "tc1:t-poll:e:seq", &len);
	assert_non_null(v);
	seq = strtoull(v, NULL, 10);
	free(v);
	snprintf(key, sizeof(key), "tc1:t-poll:e:%016llx", seq);
	raw_set(raw, key, "tc1e\0garbage", 12);
	assert_int_equal(poll_into(b, &l), 1);
	assert_int_equal(l.v[0].type, TC_SHARED_EV_RESYNC);
	assert_true(stats(b).rejected >= 1);
	assert_true(stats(b).resyncs == 3);
	memcached_free(raw);
	tc_shared_close(a);
	tc_shared_close(b);
	(void)state;
}

/* ------------------------------------------------------------------ */
/* The push queue                                                     */
/* ------------------------------------------------------------------ */

static void test_queue_full(void **state)
{
	struct mopt o = { .ns = "t-queue", .queue = 100 * 1024 };
	struct tc_shared *a = mount_opt(&o), *b = mount("t-queue");
	static unsigned char c1[40000], c2[40000], c3[40000], big[200000];
	uint8_t h1[16], h2[16], h3[16], hbig[16];
	struct tc_shared_name n;
	struct tc_shared_stats st;
	int64_t t0;

	fill(c1, sizeof(c1), 11);
	fill(c2, sizeof(c2), 12);
	fill(c3, sizeof(c3), 13);
	hash_of(c1, sizeof(c1), h1);
	hash_of(c2, sizeof(c2), h2);
	hash_of(c3, sizeof(c3), h3);
	hash_of(big, sizeof(big), hbig);

	/* a version of /q reaches the servers */
	n = name_of("/q", c1, sizeof(c1), "", "");
	assert_int_equal(tc_shared_push_name(a, &n), 0);
	drain(a);
	assert_int_equal(get_rc(b, "/q"), 0);

	tc_shared_hold(a, true);
	n.version_ns++;
	t0 = mono();
	assert_int_equal(tc_shared_push_name(a, &n), 0);        /* oldest */
	assert_int_equal(tc_shared_push_content(a, h1, c1, sizeof(c1)), 0);
	assert_int_equal(tc_shared_push_content(a, h2, c2, sizeof(c2)), 0);
	assert_int_equal(tc_shared_push_content(a, h3, c3, sizeof(c3)), 0);
	assert_int_equal(tc_shared_push_content(a, hbig, big, sizeof(big)),
			 0); /* larger than the queue: dropped at once */
	assert_true(mono() - t0 < 100 * MS); /* never waits */
	st = stats(a);
	assert_int_equal(st.push_dropped, 3); /* the name, c1, big */
	assert_int_equal(st.queue_items, 2);
	assert_true(st.queue_bytes <= o.queue);
	assert_int_equal(tc_shared_drain(a, 50 * MS), -ETIMEDOUT);
	tc_shared_hold(a, false);
	drain(a);
	assert_int_equal(stats(a).queue_items, 0);

	assert_int_equal(tc_shared_get_content(b, h1, sizeof(c1), c1),
			 -ENOENT);
	assert_int_equal(tc_shared_get_content(b, h2, sizeof(c2), c2), 0);
	assert_int_equal(tc_shared_get_content(b, h3, sizeof(c3), c3), 0);
	assert_int_equal(tc_shared_get_content(b, hbig, sizeof(big), big),
			 -ENOENT);
	/* the dropped name's older version was deleted, not left visible */
	assert_int_equal(get_rc(b, "/q"), -ENOENT);

	/* closing with pushes queued drops and counts them */
	tc_shared_hold(a, true);
	assert_int_equal(tc_shared_push_content(a, h2, c2, sizeof(c2)), 0);
	tc_shared_close(a);
	tc_shared_close(b);
	(void)state;
}

/* ------------------------------------------------------------------ */
/* Garbage and trust                                                  */
/* ------------------------------------------------------------------ */

static void test_garbage(void **state)
{
	struct tc_shared *a = mount("t-garbage"), *b = mount("t-garbage");
	memcached_st *raw = raw_client(1);
	static unsigned char data[600000], buf[600000];
	uint8_t h[16];
	char key[160], key2[160], *v;
	size_t len;
	uint64_t rej;

	fill(data, sizeof(data), 5);
	hash_of(data, sizeof(data), h);
	push_file(a, "/g", data, sizeof(data), "", "");
	push_file(a, "/h", "hhh", 3, "", "");
	drain(a);
	assert_file(b, "/g", data, sizeof(data));

	/* random bytes under the name key */
	path_key("t-garbage", 'n', "/g", key);
	raw_set(raw, key, "\x01\x02garbage", 9);
	rej = stats(b).rejected;
	assert_int_equal(get_rc(b, "/g"), -ENOENT);
	assert_int_equal(stats(b).rejected, rej + 1);

	/* a valid record moved under another name's key */
	path_key("t-garbage", 'n', "/h", key2);
	v = raw_get(raw, key2, &len);
	assert_non_null(v);
	raw_set(raw, key, v, len);
	assert_int_equal(get_rc(b, "/g"), -ENOENT);
	assert_int_equal(stats(b).rejected, rej + 2);
	/* truncated */
	raw_set(raw, key2, v, len - 1);
	free(v);
	assert_int_equal(get_rc(b, "/h"), -ENOENT);
	assert_int_equal(stats(b).rejected, rej + 3);

	/* a content piece with one byte changed (framing intact) */
	piece_key("t-garbage", h, 1, key);
	v = raw_get(raw, key, &len);
	assert_non_null(v);
	v[len - 1] ^= 0x40;
	raw_set(raw, key, v, len);
	assert_int_equal(tc_shared_get_content(b, h, sizeof(data), buf), -EIO);
	assert_int_equal(stats(b).rejected, rej + 4);
	/* a piece of garbage */
	raw_set(raw, key, "nonsense", 8);
	assert_int_equal(tc_shared_get_content(b, h, sizeof(data), buf), -EIO);
	assert_int_equal(stats(b).rejected, rej + 5);
	/* piece 1 put in piece 0's place */
	v[len - 1] ^= 0x40;
	piece_key("t-garbage", h, 0, key2);
	raw_set(raw, key2, v, len);
	free(v);
	assert_int_equal(tc_shared_get_content(b, h, sizeof(data), buf), -EIO);
	/* and never a wrong byte through the fd variant either */
	{
		char tmpl[] = "/tmp/tcshared.XXXXXX";
		int fd = mkstemp(tmpl);

		assert_true(fd >= 0);
		unlink(tmpl);
		assert_int_equal(tc_shared_get_content_fd(b, h, sizeof(data),
							  fd),
				 -EIO);
		close(fd);
	}

	/* a garbage generation: replaced, so every name stamped with the
	 * old one is stale (a miss, never an error) */
	push_file(a, "/k", "k", 1, "", "");
	drain(a);
	advance(SEC + 1);
	raw_set(raw, "tc1:t-garbage:g:ns", "junk", 4);
	assert_int_equal(get_rc(b, "/k"), -ENOENT);
	push_file(a, "/k", "k2", 2, "", "");
	drain(a);
	advance(SEC + 1);
	assert_file(b, "/k", "k2", 2);
	assert_int_equal(stats(b).errors, 0);
	memcached_free(raw);
	tc_shared_close(a);
	tc_shared_close(b);
	(void)state;
}

static void test_mac(void **state)
{
	uint8_t k1[32], k2[32];
	struct mopt o1 = { .ns = "t-mac", .key = k1, .key_len = 32 },
		    o2 = { .ns = "t-mac", .key = k2, .key_len = 32 },
		    ou = { .ns = "t-mac" };
	struct tc_shared *m1, *m1b, *m2, *mu;
	memcached_st *raw = raw_client(1);
	static unsigned char data[1000], buf[1000];
	uint8_t h[16];
	char key[160], *v;
	size_t len;

	fill(k1, 32, 21);
	fill(k2, 32, 22);
	m1 = mount_opt(&o1);
	m1b = mount_opt(&o1);
	m2 = mount_opt(&o2);
	mu = mount_opt(&ou);
	fill(data, sizeof(data), 3);
	hash_of(data, sizeof(data), h);
	push_file(m1, "/secret", data, sizeof(data), "", "");
	drain(m1);
	assert_file(m1b, "/secret", data, sizeof(data));

	/* another key, or none: rejected and counted */
	assert_int_equal(get_rc(m2, "/secret"), -ENOENT);
	assert_true(stats(m2).rejected >= 1);
	assert_int_equal(get_rc(mu, "/secret"), -ENOENT);
	assert_true(stats(mu).rejected >= 1);
	assert_int_equal(tc_shared_get_content(mu, h, sizeof(data), buf),
			 -EIO);
	assert_int_equal(tc_shared_get_content(m2, h, sizeof(data), buf),
			 -EIO);

	/* a keyed mount takes nothing from an unkeyed writer */
	push_file(mu, "/open", "o", 1, "", "");
	drain(mu);
	assert_int_equal(get_rc(m1, "/open"), -ENOENT);
	/* nor a record of its own key moved to another name */
	path_key("t-mac", 'n', "/secret", key);
	v = raw_get(raw, key, &len);
	assert_non_null(v);
	path_key("t-mac", 'n', "/moved", key);
	raw_set(raw, key, v, len);
	free(v);
	assert_int_equal(get_rc(m1b, "/moved"), -ENOENT);
	tc_shared_close(m1);
	tc_shared_close(m1b);
	tc_shared_close(m2);
	tc_shared_close(mu);

	/* by default a key has its own namespace: mounts with different
	 * keys coexist on the same servers without seeing (or disturbing)
	 * each other */
	o1.ns = o2.ns = NULL;
	m1 = mount_opt(&o1);
	m2 = mount_opt(&o2);
	push_file(m1, "/ns", "1", 1, "", "");
	push_file(m2, "/ns", "22", 2, "", "");
	drain(m1);
	drain(m2);
	assert_file(m1, "/ns", "1", 1);
	assert_file(m2, "/ns", "22", 2);
	assert_int_equal(stats(m1).rejected, 0);
	assert_int_equal(stats(m2).rejected, 0);
	tc_shared_close(m1);
	tc_shared_close(m2);
	memcached_free(raw);
	(void)state;
}

/* ------------------------------------------------------------------ */
/* Server failures                                                    */
/* ------------------------------------------------------------------ */

#define NFILES 60

static size_t file_len(int i)
{
	return i % 10 == 0 ? 700000 : 100 + (size_t)i * 37; /* some in two
							       * pieces */
}

static void files_push(struct tc_shared *sh, unsigned char *data)
{
	struct tc_shared_stats st0 = stats(sh), st;

	for (int i = 0; i < NFILES; i++) {
		char path[32];

		snprintf(path, sizeof(path), "/f/%d", i);
		fill(data, file_len(i), 100 + (unsigned)i);
		push_file(sh, path, data, file_len(i), i % 3 ? "a" : "", "");
	}
	drain(sh);
	st = stats(sh);
	if (st.pushes - st0.pushes != 2 * NFILES || st.errors != st0.errors)
		fail_msg("pushes %llu errors %llu dropped %llu",
			 (unsigned long long)(st.pushes - st0.pushes),
			 (unsigned long long)(st.errors - st0.errors),
			 (unsigned long long)st.push_dropped);
}

/* On a failure: which servers hold @path's name record. */
static void dump_key(const char *ns, const char *path)
{
	char key[160];

	path_key(ns, 'n', path, key);
	for (int k = 0; k < NSERVERS; k++) {
		memcached_st *one = memcached_create(NULL);
		size_t vl;
		char *v;

		memcached_behavior_set(one, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL,
				       1);
		memcached_server_add(one, "127.0.0.1", (in_port_t)ports[k]);
		v = raw_get(one, key, &vl);
		fprintf(stderr, "  server %d (%s): %s\n", k,
			pids[k] ? "up" : "down", v ? "has it" : "has not");
		free(v);
		memcached_free(one);
	}
}

/* Read every file back; returns the slowest call in ns. */
static int64_t files_check(struct tc_shared *sh, unsigned char *data,
			   unsigned char *buf)
{
	int64_t worst = 0;

	for (int i = 0; i < NFILES; i++) {
		struct tc_shared_name n;
		char path[32];
		int64_t t0 = mono(), t;
		int rc;

		snprintf(path, sizeof(path), "/f/%d", i);
		fill(data, file_len(i), 100 + (unsigned)i);
		rc = tc_shared_get_name(sh, path, &n);
		if (rc) {
			struct tc_shared_stats st = stats(sh);

			dump_key("t-fail", path);
			fail_msg("get_name(%s): %s (stale %llu rejected %llu "
				 "errors %llu)",
				 path, strerror(-rc),
				 (unsigned long long)st.stale,
				 (unsigned long long)st.rejected,
				 (unsigned long long)st.errors);
		}
		rc = tc_shared_get_content(sh, n.hash, n.size, buf);
		if (rc)
			fail_msg("get_content(%s): %s", path, strerror(-rc));
		assert_memory_equal(buf, data, file_len(i));
		tc_shared_name_free(&n);
		t = mono() - t0;
		worst = t > worst ? t : worst;
	}
	return worst;
}

static void wait_servers_up(struct tc_shared *sh, uint64_t want)
{
	int64_t deadline = mono() + 10 * SEC;

	while (stats(sh).servers_up != want) {
		if (mono() > deadline)
			fail_msg("servers_up %llu, want %llu",
				 (unsigned long long)stats(sh).servers_up,
				 (unsigned long long)want);
		pause_ms(20);
	}
}

static void test_replica_failover(void **state)
{
	struct mopt o = { .ns = "t-fail", .replicas = 2 };
	struct tc_shared *a = mount_opt(&o), *b = mount_opt(&o), *c;
	unsigned char *data = malloc(700000), *buf = malloc(700000);
	int64_t worst;

	assert_non_null(data);
	assert_non_null(buf);
	wait_servers_up(a, NSERVERS);
	files_push(a, data);
	files_check(b, data, buf);

	stop_server(1);
	/* b had connections to the dead server; c is a fresh mount */
	c = mount_opt(&o);
	worst = files_check(b, data, buf);
	fprintf(stderr, "one of three down, replicas=2: slowest read %.1f ms\n",
		(double)worst / 1e6);
	worst = files_check(c, data, buf);
	fprintf(stderr, "  fresh mount: slowest read %.1f ms\n",
		(double)worst / 1e6);
	assert_int_equal(stats(b).misses, 0);
	assert_int_equal(stats(c).misses, 0);
	wait_servers_up(b, NSERVERS - 1);

	/* back, empty: used again */
	assert_true(start_server(1));
	wait_servers_up(b, NSERVERS);
	tc_shared_close(a);
	tc_shared_close(b);
	tc_shared_close(c);
	free(data);
	free(buf);
	(void)state;
}

/* A server that accepts connections but never answers (stopped): until
 * the probe notices, calls touching it are misses bounded by the poll
 * timeout; then its keys are read from the replica. */
static void test_stalled_server(void **state)
{
	struct mopt o = { .ns = "t-stall", .replicas = 2 };
	struct tc_shared *a = mount_opt(&o), *b = mount_opt(&o);
	unsigned char *data = malloc(700000), *buf = malloc(700000);
	int64_t worst = 0, t0;
	int hits = 0;

	assert_non_null(data);
	assert_non_null(buf);
	wait_servers_up(a, NSERVERS);
	files_push(a, data);
	files_check(b, data, buf);
	assert_int_equal(kill(pids[0], SIGSTOP), 0);
	for (int i = 0; i < NFILES; i++) {
		char path[32];
		int rc;

		snprintf(path, sizeof(path), "/f/%d", i);
		t0 = mono();
		rc = get_rc(b, path);
		t0 = mono() - t0;
		worst = t0 > worst ? t0 : worst;
		assert_true(rc == 0 || rc == -EIO || rc == -ENOENT);
		hits += rc == 0;
	}
	fprintf(stderr, "one of three stopped, before the probe: %d/%d hits, "
		"slowest %.1f ms\n", hits, NFILES, (double)worst / 1e6);
	assert_true(worst < SEC);
	wait_servers_up(b, NSERVERS - 1);
	t0 = mono();
	worst = files_check(b, data, buf);
	fprintf(stderr, "  after: all hits, slowest %.1f ms, %d files in "
		"%.1f ms\n", (double)worst / 1e6, NFILES,
		(double)(mono() - t0) / 1e6);
	assert_int_equal(kill(pids[0], SIGCONT), 0);
	wait_servers_up(b, NSERVERS);
	files_check(b, data, buf);
	tc_shared_close(a);
	tc_shared_close(b);
	free(data);
	free(buf);
	(void)state;
}

static void test_all_down(void **state)
{
	struct tc_shared *a = mount("t-down"), *b = mount("t-down");
	unsigned char buf[100];
	struct evlog l;
	int64_t t0, worst = 0, deadline;
	uint8_t h[16];
	int rc;

	push_file(a, "/before", "b", 1, "", "");
	drain(a);
	assert_int_equal(get_rc(b, "/before"), 0);
	assert_int_equal(poll_into(b, &l), 0);
	for (int i = 0; i < NSERVERS; i++)
		stop_server(i);

	hash_of("b", 1, h);
	for (int i = 0; i < 5; i++) {
		t0 = mono();
		rc = get_rc(b, "/before");
		assert_true(rc == -ENOENT || rc == -EIO);
		rc = tc_shared_get_content(b, h, 1, buf);
		assert_true(rc == -ENOENT || rc == -EIO);
		rc = tc_shared_poll(b, on_event, &l);
		assert_true(rc == -EIO || rc == 0);
		assert_int_equal(tc_shared_flush(b), -EIO);
		t0 = mono() - t0;
		worst = t0 > worst ? t0 : worst;
	}
	fprintf(stderr, "all servers down: slowest round of 4 calls %.1f ms\n",
		(double)worst / 1e6);
	assert_true(worst < SEC);
	/* pushes never wait; the push thread fails fast */
	t0 = mono();
	push_file(a, "/during", "d", 1, "", "");
	assert_true(mono() - t0 < 50 * MS);
	assert_int_equal(tc_shared_drain(a, 5 * SEC), 0);
	wait_servers_up(a, 0);
	assert_true(stats(a).errors > 0);

	/* restarted empty: picked up again */
	t0 = mono();
	for (int i = 0; i < NSERVERS; i++)
		assert_true(start_server(i));
	deadline = mono() + 10 * SEC;
	for (;;) {
		push_file(a, "/after", "after", 5, "", "");
		drain(a);
		if (get_rc(b, "/after") == 0)
			break;
		if (mono() > deadline)
			fail_msg("servers not used again");
		pause_ms(100);
	}
	/* b's pooled handles each keep a server they saw fail disabled for
	 * up to retry_s (1 s), so the content may miss a little longer */
	hash_of("after", 5, h);
	while (tc_shared_get_content(b, h, 5, buf) != 0) {
		if (mono() > deadline)
			fail_msg("content not read again");
		pause_ms(50);
	}
	fprintf(stderr, "servers back: shared again %.1f s after restart\n",
		(double)(mono() - t0) / 1e9);
	wait_servers_up(a, NSERVERS);
	assert_file(b, "/after", "after", 5);
	assert_int_equal(get_rc(b, "/before"), -ENOENT);
	tc_shared_close(a);
	tc_shared_close(b);
	(void)state;
}

/* Not a benchmark: orders of magnitude on loopback, printed for the
 * notes, with loose bounds so a slow machine does not fail it. */
static void test_timings(void **state)
{
	struct tc_shared *a = mount("t-time"), *b = mount("t-time");
	static unsigned char data[4096], buf[4096];
	const int N = 500;
	int64_t t0, hit, miss, push;

	t0 = mono();
	for (int i = 0; i < N; i++) {
		char path[32];

		snprintf(path, sizeof(path), "/p/%d", i);
		fill(data, sizeof(data), (unsigned)i);
		push_file(a, path, data, sizeof(data), "", "");
	}
	drain(a);
	push = mono() - t0;
	t0 = mono();
	for (int i = 0; i < N; i++) {
		struct tc_shared_name n;
		char path[32];

		snprintf(path, sizeof(path), "/p/%d", i);
		assert_int_equal(tc_shared_get_name(b, path, &n), 0);
		assert_int_equal(tc_shared_get_content(b, n.hash, n.size, buf),
				 0);
		tc_shared_name_free(&n);
	}
	hit = mono() - t0;
	t0 = mono();
	for (int i = 0; i < N; i++) {
		char path[32];

		snprintf(path, sizeof(path), "/absent/%d", i);
		assert_int_equal(get_rc(b, path), -ENOENT);
	}
	miss = mono() - t0;
	fprintf(stderr, "4 KiB files: shared hit (name + content) %.0f us, "
		"miss %.0f us, push %.0f files/s\n",
		(double)hit / N / 1e3, (double)miss / N / 1e3,
		N / ((double)push / 1e9));
	assert_true(hit / N < 50 * MS);
	tc_shared_close(a);
	tc_shared_close(b);
	(void)state;
}

/* ------------------------------------------------------------------ */
/* Threads                                                            */
/* ------------------------------------------------------------------ */

#define READERS 4
#define ROUNDS 150

struct reader {
	struct tc_shared *sh;
	int id;
	int errors;  /* wrong bytes or unexpected returns */
	int hits;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	unsigned char *data = malloc(700000), *buf = malloc(700000);

	for (int k = 0; k < ROUNDS && data && buf; k++) {
		int i = (k * 7 + r->id) % 20;
		struct tc_shared_name n;
		char path[32];
		int rc;

		snprintf(path, sizeof(path), "/f/%d", i);
		rc = tc_shared_get_name(r->sh, path, &n);
		if (rc == -ENOENT)
			continue; /* flushed meanwhile */
		if (rc) {
			r->errors++;
			continue;
		}
		rc = tc_shared_get_content(r->sh, n.hash, n.size, buf);
		fill(data, file_len(i), 100 + (unsigned)i);
		if (rc == 0 && (n.size != file_len(i) ||
				memcmp(buf, data, n.size)))
			r->errors++;
		else if (rc && rc != -ENOENT)
			r->errors++;
		r->hits += rc == 0;
		tc_shared_name_free(&n);
	}
	free(data);
	free(buf);
	return NULL;
}

/* One client read by several threads while another pushes, flushes and
 * evicts: every read is a verified content or a miss. */
static void test_threads(void **state)
{
	struct tc_shared *a = mount("t-threads"), *b = mount("t-threads");
	unsigned char *data = malloc(700000);
	struct reader r[READERS];
	pthread_t t[READERS];
	int hits = 0;

	assert_non_null(data);
	files_push(a, data);
	for (int i = 0; i < READERS; i++) {
		r[i] = (struct reader){ .sh = b, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, reader_main, &r[i]),
				 0);
	}
	for (int k = 0; k < 5; k++) {
		files_push(a, data);
		assert_int_equal(tc_shared_evict_tag(a, "a"), 0);
		assert_int_equal(tc_shared_flush(a), 0);
		advance(SEC + 1);
	}
	for (int i = 0; i < READERS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].errors, 0);
		hits += r[i].hits;
	}
	fprintf(stderr, "%d readers x %d lookups during pushes and flushes: "
		"%d hits\n", READERS, ROUNDS, hits);
	assert_true(hits > 0);
	assert_int_equal(stats(b).rejected, 0);
	tc_shared_close(a);
	tc_shared_close(b);
	free(data);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_servers_string),
		cmocka_unit_test(test_key_file),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_name_roundtrip),
		cmocka_unit_test(test_content_roundtrip),
		cmocka_unit_test(test_tombstone),
		cmocka_unit_test(test_evict_tag),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_schema),
		cmocka_unit_test(test_poll),
		cmocka_unit_test(test_queue_full),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_mac),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_timings),
		cmocka_unit_test(test_replica_failover),
		cmocka_unit_test(test_stalled_server),
		cmocka_unit_test(test_all_down),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
