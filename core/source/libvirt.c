/* libvirt.c: a libvirt domain through libvirt's C API: its lock, the
 * connection, its disks (from the domain XML), and recovery (a backup job,
 * a freeze and scratch files a crashed run left; every libvirt checkpoint
 * of the set but that of its latest committed checkpoint, which is
 * redefined from vmaback's copy when libvirt lost it). The run itself is
 * in libvirt_run.c; the sequence and its traps in live-vm.md. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/source/libvirt_int.h"

int lv_oom(struct vb_error *err)
{
	return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
}

int lv_fail(struct vb_error *err, enum vb_errclass cls, const char *fmt, ...)
{
	const char *why = virGetLastErrorMessage();
	char msg[700];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return vb_error_set(err, cls, 0, "%s: %s", msg, why ? why : "unknown libvirt error");
}

/* libvirt prints every error on stderr unless told otherwise; vmaback's
 * messages carry them. */
void lv_quiet(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

/* Letters, digits and '-' as they are, every other byte _XX: libvirt's
 * checkpoint names allow [A-Za-z0-9_.-], and '.' then separates. */
static void encode(const char *s, char *out)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-') {
			*out++ = (char)c;
		} else {
			*out++ = '_';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 15];
		}
	}
	*out = '\0';
}

char *lv_name(const struct lv *v, const char *ckpt)
{
	char *enc = malloc(3 * strlen(ckpt) + 1), *p = NULL;

	if (!enc)
		return NULL;
	encode(ckpt, enc);
	if (asprintf(&p, "%s%s", v->prefix, enc) < 0)
		p = NULL;
	free(enc);
	return p;
}

char *lv_meta_path(const struct lv *v, const char *name)
{
	char *p = NULL;

	return asprintf(&p, "%s/%s.xml", v->meta_dir, name) < 0 ? NULL : p;
}

char *lv_scratch(const struct lv *v, size_t i)
{
	char *p = NULL;

	return asprintf(&p, "%s/scratch.%zu.qcow2", v->dir, i) < 0 ? NULL : p;
}

/* ============================================================== XML */

xmlXPathObjectPtr lv_xpath(xmlDocPtr doc, const char *expr)
{
	xmlXPathContextPtr ctx = doc ? xmlXPathNewContext(doc) : NULL;
	xmlXPathObjectPtr o = ctx ? xmlXPathEvalExpression((const xmlChar *)expr, ctx) : NULL;

	xmlXPathFreeContext(ctx);
	if (o && (!o->nodesetval || o->nodesetval->nodeNr == 0)) {
		xmlXPathFreeObject(o);
		o = NULL;
	}
	return o;
}

char *lv_prop(xmlNodePtr n, const char *name)
{
	xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
	char *s = v ? strdup((const char *)v) : NULL;

	xmlFree(v);
	return s;
}

xmlNodePtr lv_child(xmlNodePtr n, const char *name)
{
	for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && xmlStrcmp(c->name, (const xmlChar *)name) == 0)
			return c;
	return NULL;
}

