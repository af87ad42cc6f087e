/* commands.c: the one table of vmaback's commands, in the order --help
 * lists them: main.c dispatches through it, and the completion tests'
 * cli_options tool reads each command's option table from it. */
#include <getopt.h>

#include "cli/cli.h"

const struct command *const cli_commands[] = {
	&cmd_backup, &cmd_restore, &cmd_list, &cmd_verify, &cmd_extract, &cmd_config,
	&cmd_merge, &cmd_checkpoints, &cmd_commit, &cmd_ls, &cmd_prune, &cmd_recover,
	&cmd_serve, &cmd_key, &cmd_decrypt, NULL,
};
