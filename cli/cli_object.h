/*
 * cli_object.h -- ls, get and verify on an uploaded snapshot object
 * (NAME.tar, NAME.tar.zst, NAME.tar.gz, or `-` for standard input) instead
 * of a store directory: the object is read once, front to back, and never
 * unpacked (objread.h walks it, sst_stream.h checks each SST as it passes).
 *
 * What each holds in memory besides the readers' fixed buffers (objread.h,
 * sst_stream.h): ls one line per listed tensor (key, name, shape: it must
 * print key order, and the records come in seq order per SST); get the
 * newest version of its key seen so far; verify nothing per tensor.
 *
 * An object whose SSTs are not exactly the ones its MANIFEST names, or
 * that lacks MANIFEST or MANIFEST.json, is damaged for all three.
 */
#ifndef EMBEDDB_CLI_OBJECT_H
#define EMBEDDB_CLI_OBJECT_H

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

/* 1 when path names an object rather than a store: "-", or anything that
 * is not a directory. */
int cli_object_is(const char *path);

/* Calls fn, in key order, with the newest version of every key starting
 * with prefix -- with window set, only those whose timestamp lies in
 * [from, to). 0, or a TS_E* code after printing why (TS_ECORRUPT: the
 * object is damaged). */
int cli_object_scan(const char *path, const uint8_t *prefix, size_t plen, int window,
                    int64_t from, int64_t to, ts_scan_fn fn, void *ctx);

/* The newest version of key: 0 and *out (caller frees, ts_tensor_free),
 * TS_ENOTFOUND, or a code after printing why. */
int cli_object_load(const char *path, const uint8_t *key, size_t klen, ts_tensor **out);

/* Checks everything (objread.h, sst_stream.h, MANIFEST.json's hashes),
 * printing "damaged: ..." lines and a summary. 0, TS_ECORRUPT, or another
 * code after printing why. */
int cli_object_verify(const char *path);

#endif
