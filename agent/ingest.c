/*
 * ingest.c -- MQTT client, decoding and the bounded queue (see ingest.h).
 *
 * The network thread is ours, not mosquitto_loop_start's: it alone touches
 * the mosquitto handle (connect, loop, subscribe, disconnect), so the
 * handle stays in libmosquitto's unthreaded mode, where the PUBACK of a
 * QoS 1 message is written out at once, before the message callback runs.
 * The agent's promises (README, "Durability") rest on what follows:
 *
 *   Acknowledged but not stored is bounded. The callback queues the
 *   message, then waits while the messages held -- read and not yet
 *   stored: the queue plus the main thread's batch (ingest_done) -- pass
 *   hold_n messages or hold_bytes. While it waits this thread reads
 *   nothing, the socket's buffers fill and the broker keeps the rest in the
 *   session. A kill -9 loses at most what is held.
 *
 *   Nothing is stored twice. A QoS 1 message is handed to the main thread
 *   only once the broker has processed its PUBACK. After messages arrive
 *   this thread sends an UNSUBSCRIBE of a filter it never subscribes to
 *   (the "settle barrier", embeddb/<device_id>/settle); the broker reads a
 *   client's packets in order, so its UNSUBACK proves every PUBACK written
 *   before the barrier processed, and a message whose PUBACK the broker
 *   processed is never sent again. QoS 0 and 2 need no barrier (a QoS 2
 *   message reaches the callback only after the broker has our PUBREC).
 *
 *   Only the unprovable is counted. The barrier's answer lies behind
 *   whatever the broker sent first; if the queue fills before it arrives
 *   (a broker sending far past its in-flight window: mosquitto 2.0.11 does
 *   while it drains a backlog), this thread waits and cannot read the
 *   answer, so the main thread takes the oldest messages unproven rather
 *   than wait forever. The same goes for messages unsettled when the
 *   connection drops or the agent stops: they are stored (losing them is
 *   worse) and counted in maybe_duplicated, the broker may send them again.
 *
 * A stop reads nothing more: the waiting callback hands its message over,
 * DISCONNECT follows every PUBACK written, and the main thread stores what
 * is queued.
 *
 * Callbacks run on this thread and touch the shared part of the struct
 * below only under its mutex; they never free what libmosquitto hands
 * them. The subscription table belongs to this thread: the main thread
 * posts a new one (ingest_update) and this thread swaps it in.
 */
#define _GNU_SOURCE 1
#include "ingest.h"

#include "log.h"
#include "watermark.h"

#include "embeddb/plat.h"

#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOOP_MS 100           /* longest wait in one loop pass: a stop is seen this fast */

struct ingest {
    struct mosquitto *mosq;
    pthread_mutex_t mu;
    pthread_cond_t nonempty, space;
    int woken;                  /* ingest_wake since the last pop */
    ingest_msg *head, *tail;  /* read, not yet taken by the main thread */
    size_t held_n, hold_n;    /* read and not yet stored (ingest_done), and the bound */
    uint64_t held_bytes, hold_bytes;
    int waiting;              /* the callback waits for room: nothing is read */
    agent_sub *subs;          /* the network thread's own: no lock */
    size_t n_subs;
    agent_sub *next_subs;     /* posted by ingest_update, NULL when none */
    size_t n_next;
    int pending_subacks;
    int attempt_ok;           /* a CONNACK accepted the current connection */
    int stopping;             /* ingest_stop was called */
    /* settling: barriers answered so far; a message with need <= settled_gen
     * is settled (the barrier in flight answers settled_gen + 1) */
    char *settle_topic;
    uint64_t settled_gen;
    int barrier_mid;          /* the UNSUBSCRIBE in flight, 0 when none */
    int unsettled;            /* a QoS 1 message came since the last barrier went */
    ingest_counters c;
    log_limit bad_log;
    char *host;
    int port, keepalive_s;
    pthread_t thread;
    int started;
    /* fleet control: publications posted by the main thread (ingest_publish),
     * the words of a graceful stop, and "a connection was accepted" */
    struct outmsg *out_head, **out_tail;
    size_t out_n;
    char *bye_topic;
    void *bye;
    size_t bye_len;
    int connected_note;
    char *cmd_filter[2];      /* own, fleet; NULL when commands are off */
    ingest_cmd *cmd_head, **cmd_tail;
    size_t cmd_n;
    log_limit cmd_log;
};

