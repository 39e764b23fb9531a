/*
 * config.c -- loading agent.yaml with libyaml (contract in config.h).
 *
 * The document is loaded whole (it is small), then mapping nodes are walked
 * against option tables. Each table row knows its type, where its value
 * goes (offsetof into agent_config or agent_sub) and, for a string with
 * rules of its own (URL, host, topic...), the check it must pass; the
 * walker reports unknown keys, wrong types and missing required keys with
 * the node's line and column. Files named by the config (password, TLS)
 * are checked readable here so --check-config catches them.
 *
 * Hostile input stays cheap and contained: the file is at most
 * AGENT_CONFIG_MAX_BYTES and a first event-level pass refuses nesting past
 * AGENT_CONFIG_MAX_DEPTH (libyaml's loader is quadratic in depth) and a
 * second document before the document is built; every string is checked
 * for NUL and control characters before it is used or echoed; values that
 * could only fail later (topic filters, URL, prefix, shapes, budgets) are
 * checked against the limits of the code that will use them. Files are
 * read through agent_config_env, so tests and the fuzzer never touch the
 * real file system.
 */
#include "config.h"
#include "http.h"
#include "watermark.h"

#include "embeddb/console.h"
#include "embeddb/snapshot.h"
#include "embeddb/wire.h"

#include "embeddb/plat.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

typedef enum opt_type {
    OPT_STR,       /* char * (strdup) */
    OPT_PATH,      /* char *, a file that must be readable */
    OPT_BOOL,      /* int */
    OPT_INT,       /* int, bounded by lo..hi */
    OPT_U64,       /* uint64_t, bounded */
    OPT_SIZE,      /* uint64_t bytes, units */
    OPT_DURATION,  /* uint64_t milliseconds, units */
    OPT_SECTION,   /* nested mapping described by sub */
    OPT_SPECIAL,   /* handled by the table's owner (subscriptions, enums) */
} opt_type;

typedef struct walker walker;

/* A string value's own rule, beyond "not empty, no control characters":
 * 0, or -EINVAL with the message (at v, naming key) set through fail(). */
typedef int opt_check(walker *w, const char *key, const yaml_node_t *v, const char *s);
static opt_check check_url, check_prefix, check_host, check_mqtt_len, check_topic, check_listen,
    check_label;

typedef struct opt {
    const char *name;
    opt_type type;
    size_t off;
    int required;
    int64_t lo, hi;
    const struct opt *sub;
    opt_check *check;  /* OPT_STR: its rule, or NULL */
} opt;

#define END {NULL, OPT_STR, 0, 0, 0, 0, NULL, NULL}
#define OFF(f) offsetof(agent_config, f)

static const opt storage_opts[] = {
    {"dir", OPT_STR, OFF(storage.dir), 1, 0, 0, NULL, NULL},
    {"memtable_max", OPT_SIZE, OFF(storage.memtable_max), 0, 4096, INT64_MAX, NULL, NULL},
    {"fsync", OPT_BOOL, OFF(storage.fsync), 0, 0, 0, NULL, NULL},
    {"max_disk", OPT_SIZE, OFF(storage.max_disk), 0, 0, INT64_MAX, NULL, NULL},
    {"min_free", OPT_SIZE, OFF(storage.min_free), 0, 0, INT64_MAX, NULL, NULL},
    {"on_full", OPT_SPECIAL, OFF(storage.on_full), 0, 0, 0, NULL, NULL},
    END,
};

static const opt snapshot_opts[] = {
    {"max_bytes", OPT_SIZE, OFF(snapshot.max_bytes), 0, 4096, INT64_MAX, NULL, NULL},
    {"interval", OPT_DURATION, OFF(snapshot.interval_ms), 0, 0, INT64_MAX, NULL, NULL},
    {"keep", OPT_U64, OFF(snapshot.keep), 0, 0, 100000, NULL, NULL},
    {"mode", OPT_SPECIAL, OFF(snapshot.on_trigger), 0, 0, 0, NULL, NULL},
    END,
};

static const opt retry_opts[] = {
    {"initial", OPT_DURATION, OFF(upload.retry_initial_ms), 0, 10, 86400000, NULL, NULL},
    {"max", OPT_DURATION, OFF(upload.retry_max_ms), 0, 10, 86400000, NULL, NULL},
    END,
};

static const opt s3_opts[] = {
    {"region", OPT_STR, OFF(upload.region), 1, 0, 0, NULL, NULL},
    {"bucket", OPT_STR, OFF(upload.bucket), 1, 0, 0, NULL, NULL},
    {"access_key", OPT_STR, OFF(upload.access_key), 1, 0, 0, NULL, NULL},
    {"secret_file", OPT_PATH, OFF(upload.secret_file), 1, 0, 0, NULL, NULL},
    {"addressing", OPT_SPECIAL, OFF(upload.virtual_host), 0, 0, 0, NULL, NULL},
    END,
};

static const opt upload_opts[] = {
    {"url", OPT_STR, OFF(upload.url), 1, 0, 0, NULL, check_url},
    {"mode", OPT_SPECIAL, OFF(upload.mode), 0, 0, 0, NULL, NULL},
    {"prefix", OPT_STR, OFF(upload.prefix), 0, 0, 0, NULL, check_prefix},
    {"ca_file", OPT_PATH, OFF(upload.ca_file), 0, 0, 0, NULL, NULL},
    {"cert_file", OPT_PATH, OFF(upload.cert_file), 0, 0, 0, NULL, NULL},
    {"key_file", OPT_PATH, OFF(upload.key_file), 0, 0, 0, NULL, NULL},
    {"insecure", OPT_BOOL, OFF(upload.insecure), 0, 0, 0, NULL, NULL},
    {"token_file", OPT_PATH, OFF(upload.token_file), 0, 0, 0, NULL, NULL},
    {"compression", OPT_SPECIAL, OFF(upload.compression), 0, 0, 0, NULL, NULL},
    {"level", OPT_INT, OFF(upload.level), 0, 1, 19, NULL, NULL},
    {"max_rate", OPT_SPECIAL, OFF(upload.max_rate), 0, 0, 0, NULL, NULL},
    /* S3 refuses parts under 5 MiB (but the last) and over 5 GiB. */
    {"part_size", OPT_SIZE, OFF(upload.part_size), 0, 5 << 20, (int64_t)5 << 30, NULL, NULL},
    {"ciphersuites", OPT_SPECIAL, OFF(upload.ciphersuites), 0, 0, 0, NULL, NULL},
    {"connect_timeout", OPT_DURATION, OFF(upload.connect_timeout_ms), 0, 100, 3600000, NULL, NULL},
    {"io_timeout", OPT_DURATION, OFF(upload.io_timeout_ms), 0, 100, 3600000, NULL, NULL},
    {"response_timeout", OPT_DURATION, OFF(upload.response_timeout_ms), 0, 100, 3600000,
     NULL, NULL},
    {"retry", OPT_SECTION, 0, 0, 0, 0, retry_opts, NULL},
    {"s3", OPT_SECTION, 0, 0, 0, 0, s3_opts, NULL},
    END,
};

static const opt tls_opts[] = {
    {"ca_file", OPT_PATH, OFF(mqtt.ca_file), 1, 0, 0, NULL, NULL},
    {"cert_file", OPT_PATH, OFF(mqtt.cert_file), 0, 0, 0, NULL, NULL},
    {"key_file", OPT_PATH, OFF(mqtt.key_file), 0, 0, 0, NULL, NULL},
    END,
};

static const opt mqtt_opts[] = {
    {"host", OPT_STR, OFF(mqtt.host), 1, 0, 0, NULL, check_host},
    {"port", OPT_INT, OFF(mqtt.port), 0, 1, 65535, NULL, NULL},
    {"client_id", OPT_STR, OFF(mqtt.client_id), 0, 0, 0, NULL, check_mqtt_len},
    {"keepalive", OPT_DURATION, OFF(mqtt.keepalive_ms), 0, 5000, 65535000, NULL, NULL},
    {"clean_session", OPT_BOOL, OFF(mqtt.clean_session), 0, 0, 0, NULL, NULL},
    {"protocol", OPT_SPECIAL, OFF(mqtt.protocol), 0, 0, 0, NULL, NULL},
    {"username", OPT_STR, OFF(mqtt.username), 0, 0, 0, NULL, check_mqtt_len},
    {"password_file", OPT_PATH, OFF(mqtt.password_file), 0, 0, 0, NULL, NULL},
    {"max_payload", OPT_SIZE, OFF(mqtt.max_payload), 0, 1, 256 << 20, NULL, NULL},
    {"tls", OPT_SECTION, 0, 0, 0, 0, tls_opts, NULL},
    {"subscriptions", OPT_SPECIAL, 0, 1, 0, 0, NULL, NULL},
    END,
};

