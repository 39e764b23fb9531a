/*
 * npy.h -- a tensor as a NumPy .npy file (format version 1.0), so that
 * `embeddb get` output loads with numpy.load() exactly: dtype, shape, bytes.
 *
 * The file is the 6-byte magic "\x93NUMPY", version 1.0, a little-endian
 * u16 header length, then a Python dict literal
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (32, 32), }
 * padded with spaces and ended with '\n' so that the data starts at a
 * multiple of 64 bytes, then the elements in C order, little-endian (the
 * engine stores them that way, so they are copied as they are).
 *
 * bfloat16 has no NumPy dtype: it is written as '<u2' holding the raw bits
 * (callers say so to the user). This is a writer only; reading .npy files is
 * not needed by the CLI.
 */
#ifndef EMBEDDB_NPY_H
#define EMBEDDB_NPY_H

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdio.h>

struct plat_vfs;

/* The longest header npy_header writes (8 dimensions of 20 digits). */
#define NPY_HEADER_MAX 320

/* NumPy's descr for dt ("<f4", "|b1", "<c16"...), or NULL when unknown. */
const char *npy_descr(ts_dtype dt);

/*
 * Writes the whole header (magic .. '\n') for t's dtype and shape into buf.
 * Returns 0 and *len (a multiple of 64), TS_EINVAL for an unknown dtype or
 * too many dimensions, or TS_EOVERFLOW when cap is too small.
 */
int npy_header(const ts_tensor *t, char *buf, size_t cap, size_t *len);

/*
 * Writes t as a .npy file at path, replacing it durably: PATH.tmp is written
 * and fdatasync'ed, renamed over path, and the directory synced, so path is
 * either the old file or the whole new one. vfs NULL = plat_vfs_default().
 * Returns 0 or a negative errno/TS_E* code; PATH.tmp is removed on failure.
 */
int npy_write_file(const ts_tensor *t, const char *path, struct plat_vfs *vfs);

/* Writes t as .npy bytes to fp (e.g. stdout) and flushes it. Returns 0,
 * TS_EIO on a write error, or npy_header's error. */
int npy_write_stream(const ts_tensor *t, FILE *fp);

#endif
