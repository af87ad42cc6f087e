/* cmd_backup.c: `vmaback backup`: options into a backup transaction, the
 * output stack (file, stdout, zstd), and the summary. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli/backup_opts.h"

#define CMD "backup"

/* Where the archive goes: a file (published atomically), standard output,
 * or a command's standard input. */
static struct vb_writer *open_sink(const struct backup_args *a, struct vb_error *err)
{
	struct vb_writer *sink;

	if (a->output_cmd) {
		sink = vb_sink_cmd_new(a->output_cmd, err);
		if (sink)
			cli_set_consumer(vb_sink_cmd_pid(sink));
		return sink;
	}
	if (strcmp(a->out, "-") == 0)
		return vb_sink_fd_new(STDOUT_FILENO, "standard output", err);
	return vb_sink_file_new(a->out, a->force, err);
}

static const char *out_name(const struct backup_args *a)
{
	if (a->output_cmd)
		return "(output command)";
	return strcmp(a->out, "-") == 0 ? "(standard output)" : a->out;
}

static const char *ckpt_state(const struct vb_backup_result *r)
{
	if (!r->checkpoint[0])
		return "none";
	return r->pending ? "pending" : "committed";
}

static void summary_json(const struct backup_args *a, const struct vb_backup_result *r,
			 const char *uuid, const char *sha)
{
	bool to_stdout = a->out && strcmp(a->out, "-") == 0;
	json_object *o = json_object_new_object();
	const char *txt;

	json_object_object_add(o, "status", json_object_new_string("ok"));
	json_object_object_add(o, "archive", a->out ? json_object_new_string(a->out) : NULL);
	json_object_object_add(o, "output_cmd", a->output_cmd ?
			       json_object_new_string(a->output_cmd) : NULL);
	json_object_object_add(o, "uuid", json_object_new_string(uuid));
	json_object_object_add(o, "sha256", json_object_new_string(sha));
	json_object_object_add(o, "kind", json_object_new_string(r->kind));
	json_object_object_add(o, "set", a->set ? json_object_new_string(a->set) : NULL);
	json_object_object_add(o, "checkpoint", r->checkpoint[0] ?
			       json_object_new_string(r->checkpoint) : NULL);
	json_object_object_add(o, "checkpoint_state", json_object_new_string(ckpt_state(r)));
	json_object_object_add(o, "drives", json_object_new_int((int)r->drives));
	json_object_object_add(o, "total_size", json_object_new_uint64(r->total_size));
	json_object_object_add(o, "bytes_read", json_object_new_uint64(r->bytes_read));
	json_object_object_add(o, "bytes_zero", json_object_new_uint64(r->bytes_zero));
	json_object_object_add(o, "bytes_unchanged", json_object_new_uint64(r->bytes_unchanged));
	json_object_object_add(o, "clusters", json_object_new_uint64(r->clusters));
	json_object_object_add(o, "dirty_clusters", json_object_new_uint64(r->dirty_clusters));
	json_object_object_add(o, "archive_bytes", json_object_new_uint64(r->archive_bytes));
	json_object_object_add(o, "output_bytes", json_object_new_uint64(r->output_bytes));
	json_object_object_add(o, "seconds", json_object_new_double(r->seconds));
	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					     JSON_C_TO_STRING_NOSLASHESCAPE);
	fprintf(to_stdout ? stderr : stdout, "%s\n", txt);
	cli_log_line("%s", txt);
	json_object_put(o);
}