static const opt batch_opts[] = {
    {"max_tensors", OPT_U64, OFF(batch.max_tensors), 0, 1, 65536, NULL, NULL},
    {"max_bytes", OPT_SIZE, OFF(batch.max_bytes), 0, 1, 1ll << 30, NULL, NULL},
    {"max_delay_ms", OPT_DURATION, OFF(batch.max_delay_ms), 0, 0, 3600000, NULL, NULL},
    END,
};

static const opt log_opts[] = {
    {"level", OPT_SPECIAL, OFF(log.level), 0, 0, 0, NULL, NULL},
    END,
};

static const opt http_opts[] = {
    {"listen", OPT_STR, OFF(http.listen), 0, 0, 0, NULL, check_listen},
    {"token_file", OPT_PATH, OFF(http.token_file), 0, 0, 0, NULL, NULL},
    {"demo_dir", OPT_STR, OFF(http.demo_dir), 0, 0, 0, NULL, NULL},
    END,
};

static const opt control_opts[] = {
    {"prefix", OPT_STR, OFF(control.prefix), 0, 0, 0, NULL, check_prefix},
    {"status_interval", OPT_DURATION, OFF(control.status_interval_ms), 0, 0, 86400000, NULL,
     NULL},
    {"commands", OPT_BOOL, OFF(control.commands), 0, 0, 0, NULL, NULL},
    {"command_rate", OPT_U64, OFF(control.command_rate), 0, 1, 600, NULL, NULL},
    {"watermark_interval", OPT_DURATION, OFF(control.watermark_interval_ms), 0, 0, 3600000,
     NULL, NULL},
    {"dedup_publishers", OPT_U64, OFF(control.dedup_publishers), 0, 0, WM_PUBLISHERS_MAX, NULL,
     NULL},
    END,
};

static const opt capture_opts[] = {
    {"triggers", OPT_SPECIAL, 0, 0, 0, 0, NULL, NULL},
    END,
};

#define TOFF(f) offsetof(agent_trigger, f)
static const opt trigger_opts[] = {
    {"on", OPT_STR, TOFF(on), 1, 0, 0, NULL, check_topic},
    {"label", OPT_STR, TOFF(label), 0, 0, 0, NULL, check_label},
    {"topics", OPT_SPECIAL, 0, 1, 0, 0, NULL, NULL},
    {"pre", OPT_DURATION, TOFF(pre_ms), 0, 0, AGENT_CAPTURE_PRE_MAX_MS, NULL, NULL},
    {"post", OPT_DURATION, TOFF(post_ms), 0, 0, AGENT_CAPTURE_POST_MAX_MS, NULL, NULL},
    END,
};

static const opt top_opts[] = {
    {"device_id", OPT_STR, OFF(device_id), 0, 0, 0, NULL, NULL},
    {"storage", OPT_SECTION, 0, 1, 0, 0, storage_opts, NULL},
    {"mqtt", OPT_SECTION, 0, 1, 0, 0, mqtt_opts, NULL},
    {"batch", OPT_SECTION, 0, 0, 0, 0, batch_opts, NULL},
    {"snapshot", OPT_SECTION, 0, 0, 0, 0, snapshot_opts, NULL},
    {"upload", OPT_SPECIAL, 0, 0, 0, 0, NULL, NULL},
    {"log", OPT_SECTION, 0, 0, 0, 0, log_opts, NULL},
    {"http", OPT_SPECIAL, 0, 0, 0, 0, NULL, NULL},
    {"control", OPT_SECTION, 0, 0, 0, 0, control_opts, NULL},
    {"capture", OPT_SECTION, 0, 0, 0, 0, capture_opts, NULL},
    END,
};

#define SOFF(f) offsetof(agent_sub, f)
static const opt sub_opts[] = {
    {"topic", OPT_STR, SOFF(topic), 1, 0, 0, NULL, check_topic},
    {"qos", OPT_INT, SOFF(qos), 0, 0, 2, NULL, NULL},
    {"format", OPT_SPECIAL, 0, 1, 0, 0, NULL, NULL},
    {"dtype", OPT_SPECIAL, 0, 0, 0, 0, NULL, NULL},
    {"shape", OPT_SPECIAL, 0, 0, 0, 0, NULL, NULL},
    END,
};

struct walker {
    const char *file;
    yaml_document_t *doc;
    agent_config *cfg;
    const agent_config_env *env;
    char *err;
    size_t errlen;
};

static int fail(walker *w, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(walker *w, const yaml_node_t *at, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(w->err, w->errlen, "%s:%zu:%zu: ", w->file,
                     at ? at->start_mark.line + 1 : 1, at ? at->start_mark.column + 1 : 1);
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < w->errlen)
        vsnprintf(w->err + n, w->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* ---- strings and nodes -------------------------------------------------- */

/* Why s[0..n) cannot be a value: a NUL (which C strings would cut at) or a
 * control character (C0, DEL, or C1 encoded in UTF-8), else NULL. No value
 * of this schema needs one, and each would reach a log line, an HTTP
 * header or an MQTT packet. */
static const char *bad_chars(const char *s, size_t n, char *buf, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned code = c;
        if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
            (unsigned char)s[i + 1] <= 0x9f)
            code = (unsigned char)s[i + 1];
        else if (c >= 0x20 && c != 0x7f)
            continue;
        if (!code)
            return "contains a NUL byte";
        snprintf(buf, cap, "contains a control character (U+%04X at byte %zu)", code, i);
        return buf;
    }
    return NULL;
}

/* The scalar's problem (bad_chars), or NULL; non-scalars have none. */
static const char *bad_scalar(const yaml_node_t *n, char *buf, size_t cap)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return NULL;
    return bad_chars((const char *)n->data.scalar.value, n->data.scalar.length, buf, cap);
}

/* The value of key `name` in mapping m, or NULL. */
static yaml_node_t *map_get(walker *w, const yaml_node_t *m, const char *name)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = scalar(yaml_document_get_node(w->doc, p->key));
        if (k && !strcmp(k, name))
            return yaml_document_get_node(w->doc, p->value);
    }
    return NULL;
}

/* The node of a dotted key ("storage.max_disk"), or NULL when not given. */
static yaml_node_t *node_at(walker *w, const char *path)
{
    char part[64];
    yaml_node_t *n = yaml_document_get_root_node(w->doc);
    while (n && *path) {
        size_t k = strcspn(path, ".");
        if (k >= sizeof(part))
            return NULL;
        memcpy(part, path, k);
        part[k] = 0;
        n = map_get(w, n, part);
        path += k + (path[k] == '.');
    }
    return n;
}

/* The node of key `name` in subscription i, or the item when absent. */
static yaml_node_t *sub_node(walker *w, size_t i, const char *name)
{
    yaml_node_t *subs = node_at(w, "mqtt.subscriptions");
    if (!subs || subs->type != YAML_SEQUENCE_NODE ||
        i >= (size_t)(subs->data.sequence.items.top - subs->data.sequence.items.start))
        return NULL;
    yaml_node_t *item = yaml_document_get_node(w->doc, subs->data.sequence.items.start[i]);
    yaml_node_t *v = map_get(w, item, name);
    return v ? v : item;
}

/* ---- files the config names --------------------------------------------- */

/* agent_config_env.read_file on the real file system, through the platform
 * layer: stat first, so a FIFO (which would block) or a device (which may
 * act when opened) is refused without being opened. */
static int fs_read_file(void *ctx, const char *path, char *buf, size_t cap, size_t *len)
{
    plat_vfs *vfs = plat_vfs_default();
    plat_stat st;
    int fd = -1, rc;
    (void)ctx;
    *len = 0;
    if ((rc = vfs->stat(vfs, path, &st)))
        return rc;
    if (!st.is_reg)
        return -EINVAL;
    if ((rc = vfs->open(vfs, path, PLAT_O_RDONLY, &fd)))
        return rc;
    if (!(rc = vfs->fstat(vfs, fd, &st)) && !st.is_reg)
        rc = -EINVAL; /* replaced since the stat */
    if (!rc && cap)
        rc = vfs->pread(vfs, fd, buf, cap, 0, len);
    vfs->close(vfs, fd);
    return rc;
}

/* Reads the file named by key `key` (node at) through the env: up to cap
 * bytes (0: only checks it is a readable regular file). */
static int read_named_file(walker *w, const yaml_node_t *at, const char *key, const char *path,
                           char *buf, size_t cap, size_t *len)
{
    int rc = w->env && w->env->read_file
                 ? w->env->read_file(w->env->ctx, path, buf, cap, len)
                 : fs_read_file(NULL, path, buf, cap, len);
    if (rc == -EINVAL)
        return fail(w, at, "%s: '%s' is not a regular file", key, path);
    if (rc)
        return fail(w, at, "%s: cannot read '%s': %s", key, path, strerror(-rc));
    return 0;
}

