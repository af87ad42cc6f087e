/* archive_check.c: an archive file against what its checkpoint recorded when
 * it was written (its size and the SHA-256 of its bytes, or their
 * vma-tree-1 digest): `commit` makes a pending checkpoint the base of later
 * backups only if its archive is whole; `verify --deep FILE` reads the file
 * it was given. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/store/store_int.h"
#include "vma/vma.h"

#define CHUNK (1u << 20)

/* The file's vma-tree-1 digest (hex; "-" when its bytes are no whole
 * archive) and size, from fd. */
static int fd_tree(int fd, const char *path, char out[65], uint64_t *size, struct vb_error *err)
{
	uint8_t d[VMA_TREE_LEN];
	int rc = vma_tree_of_stream(vb_fd_read_cb, &fd, d, size);

	if (rc < 0)
		return vb_error_set(err, VB_E_FAIL, -rc, "archive %s: %s", path, strerror(-rc));
	if (rc == 0)
		vb_hex(d, sizeof(d), out);
	else
		snprintf(out, 65, "-");
	return 0;
}

/* The SHA-256 (hex) and size of the regular file path, or its vma-tree-1
 * digest (tree). O_NONBLOCK: a FIFO planted under the archive's name must
 * not hang the check. */
static int file_sha256(const char *path, bool tree, char out[65], uint64_t *size,
		       struct vb_error *err)
{
	EVP_MD_CTX *md = NULL;
	uint8_t *buf = NULL, d[32];
	unsigned int dl = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), rc = -1;
	struct stat st;
	ssize_t n;

	*size = 0;
	if (fd < 0)
		return vb_error_set(err, errno == ENOENT ? VB_E_INVALID : VB_E_FAIL, errno,
				    "archive %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		vb_error_set(err, VB_E_INVALID, 0, "archive %s is not a regular file", path);
		goto out;
	}
	if (tree) {
		rc = fd_tree(fd, path, out, size, err);
		goto out;
	}
	md = EVP_MD_CTX_new();
	buf = malloc(CHUNK);
	if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	while ((n = read(fd, buf, CHUNK)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			vb_error_set(err, VB_E_FAIL, errno, "archive %s: %s", path, strerror(errno));
			goto out;
		}
		if (EVP_DigestUpdate(md, buf, (size_t)n) != 1) {
			vb_error_set(err, VB_E_FAIL, 0, "archive %s: SHA-256 failed", path);
			goto out;
		}
		*size += (uint64_t)n;
	}
	if (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != sizeof(d)) {
		vb_error_set(err, VB_E_FAIL, 0, "archive %s: SHA-256 failed", path);
		goto out;
	}
	vb_hex(d, sizeof(d), out);
	rc = 0;
out:
	close(fd);
	free(buf);
	EVP_MD_CTX_free(md);
	return rc;
}

int vb_ckpt_check_archive(const struct vb_ckpt *c, struct vb_error *err)
{
	/* Not written to a file by vmaback (-o -, --output-cmd): whoever stored
	 * the bytes vouches for them. */
	if (!c->archive)
		return 0;
	return vb_ckpt_check_file(c, c->archive, err);
}

int vb_ckpt_check_file(const struct vb_ckpt *c, const char *path, struct vb_error *err)
{
	const char *want = c->archive_sha256, *alg = "SHA-256";
	size_t tl = strlen(VMA_TREE_NAME);
	char sha[65];
	uint64_t size;

	if (c->archive_digest) {
		if (strncmp(c->archive_digest, VMA_TREE_NAME ":", tl + 1) != 0)
			return vb_error_set(err, VB_E_INVALID, 0, "checkpoint %s: unknown archive "
					    "digest %s", c->name, c->archive_digest);
		want = c->archive_digest + tl + 1;
		alg = VMA_TREE_NAME;
	}
	if (!want)
		return 0;
	if (file_sha256(path, want != c->archive_sha256, sha, &size, err) < 0)
		return -1;
	if (c->archive_size && size != c->archive_size && strcmp(sha, "-") == 0)
		return vb_error_set(err, VB_E_INVALID, 0,
				    "archive %s of checkpoint %s is %" PRIu64 " bytes, "
				    "expected %" PRIu64 " (no whole archive, so no %s; "
				    "expected %s): it was truncated or changed after it was "
				    "written", path, c->name, size, c->archive_size, alg, want);
	if (c->archive_size && size != c->archive_size)
		return vb_error_set(err, VB_E_INVALID, 0,
				    "archive %s of checkpoint %s is %" PRIu64 " bytes, "
				    "expected %" PRIu64 " (%s %s, expected %s): it was "
				    "truncated or changed after it was written", path,
				    c->name, size, c->archive_size, alg, sha, want);
	if (strcmp(sha, want) != 0)
		return vb_error_set(err, VB_E_INVALID, 0,
				    "archive %s of checkpoint %s has %s %s, expected %s "
				    "(%" PRIu64 " bytes, as written): it was changed or "
				    "replaced after it was written", path, c->name, alg, sha,
				    want, size);
	return 0;
}