typedef struct outmsg {
    char *topic;
    void *payload;
    size_t len;
    int retain;
    void *corr;               /* MQTT 5 correlation data, or NULL */
    size_t corr_len;
    struct outmsg *next;
} outmsg;

static void outmsg_free(outmsg *o)
{
    while (o) {
        outmsg *next = o->next;
        free(o->topic);
        free(o->payload);
        free(o->corr);
        free(o);
        o = next;
    }
}

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

void ingest_msg_tensor(const ingest_msg *m, const uint8_t *key, size_t key_len, ts_tensor *out)
{
    *out = (ts_tensor){.key = key, .key_len = key_len, .name = m->topic, .dtype = m->t.dtype,
                       .ndim = m->t.ndim, .timestamp_ns = m->recv_ns, .data = m->t.data,
                       .data_len = m->t.data_len};
    memcpy(out->shape, m->t.shape, sizeof(out->shape));
}

void ingest_msg_free(ingest_msg *m)
{
    while (m) {
        ingest_msg *next = m->next;
        free(m->topic);
        free(m->pub);
        payload_free(&m->t);
        free(m);
        m = next;
    }
}

/* Subscribes to everything in the table (network thread). No libmosquitto
 * call is made under the mutex (libmosquitto holds its own locks when it
 * calls us, so the other order could deadlock); the SUBACKs are read by
 * this thread too, after this returns. */
