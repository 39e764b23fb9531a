/*
 * sst.c -- building and reading the index + footer that seal a segment.
 *
 * Everything read from disk is bounded before use: entry offsets must fall
 * inside the record area, key slices inside the key heap, and keys must be
 * strictly ascending, so a damaged index is reported at open instead of
 * sending a load astray.
 */
#include "sst.h"

#include "crc32c.h"
#include "format.h"

#include "embeddb/tensor_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sst_build(const memtable *mt, const uint32_t *order, size_t n, uint64_t index_off,
              uint64_t file_no, uint64_t min_seq, uint64_t max_seq, uint8_t **out,
              size_t *out_len)
{
    size_t heap = 0;
    for (size_t i = 0; i < n; i++)
        heap += mt->entries[order[i]].key_len;
    size_t idx_len = n * FMT_IDX_ENTRY_LEN + heap;
    idx_len = (size_t)fmt_align8(idx_len);
    uint8_t *buf = calloc(1, idx_len + FMT_FOOTER_LEN);
    if (!buf)
        return TS_ENOMEM;
    size_t koff = 0;
    uint8_t *heap_p = buf + n * FMT_IDX_ENTRY_LEN;
    for (size_t i = 0; i < n; i++) {
        const mt_entry *e = &mt->entries[order[i]];
        uint8_t *p = buf + i * FMT_IDX_ENTRY_LEN;
        put64(p, e->rec_off);
        put64(p + 8, e->seq);
        put32(p + 16, e->rec_len);
        put32(p + 20, e->hdr_len);
        put32(p + 24, (uint32_t)koff);
        put16(p + 28, e->key_len);
        p[30] = e->dtype;
        memcpy(heap_p + koff, mt_key(mt, e), e->key_len);
        koff += e->key_len;
    }
    sst_footer f = {
        .index_off = index_off,
        .index_len = idx_len,
        .n_entries = (uint32_t)n,
        .index_crc = crc32c(buf, idx_len),
        .min_seq = min_seq,
        .max_seq = max_seq,
        .file_no = file_no,
    };
    sst_footer_encode(&f, buf + idx_len);
    *out = buf;
    *out_len = idx_len + FMT_FOOTER_LEN;
    return 0;
}

void sst_footer_encode(const sst_footer *f, uint8_t out[64])
{
    memset(out, 0, 64);
    put64(out, f->index_off);
    put64(out + 8, f->index_len);
    put32(out + 16, f->n_entries);
    put32(out + 20, f->index_crc);
    put64(out + 24, f->min_seq);
    put64(out + 32, f->max_seq);
    put64(out + 40, f->file_no);
    put32(out + 52, crc32c(out, 52));
    memcpy(out + 56, FMT_SST_MAGIC, 8);
}

int sst_footer_parse(const uint8_t in[64], sst_footer *f)
{
    if (memcmp(in + 56, FMT_SST_MAGIC, 8) || crc32c(in, 52) != get32(in + 52))
        return TS_ECORRUPT;
    f->index_off = get64(in);
    f->index_len = get64(in + 8);
    f->n_entries = get32(in + 16);
    f->index_crc = get32(in + 20);
    f->min_seq = get64(in + 24);
    f->max_seq = get64(in + 32);
    f->file_no = get64(in + 40);
    return 0;
}

int sst_probe(plat_vfs *vfs, int fd, uint64_t size, sst_footer *f)
{
    uint8_t buf[FMT_FOOTER_LEN];
    if (size < FMT_SEG_HDR_LEN + FMT_FOOTER_LEN)
        return TS_ECORRUPT;
    int rc = plat_read_exact(vfs, fd, buf, sizeof(buf), size - FMT_FOOTER_LEN);
    if (rc)
        return rc == -ENODATA ? TS_ECORRUPT : rc;
    rc = sst_footer_parse(buf, f);
    if (rc)
        return rc;
    if (f->index_off < FMT_SEG_HDR_LEN || f->index_off > size ||
        f->index_len != size - FMT_FOOTER_LEN - f->index_off ||
        f->index_len < (uint64_t)f->n_entries * FMT_IDX_ENTRY_LEN)
        return TS_ECORRUPT;
    return 0;
}

void sst_entry_at(const sst *s, uint32_t i, sst_entry *e)
{
    const uint8_t *p = s->index + (size_t)i * FMT_IDX_ENTRY_LEN;
    e->rec_off = get64(p);
    e->seq = get64(p + 8);
    e->rec_len = get32(p + 16);
    e->hdr_len = get32(p + 20);
    e->key = s->index + (size_t)s->f.n_entries * FMT_IDX_ENTRY_LEN + get32(p + 24);
    e->key_len = get16(p + 28);
    e->dtype = p[30];
}

