/* crypt_reader.c: the input stack's decryption (doc/encryption.md): the
 * header's file key unwrapped with one of the given keys, then each chunk
 * opened in order; a chunk that does not authenticate (a wrong key,
 * damage, a chunk missing, moved or from another file) and a stream that
 * ends before its last chunk are VB_E_INVALID errors naming the offset. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/io/crypt_int.h"

#define SEALED (VB_CRYPT_CHUNK + VB_CRYPT_TAG)

struct vb_decrypt {
	int fd;
	const char *name;
	EVP_CIPHER_CTX *c;
	uint8_t key[32];
	uint8_t prefix[VB_CRYPT_PREFIX];
	uint8_t id[VB_KEY_ID_LEN];
	size_t chunk;           /* plaintext bytes of a chunk */
	uint32_t counter;       /* the next chunk's number */
	uint64_t off;           /* its offset in the file */
	bool last;              /* the last chunk was opened */
	/* random access (vb_decrypt_ra_new): the file's chunks, the one in out */
	uint64_t nchunks, last_sealed, plain_size, cached;
	uint8_t *in;            /* a sealed chunk and what follows it */
	size_t have;            /* bytes in it */
	bool eof;               /* the end of the file is in it */
	uint8_t *out;           /* its plaintext */
	size_t pos, len;        /* the plaintext not yet handed out */
};

void vb_decrypt_free(struct vb_decrypt *d)
{
	if (!d)
		return;
	EVP_CIPHER_CTX_free(d->c);
	if (d->out)
		OPENSSL_cleanse(d->out, d->chunk);
	free(d->in);
	free(d->out);
	OPENSSL_cleanse(d, sizeof(*d));
	free(d);
}

const uint8_t *vb_decrypt_key_id(const struct vb_decrypt *d)
{
	return d->id;
}

static int read_err(struct vb_decrypt *d, struct vb_error *err)
{
	int e = errno;

	if (e == ECANCELED || e == EINTR)
		return vb_error_set(err, VB_E_CANCELED, EINTR, "%s: interrupted", d->name);
	return vb_error_set(err, VB_E_FAIL, e, "%s: read failed: %s", d->name, strerror(e));
}

/* The file key from the header h, with the key of its id among keys. */
static int open_header(struct vb_decrypt *d, const uint8_t *h, const struct vb_key *const *keys,
		       size_t nkeys, struct vb_error *err)
{
	const struct vb_key *k = NULL;
	uint8_t shared[32], wrap[32], nonce[12] = { 0 }, tag[16];
	char id[2 * VB_KEY_ID_LEN + 1], have[2 * VB_KEY_ID_LEN + 1];
	int rc = -1;

	vb_key_id_hex(h + VB_CH_KEY_ID, id);
	if (h[VB_CH_VERSION] != VB_CRYPT_VERSION)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: encrypted archive of format version "
				    "%u: this vmaback reads version %u", d->name, h[VB_CH_VERSION],
				    VB_CRYPT_VERSION);
	if (h[VB_CH_CHUNK_LOG] < 10 || h[VB_CH_CHUNK_LOG] > 24)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: damaged encryption header at offset "
				    "0 (chunk size 2^%u)", d->name, h[VB_CH_CHUNK_LOG]);
	d->chunk = (size_t)1 << h[VB_CH_CHUNK_LOG];
	memcpy(d->id, h + VB_CH_KEY_ID, VB_KEY_ID_LEN);
	memcpy(d->prefix, h + VB_CH_PREFIX, VB_CRYPT_PREFIX);
	if (nkeys == 0)
		return vb_error_set(err, VB_E_USAGE, 0, "%s: the archive is encrypted to key %s: "
				    "give its key file with --key KEYFILE", d->name, id);
	for (size_t i = 0; i < nkeys && !k; i++)
		if (memcmp(vb_pubkey_id(vb_key_public(keys[i])), d->id, VB_KEY_ID_LEN) == 0)
			k = keys[i];
	if (!k) {
		vb_key_id_hex(vb_pubkey_id(vb_key_public(keys[0])), have);
		return vb_error_set(err, VB_E_INVALID, 0, "%s: wrong key: the archive is "
				    "encrypted to key %s, not to %s%s", d->name, id, have,
				    nkeys > 1 ? " or the others given" : "");
	}
	if (vb_crypt_x25519(k->x25519, h + VB_CH_EPHEMERAL, shared) < 0 ||
	    vb_crypt_wrap_key(shared, h + VB_CH_EPHEMERAL, k->pub.x25519, wrap) < 0)
		goto bad;
	memcpy(tag, h + VB_CH_WRAP_TAG, 16);
	if (vb_crypt_gcm(d->c, false, wrap, nonce, h, VB_CH_WRAPPED, h + VB_CH_WRAPPED, 32,
			 d->key, tag) < 0)
		goto bad;
	vb_crypt_nonce(d->prefix, UINT32_MAX, false, nonce);
	nonce[11] = 2;
	memcpy(tag, h + VB_CH_HEADER_TAG, 16);
	if (vb_crypt_gcm(d->c, false, d->key, nonce, h, VB_CH_HEADER_TAG, NULL, 0, NULL, tag) < 0)
		goto bad;
	rc = EVP_CipherInit_ex(d->c, EVP_aes_256_gcm(), NULL, d->key, NULL, 0) == 1 ? 0 : -1;
