/*
 * test_watermark.c -- the de-duplication table (agent/watermark.h): which
 * messages are duplicates, the window and the publisher cap on both sides
 * of their limits, the record's round trip and its refusal of corrupt
 * bytes, the tag's syntax. Pure; the agent's use of it across kills is
 * tests/integration/test_durable.py.
 */
#include "watermark.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

/* One batch of one message: 1 when it was a duplicate. */
static int take1(watermark *w, const char *id, uint64_t seq)
{
    wm_begin(w);
    int dup = wm_take(w, id, seq, seq);
    wm_commit(w);
    return dup;
}

static void test_ids_at_or_below_through_and_in_the_window_are_duplicates(void **state)
{
    watermark w;
    (void)state;
    assert_int_equal(wm_init(&w, 4, 1), 0);
    /* out of order at first sight: 3 before 1 and 2 */
    assert_false(take1(&w, "p", 3));
    assert_int_equal(w.pubs[0].through, 0);
    assert_true(take1(&w, "p", 3));
    assert_false(take1(&w, "p", 1));
    assert_false(take1(&w, "p", 2));
    assert_int_equal(w.pubs[0].through, 3);
    for (uint64_t s = 1; s <= 3; s++)
        assert_true(take1(&w, "p", s));
    assert_int_equal(w.c.duplicates, 4);
    /* within one batch, the second copy is the duplicate */
    wm_begin(&w);
    assert_false(wm_take(&w, "p", 4, 4));
    assert_true(wm_take(&w, "p", 4, 4));
    /* not committed: the durable table does not have 4 */
    wm_begin(&w);
    assert_false(wm_take(&w, "p", 4, 4));
    wm_free(&w);
}

static void test_window_edge_and_a_move_past_it(void **state)
{
    watermark w;
    (void)state;
    assert_int_equal(wm_init(&w, 1, 1), 0);
    /* through 0: the last id the window holds is WM_WINDOW */
    assert_false(take1(&w, "p", WM_WINDOW));
    assert_int_equal(w.pubs[0].through, 0);
    assert_int_equal(w.c.given_up, 0);
    /* one past: the window moves by one, id 1 (never seen) is given up */
    assert_false(take1(&w, "p", WM_WINDOW + 1));
    assert_int_equal(w.c.given_up, 1);
    assert_int_equal(w.pubs[0].through, 1);
    assert_true(take1(&w, "p", 1));
    assert_false(take1(&w, "p", 2));
    assert_true(take1(&w, "p", WM_WINDOW + 1));
    /* a jump far ahead leaves only the new id set */
    assert_false(take1(&w, "p", 1000000));
    assert_int_equal(w.pubs[0].through, 1000000 - WM_WINDOW);
    assert_true(take1(&w, "p", 1000000));
    assert_false(take1(&w, "p", 1000000 - 1));
    wm_free(&w);
}

static void test_publisher_cap_evicts_the_oldest(void **state)
{
    watermark w;
    (void)state;
    assert_int_equal(wm_init(&w, 2, 1), 0);
    wm_begin(&w);
    assert_false(wm_take(&w, "a", 1, 10));
    assert_false(wm_take(&w, "b", 1, 11));
    wm_commit(&w);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.c.evicted, 0);
    wm_begin(&w);
    assert_true(wm_take(&w, "a", 1, 12)); /* a is now the newest */
    assert_false(wm_take(&w, "c", 1, 13));
    wm_commit(&w);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.c.evicted, 1);
    /* b was forgotten: its id 1 is taken again */
    assert_false(take1(&w, "b", 1));
    wm_free(&w);
    /* cap 0: de-duplication off, nothing is ever a duplicate */
    assert_int_equal(wm_init(&w, 0, 1), 0);
    assert_false(take1(&w, "a", 1));
    assert_false(take1(&w, "a", 1));
    assert_int_equal(w.n, 0);
    wm_free(&w);
}

static void test_record_round_trip(void **state)
{
    watermark w, r;
    int err;
    (void)state;
    assert_int_equal(wm_init(&w, 8, 1), 0);
    assert_null(wm_record(&w, 1, 5, 0, &err));
    assert_int_equal(err, 0);
    wm_begin(&w);
    wm_take(&w, "pub-1.a:b_c", 7, 1);
    wm_take(&w, "pub-1.a:b_c", 1, 2);
    wm_take(&w, "q", 1, 3);
    const ts_tensor *t = wm_record(&w, 1, 42, 99, &err);
    assert_non_null(t);
    assert_int_equal(t->key_len, strlen(WM_RECORD_PREFIX) + 20);
    assert_memory_equal(t->key, WM_RECORD_PREFIX "00000000000000000042", t->key_len);
    assert_int_equal(ts_validate(t), 0);
    wm_commit(&w);
    assert_int_equal(wm_init(&r, 8, 1), 0);
    assert_int_equal(wm_load(&r, t->data, t->data_len), 0);
    assert_int_equal(r.n, 2);
    assert_memory_equal(r.pubs, w.pubs, 2 * sizeof(wm_pub));
    /* the loaded table judges as the original did */
    assert_true(take1(&r, "pub-1.a:b_c", 7));
    assert_false(take1(&r, "pub-1.a:b_c", 2));
    /* a smaller cap keeps the newest */
    watermark s;
    assert_int_equal(wm_init(&s, 1, 1), 0);
    assert_int_equal(wm_load(&s, t->data, t->data_len), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.pubs[0].id, "q");
    assert_int_equal(s.c.evicted, 1);
    wm_free(&s);
    wm_free(&r);
    wm_free(&w);
}

