/* clusterio.c: writing one decoded cluster to a target file or device,
 * clipped at the drive's size: stored blocks only on a fresh sparse file,
 * the whole cluster (zeros included) where old data must be overwritten. */
#include "core/restore/restore_int.h"

int vb_put_cluster(int fd, const struct vma_cluster *c, uint64_t size, bool whole,
		   uint64_t *written)
{
	uint64_t base = (uint64_t)c->cluster_num * VMA_CLUSTER_SIZE;
	uint16_t mask = whole ? 0xffff : c->mask;

	for (unsigned b = 0; b < VMA_BLOCKS_PER_CLUSTER;) {
		unsigned e = b;
		uint64_t off, len;
		int rc;

		if (!(mask >> b & 1)) {
			b++;
			continue;
		}
		while (e < VMA_BLOCKS_PER_CLUSTER && (mask >> e & 1))
			e++;
		off = base + (uint64_t)b * VMA_BLOCK_SIZE;
		len = (uint64_t)(e - b) * VMA_BLOCK_SIZE;
		if (off >= size)
			break;
		if (off + len > size)
			len = size - off;
		rc = vb_pwrite_all(fd, c->data + (size_t)b * VMA_BLOCK_SIZE, len, off);
		if (rc < 0)
			return rc;
		if (written)
			*written += len;
		b = e;
	}
	return 0;
}