static void subscribe_all(ingest *in)
{
    int sent = 0;
    for (size_t i = 0; i < in->n_subs; i++) {
        int rc = mosquitto_subscribe(in->mosq, NULL, in->subs[i].topic, in->subs[i].qos);
        if (rc == MOSQ_ERR_SUCCESS)
            sent++;
        else
            agent_log(LOG_LEVEL_ERROR, "subscribe %s: %s", in->subs[i].topic,
                      mosquitto_strerror(rc));
    }
    for (int i = 0; i < 2 && in->cmd_filter[i]; i++) {
        int rc = mosquitto_subscribe(in->mosq, NULL, in->cmd_filter[i], 1);
        if (rc == MOSQ_ERR_SUCCESS)
            sent++;
        else
            agent_log(LOG_LEVEL_ERROR, "subscribe %s: %s", in->cmd_filter[i],
                      mosquitto_strerror(rc));
    }
    pthread_mutex_lock(&in->mu);
    in->pending_subacks = sent;
    pthread_mutex_unlock(&in->mu);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    ingest *in = obj;
    (void)mosq;
    if (rc) {
        agent_log(LOG_LEVEL_ERROR, "broker %s:%d refused the connection: %s", in->host, in->port,
                  mosquitto_connack_string(rc));
        return; /* counted when the loop gives up on it */
    }
    pthread_mutex_lock(&in->mu);
    in->c.connected = 1;
    in->c.connects++;
    in->attempt_ok = 1;
    in->connected_note = 1;
    pthread_cond_broadcast(&in->nonempty); /* the main loop publishes a status */
    pthread_mutex_unlock(&in->mu);
    subscribe_all(in);
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

static void on_unsubscribe(struct mosquitto *mosq, void *obj, int mid)
{
    ingest *in = obj;
    (void)mosq;
    pthread_mutex_lock(&in->mu);
    if (in->barrier_mid && mid == in->barrier_mid) {
        in->settled_gen++;
        in->barrier_mid = 0;
        pthread_cond_broadcast(&in->nonempty);
    }
    pthread_mutex_unlock(&in->mu);
}

/* Messages still unsettled when the connection went (or at a stop) are
 * handed over unproven and counted: the broker may send them again.
 * Caller holds the mutex. */
static void settle_unproven(ingest *in)
{
    for (ingest_msg *m = in->head; m; m = m->next)
        if (m->need > in->settled_gen) {
            in->c.maybe_duplicated++;
            m->need = 0;
        }
    in->barrier_mid = 0; /* its answer, if any, is not awaited */
    in->unsettled = 0;
    pthread_cond_broadcast(&in->nonempty);
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
    settle_unproven(in);
    pthread_mutex_unlock(&in->mu);
    if (rc && !stopping)
        agent_log(LOG_LEVEL_WARNING, "lost the connection to %s:%d (%s); reconnecting",
                  in->host, in->port, mosquitto_strerror(rc));
}

void ingest_cmd_free(ingest_cmd *c)
{
    while (c) {
        ingest_cmd *next = c->next;
        free(c->topic);
        free(c->body);
        free(c->response_topic);
        free(c->corr);
        free(c);
        c = next;
    }
}

/* 1 when msg is a command (then it is queued or dropped here, never data). */
static int take_command(ingest *in, const struct mosquitto_message *msg,
                        const mosquitto_property *props)
{
    bool match = false;
    for (int i = 0; i < 2 && in->cmd_filter[i] && !match; i++)
        if (mosquitto_topic_matches_sub(in->cmd_filter[i], msg->topic, &match) !=
            MOSQ_ERR_SUCCESS)
            match = false;
    if (!match)
        return 0;
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    ingest_cmd *c = calloc(1, sizeof(*c));
    int ok = c && (c->topic = strdup(msg->topic)) &&
             (len > INGEST_CMD_BODY_MAX || (c->body = malloc(len ? len : 1)));
    if (ok) {
        const char *slash = strrchr(c->topic, '/');
        c->verb = slash ? slash + 1 : c->topic;
        c->len = len;
        c->retained = msg->retain;
        if (c->body)
            memcpy(c->body, msg->payload, len);
        void *corr = NULL;
        uint16_t corr_len = 0;
        mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &c->response_topic,
                                       false);
        /* A response topic that is no topic (wildcards), or that is itself a
         * command topic (a reply there would be taken as a command, here or
         * by the fleet), is ignored: the reply goes to the reply topic. */
        bool loop = false;
        for (int i = 0; i < 2 && c->response_topic && in->cmd_filter[i] && !loop; i++)
            if (mosquitto_topic_matches_sub(in->cmd_filter[i], c->response_topic, &loop) !=
                MOSQ_ERR_SUCCESS)
                loop = true;
        if (c->response_topic &&
            (loop || mosquitto_pub_topic_check(c->response_topic) != MOSQ_ERR_SUCCESS)) {
            free(c->response_topic);
            c->response_topic = NULL;
        }
        if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len,
                                           false)) {
            c->corr = corr;
            c->corr_len = corr_len;
        }
    }
    pthread_mutex_lock(&in->mu);
    if (ok && in->cmd_n < INGEST_CMD_QUEUE) {
        if (!in->cmd_head)
            in->cmd_tail = &in->cmd_head;
        *in->cmd_tail = c;
        in->cmd_tail = &c->next;
        in->cmd_n++;
        in->c.commands++;
        c = NULL;
        pthread_cond_broadcast(&in->nonempty); /* the main loop answers at once */
    } else {
        in->c.commands_dropped++;
        agent_log_limited(&in->cmd_log, 5, 10000, LOG_LEVEL_WARNING,
                          "command on %.200s dropped: %s", msg->topic,
                          ok ? "the command queue is full" : "out of memory");
    }
    pthread_mutex_unlock(&in->mu);
    ingest_cmd_free(c);
    return 1;
}

