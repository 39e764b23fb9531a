/*
 * multipart.h -- resumable S3 multipart uploads of snapshots larger than
 * upload.part_size: CreateMultipartUpload, one UploadPart per part (each
 * signed with its own SHA-256), CompleteMultipartUpload; and
 * AbortMultipartUpload for snapshots that are deleted or given up.
 *
 * Progress lives in the snapshot's directory, in NAME/UPLOAD beside STATE
 * (snapshot/FORMAT.md): the part size, each part's length, SHA-256 and MD5
 * (from one hashing pass over the object before the first part), the
 * upload id, and the ETag of every part the server confirmed. It is
 * replaced durably (temp, fsync, rename, dirsync) before the upload id is
 * used and after each confirmed part, so a link cut, a SIGKILL or a power
 * cut costs at most the part in flight: the next attempt asks the server
 * (ListParts) which parts it holds, keeps those whose size and ETag match
 * (our MD5 of the part, or the ETag it gave us), and sends the rest. The
 * object is read again from its start on every attempt, skipping the
 * confirmed parts (CPU and reads only: nothing is sent twice, nothing is
 * written to flash). With compression the parts are slices of the one
 * compressed stream (deterministic for a codec, level and library
 * version); each part is checked against its hash before its last byte is
 * handed on, so a stream that came out different is never confirmed.
 *
 * Uploads whose CreateMultipartUpload answer was never recorded (a power
 * cut right after it, a cancel in flight) are found by ListMultipartUploads
 * of the object's key and aborted before the next Create and with each
 * queued abort; a HEAD finds an object whose Complete went through but
 * whose answer was lost.
 *
 * Memory: one 64 KiB scratch buffer, the object's reader (wire.h) and
 * about 200 bytes per part (at most S3_MAX_PARTS: the part size grows for
 * objects over 10,000 parts). No part is ever held in memory.
 *
 * Runs on the upload worker only (upload_int.h); every wait ends on its
 * cancel flag.
 */
#ifndef EMBEDDB_AGENT_MULTIPART_H
#define EMBEDDB_AGENT_MULTIPART_H

#include "upload_int.h"

/* 1 when si goes up as a multipart upload: mode s3 and an object (as sent,
 * measured) larger than upload.part_size. */
int multipart_wanted(const uploader *u, const snap_info *si);

/*
 * One attempt at si's multipart upload, with attempt()'s contract (upload.c):
 * 0 when a final answer came (*status: 2xx only once CompleteMultipartUpload
 * returned a result without an <Error>), else a negative code, msg set.
 * -EAGAIN: the server no longer knows the upload (NoSuchUpload); the next
 * attempt starts a new one.
 */
int multipart_attempt(uploader *u, snap_info *si, int *status, char *msg, size_t msglen);

/* After STATE says uploaded: NAME/UPLOAD is no longer needed (removed, best
 * effort). */
void multipart_done(uploader *u, const char *name);

/* Aborts the uploads set aside in ROOT/.abort-* (snap_queue_abort), one
 * request each; each one the server confirms gone (2xx, 404) is removed.
 * Stops at the first that cannot be told to the server: it stays for the
 * next call. */
void multipart_abort_pending(uploader *u);

#endif
