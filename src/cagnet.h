// CaGNet (DESIGN §2.1, tests/reference/README.md §1-§3): the whole model in
// one parameter buffer, its three optimizers, and the two training
// iterations. A step computes every gradient of one forward (step1: the D, E
// and G sets; step2: C and G) into the zeroed gradient buffer; cagnet_apply
// then updates. Keeping the two apart is where data parallelism sums the
// gradients across ranks.
//
// Data parallelism (cagnet_set_dist): each rank steps on its slice of the
// global batch and its gradient is exactly its share of the GLOBAL-batch
// loss gradient, so a plain sum over ranks (dist_allreduce_ranges, scale 1)
// gives the single-process gradient for any rank count. Means are scaled by
// local / global count of their normaliser (one allreduce of the counts per
// step); the MMD content loss gathers every rank's pixel rows and each rank
// computes the whole MMD (redundant, small next to the backbone) but keeps
// the gradient of its own pixels. Returned losses are global on every rank.
#ifndef ZSSEG_CAGNET_H
#define ZSSEG_CAGNET_H

#include <stdint.h>

#include "backbone.h"
#include "config.h"
#include "context_module.h"
#include "dist.h"
#include "disc_cls.h"
#include "generator.h"
#include "optim.h"
#include "params.h"
#include "rng.h"

#define CAGNET_MAX_SCALES 4  // 1.0 plus up to three model.msc_scales

// D/C dropout layer ids of the forward calls (contract §4): real features
// (and step2, and inference), generated ones, MSC output j at DC_ID_MSC + j.
#define DC_ID_REAL 100
#define DC_ID_FAKE 101
#define DC_ID_MSC 102  // + output index j (scales 1.., then x_max)

// Loss values of one step1 (components unweighted; L_* weighted sums).
typedef struct {
    float d_gan_real, d_gan_fake, d_ce_real, d_ce_fake, e_ce, kl, g_gan, g_content;
    float loss_d, loss_e, loss_g;
} Step1Losses;

// What a step1 trains: D's CE weights on real and generated features, and
// whether E+CM get gradients. The step1 stage: loss.real_ce_weight /
// loss.fake_ce_weight, train_e = 1; the step1 phases of the mixed stages:
// cagnet_mode_mixed. With train_e = 0 E's backward (most of the step) is
// skipped and the E regions of the gradient stay zero; kl and e_ce are still
// computed for logging.
typedef struct {
    float real_ce_weight, fake_ce_weight;
    int train_e;
} Step1Mode;

// Learning rates of one update (before group multipliers) and which of the
// three optimizers step; 0 disables one.
typedef struct {
    float lr_e, lr_d, lr_g;
    int update_e, update_d, update_g;
} UpdatePlan;

// One input scale's activations (scale 0 = 1.0).
typedef struct {
    int H, W, Hf, Wf;
    float* img;     // (B, 3, H, W) resized input; NULL for scale 0 (the caller's)
    uint8_t* lbl;   // (B, Hf, Wf) labels at this output size
    float* w;       // (B, Hf, Wf) CE weights at this output size (weighted steps only)
    BackboneActs bb;
    CmActs cm;
    DcActs dc;      // C on x of this scale (scale 0: also D's real call)
    float* dx;      // (B, D, Hf, Wf) gradient of x
    float* dh;      // (B, D, Hf, Wf) gradient of h
    float* x_up;    // (B, D, Hf0, Wf0) x upsampled to scale 0's size (scales > 0)
} CagScale;

typedef struct {
    // settings
    int K, E, D;
    int n_scales;  // 1, or 1 + model.msc_scales when model.msc
    double scales[CAGNET_MAX_SCALES];
    int gan_kind, content_mmd;
    float gan_weight, content_weight, kl_weight, backbone_ce_weight, real_ce_weight,
        fake_ce_weight;
    float* mmd_sigmas;
    int n_sigmas;
    float step2_cls_weight, step2_gen_weight;
    uint32_t* class_cum;  // (K) cumulative step2 class weights: seen 1, unseen 1 + prior
    float* emb;           // (K, E) class embeddings
    const Config* cfg;    // for the learning-rate schedules
    Dist* dist;           // NULL (or one rank): single process, no communication

    // model
    ParamTable pt;
    float* params;  // (pt.total)
    float* grads;   // (pt.total)
    Backbone bb;
    Cm cm;
    Gen gen;
    Dc dc;
    Optimizer opt_e, opt_d, opt_g;

    // activations for one (B, H, W)
    int B, H, W;
    CagScale sc[CAGNET_MAX_SCALES];
    float* x_max;      // (B, D, Hf0, Wf0) max fusion of the scales (MSC only)
    uint8_t* which;    // (B*D*Hf0*Wf0) winning scale
    float* dx_max;     // (B, D, Hf0, Wf0)
    DcActs dc_max;     // C on x_max
    float* emap;       // (B, E, Hf0, Wf0) embedding of each pixel's label
    float* latent;     // (B, D, Hf0, Wf0) step2 latent code
    uint8_t* y2;       // (B, Hf0, Wf0) step2 labels
    GenActs gen_acts;
    DcActs dc_fake;
    float* dfake;      // (B, D, Hf0, Wf0)
    float* dgan;       // (B, 1, Hf0, Wf0)
    float* dcls;       // (B, K, Hf of the largest output) scratch for one CE gradient
    uint8_t* valid;    // (B, Hf0, Wf0) label != 255 at scale 0
    int* cls_start;    // (K + 1) MMD: first row of each class
    int* cls_fill;     // (K) MMD: next free row of each class
    int* cls_pos;      // (B*Hf0*Wf0) MMD: pixel of each row
    int* cls_all;      // (world, K) MMD: valid pixels of each class on every rank
    int* cls_gstart;   // (K + 1) MMD: first global row of each class
    int* cls_mine;     // (K) MMD: first global row of this rank's pixels of each class
    size_t* gather_n;  // (world) MMD: floats of each rank's rows
    float* rows;       // gathered pixel rows for MMD (grown on demand)
    size_t rows_n;
    float* ws;         // shared module workspace
    size_t ws_n;
} CagNet;

