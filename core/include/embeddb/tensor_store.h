/*
 * tensor_store.h -- the public API of the TensorStore engine.
 *
 * A store is a directory holding a write-ahead log segment (the open
 * "wal_NNNNNN.log"), immutable sorted tables ("sst_NNNNNN.sst") and a
 * MANIFEST naming the live files; core/FORMAT.md describes every byte.
 *
 * Writes: ts_save / ts_save_batch append one batch frame to the WAL with one
 * pwritev and make it durable with exactly one fdatasync (options.sync), then
 * index it in the MemTable. The MemTable is the in-memory index of the open
 * WAL segment: tensor bytes are written to flash once and never copied again.
 * ts_flush (or reaching memtable_max bytes) seals the segment in place by
 * appending a sorted index and a footer and renaming it to an SST.
 *
 * Small tensors (up to 1 KiB) are written packed: a few bytes of metadata
 * each, in frames of about 4 KiB with one checksum (FORMAT.md, version 2).
 *
 * Reads: ts_load returns the newest version of a key (MemTable first, then
 * SSTs newest first), verifying CRC32C; a point load costs one pread (of
 * the record, or of the frame holding a small one).
 *
 * Errors: every function returns 0 or a negative TS_E* code (mirroring -errno
 * where one exists). ts_errmsg() describes the last failure on a store in
 * words, naming the file, the failing call and the offset where relevant.
 *
 * Threads: a ts_store is not thread-safe; use it from one thread at a time.
 * A directory has at most one writer (enforced with a lock file); any number
 * of read-only opens may inspect it alongside.
 */
#ifndef EMBEDDB_TENSOR_STORE_H
#define EMBEDDB_TENSOR_STORE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct plat_vfs;

/* ---- errors ----------------------------------------------------------- */
enum {
    TS_OK = 0,
    TS_EINVAL = -EINVAL,        /* bad argument: shape/size/dtype mismatch ... */
    TS_ENOMEM = -ENOMEM,
    TS_EIO = -EIO,              /* the OS reported an I/O error */
    TS_ENOSPC = -ENOSPC,        /* no space left; nothing was committed */
    TS_ENOENT = -ENOENT,        /* store directory missing (and !create) */
    TS_ENOTDIR = -ENOTDIR,      /* store path is not a directory */
    TS_EBUSY = -EBUSY,          /* another writer holds the store's lock */
    TS_EOVERFLOW = -EOVERFLOW,  /* a size computation would overflow */
    TS_ENAMETOOLONG = -ENAMETOOLONG, /* key or name too long */
    TS_EROFS = -EROFS,          /* write on a read-only store */
    TS_EEXIST = -EEXIST,        /* insert_only: the key is already stored */
    TS_ECORRUPT = -10001,       /* on-disk data failed a check (CRC, format) */
    TS_ENOTFOUND = -10002,      /* no tensor under that key */
    TS_EFAILED = -10003,        /* an earlier fsync/write failure poisoned the
                                   store: reopen it (the data on disk is safe) */
    TS_ENOTSTORE = -10004,      /* directory holds files but no MANIFEST */
};

/* Static English description of a TS_E* code (or "unknown error"). */
const char *ts_strerror(int err);

/* ---- tensors ---------------------------------------------------------- */
#define TS_MAX_DIMS 8
#define TS_MAX_KEY_LEN 1024
#define TS_MAX_NAME_LEN 1024

/* Every fixed-size numeric type NumPy has (float128 excluded: its layout is
 * platform dependent), plus bfloat16. Values are stored on disk: never
 * renumber. */
typedef enum ts_dtype {
    TS_F16 = 1, TS_BF16 = 2, TS_F32 = 3, TS_F64 = 4,
    TS_I8 = 5, TS_I16 = 6, TS_I32 = 7, TS_I64 = 8,
    TS_U8 = 9, TS_U16 = 10, TS_U32 = 11, TS_U64 = 12,
    TS_BOOL = 13, TS_C64 = 14, TS_C128 = 15,
} ts_dtype;

