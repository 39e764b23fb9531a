/*
 * wm_store.h -- the de-duplication table (watermark.h) on flash: reading
 * the newest record back at start and saving the table alone after a seal.
 * The record that goes with a batch is written by the batch's own commit
 * (agent.c, wm_record), never here. Main thread only; the store and vfs are
 * borrowed.
 */
#ifndef EMBEDDB_AGENT_WM_STORE_H
#define EMBEDDB_AGENT_WM_STORE_H

#include "watermark.h"

#include "embeddb/plat.h"
#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>

/* The newest record of s into w's durable table. 0, TS_ENOTFOUND when s
 * holds none, TS_ECORRUPT when it does not parse (the table is then
 * empty), or the ts_latest error. */
int wm_store_read(watermark *w, ts_store *s);

/* Saves w's durable table alone under key counter *next_key (advanced on
 * success). 0 (also when the table is empty: nothing is written) or the
 * ts_save error. */
int wm_store_save(watermark *w, ts_store *s, uint64_t *next_key);

/* At start: the newest record of the live store s or, when it holds none
 * (a kill between a seal and its wm_store_save), of the newest rolling
 * snapshot under root (NAME or .seal-NAME; capture windows, copies sealed
 * after it, are passed over), which is then saved into s. 0 when the
 * table is as durable as it was (maybe empty: no record anywhere), else an
 * error with a message in err; *from says where it came from ("" none). */
int wm_store_recover(watermark *w, plat_vfs *vfs, ts_store *s, const char *root,
                     uint64_t *next_key, char *from, size_t fromlen, char *err, size_t errlen);

#endif
