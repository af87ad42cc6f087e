/* source.h: the drives a backup reads: raw files and block devices, NBD
 * exports, image files QEMU understands (through qemu-nbd), and the QEMU
 * helpers restore targets share with them. Uses bitmap, io, base. */
#ifndef VMABACK_SOURCE_H
#define VMABACK_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "core/base/base.h"

struct bitmap;
struct vb_source;

/* ============================================================== sources */

/* Opens a drive's source read-only. spec is
 *   PATH         a regular file or a block device, raw ("raw"); a regular
 *                file whose name ends in .qcow2, .vmdk, .vdi or .vhdx is
 *                that image format. The content never decides: a guest
 *                writes the bytes of its raw disk (design.md §5);
 *   raw:PATH     a raw file or device, whatever its name;
 *   qcow2:PATH, vmdk:PATH, vdi:PATH, vhdx:PATH
 *                an image file read through a qemu-nbd that libnbd starts
 *                (read-only, socket activation) and stops at close; kind
 *                "qcow2", ...; backing chains are read as QEMU reads them;
 *   nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH, nbds://...
 *                an NBD export ("nbd").
 * Holes and zeros (SEEK_HOLE, NBD base:allocation) are never read.
 * A directory, FIFO, socket or character device, a missing file or a
 * 0-byte source is a VB_E_USAGE error naming the drive; an image another
 * program writes (a running VM) is VB_E_LOCKED. */
struct vb_source *vb_source_open(const char *drive, const char *spec, struct vb_error *err);
/* Like vb_source_open, and negotiates the source's dirty bitmap NAME at
 * connection time (qemu-nbd -B NAME, the qemu:dirty-bitmap:NAME metadata
 * context), which vb_source_dirty_bitmap then reads; bitmap NULL is
 * vb_source_open. Sources without bitmaps ignore it. */
struct vb_source *vb_source_open_bitmap(const char *drive, const char *spec,
					const char *bitmap, struct vb_error *err);
uint64_t vb_source_size(const struct vb_source *s);
const char *vb_source_kind(const struct vb_source *s);   /* "raw", ... */
/* Describes the range starting at off: *len bytes (>= 1, up to max) that are
 * all data (*data true) or all known zero (holes). */
int vb_source_extent(struct vb_source *s, uint64_t off, uint64_t max, uint64_t *len,
		     bool *data, struct vb_error *err);
/* Reads exactly len bytes at off; a short read (the source shrank) or an I/O
 * error is a VB_E_FAIL naming the drive and offset. */
int vb_source_pread(struct vb_source *s, void *buf, size_t len, uint64_t off,
		    struct vb_error *err);
/* The source's own dirty bitmap NAME (clusters changed since the bitmap was
 * started), mapped onto 64 KiB clusters: 1 with *out set, 0 when this kind
 * of source has no bitmaps, -1 on error (no such bitmap, or one that was not
 * negotiated by vb_source_open_bitmap: VB_E_USAGE). Reads only the bitmap
 * (NBD block status), never the data. */
int vb_source_dirty_bitmap(struct vb_source *s, const char *name, struct bitmap **out,
			   struct vb_error *err);
void vb_source_close(struct vb_source *s);

/* ============================================================== specs */

/* What a --drive or --target spec names. */
enum vb_spec_kind {
	VB_SPEC_RAW,    /* a regular file or block device, read with pread */
	VB_SPEC_NBD,    /* an NBD URI (nbd://, nbd+unix://, nbds://, ...) */
	VB_SPEC_IMAGE,  /* an image file served by qemu-nbd */
};

struct vb_spec {
	enum vb_spec_kind kind;
	const char *format;   /* image: "qcow2", "vmdk", "vdi", "vhdx" */
	const char *path;     /* raw and image: the file (points into the spec) */
};

/* Splits spec: "FMT:PATH" for the image formats and "raw:PATH", NBD URIs,
 * else a path: an image when it is a regular file (stat) whose name ends
 * in ".FMT", else raw. Never opens or reads the file: its content is the
 * guest's (unusable paths are left to the raw source to report). */
