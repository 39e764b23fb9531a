/*
 * snap_meta.c -- MANIFEST.json and STATE, written and read back (contract
 * in snap_meta.h, every byte in snapshot/FORMAT.md). The JSON is written
 * with a fixed layout -- one member per line, one file per line in "files"
 * -- so that the reader can stay a line parser with bounded fields instead
 * of a general JSON parser; readers elsewhere (Python, jq) see plain JSON.
 */
#include "snap_meta.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void snap_text_add(snap_text *b, const char *fmt, ...)
{
    va_list ap;
    for (int tries = 0; tries < 2 && !b->oom; tries++) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

void snap_text_free(snap_text *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* A JSON string of arbitrary bytes: quotes and backslashes escaped, bytes
 * below 0x20 and from 0x7f up as \u00XX, so the file is ASCII and a key's
 * bytes can be told back exactly. */
static void text_str(snap_text *b, const uint8_t *s, size_t n)
{
    snap_text_add(b, "\"");
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            snap_text_add(b, "\\%c", s[i]);
        else if (s[i] < 0x20 || s[i] >= 0x7f)
            snap_text_add(b, "\\u%04x", s[i]);
        else
            snap_text_add(b, "%c", s[i]);
    }
    snap_text_add(b, "\"");
}

static void fmt_utc(int64_t ns, char out[32])
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void snap_manifest_json(const snap_manifest *m, snap_text *b)
{
    char t0[32], t1[32], created[32];
    fmt_utc(m->t_min, t0);
    fmt_utc(m->t_max, t1);
    fmt_utc(m->created_ns, created);
    snap_text_add(b, "{\n  \"format\": \"embeddb-snapshot/1\",\n  \"device_id\": ");
    text_str(b, (const uint8_t *)m->device_id, strlen(m->device_id));
    snap_text_add(b, ",\n  \"snapshot\": \"%s\",\n  \"created\": \"%s\",\n  \"created_ns\": %" PRId64
                  ",\n  \"tensors\": %" PRIu64 ",\n  \"seq_range\": [%" PRIu64 ", %" PRIu64 "]"
                  ",\n  \"time_range_ns\": [%" PRId64 ", %" PRId64 "]"
                  ",\n  \"time_range\": [\"%s\", \"%s\"],\n  \"key_range\": [",
                  m->name, created, m->created_ns, m->tensors, m->seq_min, m->seq_max, m->t_min,
                  m->t_max, t0, t1);
    text_str(b, m->k_min ? m->k_min : (const uint8_t *)"", m->k_min_len);
    snap_text_add(b, ", ");
    text_str(b, m->k_max ? m->k_max : (const uint8_t *)"", m->k_max_len);
    snap_text_add(b, "],\n  \"topics\": {");
    for (size_t i = 0; i < m->n_topics; i++) {
        snap_text_add(b, "%s\n    ", i ? "," : "");
        text_str(b, (const uint8_t *)m->topics[i].name, strlen(m->topics[i].name));
        snap_text_add(b, ": %" PRIu64, m->topics[i].n);
    }
    snap_text_add(b, "%s},\n", m->n_topics ? "\n  " : "");
    if (m->capture) {
        const snap_capture_meta *c = m->capture;
        snap_text_add(b, "  \"capture\": {\"label\": \"%s\", \"trigger_ns\": %" PRId64
                      ", \"window_ns\": [%" PRId64 ", %" PRId64 "], \"filters\": [",
                      c->label, c->trigger_ns, c->from_ns, c->to_ns);
        for (size_t i = 0; i < c->n_filters; i++) {
            snap_text_add(b, "%s", i ? ", " : "");
            text_str(b, (const uint8_t *)c->filters[i], strlen(c->filters[i]));
        }
        snap_text_add(b, "]},\n");
    }
    snap_text_add(b, "  \"files\": [\n");
    for (size_t i = 0; i < m->n_files; i++)
        snap_text_add(b, "    {\"name\": \"%s\", \"bytes\": %" PRIu64 ", \"sha256\": \"%s\"}%s\n",
                      m->files[i].name, m->files[i].bytes, m->files[i].sha256,
                      i + 1 < m->n_files ? "," : "");
    snap_text_add(b, "  ]\n}\n");
}

int snap_parse_file_line(const char *line, char *name, size_t name_len, uint64_t *bytes,
                         char sha256[65])
{
    char nm[64], sha[65];
    unsigned long long b;
    int used = 0;
    while (*line == ' ')
        line++;
    if (sscanf(line, "{\"name\": \"%63[A-Za-z0-9_.]\", \"bytes\": %llu, \"sha256\": \"%64[0-9a-f]\"}%n",
               nm, &b, sha, &used) != 3 || strlen(sha) != 64 || !used)
        return 0;
    if (line[used] && line[used] != ',' && line[used] != '\n')
        return 0;
    if (strlen(nm) >= name_len)
        return 0;
    snprintf(name, name_len, "%s", nm);
    memcpy(sha256, sha, 65);
    *bytes = b;
    return 1;
}

int snap_manifest_files(const char *text, snap_file **out, size_t *n)
{
    snap_file *v = NULL;
    size_t cap = 0;
    int rc = 0;
    *out = NULL;
    *n = 0;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        snap_file f;
        if (snap_parse_file_line(line, f.name, sizeof(f.name), &f.bytes, f.sha256)) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 16;
                snap_file *q = realloc(v, cap * sizeof(*v));
                if (!q) {
                    rc = -ENOMEM;
                    break;
                }
                v = q;
            }
            v[(*n)++] = f;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (!rc && !*n)
        rc = TS_ECORRUPT;
    if (rc) {
        free(v);
        *n = 0;
        return rc;
    }
    *out = v;
    return 0;
}

