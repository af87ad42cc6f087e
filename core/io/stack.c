/* stack.c: the one assembly of an archive's output stack over its sink
 * (backup and merge): the SHA-256 of the bytes as written, then zstd. */
#include "core/io/io.h"

struct vb_writer *vb_output_stack(struct vb_writer *sink, const struct vb_output_opts *o,
				  struct vb_error *err)
{
	struct vb_writer *w = sink, *z;

	if (o->sha256) {
		w = vb_hash_writer_new(sink, o->sha256, o->bytes, err);
		if (!w) {
			vb_writer_discard(sink);
			return NULL;
		}
	}
	if (!o->compress)
		return w;
	z = vb_zstd_writer_new(w, o->zstd_level, o->zstd_threads, err);
	if (!z)
		vb_writer_discard(w);
	return z;
}

bool vb_output_stack_plain(const struct vb_output_opts *o)
{
	return !o->compress;
}
