/*
 * cipher_bench.c -- the raw speed of the TLS record ciphers the agent can
 * negotiate, as mbedTLS (the library it uploads with) runs them here:
 * ChaCha20-Poly1305, AES-128-GCM and AES-256-GCM sealing 16 KiB records
 * (the agent's record size) with a 13-byte header as additional data, the
 * way a TLS 1.2 record is sealed. A command that measures (README,
 * "Performance"), not a test: it decides which suite the agent's default
 * offer should lead with on a CPU (upload.ciphersuites), and runs under
 * qemu-aarch64 from a cross build to show the order without AES
 * instructions.
 *
 * Usage: cipher_bench [MIB_PER_RUN [RUNS]]   (defaults 64 and 5)
 * Prints each cipher's median MiB/s (runs alternate between the ciphers)
 * and the ratio ChaCha20 / AES-128-GCM.
 */
#include <mbedtls/cipher.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORD 16384

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* MiB/s of one run sealing mib MiB; < 0 on a library error. */
static double run(mbedtls_cipher_type_t type, unsigned key_bits, size_t iv_len, unsigned mib)
{
    static unsigned char in[RECORD], out[RECORD + 16];
    unsigned char key[32] = {1}, iv[12] = {2}, ad[13] = {3};
    mbedtls_cipher_context_t ctx;
    double t0, rate = -1;
    size_t olen;
    mbedtls_cipher_init(&ctx);
    if (mbedtls_cipher_setup(&ctx, mbedtls_cipher_info_from_type(type)) ||
        mbedtls_cipher_setkey(&ctx, key, (int)key_bits, MBEDTLS_ENCRYPT))
        goto out;
    t0 = now_s();
    for (unsigned long i = 0; i < (unsigned long)mib * (1 << 20) / RECORD; i++) {
        iv[11] = (unsigned char)i; /* a fresh nonce per record, as TLS does */
        if (mbedtls_cipher_auth_encrypt_ext(&ctx, iv, iv_len, ad, sizeof(ad), in, RECORD, out,
                                            sizeof(out), &olen, 16))
            goto out;
    }
    rate = mib / (now_s() - t0);
out:
    mbedtls_cipher_free(&ctx);
    return rate;
}

int main(int argc, char **argv)
{
    unsigned mib = argc > 1 ? (unsigned)atoi(argv[1]) : 64, runs = argc > 2 ? (unsigned)atoi(argv[2]) : 5;
    static const struct {
        const char *name;
        mbedtls_cipher_type_t type;
        unsigned bits;
    } ciphers[] = {{"ChaCha20-Poly1305", MBEDTLS_CIPHER_CHACHA20_POLY1305, 256},
                   {"AES-128-GCM", MBEDTLS_CIPHER_AES_128_GCM, 128},
                   {"AES-256-GCM", MBEDTLS_CIPHER_AES_256_GCM, 256}};
    double med[3];
    if (!mib || !runs || runs > 99) {
        fprintf(stderr, "usage: cipher_bench [MIB_PER_RUN [RUNS]]\n");
        return 2;
    }
    static double r[3][99];
    /* Round-robin, so the load of a shared machine falls on all three alike. */
    for (unsigned k = 0; k < runs; k++)
        for (size_t c = 0; c < 3; c++)
            if ((r[c][k] = run(ciphers[c].type, ciphers[c].bits, 12, mib)) < 0) {
                fprintf(stderr, "%s: not available in this mbedTLS\n", ciphers[c].name);
                return 1;
            }
    for (size_t c = 0; c < 3; c++) {
        qsort(r[c], runs, sizeof(r[c][0]), cmp);
        med[c] = r[c][runs / 2];
        printf("%-18s median %7.1f MiB/s (%u runs of %u MiB, 16 KiB records)\n", ciphers[c].name,
               med[c], runs, mib);
    }
    printf("ChaCha20-Poly1305 / AES-128-GCM = %.2f x\n", med[0] / med[1]);
    return 0;
}