/* ---- units ------------------------------------------------------------ */

static int split_number(const char *s, uint64_t *num, const char **unit)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    while (isspace((unsigned char)*end))
        end++;
    *num = v;
    *unit = end;
    return 0;
}

static int scale(uint64_t v, uint64_t mul, uint64_t *out)
{
    if (mul && v > UINT64_MAX / mul)
        return -EINVAL;
    *out = v * mul;
    return 0;
}

typedef struct unit {
    const char *name;
    uint64_t mul;
} unit;

/* "<number><unit>" with the unit from table; 0 or -EINVAL. */
static int parse_units(const char *s, const unit *units, size_t n, uint64_t *out)
{
    uint64_t v;
    const char *u;
    if (split_number(s, &v, &u))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(u, units[i].name))
            return scale(v, units[i].mul, out);
    return -EINVAL;
}

int config_parse_size(const char *s, uint64_t *out)
{
    static const unit units[] = {{"", 1},        {"B", 1},          {"KB", 1000},
                                 {"KiB", 1024},  {"MB", 1000000},   {"MiB", 1 << 20},
                                 {"GB", 1000000000}, {"GiB", 1ull << 30}};
    return parse_units(s, units, sizeof(units) / sizeof(units[0]), out);
}

int config_parse_rate(const char *s, uint64_t *out)
{
    char num[64];
    size_t n = strlen(s);
    if (n < 3 || n >= sizeof(num) || strcmp(s + n - 2, "/s"))
        return -EINVAL;
    memcpy(num, s, n - 2);
    num[n - 2] = 0;
    if (config_parse_size(num, out) || *out < CONFIG_RATE_MIN || *out > CONFIG_RATE_MAX)
        return -EINVAL;
    return 0;
}

int config_parse_duration_ms(const char *s, uint64_t *out)
{
    static const unit units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    return parse_units(s, units, sizeof(units) / sizeof(units[0]), out);
}

/* ---- the walker -------------------------------------------------------- */

static int check_readable(walker *w, const yaml_node_t *at, const char *key, const char *path)
{
    size_t len = 0;
    return read_named_file(w, at, key, path, NULL, 0, &len);
}

/* ---- values that must fit where they go --------------------------------- */

/* Why url is not an https://HOST[:PORT][/PATH] the uploader can use
 * (HOST a DNS name or IPv4 address of at most 253 bytes, PATH RFC 3986
 * path characters and %-escapes, at most 512 bytes), or NULL. */
static const char *url_problem(const char *url)
{
    static const char path_chars[] = "-._~!$&'()*+,;=:@/";
    if (strncmp(url, "https://", 8))
        return "not https:// (uploads always use TLS)";
    const char *p = url + 8;
    size_t alen = strcspn(p, "/"), hlen = strcspn(p, ":/");
    const char *path = p + alen;
    if (memchr(p, '@', alen))
        return "credentials";
    if (!hlen)
        return "no host";
    if (hlen > 253)
        return "a host name longer than 253 bytes";
    for (size_t i = 0; i < hlen; i++)
        if (!isalnum((unsigned char)p[i]) && !strchr(".-_", p[i]))
            return "a host name character other than A-Z a-z 0-9 . - _ (IPv6 literals are not "
                   "supported)";
    if (p[hlen] == ':') {
        unsigned long port = 0;
        size_t k = hlen + 1;
        for (; k < alen && isdigit((unsigned char)p[k]) && port <= 65535; k++)
            port = port * 10 + (unsigned long)(p[k] - '0');
        if (k == hlen + 1 || k != alen || port < 1 || port > 65535)
            return "a port other than 1..65535";
    }
    size_t plen = strlen(path);
    for (size_t i = 0; i < plen; i++) {
        if (path[i] == '?')
            return "a query";
        if (path[i] == '#')
            return "a fragment";
        if (path[i] == '%') {
            if (!isxdigit((unsigned char)path[i + 1]) || !isxdigit((unsigned char)path[i + 2]))
                return "a '%' that is not a %-escape";
        } else if (!isalnum((unsigned char)path[i]) && !strchr(path_chars, path[i])) {
            return "a path character outside RFC 3986 (escape it as %XX)";
        }
    }
    while (plen && path[plen - 1] == '/')
        plen--;
    if (plen > 512)
        return "a path longer than 512 bytes";
    return NULL;
}

/* Why s cannot be an MQTT string (topic, client id, user name): longer
 * than the protocol's 16-bit length prefix allows; or NULL. `tail` ends the
 * message (" bytes" in a topic's, "" in a client id's or user name's). */
static const char *mqtt_len_problem(const char *s, const char *tail, char *buf, size_t cap)
{
    size_t n = strlen(s);
    if (n <= AGENT_MQTT_STRING_MAX)
        return NULL;
    snprintf(buf, cap, "%zu bytes: longer than MQTT's limit of %u%s", n, AGENT_MQTT_STRING_MAX,
             tail);
    return buf;
}

const char *config_topic_problem(const char *t, char *buf, size_t cap)
{
    size_t n = strlen(t), plus = 0;
    const char *why = mqtt_len_problem(t, " bytes", buf, cap);
    if (why)
        return why;
    if (!strncmp(t, "$embeddb/", 9))
        return "topics under '$embeddb/' are the agent's own keys (its de-duplication "
               "records, agent/CONTROL.md)";
    for (const char *lv = t;; ) {
        size_t k = strcspn(lv, "/");
        if (memchr(lv, '#', k) && (k != 1 || lv[k] == '/'))
            return "'#' only as the whole last level (a/#), as MQTT requires";
        if (memchr(lv, '+', k) && k != 1)
            return "'+' only as a whole level (a/+/b), as MQTT requires";
        plus += k == 1 && lv[0] == '+';
        if (!lv[k])
            break;
        lv += k + 1;
    }
    /* The shortest topic it matches: '+' may match an empty level and
     * "a/#" matches "a" itself. */
    size_t shortest = n - plus - (n >= 2 && !strcmp(t + n - 2, "/#") ? 2 : t[n - 1] == '#');
    if (shortest > AGENT_TOPIC_KEY_MAX) {
        snprintf(buf, cap, "%zu bytes, matching topics of %zu or more: keys are "
                 "<topic>#<20-digit counter> of at most %d bytes, so a topic may have at most "
                 "%d; messages on it could never be stored", n, shortest, TS_MAX_KEY_LEN,
                 AGENT_TOPIC_KEY_MAX);
        return buf;
    }
    return NULL;
}

/* Object names are <prefix>/<device_id>/<snapshot>.tar: the prefix is
 * segments of A-Z a-z 0-9 . _ - ~ = separated by single '/', none of them
 * "." or "..", so that no server or S3 client normalises the name out of
 * its place. NULL, or why not. */
static const char *prefix_problem(const char *p, char *buf, size_t cap)
{
    if (p[0] == '/')
        return "must not start with '/' (the name is relative to the URL's path)";
    for (const char *seg = p;; ) {
        size_t k = strcspn(seg, "/");
        if (!k)
            return "has an empty segment ('//' or a trailing '/')";
        if ((k == 1 && seg[0] == '.') || (k == 2 && seg[0] == '.' && seg[1] == '.'))
            return "has a '.' or '..' segment, which would move the object out of its place";
        for (size_t i = 0; i < k; i++)
            if (!isalnum((unsigned char)seg[i]) && !strchr("._-~=", seg[i])) {
                snprintf(buf, cap, "'%c' is not allowed (segments of A-Z a-z 0-9 . _ - ~ = "
                         "separated by '/')", seg[i]);
                return buf;
            }
        if (!seg[k])
            return NULL;
        seg += k + 1;
    }
}

/* The opt_check functions of the tables. */

/* "KEY: why" at v when why is set; else 0. */
static int refuse(walker *w, const char *key, const yaml_node_t *v, const char *why)
{
    return why ? fail(w, v, "%s: %s", key, why) : 0;
}

static int check_url(walker *w, const char *key, const yaml_node_t *v, const char *s)
{
    const char *why = url_problem(s);
    return why ? fail(w, v, "%s: %s in '%s' (expected https://HOST[:PORT][/PATH])", key, why, s)
               : 0;
}

static int check_listen(walker *w, const char *key, const yaml_node_t *v, const char *s)
{
    unsigned char ss[128];
    size_t sl;
    int loopback;
    char why[256];
    if (console_parse_listen(s, ss, &sl, &loopback, why, sizeof(why)))
        return fail(w, v, "%s: %s", key, why);
    return 0;
}