/* Element size in bytes, or 0 for an unknown dtype. */
size_t ts_dtype_size(ts_dtype dt);
/* Short name ("f32", "bf16", "bool", "c64"...), or NULL when unknown. */
const char *ts_dtype_name(ts_dtype dt);
/* Parses a short name or a NumPy name ("float32", "uint8", "bool", ...).
 * Returns 0 and sets *out, or TS_EINVAL. */
int ts_dtype_parse(const char *s, ts_dtype *out);
/* Converts element i of data (of dtype dt) to double (complex: real part). */
double ts_dtype_get(ts_dtype dt, const void *data, size_t i);
/* Stores v as element i of data (of dtype dt; complex: real part, imag 0;
 * bool: 0 or 1). TS_EINVAL when an integer dtype gets a non-integer (or the
 * dtype is unknown), TS_EOVERFLOW when v is out of the dtype's range. */
int ts_dtype_set(ts_dtype dt, void *data, size_t i, double v);

/*
 * A tensor. For saving, every pointer is borrowed for the duration of the
 * call. Tensors returned by ts_load/ts_load_preview live in one allocation
 * owned by the caller and are released with ts_tensor_free.
 */
typedef struct ts_tensor {
    const uint8_t *key;       /* 1..TS_MAX_KEY_LEN bytes, ordered bytewise */
    size_t key_len;
    const char *name;         /* NUL-terminated, up to TS_MAX_NAME_LEN bytes */
    ts_dtype dtype;
    uint32_t ndim;            /* 0..TS_MAX_DIMS (0 = scalar) */
    uint64_t shape[TS_MAX_DIMS];
    int64_t timestamp_ns;     /* caller's clock; 0 lets save stamp "now" */
    const void *data;
    size_t data_len;          /* must equal product(shape) * dtype size; for
                                 a preview, the bytes actually returned */
    uint64_t seq;             /* set by the store on load: commit order */
} ts_tensor;

/* Frees a tensor returned by the store. NULL is a no-op. */
void ts_tensor_free(ts_tensor *t);

/* Number of elements of t (product of shape), or TS_EOVERFLOW. */
int ts_tensor_numel(const ts_tensor *t, uint64_t *out);

/* Numeric keys like the seed's 101: 8 bytes big-endian so bytewise order is
 * numeric order. */
#define TS_KEY_U64_LEN 8
void ts_key_from_u64(uint64_t v, uint8_t out[TS_KEY_U64_LEN]);
/* 1 and *v when key is an 8-byte numeric key, else 0. */
int ts_key_to_u64(const uint8_t *key, size_t key_len, uint64_t *v);

/* ---- the store -------------------------------------------------------- */
typedef struct ts_store ts_store;

typedef struct ts_options {
    uint64_t memtable_max;   /* flush when the open segment holds this many
                                record bytes, or when the MemTable's own
                                index RAM (about 64 bytes + the key per
                                tensor) reaches a quarter of it (default
                                64 MiB; 0 = default) */
    int sync;                /* 1 (default): fdatasync every batch. 0: only
                                at flush/close (a power cut may lose the
                                batches since) */
    int create_if_missing;   /* create the directory and an empty store */
    int read_only;           /* inspect without locking or changing anything */
    int salvage;             /* on corruption inside the WAL, keep the valid
                                prefix (the damaged tail is moved aside to
                                wal_NNNNNN.damaged) instead of failing open */
    int insert_only;         /* save refuses (TS_EEXIST, nothing written) a
                                batch holding a key the store already has,
                                or one key twice: a caller whose keys are new
                                by construction turns a bug into an error
                                instead of a silent replacement. Costs one
                                index lookup per key (MemTable, then each
                                live SST whose key range holds it). */
    uint64_t mmap_bytes;     /* read SSTs through memory mappings, up to
                                this many file bytes mapped at once (each
                                SST whole, first come; the rest use pread).
                                Point loads skip a system call and a copy,
                                and scans decode frames in place; checksums
                                are checked all the same. The cost: a page
                                that cannot be read (a flash media error, a
                                file cut short by another process) raises
                                SIGBUS instead of returning TS_EIO, as in
                                LevelDB and LMDB, which map by default.
                                Mapped pages count in the RSS while they
                                stay in the page cache. 0 (default): pread
                                only */
    uint64_t frame_cache_bytes; /* keep small tensors (format 2 packed
                                records) decoded in memory, up to this
                                many bytes: a load that misses reads and
                                checks the frame as always and keeps
                                every record in it that is its key's
                                newest version; a hit is one hash probe
                                and a copy (README "Random loads"). A
                                tensor costs 64 bytes plus its key, name,
                                shape and data; the oldest not used since
                                they last came round go first. Checked
                                once, when read: damage to the file
                                afterwards shows in ts_verify, which
                                never uses the cache, or after the
                                tensor leaves it. 0 (default): no cache */
    struct plat_vfs *vfs;    /* NULL = plat_vfs_default(); borrowed, must
                                outlive the store */
} ts_options;

