/* io.h: the output stack (file, descriptor and command sinks, zstd and
 * hash filters), the input stack (detection, decompression), whole writes,
 * the rate limiter. Uses base. */
#ifndef VMABACK_IO_H
#define VMABACK_IO_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "core/base/base.h"

/* ============================================================== temporary files
 * Every file vmaback makes is written as a registered temporary beside its
 * final name (".NAME" + VB_TEMPFILE_MARK + 6 random characters; created
 * O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode 0600, flock held while its writer
 * lives) and published by fsync, rename, fsync of the directory. Whatever
 * is still registered is removed at exit and by vb_tempfile_remove_all()
 * (async-signal-safe, for fatal-signal handlers), only by the process that
 * created it. */

#define VB_TEMPFILE_MARK ".vbtmp."

struct vb_tempfile;

/* A new temporary for final (its directory must exist). */
struct vb_tempfile *vb_tempfile_new(const char *final, struct vb_error *err);
int vb_tempfile_fd(const struct vb_tempfile *t);
const char *vb_tempfile_path(const struct vb_tempfile *t);
const char *vb_tempfile_final(const struct vb_tempfile *t);
/* fsync and close the file, rename it to its final name (an existing file
 * is replaced only if replace; else EEXIST is a VB_E_USAGE error), fsync
 * the directory. Returns 0 when published and durable; 1 when published
 * but the directory's fsync failed (err says so: the file is there under
 * its final name, and may not survive a crash); -1 when not published (the
 * temporary is removed). Frees t in every case. */
int vb_tempfile_publish(struct vb_tempfile *t, bool replace, struct vb_error *err);
/* Removes the temporary and frees t; NULL is a no-op. */
void vb_tempfile_discard(struct vb_tempfile *t);
/* Unlinks every registered temporary of this process: async-signal-safe. */
void vb_tempfile_remove_all(void);
/* Whether a file name has the form of vmaback's temporaries. */
bool vb_tempfile_is_ours(const char *name);
/* Removes the temporaries in directory dir whose writer is gone (SIGKILL,
 * a crash): names of vb_tempfile_is_ours's form only, regular files of
 * this user only (never through a symbolic link), and only when no live
 * writer holds the lock (a writer of this process too); the name must
 * still be the locked file when it is unlinked. Each one removed (or with
 * dry, each that would be) is a VB_WARN_LEFTOVER warning to w. Returns how
 * many, or -1 when dir cannot be read. Only commands that write into dir
 * call it. */
int vb_tempfile_sweep(const char *dir, bool dry, struct vb_warnings *w, struct vb_error *err);

/* ============================================================== output stack
 * A writer is one layer of the output: a filter (zstd, hash) or a sink
 * (file, fd, command). Layers own the layer below them. */

struct vb_writer;
struct vb_key;
struct vb_pubkey;

/* All of buf or an error; returns 0 or -1. */
int vb_writer_write(struct vb_writer *w, const void *buf, size_t len, struct vb_error *err);
/* Finishes the whole stack from this layer down; on failure the rest of the
 * stack is discarded. Frees w in every case. Returns 0; 1 when a file sink
 * published its file (renamed to its final name) but the fsync of the
 * directory failed (err says so: the file is there, and may not survive a
 * crash); -1 when nothing was published. */
int vb_writer_close(struct vb_writer *w, struct vb_error *err);
/* Discards the stack from this layer down and frees it; NULL is a no-op. */
void vb_writer_discard(struct vb_writer *w);

/* A regular file published atomically: written as a hidden temporary in the
 * same directory (mode 0600), fsynced, renamed to path (refusing to replace
 * an existing file unless force), then the directory is fsynced. The file
 * is created at once, so a missing directory fails here. */
struct vb_writer *vb_sink_file_new(const char *path, bool force, struct vb_error *err);
/* The temporary's path (for a signal handler's last-resort unlink()). */
const char *vb_sink_file_temp_path(const struct vb_writer *w);

/* A file descriptor that is not owned (standard output). close flushes and
 * reports EPIPE and write errors; it does not close fd. */
struct vb_writer *vb_sink_fd_new(int fd, const char *what, struct vb_error *err);

/* `/bin/sh -c command` in its own process group, reading the stream on its
 * standard input (stdout and stderr are inherited). SIGPIPE must be ignored
 * (cli/ does): a command that stops reading is an EPIPE error naming it.
 * close succeeds only if the command exits 0; discard sends SIGTERM to its
 * process group before closing the pipe (SIGKILL after 5 s) and reaps it. */
struct vb_writer *vb_sink_cmd_new(const char *command, struct vb_error *err);
/* The command's process id, also its process group (for a last-resort kill). */
pid_t vb_sink_cmd_pid(const struct vb_writer *w);

/* zstd compression filter in front of next: seekable frames of about
 * 1 MiB, each compressed whole with its checksum, level 1..19, threads 0
 * (in the caller's thread) or that many workers. Owns next on success;
 * on failure next stays the caller's (to discard). */
