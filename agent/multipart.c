/*
 * multipart.c -- resumable S3 multipart uploads (contract in multipart.h,
 * the UPLOAD file in snapshot/FORMAT.md).
 *
 * One attempt: load or make the plan (NAME/UPLOAD: part lengths and
 * hashes), create the upload if it has no id yet (persisted before any part
 * goes), else reconcile the confirmed parts with ListParts; then send the
 * parts not confirmed, in order, persisting each ETag as it comes; then
 * Complete. The parts are consecutive reads of one open object, each
 * sent by upload__put_object (read on its readahead thread, never past
 * the part, checked against the plan). Success is decided on the
 * Complete reply alone: a 2xx whose body is a whole
 * CompleteMultipartUploadResult and no <Error>.
 */
#include "multipart.h"

#include "log.h"
#include "s3_xml.h"
#include "sigv4.h"

#include "embeddb/plat.h"

#include <mbedtls/md.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MP_FORMAT "embeddb-multipart/1"
#define MP_FILE_MAX (4u << 20) /* an UPLOAD file: S3_MAX_PARTS lines of < 300 bytes */
#define MP_SCRATCH (64u << 10)
#define MP_LIST_PAGE 30        /* parts per ListParts page: fits HTTP_BODY_MAX */
#define MP_UPLOADS_PAGES 100   /* ListMultipartUploads pages followed at the most */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct mp_part {
    uint64_t len;
    char sha[65];
    char md5[33];
    char etag[S3_ETAG_MAX]; /* "" until the server confirmed the part */
} mp_part;

typedef struct mp {
    char object[24];                 /* "codec:level" of the object the plan is for */
    uint64_t bytes, part_size;
    char key[3072];                  /* the object key, percent-encoded */
    char upload_id[S3_UPLOAD_ID_MAX]; /* "" before CreateMultipartUpload */
    char md5[33];                    /* of the whole object */
    size_t n;
    mp_part *parts;
} mp;

int multipart_wanted(const uploader *u, const snap_info *si)
{
    uint64_t bytes = u->codec == SNAP_CODEC_NONE ? si->tar_bytes : si->object_bytes;
    return u->mode == AGENT_UPLOAD_S3 && bytes > u->part_size;
}

/* ---- the UPLOAD file ------------------------------------------------------ */

static int is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int path_of(const uploader *u, const char *leaf, const char *file, char *out, size_t len)
{
    int n = file ? snprintf(out, len, "%s/%s/%s", u->root, leaf, file)
                 : snprintf(out, len, "%s/%s", u->root, leaf);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Writes m to si's UPLOAD durably: 0, or -EIO with msg set. */
static int mp_save(uploader *u, const snap_info *si, const mp *m, char *msg, size_t msglen)
{
    char dir[4096];
    size_t cap = 4096 + sizeof(m->key) + m->n * 256, len;
    char *b = malloc(cap);
    int rc = -ENOMEM, k;
    if (!b)
        goto out;
    k = snprintf(b, cap, "format=" MP_FORMAT "\nobject=%s\nbytes=%" PRIu64 "\npart_size=%" PRIu64
                 "\nkey=%s\nupload_id=%s\nmd5=%s\nparts=%zu\n", m->object, m->bytes, m->part_size,
                 m->key, m->upload_id, m->md5, m->n);
    len = (size_t)k;
    for (size_t i = 0; i < m->n; i++) {
        const mp_part *p = &m->parts[i];
        len += (size_t)snprintf(b + len, cap - len, "part=%zu %" PRIu64 " %s %s %s\n", i + 1,
                                p->len, p->sha, p->md5, p->etag[0] ? p->etag : "-");
    }
    rc = path_of(u, si->name, NULL, dir, sizeof(dir));
    if (!rc)
        rc = plat_file_replace(u->vfs, dir, SNAP_MULTIPART_NAME, b, len, 1);
    if (!rc)
        rc = u->vfs->dirsync(u->vfs, dir);
out:
    free(b);
    if (rc) {
        snprintf(msg, msglen, "%s: writing %s: %s", si->name, SNAP_MULTIPART_NAME, ts_strerror(rc));
        rc = -EIO;
    }
    return rc;
}

static void mp_clear(mp *m)
{
    free(m->parts);
    memset(m, 0, sizeof(*m));
}

/* Parses an UPLOAD file strictly: -EBADMSG for anything it does not hold
 * exactly (then the plan is made again). */
static int mp_parse(const char *text, size_t len, mp *m)
{
    const char *p = text, *end = text + len;
    size_t next = 1;
    uint64_t sum = 0;
    int have_format = 0, rc = -EBADMSG;
    memset(m, 0, sizeof(*m));
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        char line[4096], *val;
        size_t ll = (size_t)((nl ? nl : end) - p);
        if (ll >= sizeof(line) || !(nl))
            goto out;
        memcpy(line, p, ll);
        line[ll] = 0;
        p = nl + 1;
        if (!(val = strchr(line, '=')))
            goto out;
        *val++ = 0;
        if (!strcmp(line, "format")) {
            have_format = !strcmp(val, MP_FORMAT);
        } else if (!strcmp(line, "object")) {
            if (strlen(val) >= sizeof(m->object))
                goto out;
            strcpy(m->object, val);
        } else if (!strcmp(line, "bytes")) {
            m->bytes = strtoull(val, NULL, 10);
        } else if (!strcmp(line, "part_size")) {
            m->part_size = strtoull(val, NULL, 10);
        } else if (!strcmp(line, "key")) {
            if (strlen(val) >= sizeof(m->key))
                goto out;
            strcpy(m->key, val);
        } else if (!strcmp(line, "upload_id")) {
            if (strlen(val) >= sizeof(m->upload_id))
                goto out;
            strcpy(m->upload_id, val);
        } else if (!strcmp(line, "md5")) {
            if (!is_hex(val, 32))
                goto out;
            strcpy(m->md5, val);
        } else if (!strcmp(line, "parts")) {
            unsigned long long n = strtoull(val, NULL, 10);
            if (!n || n > S3_MAX_PARTS || m->parts || !(m->parts = calloc(n, sizeof(mp_part))))
                goto out;
            m->n = (size_t)n;
        } else if (!strcmp(line, "part")) {
            unsigned long long num, plen;
            char sha[65], md5[33], etag[S3_ETAG_MAX];
            int used = 0;
            if (!m->parts || next > m->n ||
                sscanf(val, "%llu %llu %64s %32s %79s%n", &num, &plen, sha, md5, etag, &used) != 5 ||
                val[used] || num != next || !is_hex(sha, 64) || !is_hex(md5, 32) || !plen)
                goto out;
            mp_part *q = &m->parts[next - 1];
            q->len = plen;
            strcpy(q->sha, sha);
            strcpy(q->md5, md5);
            if (strcmp(etag, "-") && s3_etag_norm(etag, strlen(etag), q->etag))
                goto out;
            sum += plen;
            next++;
        }
    }
    /* Whole and consistent: every part, all but the last of part_size. */
    if (!have_format || !m->n || next != m->n + 1 || sum != m->bytes || !m->part_size ||
        !m->md5[0])
        goto out;
    for (size_t i = 0; i + 1 < m->n; i++)
        if (m->parts[i].len != m->part_size)
            goto out;
    if (m->parts[m->n - 1].len > m->part_size)
        goto out;
    rc = 0;
out:
    if (rc)
        mp_clear(m);
    return rc;
}

