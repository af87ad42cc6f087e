/* text.c: what vmaback prints that came from outside (names read from
 * archives, state files, directories): escaped for a terminal in text, valid
 * UTF-8 in JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"

char *cli_esc(const char *s)
{
	size_t size = 4 * strlen(s) + 1;
	char *out = malloc(size);

	if (out)
		vb_name_printable(s, out, size);
	return out;
}

void cli_put_esc(FILE *f, const char *s)
{
	char *e = cli_esc(s);

	fputs(e ? e : "?", f);
	free(e);
}

/* ------------------------------------------------------------ JSON */

/* Whether the len bytes at s are UTF-8 throughout. */
static bool utf8_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	while (len) {
		size_t n = vb_utf8_len(p, len);

		if (n == 0)
			return false;
		p += n;
		len -= n;
	}
	return true;
}

/* s with every byte that is not part of a UTF-8 character replaced by
 * U+FFFD (the Unicode replacement character), malloc'd; len in *len. */
static char *utf8_fix(const char *s, size_t *len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = *len, o = 0;
	char *out = malloc(3 * left + 1);

	if (!out)
		return NULL;
	while (left) {
		size_t n = vb_utf8_len(p, left);

		if (n == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			n = 1;
		} else {
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		left -= n;
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/* Every string and every key of o made valid UTF-8, in place. */
static void json_fix(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_string: {
		size_t len = (size_t)json_object_get_string_len(o);
		const char *s = json_object_get_string(o);
		char *f;

		if (utf8_ok(s, len) || !(f = utf8_fix(s, &len)))
			return;
		json_object_set_string_len(o, f, (int)len);
		free(f);
		return;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			json_fix(json_object_array_get_idx(o, i));
		return;
	case json_type_object: {
		/* Keys are fixed by moving their values to a fixed key: collected
		 * first, since the object cannot change while it is walked. */
		size_t n = 0, cap = (size_t)json_object_object_length(o);
		char **bad = cap ? calloc(cap, sizeof(*bad)) : NULL;

		json_object_object_foreach(o, key, val) {
			json_fix(val);
			if (bad && !utf8_ok(key, strlen(key)))
				bad[n++] = strdup(key);
		}
		for (size_t i = 0; i < n; i++) {
			size_t len = bad[i] ? strlen(bad[i]) : 0;
			char *k = bad[i] ? utf8_fix(bad[i], &len) : NULL;
			json_object *v;

			if (k && json_object_object_get_ex(o, bad[i], &v)) {
				json_object_object_add(o, k, json_object_get(v));
				json_object_object_del(o, bad[i]);
			}
			free(k);
			free(bad[i]);
		}
		free(bad);
		return;
	}
	default:
		return;
	}
}

void cli_json_print(FILE *f, json_object *o, int flags)
{
	json_fix(o);
	fprintf(f, "%s\n", json_object_to_json_string_ext(o, flags |
							    JSON_C_TO_STRING_NOSLASHESCAPE));
}