int vb_spec_parse(const char *drive, const char *spec, struct vb_spec *out,
		  struct vb_error *err);
/* The decision itself, without the file system: regular says whether the
 * plain path is a regular file. */
void vb_spec_classify(const char *spec, bool regular, struct vb_spec *out);
/* Only the prefix: "FMT:", "raw:", NBD URIs; any other path is raw. */
void vb_spec_split(const char *spec, struct vb_spec *out);
bool vb_spec_is_nbd(const char *spec);
/* Whether two stat results are one object: block devices by the device
 * they name (st_rdev: two nodes for one disk are one), everything else by
 * st_dev and st_ino (hard links, symbolic links already followed). */
bool vb_same_object(const struct stat *a, const struct stat *b);

/* ============================================================== QEMU's tools */

/* A path qemu-img and qemu-nbd read as a file name, never as "proto:...":
 * relative paths get "./". malloc'd, NULL if out of memory. */
char *vb_qemu_path(const char *path);

/* A temporary file (unlinked, close-on-exec) for a child's output; -1. */
int vb_tmpfile(void);
/* The end of what a child wrote to fd, as one line ("; " between its
 * lines), or "". */
void vb_text_line(int fd, char *buf, size_t len);
/* Whether a QEMU tool's message says another program holds the image. */
bool vb_qemu_locked(const char *why);
/* `qemu-img create -f FORMAT PATH SIZE`; 0 or -1 naming what. */
int vb_qemu_img_create(const char *what, const char *format, const char *path, uint64_t size,
		       struct vb_error *err);

/* `qemu-img create -f qcow2 -u -b BACKING -F raw PATH SIZE`: an overlay
 * whose backing file (an NBD URI, say) is not opened now. 0 or -1. */
int vb_qemu_img_overlay(const char *what, const char *path, const char *backing, uint64_t size,
			struct vb_error *err);

/* A connected libnbd handle and what it is for messages. */
struct nbd_handle;
struct vb_nbd_conn {
	struct nbd_handle *h;
	int log_fd;           /* qemu-nbd's stderr (a temporary file), or -1 */
	uint64_t size;
	uint64_t max_io;      /* the largest request the server takes */
};

/* Connects to uri, or (uri NULL) starts argv (qemu-nbd) by socket
 * activation with its stderr in a temporary file. contexts: metadata
 * contexts to ask for (NULL-terminated, may be NULL). what names the drive
 * or target in messages. A failure to start qemu-nbd because another
 * program holds the image is VB_E_LOCKED. */
int vb_nbd_connect(struct vb_nbd_conn *c, const char *what, const char *uri,
		   char **argv, const char *const *contexts, struct vb_error *err);
/* Shuts the connection down and waits for qemu-nbd; NULL handle: no-op. */
void vb_nbd_disconnect(struct vb_nbd_conn *c);
/* libnbd's last error, with qemu-nbd's own message when it printed one. */
void vb_nbd_why(const struct vb_nbd_conn *c, char *buf, size_t len);

struct vb_qbitmap {
	char *name;
	bool enabled;         /* "auto": recording writes */
	bool in_use;          /* "in-use": a writer has it open or crashed with it */
};

/* The persistent bitmaps of a qcow2 file (`qemu-img info`), which also
 * fails with VB_E_LOCKED when another program writes the image. */
int vb_qcow2_bitmaps(const char *what, const char *path, struct vb_qbitmap **out, size_t *n,
		     struct vb_error *err);
void vb_qcow2_bitmaps_free(struct vb_qbitmap *b, size_t n);
/* `qemu-img bitmap OP -f qcow2 PATH NAME`; OP "--add" (enabled, 64 KiB
 * granularity), "--disable" or "--remove". */
int vb_qcow2_bitmap_op(const char *what, const char *path, const char *op, const char *name,
		       struct vb_error *err);

/* ============================================================== running VMs */

