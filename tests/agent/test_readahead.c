/*
 * test_readahead.c -- the upload body's readahead thread (agent/readahead.c):
 * the source runs ahead of the reader (n pieces are produced before the
 * reader asks for a byte) and never more than n pieces ahead (checked at
 * every source call); a full ring is refilled once half of it is free, not
 * piece by piece; the reader gets exactly the source's bytes in order
 * whatever sizes either side uses, then its end, again and again; a piece
 * that came with an error is withheld and the error repeats; a source that
 * overruns its buffer is refused; freeing stops a producer that is waiting
 * for room or is still producing, and the source is never called after.
 * Waits are on conditions (semaphores), never on sleeps.
 */
#include "readahead.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define PIECE 1000
#define NPIECES 4

typedef struct src {
    pthread_mutex_t mu;
    uint64_t total;    /* bytes the source has, then its end */
    uint64_t made;     /* bytes produced so far */
    uint64_t taken;    /* bytes the reader has got (the test updates it) */
    unsigned calls;
    size_t step;       /* bytes per call before the cut (varied: short reads) */
    int fail_at_call;  /* this call returns bytes AND err (0: never) */
    int err;
    int overrun;       /* claim one byte more than asked */
    sem_t called;      /* posted after every call */
    pthread_t reader;  /* the source must never run on it */
    pid_t producer;    /* the thread the source runs on (its tid) */
    int max_ahead_ok;  /* cleared when a call found more than NPIECES pieces unread */
    uint64_t ahead_at[8]; /* made - taken at calls 1..7 */
} src;

static uint8_t byte_at(uint64_t i)
{
    return (uint8_t)(i * 131 + (i >> 9));
}

static int source(void *ctx, uint8_t *buf, size_t len, size_t *got)
{
    src *s = ctx;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->producer = (pid_t)syscall(SYS_gettid);
    if (s->calls < sizeof(s->ahead_at) / sizeof(s->ahead_at[0]))
        s->ahead_at[s->calls] = s->made - s->taken;
    if (pthread_equal(pthread_self(), s->reader))
        s->max_ahead_ok = 0;
    /* Produced but unread when the source is asked for more: at most the
     * ring (NPIECES), plus the reader's last read (at most one piece),
     * which `taken` counts only once readahead_read has returned. */
    if (s->made - s->taken > (uint64_t)(NPIECES + 1) * PIECE)
        s->max_ahead_ok = 0;
    size_t want = s->step ? (size_t)(1 + (s->calls * 389u) % s->step) : len;
    if (want > len)
        want = len;
    if (want > s->total - s->made)
        want = (size_t)(s->total - s->made);
    for (size_t i = 0; i < want; i++)
        buf[i] = byte_at(s->made + i);
    *got = want + (s->overrun ? len + 1 - want : 0);
    s->made += want;
    if (s->fail_at_call && (int)s->calls == s->fail_at_call)
        rc = s->err;
    pthread_mutex_unlock(&s->mu);
    sem_post(&s->called);
    return rc;
}

static void src_init(src *s, uint64_t total)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    sem_init(&s->called, 0, 0);
    s->total = total;
    s->reader = pthread_self();
    s->max_ahead_ok = 1;
}

static void src_fini(src *s)
{
    sem_destroy(&s->called);
    pthread_mutex_destroy(&s->mu);
}

static void took(src *s, size_t n)
{
    pthread_mutex_lock(&s->mu);
    s->taken += n;
    pthread_mutex_unlock(&s->mu);
}

/* Waits until the producer thread sleeps (its state in /proc is S). Once
 * its source has returned, the only sleep left to it is the wait for room:
 * nothing else takes the readahead's lock meanwhile. */
static void producer_sleeps(src *s)
{
    char path[64], buf[256];
    pthread_mutex_lock(&s->mu);
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)s->producer);
    pthread_mutex_unlock(&s->mu);
    for (long i = 0;; i++) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = 0;
        const char *st = strrchr(buf, ')'); /* "tid (comm) S ..." */
        if (st && st[1] == ' ' && st[2] == 'S')
            return;
        if (i > 10000000)
            fail_msg("the producer never slept: %s", buf);
        sched_yield();
    }
}

static unsigned calls(src *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned c = s->calls;
    pthread_mutex_unlock(&s->mu);
    return c;
}

static void test_source_runs_ahead_and_refills_the_ring_by_halves(void **state)
{
    (void)state;
    for (unsigned n = 1; n <= NPIECES; n++) {
        src s;
        readahead *ra;
        uint8_t buf[PIECE];
        size_t got;
        src_init(&s, 1 << 20);
        assert_int_equal(readahead_new(source, &s, PIECE, n, &ra), 0);
        for (unsigned i = 0; i < n; i++) /* not one byte read yet */
            sem_wait(&s.called);
        producer_sleeps(&s); /* it has counted its last piece: the ring is full */
        assert_int_equal(calls(&s), n);
        /* A full ring's producer is woken once at most n / 2 pieces are
         * unread, not once per piece. The test counts each piece as taken
         * before it reads it, so the source sees exactly what is unread
         * when it is called again. */
        for (unsigned i = 0; i < n - n / 2; i++) {
            took(&s, PIECE);
            assert_int_equal(readahead_read(ra, buf, sizeof(buf), &got), 0);
            assert_int_equal(got, PIECE);
            if (i == 0 && n - n / 2 > 1) {
                /* one piece free is not enough: no call within 50 ms (a
                 * wait that can only miss a regression, never fail) */
                struct timespec t;
                clock_gettime(CLOCK_REALTIME, &t);
                t.tv_nsec += 50000000;
                if (t.tv_nsec >= 1000000000) {
                    t.tv_sec++;
                    t.tv_nsec -= 1000000000;
                }
                if (!sem_timedwait(&s.called, &t))
                    fail_msg("n = %u: the source was called again after one piece", n);
                assert_int_equal(errno, ETIMEDOUT);
            }
        }
        for (unsigned i = 0; i < n - n / 2; i++) /* the freed pieces are refilled */
            sem_wait(&s.called);
        readahead_free(ra);
        assert_int_equal(calls(&s), n + n - n / 2);
        assert_int_equal(s.ahead_at[n + 1], (uint64_t)(n / 2) * PIECE);
        assert_true(s.max_ahead_ok);
        src_fini(&s);
    }
}

