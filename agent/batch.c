/*
 * batch.c -- the batch between the ingest queue and the store (contract in
 * batch.h). Pure bookkeeping over memory: no I/O, no locks.
 */
#include "batch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void batch_init(batch *b, const agent_config *cfg)
{
    memset(b, 0, sizeof(*b));
    batch_set_limits(b, cfg);
}

void batch_set_limits(batch *b, const agent_config *cfg)
{
    b->max_tensors = cfg->batch.max_tensors ? cfg->batch.max_tensors : 1;
    b->max_bytes = cfg->batch.max_bytes;
    b->max_delay_ms = cfg->batch.max_delay_ms;
}

void batch_free(batch *b)
{
    batch_clear(b);
    free(b->t);
    free(b->ptrs);
    free(b->keys);
    b->t = NULL;
    b->ptrs = NULL;
    b->keys = NULL;
    b->cap = 0;
}

void batch_room(const batch *b, size_t *n, uint64_t *bytes)
{
    int full = b->n >= b->max_tensors || (b->n && b->bytes >= b->max_bytes) || b->blocked;
    *n = full ? 0 : (size_t)(b->max_tensors - b->n);
    *bytes = b->bytes < b->max_bytes ? b->max_bytes - b->bytes : 0;
}

void batch_add(batch *b, ingest_msg *list, int more, uint64_t now_mono_ns)
{
    if (list && !b->head)
        b->first_mono_ns = now_mono_ns;
    while (list) {
        ingest_msg *m = list;
        list = list->next;
        m->next = NULL;
        if (b->tail)
            b->tail->next = m;
        else
            b->head = m;
        b->tail = m;
        b->n++;
        b->bytes += m->t.data_len;
    }
    /* Waiting for room that never comes would only add delay. */
    b->blocked = b->n && more;
}

int batch_due(const batch *b, uint64_t now_mono_ns)
{
    if (!b->n)
        return 0;
    return b->n >= b->max_tensors || b->bytes >= b->max_bytes || b->blocked ||
           (now_mono_ns - b->first_mono_ns) / 1000000 >= b->max_delay_ms;
}

uint64_t batch_wait_ms(const batch *b, uint64_t now_mono_ns)
{
    if (!b->n || batch_due(b, now_mono_ns))
        return 0;
    return b->max_delay_ms - (now_mono_ns - b->first_mono_ns) / 1000000;
}

static int reserve(batch *b, size_t n)
{
    if (n <= b->cap)
        return 0;
    size_t cap = n < 64 ? 64 : n;
    ts_tensor *t = realloc(b->t, cap * sizeof(*t));
    if (t)
        b->t = t;
    const ts_tensor **p = realloc(b->ptrs, cap * sizeof(*p));
    if (p)
        b->ptrs = p;
    char *k = realloc(b->keys, cap * (TS_MAX_KEY_LEN + 1));
    if (k)
        b->keys = k;
    if (!t || !p || !k)
        return -ENOMEM;
    b->cap = cap;
    return 0;
}

int batch_view(batch *b, uint64_t first_key, const ts_tensor *const **out, size_t *bad)
{
    size_t i = 0;
    *out = NULL;
    *bad = 0;
    if (reserve(b, b->n))
        return -ENOMEM;
    for (ingest_msg *m = b->head; m; m = m->next, i++) {
        char *k = b->keys + i * (TS_MAX_KEY_LEN + 1);
        int len = snprintf(k, TS_MAX_KEY_LEN + 1, "%s#%020" PRIu64, m->topic, first_key + i);
        if (len < 0 || len > TS_MAX_KEY_LEN) {
            *bad = i;
            return -ENAMETOOLONG;
        }
        ingest_msg_tensor(m, (const uint8_t *)k, (size_t)len, &b->t[i]);
        b->ptrs[i] = &b->t[i];
    }
    *out = b->ptrs;
    return 0;
}

ingest_msg *batch_remove(batch *b, size_t i)
{
    ingest_msg **pp = &b->head, *prev = NULL;
    for (size_t k = 0; *pp && k < i; k++) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    ingest_msg *m = *pp;
    if (!m)
        return NULL;
    *pp = m->next;
    if (b->tail == m)
        b->tail = prev;
    m->next = NULL;
    b->n--;
    b->bytes -= m->t.data_len;
    if (!b->n)
        b->blocked = 0;
    return m;
}

void batch_clear(batch *b)
{
    ingest_msg_free(b->head);
    b->head = b->tail = NULL;
    b->n = 0;
    b->bytes = 0;
    b->blocked = 0;
}
