/*
 * plat_fault.c -- the fault-injecting vfs for crash tests (contract in
 * plat_fault.h). It wraps a base vfs and models what a power cut may leave.
 *
 * State, all in one struct whose first member is the plat_vfs table, so the
 * table pointer every call receives is the state pointer:
 *   - files[]: per inode, the size the last fdatasync/fsync made durable,
 *     sorted by inode. A file we create starts at 0; a file that existed
 *     before we first opened it counts as synced at the size it had then.
 *     Inodes we never opened are not tracked, and a crash leaves their
 *     bytes alone.
 *   - dirs[]: per directory inode, where it is now (its path as spelled,
 *     rewritten when a rename moves it or a directory above it) and the
 *     regular-file name -> inode map that was durable at its last dirsync,
 *     sorted by name; captured from disk the first time the directory is
 *     touched (so whatever existed before counts as durable).
 *   - places: for every directory found in a tracked directory, its
 *     durable entry: the parent and name it had at that parent's last
 *     dirsync, or those a rename gave it that the other parent's dirsync
 *     made durable. Directory entries live here rather than in the parents'
 *     maps because a directory has exactly one name: a rename is one step,
 *     durable in both parents at once. One removed since keeps its place,
 *     marked gone.
 *   - moves: directories this vfs made or renamed since the last crash or
 *     revive, and where it put each. A crash removes only these when they
 *     have no durable place (a directory made behind our back is left
 *     alone), and a dirsync that sees one leave learns from it where it went.
 *   - fds[]: by descriptor number, whether it was opened through us, and
 *     whether a crash killed it.
 * A name the durable map still needs, but that unlink or rename is about to
 * remove, keeps its inode alive through a hard link in the shadow directory
 * (named by inode number); a crash links it back. A directory cannot be
 * linked: a crash moves a misplaced one back by rename (through the shadow
 * dir, "dir-<inode>", so that swaps and removals cannot collide), and makes a
 * removed one anew, empty.
 *
 * What it is not: a model of every file system. Truncation is durable at
 * once, and overwrites inside the synced size survive a crash; see the
 * limits in plat_fault.h. No fixed table sizes: memory grows with what is
 * tracked. Not thread-safe; paths are compared as spelled; test-only, never
 * linked into shipped binaries.
 */
#include "embeddb/plat_fault.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_LEN 4096
#define STAGE "dir-" /* shadow-dir prefix of directories a crash is moving back */

typedef struct ffile {
    uint64_t ino;
    uint64_t synced; /* bytes that survive a crash */
} ffile;

typedef struct fname {
    char name[NAME_MAX + 1];
    uint64_t ino;
} fname;

typedef struct fdir {
    uint64_t ino;
    int dropped;         /* no longer tracked; freed by dirs_compact */
    char path[PATH_LEN]; /* where it is now */
    fname *durable;      /* owned; regular files only, sorted by name */
    size_t n, cap;
} fdir;

/* A directory's entry: directory inode `ino` as `name` in directory `parent`. */
typedef struct fspot {
    uint64_t ino, parent;
    char name[NAME_MAX + 1];
    int gone;  /* places: removed since; a crash makes it anew, empty */
    int stale; /* places: not (yet) seen by the capture of its parent */
    int moved; /* places: parent or name changed since the last cycle check */
} fspot;

typedef struct fspots {
    fspot *v; /* owned */
    size_t n, cap;
} fspots;

enum { FD_NONE, FD_LIVE, FD_DEAD };

typedef struct fault {
    plat_vfs vfs; /* first: the table pointer is the state pointer */
    plat_vfs *base;
    char shadow[PATH_LEN];
    uint64_t shadow_ino; /* never captured, moved or removed */
    int made_shadow;     /* we created the shadow dir, so free removes it */
    uint64_t rng;
    ffile *files; /* owned, sorted by inode */
    size_t n_files, cap_files;
    fdir **dirs; /* owned, each record too (pointers stay valid while tracked) */
    size_t n_dirs, cap_dirs;
    fspots places; /* durable entries of directories */
    fspots moves;  /* where this vfs last put a directory */
    unsigned char *fds; /* FD_* by descriptor number */
    size_t cap_fds;
    unsigned fail_left[PLAT_FAULT_NOPS];
    int fail_err[PLAT_FAULT_NOPS];
    unsigned crash_left;
    int crash_torn;
    int crashed;
    unsigned long mutations;
    uint64_t avail_cap; /* statfs reports at most this (UINT64_MAX: no cap) */
} fault;

static fault *F(plat_vfs *v)
{
    return (fault *)v;
}

static int is_dot(const char *name)
{
    return !strcmp(name, ".") || !strcmp(name, "..");
}

/* xorshift64: enough to scatter torn-write lengths, reproducible per seed. */
static uint64_t rnd(fault *f)
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return f->rng;
}

/* Room for element n of an array of `size`-byte elements with *cap slots:
 * the array (moved, possibly), or NULL on OOM with the old one untouched. */
static void *grow(void *v, size_t n, size_t *cap, size_t size)
{
    size_t c = *cap ? *cap * 2 : 32;
    void *p = v;
    if (n < *cap)
        goto out;
    p = c > SIZE_MAX / size ? NULL : realloc(v, c * size);
    if (p)
        *cap = c;
out:
    return p;
}

/* Keeps the first error of a sequence that goes on past failures. */
static void first_err(int *rc, int r)
{
    if (r && !*rc)
        *rc = r;
}

/* ---- files ------------------------------------------------------------ */

/* Index of ino in files[], or where it would go. */
static size_t file_index(const fault *f, uint64_t ino)
{
    size_t lo = 0, hi = f->n_files;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->files[mid].ino < ino)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static ffile *file_find(fault *f, uint64_t ino)
{
    size_t i = file_index(f, ino);
    return i < f->n_files && f->files[i].ino == ino ? &f->files[i] : NULL;
}

