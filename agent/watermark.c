/*
 * watermark.c -- the de-duplication table, its record tensor and the
 * durable watermark document (contract in watermark.h, the bytes in
 * agent/CONTROL.md). Pure bookkeeping over memory.
 *
 * The record is text, so `embeddb get` shows it:
 *     embeddb-dedup 1 <n>\n
 *     <id> <through> <used> <bitmap: 256 hex digits, or ->\n     (n lines)
 * The bitmap is WM_WINDOW bits, word 0 first, each word as 16 hex digits.
 */
#include "watermark.h"

#include "embeddb/console.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORDS (WM_WINDOW / 64)
#define MAGIC "embeddb-dedup 1 "

int wm_init(watermark *w, size_t max_pubs, size_t n_topics)
{
    memset(w, 0, sizeof(*w));
    return wm_resize(w, max_pubs, n_topics);
}

void wm_free(watermark *w)
{
    free(w->pubs);
    free(w->work);
    free(w->topics);
    free(w->rec[0].data);
    free(w->rec[1].data);
    memset(w, 0, sizeof(*w));
}

/* Index of the least recently used publisher of t[0..n). */
static size_t oldest(const wm_pub *t, size_t n)
{
    size_t o = 0;
    for (size_t i = 1; i < n; i++)
        if (t[i].used < t[o].used)
            o = i;
    return o;
}

int wm_resize(watermark *w, size_t max_pubs, size_t n_topics)
{
    size_t cap = max_pubs ? max_pubs : 1;
    wm_pub *p = calloc(cap, sizeof(*p)), *k = calloc(cap, sizeof(*k));
    wm_topic *t = calloc(n_topics ? n_topics : 1, sizeof(*t));
    if (!p || !k || !t) {
        free(p);
        free(k);
        free(t);
        return -ENOMEM;
    }
    while (w->n > max_pubs) {
        size_t o = oldest(w->pubs, w->n);
        w->pubs[o] = w->pubs[--w->n];
        w->c.evicted++;
    }
    if (w->n)
        memcpy(p, w->pubs, w->n * sizeof(*p));
    free(w->pubs);
    free(w->work);
    free(w->topics);
    w->pubs = p;
    w->work = k;
    w->topics = t;
    w->max_pubs = max_pubs;
    w->n_topics = n_topics;
    w->n_work = 0;
    return 0;
}

static int id_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == ':' || c == '-';
}

/* Plain decimal (no sign, no leading zero, no space) into *v, at most max. */
static int dec(const char *s, size_t len, uint64_t max, uint64_t *v)
{
    uint64_t x = 0;
    if (!len || len > 20 || (s[0] == '0' && len > 1))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    if (x > max)
        return -1;
    *v = x;
    return 0;
}

int wm_tag_parse(const char *pub, const char *seq, char id[WM_PUB_ID_MAX + 1], uint64_t *out)
{
    if (!pub && !seq)
        return 0;
    if (!pub || !seq)
        return -1;
    size_t n = strlen(pub);
    if (!n || n > WM_PUB_ID_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!id_char((unsigned char)pub[i]))
            return -1;
    if (dec(seq, strlen(seq), UINT64_MAX, out) || !*out)
        return -1;
    memcpy(id, pub, n + 1);
    return 1;
}

int wm_time_parse(const char *s, int64_t *ns)
{
    uint64_t v;
    if (!s || dec(s, strlen(s), INT64_MAX, &v))
        return 0;
    *ns = (int64_t)v;
    return 1;
}

void wm_begin(watermark *w)
{
    if (w->n)
        memcpy(w->work, w->pubs, w->n * sizeof(*w->pubs));
    w->n_work = w->n;
}

static int bit(const wm_pub *p, uint64_t off)
{
    return (int)((p->bits[off / 64] >> (off % 64)) & 1);
}

/* Moves the window up by k ids: bit i becomes bit i - k. */
static void shift(wm_pub *p, uint64_t k)
{
    if (k >= WM_WINDOW) {
        memset(p->bits, 0, sizeof(p->bits));
    } else {
        size_t wsh = (size_t)(k / 64);
        unsigned bsh = (unsigned)(k % 64);
        for (size_t i = 0; i < WORDS; i++) {
            uint64_t lo = i + wsh < WORDS ? p->bits[i + wsh] : 0;
            uint64_t hi = i + wsh + 1 < WORDS ? p->bits[i + wsh + 1] : 0;
            p->bits[i] = bsh ? (lo >> bsh) | (hi << (64 - bsh)) : lo;
        }
    }
    p->through += k;
}

