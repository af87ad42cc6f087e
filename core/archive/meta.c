/* meta.c: vmaback.json, the config blob that says what an archive of ours
 * holds (kind, exact drive sizes, cluster counts), written and read with json-c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "core/archive/archive_int.h"

static int add(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return -1;
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static json_object *drive_json(const struct vb_meta_drive_in *d)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (add(o, "name", json_object_new_string(d->name)) < 0 ||
	    add(o, "dev_id", json_object_new_int(d->dev_id)) < 0 ||
	    add(o, "size", json_object_new_uint64(d->size)) < 0 ||
	    add(o, "clusters", json_object_new_uint64(d->clusters)) < 0 ||
	    add(o, "source", json_object_new_string(d->source)) < 0 ||
	    add(o, "path", json_object_new_string(d->path)) < 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* Orders the archives of a chain even within one second. */
static int64_t now_ns(void)
{
	return vb_clock_now_ns();
}

static int add_opt(json_object *o, const char *key, const char *v)
{
	if (!v)
		return json_object_object_add(o, key, NULL);
	return add(o, key, json_object_new_string(v));
}

static int add_merged(json_object *root, const struct vb_meta_archive_in *a)
{
	json_object *arr;

	if (a->nmerged == 0)
		return 0;
	arr = json_object_new_array();
	if (!arr)
		return -1;
	for (size_t i = 0; i < a->nmerged; i++) {
		json_object *s = json_object_new_string(a->merged[i]);

		if (!s || json_object_array_add(arr, s) < 0) {
			json_object_put(s);
			json_object_put(arr);
			return -1;
		}
	}
	return add(root, "merged_uuids", arr);
}

char *vb_meta_build(const struct vb_meta_archive_in *a, const uint8_t uuid[VMA_UUID_LEN],
		    int64_t ctime, const struct vb_meta_drive_in *drives, size_t ndrives,
		    struct vb_error *err)
{
	json_object *root = json_object_new_object();
	json_object *arr = json_object_new_array();
	char ustr[37], tstr[32];
	struct tm tm;
	time_t t = (time_t)ctime;
	char *out = NULL;

	vb_uuid_format(uuid, ustr);
	if (!gmtime_r(&t, &tm) || strftime(tstr, sizeof(tstr), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		tstr[0] = '\0';
	if (!root || !arr)
		goto out;
	for (size_t i = 0; i < ndrives; i++) {
		json_object *d = drive_json(&drives[i]);

		if (!d || json_object_array_add(arr, d) < 0) {
			json_object_put(d);
			goto out;
		}
	}
	if (add(root, "format", json_object_new_string("vmaback")) < 0 ||
	    add(root, "format_version", json_object_new_int(1)) < 0 ||
	    add(root, "tool_version", json_object_new_string(VB_VERSION)) < 0 ||
	    add(root, "kind", json_object_new_string(vb_kind_name(a->kind))) < 0 ||
	    add_opt(root, "set", a->set) < 0 ||
	    add_opt(root, "checkpoint", a->checkpoint) < 0 ||
	    add_opt(root, "parent_checkpoint", a->parent_checkpoint) < 0 ||
	    add_opt(root, "parent_uuid", a->parent_uuid) < 0 ||
	    add(root, "uuid", json_object_new_string(ustr)) < 0 ||
	    add(root, "ctime", json_object_new_int64(ctime)) < 0 ||
	    add(root, "time_ns", json_object_new_int64(a->time_ns ? a->time_ns : now_ns())) < 0 ||
	    add(root, "created", json_object_new_string(tstr)) < 0 || add_merged(root, a) < 0)
		goto out;
	if (json_object_object_add(root, "drives", arr) < 0)
		goto out;
	arr = NULL;
	out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							    JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	json_object_put(arr);
	json_object_put(root);
	if (!out)
		vb_error_set(err, VB_E_FAIL, ENOMEM, "cannot build %s", VB_META_NAME);
	return out;
}

void vb_meta_clear(struct vb_meta *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->ndrives; i++)
		free(m->drives[i].name);
	free(m->drives);
	free(m->tool_version);
	free(m->set);
	free(m->checkpoint);
	free(m->parent_checkpoint);
	free(m->parent_uuid);
	for (size_t i = 0; i < m->nmerged; i++)
		free(m->merged[i]);
	free(m->merged);
	memset(m, 0, sizeof(*m));
}

static int meta_from_header(struct vb_meta *m, struct vma_reader *r, struct vb_error *err)
{
	unsigned n = vma_reader_device_count(r);

	m->ours = false;
	m->kind = VB_KIND_PROXMOX;
	m->drives = calloc(n ? n : 1, sizeof(*m->drives));
	if (!m->drives)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		const struct vma_device_info *di = vma_reader_device(r, i);

		m->drives[i].name = strdup(di->name);
		if (!m->drives[i].name)
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		m->drives[i].dev_id = di->dev_id;
		m->drives[i].size = di->size;
		m->drives[i].clusters = UINT64_MAX;
		m->ndrives++;
	}
	return 0;
}