static int file_set(fault *f, uint64_t ino, uint64_t synced)
{
    size_t i = file_index(f, ino);
    ffile *v;
    int rc = 0;
    if (i == f->n_files || f->files[i].ino != ino) {
        if (!(v = grow(f->files, f->n_files, &f->cap_files, sizeof(*v)))) {
            rc = -ENOMEM;
            goto out;
        }
        f->files = v;
        memmove(&v[i + 1], &v[i], (f->n_files - i) * sizeof(*v));
        f->n_files++;
        v[i].ino = ino;
    }
    f->files[i].synced = synced;
out:
    return rc;
}

/* The inode lost its last name: drop its record, so a file that later gets
 * the recycled inode number outside our view does not inherit its size. */
static void file_forget(fault *f, uint64_t ino)
{
    size_t i = file_index(f, ino);
    if (i < f->n_files && f->files[i].ino == ino) {
        memmove(&f->files[i], &f->files[i + 1], (f->n_files - i - 1) * sizeof(f->files[0]));
        f->n_files--;
    }
}

/* ---- directory entries of directories ---------------------------------- */

static fspot *spot_find(fspots *s, uint64_t ino)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].ino == ino && !s->v[i].gone)
            return &s->v[i];
    return NULL;
}

/* Directory ino is now `name` in `parent` (replacing its old spot). */
static int spot_set(fspots *s, uint64_t ino, uint64_t parent, const char *name)
{
    fspot *sp = spot_find(s, ino), *v;
    int rc = 0;
    if (!sp) {
        if (!(v = grow(s->v, s->n, &s->cap, sizeof(*v)))) {
            rc = -ENOMEM;
            goto out;
        }
        s->v = v;
        sp = &v[s->n++];
        memset(sp, 0, sizeof(*sp));
        sp->ino = ino;
        sp->moved = 1;
    }
    if (sp->parent != parent || strcmp(sp->name, name))
        sp->moved = 1;
    sp->parent = parent;
    sp->stale = 0;
    snprintf(sp->name, sizeof(sp->name), "%s", name);
out:
    return rc;
}

/* Removes *sp; the last spot takes its slot. */
static void spot_drop(fspots *s, fspot *sp)
{
    *sp = s->v[--s->n];
}

static void spot_forget(fspots *s, uint64_t ino)
{
    fspot *sp = spot_find(s, ino);
    if (sp)
        spot_drop(s, sp);
}

/* ---- directories ------------------------------------------------------ */

/* Splits path into its directory as spelled ("." when there is none, "/"
 * for a top-level name) and its last component. */
static int split(const char *path, char dir[PATH_LEN], char name[NAME_MAX + 1])
{
    const char *slash = strrchr(path, '/');
    const char *last = slash ? slash + 1 : path;
    size_t dl = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    int rc = 0;
    if (!*last) { /* trailing slash: no name to track */
        rc = -EINVAL;
        goto out;
    }
    if (dl >= PATH_LEN || strlen(last) > NAME_MAX) {
        rc = -ENAMETOOLONG;
        goto out;
    }
    memcpy(dir, slash ? path : ".", dl);
    dir[dl] = '\0';
    strcpy(name, last);
out:
    return rc;
}

static fdir *dir_find(fault *f, uint64_t ino)
{
    for (size_t i = 0; i < f->n_dirs; i++)
        if (f->dirs[i]->ino == ino && !f->dirs[i]->dropped)
            return f->dirs[i];
    return NULL;
}

/* 1 when the record's path still leads to its directory. */
static int dir_here(const fdir *d)
{
    struct stat st;
    return !d->dropped && !stat(d->path, &st) && (uint64_t)st.st_ino == d->ino;
}

/* 1 when spot sp names what is on disk (its parent is tracked). */
static int spot_here(fault *f, const fspot *sp)
{
    fdir *d = dir_find(f, sp->parent);
    char p[PATH_LEN + NAME_MAX + 2];
    struct stat st;
    if (!d)
        return 0;
    snprintf(p, sizeof(p), "%s/%s", d->path, sp->name);
    return !lstat(p, &st) && S_ISDIR(st.st_mode) && (uint64_t)st.st_ino == sp->ino;
}

/* Frees dropped records. A directory no longer tracked takes the durable
 * places of the directories in it along: nothing could restore them. */
static void dirs_compact(fault *f)
{
    size_t kept = 0;
    for (size_t i = 0; i < f->n_dirs; i++) {
        fdir *d = f->dirs[i];
        if (!d->dropped) {
            f->dirs[kept++] = d;
            continue;
        }
        for (size_t k = 0; k < f->places.n;)
            if (f->places.v[k].parent == d->ino)
                spot_drop(&f->places, &f->places.v[k]);
            else
                k++;
        free(d->durable);
        free(d);
    }
    f->n_dirs = kept;
}

/* A directory moved from `from` to `to`: records at or below it follow. A
 * path grown past PATH_LEN names nothing any more; that record is dropped
 * (the caller compacts). */
static void dirs_follow(fault *f, const char *from, const char *to)
{
    size_t fl = strlen(from);
    char p[PATH_LEN];
    for (size_t i = 0; i < f->n_dirs; i++) {
        fdir *d = f->dirs[i];
        if (strncmp(d->path, from, fl) || (d->path[fl] && d->path[fl] != '/'))
            continue;
        if ((size_t)snprintf(p, sizeof(p), "%s%s", to, d->path + fl) >= sizeof(p))
            d->dropped = 1;
        else
            memcpy(d->path, p, sizeof(p));
    }
}

static int dir_add(fdir *d, const char *name, uint64_t ino)
{
    fname *v = grow(d->durable, d->n, &d->cap, sizeof(*v));
    int rc = 0;
    if (!v) {
        rc = -ENOMEM;
        goto out;
    }
    d->durable = v;
    snprintf(v[d->n].name, sizeof(v[d->n].name), "%s", name);
    v[d->n++].ino = ino;
out:
    return rc;
}

static int name_order(const void *a, const void *b)
{
    return strcmp(((const fname *)a)->name, ((const fname *)b)->name);
}

