/*
 * store_int.h -- the ts_store structure and the helpers its files share
 * (store.c: open, recovery and I/O accounting; write.c: save and flush;
 * read.c: load, preview, scan and verify). Internal to core/.
 */
#ifndef EMBEDDB_STORE_INT_H
#define EMBEDDB_STORE_INT_H

#include "fcache.h"
#include "keymap.h"
#include "memtable.h"
#include "sst.h"

#include "embeddb/plat.h"
#include "embeddb/tensor_store.h"

#include <stdint.h>

#define STORE_DEFAULT_MEMTABLE_MAX (64ull << 20)
#define STORE_MAX_OPEN_SSTS 64
#define STORE_PATH_MAX 4096

struct ts_store {
    char *dir;
    plat_vfs *vfs;          /* borrowed */
    ts_options opts;
    int lock_fd;            /* -1 when read-only */
    int wal_fd;             /* -1 when read-only and no WAL */
    uint64_t wal_no;
    uint64_t wal_base_seq;  /* seq of the segment's first record */
    uint64_t wal_end;       /* append offset = end of the last valid batch */
    uint32_t wal_version;   /* format version of the open segment's header */
    memtable mt;
    sst *ssts;              /* live SSTs, ascending file number */
    size_t n_ssts, cap_ssts;
    keymap km;              /* every SST key -> its newest entry (keymap.h) */
    int km_on;              /* km is kept: built by the first point lookup
                               (a read-only inspection that only scans
                               never pays for it) */
    size_t n_open;          /* SST fds currently open */
    uint64_t mapped;        /* SST bytes mapped (<= opts.mmap_bytes) */
    uint64_t clock;         /* LRU clock for the fd cache */
    uint64_t next_seq;
    int failed;             /* poisoned by a failed fsync/write/rename */
    ts_stats st;            /* counters; contents fields filled on demand */
    void *scratch[8];       /* per-batch work buffers, reused (write.c) */
    size_t scratch_cap[8];
    struct frame_cache *fc; /* the last packed frame read (read.c) */
    fcache cache;           /* small tensors kept for point loads (fcache.h) */
    char err[1024];
};

/* Records a message for ts_errmsg and returns rc. */
int store__err(ts_store *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like store__err, and poisons the store: after a failed fsync the page cache
 * may have dropped our data, so no later write may pretend otherwise. */
int store__fail(ts_store *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 0 when the store may be written; TS_EROFS (with a message) when opened
 * read-only, TS_EFAILED (the failure's own message kept) once poisoned. */
int store__check_writable(ts_store *s);

/* dir/<kind>_NNNNNN.<ext> for kind "wal" or "sst". */
void store__file_path(const ts_store *s, const char *kind, uint64_t no, char *out);
void store__join(const ts_store *s, const char *name, char *out);

/* Counted I/O: every byte written and every sync goes through these. */
int store__write(ts_store *s, int fd, const struct iovec *iov, int iovcnt, uint64_t off);
int store__sync(ts_store *s, int fd);
int store__dirsync(ts_store *s);

/* Creates the WAL segment `no` (header with base_seq), fdatasync'ed when
 * sync is set (a flush leaves that to the first batch: recovery treats a
 * segment with a bad header and no batch as empty); the caller syncs the
 * directory. *fd_out is open read-write. */
int store__create_wal(ts_store *s, uint64_t no, uint64_t base_seq, int sync, int *fd_out);
/* Writes MANIFEST.tmp (live SSTs except the first `skip` + wal_no), syncs
 * it and renames it over MANIFEST; the caller syncs the directory. */
int store__write_manifest(ts_store *s, uint64_t wal_no, size_t skip);

/* Frees the last frame read (read.c); at close. */
void store__frame_cache_free(ts_store *s);

/* 1 when key is in the MemTable or a live SST (read.c). */
int store__has_key(ts_store *s, const uint8_t *key, size_t key_len);

/* Appends an SST to the live list (takes ownership of *t's contents) and
 * maps its keys. SSTs come in ascending file number (the MANIFEST lists
 * them so, and an adopted or flushed segment is numbered above them all). */
int store__add_sst(ts_store *s, sst *t);
/* An open fd for t (opening it, and closing the least recently used one
 * when STORE_MAX_OPEN_SSTS are open). */
int store__sst_fd(ts_store *s, sst *t, int *fd);

#endif