static void summary(const struct backup_args *a, const struct vb_backup_result *r)
{
	char total[32], rd[32], zero[32], arch[32], uuid[40], sha[65], dirty[64] = "";

	vb_uuid_format(r->uuid, uuid);
	vb_hex(r->sha256, 32, sha);
	if (a->json)
		summary_json(a, r, uuid, sha);
	cli_format_size(r->total_size, total, sizeof(total));
	cli_format_size(r->bytes_read, rd, sizeof(rd));
	cli_format_size(r->bytes_zero, zero, sizeof(zero));
	cli_format_size(r->output_bytes, arch, sizeof(arch));
	if (strcmp(r->kind, "full") != 0) {
		char same[32];

		cli_format_size(r->bytes_unchanged, same, sizeof(same));
		snprintf(dirty, sizeof(dirty), ", %s unchanged, %llu changed clusters", same,
			 (unsigned long long)r->dirty_clusters);
	}
	cli_info(a->quiet, "INFO: %s backup of %u drive%s (%s) finished in %.1fs: read %s, "
		 "%s zero or holes not stored%s", r->kind, r->drives, r->drives == 1 ? "" : "s",
		 total, r->seconds, rd, zero, dirty);
	cli_info(a->quiet, "INFO: archive %s: %s, uuid %s, sha256 %s", out_name(a), arch, uuid,
		 sha);
	if (r->checkpoint[0] && !r->pending)
		cli_info(a->quiet, "INFO: checkpoint %s of set %s committed", r->checkpoint,
			 a->set);
	if (r->pending)
		cli_info(a->quiet, "INFO: checkpoint %s of set %s is pending: run 'vmaback commit "
			 "--set %s %s' once the archive is stored", r->checkpoint, a->set, a->set,
			 r->checkpoint);
}

/* ARCHIVE.notes (as Proxmox: the text and a newline) and ARCHIVE.protected,
 * once the archive is published. */
static int write_siblings(const struct backup_args *a)
{
	struct vb_error err = { 0 };

	if (a->notes) {
		char *path = vb_dumpdir_sibling(a->out, "notes");
		struct vb_writer *w = path ? vb_sink_file_new(path, true, &err) : NULL;
		size_t len = strlen(a->notes);
		bool nl = len && a->notes[len - 1] == '\n';

		int rc = w ? 0 : -1;

		if (rc == 0 && (vb_writer_write(w, a->notes, len, &err) < 0 ||
				(!nl && vb_writer_write(w, "\n", 1, &err) < 0))) {
			vb_writer_discard(w);
			rc = -1;
		} else if (rc == 0) {
			rc = vb_writer_close(w, &err);
		}
		free(path);
		if (rc < 0)
			return cli_fail(CMD, &err);
	}
	if (a->protect) {
		char *path = vb_dumpdir_sibling(a->out, "protected");
		int fd = path ? open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
				     0600) : -1;

		if (fd < 0 || close(fd) != 0) {
			cli_warn(CMD, "%s: %s", path ? path : "?", strerror(errno));
			free(path);
			return EXIT_FAIL;
		}
		free(path);
	}
	return 0;
}

