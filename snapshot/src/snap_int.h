/*
 * snap_int.h -- what snapshot.c and capture.c share inside the snapshot
 * library: the names of the entries in ROOT (snapshot/FORMAT.md, "The
 * directory") and three small file helpers. Internal to snapshot/.
 */
#ifndef EMBEDDB_SNAP_INT_H
#define EMBEDDB_SNAP_INT_H

#include "embeddb/plat.h"
#include "embeddb/tensor_store.h"

#include <stddef.h>

#define PATH_LEN 4096
#define SEAL_PREFIX ".seal-"
#define SEAL_NEW ".seal-new"
#define DEL_PREFIX ".del-"
#define CAPTURE_NEW ".capture-new"  /* a capture's copy being made: garbage after a crash */
#define JSON_NAME "MANIFEST.json"
#define STATE_NAME "STATE"
#define CAPTURE_NAME "CAPTURE"      /* in a capture's checkpoint: its window */
#define CAPTURE_MAX (8u << 10)      /* CAPTURE read back: 8 filters of 256 bytes fit */

/* a/b or a/b/c into out (PATH_LEN bytes). 0 or -ENAMETOOLONG. */
int snap__join3(char *out, const char *a, const char *b, const char *c);
/* mkdir ROOT (its parent is the store directory), made durable. */
int snap__ensure_root(plat_vfs *vfs, const char *root);
/* A checkpoint or snapshot opened as the read-only store it is. */
int snap__open_ro(plat_vfs *vfs, const char *dir, ts_store **c, char *err, size_t errlen);

#endif
