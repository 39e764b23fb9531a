/*
 * plat_fault.h -- a fault-injecting plat_vfs for tests (after LevelDB's
 * fault_injection_test.cc and SQLite's crash VFS in test6.c).
 *
 * It wraps another vfs (normally plat_vfs_default()) and remembers, per
 * file, how many bytes were made durable by the last fdatasync/fsync, and,
 * per directory, which entries were durable at its last dirsync: the names
 * of its regular files and of its subdirectories, each naming an inode. A
 * simulated power cut (plat_fault_crash) then puts the disk back into the
 * state a real power cut could leave:
 *   - every file is cut to its last synced size (optionally keeping a random
 *     prefix of the unsynced tail, to produce torn writes);
 *   - every directory gets back the file names it had at its last dirsync:
 *     names created since are removed, names removed or renamed over since
 *     are restored (the old inode is kept alive by a hard link in the shadow
 *     directory given at creation, which must be on the same file system);
 *   - and the same for directory entries: a directory made since its
 *     parent's last dirsync is removed with everything in it; one renamed
 *     since goes back to its durable name, taking what it holds along; one
 *     removed since (rmdir, or renamed over) comes back, empty.
 * What the vfs knows about a directory belongs to the directory, not to a
 * path: its durable names and its files' synced sizes follow it through
 * renames (its own and its ancestors'), and a crash that undoes a rename
 * puts it back with them, so that each name inside is then kept or lost by
 * the directory's own last dirsync.
 *
 * Directory entries, precisely:
 *   - A directory has one durable place (parent, name). A rename is one
 *     step, durable once either the old or the new parent is synced: a
 *     journaling file system (ext4, XFS) logs both entries in one
 *     transaction, and a directory must not come back in two places (it
 *     cannot be hard-linked) or in none (it would take all it holds).
 *     Where a rename made durable that way would leave the durable tree
 *     inconsistent (two directories under one name, or a directory inside
 *     itself) because renames before it were not made durable, those count
 *     as durable too: a journal commits in order. (A file renamed across
 *     directories is two names, each kept or lost by its own directory's
 *     dirsync, as before.)
 *   - A removed directory comes back empty, as a new inode. rmdir succeeds
 *     only once everything in it was unlinked or moved out; the model keeps
 *     those steps and loses the rmdir. That is sound: each directory comes
 *     back as it was at some moment between its last dirsync and the power
 *     cut (the premise of the whole model), here the moment just before its
 *     removal, which a file system committing metadata in order reaches when
 *     the power goes between the unlinks and the rmdir. (Bringing its files
 *     back too would also be a possible state; it is not modelled.) What
 *     moved out of it stays where it went.
 *   - A crash removes a directory only if this vfs made or renamed it
 *     since the last crash or revive and it has no durable place. One made
 *     behind its back (a test's scratch, another fault vfs's shadow) is
 *     left alone, as are the bytes of files it never opened; its own shadow
 *     directory is never captured, moved or removed.
 * After a crash every handle opened before it (lock handles included, so
 * the lock is released) is dead: calls on it fail with -EIO, and close
 * releases it and returns -EIO. Its number stays taken until that close, so
 * it never aliases a file opened later. The vfs itself can open files again
 * at once (or, after an automatic crash, after plat_fault_revive).
 *
 * A hard link is a new name like any other: a crash before its directory's
 * dirsync removes it. statfs can be told to report little free space
 * (plat_fault_set_avail) to test low-space policies.
 *
 * The model covers files and directories in directories touched through
 * this vfs (a directory is touched when a call names something in it, and
 * captured from disk then: what it holds at that moment counts as durable),
 * and files opened through it. Truncation (ftruncate, O_TRUNC) is durable at
 * once; bytes overwritten inside the synced size are not rolled back. No
 * table has a fixed size: directories, files and handles are limited only
 * by memory and the process's descriptor limit.
 *
 * It also fails chosen calls: the Nth call of an operation returns a given
 * -errno (e.g. -ENOSPC on the 3rd pwritev, -EIO on the 1st fdatasync), and it
 * can crash automatically right before the Nth mutating call.
 *
 * Not thread-safe; test-only. Directories must be named by the same path
 * spelling throughout (no symlink or "./" aliasing), everything must be on
 * one file system, and the shadow directory must not lie inside a directory
 * the vfs makes, renames or removes.
 */
#ifndef EMBEDDB_PLAT_FAULT_H
#define EMBEDDB_PLAT_FAULT_H

#include "embeddb/plat.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum plat_fault_op {
    PLAT_FAULT_OPEN,
    PLAT_FAULT_PWRITEV,
    PLAT_FAULT_FDATASYNC, /* fdatasync and fsync both count here */
    PLAT_FAULT_FTRUNCATE,
    PLAT_FAULT_RENAME,
    PLAT_FAULT_UNLINK,
    PLAT_FAULT_MKDIR,
    PLAT_FAULT_DIRSYNC,
    PLAT_FAULT_PREAD,
    PLAT_FAULT_LINK,
    PLAT_FAULT_RMDIR,
    PLAT_FAULT_NOPS
} plat_fault_op;

/* Creates a fault vfs over `base` (borrowed, must outlive it; its handles
 * must be kernel descriptors). `shadow_dir` is created if missing and must
 * be on the same file system as the files under test. `seed` drives the
 * torn-write randomness. NULL on OOM or if shadow_dir cannot be made. */
plat_vfs *plat_fault_new(plat_vfs *base, const char *shadow_dir, uint64_t seed);
/* Frees the fault vfs (NULL is a no-op). Does not crash; closes nothing the
 * caller still owns. Removes the shadow directory's contents, and the
 * directory itself if plat_fault_new created it. */
void plat_fault_free(plat_vfs *vfs);

/* Simulates a power cut now (see above). `torn` != 0 keeps a random prefix of
 * each file's unsynced bytes instead of dropping them all. Returns 0 or the
 * first -errno met while rewinding the disk. */
int plat_fault_crash(plat_vfs *vfs, int torn);

/* The next time `op` has been called `nth` more times (1 = the very next
 * call), that call fails with `err` (a negative errno; anything else means
 * -EIO) and does nothing. One rule per op; nth == 0 clears it. */
void plat_fault_fail_nth(plat_vfs *vfs, plat_fault_op op, unsigned nth, int err);

/* Crash automatically (with `torn`) right before the Nth mutating call from
 * now (pwritev, fdatasync/fsync, ftruncate, rename, link, unlink, mkdir, rmdir, dirsync,
 * an open that creates or truncates); that call and every later one fail
 * with -EIO until plat_fault_revive. nth == 0 disarms. */
void plat_fault_crash_at(plat_vfs *vfs, unsigned nth, int torn);

/* 1 once an automatic crash has happened. */
int plat_fault_crashed(plat_vfs *vfs);

/* Brings the "machine" back after a crash: the vfs takes calls again so the
 * store can be reopened. Handles from before the crash stay dead until
 * closed. Sync state starts afresh: what is on disk now counts as durable,
 * directories and their entries included. Fail rules that have not fired
 * stay armed. */
void plat_fault_revive(plat_vfs *vfs);

/* From now on statfs reports at most `avail` free bytes (UINT64_MAX: the
 * real figure again). */
void plat_fault_set_avail(plat_vfs *vfs, uint64_t avail);

/* Number of mutating calls seen so far (to pick crash points in a range). */
unsigned long plat_fault_mutations(plat_vfs *vfs);

#ifdef __cplusplus
}
#endif
#endif
