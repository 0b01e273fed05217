// One training run per run directory (issue 13): rank 0 holds an advisory
// flock(2) on RUN/.lock for the whole run. The kernel drops it on any death
// (SIGKILL, node crash of a local disk), so a stale lock never blocks a
// resume; a second `zsseg train` on the same directory is refused before it
// reads or writes anything there. The file holds the holder's pid, host and
// start time, for the refusal message only.
#ifndef ZSSEG_RUN_LOCK_H
#define ZSSEG_RUN_LOCK_H

// Creates RUN (mkdir -p) and takes the lock; the descriptor stays open until
// the process exits. Returns NULL on success, else a heap message naming the
// directory and the holder (pid, host, since) or the error (caller frees).
char* run_lock_acquire(const char* run_dir);

#endif  // ZSSEG_RUN_LOCK_H
