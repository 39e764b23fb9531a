/*
 * fuzz_command.c -- libFuzzer entry point for the command decoder
 * (agent/control.c: control_cmd_decode) and the reply built from what it
 * returns. Input: the verb (the bytes before the first '\n', as the topic's
 * last level would bring them) and the body (everything after). Whatever
 * the bytes, the decoder returns a known code, a decoded command holds
 * only NUL-terminated printable ids of at most CONTROL_ID_MAX bytes, and
 * the reply fits CONTROL_REPLY_MAX.
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
    if (control_reply_json("a-board", verb, cmd.id, e, why, e ? NULL : ",\"retried\":0", doc,
                           sizeof(doc), &len))
        abort();
    free(copy);
    return 0;
}
