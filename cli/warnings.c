/* warnings.c: the one place where core's warnings (struct vb_warning) are
 * printed, through the one output path (stderr and --log-file), and kept
 * for --json, which lists them as records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"

struct kept {
	enum vb_warn_kind kind;
	char *drive, *msg;
};

/* The command's warnings (cli/ may keep process state: style.md). */
static struct {
	const char *cmd;  /* NULL: "INFO: MESSAGE" lines, else "vmaback: CMD: MESSAGE" */
	bool quiet;
	bool hold;        /* printed only at cli_warnings_hold(false) */
	struct kept *v;
	size_t n, shown;
} W;

static void flush(void);

void cli_warnings_style(const char *cmd, bool quiet)
{
	flush();
	W.cmd = cmd;
	W.quiet = quiet;
}

static void show(const struct kept *k)
{
	if (!W.cmd) {
		cli_info(W.quiet, "INFO: %s", k->msg);
		return;
	}
	cli_log_line("INFO: %s: %s", W.cmd, k->msg);
	if (W.quiet)
		return;
	fflush(stdout);
	fprintf(stderr, "vmaback: %s: %s\n", W.cmd, k->msg);
}

static void flush(void)
{
	for (; W.shown < W.n; W.shown++)
		show(&W.v[W.shown]);
}

void cli_on_warning(void *opaque, const struct vb_warning *w)
{
	struct kept *v = realloc(W.v, (W.n + 1) * sizeof(*v)), *k;

	(void)opaque;
	if (!v) { /* not kept for --json: still printed */
		struct kept once = { w->kind, (char *)w->drive, (char *)w->msg };

		if (!W.hold)
			show(&once);
		return;
	}
	W.v = v;
	k = &v[W.n];
	*k = (struct kept){ .kind = w->kind, .msg = strdup(w->msg),
			    .drive = w->drive ? strdup(w->drive) : NULL };
	if (!k->msg) {
		free(k->drive);
		return;
	}
	W.n++;
	if (!W.hold)
		flush();
}

void cli_warnings_hold(bool hold)
{
	W.hold = hold;
	if (!hold)
		flush();
}

struct json_object *cli_warnings_json(void)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < W.n; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "kind", json_object_new_string(vb_warn_kind_name(
									  W.v[i].kind)));
		json_object_object_add(o, "drive", W.v[i].drive ?
				       json_object_new_string(W.v[i].drive) : NULL);
		json_object_object_add(o, "message", json_object_new_string(W.v[i].msg));
		json_object_array_add(a, o);
	}
	return a;
}

size_t cli_warnings_count(void)
{
	return W.n;
}

void cli_warnings_end(void)
{
	flush();
	for (size_t i = 0; i < W.n; i++) {
		free(W.v[i].drive);
		free(W.v[i].msg);
	}
	free(W.v);
	memset(&W, 0, sizeof(W));
}
