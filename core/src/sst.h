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

#include <stddef.h>
#include <stdint.h>

typedef struct sst_footer {
    uint64_t index_off;   /* = end of the record area */
    uint64_t index_len;
    uint32_t n_entries;
    uint32_t index_crc;
    uint64_t min_seq, max_seq;
    uint64_t file_no;
} sst_footer;

typedef struct sst {
    uint64_t file_no;
    char *path;           /* owned */
    int fd;               /* -1 while closed (the store caches a few) */
    uint64_t last_use;
    uint8_t *index;       /* owned: entries then key heap */
    sst_footer f;
    uint64_t file_size;
} sst;

/* Builds index + footer for the memtable entries in `order` (sorted), to be
 * written at index_off. *out (caller frees) gets index then footer. */
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
/* Releases the index and closes the file. */
void sst_close(plat_vfs *vfs, sst *s);

/* Checks that the last 64 bytes of an open file are a valid footer. */
int sst_probe(plat_vfs *vfs, int fd, uint64_t size, sst_footer *f);

/* Index entry accessors (i < n_entries). */
typedef struct sst_entry {
    uint64_t rec_off;
    uint64_t seq;
    uint32_t rec_len;
    uint32_t hdr_len;
    const uint8_t *key;
    uint16_t key_len;
    uint8_t dtype;
} sst_entry;

void sst_entry_at(const sst *s, uint32_t i, sst_entry *e);
/* Index of the first entry with key >= key (n_entries when none). */
uint32_t sst_lower_bound(const sst *s, const uint8_t *key, size_t key_len);
/* 1 and *e when key is in the index. */
int sst_find(const sst *s, const uint8_t *key, size_t key_len, sst_entry *e);

#endif
