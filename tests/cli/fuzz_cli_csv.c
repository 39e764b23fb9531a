/*
 * fuzz_cli_csv.c -- libFuzzer entry point for the CLI's parsers: the CSV
 * tensor payload (cli/csv_ingest.c) and the key syntax (cli/cli_key.c).
 *
 * Each input is read whole as a payload file, and each of its lines is also
 * parsed as a key; a key that parses must print back to text that parses to
 * the same bytes (abort otherwise). ctest replays the committed corpus in
 * corpus/payload through tests/fuzz/fuzz_main.c; with -DEMBEDDB_FUZZ=ON
 * (clang) it is also built as a real fuzzer. Not a test of saving.
 */
#include "cli_key.h"
#include "csv_ingest.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_key(const char *s)
{
    uint8_t key[TS_MAX_KEY_LEN], again[TS_MAX_KEY_LEN];
    char text[CLI_KEY_TEXT_MAX];
    size_t len = 0, len2 = 0;
    if (cli_key_parse(s, key, sizeof(key), &len) || !len)
        return;
    cli_key_format(key, len, text, sizeof(text));
    if (cli_key_parse(text, again, sizeof(again), &len2) || len2 != len ||
        memcmp(again, key, len))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *line, *save = NULL;
    FILE *fp;
    csv_payload p;
    char err[1024];
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    memset(&p, 0, sizeof(p));
    if (size && (fp = fmemopen(text, size, "r"))) {
        csv_read(fp, "fuzz", &p, err, sizeof(err));
        csv_free(&p);
        fclose(fp);
    }
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        check_key(line);
    free(text);
    return 0;
}
