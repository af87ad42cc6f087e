/* sink_cmd.c: the output-command sink (--output-cmd): the archive goes to the
 * standard input of `/bin/sh -c COMMAND`, which must exit 0 for success. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/io/io_int.h"

extern char **environ;

/* After EPIPE the command has closed its input; its exit follows within
 * microseconds, so wait this long for a status to report. */
#define EPIPE_REAP_MS 200
/* A discarded command that ignores SIGTERM gets SIGKILL after this. */
#define DISCARD_KILL_MS 5000
#define POLL_MS 5

struct cmd_sink {
	struct vb_writer w;     /* first: the layer is cast from it */
	char *cmd;              /* for messages */
	pid_t pid;              /* the shell, leader of its own process group */
	int fd;                 /* our end of its standard input, -1 once closed */
	bool reaped;            /* pid is gone: status (or wait_errno) is valid */
	int status;
	int wait_errno;         /* waitpid() failed: the status is unknown */
	bool failed;            /* a write failed: never report success */
};

static int cmd_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err);
static int cmd_close(struct vb_writer *w, struct vb_error *err);
static void cmd_discard(struct vb_writer *w);

static const struct vb_writer_ops cmd_ops = {
	.write = cmd_write,
	.close = cmd_close,
	.discard = cmd_discard,
};

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL); /* EINTR: a shorter slice, the caller loops */
}

/* Reaps the command; with nohang, returns false when it still runs. */
static bool cmd_reap(struct cmd_sink *s, bool nohang)
{
	pid_t r;

	if (s->reaped)
		return true;
	do
		r = waitpid(s->pid, &s->status, nohang ? WNOHANG : 0);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return false;
	if (r < 0)
		s->wait_errno = errno; /* ECHILD: someone else reaped it */
	s->reaped = true;
	return true;
}

/* Reaps within ms milliseconds; false if it still runs then. */
static bool cmd_reap_within(struct cmd_sink *s, long ms)
{
	for (long waited = 0; !cmd_reap(s, true); waited += POLL_MS) {
		if (waited >= ms)
			return false;
		sleep_ms(POLL_MS);
	}
	return true;
}

/* How the command ended, "" while it runs. */
static void status_text(const struct cmd_sink *s, char *buf, size_t size)
{
	if (!s->reaped)
		buf[0] = '\0';
	else if (s->wait_errno != 0)
		snprintf(buf, size, "exit status unknown (waitpid: %s)", strerror(s->wait_errno));
	else if (WIFSIGNALED(s->status))
		snprintf(buf, size, "killed by signal %d", WTERMSIG(s->status));
	else
		snprintf(buf, size, "exit status %d", WEXITSTATUS(s->status));
}

static bool cmd_succeeded(const struct cmd_sink *s)
{
	return s->reaped && s->wait_errno == 0 && WIFEXITED(s->status) &&
	       WEXITSTATUS(s->status) == 0;
}

static void cmd_release(struct cmd_sink *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->cmd);
	free(s);
}

/* The shell gets default signal dispositions (cli/ ignores SIGPIPE, which
 * exec would pass on), an empty signal mask, and its own process group, so
 * that discard can stop the whole pipeline it runs. */
static int cmd_spawn(struct cmd_sink *s, int rfd, struct vb_error *err)
{
	char *argv[] = { "sh", "-c", s->cmd, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t all, none;
	int rc;

	sigfillset(&all);
	sigemptyset(&none);
	rc = posix_spawn_file_actions_init(&fa);
	if (rc != 0)
		goto out;
	rc = posix_spawnattr_init(&at);
	if (rc != 0) {
		posix_spawn_file_actions_destroy(&fa);
		goto out;
	}
	/* dup2 clears close-on-exec on fd 0 (even when rfd is 0: POSIX 2018) */
	rc = posix_spawn_file_actions_adddup2(&fa, rfd, STDIN_FILENO);
	if (rc == 0)
		rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
						   POSIX_SPAWN_SETSIGMASK);
	if (rc == 0)
		rc = posix_spawnattr_setpgroup(&at, 0);
	if (rc == 0)
		rc = posix_spawnattr_setsigdefault(&at, &all);
	if (rc == 0)
		rc = posix_spawnattr_setsigmask(&at, &none);
	if (rc == 0)
		rc = posix_spawn(&s->pid, "/bin/sh", &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
out:
	if (rc != 0)
		return vb_error_set(err, VB_E_FAIL, rc, "output command '%s': cannot start "
				    "/bin/sh: %s", s->cmd, strerror(rc));
	return 0;
}

struct vb_writer *vb_sink_cmd_new(const char *command, struct vb_error *err)
{
	struct cmd_sink *s;
	int p[2], e;

	if (command == NULL || *command == '\0') {
		vb_error_set(err, VB_E_USAGE, EINVAL, "empty output command");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->cmd = strdup(command)) == NULL) {
		free(s);
		vb_error_set(err, VB_E_FAIL, ENOMEM, "output command '%s': out of memory", command);
		return NULL;
	}
	s->w.ops = &cmd_ops;
	s->fd = -1;
	if (pipe2(p, O_CLOEXEC) < 0) {
		e = errno;
		vb_error_set(err, VB_E_FAIL, e, "output command '%s': cannot create a pipe: %s",
			     command, strerror(e));
		goto fail;
	}
	/* Fewer context switches with a large pipe; the default works too. */
	(void)fcntl(p[1], F_SETPIPE_SZ, (int)VB_IO_BUFSIZE);
	s->fd = p[1];
	e = cmd_spawn(s, p[0], err);
	close(p[0]);
	if (e < 0)
		goto fail;
	return &s->w;
fail:
	cmd_release(s);
	return NULL;
}

