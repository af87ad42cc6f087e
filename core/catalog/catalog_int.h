/* catalog_int.h: what the files of core/catalog share; private to
 * core/catalog (and its unit test). */
#ifndef VMABACK_CATALOG_INT_H
#define VMABACK_CATALOG_INT_H

#ifndef VB_MODULE_catalog
#error "core/catalog/catalog_int.h is private to core/catalog: include core/catalog/catalog.h"
#endif

#include "core/archive/archive.h"
#include "core/catalog/catalog.h"

/* Opens the archive at path only if it is a regular file, without
 * blocking (a FIFO under an archive's name would hang the open) and
 * without following a symbolic link. A file that is something else gives
 * NULL with *skip set to what it is ("a FIFO", ...) and err untouched;
 * an unreadable archive gives NULL with err set and *skip NULL. */
struct vb_archive *vb_catalog_open(const char *path, const char **skip, struct vb_error *err);

#endif
