/*
 * fuzz_manifest.c -- libFuzzer entry point for the MANIFEST decoder: it must
 * reject damage cleanly and never allocate more than MAN_MAX_LIVE entries.
 */
#include "manifest.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t wal = 0, *live = NULL;
    size_t n = 0;
    const char *why = NULL;
    if (man_decode(data, size, &wal, &live, &n, &why) == 0 && n > MAN_MAX_LIVE)
        abort();
    free(live);
    return 0;
}