static int name_key(const void *key, const void *elem)
{
    return strcmp(key, ((const fname *)elem)->name);
}

static int dir_has(const fdir *d, const char *name, uint64_t ino)
{
    const fname *hit = d->n ? bsearch(name, d->durable, d->n, sizeof(*hit), name_key) : NULL;
    return hit && hit->ino == ino;
}

/*
 * Settles the places marked stale: durable entries that are no longer on
 * disk and were overtaken (their parent was synced, or removed and so was
 * empty, or another directory's durable entry took their name). A directory
 * this vfs moved is durable where it is now, as a rename is one step, and
 * in turn displaces whatever had its durable entry at that name (which, by
 * the same step, had left it). One removed, or moved behind our back, has
 * no durable place any more. Every step makes one more place match the
 * disk or drops one, so this ends.
 */
static void places_settle(fault *f)
{
    size_t i = 0;
    while (i < f->places.n) {
        fspot *pl = &f->places.v[i], *to = NULL;
        int displaced = 0;
        if (!pl->stale) {
            i++;
            continue;
        }
        pl->stale = 0;
        if (!pl->gone)
            to = spot_find(&f->moves, pl->ino);
        if (!to || !spot_here(f, to)) {
            spot_drop(&f->places, pl);
            continue;
        }
        pl->parent = to->parent;
        memcpy(pl->name, to->name, sizeof(pl->name));
        pl->moved = 1;
        for (size_t k = 0; k < f->places.n; k++) {
            fspot *o = &f->places.v[k];
            if (k != i && o->parent == pl->parent && !strcmp(o->name, pl->name))
                displaced = o->stale = 1;
        }
        i = displaced ? 0 : i + 1;
    }
}

/*
 * Durable places must form a tree, but per-parent durability alone can make
 * a cycle: Y renamed out of A (not durable), then A renamed into Y (durable
 * by Y's dirsync) leaves Y durable in A and A in Y. A journal commits in
 * order, so the later rename made the earlier one durable too. Finds one
 * cycle (a new one passes through a place that moved) and marks its members
 * the disk no longer shows stale, for places_settle to move them where the
 * disk has them. 0 when there is none.
 */
static int cycle_mark(fault *f)
{
    for (size_t i = 0; i < f->places.n; i++) {
        fspot *pl = &f->places.v[i], *q = pl;
        size_t steps = 0;
        int marked = 0;
        if (!pl->moved)
            continue;
        do /* up the durable tree, at most once round */
            q = spot_find(&f->places, q->parent);
        while (q && q != pl && ++steps < f->places.n);
        if (q != pl) {
            pl->moved = 0;
            continue;
        }
        do {
            if (!spot_here(f, q))
                marked = q->stale = 1;
            q = spot_find(&f->places, q->parent);
        } while (q != pl);
        if (!marked) /* the disk holds no cycle, so this cannot be; still end */
            spot_drop(&f->places, pl);
        return 1;
    }
    return 0;
}

/* After places changed: settle the stale ones, then untangle cycles. */
static void places_update(fault *f)
{
    places_settle(f);
    while (cycle_mark(f))
        places_settle(f);
}

/* Every durable entry in directory `parent` is overtaken (see above). */
static void places_leave_all(fault *f, uint64_t parent)
{
    for (size_t i = 0; i < f->places.n; i++)
        if (f->places.v[i].parent == parent)
            f->places.v[i].stale = 1;
}

/*
 * Takes what is in the directory now as durable: its regular files into its
 * map, its directories into places (moving them here from wherever they were
 * durable before: a rename is one step). Then those durable here before but
 * here no more have left for good (places_update).
 */
static int dir_capture(fault *f, fdir *d)
{
    DIR *dp = NULL;
    struct dirent *e;
    struct stat st;
    char p[PATH_LEN + NAME_MAX + 2];
    int rc = 0;
    dp = opendir(d->path);
    if (!dp) {
        rc = -errno;
        goto out;
    }
    d->n = 0;
    places_leave_all(f, d->ino); /* until seen again below */
    while (!rc && (e = readdir(dp))) {
        if (is_dot(e->d_name))
            continue;
        snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
        if (lstat(p, &st))
            continue;
        if (S_ISREG(st.st_mode))
            rc = dir_add(d, e->d_name, (uint64_t)st.st_ino);
        else if (S_ISDIR(st.st_mode) && (uint64_t)st.st_ino != f->shadow_ino)
            rc = spot_set(&f->places, (uint64_t)st.st_ino, d->ino, e->d_name);
    }
    if (d->n > 1)
        qsort(d->durable, d->n, sizeof(d->durable[0]), name_order);
    places_update(f);
out:
    if (dp)
        closedir(dp);
    return rc;
}

/* Finds the directory's record, capturing it on first touch. *out is NULL
 * when the directory does not exist: there is nothing to protect, and the
 * call about to run will report ENOENT itself. */
static int dir_touch(fault *f, const char *path, fdir **out)
{
    struct stat st;
    fdir *d = NULL, **v;
    int rc = 0;
    if (strlen(path) >= PATH_LEN) {
        rc = -ENAMETOOLONG;
        goto out;
    }
    if (stat(path, &st)) {
        rc = errno == ENOENT ? 0 : -errno;
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        rc = -ENOTDIR;
        goto out;
    }
    if ((d = dir_find(f, (uint64_t)st.st_ino))) {
        if (strcmp(d->path, path) && !dir_here(d)) /* moved behind our back */
            snprintf(d->path, sizeof(d->path), "%s", path);
        goto out;
    }
    if (!(v = grow(f->dirs, f->n_dirs, &f->cap_dirs, sizeof(*v))) ||
        !(d = calloc(1, sizeof(*d)))) {
        rc = -ENOMEM;
        goto out;
    }
    f->dirs = v;
    d->ino = (uint64_t)st.st_ino;
    snprintf(d->path, sizeof(d->path), "%s", path);
    if ((rc = dir_capture(f, d))) {
        free(d->durable);
        free(d);
        d = NULL;
        if (rc == -ENOENT)
            rc = 0;
        goto out;
    }
    f->dirs[f->n_dirs++] = d;
out:
    *out = d;
    return rc;
}