/* ---- the plan: one hashing pass ------------------------------------------- */

typedef struct hashers {
    mbedtls_md_context_t sha, md5;
} hashers;

static int hashers_start(hashers *h)
{
    mbedtls_md_init(&h->sha);
    mbedtls_md_init(&h->md5);
    if (mbedtls_md_setup(&h->sha, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 0) ||
        mbedtls_md_setup(&h->md5, mbedtls_md_info_from_type(MBEDTLS_MD_MD5), 0) ||
        mbedtls_md_starts(&h->sha) || mbedtls_md_starts(&h->md5))
        return -ENOMEM;
    return 0;
}

static void hashers_free(hashers *h)
{
    mbedtls_md_free(&h->sha);
    mbedtls_md_free(&h->md5);
}

static int open_object(uploader *u, const snap_info *si, snap_object **obj, char *msg,
                       size_t msglen)
{
    int rc = snap_object_open(u->vfs, u->root, si->name, snap_tar_mtime(si), si->tar_bytes,
                              u->codec, u->level, obj, msg, msglen);
    if (!rc)
        snap_object_set_cancel(*obj, upload__cancel_fired, u->cancel);
    return rc;
}

static uint64_t object_bytes(const uploader *u, const snap_info *si)
{
    return u->codec == SNAP_CODEC_NONE ? si->tar_bytes : si->object_bytes;
}

/* upload.part_size, grown (in whole MiB) when the object would need more
 * than S3_MAX_PARTS parts. */
static uint64_t part_size_for(const uploader *u, uint64_t bytes)
{
    uint64_t ps = u->part_size, mib = 1u << 20;
    if ((bytes + ps - 1) / ps > S3_MAX_PARTS)
        ps = ((bytes + S3_MAX_PARTS - 1) / S3_MAX_PARTS + mib - 1) / mib * mib;
    return ps;
}

/* Makes m for si: part size, then each part's length, SHA-256 and MD5
 * from one read of the object. */
