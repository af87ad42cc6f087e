/* test_crypt.c: unit tests of core/io's encryption layers (a second test
 * of io, linked with io and base only): the writer's chunking at every
 * boundary, the reader's refusals (wrong key, truncation, flipped bits,
 * reordering), key files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <zstd.h>

#include "core/io/crypt_int.h"

#include "tests/unit/test_support.h"

#define SEALED (VB_CRYPT_CHUNK + VB_CRYPT_TAG)

/* Encrypts len bytes of data to key k into path, written in pieces of
 * step; the layer's SHA-256 of its output is that of the file. */
static void encrypt_file(const char *path, const struct vb_key *k, const unsigned char *data,
			 size_t len, size_t step)
{
	struct vb_error err = { 0 };
	uint8_t md[32], want[32];
	uint64_t count = 0;
	unsigned int mdlen = 0;
	unsigned char *f;
	size_t flen;
	struct vb_writer *w = vb_crypt_writer_new(vb_sink_file_new(path, true, &err),
						  vb_key_public(k), md, &count, &err);

	assert_non_null(w);
	for (size_t off = 0; off < len; off += step)
		assert_int_equal(vb_writer_write(w, data + off, len - off < step ? len - off : step,
						 &err), 0);
	assert_int_equal(vb_writer_close(w, &err), 0);
	f = read_file(path, &flen);
	assert_int_equal(EVP_Digest(f, flen, want, &mdlen, EVP_sha256(), NULL), 1);
	assert_memory_equal(md, want, 32);
	assert_int_equal(count, flen);
	free(f);
}

/* Decrypts path with keys: the plaintext's length, or -1 with err set. */
static ssize_t decrypt_file(const char *path, const struct vb_key *const *keys, size_t n,
			    unsigned char *out, size_t cap, struct vb_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct vb_decrypt *d;
	ssize_t got;

	assert_true(fd >= 0);
	d = vb_decrypt_new(fd, path, (const uint8_t *)"", 0, keys, n, err);
	got = d ? vb_decrypt_read(d, out, cap, err) : -1;
	if (got >= 0 && (size_t)got == cap) {
		unsigned char extra;

		assert_int_equal(vb_decrypt_read(d, &extra, 1, err), 0);
	}
	vb_decrypt_free(d);
	close(fd);
	return got;
}

static void test_roundtrip_sizes(void **state)
{
	static const size_t sizes[] = { 0, 1, VB_CRYPT_CHUNK - 1, VB_CRYPT_CHUNK,
					VB_CRYPT_CHUNK + 1, 3 * VB_CRYPT_CHUNK, 300001 };
	struct vb_error err = { 0 };
	struct vb_key *k = vb_key_generate(&err);
	const struct vb_key *keys[] = { k };
	unsigned char *data = make_data(400000, 7), *out = malloc(400000);
	char *path = tpath(state, "a.enc");

	assert_non_null(k);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i], chunks = n ? (n + VB_CRYPT_CHUNK - 1) / VB_CRYPT_CHUNK : 1;
		struct stat st;

		unlink(path);
		encrypt_file(path, k, data, n, i % 2 ? 4093 : 1 << 20);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal((size_t)st.st_size, VB_CRYPT_HEADER + n + chunks * VB_CRYPT_TAG);
		assert_int_equal(st.st_mode & 0777, 0600);
		assert_int_equal(decrypt_file(path, keys, 1, out, n, &err), (ssize_t)n);
		assert_memory_equal(out, data, n);
	}
	free(path);
	free(data);
	free(out);
	vb_key_free(k);
}

/* Every refusal of the reader: each is VB_E_INVALID (a missing key
 * VB_E_USAGE) and names an offset where it can. */