/* A running QEMU driven over its QMP socket (live.c, live_run.c; the
 * sequence and its crash reasoning are in docs live-vm.md). Everything
 * vmaback makes in QEMU is named vmaback-* (block nodes, exports),
 * vmaback/SET/CHECKPOINT (the one persistent bitmap per drive, always
 * enabled, of the set's latest committed checkpoint) and vmaback-tmp/SET
 * (a run's disabled, temporary bitmap); a run starts by removing every
 * such object a crashed run left, and touches nothing else. */
struct vb_live;

struct vb_live_opts {
	const char *qmp;           /* the VM's QMP socket */
	const char *set;           /* the backup set: bitmap names */
	const char *scratch_dir;   /* the fleecing scratch files (exists) */
	const char *run_dir;       /* the VM's lock and NBD socket (exists, 0700) */
	const char *qga;           /* --fsfreeze: the guest agent's socket, or NULL */
	/* --drive NAME=qmp:DEVICE: only these drives, in this order (DEVICE:
	 * a device id, QOM path, drive id or node name); n 0: every
	 * writable disk with media a device uses. */
	const char *const *names, *const *devices;
	size_t ndrives;
	int timeout_ms;            /* per QMP command; 0: 30 s */
};

struct vb_live_drive {
	char *name;                /* in the archive: drive-virtio0, ... */
	char *node;                /* the node its device writes to */
	char *qdev;                /* the device's QOM path */
	uint64_t size;
	/* After vb_live_recover: the bitmap of the checkpoint kept is there
	 * and consistent; else why not (a note). */
	bool has_bitmap;
	char *why;
	/* After vb_live_start: the export to read, and the name of its dirty
	 * bitmap (changes since the kept checkpoint), or NULL: read it all. */
	char *uri;
	const char *bitmap;
};

/* Takes the VM's lock (VB_E_LOCKED when another run holds it), connects,
 * removes what a crashed run left (exports, vmaback's NBD server, nodes,
 * scratch files; resumes a guest a crashed run paused, thaws one it froze)
 * and finds the drives. */
struct vb_live *vb_live_open(const struct vb_live_opts *o, struct vb_error *err);
size_t vb_live_count(const struct vb_live *l);
const struct vb_live_drive *vb_live_get(const struct vb_live *l, size_t i);
/* query-block's answer as JSON text: the VM's block layout, for the
 * archive's config blob qmp-block.json. */
const char *vb_live_layout(const struct vb_live *l);
/* In one transaction, removes the set's bitmaps but that of checkpoint
 * keep (NULL: all of them) and the temporary one; a kept bitmap that is
 * inconsistent (QEMU was killed) or not recording is removed too, and that
 * drive's has_bitmap is false. */
int vb_live_recover(struct vb_live *l, const char *keep, struct vb_error *err);
/* The point in time: scratch files and nodes, then (the guest frozen when
 * asked, and paused for the switch) copy-before-write filters and one
 * transaction adding checkpoint ckpt's bitmap to every drive and, where
 * since (the kept checkpoint; NULL for a full backup) has a bitmap, the
 * run's temporary copy of it; then the exports. On failure the guest runs
 * again and vb_live_finish removes what was made. */
int vb_live_start(struct vb_live *l, const char *since, const char *ckpt, struct vb_error *err);
enum vb_live_end { VB_LIVE_FAILED, VB_LIVE_PENDING, VB_LIVE_COMMITTED };
/* Tears down everything of the run (the export readers must be closed),
 * then the final bitmap transaction: committed, since's bitmap goes;
 * failed, ckpt's goes; pending, both stay (the next run keeps the one the
 * state then names). Problems become notes; -1 only when QEMU could not
 * be cleaned (the next run's recovery retries). */
int vb_live_finish(struct vb_live *l, enum vb_live_end how, struct vb_error *err);
/* After a read of an export failed: what may have broken the point-in-time
 * view (a scratch directory with no room left), into buf; false when
 * nothing is known. */