// Build the model from the config (model.*, loss.*, optim.*, step2.*) for a
// per-rank batch (B, 3, H, W); emb (K, E) and unseen (K, 1 = unseen) are
// copied. Parameters get the default initialisation (param_init_default).
void cagnet_init(CagNet* m, const Config* cfg, int K, const float* emb, const uint8_t* unseen,
                 int B, int H, int W);
void cagnet_free(CagNet* m);
// Reallocate the activations for a per-rank batch of B (same H, W): the
// self-training stages' own batch size. Parameters and state are kept.
void cagnet_set_batch(CagNet* m, int B);

// Step as one rank of d (NULL: single process). Call before the first step;
// every rank must then make the same step calls (they are collective).
void cagnet_set_dist(CagNet* m, Dist* d);

// step1 gradients of one batch into m->grads (zeroed first). rng->sample0 is
// the global index of img's first sample. mode NULL = the step1 stage.
// weights (self-training, DESIGN §2.3) make the CEs of the real features
// (D's real CE and E's CE, every MSC output) Σ w·CE / Σ w over the valid
// pixels; the GAN, KL, content and fake-CE terms stay plain means over them.
// Every rank must pass weights or every rank NULL (the counts are collective).
void cagnet_step1(CagNet* m,
                  const float* img,       // (B, 3, H, W)
                  const uint8_t* labels,  // (B, H, W) training indices, 255 = ignore
                  const float* weights,   // (B, H, W) CE weight of each pixel, or NULL (all 1)
                  const StepRng* rng, const Step1Mode* mode, Step1Losses* out);

// The step1 phases of mixed / st_mixed: loss.mixed_real_ce_weight,
// loss.mixed_fake_ce_weight, E frozen.
Step1Mode cagnet_mode_mixed(const CagNet* m);

// step2 gradients (C and G) of a generated batch of the scale-0 feature size;
// returns the (global) CE.
float cagnet_step2(CagNet* m, const StepRng* rng);

// The published schedules (contract §3): step1 at iteration it, and step2 in
// the mixed stages.
UpdatePlan cagnet_plan_step1(const CagNet* m, long it);
UpdatePlan cagnet_plan_step2(const CagNet* m, long it);
// The step1 phases of the mixed stages: D and G at step2's learning rate
// (optim.mixed_lr schedule), E frozen. it counts iterations of the stage.
UpdatePlan cagnet_plan_mixed_step1(const CagNet* m, long it_in_stage);
// The st stage: step1 on ground truth + pseudo-labels, E at selftrain.lr
// (poly over schedule.st_iters), D and G at the mixed stages' rate. (st_mixed
// uses the mixed plans.)
UpdatePlan cagnet_plan_st(const CagNet* m, long it_in_stage);
void cagnet_apply(CagNet* m, const UpdatePlan* plan);

// The parameter ranges the plan's optimizers update (E = backbone, ASPP and
// CM; D = dc; G = gen), ascending, adjacent ones merged: what the trainer
// sums across ranks. Returns how many (at most 3).
int cagnet_update_ranges(const CagNet* m, const UpdatePlan* p,
                         size_t* offsets,  // (3)
                         size_t* counts);  // (3)

// ---------------------------------------------------------------- pieces
// Host-side parts of the steps that the CUDA mirror (cuda/cagnet_cuda.cu)
// runs as they are, so both backends share them.

// ratio[i] = local[i] / (sum over ranks of local[i]), 0 where the sum is 0:
// the factor that turns a mean over this rank's elements into its share of
// the mean over the global batch (exactly 1 or 0 in a single process).
// n <= 2 * CAGNET_MAX_SCALES.
void cagnet_share_ratios(const CagNet* m, const double* local, float* ratio, int n);
// Labels (and, when weights is non-NULL, weights) of every scale at its
// output size: m->sc[j].lbl and m->sc[j].w.
void cagnet_resize_targets(CagNet* m,
                           const uint8_t* labels,  // (B, H, W)
                           const float* weights);  // (B, H, W) or NULL
// step1's normalisers on this rank from the resized targets: cnt[j] = valid
// (label != 255) pixels of scale j (m->valid gets scale 0's mask) and, when
// weighted, cnt[n_scales + j] = their Σ w. Returns how many it wrote.
int cagnet_count_targets(CagNet* m, int weighted, double* cnt);  // (2 * CAGNET_MAX_SCALES)
// Counting sort of scale 0's valid pixels by class: m->cls_start (K + 1) and
// m->cls_pos (pixel of each row, raster order within a class). Returns the rows.
int cagnet_sort_by_class(CagNet* m, const uint8_t* lbl);
// Several ranks, MMD: per-class counts of every rank, the global row layout
// (cls_gstart, cls_mine) and each rank's gather size; returns the global rows.
int cagnet_gather_layout(CagNet* m, const int* start);
// The gathered blocks S (rank by rank: X rows, then Y rows) regrouped by class.
void cagnet_regroup_rows(CagNet* m, float* X, float* Y, const float* S);
// Loss components summed over ranks (the MMD content loss is global already).
void cagnet_sum_losses(const CagNet* m, Step1Losses* L);
// step2's class draw into m->y2 (B, Hf0, Wf0) (contract §4 keys).
void cagnet_draw_step2_labels(CagNet* m, const StepRng* rng);

#endif  // ZSSEG_CAGNET_H