static int get_u64(json_object *o, const char *key, uint64_t *v)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x) || !json_object_is_type(x, json_type_int))
		return -1;
	/* json-c reads a negative number as 0 here: refused, never misread
	 * (a value beyond INT64_MAX reads as INT64_MAX in int64) */
	if (json_object_get_int64(x) < 0)
		return -1;
	errno = 0;
	*v = json_object_get_uint64(x);
	return errno ? -1 : 0;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x) || !json_object_is_type(x, json_type_string))
		return NULL;
	return json_object_get_string(x);
}

/* One drive of vmaback.json must match a header device exactly. */
static int meta_drive(struct vb_meta_drive *md, json_object *d, struct vma_reader *r,
		      const char *what, size_t idx, struct vb_error *err)
{
	const struct vma_device_info *di;
	const char *name = get_str(d, "name");
	uint64_t dev_id, size, clusters;

	if (!name || get_u64(d, "dev_id", &dev_id) < 0 || get_u64(d, "size", &size) < 0 ||
	    get_u64(d, "clusters", &clusters) < 0)
		return vb_error_set(err, VB_E_INVALID, 0, "%s: %s: drive %zu is incomplete",
				    what, VB_META_NAME, idx);
	di = dev_id <= 255 ? vma_reader_device_by_id(r, (unsigned)dev_id) : NULL;
	if (!di || strcmp(di->name, name) != 0)
		return vb_error_set(err, VB_E_INVALID, 0,
				    "%s: %s names drive %s (dev_id %" PRIu64
				    ") that the header does not hold", what, VB_META_NAME, name,
				    dev_id);
	if (size == 0 || size > di->size || vb_round_sector(size) != di->size ||
	    clusters > vma_clusters_of(size))
		return vb_error_set(err, VB_E_INVALID, 0,
				    "%s: %s: drive %s: size %" PRIu64 " or cluster count %" PRIu64
				    " does not match the header's size %" PRIu64, what,
				    VB_META_NAME, name, size, clusters, di->size);
	md->name = strdup(name);
	if (!md->name)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	md->dev_id = (unsigned)dev_id;
	md->size = size;
	md->clusters = clusters;
	return 0;
}

/* The newest drive must not repeat an earlier one: as many drives as the
 * header, none twice and each a header device means that every device of
 * the header is accounted for (else verify would check one drive twice and
 * another never). */
static int listed_twice(const struct vb_meta *m, const char *what, struct vb_error *err)
{
	const struct vb_meta_drive *d = &m->drives[m->ndrives - 1];

	for (size_t i = 0; i + 1 < m->ndrives; i++)
		if (m->drives[i].dev_id == d->dev_id || strcmp(m->drives[i].name, d->name) == 0)
			return vb_error_set(err, VB_E_INVALID, 0,
					    "%s: %s lists drive %s (dev_id %u) twice, so a drive of "
					    "the header is not accounted for", what, VB_META_NAME,
					    d->name, d->dev_id);
	return 0;
}

/* "merged_uuids" of a synthetic full: absent, or an array of uuid strings. */
static int load_merged(struct vb_meta *m, json_object *root, const char *what,
		       struct vb_error *err)
{
	json_object *arr;
	size_t n;

	if (!json_object_object_get_ex(root, "merged_uuids", &arr))
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return vb_error_set(err, VB_E_INVALID, 0, "%s: %s: merged_uuids is not a list",
				    what, VB_META_NAME);
	n = json_object_array_length(arr);
	m->merged = calloc(n ? n : 1, sizeof(*m->merged));
	if (!m->merged)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(arr, i);

