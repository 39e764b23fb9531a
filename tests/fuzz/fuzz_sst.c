/*
 * fuzz_sst.c -- libFuzzer entry point for the SST index checks
 * (sst_adopt: check_v1 / check_v2) and the lookups they make safe. The
 * first input byte sets the footer the index comes with: bit 0 the index
 * version (1 or 2), bit 1 the record area's end (index_off), bit 2 an entry
 * count that disagrees with the v2 header; the rest is the index, with the
 * bounds sst_probe guarantees (a v2 index holds its 16-byte header, a v1
 * index its fixed entries). Whatever the bytes, adopting must be refused
 * or yield an index whose every entry decodes in bounds, comes in strictly
 * ascending order, and is found again by sst_find.
 */
#include "format.h"
#include "memtable.h"
#include "sst.h"

#include "embeddb/plat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sst s;
    const char *why = NULL;
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    memset(&s, 0, sizeof(s));
    s.fd = -1;
    s.f.version = mode & 1 ? 1 : 2;
    s.f.index_off = mode & 2 ? 1u << 20 : (uint64_t)1 << 40;
    s.f.index_len = size;
    if (s.f.version == 2) {
        if (size < FMT_IDX2_HDR_LEN)
            return 0;
        s.f.n_entries = get32(data) + (mode & 4 ? 1 : 0);
    } else {
        s.f.n_entries = (uint32_t)(size / FMT_IDX_ENTRY_LEN) >> (mode >> 3 & 3);
    }
    if (!(s.index = malloc(size ? size : 1)))
        return 0;
    memcpy(s.index, data, size);
    int rc = sst_adopt(&s, &why);
    check(rc == 0 || ((rc == TS_ECORRUPT || rc == TS_ENOMEM) && why));
    sst_iter *it = malloc(sizeof(*it));
    sst_entry *e = malloc(sizeof(*e)), *prev = malloc(sizeof(*prev));
    if (!rc && it && e && prev) {
        uint32_t k = 0;
        for (sst_iter_seek(it, &s, NULL, 0); sst_iter_valid(it); sst_iter_next(it), k++) {
            const sst_entry *x = &it->e;
            check(x->key_len >= 1 && x->key_len <= TS_MAX_KEY_LEN);
            check(x->rec_off + x->rec_len <= s.f.index_off);
            check(x->ord || s.f.version == 1 || x->hdr_len >= FMT_REC_FIXED_LEN);
            if (k)
                check(mt_key_cmp(prev->kbuf, prev->key_len, x->key, x->key_len) < 0);
            memcpy(prev->kbuf, x->key, x->key_len);
            prev->key_len = x->key_len;
            check(sst_in_range(&s, prev->kbuf, prev->key_len));
            check(sst_find(&s, prev->kbuf, prev->key_len, e) == 1);
            check(e->rec_off == x->rec_off && e->ord == x->ord && e->rec_len == x->rec_len);
            if (k % 7 == 0) {
                sst_entry_at(&s, k, e);
                check(e->key_len == prev->key_len && !memcmp(e->key, prev->kbuf, e->key_len));
            }
        }
        check(k == s.f.n_entries);
        if (s.f.version == 2)
            for (uint32_t b = 0; b < sst_n_restarts(&s); b++)
                check(s.ts_ranges[2 * b] <= s.ts_ranges[2 * b + 1]);
    }
    free(it);
    free(e);
    free(prev);
    sst_close(plat_vfs_default(), &s);
    return 0;
}
