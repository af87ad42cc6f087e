/* core_int.h: helpers shared by core/ files only (not part of the public
 * interface): vmaback.json encoding and decoding, uuid formatting. */
#ifndef VMABACK_CORE_INT_H
#define VMABACK_CORE_INT_H

#include "core/core.h"

#define VB_META_NAME "vmaback.json"

struct vb_meta_drive_in {
	const char *name;
	unsigned dev_id;
	uint64_t size;
	uint64_t clusters;
	const char *source;   /* "file", "block" */
	const char *path;
};

/* Formats a uuid as 8-4-4-4-12 lowercase hex into out[37]. */
void vb_uuid_format(const uint8_t uuid[VMA_UUID_LEN], char out[37]);

/* What vmaback.json says of the archive as a whole. */
struct vb_meta_archive_in {
	const char *kind;
	const char *set;                /* NULL: no backup set */
	const char *checkpoint;
	const char *parent_checkpoint;
	const char *parent_uuid;
};

/* Builds vmaback.json for an archive. Returns a malloc'd string or NULL. */
char *vb_meta_build(const struct vb_meta_archive_in *a, const uint8_t uuid[VMA_UUID_LEN],
		    int64_t ctime, const struct vb_meta_drive_in *drives, size_t ndrives,
		    struct vb_error *err);
/* Reads the archive's metadata: vmaback.json when present (checked against
 * the header), else the header's devices. */
int vb_meta_load(struct vb_meta *m, struct vma_reader *r, const char *what,
		 struct vb_error *err);
void vb_meta_clear(struct vb_meta *m);

/* Completeness of one drive after the end of the stream (see vb_verify). */
int vb_archive_check_drive(struct vb_archive *a, unsigned dev_id, struct vb_error *err);

/* Writes cluster c at its place in fd, clipped at size: its stored blocks
 * (whole false: fd is a fresh sparse file) or all 64 KiB (absent blocks as
 * zeros). Adds the bytes written to *written. Returns 0 or -errno. */
int vb_put_cluster(int fd, const struct vma_cluster *c, uint64_t size, bool whole,
		   uint64_t *written);

/* All of buf or -errno; EINTR is retried unless vb_canceled() (then
 * -ECANCELED); pwrite_all at an offset. */
int vb_write_all(int fd, const void *buf, size_t len);
int vb_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* Callbacks for the streaming readers and writers; opaque points to an int fd. */
ssize_t vb_fd_read_cb(void *opaque, void *buf, size_t len);
int vb_fd_write_cb(void *opaque, const void *buf, size_t len);
/* n bytes as 2n lowercase hex digits and a NUL. */
void vb_hex(const uint8_t *d, size_t n, char *out);
/* Appends one line to a malloc'd string of notes for a person to read. */
void vb_notes_add(char **notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rounds a drive size up to a whole 512-byte sector, as Proxmox declares it. */
static inline uint64_t vb_round_sector(uint64_t size)
{
	return (size + 511) & ~(uint64_t)511;
}

/* adigests.c: the digests of the clusters one archive holds, per drive. */
struct vb_adigests {
	uint64_t size;          /* the drive's size */
	uint64_t n;
	uint8_t *entries;       /* n x (u64 cluster, digest), by cluster */
};
/* Writes the list for drive di of checkpoint c (from its digest map and the
 * state's bitmaps) into a new state file; *name NULL without a digest map. */
int vb_adigests_write(struct vb_state *s, const struct vb_ckpt *c, size_t di, char **name,
		      struct vb_error *err);
int vb_adigests_load(struct vb_state *s, const char *file, struct vb_adigests *out,
		     struct vb_error *err);
const uint8_t *vb_adigests_find(const struct vb_adigests *a, uint64_t i);

#endif