bad:
	if (rc < 0)
		vb_error_set(err, VB_E_INVALID, 0, "%s: the encryption header at offset 0 does not "
			     "authenticate with key %s: damaged, or not made for this key",
			     d->name, id);
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(wrap, sizeof(wrap));
	return rc;
}

struct vb_decrypt *vb_decrypt_new(int fd, const char *name, const uint8_t *head, size_t hlen,
				  const struct vb_key *const *keys, size_t nkeys,
				  struct vb_error *err)
{
	struct vb_decrypt *d = calloc(1, sizeof(*d));
	uint8_t h[VB_CRYPT_HEADER];
	ssize_t n;

	if (!d || !(d->c = EVP_CIPHER_CTX_new())) {
		free(d);
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	d->fd = fd;
	d->name = name;
	memcpy(h, head, hlen);
	n = vb_io_read_full(fd, h + hlen, VB_CRYPT_HEADER - hlen);
	if (n < 0) {
		read_err(d, err);
		goto fail;
	}
	if ((size_t)n < VB_CRYPT_HEADER - hlen) {
		vb_error_set(err, VB_E_INVALID, 0, "%s: truncated encryption header (%zu of %u "
			     "bytes)", name, hlen + (size_t)n, VB_CRYPT_HEADER);
		goto fail;
	}
	if (memcmp(h, VB_CRYPT_MAGIC, VB_CRYPT_MAGIC_LEN) != 0) {
		vb_error_set(err, VB_E_INVALID, 0, "%s: not an encrypted vmaback archive", name);
		goto fail;
	}
	if (open_header(d, h, keys, nkeys, err) < 0)
		goto fail;
	d->in = malloc(d->chunk + VB_CRYPT_TAG + VB_SIG_TRAILER);
	d->out = malloc(d->chunk);
	if (!d->in || !d->out) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto fail;
	}
	d->off = VB_CRYPT_HEADER;
	return d;
fail:
	vb_decrypt_free(d);
	return NULL;
}

/* Fills d->in: a chunk and VB_SIG_TRAILER bytes more, or up to the end
 * of the file (then without a signature trailer there), so that the last
 * chunk is known by the end of the file. */
static int fill(struct vb_decrypt *d, struct vb_error *err)
{
	size_t cap = d->chunk + VB_CRYPT_TAG + VB_SIG_TRAILER;
	ssize_t n;

	if (d->eof || d->have == cap)
		return 0;
	n = vb_io_read_full(d->fd, d->in + d->have, cap - d->have);
	if (n < 0)
		return read_err(d, err);
	d->have += (size_t)n;
	if (d->have < cap) {
		d->eof = true;
		if (d->have >= VB_SIG_TRAILER && vb_sig_is_trailer(d->in + d->have - VB_SIG_TRAILER))
			d->have -= VB_SIG_TRAILER;
	}
	return 0;
}

/* Reads and opens the next chunk into dst (d->out, or a caller's buffer
 * of a whole chunk): its plaintext's length, or -1. */