struct vb_writer *vb_zstd_writer_new(struct vb_writer *next, int level, int threads,
				     struct vb_error *err);

/* SHA-256 of the bytes passing through, written to digest (32 bytes), and
 * their count to *bytes (if not NULL), when the stack closes successfully.
 * Owns next on success; on failure next stays the caller's. */
struct vb_writer *vb_hash_writer_new(struct vb_writer *next, uint8_t digest[32],
				     uint64_t *bytes, struct vb_error *err);
/* The same, and at close a signature trailer with key (not NULL) appended:
 * the digest and count then include the trailer. digest may be NULL. */
struct vb_writer *vb_hash_writer_signed(struct vb_writer *next, uint8_t digest[32],
					uint64_t *bytes, const struct vb_key *key,
					struct vb_error *err);

/* An archive's output stack over sink, bottom up: the SHA-256 of the
 * bytes as written and their count (when sha256 is not NULL: filled in
 * when the stack closes successfully), then zstd (when compress). The one
 * place that assembles it (backup and merge). Consumes sink: on a failure
 * it is discarded. */
struct vb_output_opts {
	bool compress;
	int zstd_level, zstd_threads;
	uint8_t *sha256;        /* 32 bytes, or NULL: no hash layer */
	uint64_t *bytes;        /* with sha256; may be NULL */
	const struct vb_pubkey *encrypt_to; /* or NULL: not encrypted */
	const struct vb_key *sign;  /* sign the archive (a trailer), or NULL */
};
/* The stack passes the bytes through as they are (no zstd, no encryption,
 * no signature trailer, which signs the SHA-256 of the bytes): a digest of
 * the VMA stream is one of the output's bytes. */
bool vb_output_stack_plain(const struct vb_output_opts *o);
struct vb_writer *vb_output_stack(struct vb_writer *sink, const struct vb_output_opts *o,
				  struct vb_error *err);

/* ============================================================== keys
 * The keys of encrypted archives (doc/encryption.md): a secret key is one
 * random secret, from which an X25519 key (encryption) derives; its public
 * part encrypts. Key files are text (the paper form), 0600. */

#define VB_KEY_ID_LEN 16
struct vb_key;
struct vb_pubkey;

struct vb_key *vb_key_generate(struct vb_error *err);
/* A secret key file; passphrase for a wrapped one (NULL: refused). */
struct vb_key *vb_key_load(const char *path, const char *passphrase, struct vb_error *err);
/* A new key file at path (never replacing one), wrapped with passphrase
 * (scrypt) unless NULL; its text is also written to paper unless NULL. */
int vb_key_save(const struct vb_key *k, const char *path, const char *passphrase, FILE *paper,
		struct vb_error *err);
void vb_key_free(struct vb_key *k);
const struct vb_pubkey *vb_key_public(const struct vb_key *k);
/* A public key file, or the public part of a (plain) secret key file. */
struct vb_pubkey *vb_pubkey_load(const char *path, struct vb_error *err);
int vb_pubkey_save(const struct vb_pubkey *p, const char *path, struct vb_error *err);
void vb_pubkey_free(struct vb_pubkey *p);
struct vb_pubkey *vb_pubkey_dup(const struct vb_pubkey *p); /* NULL: no memory */
const uint8_t *vb_pubkey_id(const struct vb_pubkey *p);
void vb_key_id_hex(const uint8_t id[VB_KEY_ID_LEN], char hex[2 * VB_KEY_ID_LEN + 1]);

/* A signed archive (doc/encryption.md, "Signatures"): what its trailer says. */
struct vb_signature {
	uint8_t key_id[VB_KEY_ID_LEN];
	uint8_t sha256[32];     /* of the bytes before the trailer */
	uint64_t length;        /* their count */
};
/* Checks the signature at the end of path ("-": standard input) with p:
 * 0 when p signed exactly these bytes; -1 with VB_E_INVALID when the
 * archive is not signed, signed by another key, or changed. */
int vb_signature_check(const char *path, const struct vb_pubkey *p, struct vb_signature *sig,
		       struct vb_error *err);

/* AES-256-GCM encryption filter in front of next (STREAM chunks of 64 KiB,
 * the file key wrapped to `to`). With digest, the SHA-256 of the bytes it
 * writes and their count to *bytes (if not NULL), when the stack closes
 * successfully (as a hash layer below would). Owns next on success; on
 * failure next stays the caller's. */
struct vb_writer *vb_crypt_writer_new(struct vb_writer *next, const struct vb_pubkey *to,
				      uint8_t digest[32], uint64_t *bytes, struct vb_error *err);

/* ============================================================== input stack */

enum vb_compression {
	VB_COMP_NONE = 0,
	VB_COMP_ZSTD,
	VB_COMP_GZIP,
	VB_COMP_LZO,
};
const char *vb_compression_name(enum vb_compression c);

struct vb_reader;

/* Opens path ("-" is standard input) and detects by content whether it is
 * plain VMA, zstd, gzip or lzop; fails with VB_E_INVALID for anything else,
 * including an empty input. */