/* The de-duplication tag (watermark.h) of an MQTT 5 message into m. */
static void read_tag(ingest_msg *m, const mosquitto_property *props)
{
    char *pub = NULL, *seq = NULL, *tm = NULL, id[WM_PUB_ID_MAX + 1];
    int repeated = 0, first = 1;
    for (const mosquitto_property *p = props; p; first = 0) {
        char *name = NULL, *value = NULL;
        /* Each call finds the next user property from p on, p itself
         * skipped after the first. */
        p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value,
                                                !first);
        char **slot = !p ? NULL : !strcmp(name, WM_PROP_PUB) ? &pub
                                : !strcmp(name, WM_PROP_SEQ) ? &seq
                                : !strcmp(name, WM_PROP_TIME) ? &tm : NULL;
        if (slot) {
            repeated |= *slot != NULL;
            free(*slot);
            *slot = value;
            value = NULL;
        }
        free(name);
        free(value);
    }
    int t = repeated ? -1 : wm_tag_parse(pub, seq, id, &m->seq);
    if (t == 1 && !(m->pub = strdup(id)))
        t = -1;
    m->tag_bad = t < 0;
    if (!wm_time_parse(tm, &m->pub_time_ns))
        m->pub_time_ns = 0;
    free(pub);
    free(seq);
    free(tm);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    ingest *in = obj;
    char why[256];
    const agent_sub *sub = NULL;
    size_t sub_i = 0;
    (void)mosq;
    if (take_command(in, msg, props))
        return;
    for (size_t i = 0; i < in->n_subs && !sub; i++) {
        bool match = false;
        if (mosquitto_topic_matches_sub(in->subs[i].topic, msg->topic, &match) ==
                MOSQ_ERR_SUCCESS && match) {
            sub = &in->subs[i];
            sub_i = i;
        }
    }
    pthread_mutex_lock(&in->mu);
    in->c.received++;
    if (!sub) {
        in->c.unmatched++;
        pthread_mutex_unlock(&in->mu);
        return;
    }
    pthread_mutex_unlock(&in->mu);

    ingest_msg *m = calloc(1, sizeof(*m));
    payload_err e = PAYLOAD_NO_MEMORY;
    size_t tl = strlen(msg->topic);
    if (tl + INGEST_KEY_SUFFIX_LEN > TS_MAX_KEY_LEN || tl > TS_MAX_NAME_LEN) {
        /* Never cut a key to fit: two topics would share one. */
        e = PAYLOAD_TOPIC_TOO_LONG;
        snprintf(why, sizeof(why), "a %zu-byte topic makes a %zu-byte key; the limit is %d", tl,
                 tl + INGEST_KEY_SUFFIX_LEN, TS_MAX_KEY_LEN);
    } else if (m && (m->topic = strdup(msg->topic))) {
        e = payload_class(payload_decode(&sub->spec, msg->payload,
                                         (size_t)(msg->payloadlen > 0 ? msg->payloadlen : 0),
                                         &m->t, why, sizeof(why)));
    } else {
        snprintf(why, sizeof(why), "out of memory");
    }
    if (e == PAYLOAD_OK) {
        /* What the engine would refuse is refused here, alone, so that it
         * never poisons a batch. */
        static const uint8_t probe_key[TS_MAX_KEY_LEN];
        ts_tensor t;
        const ts_tensor *one = &t;
        uint64_t cost;
        ingest_msg_tensor(m, probe_key, tl + INGEST_KEY_SUFFIX_LEN, &t);
        int v = ts_batch_cost(&one, 1, &cost);
        if (v) {
            e = PAYLOAD_INVALID;
            snprintf(why, sizeof(why), "the store refuses it: %s", ts_strerror(v));
        }
    }
    if (e == PAYLOAD_OK) {
        m->sub = sub_i;
        read_tag(m, props);
    }
    pthread_mutex_lock(&in->mu);
    if (e != PAYLOAD_OK) {
        in->c.rejected[e]++;
        agent_log_limited(&in->bad_log, 10, 10000, LOG_LEVEL_WARNING,
                          "rejected a %s payload on %.200s%s (%s): %s",
                          payload_format_name(sub->spec.format), msg->topic, tl > 200 ? "..." : "",
                          payload_err_name(e), why);
        pthread_mutex_unlock(&in->mu);
        ingest_msg_free(m);
        return;
    }
    m->recv_ns = plat_now_ns();
    /* Its PUBACK went out before this call: the next barrier covers it. */
    m->need = msg->qos == 1 ? in->settled_gen + 1 + (in->barrier_mid != 0) : 0;
    in->unsettled |= msg->qos == 1;
    in->c.decoded++;
    in->held_n++;
    in->held_bytes += m->t.data_len;
    if (in->tail)
        in->tail->next = m;
    else
        in->head = m;
    in->tail = m;
    pthread_cond_signal(&in->nonempty);
    /* Held past the bound: read nothing more until the main thread has
     * stored some (this message, already acknowledged, counts). */
    while (in->held_n > 1 && (in->held_n > in->hold_n || in->held_bytes > in->hold_bytes) &&
           !in->stopping) {
        in->waiting = 1;
        pthread_cond_broadcast(&in->nonempty);
        pthread_cond_wait(&in->space, &in->mu);
    }
    in->waiting = 0;
    pthread_mutex_unlock(&in->mu);
}

