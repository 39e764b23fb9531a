/*
 * npy.h -- the NumPy .npy v1.0 header for a tensor, so `embeddb get` output
 * loads with numpy.load() exactly (dtype, shape, bytes). Little-endian, C
 * order. bfloat16 has no NumPy dtype: it is written as '<u2' raw bits.
 */
#ifndef EMBEDDB_NPY_H
#define EMBEDDB_NPY_H

#include "embeddb/tensor_store.h"

#include <stddef.h>

/* NumPy descr string for dt ("<f4", "|b1", ...), or NULL. */
const char *npy_descr(ts_dtype dt);
/* Writes the full header (magic, version, length, dict, padding to a
 * multiple of 64 bytes, newline) into buf. 0 and *len, or -1 when cap is too
 * small or the dtype unknown. */
int npy_header(const ts_tensor *t, char *buf, size_t cap, size_t *len);

#endif