static int check_prefix(walker *w, const char *key, const yaml_node_t *v, const char *s)
{
    char buf[320];
    return refuse(w, key, v, prefix_problem(s, buf, sizeof(buf)));
}

static int check_topic(walker *w, const char *key, const yaml_node_t *v, const char *s)
{
    char buf[320];
    return refuse(w, key, v, config_topic_problem(s, buf, sizeof(buf)));
}

/* A DNS name, an IPv4 or a bare IPv6 address, as libmosquitto takes it. */
static int check_label(walker *w, const char *key, const yaml_node_t *v, const char *s)
{
    return refuse(w, key, v, snap_device_id_ok(s) ? NULL
                                                  : "expected 1-64 of A-Z a-z 0-9 . _ - (not "
                                                    "starting with '.')");
}

int config_filter_within(const char *a, const char *b)
{
    for (;;) {
        size_t ka = strcspn(a, "/"), kb = strcspn(b, "/");
        if (kb == 1 && b[0] == '#')
            return 1;
        if (ka == 1 && a[0] == '#')
            return 0; /* a's rest is any levels; b's is not */
        if (!(kb == 1 && b[0] == '+') && (ka != kb || memcmp(a, b, ka) || (ka == 1 && a[0] == '+')))
            return 0;
        if (!a[ka] || !b[kb])
            /* "a" is within "a/#" (# matches the parent level too) */
            return !a[ka] && (!b[kb] || !strcmp(b + kb, "/#"));
        a += ka + 1;
        b += kb + 1;
    }
}

static int check_host(walker *w, const char *key, const yaml_node_t *v, const char *s)
{
    size_t n = strlen(s);
    if (n > 253 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                             "0123456789.-_:") != n)
        return refuse(w, key, v, "expected a host name or IP address (A-Z a-z 0-9 . - _, or "
                      "an IPv6 address without brackets; at most 253 bytes)");
    return 0;
}

static int check_mqtt_len(walker *w, const char *key, const yaml_node_t *v, const char *s)
{
    char buf[96];
    return refuse(w, key, v, mqtt_len_problem(s, "", buf, sizeof(buf)));
}

static int set_value(walker *w, const opt *o, const char *key, const yaml_node_t *v, void *base)
{
    const char *s = scalar(v);
    char *end = NULL;
    uint64_t u = 0;
    if (o->type != OPT_SECTION && o->type != OPT_SPECIAL && !s)
        return fail(w, v, "%s: expected a single value, not a list or mapping", key);
    switch (o->type) {
    case OPT_STR:
    case OPT_PATH: {
        if (!*s)
            return fail(w, v, "%s: must not be empty", key);
        if (o->type == OPT_PATH && check_readable(w, v, key, s))
            return -EINVAL;
        if (o->check && o->check(w, key, v, s))
            return -EINVAL;
        char **dst = (char **)(void *)((char *)base + o->off);
        free(*dst);
        if (!(*dst = strdup(s)))
            return fail(w, v, "out of memory");
        return 0;
    }
    case OPT_BOOL: {
        int *dst = (int *)(void *)((char *)base + o->off);
        if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
            *dst = 1;
        else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
            *dst = 0;
        else
            return fail(w, v, "%s: expected true or false, got '%s'", key, s);
        return 0;
    }
    case OPT_INT:
    case OPT_U64:
        errno = 0;
        u = strtoull(s, &end, 10);
        if (!isdigit((unsigned char)*s) || errno || *end || (int64_t)u < o->lo ||
            (int64_t)u > o->hi || u > INT64_MAX)
            return fail(w, v, "%s: expected an integer %" PRId64 "..%" PRId64 ", got '%s'", key,
                        o->lo, o->hi, s);
        if (o->type == OPT_INT)
            *(int *)(void *)((char *)base + o->off) = (int)u;
        else
            *(uint64_t *)(void *)((char *)base + o->off) = u;
        return 0;
    case OPT_SIZE:
    case OPT_DURATION: {
        int size = o->type == OPT_SIZE;
        if (size ? config_parse_size(s, &u) : config_parse_duration_ms(s, &u))
            return fail(w, v, "%s: expected %s, got '%s'", key,
                        size ? "a size like 4MiB, 512KiB, 1GB or bytes"
                             : "a duration with a unit (200ms, 5s, 5m, 1h)", s);
        if (u < (uint64_t)o->lo || u > (uint64_t)o->hi)
            return fail(w, v, "%s: %s is out of range (%" PRId64 "..%" PRId64 " %s)", key, s,
                        o->lo, o->hi, size ? "bytes" : "ms");
        *(uint64_t *)(void *)((char *)base + o->off) = u;
        return 0;
    }
    default:
        return fail(w, v, "%s: internal: unhandled option type", key);
    }
}

typedef int (*special_fn)(walker *w, const char *key, const yaml_node_t *v, void *base);

/* Applies table to mapping node m, writing into base. prefix names the
 * section in messages ("mqtt.tls"). */
static int walk(walker *w, const yaml_node_t *m, const opt *table, const char *prefix, void *base,
                special_fn special)
{
    char key[128], expected[512];
    int seen[32] = {0};
    size_t n_opts = 0, e = 0;
    while (table[n_opts].name)
        n_opts++;
    if (!m || m->type != YAML_MAPPING_NODE)
        return fail(w, m, "%s: expected a mapping of keys", prefix[0] ? prefix : "top level");
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
        const char *name = scalar(k);
        char why[96];
        size_t i;
        if (!name)
            return fail(w, k, "keys must be plain words");
        const char *bad = bad_scalar(k, why, sizeof(why));
        if (bad)
            return fail(w, k, "a key %s", bad);
        for (i = 0; i < n_opts && strcmp(table[i].name, name); i++)
            ;
        int kn = snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] ? "." : "", name);
        if (kn < 0 || (size_t)kn >= sizeof(key))
            return fail(w, k, "key '%.40s...' is too long", name);
        if (i == n_opts) {
            e = 0;
            for (size_t j = 0; j < n_opts && e < sizeof(expected); j++)
                e += (size_t)snprintf(expected + e, sizeof(expected) - e, "%s%s", j ? ", " : "",
                                      table[j].name);
            return fail(w, k, "unknown key '%s' (expected one of: %s)", key, expected);
        }
        if (seen[i]++)
            return fail(w, k, "%s: given twice", key);
        if ((bad = bad_scalar(v, why, sizeof(why))))
            return fail(w, v, "%s: %s", key, bad);
        int rc;
        if (table[i].type == OPT_SECTION)
            rc = walk(w, v, table[i].sub, key, base, special);
        else if (table[i].type == OPT_SPECIAL)
            rc = special(w, key, v, base);
        else
            rc = set_value(w, &table[i], key, v, base);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < n_opts; i++)
        if (table[i].required && !seen[i])
            return fail(w, m, "%s%smissing required key '%s'", prefix, prefix[0] ? ": " : "",
                        table[i].name);
    return 0;
}

static int parse_shape(walker *w, const char *key, const yaml_node_t *v, payload_spec *spec)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(w, v, "%s: expected a list of sizes like [32, 32]", key);
    spec->ndim = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        const yaml_node_t *d = yaml_document_get_node(w->doc, *it);
        const char *s = scalar(d);
        char *end;
        if (spec->ndim == TS_MAX_DIMS)
            return fail(w, d, "%s: more than 8 dimensions", key);
        errno = 0;
        unsigned long long x = s ? strtoull(s, &end, 10) : 0;
        char why[96];
        const char *bad = bad_scalar(d, why, sizeof(why));
        if (bad)
            return fail(w, d, "%s: a size %s", key, bad);
        if (!s || !isdigit((unsigned char)*s) || errno || *end)
            return fail(w, d, "%s: expected a size, got '%s'", key, s ? s : "(not a scalar)");
        spec->shape[spec->ndim++] = x;
    }
    spec->has_shape = 1;
    return 0;
}

static int sub_special(walker *w, const char *key, const yaml_node_t *v, void *base)
{
    agent_sub *sub = base;
    const char *s = scalar(v);
    const char *leaf = strrchr(key, '.') ? strrchr(key, '.') + 1 : key;
    if (!strcmp(leaf, "shape"))
        return parse_shape(w, key, v, &sub->spec);
    if (!s)
        return fail(w, v, "%s: expected a single value", key);
    if (!strcmp(leaf, "format")) {
        if (payload_format_parse(s, &sub->spec.format))
            return fail(w, v, "%s: expected npy, raw, json or csv, got '%s'", key, s);
        return 0;
    }
    if (ts_dtype_parse(s, &sub->spec.dtype))
        return fail(w, v, "%s: unknown dtype '%s' (use a NumPy name: float32, int16, uint8...)",
                    key, s);
    return 0;
}

_Static_assert(sizeof(((agent_trigger *)0)->topics) / sizeof(char *) == SNAP_FILTERS_MAX,
               "one limit");