int snap_manifest_seq_range(const char *text, uint64_t *lo, uint64_t *hi)
{
    unsigned long long a, b;
    const char *r = strstr(text, "\n  \"seq_range\": [");
    if (!r || sscanf(r, "\n  \"seq_range\": [%llu, %llu]", &a, &b) != 2)
        return 0;
    *lo = a;
    *hi = b;
    return 1;
}

void snap_state_text(const snap_info *si, snap_text *b)
{
    char error[sizeof(si->error)];
    snprintf(error, sizeof(error), "%s", si->error);
    for (char *c = error; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    snap_text_add(b, "state=%s\ntensors=%" PRIu64 "\ntar_bytes=%" PRIu64 "\ntar_sha256=%s\n",
                  snap_state_name(si->state), si->tensors, si->tar_bytes, si->tar_sha256);
    if (si->object_codec[0])
        snap_text_add(b, "object=%s:%d\nobject_bytes=%" PRIu64 "\nobject_sha256=%s\n",
                      si->object_codec, si->object_level, si->object_bytes, si->object_sha256);
    snap_text_add(b, "created_ns=%" PRId64 "\nattempts=%" PRIu64 "\nupdated_ns=%" PRId64
                  "\nerror=%s\n", si->created_ns, si->attempts, si->updated_ns, error);
    if (si->capture[0])
        snap_text_add(b, "capture=%s\n", si->capture);
}

int snap_parse_state(const char *text, size_t len, snap_info *si)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *eq = memchr(p, '=', (size_t)(le - p));
        char val[256];
        if (le == p) {
            p = le + 1;
            continue;
        }
        if (!eq)
            return TS_ECORRUPT;
        size_t kl = (size_t)(eq - p), vl = (size_t)(le - eq - 1);
        if (vl >= sizeof(val))
            vl = sizeof(val) - 1;
        memcpy(val, eq + 1, vl);
        val[vl] = 0;
#define KEY(k) (kl == strlen(k) && !memcmp(p, k, kl))
        if (KEY("state")) {
            int found = 0;
            for (int s = SNAP_SEALED; s <= SNAP_FAILED; s++) /* "sealing" is never stored */
                if (!strcmp(val, snap_state_name((snap_state)s))) {
                    si->state = (snap_state)s;
                    found = 1;
                }
            if (!found)
                return TS_ECORRUPT;
        } else if (KEY("tensors")) {
            si->tensors = strtoull(val, NULL, 10);
        } else if (KEY("tar_bytes")) {
            si->tar_bytes = strtoull(val, NULL, 10);
        } else if (KEY("tar_sha256")) {
            snprintf(si->tar_sha256, sizeof(si->tar_sha256), "%.64s", val);
        } else if (KEY("object")) {
            /* codec:level; anything else leaves no object measured */
            char *colon = strchr(val, ':');
            si->object_codec[0] = 0;
            if (colon && colon - val > 0 && (size_t)(colon - val) < sizeof(si->object_codec)) {
                char *e = NULL;
                long lv = strtol(colon + 1, &e, 10);
                if (e != colon + 1 && !*e && lv >= 0 && lv <= 99) {
                    memcpy(si->object_codec, val, (size_t)(colon - val));
                    si->object_codec[colon - val] = 0;
                    si->object_level = (int)lv;
                }
            }
        } else if (KEY("object_bytes")) {
            si->object_bytes = strtoull(val, NULL, 10);
        } else if (KEY("object_sha256")) {
            snprintf(si->object_sha256, sizeof(si->object_sha256), "%.64s", val);
        } else if (KEY("created_ns")) {
            si->created_ns = strtoll(val, NULL, 10);
        } else if (KEY("attempts")) {
            si->attempts = strtoull(val, NULL, 10);
        } else if (KEY("updated_ns")) {
            si->updated_ns = strtoll(val, NULL, 10);
        } else if (KEY("error")) {
            snprintf(si->error, sizeof(si->error), "%s", val);
        } else if (KEY("capture")) {
            size_t n = strlen(val);
            if (n >= sizeof(si->capture) || !snap_device_id_ok(val))
                n = 0;
            memcpy(si->capture, val, n);
            si->capture[n] = 0;
        }
#undef KEY
        p = le + (nl != NULL);
    }
    return 0;
}