/* The record of the directory holding path (NULL when that does not exist;
 * captured on first touch, see dir_touch) and path's last component. */
static int parent_of(fault *f, const char *path, fdir **d, char name[NAME_MAX + 1])
{
    char dir[PATH_LEN];
    int rc = split(path, dir, name);
    *d = NULL;
    if (!rc)
        rc = dir_touch(f, dir, d);
    return rc;
}

/* parent_of for a call that needs neither: the directory holding path is
 * captured before the call changes it. */
static int touch_parent(fault *f, const char *path)
{
    char name[NAME_MAX + 1];
    fdir *d;
    return parent_of(f, path, &d, name);
}

/* Notes that this vfs just put a directory at path (mkdir, rename). */
static int dir_put(fault *f, const char *path)
{
    char name[NAME_MAX + 1];
    struct stat st;
    fdir *d;
    int rc = parent_of(f, path, &d, name);
    if (rc || !d)
        goto out;
    if (lstat(path, &st)) {
        rc = -errno;
        goto out;
    }
    rc = spot_set(&f->moves, (uint64_t)st.st_ino, d->ino, name);
out:
    return rc;
}

/*
 * Directory ino is no more (rmdir, or renamed over). Its durable place, if
 * any, stays, marked gone: a crash makes it anew. It was empty, so whatever
 * left it left for good (places_update); its record goes, so that a recycled
 * inode number does not inherit its map.
 */
static void dir_removed(fault *f, uint64_t ino)
{
    fspot *pl = spot_find(&f->places, ino);
    fdir *d = dir_find(f, ino);
    if (pl)
        pl->gone = 1;
    places_leave_all(f, ino);
    places_update(f);
    spot_forget(&f->moves, ino);
    if (d) {
        d->dropped = 1;
        dirs_compact(f);
    }
}

static void shadow_path(fault *f, uint64_t ino, char *out, size_t len)
{
    snprintf(out, len, "%s/%llu", f->shadow, (unsigned long long)ino);
}

static void stage_path(fault *f, uint64_t ino, char *out, size_t len)
{
    snprintf(out, len, "%s/" STAGE "%llu", f->shadow, (unsigned long long)ino);
}

/*
 * Called before the name `path` goes away (unlink, either side of a rename).
 * If the durable map of its directory still holds that name with this inode,
 * hard-links the inode into the shadow directory so a crash can restore it.
 * *st gets what lstat found at path (all zero, so no file type, when there
 * is nothing: a missing parent means a missing path), *ino the regular
 * file's inode (0 if none), *last 1 when this name is its only link and
 * nothing else keeps it, i.e. it dies with the name.
 */
static int protect(fault *f, const char *path, struct stat *st, uint64_t *ino, int *last)
{
    char name[NAME_MAX + 1], sh[PATH_LEN + 32];
    fdir *d = NULL;
    int rc;
    memset(st, 0, sizeof(*st));
    *ino = 0;
    *last = 0;
    if ((rc = parent_of(f, path, &d, name)) || !d)
        goto out;
    if (lstat(path, st)) {
        memset(st, 0, sizeof(*st)); /* the call itself will report what is wrong */
        goto out;
    }
    if (!S_ISREG(st->st_mode))
        goto out;
    *ino = (uint64_t)st->st_ino;
    if (!dir_has(d, name, *ino)) {
        *last = st->st_nlink == 1;
        goto out;
    }
    shadow_path(f, *ino, sh, sizeof(sh));
    if (link(path, sh) && errno != EEXIST)
        rc = -errno; /* EXDEV: the shadow dir is on another file system */
out:
    return rc;
}

/* ---- descriptors and the gate ------------------------------------------ */

static int fd_state(const fault *f, int fd)
{
    return fd >= 0 && (size_t)fd < f->cap_fds ? f->fds[fd] : FD_NONE;
}

/* Registers a descriptor we just opened and its inode. `fresh`: this open
 * created or truncated the file, so none of its bytes are durable yet. An
 * old entry for the number is stale (the kernel hands out free numbers
 * only: the caller closed it behind our back) and is overwritten. */
static int track(fault *f, int fd, int fresh)
{
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st)) {
        rc = -errno;
        goto out;
    }
    if ((size_t)fd >= f->cap_fds) {
        size_t cap = f->cap_fds ? f->cap_fds : 64;
        unsigned char *v;
        while (cap <= (size_t)fd)
            cap *= 2;
        if (!(v = realloc(f->fds, cap))) {
            rc = -ENOMEM;
            goto out;
        }
        memset(v + f->cap_fds, FD_NONE, cap - f->cap_fds);
        f->fds = v;
        f->cap_fds = cap;
    }
    if (fresh)
        rc = file_set(f, (uint64_t)st.st_ino, 0);
    else if (!file_find(f, (uint64_t)st.st_ino))
        rc = file_set(f, (uint64_t)st.st_ino, (uint64_t)st.st_size);
    if (!rc)
        f->fds[fd] = FD_LIVE;
out:
    return rc;
}

/*
 * Decides whether a call goes ahead: 0, or the -errno it returns without
 * doing anything. Counts mutating calls, and fires an armed crash before
 * the call that reaches it. op < 0: a call no fail rule can name.
 */
static int gate(fault *f, int op, int mutating)
{
    int rc = 0;
    if (f->crashed) {
        rc = -EIO;
        goto out;
    }
    if (mutating) {
        f->mutations++;
        if (f->crash_left && --f->crash_left == 0) {
            int r = plat_fault_crash(&f->vfs, f->crash_torn);
            /* Nobody can be told through the failing call, and a disk left
             * half-rewound makes the test's findings meaningless. */
            if (r)
                fprintf(stderr, "plat_fault: rewinding the disk at crash: %s\n", strerror(-r));
            f->crashed = 1;
            rc = -EIO;
            goto out;
        }
    }
    if (op >= 0 && f->fail_left[op] && --f->fail_left[op] == 0)
        rc = f->fail_err[op];
out:
    return rc;
}

