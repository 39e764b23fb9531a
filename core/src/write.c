/*
 * write.c -- the write path: ts_save_batch appends one batch frame to the
 * WAL and makes it durable; ts_flush seals the segment into an SST.
 *
 * Two batch kinds (FORMAT.md). A batch whose tensors all hold at most
 * FMT_PACK_MAX_DATA bytes is packed: its records are encoded into frames in
 * one buffer (small tensors are copied once, into it) and go out as one
 * pwrite. Any other batch is plain, and copies no tensor bytes: it goes out
 * as one pwritev whose iovecs point at the caller's data between the
 * encoded headers, checksummed in the only pass over the data (crc32c_jobs,
 * about 30 GB/s with the CPU's CRC instruction). Either way the MemTable
 * only remembers offsets.
 *
 * Failure policy: a write that fails before the fdatasync is cut back off
 * the file and reported (ENOSPC stays ENOSPC and the store stays usable);
 * a failed fdatasync, or any failure after a flush started renaming files,
 * poisons the store (TS_EFAILED from then on) because what the disk holds is
 * no longer known. Reopening recovers from the files alone.
 */
#include "store_int.h"

#include "format.h"
#include "pack.h"
#include "record.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

static const uint8_t zeros[FMT_ALIGN];

/* Scratch memory for one batch, kept on the store and reused: the hot path
 * allocates nothing in steady state. Returns len bytes (8-aligned) or NULL. */
static void *scratch(ts_store *s, int slot, size_t len)
{
    if (len > s->scratch_cap[slot]) {
        size_t cap = len < 4096 ? 4096 : len + len / 2;
        void *p = realloc(s->scratch[slot], cap);
        if (!p)
            return NULL;
        s->scratch[slot] = p;
        s->scratch_cap[slot] = cap;
    }
    return s->scratch[slot];
}

static const char *why_invalid(const ts_tensor *t, int rc)
{
    if (!t || !t->key || !t->name)
        return "missing key or name";
    if (rc == TS_ENAMETOOLONG)
        return t->key_len > TS_MAX_KEY_LEN ? "key longer than 1024 bytes"
                                           : "name longer than 1024 bytes";
    if (t->key_len == 0)
        return "empty key";
    if (t->ndim > TS_MAX_DIMS)
        return "more than 8 dimensions";
    if (!ts_dtype_size(t->dtype))
        return "unknown dtype";
    if (rc == TS_EOVERFLOW)
        return "shape too large (size overflows)";
    if (t->data_len && !t->data)
        return "no data buffer";
    return "data length does not match shape x dtype size";
}

/* Upper bound of a key's share of a sealed index: the key in full (prefix
 * compression is not counted on), its varints, the restart and time tables,
 * and a frame table entry for each key (more than there are frames). */
#define INDEX_COST_PER_KEY (24u + FMT_IDX2_FRAME_LEN)

int ts_batch_cost(const ts_tensor *const *tensors, size_t n, uint64_t *bytes)
{
    uint64_t total = n ? FMT_BATCH_HDR_LEN : 0, body = 0;
    int64_t *ts = NULL;
    int rc = 0;
    *bytes = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t hlen;
        uint64_t rec_len;
        if ((rc = rec_size(tensors[i], &hlen, &rec_len)))
            return rc;
        body += rec_len;
        total += tensors[i]->key_len + INDEX_COST_PER_KEY;
    }
    if (pack_eligible(tensors, n)) {
        /* Timestamp deltas take at most 10 bytes each: measure with the
         * worst ones so the bound holds whatever the clock says. */
        if (!(ts = malloc(n * sizeof(*ts))))
            return TS_ENOMEM;
        for (size_t i = 0; i < n; i++)
            ts[i] = i % 2 ? 0 : INT64_MIN;
        rc = pack_encode(tensors, ts, n, UINT64_MAX - n, NULL, &body, NULL);
        free(ts);
        if (rc)
            return rc;
    }
    *bytes = total + body;
    return 0;
}

static int cmp_key_ptr(const void *a, const void *b)
{
    const ts_tensor *x = *(const ts_tensor *const *)a, *y = *(const ts_tensor *const *)b;
    return mt_key_cmp(x->key, x->key_len, y->key, y->key_len);
}

/* insert_only: TS_EEXIST when a key of the batch is stored already or comes
 * twice in it. Sorting a copy of the pointers finds repeats in n log n. */
