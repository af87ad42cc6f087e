/* gather.c: the clusters of a plan that lie apart (a 1% incremental's
 * scattered changes) read together into one chunk buffer: one gathered read
 * (vb_source_preadv: through NBD, many requests in flight) instead of a
 * round trip per cluster. */
#include <errno.h>
#include <string.h>

#include "core/backup/backup_int.h"

/* At most this many pieces: a cluster may hold a few data extents. */
#define GATHER_PIECES (CHUNK_CLUSTERS * 4)

int gather_read(struct run *r, struct drive_job *j, const uint64_t *cl, size_t n,
		size_t *len, uint64_t *data_mask)
{
	struct vb_read_piece v[GATHER_PIECES];
	size_t nv = 0;
	uint64_t bytes = 0;

	*data_mask = 0;
	*len = 0;
	for (size_t k = 0; k < n; k++) {
		uint64_t off = cl[k] * VMA_CLUSTER_SIZE, pos = off;
		uint64_t end = j->size - off < VMA_CLUSTER_SIZE ? j->size : off + VMA_CLUSTER_SIZE;
		uint8_t *at = r->buf + k * VMA_CLUSTER_SIZE;
		bool has = false;

		/* holes of a cluster with data are zero; a cluster without
		 * data is never looked at (stored and hashed as zero) */
		while (pos < end) {
			uint64_t elen;
			bool data;

			if (vb_source_extent(j->src, pos, end - pos, &elen, &data, r->err) < 0)
				return -1;
			if (!data) {
				memset(at + (pos - off), 0, elen);
			} else if (nv == GATHER_PIECES) {
				/* a cluster of many small extents: read it whole */
				if (vb_source_pread(j->src, at + (pos - off), elen, pos, r->err) < 0)
					return -1;
				bytes += elen;
				has = true;
			} else {
				v[nv++] = (struct vb_read_piece){ .buf = at + (pos - off),
								  .len = elen, .off = pos };
				bytes += elen;
				has = true;
			}
			pos += elen;
		}
		if (has)
			*data_mask |= UINT64_C(1) << k;
		*len = k * VMA_CLUSTER_SIZE + (size_t)(end - off);
	}
	if (vb_ratelimit_take(r->rl, bytes, r->b->o.cancel) < 0)
		return vb_error_set(r->err, VB_E_CANCELED, EINTR, "drive %s: interrupted",
				    j->name);
	if (nv && vb_source_preadv(j->src, v, nv, r->err) < 0)
		return -1;
	r->res->bytes_read += bytes;
	vb_crash_point("mid-read");
	return 0;
}
