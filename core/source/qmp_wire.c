/* qmp_wire.c: the QMP client's socket: waits with deadlines (EINTR
 * retried: a signal does not cut a clean-up short), whole JSON messages
 * read through json-c's tokener (the agent's 0xff resets), sends, and the
 * connection to a unix socket. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/source/qmp_wire_int.h"

double qmp_deadline_in(int timeout_ms)
{
	return vb_clock_monotonic() + (timeout_ms < 0 ? 0 : timeout_ms) / 1000.0;
}

/* Milliseconds left until deadline, rounded up; 0 once it has passed. */
int qmp_ms_left(double deadline)
{
	double left = (deadline - vb_clock_monotonic()) * 1000.0;

	if (left <= 0)
		return 0;
	return left > 1e9 ? 1000000000 : (int)left + 1;
}

/* Waits for events on the socket until deadline: 1 ready, 0 timed out, -1. */
static int wait_fd(struct vb_qmp *q, short events, double deadline, struct vb_error *err)
{
	for (;;) {
		struct pollfd p = { .fd = q->fd, .events = events };
		int n = poll(&p, 1, qmp_ms_left(deadline));

		if (n > 0)
			return 1;
		if (n == 0 && qmp_ms_left(deadline) == 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return vb_error_set(err, VB_E_FAIL, errno, "%s: poll: %s", q->what,
					    strerror(errno));
	}
}

/* ------------------------------------------------------------ reading */

/* Fills rbuf with what the peer sent: MSG_OK with rlen > 0, or not. */
static enum msg_rc fill(struct vb_qmp *q, double deadline, struct vb_error *err)
{
	for (;;) {
		int r = wait_fd(q, POLLIN, deadline, err);
		ssize_t n;

		if (r < 0)
			return MSG_ERROR;
		if (r == 0)
			return MSG_TIMEOUT;
		n = recv(q->fd, q->rbuf, QMP_RBUF, 0);
		if (n > 0) {
			q->rpos = 0;
			q->rlen = (size_t)n;
			return MSG_OK;
		}
		if (n == 0 || errno == ECONNRESET) {
			q->closed = true;
			return MSG_CLOSED;
		}
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
			vb_error_set(err, VB_E_FAIL, errno, "%s: read: %s", q->what, strerror(errno));
			return MSG_ERROR;
		}
	}
}

void qmp_tok_reset(struct vb_qmp *q)
{
	json_tokener_reset(q->tok);
	q->msg_bytes = 0;
}

/* The next JSON object the peer sends, waiting until deadline. The agent's
 * 0xff delimiter resets the parser wherever it comes; with skip_to_ff
 * everything before it is discarded. during names the command for the
 * error of a message that is not JSON. */
enum msg_rc qmp_next_msg(struct vb_qmp *q, double deadline, const char *during,
			    json_object **out, struct vb_error *err)
{
	*out = NULL;
	if (q->closed)
		return MSG_CLOSED;
	for (;;) {
		unsigned char *p = q->rbuf + q->rpos, *ff;
		size_t n = q->rlen - q->rpos, used;
		json_object *o;
		enum json_tokener_error jerr;
		enum msg_rc rc;

		if (n == 0) {
			if ((rc = fill(q, deadline, err)) != MSG_OK)
				return rc;
			continue;
		}
		ff = q->proto == VB_QMP_AGENT ? memchr(p, 0xff, n) : NULL;
		if (q->skip_line && !q->skip_to_ff && ff != p) {
			unsigned char *nl = memchr(p, '\n', ff != NULL ? (size_t)(ff - p) : n);

			q->rpos = nl != NULL ? (size_t)(nl + 1 - q->rbuf)
				  : ff != NULL ? (size_t)(ff - q->rbuf) : q->rlen;
			q->skip_line = nl == NULL && ff == NULL;
			continue;
		}
		if (q->skip_to_ff || ff == p) {
			q->rpos = ff != NULL ? (size_t)(ff + 1 - q->rbuf) : q->rlen;
			if (ff != NULL) {
				q->skip_to_ff = q->skip_line = false;
				qmp_tok_reset(q);
			}
			continue;
		}
		if (ff != NULL)
			n = (size_t)(ff - p);
		o = json_tokener_parse_ex(q->tok, (const char *)p, (int)n);
		jerr = json_tokener_get_error(q->tok);
		used = json_tokener_get_parse_end(q->tok);
		if (used > n)
			used = n;
		q->rpos += used;
		q->msg_bytes += used;
		if (o == NULL && jerr == json_tokener_continue && q->msg_bytes <= QMP_MSG_MAX)
			continue;
		qmp_tok_reset(q);
		if (o != NULL && json_object_is_type(o, json_type_object)) {
			*out = o;
			return MSG_OK;
		}
		json_object_put(o);
		q->skip_line = o == NULL;
		q->need_sync = q->proto == VB_QMP_AGENT;
		vb_error_set(err, VB_E_FAIL, 0, "%s sent %s (during %s)", q->what,
			     o != NULL ? "JSON that is not an object"
			     : jerr == json_tokener_continue ? "a message larger than 64 MiB"
							    : "a message that is not JSON", during);
		return MSG_ERROR;
	}
}

/* ------------------------------------------------------------ sending */

int qmp_send_all(struct vb_qmp *q, const char *buf, size_t len, double deadline,
		    const char *cmd, struct vb_error *err)
{
	while (len > 0) {
		ssize_t n = send(q->fd, buf, len, MSG_NOSIGNAL);
		int r;

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			q->closed = true;
			return vb_error_set(err, VB_E_FAIL, errno, "%s closed the connection "
					    "(during %s)", q->what, cmd);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return vb_error_set(err, VB_E_FAIL, errno, "%s: write: %s", q->what,
					    strerror(errno));
		if ((r = wait_fd(q, POLLOUT, deadline, err)) < 0)
			return -1;
		if (r == 0) { /* half a line sent: the agent needs its 0xff */
			q->need_sync = q->proto == VB_QMP_AGENT;
			return vb_error_set(err, VB_E_FAIL, ETIMEDOUT, "%s: %s did not answer in "
					    "%g s", q->what, cmd, q->timeout_ms / 1000.0);
		}
	}
	return 0;
}

int qmp_connect_path(struct vb_qmp *q, const char *path, double deadline,
			struct vb_error *err)
{
	const char *kind = q->proto == VB_QMP_MONITOR ? "QMP socket" : "guest agent socket";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return vb_error_set(err, VB_E_USAGE, ENAMETOOLONG, "%s path too long (%zu bytes, "
				    "at most %zu): %s", kind, strlen(path), sizeof(sa.sun_path) - 1,
				    path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (q->fd < 0)
		return vb_error_set(err, VB_E_FAIL, errno, "socket: %s", strerror(errno));
	for (;;) {
		if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EISCONN)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && qmp_ms_left(deadline) > 0) { /* a full backlog */
			nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
			continue;
		}
		break;
	}
	if (errno == ENOENT || errno == ECONNREFUSED || errno == ENOTSOCK || errno == ENOTDIR)
		return vb_error_set(err, VB_E_USAGE, errno, "no %s at %s: %s", kind, path,
				    strerror(errno));
	if (errno == EAGAIN)
		return vb_error_set(err, VB_E_FAIL, errno, "%s: the connection was not accepted "
				    "in %g s", q->what, q->timeout_ms / 1000.0);
	return vb_error_set(err, VB_E_FAIL, errno, "cannot connect to %s at %s: %s", kind, path,
			    strerror(errno));
}
