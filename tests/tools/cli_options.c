/* cli_options.c: prints each command's real option table (its getopt_long
 * array, struct command's options), "COMMAND --NAME" a line, for the
 * completion tests (t_completions.sh): what they check is what the CLI
 * parses, not a list kept by hand. Usage: cli_options [COMMAND]. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
	static const struct command *const all[] = {
		&cmd_backup, &cmd_checkpoints, &cmd_commit, &cmd_config, &cmd_extract,
		&cmd_list, &cmd_ls, &cmd_merge, &cmd_prune, &cmd_recover, &cmd_restore,
		&cmd_serve, &cmd_verify,
	};
	int found = 0;

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (argc > 1 && strcmp(argv[1], all[i]->name) != 0)
			continue;
		found = 1;
		for (const struct option *o = all[i]->options; o && o->name; o++)
			printf("%s --%s\n", all[i]->name, o->name);
	}
	if (!found) {
		fprintf(stderr, "cli_options: no command %s\n", argc > 1 ? argv[1] : "");
		return 2;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