int wm_take(watermark *w, const char *id, uint64_t seq, uint64_t used)
{
    wm_pub *p = NULL;
    if (!w->max_pubs)
        return 0;
    for (size_t i = 0; i < w->n_work && !p; i++)
        if (!strcmp(w->work[i].id, id))
            p = &w->work[i];
    if (!p) {
        /* A publisher id names one sequence from 1 on: a new one starts at 0. */
        if (w->n_work == w->max_pubs) {
            p = &w->work[oldest(w->work, w->n_work)];
            w->c.evicted++;
        } else {
            p = &w->work[w->n_work++];
        }
        memset(p, 0, sizeof(*p));
        snprintf(p->id, sizeof(p->id), "%s", id);
    }
    p->used = used;
    if (seq <= p->through) {
        w->c.duplicates++;
        return 1;
    }
    uint64_t off = seq - p->through - 1;
    if (off >= WM_WINDOW) {
        /* Give up the ids the window passes over that never came. */
        uint64_t k = off - WM_WINDOW + 1, seen = 0;
        for (uint64_t i = 0; i < k && i < WM_WINDOW; i++)
            seen += (uint64_t)bit(p, i);
        w->c.given_up += k - seen;
        shift(p, k);
        off = WM_WINDOW - 1;
    }
    if (bit(p, off)) {
        w->c.duplicates++;
        return 1;
    }
    p->bits[off / 64] |= (uint64_t)1 << (off % 64);
    uint64_t run = 0;
    while (run < WM_WINDOW && bit(p, run))
        run++;
    if (run)
        shift(p, run);
    return 0;
}

const ts_tensor *wm_record(watermark *w, int work, uint64_t key, int64_t now_ns, int *err)
{
    console_buf b = {0};
    const wm_pub *tab = work ? w->work : w->pubs;
    size_t n = work ? w->n_work : w->n;
    struct wm_rec *r = &w->rec[work ? 1 : 0];
    *err = 0;
    if (!n)
        return NULL;
    console_buf_printf(&b, MAGIC "%zu\n", n);
    for (size_t i = 0; i < n; i++) {
        const wm_pub *p = &tab[i];
        int any = 0;
        for (size_t k = 0; k < WORDS && !any; k++)
            any = p->bits[k] != 0;
        console_buf_printf(&b, "%s %" PRIu64 " %" PRIu64 " ", p->id, p->through, p->used);
        for (size_t k = 0; k < WORDS && any; k++)
            console_buf_printf(&b, "%016" PRIx64, p->bits[k]);
        console_buf_printf(&b, "%s\n", any ? "" : "-");
    }
    if (b.oom) {
        free(b.p);
        *err = -ENOMEM;
        return NULL;
    }
    free(r->data);
    r->data = b.p;
    snprintf(r->key, sizeof(r->key), WM_RECORD_PREFIX "%020" PRIu64, key);
    r->t = (ts_tensor){.key = (const uint8_t *)r->key, .key_len = strlen(r->key),
                       .name = WM_RECORD_PREFIX, .dtype = TS_U8, .ndim = 1,
                       .timestamp_ns = now_ns, .data = r->data, .data_len = b.n};
    r->t.shape[0] = b.n;
    return &r->t;
}

void wm_commit(watermark *w)
{
    if (w->n_work)
        memcpy(w->pubs, w->work, w->n_work * sizeof(*w->pubs));
    w->n = w->n_work;
    w->dirty = 1;
}

void wm_topic_durable(watermark *w, size_t i, uint64_t key, int64_t time_ns, int64_t pub_time_ns)
{
    if (i >= w->n_topics)
        return;
    w->topics[i] = (wm_topic){.key = key, .time_ns = time_ns, .pub_time_ns = pub_time_ns};
    w->dirty = 1;
}

/* One field of a record line: [s, e) up to the next space or newline. */
static const char *field(const char *s, const char *end, char stop, size_t *len)
{
    const char *e = s;
    while (e < end && *e != stop)
        e++;
    if (e == end)
        return NULL;
    *len = (size_t)(e - s);
    return e + 1;
}

static int hex64(const char *s, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16;
        if (d == 16)
            return -1;
        x = x << 4 | d;
    }
    *v = x;
    return 0;
}

