/*
 * tensor.c -- the ts_tensor value: validation (the rules every save obeys),
 * numeric keys, freeing, and the seed's one-line summary.
 */
#include "embeddb/tensor_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ts_tensor_free(ts_tensor *t)
{
    free(t); /* one allocation holds the tensor, its key, name and data */
}

int ts_tensor_numel(const ts_tensor *t, uint64_t *out)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < t->ndim && i < TS_MAX_DIMS; i++) {
        if (t->shape[i] && n > UINT64_MAX / t->shape[i])
            return TS_EOVERFLOW;
        n *= t->shape[i];
    }
    *out = n;
    return 0;
}

int ts_validate(const ts_tensor *t)
{
    uint64_t numel = 0;
    size_t es;
    if (!t || !t->key || !t->name)
        return TS_EINVAL;
    if (t->key_len == 0 || t->ndim > TS_MAX_DIMS)
        return TS_EINVAL;
    if (t->key_len > TS_MAX_KEY_LEN || strnlen(t->name, TS_MAX_NAME_LEN + 1) > TS_MAX_NAME_LEN)
        return TS_ENAMETOOLONG;
    es = ts_dtype_size(t->dtype);
    if (!es)
        return TS_EINVAL;
    if (ts_tensor_numel(t, &numel) || numel > UINT64_MAX / es)
        return TS_EOVERFLOW;
    if (numel * es != t->data_len)
        return TS_EINVAL;
    if (t->data_len && !t->data)
        return TS_EINVAL;
    return 0;
}

void ts_key_from_u64(uint64_t v, uint8_t out[TS_KEY_U64_LEN])
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

int ts_key_to_u64(const uint8_t *key, size_t key_len, uint64_t *v)
{
    if (key_len != TS_KEY_U64_LEN)
        return 0;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | key[i];
    *v = x;
    return 1;
}

int ts_summarize(const ts_tensor *t, size_t n_values, char *buf, size_t len)
{
    uint64_t numel = 0;
    size_t es = ts_dtype_size(t->dtype);
    size_t have = es ? t->data_len / es : 0; /* a preview holds fewer */
    size_t used = 0;
    char tmp[64];
    /* Append with truncation, but keep counting what the whole line needs. */
#define EMIT(...)                                                           \
    do {                                                                    \
        int k_ = snprintf(tmp, sizeof(tmp), __VA_ARGS__);                   \
        if (k_ > 0) {                                                       \
            if (used < len)                                                 \
                memcpy(buf + used, tmp,                                     \
                       (size_t)k_ < len - used ? (size_t)k_ : len - used);  \
            used += (size_t)k_;                                             \
        }                                                                   \
    } while (0)
    if (len)
        buf[0] = 0;
    if (ts_tensor_numel(t, &numel))
        numel = 0;
    {
        size_t nl = strlen(t->name);
        if (used < len)
            memcpy(buf + used, t->name, nl < len - used ? nl : len - used);
        used += nl;
    }
    EMIT(" (");
    if (t->ndim == 0)
        EMIT("scalar");
    for (uint32_t i = 0; i < t->ndim; i++)
        EMIT(i ? "x%llu" : "%llu", (unsigned long long)t->shape[i]);
    EMIT(") ->");
    size_t shown = 0;
    for (; shown < n_values && shown < have && shown < numel; shown++)
        EMIT("%s %g", shown ? "," : "", ts_dtype_get(t->dtype, t->data, shown));
    if (shown < numel)
        EMIT("%s ...", shown ? "," : "");
#undef EMIT
    if (len)
        buf[used < len ? used : len - 1] = 0;
    return (int)used;
}
