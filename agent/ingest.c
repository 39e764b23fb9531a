/*
 * ingest.c -- MQTT client, decoding and the bounded queue (see ingest.h).
 *
 * Callbacks run on libmosquitto's network thread; they touch only the
 * struct below under its mutex and never free what libmosquitto hands them.
 */
#define _GNU_SOURCE 1
#include "ingest.h"

#include "log.h"

#include "embeddb/plat.h"

#include <mosquitto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ingest {
    struct mosquitto *mosq;
    pthread_mutex_t mu;
    pthread_cond_t nonempty, space;
    ingest_msg *head, *tail;
    uint64_t queued_bytes, limit;
    agent_sub *subs;          /* own copies of topic strings */
    size_t n_subs;
    int pending_subacks;
    int stopping;
    ingest_counters c;
    log_limit bad_log;
    char *host;
    int port, keepalive_s;
};

static void subs_free(agent_sub *subs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(subs[i].topic);
    free(subs);
}

static agent_sub *subs_copy(const agent_config *cfg)
{
    agent_sub *s = calloc(cfg->mqtt.n_subs ? cfg->mqtt.n_subs : 1, sizeof(*s));
    if (!s)
        return NULL;
    for (size_t i = 0; i < cfg->mqtt.n_subs; i++) {
        s[i] = cfg->mqtt.subs[i];
        if (!(s[i].topic = strdup(cfg->mqtt.subs[i].topic))) {
            subs_free(s, i);
            return NULL;
        }
    }
    return s;
}

void ingest_msg_free(ingest_msg *m)
{
    while (m) {
        ingest_msg *next = m->next;
        free(m->topic);
        payload_free(&m->t);
        free(m);
        m = next;
    }
}

/* Subscribes to everything in the table; caller holds the mutex. */
static void subscribe_all(ingest *in)
{
    in->pending_subacks = 0;
    for (size_t i = 0; i < in->n_subs; i++) {
        int rc = mosquitto_subscribe(in->mosq, NULL, in->subs[i].topic, in->subs[i].qos);
        if (rc == MOSQ_ERR_SUCCESS)
            in->pending_subacks++;
        else
            agent_log(LOG_LEVEL_ERROR, "subscribe %s: %s", in->subs[i].topic,
                      mosquitto_strerror(rc));
    }
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    ingest *in = obj;
    (void)mosq;
    if (rc) {
        agent_log(LOG_LEVEL_ERROR, "broker %s:%d refused the connection: %s", in->host, in->port,
                  mosquitto_connack_string(rc));
        return;
    }
    pthread_mutex_lock(&in->mu);
    in->c.connected = 1;
    in->c.connects++;
    subscribe_all(in);
    pthread_mutex_unlock(&in->mu);
    agent_log(LOG_LEVEL_NOTICE, "connected to %s:%d, subscribing to %zu topic filter(s)",
              in->host, in->port, in->n_subs);
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n, const int *granted)
{
    ingest *in = obj;
    (void)mosq;
    (void)mid;
    for (int i = 0; i < n; i++)
        if (granted[i] > 2)
            agent_log(LOG_LEVEL_ERROR, "the broker refused a subscription (code %d)", granted[i]);
    pthread_mutex_lock(&in->mu);
    if (in->pending_subacks > 0 && --in->pending_subacks == 0)
        in->c.subscribed = 1;
    pthread_cond_broadcast(&in->nonempty); /* lets the main loop notice */
    pthread_mutex_unlock(&in->mu);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    ingest *in = obj;
    (void)mosq;
    pthread_mutex_lock(&in->mu);
    in->c.connected = 0;
    in->c.subscribed = 0;
    in->c.disconnects++;
    int stopping = in->stopping;
    pthread_mutex_unlock(&in->mu);
    if (rc && !stopping)
        agent_log(LOG_LEVEL_WARNING, "lost the connection to %s:%d (%s); reconnecting",
                  in->host, in->port, mosquitto_strerror(rc));
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    ingest *in = obj;
    char why[256];
    const agent_sub *sub = NULL;
    payload_spec spec;
    (void)mosq;
    pthread_mutex_lock(&in->mu);
    in->c.received++;
    for (size_t i = 0; i < in->n_subs && !sub; i++) {
        bool match = false;
        if (mosquitto_topic_matches_sub(in->subs[i].topic, msg->topic, &match) ==
                MOSQ_ERR_SUCCESS && match)
            sub = &in->subs[i];
    }
    if (!sub) {
        in->c.unmatched++;
        pthread_mutex_unlock(&in->mu);
        return;
    }
    spec = sub->spec;
    pthread_mutex_unlock(&in->mu);

    ingest_msg *m = calloc(1, sizeof(*m));
    payload_err e = PAYLOAD_NO_MEMORY;
    if (m && (m->topic = strdup(msg->topic)))
        e = payload_decode(&spec, msg->payload, (size_t)(msg->payloadlen > 0 ? msg->payloadlen : 0),
                           &m->t, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "out of memory");
    pthread_mutex_lock(&in->mu);
    if (e != PAYLOAD_OK) {
        in->c.rejected[e]++;
        agent_log_limited(&in->bad_log, 10, 10000, LOG_LEVEL_WARNING,
                          "rejected a %s payload on %s (%s): %s", payload_format_name(spec.format),
                          msg->topic, payload_err_name(e), why);
        pthread_mutex_unlock(&in->mu);
        ingest_msg_free(m);
        return;
    }
    m->recv_ns = plat_now_ns();
    /* Full queue: wait for the main thread (the broker holds the rest). */
    while (in->queued_bytes && in->queued_bytes + m->t.data_len > in->limit && !in->stopping)
        pthread_cond_wait(&in->space, &in->mu);
    in->c.decoded++;
    in->queued_bytes += m->t.data_len;
    if (in->tail)
        in->tail->next = m;
    else
        in->head = m;
    in->tail = m;
    pthread_cond_signal(&in->nonempty);
    pthread_mutex_unlock(&in->mu);
}

