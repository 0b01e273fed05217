// CaGNet (DESIGN §2.1, tests/reference/README.md §1-§3): the whole model in
// one parameter buffer, its three optimizers, and the two training
// iterations. A step computes every gradient of one forward (step1: the D, E
// and G sets; step2: C and G) into the zeroed gradient buffer; cagnet_apply
// then updates. Keeping the two apart is where data parallelism sums the
// gradients across ranks.
#ifndef ZSSEG_CAGNET_H
#define ZSSEG_CAGNET_H

#include <stdint.h>

#include "backbone.h"
#include "config.h"
#include "context_module.h"
#include "disc_cls.h"
#include "generator.h"
#include "optim.h"
#include "params.h"
#include "rng.h"

#define CAGNET_MAX_SCALES 4  // 1.0 plus up to three model.msc_scales

// Loss values of one step1 (components unweighted; L_* weighted sums).
typedef struct {
    float d_gan_real, d_gan_fake, d_ce_real, d_ce_fake, e_ce, kl, g_gan, g_content;
    float loss_d, loss_e, loss_g;
} Step1Losses;

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

// step1 gradients of one batch into m->grads (zeroed first). rng->sample0 is
// the global index of img's first sample.
void cagnet_step1(CagNet* m,
                  const float* img,       // (B, 3, H, W)
                  const uint8_t* labels,  // (B, H, W) training indices, 255 = ignore
                  const StepRng* rng, Step1Losses* out);

// step2 gradients (C and G) of a generated batch of the scale-0 feature size;
// returns the CE.
float cagnet_step2(CagNet* m, const StepRng* rng);

// The published schedules (contract §3): step1 at iteration it, and step2 in
// the mixed stages.
UpdatePlan cagnet_plan_step1(const CagNet* m, long it);
UpdatePlan cagnet_plan_step2(const CagNet* m, long it);
void cagnet_apply(CagNet* m, const UpdatePlan* plan);

#endif  // ZSSEG_CAGNET_H