/* Fills opts with the defaults (sync on, 64 MiB MemTable, no create). */
void ts_options_init(ts_options *opts);

/*
 * Opens (and recovers) the store in `dir`. On success *out owns the store.
 * On failure *out is NULL and, when errbuf is given, a message naming the
 * file and offset is written to it (always NUL-terminated).
 */
int ts_open(const char *dir, const ts_options *opts, ts_store **out,
            char *errbuf, size_t errlen);
/* Closes the store: releases files and the lock. It writes nothing (every
 * committed batch is already in the WAL). NULL is a no-op. Returns 0. */
int ts_close(ts_store *s);

/* Describes the last failure on s ("" when none); right after an open that
 * cut a torn WAL tail, what was cut. Borrowed; valid until the next call. */
const char *ts_errmsg(const ts_store *s);

/* Validates one tensor without touching the store (what save would reject). */
int ts_validate(const ts_tensor *t);

/* Bytes saving these n tensors as one batch adds to the store's files: the
 * batch frame and records in the WAL (headers, block checksums, padding,
 * data; or packed frames) plus their index entries when the segment is
 * sealed. What a caller budgeting flash should reserve: an upper bound,
 * exact for the WAL part of a plain batch (a packed one is measured with
 * the longest timestamp deltas). 0, or the ts_validate error of the first
 * bad tensor (TS_ENOMEM when measuring a packed batch finds no memory). */
int ts_batch_cost(const ts_tensor *const *tensors, size_t n, uint64_t *bytes);

/* Saves one tensor (a batch of one). */
int ts_save(ts_store *s, const ts_tensor *t);
/*
 * Saves n tensors atomically: after a crash either all are present or none.
 * Costs one pwritev and, with sync on, exactly one fdatasync. Every tensor is
 * validated first; one bad tensor rejects the batch and nothing is written.
 * May flush afterwards when the MemTable reached memtable_max.
 */
int ts_save_batch(ts_store *s, const ts_tensor *const *tensors, size_t n);

/* Loads the newest version of key into a new tensor (*out, caller frees with
 * ts_tensor_free). TS_ENOTFOUND when absent, TS_ECORRUPT when its CRC fails. */
int ts_load(ts_store *s, const void *key, size_t key_len, ts_tensor **out);
/* Like ts_load but returns only the first n elements (fewer when the tensor
 * is smaller); reads only the bytes needed (4 KiB CRC blocks). */
int ts_load_preview(ts_store *s, const void *key, size_t key_len, uint64_t n,
                    ts_tensor **out);

/* Writes the seed's one-line summary: "camera_frame (32x32) -> 0.25, 0.25, ..."
 * showing the first n_values elements (%g). Always NUL-terminates; returns
 * the length it needed like snprintf. */
int ts_summarize(const ts_tensor *t, size_t n_values, char *buf, size_t len);

/* Seals the open WAL segment into an SST (no-op when it is empty). When
 * `sst_name` is given it receives the file name ("sst_000000.sst") and
 * *n_out the number of tensors flushed. */
