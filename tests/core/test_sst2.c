/*
 * test_sst2.c -- the version 2 SST index (core/src/sst.c): sst_build over a
 * MemTable of plain and packed entries, sst_adopt, and every lookup on the
 * result (sst_find, sst_iter_seek/next/block, sst_entry_at, the per-block
 * time ranges, sst_in_range) against a model; then damage: every bit flip
 * of an index, and hand-built indexes with one bad field each (restart
 * points, key order, frame references, truncation, padding, the time
 * table), which check_v2 must refuse although their CRC would be valid.
 */
#include "../core/test_util.h" /* first: it sets _GNU_SOURCE */

#include "crc32c.h"
#include "format.h"
#include "memtable.h"
#include "record.h"
#include "sst.h"

#include "embeddb/plat.h"
#include "embeddb/tensor_store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static uint64_t rng;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---- the model -------------------------------------------------------- */

typedef struct xent {
    uint8_t key[TS_MAX_KEY_LEN];
    uint16_t key_len;
    uint64_t rec_off;
    uint32_t rec_len, hdr_len, ord;
    uint8_t dtype;
    int64_t ts;
    int unit;
} xent;

static int cmp_xent(const void *a, const void *b)
{
    const xent *x = a, *y = b;
    return mt_key_cmp(x->key, x->key_len, y->key, y->key_len);
}

typedef struct unit {
    int packed;
    uint32_t len, n_rec;
    uint64_t off;
} unit;

typedef struct fx {
    size_t n;
    xent *e;            /* sorted by key */
    uint64_t index_off;
    uint8_t *out;       /* sst_build's index + footer */
    size_t out_len;
    sst s;
} fx;

static void make_key(xent *x, size_t i, const xent *prev)
{
    int kind = (int)(rnd() % 6);
    if (kind == 5 && prev && prev->key_len < TS_MAX_KEY_LEN) {
        memcpy(x->key, prev->key, prev->key_len); /* extends a key: prefix pairs */
        x->key[prev->key_len] = (uint8_t)rnd();
        x->key_len = (uint16_t)(prev->key_len + 1);
    } else if (kind == 4 && i % 50 == 0) {
        memset(x->key, 'z', TS_MAX_KEY_LEN); /* 1024-byte keys */
        x->key[TS_MAX_KEY_LEN - 1 - rnd() % 4] = (uint8_t)rnd();
        x->key_len = TS_MAX_KEY_LEN;
    } else if (kind == 3) {
        x->key_len = (uint16_t)(1 + rnd() % 12); /* raw bytes, NULs and 0xff too */
        for (size_t k = 0; k < x->key_len; k++)
            x->key[k] = (uint8_t)(rnd() % 3 == 0 ? (rnd() % 2 ? 0 : 0xff) : rnd());
    } else if (kind == 2) {
        x->key_len = (uint16_t)snprintf((char *)x->key, 32, "s%u", (unsigned)(rnd() % 500));
    } else {
        x->key_len = (uint16_t)snprintf((char *)x->key, 64, "sensors/imu%02u#%020llu",
                                        (unsigned)(rnd() % 20),
                                        (unsigned long long)(rnd() % 100000));
    }
}

static int64_t make_ts(void)
{
    switch (rnd() % 12) {
    case 0: return INT64_MIN;
    case 1: return INT64_MAX;
    case 2: return -(int64_t)(rnd() % 1000000);
    case 3: return 1000;
    default: return 1700000000000000000ll + (int64_t)(rnd() % 1000000000);
    }
}

/* A fixture of n entries: keys, a segment layout of plain records and
 * frames (in shuffled file order, so frame deltas go both ways), an index
 * built by sst_build from a MemTable and adopted. */