ingest *ingest_new(const agent_config *cfg, size_t hold_n, uint64_t hold_bytes, char *err,
                   size_t errlen)
{
    ingest *in = calloc(1, sizeof(*in));
    int rc;
    char settle[256];
    snprintf(settle, sizeof(settle), "embeddb/%s/settle", cfg->device_id ? cfg->device_id : "");
    if (!in || !(in->subs = subs_copy(cfg)) || !(in->host = strdup(cfg->mqtt.host)) ||
        !(in->settle_topic = strdup(settle))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    in->n_subs = cfg->mqtt.n_subs;
    in->out_tail = &in->out_head;
    in->cmd_tail = &in->cmd_head;
    in->port = cfg->mqtt.port;
    in->keepalive_s = (int)(cfg->mqtt.keepalive_ms / 1000);
    in->hold_n = hold_n ? hold_n : 1;
    in->hold_bytes = hold_bytes;
    pthread_mutex_init(&in->mu, NULL);
    plat_cond_init_mono(&in->nonempty);
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
    mosquitto_connect_callback_set(in->mosq, on_connect);
    mosquitto_subscribe_callback_set(in->mosq, on_subscribe);
    mosquitto_disconnect_callback_set(in->mosq, on_disconnect);
    mosquitto_unsubscribe_callback_set(in->mosq, on_unsubscribe);
    mosquitto_message_v5_callback_set(in->mosq, on_message);
    return in;
fail:
    ingest_free(in);
    return NULL;
}

/* Sleeps up to ms unless a stop comes; the caller holds nothing. */
static void nap(ingest *in, uint64_t ms)
{
    struct timespec ts = plat_mono_after_ms(ms);
    pthread_mutex_lock(&in->mu);
    if (!in->stopping)
        pthread_cond_timedwait(&in->nonempty, &in->mu, &ts);
    pthread_mutex_unlock(&in->mu);
}

/* Swaps in a table posted by ingest_update: unsubscribes the filters it
 * drops, then subscribes to all of it (re-subscribing an existing filter
 * updates its QoS). */
static void apply_update(ingest *in)
{
    pthread_mutex_lock(&in->mu);
    agent_sub *fresh = in->next_subs;
    size_t n_fresh = in->n_next;
    int connected = in->c.connected;
    in->next_subs = NULL;
    pthread_mutex_unlock(&in->mu);
    if (!fresh)
        return;
    for (size_t i = 0; i < in->n_subs; i++) {
        int kept = 0;
        for (size_t j = 0; j < n_fresh && !kept; j++)
            kept = !strcmp(in->subs[i].topic, fresh[j].topic);
        if (!kept)
            mosquitto_unsubscribe(in->mosq, NULL, in->subs[i].topic);
    }
    subs_free(in->subs, in->n_subs);
    in->subs = fresh;
    in->n_subs = n_fresh;
    if (connected)
        subscribe_all(in);
}

/* Sends a settle barrier when messages wait for one and none is out: one
 * barrier per round trip, covering every PUBACK written since the last one
 * (a busy stream shares one; a broker sending one message per PUBACK,
 * max_inflight_messages 1, costs one per message). No timer: mosquitto
 * sends the next queued message only when it reads from us, so a pause
 * before the barrier would cap such a broker at one message per pause.
 * Unthreaded mode: it is written at once, after every PUBACK it covers. */
static void settle_tick(ingest *in)
{
    int mid = 0;
    pthread_mutex_lock(&in->mu);
    int due = in->c.connected && !in->barrier_mid && in->unsettled;
    pthread_mutex_unlock(&in->mu);
    if (!due || mosquitto_unsubscribe(in->mosq, &mid, in->settle_topic) != MOSQ_ERR_SUCCESS)
        return;
    pthread_mutex_lock(&in->mu);
    in->barrier_mid = mid;
    in->unsettled = 0;
    pthread_mutex_unlock(&in->mu);
}

/* Publishes what the main thread posted (network thread), when connected;
 * otherwise it waits for the connection. No libmosquitto call under the
 * mutex (see subscribe_all). */
static void outbox_flush(ingest *in)
{
    pthread_mutex_lock(&in->mu);
    outmsg *list = in->c.connected ? in->out_head : NULL;
    if (list) {
        in->out_head = NULL;
        in->out_tail = &in->out_head;
        in->out_n = 0;
    }
    pthread_mutex_unlock(&in->mu);
    for (outmsg *o = list; o; o = o->next) {
        mosquitto_property *props = NULL;
        int rc = MOSQ_ERR_SUCCESS;
        if (o->corr)
            rc = mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, o->corr,
                                               (uint16_t)o->corr_len);
        if (rc == MOSQ_ERR_SUCCESS)
            rc = mosquitto_publish_v5(in->mosq, NULL, o->topic, (int)o->len, o->payload, 1,
                                      o->retain, props);
        mosquitto_property_free_all(&props);
        if (rc != MOSQ_ERR_SUCCESS)
            agent_log(LOG_LEVEL_WARNING, "publishing on %.200s: %s", o->topic,
                      mosquitto_strerror(rc));
    }
    outmsg_free(list);
}

