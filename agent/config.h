/*
 * config.h -- the agent's YAML configuration (one file, -c PATH).
 *
 * Options are declared as tables (name, type, offset, bounds), Fluent Bit
 * style, and one walker applies them, so every error has the same shape:
 *     agent.yaml:12:5: mqtt.port: expected an integer 1..65535, got 'x'
 *     agent.yaml:3:1: unknown key 'batchh' (expected one of: device_id, ...)
 * Sizes take units (4MiB, 512KiB, 1GB, or plain bytes); durations require
 * one (200ms, 5s, 5m, 1h). Secrets are read from files named in the config
 * (mqtt.password_file) and kept only in memory; nothing here logs them.
 * A value that could only fail later is refused here, at its line and
 * column: topic filters MQTT or the key format cannot take, shapes that
 * overflow or can never arrive, URLs and prefixes that would leave their
 * place, budgets that contradict each other (limits below).
 * conf/agent.yaml is the commented example of every key.
 */
#ifndef EMBEDDB_AGENT_CONFIG_H
#define EMBEDDB_AGENT_CONFIG_H

#include "payload.h"

#include <stddef.h>
#include <stdint.h>

#define AGENT_DEFAULT_CONFIG "/etc/embeddb/agent.yaml"
#define AGENT_HTTP_DEFAULT_LISTEN "127.0.0.1:8080"

/* Limits the loader enforces (conf/agent.yaml documents them). */
#define AGENT_CONFIG_MAX_BYTES (1u << 20) /* a larger file is not a configuration */
#define AGENT_CONFIG_MAX_DEPTH 32         /* YAML nesting (the schema needs 6) */
#define AGENT_SECRET_MAX_BYTES 1023       /* password, token, S3 secret */
#define AGENT_MQTT_STRING_MAX 65535       /* MQTT's limit for topics, client id, user */
/* Keys are <topic>#<20-digit counter>, at most TS_MAX_KEY_LEN bytes: a topic
 * may have at most this many bytes to be stored. */
#define AGENT_TOPIC_KEY_MAX (TS_MAX_KEY_LEN - 21)
/* Room kept in storage.max_disk for the small files (MANIFESTs, STATE,
 * agent.status): max_disk, when set, must be at least this. */
#define AGENT_SMALL_FILES_RESERVE (64u << 10)
/* A snapshot holds at most this many SSTs (each up to memtable_max):
 * snapshot.max_bytes <= AGENT_MAX_SSTS_PER_SNAPSHOT * storage.memtable_max. */
#define AGENT_MAX_SSTS_PER_SNAPSHOT 4096
/* control.prefix: at most this many bytes (topics stay far below MQTT's
 * 65535 and fit the agent's fixed topic buffers). */
#define AGENT_CONTROL_PREFIX_MAX 128

typedef enum log_level {
    LOG_LEVEL_ERROR = 3,   /* syslog priorities, for journald prefixes */
    LOG_LEVEL_WARNING = 4,
    LOG_LEVEL_NOTICE = 5,
    LOG_LEVEL_INFO = 6,
    LOG_LEVEL_DEBUG = 7,
} log_level;

enum { AGENT_ON_FULL_DROP_OLDEST = 0, AGENT_ON_FULL_REJECT_NEW = 1 };
enum { AGENT_UPLOAD_PUT = 0, AGENT_UPLOAD_S3 = 1 };

typedef struct agent_sub {
    char *topic;            /* MQTT filter; wildcards allowed */
    int qos;                /* 0..2 */
    payload_spec spec;      /* format, dtype/shape, max_payload (from mqtt) */
} agent_sub;

/* capture.triggers: when a stored message's topic matches `on`, capture
 * `topics` from pre before its arrival to post after (agent/CONTROL.md,
 * "Local triggers"). */
