/*
 * snapshot.h -- the public API of the snapshot library (libembeddb_snapshot):
 * rolling snapshots of a store on flash -- sealing, recovery, listing,
 * state, verification and deletion -- shared by embeddb-agent and the
 * embeddb CLI. No threads and no network here: the agent's main thread
 * begins seals and applies retention, its upload worker finishes seals and
 * uploads; the CLI lists, verifies and seals on demand. Every byte of the
 * files is in snapshot/FORMAT.md.
 *
 * Layout, under ROOT = <storage.dir>/snapshots:
 *   .seal-new/         a checkpoint being made (garbage after a crash)
 *   .seal-NAME/        checkpoint committed and released from the store;
 *                      hashes and MANIFEST.json not yet written
 *   NAME/              a sealed snapshot: a read-only TensorStore (MANIFEST,
 *                      sst_N.sst hard links), MANIFEST.json, STATE
 *   .del-NAME/         being deleted (finished by the next recovery)
 * NAME is <device_id>-<seq>, seq the sequence number of its first tensor,
 * 20 digits, so names sort by age and never repeat.
 *
 * MANIFEST.json (in the snapshot and in its upload): device id, name, seq
 * and time ranges, key range, tensor count per topic (tensor name), and
 * each store file's size and SHA-256. STATE (never uploaded): the upload
 * state, attempts, last error, the length and SHA-256 of the tar stream
 * (tar.h) that carries the snapshot, computed once at seal time, and those
 * of its compressed object (wire.h) once the uploader has measured one.
 *
 * Every function returns 0 or a negative -errno / TS_E* code and, where it
 * takes err, a message naming the file and the failing call. Every file call
 * goes through the vfs given (borrowed for the call; plat_vfs_default() in
 * production, the fault vfs in the power-cut tests).
 *
 * A snapshot that cannot be finished or recovered (its checkpoint is
 * damaged) is set aside: published under NAME with state "failed" and the
 * reason in STATE, shown by snap_list, never uploaded, and never in the
 * way of the others.
 */
#ifndef EMBEDDB_SNAPSHOT_H
#define EMBEDDB_SNAPSHOT_H

#include "embeddb/tar.h"

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

#define SNAP_ROOT_NAME "snapshots"
#define SNAP_NAME_MAX 128
#define SNAP_DEVICE_ID_MAX 64

typedef enum snap_state {
    SNAP_SEALED = 0,    /* waiting for (another) upload attempt */
    SNAP_UPLOADING = 1, /* an attempt is in progress (sealed after a restart) */
    SNAP_UPLOADED = 2,  /* the server confirmed it (2xx) */
    SNAP_FAILED = 3,    /* refused with a 4xx, or could not be finished;
                           left for an operator */
    SNAP_SEALING = 4,   /* listing only: a .seal-NAME waiting to be
                           finished (hashes, MANIFEST.json); never in STATE */
} snap_state;

const char *snap_state_name(snap_state st);

typedef struct snap_info {
    char name[SNAP_NAME_MAX];
    uint64_t seq;
    snap_state state;
    uint64_t disk_bytes;    /* all its files */
    uint64_t tensors;
    uint64_t tar_bytes;
    char tar_sha256[65];
    /* The compressed object last measured for upload (embeddb/wire.h):
     * codec name ("" when none was), level, length and SHA-256. Valid only
     * for that codec and level; the uploader measures again otherwise. */
    char object_codec[8];
    int object_level;
    uint64_t object_bytes;
    char object_sha256[65];
    int64_t created_ns;
    uint64_t attempts;
    int64_t updated_ns;
    char error[256];        /* last failure, one line; "" when none */
    char capture[65];       /* a capture window's label (snap_capture);
                               "" for a rolling snapshot */
} snap_info;

/* 1 when id can name a device: 1..64 of [A-Za-z0-9._-], not starting with
 * '.' (it becomes part of directory and object names). */
int snap_device_id_ok(const char *id);

/* 1 when name is exactly a snapshot name: a device id (snap_device_id_ok),
 * '-', 20 digits; *seq (optional) gets the number. Anything else -- "..",
 * slashes, another suffix -- is refused, so a name from a command line can
 * never reach outside ROOT. */
int snap_name_ok(const char *name, uint64_t *seq);

/* ROOT for a store directory into out. */
int snap_root(const char *store_dir, char *out, size_t len);