static fx *fx_new(size_t n, uint64_t seed)
{
    fx *f = calloc(1, sizeof(*f));
    rng = seed * 2654435761u + 1;
    f->n = n;
    f->e = calloc(n ? n : 1, sizeof(*f->e));
    /* distinct keys, sorted */
    size_t have = 0;
    while (have < n) {
        for (size_t i = have; i < n; i++)
            make_key(&f->e[i], i, i ? &f->e[i - 1] : NULL);
        qsort(f->e, n, sizeof(*f->e), cmp_xent);
        have = 0;
        for (size_t i = 0; i < n; i++)
            if (!have || cmp_xent(&f->e[have - 1], &f->e[i]))
                f->e[have++] = f->e[i];
    }
    /* where each record lives */
    unit *u = calloc(n + 1, sizeof(*u));
    size_t n_u = 0, open = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        xent *x = &f->e[i];
        int r = (int)(rnd() % 6);
        x->ts = make_ts();
        if (r < 2) {
            x->unit = (int)n_u;
            x->hdr_len = FMT_REC_FIXED_LEN + 8 * (uint32_t)(rnd() % 20);
            u[n_u++] = (unit){.len = x->hdr_len + 8 * (uint32_t)(rnd() % 600)};
            x->dtype = (uint8_t)(1 + rnd() % 15);
            continue;
        }
        size_t k;
        if (r < 4 && open != SIZE_MAX)
            k = open;                       /* the next record of the open frame */
        else if (r == 4 && n_u && u[rnd() % n_u].packed)
            k = (size_t)(rnd() % n_u);      /* some earlier frame (maybe) */
        else
            k = SIZE_MAX;
        if (k == SIZE_MAX || !u[k].packed) {
            k = n_u++;
            u[k] = (unit){.packed = 1, .len = rnd() % 8 == 0 ? FMT_FRAME_MAX_LEN
                                                            : 11 + (uint32_t)(rnd() % 5000)};
        }
        open = k;
        x->unit = (int)k;
        x->ord = ++u[k].n_rec;
    }
    /* file order: shuffled */
    size_t *perm = malloc((n_u + 1) * sizeof(*perm));
    for (size_t i = 0; i < n_u; i++)
        perm[i] = i;
    for (size_t i = n_u; i > 1; i--) {
        size_t j = (size_t)(rnd() % i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    uint64_t off = FMT_SEG_HDR_LEN;
    for (size_t i = 0; i < n_u; i++) {
        off += FMT_BATCH_HDR_LEN;
        u[perm[i]].off = off;
        off += fmt_align8(u[perm[i]].len);
    }
    f->index_off = off;
    for (size_t i = 0; i < n; i++) {
        f->e[i].rec_off = u[f->e[i].unit].off;
        f->e[i].rec_len = u[f->e[i].unit].len;
    }
    free(perm);
    free(u);
    /* a MemTable filled in a shuffled order, then sst_build */
    memtable mt;
    mt_init(&mt);
    for (size_t i = 0; i < n; i++) {
        size_t j = (i * 7919) % n; /* 7919 is prime: a permutation unless n is a multiple */
        if (n % 7919 == 0)
            j = i;
        const xent *x = &f->e[j];
        mt_entry v = {.rec_off = x->rec_off, .seq = j + 1, .ts = x->ts, .rec_len = x->rec_len,
                      .hdr_len = x->hdr_len, .ord = x->ord, .dtype = x->dtype};
        assert_int_equal(mt_put(&mt, x->key, x->key_len, &v), 0);
    }
    size_t n_sorted = 0;
    uint32_t *order = mt_sorted(&mt, &n_sorted);
    assert_int_equal(n_sorted, n);
    assert_int_equal(sst_build(&mt, order, n, f->index_off, 7, 1, n + 1, &f->out, &f->out_len), 0);
    free(order);
    mt_free(&mt);
    /* the footer */
    sst_footer ft;
    assert_true(f->out_len >= FMT_FOOTER_LEN + FMT_IDX2_HDR_LEN);
    assert_int_equal(sst_footer_parse(f->out + f->out_len - FMT_FOOTER_LEN, &ft), 0);
    assert_int_equal(ft.version, 2);
    assert_memory_equal(f->out + f->out_len - 8, FMT_SST2_MAGIC, 8);
    assert_true(ft.index_off == f->index_off);
    assert_true(ft.index_len == f->out_len - FMT_FOOTER_LEN);
    assert_int_equal(ft.index_len % FMT_ALIGN, 0);
    assert_int_equal(ft.n_entries, n);
    assert_int_equal(ft.index_crc, crc32c(f->out, (size_t)ft.index_len));
    assert_true(ft.min_seq == 1 && ft.max_seq == n + 1 && ft.file_no == 7);
    /* adopted from an allocation of exactly index_len bytes */
    memset(&f->s, 0, sizeof(f->s));
    f->s.fd = -1;
    f->s.file_no = 7;
    f->s.f = ft;
    f->s.index = malloc(ft.index_len ? ft.index_len : 1);
    memcpy(f->s.index, f->out, (size_t)ft.index_len);
    const char *why = NULL;
    int rc = sst_adopt(&f->s, &why);
    if (rc)
        fail_msg("sst_adopt of a fresh index: %s", why);
    return f;
}

static void fx_free(fx *f)
{
    sst_close(plat_vfs_default(), &f->s);
    free(f->out);
    free(f->e);
    free(f);
}

/* Position of key in the model (first entry >= key). */
static size_t lower_bound(const fx *f, const uint8_t *key, size_t len)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mt_key_cmp(f->e[mid].key, f->e[mid].key_len, key, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void check_entry(const sst_entry *e, const xent *x)
{
    assert_int_equal(e->key_len, x->key_len);
    assert_memory_equal(e->key, x->key, x->key_len);
    assert_true(e->rec_off == x->rec_off);
    assert_int_equal(e->rec_len, x->rec_len);
    assert_int_equal(e->ord, x->ord);
    if (!x->ord) {
        assert_int_equal(e->hdr_len, x->hdr_len);
        assert_int_equal(e->dtype, x->dtype);
    }
}

/* Every lookup for one probe key agrees with the model. */
static void check_probe(fx *f, const uint8_t *key, size_t len)
{
    size_t pos = lower_bound(f, key, len);
    int present = pos < f->n && !mt_key_cmp(f->e[pos].key, f->e[pos].key_len, key, len);
    sst_entry *e = malloc(sizeof(*e));
    sst_iter *it = malloc(sizeof(*it));
    assert_int_equal(sst_find(&f->s, key, len, e), present);
    if (present)
        check_entry(e, &f->e[pos]);
    sst_iter_seek(it, &f->s, key, len);
    assert_int_equal(it->i, pos);
    assert_int_equal(sst_iter_valid(it), pos < f->n);
    if (pos < f->n)
        check_entry(&it->e, &f->e[pos]);
    if (pos + 1 < f->n) { /* the walk goes on from a seek */
        sst_iter_next(it);
        check_entry(&it->e, &f->e[pos + 1]);
    }
    int in = f->n && mt_key_cmp(key, len, f->e[0].key, f->e[0].key_len) >= 0 &&
             mt_key_cmp(key, len, f->e[f->n - 1].key, f->e[f->n - 1].key_len) <= 0;
    assert_int_equal(sst_in_range(&f->s, key, len), in);
    free(e);
    free(it);
}

static void check_fixture(fx *f)
{
    sst *s = &f->s;
    uint32_t n_rs = (uint32_t)((f->n + FMT_IDX2_RESTART - 1) / FMT_IDX2_RESTART);
    assert_int_equal(sst_n_restarts(s), n_rs);
    /* time ranges per block, and overall */
    int64_t all_lo = INT64_MAX, all_hi = INT64_MIN;
    for (uint32_t b = 0; b < n_rs; b++) {
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        size_t first = FMT_IDX2_RESTART * (size_t)b;
        for (size_t i = first; i < f->n && i < first + FMT_IDX2_RESTART; i++) {
            lo = f->e[i].ts < lo ? f->e[i].ts : lo;
            hi = f->e[i].ts > hi ? f->e[i].ts : hi;
        }
        assert_true(s->ts_ranges[2 * b] == lo);
        assert_true(s->ts_ranges[2 * b + 1] == hi);
        all_lo = lo < all_lo ? lo : all_lo;
        all_hi = hi > all_hi ? hi : all_hi;
    }
    if (f->n) {
        assert_true(s->min_ts == all_lo);
        assert_true(s->max_ts == all_hi);
        assert_int_equal(s->first_len, f->e[0].key_len);
        assert_int_equal(s->last_len, f->e[f->n - 1].key_len);
    }
    /* entry_at, and a full walk */
    sst_entry *e = malloc(sizeof(*e));
    sst_iter *it = malloc(sizeof(*it));
    for (size_t i = 0; i < f->n; i++) {
        sst_entry_at(s, (uint32_t)i, e);
        check_entry(e, &f->e[i]);
    }
    size_t k = 0;
    for (sst_iter_seek(it, s, NULL, 0); sst_iter_valid(it); sst_iter_next(it), k++) {
        assert_true(k < f->n);
        assert_int_equal(it->i, k);
        check_entry(&it->e, &f->e[k]);
    }
    assert_int_equal(k, f->n);
    for (uint32_t b = 0; b < n_rs; b++) {
        sst_iter_seek(it, s, NULL, 0);
        sst_iter_block(it, b);
        assert_int_equal(it->i, FMT_IDX2_RESTART * b);
        check_entry(&it->e, &f->e[FMT_IDX2_RESTART * b]);
    }
    free(e);
    free(it);
    /* probes: every key, and keys between, before and after them */
    uint8_t p[TS_MAX_KEY_LEN];
    for (size_t i = 0; i < f->n; i++) {
        const xent *x = &f->e[i];
        check_probe(f, x->key, x->key_len);
        memcpy(p, x->key, x->key_len);
        if (x->key_len < TS_MAX_KEY_LEN) {
            p[x->key_len] = 0; /* just after it */
            check_probe(f, p, x->key_len + 1U);
        }
        if (x->key_len > 1)
            check_probe(f, p, x->key_len - 1U); /* a prefix of it */
        p[x->key_len - 1]--;
        check_probe(f, p, x->key_len); /* just before it (or far) */
        p[x->key_len - 1] += 2;
        check_probe(f, p, x->key_len);
    }
    p[0] = 0;
    check_probe(f, p, 1);
    memset(p, 0xff, sizeof(p));
    check_probe(f, p, 1);
    check_probe(f, p, TS_MAX_KEY_LEN);
    check_probe(f, (const uint8_t *)"sensors/imu10#", 14);
}

static void test_built_index_answers_every_lookup_like_the_model(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 129, 1000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        for (uint64_t seed = 1; seed <= (sizes[i] < 100 ? 6u : 2u); seed++) {
            fx *f = fx_new(sizes[i], seed * 100 + i);
            check_fixture(f);
            fx_free(f);
        }
}

static void test_empty_index_finds_nothing(void **state)
{
    (void)state;
    fx *f = fx_new(0, 5);
    sst_entry e;
    sst_iter it;
    assert_int_equal(f->s.f.n_entries, 0);
    assert_int_equal(f->out_len, FMT_IDX2_HDR_LEN + FMT_FOOTER_LEN);
    assert_int_equal(sst_find(&f->s, (const uint8_t *)"a", 1, &e), 0);
    assert_int_equal(sst_in_range(&f->s, (const uint8_t *)"a", 1), 0);
    sst_iter_seek(&it, &f->s, NULL, 0);
    assert_false(sst_iter_valid(&it));
    assert_int_equal(sst_n_restarts(&f->s), 0);
    fx_free(f);
}

/* Every footer bit flip fails its CRC or magic. */
static void test_every_footer_bit_flip_is_rejected(void **state)
{
    (void)state;
    fx *f = fx_new(20, 9);
    uint8_t *ft = f->out + f->out_len - FMT_FOOTER_LEN;
    sst_footer out;
    for (unsigned i = 0; i < FMT_FOOTER_LEN; i++)
        for (int bit = 0; bit < 8; bit++) {
            ft[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(sst_footer_parse(ft, &out), TS_ECORRUPT);
            ft[i] ^= (uint8_t)(1u << bit);
        }
    assert_int_equal(sst_footer_parse(ft, &out), 0);
    fx_free(f);
}

/* Adopts idx[0..len) (copied to an allocation of exactly len bytes). */
static int adopt(sst *s, const uint8_t *idx, size_t len, uint32_t n_entries, uint64_t index_off,
                 const char **why)
{
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->f = (sst_footer){.index_off = index_off, .index_len = len, .n_entries = n_entries,
                        .version = 2};
    s->index = malloc(len ? len : 1);
    memcpy(s->index, idx, len);
    *why = NULL;
    return sst_adopt(s, why);
}

/* Every bit flip of an index is caught by the footer's index CRC; and
 * sst_adopt on the flipped bytes (as a writer bug would hand it) either
 * refuses them or yields an index whose every entry decodes in bounds and
 * is found again by key. */
static void test_every_index_bit_flip_is_caught_by_the_crc_and_never_misread(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 17, 40};
    for (size_t z = 0; z < 3; z++) {
        fx *f = fx_new(sizes[z], 40 + z);
        size_t len = (size_t)f->s.f.index_len;
        uint8_t *c = malloc(len);
        size_t refused = 0, total = 0;
        sst_entry *e = malloc(sizeof(*e));
        sst_iter *it = malloc(sizeof(*it));
        for (size_t i = 0; i < len; i++)
            for (int bit = 0; bit < 8; bit++, total++) {
                sst t;
                const char *why;
                memcpy(c, f->out, len);
                c[i] ^= (uint8_t)(1u << bit);
                assert_int_not_equal(crc32c(c, len), f->s.f.index_crc);
                int rc = adopt(&t, c, len, (uint32_t)f->n, f->index_off, &why);
                assert_true(rc == 0 || rc == TS_ECORRUPT);
                if (rc) {
                    assert_non_null(why);
                    refused++;
                } else {
                    size_t k = 0;
                    for (sst_iter_seek(it, &t, NULL, 0); sst_iter_valid(it); sst_iter_next(it)) {
                        assert_true(it->e.key_len >= 1 && it->e.key_len <= TS_MAX_KEY_LEN);
                        if (it->e.ord)
                            assert_true(it->e.rec_off + it->e.rec_len <= f->index_off);
                        else
                            assert_true(it->e.rec_off + it->e.rec_len <= f->index_off &&
                                        it->e.hdr_len >= FMT_REC_FIXED_LEN);
                        size_t kl = it->e.key_len;
                        uint8_t kk[TS_MAX_KEY_LEN];
                        memcpy(kk, it->e.key, kl);
                        assert_int_equal(sst_find(&t, kk, kl, e), 1);
                        k++;
                    }
                    assert_int_equal(k, f->n);
                }
                sst_close(plat_vfs_default(), &t);
            }
        /* Some flips break a structural check on their own (most only
         * change a key byte or an offset: for those the CRC is the guard). */
        assert_true(refused > 0 && refused < total);
        free(e);
        free(it);
        free(c);
        fx_free(f);
    }
}

/* ---- hand-built indexes ----------------------------------------------- */

typedef struct xb {
    uint8_t ent[1 << 17];
    size_t ent_len;
    uint32_t n;
    uint8_t rs[4 * 1024];
    size_t rs_len;
    uint8_t tsv[1 << 14];
    size_t ts_len;
    int64_t pmin;
    uint8_t fr[FMT_IDX2_FRAME_LEN * 1024];
    uint32_t n_fr;
    uint8_t pk[TS_MAX_KEY_LEN];
    size_t pk_len;
    uint64_t pframe;
    uint32_t pord;
} xb;

static void xb_v(uint8_t *buf, size_t *len, uint64_t v)
{
    *len = (size_t)(fmt_put_varint(buf + *len, v) - buf);
}

/* Starts an entry whose key part is given raw: a = unshared << 1 | same_len. */
static void xb_key_raw(xb *x, uint64_t a, uint64_t shared, const void *bytes, size_t n)
{
    if (x->n % FMT_IDX2_RESTART == 0) {
        put32(x->rs + x->rs_len, (uint32_t)x->ent_len);
        x->rs_len += 4;
        x->pk_len = 0;
        x->pframe = 0;
        x->pord = 0;
    }
    x->n++;
    xb_v(x->ent, &x->ent_len, a);
    if (!(a & 1))
        xb_v(x->ent, &x->ent_len, shared);
    memcpy(x->ent + x->ent_len, bytes, n);
    x->ent_len += n;
}

/* Starts an entry for key, coded against the previous one as sst_build does. */
static void xb_key(xb *x, const void *key, size_t len)
{
    if (x->n % FMT_IDX2_RESTART == 0)
        x->pk_len = 0;
    size_t shared = 0;
    const uint8_t *k = key;
    while (shared < x->pk_len && shared < len && x->pk[shared] == k[shared])
        shared++;
    int same_len = x->pk_len == len;
    xb_key_raw(x, (uint64_t)(len - shared) << 1 | (uint64_t)same_len, shared, k + shared,
               len - shared);
    memcpy(x->pk, key, len);
    x->pk_len = len;
}

static void xb_plain(xb *x, uint64_t hdr, uint64_t off, uint64_t len, uint8_t dt)
{
    xb_v(x->ent, &x->ent_len, hdr << 1);
    xb_v(x->ent, &x->ent_len, off);
    xb_v(x->ent, &x->ent_len, len);
    x->ent[x->ent_len++] = dt;
    x->pord = 0;
}

static void xb_packed(xb *x, uint64_t ord, int64_t dframe)
{
    xb_v(x->ent, &x->ent_len, ord << 1 | 1);
    xb_v(x->ent, &x->ent_len, fmt_zigzag(dframe));
}

static void xb_cont(xb *x)
{
    xb_v(x->ent, &x->ent_len, 1);
}

/* A packed entry for frame number fno, coded as sst_build does. */
static void xb_packed_auto(xb *x, uint64_t fno, uint32_t ord)
{
    if (x->pord && fno == x->pframe && ord == x->pord + 1)
        xb_cont(x);
    else
        xb_packed(x, ord, (int64_t)(fno - x->pframe));
    x->pframe = fno;
    x->pord = ord;
}

static void xb_time(xb *x, int64_t lo, int64_t hi)
{
    xb_v(x->tsv, &x->ts_len, fmt_zigzag((int64_t)((uint64_t)lo - (uint64_t)x->pmin)));
    xb_v(x->tsv, &x->ts_len, (uint64_t)hi - (uint64_t)lo);
    x->pmin = lo;
}

static void xb_frame(xb *x, uint64_t off, uint32_t len)
{
    put64(x->fr + FMT_IDX2_FRAME_LEN * x->n_fr, off);
    put32(x->fr + FMT_IDX2_FRAME_LEN * x->n_fr + 8, len);
    x->n_fr++;
}

/* The index: header, entries, restarts, times, frames, zero pad to 8. */
static uint8_t *xb_finish(xb *x, size_t *len)
{
    size_t raw = FMT_IDX2_HDR_LEN + x->ent_len + x->rs_len + x->ts_len +
                 FMT_IDX2_FRAME_LEN * (size_t)x->n_fr;
    uint8_t *b = calloc(1, fmt_align8(raw) + 64), *p = b;
    put32(p, x->n);
    put32(p + 4, x->n_fr);
    put32(p + 8, (uint32_t)x->ent_len);
    put32(p + 12, (uint32_t)x->ts_len);
    p += FMT_IDX2_HDR_LEN;
    memcpy(p, x->ent, x->ent_len), p += x->ent_len;
    memcpy(p, x->rs, x->rs_len), p += x->rs_len;
    memcpy(p, x->tsv, x->ts_len), p += x->ts_len;
    memcpy(p, x->fr, FMT_IDX2_FRAME_LEN * (size_t)x->n_fr);
    *len = (size_t)fmt_align8(raw);
    return b;
}

/* Rebuilds a fixture's index by hand from the model, following FORMAT.md's
 * rules: sst_build must produce exactly these bytes. */
static void test_sst_build_writes_exactly_the_documented_layout(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 16, 17, 64, 65, 100, 1000};
    for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
        fx *f = fx_new(sizes[z], 77 + z);
        xb *x = calloc(1, sizeof(*x));
        /* frame table: the distinct frame offsets, ascending */
        uint64_t *offs = malloc((f->n + 1) * sizeof(*offs));
        uint32_t *lens = malloc((f->n + 1) * sizeof(*lens));
        size_t n_fr = 0;
        for (size_t i = 0; i < f->n; i++) {
            if (!f->e[i].ord)
                continue;
            size_t j = 0;
            while (j < n_fr && offs[j] != f->e[i].rec_off)
                j++;
            if (j == n_fr) {
                offs[n_fr] = f->e[i].rec_off;
                lens[n_fr++] = f->e[i].rec_len;
            }
        }
        for (size_t i = 1; i < n_fr; i++) /* insertion sort */
            for (size_t j = i; j > 0 && offs[j - 1] > offs[j]; j--) {
                uint64_t t = offs[j];
                offs[j] = offs[j - 1], offs[j - 1] = t;
                uint32_t l = lens[j];
                lens[j] = lens[j - 1], lens[j - 1] = l;
            }
        for (size_t i = 0; i < n_fr; i++)
            xb_frame(x, offs[i], lens[i]);
        for (size_t i = 0; i < f->n; i++) {
            const xent *e = &f->e[i];
            xb_key(x, e->key, e->key_len);
            if (e->ord) {
                size_t fno = 0;
                while (offs[fno] != e->rec_off)
                    fno++;
                xb_packed_auto(x, fno, e->ord);
            } else {
                xb_plain(x, e->hdr_len, e->rec_off, e->rec_len, e->dtype);
            }
            if (i % FMT_IDX2_RESTART == FMT_IDX2_RESTART - 1 || i + 1 == f->n) {
                int64_t lo = INT64_MAX, hi = INT64_MIN;
                for (size_t k = i - i % FMT_IDX2_RESTART; k <= i; k++) {
                    lo = f->e[k].ts < lo ? f->e[k].ts : lo;
                    hi = f->e[k].ts > hi ? f->e[k].ts : hi;
                }
                xb_time(x, lo, hi);
            }
        }
        size_t len;
        uint8_t *b = xb_finish(x, &len);
        assert_int_equal(len, f->s.f.index_len);
        assert_memory_equal(b, f->out, len);
        free(b);
        free(offs);
        free(lens);
        free(x);
        fx_free(f);
    }
}

