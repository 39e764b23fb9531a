/*
 * fuzz_payload.c -- libFuzzer entry point for the agent's payload decoders:
 * the same bytes go through npy, raw, json and csv decoding with every
 * dtype the engine has configured (with and without a configured shape),
 * so every number conversion is reached. Each decode must accept or reject
 * without reading outside the buffer or leaking, and an accepted tensor's
 * size must match its shape and dtype.
 */
#include "payload.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const payload_format fmts[] = {PAYLOAD_NPY, PAYLOAD_RAW, PAYLOAD_JSON, PAYLOAD_CSV};
    char why[256];
    for (int d = TS_F16; d <= TS_C128; d++) {
        ts_dtype dt = (ts_dtype)d;
        for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
            /* raw: the shape that fits; csv/json: a shape on every other dtype */
            size_t es = ts_dtype_size(dt);
            payload_spec spec = {.format = fmts[i], .dtype = dt,
                                 .has_shape = fmts[i] == PAYLOAD_RAW || d % 2, .ndim = 1,
                                 .shape = {fmts[i] == PAYLOAD_RAW ? size / es : size / 4},
                                 .max_payload = 1 << 20};
            payload_tensor t;
            if (payload_decode(&spec, data, size, &t, why, sizeof(why)) != 0)
                continue;
            uint64_t n = 1;
            for (uint32_t k = 0; k < t.ndim; k++)
                n *= t.shape[k];
            if (t.ndim > TS_MAX_DIMS || n * ts_dtype_size(t.dtype) != t.data_len)
                abort();
            payload_free(&t);
        }
    }
    return 0;
}
