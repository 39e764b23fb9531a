/*
 * fuzz_snapshot.c -- libFuzzer entry point for the snapshot metadata
 * parsers: the same bytes as a STATE file (snap_parse_state), as a whole
 * MANIFEST.json (snap_manifest_files, snap_manifest_seq_range: what the
 * library reads back from disk) and, line by line, as "files" entries
 * (snap_parse_file_line). Each must accept or reject without reading
 * outside the buffer.
 */
#include "embeddb/snapshot.h"
#include "snap_meta.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    snap_info si;
    memset(&si, 0, sizeof(si));
    snap_parse_state((const char *)data, size, &si);
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    snap_file *files = NULL;
    size_t n_files = 0;
    uint64_t lo, hi;
    if (snap_manifest_files(text, &files, &n_files) == 0)
        free(files);
    snap_manifest_seq_range(text, &lo, &hi);
    for (char *line = text; line;) {
        char *nl = strchr(line, '\n'), name[64], sha[65];
        uint64_t bytes;
        if (nl)
            *nl = 0;
        snap_parse_file_line(line, name, sizeof(name), &bytes, sha);
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return 0;
}
