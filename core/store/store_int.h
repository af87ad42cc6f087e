/* store_int.h: what the files of core/store share, and its fuzz-only entry
 * points; private to core/store (its unit test and the state loader's fuzz
 * target build as part of it). */
#ifndef VMABACK_STORE_INT_H
#define VMABACK_STORE_INT_H

#ifndef VB_MODULE_store
#error "core/store/store_int.h is private to core/store: include core/store/store.h"
#endif

#include "core/store/store.h"

/* The state of set parsed from the text of a state.json (len bytes and a
 * NUL), with every check vb_state_open makes, but no directory or lock:
 * for the fuzz target. vb_state_text: the state.json text it would write
 * (malloc'd). */
struct vb_state *vb_state_parse(const char *set, const char *text, size_t len,
				struct vb_error *err);
char *vb_state_text(const struct vb_state *s);

/* Writes the archive-digest list for drive di of checkpoint c (from its
 * digest map and the state's bitmaps) into a new state file; *name NULL
 * without a digest map. */
int vb_adigests_write(struct vb_state *s, const struct vb_ckpt *c, size_t di, char **name,
		      struct vb_error *err);

#endif
