/* cmd_prune.c: `vmaback prune`: keeps a set's backups by Proxmox's keep-*
 * rules (and every archive a kept backup's restore needs), removes the rest
 * from the state, atomically, then deletes their files. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define CMD "prune"

enum {
	OPT_SET = 256, OPT_STATE_DIR, OPT_DUMPDIR, OPT_DRY_RUN, OPT_LAST, OPT_HOURLY, OPT_DAILY,
	OPT_WEEKLY, OPT_MONTHLY, OPT_YEARLY,
};

static const struct option options[] = {
	{ "set", required_argument, NULL, OPT_SET },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "dumpdir", required_argument, NULL, OPT_DUMPDIR },
	{ "keep-last", required_argument, NULL, OPT_LAST },
	{ "keep-hourly", required_argument, NULL, OPT_HOURLY },
	{ "keep-daily", required_argument, NULL, OPT_DAILY },
	{ "keep-weekly", required_argument, NULL, OPT_WEEKLY },
	{ "keep-monthly", required_argument, NULL, OPT_MONTHLY },
	{ "keep-yearly", required_argument, NULL, OPT_YEARLY },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct prune_args {
	const char *set, *state_dir, *dumpdir;
	struct vb_keep keep;
	bool dry_run, quiet;
};

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return p ? (s ? s + 1 : p) : "(not a file)";
}

/* Why a backup stays or goes, for a person. */
static void reason(const struct vb_backup_list *l, const struct vb_backup_info *b,
		   const struct vb_keep *k, char *buf, size_t len)
{
	const unsigned counts[] = { 0, k->last, k->hourly, k->daily, k->weekly, k->monthly,
				    k->yearly };

	switch (b->keep) {
	case VB_KEEP_NO:
		snprintf(buf, len, b->pruned ? "its checkpoint was pruned before; its file was "
			 "not deleted yet" : "no rule keeps it");
		break;
	case VB_KEEP_LAST: case VB_KEEP_HOURLY: case VB_KEEP_DAILY: case VB_KEEP_WEEKLY:
	case VB_KEEP_MONTHLY: case VB_KEEP_YEARLY:
		snprintf(buf, len, "%s %u", vb_keep_why_name(b->keep), counts[b->keep]);
		break;
	case VB_KEEP_ALL:
		snprintf(buf, len, "no keep rule given: everything is kept");
		break;
	case VB_KEEP_PROTECTED:
		snprintf(buf, len, "protected");
		break;
	case VB_KEEP_LATEST:
		snprintf(buf, len, "latest checkpoint: the next incremental builds on it");
		break;
	case VB_KEEP_PENDING:
		snprintf(buf, len, "pending checkpoint");
		break;
	case VB_KEEP_NEEDED: {
		const struct vb_backup_info *by = &l->v[b->needed_by];

		snprintf(buf, len, "restoring %s needs it",
			 by->checkpoint ? by->checkpoint : base_name(by->path));
		break;
	}
	default:
		snprintf(buf, len, "not a checkpoint of the set: left alone");
	}
}

static void report(const struct prune_args *a, const struct vb_backup_list *l)
{
	for (size_t i = l->n; i-- > 0; ) {
		const struct vb_backup_info *b = &l->v[i];
		char t[32], why[300];

		if (a->quiet && b->keep != VB_KEEP_NO)
			continue;
		cli_format_time(b->time, t, sizeof(t));
		reason(l, b, &a->keep, why, sizeof(why));
		char *ck = cli_esc(b->checkpoint ? b->checkpoint : "-");
		char *name = cli_esc(base_name(b->path)), *w = cli_esc(why);

		printf("%-12s %s  %-12s %-22s %s (%s)\n",
		       b->keep != VB_KEEP_NO ? "keep" : a->dry_run ? "would remove" : "remove", t,
		       vb_kind_name(b->kind), ck ? ck : "?", name ? name : "?", w ? w : "?");
		free(ck);
		free(name);
		free(w);
	}
}

