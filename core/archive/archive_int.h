/* archive_int.h: what the files of core/archive share; private to it. */
#ifndef VMABACK_ARCHIVE_INT_H
#define VMABACK_ARCHIVE_INT_H

#ifndef VB_MODULE_archive
#error "core/archive/archive_int.h is private to core/archive: include core/archive/archive.h"
#endif

#include "core/archive/archive.h"


#endif
