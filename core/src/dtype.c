/*
 * dtype.c -- element types: sizes, names (short and NumPy), and reading one
 * element as a double for summaries. Half floats are decoded in software so
 * this works on every target without compiler support for _Float16.
 */
#include "embeddb/tensor_store.h"

#include <math.h>
#include <string.h>

typedef struct dtype_info {
    ts_dtype dt;
    size_t size;
    const char *name;   /* short name, printed */
    const char *numpy;  /* NumPy's name, accepted on input */
} dtype_info;

static const dtype_info dtypes[] = {
    {TS_F16, 2, "f16", "float16"},   {TS_BF16, 2, "bf16", "bfloat16"},
    {TS_F32, 4, "f32", "float32"},   {TS_F64, 8, "f64", "float64"},
    {TS_I8, 1, "i8", "int8"},        {TS_I16, 2, "i16", "int16"},
    {TS_I32, 4, "i32", "int32"},     {TS_I64, 8, "i64", "int64"},
    {TS_U8, 1, "u8", "uint8"},       {TS_U16, 2, "u16", "uint16"},
    {TS_U32, 4, "u32", "uint32"},    {TS_U64, 8, "u64", "uint64"},
    {TS_BOOL, 1, "bool", "bool_"},   {TS_C64, 8, "c64", "complex64"},
    {TS_C128, 16, "c128", "complex128"},
};

static const dtype_info *find(ts_dtype dt)
{
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
        if (dtypes[i].dt == dt)
            return &dtypes[i];
    return NULL;
}

size_t ts_dtype_size(ts_dtype dt)
{
    const dtype_info *d = find(dt);
    return d ? d->size : 0;
}

const char *ts_dtype_name(ts_dtype dt)
{
    const dtype_info *d = find(dt);
    return d ? d->name : NULL;
}

int ts_dtype_parse(const char *s, ts_dtype *out)
{
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++) {
        if (!strcmp(s, dtypes[i].name) || !strcmp(s, dtypes[i].numpy)) {
            *out = dtypes[i].dt;
            return 0;
        }
    }
    if (!strcmp(s, "float") || !strcmp(s, "double")) {
        *out = s[0] == 'f' ? TS_F32 : TS_F64;
        return 0;
    }
    return TS_EINVAL;
}

static double half_to_double(uint16_t h)
{
    int exp = (h >> 10) & 0x1f;
    int mant = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp(mant, -24);
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexp(mant | 0x400, exp - 25);
    return (h & 0x8000) ? -v : v;
}

double ts_dtype_get(ts_dtype dt, const void *data, size_t i)
{
    const unsigned char *p = (const unsigned char *)data + i * ts_dtype_size(dt);
    /* memcpy keeps unaligned buffers legal; tensors are little-endian on
     * disk and every supported target is little-endian. */
    union {
        uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
        uint64_t u64; int64_t i64; float f32; double f64;
    } v;
    switch (dt) {
    case TS_F16: memcpy(&v.u16, p, 2); return half_to_double(v.u16);
    case TS_BF16: {
        memcpy(&v.u16, p, 2);
        uint32_t bits = (uint32_t)v.u16 << 16;
        memcpy(&v.f32, &bits, 4);
        return v.f32;
    }
    case TS_F32: memcpy(&v.f32, p, 4); return v.f32;
    case TS_F64: memcpy(&v.f64, p, 8); return v.f64;
    case TS_C64: memcpy(&v.f32, p, 4); return v.f32;
    case TS_C128: memcpy(&v.f64, p, 8); return v.f64;
    case TS_I8: memcpy(&v.i8, p, 1); return v.i8;
    case TS_I16: memcpy(&v.i16, p, 2); return v.i16;
    case TS_I32: memcpy(&v.i32, p, 4); return v.i32;
    case TS_I64: memcpy(&v.i64, p, 8); return (double)v.i64;
    case TS_U8: return p[0];
    case TS_BOOL: return p[0] != 0;
    case TS_U16: memcpy(&v.u16, p, 2); return v.u16;
    case TS_U32: memcpy(&v.u32, p, 4); return v.u32;
    case TS_U64: memcpy(&v.u64, p, 8); return (double)v.u64;
    }
    return NAN;
}
