/*
 * test_budget.c -- the flash budget's decisions (agent/budget.c), which are
 * pure: every rule of README "One flash budget" on both sides of its limit,
 * and the batch between the queue and the store (agent/batch.c): its
 * bounds, when it is due, and keys that are never cut.
 */
#include "batch.h"
#include "budget.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define R AGENT_SMALL_FILES_RESERVE

static snap_info snap(snap_state st, uint64_t bytes)
{
    snap_info s;
    memset(&s, 0, sizeof(s));
    s.state = st;
    s.disk_bytes = bytes;
    return s;
}

/* Exactly at max_disk fits; one byte more does not. */
static void test_max_disk_is_inclusive(void **state)
{
    (void)state;
    budget_in in = {.max_disk = 1000 + R, .used = 600, .avail = UINT64_MAX, .need = 400};
    assert_int_equal(budget_plan(&in, NULL), 1);
    in.need = 401;
    assert_int_equal(budget_plan(&in, NULL), 0);
    in.max_disk = 0; /* no limit */
    assert_int_equal(budget_plan(&in, NULL), 1);
}

/* min_free holds even for a graceful stop, which max_disk yields to. */
static void test_min_free_holds_when_stopping_and_max_disk_does_not(void **state)
{
    (void)state;
    budget_in in = {.max_disk = 1000 + R, .used = 1000, .avail = 5000, .min_free = 4000,
                    .need = 1000, .stopping = 1};
    assert_int_equal(budget_plan(&in, NULL), 1);  /* past max_disk, at min_free */
    in.need = 1001;
    assert_int_equal(budget_plan(&in, NULL), 0);  /* would go below min_free */
    in.stopping = 0;
    in.need = 1;
    assert_int_equal(budget_plan(&in, NULL), 0);  /* not stopping: max_disk holds */
}

/* Uploaded snapshots go first, oldest first, and only as many as needed. */
static void test_uploaded_go_first_oldest_first_and_only_what_is_needed(void **state)
{
    (void)state;
    snap_info v[4] = {snap(SNAP_SEALED, 100), snap(SNAP_UPLOADED, 100), snap(SNAP_UPLOADED, 100),
                      snap(SNAP_UPLOADED, 100)};
    budget_action act[4];
    budget_in in = {.max_disk = 1000 + R, .used = 600, .avail = UINT64_MAX, .need = 150,
                    .drop_oldest = 1, .snaps = v, .n = 4};
    /* 600 + 400 + 150 = 1150: two uploaded ones (200) bring it to 950. */
    assert_int_equal(budget_plan(&in, act), 1);
    assert_int_equal(act[0], BUDGET_KEEP);
    assert_int_equal(act[1], BUDGET_DROP);
    assert_int_equal(act[2], BUDGET_DROP);
    assert_int_equal(act[3], BUDGET_KEEP);
}

/* drop_oldest then drops what was not uploaded, counted as lost; never a
 * snapshot still being sealed. reject_new drops nothing and waits. */
