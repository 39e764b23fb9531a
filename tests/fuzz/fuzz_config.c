/*
 * fuzz_config.c -- libFuzzer entry point for the agent's config loader
 * (agent_config_load_buffer): whatever the bytes, the loader either
 * accepts a config that keeps the documented rules (capture triggers and
 * snapshot.mode among them) or refuses it with a
 * message naming the file, without crashing, leaking or taking long.
 *
 * The loader's environment is replaced: the host name is fixed, and files
 * the config names (password_file, token_file, secret_file, TLS files) are
 * served by a fake reader that never touches the file system: /fuzz/secret
 * holds a short secret, /fuzz/long one over the limit, /fuzz/fifo is "not a
 * regular file", everything else does not exist. So a fuzzed config cannot
 * make the harness open /dev/watchdog, block on a FIFO or read real files.
 */
#define _GNU_SOURCE 1 /* memmem */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fake_read(void *ctx, const char *path, char *buf, size_t cap, size_t *len)
{
    static const char secret[] = "s3cret-Value\r\n";
    (void)ctx;
    *len = 0;
    if (!strcmp(path, "/fuzz/fifo"))
        return -EINVAL;
    if (strncmp(path, "/fuzz/", 6))
        return -ENOENT;
    if (!cap) /* only asked whether it is there */
        return 0;
    if (!strcmp(path, "/fuzz/long")) {
        memset(buf, 'x', cap);
        *len = cap;
        return 0;
    }
    *len = cap < sizeof(secret) - 1 ? cap : sizeof(secret) - 1;
    memcpy(buf, secret, *len);
    return 0;
}

static int has_ctl(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agent_config_env env = {.hostname = "fuzz-host", .read_file = fake_read};
    agent_config cfg;
    char err[1024];
    if (agent_config_load_buffer("fuzz.yaml", (const char *)data, size, &env, &cfg, err,
                                 sizeof(err))) {
        if (strncmp(err, "fuzz.yaml", 9) && strcmp(err, "out of memory"))
            abort(); /* every refusal names the file */
        if (strstr(err, "s3cret-Value") && !memmem(data, size, "s3cret-Value", 12))
            abort(); /* and never a secret (unless the config itself holds its text) */
    } else {
        /* What an accepted config promises the rest of the agent. */
        if (!cfg.device_id || !cfg.storage.dir || !cfg.mqtt.host || !cfg.mqtt.client_id ||
            !cfg.mqtt.n_subs || has_ctl(cfg.storage.dir) || has_ctl(cfg.mqtt.host))
            abort();
        for (size_t i = 0; i < cfg.mqtt.n_subs; i++) {
            const agent_sub *s = &cfg.mqtt.subs[i];
            size_t n = strlen(s->topic);
            if (!n || n > AGENT_MQTT_STRING_MAX || has_ctl(s->topic) || s->qos < 0 ||
                s->qos > 2 || s->spec.ndim > TS_MAX_DIMS)
                abort();
            if (s->spec.format == PAYLOAD_RAW && (!s->spec.dtype || !s->spec.has_shape))
                abort();
        }
        if (cfg.storage.max_disk &&
            (cfg.storage.max_disk < AGENT_SMALL_FILES_RESERVE ||
             cfg.batch.max_bytes > cfg.storage.max_disk))
            abort();
        if (cfg.snapshot.max_bytes / AGENT_MAX_SSTS_PER_SNAPSHOT > cfg.storage.memtable_max)
            abort();
        /* capture.triggers and snapshot.mode keep their rules */
        if (cfg.capture.n_triggers > AGENT_TRIGGERS_MAX ||
            (cfg.snapshot.on_trigger &&
             (!cfg.storage.max_disk || cfg.snapshot.max_bytes > cfg.storage.max_disk / 4)))
            abort();
        for (size_t i = 0; i < cfg.capture.n_triggers; i++) {
            const agent_trigger *t = &cfg.capture.triggers[i];
            if (!t->on || !t->label || !t->n_topics || t->n_topics > 8 ||
                t->pre_ms > AGENT_CAPTURE_PRE_MAX_MS || t->post_ms > AGENT_CAPTURE_POST_MAX_MS ||
                !(t->pre_ms + t->post_ms))
                abort();
            size_t j = 0;
            while (j < cfg.mqtt.n_subs && !config_filter_within(t->on, cfg.mqtt.subs[j].topic))
                j++;
            if (j == cfg.mqtt.n_subs)
                abort();
        }
        if (cfg.upload.enabled && (!cfg.upload.host || has_ctl(cfg.upload.url) ||
                                   has_ctl(cfg.upload.prefix) || has_ctl(cfg.upload.token)))
            abort();
    }
    agent_config_free(&cfg);
    return 0;
}
