/* backup_opts.h: the parsed options of `vmaback backup` (command line and
 * --config-file), shared by cmd_backup.c and backup_opts.c. */
#ifndef VMABACK_BACKUP_OPTS_H
#define VMABACK_BACKUP_OPTS_H

#include <getopt.h>

#include "cli/cli.h"

struct backup_args {
	struct vb_drive *drives;
	size_t ndrives;
	const char **configs;
	size_t nconfigs;
	char **bitmaps;      /* --bitmap NAME (all drives) or DRIVE=NAME */
	size_t nbitmaps;
	bool no_bitmap;
	const char *out, *output_cmd, *log_file, *config_file;
	const char *hook;        /* --hook CMD, run at each phase */
	/* --encrypt KEYFILE or --recipient PUBFILE: the key encrypted to */
	const char *encrypt, *recipient;
	struct vb_pubkey *pubkey;
	const char *sign;        /* --sign KEYFILE */
	struct vb_key *sign_key;
	/* a running VM: --qmp SOCKET; the drives are NAME=qmp:DEVICE */
	struct cli_live_args live;
	bool fsfreeze;
	bool include_stopped;    /* --include-stopped: a stopped domain read offline */
	unsigned max_chain;      /* --max-chain N */
	int64_t full_every;      /* --full-every DAYS, in seconds */
	double lockwait;         /* --lockwait MINUTES */
	uint64_t threshold;      /* --threshold SIZE, bytes */
	bool force, quiet, json;
	int compress;        /* -1 from the name, 0 none, 1 zstd */
	int zlevel, zthreads;
	const char *set, *state_dir, *since, *checkpoint;
	enum vb_mode mode;
	bool no_commit;
	bool commit;             /* --commit: commit even after -o - */
	uint64_t bwlimit;
	enum cli_progress_mode progress;
	/* a dump directory: the archive's name is generated */
	const char *dumpdir, *vmid, *name_template, *notes;
	bool protect;
	char *generated_out, *generated_log;
	/* the config file as arguments; strings the options point into */
	char **file_argv;
	int file_argc;
	bool drives_from_file, configs_from_file, bitmaps_from_file;
	const char *file_key;    /* while the file's settings are read: the key */
};

/* 0, -1 for --help, or an exit status after printing the usage error. */
int backup_args_parse(struct backup_args *a, int argc, char **argv);
void backup_args_free(struct backup_args *a);

/* A usage error in an option's value; one from the --config-file names
 * the file and the key. Returns EXIT_USAGE. */
int backup_opt_usage(const struct backup_args *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The options together, once read (backup_check.c): 0 or an exit status. */
int backup_args_check(struct backup_args *a);

/* What the run tells (backup_report.c). */
const char *backup_out_name(const struct backup_args *a);
void backup_start_line(const struct backup_args *a, const struct vb_backup_opts *o);
void backup_summary(const struct backup_args *a, const struct vb_backup_result *r);
void backup_skipped(const struct backup_args *a, const struct vb_backup_result *r);
void backup_failed_note(const struct backup_args *a, const struct vb_backup_result *r,
			int status);
/* backup --all (backup_all.c): whether the command line asks for it, and
 * the runs of one (the backup command) for every running domain. */
bool backup_all_asked(int argc, char **argv);
int backup_all(int argc, char **argv, int (*one)(int, char **));

/* `vmaback backup --help` (backup_help.c). */
extern const char backup_help[];

/* backup's getopt_long table (backup_opts.c). */
extern const struct option backup_options[];

#endif
