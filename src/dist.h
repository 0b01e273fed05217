// Distributed primitives of data-parallel training (DESIGN §5, issue 5): MPI
// setup, parameter broadcast from rank 0, gradient sums in fixed-order
// buckets over the contiguous gradient buffer, the per-iteration control
// record that only rank 0 fills in, and the parameter divergence check.
// Every function here is collective: all ranks call it, in the same order,
// with the same sizes. With one rank they still work (sums are identities).
#ifndef ZSSEG_DIST_H
#define ZSSEG_DIST_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, world;              // in MPI_COMM_WORLD
    int local_rank, local_world;  // among the ranks sharing this node (device choice)
    MPI_Comm comm;                // private duplicate of MPI_COMM_WORLD, errors returned
    MPI_Datatype control_type;    // ControlRecord without its padding bytes
    int owns_mpi;                 // dist_init initialised MPI, so dist_finalize ends it
    // Gradient allreduce accounting (dist_allreduce_grads/ranges), for the
    // scaling benchmark's allreduce share of the step time.
    double allreduce_s;
    uint64_t allreduce_calls;
    uint64_t allreduce_bytes;  // buffer bytes summed (not bytes on the wire)
} Dist;

// What every rank does next; filled in by rank 0 alone, broadcast each
// iteration. The meaning of stage, kind and flags belongs to the trainer.
typedef struct {
    int32_t stage;       // index into the config's stage list
    int32_t kind;        // step kind inside the stage (step1 / step2)
    int32_t stop;        // leave the training loop after this iteration
    int32_t checkpoint;  // write a checkpoint after this iteration
    int32_t evaluate;    // evaluate after this iteration
    int64_t iter;        // global iteration number
    float lr_e, lr_d, lr_g;
    uint32_t flags;
} ControlRecord;

// MPI_Init_thread(FUNNELED) (only the main thread calls MPI; loader threads
// never do) unless MPI is already initialised, then rank, world and node-local
// rank; tells the logger the rank (zs_set_rank).
void dist_init(Dist* d, int* argc, char*** argv);
// Frees the communicator and type; MPI_Finalize if dist_init initialised MPI.
void dist_finalize(Dist* d);

// Rank 0's n floats overwrite every other rank's (chunks of at most 2^30 bytes).
void dist_broadcast_params(const Dist* d,
                           float* params,  // (n)
                           size_t n);

// buf[i] = scale * sum over ranks of buf[i], the same bits on every rank.
// The buffer is cut into buckets of bucket_floats (> 0) in buffer order, one
// MPI_Allreduce each, so the sequence of collectives is identical on every
// rank. scale = 1/world gives the mean over ranks; 1 skips the multiply.
// Equal bits on all ranks rest on MPI reducing every rank's copy alike (Open
// MPI does; tests/mpi_dist.c checks it); dist_check_params catches an MPI
// that does not.
void dist_allreduce_grads(Dist* d,
                          float* grads,  // (n)
                          size_t n, size_t bucket_floats, float scale);
// The same over the ranges [offsets[i], offsets[i] + counts[i]) of buf only
// (e.g. the regions one step updates); ranges must ascend without overlap.
// Floats outside the ranges are not touched.
void dist_allreduce_ranges(Dist* d,
                           float* buf,  // (offsets[n_ranges-1] + counts[n_ranges-1])
                           const size_t* offsets, const size_t* counts, int n_ranges,
                           size_t bucket_floats, float scale);

// v[i] = sum over ranks of v[i] (loss sums, pixel counts).
void dist_allreduce_doubles(const Dist* d,
                            double* v,  // (n)
                            int n);

// In place: rank r's n ints sit at buf + r*n (each rank fills its own);
// afterwards every rank holds all of them (e.g. per-class pixel counts).
void dist_allgather_ints(const Dist* d,
                         int* buf,  // (world, n)
                         int n);

// In place, blocks of different sizes: rank r's counts[r] floats sit at
// offset counts[0] + ... + counts[r-1] of buf (each rank fills its own block,
// counts are the same on every rank); afterwards every rank holds all blocks.
// One MPI_Allgatherv, whose int offsets limit the total to 2^31 - 1 floats
// (8 GB); a larger total stops with an error.
void dist_allgather_floats(const Dist* d,
                           float* buf,  // (sum of counts)
                           const size_t* counts);  // (world)

// Bitwise OR of every rank's local flags: how a signal seen by one rank
// reaches rank 0's decision.
uint32_t dist_agree_flags(const Dist* d, uint32_t local);

// Rank 0's record overwrites every other rank's.
void dist_broadcast_control(const Dist* d, ControlRecord* rec);

// Rank 0's NUL-terminated text (ignored elsewhere) as a heap copy on every
// rank (the caller frees it), e.g. the resolved config.
char* dist_broadcast_text(const Dist* d, const char* text);

// 64-bit FNV-1a over the floats' bit patterns, one 32-bit word per step: any
// single changed float changes the result (each step is a bijection of the
// state). Bitwise, so -0.0 != 0.0 and NaN payloads count.
uint64_t dist_checksum(const float* x,  // (n)
                       size_t n);

// Compare the parameter checksums of all ranks. If any differs from rank 0's,
// rank 0 stops the job (MPI_Abort) with "parameters diverged at iteration
// ITER: rank r checksum X differs from rank 0's Y" and a HINT; the other ranks
// wait for that abort.
void dist_check_params(const Dist* d,
                       const float* params,  // (n)
                       size_t n, long iter);

#endif  // ZSSEG_DIST_H