int ts_flush(ts_store *s, char *sst_name, size_t sst_name_len, uint64_t *n_out);

/* ---- checkpoints (the raw material of snapshots) --------------------- */
typedef struct ts_checkpoint_info {
    uint64_t n_files;               /* SSTs linked into the checkpoint */
    uint64_t first_file, last_file; /* lowest and highest file number */
    uint64_t bytes;                 /* their total size */
    uint64_t min_seq, max_seq;      /* sequence numbers they cover */
} ts_checkpoint_info;

/*
 * Seals the open WAL segment (ts_flush), then makes dest_dir -- created
 * here, it must not exist, on the same file system -- a read-only store
 * holding exactly the live SSTs: hard links (no data is copied), a MANIFEST
 * naming them, the directory synced. This store is not changed: the SSTs
 * stay live until ts_release. Making dest_dir's own name durable (rename,
 * fsync of its parent) is the caller's job. TS_ENOTFOUND when there is no
 * SST to hand over (dest_dir is not created then). On any other failure
 * dest_dir may exist half-filled; remove it.
 */
int ts_checkpoint(ts_store *s, const char *dest_dir, ts_checkpoint_info *info);

/*
 * Drops the live SSTs numbered <= last_file from this store, once a
 * checkpoint holding them is durable elsewhere: the MANIFEST without them
 * is made durable first, then the files are unlinked (a crash in between
 * leaves them unreferenced and the next open removes them). Their tensors
 * are no longer visible here. 0 when there is nothing to drop.
 */
int ts_release(ts_store *s, uint64_t last_file);

/*
 * Makes the store's next sequence number at least floor: seqs that tensors
 * kept elsewhere (checkpoints moved out with ts_release) carry and that
 * this store must never hand out again. Seals the open segment first when
 * it holds tensors (a segment's seqs run without gaps), then starts the
 * next one at floor, synced. 0 when next_seq was already >= floor.
 */
int ts_raise_seq(ts_store *s, uint64_t floor);

/* ---- iteration -------------------------------------------------------- */
/* What a scan reports for each key: the newest version's metadata. Borrowed
 * for the duration of the callback. */
typedef struct ts_entry {
    const uint8_t *key;
    size_t key_len;
    const char *name;
    ts_dtype dtype;
    uint32_t ndim;
    uint64_t shape[TS_MAX_DIMS];
    int64_t timestamp_ns;
    uint64_t data_len;
    uint64_t seq;
    uint64_t file_no;     /* number of the WAL/SST file holding it */
    int in_memtable;      /* 1 when still in the open WAL segment */
} ts_entry;

/* Return 0 to continue, non-zero to stop (that value is returned by scan). */
typedef int (*ts_scan_fn)(void *ctx, const ts_entry *e);

/* Visits keys in [lo, hi) in bytewise order, newest version of each; NULL
 * lo/hi mean unbounded. */
int ts_scan_range(ts_store *s, const void *lo, size_t lo_len, const void *hi,
                  size_t hi_len, ts_scan_fn fn, void *ctx);
/* Visits every key starting with prefix (prefix_len 0: all keys). */
int ts_scan_prefix(ts_store *s, const void *prefix, size_t prefix_len,
                   ts_scan_fn fn, void *ctx);

/*
 * Visits, in key order, every key starting with prefix whose newest
 * version has a timestamp in [from_ns, to_ns). It reads only the records
 * of index blocks (64 keys) whose time range meets the window, and skips
 * SSTs whose time range misses it, so its cost follows the window, not the
 * store (SSTs written by format version 1 carry no time ranges and are
 * read whole). from_ns = INT64_MIN: no lower bound; to_ns = INT64_MAX: no
 * upper bound (a timestamp of INT64_MAX is then included).
 */
int ts_scan_time(ts_store *s, const void *prefix, size_t prefix_len, int64_t from_ns,
                 int64_t to_ns, ts_scan_fn fn, void *ctx);