static int mp_plan(uploader *u, snap_info *si, const char *ekey, mp *m, char *msg,
                   size_t msglen)
{
    uint64_t bytes = object_bytes(u, si);
    uint64_t ps = part_size_for(u, bytes), done = 0;
    snap_object *obj = NULL;
    uint8_t *buf = NULL;
    hashers h;
    mbedtls_md_context_t whole, whole_sha;
    int rc, started = 0;
    memset(m, 0, sizeof(*m));
    mbedtls_md_init(&whole);
    mbedtls_md_init(&whole_sha);
    snprintf(m->object, sizeof(m->object), "%s:%d", snap_codec_name(u->codec), u->level);
    snprintf(m->key, sizeof(m->key), "%s", ekey);
    m->bytes = bytes;
    m->part_size = ps;
    m->n = (size_t)((bytes + ps - 1) / ps);
    if (!(m->parts = calloc(m->n, sizeof(mp_part))) || !(buf = malloc(MP_SCRATCH))) {
        snprintf(msg, msglen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = open_object(u, si, &obj, msg, msglen)))
        goto out;
    if (mbedtls_md_setup(&whole, mbedtls_md_info_from_type(MBEDTLS_MD_MD5), 0) ||
        mbedtls_md_starts(&whole) ||
        mbedtls_md_setup(&whole_sha, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 0) ||
        mbedtls_md_starts(&whole_sha)) {
        snprintf(msg, msglen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < m->n; i++) {
        mp_part *p = &m->parts[i];
        unsigned char d[32];
        p->len = bytes - done < ps ? bytes - done : ps;
        if ((rc = hashers_start(&h))) {
            snprintf(msg, msglen, "out of memory");
            goto out;
        }
        started = 1;
        for (uint64_t left = p->len; left;) {
            size_t got = 0;
            if ((rc = snap_object_read(obj, buf, left < MP_SCRATCH ? (size_t)left : MP_SCRATCH,
                                       &got)) || !got) {
                snprintf(msg, msglen, "%s: reading the snapshot for its parts: %s", si->name,
                         rc ? snap_object_error(obj) : "it ended before its measured length "
                         "(measured again next)");
                if (!rc) { /* a compressed stream that changed: measure it again */
                    si->object_codec[0] = 0;
                    rc = -EAGAIN;
                }
                goto out;
            }
            mbedtls_md_update(&h.sha, buf, got);
            mbedtls_md_update(&h.md5, buf, got);
            mbedtls_md_update(&whole, buf, got);
            mbedtls_md_update(&whole_sha, buf, got);
            left -= got;
        }
        mbedtls_md_finish(&h.sha, d);
        sigv4_hex(d, 32, p->sha);
        mbedtls_md_finish(&h.md5, d);
        sigv4_hex(d, 16, p->md5);
        hashers_free(&h);
        started = 0;
        done += p->len;
    }
    {
        unsigned char d[32];
        char sha[65];
        mbedtls_md_finish(&whole, d);
        sigv4_hex(d, 16, m->md5);
        mbedtls_md_finish(&whole_sha, d);
        sigv4_hex(d, 32, sha);
        /* The parts must make exactly the object STATE measured (or the
         * tar fixed at seal): never a prefix of a stream that grew. */
        if (strcmp(sha, u->codec == SNAP_CODEC_NONE ? si->tar_sha256 : si->object_sha256) ||
            (u->codec != SNAP_CODEC_NONE && snap_object_at_end(obj) != 1)) {
            snprintf(msg, msglen, "%s: its %s object is not the one measured (SHA-256 or "
                     "length): measured again next", si->name, snap_codec_name(u->codec));
            si->object_codec[0] = 0;
            rc = -EAGAIN;
            goto out;
        }
    }
    rc = 0;
out:
    if (started)
        hashers_free(&h);
    mbedtls_md_free(&whole);
    mbedtls_md_free(&whole_sha);
    snap_object_free(obj);
    free(buf);
    if (rc)
        mp_clear(m);
    return rc;
}

/* ---- requests --------------------------------------------------------------- */

/* A request with an in-memory body (or none). */
typedef struct mem_src {
    const char *p;
    size_t left;
} mem_src;

static int mem_body(void *ctx, uint8_t *buf, size_t len, size_t *got)
{
    mem_src *s = ctx;
    *got = len < s->left ? len : s->left;
    memcpy(buf, s->p, *got);
    s->p += *got;
    s->left -= *got;
    return 0;
}

/* Sends a request whose body is b[0..len) and sets msg on a transport
 * failure. 0 with rsp set, or the transport code. */
static int small_request(uploader *u, const char *method, const mp *m, const char *query,
                         const char *b, size_t len, http_response *rsp, char *msg,
                         size_t msglen)
{
    char sha[65], what[400], herr[512];
    mem_src src = {b, len};
    int rc;
    if (len)
        sigv4_sha256_hex(b, len, sha);
    else
        snprintf(sha, sizeof(sha), "%s", EMPTY_SHA256);
    rc = upload__request(u, method, m->key, query, sha, len, len ? mem_body : NULL, &src,
                         len ? "application/xml" : NULL, rsp, what, sizeof(what), herr,
                         sizeof(herr));
    if (rc)
        snprintf(msg, msglen, "%s: %s", what, herr);
    else if (rsp->status < 200 || rsp->status >= 300)
        upload__answer(rsp, what, msg, msglen);
    return rc;
}

/* 1 when a final answer says the upload id is unknown to the server. */
static int no_such_upload(const http_response *rsp)
{
    char code[64];
    return rsp->status == 404 && s3_xml_error(rsp->body, rsp->body_len, code, sizeof(code)) &&
           !strcmp(code, "NoSuchUpload");
}

/* 1 when the object is on the server whole: HEAD answers 2xx with an
 * ETag that is this object's -- S3's multipart form (the MD5 of the parts'
 * MD5s, "-", the part count) or the MD5 of the whole object. For an upload
 * the server no longer knows: Complete may have been done by an attempt
 * whose answer (or whose record of it) was lost to a cut or a crash. */
static int object_is_complete(uploader *u, const mp *m)
{
    char msg[600], etag[S3_ETAG_MAX], want[S3_ETAG_MAX];
    unsigned char d[16], *all = malloc(m->n * 16 + 1);
    http_response rsp;
    int ok = 0;
    if (!all)
        return 0;
    for (size_t i = 0; i < m->n; i++)
        for (size_t k = 0; k < 16; k++) {
            unsigned hi, lo;
            sscanf(m->parts[i].md5 + 2 * k, "%1x%1x", &hi, &lo);
            all[i * 16 + k] = (unsigned char)(hi << 4 | lo);
        }
    mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_MD5), all, m->n * 16, d);
    sigv4_hex(d, 16, want);
    snprintf(want + 32, sizeof(want) - 32, "-%zu", m->n);
    free(all);
    if (!small_request(u, "HEAD", m, "", NULL, 0, &rsp, msg, sizeof(msg)) &&
        rsp.status >= 200 && rsp.status < 300 &&
        !s3_etag_norm(rsp.etag, strlen(rsp.etag), etag))
        ok = !strcmp(etag, want) || !strcmp(etag, m->md5);
    return ok;
}