/* gate() for a call on a descriptor: dead handles fail before anything is
 * counted. *state is the descriptor's FD_* (FD_NONE: not opened through us). */
static int fd_gate(fault *f, int fd, int op, int mutating, int *state)
{
    *state = fd_state(f, fd);
    return *state == FD_DEAD ? -EIO : gate(f, op, mutating);
}

/* ---- the vfs ---------------------------------------------------------- */

static int f_open(plat_vfs *v, const char *path, int flags, int *fd_out)
{
    fault *f = F(v);
    struct stat st;
    int existed = stat(path, &st) == 0;
    int fresh = ((flags & PLAT_O_CREAT) && !existed) || ((flags & PLAT_O_TRUNC) && existed);
    int fd = -1, rc;
    if ((rc = gate(f, PLAT_FAULT_OPEN, fresh)) || (rc = touch_parent(f, path)))
        goto out;
    if ((rc = f->base->open(f->base, path, flags, &fd)) || (rc = track(f, fd, fresh)))
        goto out;
    *fd_out = fd;
    fd = -1;
out:
    if (fd >= 0)
        f->base->close(f->base, fd);
    return rc;
}

static int f_close(plat_vfs *v, int fd)
{
    fault *f = F(v);
    int state = fd_state(f, fd);
    /* Always release the number, even a dead handle's placeholder. */
    int rc = f->base->close(f->base, fd);
    if (state != FD_NONE) {
        if (state == FD_DEAD)
            rc = -EIO;
        f->fds[fd] = FD_NONE;
    }
    return rc;
}

static int f_pread(plat_vfs *v, int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    fault *f = F(v);
    int state;
    int rc = fd_gate(f, fd, PLAT_FAULT_PREAD, 0, &state);
    if (rc)
        *got = 0;
    else
        rc = f->base->pread(f->base, fd, buf, len, off, got);
    return rc;
}

static int f_pwritev(plat_vfs *v, int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
    fault *f = F(v);
    int state;
    int rc = fd_gate(f, fd, PLAT_FAULT_PWRITEV, 1, &state);
    if (!rc)
        rc = f->base->pwritev(f->base, fd, iov, iovcnt, off);
    return rc;
}

static int do_sync(fault *f, int fd, int full)
{
    struct stat st;
    int state;
    int rc = fd_gate(f, fd, PLAT_FAULT_FDATASYNC, 1, &state);
    if (rc)
        goto out;
    rc = full ? f->base->fsync(f->base, fd) : f->base->fdatasync(f->base, fd);
    if (rc || state == FD_NONE)
        goto out;
    if (fstat(fd, &st)) {
        rc = -errno;
        goto out;
    }
    rc = file_set(f, (uint64_t)st.st_ino, (uint64_t)st.st_size);
out:
    return rc;
}

static int f_fdatasync(plat_vfs *v, int fd)
{
    return do_sync(F(v), fd, 0);
}

static int f_fsync(plat_vfs *v, int fd)
{
    return do_sync(F(v), fd, 1);
}

static int f_ftruncate(plat_vfs *v, int fd, uint64_t len)
{
    fault *f = F(v);
    struct stat st;
    ffile *fi;
    int state;
    int rc = fd_gate(f, fd, PLAT_FAULT_FTRUNCATE, 1, &state);
    if (rc || (rc = f->base->ftruncate(f->base, fd, len)) || state == FD_NONE)
        goto out;
    if (fstat(fd, &st)) {
        rc = -errno;
        goto out;
    }
    /* Cutting below the synced size is modelled as durable at once: the
     * bytes cut off cannot come back. */
    fi = file_find(f, (uint64_t)st.st_ino);
    if (fi && fi->synced > len)
        fi->synced = len;
out:
    return rc;
}

static int f_fstat(plat_vfs *v, int fd, plat_stat *st)
{
    fault *f = F(v);
    int state;
    int rc = fd_gate(f, fd, -1, 0, &state);
    if (!rc)
        rc = f->base->fstat(f->base, fd, st);
    return rc;
}

static int f_stat(plat_vfs *v, const char *path, plat_stat *st)
{
    fault *f = F(v);
    int rc = gate(f, -1, 0);
    if (!rc)
        rc = f->base->stat(f->base, path, st);
    return rc;
}

/* A directory renamed keeps its own state (records follow it); one renamed
 * over is removed. Either becomes durable as a directory entry once one of
 * the two parents is synced. */
static int f_rename(plat_vfs *v, const char *from, const char *to)
{
    fault *f = F(v);
    struct stat from_st, to_st;
    uint64_t from_ino, to_ino, dir_ino, over_ino;
    int from_last, to_last, rc;
    if ((rc = gate(f, PLAT_FAULT_RENAME, 1)) ||
        (rc = protect(f, from, &from_st, &from_ino, &from_last)) ||
        (rc = protect(f, to, &to_st, &to_ino, &to_last)))
        goto out;
    dir_ino = S_ISDIR(from_st.st_mode) ? (uint64_t)from_st.st_ino : 0;
    over_ino = S_ISDIR(to_st.st_mode) ? (uint64_t)to_st.st_ino : 0;
    if ((rc = f->base->rename(f->base, from, to)))
        goto out;
    /* The inode renamed over dies, unless both names were links to one. */
    if (to_ino && to_last && to_ino != from_ino)
        file_forget(f, to_ino);
    if (dir_ino) {
        if (over_ino && over_ino != dir_ino)
            dir_removed(f, over_ino);
        dirs_follow(f, from, to);
        dirs_compact(f);
        rc = dir_put(f, to);
    }
out:
    return rc;
}

/* A new name: like a created file, it is gone after a crash unless its
 * directory was synced since. The inode's synced size is shared. */
