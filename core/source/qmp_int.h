/* qmp_int.h: a small client of QEMU's two JSON protocols over a unix
 * socket, on json-c: the QEMU Machine Protocol (QMP: greeting,
 * qmp_capabilities, commands, error replies, asynchronous events) and the
 * QEMU guest agent's protocol (no greeting; guest-sync-delimited first,
 * then commands). Private to core/source: live.c drives a running VM
 * with it. */
#ifndef VMABACK_QMP_INT_H
#define VMABACK_QMP_INT_H

#ifndef VB_MODULE_source
#error "core/source/qmp_int.h is private to core/source: include core/source/source.h"
#endif

#include <json-c/json.h>

#include "core/base/base.h"

enum vb_qmp_proto {
	VB_QMP_MONITOR, /* QEMU's QMP monitor */
	VB_QMP_AGENT,   /* qemu-guest-agent (virtio-serial's host side) */
};

struct vb_qmp;

/* Connects to the socket at path (the monitor: reads the greeting and
 * negotiates qmp_capabilities; the agent: guest-sync-delimited with a
 * random id, skipping anything before the 0xff delimiter and any stale
 * reply). timeout_ms bounds the connection and every later command (a
 * command that gets no reply in time is a VB_E_FAIL "... did not answer
 * in N s"). what names the peer in messages ("QMP socket PATH", "guest
 * agent PATH"). A path that is not a socket or refuses the connection is
 * VB_E_USAGE; NULL on error. */
struct vb_qmp *vb_qmp_connect(enum vb_qmp_proto proto, const char *path, const char *what,
			      int timeout_ms, struct vb_error *err);
/* Runs one command: args is consumed (may be NULL); *ret (may be NULL)
 * gets the reply's "return" value, owned by the caller (json_object_put).
 * An error reply is -1 with VB_E_FAIL "CMD: CLASS: DESC", and
 * vb_qmp_error_class tells its class ("GenericError", "DeviceNotFound",
 * ...) until the next command. Events that arrive meanwhile are queued.
 * A closed connection or a reply that is not JSON is VB_E_FAIL. */
int vb_qmp_exec(struct vb_qmp *q, const char *cmd, json_object *args, json_object **ret,
		struct vb_error *err);
/* Like vb_qmp_exec, with a printf-formatted JSON object for args
 * ("{\"node\": %s}" with vb_qmp_str for the strings); a format that does
 * not parse is VB_E_FAIL (a bug). */
int vb_qmp_execf(struct vb_qmp *q, json_object **ret, struct vb_error *err, const char *cmd,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The class of the last error reply, or "" after a success. */
const char *vb_qmp_error_class(const struct vb_qmp *q);
/* Waits up to timeout_ms for event name (queued ones first, oldest first),
 * optionally one whose data has member key equal to the string value
 * (key NULL: any). *data (may be NULL) gets the event's "data", owned by
 * the caller. 0, or -1 (VB_E_FAIL: timed out, or the connection closed). */
int vb_qmp_wait_event(struct vb_qmp *q, const char *name, const char *key, const char *value,
		      int timeout_ms, json_object **data, struct vb_error *err);
/* Drops the queued events (say, those of a phase that is over). */
void vb_qmp_events_clear(struct vb_qmp *q);
void vb_qmp_close(struct vb_qmp *q);

/* A JSON string literal of s ("\"...\"", escaped), in a static ring of 8
 * buffers of 1 KiB: for vb_qmp_execf's arguments only. */
const char *vb_qmp_str(const char *s);

/* The sizes and names of the json-c lookups live.c needs. */
const char *vb_json_str(json_object *o, const char *key);      /* NULL if absent */
bool vb_json_bool(json_object *o, const char *key, bool dflt);
int64_t vb_json_int(json_object *o, const char *key, int64_t dflt);
/* Whether len bytes of s are UTF-8 (QEMU refuses other bytes; a 0xff
 * resets the guest agent's parser). */
bool vb_json_is_utf8(const char *s, size_t len);

#endif