/* The server forgot the upload (aborted, expired, or completed by an
 * attempt whose answer we lost): start again with a new one. */
static int forget_upload(uploader *u, const snap_info *si, mp *m, char *msg, size_t msglen)
{
    int w;
    agent_log(LOG_LEVEL_WARNING, "upload: %s: the server no longer knows multipart upload %s; "
              "starting a new one", si->name, m->upload_id);
    m->upload_id[0] = 0;
    for (size_t i = 0; i < m->n; i++)
        m->parts[i].etag[0] = 0;
    if ((w = mp_save(u, si, m, msg, msglen)))
        return w;
    snprintf(msg, msglen, "%s: NoSuchUpload: the multipart upload is gone; a new one next",
             si->name);
    return -EAGAIN;
}

/* AbortMultipartUpload of id for m's key: 1 when the server has it no
 * more (2xx, or 404: never was or already gone), else 0 (logged). */
static int abort_one(uploader *u, const mp *m, const char *id)
{
    char msg[600], query[S3_UPLOAD_ID_MAX * 3 + 16], eid[S3_UPLOAD_ID_MAX * 3];
    http_response rsp;
    sigv4_uri_encode(id, 0, eid, sizeof(eid));
    snprintf(query, sizeof(query), "uploadId=%s", eid);
    int rc = small_request(u, "DELETE", m, query, NULL, 0, &rsp, msg, sizeof(msg));
    int gone = !rc && ((rsp.status >= 200 && rsp.status < 300) || rsp.status == 404);
    if (gone)
        agent_log(LOG_LEVEL_INFO, "upload: multipart upload %s aborted (HTTP %d)", id,
                  rsp.status);
    else
        agent_log(LOG_LEVEL_WARNING, "upload: aborting multipart upload %s: %s; tried again "
                  "later", id, msg);
    return gone;
}

typedef struct strays {
    uploader *u;
    const mp *m;
    const char *keep;
    int all_gone;
} strays;

static int on_stray(void *ctx, const char *id)
{
    strays *s = ctx;
    if (strcmp(id, s->keep) && !abort_one(s->u, s->m, id))
        s->all_gone = 0;
    return 0;
}

/* Uploads asked for per ListMultipartUploads page: as many as fit
 * HTTP_BODY_MAX for a key of klen bytes (S3's own default of 1000 would be
 * cut short and refused). S3 writes about 500 bytes an upload besides its
 * key, and the key up to three times more in the page's head. */
static unsigned uploads_per_page(size_t klen)
{
    size_t room = HTTP_BODY_MAX - 1024, head = 3 * klen, each = 768 + klen;
    return head + each < room ? (unsigned)((room - head) / each) : 1;
}

/*
 * Aborts every upload the server lists for m's key except `keep` (""
 * none): those whose CreateMultipartUpload answer was never recorded (a
 * power cut right after it, a stop or a deletion cancelling it). Object
 * keys name one snapshot of one device, so none of them is anyone else's.
 * The listing is read page by page (key-marker and upload-id-marker from
 * the page before) while the server says it is truncated and its next
 * marker is still within this key (S3 lists by key: past it, no upload of
 * ours is left); a server that says truncated without markers, repeats its
 * marker or goes on past MP_UPLOADS_PAGES pages is not followed further
 * (logged). 1 when none is left (or the server cannot list them: then
 * nothing more can be done), 0 when one could not be aborted now.
 */
