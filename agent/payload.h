/*
 * payload.h -- decoding MQTT message payloads into tensors for the agent.
 *
 * Formats (chosen per subscription in the config):
 *   npy   NumPy .npy v1/v2/v3, little-endian, C order, every dtype the engine
 *         has; big-endian or Fortran-order arrays are rejected with a reason
 *   raw   little-endian element bytes; dtype and shape come from the config
 *   json  {"shape":[2,3],"dtype":"float32","data":[...]} (data may be nested
 *         lists) or a bare array [1,2,3] (dtype from the config, default
 *         float32)
 *   csv   one line of numbers; dtype from the config (default float32),
 *         shape from the config or [n]
 * Every decode is bounded by max_payload and checked against its shape; a
 * rejected payload has a reason class (for the agent's counters) and words.
 * Pure functions over memory: no I/O, no MQTT.
 */
#ifndef EMBEDDB_AGENT_PAYLOAD_H
#define EMBEDDB_AGENT_PAYLOAD_H

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

typedef enum payload_format {
    PAYLOAD_NPY = 1,
    PAYLOAD_RAW,
    PAYLOAD_JSON,
    PAYLOAD_CSV,
} payload_format;

/* Why a payload was rejected: the agent counts rejections per class. */
typedef enum payload_err {
    PAYLOAD_OK = 0,
    PAYLOAD_TOO_LARGE,     /* over max_payload */
    PAYLOAD_MALFORMED,     /* not the format it claims */
    PAYLOAD_UNSUPPORTED,   /* valid, but a dtype/order/version we refuse */
    PAYLOAD_MISMATCH,      /* size or shape disagrees with itself or the config */
    PAYLOAD_NO_MEMORY,
    PAYLOAD_TOPIC_TOO_LONG, /* the topic cannot make a key or name (TS_MAX_KEY_LEN) */
    PAYLOAD_INVALID,       /* a tensor the engine would refuse (ts_validate) */
    PAYLOAD_N_ERRS
} payload_err;

/* Short name of an error class ("too_large", "malformed", ...). */
const char *payload_err_name(payload_err e);

typedef struct payload_spec {
    payload_format format;
    ts_dtype dtype;        /* raw: required; json/csv: default (0 = float32) */
    int has_shape;         /* raw: required; csv and bare json: checked */
    uint32_t ndim;
    uint64_t shape[TS_MAX_DIMS];
    size_t max_payload;    /* 0 = no limit */
} payload_spec;

/* A decoded tensor; data is owned (malloc) and released by payload_free. */
typedef struct payload_tensor {
    ts_dtype dtype;
    uint32_t ndim;
    uint64_t shape[TS_MAX_DIMS];
    uint8_t *data;
    size_t data_len;
} payload_tensor;

/* Parses "npy", "raw", "json", "csv". 0 or -1. */
int payload_format_parse(const char *s, payload_format *out);
const char *payload_format_name(payload_format f);

/* Decodes buf[0..len) (borrowed). On PAYLOAD_OK *out owns a copy of the
 * data; otherwise *out is empty and why (always NUL-terminated) says what
 * was wrong. */
payload_err payload_decode(const payload_spec *spec, const void *buf, size_t len,
                           payload_tensor *out, char *why, size_t why_len);

void payload_free(payload_tensor *t);

#endif
