/*
 * csv_ingest.h -- the CSV tensor payload that `embeddb --tensor-ingest` reads
 * (and examples/python_demo/dl_model_demo.py writes): one tensor per line,
 *
 *     key,name,dtype,shape,v0,v1,...
 *
 *   key     a CLI key: 101 (numeric), s:TEXT, x:HEX or plain text (cli_key.h)
 *   name    the tensor's name, up to 1024 bytes, no commas
 *   dtype   a NumPy or short name: float32/f32, float16/f16, bfloat16/bf16,
 *           float64/f64, int8..int64/i8..i64, uint8..uint64/u8..u64,
 *           bool, complex64/c64, complex128/c128
 *   shape   dimensions joined by 'x' (32x32, 4, 2x3x4, up to 8 of them);
 *           "scalar" or empty for a 0-d tensor holding one value
 *   values  exactly product(shape) decimal numbers in C order. Integer dtypes
 *           take whole numbers in range ("3" or "3.0"); bool takes 0, 1,
 *           true, false; complex takes 1.5, 2j or (1.5-2j) as Python prints
 *           them; floats that overflow the dtype are refused.
 *
 * Fields may have spaces around them. A line whose first non-blank character
 * is '#' is a comment; blank lines are ignored; "\r\n" endings are fine.
 *
 * Reading is all-or-nothing: csv_read parses and checks every line (and
 * that no key repeats) before the caller saves anything. Limits, so a bad
 * file cannot take the device's memory: a line is at most 64 MiB and all
 * tensor data together at most 256 MiB; larger payloads are refused (split
 * them into several files).
 *
 * Not here: saving (cmd_demo.c does one ts_save_batch), or any other format.
 */
#ifndef EMBEDDB_PAYLOAD_H
#define EMBEDDB_PAYLOAD_H

#include "embeddb/tensor_store.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PAYLOAD_MAX_LINE ((size_t)64 << 20)
#define PAYLOAD_MAX_BYTES ((uint64_t)256 << 20)

/* One parsed line. t's key, name and data point into mem, which it owns. */
typedef struct csv_tensor {
    ts_tensor t;
    void *mem;
    size_t line;
} csv_tensor;

/* Every tensor of a file, in file order. */
typedef struct csv_payload {
    csv_tensor *v;
    size_t n, cap;
    uint64_t data_bytes; /* sum of the tensors' data_len */
} csv_payload;

/*
 * Parses one line (without its newline; modified in place) into *out.
 * Returns 0, or TS_EINVAL / TS_EOVERFLOW / TS_ENAMETOOLONG with the reason
 * in why ("fewer values than the shape needs (1 of 2)"), or TS_ENOMEM.
 * On failure *out owns nothing.
 */
int csv_parse_line(char *line, csv_tensor *out, char *why, size_t why_len);

/*
 * Reads every line of fp into p (zero it first; release with csv_free,
 * also after a failure). `file` names fp in messages. Returns 0, or a TS_E*
 * code with "FILE:LINE: reason" (or "FILE: reason") in err: TS_EINVAL for a
 * bad line, a repeated key or a file without tensors, TS_EOVERFLOW past the
 * limits above, TS_EIO when reading fails, TS_ENOMEM.
 */
int csv_read(FILE *fp, const char *file, csv_payload *p, char *err, size_t err_len);

/* Releases everything p holds and zeroes it. */
void csv_free(csv_payload *p);

#endif
