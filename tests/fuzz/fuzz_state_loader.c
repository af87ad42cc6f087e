/* fuzz_state_loader.c: libFuzzer target for the state.json loader of a
 * backup set: any text is refused or loaded, and a loaded state round-trips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/store/store_int.h"

static void walk(const struct vb_state *s)
{
	size_t n = vb_state_count(s);

	for (size_t i = 0; i < n; i++) {
		const struct vb_ckpt *c = vb_state_get(s, i);

		if (!c || !c->name || vb_state_find(s, c->name) == NULL)
			abort();
		for (size_t j = 0; j < c->ndrives; j++)
			if (!c->drives[j].name || !c->drives[j].bitmap || c->drives[j].size == 0)
				abort();
	}
	if ((n == 0) != (vb_state_latest(s) == NULL))
		abort();
	(void)vb_state_pending(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vb_error err = { 0 };
	struct vb_state *s, *s2;
	char *text = malloc(size + 1), *t1 = NULL, *t2 = NULL;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	s = vb_state_parse("s", text, size, &err);
	if (!s) {
		if (err.msg[0] == '\0')
			abort(); /* a refusal always says why */
		free(text);
		return 0;
	}
	walk(s);
	/* What it would write back loads again, to the same text. */
	t1 = vb_state_text(s);
	if (!t1)
		abort();
	s2 = vb_state_parse("s", t1, strlen(t1), &err);
	if (!s2)
		abort();
	t2 = vb_state_text(s2);
	if (!t2 || strcmp(t1, t2) != 0 || vb_state_count(s) != vb_state_count(s2))
		abort();
	free(t1);
	free(t2);
	vb_state_close(s2);
	vb_state_close(s);
	free(text);
	return 0;
}
