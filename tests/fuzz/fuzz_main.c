/*
 * fuzz_main.c -- runs a libFuzzer entry point over files named on the
 * command line (the committed corpus), so every ctest run replays the
 * corpus through the parsers without needing clang's libFuzzer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *fp = fopen(argv[i], "rb");
        uint8_t *buf = NULL;
        long len;
        if (!fp || fseek(fp, 0, SEEK_END) || (len = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET)) {
            fprintf(stderr, "cannot read %s\n", argv[i]);
            return 1;
        }
        buf = malloc((size_t)len + 1);
        if (!buf || fread(buf, 1, (size_t)len, fp) != (size_t)len)
            return 1;
        fclose(fp);
        LLVMFuzzerTestOneInput(buf, (size_t)len);
        free(buf);
    }
    printf("%d inputs replayed\n", argc - 1);
    return 0;
}