/* The network thread: loop passes (a barrier that is due is sent before
 * each), reconnects with a backoff from 1 s to 30 s, and the stop. */
static void *run(void *arg)
{
    ingest *in = arg;
    uint64_t backoff_ms = 1000;
    int stopping = 0, need_connect = 0;
    while (!stopping) {
        int rc;
        apply_update(in);
        if (need_connect) {
            rc = mosquitto_reconnect_async(in->mosq);
            need_connect = 0;
        } else {
            settle_tick(in);
            outbox_flush(in);
            rc = mosquitto_loop(in->mosq, LOOP_MS, 1);
        }
        pthread_mutex_lock(&in->mu);
        stopping = in->stopping;
        if (rc == MOSQ_ERR_SUCCESS && in->c.connected)
            backoff_ms = 1000;
        pthread_mutex_unlock(&in->mu);
        if (rc != MOSQ_ERR_SUCCESS && !stopping) {
            /* Lost, refused or never made: try again after the backoff. */
            pthread_mutex_lock(&in->mu);
            in->c.connect_failures += !in->attempt_ok;
            in->attempt_ok = 0;
            settle_unproven(in);
            pthread_mutex_unlock(&in->mu);
            nap(in, backoff_ms);
            backoff_ms = backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2;
            need_connect = 1;
        }
    }
    /* The stop: nothing more is read; DISCONNECT follows every PUBACK
     * written (unthreaded: written at once), and what is unsettled goes to
     * the main thread unproven. */
    pthread_mutex_lock(&in->mu);
    settle_unproven(in);
    int connected = in->c.connected;
    pthread_mutex_unlock(&in->mu);
    /* A DISCONNECT discards the will: say goodbye ourselves, after what is
     * posted (unthreaded: both are written before the DISCONNECT). */
    outbox_flush(in);
    if (connected && in->bye)
        mosquitto_publish(in->mosq, NULL, in->bye_topic, (int)in->bye_len, in->bye, 1, true);
    mosquitto_disconnect(in->mosq);
    return NULL;
}

int ingest_start(ingest *in, char *err, size_t errlen)
{
    int rc = mosquitto_connect_async(in->mosq, in->host, in->port, in->keepalive_s);
    /* An unreachable broker is not fatal: the network thread retries. */
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_ERRNO && rc != MOSQ_ERR_NO_CONN)
        agent_log(LOG_LEVEL_WARNING, "connecting to %s:%d: %s (will retry)", in->host, in->port,
                  mosquitto_strerror(rc));
    if ((rc = pthread_create(&in->thread, NULL, run, in))) {
        snprintf(err, errlen, "starting the MQTT thread: %s", strerror(rc));
        return -rc;
    }
    in->started = 1;
    return 0;
}