static int f_link(plat_vfs *v, const char *from, const char *to)
{
    fault *f = F(v);
    int rc;
    if ((rc = gate(f, PLAT_FAULT_LINK, 1)) || (rc = touch_parent(f, from)) ||
        (rc = touch_parent(f, to)))
        goto out;
    rc = f->base->link(f->base, from, to);
out:
    return rc;
}

static int f_unlink(plat_vfs *v, const char *path)
{
    fault *f = F(v);
    struct stat st;
    uint64_t ino;
    int last, rc;
    if ((rc = gate(f, PLAT_FAULT_UNLINK, 1)) || (rc = protect(f, path, &st, &ino, &last)) ||
        (rc = f->base->unlink(f->base, path)))
        goto out;
    if (ino && last)
        file_forget(f, ino);
out:
    return rc;
}

/* A new directory: gone after a crash, with all it holds, unless its parent
 * was synced since. */
static int f_mkdir(plat_vfs *v, const char *path)
{
    fault *f = F(v);
    int rc;
    if ((rc = gate(f, PLAT_FAULT_MKDIR, 1)) || (rc = touch_parent(f, path)) ||
        (rc = f->base->mkdir(f->base, path)))
        goto out;
    rc = dir_put(f, path);
out:
    return rc;
}

/* The parent is captured first, so a crash before its next dirsync can
 * bring the directory back (empty). */
static int f_rmdir(plat_vfs *v, const char *path)
{
    fault *f = F(v);
    struct stat st;
    int is_dir, rc;
    if ((rc = gate(f, PLAT_FAULT_RMDIR, 1)) || (rc = touch_parent(f, path)))
        goto out;
    is_dir = !lstat(path, &st) && S_ISDIR(st.st_mode);
    if ((rc = f->base->rmdir(f->base, path)))
        goto out;
    if (is_dir)
        dir_removed(f, (uint64_t)st.st_ino);
out:
    return rc;
}

static int f_statfs(plat_vfs *v, const char *path, uint64_t *avail, uint64_t *total)
{
    fault *f = F(v);
    int rc = gate(f, -1, 0);
    if (!rc)
        rc = f->base->statfs(f->base, path, avail, total);
    if (!rc && *avail > f->avail_cap)
        *avail = f->avail_cap;
    return rc;
}

static int f_dirsync(plat_vfs *v, const char *path)
{
    fault *f = F(v);
    fdir *d = NULL;
    int rc;
    if ((rc = gate(f, PLAT_FAULT_DIRSYNC, 1)) || (rc = f->base->dirsync(f->base, path)) ||
        (rc = dir_touch(f, path, &d)) || !d)
        goto out;
    rc = dir_capture(f, d); /* after a first touch too: cheap, and simpler */
out:
    return rc;
}

static int f_listdir(plat_vfs *v, const char *dir, plat_dirent_fn fn, void *ctx)
{
    fault *f = F(v);
    int rc = gate(f, -1, 0);
    if (!rc)
        rc = f->base->listdir(f->base, dir, fn, ctx);
    return rc;
}

/* The lock file is tracked like any file opened here, and a crash kills its
 * handle, which releases the lock as a reboot would. */
static int f_lock(plat_vfs *v, const char *path, int *fd_out)
{
    fault *f = F(v);
    struct stat st;
    int existed = stat(path, &st) == 0;
    int fd = -1, rc;
    if ((rc = gate(f, -1, 0)) || (rc = touch_parent(f, path)) ||
        (rc = f->base->lock(f->base, path, &fd)) || (rc = track(f, fd, !existed)))
        goto out;
    *fd_out = fd;
    fd = -1;
out:
    if (fd >= 0)
        f->base->close(f->base, fd);
    return rc;
}

/* ---- crash -------------------------------------------------------------- */

/*
 * Every handle dies with the power. The real file is closed (dropping its
 * flock, as a reboot would) but the number stays taken by a /dev/null
 * placeholder until the owner closes it: otherwise a stale handle's number
 * could be handed to a file opened after the crash, and the owner's late
 * close or write would hit that file.
 */
static int kill_fds(fault *f)
{
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int rc = null_fd < 0 ? -errno : 0;
    for (size_t fd = 0; fd < f->cap_fds; fd++) {
        if (f->fds[fd] != FD_LIVE)
            continue;
        if (null_fd >= 0 && dup2(null_fd, (int)fd) >= 0)
            fcntl((int)fd, F_SETFD, FD_CLOEXEC);
        else
            f->base->close(f->base, (int)fd); /* second best: number may be reused */
        f->fds[fd] = FD_DEAD;
    }
    if (null_fd >= 0)
        close(null_fd);
    return rc;
}

/* A directory, and everything below it, removed from our view as well as
 * from the disk. */
static void dir_forget(fault *f, uint64_t ino)
{
    fdir *d = dir_find(f, ino);
    if (d)
        d->dropped = 1; /* the caller compacts */
    spot_forget(&f->moves, ino);
}

/* rm -r path, forgetting the files and directories it held. `path` is a
 * buffer of at least PATH_LEN bytes, extended in place on the way down and
 * restored. The shadow dir is never removed. */
static int remove_tree(fault *f, char *path)
{
    size_t len = strlen(path);
    struct stat st;
    struct dirent *e;
    DIR *dp = NULL;
    int rc = 0;
    if (lstat(path, &st)) {
        rc = -errno;
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path))
            rc = -errno;
        else if (S_ISREG(st.st_mode) && st.st_nlink == 1)
            file_forget(f, (uint64_t)st.st_ino);
        goto out;
    }
    if ((uint64_t)st.st_ino == f->shadow_ino)
        goto out;
    if (!(dp = opendir(path))) {
        rc = -errno;
        goto out;
    }
    while ((e = readdir(dp))) {
        if (is_dot(e->d_name))
            continue;
        if (len + 1 + strlen(e->d_name) >= PATH_LEN) {
            first_err(&rc, -ENAMETOOLONG);
            continue;
        }
        path[len] = '/';
        strcpy(path + len + 1, e->d_name);
        first_err(&rc, remove_tree(f, path));
        path[len] = '\0';
    }
    if (rmdir(path))
        first_err(&rc, -errno);
    dir_forget(f, (uint64_t)st.st_ino);