static int abort_strays(uploader *u, const mp *m, const char *keep)
{
    char key[sizeof(m->key)], ekey[sizeof(m->key)], eid[S3_UPLOAD_ID_MAX * 3], what[400],
        herr[512], query[2 * sizeof(m->key) + sizeof(eid) + 64];
    char marker[S3_UPLOAD_ID_MAX] = ""; /* NextUploadIdMarker of the page before */
    strays s = {.u = u, .m = m, .keep = keep, .all_gone = 1};
    size_t k = 0;
    unsigned per_page;
    /* The key as the server lists it: m->key without its percent escapes. */
    for (const char *p = m->key; *p && k + 1 < sizeof(key); p++) {
        unsigned x;
        if (p[0] == '%' && sscanf(p + 1, "%2x", &x) == 1) {
            key[k++] = (char)x;
            p += 2;
        } else {
            key[k++] = *p;
        }
    }
    key[k] = 0;
    if (sigv4_uri_encode(key, 0, ekey, sizeof(ekey)))
        return 1;
    per_page = uploads_per_page(k);
    for (unsigned page = 0;; page++) {
        http_response rsp;
        s3_uploads_next next;
        if (page == MP_UPLOADS_PAGES) {
            agent_log(LOG_LEVEL_WARNING, "upload: listing the uploads of %s: still truncated "
                      "after %d pages; not followed further", key, MP_UPLOADS_PAGES);
            break;
        }
        sigv4_uri_encode(marker, 0, eid, sizeof(eid));
        if (marker[0])
            snprintf(query, sizeof(query), "key-marker=%s&max-uploads=%u&prefix=%s&"
                     "upload-id-marker=%s&uploads", ekey, per_page, ekey, eid);
        else
            snprintf(query, sizeof(query), "max-uploads=%u&prefix=%s&uploads", per_page, ekey);
        if (upload__request(u, "GET", "", query, EMPTY_SHA256, 0, NULL, NULL, NULL, &rsp, what,
                            sizeof(what), herr, sizeof(herr))) {
            agent_log(LOG_LEVEL_WARNING, "upload: %s: %s; tried again later", what, herr);
            return 0;
        }
        if (rsp.status < 200 || rsp.status >= 300 ||
            s3_xml_list_uploads(rsp.body, rsp.body_len, key, on_stray, &s, &next)) {
            agent_log(LOG_LEVEL_DEBUG, "upload: listing the uploads of %s: HTTP %d, not usable",
                      key, rsp.status);
            break;
        }
        if (!next.truncated || (next.key && (next.key_len != k || memcmp(next.key, key, k))))
            break; /* the end, or the rest are other keys' */
        if (!next.key || !next.upload_id[0] || !strcmp(next.upload_id, marker)) {
            agent_log(LOG_LEVEL_WARNING, "upload: listing the uploads of %s: page %u is "
                      "truncated but %s; not followed further", key, page + 1,
                      next.key && next.upload_id[0] ? "repeats its NextUploadIdMarker"
                                                    : "names no next marker");
            break;
        }
        snprintf(marker, sizeof(marker), "%s", next.upload_id);
    }
    return s.all_gone;
}

static int create_upload(uploader *u, const snap_info *si, mp *m, int *status, char *msg,
                         size_t msglen)
{
    http_response rsp;
    int rc, w;
    abort_strays(u, m, ""); /* no id recorded: any upload of this key is a stray */
    if ((rc = small_request(u, "POST", m, "uploads", NULL, 0, &rsp, msg, msglen)))
        return rc;
    if (rsp.status < 200 || rsp.status >= 300) {
        *status = rsp.status;
        return 0;
    }
    if (s3_xml_initiate(rsp.body, rsp.body_len, m->upload_id)) {
        snprintf(msg, msglen, "%s: CreateMultipartUpload answered HTTP %d without a usable "
                 "UploadId", si->name, rsp.status);
        return -EPROTO;
    }
    if ((w = mp_save(u, si, m, msg, msglen)))
        return w;
    agent_log(LOG_LEVEL_INFO, "upload: %s: multipart upload %s of %zu parts of %" PRIu64
              " bytes", si->name, m->upload_id, m->n, m->part_size);
    return 0;
}

/* ListParts marks: 0 not held, 1 held with the ETag we kept, 2 held with
 * our MD5 as its ETag (sent, but our record of it was lost). */
typedef struct held {
    const mp *m;
    unsigned char *mark;
    unsigned last;
} held;