ingest_msg *ingest_pop(ingest *in, uint64_t wait_ms, size_t max_n, uint64_t max_bytes,
                       int *more)
{
    ingest_msg *list = NULL, **tail = &list;
    size_t n = 0;
    uint64_t bytes = 0;
    pthread_mutex_lock(&in->mu);
    if ((!in->head || (in->head->need > in->settled_gen && !in->waiting) || !max_n) && wait_ms &&
        !in->stopping && !in->woken) {
        struct timespec ts = plat_mono_after_ms(wait_ms);
        pthread_cond_timedwait(&in->nonempty, &in->mu, &ts);
    }
    in->woken = 0;
    /* A network thread waiting for room cannot read the barrier's answer:
     * take the oldest unsettled messages unproven rather than wait forever. */
    if (in->waiting) {
        size_t k = 0;
        for (ingest_msg *m = in->head; m && m->need > in->settled_gen && k < max_n;
             m = m->next, k++) {
            in->c.maybe_duplicated++;
            m->need = 0;
        }
    }
    while (in->head && in->head->need <= in->settled_gen && n < max_n &&
           (!n || bytes + in->head->t.data_len <= max_bytes)) {
        ingest_msg *m = in->head;
        in->head = m->next;
        m->next = NULL;
        *tail = m;
        tail = &m->next;
        n++;
        bytes += m->t.data_len;
    }
    if (!in->head)
        in->tail = NULL;
    if (more)
        *more = in->head && in->head->need <= in->settled_gen;
    pthread_mutex_unlock(&in->mu);
    return list;
}

void ingest_wake(ingest *in)
{
    pthread_mutex_lock(&in->mu);
    in->woken = 1;
    pthread_cond_broadcast(&in->nonempty);
    pthread_mutex_unlock(&in->mu);
}

void ingest_done(ingest *in, size_t n, uint64_t bytes)
{
    pthread_mutex_lock(&in->mu);
    in->held_n -= n < in->held_n ? n : in->held_n;
    in->held_bytes -= bytes < in->held_bytes ? bytes : in->held_bytes;
    pthread_cond_broadcast(&in->space);
    pthread_mutex_unlock(&in->mu);
}

void ingest_count_rejected(ingest *in, payload_err why)
{
    pthread_mutex_lock(&in->mu);
    if ((unsigned)why < PAYLOAD_N_ERRS)
        in->c.rejected[why]++;
    pthread_mutex_unlock(&in->mu);
}

int ingest_update(ingest *in, const agent_config *cfg)
{
    agent_sub *fresh = subs_copy(cfg);
    if (!fresh)
        return -ENOMEM;
    pthread_mutex_lock(&in->mu);
    if (in->next_subs)
        subs_free(in->next_subs, in->n_next);
    in->next_subs = fresh;
    in->n_next = cfg->mqtt.n_subs;
    pthread_mutex_unlock(&in->mu);
    return 0;
}

int ingest_set_will(ingest *in, const char *topic, const void *will, size_t will_len,
                    const void *bye, size_t bye_len)
{
    if (will_len > INT32_MAX || bye_len > INT32_MAX)
        return -EINVAL;
    free(in->bye_topic);
    free(in->bye);
    in->bye = malloc(bye_len ? bye_len : 1);
    if (!(in->bye_topic = strdup(topic)) || !in->bye)
        return -ENOMEM;
    memcpy(in->bye, bye, bye_len);
    in->bye_len = bye_len;
    int rc = mosquitto_will_set(in->mosq, topic, (int)will_len, will, 1, true);
    return rc == MOSQ_ERR_SUCCESS ? 0 : rc == MOSQ_ERR_NOMEM ? -ENOMEM : -EINVAL;
}

