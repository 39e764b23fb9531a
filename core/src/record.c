/*
 * record.c -- the tensor record and batch frame codecs.
 *
 * A record carries its own header checksum (covering shape, key, name and
 * the per-4-KiB data block checksums) so that a point load or a preview can
 * verify exactly the bytes it read. Limits are enforced here, once, for
 * every path that writes or reads a record.
 */
#include "record.h"

#include "crc32c.h"
#include "format.h"

#include <stdlib.h>
#include <string.h>

int rec_size(const ts_tensor *t, uint32_t *hdr_len, uint64_t *rec_len)
{
    int rc = ts_validate(t);
    if (rc)
        return rc;
    size_t name_len = strlen(t->name);
    uint64_t n_blocks = (t->data_len + FMT_BLOCK_LEN - 1) / FMT_BLOCK_LEN;
    uint64_t h = FMT_REC_FIXED_LEN + 8ull * t->ndim + t->key_len + name_len;
    h = ((h + 3) & ~(uint64_t)3) + 4 * n_blocks;
    h = fmt_align8(h);
    uint64_t r = h + fmt_align8(t->data_len);
    /* Records are addressed with 32-bit lengths in SST indexes. */
    if (r > UINT32_MAX || r < t->data_len)
        return TS_EOVERFLOW;
    *hdr_len = (uint32_t)h;
    *rec_len = r;
    return 0;
}

/* Offset of the block CRC table in a header with these fields. */
static size_t crc_table_off(uint32_t ndim, size_t key_len, size_t name_len)
{
    return (FMT_REC_FIXED_LEN + 8 * ndim + key_len + name_len + 3) & ~(size_t)3;
}

void rec_encode_begin(const ts_tensor *t, uint64_t seq, int64_t timestamp_ns, uint8_t *buf,
                      uint32_t hdr_len, crc32c_job *jobs, size_t *n_jobs)
{
    size_t name_len = strlen(t->name);
    memset(buf, 0, hdr_len);
    put32(buf + 4, hdr_len);
    put64(buf + 8, t->data_len);
    put64(buf + 16, seq);
    put64(buf + 24, (uint64_t)timestamp_ns);
    put16(buf + 32, (uint16_t)t->key_len);
    put16(buf + 34, (uint16_t)name_len);
    buf[36] = (uint8_t)t->dtype;
    buf[37] = (uint8_t)t->ndim;
    uint8_t *p = buf + FMT_REC_FIXED_LEN;
    for (uint32_t i = 0; i < t->ndim; i++, p += 8)
        put64(p, t->shape[i]);
    memcpy(p, t->key, t->key_len);
    memcpy(p + t->key_len, t->name, name_len);
    /* The table is 4-aligned inside an 8-aligned header buffer. */
    uint32_t *crcs = (uint32_t *)(void *)(buf + crc_table_off(t->ndim, t->key_len, name_len));
    const uint8_t *d = t->data;
    for (size_t off = 0; off < t->data_len; off += FMT_BLOCK_LEN) {
        size_t n = t->data_len - off < FMT_BLOCK_LEN ? t->data_len - off : FMT_BLOCK_LEN;
        jobs[(*n_jobs)++] = (crc32c_job){d + off, n, crcs++};
    }
}

void rec_encode_finish(uint8_t *buf, uint32_t hdr_len)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    /* The jobs stored host-order words; the format is little-endian. */
    uint8_t *p = buf + crc_table_off(buf[37], get16(buf + 32), get16(buf + 34));
    for (uint64_t i = 0; i < (get64(buf + 8) + FMT_BLOCK_LEN - 1) / FMT_BLOCK_LEN; i++, p += 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        put32(p, v);
    }
#endif
    put32(buf, crc32c(buf + 4, hdr_len - 4));
}

size_t rec_n_blocks(uint64_t data_len)
{
    return (size_t)((data_len + FMT_BLOCK_LEN - 1) / FMT_BLOCK_LEN);
}

int rec_encode(const ts_tensor *t, uint64_t seq, int64_t timestamp_ns, uint8_t *buf,
               uint32_t hdr_len)
{
    size_t n_jobs = 0;
    crc32c_job *jobs = malloc((rec_n_blocks(t->data_len) + 1) * sizeof(*jobs));
    if (!jobs)
        return TS_ENOMEM;
    rec_encode_begin(t, seq, timestamp_ns, buf, hdr_len, jobs, &n_jobs);
    crc32c_jobs(jobs, n_jobs);
    free(jobs);
    rec_encode_finish(buf, hdr_len);
    return 0;
}

