/* SPDX-License-Identifier: MIT */
/*
 * Corpus replay: a main() for the fuzz targets when they are not linked with
 * libFuzzer (gcc builds, and the 'unit' test suite under any compiler).
 *
 *   fuzz_<target>_replay FILE|DIR...
 *
 * Runs LLVMFuzzerTestOneInput() once on every file named, and on every
 * regular file directly inside every directory named (in name order, so a
 * run is reproducible). A failed property aborts, as under libFuzzer; an
 * unreadable argument is an error. Prints how many inputs ran.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

/* Read all of @path into a malloc'd buffer. @return 0 or -errno. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!f)
		return -errno;
	for (;;) {
		size_t k;

		if (n == cap) {
			uint8_t *nb = realloc(buf, cap ? cap * 2 : 4096);

			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap = cap ? cap * 2 : 4096;
		}
		k = fread(buf + n, 1, cap - n, f);
		n += k;
		if (k == 0) {
			if (ferror(f))
				rc = -EIO;
			break;
		}
	}
	fclose(f);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*len = n;
	return 0;
}

static int run_file(const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = read_file(path, &data, &len);

	if (rc) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(-rc));
		return -1;
	}
	/* An exact-size copy, so ASan sees reads past the input's end. */
	LLVMFuzzerTestOneInput(len ? data : (const uint8_t *)"", len);
	free(data);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run every regular file in @dir, in name order. @return inputs run or -1. */
static long run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	long count = 0;

	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof(*names));
			FZ_CHECK(names != NULL, "out of memory");
		}
		names[n] = strdup(de->d_name);
		FZ_CHECK(names[n] != NULL, "out of memory");
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		free(names[i]);
		if (count < 0 || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		count = run_file(path) == 0 ? count + 1 : -1;
	}
	free(names);
	return count;
}

int main(int argc, char **argv)
{
	long total = 0;

	LLVMFuzzerInitialize(&argc, &argv);
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		long n;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
				strerror(errno));
			return 1;
		}
		n = S_ISDIR(st.st_mode) ? run_dir(argv[i])
					: (run_file(argv[i]) == 0 ? 1 : -1);
		if (n < 0)
			return 1;
		total += n;
	}
	printf("%s: %ld inputs replayed, all properties held\n", argv[0],
	       total);
	return 0;
}
