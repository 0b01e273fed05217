// Training checkpoints in HDF5 (issue 6): everything a run needs to continue
// exactly, written atomically by rank 0 (parameters and optimizer state are
// replicated), verified by CRC-32C before anyone trusts them.
//
// File RUN/ckpt/iter_%08ld.h5 (the number = iterations completed):
//   /params/<module>/<tensor>   float32, the tensor's shape (weights_h5.h)
//   /optim/<e|d|g>/m, /v        float32 (span_n) optimizer state (v: Adam only);
//                               attributes kind ("sgd"|"adam"), step, span_lo, span_n
//   /state                      group with attributes: iter, stage, iter_in_stage,
//                               mixed_pos, st_round, st_file, data_epoch, data_cursor,
//                               seed, best_metric
//   /config                     string: the resolved config text
//   /meta                       group with attributes: format_version, zsseg_version,
//                               git_revision, world_size, created (ISO 8601 UTC),
//                               one "crc32c:<dataset path>" (uint32) per dataset, and
//                               "crc32c:@attrs" (uint32, version 2): the CRC-32C of every
//                               attribute a resume reads (/meta format_version and
//                               world_size, all of /state, /optim/* kind, step, span_lo,
//                               span_n) serialised in a fixed order (ckpt_internal.h)
// Writing: RUN/ckpt/iter_%08ld.h5.tmp, close, fsync, rename, fsync the
// directory (file_commit), then RUN/ckpt/latest (one line: the file name) is
// replaced atomically; only then are old checkpoints pruned (keep the newest
// `keep`, plus every one whose iteration is a multiple of `keep_every` > 0).
#ifndef ZSSEG_CHECKPOINT_H
#define ZSSEG_CHECKPOINT_H

#include <stdint.h>
#include <stdio.h>

#include "cagnet.h"
#include "config.h"

// Version 2 added crc32c:@attrs. Version-1 files are still accepted (with a
// warning): their attributes are only range-checked, not checksummed.
#define CKPT_FORMAT_VERSION 2

typedef struct {
    long iter;           // iterations completed = the next global iteration to run
    int stage;           // stage index of that next iteration
    long iter_in_stage;  // its iteration inside the stage
    long mixed_pos;      // its position in the mixed cycle (iter_in_stage % (2 * interval))
    int st_round;        // self-training round the next iteration trains on, -1 outside
    long data_epoch;     // training loader state before its next batch (loader.h)
    long data_cursor;
    uint64_t seed;       // run.seed
    double best_metric;  // best hIoU evaluated so far, -1 if none
    int world_size;      // ranks at save (read back from /meta)
    char st_file[512];   // st_round's pseudo-label file, written as /state st_file
                         // (informational: a resume finds it from the round number)
} CkptState;

// Rank 0 only. Writes the checkpoint of m (params, opt_e/opt_d/opt_g) and st,
// commits it, updates `latest`, prunes; the final path goes to path_out.
void ckpt_save(const char* run_dir, const CkptState* st, const CagNet* m, const char* config_text,
               int keep, int keep_every, char* path_out, size_t path_len);

// NULL when PATH opens as HDF5, has every group/attribute above, every
// dataset's CRC-32C and shape and the attributes' CRC-32C match, and the
// attributes are consistent (iter >= 0 and the number of an iter_%08ld.h5
// name, stage >= 0, 0 <= iter_in_stage <= iter, mixed_pos >= 0, st_round >=
// -1, data position >= 0, world_size >= 1, optimizer steps >= 0,
// best_metric -1 or finite >= 0); else a heap message naming PATH and the
// first problem (caller frees). Never exits.
char* ckpt_verify(const char* path);
// The same, counting the datasets verified into *n_datasets (0 on failure):
// what `zsseg ckpt verify` reports.
char* ckpt_verify_count(const char* path, int* n_datasets);

// NULL when st (of checkpoint path) fits the schedule of n_stages stages of
// stage_iters iterations: 0 <= stage < n_stages, 0 <= iter_in_stage <=
// stage_iters[stage], iter == the iterations of the stages before + iter_in_stage,
// iter <= their total; else a heap message (caller frees).
char* ckpt_state_check(const CkptState* st, const long* stage_iters, int n_stages,
                       const char* path);

// Load a (verified) checkpoint into m, built from the same config: parameters
// (strict), optimizer states and step counts (kind and span must match), and
// the state. *config_text gets the stored config (caller frees) if non-NULL.
void ckpt_load(const char* path, CagNet* m, CkptState* st, char** config_text);

// `zsseg ckpt info`: the state attributes, meta, and every dataset (path,
// dtype, shape), then the verdict of ckpt_verify ("verify: ok (N datasets
// verified)" or "verify: FAILED: ..."); plain weights files (no /state) list
// their datasets only. Corrupt attributes print as "?" or are skipped.
void ckpt_print_info(const char* path, FILE* out);

// Checkpoint files of RUN/ckpt, newest first: the one `latest` names, then
// every iter_*.h5 by descending iteration (no duplicates; .tmp files
// excluded). Returns the count; *paths (heap, caller frees each and the
// array) may be empty when there is none.
int ckpt_list(const char* run_dir, char*** paths);

#endif  // ZSSEG_CHECKPOINT_H