static void test_exact_bytes_in_order_then_the_end_repeated(void **state)
{
    (void)state;
    static const size_t reads[] = {1, 7, 999, 1000, 1001, 16384, 3};
    static const size_t steps[] = {0, 7, 500, 2000};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        src s;
        readahead *ra;
        uint8_t buf[16384];
        uint64_t at = 0, total = 3 * 65536 + 77;
        src_init(&s, total);
        s.step = steps[k];
        assert_int_equal(readahead_new(source, &s, PIECE, NPIECES, &ra), 0);
        for (size_t r = 0;; r++) {
            size_t got = 99, want = reads[r % (sizeof(reads) / sizeof(reads[0]))];
            assert_int_equal(readahead_read(ra, buf, want, &got), 0);
            assert_true(got <= want);
            if (!got)
                break;
            for (size_t i = 0; i < got; i++)
                if (buf[i] != byte_at(at + i))
                    fail_msg("step %zu: byte %llu differs", steps[k],
                             (unsigned long long)(at + i));
            at += got;
            took(&s, got);
        }
        assert_int_equal(at, total);
        for (int again = 0; again < 3; again++) {
            size_t got = 99;
            assert_int_equal(readahead_read(ra, buf, sizeof(buf), &got), 0);
            assert_int_equal(got, 0);
        }
        readahead_free(ra);
        assert_true(s.max_ahead_ok);
        src_fini(&s);
    }
}

static void test_a_failed_piece_is_withheld_and_the_error_repeats(void **state)
{
    (void)state;
    src s;
    readahead *ra;
    uint8_t buf[PIECE];
    uint64_t at = 0;
    size_t got;
    int rc;
    src_init(&s, 1 << 20);
    s.fail_at_call = 4; /* its bytes come with -EBADMSG: the last piece of a bad stream */
    s.err = -EBADMSG;
    assert_int_equal(readahead_new(source, &s, PIECE, NPIECES, &ra), 0);
    while ((rc = readahead_read(ra, buf, sizeof(buf), &got)) == 0 && got) {
        at += got;
        took(&s, got);
    }
    assert_int_equal(rc, -EBADMSG);
    assert_int_equal(got, 0);
    assert_int_equal(at, 3 * PIECE); /* the fourth piece never handed on */
    assert_int_equal(readahead_read(ra, buf, sizeof(buf), &got), -EBADMSG);
    assert_int_equal(got, 0);
    readahead_free(ra);
    assert_int_equal(calls(&s), 4); /* nothing read past the error */
    src_fini(&s);
}

static void test_a_source_that_overruns_is_refused(void **state)
{
    (void)state;
    src s;
    readahead *ra;
    uint8_t buf[PIECE];
    size_t got;
    src_init(&s, 1 << 20);
    s.overrun = 1;
    assert_int_equal(readahead_new(source, &s, PIECE, NPIECES, &ra), 0);
    assert_int_equal(readahead_read(ra, buf, sizeof(buf), &got), -EOVERFLOW);
    assert_int_equal(got, 0);
    readahead_free(ra);
    src_fini(&s);
}

static void test_free_stops_a_full_or_busy_producer(void **state)
{
    (void)state;
    for (int read_some = 0; read_some < 2; read_some++) {
        src s;
        readahead *ra;
        uint8_t buf[100];
        size_t got;
        src_init(&s, 1 << 30);
        assert_int_equal(readahead_new(source, &s, PIECE, NPIECES, &ra), 0);
        if (read_some) { /* a reader that stops halfway through a piece */
            assert_int_equal(readahead_read(ra, buf, sizeof(buf), &got), 0);
            assert_int_equal(got, sizeof(buf));
        } else { /* the ring full, the producer waiting for room */
            for (int i = 0; i < NPIECES; i++)
                sem_wait(&s.called);
        }
        readahead_free(ra);
        assert_true(calls(&s) <= NPIECES + 1); /* and none after: free joined it */
        src_fini(&s);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    readahead *ra = (readahead *)&ra;
    assert_int_equal(readahead_new(source, NULL, 0, 1, &ra), -EINVAL);
    assert_null(ra);
    assert_int_equal(readahead_new(source, NULL, 1, 0, &ra), -EINVAL);
    assert_int_equal(readahead_new(NULL, NULL, 1, 1, &ra), -EINVAL);
    assert_int_equal(readahead_new(source, NULL, SIZE_MAX / 2, 3, &ra), -EINVAL);
    readahead_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_runs_ahead_and_refills_the_ring_by_halves),
        cmocka_unit_test(test_exact_bytes_in_order_then_the_end_repeated),
        cmocka_unit_test(test_a_failed_piece_is_withheld_and_the_error_repeats),
        cmocka_unit_test(test_a_source_that_overruns_is_refused),
        cmocka_unit_test(test_free_stops_a_full_or_busy_producer),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
