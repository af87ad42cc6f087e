/* fuzz_spec.c: libFuzzer target for input detection (a --drive spec to a
 * kind and format): the first byte says whether the plain path is a
 * regular file, the rest is the spec. Whatever the spec, the decision is
 * consistent and comes only from the spec's text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/source/source.h"

static const char *ext(const char *p)
{
	const char *dot = strrchr(p, '.');

	return dot && !strchr(dot, '/') ? dot + 1 : "";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vb_spec a, b;
	bool regular;
	char *s;

	if (size == 0)
		return 0;
	regular = data[0] & 1;
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	vb_spec_classify(s, regular, &a);
	vb_spec_classify(s, regular, &b);
	/* the same spec, the same answer (member by member: memcmp would
	 * compare the padding after kind, which nothing sets) */
	if (a.kind != b.kind || a.format != b.format || a.path != b.path)
		abort();
	if (a.kind != VB_SPEC_NBD && (a.path < s || a.path > s + strlen(s)))
		abort(); /* the path is part of the spec */
	if (a.kind == VB_SPEC_RAW && a.format)
		abort();
	if (a.kind == VB_SPEC_IMAGE) {
		size_t n = strlen(a.format);
		bool prefix = strncmp(s, a.format, n) == 0 && s[n] == ':' && a.path == s + n + 1;
		bool named = a.path == s && regular && strcmp(ext(s), a.format) == 0;

		if (!a.format || (!prefix && !named))
			abort(); /* an image format only from a prefix or a file's name */
	}
	if (!regular && a.kind == VB_SPEC_IMAGE && a.path == s)
		abort(); /* a device or missing path is never an image by name */
	free(s);
	return 0;
}