/* A small valid index: FMT_IDX2_RESTART + 4 entries (two restart blocks),
 * plain and packed (two frames), each entry keyed "key%03d". The knobs
 * break one thing. */
#define KN ((int)FMT_IDX2_RESTART + 4)
typedef struct knobs {
    int restart_shift;      /* added to the second restart offset */
    int swap_keys;          /* entries 4 and 5 swap keys */
    int dup_key;            /* entry 5 repeats entry 4's key */
    int frame_ref;          /* entry 6 refers to frame 2 (of 2) */
    int frame_neg;          /* entry 6 refers to frame -1 */
    int cont_after_plain;   /* entry 3 (after a plain entry) continues */
    int cont_at_restart;    /* the second block's first entry continues */
    int cut_entries;        /* header ent_len cut by this many bytes */
    int extra_entry_bytes;  /* bytes after the last entry */
    int pad_byte;           /* a nonzero padding byte */
    int ts_extra;           /* one more time-table varint */
    int ts_short;           /* the last block's range missing */
    int ts_overflow;        /* block 1's range passes INT64_MAX */
    int len_extra;          /* 8 more bytes of index than the tables */
    int count_off;          /* footer n_entries off by one */
    int frame_order;        /* frame table out of order */
    int frame_overlap;      /* the second frame starts inside the first */
    int frame_outside;      /* the second frame ends past index_off */
    int frame_too_long;     /* a frame longer than FMT_FRAME_MAX_LEN */
    int frame_low;          /* a frame inside the segment/batch header */
    int plain_hdr_short;    /* a plain entry's header under 40 bytes */
    int plain_len_short;    /* rec_len < hdr_len */
    int plain_off_low;      /* a record inside the segment header */
    int plain_outside;      /* a record ending past index_off */
    int key_empty;          /* entry 2's key is empty */
    int key_long;           /* entry 2's key is 1025 bytes */
    int shared_past;        /* entry 2 shares more than entry 1's key */
    int same_len_past;      /* entry 2: same_len with more unshared bytes */
    int ord_huge;           /* entry 6's ord over UINT32_MAX */
    int ord_wrap;           /* entry 6's ord UINT32_MAX, entry 7 continues */
} knobs;

