/*
 * sha256.h -- SHA-256 for the snapshot library, through mbedTLS's generic
 * message-digest layer (mbedtls/md.h), the one API that is the same in
 * mbedTLS 2.28 (Debian 12) and 3.x (newer Yocto and Buildroot images):
 * the sha256-specific *_ret functions of 2.28 are gone in 3.0. The agent's
 * SigV4 signer uses the same layer. Internal to snapshot/.
 */
#ifndef EMBEDDB_SNAP_SHA256_H
#define EMBEDDB_SNAP_SHA256_H

#include <mbedtls/md.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sha256 {
    mbedtls_md_context_t md;
    int ok; /* setup and starts succeeded; updates are no-ops otherwise */
} sha256;

/* Starts a digest. 0, or -ENOMEM (the context then hashes nothing and
 * sha256_finish reports the failure). Always pair with sha256_free. */
static inline int sha256_init(sha256 *h)
{
    mbedtls_md_init(&h->md);
    h->ok = mbedtls_md_setup(&h->md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 0) == 0 &&
            mbedtls_md_starts(&h->md) == 0;
    return h->ok ? 0 : -ENOMEM;
}

static inline void sha256_update(sha256 *h, const void *p, size_t len)
{
    if (h->ok && len && mbedtls_md_update(&h->md, (const unsigned char *)p, len))
        h->ok = 0;
}

/* The digest into out. 0, or -ENOMEM when any step failed. */
static inline int sha256_finish(sha256 *h, uint8_t out[32])
{
    if (!h->ok || mbedtls_md_finish(&h->md, out))
        return -ENOMEM;
    return 0;
}

static inline void sha256_free(sha256 *h)
{
    mbedtls_md_free(&h->md);
}

/* Lower-case hex of n bytes into out (2n + 1 bytes). */
static inline void sha256_hex(const uint8_t *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = 0;
}

#endif