static int trigger_special(walker *w, const char *key, const yaml_node_t *v, void *base)
{
    agent_trigger *t = base;
    char buf[160];
    if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
        return fail(w, v, "%s: expected a non-empty list of topic filters", key);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        const yaml_node_t *d = yaml_document_get_node(w->doc, *it);
        const char *s = scalar(d), *bad = bad_scalar(d, buf, sizeof(buf));
        if (bad || !s || !*s)
            return fail(w, d, "%s: a topic filter %s", key, bad ? bad : "must be a string");
        if (t->n_topics == SNAP_FILTERS_MAX)
            return fail(w, d, "%s: more than %d topic filters", key, SNAP_FILTERS_MAX);
        if (strlen(s) > SNAP_FILTER_MAX)
            return fail(w, d, "%s: a filter longer than %d bytes", key, SNAP_FILTER_MAX);
        if ((bad = config_topic_problem(s, buf, sizeof(buf))))
            return fail(w, d, "%s: '%s': %s", key, s, bad);
        if (!(t->topics[t->n_topics++] = strdup(s)))
            return fail(w, d, "out of memory");
    }
    return 0;
}

static int parse_triggers(walker *w, const char *key, const yaml_node_t *v, agent_config *cfg)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(w, v, "%s: expected a list of {on, topics, pre, post}", key);
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > AGENT_TRIGGERS_MAX)
        return fail(w, v, "%s: more than %d triggers", key, AGENT_TRIGGERS_MAX);
    if (!n)
        return 0;
    if (!(cfg->capture.triggers = calloc(n, sizeof(*cfg->capture.triggers))))
        return fail(w, v, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
        agent_trigger *t = &cfg->capture.triggers[i];
        char prefix[64];
        cfg->capture.n_triggers = i + 1;
        snprintf(prefix, sizeof(prefix), "%s[%zu]", key, i);
        t->pre_ms = 30000;
        t->post_ms = 10000;
        if (walk(w, item, trigger_opts, prefix, t, trigger_special))
            return -EINVAL;
        if (!t->pre_ms && !t->post_ms)
            return fail(w, item, "%s: pre and post are both 0: an empty window", prefix);
        if (!t->label) {
            char label[32];
            snprintf(label, sizeof(label), "trigger-%zu", i);
            if (!(t->label = strdup(label)))
                return fail(w, item, "out of memory");
        }
    }
    return 0;
}

static int top_special(walker *w, const char *key, const yaml_node_t *v, void *base)
{
    agent_config *cfg = base;
    const char *s = scalar(v);
    if (!strcmp(key, "mqtt.subscriptions")) {
        if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
            return fail(w, v, "%s: expected a non-empty list of {topic, qos, format}", key);
        size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        cfg->mqtt.subs = calloc(n, sizeof(*cfg->mqtt.subs));
        if (!cfg->mqtt.subs)
            return fail(w, v, "out of memory");
        for (size_t i = 0; i < n; i++) {
            const yaml_node_t *item = yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
            agent_sub *sub = &cfg->mqtt.subs[i];
            char prefix[64];
            sub->qos = 1;
            cfg->mqtt.n_subs = i + 1;
            snprintf(prefix, sizeof(prefix), "%s[%zu]", key, i);
            if (walk(w, item, sub_opts, prefix, sub, sub_special))
                return -EINVAL;
            if (sub->spec.format == PAYLOAD_RAW && (!sub->spec.dtype || !sub->spec.has_shape))
                return fail(w, item, "%s: format raw needs dtype and shape", prefix);
            if (sub->spec.format == PAYLOAD_NPY && (sub->spec.dtype || sub->spec.has_shape)) {
                const char *k = sub->spec.dtype ? "dtype" : "shape";
                return fail(w, map_get(w, item, k), "%s.%s: npy payloads carry their own dtype "
                            "and shape; a configured one would be ignored", prefix, k);
            }
        }
        return 0;
    }
    if (!strcmp(key, "capture.triggers"))
        return parse_triggers(w, key, v, cfg);
    if (!strcmp(key, "upload.ciphersuites")) {
        _Static_assert(AGENT_MAX_CIPHERSUITES == HTTP_MAX_SUITES, "one limit");
        if (v->type != YAML_SEQUENCE_NODE ||
            v->data.sequence.items.top == v->data.sequence.items.start)
            return fail(w, v, "%s: expected a non-empty list of mbedTLS suite names like "
                        "[TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256]", key);
        for (yaml_node_item_t *it = v->data.sequence.items.start;
             it < v->data.sequence.items.top; it++) {
            const yaml_node_t *d = yaml_document_get_node(w->doc, *it);
            const char *name = scalar(d);
            char why[96];
            const char *bad = bad_scalar(d, why, sizeof(why));
            if (bad || !name)
                return fail(w, d, "%s: a suite name %s", key, bad ? bad : "must be a string");
            if (cfg->upload.n_ciphersuites == AGENT_MAX_CIPHERSUITES)
                return fail(w, d, "%s: more than %d suites", key, AGENT_MAX_CIPHERSUITES);
            int id = http_ciphersuite_id(name);
            if (id == -ENOTSUP)
                return fail(w, d, "%s: '%s' is not an AEAD suite (GCM, CCM or "
                            "CHACHA20-POLY1305); CBC, RC4 and NULL suites are refused", key, name);
            if (id <= 0)
                return fail(w, d, "%s: unknown cipher suite '%s' (mbedTLS names, e.g. "
                            "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256)", key, name);
            cfg->upload.ciphersuites[cfg->upload.n_ciphersuites++] = id;
        }
        return 0;
    }
    if (!strcmp(key, "upload")) {
        cfg->upload.enabled = 1;
        return walk(w, v, upload_opts, key, cfg, top_special);
    }
    if (!strcmp(key, "http")) {
        cfg->http.enabled = 1;
        return walk(w, v, http_opts, key, cfg, top_special);
    }
    if (!s)
        return fail(w, v, "%s: expected a single value", key);
    if (!strcmp(key, "storage.on_full")) {
        if (!strcmp(s, "drop_oldest"))
            cfg->storage.on_full = AGENT_ON_FULL_DROP_OLDEST;
        else if (!strcmp(s, "reject_new"))
            cfg->storage.on_full = AGENT_ON_FULL_REJECT_NEW;
        else
            return fail(w, v, "%s: expected drop_oldest or reject_new, got '%s'", key, s);
        return 0;
    }
    if (!strcmp(key, "snapshot.mode")) {
        if (!strcmp(s, "continuous"))
            cfg->snapshot.on_trigger = 0;
        else if (!strcmp(s, "on_trigger"))
            cfg->snapshot.on_trigger = 1;
        else
            return fail(w, v, "%s: expected continuous or on_trigger, got '%s'", key, s);
        return 0;
    }
    if (!strcmp(key, "upload.mode")) {
        if (!strcmp(s, "put"))
            cfg->upload.mode = AGENT_UPLOAD_PUT;
        else if (!strcmp(s, "s3"))
            cfg->upload.mode = AGENT_UPLOAD_S3;
        else
            return fail(w, v, "%s: expected put or s3, got '%s'", key, s);
        return 0;
    }
    if (!strcmp(key, "upload.max_rate")) {
        if (config_parse_rate(s, &cfg->upload.max_rate))
            return fail(w, v, "%s: expected a rate like 2MiB/s (1KiB/s .. 10GiB/s), got '%s'",
                        key, s);
        return 0;
    }
    if (!strcmp(key, "upload.compression")) {
        snap_codec c;
        if (snap_codec_parse(s, &c))
            return fail(w, v, "%s: expected zstd, gzip or none, got '%s'", key, s);
        cfg->upload.compression = (int)c;
        return 0;
    }
    if (!strcmp(key, "upload.s3.addressing")) {
        if (!strcmp(s, "path"))
            cfg->upload.virtual_host = 0;
        else if (!strcmp(s, "virtual"))
            cfg->upload.virtual_host = 1;
        else
            return fail(w, v, "%s: expected path or virtual, got '%s'", key, s);
        return 0;
    }
    if (!strcmp(key, "mqtt.protocol")) {
        if (!strcmp(s, "3.1.1") || !strcmp(s, "311"))
            cfg->mqtt.protocol = 311;
        else if (!strcmp(s, "5") || !strcmp(s, "5.0"))
            cfg->mqtt.protocol = 5;
        else
            return fail(w, v, "%s: expected \"3.1.1\" or 5, got '%s'", key, s);
        return 0;
    }
    static const struct {
        const char *name;
        log_level lv;
    } levels[] = {{"error", LOG_LEVEL_ERROR}, {"warning", LOG_LEVEL_WARNING},
                  {"notice", LOG_LEVEL_NOTICE}, {"info", LOG_LEVEL_INFO},
                  {"debug", LOG_LEVEL_DEBUG}};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (!strcmp(s, levels[i].name)) {
            cfg->log.level = levels[i].lv;
            return 0;
        }
    return fail(w, v, "%s: expected error, warning, notice, info or debug, got '%s'", key, s);
}

