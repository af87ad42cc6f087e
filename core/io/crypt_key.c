/* crypt_key.c: the keys of encrypted and signed archives (doc/encryption.md,
 * "Keys"): one random secret from which the X25519 (encryption) and Ed25519
 * (signature) keys derive; key files, passphrase wrapping (scrypt), public
 * key files, key ids; and the primitives the layers share (libcrypto). */
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "core/io/crypt_int.h"

#define SECRET_TYPE "vmaback-secret-key-v1"
#define SCRYPT_TYPE "vmaback-secret-key-v1-scrypt"
#define PUBLIC_TYPE "vmaback-public-key-v1"
#define SCRYPT_LOG_N 15
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SCRYPT_SALT 16
#define KEYFILE_MAX 4096

int vb_crypt_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		  const char *info, uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[5], *q = p;
	int rc;

	*q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	if (salt_len > 0)
		*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
	*q = OSSL_PARAM_construct_end();
	rc = c && EVP_KDF_derive(c, out, out_len, p) == 1 ? 0 : -1;
	EVP_KDF_CTX_free(c);
	EVP_KDF_free(kdf);
	return rc;
}

int vb_crypt_x25519(const uint8_t priv[32], const uint8_t peer[32], uint8_t shared[32])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
	EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
	EVP_PKEY_CTX *c = k ? EVP_PKEY_CTX_new(k, NULL) : NULL;
	size_t len = 32;
	int rc = -1;

	if (c && p && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, p) == 1 &&
	    EVP_PKEY_derive(c, shared, &len) == 1 && len == 32)
		rc = 0;
	EVP_PKEY_CTX_free(c);
	EVP_PKEY_free(p);
	EVP_PKEY_free(k);
	return rc;
}

int vb_crypt_public_of(int type, const uint8_t priv[32], uint8_t pub[32])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(type, NULL, priv, 32);
	size_t len = 32;
	int rc = k && EVP_PKEY_get_raw_public_key(k, pub, &len) == 1 && len == 32 ? 0 : -1;

	EVP_PKEY_free(k);
	return rc;
}

int vb_crypt_gcm(EVP_CIPHER_CTX *c, bool enc, const uint8_t key[32], const uint8_t nonce[12],
		 const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
		 uint8_t *out, uint8_t tag[16])
{
	uint8_t none[16];
	int n = 0;

	/* key NULL: the context's key stays (its schedule is not redone) */
	if (key && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce, enc) != 1)
		return -1;
	if (!key && EVP_CipherInit_ex(c, NULL, NULL, NULL, nonce, enc) != 1)
		return -1;
	if (aad_len > 0 && EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) != 1)
		return -1;
	if (len > 0 && (EVP_CipherUpdate(c, out, &n, in, (int)len) != 1 || (size_t)n != len))
		return -1;
	if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1)
		return -1;
	if (EVP_CipherFinal_ex(c, out ? out + len : none, &n) != 1)
		return -1;
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
		return -1;
	return 0;
}

int vb_crypt_wrap_key(const uint8_t shared[32], const uint8_t eph[32], const uint8_t rcpt[32],
		      uint8_t wrap[32])
{
	uint8_t salt[64];

	memcpy(salt, eph, 32);
	memcpy(salt + 32, rcpt, 32);
	return vb_crypt_hkdf(shared, 32, salt, sizeof(salt), "vmaback-v1 wrap", wrap, 32);
}

void vb_crypt_nonce(const uint8_t prefix[VB_CRYPT_PREFIX], uint32_t counter, bool last,
		    uint8_t nonce[12])
{
	memcpy(nonce, prefix, VB_CRYPT_PREFIX);
	put_be32(nonce + 7, counter);
	nonce[11] = last ? 1 : 0;
}

static int pub_id(struct vb_pubkey *p)
{
	static const char label[] = "vmaback-v1 key id";
	uint8_t buf[sizeof(label) - 1 + 64], md[32];
	unsigned int len = 0;

	memcpy(buf, label, sizeof(label) - 1);
	memcpy(buf + sizeof(label) - 1, p->x25519, 32);
	memcpy(buf + sizeof(label) - 1 + 32, p->ed25519, 32);
	if (EVP_Digest(buf, sizeof(buf), md, &len, EVP_sha256(), NULL) != 1)
		return -1;
	memcpy(p->id, md, VB_KEY_ID_LEN);
	return 0;
}