static ssize_t next_chunk(struct vb_decrypt *d, uint8_t *dst, struct vb_error *err)
{
	size_t sealed = d->chunk + VB_CRYPT_TAG, len, plain;
	uint8_t nonce[12], tag[16];
	bool last;

	if (fill(d, err) < 0)
		return -1;
	d->pos = d->len = 0;
	len = d->have < sealed ? d->have : sealed;
	last = d->eof && len == d->have;
	if (len < VB_CRYPT_TAG)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: truncated encrypted archive: "
				    "chunk %" PRIu32 " at offset %" PRIu64 " is %s", d->name,
				    d->counter, d->off, len == 0 ? "missing" : "cut short");
	plain = len - VB_CRYPT_TAG;
	memcpy(tag, d->in + plain, 16);
	vb_crypt_nonce(d->prefix, d->counter, last, nonce);
	if ((!last && d->counter == UINT32_MAX) ||
	    vb_crypt_gcm(d->c, false, NULL, nonce, NULL, 0, d->in, plain, dst, tag) < 0) {
		/* a whole chunk not marked last ends the file: cut at a boundary */
		nonce[11] = 0;
		if (last && len == sealed &&
		    vb_crypt_gcm(d->c, false, NULL, nonce, NULL, 0, d->in, plain, dst,
				 tag) == 0)
			return vb_error_set(err, VB_E_INVALID, 0, "%s: truncated encrypted "
					    "archive: chunk %" PRIu32 " at offset %" PRIu64
					    " is missing", d->name, d->counter + 1, d->off + len);
		return vb_error_set(err, VB_E_INVALID, 0, "%s: encrypted chunk %" PRIu32
				    " at offset %" PRIu64 " does not authenticate: damaged, "
				    "truncated, moved or from another archive", d->name,
				    d->counter, d->off);
	}
	if (dst == d->out)
		d->len = plain;
	d->last = last;
	d->counter++;
	d->off += len;
	d->have -= len;
	memmove(d->in, d->in + len, d->have);
	return (ssize_t)plain;
}

ssize_t vb_decrypt_read(struct vb_decrypt *d, void *buf, size_t len, struct vb_error *err)
{
	size_t done = 0;

	while (done < len) {
		size_t k;

		if (d->pos == d->len) {
			ssize_t n;

			if (d->last)
				break;
			/* a whole chunk wanted: opened in place, no copy */
			if (len - done >= d->chunk) {
				if ((n = next_chunk(d, (uint8_t *)buf + done, err)) < 0)
					return -1;
				done += (size_t)n;
				continue;
			}
			if (next_chunk(d, d->out, err) < 0)
				return -1;
			continue;
		}
		k = d->len - d->pos < len - done ? d->len - d->pos : len - done;
		memcpy((uint8_t *)buf + done, d->out + d->pos, k);
		d->pos += k;
		done += k;
	}
	return (ssize_t)done;
}

int vb_input_decrypt_to(const char *path, const struct vb_input_opts *o, int out_fd,
			struct vb_error *err)
{
	bool in_stdin = strcmp(path, "-") == 0;
	const char *name = in_stdin ? "standard input" : path;
	int fd = in_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	uint8_t magic[VB_CRYPT_MAGIC_LEN], *buf = NULL;
	struct vb_decrypt *d = NULL;
	int rc = -1, e;
	ssize_t n;

	if (fd < 0)
		return vb_error_set(err, errno == ENOENT || errno == EACCES ? VB_E_USAGE : VB_E_FAIL,
				    errno, "%s: %s", path, strerror(errno));
	n = vb_io_read_full(fd, magic, sizeof(magic));
	if (n < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: read failed: %s", name, strerror(errno));
		goto out;
	}
	if ((size_t)n < sizeof(magic) || memcmp(magic, VB_CRYPT_MAGIC, sizeof(magic)) != 0) {
		vb_error_set(err, VB_E_USAGE, 0, "%s: not an encrypted archive", name);
		goto out;
	}
	d = vb_decrypt_new(fd, name, magic, sizeof(magic), o ? o->keys : NULL, o ? o->nkeys : 0,
			   err);
	buf = malloc(VB_IO_BUFSIZE);
	if (!d || !buf) {
		if (d)
			vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	while ((n = vb_decrypt_read(d, buf, VB_IO_BUFSIZE, err)) > 0) {
		e = vb_write_all(out_fd, buf, (size_t)n);
		if (e < 0) {
			vb_error_set(err, e == -ECANCELED ? VB_E_CANCELED : VB_E_FAIL, -e,
				     "standard output: write failed: %s", strerror(-e));
			goto out;
		}
	}
	rc = n < 0 ? -1 : 0;
out:
	vb_decrypt_free(d);
	free(buf);
	if (!in_stdin)
		close(fd);
	return rc;
}

/* ------------------------------------------------------------ random access */

struct vb_decrypt *vb_decrypt_ra_new(int fd, const char *name, uint64_t fsize,
				     const struct vb_key *const *keys, size_t nkeys,
				     struct vb_error *err)
{
	struct vb_decrypt *d;
	uint8_t t[VB_SIG_TRAILER];
	uint64_t body, sealed;