static int cmd_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err)
{
	struct cmd_sink *s = (struct cmd_sink *)w;
	char how[128];
	int e;

	if (s->failed)
		return vb_error_set(err, VB_E_FAIL, 0, "output command '%s': write after a "
				    "failed write", s->cmd);
	e = -vb_write_all(s->fd, buf, len);
	if (e == 0)
		return 0;
	s->failed = true;
	if (e == ECANCELED)
		return vb_error_set(err, VB_E_CANCELED, e, "output command '%s': interrupted",
				    s->cmd);
	if (e != EPIPE)
		return vb_error_set(err, VB_E_FAIL, e, "output command '%s': write failed: %s",
				    s->cmd, strerror(e));
	(void)cmd_reap_within(s, EPIPE_REAP_MS);
	status_text(s, how, sizeof(how));
	return vb_error_set(err, VB_E_FAIL, e, "output command '%s' exited before the end "
			    "of the archive%s%s%s", s->cmd, s->reaped ? " (" : "", how,
			    s->reaped ? ")" : "");
}

static int cmd_close(struct vb_writer *w, struct vb_error *err)
{
	struct cmd_sink *s = (struct cmd_sink *)w;
	int ret = -1, e = 0, unread_rc;
	uint64_t unread;
	char how[128];

	if (s->failed) {
		/* the archive is incomplete: stop the command as discard does */
		vb_error_set(err, VB_E_FAIL, 0, "output command '%s': stopped after a failed "
			     "write", s->cmd);
		cmd_discard(w);
		return -1;
	}
	/* Exit 0 is not enough: the command must have read every byte. */
	unread_rc = vb_pipe_wait_drained(s->fd, &unread);
	if (unread_rc == -ECANCELED) {
		vb_error_set(err, VB_E_CANCELED, ECANCELED, "output command '%s': interrupted",
			     s->cmd);
		cmd_discard(w);
		return -1;
	}
	if (close(s->fd) < 0 && errno != EINTR) /* EINTR: closed anyway */
		e = errno;
	s->fd = -1;
	(void)cmd_reap(s, false);
	status_text(s, how, sizeof(how));
	if (unread_rc == 1)
		vb_error_set(err, VB_E_FAIL, 0, "output command '%s' ended (%s) without reading "
			     "the whole archive: %llu of its %llu bytes were never read", s->cmd,
			     how, (unsigned long long)unread, (unsigned long long)s->w.bytes_in);
	else if (unread_rc < 0)
		vb_error_set(err, VB_E_FAIL, -unread_rc, "output command '%s': cannot tell "
			     "whether it read the whole archive: %s", s->cmd, strerror(-unread_rc));
	else if (!cmd_succeeded(s))
		vb_error_set(err, VB_E_FAIL, s->wait_errno, "output command '%s' failed: %s",
			     s->cmd, how);
	else if (e != 0)
		vb_error_set(err, VB_E_FAIL, e, "output command '%s': close failed: %s",
			     s->cmd, strerror(e));
	else
		ret = 0;
	cmd_release(s);
	return ret;
}

/* The stream is incomplete: the command must not mistake the end of its
 * input for a finished archive, so it is signalled before the pipe closes
 * (a race remains: it may read the EOF before the signal lands). */
static void cmd_discard(struct vb_writer *w)
{
	struct cmd_sink *s = (struct cmd_sink *)w;

	/* the leader is not reaped yet, so its group id is still ours */
	if (!s->reaped)
		(void)kill(-s->pid, SIGTERM);
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	if (!cmd_reap_within(s, DISCARD_KILL_MS)) {
		(void)kill(-s->pid, SIGKILL);
		(void)cmd_reap(s, false);
	}
	cmd_release(s);
}

pid_t vb_sink_cmd_pid(const struct vb_writer *w)
{
	return ((const struct cmd_sink *)w)->pid;
}
