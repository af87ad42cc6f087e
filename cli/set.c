/* set.c: what the commands that work on a backup set share: opening (and
 * locking) its state, and how a backup's status, parent and time read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

struct vb_state *cli_open_set(const char *cmd, const char *set, const char *state_dir,
			      bool write, int *status)
{
	struct vb_error err = { 0 };
	char *dir = state_dir ? strdup(state_dir) : vb_state_default_dir();
	struct vb_state *s;

	if (!dir) {
		*status = cli_usage(cmd, "no state directory: give --state-dir DIR");
		return NULL;
	}
	s = write ? vb_state_open(dir, set, &err) : vb_state_open_read(dir, set, &err);
	free(dir);
	if (!s)
		*status = cli_fail(cmd, &err);
	else
		vb_state_on_warning(s, cli_on_warning, NULL);
	return s;
}

const char *cli_backup_status(const struct vb_backup_info *b, bool with_state)
{
	if (b->pruned)
		return "pruned";
	if (b->error)
		return "unreadable";
	if (b->path && !b->present)
		return "missing";
	if (!b->path)
		return "not-a-file";
	if (b->pending)
		return "pending";
	if (b->latest)
		return "latest";
	if (with_state && b->set && !b->in_state && b->checkpoint)
		return "not-in-state";
	return "ok";
}

/* What the backup builds on: the checkpoint (or file name) of its base. */
const char *cli_backup_parent(const struct vb_backup_list *l, const struct vb_backup_info *b)
{
	if (!b->base_uuid)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].uuid && strcmp(l->v[i].uuid, b->base_uuid) == 0) {
			if (l->v[i].checkpoint)
				return l->v[i].checkpoint;
			if (l->v[i].path)
				return strrchr(l->v[i].path, '/') ? strrchr(l->v[i].path, '/') + 1 :
								      l->v[i].path;
		}
	return b->base_uuid;
}

void cli_format_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!t || !localtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "%-19s", "?");
}

int cli_set_option(int ch, const char *arg, struct cli_set_opts *o)
{
	switch (ch) {
	case CLI_OPT_SET:
		o->set = arg;
		return 1;
	case CLI_OPT_STATE_DIR:
		o->state_dir = arg;
		return 1;
	case CLI_OPT_JSON:
		o->json = true;
		return 1;
	default:
		return 0;
	}
}
