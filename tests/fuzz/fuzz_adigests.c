/* fuzz_adigests.c: libFuzzer target for the archive-digest file of a state
 * directory: any bytes are refused with a message or loaded to a list in
 * which every entry is found again and nothing else is. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap/bitmap.h"
#include "core/store/store_int.h"

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vb_error err = { 0 };
	struct vb_adigests a;
	const size_t entry = 8 + DIGEST_LEN;

	if (vb_adigests_parse(data, size, &a, &err) < 0) {
		if (err.msg[0] == '\0' || a.entries != NULL || a.n != 0)
			abort();
		return 0;
	}
	if (size != 24 + a.n * entry || a.size != get64(data + 8))
		abort();
	for (uint64_t i = 0; i < a.n; i++) {
		uint64_t k = get64(a.entries + i * entry);
		const uint8_t *d = vb_adigests_find(&a, k);

		if (k >= bitmap_clusters(a.size) || d != a.entries + i * entry + 8 ||
		    memcmp(d, data + 24 + i * entry + 8, DIGEST_LEN) != 0)
			abort();
		/* the clusters between two entries have none */
		if (i + 1 < a.n && k + 1 < get64(a.entries + (i + 1) * entry) &&
		    vb_adigests_find(&a, k + 1) != NULL)
			abort();
	}
	if (a.n && get64(a.entries) > 0 && vb_adigests_find(&a, get64(a.entries) - 1) != NULL)
		abort();
	if (vb_adigests_find(&a, bitmap_clusters(a.size)) != NULL)
		abort();
	free(a.entries);
	return 0;
}