struct vb_key *vb_key_from_secret(const uint8_t secret[VB_KEY_LEN], struct vb_error *err)
{
	struct vb_key *k = calloc(1, sizeof(*k));

	if (!k) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	memcpy(k->secret, secret, VB_KEY_LEN);
	if (vb_crypt_hkdf(secret, VB_KEY_LEN, NULL, 0, "vmaback-v1 x25519", k->x25519, 32) < 0 ||
	    vb_crypt_hkdf(secret, VB_KEY_LEN, NULL, 0, "vmaback-v1 ed25519", k->ed25519, 32) < 0 ||
	    vb_crypt_public_of(EVP_PKEY_X25519, k->x25519, k->pub.x25519) < 0 ||
	    vb_crypt_public_of(EVP_PKEY_ED25519, k->ed25519, k->pub.ed25519) < 0 ||
	    pub_id(&k->pub) < 0) {
		vb_key_free(k);
		vb_error_set(err, VB_E_FAIL, 0, "libcrypto cannot derive the key's parts");
		return NULL;
	}
	return k;
}

struct vb_key *vb_key_generate(struct vb_error *err)
{
	uint8_t s[VB_KEY_LEN];
	struct vb_key *k;

	if (RAND_priv_bytes(s, sizeof(s)) != 1) {
		vb_error_set(err, VB_E_FAIL, 0, "no random bytes from libcrypto");
		return NULL;
	}
	k = vb_key_from_secret(s, err);
	OPENSSL_cleanse(s, sizeof(s));
	return k;
}

void vb_key_free(struct vb_key *k)
{
	if (!k)
		return;
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

const struct vb_pubkey *vb_key_public(const struct vb_key *k)
{
	return &k->pub;
}

void vb_key_id_hex(const uint8_t id[VB_KEY_ID_LEN], char hex[2 * VB_KEY_ID_LEN + 1])
{
	vb_hex(id, VB_KEY_ID_LEN, hex);
}

const uint8_t *vb_pubkey_id(const struct vb_pubkey *p)
{
	return p->id;
}

struct vb_pubkey *vb_pubkey_dup(const struct vb_pubkey *p)
{
	struct vb_pubkey *d = malloc(sizeof(*d));

	if (d)
		*d = *p;
	return d;
}

void vb_pubkey_free(struct vb_pubkey *p)
{
	free(p);
}

/* ------------------------------------------------------------ key files */

/* A typo check for keys copied by hand: the first 2 bytes of SHA-256. */
static void check2(const uint8_t *d, size_t n, uint8_t out[2])
{
	uint8_t md[32];
	unsigned int len = 0;

	EVP_Digest(d, n, md, &len, EVP_sha256(), NULL);
	out[0] = md[0];
	out[1] = md[1];
}

/* Hex in groups of 4, 8 groups a line: the paper form, also the file's. */
static void put_hex(FILE *f, const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i += 2) {
		fprintf(f, "%02x%02x", d[i], i + 1 < n ? d[i + 1] : 0);
		fputc(i + 2 >= n ? '\n' : (i / 2) % 8 == 7 ? '\n' : '-', f);
	}
}

/* The text of a key file (malloc'd), or NULL. */
static char *key_text(const struct vb_key *k, const char *pass, struct vb_error *err)
{
	char *text = NULL, id[2 * VB_KEY_ID_LEN + 1];
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	uint8_t blob[SCRYPT_SALT + VB_KEY_LEN + 16 + 2], wrap[32], nonce[12] = { 0 };
	EVP_CIPHER_CTX *c = NULL;
	int bad = 0;

	if (!f) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	vb_key_id_hex(k->pub.id, id);
	fprintf(f, "# vmaback secret key %s\n# Keep it secret and keep a copy: restoring "
		"the backups encrypted to it needs it.\n", id);
	if (!pass) {
		memcpy(blob, k->secret, VB_KEY_LEN);
		check2(blob, VB_KEY_LEN, blob + VB_KEY_LEN);
		fprintf(f, "%s\n", SECRET_TYPE);
		put_hex(f, blob, VB_KEY_LEN + 2);
	} else {
		c = EVP_CIPHER_CTX_new();
		bad = !c || RAND_bytes(blob, SCRYPT_SALT) != 1 ||
		      EVP_PBE_scrypt(pass, strlen(pass), blob, SCRYPT_SALT, 1u << SCRYPT_LOG_N,
				     SCRYPT_R, SCRYPT_P, 256u << 20, wrap, 32) != 1 ||
		      vb_crypt_gcm(c, true, wrap, nonce, (const uint8_t *)SCRYPT_TYPE,
				   strlen(SCRYPT_TYPE), k->secret, VB_KEY_LEN, blob + SCRYPT_SALT,
				   blob + SCRYPT_SALT + VB_KEY_LEN) < 0;
		check2(blob, sizeof(blob) - 2, blob + sizeof(blob) - 2);
		fprintf(f, "%s %d %d %d\n", SCRYPT_TYPE, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P);
		put_hex(f, blob, sizeof(blob));
		EVP_CIPHER_CTX_free(c);
		OPENSSL_cleanse(wrap, sizeof(wrap));
	}
	OPENSSL_cleanse(blob, sizeof(blob));
	if (fclose(f) != 0 || bad) {
		if (text)
			OPENSSL_cleanse(text, size);
		free(text);
		vb_error_set(err, VB_E_FAIL, 0, "libcrypto cannot wrap the key");
		return NULL;
	}
	return text;
}

