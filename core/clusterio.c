/* clusterio.c: writing one decoded cluster to a target file or device,
 * clipped at the drive's size: stored blocks only on a fresh sparse file,
 * the whole cluster (zeros included) where old data must be overwritten. */
#include <errno.h>
#include <unistd.h>

#include "core/core_int.h"

static int write_all_at(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

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
		rc = write_all_at(fd, c->data + (size_t)b * VMA_BLOCK_SIZE, len, off);
		if (rc < 0)
			return rc;
		if (written)
			*written += len;
		b = e;
	}
	return 0;
}
