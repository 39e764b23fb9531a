/*
 * dtype.c -- element types: sizes, names (short and NumPy), and reading one
 * element as a double for summaries. Half floats are decoded in software so
 * this works on every target without compiler support for _Float16.
 */
#include "embeddb/tensor_store.h"

#include <math.h>
#include <stdint.h>
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

/* Round-to-nearest-even float -> IEEE half, with subnormals and inf/nan. */
static uint16_t to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7fffff;
    int exp = (int)((x >> 23) & 0xff) - 127 + 15;
    if (((x >> 23) & 0xff) == 0xff)
        return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10)
            return (uint16_t)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (uint32_t)exp << 10 | mant >> 13, rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++; /* may carry into the exponent, which is still correct */
    return (uint16_t)(sign | h);
}

/* Contract in tensor_store.h: the checks run before any byte is written. */
int ts_dtype_set(ts_dtype dt, void *data, size_t i, double v)
{
    uint8_t *p = (uint8_t *)data + i * ts_dtype_size(dt);
    float f;
    double integral;
    int is_int = dt != TS_F16 && dt != TS_BF16 && dt != TS_F32 && dt != TS_F64 && dt != TS_C64 &&
                 dt != TS_C128;
    if (is_int && (isnan(v) || modf(v, &integral) != 0))
        return TS_EINVAL;
    /* Upper bounds are exclusive powers of two: exact as doubles, unlike
     * INT64_MAX or UINT64_MAX, which round up to them. */
    static const struct {
        ts_dtype dt;
        double lo, hi_excl;
    } range[] = {
        {TS_I8, -128, 128}, {TS_I16, -32768, 32768}, {TS_I32, -2147483648.0, 2147483648.0},
        {TS_I64, -9223372036854775808.0, 9223372036854775808.0}, {TS_U8, 0, 256},
        {TS_U16, 0, 65536}, {TS_U32, 0, 4294967296.0}, {TS_U64, 0, 18446744073709551616.0},
        {TS_BOOL, 0, 2},
    };
    for (size_t k = 0; k < sizeof(range) / sizeof(range[0]); k++)
        if (range[k].dt == dt && (v < range[k].lo || v >= range[k].hi_excl))
            return TS_EOVERFLOW;
    /* A finite value too large for a float type would become infinity. */
    int finite = !isinf(v) && !isnan(v);
    if (finite && (dt == TS_F32 || dt == TS_C64) && isinf((float)v))
        return TS_EOVERFLOW;
    if (finite && dt == TS_F16 && (to_half((float)v) & 0x7fff) == 0x7c00)
        return TS_EOVERFLOW;
    if (finite && dt == TS_BF16 && fabs(v) >= 3.3961775292304756e38)
        return TS_EOVERFLOW;
    switch (dt) {
    case TS_F16: { uint16_t h = to_half((float)v); memcpy(p, &h, 2); break; }
    case TS_BF16: {
        f = (float)v;
        uint32_t x;
        memcpy(&x, &f, 4);
        uint16_t h = (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
        memcpy(p, &h, 2);
        break;
    }
    case TS_F32: f = (float)v; memcpy(p, &f, 4); break;
    case TS_F64: memcpy(p, &v, 8); break;
    case TS_C64: f = (float)v; memcpy(p, &f, 4); memset(p + 4, 0, 4); break;
    case TS_C128: memcpy(p, &v, 8); memset(p + 8, 0, 8); break;
    case TS_I8: { int8_t x = (int8_t)v; memcpy(p, &x, 1); break; }
    case TS_I16: { int16_t x = (int16_t)v; memcpy(p, &x, 2); break; }
    case TS_I32: { int32_t x = (int32_t)v; memcpy(p, &x, 4); break; }
    case TS_I64: { int64_t x = (int64_t)v; memcpy(p, &x, 8); break; }
    case TS_U8: case TS_BOOL: p[0] = (uint8_t)v; break;
    case TS_U16: { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); break; }
    case TS_U32: { uint32_t x = (uint32_t)v; memcpy(p, &x, 4); break; }
    case TS_U64: { uint64_t x = (uint64_t)v; memcpy(p, &x, 8); break; }
    default: return TS_EINVAL;
    }
    return 0;
}