static int check_new_keys(ts_store *s, const ts_tensor *const *tensors, size_t n)
{
    const ts_tensor **v = NULL;
    for (size_t i = 0; i < n; i++)
        if (store__has_key(s, tensors[i]->key, tensors[i]->key_len))
            return store__err(s, TS_EEXIST, "tensor %zu of the batch: key '%.*s' is already "
                              "stored (insert_only; nothing was written)", i,
                              (int)(tensors[i]->key_len > 200 ? 200 : tensors[i]->key_len),
                              (const char *)tensors[i]->key);
    if (n < 2)
        return 0;
    if (!(v = scratch(s, 5, n * sizeof(*v))))
        return store__err(s, TS_ENOMEM, "out of memory for a batch of %zu", n);
    memcpy(v, tensors, n * sizeof(*v));
    qsort(v, n, sizeof(*v), cmp_key_ptr);
    for (size_t i = 1; i < n; i++)
        if (!cmp_key_ptr(&v[i - 1], &v[i]))
            return store__err(s, TS_EEXIST, "key '%.*s' comes twice in the batch (insert_only; "
                              "nothing was written)",
                              (int)(v[i]->key_len > 200 ? 200 : v[i]->key_len),
                              (const char *)v[i]->key);
    return 0;
}

/* Writes iovecs in IOV_MAX-sized groups at off. */
static int write_iov(ts_store *s, const struct iovec *iov, size_t n, uint64_t off)
{
    while (n) {
        int k = n > IOV_MAX ? IOV_MAX : (int)n;
        uint64_t len = 0;
        for (int i = 0; i < k; i++)
            len += iov[i].iov_len;
        int rc = store__write(s, s->wal_fd, iov, k, off);
        if (rc)
            return rc;
        iov += k;
        n -= (size_t)k;
        off += len;
    }
    return 0;
}

/* Undoes a partial append; if even that fails the file's tail is unknown. */
static int cut_back(ts_store *s, int rc, const char *what)
{
    char path[STORE_PATH_MAX];
    store__file_path(s, "wal", s->wal_no, path);
    int trc = s->vfs->ftruncate(s->vfs, s->wal_fd, s->wal_end);
    if (trc)
        return store__fail(s, rc, "%s(%s): %s; truncating back failed too: %s", what, path,
                           strerror(-rc), strerror(-trc));
    return store__err(s, rc, "%s(%s): %s (nothing was committed)", what, path, strerror(-rc));
}

int ts_save(ts_store *s, const ts_tensor *t)
{
    return ts_save_batch(s, &t, 1);
}

/* Encodes a packed batch (header + frames) into scratch: one iovec. */
static int encode_packed(ts_store *s, const ts_tensor *const *tensors, size_t n,
                         const int64_t *ts, pack_loc *locs, struct iovec *iov, uint64_t *body)
{
    uint8_t *buf;
    int rc = pack_encode(tensors, ts, n, s->next_seq, NULL, body, NULL);
    if (rc || *body > SIZE_MAX - FMT_BATCH_HDR_LEN)
        return store__err(s, TS_EOVERFLOW, "batch too large");
    if (!(buf = scratch(s, 3, (size_t)(FMT_BATCH_HDR_LEN + *body))))
        return store__err(s, TS_ENOMEM, "out of memory for a batch of %zu", n);
    batch_hdr bh = {.n_records = (uint32_t)n, .body_len = *body, .first_seq = s->next_seq,
                    .kind = FMT_BATCH_PACKED};
    rec_batch_encode(&bh, buf);
    pack_encode(tensors, ts, n, s->next_seq, buf + FMT_BATCH_HDR_LEN, body, locs);
    *iov = (struct iovec){buf, (size_t)(FMT_BATCH_HDR_LEN + *body)};
    return 0;
}

/* Encodes a plain batch: iovecs for the headers, the caller's data and the
 * padding; the data checksums run here. hlen[] from rec_size. */