ingest *ingest_new(const agent_config *cfg, uint64_t limit_bytes, char *err, size_t errlen)
{
    ingest *in = calloc(1, sizeof(*in));
    int rc;
    if (!in || !(in->subs = subs_copy(cfg)) || !(in->host = strdup(cfg->mqtt.host))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    in->n_subs = cfg->mqtt.n_subs;
    in->port = cfg->mqtt.port;
    in->keepalive_s = (int)(cfg->mqtt.keepalive_ms / 1000);
    in->limit = limit_bytes;
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->nonempty, NULL);
    pthread_cond_init(&in->space, NULL);
    mosquitto_lib_init();
    in->mosq = mosquitto_new(cfg->mqtt.client_id, cfg->mqtt.clean_session, in);
    if (!in->mosq) {
        snprintf(err, errlen, "mosquitto_new failed (client_id '%s')", cfg->mqtt.client_id);
        goto fail;
    }
    if (cfg->mqtt.protocol == 5)
        mosquitto_int_option(in->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    if (cfg->mqtt.username &&
        (rc = mosquitto_username_pw_set(in->mosq, cfg->mqtt.username, cfg->mqtt.password))) {
        snprintf(err, errlen, "mqtt credentials: %s", mosquitto_strerror(rc));
        goto fail;
    }
    if (cfg->mqtt.tls_enabled) {
        rc = mosquitto_tls_set(in->mosq, cfg->mqtt.ca_file, NULL, cfg->mqtt.cert_file,
                               cfg->mqtt.key_file, NULL);
        if (!rc)
            rc = mosquitto_tls_opts_set(in->mosq, 1, "tlsv1.2", NULL);
        if (rc) {
            snprintf(err, errlen, "mqtt.tls: %s", mosquitto_strerror(rc));
            goto fail;
        }
    }
    mosquitto_reconnect_delay_set(in->mosq, 1, 30, true);
    mosquitto_connect_callback_set(in->mosq, on_connect);
    mosquitto_subscribe_callback_set(in->mosq, on_subscribe);
    mosquitto_disconnect_callback_set(in->mosq, on_disconnect);
    mosquitto_message_callback_set(in->mosq, on_message);
    return in;
fail:
    ingest_free(in);
    return NULL;
}

int ingest_start(ingest *in, char *err, size_t errlen)
{
    int rc = mosquitto_connect_async(in->mosq, in->host, in->port, in->keepalive_s);
    /* An unreachable broker is not fatal: the network thread retries. */
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_ERRNO && rc != MOSQ_ERR_NO_CONN)
        agent_log(LOG_LEVEL_WARNING, "connecting to %s:%d: %s (will retry)", in->host, in->port,
                  mosquitto_strerror(rc));
    rc = mosquitto_loop_start(in->mosq);
    if (rc) {
        snprintf(err, errlen, "mosquitto_loop_start: %s", mosquitto_strerror(rc));
        return -1;
    }
    return 0;
}

ingest_msg *ingest_pop(ingest *in, uint64_t wait_ms)
{
    ingest_msg *list;
    pthread_mutex_lock(&in->mu);
    if (!in->head && wait_ms) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)(wait_ms / 1000);
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&in->nonempty, &in->mu, &ts);
    }
    list = in->head;
    in->head = in->tail = NULL;
    in->queued_bytes = 0;
    pthread_cond_broadcast(&in->space);
    pthread_mutex_unlock(&in->mu);
    return list;
}

int ingest_update(ingest *in, const agent_config *cfg)
{
    agent_sub *fresh = subs_copy(cfg);
    if (!fresh)
        return -1;
    pthread_mutex_lock(&in->mu);
    for (size_t i = 0; i < in->n_subs; i++) {
        int kept = 0;
        for (size_t j = 0; j < cfg->mqtt.n_subs; j++)
            kept |= !strcmp(in->subs[i].topic, fresh[j].topic);
        if (!kept)
            mosquitto_unsubscribe(in->mosq, NULL, in->subs[i].topic);
    }
    subs_free(in->subs, in->n_subs);
    in->subs = fresh;
    in->n_subs = cfg->mqtt.n_subs;
    if (in->c.connected)
        subscribe_all(in); /* re-subscribing an existing filter updates its QoS */
    pthread_mutex_unlock(&in->mu);
    return 0;
}

void ingest_counters_get(ingest *in, ingest_counters *out)
{
    pthread_mutex_lock(&in->mu);
    *out = in->c;
    pthread_mutex_unlock(&in->mu);
}

void ingest_stop(ingest *in)
{
    if (!in || !in->mosq)
        return;
    pthread_mutex_lock(&in->mu);
    in->stopping = 1;
    pthread_cond_broadcast(&in->space);
    pthread_mutex_unlock(&in->mu);
    mosquitto_disconnect(in->mosq);
    mosquitto_loop_stop(in->mosq, false);
}

void ingest_free(ingest *in)
{
    if (!in)
        return;
    if (in->mosq) {
        mosquitto_destroy(in->mosq);
        mosquitto_lib_cleanup();
        pthread_mutex_destroy(&in->mu);
        pthread_cond_destroy(&in->nonempty);
        pthread_cond_destroy(&in->space);
    }
    ingest_msg_free(in->head);
    subs_free(in->subs, in->n_subs);
    free(in->host);
    free(in);
}