/*
 * Loads the most recently saved tensor (highest seq) among the keys
 * starting with prefix: what a dashboard shows for a topic. Checks the
 * MemTable, then SSTs newest first, stopping at the first that holds the
 * prefix. TS_ENOTFOUND when no key has it. *out as for ts_load.
 */
int ts_latest(ts_store *s, const void *prefix, size_t prefix_len, ts_tensor **out);

/* ---- statistics and verification ------------------------------------ */
typedef struct ts_stats {
    /* store contents */
    uint64_t n_sst;            /* live SST files */
    uint64_t n_entries;        /* index entries (memtable + SSTs; a key
                                  overwritten in another file counts twice) */
    uint64_t memtable_entries;
    uint64_t memtable_bytes;   /* record bytes in the open segment */
    uint64_t disk_bytes;       /* bytes of live WAL + SST files */
    /* since open */
    uint64_t batches;
    uint64_t tensors_saved;
    uint64_t payload_bytes;    /* tensor data bytes saved */
    uint64_t bytes_written;    /* every byte written to disk (records,
                                  indexes, footers, manifests, headers) */
    uint64_t fsyncs;           /* fdatasync + fsync + directory syncs */
    uint64_t flushes;
    uint64_t next_seq;
    uint64_t recovery_cut_bytes; /* torn WAL tail cut off by this open */
    uint64_t keymap_fallbacks; /* point lookups that searched every SST
                                  because the key map lacked memory */
    uint64_t mapped_bytes;     /* SST bytes mapped now (<= mmap_bytes) */
    uint64_t frame_cache_bytes; /* memory held by that cache now
                                  (<= frame_cache_bytes) */
} ts_stats;

void ts_get_stats(const ts_store *s, ts_stats *st);

/* One live file of the store, as ts_list_files reports it. Pointers are
 * borrowed for the duration of the callback. */
typedef struct ts_file_info {
    uint64_t file_no;          /* wal_NNNNNN.log / sst_NNNNNN.sst */
    int is_wal;                /* 1: the open WAL segment (the MemTable's) */
    uint64_t bytes;            /* WAL: the append offset; SST: file size */
    uint64_t n_entries;        /* records (WAL: MemTable entries) */
    uint64_t min_seq, max_seq; /* SST: from its footer; WAL: 0, 0 */
    const uint8_t *first_key;  /* SST: its lowest and highest key (NULL, 0
                                  for the WAL, which is not sorted) */
    size_t first_len;
    const uint8_t *last_key;
    size_t last_len;
} ts_file_info;

/* Return 0 to continue, non-zero to stop (that value is returned). */
typedef int (*ts_file_fn)(void *ctx, const ts_file_info *f);
/* Visits the open WAL segment (when there is one), then every live SST in
 * ascending file number. Costs nothing beyond the calls: it reads what the
 * store holds in memory (a live view for a console, polled often). */
int ts_list_files(const ts_store *s, ts_file_fn fn, void *ctx);

/* The open store's MemTable limit in bytes (ts_options.memtable_max as
 * resolved at open). */
uint64_t ts_memtable_max(const ts_store *s);

/* Called for every damaged item verify finds; msg names file and offset. */
typedef void (*ts_verify_fn)(void *ctx, const char *msg);
/* Reads every record of every live file and checks every CRC and the
 * indexes. Returns 0 when clean, TS_ECORRUPT when something is damaged
 * (*n_bad counts the damaged items), or another error. */
int ts_verify(ts_store *s, ts_verify_fn fn, void *ctx, uint64_t *n_bad);

/* ---- the seed's dry run ---------------------------------------------- */
/* Output sink for ts_dry_run: one line per call, no trailing newline. */
typedef void (*ts_line_fn)(void *ctx, const char *line);
/*
 * dryRunScenario: in the (empty or missing) directory dir, saves two tensors
 * under keys 101 and 202 to the WAL, flushes them ("flushed 2 to
 * sst_000000.sst"), reopens the store (replay) and summarizes both.
 */
int ts_dry_run(const char *dir, struct plat_vfs *vfs, ts_line_fn out, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
