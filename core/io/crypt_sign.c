/* crypt_sign.c: signed archives (doc/encryption.md, "Signatures"): a
 * trailer after the archive's last byte, a zstd skippable frame that every
 * reader skips, holding the SHA-256 and the length of the bytes before it
 * and their Ed25519 signature; and its check, with the public key only. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "core/io/crypt_int.h"

#define SIG_LABEL "vmaback-v1 signature"
#define SIG_MSG (sizeof(SIG_LABEL) - 1 + VB_KEY_ID_LEN + 32 + 8)

/* The skippable frame's magic (0x184D2A5B, LE) and payload size (128), then
 * the record's own magic. */
static const uint8_t sig_head[16] = { 0x5B, 0x2A, 0x4D, 0x18, 0x80, 0, 0, 0,
				      'V', 'B', 'S', 'I', 'G', 0, 0, 1 };

bool vb_sig_is_trailer(const uint8_t *p)
{
	return memcmp(p, sig_head, sizeof(sig_head)) == 0;
}

/* The message signed: label, key id, SHA-256, LE64 length. */
static void sig_message(const uint8_t id[VB_KEY_ID_LEN], const uint8_t sha[32], uint64_t len,
			uint8_t msg[SIG_MSG])
{
	uint8_t *p = msg + sizeof(SIG_LABEL) - 1;

	memcpy(msg, SIG_LABEL, sizeof(SIG_LABEL) - 1);
	memcpy(p, id, VB_KEY_ID_LEN);
	memcpy(p + VB_KEY_ID_LEN, sha, 32);
	put_le64(p + VB_KEY_ID_LEN + 32, len);
}

int vb_sig_make(const struct vb_key *k, const uint8_t sha[32], uint64_t len,
		uint8_t out[VB_SIG_TRAILER])
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, k->ed25519, 32);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t msg[SIG_MSG];
	size_t slen = 64;
	int rc = -1;

	sig_message(k->pub.id, sha, len, msg);
	memcpy(out, sig_head, sizeof(sig_head));
	memcpy(out + 16, msg + sizeof(SIG_LABEL) - 1, VB_KEY_ID_LEN + 32 + 8);
	if (pk && md && EVP_DigestSignInit(md, NULL, NULL, NULL, pk) == 1 &&
	    EVP_DigestSign(md, out + 72, &slen, msg, sizeof(msg)) == 1 && slen == 64)
		rc = 0;
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	return rc;
}

static int sig_verify(const struct vb_pubkey *p, const uint8_t *t)
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, p->ed25519, 32);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t msg[SIG_MSG];
	uint64_t len = 0;
	int rc = -1;

	len = get_le64(t + 64);
	sig_message(t + 16, t + 32, len, msg);
	if (pk && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1 &&
	    EVP_DigestVerify(md, t + 72, 64, msg, sizeof(msg)) == 1)
		rc = 0;
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	return rc;
}

int vb_signature_check(const char *path, const struct vb_pubkey *p, struct vb_signature *sig,
		       struct vb_error *err)
{
	bool in_stdin = strcmp(path, "-") == 0;
	const char *name = in_stdin ? "standard input" : path;
	int fd = in_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	uint8_t *buf = malloc(VB_IO_BUFSIZE + VB_SIG_TRAILER), sha[32], *t;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char want[2 * VB_KEY_ID_LEN + 1], got[2 * VB_KEY_ID_LEN + 1];
	size_t held = 0;
	uint64_t total = 0, len = 0;
	unsigned int mdlen = 0;
	int rc = -1;
	ssize_t n;

	if (fd < 0) {
		vb_error_set(err, errno == ENOENT || errno == EACCES ? VB_E_USAGE : VB_E_FAIL, errno,
			     "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!buf || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	/* everything but the last VB_SIG_TRAILER bytes is hashed */
	while ((n = vb_io_read_full(fd, buf + held, VB_IO_BUFSIZE)) > 0) {
		size_t have = held + (size_t)n, hash = have > VB_SIG_TRAILER ? have - VB_SIG_TRAILER : 0;

		EVP_DigestUpdate(md, buf, hash);
		total += hash;
		memmove(buf, buf + hash, have - hash);
		held = have - hash;
	}
	if (n < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: read failed: %s", name, strerror(errno));
		goto out;
	}
	t = buf;
	if (held < VB_SIG_TRAILER || !vb_sig_is_trailer(t)) {
		vb_error_set(err, VB_E_INVALID, 0, "%s: not signed (no signature at its end)", name);
		goto out;
	}
	EVP_DigestFinal_ex(md, sha, &mdlen);
	len = get_le64(t + 64);
	vb_key_id_hex(p->id, want);
	vb_key_id_hex(t + 16, got);
	if (memcmp(t + 16, p->id, VB_KEY_ID_LEN) != 0)
		vb_error_set(err, VB_E_INVALID, 0, "%s: signed by key %s, not by %s", name, got, want);
	else if (sig_verify(p, t) < 0)
		vb_error_set(err, VB_E_INVALID, 0, "%s: the signature of key %s does not verify: "
			     "the signature was changed", name, got);
	else if (len != total || memcmp(sha, t + 32, 32) != 0)
		vb_error_set(err, VB_E_INVALID, 0, "%s: the archive differs from what key %s signed "
			     "(%llu bytes signed, %llu found; SHA-256 %s)", name, got,
			     (unsigned long long)len, (unsigned long long)total,
			     memcmp(sha, t + 32, 32) == 0 ? "the same" : "differs");
	else
		rc = 0;
	if (rc == 0 && sig) {
		memcpy(sig->key_id, t + 16, VB_KEY_ID_LEN);
		memcpy(sig->sha256, sha, 32);
		sig->length = len;
	}
out:
	EVP_MD_CTX_free(md);
	free(buf);
	if (fd >= 0 && !in_stdin)
		close(fd);
	return rc;
}