static void test_not_uploaded_are_lost_only_with_drop_oldest(void **state)
{
    (void)state;
    snap_info v[4] = {snap(SNAP_SEALING, 500), snap(SNAP_FAILED, 100), snap(SNAP_SEALED, 100),
                      snap(SNAP_UPLOADED, 100)};
    budget_action act[4];
    budget_in in = {.max_disk = 1000 + R, .used = 300, .avail = UINT64_MAX, .need = 150,
                    .drop_oldest = 1, .snaps = v, .n = 4};
    /* 300 + 800 + 150 = 1250: the uploaded (100), then failed and sealed
     * (the sealing 500 stay). */
    assert_int_equal(budget_plan(&in, act), 1);
    assert_int_equal(act[0], BUDGET_KEEP);
    assert_int_equal(act[1], BUDGET_DROP_LOST);
    assert_int_equal(act[2], BUDGET_DROP_LOST);
    assert_int_equal(act[3], BUDGET_DROP);
    in.need = 200; /* 300 + 500 + 200: the most that fits */
    assert_int_equal(budget_plan(&in, act), 1);
    in.need = 201;
    assert_int_equal(budget_plan(&in, act), 0);
    in.need = 150;
    in.drop_oldest = 0;
    assert_int_equal(budget_plan(&in, act), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(act[i], BUDGET_KEEP);
}

/* snapshot.mode: on_trigger: rolling snapshots expire oldest first with
 * the uploaded ones, even with reject_new; capture windows waiting for
 * upload stay (lost only with drop_oldest); sealing ones are never taken. */
static void test_ring_expires_rolling_snapshots_and_keeps_windows(void **state)
{
    (void)state;
    snap_info v[5] = {snap(SNAP_SEALED, 100), snap(SNAP_SEALED, 100), snap(SNAP_SEALING, 100),
                      snap(SNAP_UPLOADED, 100), snap(SNAP_SEALED, 100)};
    strcpy(v[1].capture, "alarm");
    strcpy(v[3].capture, "alarm");
    budget_action act[5];
    budget_in in = {.max_disk = 1000 + R, .used = 400, .avail = UINT64_MAX, .need = 300,
                    .ring = 1, .snaps = v, .n = 5};
    /* 400 + 500 + 300 = 1200: rolling 0 and uploaded 3, oldest first */
    assert_int_equal(budget_plan(&in, act), 1);
    assert_int_equal(act[0], BUDGET_EXPIRE);
    assert_int_equal(act[1], BUDGET_KEEP);
    assert_int_equal(act[2], BUDGET_KEEP);
    assert_int_equal(act[3], BUDGET_DROP);
    assert_int_equal(act[4], BUDGET_KEEP);
    in.need = 400; /* 1300: 0, 3 and 4 go, the window stays */
    assert_int_equal(budget_plan(&in, act), 1);
    assert_int_equal(act[1], BUDGET_KEEP);
    assert_int_equal(act[4], BUDGET_EXPIRE);
    in.need = 401; /* only the waiting window could make room: reject_new waits */
    assert_int_equal(budget_plan(&in, act), 0);
    in.drop_oldest = 1;
    assert_int_equal(budget_plan(&in, act), 1);
    assert_int_equal(act[1], BUDGET_DROP_LOST);
    in.ring = 0; /* continuous: the rolling ones are not the ring's to expire */
    in.need = 300;
    assert_int_equal(budget_plan(&in, act), 1);
    assert_int_equal(act[0], BUDGET_DROP_LOST);
}

/* Between a seal and the table's save, the newest rolling snapshot holds
 * the de-duplication table's only record: the ring does not expire it (nor
 * drop_oldest drop it), captures after it notwithstanding; the batch waits
 * when nothing else makes room. */
static void test_newest_rolling_snapshot_stays_while_it_holds_the_table(void **state)
{
    (void)state;
    snap_info v[4] = {snap(SNAP_SEALED, 100), snap(SNAP_SEALED, 100), snap(SNAP_SEALED, 100),
                      snap(SNAP_SEALED, 100)};
    strcpy(v[3].capture, "alarm");
    budget_action act[4];
    budget_in in = {.max_disk = 1000 + R, .used = 400, .avail = UINT64_MAX, .need = 300,
                    .ring = 1, .keep_newest_rolling = 1, .snaps = v, .n = 4};
    /* 400 + 400 + 300 = 1100: the oldest goes */
    assert_int_equal(budget_plan(&in, act), 1);
    assert_int_equal(act[0], BUDGET_EXPIRE);
    assert_int_equal(act[1], BUDGET_KEEP);
    in.need = 400; /* 1200: 0 and 1 go */
    assert_int_equal(budget_plan(&in, act), 1);
    assert_int_equal(act[1], BUDGET_EXPIRE);
    assert_int_equal(act[2], BUDGET_KEEP);
    in.need = 401; /* only 2 (or the window, drop_oldest) would make room */
    assert_int_equal(budget_plan(&in, act), 0);
    in.drop_oldest = 1;
    assert_int_equal(budget_plan(&in, act), 1);
    assert_int_equal(act[2], BUDGET_KEEP);
    assert_int_equal(act[3], BUDGET_DROP_LOST);
    in.keep_newest_rolling = 0; /* saved again: it may go like the others */
    in.drop_oldest = 0;
    assert_int_equal(budget_plan(&in, act), 1);
    assert_int_equal(act[2], BUDGET_EXPIRE);
    in.ring = 0; /* continuous, drop_oldest: kept as well while it holds the table */
    in.drop_oldest = 1;
    in.keep_newest_rolling = 1;
    assert_int_equal(budget_plan(&in, act), 1);
    assert_int_equal(act[1], BUDGET_DROP_LOST);
    assert_int_equal(act[2], BUDGET_KEEP);
    assert_int_equal(act[3], BUDGET_DROP_LOST);
}

/* When even dropping everything allowed would not make room, nothing is
 * dropped: losing data that does not help is not done. */
static void test_nothing_is_dropped_when_it_would_not_help(void **state)
{
    (void)state;
    snap_info v[2] = {snap(SNAP_SEALED, 100), snap(SNAP_UPLOADED, 100)};
    budget_action act[2];
    budget_in in = {.max_disk = 1000 + R, .used = 2000, .avail = UINT64_MAX, .need = 10,
                    .drop_oldest = 1, .snaps = v, .n = 2};
    assert_int_equal(budget_plan(&in, act), 0);
    assert_int_equal(act[0], BUDGET_KEEP);
    assert_int_equal(act[1], BUDGET_KEEP);
}

/* Free space counts too: dropping a snapshot frees its bytes on the file
 * system; sizes near 2^64 saturate instead of wrapping into "fits". */
static void test_free_space_and_huge_sizes(void **state)
{
    (void)state;
    snap_info v[1] = {snap(SNAP_UPLOADED, 300)};
    budget_action act[1];
    budget_in in = {.avail = 1000, .min_free = 900, .need = 300, .snaps = v, .n = 1};
    assert_int_equal(budget_plan(&in, act), 1);
    assert_int_equal(act[0], BUDGET_DROP);
    in.need = 401;
    assert_int_equal(budget_plan(&in, act), 0);
    budget_in huge = {.max_disk = UINT64_MAX - 1, .used = UINT64_MAX - 10, .avail = UINT64_MAX,
                      .need = UINT64_MAX};
    assert_int_equal(budget_plan(&huge, NULL), 0);
}

static void test_retention_keeps_the_newest_uploaded(void **state)
{
    (void)state;
    snap_info v[5] = {snap(SNAP_UPLOADED, 1), snap(SNAP_SEALED, 1), snap(SNAP_UPLOADED, 1),
                      snap(SNAP_FAILED, 1), snap(SNAP_UPLOADED, 1)};
    budget_action act[5];
    budget_retention(v, 5, 1, act);
    assert_int_equal(act[0], BUDGET_DROP);
    assert_int_equal(act[1], BUDGET_KEEP);
    assert_int_equal(act[2], BUDGET_DROP);
    assert_int_equal(act[3], BUDGET_KEEP);
    assert_int_equal(act[4], BUDGET_KEEP);
    budget_retention(v, 5, 3, act);
    for (int i = 0; i < 5; i++)
        assert_int_equal(act[i], BUDGET_KEEP);
    budget_retention(v, 5, 0, act);
    assert_int_equal(act[4], BUDGET_DROP);
}

/* ---- the batch ------------------------------------------------------------- */

static ingest_msg *msg(const char *topic, size_t bytes)
{
    ingest_msg *m = calloc(1, sizeof(*m));
    m->topic = strdup(topic);
    m->t.dtype = TS_U8;
    m->t.ndim = 1;
    m->t.shape[0] = bytes;
    m->t.data = calloc(1, bytes ? bytes : 1);
    m->t.data_len = bytes;
    return m;
}

static ingest_msg *chain(ingest_msg *a, ingest_msg *b)
{
    a->next = b;
    return a;
}

static agent_config limits(uint64_t n, uint64_t bytes, uint64_t delay_ms)
{
    agent_config c;
    memset(&c, 0, sizeof(c));
    c.batch.max_tensors = n;
    c.batch.max_bytes = bytes;
    c.batch.max_delay_ms = delay_ms;
    return c;
}

static void test_batch_room_and_due_at_its_limits(void **state)
{
    (void)state;
    agent_config c = limits(3, 100, 200);
    batch b;
    size_t n;
    uint64_t bytes;
    batch_init(&b, &c);
    batch_room(&b, &n, &bytes);
    assert_int_equal(n, 3);
    assert_int_equal(bytes, 100);
    assert_int_equal(batch_due(&b, 0), 0);
    batch_add(&b, chain(msg("a", 40), msg("a", 50)), 0, 1000000);
    batch_room(&b, &n, &bytes);
    assert_int_equal(n, 1);
    assert_int_equal(bytes, 10);
    assert_int_equal(batch_due(&b, 1000000 + 199999999), 0); /* 199.99 ms */
    assert_int_equal(batch_wait_ms(&b, 1000000), 200);
    assert_int_equal(batch_due(&b, 1000000 + 200000000), 1);  /* 200 ms */
    batch_add(&b, msg("a", 10), 0, 5000000);
    assert_int_equal(batch_due(&b, 1000000), 1);               /* 3 of 3 */
    batch_room(&b, &n, &bytes);
    assert_int_equal(n, 0);
    batch_clear(&b);
    /* Bytes: reaching max_bytes makes it due; a message that does not fit
     * (the queue says so) makes it due at once instead of waiting. */
    batch_add(&b, msg("a", 100), 0, 0);
    assert_int_equal(batch_due(&b, 0), 1);
    batch_clear(&b);
    batch_add(&b, msg("a", 60), 1, 0);
    assert_int_equal(batch_due(&b, 0), 1);
    batch_room(&b, &n, &bytes);
    assert_int_equal(n, 0);
    batch_free(&b);
}

static void test_batch_keys_count_up_and_are_never_cut(void **state)
{
    (void)state;
    agent_config c = limits(8, 1 << 20, 200);
    batch b;
    const ts_tensor *const *t = NULL;
    size_t bad = 99;
    char longest[TS_MAX_KEY_LEN];
    batch_init(&b, &c);
    memset(longest, 't', TS_MAX_KEY_LEN - 21);
    longest[TS_MAX_KEY_LEN - 21] = 0; /* 1003 bytes: a 1024-byte key */
    batch_add(&b, chain(msg("s/a", 4), chain(msg(longest, 4), msg("s/b", 4))), 0, 0);
    assert_int_equal(batch_view(&b, 41, &t, &bad), 0);
    assert_int_equal(t[0]->key_len, strlen("s/a#00000000000000000041"));
    assert_memory_equal(t[0]->key, "s/a#00000000000000000041", t[0]->key_len);
    assert_int_equal(t[1]->key_len, TS_MAX_KEY_LEN);
    assert_memory_equal(t[2]->key, "s/b#00000000000000000043", t[2]->key_len);
    assert_string_equal(t[2]->name, "s/b");
    /* One byte longer cannot be a key: refused, never cut to 1024. */
    batch_clear(&b);
    char over[TS_MAX_KEY_LEN + 1];
    memset(over, 't', TS_MAX_KEY_LEN - 20);
    over[TS_MAX_KEY_LEN - 20] = 0;
    batch_add(&b, chain(msg("ok", 4), chain(msg(over, 4), msg("ok2", 4))), 0, 0);
    assert_int_equal(batch_view(&b, 1, &t, &bad), -ENAMETOOLONG);
    assert_int_equal(bad, 1);
    ingest_msg *m = batch_remove(&b, 1);
    assert_string_equal(m->topic, over);
    ingest_msg_free(m);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.bytes, 8);
    assert_int_equal(batch_view(&b, 1, &t, &bad), 0);
    assert_string_equal(t[1]->name, "ok2");
    m = batch_remove(&b, 1); /* the tail: a later add must link after "ok" */
    ingest_msg_free(m);
    batch_add(&b, msg("ok3", 4), 0, 0);
    assert_int_equal(batch_view(&b, 1, &t, &bad), 0);
    assert_string_equal(t[1]->name, "ok3");
    batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_disk_is_inclusive),
        cmocka_unit_test(test_ring_expires_rolling_snapshots_and_keeps_windows),
        cmocka_unit_test(test_newest_rolling_snapshot_stays_while_it_holds_the_table),
        cmocka_unit_test(test_min_free_holds_when_stopping_and_max_disk_does_not),
        cmocka_unit_test(test_uploaded_go_first_oldest_first_and_only_what_is_needed),
        cmocka_unit_test(test_not_uploaded_are_lost_only_with_drop_oldest),
        cmocka_unit_test(test_nothing_is_dropped_when_it_would_not_help),
        cmocka_unit_test(test_free_space_and_huge_sizes),
        cmocka_unit_test(test_retention_keeps_the_newest_uploaded),
        cmocka_unit_test(test_batch_room_and_due_at_its_limits),
        cmocka_unit_test(test_batch_keys_count_up_and_are_never_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
