/* stack.c: the one assembly of an archive's output stack over its sink
 * (backup and merge): the SHA-256 of the bytes as written (and their
 * signature), then the encryption, then zstd. */
#include "core/io/io.h"

struct vb_writer *vb_output_stack(struct vb_writer *sink, const struct vb_output_opts *o,
				  struct vb_error *err)
{
	struct vb_writer *w = sink, *up;
	/* encrypted and not signed: the encryption's helper thread hashes */
	bool crypt_hashes = o->encrypt_to && o->sha256 && !o->sign;

	if ((o->sha256 || o->sign) && !crypt_hashes) {
		w = vb_hash_writer_signed(sink, o->sha256, o->bytes, o->sign, err);
		if (!w) {
			vb_writer_discard(sink);
			return NULL;
		}
	}
	if (o->encrypt_to) {
		up = vb_crypt_writer_new(w, o->encrypt_to, crypt_hashes ? o->sha256 : NULL,
					 crypt_hashes ? o->bytes : NULL, err);
		if (!up) {
			vb_writer_discard(w);
			return NULL;
		}
		w = up;
	}
	if (!o->compress)
		return w;
	up = vb_zstd_writer_new(w, o->zstd_level, o->zstd_threads, err);
	if (!up)
		vb_writer_discard(w);
	return up;
}