static int on_part(void *ctx, const s3_part *p)
{
    held *h = ctx;
    if (p->number <= h->last) /* pages go up; a server that goes back lies */
        return -EPROTO;
    h->last = p->number;
    if (p->number > h->m->n)
        return 0;
    const mp_part *q = &h->m->parts[p->number - 1];
    if (p->size != q->len)
        return 0;
    if (q->etag[0] && !strcmp(p->etag, q->etag))
        h->mark[p->number - 1] = 1;
    else if (!strcmp(p->etag, q->md5))
        h->mark[p->number - 1] = 2;
    return 0;
}

/* Asks the server which parts it holds; the confirmed ones become exactly
 * those it holds with the right size and ETag. A part it claims that we
 * never sent cannot match our MD5 of it, so it is sent. */
static int reconcile(uploader *u, const snap_info *si, mp *m, int *status, char *msg,
                     size_t msglen)
{
    char query[S3_UPLOAD_ID_MAX * 3 + 64], eid[S3_UPLOAD_ID_MAX * 3];
    held h = {.m = m};
    unsigned marker = 0;
    int rc = 0, truncated = 1, changed = 0;
    if (!(h.mark = calloc(m->n, 1))) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    sigv4_uri_encode(m->upload_id, 0, eid, sizeof(eid));
    for (unsigned page = 0; truncated; page++) {
        http_response rsp;
        if (page > S3_MAX_PARTS / MP_LIST_PAGE + 1) {
            snprintf(msg, msglen, "%s: ListParts did not end", si->name);
            rc = -EPROTO;
            goto out;
        }
        snprintf(query, sizeof(query), "max-parts=%d&part-number-marker=%u&uploadId=%s",
                 MP_LIST_PAGE, marker, eid);
        if ((rc = small_request(u, "GET", m, query, NULL, 0, &rsp, msg, msglen)))
            goto out;
        if (no_such_upload(&rsp) && object_is_complete(u, m)) {
            *status = 200; /* completed by an attempt whose answer was lost */
            snprintf(msg, msglen, "%s: found complete on the server", si->name);
            rc = 1;
            goto out;
        }
        if (no_such_upload(&rsp)) { /* go on with a new upload */
            rc = forget_upload(u, si, m, msg, msglen) == -EAGAIN ? 0 : -EIO;
            goto out;
        }
        if (rsp.status < 200 || rsp.status >= 300) {
            *status = rsp.status;
            rc = 1;
            goto out;
        }
        unsigned next = 0;
        if ((rc = s3_xml_list_parts(rsp.body, rsp.body_len, on_part, &h, &truncated, &next))) {
            snprintf(msg, msglen, "%s: ListParts answered HTTP %d with a reply that is not a "
                     "whole ListPartsResult (or lists parts out of order)", si->name,
                     rsp.status);
            rc = -EPROTO;
            goto out;
        }
        if (truncated && next <= marker) {
            snprintf(msg, msglen, "%s: ListParts is truncated but its marker does not move",
                     si->name);
            rc = -EPROTO;
            goto out;
        }
        marker = next;
    }
    for (size_t i = 0; i < m->n; i++) {
        mp_part *p = &m->parts[i];
        if (!h.mark[i] && p->etag[0]) {
            agent_log(LOG_LEVEL_WARNING, "upload: %s: the server does not hold part %zu any "
                      "more; sending it again", si->name, i + 1);
            p->etag[0] = 0;
            changed = 1;
        } else if (h.mark[i] == 2 && strcmp(p->etag, p->md5)) {
            snprintf(p->etag, sizeof(p->etag), "%s", p->md5);
            changed = 1;
        }
    }
    if (changed)
        rc = mp_save(u, si, m, msg, msglen);
out:
    free(h.mark);
    return rc;
}

/* Reads and drops n bytes of the object (a confirmed part). */
static int skip(snap_object *obj, uint8_t *buf, uint64_t n)
{
    while (n) {
        size_t got = 0;
        int rc = snap_object_read(obj, buf, n < MP_SCRATCH ? (size_t)n : MP_SCRATCH, &got);
        if (rc)
            return rc;
        if (!got)
            return -EBADMSG;
        n -= got;
    }
    return 0;
}

/* Sends part i: the next p->len bytes of obj (where the parts before it
 * ended), withheld before their last piece if they are not the plan's. */