/* Writes text to a new file path (0600, published; never replaced). */
static int write_new(const char *path, const char *text, struct vb_error *err)
{
	struct vb_tempfile *t = vb_tempfile_new(path, err);
	int rc;

	if (!t)
		return -1;
	rc = vb_write_all(vb_tempfile_fd(t), text, strlen(text));
	if (rc < 0) {
		vb_tempfile_discard(t);
		return vb_error_set(err, VB_E_FAIL, -rc, "%s: write failed: %s", path, strerror(-rc));
	}
	return vb_tempfile_publish(t, false, err) < 0 ? -1 : 0;
}

int vb_key_save(const struct vb_key *k, const char *path, const char *passphrase, FILE *paper,
		struct vb_error *err)
{
	char *text = key_text(k, passphrase, err);
	int rc;

	if (!text)
		return -1;
	rc = write_new(path, text, err);
	if (rc == 0 && paper)
		fputs(text, paper);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	return rc;
}

int vb_pubkey_save(const struct vb_pubkey *p, const char *path, struct vb_error *err)
{
	char *text = NULL, id[2 * VB_KEY_ID_LEN + 1];
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	uint8_t blob[66];
	int rc;

	if (!f)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	memcpy(blob, p->x25519, 32);
	memcpy(blob + 32, p->ed25519, 32);
	check2(blob, 64, blob + 64);
	vb_key_id_hex(p->id, id);
	fprintf(f, "# vmaback public key %s\n%s\n", id, PUBLIC_TYPE);
	put_hex(f, blob, sizeof(blob));
	if (fclose(f) != 0) {
		free(text);
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	}
	rc = write_new(path, text, err);
	free(text);
	return rc;
}

/* The file at path (at most KEYFILE_MAX bytes): its type line (the first
 * that is not a comment, in type, malloc'd text) and the hex digits after
 * it decoded into blob (exactly n bytes). */
static int read_keyfile(const char *path, char *type, size_t tsize, uint8_t *blob, size_t n,
			struct vb_error *err)
{
	FILE *f = fopen(path, "re");
	char line[256];
	size_t digits = 0;
	bool have_type = false;
	int rc = 0;

	if (!f)
		return vb_error_set(err, errno == ENOENT || errno == EACCES ? VB_E_USAGE : VB_E_FAIL,
				    errno, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (!have_type) {
			line[strcspn(line, "\r\n")] = '\0';
			snprintf(type, tsize, "%s", line);
			have_type = true;
			continue;
		}
		for (char *s = line; *s; s++) {
			int v = *s >= '0' && *s <= '9' ? *s - '0' : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
				: *s >= 'A' && *s <= 'F' ? *s - 'A' + 10 : -1;

			if (v < 0) {
				if (*s != '-' && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
					rc = -1;
				continue;
			}
			if (digits < 2 * n)
				blob[digits / 2] = (uint8_t)(digits % 2 ? blob[digits / 2] | v : v << 4);
			digits++;
		}
		if (ftell(f) > KEYFILE_MAX)
			rc = -1;
	}
	fclose(f);
	OPENSSL_cleanse(line, sizeof(line));
	if (!have_type || rc < 0 || digits != 2 * n)
		return vb_error_set(err, VB_E_USAGE, 0, "%s: not a vmaback key file (or damaged)",
				    path);
	return 0;
}

static int check_ok(const char *path, const uint8_t *blob, size_t n, struct vb_error *err)
{
	uint8_t c[2];

	check2(blob, n - 2, c);
	if (memcmp(c, blob + n - 2, 2) != 0)
		return vb_error_set(err, VB_E_USAGE, 0, "%s: the key's check digits do not match "
				    "(a typo, or a damaged key file)", path);
	return 0;
}

struct vb_key *vb_key_load(const char *path, const char *passphrase, struct vb_error *err)
{
	char type[256] = "";
	uint8_t blob[SCRYPT_SALT + VB_KEY_LEN + 16 + 2], wrap[32], nonce[12] = { 0 }, s[32];
	struct vb_key *k = NULL;
	int logn, r, p;
	EVP_CIPHER_CTX *c;

