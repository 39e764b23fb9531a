/*
 * bench_util.c -- the benchmarks' measuring tools (see bench_util.h). The
 * raw write path and /proc/self/io use libc directly, on purpose: they are
 * the yardstick, not the thing measured.
 */
#include "bench_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

double bench_util_secs_since(uint64_t t0)
{
    return (double)(plat_mono_ns() - t0) / 1e9;
}

int bench_util_mul_size(uint64_t a, uint64_t b, size_t *out)
{
    int rc = 0;
    if (b && a > SIZE_MAX / b)
        rc = TS_EOVERFLOW;
    else
        *out = (size_t)(a * b);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_util_median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

uint64_t bench_util_io_write_bytes(void)
{
    FILE *fp = fopen("/proc/self/io", "r");
    char line[128];
    unsigned long long v = 0;
    if (!fp)
        goto out;
    while (fgets(line, sizeof(line), fp))
        if (sscanf(line, "write_bytes: %llu", &v) == 1)
            break;
    fclose(fp);
out:
    return v;
}

void bench_util_settle(void)
{
    sync();
}

int bench_util_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    int rc = 0;
    while (len && !rc) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
        } else {
            p += w;
            len -= (size_t)w;
        }
    }
    return rc;
}

static int count_pread(plat_vfs *self, int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    bench_util_count_vfs *c = (bench_util_count_vfs *)self;
    c->preads++;
    return c->real->pread(c->real, fd, buf, len, off, got);
}

void bench_util_count_vfs_init(bench_util_count_vfs *c)
{
    c->real = plat_vfs_default();
    c->vfs = *c->real;
    c->vfs.pread = count_pread;
    c->preads = 0;
}