/*
 * Main thread, store open for writing: checkpoints every tensor of s into
 * ROOT/.seal-NAME (created here with ROOT) and releases them from s. On
 * return the snapshot is durable and its tensors have left the store;
 * snap_finish completes it. TS_ENOTFOUND when the store holds nothing.
 * *info describes what moved. name receives NAME.
 */
int snap_begin(plat_vfs *vfs, ts_store *s, const char *root, const char *device_id, char *name,
               size_t name_len, ts_checkpoint_info *info, char *err, size_t errlen);

/*
 * Startup, before anything else touches ROOT: removes .seal-new and the
 * leftovers of deletions and of interrupted STATE writes, releases from s
 * whatever a committed .seal-NAME holds (a crash may have come before the
 * release), and turns "uploading" back into "sealed" (the attempt died with
 * the process). A .seal-NAME whose checkpoint does not open is set aside as
 * failed (nothing is released for it). It goes on past every problem; the
 * return value and err are the first one's. *n_seals gets the number of
 * .seal-NAME directories waiting for snap_finish_all.
 */
int snap_recover(plat_vfs *vfs, ts_store *s, const char *root, size_t *n_seals, char *err,
                 size_t errlen);

/*
 * One above the highest sequence number any snapshot in ROOT holds (1 when
 * there is none), from MANIFEST.json's seq_range, a .seal-NAME's checkpoint
 * and every name's own number. The store must never hand these out again
 * (ts_raise_seq): snapshot names and the agent's keys stay unique even if
 * the store's own count were wrong.
 */
int snap_seq_floor(plat_vfs *vfs, const char *root, uint64_t *floor, char *err, size_t errlen);

/*
 * Finishes every .seal-NAME: hashes its files (one read pass, which also
 * yields the tar stream's SHA-256), writes MANIFEST.json and STATE, syncs,
 * and renames it to NAME. Reads and writes only ROOT, so it may run on
 * another thread than the store's. One that fails is passed over, never in
 * the way of the next: a damaged checkpoint (TS_ECORRUPT and other errors
 * that another try cannot cure) is set aside as failed at once; I/O errors,
 * ENOSPC and ENOMEM leave it for the next call. *n_done counts the
 * snapshots finished, *n_failed (optional) those set aside; the return
 * value and err are the first failure's.
 */
int snap_finish_all(plat_vfs *vfs, const char *root, const char *device_id, size_t *n_done,
                    size_t *n_failed, char *err, size_t errlen);

/* The snapshots in ROOT, oldest first (*out malloc'ed, caller frees): every
 * NAME, and every .seal-NAME as SNAP_SEALING. With sizes set each one's
 * disk_bytes is measured (a stat of every file: for budgets and listings;
 * 0 otherwise). *pending_bytes (optional) gets the bytes in other
 * dot-directories (.seal-new, .del-*). */
int snap_list(plat_vfs *vfs, const char *root, snap_info **out, size_t *n, uint64_t *pending_bytes,
              int sizes);
/* One snapshot's STATE (disk_bytes stays 0: snap_list measures sizes).
 * -ENOENT when it does not exist or name is not a snapshot name
 * (snap_name_ok). */
int snap_read(plat_vfs *vfs, const char *root, const char *name, snap_info *out);
/* Rewrites NAME/STATE from si (atomically: temp, fsync, rename, dirsync). */
int snap_write_state(plat_vfs *vfs, const char *root, const snap_info *si);

/* Hands a failed snapshot back: an uploaded-but-refused one becomes sealed
 * (attempts and error cleared) for the uploader; one set aside before it
 * was finished goes back to .seal-NAME for snap_finish_all. *si gets its
 * state before (and si->state after) the change. -ENOENT when there is no
 * such snapshot, -EINVAL when it is not failed. */
int snap_retry(plat_vfs *vfs, const char *root, const char *name, snap_info *si);

/* The progress of an S3 multipart upload (the agent's multipart.c writes
 * it; snapshot/FORMAT.md), and the name prefix of one set aside for the
 * uploader to abort on the server: ROOT/.abort-NAME.K. */
#define SNAP_MULTIPART_NAME "UPLOAD"
#define SNAP_ABORT_PREFIX ".abort-"

