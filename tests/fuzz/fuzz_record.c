/*
 * fuzz_record.c -- libFuzzer entry point for the record, batch and segment
 * header parsers and the SST footer parser: any bytes must be rejected or
 * accepted without reading out of bounds, and an accepted record's data
 * check must stay inside the buffer.
 */
#include "format.h"
#include "record.h"
#include "sst.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rec_meta m;
    size_t need = 0;
    const char *why = NULL;
    uint64_t bad = 0;
    if (rec_parse(data, size, &m, &need, &why) == 0 && m.hdr_len <= size) {
        uint64_t have = size - m.hdr_len;
        if (have > m.data_len)
            have = m.data_len;
        rec_verify_data(&m, data + m.hdr_len, have, &bad);
    }
    if (size >= 32) {
        batch_hdr b;
        uint64_t no, base;
        rec_batch_parse(data, &b);
        seg_hdr_parse(data, &no, &base, NULL);
    }
    if (size >= 64) {
        sst_footer f;
        sst_footer_parse(data, &f);
    }
    return 0;
}