int rec_parse(const uint8_t *buf, size_t avail, rec_meta *m, size_t *need, const char **why)
{
    if (avail < FMT_REC_FIXED_LEN) {
        *need = FMT_REC_FIXED_LEN;
        return REC_SHORT;
    }
    memset(m, 0, sizeof(*m));
    m->hdr_len = get32(buf + 4);
    m->data_len = get64(buf + 8);
    m->seq = get64(buf + 16);
    m->timestamp_ns = (int64_t)get64(buf + 24);
    m->key_len = get16(buf + 32);
    m->name_len = get16(buf + 34);
    m->dtype = buf[36];
    m->ndim = buf[37];
    /* Bound every length before using it (the CRC is checked after). */
    if (m->hdr_len < FMT_REC_FIXED_LEN || m->hdr_len % FMT_ALIGN || m->ndim > TS_MAX_DIMS ||
        m->key_len == 0 || m->key_len > TS_MAX_KEY_LEN || m->name_len > TS_MAX_NAME_LEN ||
        m->data_len > UINT32_MAX) {
        *why = "record header fields out of range";
        return TS_ECORRUPT;
    }
    m->n_blocks = (m->data_len + FMT_BLOCK_LEN - 1) / FMT_BLOCK_LEN;
    uint64_t h = FMT_REC_FIXED_LEN + 8ull * m->ndim + m->key_len + m->name_len;
    uint64_t crc_at = (h + 3) & ~(uint64_t)3;
    h = fmt_align8(crc_at + 4 * m->n_blocks);
    if (h != m->hdr_len) {
        *why = "record header length does not match its contents";
        return TS_ECORRUPT;
    }
    m->rec_len = m->hdr_len + fmt_align8(m->data_len);
    if (m->rec_len > UINT32_MAX) {
        *why = "record too long";
        return TS_ECORRUPT;
    }
    if (avail < m->hdr_len) {
        *need = m->hdr_len;
        return REC_SHORT;
    }
    if (crc32c(buf + 4, m->hdr_len - 4) != get32(buf)) {
        *why = "record header checksum mismatch";
        return TS_ECORRUPT;
    }
    const uint8_t *p = buf + FMT_REC_FIXED_LEN;
    for (uint32_t i = 0; i < m->ndim; i++, p += 8)
        m->shape[i] = get64(p);
    m->key = p;
    m->name = p + m->key_len;
    m->block_crcs = buf + crc_at;
    /* The checksum held, so a mismatch here is a writer bug, still corrupt. */
    size_t es = ts_dtype_size((ts_dtype)m->dtype);
    uint64_t numel = 1;
    for (uint32_t i = 0; i < m->ndim; i++) {
        if (m->shape[i] && numel > UINT64_MAX / m->shape[i]) {
            es = 0;
            break;
        }
        numel *= m->shape[i];
    }
    if (!es || numel > UINT64_MAX / es || numel * es != m->data_len) {
        *why = "record dtype/shape does not match its data length";
        return TS_ECORRUPT;
    }
    return 0;
}

int rec_verify_data(const rec_meta *m, const uint8_t *data, uint64_t have, uint64_t *bad_off)
{
    for (uint64_t off = 0, i = 0; off < have; off += FMT_BLOCK_LEN, i++) {
        uint64_t n = m->data_len - off < FMT_BLOCK_LEN ? m->data_len - off : FMT_BLOCK_LEN;
        if (n > have - off)
            break; /* a partial block we did not read in full */
        if (crc32c(data + off, (size_t)n) != get32(m->block_crcs + 4 * i)) {
            *bad_off = off;
            return TS_ECORRUPT;
        }
    }
    return 0;
}

void rec_batch_encode(const batch_hdr *b, uint8_t out[32])
{
    memset(out, 0, 32);
    put32(out, FMT_BATCH_MAGIC);
    put32(out + 4, b->n_records);
    put64(out + 8, b->body_len);
    put64(out + 16, b->first_seq);
    put32(out + 24, b->kind);
    put32(out + 28, crc32c(out, 28));
}

int rec_batch_parse(const uint8_t in[32], batch_hdr *b)
{
    if (get32(in) != FMT_BATCH_MAGIC || crc32c(in, 28) != get32(in + 28))
        return TS_ECORRUPT;
    b->n_records = get32(in + 4);
    b->body_len = get64(in + 8);
    b->first_seq = get64(in + 16);
    b->kind = get32(in + 24);
    if (b->n_records == 0 || b->kind > FMT_BATCH_PACKED || b->body_len % FMT_ALIGN ||
        (b->kind == FMT_BATCH_PLAIN && b->body_len < (uint64_t)b->n_records * FMT_REC_FIXED_LEN) ||
        (b->kind == FMT_BATCH_PACKED && b->body_len < (uint64_t)b->n_records * 2))
        return TS_ECORRUPT;
    return 0;
}

void seg_hdr_encode(uint64_t file_no, uint64_t base_seq, uint8_t out[32])
{
    memset(out, 0, 32);
    memcpy(out, FMT_SEG_MAGIC, 8);
    put64(out + 8, file_no);
    put64(out + 16, base_seq);
    put32(out + 24, FMT_VERSION);
    put32(out + 28, crc32c(out, 28));
}

int seg_hdr_parse(const uint8_t in[32], uint64_t *file_no, uint64_t *base_seq, uint32_t *version)
{
    uint32_t v = get32(in + 24);
    if (memcmp(in, FMT_SEG_MAGIC, 8) || crc32c(in, 28) != get32(in + 28) ||
        (v != FMT_VERSION && v != FMT_VERSION_V1))
        return TS_ECORRUPT;
    *file_no = get64(in + 8);
    *base_seq = get64(in + 16);
    if (version)
        *version = v;
    return 0;
}
