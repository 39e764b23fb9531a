/*
 * sst.h -- sealed segments: the sorted index and footer appended to a WAL
 * segment at flush, and reading them back.
 *
 * An SST is the WAL segment it was (header, batch frames, records) plus an
 * index of its newest record per key, sorted bytewise, plus a fixed footer.
 * Its index is held in memory while the store is open so a point load is a
 * binary search and one pread.
 */
#ifndef EMBEDDB_SST_H
#define EMBEDDB_SST_H

#include "memtable.h"

#include "embeddb/plat.h"
#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sst_footer {
    uint64_t index_off;   /* = end of the record area */
    uint64_t index_len;
    uint32_t n_entries;
    uint32_t index_crc;
    uint64_t min_seq, max_seq;
    uint64_t file_no;
    uint32_t version;     /* index format: 1 (EDBSST01) or 2 (EDBSST02) */
} sst_footer;

typedef struct sst {
    uint64_t file_no;
    char *path;           /* owned */
    int fd;               /* -1 while closed (the store caches a few) */
    uint64_t last_use;
    uint8_t *index;       /* owned: the whole index as read (v1: entries
                             then key heap; v2: FORMAT.md "Index v2") */
    sst_footer f;
    uint64_t file_size;
    /* v2: views into index, set by sst_open / sst_adopt */
    const uint8_t *ent;   /* prefix-compressed entries */
    size_t ent_len;
    const uint8_t *restarts; /* u32 offset in ent of every 64th entry */
    int64_t *ts_ranges;   /* owned: {min, max} timestamp of each restart
                             block, decoded from the index's time table */
    const uint8_t *frames; /* frame table */
    uint32_t n_frames;
    int64_t min_ts, max_ts; /* over every entry; v1: INT64_MIN, INT64_MAX */
    const uint8_t *map;   /* the whole file mapped (ts_options.mmap_bytes),
                             or NULL: reads use pread on fd */
    int map_tried;        /* mapping attempted (and maybe refused) */
    uint8_t *bounds;      /* owned: the first key, then the last */
    uint16_t first_len, last_len;
} sst;

/* 1 when key lies within the SST's first..last key. */
int sst_in_range(const sst *s, const uint8_t *key, size_t key_len);

/* Builds index + footer (format v2) for the memtable entries in `order`
 * (sorted), to be written at index_off. *out (caller frees) gets index then
 * footer. */
int sst_build(const memtable *mt, const uint32_t *order, size_t n, uint64_t index_off,
              uint64_t file_no, uint64_t min_seq, uint64_t max_seq, uint8_t **out,
              size_t *out_len);

void sst_footer_encode(const sst_footer *f, uint8_t out[64]);
/* 0, or TS_ECORRUPT when the magic or checksum fails. */
int sst_footer_parse(const uint8_t in[64], sst_footer *f);

/* Opens path as an SST: reads and checks footer and index. On success
 * s->fd is open and s->index loaded; on failure errbuf names the problem
 * and its offset and nothing is left open. Returns TS_ECORRUPT when the
 * file is not a sealed segment, TS_EIO etc. on I/O errors. */
int sst_open(plat_vfs *vfs, const char *path, uint64_t file_no, sst *s, char *errbuf,
             size_t errlen);
/* Makes s (file_no, fd, path, file_size, f and index already set, as a
 * flush does with the index it just wrote) usable: checks the index and
 * sets the views. 0 or TS_ECORRUPT with *why. */
int sst_adopt(sst *s, const char **why);
/* Releases the index, the mapping and the file. */
void sst_close(plat_vfs *vfs, sst *s);

/* Checks that the last 64 bytes of an open file are a valid footer. */
int sst_probe(plat_vfs *vfs, int fd, uint64_t size, sst_footer *f);

/* One index entry. key points into the index (v1) or at kbuf (v2): an
 * sst_entry must not be copied by value while its key is in use. */
typedef struct sst_entry {
    uint64_t rec_off;     /* plain record; packed (ord > 0): its frame */
    uint32_t rec_len;     /* record or frame length */
    uint32_t hdr_len;     /* plain records */
    uint32_t ord;         /* 0: plain; k + 1: record k of the frame */
    const uint8_t *key;
    uint16_t key_len;
    uint8_t dtype;        /* plain records (sizes a preview's read) */
    uint8_t kbuf[TS_MAX_KEY_LEN];
} sst_entry;

/* A cursor over an SST's entries in key order. */
typedef struct sst_iter {
    const sst *t;
    uint32_t i;           /* current entry; f.n_entries once past the end */
    size_t pos;           /* v2: offset in ent of the next entry */
    uint64_t frame;       /* v2: frame index of the current entry */
    sst_entry e;          /* the current entry while i < f.n_entries */
} sst_iter;

/* Positions it at the first entry with key >= key (key NULL: the first):
 * a binary search of the restart points, then at most 64 entries decoded. */
void sst_iter_seek(sst_iter *it, const sst *t, const uint8_t *key, size_t key_len);
void sst_iter_next(sst_iter *it);
/* Positions it (already seeked on a v2 SST) at restart block b's first entry. */
void sst_iter_block(sst_iter *it, uint32_t b);
static inline int sst_iter_valid(const sst_iter *it) { return it->i < it->t->f.n_entries; }

/* Entry i (< n_entries): O(1) in v1, up to 64 entries decoded in v2. */
void sst_entry_at(const sst *s, uint32_t i, sst_entry *e);
/* 1 and *e when key is in the index. */
int sst_find(const sst *s, const uint8_t *key, size_t key_len, sst_entry *e);
/* Number of restart blocks (v2; 0 for v1). Block b holds entries
 * [64 b, 64 b + 64); its timestamps lie in ts_ranges[2b..2b+1]. */
uint32_t sst_n_restarts(const sst *s);

#endif
