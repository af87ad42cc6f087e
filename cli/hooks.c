/* hooks.c: `backup --hook CMD`, run at each phase of a backup job as
 * vzdump's --script is: `/bin/sh -c 'CMD "$@"' sh PHASE` (the phase is
 * CMD's last argument: `--hook /etc/vmaback/hook.sh` runs
 * `/etc/vmaback/hook.sh job-start`), the job described in
 * VMABACK_* environment variables, standard input /dev/null and standard
 * output sent to standard error (the archive may be on standard output).
 * The hook runs in its own process group, which a signal to vmaback stops
 * as it stops an output command. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"

static void put_env(const char *name, const char *value)
{
	if (value)
		setenv(name, value, 1);
	else
		unsetenv(name);
}

static void child(const char *cmd, const char *phase, const struct cli_hook_job *j)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct sigaction sa;
	char *line;

	setpgid(0, 0);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		_exit(127);
	/* What vmaback ignores or handles, the hook gets by default. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &sa, NULL);
	put_env("VMABACK_PHASE", phase);
	put_env("VMABACK_SET", j->set);
	put_env("VMABACK_VMID", j->vmid);
	put_env("VMABACK_CHECKPOINT", j->checkpoint);
	put_env("VMABACK_KIND", j->kind);
	put_env("VMABACK_ARCHIVE", j->archive);
	put_env("VMABACK_OUTPUT_CMD", j->output_cmd);
	put_env("VMABACK_LOG_FILE", j->log_file);
	put_env("VMABACK_STATUS", j->status);
	if (asprintf(&line, "%s \"$@\"", cmd) < 0)
		_exit(127);
	execl("/bin/sh", "sh", "-c", line, "sh", phase, (char *)NULL);
	_exit(127);
}

int cli_hook_run(const char *cmd, const char *phase, const struct cli_hook_job *j)
{
	pid_t pid;
	int st = 0;

	if (!cmd)
		return 0;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		cli_warn("backup", "--hook at %s: %s", phase, strerror(errno));
		return -1;
	}
	if (pid == 0)
		child(cmd, phase, j);
	setpgid(pid, pid); /* also here: a signal may come before the child's */
	cli_set_consumer(pid);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			cli_set_consumer(0);
			cli_warn("backup", "--hook at %s: %s", phase, strerror(errno));
			return -1;
		}
	}
	cli_set_consumer(0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st))
		cli_warn("backup", "the hook failed at %s (exit status %d)", phase,
			 WEXITSTATUS(st));
	else
		cli_warn("backup", "the hook failed at %s (killed by signal %d)", phase,
			 WTERMSIG(st));
	return -1;
}