#define IDX_OFF 100000u

static uint8_t *knob_index(const knobs *k, size_t *len, uint32_t *n)
{
    xb *x = calloc(1, sizeof(*x));
    char key[TS_MAX_KEY_LEN + 2];
    xb_frame(x, k->frame_low ? 40 : 1000, 500);
    if (k->frame_order)
        xb_frame(x, 900, 50);
    else if (k->frame_overlap)
        xb_frame(x, 1400, 300);
    else if (k->frame_outside)
        xb_frame(x, IDX_OFF - 100, 108);
    else if (k->frame_too_long)
        xb_frame(x, 2000, FMT_FRAME_MAX_LEN + 1);
    else
        xb_frame(x, 2000, 700);
    for (int i = 0; i < KN; i++) {
        int ki = i;
        if (k->swap_keys && (i == 4 || i == 5))
            ki = 9 - i;
        if (k->dup_key && i == 5)
            ki = 4;
        snprintf(key, sizeof(key), "key%03d", ki);
        if (i == 2 && k->key_empty) {
            xb_key_raw(x, 0, 0, "", 0);
            memcpy(x->pk, "", 0), x->pk_len = 0;
        } else if (i == 2 && k->key_long) {
            memset(key, 'z', TS_MAX_KEY_LEN + 1);
            xb_key_raw(x, (uint64_t)(TS_MAX_KEY_LEN + 1) << 1, 0, key, TS_MAX_KEY_LEN + 1);
        } else if (i == 2 && k->shared_past) {
            xb_key_raw(x, 1 << 1, 7, "x", 1);
        } else if (i == 2 && k->same_len_past) {
            xb_key_raw(x, 7 << 1 | 1, 0, "key002x", 7);
        } else {
            xb_key(x, key, strlen(key));
        }
        /* entries 0-2 plain, 3-9 frame 0 ords 1.., 10-19 frame 1 */
        if (i < 3) {
            uint64_t hdr = k->plain_hdr_short && i == 1 ? 32 : 48;
            uint64_t rl = k->plain_len_short && i == 1 ? 40 : 64;
            uint64_t off = k->plain_off_low && i == 1 ? 24 : 3000 + 100 * (uint64_t)i;
            if (k->plain_outside && i == 1)
                off = IDX_OFF - 32;
            xb_plain(x, hdr, off, rl, TS_F32);
        } else if (i == 3 && k->cont_after_plain) {
            xb_cont(x);
        } else if (i == KN - 4 && k->cont_at_restart) {
            xb_cont(x);
        } else if (i == 6 && k->frame_ref) {
            xb_packed(x, 4, 2 - (int64_t)x->pframe);
        } else if (i == 6 && k->frame_neg) {
            xb_packed(x, 4, -1 - (int64_t)x->pframe);
        } else if (i == 6 && k->ord_huge) {
            xb_packed(x, (uint64_t)UINT32_MAX + 1, 0);
        } else if (i == 6 && k->ord_wrap) {
            xb_packed(x, UINT32_MAX, 0);
            x->pord = UINT32_MAX;
        } else if (i == 7 && k->ord_wrap) {
            xb_cont(x);
        } else if (i < 10) {
            xb_packed_auto(x, 0, (uint32_t)(i - 2));
        } else {
            xb_packed_auto(x, 1, (uint32_t)(i - 9));
        }
    }
    xb_time(x, -50, 70);
    if (k->ts_overflow)
        xb_time(x, INT64_MAX - 5, INT64_MAX - 2), x->ts_len--, xb_v(x->tsv, &x->ts_len, 6);
    else if (!k->ts_short)
        xb_time(x, INT64_MIN, INT64_MAX);
    if (k->ts_extra)
        xb_v(x->tsv, &x->ts_len, 0);
    for (int i = 0; i < k->extra_entry_bytes; i++)
        x->ent[x->ent_len++] = 0;
    if (k->restart_shift) {
        uint32_t r1 = get32(x->rs + 4);
        put32(x->rs + 4, r1 + (uint32_t)k->restart_shift);
    }
    if (k->cut_entries)
        x->ent_len -= (size_t)k->cut_entries; /* the last entries cut short */
    uint8_t *b = xb_finish(x, len);
    if (k->pad_byte) {
        size_t tables = FMT_IDX2_HDR_LEN + x->ent_len + x->rs_len + x->ts_len +
                        FMT_IDX2_FRAME_LEN * (size_t)x->n_fr;
        if (tables == *len)
            *len += 8;
        b[*len - 1] = 1;
    }
    if (k->len_extra)
        *len += 8;
    *n = x->n + (k->count_off ? 1 : 0);
    free(x);
    return b;
}

