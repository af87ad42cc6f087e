/* state_json.c: the JSON codec of state.json and of the manifests (json-c):
 * every check a loaded state passes, and the text a state is written as. */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/store/store_int.h"

static const char *jstr(json_object *o, const char *key)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x) || !json_object_is_type(x, json_type_string))
		return NULL;
	return json_object_get_string(x);
}

static int jint(json_object *o, const char *key, int64_t *v)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x) || !json_object_is_type(x, json_type_int))
		return -1;
	*v = json_object_get_int64(x);
	return 0;
}

static void jadd(json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, v ? json_object_new_string(v) : NULL);
}

static json_object *ckpt_to_json(const struct vb_ckpt *c)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();

	jadd(o, "name", c->name);
	json_object_object_add(o, "time", json_object_new_int64(c->time));
	jadd(o, "kind", vb_kind_name(c->kind));
	jadd(o, "parent", c->parent);
	jadd(o, "uuid", c->uuid);
	jadd(o, "base_uuid", c->base_uuid);
	jadd(o, "archive", c->archive);
	jadd(o, "archive_sha256", c->archive_sha256);
	if (c->key_id)
		jadd(o, "key_id", c->key_id);
	if (c->archive_size)
		json_object_object_add(o, "archive_size",
				       json_object_new_int64((int64_t)c->archive_size));
	for (size_t i = 0; i < c->ndrives; i++) {
		const struct vb_ckpt_drive *d = &c->drives[i];
		json_object *x = json_object_new_object();

		jadd(x, "name", d->name);
		json_object_object_add(x, "size", json_object_new_int64((int64_t)d->size));
		jadd(x, "source", d->source);
		jadd(x, "bitmap", d->bitmap);
		jadd(x, "digests", d->digests);
		jadd(x, "digest_root", d->digest_root);
		if (d->archive_digests)
			jadd(x, "archive_digests", d->archive_digests);
		json_object_array_add(arr, x);
	}
	json_object_object_add(o, "drives", arr);
	return o;
}

static int ckpt_from_json(struct vb_ckpt *c, json_object *o)
{
	json_object *arr;
	int64_t t, asize = 0;

	memset(c, 0, sizeof(*c));
	if (!jstr(o, "name") || vb_kind_parse(jstr(o, "kind"), &c->kind) < 0 || !jstr(o, "uuid") ||
	    jint(o, "time", &t) < 0 ||
	    !json_object_object_get_ex(o, "drives", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return -1;
	/* absent in states of older versions: then only the SHA-256 is compared */
	if (json_object_object_get_ex(o, "archive_size", NULL) &&
	    (jint(o, "archive_size", &asize) < 0 || asize <= 0))
		return -1;
	c->archive_size = (uint64_t)asize;
	c->time = t;
	c->name = st_strdup(jstr(o, "name"));
	c->parent = st_strdup(jstr(o, "parent"));
	c->uuid = st_strdup(jstr(o, "uuid"));
	c->base_uuid = st_strdup(jstr(o, "base_uuid"));
	c->archive = st_strdup(jstr(o, "archive"));
	c->archive_sha256 = st_strdup(jstr(o, "archive_sha256"));
	c->key_id = st_strdup(jstr(o, "key_id"));
	c->drives = calloc(json_object_array_length(arr) + 1, sizeof(*c->drives));
	if (!c->name || !c->uuid || !c->drives)
		goto fail;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *x = json_object_array_get_idx(arr, i);
		struct vb_ckpt_drive *d = &c->drives[i];
		int64_t size;

		c->ndrives++;
		if (!jstr(x, "name") || !st_file_name_ok(jstr(x, "bitmap")) ||
		    jint(x, "size", &size) < 0 || size <= 0)
			goto fail;
		if ((jstr(x, "digests") && !st_file_name_ok(jstr(x, "digests"))) ||
		    (jstr(x, "archive_digests") && !st_file_name_ok(jstr(x, "archive_digests"))))
			goto fail;
		d->size = (uint64_t)size;
		d->name = st_strdup(jstr(x, "name"));
		d->source = st_strdup(jstr(x, "source"));
		d->bitmap = st_strdup(jstr(x, "bitmap"));
		d->digests = st_strdup(jstr(x, "digests"));
		d->digest_root = st_strdup(jstr(x, "digest_root"));
		d->archive_digests = st_strdup(jstr(x, "archive_digests"));
		if (!d->name || !d->bitmap)
			goto fail;
	}
	return 0;
fail:
	st_ckpt_clear(c);
	return -1;
}

static json_object *pruned_to_json(const struct vb_state *s)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < s->npruned; i++) {
		json_object *x = json_object_new_object();

		jadd(x, "checkpoint", s->pruned[i].checkpoint);
		jadd(x, "uuid", s->pruned[i].uuid);
		jadd(x, "archive", s->pruned[i].archive);
		json_object_array_add(arr, x);
	}
	return arr;
}

