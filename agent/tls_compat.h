/*
 * tls_compat.h -- the three mbedTLS calls whose signatures changed between
 * 2.28 (Debian 12, what this project builds and tests against) and 3.x
 * (newer Yocto and Buildroot images), behind one name each, so http.c reads
 * the same for both. Everything else the agent uses (ssl, x509, ctr_drbg,
 * the md layer for hashes and HMAC) has the same API in both. The 3.x
 * branch is written from mbedTLS 3.x's documented API and is not built in
 * CI: no 3.x package is available from this project's registries.
 */
#ifndef EMBEDDB_TLS_COMPAT_H
#define EMBEDDB_TLS_COMPAT_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>

/* AES instructions mbedTLS uses: only AES-NI on x86-64 in 2.28 (no ARMv8
 * Crypto Extensions before 3.x); 3.x keeps aesni.h internal, so it counts
 * as none there (the order then prefers ChaCha20-Poly1305, still sound). */
#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_AESNI_C)
#include <mbedtls/aesni.h>
#endif
#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_AESNI_C) && \
    defined(MBEDTLS_HAVE_X86_64)
#define tls_compat_aes_accelerated() mbedtls_aesni_has_support(MBEDTLS_AESNI_AES)
#else
#define tls_compat_aes_accelerated() 0
#endif

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
/* 3.x takes the random generator for key blinding. */
#define tls_compat_parse_keyfile(pk, path, drbg) \
    mbedtls_pk_parse_keyfile((pk), (path), NULL, mbedtls_ctr_drbg_random, (drbg))
#define tls_compat_check_pair(pub, prv, drbg) \
    mbedtls_pk_check_pair((pub), (prv), mbedtls_ctr_drbg_random, (drbg))
#define tls_compat_min_tls12(conf) \
    mbedtls_ssl_conf_min_tls_version((conf), MBEDTLS_SSL_VERSION_TLS1_2)
#else
#define tls_compat_parse_keyfile(pk, path, drbg) mbedtls_pk_parse_keyfile((pk), (path), NULL)
#define tls_compat_check_pair(pub, prv, drbg) mbedtls_pk_check_pair((pub), (prv))
#define tls_compat_min_tls12(conf) \
    mbedtls_ssl_conf_min_version((conf), MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3)
#endif

#endif