struct vb_reader *vb_input_open(const char *path, struct vb_error *err);
/* The same on an open descriptor, which it owns from here on (closed by
 * vb_reader_free, or at once on failure); name is for messages. */
struct vb_reader *vb_input_open_fd(int fd, const char *name, struct vb_error *err);
/* The keys an encrypted input may be encrypted to. */
struct vb_input_opts {
	const struct vb_key *const *keys;
	size_t nkeys;
};
/* path, or fd >= 0 (owned) read under the name path, with o's keys: an
 * encrypted input is decrypted first (no key for it: VB_E_USAGE; a wrong
 * key, a damaged, missing or reordered chunk: VB_E_INVALID naming the
 * offset). */
struct vb_reader *vb_input_open_opts(const char *path, int fd, const struct vb_input_opts *o,
				     struct vb_error *err);
/* The keys vb_input_open and vb_input_open_fd use (the command line's
 * --key); NULL: none. o must outlive the readers opened. */
void vb_input_set_default(const struct vb_input_opts *o);
/* An encrypted archive (path, "-": standard input) decrypted to out_fd:
 * the archive as it was before encryption (zstd). 0 or -1; a plain input
 * is a VB_E_USAGE error. */
int vb_input_decrypt_to(const char *path, const struct vb_input_opts *o, int out_fd,
			struct vb_error *err);
/* Whether the input was encrypted, and the key id it named. */
const uint8_t *vb_reader_key_id(const struct vb_reader *r);
/* Decompressed bytes: returns the count (0 only at the end) or -1 with err set.
 * A truncated or corrupt compressed stream is VB_E_INVALID. */
ssize_t vb_reader_read(struct vb_reader *r, void *buf, size_t len, struct vb_error *err);
enum vb_compression vb_reader_compression(const struct vb_reader *r);
/* Compressed bytes consumed from the underlying file so far. */
uint64_t vb_reader_raw_bytes(const struct vb_reader *r);
void vb_reader_free(struct vb_reader *r);

/* ============================================================== random access
 * An archive file read at any offset of its decompressed stream: plain
 * VMA, or zstd in the seekable format (what vmaback writes), decompressing
 * only the frames a read touches. Not for concurrent use. */

struct vb_rafile;

/* Anything else (a pipe, gzip, lzop, zstd without a seek table) is a
 * VB_E_USAGE error saying so; a bad seek table VB_E_INVALID. */
struct vb_rafile *vb_rafile_open(const char *path, struct vb_error *err);
/* Decompressed bytes at off: the count (short only at the end), or -1. */
ssize_t vb_rafile_pread(struct vb_rafile *f, void *buf, size_t len, uint64_t off,
			struct vb_error *err);
uint64_t vb_rafile_size(const struct vb_rafile *f);
enum vb_compression vb_rafile_compression(const struct vb_rafile *f);
/* zstd frames whose decompression was started so far. */
uint64_t vb_rafile_frames_started(const struct vb_rafile *f);
void vb_rafile_free(struct vb_rafile *f);

/* ============================================================== descriptors */

/* All of buf or -errno; EINTR is retried unless vb_canceled() (then
 * -ECANCELED); pwrite_all at an offset. */
int vb_write_all(int fd, const void *buf, size_t len);
/* The same, EINTR retried whatever the cancel flag: for a local regular
 * file whose change, once begun, is completed before a signal takes effect
 * (state files, digest maps). 0 or -errno. */
int vb_write_whole(int fd, const void *buf, size_t len);
int vb_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* Reads until len bytes or the end of the file, looping on short reads and
 * EINTR (unless vb_canceled(): then -1 with ECANCELED). Returns the count (less than len only at the end) or -1 with errno
 * set; bytes read before an error are lost, which is fine as it is fatal. */
ssize_t vb_io_read_full(int fd, void *buf, size_t len);
/* fsync, retried on EINTR: 0 or -1 with errno. */
int vb_fsync(int fd);
/* Callbacks for the streaming readers and writers; opaque points to an int fd. */
ssize_t vb_fd_read_cb(void *opaque, void *buf, size_t len);
int vb_fd_write_cb(void *opaque, const void *buf, size_t len);

/* ============================================================== rate limit */

struct vb_ratelimit;
typedef double (*vb_clock_fn)(void *opaque);              /* monotonic seconds */
typedef void (*vb_sleep_fn)(void *opaque, double seconds);

/* A token bucket of rate bytes per second that saves up at most burst bytes
 * while idle; NULL clock/sleep use the real ones. rate 0 returns NULL. */
struct vb_ratelimit *vb_ratelimit_new(uint64_t rate, uint64_t burst, vb_clock_fn clock,
				      vb_sleep_fn sleep_fn, void *opaque);
/* Accounts n bytes, sleeping as long as the rate requires; -1 if cancel was
 * set while waiting. NULL rl is no limit. */
int vb_ratelimit_take(struct vb_ratelimit *rl, uint64_t n, const volatile sig_atomic_t *cancel);
void vb_ratelimit_free(struct vb_ratelimit *rl);

#endif
