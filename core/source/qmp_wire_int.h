/* qmp_wire_int.h: the inside of the QMP client, shared by qmp.c (commands,
 * events, the agent's sync, connecting) and qmp_wire.c (the socket: waits
 * with deadlines, reading whole JSON messages, sending, connecting).
 * Private to core/source. */
#ifndef VMABACK_QMP_WIRE_INT_H
#define VMABACK_QMP_WIRE_INT_H

#ifndef VB_MODULE_source
#error "core/source/qmp_wire_int.h is private to core/source: include core/source/source.h"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/source/qmp_int.h"

/* The most one message may take: QEMU's largest replies (query-named-block-
 * nodes of a VM with long backing chains) stay far below it. */
#define QMP_MSG_MAX (64u << 20)
/* The oldest queued events are dropped past this many: a caller that never
 * waits for an event must not make the queue grow for ever. */
#define QMP_EVENTS_MAX 4096u
#define QMP_RBUF 65536u

struct qmp_event {
	struct qmp_event *next;
	json_object *ev;
};

struct vb_qmp {
	enum vb_qmp_proto proto;
	int fd;
	char *what;
	int timeout_ms;
	int64_t next_id;
	json_tokener *tok;
	size_t msg_bytes;     /* fed to tok since its last reset */
	unsigned char *rbuf;
	size_t rpos, rlen;
	bool skip_to_ff;      /* agent: discard everything up to the next 0xff */
	bool skip_line;       /* after a message that is not JSON: up to the next \n */
	bool closed;          /* the peer closed the connection */
	bool need_sync;       /* agent: a command timed out, resync before the next */
	char err_class[128];
	struct qmp_event *head, *tail;
	size_t nevents;
};

enum msg_rc { MSG_OK, MSG_TIMEOUT, MSG_CLOSED, MSG_ERROR };

/* A point timeout_ms from now on the monotonic clock. */
double qmp_deadline_in(int timeout_ms);
/* Milliseconds left until deadline, rounded up; 0 once it has passed. */
int qmp_ms_left(double deadline);
/* Drops a partial message: the parser starts afresh. */
void qmp_tok_reset(struct vb_qmp *q);
/* The next JSON object the peer sends, waiting until deadline. The agent's
 * 0xff delimiter resets the parser wherever it comes; with skip_to_ff
 * everything before it is discarded. during names the command for the
 * error of a message that is not JSON. */
enum msg_rc qmp_next_msg(struct vb_qmp *q, double deadline, const char *during,
			 json_object **out, struct vb_error *err);
/* All of buf, waiting (until deadline) while the socket is full; cmd names
 * what was sent in the errors. 0 or -1. */
int qmp_send_all(struct vb_qmp *q, const char *buf, size_t len, double deadline,
		 const char *cmd, struct vb_error *err);
/* Connects q->fd to the unix socket at path (a full backlog is retried
 * until deadline); a path with no listener there is VB_E_USAGE. */
int qmp_connect_path(struct vb_qmp *q, const char *path, double deadline,
		     struct vb_error *err);

#endif