	struct vb_error first = { 0 };

	if (read_keyfile(path, type, sizeof(type), blob, VB_KEY_LEN + 2, &first) == 0) {
		if (strcmp(type, SECRET_TYPE) != 0) {
			vb_error_set(err, VB_E_USAGE, 0, "%s: not a vmaback secret key file", path);
			return NULL;
		}
		if (check_ok(path, blob, VB_KEY_LEN + 2, err) == 0)
			k = vb_key_from_secret(blob, err);
		OPENSSL_cleanse(blob, sizeof(blob));
		return k;
	}
	if (strcmp(type, PUBLIC_TYPE) == 0) {
		vb_error_set(err, VB_E_USAGE, 0, "%s: a public key file: reading needs the secret "
			     "key (not a vmaback secret key file)", path);
		return NULL;
	}
	if (strncmp(type, SCRYPT_TYPE " ", strlen(SCRYPT_TYPE) + 1) != 0) {
		if (err)
			*err = first;
		return NULL;
	}
	if (read_keyfile(path, type, sizeof(type), blob, sizeof(blob), err) < 0 ||
	    check_ok(path, blob, sizeof(blob), err) < 0)
		return NULL;
	if (sscanf(type + strlen(SCRYPT_TYPE), "%d %d %d", &logn, &r, &p) != 3 || logn < 10 ||
	    logn > 22 || r < 1 || r > 32 || p < 1 || p > 16) {
		vb_error_set(err, VB_E_USAGE, 0, "%s: bad scrypt parameters", path);
		return NULL;
	}
	if (!passphrase) {
		vb_error_set(err, VB_E_USAGE, 0, "%s: the key is protected by a passphrase: give "
			     "the file holding it (--passphrase-file, or VMABACK_PASSPHRASE_FILE)",
			     path);
		return NULL;
	}
	c = EVP_CIPHER_CTX_new();
	if (!c || EVP_PBE_scrypt(passphrase, strlen(passphrase), blob, SCRYPT_SALT, 1u << logn,
				 (uint64_t)r, (uint64_t)p, 1u << 30, wrap, 32) != 1) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "%s: scrypt failed", path);
	} else if (vb_crypt_gcm(c, false, wrap, nonce, (const uint8_t *)SCRYPT_TYPE,
				strlen(SCRYPT_TYPE), blob + SCRYPT_SALT, VB_KEY_LEN, s,
				blob + SCRYPT_SALT + VB_KEY_LEN) < 0) {
		vb_error_set(err, VB_E_USAGE, 0, "%s: wrong passphrase", path);
	} else {
		k = vb_key_from_secret(s, err);
	}
	EVP_CIPHER_CTX_free(c);
	OPENSSL_cleanse(s, sizeof(s));
	OPENSSL_cleanse(wrap, sizeof(wrap));
	OPENSSL_cleanse(blob, sizeof(blob));
	return k;
}

struct vb_pubkey *vb_pubkey_load(const char *path, struct vb_error *err)
{
	char type[256] = "";
	uint8_t blob[66];
	struct vb_pubkey *p;
	struct vb_key *k;

	struct vb_error first = { 0 };

	if (read_keyfile(path, type, sizeof(type), blob, sizeof(blob), &first) < 0 ||
	    strcmp(type, PUBLIC_TYPE) != 0) {
		/* a secret key file gives its public key too */
		k = vb_key_load(path, NULL, err);
		if (!k)
			return NULL;
		p = malloc(sizeof(*p));
		if (p)
			*p = k->pub;
		vb_key_free(k);
		if (!p)
			vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return p;
	}
	if (check_ok(path, blob, sizeof(blob), err) < 0)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	memcpy(p->x25519, blob, 32);
	memcpy(p->ed25519, blob + 32, 32);
	pub_id(p);
	return p;
}
