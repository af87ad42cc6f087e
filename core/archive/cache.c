/* cache.c: a sequential archive (zstd without a seek table, as vzdump
 * writes it, gzip, lzop) decompressed once into a cache directory as a
 * plain VMA file, sparse where the stream holds whole zero blocks, so
 * that it can be indexed and read at random. Published atomically under a
 * name made of the archive's uuid, and reused while it is there. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/archive/archive_int.h"

#define CACHE_BUF ((size_t)1 << 20)
#define HEAD_LEN 24 /* magic, version, uuid */

static ssize_t read_full(struct vb_reader *r, uint8_t *buf, size_t len, struct vb_error *err)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = vb_reader_read(r, buf + got, len - got, err);

		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Whether the cache file at path starts with the archive's first bytes. */
static bool same_head(const char *path, const uint8_t *head)
{
	uint8_t b[HEAD_LEN];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n = fd < 0 ? -1 : pread(fd, b, sizeof(b), 0);

	if (fd >= 0)
		close(fd);
	return n == HEAD_LEN && memcmp(b, head, HEAD_LEN) == 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* Writes buf at off, leaving whole zero blocks as holes. 0 or -errno. */
static int put_sparse(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t i = 0;

	while (i < len) {
		size_t n = len - i < VMA_BLOCK_SIZE ? len - i : VMA_BLOCK_SIZE, run = n;
		int rc;

		if (n == VMA_BLOCK_SIZE && all_zero(buf + i, n)) {
			i += n;
			continue;
		}
		while (i + run < len && len - i - run >= VMA_BLOCK_SIZE &&
		       !all_zero(buf + i + run, VMA_BLOCK_SIZE))
			run += VMA_BLOCK_SIZE;
		rc = vb_pwrite_all(fd, buf + i, run, off + i);
		if (rc < 0)
			return rc;
		i += run;
	}
	return 0;
}

static int no_room(const char *dir, const char *path, uint64_t need, struct vb_error *err)
{
	struct statvfs sv;
	unsigned long long avail = 0;

	if (statvfs(dir, &sv) == 0)
		avail = (unsigned long long)sv.f_bavail * sv.f_frsize;
	return vb_error_set(err, VB_E_FAIL, ENOSPC, "no room in %s for the decompressed %s: "
			    "it needs more than %llu bytes, %llu are free (free some space or "
			    "give another cache directory)", dir, path, (unsigned long long)need,
			    avail);
}

/* Decompresses the rest of r into the temporary t. */
static int fill(struct vb_reader *r, struct vb_tempfile *t, const uint8_t *head, uint64_t total,
		const char *dir, const char *path, vb_cache_progress_fn fn, void *opaque,
		struct vb_error *err)
{
	int fd = vb_tempfile_fd(t);
	uint8_t *buf = malloc(CACHE_BUF);
	uint64_t off = HEAD_LEN, next_report = 0;
	int rc;

	if (!buf)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	rc = vb_pwrite_all(fd, head, HEAD_LEN, 0);
	for (;;) {
		ssize_t n;

		if (rc == -ENOSPC || rc == -EDQUOT) {
			free(buf);
			return no_room(dir, path, off, err);
		}
		if (rc < 0) {
			free(buf);
			return vb_error_set(err, VB_E_FAIL, -rc, "%s: %s", vb_tempfile_path(t),
					    strerror(-rc));
		}
		if (vb_canceled()) {
			free(buf);
			return vb_error_set(err, VB_E_CANCELED, EINTR, "interrupted");
		}
		n = read_full(r, buf, CACHE_BUF, err);
		if (n <= 0) {
			free(buf);
			if (n < 0)
				return -1;
			break;
		}
		rc = put_sparse(fd, buf, (size_t)n, off);
		off += (uint64_t)n;
		if (fn && vb_reader_raw_bytes(r) >= next_report) {
			fn(opaque, vb_reader_raw_bytes(r), total, off);
			next_report = vb_reader_raw_bytes(r) + (64u << 20);
		}
	}
	if (ftruncate(fd, (off_t)off) < 0)
		return errno == ENOSPC ? no_room(dir, path, off, err)
				       : vb_error_set(err, VB_E_FAIL, errno, "%s: %s",
						      vb_tempfile_path(t), strerror(errno));
	if (fn)
		fn(opaque, total, total, off);
	return 0;
}

char *vb_archive_cache(const char *path, const char *dir, vb_cache_progress_fn fn, void *opaque,
		       bool *reused, struct vb_error *err)
{
	struct vb_reader *r = vb_input_open(path, err);
	struct vb_tempfile *t = NULL;
	uint8_t head[HEAD_LEN];
	char uuid[37], *final = NULL;
	struct stat st, pst;
	struct statvfs sv;
	ssize_t n;
	int pr;

	*reused = false;
	if (!r)
		return NULL;
	n = read_full(r, head, sizeof(head), err);
	if (n < 0)
		goto fail;
	if (n < HEAD_LEN || memcmp(head, "VMA", 4) != 0) {
		vb_error_set(err, VB_E_INVALID, 0, "%s: not a VMA archive", path);
		goto fail;
	}
	vb_uuid_format(head + 8, uuid);
	if (asprintf(&final, "%s/vmaback-cache-%s.vma", dir, uuid) < 0) {
		final = NULL;
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto fail;
	}
	if (lstat(final, &st) == 0 && S_ISREG(st.st_mode) && same_head(final, head)) {
		*reused = true;
		vb_reader_free(r);
		return final;
	}
	/* at least the compressed size: refused before anything is written */
	if (stat(path, &pst) < 0)
		pst.st_size = 0;
	if (statvfs(dir, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < (uint64_t)pst.st_size) {
		no_room(dir, path, (uint64_t)pst.st_size, err);
		goto fail;
	}
	t = vb_tempfile_new(final, err);
	if (!t || fill(r, t, head, (uint64_t)pst.st_size, dir, path, fn, opaque, err) < 0)
		goto fail;
	vb_reader_free(r);
	r = NULL;
	pr = vb_tempfile_publish(t, true, err);
	t = NULL;
	if (pr < 0)
		goto fail;
	if (pr > 0) /* published; a cache need not survive a crash */
		vb_error_clear(err);
	return final;
fail:
	vb_tempfile_discard(t);
	vb_reader_free(r);
	free(final);
	return NULL;
}