static const char *check_index(const sst *s)
{
    size_t heap_off = (size_t)s->f.n_entries * FMT_IDX_ENTRY_LEN;
    uint64_t heap_len = s->f.index_len - heap_off;
    sst_entry prev = {0}, e;
    for (uint32_t i = 0; i < s->f.n_entries; i++) {
        const uint8_t *p = s->index + (size_t)i * FMT_IDX_ENTRY_LEN;
        uint64_t koff = get32(p + 24);
        uint16_t klen = get16(p + 28);
        if (klen == 0 || klen > TS_MAX_KEY_LEN || koff + klen > heap_len)
            return "index key out of bounds";
        sst_entry_at(s, i, &e);
        if (e.rec_off < FMT_SEG_HDR_LEN || e.rec_len < e.hdr_len ||
            e.rec_off + e.rec_len > s->f.index_off)
            return "index entry points outside the record area";
        if (i && mt_key_cmp(prev.key, prev.key_len, e.key, e.key_len) >= 0)
            return "index keys not strictly ascending";
        prev = e;
    }
    return NULL;
}

int sst_open(plat_vfs *vfs, const char *path, uint64_t file_no, sst *s, char *errbuf,
             size_t errlen)
{
    plat_stat st;
    const char *why = NULL;
    int rc;
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->file_no = file_no;
    rc = vfs->open(vfs, path, PLAT_O_RDONLY, &s->fd);
    if (rc) {
        snprintf(errbuf, errlen, "open(%s): %s", path, strerror(-rc));
        goto out;
    }
    rc = vfs->fstat(vfs, s->fd, &st);
    if (rc) {
        snprintf(errbuf, errlen, "fstat(%s): %s", path, strerror(-rc));
        goto out;
    }
    s->file_size = st.size;
    rc = sst_probe(vfs, s->fd, st.size, &s->f);
    if (rc) {
        if (rc == TS_ECORRUPT)
            snprintf(errbuf, errlen, "%s: bad SST footer at offset %llu", path,
                     (unsigned long long)(st.size >= FMT_FOOTER_LEN ? st.size - FMT_FOOTER_LEN : 0));
        else
            snprintf(errbuf, errlen, "pread(%s): %s", path, strerror(-rc));
        goto out;
    }
    if (s->f.file_no != file_no) {
        rc = TS_ECORRUPT;
        snprintf(errbuf, errlen, "%s: footer names file %llu", path,
                 (unsigned long long)s->f.file_no);
        goto out;
    }
    s->index = malloc(s->f.index_len ? s->f.index_len : 1);
    if (!s->index) {
        rc = TS_ENOMEM;
        snprintf(errbuf, errlen, "%s: out of memory for the index", path);
        goto out;
    }
    rc = plat_read_exact(vfs, s->fd, s->index, s->f.index_len, s->f.index_off);
    if (rc) {
        snprintf(errbuf, errlen, "pread(%s): %s", path, strerror(-rc));
        rc = rc == -ENODATA ? TS_ECORRUPT : rc;
        goto out;
    }
    if (crc32c(s->index, s->f.index_len) != s->f.index_crc)
        why = "index checksum mismatch";
    else
        why = check_index(s);
    if (why) {
        rc = TS_ECORRUPT;
        snprintf(errbuf, errlen, "%s: %s (index at offset %llu)", path, why,
                 (unsigned long long)s->f.index_off);
        goto out;
    }
    s->path = strdup(path);
    if (!s->path) {
        rc = TS_ENOMEM;
        snprintf(errbuf, errlen, "out of memory");
    }
out:
    if (rc)
        sst_close(vfs, s);
    return rc;
}

void sst_close(plat_vfs *vfs, sst *s)
{
    if (s->fd >= 0)
        vfs->close(vfs, s->fd);
    s->fd = -1;
    free(s->index);
    free(s->path);
    s->index = NULL;
    s->path = NULL;
}

uint32_t sst_lower_bound(const sst *s, const uint8_t *key, size_t key_len)
{
    uint32_t lo = 0, hi = s->f.n_entries;
    sst_entry e;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        sst_entry_at(s, mid, &e);
        if (mt_key_cmp(e.key, e.key_len, key, key_len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int sst_find(const sst *s, const uint8_t *key, size_t key_len, sst_entry *e)
{
    uint32_t i = sst_lower_bound(s, key, key_len);
    if (i >= s->f.n_entries)
        return 0;
    sst_entry_at(s, i, e);
    return e->key_len == key_len && !memcmp(e->key, key, key_len);
}
