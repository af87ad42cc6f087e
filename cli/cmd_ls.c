/* cmd_ls.c: `vmaback ls`: the backups of a dump directory or a backup set,
 * each with its kind, checkpoint, parent, size, time and whether its chain
 * is complete. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cli/cli.h"

#define CMD "ls"

enum { OPT_SET = 256, OPT_STATE_DIR, OPT_DUMPDIR, OPT_JSON };

static const struct option options[] = {
	{ "set", required_argument, NULL, OPT_SET },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "dumpdir", required_argument, NULL, OPT_DUMPDIR },
	{ "json", no_argument, NULL, OPT_JSON },
	CLI_KEY_OPTION,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return p ? (s ? s + 1 : p) : "(not a file)";
}

static void print_text(const struct vb_backup_list *l, bool with_state)
{
	printf("%-19s  %-12s  %-10s  %-9s  %-22s  %-22s  %s\n", "TIME", "KIND", "SIZE", "CHAIN",
	       "CHECKPOINT", "PARENT", "ARCHIVE");
	for (size_t i = 0; i < l->n; i++) {
		const struct vb_backup_info *b = &l->v[i];
		const char *st = cli_backup_status(b, with_state), *parent = cli_backup_parent(l, b);
		char t[32], size[32];

		cli_format_time(b->time, t, sizeof(t));
		if (b->present)
			cli_format_size(b->size, size, sizeof(size));
		else
			snprintf(size, sizeof(size), "-");
		char *ck = cli_esc(b->checkpoint ? b->checkpoint : "-");
		char *par = cli_esc(parent ? parent : "-"), *name = cli_esc(base_name(b->path));

		printf("%-19s  %-12s  %-10s  %-9s  %-22s  %-22s  %s%s%s%s%s\n", t, vb_kind_name(b->kind), size,
		       b->complete ? "complete" : "broken", ck ? ck : "?", par ? par : "?",
		       name ? name : "?", b->protected ? " [protected]" : "",
		       strcmp(st, "ok") ? " [" : "", strcmp(st, "ok") ? st : "",
		       strcmp(st, "ok") ? "]" : "");
		free(ck);
		free(par);
		free(name);
		if (b->error) {
			fputs("    ", stdout);
			cli_put_esc(stdout, b->error);
			putchar('\n');
		}
	}
}

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static void print_json(const struct vb_backup_list *l, bool with_state)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < l->n; i++) {
		const struct vb_backup_info *b = &l->v[i];
		json_object *o = json_object_new_object();
		char t[32];
		time_t tt = (time_t)b->time;
		struct tm tm;

		gmtime_r(&tt, &tm);
		strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_object_add(o, "archive", str_or_null(b->path));
		json_object_object_add(o, "kind", json_object_new_string(vb_kind_name(b->kind)));
		json_object_object_add(o, "set", str_or_null(b->set));
		json_object_object_add(o, "checkpoint", str_or_null(b->checkpoint));
		json_object_object_add(o, "parent", str_or_null(cli_backup_parent(l, b)));
		json_object_object_add(o, "uuid", str_or_null(b->uuid));
		json_object_object_add(o, "parent_uuid", str_or_null(b->base_uuid));
		json_object_object_add(o, "size", json_object_new_uint64(b->size));
		json_object_object_add(o, "time", json_object_new_string(b->time ? t : "?"));
		json_object_object_add(o, "time_epoch", json_object_new_int64(b->time));
		json_object_object_add(o, "complete", json_object_new_boolean(b->complete));
		json_object_object_add(o, "present", json_object_new_boolean(b->present));
		json_object_object_add(o, "protected", json_object_new_boolean(b->protected));
		json_object_object_add(o, "notes", json_object_new_boolean(b->notes));
		json_object_object_add(o, "status", json_object_new_string(cli_backup_status(b, with_state)));
		json_object_object_add(o, "error", str_or_null(b->error));
		json_object_array_add(arr, o);
	}
	cli_json_print(stdout, arr, JSON_C_TO_STRING_PRETTY);
	json_object_put(arr);
}

static int run(int argc, char **argv)
{
	struct cli_getopt g = { .cmd = CMD, .shortopts = ":h", .longopts = options };
	const char *set = NULL, *state_dir = NULL, *dumpdir = NULL;
	struct vb_backup_list l = { 0 };
	struct vb_error err = { 0 };
	struct vb_state *s = NULL;
	bool json = false;
	int ch, status = EXIT_OK;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		switch (ch) {
		case OPT_SET:
			set = optarg;
			break;
		case OPT_STATE_DIR:
			state_dir = optarg;
			break;
		case OPT_DUMPDIR:
			dumpdir = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		case CLI_OPT_KEY: {
			int st = cli_key_load(CMD, optarg);

			if (st != EXIT_OK)
				return st;
			break;
		}
		case 'h':
			return cli_help(&cmd_ls);
		default:
			return cli_bad_option(CMD, argv, ch);
		}
	}
	if (optind < argc)
		return cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
	if (!set && !dumpdir)
		return cli_usage(CMD, "expected --dumpdir DIR or --set NAME (or both)");
	if (state_dir && !set)
		return cli_usage(CMD, "--state-dir goes with --set NAME");
	if (set && !(s = cli_open_set(CMD, set, state_dir, false, &status)))
		return status;
	if (vb_backups_collect(s, dumpdir, &l, &err) < 0) {
		status = cli_fail(CMD, &err);
	} else {
		for (size_t i = 0; i < l.nskipped; i++)
			cli_info(false, "WARN: %s", l.skipped[i]);
		if (json)
			print_json(&l, s != NULL);
		else
			print_text(&l, s != NULL);
		status = cli_close_stdout(EXIT_OK);
	}
	vb_backups_free(&l);
	vb_state_close(s);
	return status;
}

const struct command cmd_ls = {
	.name = "ls",
	.options = options,
	.run = run,
	.summary = "list the backups of a dump directory or a backup set",
	.help =
	"Usage: vmaback ls [--dumpdir DIR] [--set NAME [--state-dir DIR]] [--json]\n"
	"\n"
	"Lists backups, oldest first: with --dumpdir, every archive of DIR\n"
	"(*.vma, *.vma.zst, *.vma.gz, *.vma.lzo: vmaback's and Proxmox's); with\n"
	"--set, the set's checkpoints and their archives (with both, the set's\n"
	"archives in DIR too). Each line shows the time, the kind (full,\n"
	"incremental, differential, proxmox), the size of the file, whether its\n"
	"chain is complete (the archive and every archive it builds on are\n"
	"there), its checkpoint, its parent (what it builds on) and the archive.\n"
	"Marks: [protected] (ARCHIVE.protected exists: prune keeps it), [latest],\n"
	"[pending], [missing] (the state names a file that is gone), [pruned]\n"
	"(its checkpoint was pruned and the file is deleted by the next prune),\n"
	"[not-in-state] (an archive of the set whose checkpoint was never\n"
	"committed), [unreadable].\n"
	"\n"
	"      --dumpdir DIR      the directory to list\n"
	"      --set NAME         the backup set (takes its lock for a moment)\n"
	"      --state-dir DIR    where sets keep their state\n"
	"      --json             a JSON array, one object per backup\n"
	"      --key KEYFILE      the secret key of an encrypted archive\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 listed, 1 the directory cannot be read, 2 usage error,\n"
	"3 damaged state, 4 the set is locked by a running backup.\n",
};
