/*
 * payload.h -- decoding MQTT message payloads into tensors for the agent
 * (and HTTP request bodies for the console, with the same rules).
 *
 * Formats (chosen per subscription in the config):
 *   npy   NumPy .npy format 1.0, 2.0 or 3.0, little-endian, C order, every
 *         dtype the engine has. The header is read as Python would read the
 *         dict NumPy writes: ASCII only, the keys descr, fortran_order and
 *         shape once each, separated by commas, nothing but blanks after the
 *         '}'. Refused (unsupported): big-endian, Fortran order with 2+
 *         dimensions, other versions, structured dtypes, and a multi-byte
 *         descr that does not state its byte order ('|f4', '=f4').
 *   raw   little-endian element bytes; dtype and shape come from the config
 *   json  {"shape":[2,3],"dtype":"float32","data":[...]} (keys in any order,
 *         each at most once, data required) or a bare list [1,2,3]; dtype
 *         from the config when absent (default float32). Nested lists must
 *         be rectangular ([[1,2],[3]] is malformed, "ragged") and give the
 *         shape: [[1,2,3],[4,5,6]] is (2, 3). A declared shape ("shape",
 *         else the config's) takes flat data of that many values or nesting
 *         equal to it (else mismatch). More than 8 levels: unsupported.
 *         Strings (keys, dtype names) are printable ASCII without escapes
 *         (an escape is unsupported).
 *   csv   one line of numbers separated by ',' (spaces and tabs around them
 *         allowed; blank space and line endings before and after the line
 *         ignored); dtype from the config (default float32), shape from
 *         the config or [n]. An empty field or a line break inside is
 *         malformed.
 * Numbers (json and csv), decided per dtype so that nothing is rounded or
 * clipped silently:
 *   - integer dtypes and bool take the decimal value exactly (int64 and
 *     uint64 in full, never through a double); 1e3 and 2.0 are integers,
 *     2.5 is not (mismatch); a value outside the dtype's range is a
 *     mismatch; bool takes 0 and 1.
 *   - float dtypes take the correctly rounded value (float32 and complex64
 *     straight from the text, float16 and bfloat16 through float32, complex
 *     dtypes as the real part with imaginary 0); a finite number too large
 *     for the dtype is a mismatch, not infinity; one too small rounds to 0
 *     or a subnormal, as any rounding does.
 *   - nan, inf and infinity (any case, optional sign: NumPy's and Python's
 *     spellings) are values of the float dtypes, and "not an integer" for
 *     the others.
 *   - JSON true and false are 1 and 0, as in NumPy.
 *   - a number is [+-]digits[.digits][e[+-]digits] (".5" and "5." too) of at
 *     most 511 characters; anything else (hex, a NUL, another byte) is
 *     malformed, never read as 0 or as the end of the text.
 * Bool elements in npy and raw payloads must be the bytes 0 or 1 (else
 * mismatch). Every decode is bounded by max_payload and checked against its
 * shape; a rejected payload has a reason class (for the agent's counters)
 * and words.
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
    PAYLOAD_MALFORMED,     /* not the format it claims (incl. ragged JSON lists) */
    PAYLOAD_UNSUPPORTED,   /* valid, but a dtype/order/version/escape we refuse */
    PAYLOAD_MISMATCH,      /* size or shape disagrees with itself or the config,
                              or a value does not fit the dtype */
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

/* Parses "npy", "raw", "json", "csv". 0 or -EINVAL. */
int payload_format_parse(const char *s, payload_format *out);
const char *payload_format_name(payload_format f);

/* Decodes buf[0..len) (borrowed). 0: *out owns a copy of the data.
 * Otherwise a negative code whose class payload_class tells (too_large
 * -EFBIG, malformed -EBADMSG, unsupported -ENOTSUP, mismatch -EINVAL,
 * no_memory -ENOMEM), *out is empty and why (always NUL-terminated) says
 * what was wrong. */
int payload_decode(const payload_spec *spec, const void *buf, size_t len, payload_tensor *out,
                   char *why, size_t why_len);
/* The class of a code from payload_decode (PAYLOAD_OK for 0), and back: the
 * agent counts rejections per class. */
payload_err payload_class(int rc);
int payload_errno(payload_err e);

void payload_free(payload_tensor *t);

/* The length of the .npy file at the start of buf[0..len), for bodies that
 * hold several one after another (the console's batch form): its header
 * checked exactly as payload_decode checks it, plus shape x dtype bytes of
 * data. 0 and *file_len (<= len), or payload_decode's codes with why set
 * (mismatch when the data is cut short). */
int payload_npy_length(const void *buf, size_t len, size_t *file_len, char *why, size_t why_len);

#endif
