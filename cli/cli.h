/* cli.h: what the command files of cli/ share: the dispatch table's entry
 * type, exit statuses, messages, signal state and small parsers. */
#ifndef VMABACK_CLI_H
#define VMABACK_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/archive/archive.h"
#include "core/backup/backup.h"
#include "core/base/base.h"
#include "core/catalog/catalog.h"
#include "core/io/io.h"
#include "core/restore/restore.h"
#include "core/source/source.h"
#include "core/store/store.h"

enum exit_status {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
	EXIT_INVALID = 3,
	EXIT_LOCKED = 4,
	/* 128 + signal number when interrupted (130 SIGINT, 143 SIGTERM) */
};

struct option;

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	bool polls_cancel;      /* its engine stops cleanly on cli_interrupted */
	const char *summary;
	const char *help;
	const struct option *options; /* its getopt_long table (the completion tests read it) */
};

extern const struct command cmd_recover, cmd_backup, cmd_list, cmd_config, cmd_verify, cmd_extract,
	cmd_restore, cmd_merge, cmd_checkpoints, cmd_commit, cmd_ls, cmd_prune;
extern const struct command cmd_serve;
extern const struct command cmd_key, cmd_decrypt;
/* Every command, NULL-terminated (commands.c). */
extern const struct command *const cli_commands[];

/* Set by a fatal signal (HUP, INT, QUIT, TERM, USR1, USR2, ALRM, XCPU,
 * XFSZ): the signal number. Checked by the engine. */
extern volatile sig_atomic_t cli_interrupted;

void cli_signals_install(void);
/* Whether the running command's engine polls cli_interrupted (and cleans
 * up itself on the first signal); else a signal exits from the handler. */
void cli_signals_engine_polls(bool polls);
/* The output command's process group, which a signal stops (0: none). */
void cli_set_consumer(pid_t pgid);

/* backup --hook CMD (hooks.c): what a hook is told about the job, in
 * VMABACK_* variables (NULL: unset). */
struct cli_hook_job {
	const char *set, *vmid, *checkpoint, *kind, *archive, *output_cmd, *log_file;
	const char *status;     /* "ok" or "failed", once known */
};
/* Runs CMD PHASE through /bin/sh (nothing if cmd is NULL) and waits for it:
 * 0 when it exited 0, else -1 after a warning naming the phase. */
int cli_hook_run(const char *cmd, const char *phase, const struct cli_hook_job *j);