	if (lseek(fd, 0, SEEK_SET) != 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: %s", name, strerror(errno));
		return NULL;
	}
	d = vb_decrypt_new(fd, name, (const uint8_t *)"", 0, keys, nkeys, err);
	if (!d)
		return NULL;
	/* a signature trailer is not part of the chunks */
	if (fsize >= VB_CRYPT_HEADER + VB_SIG_TRAILER &&
	    pread(fd, t, sizeof(t), (off_t)(fsize - sizeof(t))) == (ssize_t)sizeof(t) &&
	    vb_sig_is_trailer(t))
		fsize -= VB_SIG_TRAILER;
	sealed = d->chunk + VB_CRYPT_TAG;
	body = fsize - VB_CRYPT_HEADER;
	d->nchunks = body ? (body + sealed - 1) / sealed : 0;
	d->last_sealed = body - (d->nchunks ? d->nchunks - 1 : 0) * sealed;
	if (d->nchunks == 0 || d->last_sealed < VB_CRYPT_TAG || d->nchunks > (uint64_t)UINT32_MAX + 1) {
		vb_error_set(err, VB_E_INVALID, 0, "%s: truncated encrypted archive: chunk %" PRIu64
			     " at offset %" PRIu64 " is %s", name, d->nchunks ? d->nchunks - 1 : 0,
			     fsize - (d->nchunks ? d->last_sealed : 0), d->nchunks ? "cut short" :
			     "missing");
		vb_decrypt_free(d);
		return NULL;
	}
	d->plain_size = body - d->nchunks * VB_CRYPT_TAG;
	d->cached = UINT64_MAX;
	return d;
}

uint64_t vb_decrypt_size(const struct vb_decrypt *d)
{
	return d->plain_size;
}

/* Chunk i into d->out. */
static int ra_chunk(struct vb_decrypt *d, uint64_t i, struct vb_error *err)
{
	size_t sealed = d->chunk + VB_CRYPT_TAG;
	size_t len = i + 1 == d->nchunks ? (size_t)d->last_sealed : sealed, done = 0;
	uint64_t off = VB_CRYPT_HEADER + i * sealed;
	uint8_t nonce[12], tag[16];

	while (done < len) {
		ssize_t n = pread(d->fd, d->in + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? read_err(d, err)
				     : vb_error_set(err, VB_E_INVALID, 0, "%s: truncated encrypted "
						    "archive at offset %" PRIu64, d->name, off + done);
		done += (size_t)n;
	}
	memcpy(tag, d->in + len - VB_CRYPT_TAG, 16);
	vb_crypt_nonce(d->prefix, (uint32_t)i, i + 1 == d->nchunks, nonce);
	if (vb_crypt_gcm(d->c, false, NULL, nonce, NULL, 0, d->in, len - VB_CRYPT_TAG, d->out,
			 tag) < 0) {
		d->cached = UINT64_MAX;
		return vb_error_set(err, VB_E_INVALID, 0, "%s: encrypted chunk %" PRIu64 " at offset %"
				    PRIu64 " does not authenticate: damaged, truncated, moved or "
				    "from another archive", d->name, i, off);
	}
	d->cached = i;
	return 0;
}

ssize_t vb_decrypt_pread(struct vb_decrypt *d, void *buf, size_t len, uint64_t off,
			 struct vb_error *err)
{
	size_t done = 0;

	while (done < len && off + done < d->plain_size) {
		uint64_t p = off + done, i = p / d->chunk;
		size_t in = (size_t)(p % d->chunk), k;
		size_t have = i + 1 == d->nchunks ? (size_t)d->last_sealed - VB_CRYPT_TAG : d->chunk;

		if (d->cached != i && ra_chunk(d, i, err) < 0)
			return -1;
		k = have - in < len - done ? have - in : len - done;
		memcpy((uint8_t *)buf + done, d->out + in, k);
		done += k;
	}
	return (ssize_t)done;
}
