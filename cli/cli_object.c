/*
 * cli_object.c -- ls, get and verify on a snapshot object (see
 * cli_object.h).
 *
 * One walk serves all three: members come from objread, each SST goes
 * through ts_sst_stream with a visitor that is the command's (collect the
 * listing, keep the newest version of one key, or nothing), MANIFEST and
 * MANIFEST.json are read whole (bounded), and at the end the members are
 * checked against both. What a visitor is shown counts only once its batch
 * verified (sst_stream.h): until then it waits in `pend` (ls) or `cand`
 * (get). The object is read with stdio: a pipe (`-`) works as well as a
 * file, and nothing seeks.
 */
#include "cli_object.h"

#include "embeddb/objread.h"
#include "embeddb/sst_stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define META_MAX (16u << 20) /* MANIFEST and MANIFEST.json are read whole */

enum { MODE_LS, MODE_GET, MODE_VERIFY };

/* One listed tensor: key and name in one allocation after it. */
typedef struct oent {
    ts_entry e;
    uint8_t *key;
    char *name;
} oent;

typedef struct walk {
    int mode;
    const char *path;
    objread *r;
    uint64_t n_bad, n_records;
    size_t n_members;
    int stop;                    /* ls, get: the first damage ends the walk */
    /* the SSTs seen, the MANIFEST's live list, MANIFEST.json */
    uint64_t *ssts, *live;
    size_t n_ssts, cap_ssts, n_live;
    int have_manifest;
    char *json;
    /* ls */
    const uint8_t *prefix;
    size_t plen;
    oent *ents, *pend;
    size_t n_ents, cap_ents, n_pend, cap_pend, n_compact;
    /* get */
    const uint8_t *key;
    size_t klen;
    ts_tensor *cand, *best;      /* one allocation each (ts_tensor_free) */
    int cur_is_cand;             /* the record being shown is cand */
    size_t cand_have;
} walk;

