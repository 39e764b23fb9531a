/*
 * fuzz_dedup.c -- libFuzzer entry point for the de-duplication record
 * (agent/watermark.c: wm_load, the bytes in agent/CONTROL.md) and the
 * message tag (wm_tag_parse). Whatever the bytes: wm_load accepts or
 * returns -EINVAL with an empty table, never more than the cap; what it
 * accepts encodes (wm_record) to a record that loads back to the same
 * table. The tag: the input split at its first '\n' into id and seq.
 */
#include "watermark.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    watermark w, again;
    int err = 0;
    if (wm_init(&w, 4, 1) || wm_init(&again, 4, 1))
        abort();
    /* an exact-size copy, so ASan sees any overread */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    int rc = wm_load(&w, copy, size);
    if (rc && (rc != -EINVAL || w.n))
        abort();
    if (w.n > w.max_pubs)
        abort();
    if (!rc && w.n) {
        const ts_tensor *t = wm_record(&w, 0, 1, 0, &err);
        if (!t || wm_load(&again, t->data, t->data_len) || again.n != w.n ||
            memcmp(again.pubs, w.pubs, w.n * sizeof(wm_pub)))
            abort();
    }
    char text[256], id[WM_PUB_ID_MAX + 1];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = 0;
    char *nl = strchr(text, '\n');
    uint64_t seq = 0;
    if (nl) {
        *nl = 0;
        int tag = wm_tag_parse(text, nl + 1, id, &seq);
        if (tag == 1 && (!seq || strlen(id) > WM_PUB_ID_MAX || strcmp(id, text)))
            abort();
    }
    free(copy);
    wm_free(&w);
    wm_free(&again);
    return 0;
}
