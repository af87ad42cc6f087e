/* cmd_state.c: `vmaback checkpoints` (the chain of a backup set, and
 * removing a checkpoint) and `vmaback commit` (a pending checkpoint). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cli/cli.h"

enum { OPT_SET = 256, OPT_STATE_DIR, OPT_REMOVE, OPT_JSON };

static const struct option options[] = {
	{ "set", required_argument, NULL, OPT_SET },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "remove", required_argument, NULL, OPT_REMOVE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct state_args {
	const char *set, *state_dir, *remove;
	bool json;
};

/* Parses the shared options; returns -1 for --help, else an exit status. */
static int parse(const char *cmd, const struct command *c, int argc, char **argv,
		 struct state_args *a)
{
	int ch;

	while ((ch = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (ch) {
		case OPT_SET:
			a->set = optarg;
			break;
		case OPT_STATE_DIR:
			a->state_dir = optarg;
			break;
		case OPT_REMOVE:
			a->remove = optarg;
			break;
		case OPT_JSON:
			a->json = true;
			break;
		case 'h':
			cli_help(c);
			return -1;
		default:
			return cli_bad_option(cmd, argv, ch);
		}
	}
	if (!a->set)
		return cli_usage(cmd, "expected --set NAME");
	return 0;
}

static struct vb_state *open_state(const char *cmd, const struct state_args *a, int *status)
{
	struct vb_error err = { 0 };
	char *dir = a->state_dir ? strdup(a->state_dir) : vb_state_default_dir();
	struct vb_state *s;

	if (!dir) {
		*status = cli_usage(cmd, "no state directory: give --state-dir DIR");
		return NULL;
	}
	s = vb_state_open(dir, a->set, &err);
	free(dir);
	if (!s)
		*status = cli_fail(cmd, &err);
	else if (vb_state_notes(s)[0])
		fprintf(stderr, "vmaback: %s: %s", cmd, vb_state_notes(s));
	return s;
}

static json_object *ckpt_json(const struct vb_ckpt *c, bool pending)
{
	json_object *o = json_object_new_object(), *d = json_object_new_array();

	json_object_object_add(o, "name", json_object_new_string(c->name));
	json_object_object_add(o, "time", json_object_new_int64(c->time));
	json_object_object_add(o, "kind", json_object_new_string(c->kind));
	json_object_object_add(o, "parent", c->parent ? json_object_new_string(c->parent) : NULL);
	json_object_object_add(o, "uuid", json_object_new_string(c->uuid));
	json_object_object_add(o, "base_uuid",
			       c->base_uuid ? json_object_new_string(c->base_uuid) : NULL);
	json_object_object_add(o, "archive",
			       c->archive ? json_object_new_string(c->archive) : NULL);
	json_object_object_add(o, "archive_sha256", c->archive_sha256 ?
			       json_object_new_string(c->archive_sha256) : NULL);
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
	printf("%-26s %-12s %s  %s%s\n", c->name, c->kind, when,
	       c->archive ? c->archive : "(not a file)", pending ? "  [pending]" : "");
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
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
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
	struct state_args a = { 0 };
	struct vb_error err = { 0 };
	struct vb_state *s;
	int status = parse("checkpoints", &cmd_checkpoints, argc, argv, &a);

	if (status)
		return status < 0 ? EXIT_OK : status;
	if (optind != argc)
		return cli_usage("checkpoints", "unexpected argument '%s'", argv[optind]);
	s = open_state("checkpoints", &a, &status);
	if (!s)
		return status;
	if (a.remove) {
		status = vb_state_remove(s, a.remove, &err) < 0 ? cli_fail("checkpoints", &err)
								   : EXIT_OK;
		if (status == EXIT_OK)
			fprintf(stderr, "vmaback: checkpoints: %s removed from set %s\n", a.remove,
				a.set);
	} else {
		status = list(s, a.json);
	}
	vb_state_close(s);
	return status;
}

const struct command cmd_checkpoints = {
	.name = "checkpoints",
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
	"                          from older checkpoints stay right. The latest\n"
	"                          checkpoint cannot be removed. Archives are not\n"
	"                          touched.\n"
	"  -h, --help              show this help\n"
	"\n"
	"Exit status: 0 success, 2 usage error (no such checkpoint), 3 damaged\n"
	"state, 4 the set is locked by a running backup.\n",
};

static int commit_run(int argc, char **argv)
{
	struct state_args a = { 0 };
	struct vb_error err = { 0 };
	struct vb_state *s;
	int status = parse("commit", &cmd_commit, argc, argv, &a);

	if (status)
		return status < 0 ? EXIT_OK : status;
	if (optind + 1 != argc)
		return cli_usage("commit", "expected the name of the pending CHECKPOINT");
	s = open_state("commit", &a, &status);
	if (!s)
		return status;
	if (vb_state_commit_pending(s, argv[optind], &err) < 0) {
		status = cli_fail("commit", &err);
	} else {
		fprintf(stderr, "vmaback: commit: checkpoint %s of set %s committed\n",
			argv[optind], a.set);
		status = EXIT_OK;
	}
	vb_state_close(s);
	return status;
}

const struct command cmd_commit = {
	.name = "commit",
	.run = commit_run,
	.summary = "commit a pending checkpoint",
	.help =
	"Usage: vmaback commit --set NAME [--state-dir DIR] CHECKPOINT\n"
	"\n"
	"A backup run with --no-commit (for example one writing to standard\n"
	"output, where vmaback cannot know whether the bytes were stored) leaves\n"
	"its checkpoint pending. Once the archive is safely stored, commit it: it\n"
	"becomes the base of the next incremental backup. A pending checkpoint\n"
	"that is never committed is discarded when the next backup of the set\n"
	"succeeds; that backup again includes every change since the last\n"
	"committed checkpoint. A backup that fails leaves it pending.\n"
	"\n"
	"      --set NAME        the backup set\n"
	"      --state-dir DIR   where sets keep their state\n"
	"  -h, --help            show this help\n"
	"\n"
	"Exit status: 0 success, 2 no such pending checkpoint, 4 the set is locked.\n"
	"\n"
	"Example:\n"
	"  vmaback backup --set vm100 --no-commit --checkpoint n42 -d d=disk.raw -o - \\\n"
	"      | ssh host 'cat > /b/vm100.vma' && vmaback commit --set vm100 n42\n",
};