int wm_load(watermark *w, const void *data, size_t len)
{
    const char *s = data, *end = s + len;
    size_t l, n = 0;
    uint64_t count;
    w->n = 0;
    if (len < strlen(MAGIC) || memcmp(s, MAGIC, strlen(MAGIC)))
        return -EINVAL;
    s += strlen(MAGIC);
    const char *next = field(s, end, '\n', &l);
    if (!next || dec(s, l, WM_PUBLISHERS_MAX, &count))
        return -EINVAL;
    for (s = next; n < count; n++) {
        wm_pub p;
        uint64_t v[2];
        memset(&p, 0, sizeof(p));
        if (!(next = field(s, end, ' ', &l)) || !l || l > WM_PUB_ID_MAX)
            goto bad;
        for (size_t i = 0; i < l; i++)
            if (!id_char((unsigned char)s[i]))
                goto bad;
        memcpy(p.id, s, l);
        s = next;
        for (int k = 0; k < 2; k++) {
            if (!(next = field(s, end, ' ', &l)) || dec(s, l, UINT64_MAX, &v[k]))
                goto bad;
            s = next;
        }
        p.through = v[0];
        p.used = v[1];
        if (!(next = field(s, end, '\n', &l)))
            goto bad;
        if (l == 1 && s[0] == '-') {
            /* empty bitmap */
        } else if (l == WORDS * 16) {
            for (size_t k = 0; k < WORDS; k++)
                if (hex64(s + 16 * k, &p.bits[k]))
                    goto bad;
            if (bit(&p, 0)) /* bit 0 set would have moved `through` */
                goto bad;
        } else {
            goto bad;
        }
        s = next;
        for (size_t i = 0; i < w->n; i++)
            if (!strcmp(w->pubs[i].id, p.id))
                goto bad;
        if (w->n < w->max_pubs) {
            w->pubs[w->n++] = p;
        } else {
            /* Past a smaller cap (SIGHUP, restart) the oldest go. */
            w->c.evicted++;
            size_t o = w->max_pubs ? oldest(w->pubs, w->n) : 0;
            if (w->max_pubs && w->pubs[o].used < p.used)
                w->pubs[o] = p;
        }
    }
    if (s != end)
        goto bad;
    w->dirty = 1;
    return 0;
bad:
    w->n = 0;
    return -EINVAL;
}

int wm_json(const watermark *w, const char *device_id, const char *const *filters,
            int64_t now_ns, char **out, size_t *len)
{
    console_buf b = {0};
    console_buf_printf(&b, "{\"v\":1,\"device_id\":");
    console_buf_json_str(&b, device_id, strlen(device_id));
    console_buf_printf(&b, ",\"time_ns\":%" PRId64 ",\"topics\":[", now_ns);
    for (size_t i = 0, k = 0; i < w->n_topics; i++) {
        const wm_topic *t = &w->topics[i];
        if (!t->key)
            continue;
        console_buf_printf(&b, "%s{\"filter\":", k++ ? "," : "");
        console_buf_json_str(&b, filters[i], strlen(filters[i]));
        console_buf_printf(&b, ",\"key\":%" PRIu64 ",\"time_ns\":%" PRId64, t->key, t->time_ns);
        if (t->pub_time_ns)
            console_buf_printf(&b, ",\"pub_time_ns\":%" PRId64, t->pub_time_ns);
        console_buf_printf(&b, "}");
    }
    console_buf_printf(&b, "],\"publishers\":[");
    for (size_t i = 0; i < w->n; i++) {
        const wm_pub *p = &w->pubs[i];
        uint64_t above = 0;
        for (size_t k = 0; k < WORDS; k++)
            above += (uint64_t)__builtin_popcountll(p->bits[k]);
        /* ids are [A-Za-z0-9._:-]: no escaping needed */
        console_buf_printf(&b, "%s{\"id\":\"%s\",\"through\":%" PRIu64 ",\"above\":%" PRIu64 "}",
                           i ? "," : "", p->id, p->through, above);
    }
    console_buf_printf(&b, "],\"duplicates\":%" PRIu64 ",\"untracked\":%" PRIu64
                       ",\"evicted\":%" PRIu64 ",\"given_up\":%" PRIu64 "}",
                       w->c.duplicates, w->c.untracked, w->c.evicted, w->c.given_up);
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    *len = b.n;
    return 0;
}