char *st_state_text(const struct vb_state *s)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	json_object *man = json_object_new_array();
	char *out;

	jadd(o, "format", "vmaback-state");
	json_object_object_add(o, "version", json_object_new_int(STATE_VERSION));
	jadd(o, "set", s->set);
	for (size_t i = 0; i < s->n; i++)
		json_object_array_add(arr, ckpt_to_json(&s->ck[i]));
	json_object_object_add(o, "checkpoints", arr);
	if (s->nretired) {
		json_object *ret = json_object_new_array();

		for (size_t i = 0; i < s->nretired; i++)
			json_object_array_add(ret, ckpt_to_json(&s->retired[i]));
		json_object_object_add(o, "retired", ret);
	}
	json_object_object_add(o, "pending", s->pending ? ckpt_to_json(s->pending) : NULL);
	for (size_t i = 0; i < s->nman; i++)
		json_object_array_add(man, json_object_new_string(s->manifests[i]));
	json_object_object_add(o, "manifests", man);
	if (s->npruned)
		json_object_object_add(o, "pruned", pruned_to_json(s));
	out = st_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

char *st_manifest_text(const struct vb_state *s, const struct vb_ckpt *c)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	char *out;

	jadd(o, "format", "vmaback-manifest");
	json_object_object_add(o, "version", json_object_new_int(1));
	jadd(o, "set", s->set);
	jadd(o, "checkpoint", c->name);
	jadd(o, "kind", vb_kind_name(c->kind));
	jadd(o, "uuid", c->uuid);
	jadd(o, "base_uuid", c->base_uuid);
	jadd(o, "archive", c->archive);
	jadd(o, "archive_sha256", c->archive_sha256);
	if (c->key_id)
		jadd(o, "key_id", c->key_id);
	if (c->archive_size)
		json_object_object_add(o, "archive_size",
				       json_object_new_int64((int64_t)c->archive_size));
	json_object_object_add(o, "time", json_object_new_int64(c->time));
	for (size_t i = 0; i < c->ndrives; i++) {
		json_object *x = json_object_new_object();

		jadd(x, "name", c->drives[i].name);
		json_object_object_add(x, "size", json_object_new_int64((int64_t)c->drives[i].size));
		jadd(x, "digest_root", c->drives[i].digest_root);
		json_object_array_add(arr, x);
	}
	json_object_object_add(o, "drives", arr);
	out = st_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

/* "pruned": checkpoints a prune removed, whose archives it had still to
 * delete; absent in states of older versions and when there are none. */
static int load_pruned(struct vb_state *s, json_object *root)
{
	json_object *arr;
	size_t n;

	if (!json_object_object_get_ex(root, "pruned", &arr) || !arr)
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return -1;
	n = json_object_array_length(arr);
	s->pruned = calloc(n + 1, sizeof(*s->pruned));
	if (!s->pruned)
		return -1;
	for (size_t i = 0; i < n; i++) {
		json_object *x = json_object_array_get_idx(arr, i);
		struct vb_pruned *p = &s->pruned[s->npruned];

		if (!jstr(x, "checkpoint") || !jstr(x, "uuid"))
			return -1;
		p->checkpoint = st_strdup(jstr(x, "checkpoint"));
		p->uuid = st_strdup(jstr(x, "uuid"));
		p->archive = st_strdup(jstr(x, "archive"));
		s->npruned++;
		if (!p->checkpoint || !p->uuid)
			return -1;
	}
	return 0;
}

