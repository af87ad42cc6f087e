/* backup_report.c: what `vmaback backup` tells: the start lines,
 * the summary (text and --json) and a run skipped below --threshold. */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/backup_opts.h"

const char *backup_out_name(const struct backup_args *a)
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
	/* a set's plain archive to a file: its vma-tree-1 digest instead */
	json_object_object_add(o, "sha256", r->tree ? NULL : json_object_new_string(sha));
	if (r->tree)
		json_object_object_add(o, VMA_TREE_NAME, json_object_new_string(sha));
	json_object_object_add(o, "kind", json_object_new_string(vb_kind_name(r->kind)));
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
	json_object_object_add(o, "warnings", cli_warnings_json());
	cli_json_print(to_stdout ? stderr : stdout, o, JSON_C_TO_STRING_PLAIN);
	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					     JSON_C_TO_STRING_NOSLASHESCAPE);
	cli_log_line("%s", txt);
	json_object_put(o);
}

void backup_summary(const struct backup_args *a, const struct vb_backup_result *r)
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
	if (r->kind != VB_KIND_FULL) {
		char same[32];

		cli_format_size(r->bytes_unchanged, same, sizeof(same));
		snprintf(dirty, sizeof(dirty), ", %s unchanged, %llu changed clusters", same,
			 (unsigned long long)r->dirty_clusters);
	}
	cli_info(a->quiet, "INFO: %s backup of %u drive%s (%s) finished in %.1fs: read %s, "
		 "%s zero or holes not stored%s", vb_kind_name(r->kind), r->drives, r->drives == 1 ? "" : "s",
		 total, r->seconds, rd, zero, dirty);
	cli_info(a->quiet, "INFO: archive %s: %s, uuid %s, %s %s", backup_out_name(a), arch, uuid,
		 r->tree ? VMA_TREE_NAME : "sha256", sha);
	if (r->checkpoint[0] && !r->pending)
		cli_info(a->quiet, "INFO: checkpoint %s of set %s committed", r->checkpoint,
			 a->set);
	if (r->pending)
		cli_info(a->quiet, "INFO: checkpoint %s of set %s is pending: run 'vmaback commit "
			 "--set %s %s' once the archive is stored", r->checkpoint, a->set, a->set,
			 r->checkpoint);
}

/* After a failure, what the run leaves: never "nothing" once the archive
 * was renamed to its name or read by its consumer. */
void backup_failed_note(const struct backup_args *a, const struct vb_backup_result *r,
			int status)
{
	if (r->committed || r->pending)
		cli_info(a->quiet, "INFO: backup failed after its end: archive %s written, "
			 "checkpoint %s of set %s %s, but it may not survive a crash",
			 backup_out_name(a), r->checkpoint, a->set, ckpt_state(r));
	else if (r->published)
		cli_info(a->quiet, "INFO: backup failed after its end: archive %s written%s",
			 backup_out_name(a), a->set ? ", the checkpoints are unchanged" : "");
	else if (status != EXIT_USAGE && status != EXIT_LOCKED)
		cli_info(a->quiet, "INFO: backup failed: nothing was published%s",
			 a->set ? " and the checkpoints are unchanged" : "");
}

/* Below --threshold: nothing kept, and the run says so. */
void backup_skipped(const struct backup_args *a, const struct vb_backup_result *r)
{
	char changed[32], limit[32];

	cli_format_size(r->dirty_clusters * (uint64_t)VMA_CLUSTER_SIZE, changed, sizeof(changed));
	cli_format_size(a->threshold, limit, sizeof(limit));
	if (a->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "status", json_object_new_string("skipped"));
		json_object_object_add(o, "kind", json_object_new_string(vb_kind_name(r->kind)));
		json_object_object_add(o, "set", json_object_new_string(a->set));
		json_object_object_add(o, "dirty_clusters", json_object_new_uint64(r->dirty_clusters));
		json_object_object_add(o, "threshold", json_object_new_uint64(a->threshold));
		json_object_object_add(o, "warnings", cli_warnings_json());
		cli_json_print(stdout, o, JSON_C_TO_STRING_PLAIN);
		json_object_put(o);
	}
	cli_info(a->quiet, "INFO: backup skipped: %s changed (%llu clusters), less than "
		 "--threshold %s; nothing was published or committed, the next backup holds "
		 "these changes", changed, (unsigned long long)r->dirty_clusters, limit);
}

void backup_start_line(const struct backup_args *a, const struct vb_backup_opts *o)
{
	size_t n = o->live ? vb_live_count(o->live) : o->ndrives;

	/* A dump directory's name waits for the kind (kind_name). */
	cli_info(a->quiet, "INFO: starting backup of %zu drive%s%s%s%s%s to %s%s", n,
		 n == 1 ? "" : "s", o->live ? (a->live.domain ? " of running " :
					      " of the running VM at ") : "",
		 o->live ? (a->live.domain ? vb_live_what(o->live) : a->live.qmp) : "",
		 a->set ? ", set " : "", a->set ? a->set : "",
		 a->dumpdir ? "dump directory " : "", a->dumpdir ? a->dumpdir : backup_out_name(a));
	for (size_t i = 0; i < n; i++) {
		const struct vb_live_drive *d = o->live ? vb_live_get(o->live, i) : NULL;
		char name[200], spec[600];

		vb_name_printable(d ? d->name : o->drives[i].name, name, sizeof(name));
		vb_name_printable(d ? d->qdev : o->drives[i].spec, spec, sizeof(spec));
		if (d && a->live.domain)
			cli_info(a->quiet, "INFO: drive %s: disk %s, %s", name, d->node, spec);
		else if (d)
			cli_info(a->quiet, "INFO: drive %s: device %s, node %s", name, spec, d->node);
		else
			cli_info(a->quiet, "INFO: drive %s: %s", name, spec);
	}
}