/* Moves NAME/UPLOAD, if there is one, to ROOT/.abort-NAME.K (the first free
 * K below 1000) and syncs ROOT, so a snapshot that is deleted or given up
 * never leaves a multipart upload on the server that nobody aborts. 0 (also
 * when there was nothing to move) or -errno. */
int snap_queue_abort(plat_vfs *vfs, const char *root, const char *name);

/* Removes NAME and its files (renamed to .del-NAME first, so a crash never
 * leaves a half-deleted snapshot that looks whole), after snap_queue_abort. */
int snap_delete(plat_vfs *vfs, const char *root, const char *name);

/* The files of NAME as tar members, in upload order (SSTs, MANIFEST,
 * MANIFEST.json). *m and *paths are malloc'ed together: free(*m). */
int snap_members(plat_vfs *vfs, const char *root, const char *name, tar_member **m, size_t *n);
/* mtime the tar headers carry: the snapshot's creation second. */
int64_t snap_tar_mtime(const snap_info *si);

/* Called for each mismatch verify finds. */
typedef void (*snap_verify_fn)(void *ctx, const char *msg);
/* Re-hashes NAME's files against MANIFEST.json. 0 when all match,
 * TS_ECORRUPT (with *n_bad) when not, another code when it cannot read. */
int snap_verify(plat_vfs *vfs, const char *root, const char *name, snap_verify_fn fn, void *ctx,
                uint64_t *n_bad);

/* ---- capture windows ---------------------------------------------------- */

/* 1 when the snapshot or checkpoint directory dir (NAME, .seal-NAME) is a
 * capture window's: a copy of tensors a rolling snapshot or the live store
 * holds, never a source of anything but its window. */
int snap_is_capture(plat_vfs *vfs, const char *dir);

#define SNAP_LABEL_MAX 64       /* 1..64 of [A-Za-z0-9._-] (snap_device_id_ok) */
#define SNAP_FILTERS_MAX 8      /* topic filters per window */
#define SNAP_FILTER_MAX 256     /* bytes of one filter */

/* 1 when a tensor named `name` (the agent names tensors after their MQTT
 * topic) falls under `filter`; the caller brings the matching rules (the
 * agent: libmosquitto's). */
typedef int (*snap_match_fn)(void *ctx, const char *filter, const char *name);

/* A capture window: the tensors with a timestamp in [from_ns, to_ns) whose
 * name matches one of the filters. Every pointer borrowed for the call. */
typedef struct snap_window {
    const char *label;          /* 1..SNAP_LABEL_MAX of [A-Za-z0-9._-] */
    int64_t trigger_ns;         /* when it was asked for (wall clock) */
    int64_t from_ns, to_ns;
    const char *const *filters; /* 1..SNAP_FILTERS_MAX, each printable ASCII */
    size_t n_filters;
    snap_match_fn match;
    void *match_ctx;
} snap_window;

/*
 * Main thread, store open for writing: seals a snapshot holding copies of
 * exactly the window's tensors (their keys, names, timestamps and bytes),
 * read through ts_scan_time from the live store and from every rolling
 * snapshot still in ROOT (sealed, being finished, uploaded and kept), so
 * the window is whole for as far back as flash holds it. Nothing leaves the
 * live store. The copy is built as a store in ROOT/.capture-new, handed to
 * ROOT/.seal-new as a checkpoint with a CAPTURE file (label, times,
 * filters), and committed by the rename to .seal-NAME; snap_finish_all then
 * finishes it like any seal, adding the window to MANIFEST.json and the
 * label to STATE. The copies get fresh sequence numbers from the live
 * store's (which is raised past them: that seals its open WAL segment), so
 * NAME never repeats. *tensors gets how many were copied. TS_ENOTFOUND when
 * the window holds none (nothing is created).
 */
int snap_capture(plat_vfs *vfs, ts_store *live, const char *root, const char *device_id,
                 const snap_window *w, char *name, size_t name_len, uint64_t *tensors, char *err,
                 size_t errlen);

/* Parses one "files" line of MANIFEST.json; exposed for the fuzzer. 1 when
 * the line describes a file. */
int snap_parse_file_line(const char *line, char *name, size_t name_len, uint64_t *bytes,
                         char sha256[65]);
/* Parses STATE text into si (fields absent keep their value). 0, or
 * TS_ECORRUPT for a line that is not key=value or an unknown state. */
int snap_parse_state(const char *text, size_t len, snap_info *si);

#endif