static void damage(walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void damage(walk *w, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    w->n_bad++;
    if (w->mode == MODE_VERIFY) {
        printf("damaged: %s\n", msg);
    } else {
        fprintf(stderr, "embeddb: %s: damaged: %s\n", w->path, msg);
        w->stop = 1;
    }
}

static void report_cb(void *ctx, const char *msg)
{
    damage(ctx, "%s", msg);
}

int cli_object_is(const char *path)
{
    struct stat st;
    return !strcmp(path, "-") || stat(path, &st) != 0 || !S_ISDIR(st.st_mode);
}

static int pull_file(void *ctx, uint8_t *buf, size_t len, size_t *got)
{
    FILE *f = ctx;
    *got = fread(buf, 1, len, f);
    return !*got && ferror(f) ? -EIO : 0;
}

static int grow(void **p, size_t *cap, size_t want, size_t elem)
{
    size_t c = *cap ? *cap : 64;
    void *q;
    if (want <= *cap)
        return 0;
    while (c < want)
        c *= 2;
    if (!(q = realloc(*p, c * elem)))
        return TS_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* ---- ls: collect, then key order with the newest version of each key -- */

static int ls_tensor(void *ctx, const ts_entry *e)
{
    walk *w = ctx;
    oent *o;
    size_t nl = strlen(e->name);
    if (e->key_len < w->plen || memcmp(e->key, w->prefix, w->plen))
        return 0;
    if (grow((void **)&w->pend, &w->cap_pend, w->n_pend + 1, sizeof(oent)))
        return TS_ENOMEM;
    o = &w->pend[w->n_pend];
    if (!(o->key = malloc(e->key_len + nl + 1)))
        return TS_ENOMEM;
    w->n_pend++;
    o->e = *e;
    memcpy(o->key, e->key, e->key_len);
    o->name = (char *)o->key + e->key_len;
    memcpy(o->name, e->name, nl + 1);
    o->e.key = o->key;
    o->e.name = o->name;
    return 0;
}

/* Key ascending, then seq descending: the newest version first. */
static int oent_cmp(const void *a, const void *b)
{
    const ts_entry *x = &((const oent *)a)->e, *y = &((const oent *)b)->e;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c || x->key_len != y->key_len)
        return c ? c : x->key_len < y->key_len ? -1 : 1;
    return x->seq > y->seq ? -1 : x->seq < y->seq;
}

/* Sorts the listing and keeps the newest version of each key. */
static void ls_compact(walk *w)
{
    size_t k = 0;
    if (w->n_ents)
        qsort(w->ents, w->n_ents, sizeof(oent), oent_cmp);
    for (size_t i = 0; i < w->n_ents; i++) {
        if (k && w->ents[k - 1].e.key_len == w->ents[i].e.key_len &&
            !memcmp(w->ents[k - 1].e.key, w->ents[i].e.key, w->ents[i].e.key_len)) {
            free(w->ents[i].key);
            continue;
        }
        w->ents[k++] = w->ents[i];
    }
    w->n_ents = w->n_compact = k;
}

static int ls_batch(void *ctx)
{
    walk *w = ctx;
    if (grow((void **)&w->ents, &w->cap_ents, w->n_ents + w->n_pend, sizeof(oent)))
        return TS_ENOMEM;
    if (w->n_pend)
        memcpy(w->ents + w->n_ents, w->pend, w->n_pend * sizeof(oent));
    w->n_ents += w->n_pend;
    w->n_pend = 0;
    /* Overwritten keys do not pile up: compact when the list doubled. */
    if (w->n_ents >= 2 * w->n_compact + 4096)
        ls_compact(w);
    return 0;
}

static void drop_pending(walk *w)
{
    for (size_t i = 0; i < w->n_pend; i++)
        free(w->pend[i].key);
    w->n_pend = 0;
    free(w->cand);
    w->cand = NULL;
    w->cur_is_cand = 0;
}

/* ---- get: the newest version of one key ------------------------------ */

static int get_tensor(void *ctx, const ts_entry *e)
{
    walk *w = ctx;
    size_t nl = strlen(e->name);
    uint8_t *p;
    ts_tensor *t;
    w->cur_is_cand = 0;
    if (e->key_len != w->klen || memcmp(e->key, w->key, w->klen) ||
        (w->best && w->best->seq > e->seq))
        return 0;
    /* data_len is bounded by the SST's size (its record fit in the file). */
    if (!(p = malloc(sizeof(*t) + w->klen + nl + 1 + (size_t)e->data_len)))
        return TS_ENOMEM;
    free(w->cand);
    t = w->cand = (ts_tensor *)p;
    p += sizeof(*t);
    *t = (ts_tensor){.key = p, .key_len = w->klen, .dtype = e->dtype, .ndim = e->ndim,
                     .timestamp_ns = e->timestamp_ns, .data_len = (size_t)e->data_len,
                     .seq = e->seq};
    memcpy(p, w->key, w->klen);
    memcpy(p + w->klen, e->name, nl + 1);
    t->name = (const char *)p + w->klen;
    t->data = p + w->klen + nl + 1;
    memcpy(t->shape, e->shape, sizeof(t->shape));
    w->cand_have = 0;
    w->cur_is_cand = 1;
    return 0;
}

static int get_data(void *ctx, const uint8_t *p, size_t len)
{
    walk *w = ctx;
    if (!w->cur_is_cand || !len)
        return 0;
    if (len > w->cand->data_len - w->cand_have)
        return TS_EOVERFLOW; /* cannot happen: the reader checked the length */
    memcpy((uint8_t *)w->cand->data + w->cand_have, p, len);
    w->cand_have += len;
    return 0;
}

static int get_batch(void *ctx)
{
    walk *w = ctx;
    if (w->cand) {
        free(w->best);
        w->best = w->cand;
        w->cand = NULL;
    }
    w->cur_is_cand = 0;
    return 0;
}

/* ---- the walk -------------------------------------------------------- */

/* The whole current member (at most META_MAX bytes) into *out, NUL after. */
static int read_whole(walk *w, const objread_member *m, char **out)
{
    size_t done = 0, got = 0;
    int rc = 0;
    *out = NULL;
    if (m->size > META_MAX) {
        damage(w, "%s/%s: %" PRIu64 " bytes, more than a %s can be (%u MiB)", m->dir, m->name,
               m->size, m->name, META_MAX >> 20);
        return TS_ECORRUPT;
    }
    if (!(*out = malloc((size_t)m->size + 1)))
        return TS_ENOMEM;
    while (done < m->size && !(rc = objread_read(w->r, (uint8_t *)*out + done,
                                                 (size_t)m->size - done, &got)) && got)
        done += got;
    (*out)[done] = 0;
    return rc;
}

static int sst_number(const char *name, uint64_t *no)
{
    char tail[8];
    unsigned long long v;
    size_t n = strlen(name);
    if (n < 14 || strncmp(name, "sst_", 4) || strcmp(name + n - 4, ".sst") ||
        sscanf(name, "sst_%19llu%7s", &v, tail) != 2 || strcmp(tail, ".sst"))
        return 0;
    for (size_t i = 4; i < n - 4; i++)
        if (name[i] < '0' || name[i] > '9')
            return 0;
    *no = v;
    return 1;
}

static int member(walk *w, const objread_member *m, const ts_sst_visitor *v)
{
    char err[1024], *text = NULL;
    uint64_t no = 0;
    ts_sst_info info;
    int rc = 0;
    if (sst_number(m->name, &no)) {
        for (size_t i = 0; i < w->n_ssts; i++)
            if (w->ssts[i] == no) {
                damage(w, "%s/%s: in the object twice", m->dir, m->name);
                return 0;
            }
        if (grow((void **)&w->ssts, &w->cap_ssts, w->n_ssts + 1, sizeof(uint64_t)))
            return TS_ENOMEM;
        w->ssts[w->n_ssts++] = no;
        rc = ts_sst_stream(objread_read, w->r, m->size, no, v, &info, err, sizeof(err));
        if (rc == TS_ECORRUPT) {
            drop_pending(w);
            damage(w, "%s/%s: %s", m->dir, m->name, err);
            rc = 0;
        } else if (!rc) {
            w->n_records += info.n_records;
        } else if (!objread_error(w->r)[0]) {
            fprintf(stderr, "embeddb: %s: %s/%s: %s\n", w->path, m->dir, m->name, err);
        }
    } else if (!strcmp(m->name, "MANIFEST")) {
        uint64_t *live = NULL;
        size_t n = 0;
        if (!(rc = read_whole(w, m, &text))) {
            if (w->have_manifest) {
                damage(w, "%s/MANIFEST: in the object twice", m->dir);
            } else if (ts_manifest_parse(text, m->size, &live, &n, err, sizeof(err))) {
                damage(w, "%s/MANIFEST: %s", m->dir, err);
            } else {
                w->live = live;
                w->n_live = n;
                w->have_manifest = 1;
            }
        }
    } else if (!strcmp(m->name, "MANIFEST.json")) {
        if (!(rc = read_whole(w, m, &text)) && !w->json) {
            w->json = text;
            text = NULL;
        }
    }
    /* Anything else is reported by the MANIFEST.json check at the end. */
    free(text);
    if (rc == TS_ECORRUPT)
        rc = 0; /* reported */
    if (!rc && !w->stop)
        rc = objread_skip(w->r);
    if (rc && objread_error(w->r)[0]) {
        /* The object itself is damaged (cut, a bad stream): nothing after
         * this point can be read. */
        drop_pending(w);
        damage(w, "%s", objread_error(w->r));
        w->stop = 1;
        rc = 0;
    }
    return rc;
}

/* After the last member: the SSTs are exactly the MANIFEST's, and the
 * members what MANIFEST.json lists. */
static int check_end(walk *w)
{
    int n;
    if (!w->have_manifest)
        damage(w, "no MANIFEST in the object");
    for (size_t i = 0; w->have_manifest && i < w->n_live && !w->stop; i++) {
        size_t j = 0;
        while (j < w->n_ssts && w->ssts[j] != w->live[i])
            j++;
        if (j == w->n_ssts)
            damage(w, "MANIFEST names sst_%06" PRIu64 ".sst, which the object lacks",
                   w->live[i]);
    }
    for (size_t j = 0; w->have_manifest && j < w->n_ssts && !w->stop; j++) {
        size_t i = 0;
        while (i < w->n_live && w->live[i] != w->ssts[j])
            i++;
        if (i == w->n_live)
            damage(w, "sst_%06" PRIu64 ".sst is in the object but not in its MANIFEST",
                   w->ssts[j]);
    }
    if (w->stop)
        return 0;
    if (!w->json) {
        damage(w, "no MANIFEST.json in the object");
        return 0;
    }
    if ((n = objread_check_manifest(w->r, w->json, report_cb, w)) < 0)
        return n;
    return 0;
}

/* Reads the object at w->path with visitor v. 0 (damage counted in
 * n_bad and printed) or an I/O or memory error (printed). */
static int walk_object(walk *w, const ts_sst_visitor *v)
{
    FILE *f = strcmp(w->path, "-") ? fopen(w->path, "rb") : stdin;
    objread_member m;
    int rc = 0;
    if (!f) {
        rc = -errno;
        fprintf(stderr, "embeddb: %s: %s\n", w->path, strerror(errno));
        return rc;
    }
    if (!(w->r = objread_new(pull_file, f))) {
        rc = TS_ENOMEM;
        goto out;
    }
    while (!rc && !w->stop) {
        rc = objread_next(w->r, &m);
        if (rc == 1) {
            rc = check_end(w);
            break;
        }
        if (rc == -EBADMSG) {
            damage(w, "%s", objread_error(w->r));
            rc = 0;
            break;
        }
        if (rc) {
            fprintf(stderr, "embeddb: %s: %s\n", w->path, objread_error(w->r));
            break;
        }
        w->n_members++;
        rc = member(w, &m, v);
    }
    if (rc == TS_ENOMEM)
        fprintf(stderr, "embeddb: %s: out of memory\n", w->path);
out:
    drop_pending(w);
    if (f != stdin)
        fclose(f);
    return rc;
}

static void walk_free(walk *w)
{
    for (size_t i = 0; i < w->n_ents; i++)
        free(w->ents[i].key);
    free(w->ents);
    free(w->pend);
    free(w->ssts);
    free(w->live);
    free(w->json);
    free(w->best);
    objread_free(w->r);
}

int cli_object_scan(const char *path, const uint8_t *prefix, size_t plen, int window,
                    int64_t from, int64_t to, ts_scan_fn fn, void *ctx)
{
    walk w = {.mode = MODE_LS, .path = path, .prefix = prefix, .plen = plen};
    ts_sst_visitor v = {.tensor = ls_tensor, .batch = ls_batch, .ctx = &w};
    int rc = walk_object(&w, &v);
    if (!rc && w.n_bad)
        rc = TS_ECORRUPT;
    if (!rc)
        ls_compact(&w);
    for (size_t i = 0; !rc && i < w.n_ents; i++)
        if (!window || (w.ents[i].e.timestamp_ns >= from && w.ents[i].e.timestamp_ns < to))
            rc = fn(ctx, &w.ents[i].e);
    walk_free(&w);
    return rc;
}

int cli_object_load(const char *path, const uint8_t *key, size_t klen, ts_tensor **out)
{
    walk w = {.mode = MODE_GET, .path = path, .key = key, .klen = klen};
    ts_sst_visitor v = {.tensor = get_tensor, .data = get_data, .batch = get_batch, .ctx = &w};
    int rc = walk_object(&w, &v);
    *out = NULL;
    if (!rc && w.n_bad)
        rc = TS_ECORRUPT;
    else if (!rc && !w.best)
        rc = TS_ENOTFOUND;
    if (!rc) {
        *out = w.best;
        w.best = NULL;
    }
    walk_free(&w);
    return rc;
}

int cli_object_verify(const char *path)
{
    walk w = {.mode = MODE_VERIFY, .path = path};
    int rc = walk_object(&w, NULL);
    if (!rc && w.n_bad) {
        printf("%" PRIu64 " damaged item%s found\n", w.n_bad, w.n_bad == 1 ? "" : "s");
        rc = TS_ECORRUPT;
    } else if (!rc) {
        printf("ok: %s object, %zu files, %" PRIu64 " records checked, every file matches "
               "MANIFEST.json\n", snap_codec_name(objread_codec(w.r)), w.n_members,
               w.n_records);
    }
    walk_free(&w);
    return rc;
}