#define AGENT_TRIGGERS_MAX 8
/* A window's reach, for triggers and the capture verb alike. */
#define AGENT_CAPTURE_PRE_MAX_MS 3600000ull  /* pre: at most 1 h */
#define AGENT_CAPTURE_POST_MAX_MS 600000ull  /* post: at most 10 min */
typedef struct agent_trigger {
    char *on;               /* MQTT filter within a subscription */
    char *label;            /* default trigger-<index> */
    char *topics[8];        /* SNAP_FILTERS_MAX filters */
    size_t n_topics;
    uint64_t pre_ms, post_ms;   /* control.h's limits; pre + post > 0 */
} agent_trigger;

typedef struct agent_config {
    char *path;             /* the file it came from */
    char *device_id;         /* default: the host name (config_device_id_from_host) */
    struct {
        char *dir;
        uint64_t memtable_max;
        int fsync;
        uint64_t max_disk;      /* WAL + SSTs + snapshots; 0 = no budget */
        uint64_t min_free;      /* keep this much free on the file system */
        int on_full;            /* AGENT_ON_FULL_* */
    } storage;
    struct {
        uint64_t max_bytes;     /* seal when the live store reaches this */
        uint64_t interval_ms;   /* ... or when this passed (0 = never) */
        uint64_t keep;          /* uploaded snapshots kept locally */
        int on_trigger;         /* snapshot.mode: on_trigger (1) or continuous (0):
                                   rolling snapshots form a ring within
                                   storage.max_disk and only capture windows
                                   are uploaded */
    } snapshot;
#define AGENT_MAX_CIPHERSUITES 32 /* upload.ciphersuites, at most (http.h's HTTP_MAX_SUITES) */
    struct {
        int enabled;            /* an upload section is present */
        char *url;              /* https://host[:port][/path] */
        char *host;             /* parsed from url */
        int port;
        char *base_path;        /* "" or "/path" without a trailing slash */
        int mode;               /* AGENT_UPLOAD_* */
        char *prefix;           /* object names: <prefix>/<device_id>/<snap>.tar[.gz|.zst] */
        char *ca_file, *cert_file, *key_file;
        int insecure;
        char *token_file;       /* put: bearer token, read once, never logged */
        char *token;
        char *region, *bucket, *access_key, *secret_file;
        char *secret;           /* s3: read from secret_file, never logged */
        int virtual_host;       /* s3 addressing: 1 = <bucket>.<host> */
        uint64_t connect_timeout_ms;  /* resolve + TCP connect + TLS handshake */
        uint64_t io_timeout_ms;       /* any one wait for progress */
        uint64_t response_timeout_ms; /* end of the body -> end of the response head */
        uint64_t retry_initial_ms, retry_max_ms;
        int compression;        /* snap_codec (embeddb/wire.h): none, gzip, zstd */
        int level;              /* the codec's level; 0 = its default */
        uint64_t max_rate;      /* body bytes per second; 0 = no limit */
        uint64_t part_size;     /* s3: objects larger go up as resumable multipart uploads
                                   in parts of this size (5 MiB..5 GiB, default 8 MiB) */
        int ciphersuites[AGENT_MAX_CIPHERSUITES]; /* mbedTLS ids, in order of preference */
        size_t n_ciphersuites;  /* 0: the default (http.h) */
    } upload;
    struct {
        char *host;
        int port;
        char *client_id;    /* default: embeddb-<device_id> */
        uint64_t keepalive_ms;
        int clean_session;
        int protocol;       /* 311 or 5 */
        char *username;
        char *password_file;
        char *password;     /* read from password_file; never printed */
        uint64_t max_payload;
        int tls_enabled;    /* a tls section is present */
        char *ca_file, *cert_file, *key_file;
        agent_sub *subs;
        size_t n_subs;
    } mqtt;
    struct {
        uint64_t max_tensors;
        uint64_t max_bytes;
        uint64_t max_delay_ms;
    } batch;
    struct {
        log_level level;
    } log;
    struct {
        int enabled;            /* an http section is present */
        char *listen;           /* ADDR:PORT (default 127.0.0.1:8080) */
        char *token_file;       /* bearer token for writes */
        char *token;            /* read from token_file; never logged */
        char *demo_dir;         /* the Python demo's files; NULL = none */
    } http;
    struct {                    /* fleet control over MQTT (agent/CONTROL.md) */
        char *prefix;           /* topics <prefix>/<device_id>/...; default "embeddb" */
        uint64_t status_interval_ms; /* retained status every ...; 0 = no status, no will */
        int commands;           /* take commands on .../cmd/<verb> (default off) */
        uint64_t command_rate;  /* at most this many commands in any 60 s */
        uint64_t watermark_interval_ms; /* durable watermark at most every ...; 0 = none */
        uint64_t dedup_publishers; /* publishers de-duplicated (watermark.h); 0 = off */
    } control;
    struct {
        agent_trigger *triggers;
        size_t n_triggers;
    } capture;
} agent_config;