bool vb_live_why(const struct vb_live *l, char *buf, size_t len);
/* A libvirt domain, through libvirt's C API (libvirt.c, libvirt_run.c):
 * a pull-mode backup job (virDomainBackupBegin) with a new libvirt
 * checkpoint, vmaback.SET.CKPT (SET and CKPT with every byte but letters,
 * digits and '-' written _XX, so that the prefix of one set never matches
 * another's), one kept per set: that of its latest committed checkpoint.
 * The scratch files and the NBD socket are in scratch_dir/vmaback.TAG/, a
 * directory of mode 0700 owned by the user QEMU runs as (the domain's DAC
 * label; without one, the owner of scratch_dir unless that is a shared
 * sticky directory such as /var/tmp, else this process's user). */
struct vb_live_libvirt_opts {
	const char *uri;           /* NULL: libvirt's default connection */
	const char *domain;        /* the domain's name (or UUID) */
	const char *set;
	const char *scratch_dir;   /* exists; QEMU's user must reach it */
	const char *run_dir;       /* the domain's lock (exists, 0700) */
	/* Where vmaback keeps each kept checkpoint's XML, to redefine one
	 * libvirt lost (exists, 0700). */
	const char *meta_dir;
	bool fsfreeze;             /* virDomainFSFreeze for the point in time */
	/* --drive NAME=libvirt:DEV: only these disks (DEV: a target dev such
	 * as vda, or a device alias), in this order; n 0: every writable disk
	 * with a source. */
	const char *const *names, *const *devices;
	size_t ndrives;
	/* A domain that is not running: opened all the same (its lock
	 * taken), for vb_live_libvirt_offline; else a VB_E_USAGE. */
	bool offline_ok;
};
/* Like vb_live_open: takes the domain's lock, connects, ends a backup job
 * and a freeze a crashed run left, removes its scratch files, and finds
 * the disks (node: the target dev; qdev: the disk's source). */
struct vb_live *vb_live_open_libvirt(const struct vb_live_libvirt_opts *o,
				     struct vb_error *err);
/* The names of the running domains of libvirt at uri (NULL: libvirt's
 * default connection), with stopped: of every domain; sorted. */
int vb_libvirt_domains(const char *uri, bool stopped, char ***names, size_t *n,
		       struct vb_error *err);
/* A domain to back up offline: running, or the drives of its disks read
 * from its images (names[i]=specs[i]: drive-virtio0=qcow2:/path, named as
 * a running domain's) and its XML with their vmaback:drives, the archive's
 * libvirt-domain.xml. */
struct vb_libvirt_offline {
	bool running;
	char **names, **specs, **devs;
	size_t n;
	char *xml;
};
/* A session of a domain opened with offline_ok that is not running: what
 * to read instead (the session only holds the domain's lock then, and is
 * not for a backup's live); NULL for a running one. */
const struct vb_libvirt_offline *vb_live_libvirt_offline(const struct vb_live *l);
void vb_libvirt_offline_free(struct vb_libvirt_offline *o);

/* Defines domain name in libvirt at uri from xml (an archive's
 * libvirt-domain.xml): its own UUID and MAC addresses, and each disk the
 * restore wrote into dir (dir/disk-DRIVE.raw, DRIVE named as a --domain
 * backup names it) as a raw file; a disk that was not restored is left
 * out (a note). A domain of that name already there is a VB_E_USAGE. */
int vb_libvirt_define(const char *uri, const char *xml, const char *name, const char *dir,
		      struct vb_warnings *w, struct vb_error *err);

/* "qmp" or "libvirt": the prefix of the sessions' drive specs. */
const char *vb_live_kind(const struct vb_live *l);
/* The archive's config blob of the layout: qmp-block.json (query-block)
 * or libvirt-domain.xml (the domain's XML). */
const char *vb_live_layout_name(const struct vb_live *l);
/* What the session is, for messages: "QMP socket PATH", "domain NAME". */
const char *vb_live_what(const struct vb_live *l);

/* Where the session's warnings go (fallbacks, a guest agent that did not
 * answer, a recovery): those already noted at once, then each as it comes. */
void vb_live_on_warning(struct vb_live *l, vb_warn_fn fn, void *opaque);
/* Disconnects and releases the lock; NULL: no-op. */
void vb_live_close(struct vb_live *l);

#endif