static void test_refusals(void **state)
{
	struct vb_error err = { 0 };
	struct vb_key *k = vb_key_generate(&err), *other = vb_key_generate(&err);
	const struct vb_key *keys[] = { k }, *wrong[] = { other };
	size_t n = 3 * VB_CRYPT_CHUNK + 100, len;
	unsigned char *data = make_data(n, 3), *out = malloc(n), *f, *g;
	char *path = tpath(state, "a.enc"), *bad = tpath(state, "bad.enc");

	encrypt_file(path, k, data, n, 1 << 20);
	f = read_file(path, &len);
	g = malloc(len);
	assert_int_equal(decrypt_file(path, NULL, 0, out, n, &err), -1);
	assert_int_equal(err.cls, VB_E_USAGE);
	err = (struct vb_error){ 0 };
	assert_int_equal(decrypt_file(path, wrong, 1, out, n, &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_non_null(strstr(err.msg, "wrong key"));
	/* a flipped bit anywhere */
	for (size_t off = 0; off < len; off += 997) {
		memcpy(g, f, len);
		g[off] ^= 0x10;
		write_file(bad, g, len);
		err = (struct vb_error){ 0 };
		assert_int_equal(decrypt_file(bad, keys, 1, out, n, &err), -1);
		assert_int_equal(err.cls, VB_E_INVALID);
	}
	/* cut at every chunk boundary and inside */
	for (size_t cut = 0; cut < len; cut += SEALED / 2) {
		write_file(bad, f, cut);
		err = (struct vb_error){ 0 };
		assert_int_equal(decrypt_file(bad, keys, 1, out, n, &err), -1);
		assert_int_equal(err.cls, VB_E_INVALID);
	}
	/* chunks 0 and 1 swapped */
	memcpy(g, f, len);
	memcpy(g + VB_CRYPT_HEADER, f + VB_CRYPT_HEADER + SEALED, SEALED);
	memcpy(g + VB_CRYPT_HEADER + SEALED, f + VB_CRYPT_HEADER, SEALED);
	write_file(bad, g, len);
	err = (struct vb_error){ 0 };
	assert_int_equal(decrypt_file(bad, keys, 1, out, n, &err), -1);
	assert_non_null(strstr(err.msg, "chunk 0 at offset 132 does not authenticate"));
	free(path);
	free(bad);
	free(data);
	free(out);
	free(f);
	free(g);
	vb_key_free(k);
	vb_key_free(other);
}

/* Random access (serve): any range reads the plaintext; a damaged chunk
 * fails only the reads that touch it. */
static void test_random_access(void **state)
{
	struct vb_error err = { 0 };
	struct vb_key *k = vb_key_generate(&err);
	const struct vb_key *keys[] = { k };
	size_t n = 5 * VB_CRYPT_CHUNK + 777;
	unsigned char *data = make_data(n, 11), *out = malloc(n);
	char *path = tpath(state, "a.enc");
	struct vb_decrypt *d;
	struct stat st;
	int fd;

	encrypt_file(path, k, data, n, 1 << 20);
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0 && fstat(fd, &st) == 0);
	d = vb_decrypt_ra_new(fd, path, (uint64_t)st.st_size, keys, 1, &err);
	assert_non_null(d);
	assert_int_equal(vb_decrypt_size(d), n);
	for (unsigned i = 0; i < 200; i++) {
		size_t off = (size_t)rand() % n, len = (size_t)rand() % (3 * VB_CRYPT_CHUNK);
		size_t want = off + len > n ? n - off : len;

		assert_int_equal(vb_decrypt_pread(d, out, len, off, &err), (ssize_t)want);
		assert_memory_equal(out, data + off, want);
	}
	/* chunk 2 damaged */
	assert_int_equal(pwrite(fd, "x", 1, VB_CRYPT_HEADER + 2 * SEALED + 9), 1);
	assert_int_equal(vb_decrypt_pread(d, out, 100, 0, &err), 100);
	assert_int_equal(vb_decrypt_pread(d, out, 100, 2 * VB_CRYPT_CHUNK + 5, &err), -1);
	assert_int_equal(err.cls, VB_E_INVALID);
	assert_non_null(strstr(err.msg, "chunk 2 at offset"));
	vb_decrypt_free(d);
	close(fd);
	free(path);
	free(data);
	free(out);
	vb_key_free(k);
}

/* The input stack decrypts, then detects what is inside (here plain VMA
 * bytes), and names the key; without keys it refuses. */
static void test_input_stack(void **state)
{
	struct vb_error err = { 0 };
	struct vb_key *k = vb_key_generate(&err);
	const struct vb_key *keys[] = { k };
	struct vb_input_opts o = { .keys = keys, .nkeys = 1 };
	size_t n = 2 * VB_CRYPT_CHUNK + 5, got = 0;
	unsigned char *data = make_data(n, 5), *out = malloc(n + 1);
	char *path = tpath(state, "a.enc");
	struct vb_reader *r;
	ssize_t m;

	memcpy(data, "VMA", 4);
	encrypt_file(path, k, data, n, 1000);
	assert_null(vb_input_open_opts(path, -1, NULL, &err));
	assert_int_equal(err.cls, VB_E_USAGE);
	err = (struct vb_error){ 0 };
	r = vb_input_open_opts(path, -1, &o, &err);
	assert_non_null(r);
	assert_int_equal(vb_reader_compression(r), VB_COMP_NONE);
	assert_memory_equal(vb_reader_key_id(r), vb_pubkey_id(vb_key_public(k)), VB_KEY_ID_LEN);
	while ((m = vb_reader_read(r, out + got, n + 1 - got, &err)) > 0)
		got += (size_t)m;
	assert_int_equal(m, 0);
	assert_int_equal(got, n);
	assert_memory_equal(out, data, n);
	vb_reader_free(r);
	free(path);
	free(data);
	free(out);
	vb_key_free(k);
}

/* zstd inside the encryption, longer than the read-ahead rings: the
 * decryption and the decompression run on two threads in turn, and give
 * the same bytes; a damaged chunk far in is the decryption's error, after
 * the bytes before it. */
static void test_input_stack_zstd(void **state)
{
	struct vb_error err = { 0 };
	struct vb_key *k = vb_key_generate(&err);
	const struct vb_key *keys[] = { k };
	struct vb_input_opts o = { .keys = keys, .nkeys = 1 };
	size_t n = (size_t)11 << 20, cap = ZSTD_compressBound(n), zlen, got = 0, flen;
	unsigned char *data = make_data(n, 9), *z = malloc(cap), *out = malloc(n + 1), *f;
	char *path = tpath(state, "a.zst.enc");
	struct vb_reader *r;
	ssize_t m;

	assert_non_null(z);
	assert_non_null(out);
	zlen = ZSTD_compress(z, cap, data, n, 1);
	assert_false(ZSTD_isError(zlen));
	encrypt_file(path, k, z, zlen, 1 << 20);
	for (int damaged = 0; damaged < 2; damaged++) {
		err = (struct vb_error){ 0 };
		got = 0;
		r = vb_input_open_opts(path, -1, &o, &err);
		assert_non_null(r);
		assert_int_equal(vb_reader_compression(r), VB_COMP_ZSTD);
		while ((m = vb_reader_read(r, out + got, n + 1 - got, &err)) > 0)
			got += (size_t)m;
		if (!damaged) {
			assert_int_equal(m, 0);
			assert_int_equal(got, n);
			assert_memory_equal(out, data, n);
		} else {
			assert_int_equal(m, -1);
			assert_int_equal(err.cls, VB_E_INVALID);
			assert_non_null(strstr(err.msg, "does not authenticate"));
			assert_true(got < n);
			assert_memory_equal(out, data, got);
		}
		vb_reader_free(r);
		/* a byte of a chunk two thirds in */
		f = read_file(path, &flen);
		f[flen / 3 * 2] ^= 1;
		write_file(path, f, flen);
		free(f);
	}
	free(path);
	free(data);
	free(z);
	free(out);
	vb_key_free(k);
}

static void test_key_files(void **state)
{
	struct vb_error err = { 0 };
	struct vb_key *k = vb_key_generate(&err), *l;
	struct vb_pubkey *p;
	char *kf = tpath(state, "k.key"), *wf = tpath(state, "w.key"), *pf = tpath(state, "k.pub");
	struct stat st;

	assert_int_equal(vb_key_save(k, kf, NULL, NULL, &err), 0);
	assert_int_equal(stat(kf, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* never replaced */
	assert_int_equal(vb_key_save(k, kf, NULL, NULL, &err), -1);
	err = (struct vb_error){ 0 };
	l = vb_key_load(kf, NULL, &err);
	assert_non_null(l);
	assert_memory_equal(vb_pubkey_id(vb_key_public(l)), vb_pubkey_id(vb_key_public(k)),
			    VB_KEY_ID_LEN);
	vb_key_free(l);
	assert_int_equal(vb_key_save(k, wf, "pass word", NULL, &err), 0);
	assert_null(vb_key_load(wf, NULL, &err));
	assert_non_null(strstr(err.msg, "passphrase"));
	err = (struct vb_error){ 0 };
	assert_null(vb_key_load(wf, "pass Word", &err));
	assert_non_null(strstr(err.msg, "wrong passphrase"));
	err = (struct vb_error){ 0 };
	l = vb_key_load(wf, "pass word", &err);
	assert_non_null(l);
	assert_memory_equal(vb_pubkey_id(vb_key_public(l)), vb_pubkey_id(vb_key_public(k)),
			    VB_KEY_ID_LEN);
	vb_key_free(l);
	assert_int_equal(vb_pubkey_save(vb_key_public(k), pf, &err), 0);
	p = vb_pubkey_load(pf, &err);
	assert_non_null(p);
	assert_memory_equal(vb_pubkey_id(p), vb_pubkey_id(vb_key_public(k)), VB_KEY_ID_LEN);
	vb_pubkey_free(p);
	assert_null(vb_key_load(pf, NULL, &err));
	free(kf);
	free(wf);
	free(pf);
	vb_key_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_sizes, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_refusals, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_random_access, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_input_stack, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_input_stack_zstd, tdir_setup, tdir_teardown),
		cmocka_unit_test_setup_teardown(test_key_files, tdir_setup, tdir_teardown),
	};

	return cmocka_run_group_tests_name("crypt", tests, NULL, NULL);
}