/* Loads and validates path into *cfg (which the caller frees with
 * agent_config_free, also after a failure). Returns 0, or -EINVAL (-ENOMEM) with err
 * holding "FILE:LINE:COL: key: what was expected". */
int agent_config_load(const char *path, agent_config *cfg, char *err, size_t errlen);

/* What the loader asks of the machine, replaceable for tests and fuzzing. */
typedef struct agent_config_env {
    const char *hostname;   /* the device_id default; NULL = gethostname() */
    /* Reads a file the config names (secrets, TLS files): up to cap bytes
     * into buf (cap may be 0: only check it is there), the count in *len;
     * 0 or -errno (-EINVAL: not a regular file). NULL = the file system,
     * regular files only (never a FIFO or device, which could block or
     * act on open). */
    int (*read_file)(void *ctx, const char *path, char *buf, size_t cap, size_t *len);
    void *ctx;
} agent_config_env;

/* agent_config_load with env (NULL = the real machine). */
int agent_config_load_env(const char *path, const agent_config_env *env, agent_config *cfg,
                          char *err, size_t errlen);
/* The same from memory: text[0..len) (borrowed) named `name` in messages. */
int agent_config_load_buffer(const char *name, const char *text, size_t len,
                             const agent_config_env *env, agent_config *cfg, char *err,
                             size_t errlen);
void agent_config_free(agent_config *cfg);

/* The device id when the file sets none: the host name, if it is a valid
 * id and not "localhost" (boards of one image left at that name would
 * collide: same MQTT client id, same upload object names). A malloc'ed copy
 * in *out and 0, or -EINVAL with err saying why and what to do. */
int config_device_id_from_host(const char *hostname, char **out, char *err, size_t errlen);

/* 1 when every topic matching filter a also matches filter b. */
int config_filter_within(const char *a, const char *b);
/* An MQTT topic filter the agent can store messages of (subscriptions,
 * capture windows): NULL, or why not (in buf, or a static string). */
const char *config_topic_problem(const char *t, char *buf, size_t cap);
/* "4MiB" -> bytes, "200ms" -> milliseconds. 0 or -EINVAL. */
int config_parse_size(const char *s, uint64_t *out);
int config_parse_duration_ms(const char *s, uint64_t *out);
/* "<size>/s" (e.g. "2MiB/s", "500KB/s") into bytes per second within
 * CONFIG_RATE_MIN..CONFIG_RATE_MAX; 0 or -EINVAL. */
#define CONFIG_RATE_MIN 1024ull
#define CONFIG_RATE_MAX (10ull << 30)
int config_parse_rate(const char *s, uint64_t *out);
/* "https://host[:port][/path]" -> host, port (443), path ("" or "/p", no
 * trailing slash); host and path malloc'ed. 0 or -EINVAL (not https, bad port,
 * credentials, query or fragment). */
int config_parse_url(const char *url, char **host, int *port, char **path);

#endif