static int enqueue(ingest *in, const char *topic, const void *corr, size_t corr_len,
                   const void *payload, size_t len, int retain)
{
    if (len > INT32_MAX || corr_len > UINT16_MAX)
        return -EINVAL;
    outmsg *o = calloc(1, sizeof(*o));
    if (!o || !(o->topic = strdup(topic)) || !(o->payload = malloc(len ? len : 1)) ||
        (corr && !(o->corr = malloc(corr_len ? corr_len : 1)))) {
        outmsg_free(o);
        return -ENOMEM;
    }
    if (corr)
        memcpy(o->corr, corr, corr_len);
    o->corr_len = corr_len;
    memcpy(o->payload, payload, len);
    o->len = len;
    o->retain = retain;
    int rc = 0;
    pthread_mutex_lock(&in->mu);
    outmsg *old = NULL;
    if (retain)
        for (outmsg *q = in->out_head; q && !old; q = q->next)
            if (q->retain && !strcmp(q->topic, topic))
                old = q;
    if (old) {
        /* swap the newer payload into the queued place */
        void *p = old->payload;
        old->payload = o->payload;
        old->len = o->len;
        o->payload = p;
    } else if (in->out_n >= INGEST_OUTBOX_MAX) {
        rc = -EAGAIN;
    } else {
        if (!in->out_head)
            in->out_tail = &in->out_head;
        *in->out_tail = o;
        in->out_tail = &o->next;
        in->out_n++;
        o = NULL;
    }
    pthread_mutex_unlock(&in->mu);
    outmsg_free(o);
    return rc;
}

int ingest_publish(ingest *in, const char *topic, const void *payload, size_t len, int retain)
{
    return enqueue(in, topic, NULL, 0, payload, len, retain);
}

int ingest_reply(ingest *in, const char *topic, const void *corr, size_t corr_len,
                 const void *payload, size_t len)
{
    return enqueue(in, topic, corr, corr_len, payload, len, 0);
}

int ingest_set_commands(ingest *in, const char *own_filter, const char *fleet_filter)
{
    if (!(in->cmd_filter[0] = strdup(own_filter)) || !(in->cmd_filter[1] = strdup(fleet_filter)))
        return -ENOMEM;
    return 0;
}

ingest_cmd *ingest_take_command(ingest *in)
{
    pthread_mutex_lock(&in->mu);
    ingest_cmd *c = in->cmd_head;
    if (c) {
        in->cmd_head = c->next;
        c->next = NULL;
        in->cmd_n--;
    }
    pthread_mutex_unlock(&in->mu);
    return c;
}

int64_t ingest_oldest_ns(ingest *in)
{
    pthread_mutex_lock(&in->mu);
    int64_t t = in->head ? in->head->recv_ns : INT64_MAX;
    pthread_mutex_unlock(&in->mu);
    return t;
}

int ingest_topic_matches(const char *filter, const char *topic)
{
    bool match = false;
    return mosquitto_topic_matches_sub(filter, topic, &match) == MOSQ_ERR_SUCCESS && match;
}

int ingest_take_connected(ingest *in)
{
    pthread_mutex_lock(&in->mu);
    int note = in->connected_note;
    in->connected_note = 0;
    pthread_mutex_unlock(&in->mu);
    return note;
}

void ingest_counters_get(ingest *in, ingest_counters *out)
{
    pthread_mutex_lock(&in->mu);
    *out = in->c;
    out->held = in->held_n;
    pthread_mutex_unlock(&in->mu);
}

void ingest_stop(ingest *in)
{
    if (!in || !in->started)
        return;
    pthread_mutex_lock(&in->mu);
    in->stopping = 1;
    pthread_cond_broadcast(&in->space);    /* a callback waiting for room */
    pthread_cond_broadcast(&in->nonempty); /* a backoff nap */
    pthread_mutex_unlock(&in->mu);
    pthread_join(in->thread, NULL);
    in->started = 0;
}

void ingest_free(ingest *in)
{
    if (!in)
        return;
    ingest_stop(in);
    if (in->mosq) {
        mosquitto_destroy(in->mosq);
        mosquitto_lib_cleanup();
        pthread_mutex_destroy(&in->mu);
        pthread_cond_destroy(&in->nonempty);
        pthread_cond_destroy(&in->space);
    }
    ingest_msg_free(in->head);
    subs_free(in->subs, in->n_subs);
    if (in->next_subs)
        subs_free(in->next_subs, in->n_next);
    free(in->host);
    free(in->settle_topic);
    outmsg_free(in->out_head);
    ingest_cmd_free(in->cmd_head);
    free(in->cmd_filter[0]);
    free(in->cmd_filter[1]);
    free(in->bye_topic);
    free(in->bye);
    free(in);
}
