/*
 * npy.c -- NumPy .npy v1.0 headers (format: numpy.lib.format).
 */
#include "npy.h"

#include <stdio.h>
#include <string.h>

const char *npy_descr(ts_dtype dt)
{
    switch (dt) {
    case TS_F16: return "<f2";
    case TS_BF16: return "<u2";
    case TS_F32: return "<f4";
    case TS_F64: return "<f8";
    case TS_I8: return "|i1";
    case TS_I16: return "<i2";
    case TS_I32: return "<i4";
    case TS_I64: return "<i8";
    case TS_U8: return "|u1";
    case TS_U16: return "<u2";
    case TS_U32: return "<u4";
    case TS_U64: return "<u8";
    case TS_BOOL: return "|b1";
    case TS_C64: return "<c8";
    case TS_C128: return "<c16";
    }
    return NULL;
}

int npy_header(const ts_tensor *t, char *buf, size_t cap, size_t *len)
{
    char dict[512], shape[256];
    size_t o = 0;
    const char *descr = npy_descr(t->dtype);
    if (!descr || t->ndim > TS_MAX_DIMS)
        return -1;
    o += (size_t)snprintf(shape + o, sizeof(shape) - o, "(");
    for (uint32_t i = 0; i < t->ndim; i++)
        o += (size_t)snprintf(shape + o, sizeof(shape) - o, "%llu,%s",
                              (unsigned long long)t->shape[i], i + 1 < t->ndim ? " " : "");
    /* NumPy writes (3,) for one dimension and (3, 4) for more. */
    if (t->ndim > 1)
        o--;
    snprintf(shape + o, sizeof(shape) - o, ")");
    int n = snprintf(dict, sizeof(dict), "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    if (n < 0 || (size_t)n >= sizeof(dict))
        return -1;
    size_t total = 10 + (size_t)n + 1;
    total = (total + 63) / 64 * 64;
    if (total > cap || total - 10 > 0xffff)
        return -1;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', total - 10 - (size_t)n - 1);
    buf[total - 1] = '\n';
    *len = total;
    return 0;
}
