/* serve.h: what cmd_serve.c and serve_prep.c share. */
#ifndef VMABACK_CLI_SERVE_H
#define VMABACK_CLI_SERVE_H

#include <limits.h>
#include <sys/types.h>

#include "cli/cli.h"

struct cli_serve {
	const char *socket, *port, *bind;
	char *socket_abs;       /* a relative --socket made absolute */
	const char *cache_dir;  /* --cache-dir: sequential archives decompressed there */
	const char *overlay;    /* --overlay: DIR/NAME.qcow2 on each export */
	bool once, quiet;
	const char **names;     /* -d */
	size_t nnames;
	char **archives;        /* absolute paths (a cached copy in place of one) */
	char **keys;            /* --key: absolute paths, for the plugin */
	size_t nkeys;
	size_t narchives;
	/* the exports: drive name, URI, size */
	char **served, **uris;
	uint64_t *sizes;
	size_t nserved;
	char tmpdir[PATH_MAX];  /* 0700: nbdkit's pid file, written when it is ready */
	struct vb_tempfile *index; /* in tmpdir: the index, for the plugin */
	pid_t pid;
};

/* Each archive that cannot be read at random is replaced by its copy in
 * --cache-dir (made, or found), or refused without one. An exit status. */
int cli_serve_cache(struct cli_serve *s);
/* --overlay DIR: DIR/NAME.qcow2 per export, its backing the export. */
int cli_serve_overlays(const struct cli_serve *s);

#endif