static int encode_plain(ts_store *s, const ts_tensor *const *tensors, size_t n,
                        const int64_t *ts, const uint32_t *hlen, uint64_t body,
                        struct iovec *iov, size_t *niov)
{
    uint64_t hbytes = FMT_BATCH_HDR_LEN;
    size_t n_blocks = 0, n_jobs = 0;
    for (size_t i = 0; i < n; i++) {
        hbytes += hlen[i];
        n_blocks += rec_n_blocks(tensors[i]->data_len);
    }
    if (hbytes > SIZE_MAX / 2)
        return store__err(s, TS_EOVERFLOW, "batch too large");
    uint8_t *hbuf = scratch(s, 3, (size_t)hbytes);
    crc32c_job *jobs = scratch(s, 4, (n_blocks + 1) * sizeof(*jobs));
    if (!hbuf || !jobs)
        return store__err(s, TS_ENOMEM, "out of memory for a batch of %zu", n);
    batch_hdr bh = {.n_records = (uint32_t)n, .body_len = body, .first_seq = s->next_seq,
                    .kind = FMT_BATCH_PLAIN};
    rec_batch_encode(&bh, hbuf);
    *niov = 0;
    iov[(*niov)++] = (struct iovec){hbuf, FMT_BATCH_HDR_LEN};
    uint8_t *h = hbuf + FMT_BATCH_HDR_LEN;
    for (size_t i = 0; i < n; i++) {
        const ts_tensor *t = tensors[i];
        rec_encode_begin(t, s->next_seq + i, ts[i], h, hlen[i], jobs, &n_jobs);
        /* Merge each header into the previous iovec when contiguous. */
        if (i == 0)
            iov[0].iov_len += hlen[0];
        else
            iov[(*niov)++] = (struct iovec){h, hlen[i]};
        if (t->data_len)
            iov[(*niov)++] = (struct iovec){(void *)t->data, t->data_len};
        if (t->data_len % FMT_ALIGN)
            iov[(*niov)++] = (struct iovec){(void *)zeros, FMT_ALIGN - t->data_len % FMT_ALIGN};
        h += hlen[i];
    }
    /* The only pass over the tensor bytes before the kernel copies them. */
    crc32c_jobs(jobs, n_jobs);
    h = hbuf + FMT_BATCH_HDR_LEN;
    for (size_t i = 0; i < n; i++) {
        rec_encode_finish(h, hlen[i]);
        h += hlen[i];
    }
    return 0;
}

int ts_save_batch(ts_store *s, const ts_tensor *const *tensors, size_t n)
{
    struct iovec *iov = NULL;
    uint32_t *hlen = NULL;
    int64_t *ts = NULL;
    pack_loc *locs = NULL;
    uint64_t body = 0, keys = 0;
    size_t niov = 1;
    int rc = store__check_writable(s);
    if (rc || n == 0)
        return rc;
    /* Scratch sizes below stay in range on 32-bit size_t too. */
    if (n > UINT32_MAX / 4 || n > SIZE_MAX / (4 * sizeof(struct iovec)))
        return store__err(s, TS_EINVAL, "batch of %zu tensors is too large", n);
    hlen = scratch(s, 1, n * sizeof(*hlen));
    iov = scratch(s, 2, (3 * n + 1) * sizeof(*iov)); /* header, data, pad each */
    ts = scratch(s, 6, n * sizeof(*ts));
    locs = scratch(s, 7, n * sizeof(*locs));
    if (!hlen || !iov || !ts || !locs) {
        rc = store__err(s, TS_ENOMEM, "out of memory for a batch of %zu", n);
        goto out;
    }
    /* Validate everything before writing anything. */
    int64_t now = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t rec_len;
        rc = rec_size(tensors[i], &hlen[i], &rec_len);
        if (rc) {
            store__err(s, rc, "tensor %zu of the batch rejected: %s", i, why_invalid(tensors[i], rc));
            goto out;
        }
        body += rec_len;
        keys += tensors[i]->key_len;
        if (body > (UINT64_MAX >> 2)) {
            rc = store__err(s, TS_EOVERFLOW, "batch too large");
            goto out;
        }
        ts[i] = tensors[i]->timestamp_ns;
        if (!ts[i])
            ts[i] = now ? now : (now = plat_now_ns());
    }
    if (s->opts.insert_only && (rc = check_new_keys(s, tensors, n)))
        goto out;
    if ((rc = mt_reserve(&s->mt, n, (size_t)keys))) {
        store__err(s, rc, "out of memory indexing a batch of %zu", n);
        goto out;
    }
    int packed = pack_eligible(tensors, n);
    if (packed)
        rc = encode_packed(s, tensors, n, ts, locs, iov, &body);
    else
        rc = encode_plain(s, tensors, n, ts, hlen, body, iov, &niov);
    if (rc)
        goto out;
    rc = write_iov(s, iov, niov, s->wal_end);
    if (rc) {
        cut_back(s, rc, "pwritev");
        goto out;
    }
    if (s->opts.sync && (rc = store__sync(s, s->wal_fd))) {
        char path[STORE_PATH_MAX];
        store__file_path(s, "wal", s->wal_no, path);
        store__fail(s, rc, "fdatasync(%s): %s (batch not committed; reopen the store)", path,
                    strerror(-rc));
        goto out;
    }
    /* Committed: index it. Room was reserved, so these cannot fail. */
    uint64_t off = s->wal_end + FMT_BATCH_HDR_LEN;
    for (size_t i = 0; i < n; i++) {
        const ts_tensor *t = tensors[i];
        mt_entry e = {.seq = s->next_seq + i, .ts = ts[i], .dtype = (uint8_t)t->dtype};
        if (packed) {
            e.rec_off = off + locs[i].frame_off;
            e.rec_len = locs[i].frame_len;
            e.ord = locs[i].ord + 1;
        } else {
            e.rec_off = off;
            e.rec_len = (uint32_t)(hlen[i] + fmt_align8(t->data_len));
            e.hdr_len = hlen[i];
            off += e.rec_len;
        }
        mt_put(&s->mt, t->key, t->key_len, &e);
        s->st.payload_bytes += t->data_len;
    }
    s->wal_end += FMT_BATCH_HDR_LEN + body;
    s->mt.bytes += FMT_BATCH_HDR_LEN + body;
    s->next_seq += n;
    s->st.batches++;
    s->st.tensors_saved += n;
    if (s->mt.bytes >= s->opts.memtable_max || mt_ram(&s->mt) >= s->opts.memtable_max / 4) {
        /* The batch is durable whatever happens here; a failed flush leaves
         * its message in ts_errmsg and is retried after the next batch. */
        ts_flush(s, NULL, 0, NULL);
    }