static int send_part(uploader *u, snap_info *si, mp *m, size_t i, snap_object *obj,
                     int *status, char *msg, size_t msglen)
{
    char query[S3_UPLOAD_ID_MAX * 3 + 64], eid[S3_UPLOAD_ID_MAX * 3], what[400], herr[512];
    mp_part *p = &m->parts[i];
    /* Checked against the plan; the last part of a compressed object must
     * also end it (a plain tar's length is the seal's). */
    upload_body src = {.obj = obj, .check = snap_object_check_new(p->len, p->sha),
                       .whole = i + 1 == m->n && u->codec != SNAP_CODEC_NONE};
    http_response rsp;
    int rc;
    if (!src.check) {
        snprintf(msg, msglen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    sigv4_uri_encode(m->upload_id, 0, eid, sizeof(eid));
    snprintf(query, sizeof(query), "partNumber=%zu&uploadId=%s", i + 1, eid);
    rc = upload__put_object(u, &src, m->key, query, p->sha, p->len, NULL, &rsp, what,
                            sizeof(what), herr, sizeof(herr));
    if (rc == HTTP_EBODY && plat_cancel_fired(u->cancel)) {
        snprintf(msg, msglen, "%s: cancelled", what);
        rc = HTTP_ECANCELED;
    } else if (rc == HTTP_EBODY && src.mismatch) {
        /* The stream is not the planned one (a library upgrade?): plan again
         * next time, in a new upload. */
        snprintf(msg, msglen, "%s: part %zu came out different from its plan: not sent whole; "
                 "measured and planned again next", si->name, i + 1);
        snap_queue_abort(u->vfs, u->root, si->name);
        si->object_codec[0] = 0; /* STATE's measure goes too (settle writes it) */
        rc = -EAGAIN;
    } else if (rc == HTTP_EBODY && snap_object_error(obj)[0]) {
        snprintf(msg, msglen, "%s: reading the snapshot: %s", si->name, snap_object_error(obj));
        rc = -EBADMSG;
    } else if (rc) {
        snprintf(msg, msglen, "%s: %s", what, herr);
    } else if (no_such_upload(&rsp)) {
        rc = forget_upload(u, si, m, msg, msglen);
    } else if (rsp.status < 200 || rsp.status >= 300) {
        upload__answer(&rsp, what, msg, msglen);
        *status = rsp.status;
        rc = 1;
    } else if (rsp.bytes_sent != p->len) {
        snprintf(msg, msglen, "%s: HTTP %d after %" PRIu64 " of %" PRIu64 " bytes of the part: "
                 "not taken as confirmed", what, rsp.status, rsp.bytes_sent, p->len);
        rc = -EPROTO;
    } else if (s3_etag_norm(rsp.etag, strlen(rsp.etag), p->etag)) {
        snprintf(msg, msglen, "%s: HTTP %d without a usable ETag: part not confirmed", what,
                 rsp.status);
        rc = -EPROTO;
    } else if (!(rc = mp_save(u, si, m, msg, msglen))) {
        agent_log(LOG_LEVEL_DEBUG, "upload: %s: part %zu of %zu confirmed (%" PRIu64 " bytes)",
                  si->name, i + 1, m->n, p->len);
    }
out:
    snap_object_check_free(src.check);
    return rc;
}

static int complete(uploader *u, const snap_info *si, const mp *m, int *status, char *msg,
                    size_t msglen)
{
    char query[S3_UPLOAD_ID_MAX * 3 + 16], eid[S3_UPLOAD_ID_MAX * 3];
    size_t cap = 256 + m->n * (64 + S3_ETAG_MAX), len;
    char *b = malloc(cap);
    http_response rsp;
    int rc;
    if (!b) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    len = (size_t)snprintf(b, cap, "<CompleteMultipartUpload "
                           "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (size_t i = 0; i < m->n; i++)
        len += (size_t)snprintf(b + len, cap - len, "<Part><PartNumber>%zu</PartNumber>"
                                "<ETag>\"%s\"</ETag></Part>", i + 1, m->parts[i].etag);
    len += (size_t)snprintf(b + len, cap - len, "</CompleteMultipartUpload>");
    sigv4_uri_encode(m->upload_id, 0, eid, sizeof(eid));
    snprintf(query, sizeof(query), "uploadId=%s", eid);
    if ((rc = small_request(u, "POST", m, query, b, len, &rsp, msg, msglen)))
        goto out;
    if (no_such_upload(&rsp)) {
        rc = 1; /* forgotten below */
        goto out;
    }
    if (rsp.status >= 200 && rsp.status < 300 && s3_xml_complete(rsp.body, rsp.body_len)) {
        /* S3 answers 200 first and may report a failure in the body. */
        char code[64];
        s3_xml_error(rsp.body, rsp.body_len, code, sizeof(code));
        snprintf(msg, msglen, "%s: CompleteMultipartUpload answered HTTP %d %s%s: not taken as "
                 "uploaded", si->name, rsp.status, code[0] ? "with error " : "without a result",
                 code);
        rc = -EPROTO;
        goto out;
    }
    if (rsp.status >= 200 && rsp.status < 300)
        snprintf(msg, msglen, "%s: %zu parts, completed: HTTP %d", si->name, m->n, rsp.status);
    *status = rsp.status;
out:
    free(b);
    return rc;
}

int multipart_attempt(uploader *u, snap_info *si, int *status, char *msg, size_t msglen)
{
    char ekey[3072], path[4096], *text = NULL;
    size_t tlen = 0, sent = 0;
    snap_object *obj = NULL;
    uint8_t *buf = NULL;
    mp m = {0};
    int rc;
    *status = 0;
    if ((rc = upload__key(u, si, ekey, sizeof(ekey), msg, msglen)) ||
        (rc = path_of(u, si->name, SNAP_MULTIPART_NAME, path, sizeof(path))))
        goto out;
    /* The plan on disk, if it is for this very object and part size. */
    char object[24];
    snprintf(object, sizeof(object), "%s:%d", snap_codec_name(u->codec), u->level);
    if (plat_file_read(u->vfs, path, MP_FILE_MAX, &text, &tlen) == 0 &&
        mp_parse(text, tlen, &m) == 0 &&
        (strcmp(m.object, object) || strcmp(m.key, ekey) || m.bytes != object_bytes(u, si) ||
         m.part_size != part_size_for(u, m.bytes))) {
        mp_clear(&m);
        snap_queue_abort(u->vfs, u->root, si->name); /* its upload, if any, is of no use */
    }
    free(text);
    if (!m.n) {
        if ((rc = mp_plan(u, si, ekey, &m, msg, msglen)))
            goto out;
        if ((rc = mp_save(u, si, &m, msg, msglen)))
            goto out;
    }
    if (m.upload_id[0]) {
        if ((rc = reconcile(u, si, &m, status, msg, msglen)))
            goto out;
    }
    if (!m.upload_id[0] && ((rc = create_upload(u, si, &m, status, msg, msglen)) || *status))
        goto out;
    if (!(buf = malloc(MP_SCRATCH))) {
        snprintf(msg, msglen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = open_object(u, si, &obj, msg, msglen)))
        goto out;
    for (size_t i = 0; i < m.n; i++) {
        if (m.parts[i].etag[0]) {
            if ((rc = skip(obj, buf, m.parts[i].len))) {
                snprintf(msg, msglen, "%s: reading the snapshot: %s", si->name,
                         snap_object_error(obj)[0] ? snap_object_error(obj) : "ended early");
                goto out;
            }
            continue;
        }
        if ((rc = send_part(u, si, &m, i, obj, status, msg, msglen)))
            goto out;
        sent++;
    }
    rc = complete(u, si, &m, status, msg, msglen);
    if (rc == 1 && object_is_complete(u, &m)) {
        *status = 200; /* completed by an attempt whose answer was lost */
        rc = 0;
    } else if (rc == 1) {
        rc = forget_upload(u, si, &m, msg, msglen);
    }
    else if (!rc && *status >= 200 && *status < 300)
        agent_log(LOG_LEVEL_INFO, "upload: %s: multipart upload %s completed (%zu parts, %zu "
                  "sent in this attempt)", si->name, m.upload_id, m.n, sent);
out:
    if (rc == 1) /* a final answer, in *status */
        rc = 0;
    snap_object_free(obj);
    free(buf);
    mp_clear(&m);
    return rc;
}

void multipart_done(uploader *u, const char *name)
{
    char path[4096];
    if (!path_of(u, name, SNAP_MULTIPART_NAME, path, sizeof(path)))
        u->vfs->unlink(u->vfs, path);
}

void multipart_abort_pending(uploader *u)
{
    char **names = NULL, path[4096], keep_path[4096], snap[SNAP_NAME_MAX];
    size_t n = 0;
    if (u->mode != AGENT_UPLOAD_S3 ||
        plat_dir_list(u->vfs, u->root, SNAP_ABORT_PREFIX, &names, &n))
        return;
    for (size_t i = 0; i < n && !plat_cancel_fired(u->cancel); i++) {
        char *text = NULL;
        size_t tlen = 0;
        mp m = {0}, now = {0};
        int rc, gone = 1;
        if (path_of(u, names[i], NULL, path, sizeof(path)))
            continue;
        rc = plat_file_read(u->vfs, path, MP_FILE_MAX, &text, &tlen);
        if (!rc && mp_parse(text, tlen, &m) == 0) {
            /* .abort-NAME.K: NAME's current upload (after an operator's
             * retry, say) is not a stray. */
            const char *leaf = names[i] + strlen(SNAP_ABORT_PREFIX), *dot = strrchr(leaf, '.');
            char *t2 = NULL;
            snprintf(snap, sizeof(snap), "%.*s", (int)(dot ? dot - leaf : 0), leaf);
            if (snap[0] && !path_of(u, snap, SNAP_MULTIPART_NAME, keep_path, sizeof(keep_path)) &&
                !plat_file_read(u->vfs, keep_path, MP_FILE_MAX, &t2, &tlen))
                mp_parse(t2, tlen, &now);
            free(t2);
            if (m.upload_id[0] && strcmp(m.upload_id, now.upload_id))
                gone = abort_one(u, &m, m.upload_id);
            if (gone)
                gone = abort_strays(u, &m, now.upload_id);
        } else if (rc != -ENOENT) {
            agent_log(LOG_LEVEL_WARNING, "upload: %s holds no multipart upload to abort; "
                      "removed", path);
        }
        free(text);
        mp_clear(&m);
        mp_clear(&now);
        if (!gone)
            break;
        u->vfs->unlink(u->vfs, path);
        u->vfs->dirsync(u->vfs, u->root);
    }
    free(names);
}