static int parse(struct prune_args *a, int argc, char **argv)
{
	struct cli_getopt g = { .cmd = CMD, .shortopts = ":qh", .longopts = options };
	unsigned *counts[] = { &a->keep.last, &a->keep.hourly, &a->keep.daily, &a->keep.weekly,
			       &a->keep.monthly, &a->keep.yearly };
	uint64_t v;
	int ch;

	while ((ch = cli_getopt(&g, argc, argv)) != -1) {
		switch (ch) {
		case OPT_SET:
			a->set = optarg;
			break;
		case OPT_STATE_DIR:
			a->state_dir = optarg;
			break;
		case OPT_DUMPDIR:
			a->dumpdir = optarg;
			break;
		case OPT_DRY_RUN:
			a->dry_run = true;
			break;
		case 'q':
			a->quiet = true;
			break;
		case OPT_LAST: case OPT_HOURLY: case OPT_DAILY: case OPT_WEEKLY: case OPT_MONTHLY:
		case OPT_YEARLY:
			if (!cli_parse_uint(optarg, 0, 1000000, &v))
				return cli_usage(CMD, "--%s %s: expected a number, 0 to 1000000",
						 options[ch - OPT_LAST + 3].name, optarg);
			*counts[ch - OPT_LAST] = (unsigned)v;
			break;
		case 'h':
			cli_help(&cmd_prune);
			return -1;
		default:
			return cli_bad_option(CMD, argv, ch);
		}
	}
	if (optind < argc)
		return cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
	if (!a->set)
		return cli_usage(CMD, "expected --set NAME (prune works on a backup set: its "
				 "checkpoints and their archives)");
	return 0;
}

/* The temporaries of runs that did not finish (SIGKILL, a crash), in the
 * dump directory and in each directory holding an archive of the set: one
 * line each, removed (or with --dry-run, named); live writers' stay. */
static void sweep(const struct prune_args *a, const struct vb_backup_list *l)
{
	char **dirs = calloc(l->n + 1, sizeof(*dirs));
	struct vb_warnings w = { .fn = cli_on_warning };
	size_t n = 0;

	if (!dirs)
		return;
	cli_warnings_style(NULL, false); /* "INFO: " lines; a removal: --quiet too */
	if (a->dumpdir)
		dirs[n++] = strdup(a->dumpdir);
	for (size_t i = 0; i < l->n; i++) {
		const char *p = l->v[i].path, *slash = p ? strrchr(p, '/') : NULL;
		char *d;
		bool seen = false;

		if (!p || !l->v[i].present)
			continue;
		d = !slash ? strdup(".") : strndup(p, (size_t)(slash - p) + (slash == p));
		for (size_t j = 0; d && j < n && !seen; j++)
			seen = dirs[j] && strcmp(dirs[j], d) == 0;
		if (seen)
			free(d);
		else
			dirs[n++] = d;
	}
	for (size_t i = 0; i < n; i++) {
		if (dirs[i])
			(void)vb_tempfile_sweep(dirs[i], a->dry_run, &w,
						&(struct vb_error){ 0 });
		free(dirs[i]);
	}
	free(dirs);
	cli_warnings_style(CMD, false);
}

