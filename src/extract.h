// `zsseg extract` (issue 6): the features store. The frozen segmentation
// network runs in eval mode (z = mu, no dropout) over a split, and every
// labelled pixel of the feature grid becomes one row of ONE HDF5 file that
// all MPI ranks write collectively (parallel HDF5, MPI-IO driver):
//
//   /features    (N, D) float32  CM's real feature x at scale 0
//   /latent      (N, D) float32  CM's mu at scale 0 (the eval-mode latent code)
//   /labels      (N)    uint8    training index of the pixel's class
//   /image_index (N)    int32    the image's position in the split list
//   root attributes: config (resolved text), checkpoint, split ("train" or
//   "test"), D, K, counts (K) int64 rows per class, max_per_class (0 = all),
//   seed (run.seed, the key of the subsample)
//
// Input. Both splits go through the test transform (warp to data.warp_size,
// no scale, crop or flip), so the rows are a pure function of the images and
// the parameters. Labels are nearest-downsampled to the feature grid
// (resize_nearest_labels, as eval.full_resolution = false scores them);
// pixels of label 255 have no row. On the training split that includes the
// unseen classes (training labels mask them) and every image that
// data.strict_inductive drops. With model.msc the rows are still scale 0's x
// and mu, not the fused x_max.
//
// Order. Each rank takes the test loader's contiguous shard of the list, in
// batches of eval.batch_size; rows are ordered by (image index, pixel h*Wf + w)
// whatever the rank count, each rank writing its block at the exclusive prefix
// sum of the ranks' row counts. Datasets are chunked (about 1 MiB chunks),
// byte-shuffled and gzip-compressed (level 4); every write is collective, as
// parallel HDF5 (>= 1.10.2) requires for filtered datasets.
//
// Subsample (max_per_class = cap > 0). Pixel p of image i has the key
// mix64((i * Hf*Wf + p) XOR mix64(seed)), mix64 murmur3's 64-bit finalizer.
// Both steps are bijections, so keys never tie, and class c keeps exactly its
// min(N_c, cap) rows with the smallest keys: the same rows for any rank count.
// The cap-th smallest key of each class is found across the ranks by radix
// selection (8 rounds, one allreduce of a (K, 256) histogram each).
//
// Cost. Two passes over the shard: the first decodes the labels to count the
// rows (and select), the second runs the forward and writes; memory is one
// batch of rows plus the shard's feature-grid labels (Hf*Wf bytes per image).
#ifndef ZSSEG_EXTRACT_H
#define ZSSEG_EXTRACT_H

#include "cagnet.h"
#include "cli.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"

// Extract ds (opened with cfg, split by ds->training) with m into PATH.
// Collective over d. The file is written as PATH.tmp and renamed over PATH
// (file_commit) once complete; ckpt is only recorded (NULL: ""). Rank 0 logs the row
// count and file size. Stops with an error when the split has no labelled
// pixel. Returns 0.
int extract_run(const CagNet* m, const Config* cfg, const Dataset* ds, Dist* d, const char* ckpt,
                long max_per_class, const char* path);

// `zsseg extract -c CFG [--ckpt PATH] [--split train|test] [-o FILE]
// [--max-per-class N]`.
int cmd_extract(const CliArgs* args, const Config* cfg);

#endif  // ZSSEG_EXTRACT_H
