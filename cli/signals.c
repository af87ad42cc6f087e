/* signals.c: the command line's signal handling. Every fatal signal gets
 * the same treatment: the output command is stopped at once (so that it
 * cannot take the end of its input for the end of the archive); a command
 * whose engine polls cli_interrupted stops cleanly on the first signal,
 * every other command (and any command on a second signal) removes its
 * registered temporaries and exits 128+N from the handler. */
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

volatile sig_atomic_t cli_interrupted;
static volatile pid_t consumer_pgid;
static volatile sig_atomic_t engine_polls;

/* The signals whose default action ends the process (SIGPIPE is ignored:
 * a closed pipe is an EPIPE error that names the reader). */
static const int fatal_signals[] = {
	SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGXCPU, SIGXFSZ,
};

static void on_signal(int sig)
{
	pid_t pg = consumer_pgid;

	if (pg > 0)
		kill(-pg, cli_interrupted ? SIGKILL : SIGTERM);
	if (cli_interrupted || !engine_polls) {
		/* Leave nothing that looks valid, exit at once. */
		vb_tempfile_remove_all();
		_exit(128 + (cli_interrupted ? cli_interrupted : sig));
	}
	cli_interrupted = sig;
}

void cli_signals_install(void)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* One handler at a time: the second signal sees the first's flag. */
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		sigaddset(&sa.sa_mask, fatal_signals[i]);
	/* No SA_RESTART: a write blocked on a stalled pipe must return. */
	sa.sa_flags = 0;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
		struct sigaction old;

		/* An ignored HUP (nohup) stays ignored, as the caller asked. */
		if (sigaction(fatal_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN &&
		    fatal_signals[i] == SIGHUP)
			continue;
		sigaction(fatal_signals[i], &sa, NULL);
		sigaddset(&set, fatal_signals[i]);
	}
	/* A parent may have blocked some: they must reach the handler. */
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	vb_set_cancel(&cli_interrupted);
}

void cli_signals_engine_polls(bool polls)
{
	engine_polls = polls;
}

void cli_set_consumer(pid_t pgid)
{
	consumer_pgid = pgid;
}