/* Adopts the knob index; returns the reason it was refused, or NULL. */
static const char *knob_adopt(const knobs *k)
{
    static char why_copy[128];
    size_t len;
    uint32_t n;
    uint8_t *b = knob_index(k, &len, &n);
    sst s;
    const char *why = NULL;
    int rc = adopt(&s, b, len, n, IDX_OFF, &why);
    assert_true(rc == 0 || rc == TS_ECORRUPT);
    snprintf(why_copy, sizeof(why_copy), "%s", rc ? why : "");
    if (!rc) {
        /* accepted: the lookups agree with what was built */
        sst_entry e;
        assert_int_equal(sst_find(&s, (const uint8_t *)"key005", 6, &e), 1);
        assert_int_equal(sst_find(&s, (const uint8_t *)"key017", 6, &e), 1);
        assert_int_equal(e.ord, 8);
        assert_true(e.rec_off == 2000);
    }
    sst_close(plat_vfs_default(), &s);
    free(b);
    return rc ? why_copy : NULL;
}

#define REFUSED(field, words)                                                      \
    do {                                                                           \
        knobs k_ = {0};                                                            \
        k_.field = 1;                                                              \
        const char *w_ = knob_adopt(&k_);                                          \
        if (!w_)                                                                   \
            fail_msg("index with " #field " accepted");                            \
        else if (!strstr(w_, words))                                               \
            fail_msg("index with " #field ": refused for '%s', not '%s'", w_, words); \
    } while (0)

static void test_hand_built_index_is_accepted_and_reads_back(void **state)
{
    (void)state;
    knobs k = {0};
    assert_null(knob_adopt(&k));
    size_t len;
    uint32_t n;
    uint8_t *b = knob_index(&k, &len, &n);
    sst s;
    const char *why;
    sst_entry e;
    assert_int_equal(adopt(&s, b, len, n, IDX_OFF, &why), 0);
    assert_true(s.ts_ranges[0] == -50 && s.ts_ranges[1] == 70);
    assert_true(s.ts_ranges[2] == INT64_MIN && s.ts_ranges[3] == INT64_MAX);
    assert_int_equal(sst_find(&s, (const uint8_t *)"key001", 6, &e), 1);
    assert_int_equal(e.ord, 0);
    assert_int_equal(e.hdr_len, 48);
    assert_true(e.rec_off == 3100);
    assert_int_equal(sst_find(&s, (const uint8_t *)"key009", 6, &e), 1);
    assert_int_equal(e.ord, 7);
    assert_true(e.rec_off == 1000 && e.rec_len == 500);
    sst_close(plat_vfs_default(), &s);
    free(b);
}

static void test_check_v2_refuses_a_misplaced_restart(void **state)
{
    (void)state;
    knobs k = {0};
    for (int shift = -3; shift <= 3; shift++) {
        if (!shift)
            continue;
        k.restart_shift = shift;
        const char *w = knob_adopt(&k);
        assert_non_null(w);
    }
    REFUSED(restart_shift, "restart");
}

static void test_check_v2_refuses_keys_not_strictly_ascending(void **state)
{
    (void)state;
    REFUSED(swap_keys, "ascending");
    REFUSED(dup_key, "ascending");
}

static void test_check_v2_refuses_a_frame_reference_out_of_range(void **state)
{
    (void)state;
    REFUSED(frame_ref, "frame");
    REFUSED(frame_neg, "frame");
    REFUSED(cont_after_plain, "packed");
    REFUSED(cont_at_restart, "packed");
    REFUSED(ord_huge, "");
}

/* An ord of UINT32_MAX followed by a "next record" entry must not wrap to
 * ord 0, which would make a packed entry read as a plain record with a
 * zero-length header. */
static void test_check_v2_refuses_an_ord_that_wraps(void **state)
{
    (void)state;
    REFUSED(ord_wrap, "");
}

static void test_check_v2_refuses_truncated_or_overlong_entries(void **state)
{
    (void)state;
    for (int cut = 1; cut <= 8; cut++) {
        knobs k = {.cut_entries = cut};
        assert_non_null(knob_adopt(&k));
    }
    REFUSED(extra_entry_bytes, "longer than their count");
    REFUSED(count_off, "count");
}

static void test_check_v2_refuses_nonzero_padding_and_a_length_off_the_tables(void **state)
{
    (void)state;
    REFUSED(pad_byte, "padding");
    REFUSED(len_extra, "length");
}

static void test_check_v2_refuses_a_time_table_too_long_too_short_or_overflowing(void **state)
{
    (void)state;
    REFUSED(ts_extra, "time table");
    REFUSED(ts_short, "time table");
    REFUSED(ts_overflow, "time table");
}

static void test_check_v2_refuses_a_bad_frame_table(void **state)
{
    (void)state;
    REFUSED(frame_order, "frame table");
    REFUSED(frame_overlap, "frame table");
    REFUSED(frame_outside, "frame table");
    REFUSED(frame_too_long, "frame table");
    REFUSED(frame_low, "frame table");
}

static void test_check_v2_refuses_plain_entries_outside_the_record_area(void **state)
{
    (void)state;
    REFUSED(plain_hdr_short, "record area");
    REFUSED(plain_len_short, "record area");
    REFUSED(plain_off_low, "record area");
    REFUSED(plain_outside, "record area");
}

static void test_check_v2_refuses_keys_out_of_bounds(void **state)
{
    (void)state;
    REFUSED(key_empty, "key");
    REFUSED(key_long, "key");
    REFUSED(shared_past, "key");
    REFUSED(same_len_past, "key");
}

/* Every length between a valid index's tables and its end: refused unless
 * it is the real one (the header's table lengths fix it to within 7). */
static void test_check_v2_refuses_every_other_index_length(void **state)
{
    (void)state;
    knobs k = {0};
    size_t len;
    uint32_t n;
    uint8_t *b = knob_index(&k, &len, &n);
    size_t tables = FMT_IDX2_HDR_LEN + get32(b + 8) + 4 * 2 + get32(b + 12) +
                    FMT_IDX2_FRAME_LEN * (size_t)get32(b + 4);
    assert_true(len - tables < 8);
    for (size_t l = FMT_IDX2_HDR_LEN; l < len + 32; l++) {
        uint8_t *c = calloc(1, l);
        memcpy(c, b, l < len ? l : len);
        sst s;
        const char *why;
        int rc = adopt(&s, c, l, n, IDX_OFF, &why);
        /* the tables fix the length to within the 7 bytes of padding */
        assert_int_equal(rc, l >= tables && l < tables + 8 ? 0 : TS_ECORRUPT);
        sst_close(plat_vfs_default(), &s);
        free(c);
    }
    free(b);
}

/* Replaces sst_000000's index with one entry for key whose plain-record
 * fields are hdr_len and rec_len (rec_off 64: the first record of the
 * first batch), CRCs valid: an index that disagrees with its record. */
static void forge_plain_index(const char *dir, const uint8_t *key, size_t key_len,
                              uint32_t hdr_len, uint32_t rec_len)
{
    char path[4096];
    uint8_t ft[64];
    sst_footer f;
    memtable mt;
    uint8_t *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/sst_000000.sst", dir);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    long size = tu_file_size(path);
    assert_int_equal(pread(fd, ft, 64, size - 64), 64);
    assert_int_equal(sst_footer_parse(ft, &f), 0);
    mt_init(&mt);
    mt_entry e = {.rec_off = 64, .seq = f.min_seq, .ts = 5, .rec_len = rec_len,
                  .hdr_len = hdr_len, .dtype = TS_F32};
    assert_int_equal(mt_put(&mt, key, key_len, &e), 0);
    uint32_t order = 0;
    assert_int_equal(sst_build(&mt, &order, 1, f.index_off, 0, f.min_seq, f.max_seq, &buf, &len),
                     0);
    assert_int_equal(pwrite(fd, buf, len, (off_t)f.index_off), (ssize_t)len);
    assert_int_equal(ftruncate(fd, (off_t)(f.index_off + len)), 0);
    close(fd);
    free(buf);
    mt_free(&mt);
}

/* A plain record's index entry gives its header and record lengths; a
 * load must find them equal to the record's own (CRC-checked) header, or
 * it would return data cut short (index hdr_len too large) or checksum
 * and copy out bytes past what it read (too small). */
static void test_load_refuses_a_plain_index_entry_whose_lengths_differ_from_the_record(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("forge");
    ts_store *st = tu_open(dir, NULL);
    assert_non_null(st);
    uint8_t key[TS_MAX_KEY_LEN];
    char name[TS_MAX_NAME_LEN + 1];
    float data[512]; /* 2 KiB: written plain */
    memset(key, 'k', sizeof(key));
    memset(name, 'n', TS_MAX_NAME_LEN);
    name[TS_MAX_NAME_LEN] = 0;
    for (int i = 0; i < 512; i++)
        data[i] = (float)i;
    ts_tensor t = {.key = key, .key_len = sizeof(key), .name = name, .dtype = TS_F32, .ndim = 1,
                   .shape = {512}, .timestamp_ns = 5, .data = data, .data_len = sizeof(data)};
    uint32_t hlen = 0;
    uint64_t rlen = 0;
    assert_int_equal(rec_size(&t, &hlen, &rlen), 0);
    assert_int_equal(ts_save(st, &t), 0);
    assert_int_equal(ts_flush(st, NULL, 0, NULL), 0);
    ts_close(st);
    st = NULL;
    const uint32_t bad[][2] = {
        {hlen + 8, (uint32_t)rlen},                  /* header said longer: data cut short */
        {FMT_REC_FIXED_LEN, (uint32_t)sizeof(data) + FMT_REC_FIXED_LEN}, /* shorter */
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        ts_tensor *got = NULL;
        forge_plain_index(dir, key, sizeof(key), bad[k][0], bad[k][1]);
        ts_store *s = tu_open(dir, NULL);
        assert_non_null(s);
        int rc = ts_load(s, key, sizeof(key), &got);
        if (rc == 0)
            fail_msg("forged index %zu (hdr_len %u, rec_len %u): load returned %zu data bytes "
                     "of %zu", k, bad[k][0], bad[k][1], got->data_len, sizeof(data));
        assert_int_equal(rc, TS_ECORRUPT);
        ts_close(s);
    }
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_built_index_answers_every_lookup_like_the_model),
        cmocka_unit_test(test_empty_index_finds_nothing),
        cmocka_unit_test(test_every_footer_bit_flip_is_rejected),
        cmocka_unit_test(test_every_index_bit_flip_is_caught_by_the_crc_and_never_misread),
        cmocka_unit_test(test_sst_build_writes_exactly_the_documented_layout),
        cmocka_unit_test(test_hand_built_index_is_accepted_and_reads_back),
        cmocka_unit_test(test_check_v2_refuses_a_misplaced_restart),
        cmocka_unit_test(test_check_v2_refuses_keys_not_strictly_ascending),
        cmocka_unit_test(test_check_v2_refuses_a_frame_reference_out_of_range),
        cmocka_unit_test(test_check_v2_refuses_an_ord_that_wraps),
        cmocka_unit_test(test_check_v2_refuses_truncated_or_overlong_entries),
        cmocka_unit_test(test_check_v2_refuses_nonzero_padding_and_a_length_off_the_tables),
        cmocka_unit_test(test_check_v2_refuses_a_time_table_too_long_too_short_or_overflowing),
        cmocka_unit_test(test_check_v2_refuses_a_bad_frame_table),
        cmocka_unit_test(test_check_v2_refuses_plain_entries_outside_the_record_area),
        cmocka_unit_test(test_check_v2_refuses_keys_out_of_bounds),
        cmocka_unit_test(test_check_v2_refuses_every_other_index_length),
        cmocka_unit_test(test_load_refuses_a_plain_index_entry_whose_lengths_differ_from_the_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
