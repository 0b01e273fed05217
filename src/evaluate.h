// Evaluation of a CaGNet on the test split (DESIGN §4): generalized zero-shot
// scoring of every test pixel over all K classes, collective over the ranks.
//
// Protocol. The test loader warps image and label to data.warp_size (label
// nearest). eval.full_resolution = false (CaGNet's protocol) scores the
// argmax at the feature size against the warped label nearest-downsampled
// (resize_nearest_labels) to that size; true upsamples the logits bilinearly
// (align_corners 0) to the warped label's size and scores every label pixel.
// Unreadable test images (valid = 0 in the batch) are not scored.
#ifndef ZSSEG_EVALUATE_H
#define ZSSEG_EVALUATE_H

#include <stdint.h>

#include "cagnet.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"
#include "metrics.h"

// Add the first n samples' pixels to cm: labels (n, H, W) against the argmax
// of logits at feature resolution (labels downsampled) or, with
// full_resolution, of the logits upsampled to (H, W). Samples with
// valid[b] == 0 are skipped (valid NULL: all count).
void eval_score_batch(ConfMat* cm,
                      const float* logits,    // (n, K, Hf, Wf)
                      const uint8_t* labels,  // (n, H, W) test indices, 255 = ignore
                      const uint8_t* valid,   // (n) or NULL
                      int n, int K, int Hf, int Wf, int H, int W, int full_resolution,
                      uint8_t* ws);           // (n * (H*W + Hf*Wf)) bytes

// Evaluate m on `test` (the first eval.max_images of the list when > 0,
// split over the ranks; eval.batch_size images per rank per forward). Every
// rank of d must call it; every rank gets the metrics in *out (may be NULL).
// Rank 0 logs the per-class table, the summary and the images/s rate, and
// when out_dir is not NULL writes OUT_DIR/eval_<step %08ld>.txt (the table)
// and OUT_DIR/eval_<step %08ld>.json (metrics_print_json), each atomically.
// Returns 0.
int evaluate_run(const CagNet* m, const Config* cfg, const DatasetClasses* cs, const Dataset* test,
                 Dist* d, const char* out_dir, long step, Metrics* out);

#endif  // ZSSEG_EVALUATE_H