static int run(int argc, char **argv)
{
	struct prune_args a = { 0 };
	struct vb_backup_list l = { 0 };
	struct vb_prune_result res = { 0 };
	struct vb_error err = { 0 };
	struct vb_state *s;
	int status = parse(&a, argc, argv);

	if (status)
		return status == -1 ? EXIT_OK : status;
	/* The set's lock is held from here to the end: no backup runs meanwhile. */
	if (!(s = cli_open_set(CMD, a.set, a.state_dir, !a.dry_run, &status)))
		return status;
	if (vb_backups_collect(s, a.dumpdir, &l, &err) < 0) {
		status = cli_fail(CMD, &err);
		goto out;
	}
	for (size_t i = 0; i < l.nskipped; i++)
		cli_info(false, "WARN: %s", l.skipped[i]);
	vb_prune_plan(&l, &a.keep);
	report(&a, &l);
	sweep(&a, &l);
	if (a.dry_run) {
		status = cli_close_stdout(EXIT_OK);
		goto out;
	}
	status = vb_prune_apply(s, &l, &res, &err);
	if (status < 0) {
		status = cli_fail(CMD, &err);
		goto out;
	}
	if (status > 0) {
		cli_warn(CMD, "%zu checkpoint%s of set %s %s removed from its state, but %s; "
			 "their archives stay until the next prune", res.removed,
			 res.removed == 1 ? "" : "s", a.set, res.removed == 1 ? "was" : "were",
			 err.msg);
		status = EXIT_FAIL;
		goto out;
	}
	/* Test only: a crash between the state change and the deletions. */
	if (getenv("VMABACK_TEST_KILL_AFTER_STATE"))
		raise(SIGKILL);
	/* The state is durable without them: now the files may go. */
	status = vb_prune_finish(s, &res, &err);
	if (status < 0) {
		status = cli_fail(CMD, &err);
		goto out;
	}
	if (status > 0) {
		cli_warn(CMD, "removed %zu checkpoint%s and %zu archive file%s of set %s, but %s",
			 res.removed, res.removed == 1 ? "" : "s", res.files,
			 res.files == 1 ? "" : "s", a.set, err.msg);
		status = EXIT_FAIL;
		goto out;
	}
	if (!a.quiet)
		printf("removed %zu checkpoint%s and %zu archive file%s of set %s\n", res.removed,
		       res.removed == 1 ? "" : "s", res.files, res.files == 1 ? "" : "s", a.set);
	status = cli_close_stdout(EXIT_OK);
out:
	vb_backups_free(&l);
	vb_state_close(s);
	return status;
}

const struct command cmd_prune = {
	.name = "prune",
	.options = options,
	.run = run,
	.summary = "remove a set's old backups by keep rules",
	.help =
	"Usage: vmaback prune --set NAME [--state-dir DIR] [--dumpdir DIR]\n"
	"                     [--keep-last N] [--keep-hourly N] [--keep-daily N]\n"
	"                     [--keep-weekly N] [--keep-monthly N] [--keep-yearly N]\n"
	"                     [--dry-run] [--quiet]\n"
	"\n"
	"Chooses the backups of a set to keep with the rules of Proxmox's prune\n"
	"(and borg's): newest first, --keep-last keeps the N newest; then each\n"
	"of --keep-hourly, -daily, -weekly (ISO weeks), -monthly, -yearly keeps\n"
	"the newest backup of each of the N newest periods (local time) that no\n"
	"earlier rule kept a backup in. Protected archives (ARCHIVE.protected\n"
	"exists, see backup --protected) are kept and take no rule's place.\n"
	"Without any rule nothing is removed.\n"
	"\n"
	"Then every backup a kept one builds on is kept too (its full and the\n"
	"archives before it, so a kept backup always restores), and so is the\n"
	"latest checkpoint (the next incremental builds on it) and a pending one.\n"
	"The others are removed from the set's state in one atomic change (their\n"
	"changes merge into the next checkpoint, so the next incremental and\n"
	"differential backups stay right), and only then are their archives\n"
	"deleted with their .notes and .log files (an archive protected in the\n"
	"meantime stays, outside the set). If a prune is stopped in between, the\n"
	"state remembers the archives still to delete; the next prune deletes\n"
	"them (ls shows them as [pruned]).\n"
	"\n"
	"The hidden temporaries (.NAME.vbtmp.XXXXXX) that a backup killed by\n"
	"SIGKILL or a crash left in the dump directory or beside the set's\n"
	"archives are removed too, one line each (--dry-run names them); a\n"
	"running backup holds a lock on its temporary, which stays.\n"
	"\n"
	"      --set NAME         the backup set (its lock is held while pruning)\n"
	"      --state-dir DIR    where sets keep their state\n"
	"      --dumpdir DIR      also look for the set's archives in DIR\n"
	"      --keep-last N      keep the N newest backups\n"
	"      --keep-hourly N    keep the newest backup of N hours\n"
	"      --keep-daily N     keep the newest backup of N days\n"
	"      --keep-weekly N    keep the newest backup of N weeks\n"
	"      --keep-monthly N   keep the newest backup of N months\n"
	"      --keep-yearly N    keep the newest backup of N years\n"
	"      --dry-run          print what would be kept and removed, and why\n"
	"  -q, --quiet            print only what is removed\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 done, 1 a file could not be deleted, 2 usage error,\n"
	"3 damaged state, 4 the set is locked by another run.\n",
};