/* "vmaback: CMD: message" on stderr. */
void cli_warn(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints err and returns its exit status. */
int cli_fail(const char *cmd, const struct vb_error *err);
/* A usage error: message, a hint to --help, EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* getopt_long for a command: an option that takes a value and is not in
 * repeatable (0-terminated vals, e.g. --drive) given twice is a usage error,
 * printed here, and returns CLI_OPT_TWICE (which cli_bad_option passes on
 * as EXIT_USAGE without a second message). Start with optind = 0. */
#define CLI_OPT_TWICE (-2)
struct option;
struct cli_getopt {
	const char *cmd, *shortopts;
	const struct option *longopts;
	const int *repeatable;
	size_t nseen;
	struct { int val; const char *arg; } seen[48];
};
int cli_getopt(struct cli_getopt *g, int argc, char **argv);
/* -d a,b -d c: appends each drive name of arg (split in place) to names;
 * an empty name or one given twice is a usage error (printed; EXIT_USAGE). */
int cli_add_names(const char *cmd, const char *opt, const char ***names, size_t *n,
		  char *arg);
/* After getopt returned '?' or ':' (ch): names the bad option; EXIT_USAGE. */
int cli_bad_option(const char *cmd, char **argv, int ch);
/* The help text of a command on stdout; returns EXIT_OK. */
int cli_help(const struct command *c);

/* Checked decimal parse of a whole string into [min, max]. */
bool cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* full|incremental|differential|auto */
int cli_parse_mode(const char *s, enum vb_mode *m);
/* 50M, 800K, 1G (per second, binary units); a bare number is KiB/s. */
int cli_parse_rate(const char *s, uint64_t *bytes_per_second);
/* "1.5 GiB" */
void cli_format_size(uint64_t bytes, char *buf, size_t len);
/* Flushes and checks stdout; returns EXIT_FAIL on a write error. */
int cli_close_stdout(int status);

/* Opens path for writing (flags: 0 or O_APPEND), creating it 0600: never
 * through a symbolic link, never a FIFO, device or directory. The fd, or -1
 * with the reason in why (to follow the path in a message). */
int cli_open_write(const char *path, int flags, const char **why);

/* Text from outside (names from archives, state files, directories) as
 * printed: control characters, '\\', bytes that are not UTF-8 and C1
 * controls as \\xNN (vb_name_printable); malloc'd (NULL: out of memory). */
char *cli_esc(const char *s);
/* The same, written to f ("?" when out of memory). */
void cli_put_esc(FILE *f, const char *s);
/* o as JSON text and a newline on f (flags: JSON_C_TO_STRING_*); first every
 * string and key of o made valid UTF-8, each byte that is not part of a
 * UTF-8 character replaced by U+FFFD. */
struct json_object;
void cli_json_print(FILE *f, struct json_object *o, int flags);
/* The JSON value in the file at path (at most 1 MiB), or NULL after a usage
 * message naming the file and where it is not JSON. */
struct json_object *cli_load_json_file(const char *cmd, const char *path);

/* --log-file: every message and progress line, with a timestamp. */
int cli_log_open(const char *path, const char **why);  /* 0 or -1 */
void cli_log_close(void);
void cli_log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A line on stderr (unless quiet) and in the log file. */
void cli_info(bool quiet, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

enum cli_progress_mode {
	CLI_PROGRESS_AUTO,   /* a bar on a terminal, log lines otherwise */
	CLI_PROGRESS_BAR,
	CLI_PROGRESS_LOG,
	CLI_PROGRESS_NONE,   /* quiet: the log file only */
};

struct cli_progress {
	enum cli_progress_mode mode;
	double start, last;
	unsigned last_pct;
	int last_drive;
	const char *phase;
	bool line_open;
};

void cli_progress_init(struct cli_progress *p, enum cli_progress_mode mode);
void cli_progress_cb(void *opaque, const struct vb_progress *g);
void cli_progress_done(struct cli_progress *p);

/* The options of the commands on a backup set (set.c): --set NAME,
 * --state-dir DIR, --json, as entries of a getopt_long table. */
enum { CLI_OPT_SET = 0x1000, CLI_OPT_STATE_DIR, CLI_OPT_JSON };
#define CLI_SET_OPTIONS                                                   \
	{ "set", required_argument, NULL, CLI_OPT_SET },                  \
	{ "state-dir", required_argument, NULL, CLI_OPT_STATE_DIR }
#define CLI_JSON_OPTION { "json", no_argument, NULL, CLI_OPT_JSON }
struct cli_set_opts {
	const char *set, *state_dir;
	bool json;
};
/* Takes getopt's ch (and its argument) if it is one of those: 1, else 0. */
int cli_set_option(int ch, const char *arg, struct cli_set_opts *o);

/* --key KEYFILE of the commands that read archives (keys.c): the secret
 * key (a passphrase-protected one unlocked with the first line of the file
 * VMABACK_PASSPHRASE_FILE names) joins the keys every archive is opened
 * with. 0 or an exit status after a message. */
enum { CLI_OPT_KEY = 0x1010 };
#define CLI_KEY_OPTION { "key", required_argument, NULL, CLI_OPT_KEY }
int cli_key_load(const char *cmd, const char *path);
/* The public key of --encrypt KEYFILE or --recipient PUBFILE, or NULL
 * after a message. */
struct vb_pubkey *cli_pubkey_load(const char *cmd, const char *path);
/* A secret key file (a passphrase-protected one: VMABACK_PASSPHRASE_FILE),
 * or NULL after a message. */
struct vb_key *cli_secret_load(const char *cmd, const char *path);
/* The keys loaded by cli_key_load (NULL: none). */
const struct vb_input_opts *cli_keys(void);
/* The passphrase: the first line of path (malloc'd), or NULL after a message. */
char *cli_read_passphrase(const char *cmd, const char *path);

/* Core's warnings (warnings.c): cli_on_warning is the vb_warn_fn of every
 * object; each warning is printed (cmd NULL: "INFO: MESSAGE" lines on
 * stderr unless quiet, else "vmaback: CMD: MESSAGE"; the log file always)
 * and kept for --json. cli_warnings_hold(true) delays the printing until
 * the matching cli_warnings_hold(false) (a progress bar, a start line
 * that comes first); cli_warnings_end prints what is held and forgets
 * them all. The style applies to the warnings printed from then on. */
void cli_warnings_style(const char *cmd, bool quiet);
void cli_on_warning(void *opaque, const struct vb_warning *w);
void cli_warnings_hold(bool hold);
/* [{"kind": NAME, "drive": NAME or null, "message": TEXT}, ...] */
struct json_object *cli_warnings_json(void);
size_t cli_warnings_count(void);
void cli_warnings_end(void);

/* Opens (and locks) a set's state, its warnings to cli_on_warning; NULL with *status set.
 * write: the command changes the state (else it creates and deletes nothing). */
struct vb_state *cli_open_set(const char *cmd, const char *set, const char *state_dir,
			      bool write, int *status);
const char *cli_backup_status(const struct vb_backup_info *b, bool with_state);
const char *cli_backup_parent(const struct vb_backup_list *l, const struct vb_backup_info *b);
/* A running VM (cli/live.c): --qmp SOCKET, --scratch-dir DIR (default
 * the state root's .scratch/), --qga SOCKET (--fsfreeze) and the drives
 * named by --drive NAME=qmp:DEVICE; or --domain NAME, --connect URI,
 * --scratch-dir (default /var/tmp: libvirt's QEMU user must reach it) and
 * --drive NAME=libvirt:DEV. */
struct cli_live_args {
	const char *qmp, *scratch_dir, *qga;
	/* a libvirt domain: --domain NAME [--connect URI] (NAME=libvirt:DEV) */
	const char *domain, *connect;
	bool fsfreeze;
	bool include_stopped;   /* a stopped domain: opened for its images */
	const char **names, **devices;
	size_t ndrives;
};
struct vb_live *cli_live_open(const struct cli_live_args *a, struct vb_state *state,
			      struct vb_error *err);

/* "2024-01-31 23:00:00", local time */
void cli_format_time(int64_t t, char *buf, size_t len);

#endif
