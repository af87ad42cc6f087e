/* qmp_json.c: the JSON helpers of the QMP client: string literals for
 * vb_qmp_execf's formats, UTF-8 checks, typed member lookups. */
#include <string.h>

#include "core/source/qmp_int.h"

/* Bytes that are not UTF-8 would make QEMU refuse the line, and a 0xff
 * resets the agent's parser in the middle of it. */
bool vb_json_is_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t n = p[i] < 0x80 ? 1 : vb_utf8_len(p + i, len - i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* The ring is the one global mutable state here: not thread-safe, and a
 * pointer stays valid for the next 7 calls only. */
#define QMP_STR_RING 8
#define QMP_STR_SIZE 1024

const char *vb_qmp_str(const char *s)
{
	static char ring[QMP_STR_RING][QMP_STR_SIZE];
	static unsigned next;
	json_object *o;
	const char *lit;
	char *out;

	/* a string that does not fit, or is not UTF-8, becomes null: the
	 * command then fails visibly instead of running on another string */
	if (s == NULL || !vb_json_is_utf8(s, strlen(s)) || (o = json_object_new_string(s)) == NULL)
		return "null";
	lit = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					     JSON_C_TO_STRING_NOSLASHESCAPE);
	out = ring[next];
	if (lit == NULL || strlen(lit) >= QMP_STR_SIZE) {
		json_object_put(o);
		return "null";
	}
	memcpy(out, lit, strlen(lit) + 1);
	next = (next + 1) % QMP_STR_RING;
	json_object_put(o);
	return out;
}

const char *vb_json_str(json_object *o, const char *key)
{
	json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

bool vb_json_bool(json_object *o, const char *key, bool dflt)
{
	json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_boolean))
		return dflt;
	return json_object_get_boolean(v);
}

int64_t vb_json_int(json_object *o, const char *key, int64_t dflt)
{
	json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}
