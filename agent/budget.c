/*
 * budget.c -- the flash budget's decisions (contract in budget.h). Pure:
 * the unit tests in tests/agent/test_budget.c drive every rule.
 */
#include "budget.h"

#include <string.h>

/* Saturating arithmetic: sizes near UINT64_MAX must not wrap into "fits". */
static uint64_t add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static int over(const budget_in *in, uint64_t usage, uint64_t avail)
{
    if (in->max_disk && !in->stopping && add(usage, in->need) > in->max_disk)
        return 1;
    return avail != UINT64_MAX && avail < add(in->min_free, in->need);
}

int budget_plan(const budget_in *in, budget_action *act)
{
    uint64_t usage = add(in->used, AGENT_SMALL_FILES_RESERVE), avail = in->avail;
    size_t pinned = in->n; /* none */
    for (size_t i = 0; i < in->n; i++) {
        act[i] = BUDGET_KEEP;
        usage = add(usage, in->snaps[i].disk_bytes);
        if (in->keep_newest_rolling && !in->snaps[i].capture[0])
            pinned = i;
    }
    for (int pass = 0; pass < 2 && over(in, usage, avail); pass++) {
        if (pass == 1 && !in->drop_oldest)
            break;
        for (size_t i = 0; i < in->n && over(in, usage, avail); i++) {
            snap_state st = in->snaps[i].state;
            if (st == SNAP_SEALING || i == pinned)
                continue;
            int expire = in->ring && !in->snaps[i].capture[0] && st != SNAP_UPLOADED;
            if ((pass == 0) != (st == SNAP_UPLOADED || expire)) /* disjoint passes */
                continue;
            act[i] = pass == 1 ? BUDGET_DROP_LOST : expire ? BUDGET_EXPIRE : BUDGET_DROP;
            uint64_t b = in->snaps[i].disk_bytes;
            usage = usage > b ? usage - b : 0;
            if (avail != UINT64_MAX)
                avail = add(avail, b);
        }
    }
    if (!over(in, usage, avail))
        return 1;
    if (in->n)
        memset(act, 0, in->n * sizeof(*act));
    return 0;
}

void budget_retention(const snap_info *snaps, size_t n, uint64_t keep, budget_action *act)
{
    uint64_t uploaded = 0;
    for (size_t i = 0; i < n; i++) {
        act[i] = BUDGET_KEEP;
        uploaded += snaps[i].state == SNAP_UPLOADED;
    }
    for (size_t i = 0; i < n && uploaded > keep; i++)
        if (snaps[i].state == SNAP_UPLOADED) {
            act[i] = BUDGET_DROP;
            uploaded--;
        }
}
