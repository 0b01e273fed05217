// One self-training labelling round (issue 8): every rank runs the current
// model (eval mode, multi-scale fused, one image at a time) over its
// contiguous shard of the training split at the test transform's warp size,
// labels the ignored pixels by selftrain.mode (selftrain.h; zs3's thresholds
// are found globally), the shards are shared so every rank holds the whole
// round (the loader draws any image), rank 0 logs per unseen class the pixels
// labelled and their mean confidence, and the round is written collectively
// to RUN/selftrain/round_NN.h5 (st_store.h).
#ifndef ZSSEG_ST_ROUND_H
#define ZSSEG_ST_ROUND_H

#include <stddef.h>

#include "cagnet.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"
#include "infer.h"
#include "selftrain.h"
#include "st_store.h"

// RUN/selftrain/round_NN.h5
void st_round_path(const char* run_dir, int round, char* path, size_t n);

// Collective. Labels round `round` (starting before global iteration iter)
// into *out (allocated here) and its file. Returns 0, or 1 when a stop signal
// reached any rank during labelling: then nothing is written and *out is
// untouched (the caller checkpoints and leaves; a resumed run labels again
// from the same parameters, so it gets the same labels).
int st_round_label(StStore* out, const CagNet* m, const Config* cfg, const DatasetClasses* cs,
                   const Dataset* train, Dist* d, const char* run_dir, int round, long iter);

// selftrain.online (cagnet mode, as the reference code): instead of rounds,
// every st batch's ignored pixels are relabelled with the current model
// (eval mode) at the feature size, then brought back to the batch size by
// nearest resizing. Holds its own inference activations.
typedef struct {
    StRule rule;
    CagInfer inf;
    int B, H, W;
    uint8_t *gt, *pseudo;  // (B, Hf, Wf)
    float *conf, *weight;  // (Hf * Wf) one image's scratch
    uint8_t* up;           // (B, H, W) pseudo-labels at the batch size
    uint8_t* labels;       // (B, H, W) the merged labels st_online_label returns
} StOnline;

// Stops with a hint unless selftrain.online is off or the mode is cagnet.
void st_online_check(const Config* cfg);
void st_online_init(StOnline* o, const CagNet* m, const Config* cfg, const DatasetClasses* cs,
                    int B, int H, int W);
void st_online_free(StOnline* o);
// Ground truth where labelled, else the model's pseudo-label (255: none).
const uint8_t* st_online_label(StOnline* o, const CagNet* m,
                               const float* img,       // (B, 3, H, W)
                               const uint8_t* labels); // (B, H, W) -> (B, H, W)

#endif  // ZSSEG_ST_ROUND_H
