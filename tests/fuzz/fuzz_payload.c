/*
 * fuzz_payload.c -- libFuzzer entry point for the agent's payload decoders:
 * the same bytes go through npy, raw, json and csv decoding; each must
 * accept or reject without reading outside the buffer or leaking.
 */
#include "payload.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const payload_format fmts[] = {PAYLOAD_NPY, PAYLOAD_RAW, PAYLOAD_JSON, PAYLOAD_CSV};
    char why[256];
    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        payload_spec spec = {.format = fmts[i], .dtype = TS_U8, .has_shape = 1, .ndim = 1,
                             .shape = {size}, .max_payload = 1 << 20};
        payload_tensor t;
        if (payload_decode(&spec, data, size, &t, why, sizeof(why)) == PAYLOAD_OK)
            payload_free(&t);
    }
    return 0;
}