out:
    if (dp)
        closedir(dp);
    return rc;
}

/* fn for every entry of a tracked directory d that is still there: dots
 * skipped, each lstat'ed (one that vanished skipped), its path in a buffer
 * fn may extend (remove_tree). The first error of all is returned. */
typedef int (*entry_fn)(fault *f, fdir *d, char *path, const char *name,
                        const struct stat *st, void *arg);

static int each_entry(fault *f, fdir *d, entry_fn fn, void *arg)
{
    DIR *dp;
    struct dirent *e;
    struct stat st;
    char p[PATH_LEN + NAME_MAX + 2];
    int rc = 0;
    if (!dir_here(d) || !(dp = opendir(d->path)))
        return 0;
    while ((e = readdir(dp))) {
        if (is_dot(e->d_name))
            continue;
        snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
        if (!lstat(p, &st))
            first_err(&rc, fn(f, d, p, e->d_name, &st, arg));
    }
    closedir(dp);
    return rc;
}

/* Pass 1: every directory in d whose durable place is elsewhere (a rename
 * that was not made durable) goes to the shadow dir for now, out of the way
 * of the removals below and of each other (a swap). */
static int stage_stray(fault *f, fdir *d, char *p, const char *name, const struct stat *st,
                       void *arg)
{
    char sp[PATH_LEN + 32];
    fspot *pl;
    (void)arg;
    if (!S_ISDIR(st->st_mode) || (uint64_t)st->st_ino == f->shadow_ino)
        return 0;
    pl = spot_find(&f->places, (uint64_t)st->st_ino);
    if (!pl || (pl->parent == d->ino && !strcmp(pl->name, name)))
        return 0;
    stage_path(f, pl->ino, sp, sizeof(sp));
    if (rename(p, sp))
        return -errno;
    dirs_follow(f, p, sp);
    return 0;
}

/* Pass 2: names made in d since its last dirsync go: regular files not in
 * its map, and directories this vfs made or moved here that have no durable
 * place, with all they hold. Directories made behind its back stay. */
static int remove_new(fault *f, fdir *d, char *p, const char *name, const struct stat *st,
                      void *arg)
{
    (void)arg;
    if (S_ISREG(st->st_mode) && !dir_has(d, name, (uint64_t)st->st_ino)) {
        if (unlink(p))
            return -errno;
        if (st->st_nlink == 1)
            file_forget(f, (uint64_t)st->st_ino);
    } else if (S_ISDIR(st->st_mode) && !spot_find(&f->places, (uint64_t)st->st_ino) &&
               spot_find(&f->moves, (uint64_t)st->st_ino)) {
        return remove_tree(f, p);
    }
    return 0;
}

/* Pass 3: every durable directory whose parent is still tracked goes back
 * to its place: from the shadow dir where pass 1 put it or, if it was
 * removed since, as a new empty directory whose inode takes over the place. */
static int restore_dirs(fault *f)
{
    char p[PATH_LEN + NAME_MAX + 2], sp[PATH_LEN + 32];
    struct stat st;
    int rc = 0;
    for (size_t i = 0; i < f->places.n; i++) {
        fspot *pl = &f->places.v[i];
        fdir *d = dir_find(f, pl->parent);
        if (!d || !dir_here(d) || (!pl->gone && spot_here(f, pl)))
            continue;
        snprintf(p, sizeof(p), "%s/%s", d->path, pl->name);
        stage_path(f, pl->ino, sp, sizeof(sp));
        if (!pl->gone && !rename(sp, p)) {
            dirs_follow(f, sp, p);
            continue;
        }
        if (!pl->gone && errno != ENOENT) {
            first_err(&rc, -errno);
            continue;
        }
        if (mkdir(p, 0755) || lstat(p, &st)) {
            first_err(&rc, -errno);
            continue;
        }
        pl->ino = (uint64_t)st.st_ino;
        pl->gone = 0;
    }
    return rc;
}

/* Removes every entry of the shadow dir whose name starts with prefix
 * ("": all), with all it holds. The first error is returned. */
static int clear_shadow(fault *f, const char *prefix)
{
    DIR *dp = opendir(f->shadow);
    struct dirent *e;
    char p[PATH_LEN + NAME_MAX + 2];
    int rc = 0;
    if (!dp)
        goto out;
    while ((e = readdir(dp))) {
        if (is_dot(e->d_name) || strncmp(e->d_name, prefix, strlen(prefix)))
            continue;
        snprintf(p, sizeof(p), "%s/%s", f->shadow, e->d_name);
        first_err(&rc, remove_tree(f, p));
    }
    closedir(dp);
out:
    return rc;
}

/* Pass 4: durable file names that were unlinked or renamed over come back
 * from the shadow dir. */
static int restore_files(fault *f, fdir *d)
{
    char p[PATH_LEN + NAME_MAX + 2], sh[PATH_LEN + 32];
    struct stat st;
    int rc = 0;
    if (!dir_here(d))
        goto out;
    for (size_t i = 0; i < d->n; i++) {
        snprintf(p, sizeof(p), "%s/%s", d->path, d->durable[i].name);
        if (lstat(p, &st) == 0)
            continue;
        shadow_path(f, d->durable[i].ino, sh, sizeof(sh));
        if (link(sh, p))
            first_err(&rc, -errno);
    }
out:
    return rc;
}

/* Pass 5: every tracked file in the directory is cut to its synced size,
 * or with *torn to a random point between that and its present size. */