void snap_capture_text(const snap_capture_meta *c, snap_text *b)
{
    snap_text_add(b, "label=%s\ntrigger_ns=%" PRId64 "\nfrom_ns=%" PRId64 "\nto_ns=%" PRId64 "\n",
                  c->label, c->trigger_ns, c->from_ns, c->to_ns);
    for (size_t i = 0; i < c->n_filters; i++)
        snap_text_add(b, "filter=%s\n", c->filters[i]);
}

/* A signed decimal integer that is the whole of s; 0 or -1. */
static int whole_i64(const char *s, int64_t *out)
{
    char *e = NULL;
    if (!*s || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (errno || *e)
        return -1;
    *out = v;
    return 0;
}

int snap_parse_capture(const char *text, size_t len, snap_capture_meta *c)
{
    const char *p = text, *end = text + len;
    int seen = 0;
    memset(c, 0, sizeof(*c));
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *eq = memchr(p, '=', (size_t)(le - p));
        char val[SNAP_FILTER_MAX + 1];
        size_t kl, vl;
        if (!eq)
            return TS_ECORRUPT;
        kl = (size_t)(eq - p);
        vl = (size_t)(le - eq - 1);
        if (!vl || vl >= sizeof(val))
            return TS_ECORRUPT;
        memcpy(val, eq + 1, vl);
        val[vl] = 0;
        for (size_t i = 0; i < vl; i++)
            if (val[i] < 0x20 || val[i] > 0x7e)
                return TS_ECORRUPT;
#define KEY(k) (kl == strlen(k) && !memcmp(p, k, kl))
        if (KEY("label")) {
            if (!snap_device_id_ok(val) || vl > SNAP_LABEL_MAX)
                return TS_ECORRUPT;
            memcpy(c->label, val, vl + 1);
            seen |= 1;
        } else if (KEY("trigger_ns") || KEY("from_ns") || KEY("to_ns")) {
            int64_t *dst = KEY("trigger_ns") ? &c->trigger_ns
                           : KEY("from_ns") ? &c->from_ns : &c->to_ns;
            if (whole_i64(val, dst))
                return TS_ECORRUPT;
            seen |= KEY("trigger_ns") ? 2 : KEY("from_ns") ? 4 : 8;
        } else if (KEY("filter")) {
            if (c->n_filters == SNAP_FILTERS_MAX)
                return TS_ECORRUPT;
            memcpy(c->filters[c->n_filters++], val, vl + 1);
        }
#undef KEY
        p = le + (nl != NULL);
    }
    return seen == 15 && c->n_filters && c->from_ns < c->to_ns ? 0 : TS_ECORRUPT;
}
