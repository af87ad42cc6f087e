/* signals.c: the command line's signal handling: the first signal asks the
 * engine to stop (cli_interrupted), a second one cleans up and exits. */
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

volatile sig_atomic_t cli_interrupted;
static volatile pid_t consumer_pgid;

static void on_signal(int sig)
{
	if (cli_interrupted) {
		/* Second signal: leave nothing that looks valid, exit at once. */
		vb_tempfile_remove_all();
		if (consumer_pgid > 0)
			kill(-consumer_pgid, SIGTERM);
		_exit(128 + sig);
	}
	cli_interrupted = sig;
}

void cli_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a write blocked on a stalled pipe must return. */
	sa.sa_flags = 0;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	vb_set_cancel(&cli_interrupted);
}

void cli_set_consumer(pid_t pgid)
{
	consumer_pgid = pgid;
}
