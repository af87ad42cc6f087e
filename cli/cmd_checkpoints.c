/* cmd_checkpoints.c: `vmaback checkpoints`: the chain of a backup set, and
 * removing a checkpoint from it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cli/cli.h"

enum { OPT_REMOVE = 256 };

static const struct option options[] = {
	CLI_SET_OPTIONS,
	CLI_JSON_OPTION,
	{ "remove", required_argument, NULL, OPT_REMOVE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static json_object *ckpt_json(const struct vb_ckpt *c, bool pending)
{
	json_object *o = json_object_new_object(), *d = json_object_new_array();

	json_object_object_add(o, "name", json_object_new_string(c->name));
	json_object_object_add(o, "time", json_object_new_int64(c->time));
	json_object_object_add(o, "kind", json_object_new_string(vb_kind_name(c->kind)));
	json_object_object_add(o, "parent", c->parent ? json_object_new_string(c->parent) : NULL);
	json_object_object_add(o, "uuid", json_object_new_string(c->uuid));
	json_object_object_add(o, "base_uuid",
			       c->base_uuid ? json_object_new_string(c->base_uuid) : NULL);
	json_object_object_add(o, "archive",
			       c->archive ? json_object_new_string(c->archive) : NULL);
	json_object_object_add(o, "archive_sha256", c->archive_sha256 ?
			       json_object_new_string(c->archive_sha256) : NULL);
	if (c->key_id)
		json_object_object_add(o, "key_id", json_object_new_string(c->key_id));
	json_object_object_add(o, "pending", json_object_new_boolean(pending));
	for (size_t i = 0; i < c->ndrives; i++) {
		json_object *x = json_object_new_object();

		json_object_object_add(x, "name", json_object_new_string(c->drives[i].name));
		json_object_object_add(x, "size", json_object_new_uint64(c->drives[i].size));
		json_object_array_add(d, x);
	}
	json_object_object_add(o, "drives", d);
	return o;
}

static void print_ckpt(const struct vb_ckpt *c, bool pending)
{
	time_t t = (time_t)c->time;
	struct tm tm;
	char when[32];

	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	char *name = cli_esc(c->name), *arch = c->archive ? cli_esc(c->archive) : NULL;

	printf("%-26s %-12s %s  %s%s\n", name ? name : "?", vb_kind_name(c->kind), when,
	       arch ? arch : c->archive ? "?" : "(not a file)", pending ? "  [pending]" : "");
	free(name);
	free(arch);
}

static int list(const struct vb_state *s, bool json)
{
	if (json) {
		json_object *o = json_object_new_object(), *arr = json_object_new_array();

		json_object_object_add(o, "set", json_object_new_string(vb_state_set(s)));
		for (size_t i = 0; i < vb_state_count(s); i++)
			json_object_array_add(arr, ckpt_json(vb_state_get(s, i), false));
		json_object_object_add(o, "checkpoints", arr);
		json_object_object_add(o, "pending", vb_state_pending(s) ?
				       ckpt_json(vb_state_pending(s), true) : NULL);
		cli_json_print(stdout, o, JSON_C_TO_STRING_PRETTY);
		json_object_put(o);
		return cli_close_stdout(EXIT_OK);
	}
	if (vb_state_count(s) == 0 && !vb_state_pending(s))
		printf("backup set %s has no checkpoint\n", vb_state_set(s));
	for (size_t i = 0; i < vb_state_count(s); i++)
		print_ckpt(vb_state_get(s, i), false);
	if (vb_state_pending(s))
		print_ckpt(vb_state_pending(s), true);
	return cli_close_stdout(EXIT_OK);
}

static int checkpoints_run(int argc, char **argv)
{
	struct cli_getopt g = { .cmd = "checkpoints", .shortopts = ":h",
				  .longopts = options };
	struct cli_set_opts a = { 0 };
	struct vb_error err = { 0 };
	const char *remove = NULL;
	struct vb_state *s;
	int ch, status;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		if (cli_set_option(ch, optarg, &a))
			continue;
		if (ch == OPT_REMOVE)
			remove = optarg;
		else if (ch == 'h')
			return cli_help(&cmd_checkpoints);
		else
			return cli_bad_option("checkpoints", argv, ch);
	}
	if (!a.set)
		return cli_usage("checkpoints", "expected --set NAME");
	if (optind != argc)
		return cli_usage("checkpoints", "unexpected argument '%s'", argv[optind]);
	s = cli_open_set("checkpoints", a.set, a.state_dir, remove != NULL, &status);
	if (!s)
		return status;
	if (remove) {
		status = vb_state_remove(s, remove, &err);
		if (status < 0) {
			status = cli_fail("checkpoints", &err);
		} else if (status > 0) {
			cli_warn("checkpoints", "%s was removed from set %s, but %s", remove,
				 a.set, err.msg);
			status = EXIT_FAIL;
		}
		if (status == EXIT_OK)
			fprintf(stderr, "vmaback: checkpoints: %s removed from set %s\n", remove,
				a.set);
	} else {
		status = list(s, a.json);
	}
	vb_state_close(s);
	return status;
}

const struct command cmd_checkpoints = {
	.name = "checkpoints",
	.options = options,
	.run = checkpoints_run,
	.summary = "list or remove the checkpoints of a backup set",
	.help =
	"Usage: vmaback checkpoints --set NAME [--state-dir DIR] [--json]\n"
	"       vmaback checkpoints --set NAME [--state-dir DIR] --remove CHECKPOINT\n"
	"\n"
	"Lists the checkpoint chain of a backup set, oldest first: name, kind of\n"
	"the backup that made it, time, and where its archive was written; a\n"
	"checkpoint waiting for `vmaback commit` is marked [pending].\n"
	"\n"
	"      --set NAME          the backup set\n"
	"      --state-dir DIR     where sets keep their state (default\n"
	"                          /var/lib/vmaback for root, else\n"
	"                          $XDG_STATE_HOME/vmaback)\n"
	"      --json              the chain as JSON\n"
	"      --remove CKPT       drop a checkpoint from the chain; its changes are\n"
	"                          merged into the next one, so differential backups\n"
	"                          from older checkpoints stay right. Archives are\n"
	"                          not touched; one that a later checkpoint's\n"
	"                          restore reads stays known to the set, so prune\n"
	"                          keeps it while a kept backup needs it. Refused\n"
	"                          for the latest checkpoint (the next incremental\n"
	"                          builds on it) and for a full that later\n"
	"                          checkpoints build on (their restores need it):\n"
	"                          to start afresh, back up with --mode full and\n"
	"                          let `vmaback prune` remove the old chain.\n"
	"  -h, --help              show this help\n"
	"\n"
	"Exit status: 0 success, 2 usage error (no such checkpoint, or one that\n"
	"cannot be removed), 3 damaged state, 4 the set is locked by a running\n"
	"backup.\n",
};