static void print_notes(const struct backup_args *a, const char *notes)
{
	const char *p = notes;

	while (*p) {
		size_t n = strcspn(p, "\n");

		cli_info(a->quiet, "INFO: %.*s", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

static void start_line(const struct backup_args *a, const struct vb_backup_opts *o)
{
	/* A dump directory's name waits for the kind (kind_name). */
	cli_info(a->quiet, "INFO: starting backup of %zu drive%s%s%s to %s%s", o->ndrives,
		 o->ndrives == 1 ? "" : "s", a->set ? ", set " : "", a->set ? a->set : "",
		 a->dumpdir ? "dump directory " : "", a->dumpdir ? a->dumpdir : out_name(a));
	for (size_t i = 0; i < o->ndrives; i++) {
		char name[200], spec[600];

		vb_name_printable(o->drives[i].name, name, sizeof(name));
		vb_name_printable(o->drives[i].spec, spec, sizeof(spec));
		cli_info(a->quiet, "INFO: drive %s: %s", name, spec);
	}
}

/* Archives and logs are never written into the state directory, whose
 * clean-up owns its files. */
static int outside_state(const struct backup_args *a)
{
	struct vb_error err = { 0 };
	char *dir;
	int rc = 0;

	if (!a->set)
		return 0;
	dir = a->state_dir ? strdup(a->state_dir) : vb_state_default_dir();
	if (a->out && strcmp(a->out, "-") != 0)
		rc = vb_state_dir_check_output(dir, a->dumpdir ? "--dumpdir: the archive" : "-o",
					       a->out, &err);
	if (rc == 0 && a->log_file)
		rc = vb_state_dir_check_output(dir, "--log-file", a->log_file, &err);
	free(dir);
	return rc < 0 ? cli_fail(CMD, &err) : 0;
}

/* In a dump directory, an incremental or differential is not named like a
 * full vzdump backup (vb_dumpdir_kind_name); the log keeps the base name. */
static int kind_name(struct backup_args *a, struct vb_backup *b, struct vb_error *err)
{
	char *path;

	if (!a->dumpdir)
		return 0;
	path = vb_dumpdir_kind_name(a->generated_out, vb_backup_kind(b));
	if (!path)
		return vb_error_set(err, VB_E_FAIL, ENOMEM, "out of memory");
	free(a->generated_out);
	a->generated_out = path;
	a->out = path;
	return vb_backup_set_archive_path(b, path, err);
}

/* How much of the state's notes prepare() printed. */
static size_t state_notes_shown;

static int prepare(struct backup_args *a, struct vb_backup_opts *o, struct vb_state **state,
		   struct vb_backup **b, struct vb_error *err)
{
	char *dir = NULL;

	if (a->set) {
		dir = a->state_dir ? strdup(a->state_dir) : vb_state_default_dir();
		if (!dir)
			return cli_usage(CMD, "no state directory: give --state-dir DIR");
		*state = vb_state_open(dir, a->set, err);
		free(dir);
		if (!*state)
			return cli_fail(CMD, err);
	}
	o->drives = a->drives;
	o->ndrives = a->ndrives;
	o->configs = a->configs;
	o->nconfigs = a->nconfigs;
	o->cancel = &cli_interrupted;
	o->compress = a->compress == 1;
	o->zstd_level = a->zlevel;
	o->zstd_threads = a->zthreads;
	o->archive_path = a->out && strcmp(a->out, "-") != 0 ? a->out : NULL;
	o->state = *state;
	o->mode = a->mode;
	o->since = a->since;
	o->checkpoint = a->checkpoint;
	o->no_commit = a->no_commit;
	o->no_source_bitmaps = a->no_bitmap;
	o->bwlimit = a->bwlimit;
	start_line(a, o);
	*b = vb_backup_prepare(o, err);
	if (*state) {
		print_notes(a, vb_state_notes(*state));
		state_notes_shown = strlen(vb_state_notes(*state));
	}
	if (!*b || kind_name(a, *b, err) < 0)
		return cli_fail(CMD, err);
	print_notes(a, vb_backup_notes(*b));
	return 0;
}

static int run(int argc, char **argv)
{
	struct backup_args a;
	struct vb_backup_opts o = { 0 };
	struct vb_backup_result res;
	struct vb_backup *b = NULL;
	struct vb_state *state = NULL;
	struct vb_writer *sink;
	struct vb_error err = { 0 };
	struct cli_progress prog;
	int status = backup_args_parse(&a, argc, argv);

	if (status == -1) {
		status = cli_help(&cmd_backup);
		goto out;
	}
	if (status)
		goto out;
	if ((status = outside_state(&a)) != 0)
		goto out;
	if (a.log_file && cli_log_open(a.log_file) < 0) {
		status = cli_usage(CMD, "--log-file %s: %s", a.log_file, strerror(errno));
		goto out;
	}
	cli_progress_init(&prog, a.progress);
	o.progress = cli_progress_cb;
	o.progress_opaque = &prog;
	if ((status = prepare(&a, &o, &state, &b, &err)) != 0)
		goto out;
	sink = open_sink(&a, &err);
	if (!sink) {
		status = cli_fail(CMD, &err);
		goto out;
	}
	if (vb_backup_run(b, sink, &res, &err) < 0) {
		cli_set_consumer(0);
		cli_progress_done(&prog);
		status = cli_fail(CMD, &err);
		if (status != EXIT_USAGE && status != EXIT_LOCKED)
			cli_info(a.quiet, "INFO: backup failed: nothing was published%s",
				 a.set ? " and the checkpoints are unchanged" : "");
		goto out;
	}
	cli_set_consumer(0);
	cli_progress_done(&prog);
	summary(&a, &res);
	/* What the commit itself noted (a pending checkpoint it replaced). */
	if (state)
		print_notes(&a, vb_state_notes(state) + state_notes_shown);
	if ((status = write_siblings(&a)) != 0)
		goto out;
	status = cli_close_stdout(EXIT_OK);
out:
	vb_backup_free(b);
	vb_state_close(state);
	cli_log_close();
	backup_args_free(&a);
	return status;
}

const struct command cmd_backup = {
	.name = "backup",
	.run = run,
	.polls_cancel = true,
	.summary = "back up drives into one VMA archive",
	.help =
	"Usage: vmaback backup --drive NAME=SPEC [--drive NAME=SPEC ...]\n"
	"                      [--config FILE ...] (-o OUT | --output-cmd CMD) [OPTIONS]\n"
	"       vmaback backup --config-file FILE [OPTIONS]\n"
	"\n"
	"Backs up every drive, one after the other, into one VMA archive that\n"
	"Proxmox's `vma extract` can read (full backups). All drives are opened\n"
	"and sized before anything is written; if any drive fails, the backup\n"
	"fails as a whole and nothing is published.\n"
	"\n"
	"What to back up:\n"
	"  -d, --drive NAME=SPEC  a drive: NAME becomes the archive's device name\n"
	"                         (Proxmox uses drive-scsi0, drive-virtio1, ...);\n"
	"                         repeat for each drive (at most 254), in order.\n"
	"                         SPEC is one of:\n"
	"                           PATH         a regular file or a block device,\n"
	"                                        raw; a regular file named *.qcow2,\n"
	"                                        *.vmdk, *.vdi, *.vhdx is that image\n"
	"                                        format (never decided by content)\n"
	"                           raw:PATH     a raw file or device, whatever its name\n"
	"                           qcow2:PATH   an image file read through qemu-nbd\n"
	"                                        (also vmdk:, vdi:, vhdx:), with its\n"
	"                                        backing chain\n"
	"                           nbd://HOST[:PORT]/EXPORT\n"
	"                           nbd+unix:///EXPORT?socket=PATH\n"
	"                                        an NBD export (e.g. a running VM's)\n"
	"  -c, --config FILE      store FILE (at most 65535 bytes) in the archive\n"
	"                         under its base name, e.g. qemu-server.conf\n"
	"\n"
	"Where the archive goes:\n"
	"  -o, --output OUT       a file, written under a hidden temporary name (mode\n"
	"                         0600) and renamed when the backup succeeded; '-'\n"
	"                         writes to standard output\n"
	"      --output-cmd CMD   run `/bin/sh -c CMD` and write the archive to its\n"
	"                         standard input; the backup succeeds only if CMD\n"
	"                         exits 0 (it is killed if the backup fails)\n"
	"  -f, --force            replace OUT if it exists (never one of the\n"
	"                         drives' own sources)\n"
	"      --dumpdir DIR      write the archive into DIR under a generated name,\n"
	"                         by default vzdump's vzdump-qemu-ID-YYYY_MM_DD-\n"
	"                         HH_MM_SS.vma.zst (local time; zstd unless\n"
	"                         --compress none), with the run's log beside it\n"
	"                         (vzdump-qemu-ID-YYYY_MM_DD-HH_MM_SS.log)\n"
	"                         An incremental ends in .vmainc[.zst], a\n"
	"                         differential in .vmadiff[.zst]: Proxmox does not\n"
	"                         list them as vzdump backups\n"	"      --vmid ID          the VM id in generated names\n"
	"      --name-template T  the name without .vma[.zst]: {vmid}, {set} and\n"
	"                         {date} are replaced\n"
	"      --notes TEXT       write ARCHIVE.notes (Proxmox's notes) after success\n"
	"      --protected        create ARCHIVE.protected: prune never removes it\n"
	"      --compress none|zstd\n"
	"                         compression (default: zstd when OUT ends in .zst)\n"
	"      --zstd-level N     zstd level, 1 to 19 (default 3)\n"
	"      --zstd-threads N   zstd worker threads, 0 for none (default: CPUs)\n"
	"      --bwlimit RATE     read the drives at most RATE per second: 50M, 800K,\n"
	"                         1G; a bare number is KiB/s (as vzdump's bwlimit);\n"
	"                         holes and unchanged clusters cost nothing\n"
	"\n"
	"Incremental backups (a backup set keeps checkpoints in its state):\n"
	"      --set NAME         the backup set (its disk set and checkpoint chain)\n"
	"      --state-dir DIR    where sets keep their state (default\n"
	"                         /var/lib/vmaback for root, else\n"
	"                         $XDG_STATE_HOME/vmaback or ~/.local/state/vmaback);\n"
	"                         the archive and the log must be outside it\n"
	"      --mode MODE        auto (default: full when the set has no checkpoint\n"
	"                         or its drives changed, else incremental), full,\n"
	"                         incremental (changes since the latest checkpoint),\n"
	"                         differential (changes since --since CHECKPOINT)\n"
	"      --since CKPT       the base checkpoint of a differential backup\n"
	"      --checkpoint NAME  name of the new checkpoint (default: the UTC time)\n"
	"      --no-commit        leave the new checkpoint pending until\n"
	"                         `vmaback commit`; the default with -o -, where\n"
	"                         vmaback cannot know that the bytes were stored\n"
	"      --commit           commit the checkpoint after -o - too, trusting\n"
	"                         that the pipeline stored every byte\n"
	"      --bitmap NAME      the sources' dirty bitmap NAME holds the changes\n"
	"                         since the set's latest checkpoint: only its dirty\n"
	"                         clusters are read (an NBD export's\n"
	"                         qemu:dirty-bitmap:NAME, a qcow2 file's persistent\n"
	"                         bitmap); --bitmap DRIVE=NAME for one drive\n"
	"      --no-bitmap        find changes by reading the drives (digest maps)\n"
	"                         even where a source has a dirty bitmap\n"
	"\n"
	"What you see:\n"
	"  -q, --quiet            print only errors\n"
	"      --progress MODE    auto (a line per drive on a terminal, else an INFO\n"
	"                         line every 10 s or 10%), bar, log or none\n"
	"      --log-file FILE    append every message, with timestamps, to FILE\n"
	"      --json             print the summary as JSON (on stdout, or on stderr\n"
	"                         when the archive goes to stdout)\n"
	"      --config-file FILE read options from a JSON object whose keys are the\n"
	"                         long options (\"drives\" and \"configs\" are lists);\n"
	"                         the command line overrides it\n"
	"  -h, --help             show this help\n"
	"\n"
	"Holes (SEEK_HOLE, NBD base:allocation) are not read and all-zero 4 KiB\n"
	"blocks are not stored.\n"
	"\n"
	"qcow2 files in a backup set keep one persistent bitmap per checkpoint,\n"
	"named vmaback/SET/CHECKPOINT: the new one is added before the file is\n"
	"read, the older ones are disabled after the commit, and the next\n"
	"incremental reads only what the latest one marks. An image that a\n"
	"running VM holds is refused (exit 4): back up a running VM through an\n"
	"NBD export of it with --bitmap. A source bitmap that cannot be used\n"
	"(missing, or inconsistent after a crash) makes --mode auto take a full\n"
	"backup; an explicit --mode incremental or differential fails instead\n"
	"(exit 2 when it is missing, 3 when it is inconsistent).\n"
	"The checkpoint is committed only after the archive is durable (fsync and\n"
	"rename, or the output command read every byte and exited 0; a command\n"
	"or pipe reader that stops early fails the backup, saying how many bytes\n"
	"it never read); on any failure every bitmap and checkpoint stays as it\n"
	"was.\n"
	"\n"
	"Exit status: 0 success; 1 the backup failed (nothing published, nothing\n"
	"committed); 2 usage error; 3 damaged state or an inconsistent source\n"
	"bitmap; 4 the set is locked by another run, or an image file is in use;\n"
	"128+N interrupted by signal N (HUP, INT, QUIT, TERM, USR1, USR2, ALRM,\n"
	"XCPU, XFSZ: the output command is stopped, nothing is committed).\n"
	"\n"
	"Examples:\n"
	"  vmaback backup --drive drive-scsi0=/dev/vg0/vm-100-disk-0 \\\n"
	"      --config qemu-server.conf -o /backup/vm100.vma.zst\n"
	"  vmaback backup --set vm100 -d drive-scsi0=disk.raw -o - \\\n"
	"      | ssh host 'cat > vm100.vma'\n"
	"  vmaback backup --set vm100 --dumpdir /backup --vmid 100 \\\n"
	"      -d drive-scsi0=/dev/vg0/vm-100-disk-0 --notes 'nightly'\n"
	"  vmaback backup --set vm100 -d drive-scsi0=qcow2:/var/lib/vm100.qcow2 \\\n"
	"      -o /backup/vm100-$(date +%F).vma.zst\n"
	"  vmaback backup --set vm100 --bitmap backup-vda \\\n"
	"      -d drive-scsi0='nbd+unix:///vda?socket=/run/vm100-nbd.sock' -o inc.vma\n",
};