static int load_checkpoints(struct vb_state *s, json_object *root, struct vb_error *err)
{
	json_object *arr, *p, *man;
	size_t n;

	if (!json_object_object_get_ex(root, "checkpoints", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return -1;
	n = json_object_array_length(arr);
	s->ck = calloc(n + 1, sizeof(*s->ck));
	if (!s->ck)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (ckpt_from_json(&s->ck[i], json_object_array_get_idx(arr, i)) < 0)
			return -1;
		s->n++;
	}
	/* "retired": removed checkpoints whose archives a kept checkpoint's
	 * restore still needs (absent when there are none). */
	if (json_object_object_get_ex(root, "retired", &p) && p) {
		if (!json_object_is_type(p, json_type_array))
			return -1;
		s->retired = calloc(json_object_array_length(p) + 1, sizeof(*s->retired));
		if (!s->retired)
			return -1;
		for (size_t i = 0; i < json_object_array_length(p); i++) {
			if (ckpt_from_json(&s->retired[i], json_object_array_get_idx(p, i)) < 0)
				return -1;
			s->nretired++;
		}
	}
	if (json_object_object_get_ex(root, "pending", &p) && p) {
		s->pending = calloc(1, sizeof(*s->pending));
		if (!s->pending || ckpt_from_json(s->pending, p) < 0) {
			free(s->pending);
			s->pending = NULL;
			return -1;
		}
	}
	if (json_object_object_get_ex(root, "manifests", &man) &&
	    json_object_is_type(man, json_type_array)) {
		size_t m = json_object_array_length(man);

		s->manifests = calloc(m + 1, sizeof(char *));
		if (!s->manifests)
			return -1;
		for (size_t i = 0; i < m; i++) {
			const char *f = json_object_get_string(json_object_array_get_idx(man, i));

			if (!st_file_name_ok(f))
				return -1;
			s->manifests[s->nman++] = st_strdup(f);
		}
	}
	(void)err;
	return load_pruned(s, root);
}


/* The checks of a loaded state.json, on its text (len bytes, NUL after). */
int st_parse(struct vb_state *s, const char *text, size_t len, struct vb_error *err)
{
	json_object *root = NULL;
	struct json_tokener *tok;
	const char *fmt, *set;
	int64_t version;
	int rc = -1;

	if (len > INT_MAX)
		return vb_error_set(err, VB_E_INVALID, 0, "%s/%s is damaged (too large)",
				    s->path, STATE_FILE);
	tok = json_tokener_new();
	if (tok)
		root = json_tokener_parse_ex(tok, text, (int)len);
	if (!tok || !root || json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(root, json_type_object)) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s is damaged (not valid JSON); "
			     "move the set's directory away to start a new chain",
			     s->path, STATE_FILE);
		goto out;
	}
	fmt = jstr(root, "format");
	set = jstr(root, "set");
	if (!fmt || strcmp(fmt, "vmaback-state") != 0 || jint(root, "version", &version) < 0) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s is not a vmaback state file",
			     s->path, STATE_FILE);
		goto out;
	}
	if (version > STATE_VERSION) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s was written by a newer vmaback "
			     "(state version %lld); this one knows version %d", s->path,
			     STATE_FILE, (long long)version, STATE_VERSION);
		goto out;
	}
	if (!set || strcmp(set, s->set) != 0) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s belongs to set '%s', not '%s'",
			     s->path, STATE_FILE, set ? set : "?", s->set);
		goto out;
	}
	if (load_checkpoints(s, root, err) < 0) {
		vb_error_set(err, VB_E_INVALID, 0, "%s/%s is damaged (bad checkpoint entry)",
			     s->path, STATE_FILE);
		goto out;
	}
	rc = 0;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

struct vb_state *vb_state_parse(const char *set, const char *text, size_t len,
				struct vb_error *err)
{
	struct vb_state *s = calloc(1, sizeof(*s));

	if (!s) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		return NULL;
	}
	s->dirfd = s->lockfd = -1;
	s->path = strdup("(text)");
	s->set = strdup(set);
	if (!s->path || !s->set) {
		vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
		goto fail;
	}
	if (st_parse(s, text, len, err) < 0)
		goto fail;
	return s;
fail:
	vb_state_close(s);
	return NULL;
}

char *vb_state_text(const struct vb_state *s)
{
	return st_state_text(s);
}