static int cut_file(fault *f, fdir *d, char *p, const char *name, const struct stat *st,
                    void *torn)
{
    ffile *fi = S_ISREG(st->st_mode) ? file_find(f, (uint64_t)st->st_ino) : NULL;
    uint64_t keep;
    (void)d;
    (void)name;
    if (!fi || (uint64_t)st->st_size <= fi->synced)
        return 0;
    keep = fi->synced;
    if (*(const int *)torn)
        keep += rnd(f) % ((uint64_t)st->st_size - fi->synced + 1);
    return truncate(p, (off_t)keep) ? -errno : 0;
}

/*
 * Directories first, so that every name below is where the durable state
 * says (strays staged before anything is removed, so a removal never takes
 * a durable directory along); then file names; then sizes, as a restored
 * name may lead to a file to cut. Afterwards nothing is "made since" any
 * more, and records whose directory went are dropped.
 */
int plat_fault_crash(plat_vfs *vfs, int torn)
{
    fault *f = F(vfs);
    int rc = kill_fds(f);
    for (size_t i = 0; i < f->n_dirs; i++)
        first_err(&rc, each_entry(f, f->dirs[i], stage_stray, NULL));
    for (size_t i = 0; i < f->n_dirs; i++)
        first_err(&rc, each_entry(f, f->dirs[i], remove_new, NULL));
    first_err(&rc, restore_dirs(f));
    /* Staged directories no durable place claimed (their parent went): gone. */
    first_err(&rc, clear_shadow(f, STAGE));
    for (size_t i = 0; i < f->n_dirs; i++)
        first_err(&rc, restore_files(f, f->dirs[i]));
    for (size_t i = 0; i < f->n_dirs; i++)
        first_err(&rc, each_entry(f, f->dirs[i], cut_file, &torn));
    f->moves.n = 0;
    for (size_t i = 0; i < f->n_dirs; i++)
        if (!dir_here(f->dirs[i]))
            f->dirs[i]->dropped = 1;
    dirs_compact(f);
    return rc;
}

/* ---- control ------------------------------------------------------------ */

void plat_fault_revive(plat_vfs *vfs)
{
    fault *f = F(vfs);
    struct stat st;
    f->crashed = 0;
    f->crash_left = 0;
    /* What is on disk now is what the rebooted machine finds: all durable.
     * Known directories are re-captured now rather than on next touch, so
     * a write through a handle still open (revive without a crash) is
     * still cut by a later crash. */
    clear_shadow(f, "");
    f->places.n = 0;
    f->moves.n = 0;
    for (size_t i = 0; i < f->n_dirs; i++)
        if (!dir_here(f->dirs[i]) || dir_capture(f, f->dirs[i]))
            f->dirs[i]->dropped = 1; /* gone: forget it */
    dirs_compact(f);
    f->n_files = 0;
    for (size_t fd = 0; fd < f->cap_fds; fd++)
        if (f->fds[fd] == FD_LIVE && !fstat((int)fd, &st))
            file_set(f, (uint64_t)st.st_ino, (uint64_t)st.st_size);
}

void plat_fault_fail_nth(plat_vfs *vfs, plat_fault_op op, unsigned nth, int err)
{
    fault *f = F(vfs);
    if ((unsigned)op >= PLAT_FAULT_NOPS)
        return;
    f->fail_left[op] = nth;
    /* A rule must fail the call; 0 would silently drop it. */
    f->fail_err[op] = err < 0 ? err : -EIO;
}

void plat_fault_crash_at(plat_vfs *vfs, unsigned nth, int torn)
{
    F(vfs)->crash_left = nth;
    F(vfs)->crash_torn = torn;
}

int plat_fault_crashed(plat_vfs *vfs)
{
    return F(vfs)->crashed;
}

unsigned long plat_fault_mutations(plat_vfs *vfs)
{
    return F(vfs)->mutations;
}

void plat_fault_set_avail(plat_vfs *vfs, uint64_t avail)
{
    F(vfs)->avail_cap = avail;
}

plat_vfs *plat_fault_new(plat_vfs *base, const char *shadow_dir, uint64_t seed)
{
    fault *f = calloc(1, sizeof(*f));
    plat_vfs *out = NULL;
    struct stat st;
    if (!f || strlen(shadow_dir) + 32 >= sizeof(f->shadow))
        goto out;
    f->vfs = (plat_vfs){
        .open = f_open,
        .close = f_close,
        .pread = f_pread,
        .pwritev = f_pwritev,
        .fdatasync = f_fdatasync,
        .fsync = f_fsync,
        .ftruncate = f_ftruncate,
        .fstat = f_fstat,
        .stat = f_stat,
        .rename = f_rename,
        .link = f_link,
        .unlink = f_unlink,
        .mkdir = f_mkdir,
        .rmdir = f_rmdir,
        .dirsync = f_dirsync,
        .listdir = f_listdir,
        .lock = f_lock,
        .statfs = f_statfs,
    };
    f->avail_cap = UINT64_MAX;
    f->base = base;
    /* Spread small seeds over the state; xorshift must not start at 0. */
    f->rng = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    if (!f->rng)
        f->rng = 1;
    snprintf(f->shadow, sizeof(f->shadow), "%s", shadow_dir);
    if (mkdir(shadow_dir, 0755) == 0)
        f->made_shadow = 1;
    else if (errno != EEXIST)
        goto out;
    if (stat(shadow_dir, &st) || !S_ISDIR(st.st_mode))
        goto out;
    f->shadow_ino = (uint64_t)st.st_ino;
    out = &f->vfs;
    f = NULL;
out:
    if (f && f->made_shadow)
        rmdir(f->shadow);
    free(f);
    return out;
}

void plat_fault_free(plat_vfs *vfs)
{
    fault *f = F(vfs);
    if (!f)
        return;
    /* Dead handles' placeholders are left open: their numbers still belong
     * to callers who will close them. */
    clear_shadow(f, "");
    if (f->made_shadow)
        rmdir(f->shadow);
    for (size_t i = 0; i < f->n_dirs; i++) {
        free(f->dirs[i]->durable);
        free(f->dirs[i]);
    }
    free(f->dirs);
    free(f->files);
    free(f->places.v);
    free(f->moves.v);
    free(f->fds);
    free(f);
}