xmlDocPtr lv_parse(const char *xml)
{
	return xmlReadMemory(xml, (int)strlen(xml), "libvirt.xml", NULL,
			     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

/* ============================================================== lock */

/* The domain's name in the run directory: SHA-256 of the connection's URI
 * and the domain's UUID (stable across restarts and renames). */
static int take_lock(struct vb_live *l, struct vb_error *err)
{
	struct lv *v = lv_of(l);
	char uuid[VIR_UUID_STRING_BUFLEN], *key = NULL, *path = NULL;
	int rc = -1;

	if (virDomainGetUUIDString(v->dom, uuid) < 0)
		return lv_fail(err, VB_E_FAIL, "domain %s", v->domain);
	if (asprintf(&key, "%s\n%s", v->uri ? v->uri : "", uuid) < 0)
		return lv_oom(err);
	if (live_set_tag(l, key, err) < 0) {
		free(key);
		return -1;
	}
	free(key);
	if (asprintf(&path, "%s/libvirt-%s.lock", l->o.run_dir, l->tag) < 0 ||
	    asprintf(&v->dir, "%s/vmaback.%s", l->o.scratch_dir, l->tag) < 0 ||
	    asprintf(&v->sock, "%s/nbd", v->dir) < 0) {
		free(path);
		return lv_oom(err);
	}
	if (strlen(v->sock) >= 108) {
		vb_error_set(err, VB_E_USAGE, 0, "%s: too long for a unix socket (at most 107 "
			     "bytes): choose a shorter --scratch-dir", v->sock);
		goto out;
	}
	l->lock_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (l->lock_fd < 0) {
		vb_error_set(err, VB_E_FAIL, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (flock(l->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		vb_error_set(err, errno == EWOULDBLOCK ? VB_E_LOCKED : VB_E_FAIL, errno,
			     "domain %s is in use by another vmaback run (%s is locked): libvirt "
			     "runs one backup job per domain", v->domain, path);
		goto out;
	}
	{
		char buf[64];
		ssize_t n = pread(l->lock_fd, buf, sizeof(buf) - 1, 0);
		unsigned m = 0;

		if (n > 0) {
			buf[n] = '\0';
			if (sscanf(buf, "marks=%u", &m) == 1)
				l->marks = m & MARK_FROZEN;
		}
	}
	rc = 0;
out:
	free(path);
	return rc;
}

/* ============================================================== disks */

/* The index of a target dev's letters: vda 0, vdz 25, vdaa 26. */
static long letters_index(const char *s)
{
	long n = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < 'a' || *s > 'z' || n > 100000)
			return -1;
		n = n * 26 + (*s - 'a' + 1);
	}
	return n - 1;
}

/* Proxmox's name for a disk (drive-virtio0, drive-scsi1, ...) when its bus
 * and target allow, else the target dev. */
char *lv_drive_name(const char *bus, const char *target)
{
	static const struct { const char *bus, *prefix; } map[] = {
		{ "virtio", "vd" }, { "scsi", "sd" }, { "sata", "sd" }, { "ide", "hd" },
	};
	char *p = NULL;

	for (size_t i = 0; bus && i < sizeof(map) / sizeof(map[0]); i++) {
		size_t k = strlen(map[i].prefix);
		long n;

		if (strcmp(bus, map[i].bus) != 0 || strncmp(target, map[i].prefix, k) != 0)
			continue;
		n = letters_index(target + k);
		if (n >= 0)
			return asprintf(&p, "drive-%s%ld", bus, n) < 0 ? NULL : p;
	}
	return strdup(target);
}

static int add_drive(struct vb_live *l, struct lv_disk *disk, const char *name,
		     const char *bus, const char *source, struct vb_error *err)
{
	struct lv *v = lv_of(l);
	struct vb_live_drive *d = realloc(l->d, (l->n + 1) * sizeof(*d));
	virDomainBlockInfo info;

	if (!d)
		return lv_oom(err);
	l->d = d;
	d = &l->d[l->n];
	memset(d, 0, sizeof(*d));
	disk->drive = (int)l->n++;
	d->node = strdup(disk->target);
	d->qdev = strdup(source);
	d->name = name ? strdup(name) : lv_drive_name(bus, disk->target);
	if (!d->node || !d->qdev || !d->name)
		return lv_oom(err);
	if (virDomainGetBlockInfo(v->dom, disk->target, &info, 0) < 0)
		return lv_fail(err, VB_E_FAIL, "drive %s: the size of disk %s", d->name,
			       disk->target);
	d->size = info.capacity;
	if (d->size == 0)
		return vb_error_set(err, VB_E_FAIL, 0, "drive %s: disk %s has no size", d->name,
				    disk->target);
	return vb_drive_name_check(d->name, err);
}


void lv_disk_xml_free(struct disk_xml *x)
{
	free(x->device);
	free(x->target);
	free(x->bus);
	free(x->alias);
	free(x->format);
	free(x->source);
}

void lv_disk_xml_read(xmlNodePtr n, struct disk_xml *x)
{
	xmlNodePtr src = lv_child(n, "source");

	memset(x, 0, sizeof(*x));
	x->device = lv_prop(n, "device");
	x->target = lv_prop(lv_child(n, "target"), "dev");
	x->bus = lv_prop(lv_child(n, "target"), "bus");
	x->alias = lv_prop(lv_child(n, "alias"), "name");
	x->format = lv_prop(lv_child(n, "driver"), "type");
	x->source = lv_prop(src, "file");
	if (!x->source)
		x->source = lv_prop(src, "dev");
	if (!x->source)
		x->source = lv_prop(src, "name");
	x->readonly = lv_child(n, "readonly") != NULL;
}

bool lv_disk_eligible(const struct disk_xml *x)
{
	return x->target && x->source && !x->readonly &&
	       (!x->device || strcmp(x->device, "disk") == 0);
}

static bool wanted(const struct disk_xml *x, const char *dev)
{
	return strcmp(x->target, dev) == 0 || (x->alias && strcmp(x->alias, dev) == 0);
}

/* The user QEMU runs as, from the DAC label: "+UID:+GID" or "USER:GROUP". */
static bool dac_label(xmlDocPtr doc, uid_t *uid, gid_t *gid)
{
	xmlXPathObjectPtr o = lv_xpath(doc, "/domain/seclabel[@model='dac']/label");
	xmlChar *t = o ? xmlNodeGetContent(o->nodesetval->nodeTab[0]) : NULL;
	char *colon = t ? strchr((char *)t, ':') : NULL;
	bool ok = false;

	if (colon) {
		const char *u = (const char *)t, *g = colon + 1;
		struct passwd *pw;
		struct group *gr;

		*colon = '\0';
		if (u[0] == '+' && g[0] == '+') {
			*uid = (uid_t)strtoul(u + 1, NULL, 10);
			*gid = (gid_t)strtoul(g + 1, NULL, 10);
			ok = true;
		} else if ((pw = getpwnam(u)) && (gr = getgrnam(g))) {
			*uid = pw->pw_uid;
			*gid = gr->gr_gid;
			ok = true;
		}
	}
	xmlFree(t);
	xmlXPathFreeObject(o);
	return ok;
}

static int find_disks(struct vb_live *l, const struct vb_live_libvirt_opts *o,
		      struct vb_error *err)
{
	struct lv *v = lv_of(l);
	char *xml = virDomainGetXMLDesc(v->dom, 0);
	xmlDocPtr doc = xml ? lv_parse(xml) : NULL;
	xmlXPathObjectPtr disks = lv_xpath(doc, "/domain/devices/disk");
	size_t nx = disks ? (size_t)disks->nodesetval->nodeNr : 0;
	struct disk_xml *x = calloc(nx + 1, sizeof(*x));
	int rc = -1;

	if (!xml || !doc) {
		if (xml)
			vb_error_set(err, VB_E_FAIL, 0, "domain %s: libvirt's XML does not parse",
				     v->domain);
		else
			lv_fail(err, VB_E_FAIL, "domain %s: its XML", v->domain);
		goto out;
	}
	if (!x || !(v->disks = calloc(nx + 1, sizeof(*v->disks)))) {
		lv_oom(err);
		goto out;
	}
	if (dac_label(doc, &v->uid, &v->gid))
		v->chown = true;
	for (size_t i = 0; i < nx; i++) {
		lv_disk_xml_read(disks->nodesetval->nodeTab[i], &x[i]);
		if (!x[i].target)
			continue;
		v->disks[v->ndisks].target = strdup(x[i].target);
		v->disks[v->ndisks].drive = -1;
		v->disks[v->ndisks].raw = !x[i].format || strcmp(x[i].format, "qcow2") != 0;
		if (!v->disks[v->ndisks++].target) {
			lv_oom(err);
			goto out;
		}
	}
	for (size_t k = 0; k < (o->ndrives ? o->ndrives : 1); k++) {
		bool found = false;

		for (size_t i = 0, j = 0; i < nx; i++) {
			if (!x[i].target)
				continue;
			j++;
			if (!lv_disk_eligible(&x[i]) || (o->ndrives && !wanted(&x[i], o->devices[k])))
				continue;
			if (v->disks[j - 1].drive >= 0) {
				if (!o->ndrives)
					continue;
				vb_error_set(err, VB_E_USAGE, 0, "drive %s: disk %s is named twice",
					     o->names[k], o->devices[k]);
				goto out;
			}
			if (add_drive(l, &v->disks[j - 1], o->ndrives ? o->names[k] : NULL,
				      x[i].bus, x[i].source, err) < 0)
				goto out;
			found = true;
			if (o->ndrives)
				break;
		}
		if (o->ndrives && !found) {
			vb_error_set(err, VB_E_USAGE, 0, "drive %s: domain %s has no writable disk %s "
				     "(a target dev such as vda, or a device alias)", o->names[k],
				     v->domain, o->devices[k]);
			goto out;
		}
	}
	if (l->n == 0) {
		vb_error_set(err, VB_E_USAGE, 0, "domain %s has no writable disk with a source",
			     v->domain);
		goto out;
	}
	/* The layout stored in the archive: the definition, to define the
	 * domain again (its live XML when it has none). */
	{
		char *def = virDomainGetXMLDesc(v->dom, VIR_DOMAIN_XML_INACTIVE);
		char **devs = calloc(l->n + 1, sizeof(*devs)), **names = calloc(l->n + 1,
										 sizeof(*names));

		for (size_t k = 0; devs && names && k < v->ndisks; k++)
			if (v->disks[k].drive >= 0) {
				devs[v->disks[k].drive] = v->disks[k].target;
				names[v->disks[k].drive] = l->d[v->disks[k].drive].name;
			}
		l->layout = devs && names ? lv_xml_with_drives(def ? def : xml, devs, names, l->n) :
			    NULL;
		free(devs);
		free(names);
		free(def);
	}
	if (!l->layout) {
		lv_oom(err);
		goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; x && i < nx; i++)
		lv_disk_xml_free(&x[i]);
	free(x);
	xmlXPathFreeObject(disks);
	xmlFreeDoc(doc);
	free(xml);
	return rc;
}

/* ============================================================== recovery */

void lv_drop_files(struct vb_live *l)
{
	struct lv *v = lv_of(l);

	for (size_t i = 0; i < 256; i++) {
		char *p = lv_scratch(v, i);

		if (p && unlink(p) < 0 && errno == ENOENT && i >= v->ndisks) {
			free(p);
			break;
		}
		free(p);
	}
	unlink(v->sock);
}

int lv_end_job(struct vb_live *l, struct vb_error *err)
{
	struct lv *v = lv_of(l);
	char *xml = virDomainBackupGetXMLDesc(v->dom, 0);
	xmlDocPtr doc = xml ? lv_parse(xml) : NULL;
	xmlXPathObjectPtr srv = lv_xpath(doc, "/domainbackup/server");
	char *sock = srv ? lv_prop(srv->nodesetval->nodeTab[0], "socket") : NULL;
	int rc = 0;

	/* No job, or another program's: not ours to end. */
	if (sock && strcmp(sock, v->sock) == 0 && virDomainAbortJob(v->dom) < 0)
		rc = lv_fail(err, VB_E_FAIL, "domain %s: ending vmaback's backup job", v->domain);
	free(sock);
	xmlXPathFreeObject(srv);
	xmlFreeDoc(doc);
	free(xml);
	return rc;
}

static void thaw(struct vb_live *l)
{
	struct lv *v = lv_of(l);
	struct vb_error e = { 0 };

	/* A guest a crashed run left frozen: thaw, or say so. */
	if (virDomainFSThaw(v->dom, NULL, 0, 0) < 0) {
		lv_fail(&e, VB_E_FAIL, "domain %s", v->domain);
		vb_warn(&l->warn, VB_WARN_GUEST, NULL, "%s; the guest's file systems may still be frozen "
			     "(virsh domfsthaw)", e.msg);
	}
	live_mark(l, 0, MARK_FROZEN, &e);
}

static void lv_close(struct vb_live *l)
{
	struct lv *v = lv_of(l);

	if (!v)
		return;
	if (v->dom)
		virDomainFree(v->dom);
	if (v->conn)
		virConnectClose(v->conn);
	for (size_t i = 0; i < v->ndisks; i++)
		free(v->disks[i].target);
	for (size_t i = 0; v->export_bitmap && i < l->n; i++)
		free(v->export_bitmap[i]);
	free(v->export_bitmap);
	if (v->off)
		vb_libvirt_offline_free(v->off);
	free(v->off);
	free(v->disks);
	free(v->uri);
	free(v->domain);
	free(v->meta_dir);
	free(v->prefix);
	free(v->dir);
	free(v->sock);
	free(v);
	l->impl = NULL;
}

const struct live_ops live_libvirt_ops = {
	.recover = lv_recover,
	.start = lv_start,
	.finish = lv_finish,
	.close = lv_close,
};

static int connect_domain(struct vb_live *l, bool offline_ok, struct vb_error *err)
{
	struct lv *v = lv_of(l);

	virSetErrorFunc(NULL, lv_quiet);
	v->conn = virConnectOpen(v->uri);
	if (!v->conn)
		return lv_fail(err, VB_E_FAIL, "connecting to libvirt%s%s", v->uri ? " at " : "",
			       v->uri ? v->uri : "");
	v->dom = virDomainLookupByName(v->conn, v->domain);
	if (!v->dom)
		v->dom = virDomainLookupByUUIDString(v->conn, v->domain);
	if (!v->dom)
		return vb_error_set(err, VB_E_USAGE, 0, "libvirt has no domain %s", v->domain);
	if (virDomainIsActive(v->dom) != 1 && offline_ok)
		v->offline = true;
	else if (virDomainIsActive(v->dom) != 1)
		return vb_error_set(err, VB_E_USAGE, 0, "domain %s is not running (backup "
				    "--include-stopped reads a stopped domain's images)",
				    v->domain);
	return 0;
}

struct vb_live *vb_live_open_libvirt(const struct vb_live_libvirt_opts *o,
				     struct vb_error *err)
{
	struct vb_live *l = calloc(1, sizeof(*l));
	struct lv *v = calloc(1, sizeof(*v));
	char *enc = malloc(3 * strlen(o->set) + 1);

	if (lv_dl_load(err) < 0 || !l || !v || !enc) {
		bool dl_failed = l && v && enc;

		free(l);
		free(v);
		free(enc);
		if (!dl_failed)
			lv_oom(err);
		return NULL;
	}
	l->ops = &live_libvirt_ops;
	l->impl = v;
	l->kind = "libvirt";
	l->layout_name = "libvirt-domain.xml";
	l->lock_fd = -1;
	l->o.set = l->own[1] = strdup(o->set);
	l->o.scratch_dir = l->own[2] = strdup(o->scratch_dir);
	l->o.run_dir = l->own[3] = strdup(o->run_dir);
	v->uri = o->uri ? strdup(o->uri) : NULL;
	v->domain = strdup(o->domain);
	v->meta_dir = strdup(o->meta_dir);
	v->fsfreeze = o->fsfreeze;
	encode(o->set, enc);
	if (asprintf(&v->prefix, "vmaback.%s.", enc) < 0)
		v->prefix = NULL;
	free(enc);
	if (asprintf(&l->what, "domain %s", o->domain) < 0)
		l->what = NULL;
	if (!l->own[1] || !l->own[2] || !l->own[3] || (o->uri && !v->uri) || !v->domain ||
	    !v->meta_dir || !v->prefix || !l->what) {
		lv_oom(err);
		goto fail;
	}
	if (connect_domain(l, o->offline_ok, err) < 0 || take_lock(l, err) < 0)
		goto fail;
	/* Not running: its lock only, and what to read instead. */
	if (v->offline ? lv_offline(l, o, err) < 0 :
	    find_disks(l, o, err) < 0 || lv_end_job(l, err) < 0)
		goto fail;
	if (v->offline)
		return l;
	if (l->marks & MARK_FROZEN)
		thaw(l);
	lv_drop_files(l);
	return l;
fail:
	vb_live_close(l);
	return NULL;
}

