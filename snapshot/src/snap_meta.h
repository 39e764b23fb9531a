/*
 * snap_meta.h -- the text of a snapshot's MANIFEST.json and STATE, both
 * described byte for byte in snapshot/FORMAT.md: writing them, and reading
 * back what the library needs (MANIFEST.json's file list and seq range,
 * every STATE field). Pure functions over memory: no I/O. The two line
 * parsers the fuzzer drives, snap_parse_state and snap_parse_file_line, are
 * declared in embeddb/snapshot.h. Internal to snapshot/.
 */
#ifndef EMBEDDB_SNAP_META_H
#define EMBEDDB_SNAP_META_H

#include "embeddb/snapshot.h"

#include <stddef.h>
#include <stdint.h>

/* A growing text buffer with a sticky error, like Redis's rio: build it
 * whole, check oom once at the end. */
typedef struct snap_text {
    char *p;
    size_t len, cap;
    int oom;
} snap_text;

void snap_text_add(snap_text *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void snap_text_free(snap_text *b);

typedef struct snap_topic {
    char *name;
    uint64_t n;
} snap_topic;

typedef struct snap_file {
    char name[64];          /* sst_NNNNNN.sst or MANIFEST */
    uint64_t bytes;
    char sha256[65];        /* lower-case hex */
} snap_file;

/* A capture window as its CAPTURE file and MANIFEST.json's "capture"
 * member say it (snapshot/FORMAT.md). */
typedef struct snap_capture_meta {
    char label[SNAP_LABEL_MAX + 1];
    int64_t trigger_ns, from_ns, to_ns;
    char filters[SNAP_FILTERS_MAX][SNAP_FILTER_MAX + 1];
    size_t n_filters;
} snap_capture_meta;

/* CAPTURE's text, appended to b (every string is printable ASCII: checked
 * by whoever built c). */
void snap_capture_text(const snap_capture_meta *c, snap_text *b);
/* CAPTURE's text back: 0, or TS_ECORRUPT when a line is not key=value of
 * printable ASCII, a field is missing or out of range, or from >= to. */
int snap_parse_capture(const char *text, size_t len, snap_capture_meta *c);

/* What MANIFEST.json says; every pointer borrowed. */
typedef struct snap_manifest {
    const char *device_id, *name;
    int64_t created_ns;
    uint64_t tensors, seq_min, seq_max;
    int64_t t_min, t_max;
    const uint8_t *k_min, *k_max;
    size_t k_min_len, k_max_len;
    const snap_topic *topics;
    size_t n_topics;
    const snap_file *files;
    size_t n_files;
    const snap_capture_meta *capture; /* NULL: a rolling snapshot */
} snap_manifest;

/* MANIFEST.json's text, appended to b. */
void snap_manifest_json(const snap_manifest *m, snap_text *b);
/* The "files" of a MANIFEST.json text (NUL-terminated): *out malloc'ed
 * (caller frees). TS_ECORRUPT when it lists none, -ENOMEM. */
int snap_manifest_files(const char *text, snap_file **out, size_t *n);
/* Its "seq_range" (within the first lines). 1 when found, else 0. */
int snap_manifest_seq_range(const char *text, uint64_t *lo, uint64_t *hi);

/* STATE's text, appended to b. A newline in si->error would end the value:
 * it is written as a space. */
void snap_state_text(const snap_info *si, snap_text *b);

#endif
