/* libvirt_int.h: a libvirt domain's session, shared by libvirt.c (lock,
 * connection, disks, recovery) and libvirt_run.c (the backup job, its end);
 * private to core/source. */
#ifndef VMABACK_LIBVIRT_INT_H
#define VMABACK_LIBVIRT_INT_H

#ifndef VB_MODULE_source
#error "core/source/libvirt_int.h is private to core/source: include core/source/source.h"
#endif

#include "core/source/libvirt_dl.h"
#include <sys/types.h>

#include "core/source/live_int.h"

/* A disk of the domain, backed up or not: every one is named in the
 * backup and checkpoint XML, none left to libvirt's defaults. */
struct lv_disk {
	char *target;      /* vda */
	int drive;         /* its index in l->d, or -1: not backed up */
	bool raw;          /* no qcow2: libvirt keeps no bitmap for it */
};

struct lv {
	virConnectPtr conn;
	virDomainPtr dom;
	char *uri, *domain;
	char *meta_dir;
	bool fsfreeze;
	bool offline;      /* not running (opened with offline_ok) */
	char *prefix;      /* "vmaback.SET." (SET encoded) */
	char *dir;         /* scratch_dir/vmaback.TAG: scratch files and socket */
	char *sock;        /* dir/nbd */
	bool chown;        /* dir belongs to uid:gid, QEMU's user */
	uid_t uid;
	gid_t gid;
	struct lv_disk *disks;
	size_t ndisks;
	char **export_bitmap;  /* per drive, from the backup job's XML */
	struct vb_libvirt_offline *off;  /* not running, opened with offline_ok */
};

static inline struct lv *lv_of(struct vb_live *l)
{
	return l->impl;
}

/* libvirt.c */
/* What the XML says of one <disk>: eligible = a writable disk with a source. */
struct disk_xml {
	char *device, *target, *bus, *alias, *format, *source;
	bool readonly;
};
void lv_disk_xml_read(xmlNodePtr n, struct disk_xml *x);
void lv_disk_xml_free(struct disk_xml *x);
/* A disk vmaback backs up: writable, of device disk, with a source. */
bool lv_disk_eligible(const struct disk_xml *x);
xmlNodePtr lv_child(xmlNodePtr n, const char *name);
/* Proxmox's name of a disk from its bus and target (drive-virtio0). */
char *lv_drive_name(const char *bus, const char *target);
/* An error handler that prints nothing (vmaback's messages carry them). */
void lv_quiet(void *opaque, virErrorPtr e);
int lv_oom(struct vb_error *err);
/* An error of class cls whose message ends with libvirt's last error. */
int lv_fail(struct vb_error *err, enum vb_errclass cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The libvirt checkpoint of the set's checkpoint ckpt: malloc'd. */
char *lv_name(const struct lv *v, const char *ckpt);
/* XPath on an XML text: the nodes, or NULL (none, or bad XML). */
xmlXPathObjectPtr lv_xpath(xmlDocPtr doc, const char *expr);
char *lv_prop(xmlNodePtr n, const char *name);
/* A document libvirt gave (no network, no messages on stderr); NULL. */
xmlDocPtr lv_parse(const char *xml);
/* scratch file i: malloc'd. */
char *lv_scratch(const struct lv *v, size_t i);
/* Removes the run's scratch files and socket (by their names only). */
void lv_drop_files(struct vb_live *l);
/* Ends the backup job if it is ours (its socket is v->sock); 0 when no
 * job of ours runs. */
int lv_end_job(struct vb_live *l, struct vb_error *err);
/* Deletes checkpoint cp in libvirt (its bitmaps in QEMU with it; only its
 * metadata when the bitmaps are gone, with a note), and vmaback's copy of
 * its XML. */
void lv_delete_ckpt(struct vb_live *l, virDomainCheckpointPtr cp);
/* meta_dir/NAME.xml: malloc'd. */
char *lv_meta_path(const struct lv *v, const char *name);

/* libvirt_host.c: the domain XML xml with a vmaback:drives metadata
 * element naming drive names[k] the disk of target devs[k]; malloc'd
 * (NULL: no memory). */
char *lv_xml_with_drives(const char *xml, char *const *devs, char *const *names, size_t n);
/* The domain is not running: v->off, its disks as sel selects them. */
int lv_offline(struct vb_live *l, const struct vb_live_libvirt_opts *sel, struct vb_error *err);
extern const struct live_ops live_libvirt_ops;

/* libvirt_ckpt.c */
/* Deletes every vmaback checkpoint of the set in libvirt but keepname (and
 * vmaback's copies of their XML); *found: keepname's, NULL if libvirt has
 * none (found NULL: not asked). */
int lv_drop_others(struct vb_live *l, const char *keepname, virDomainCheckpointPtr *found,
		   struct vb_error *err);
/* live_ops' recover. */
int lv_recover(struct vb_live *l, const char *keep, struct vb_error *err);

/* libvirt_run.c */
int lv_start(struct vb_live *l, const char *since, const char *ckpt, struct vb_error *err);
int lv_finish(struct vb_live *l, enum vb_live_end how, struct vb_error *err);

#endif
