/* fuzz_decrypt.c: libFuzzer target for the decryption of the input stack
 * (doc/encryption.md), with one fixed key. The first byte chooses: odd, the
 * rest is an encrypted file (mutated headers, tags, lengths): a refusal
 * says why and is VB_E_INVALID; even, the rest is a plaintext, encrypted
 * with the key in pieces of a fuzzed size: it must come back byte for byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/io/crypt_int.h"

static struct vb_key *fixed_key(void)
{
	static struct vb_key *k;
	uint8_t s[VB_KEY_LEN];
	struct vb_error err = { 0 };

	if (!k) {
		for (size_t i = 0; i < sizeof(s); i++)
			s[i] = (uint8_t)(i * 7 + 1);
		k = vb_key_from_secret(s, &err);
		if (!k)
			abort();
	}
	return k;
}

static int memfd_of(const uint8_t *d, size_t n)
{
	int fd = memfd_create("fuzz-decrypt", MFD_CLOEXEC);

	if (fd < 0 || (n && write(fd, d, n) != (ssize_t)n) || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	return fd;
}

/* Decrypts all of fd: the plaintext's length, or -1. */
static ssize_t decrypt_all(int fd, uint8_t *out, size_t cap, struct vb_error *err)
{
	const struct vb_key *keys[] = { fixed_key() };
	struct vb_decrypt *d = vb_decrypt_new(fd, "fuzz", (const uint8_t *)"", 0, keys, 1, err);
	size_t total = 0;
	ssize_t n = 0;

	while (d && total < cap && (n = vb_decrypt_read(d, out + total, cap - total, err)) > 0)
		total += (size_t)n;
	vb_decrypt_free(d);
	return !d || n < 0 ? -1 : (ssize_t)total;
}

static void roundtrip(const uint8_t *data, size_t size)
{
	static uint8_t out[1 << 20];
	struct vb_error err = { 0 };
	size_t step = size > 2 ? (size_t)data[0] * 97 + 1 : 1;
	int fd = memfd_create("fuzz-encrypt", MFD_CLOEXEC);
	struct vb_writer *w;

	if (fd < 0 || size > sizeof(out))
		abort();
	w = vb_crypt_writer_new(vb_sink_fd_new(fd, "fuzz", &err), vb_key_public(fixed_key()),
				NULL, NULL, &err);
	if (!w)
		abort();
	for (size_t off = 0; off < size; off += step)
		if (vb_writer_write(w, data + off, size - off < step ? size - off : step, &err) < 0)
			abort();
	if (vb_writer_close(w, &err) < 0 || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	if (decrypt_all(fd, out, sizeof(out), &err) != (ssize_t)size ||
	    memcmp(out, data, size) != 0)
		abort(); /* the plaintext does not come back */
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[1 << 20];
	struct vb_error err = { 0 };
	int fd;

	if (size == 0)
		return 0;
	if (!(data[0] & 1)) {
		if (size - 1 <= (1u << 20))
			roundtrip(data + 1, size - 1);
		return 0;
	}
	fd = memfd_of(data + 1, size - 1);
	if (decrypt_all(fd, out, sizeof(out), &err) < 0 &&
	    (err.msg[0] == '\0' || err.cls != VB_E_INVALID))
		abort(); /* a refusal says why, and it is the archive's fault */
	close(fd);
	return 0;
}
