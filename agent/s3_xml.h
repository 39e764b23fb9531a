/*
 * s3_xml.h -- the few S3 XML replies a multipart upload reads:
 * InitiateMultipartUploadResult (the upload id), ListPartsResult (the parts
 * a server holds), ListMultipartUploadsResult (the uploads of a key, page by
 * page), CompleteMultipartUploadResult and Error. Not a general
 * XML parser: each reply is scanned for the elements it must hold, the way
 * S3 writes them (no namespaces prefixes, no CDATA), inside the bytes given
 * and nowhere else.
 *
 * Input comes from a server that may lie or be cut short, so every reader
 * is strict in the direction that keeps data: a reply that is truncated,
 * malformed, or holds an <Error> anywhere is -EPROTO, never a success; an
 * upload id or ETag outside a safe alphabet is refused rather than cut or
 * escaped. Pure functions: no I/O, no allocation.
 */
#ifndef EMBEDDB_AGENT_S3_XML_H
#define EMBEDDB_AGENT_S3_XML_H

#include <stddef.h>
#include <stdint.h>

#define S3_UPLOAD_ID_MAX 512 /* an upload id's bytes, NUL included */
#define S3_ETAG_MAX 80       /* an ETag without its quotes, NUL included */
#define S3_MAX_PARTS 10000   /* S3's limit on parts per upload */

/* 1 when body holds an <Error> element (code: its <Code>, "" when absent
 * or too long), else 0. */
int s3_xml_error(const char *body, size_t len, char *code, size_t code_len);

/* The UploadId of an InitiateMultipartUploadResult: 0, or -EPROTO when
 * missing, empty, too long or outside [A-Za-z0-9._~-], or an <Error>. */
int s3_xml_initiate(const char *body, size_t len, char id[S3_UPLOAD_ID_MAX]);

/* 0 when body is a whole CompleteMultipartUploadResult and holds no
 * <Error> (S3 may answer 200 and put the error in the body), else -EPROTO. */
int s3_xml_complete(const char *body, size_t len);

/* One <Part> of a ListPartsResult. */
typedef struct s3_part {
    unsigned number;        /* 1..S3_MAX_PARTS */
    uint64_t size;
    char etag[S3_ETAG_MAX]; /* normalised (s3_etag_norm) */
} s3_part;

/* Calls fn for each <Part> of a whole ListPartsResult (it ends with its
 * closing tag: a reply cut short is refused) in document order; fn's
 * non-zero return stops the walk and is returned. *truncated gets
 * IsTruncated, *next_marker NextPartNumberMarker (0 when absent). A part
 * without a valid number, size or ETag makes the whole reply -EPROTO (after
 * the calls for the parts before it: the caller acts only on 0). */
int s3_xml_list_parts(const char *body, size_t len, int (*fn)(void *ctx, const s3_part *p),
                      void *ctx, int *truncated, unsigned *next_marker);

/* Where a ListMultipartUploadsResult says the listing goes on. */
typedef struct s3_uploads_next {
    int truncated;                    /* IsTruncated is true */
    const char *key;                  /* NextKeyMarker's bytes inside the body (as in the
                                         XML), NULL when absent or empty */
    size_t key_len;
    char upload_id[S3_UPLOAD_ID_MAX]; /* NextUploadIdMarker, "" when absent or empty */
} s3_uploads_next;

/* Calls fn with the UploadId of each <Upload> of a whole
 * ListMultipartUploadsResult whose <Key> is exactly key (bytes as in the
 * XML: a key that needs XML escapes never matches), in document order; fn's
 * non-zero return stops the walk and is returned. *next gets IsTruncated
 * and the markers of the next page (set before the first call of fn). An
 * <Upload> without a Key or a valid UploadId, a NextUploadIdMarker outside
 * an upload id's alphabet, or an <Error>, makes the reply -EPROTO. */
int s3_xml_list_uploads(const char *body, size_t len, const char *key,
                        int (*fn)(void *ctx, const char *upload_id), void *ctx,
                        s3_uploads_next *next);

/* An ETag as S3 sends it (header or XML: "abc", &quot;abc&quot; or abc)
 * into out without its quotes: 0, or -EPROTO when empty, too long or
 * outside [A-Za-z0-9-]. */
int s3_etag_norm(const char *in, size_t len, char out[S3_ETAG_MAX]);

#endif