		if (!json_object_is_type(s, json_type_string) ||
		    json_object_get_string_len(s) != 36)
			return vb_error_set(err, VB_E_INVALID, 0,
					    "%s: %s: merged_uuids holds something not a uuid",
					    what, VB_META_NAME);
		m->merged[i] = strdup(json_object_get_string(s));
		if (!m->merged[i])
			return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		m->nmerged++;
	}
	return 0;
}

static int meta_from_json(struct vb_meta *m, const struct vma_config_info *ci,
			  struct vma_reader *r, const char *what, struct vb_error *err)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *root = NULL, *drives;
	const char *s;
	size_t n;
	int rc = -1;

	if (!tok)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	root = json_tokener_parse_ex(tok, (const char *)ci->data, (int)ci->len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != ci->len || !json_object_is_type(root, json_type_object)) {
		vb_error_set(err, VB_E_INVALID, 0, "%s: %s is not valid JSON", what,
			     VB_META_NAME);
		goto out;
	}
	s = get_str(root, "format");
	if (!s || strcmp(s, "vmaback") != 0 || !get_str(root, "kind") ||
	    !json_object_object_get_ex(root, "drives", &drives) ||
	    !json_object_is_type(drives, json_type_array)) {
		vb_error_set(err, VB_E_INVALID, 0, "%s: %s lacks format, kind or drives", what,
			     VB_META_NAME);
		goto out;
	}
	m->ours = true;
	s = get_str(root, "tool_version");
	m->tool_version = s ? strdup(s) : NULL;
	s = get_str(root, "set");
	m->set = s ? strdup(s) : NULL;
	{
		json_object *t;

		if (json_object_object_get_ex(root, "time_ns", &t) &&
		    json_object_is_type(t, json_type_int))
			m->time_ns = json_object_get_int64(t);
	}
	s = get_str(root, "checkpoint");
	m->checkpoint = s ? strdup(s) : NULL;
	s = get_str(root, "parent_checkpoint");
	m->parent_checkpoint = s ? strdup(s) : NULL;
	s = get_str(root, "parent_uuid");
	m->parent_uuid = s ? strdup(s) : NULL;
	if (vb_kind_parse(get_str(root, "kind"), &m->kind) < 0) {
		vb_error_set(err, VB_E_INVALID, 0, "%s: %s: unknown kind '%s'", what,
			     VB_META_NAME, get_str(root, "kind"));
		goto out;
	}
	if (load_merged(m, root, what, err) < 0)
		goto out;
	if (m->kind != VB_KIND_FULL && (!m->parent_uuid || !m->set)) {
		vb_error_set(err, VB_E_INVALID, 0, "%s: %s: a %s archive without its parent",
			     what, VB_META_NAME, vb_kind_name(m->kind));
		goto out;
	}
	n = json_object_array_length(drives);
	if (n != vma_reader_device_count(r)) {
		vb_error_set(err, VB_E_INVALID, 0,
			     "%s: %s lists %zu drives, the header %u", what, VB_META_NAME, n,
			     vma_reader_device_count(r));
		goto out;
	}
	m->drives = calloc(n ? n : 1, sizeof(*m->drives));
	if (!m->drives) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (meta_drive(&m->drives[i], json_object_array_get_idx(drives, i), r, what, i,
			       err) < 0)
			goto out;
		m->ndrives++;
		if (listed_twice(m, what, err) < 0)
			goto out;
	}
	rc = 0;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

int vb_meta_load(struct vb_meta *m, struct vma_reader *r, const char *what,
		 struct vb_error *err)
{
	const struct vma_config_info *ci = vma_reader_config_by_name(r, VB_META_NAME);
	uint8_t uuid[VMA_UUID_LEN];
	int rc;

	memset(m, 0, sizeof(*m));
	vma_reader_uuid(r, uuid);
	vb_uuid_format(uuid, m->uuid);
	m->ctime = vma_reader_ctime(r);
	rc = ci ? meta_from_json(m, ci, r, what, err) : meta_from_header(m, r, err);
	if (rc < 0)
		vb_meta_clear(m);
	return rc;
}
