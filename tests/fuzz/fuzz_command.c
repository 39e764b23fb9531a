/*
 * fuzz_command.c -- libFuzzer entry point for the command decoder
 * (agent/control.c: control_cmd_decode) and the reply built from what it
 * returns. Input: the verb (the bytes before the first '\n', as the topic's
 * last level would bring them) and the body (everything after). Whatever
 * the bytes, the decoder returns a known code, a decoded command holds
 * only NUL-terminated printable ids of at most CONTROL_ID_MAX bytes, a
 * decoded capture keeps every rule of its window (label, 1..8 non-empty
 * printable filters, pre/post within their limits and not both 0, or
 * from < to within their span), and the reply fits CONTROL_REPLY_MAX.
 */
#include "control.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void printable(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        abort();
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t vlen = nl ? (size_t)(nl - data) : size;
    char verb[256], why[256], doc[CONTROL_REPLY_MAX];
    control_cmd cmd;
    size_t len;
    if (vlen >= sizeof(verb))
        vlen = sizeof(verb) - 1;
    memcpy(verb, data, vlen);
    verb[vlen] = 0;
    const uint8_t *body = nl ? nl + 1 : data + size;
    /* a copy of exactly the body's size, so ASan sees any overread */
    size_t blen = (size_t)(data + size - body);
    uint8_t *copy = malloc(blen ? blen : 1);
    if (!copy)
        return 0;
    memcpy(copy, body, blen);
    control_err e = control_cmd_decode(verb, copy, blen, &cmd, why, sizeof(why));
    if ((unsigned)e >= CONTROL_N_ERRS || strnlen(why, sizeof(why)) == sizeof(why))
        abort();
    printable(cmd.id, sizeof(cmd.id));
    printable(cmd.origin, sizeof(cmd.origin));
    if (e == CONTROL_OK && (unsigned)cmd.verb >= CONTROL_N_VERBS)
        abort();
    if (e == CONTROL_OK && cmd.verb == CONTROL_VERB_CAPTURE) {
        const control_capture *c = &cmd.cap;
        printable(c->label, sizeof(c->label));
        if (!snap_device_id_ok(c->label) || !c->n_filters || c->n_filters > SNAP_FILTERS_MAX)
            abort();
        for (size_t i = 0; i < c->n_filters; i++) {
            printable(c->filters[i], sizeof(c->filters[i]));
            if (!c->filters[i][0])
                abort();
        }
        if (c->absolute ? c->from_ns >= c->to_ns ||
                              (uint64_t)c->to_ns - (uint64_t)c->from_ns >
                                  (CONTROL_PRE_MAX_MS + CONTROL_POST_MAX_MS) * 1000000
                        : c->pre_ms > CONTROL_PRE_MAX_MS || c->post_ms > CONTROL_POST_MAX_MS ||
                              c->pre_ms + c->post_ms == 0)
            abort();
    }
    if (control_reply_json("a-board", verb, cmd.id, e, why, e ? NULL : ",\"retried\":0", doc,
                           sizeof(doc), &len))
        abort();
    free(copy);
    return 0;
}
