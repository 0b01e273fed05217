// Sharded, prefetching batch loader over a Dataset (DESIGN §3).
//
// Training order. data.batch_size is the global batch B, summed over the R
// ranks; each rank takes B_local = B / R (an error names the key and R when
// B is not divisible). Epoch e visits the N samples in the order of a
// Fisher-Yates permutation (loader_epoch_order) drawn from
// rng_stream(RNG_DATA_ORDER, e, 0): draw i, rng_uint_below(n - i), is step i.
// Global batch k of the epoch is the positions [k*B, (k+1)*B) of that order;
// rank r takes its contiguous slice [k*B + r*B_local, k*B + (r+1)*B_local).
// The last, incomplete global batch of an epoch is dropped (N mod B samples
// sit out that epoch; the next epoch's order differs), so every step has B
// samples. The loader's position is (epoch, cursor): cursor is the position
// of the next global batch's first sample in the epoch order.
//
// Augmentation. The sample at position p of epoch e is transformed by
// transform_train keyed by (seed, epoch = e, sample index = p): the position
// in the epoch order, not the dataset index, and not changed by a skip.
//
// Bad samples. If the sample at position p is unreadable (dataset_read fails),
// position p takes the next usable sample of the order: p+1, p+2, ...
// (wrapping at N), keeping p's augmentation key. The choice is a pure
// function of the order and of which files are bad, so every rank, thread
// count and prefetch depth gives the same batches, with no communication:
// a rank reads only its own positions, and if it has to look further it
// reads (and judges) the same files any other rank would. A replacement may
// repeat a sample of the same batch, augmented differently. Each rank
// remembers the bad files it met (each is read, warned about and counted
// once); when its count exceeds data.max_bad_fraction * N the run stops
// (0.0, the default, stops at the first bad sample).
//
// Test order. The test list in list order, split contiguously: rank r of R
// takes positions [r*N/R, (r+1)*N/R) (integer division), in batches of the
// caller's size, the last one short; nothing is dropped. A bad test sample
// keeps its slot with valid = 0, a zero image and an all-ignore label (so
// evaluation ignores it); it is warned about and counted like training ones.
//
// Pseudo-labels (self-training, src/st_store.h). With a store attached, each
// training sample (dataset index i, position p) fills the pixels its
// transformed, remapped label leaves at 255: crop pixel (y, x) comes from
// warp-image pixel (wy, wx) = transform_train_source(draw of p) and takes
// store label (i, hd_nearest_src(wy, H_s, warp), hd_nearest_src(wx, W_s, warp))
// (min(floor(q * side_s / warp), side_s - 1)), unless (y, x) is padding or the
// store says 255 there. weights: the store's weight at such pixels, 1 at
// ground-truth pixels, 0 where the label stays 255.
//
// Threads. data.workers decoder threads (pthreads) per rank fill a ring of
// LOADER_DEPTH batch buffers ahead of the training loop, one sample per job;
// loader_next returns the next batch as soon as it is complete. workers = 0
// decodes in the caller, inside loader_next. Output is byte-identical for
// any worker count. Batch buffers come from the caller's allocator (page-
// locked memory when CUDA is in use) or aligned malloc.
#ifndef ZSSEG_LOADER_H
#define ZSSEG_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dataset.h"
#include "st_store.h"

#define LOADER_DEPTH 3  // batch buffers: the one the caller holds plus two prefetched

// Allocator of the batch buffers, e.g. {cuda_pinned_alloc, cuda_pinned_free}.
typedef struct {
    void* (*alloc)(size_t bytes);
    void (*free)(void* p);
} LoaderAllocator;

// Where the loader stands: the next batch loader_next returns. Training:
// cursor = position in epoch `epoch`'s order of the next global batch.
// Test: epoch = 0, cursor = offset of the next batch in this rank's shard.
typedef struct {
    long epoch;
    long cursor;
} LoaderState;

typedef struct {
    int n;              // samples in this rank's slice (B_local; a short last test batch)
    int H, W;           // crop x crop (training) or warp x warp (test)
    float* images;      // (n, 3, H, W) BGR minus mean
    uint8_t* labels;    // (n, H, W) training (unseen ignored) or test indices, 255 = ignore
    float* weights;     // (n, H, W) per-pixel CE weights, NULL unless a store is attached
    int* index;         // (n) dataset sample behind each slot (after any replacement)
    long* position;     // (n) position in the epoch order (augmentation key) or the test list
    uint8_t* valid;     // (n) 1 = decoded; 0 = unreadable test sample (zeros, all ignore)
    long epoch;         // epoch of this batch (test: 0)
    long cursor;        // position of the global batch's first sample (test: of this rank's batch)
    int sample0;        // global batch index of images[0]: rank * B_local (test: 0)
} LoaderBatch;

typedef struct Loader Loader;

// Training loader over ds (ds->training), rank `rank` of `world`. Reads the
// data.* keys it needs and run.seed; starts at epoch 0, cursor 0. alloc may
// be NULL (aligned malloc). ds must outlive the loader.
Loader* loader_open_train(const Dataset* ds, const Config* cfg, int rank, int world,
                          const LoaderAllocator* alloc);
// The same with the global batch from another key (selftrain.batch_size for
// the self-training stages).
Loader* loader_open_train_batch(const Dataset* ds, const Config* cfg, const char* batch_key,
                                int rank, int world, const LoaderAllocator* alloc);
// Test loader: this rank's contiguous shard of the test list, batch_local
// samples per batch.
Loader* loader_open_test(const Dataset* ds, const Config* cfg, int rank, int world,
                         int batch_local, const LoaderAllocator* alloc);
void loader_close(Loader* L);

// The next batch, valid until the next call (or loader_close). Training
// never ends (epochs follow each other); test returns NULL after the shard's
// last batch. Stops the run when bad samples exceed data.max_bad_fraction.
const LoaderBatch* loader_next(Loader* L);

// Checkpoint support: the state before the next loader_next, and a jump to a
// state (drops whatever was prefetched). A cursor past the last full batch
// starts the next epoch.
LoaderState loader_get_state(const Loader* L);
void loader_set_state(Loader* L, LoaderState st);

// Attach a self-training round's pseudo-labels (store of the training split,
// s->n = the dataset's n, else the run stops) to a training loader, or detach
// them (NULL). Drops prefetched batches and the held one like
// loader_set_state, and goes on from loader_get_state. s must outlive the
// loader or the next loader_set_pseudo.
void loader_set_pseudo(Loader* L, const StStore* s);

// Global batches per epoch (training) or this rank's batches (test).
long loader_batches_per_epoch(const Loader* L);
// Distinct bad samples this rank has met so far.
long loader_bad_count(Loader* L);

// order (n) = the Fisher-Yates permutation of 0..n-1 of epoch `epoch`.
void loader_epoch_order(uint64_t seed, long epoch, int n, int* order);

#endif  // ZSSEG_LOADER_H
