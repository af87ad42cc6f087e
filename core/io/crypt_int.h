/* crypt_int.h: what the encryption layers of core/io share (the format of
 * doc/encryption.md); private to core/io (and its unit test). */
#ifndef VMABACK_CRYPT_INT_H
#define VMABACK_CRYPT_INT_H

#ifndef VB_MODULE_io
#error "core/io/crypt_int.h is private to core/io: include core/io/io.h"
#endif

#include <openssl/evp.h>

#include "core/io/io_int.h"

/* The header (doc/encryption.md, "Header"), all integers little-endian. */
#define VB_CRYPT_MAGIC "VBCRYPT\0"
#define VB_CRYPT_MAGIC_LEN 8
#define VB_CRYPT_VERSION 1
#define VB_CRYPT_CHUNK_LOG 16
#define VB_CRYPT_CHUNK ((size_t)1 << VB_CRYPT_CHUNK_LOG)
#define VB_CRYPT_TAG 16
#define VB_CRYPT_PREFIX 7
#define VB_CRYPT_HEADER 132
/* offsets in the header */
#define VB_CH_VERSION 8
#define VB_CH_CHUNK_LOG 9
#define VB_CH_KEY_ID 12
#define VB_CH_EPHEMERAL 28
#define VB_CH_WRAPPED 60
#define VB_CH_WRAP_TAG 92
#define VB_CH_PREFIX 108
#define VB_CH_HEADER_TAG 116 /* the file key's tag over bytes 0..115 */

#define VB_KEY_LEN 32

struct vb_pubkey {
	uint8_t x25519[32];
	uint8_t ed25519[32];
	uint8_t id[VB_KEY_ID_LEN];
};

struct vb_key {
	uint8_t secret[VB_KEY_LEN];
	uint8_t x25519[32];     /* derived private keys */
	uint8_t ed25519[32];
	struct vb_pubkey pub;
};

/* The key of a secret (its derived parts computed). */
struct vb_key *vb_key_from_secret(const uint8_t secret[VB_KEY_LEN], struct vb_error *err);
/* HKDF-SHA256 of ikm (salt, info) into out: 0 or -1. */
int vb_crypt_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		  const char *info, uint8_t *out, size_t out_len);
/* X25519 of a private key and a peer's public key: 0 or -1. */
int vb_crypt_x25519(const uint8_t priv[32], const uint8_t peer[32], uint8_t shared[32]);
/* The public key of an X25519 or Ed25519 private key (type EVP_PKEY_X25519
 * or EVP_PKEY_ED25519): 0 or -1. */
int vb_crypt_public_of(int type, const uint8_t priv[32], uint8_t pub[32]);
/* AES-256-GCM of one buffer with 12-byte nonce and aad; tag out (encrypt)
 * or checked (decrypt: -1 when it does not match). out may equal in. key
 * NULL: the key c was last given (its schedule is not computed again). */
int vb_crypt_gcm(EVP_CIPHER_CTX *c, bool enc, const uint8_t key[32], const uint8_t nonce[12],
		 const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
		 uint8_t *out, uint8_t tag[16]);
/* The wrapping key of a file key: HKDF of the X25519 secret, salted with
 * the ephemeral and the recipient's public keys. */
int vb_crypt_wrap_key(const uint8_t shared[32], const uint8_t eph[32], const uint8_t rcpt[32],
		      uint8_t wrap[32]);
/* A chunk's nonce: prefix, big-endian counter, last flag. */
void vb_crypt_nonce(const uint8_t prefix[VB_CRYPT_PREFIX], uint32_t counter, bool last,
		    uint8_t nonce[12]);

/* ------------------------------------------------------------ signatures */
#define VB_SIG_TRAILER 136
/* Whether the VB_SIG_TRAILER bytes at p are a signature trailer. */
bool vb_sig_is_trailer(const uint8_t *p);
/* The trailer signing the SHA-256 sha of len bytes with k: 0 or -1. */
int vb_sig_make(const struct vb_key *k, const uint8_t sha[32], uint64_t len,
		uint8_t out[VB_SIG_TRAILER]);

/* ------------------------------------------------------------ reading */
struct vb_decrypt;
/* Reads the header from fd (its first hlen bytes already read, in head),
 * finds its key among keys and unwraps the file key. */
struct vb_decrypt *vb_decrypt_new(int fd, const char *name, const uint8_t *head, size_t hlen,
				  const struct vb_key *const *keys, size_t nkeys,
				  struct vb_error *err);
/* Plaintext: len bytes, fewer only at the end (0: the end), or -1. */
ssize_t vb_decrypt_read(struct vb_decrypt *d, void *buf, size_t len, struct vb_error *err);
const uint8_t *vb_decrypt_key_id(const struct vb_decrypt *d);
/* Random access to the plaintext of the file fd (fsize bytes): chunks are
 * read with pread and opened when a read touches them. */
struct vb_decrypt *vb_decrypt_ra_new(int fd, const char *name, uint64_t fsize,
				     const struct vb_key *const *keys, size_t nkeys,
				     struct vb_error *err);
uint64_t vb_decrypt_size(const struct vb_decrypt *d);
/* Plaintext at off: the count (short only at the end), or -1. */
ssize_t vb_decrypt_pread(struct vb_decrypt *d, void *buf, size_t len, uint64_t off,
			 struct vb_error *err);
/* The keys vb_input_set_default gave (NULL: none). */
const struct vb_input_opts *vb_input_default_opts(void);
void vb_decrypt_free(struct vb_decrypt *d);

#endif
