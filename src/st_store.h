// A self-training round's pseudo-labels (issue 8): in memory on every rank
// (the loader draws any training image) and in RUN/selftrain/round_NN.h5:
//   /labels    (N, H, W) uint8    pseudo class per pixel, 255 = none
//   /weights   (N, H, W) float32  pixel weights (1 or 0 for cagnet/zs3)
//   /image_ids (N) fixed-length strings, the training split's ids in dataset order
// attributes on "/": format (1), round, mode, iteration (global iteration the
// round starts at), zsseg version, and "crc32c:<dataset>" for each dataset
// (CRC-32C of its bytes in row-major order, as checkpoints do).
// H, W: the feature size of a warp x warp input (the model's scale-0 output).
#ifndef ZSSEG_ST_STORE_H
#define ZSSEG_ST_STORE_H

#include <stdint.h>

#include "dist.h"

typedef struct {
    int n, H, W;       // images (training split, dataset order), map size
    uint8_t* labels;   // (n, H, W)
    float* weights;    // (n, H, W)
    int round;
    long iteration;
    char mode[16];     // st_mode_name
} StStore;

void st_store_alloc(StStore* s, int n, int H, int W);
void st_store_free(StStore* s);

// Collective write of s (identical on every rank) to path: each rank writes
// the rows [start, start + count) with parallel HDF5 (collective hyperslab
// writes, chunked one image per chunk, gzip), into path.tmp, which rank 0
// renames over path after everything is closed (and fsyncs the directory),
// so a killed round never leaves a half file under the final name. ids (n)
// are the training split's ids.
void st_store_write(const StStore* s, const char* path, const char* const* ids, int start,
                    int count, const Dist* d);

// Read and verify (shape n x H x W, every CRC, the ids) into s, allocated
// here. Returns NULL on success, or a malloc'ed message saying what is wrong
// (missing, truncated, checksum mismatch naming the dataset, other shape or
// ids): the caller regenerates the round with a warning. Every rank reads.
char* st_store_read(StStore* s, const char* path, int n, int H, int W,
                    const char* const* ids);

#endif  // ZSSEG_ST_STORE_H