/* Reads the secret in the file named by `key` into *out (malloc'ed): the
 * whole file less its trailing line ending, at most AGENT_SECRET_MAX_BYTES,
 * no NUL (never cut), and with no_ctl no control character either. */
static int read_secret(walker *w, const char *key, const char *path, int no_ctl, char **out)
{
    /* Room for the longest secret, a CR LF, and one byte to see it is longer. */
    char buf[AGENT_SECRET_MAX_BYTES + 3], why[96];
    const yaml_node_t *at = node_at(w, key);
    const char *bad;
    size_t n = 0;
    int rc = -EINVAL;
    if (read_named_file(w, at, key, path, buf, sizeof(buf), &n))
        goto out;
    int full = n == sizeof(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (full || n > AGENT_SECRET_MAX_BYTES) {
        fail(w, at, "%s: '%s' is longer than %d bytes", key, path, AGENT_SECRET_MAX_BYTES);
        goto out;
    }
    if (memchr(buf, 0, n)) {
        fail(w, at, "%s: '%s' contains a NUL byte", key, path);
        goto out;
    }
    if (no_ctl && (bad = bad_chars(buf, n, why, sizeof(why)))) {
        /* Where, not what: the message must not carry the secret. */
        fail(w, at, "%s: '%s' %s", key, path, bad);
        goto out;
    }
    buf[n] = 0;
    if (!(*out = strdup(buf))) {
        fail(w, at, "out of memory");
        goto out;
    }
    rc = 0;
out:
    memset(buf, 0, sizeof(buf));
    return rc;
}

/* The secrets the config names, once every other rule has passed. */
static int read_secrets(walker *w)
{
    agent_config *cfg = w->cfg;
    if (cfg->mqtt.password_file &&
        read_secret(w, "mqtt.password_file", cfg->mqtt.password_file, 0, &cfg->mqtt.password))
        return -EINVAL;
    /* A bearer token goes into an HTTP header line. */
    if (cfg->upload.token_file &&
        read_secret(w, "upload.token_file", cfg->upload.token_file, 1, &cfg->upload.token))
        return -EINVAL;
    if (cfg->upload.secret_file &&
        read_secret(w, "upload.s3.secret_file", cfg->upload.secret_file, 0, &cfg->upload.secret))
        return -EINVAL;
    if (cfg->http.token_file &&
        read_secret(w, "http.token_file", cfg->http.token_file, 1, &cfg->http.token))
        return -EINVAL;
    return 0;
}

/* Cross-key rules whose keys may come in any order, each reported at the
 * key it names (or the one that was given, when the other is a default). */
static int check_limits(walker *w)
{
    agent_config *cfg = w->cfg;
    char key[64];
    /* on_trigger: the ring needs a bound, and room for several of its
     * segments so that expiring the oldest one frees enough */
    if (cfg->snapshot.on_trigger && !cfg->storage.max_disk)
        return fail(w, node_at(w, "snapshot.mode"), "snapshot.mode: on_trigger keeps a ring of "
                    "recent data within storage.max_disk, which must be set");
    if (cfg->snapshot.on_trigger && cfg->snapshot.max_bytes > cfg->storage.max_disk / 4)
        return fail(w, node_at(w, "snapshot.mode"), "snapshot.mode: on_trigger needs "
                    "snapshot.max_bytes (%" PRIu64 ") at most a quarter of storage.max_disk "
                    "(%" PRIu64 "): the ring drops whole snapshots", cfg->snapshot.max_bytes,
                    cfg->storage.max_disk);
    for (size_t i = 0; i < cfg->capture.n_triggers; i++) {
        const agent_trigger *t = &cfg->capture.triggers[i];
        size_t j = 0;
        while (j < cfg->mqtt.n_subs && !config_filter_within(t->on, cfg->mqtt.subs[j].topic))
            j++;
        if (j == cfg->mqtt.n_subs)
            return fail(w, node_at(w, "capture.triggers"), "capture.triggers[%zu].on: '%s' is "
                        "within no subscription: its messages would never arrive (a trigger "
                        "fires when such a message is stored)", i, t->on);
    }
    for (size_t i = 0; i < cfg->mqtt.n_subs; i++) {
        const agent_sub *sub = &cfg->mqtt.subs[i];
        const payload_spec *sp = &sub->spec;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(sub->topic, cfg->mqtt.subs[j].topic))
                return fail(w, sub_node(w, i, "topic"), "mqtt.subscriptions[%zu].topic: given "
                            "twice (as mqtt.subscriptions[%zu]); only the first would be used",
                            i, j);
        if (!sp->has_shape)
            continue;
        snprintf(key, sizeof(key), "mqtt.subscriptions[%zu].shape", i);
        ts_tensor t = {.ndim = sp->ndim};
        uint64_t n = 0;
        size_t es = ts_dtype_size(sp->dtype ? sp->dtype : TS_F32);
        memcpy(t.shape, sp->shape, sizeof(t.shape));
        if (ts_tensor_numel(&t, &n) || n > UINT64_MAX / es)
            return fail(w, sub_node(w, i, "shape"), "%s: the product of the sizes overflows",
                        key);
        if (sp->format == PAYLOAD_RAW && n * es > cfg->mqtt.max_payload)
            return fail(w, sub_node(w, i, "shape"), "%s: a raw %s tensor of this shape is %"
                        PRIu64 " bytes and can never arrive: mqtt.max_payload is %" PRIu64, key,
                        ts_dtype_name(sp->dtype), n * es, cfg->mqtt.max_payload);
        /* CSV takes its shape from here: n values need 2n-1 bytes. (A JSON
         * object may bring its own shape, so JSON is not judged.) */
        if (sp->format == PAYLOAD_CSV && n > (cfg->mqtt.max_payload + 1) / 2)
            return fail(w, sub_node(w, i, "shape"), "%s: %" PRIu64 " values need at least %"
                        PRIu64 " bytes of csv and can never arrive: mqtt.max_payload is %" PRIu64,
                        key, n, 2 * n - 1, cfg->mqtt.max_payload);
    }
    if (cfg->storage.max_disk && cfg->storage.max_disk < AGENT_SMALL_FILES_RESERVE)
        return fail(w, node_at(w, "storage.max_disk"), "storage.max_disk: %" PRIu64 " bytes is "
                    "less than the %u bytes reserved for the store's small files (MANIFESTs, STATE, "
                    "agent.status); nothing could be stored", cfg->storage.max_disk,
                    AGENT_SMALL_FILES_RESERVE);
    if (cfg->storage.max_disk && cfg->storage.max_disk / 2 < cfg->snapshot.max_bytes)
        return fail(w, node_at(w, "storage.max_disk"), "storage.max_disk: %" PRIu64 " bytes "
                    "must be at least twice snapshot.max_bytes (%" PRIu64 "): the live store "
                    "fills up to max_bytes before it is sealed", cfg->storage.max_disk,
                    cfg->snapshot.max_bytes);
    if (cfg->storage.max_disk && cfg->batch.max_bytes > cfg->storage.max_disk) {
        const yaml_node_t *b = node_at(w, "batch.max_bytes");
        if (b)
            return fail(w, b, "batch.max_bytes: %" PRIu64 " bytes is more than storage.max_disk "
                        "(%" PRIu64 "): a full batch could never be committed",
                        cfg->batch.max_bytes, cfg->storage.max_disk);
        return fail(w, node_at(w, "storage.max_disk"), "storage.max_disk: %" PRIu64 " bytes is "
                    "less than batch.max_bytes (%" PRIu64 ", the default): a full batch could "
                    "never be committed; lower batch.max_bytes", cfg->storage.max_disk,
                    cfg->batch.max_bytes);
    }
    if (cfg->storage.memtable_max <= UINT64_MAX / AGENT_MAX_SSTS_PER_SNAPSHOT &&
        cfg->snapshot.max_bytes > AGENT_MAX_SSTS_PER_SNAPSHOT * cfg->storage.memtable_max) {
        const yaml_node_t *at = node_at(w, "snapshot.max_bytes");
        uint64_t need = (cfg->snapshot.max_bytes + AGENT_MAX_SSTS_PER_SNAPSHOT - 1) /
                        AGENT_MAX_SSTS_PER_SNAPSHOT;
        return fail(w, at ? at : node_at(w, "storage.memtable_max"),
                    "%s: a snapshot of %" PRIu64 " bytes would hold more than %d SSTs of "
                    "storage.memtable_max (%" PRIu64 " bytes): raise memtable_max to at least %"
                    PRIu64 " or lower snapshot.max_bytes", at ? "snapshot.max_bytes"
                                                               : "storage.memtable_max",
                    cfg->snapshot.max_bytes, AGENT_MAX_SSTS_PER_SNAPSHOT,
                    cfg->storage.memtable_max, need);
    }
    if (cfg->upload.level) {
        int lo, hi, dflt;
        snap_codec c = (snap_codec)cfg->upload.compression;
        snap_codec_levels(c, &lo, &hi, &dflt);
        if (c == SNAP_CODEC_NONE)
            return fail(w, node_at(w, "upload.level"), "upload.level: only with "
                        "upload.compression zstd or gzip (compression is none)");
        if (cfg->upload.level < lo || cfg->upload.level > hi)
            return fail(w, node_at(w, "upload.level"), "upload.level: %s takes %d..%d, got %d",
                        snap_codec_name(c), lo, hi, cfg->upload.level);
    }
    if (node_at(w, "upload.part_size") && cfg->upload.mode != AGENT_UPLOAD_S3)
        return fail(w, node_at(w, "upload.part_size"), "upload.part_size: only with upload.mode "
                    "s3 (multipart uploads); a put upload is one request");
    if (cfg->control.status_interval_ms && cfg->control.status_interval_ms < 1000)
        return fail(w, node_at(w, "control.status_interval"), "control.status_interval: %"
                    PRIu64 "ms is too often (at least 1s, or 0s for no status and no Last Will)",
                    cfg->control.status_interval_ms);
    if (cfg->control.watermark_interval_ms && cfg->control.watermark_interval_ms < 100)
        return fail(w, node_at(w, "control.watermark_interval"), "control.watermark_interval: %"
                    PRIu64 "ms is too often (at least 100ms, or 0s for no watermark)",
                    cfg->control.watermark_interval_ms);
    if (cfg->control.prefix && strlen(cfg->control.prefix) > AGENT_CONTROL_PREFIX_MAX)
        return fail(w, node_at(w, "control.prefix"), "control.prefix: %zu bytes; at most %d",
                    strlen(cfg->control.prefix), AGENT_CONTROL_PREFIX_MAX);
    /* <prefix>/<device_id>/<device_id>-<20 digits>.tar.zst (the longest
     * suffix) in the uploader's 1024-byte name buffer. */
    if (cfg->upload.prefix && cfg->device_id) {
        size_t fixed = 2 * strlen(cfg->device_id) + 31, n = strlen(cfg->upload.prefix);
        size_t most = fixed < 1023 ? 1023 - fixed : 0;
        if (n > most)
            return fail(w, node_at(w, "upload.prefix"), "upload.prefix: %zu bytes: object names "
                        "<prefix>/<device_id>/<snapshot>.tar.zst must fit in 1023 bytes, so the "
                        "prefix may have at most %zu here", n, most);
    }
    return 0;
}

