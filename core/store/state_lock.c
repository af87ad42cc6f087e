/* state_lock.c: the lock of a backup set: flock on DIR/SET/lock, which
 * holds the pid of the writer that has it; readers share it. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/store/store_int.h"

static bool pid_running(const char *text)
{
	char *end;
	long pid;

	errno = 0;
	pid = strtol(text, &end, 10);
	if (errno || end == text || *end != '\0' || pid <= 0 || (pid_t)pid != pid)
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

int st_lock_take(struct vb_state *s, struct vb_error *err)
{
	/* A reader creates nothing: without a lock file no writer ever ran.
	 * O_NONBLOCK: a FIFO planted there cannot make open() wait. */
	int flags = s->writer ? O_RDWR | O_CREAT | O_NOFOLLOW : O_RDONLY | O_NOFOLLOW;
	char pid[32], held[32] = "";
	struct stat st;
	ssize_t n;

	s->lockfd = openat(s->dirfd, LOCK_FILE, flags | O_CLOEXEC | O_NONBLOCK, 0600);
	if (s->lockfd < 0 && !s->writer && errno == ENOENT)
		return 0;
	if (s->lockfd < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "%s/%s: %s", s->path, LOCK_FILE,
				    strerror(errno));
	/* The pid is written into it: a FIFO or device there is not ours. */
	errno = 0;
	if (fstat(s->lockfd, &st) < 0 || !S_ISREG(st.st_mode))
		return vb_error_set(err, VB_E_FAIL, errno, "%s/%s: %s", s->path, LOCK_FILE,
				    errno ? strerror(errno) : "not a regular file");
	if (flock(s->lockfd, (s->writer ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK)
			return vb_error_set(err, VB_E_FAIL, errno, "%s/%s: %s", s->path,
					    LOCK_FILE, strerror(errno));
		n = pread(s->lockfd, held, sizeof(held) - 1, 0);
		held[n > 0 ? n : 0] = '\0';
		held[strcspn(held, "\n")] = '\0';
		/* The holder may be another program, or vmaback killed before
		 * it could clear its pid: name only a pid that still runs. */
		if (!pid_running(held))
			held[0] = '\0';
		return vb_error_set(err, VB_E_LOCKED, EWOULDBLOCK,
				    "backup set '%s' is locked by another vmaback run%s%s%s",
				    s->set, held[0] ? " (pid " : "", held, held[0] ? ")" : "");
	}
	if (!s->writer)
		return 0;
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(s->lockfd, 0) == 0)
		(void)!pwrite(s->lockfd, pid, (size_t)n, 0);
	return 0;
}

void st_lock_release(struct vb_state *s)
{
	if (s->lockfd < 0)
		return;
	/* Only the holder writes the pid: clear it, then let go. */
	if (s->writer && flock(s->lockfd, LOCK_EX | LOCK_NB) == 0)
		(void)!ftruncate(s->lockfd, 0);
	close(s->lockfd); /* releases the flock */
	s->lockfd = -1;
}