out:
    return rc;
}

int ts_flush(ts_store *s, char *sst_name, size_t sst_name_len, uint64_t *n_out)
{
    char wal[STORE_PATH_MAX], path[STORE_PATH_MAX];
    uint32_t *order = NULL;
    uint8_t *buf = NULL;
    size_t n = 0, len = 0;
    int new_fd = -1;
    sst t = {.fd = -1};
    int rc = store__check_writable(s);
    if (sst_name && sst_name_len)
        sst_name[0] = 0;
    if (n_out)
        *n_out = 0;
    if (rc || s->mt.n == 0)
        return rc;
    order = mt_sorted(&s->mt, &n);
    if (!order) {
        rc = store__err(s, TS_ENOMEM, "out of memory sorting the MemTable");
        goto out;
    }
    rc = sst_build(&s->mt, order, n, s->wal_end, s->wal_no, s->wal_base_seq, s->next_seq - 1,
                   &buf, &len);
    if (rc) {
        store__err(s, rc, "out of memory building an SST index");
        goto out;
    }
    struct iovec iov = {buf, len};
    rc = store__write(s, s->wal_fd, &iov, 1, s->wal_end);
    if (rc) {
        cut_back(s, rc, "pwrite");
        goto out;
    }
    store__file_path(s, "wal", s->wal_no, wal);
    store__file_path(s, "sst", s->wal_no, path);
    if ((rc = store__sync(s, s->wal_fd))) {
        store__fail(s, rc, "fdatasync(%s): %s", wal, strerror(-rc));
        goto out;
    }
    if ((rc = s->vfs->rename(s->vfs, wal, path))) {
        store__fail(s, rc, "rename(%s, %s): %s", wal, path, strerror(-rc));
        goto out;
    }
    /* The sealed segment becomes an SST in memory without re-reading it. */
    t.file_no = s->wal_no;
    t.fd = s->wal_fd;
    s->wal_fd = -1;
    t.path = strdup(path);
    t.file_size = s->wal_end + len;
    sst_footer_parse(buf + len - FMT_FOOTER_LEN, &t.f);
    t.index = realloc(buf, t.f.index_len ? t.f.index_len : 1);
    if (!t.path || !t.index) {
        rc = store__fail(s, TS_ENOMEM, "out of memory during flush");
        goto out;
    }
    buf = NULL;
    const char *why = NULL;
    if ((rc = sst_adopt(&t, &why))) {
        /* A corrupt index here is a bug of sst_build: the file is durable
         * and reopening reports it; nothing more may be written. */
        rc = store__fail(s, rc, "%s: %s", path, why);
        goto out;
    }
    if ((rc = store__add_sst(s, &t))) {
        s->failed = 1;
        goto out;
    }
    if ((rc = store__create_wal(s, s->wal_no + 1, s->next_seq, 0, &new_fd)) ||
        (rc = store__write_manifest(s, s->wal_no + 1, 0)) || (rc = store__dirsync(s))) {
        s->failed = 1;
        goto out;
    }
    if (sst_name && sst_name_len)
        snprintf(sst_name, sst_name_len, "sst_%06" PRIu64 ".sst", s->wal_no);
    if (n_out)
        *n_out = n;
    s->wal_fd = new_fd;
    new_fd = -1;
    s->wal_no++;
    s->wal_base_seq = s->next_seq;
    s->wal_end = FMT_SEG_HDR_LEN;
    s->wal_version = FMT_VERSION;
    mt_clear(&s->mt);
    s->st.flushes++;
out:
    if (new_fd >= 0)
        s->vfs->close(s->vfs, new_fd);
    if (t.fd >= 0)
        s->vfs->close(s->vfs, t.fd);
    free(t.path);
    free(t.index);
    free(t.ts_ranges);
    free(t.bounds);
    free(buf);
    free(order);
    return rc;
}