static void defaults(agent_config *cfg)
{
    cfg->storage.memtable_max = 16u << 20;
    cfg->storage.fsync = 1;
    cfg->mqtt.port = 1883;
    cfg->mqtt.keepalive_ms = 30000;
    cfg->mqtt.clean_session = 0;
    cfg->mqtt.protocol = 311;
    cfg->mqtt.max_payload = 16u << 20;
    cfg->batch.max_tensors = 64;
    cfg->batch.max_bytes = 4u << 20;
    cfg->batch.max_delay_ms = 200;
    cfg->log.level = LOG_LEVEL_INFO;
    cfg->storage.min_free = 64u << 20;
    cfg->snapshot.max_bytes = 64u << 20;
    cfg->snapshot.interval_ms = 3600000;
    cfg->snapshot.keep = 2;
    cfg->upload.connect_timeout_ms = 10000;
    cfg->upload.io_timeout_ms = 30000;
    cfg->upload.response_timeout_ms = 60000;
    cfg->upload.retry_initial_ms = 1000;
    cfg->upload.retry_max_ms = 300000;
    cfg->upload.part_size = 8u << 20;
    cfg->control.status_interval_ms = 60000;
    cfg->control.command_rate = 30;
    cfg->control.watermark_interval_ms = 1000;
    cfg->control.dedup_publishers = 64;
}

int config_parse_url(const char *url, char **host, int *port, char **path)
{
    *host = *path = NULL;
    /* Checked in full here (host, port 1..65535, no credentials, query or
     * fragment): what follows only splits. */
    if (url_problem(url))
        return -EINVAL;
    const char *p = url + 8, *slash = p + strcspn(p, "/");
    const char *colon = memchr(p, ':', (size_t)(slash - p));
    const char *hend = colon ? colon : slash;
    long v = colon ? strtol(colon + 1, NULL, 10) : 443;
    size_t plen = strlen(slash);
    while (plen && slash[plen - 1] == '/')
        plen--;
    *host = strndup(p, (size_t)(hend - p));
    *path = strndup(slash, plen);
    if (!*host || !*path) {
        free(*host);
        free(*path);
        *host = *path = NULL;
        return -EINVAL;
    }
    *port = (int)v;
    return 0;
}

int config_device_id_from_host(const char *hostname, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!snap_device_id_ok(hostname) || !strcmp(hostname, "localhost")) {
        snprintf(err, errlen, "device_id: not set, and the host name '%.64s' can't stand in for "
                 "it (it must be 1-64 of A-Z a-z 0-9 . _ - and not localhost); set device_id, "
                 "unique per board", hostname);
        return -EINVAL;
    }
    if (!(*out = strdup(hostname))) {
        snprintf(err, errlen, "out of memory");
        return -EINVAL;
    }
    return 0;
}