static void test_corrupt_records_are_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "embeddb-dedup 2 1\np 1 1 -\n",
        "embeddb-dedup 1 1\n",                 /* one line missing */
        "embeddb-dedup 1 1\np 1 1 -\nextra",   /* bytes after */
        "embeddb-dedup 1 1\np 01 1 -\n",       /* leading zero */
        "embeddb-dedup 1 1\np 18446744073709551616 1 -\n",
        "embeddb-dedup 1 1\np q 1 1 -\n",
        "embeddb-dedup 1 1\np/x 1 1 -\n",
        "embeddb-dedup 1 1\np 1 1 00\n",       /* a bitmap of the wrong length */
        "embeddb-dedup 1 2\np 1 1 -\np 2 2 -\n", /* the same publisher twice */
        "embeddb-dedup 1 4097\n",
    };
    watermark w;
    (void)state;
    assert_int_equal(wm_init(&w, 8, 1), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        take1(&w, "x", 1);
        assert_int_equal(wm_load(&w, bad[i], strlen(bad[i])), -EINVAL);
        assert_int_equal(w.n, 0);
    }
    char good[64 + 300];
    snprintf(good, sizeof(good), "embeddb-dedup 1 1\np 5 1 %0256d\n", 0);
    char *word0 = good + strlen(good) - 1 - 256; /* 16 hex digits, most significant first */
    word0[15] = '2'; /* bit 1: id 7 */
    assert_int_equal(wm_load(&w, good, strlen(good)), 0);
    assert_true(take1(&w, "p", 7));
    word0[15] = '1'; /* bit 0 set cannot be: through would have moved */
    assert_int_equal(wm_load(&w, good, strlen(good)), -EINVAL);
    wm_free(&w);
}

static void test_tag_syntax_both_sides(void **state)
{
    char id[WM_PUB_ID_MAX + 1], longest[WM_PUB_ID_MAX + 2];
    uint64_t seq = 0;
    int64_t ns = 0;
    (void)state;
    assert_int_equal(wm_tag_parse(NULL, NULL, id, &seq), 0);
    assert_int_equal(wm_tag_parse("p", NULL, id, &seq), -1);
    assert_int_equal(wm_tag_parse(NULL, "1", id, &seq), -1);
    assert_int_equal(wm_tag_parse("p", "1", id, &seq), 1);
    assert_int_equal(seq, 1);
    assert_int_equal(wm_tag_parse("p", "0", id, &seq), -1);
    assert_int_equal(wm_tag_parse("p", "18446744073709551615", id, &seq), 1);
    assert_true(seq == UINT64_MAX);
    assert_int_equal(wm_tag_parse("p", "18446744073709551616", id, &seq), -1);
    assert_int_equal(wm_tag_parse("p", "+1", id, &seq), -1);
    assert_int_equal(wm_tag_parse("p", "1 ", id, &seq), -1);
    assert_int_equal(wm_tag_parse("p", "", id, &seq), -1);
    assert_int_equal(wm_tag_parse("", "1", id, &seq), -1);
    assert_int_equal(wm_tag_parse("a b", "1", id, &seq), -1);
    memset(longest, 'x', WM_PUB_ID_MAX);
    longest[WM_PUB_ID_MAX] = 0;
    assert_int_equal(wm_tag_parse(longest, "1", id, &seq), 1);
    assert_string_equal(id, longest);
    longest[WM_PUB_ID_MAX] = 'x';
    longest[WM_PUB_ID_MAX + 1] = 0;
    assert_int_equal(wm_tag_parse(longest, "1", id, &seq), -1);
    assert_int_equal(wm_time_parse("9223372036854775807", &ns), 1);
    assert_true(ns == INT64_MAX);
    assert_int_equal(wm_time_parse("9223372036854775808", &ns), 0);
    assert_int_equal(wm_time_parse("-1", &ns), 0);
    assert_int_equal(wm_time_parse(NULL, &ns), 0);
}

static void test_watermark_document(void **state)
{
    watermark w;
    char *doc = NULL;
    size_t len = 0;
    const char *filters[] = {"a/\"q\"", "b/#"};
    (void)state;
    assert_int_equal(wm_init(&w, 4, 2), 0);
    take1(&w, "p", 1);
    take1(&w, "p", 3);
    wm_topic_durable(&w, 0, 17, 1000, 900);
    wm_topic_durable(&w, 5, 18, 1000, 0); /* no such topic: ignored */
    assert_int_equal(wm_json(&w, "dev", filters, 123, &doc, &len), 0);
    assert_string_equal(doc, "{\"v\":1,\"device_id\":\"dev\",\"time_ns\":123,\"topics\":["
                             "{\"filter\":\"a/\\\"q\\\"\",\"key\":17,\"time_ns\":1000,"
                             "\"pub_time_ns\":900}],\"publishers\":[{\"id\":\"p\",\"through\":1,"
                             "\"above\":1}],\"duplicates\":0,\"untracked\":0,\"evicted\":0,"
                             "\"given_up\":0}");
    assert_int_equal(len, strlen(doc));
    free(doc);
    wm_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_at_or_below_through_and_in_the_window_are_duplicates),
        cmocka_unit_test(test_window_edge_and_a_move_past_it),
        cmocka_unit_test(test_publisher_cap_evicts_the_oldest),
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_corrupt_records_are_refused),
        cmocka_unit_test(test_tag_syntax_both_sides),
        cmocka_unit_test(test_watermark_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