/* Cross-key rules of the snapshot and upload sections. */
static int check_upload(agent_config *cfg, const char *path, char *err, size_t errlen)
{
    if (!snap_device_id_ok(cfg->device_id)) {
        snprintf(err, errlen, "%s: device_id: '%s' must be 1-64 of A-Z a-z 0-9 . _ - (it names "
                 "snapshot directories and uploaded objects)", path, cfg->device_id);
        return -EINVAL;
    }
    if (!cfg->upload.enabled)
        return 0;
    if (config_parse_url(cfg->upload.url, &cfg->upload.host, &cfg->upload.port,
                         &cfg->upload.base_path)) {
        snprintf(err, errlen, "%s: upload.url: expected https://HOST[:PORT][/PATH], got '%s' "
                 "(uploads always use TLS)", path, cfg->upload.url);
        return -EINVAL;
    }
    if (!cfg->upload.ca_file && !cfg->upload.insecure) {
        snprintf(err, errlen, "%s: upload: ca_file is required (the server's certificate is "
                 "verified against it; insecure: true turns that off)", path);
        return -EINVAL;
    }
    if (!cfg->upload.cert_file != !cfg->upload.key_file) {
        snprintf(err, errlen, "%s: upload: cert_file and key_file go together", path);
        return -EINVAL;
    }
    if (cfg->upload.retry_initial_ms > cfg->upload.retry_max_ms) {
        snprintf(err, errlen, "%s: upload.retry: initial must not exceed max", path);
        return -EINVAL;
    }
    int s3 = cfg->upload.mode == AGENT_UPLOAD_S3;
    if (s3 != (cfg->upload.bucket != NULL)) {
        snprintf(err, errlen, "%s: upload: %s", path,
                 s3 ? "mode s3 needs an s3 section (region, bucket, access_key, secret_file)"
                    : "an s3 section needs mode: s3");
        return -EINVAL;
    }
    if (s3 && cfg->upload.token_file) {
        snprintf(err, errlen, "%s: upload.token_file is for mode put (s3 signs requests)", path);
        return -EINVAL;
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------ */

/* A frame of the event pass: a mapping (with its current key) or a
 * sequence (with its current index). */
typedef struct ev_frame {
    int map, want_key;
    size_t index;
    char key[48];
} ev_frame;

/* The key path down to the deepest mapping, as the walker names keys
 * ("mqtt.subscriptions[0].shape"). */
static void ev_path(const ev_frame *f, int depth, char *out, size_t cap)
{
    size_t n = 0;
    int last_map = -1;
    out[0] = 0;
    for (int i = 0; i < depth; i++)
        if (f[i].map)
            last_map = i;
    for (int i = 0; i <= last_map && n < cap; i++) {
        if (f[i].map)
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "." : "", f[i].key);
        else
            n += (size_t)snprintf(out + n, cap - n, "[%zu]", f[i].index);
    }
}

/* The shape of the stream before the document is built (libyaml's loader
 * is quadratic in nesting): at most AGENT_CONFIG_MAX_DEPTH levels and one
 * document. 0, or -EINVAL with err set. */
static int check_events(const char *name, const char *text, size_t len, char *err,
                        size_t errlen)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    ev_frame f[AGENT_CONFIG_MAX_DEPTH];
    int depth = 0, docs = 0, rc = 0, done = 0;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (!done && !rc) {
        if (!yaml_parser_parse(&parser, &ev)) {
            snprintf(err, errlen, "%s:%zu:%zu: YAML syntax: %s%s%s", name,
                     parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                     parser.problem ? parser.problem : "error", parser.context ? " " : "",
                     parser.context ? parser.context : "");
            rc = -EINVAL;
            break;
        }
        int item_done = 0;
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                snprintf(err, errlen, "%s:%zu:%zu: a second YAML document: the configuration "
                         "is one YAML document", name, ev.start_mark.line + 1,
                         ev.start_mark.column + 1);
                rc = -EINVAL;
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (depth == AGENT_CONFIG_MAX_DEPTH) {
                char path[256];
                ev_path(f, depth, path, sizeof(path));
                snprintf(err, errlen, "%s:%zu:%zu: %s%snested deeper than %d levels", name,
                         ev.start_mark.line + 1, ev.start_mark.column + 1, path,
                         path[0] ? ": " : "", AGENT_CONFIG_MAX_DEPTH);
                rc = -EINVAL;
                break;
            }
            f[depth] = (ev_frame){.map = ev.type == YAML_MAPPING_START_EVENT, .want_key = 1};
            depth++;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            item_done = 1;
            break;
        case YAML_SCALAR_EVENT:
            if (depth && f[depth - 1].map && f[depth - 1].want_key) {
                size_t k = ev.data.scalar.length < sizeof(f[0].key) - 1 ? ev.data.scalar.length
                                                                         : sizeof(f[0].key) - 1;
                memcpy(f[depth - 1].key, ev.data.scalar.value, k);
                f[depth - 1].key[k] = 0;
                f[depth - 1].want_key = 0;
            } else {
                item_done = 1;
            }
            break;
        case YAML_ALIAS_EVENT:
            item_done = 1;
            break;
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        default:
            break;
        }
        /* A value (or sequence item) is complete: the parent moves on. */
        if (item_done && depth) {
            if (f[depth - 1].map)
                f[depth - 1].want_key = 1;
            else
                f[depth - 1].index++;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

int agent_config_load_buffer(const char *name, const char *text, size_t len,
                             const agent_config_env *env, agent_config *cfg, char *err,
                             size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    int have_doc = 0, rc = -EINVAL;
    walker w = {.file = name, .doc = &doc, .cfg = cfg, .env = env, .err = err, .errlen = errlen};
    memset(cfg, 0, sizeof(*cfg));
    defaults(cfg);
    yaml_parser_initialize(&parser);
    if (!(cfg->path = strdup(name))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (len > AGENT_CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %u bytes: not a configuration file", name,
                 AGENT_CONFIG_MAX_BYTES);
        goto out;
    }
    if (check_events(name, text, len, err, errlen))
        goto out;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s:%zu:%zu: YAML syntax: %s%s%s", name,
                 parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                 parser.problem ? parser.problem : "error", parser.context ? " " : "",
                 parser.context ? parser.context : "");
        goto out;
    }
    have_doc = 1;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        snprintf(err, errlen, "%s: empty configuration", name);
        goto out;
    }
    if (walk(&w, root, top_opts, "", cfg, top_special))
        goto out;
    for (size_t i = 0; i < cfg->mqtt.n_subs; i++)
        cfg->mqtt.subs[i].spec.max_payload = (size_t)cfg->mqtt.max_payload;
    if (!cfg->device_id) {
        char host[256] = "";
        char why[256];
        if (env && env->hostname) {
            snprintf(host, sizeof(host), "%s", env->hostname);
        } else if (gethostname(host, sizeof(host) - 1)) {
            snprintf(err, errlen, "%s: device_id: not set, and the host name can't be read: %s",
                     name, strerror(errno));
            goto out;
        }
        if (config_device_id_from_host(host, &cfg->device_id, why, sizeof(why))) {
            snprintf(err, errlen, "%s: %s", name, why);
            goto out;
        }
    }
    if (!cfg->mqtt.client_id) {
        size_t n = strlen(cfg->device_id) + 16;
        if (!(cfg->mqtt.client_id = malloc(n))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        snprintf(cfg->mqtt.client_id, n, "embeddb-%s", cfg->device_id);
    }
    cfg->mqtt.tls_enabled = cfg->mqtt.ca_file != NULL;
    if (!cfg->mqtt.cert_file != !cfg->mqtt.key_file) {
        snprintf(err, errlen, "%s: mqtt.tls: cert_file and key_file go together", name);
        goto out;
    }
    if (cfg->mqtt.password_file && !cfg->mqtt.username) {
        snprintf(err, errlen, "%s: mqtt.password_file needs mqtt.username", name);
        goto out;
    }
    if (!cfg->control.prefix && !(cfg->control.prefix = strdup("embeddb"))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (cfg->control.commands && !strcmp(cfg->device_id, "fleet")) {
        snprintf(err, errlen, "%s: device_id: 'fleet' names the fleet-wide command topic "
                 "(<control.prefix>/fleet/cmd/...); with control.commands on, choose another",
                 name);
        goto out;
    }
    if (check_upload(cfg, name, err, errlen))
        goto out;
    if (cfg->http.enabled) {
        unsigned char ss[128];
        size_t sl;
        int loopback = 0;
        if (!cfg->http.listen && !(cfg->http.listen = strdup(AGENT_HTTP_DEFAULT_LISTEN))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        console_parse_listen(cfg->http.listen, ss, &sl, &loopback, err, errlen);
        if (!loopback && !cfg->http.token_file) {
            fail(&w, node_at(&w, "http.listen"), "http.listen: %s is not a loopback address: "
                 "give http.token_file so that writes need a token", cfg->http.listen);
            goto out;
        }
    }
    if (check_limits(&w) || read_secrets(&w))
        goto out;
    rc = 0;
out:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int agent_config_load_env(const char *path, const agent_config_env *env, agent_config *cfg,
                          char *err, size_t errlen)
{
    FILE *fp = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = -EINVAL;
    memset(cfg, 0, sizeof(*cfg)); /* freeable whatever happens */
    if (!(text = malloc(AGENT_CONFIG_MAX_BYTES + 1))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (!(fp = fopen(path, "rb"))) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    len = fread(text, 1, AGENT_CONFIG_MAX_BYTES + 1, fp);
    if (ferror(fp)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    rc = agent_config_load_buffer(path, text, len, env, cfg, err, errlen);
out:
    if (fp)
        fclose(fp);
    free(text);
    return rc;
}

int agent_config_load(const char *path, agent_config *cfg, char *err, size_t errlen)
{
    return agent_config_load_env(path, NULL, cfg, err, errlen);
}

void agent_config_free(agent_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->mqtt.n_subs; i++)
        free(cfg->mqtt.subs[i].topic);
    free(cfg->mqtt.subs);
    for (size_t i = 0; i < cfg->capture.n_triggers; i++) {
        agent_trigger *t = &cfg->capture.triggers[i];
        for (size_t k = 0; k < t->n_topics; k++)
            free(t->topics[k]);
        free(t->on);
        free(t->label);
    }
    free(cfg->capture.triggers);
    if (cfg->mqtt.password) {
        memset(cfg->mqtt.password, 0, strlen(cfg->mqtt.password));
        free(cfg->mqtt.password);
    }
    free(cfg->path);
    free(cfg->device_id);
    free(cfg->storage.dir);
    free(cfg->mqtt.host);
    free(cfg->mqtt.client_id);
    free(cfg->mqtt.username);
    free(cfg->mqtt.password_file);
    free(cfg->mqtt.ca_file);
    free(cfg->mqtt.cert_file);
    free(cfg->mqtt.key_file);
    char *secrets[] = {cfg->upload.token, cfg->upload.secret, cfg->http.token};
    for (size_t i = 0; i < 3; i++)
        if (secrets[i]) {
            memset(secrets[i], 0, strlen(secrets[i]));
            free(secrets[i]);
        }
    char **strs[] = {&cfg->upload.url, &cfg->upload.host, &cfg->upload.base_path,
                     &cfg->upload.prefix, &cfg->upload.ca_file, &cfg->upload.cert_file,
                     &cfg->upload.key_file, &cfg->upload.token_file, &cfg->upload.region,
                     &cfg->upload.bucket, &cfg->upload.access_key, &cfg->upload.secret_file,
                     &cfg->http.listen, &cfg->http.token_file, &cfg->http.demo_dir,
                     &cfg->control.prefix};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(*strs[i]);
    memset(cfg, 0, sizeof(*cfg));
}
