// CaGNet discriminator D and classifier C with a shared trunk
// (tests/reference/README.md §1), 1x1 convs with bias:
//   t = dropout(ReLU(trunk(x)))  D -> hidden
//   gan = gan(t)  (1 channel, the GAN logit), cls = cls(t)  (K class logits)
// Parameters dc.{trunk,gan,cls}.{weight,bias}, region REGION_DC. One forward
// serves both heads and every loss that reads them (same dropout mask); the
// backward only reads the acts, so it can run several times on one forward
// (step1: D-loss gradients to the parameters, E-loss gradients to x).
#ifndef ZSSEG_DISC_CLS_H
#define ZSSEG_DISC_CLS_H

#include <stddef.h>

#include "config.h"
#include "conv_layer.h"
#include "params.h"
#include "rng.h"

typedef struct {
    int D;          // input channels (model.feature_dim)
    int hidden;     // trunk width (model.d_hidden)
    int K;          // classes
    float dropout;  // trunk dropout (model.d_dropout), in [0, 1]
} DcConfig;

// model.feature_dim, model.d_hidden, model.d_dropout; K from the class list.
void dc_config_from(DcConfig* dcc, const Config* cfg, int K);

typedef struct {
    DcConfig cfg;
    ConvLayer trunk, gan, cls;
} Dc;

// Activations of one forward at (B, H, W).
typedef struct {
    int B, H, W;
    StepRng rng;   // keys of the last forward: the backward redraws the mask
    int layer_id;  // dropout layer id of the last forward
    float* t;      // (B, hidden, H, W) trunk output after ReLU and dropout
    float* gan;    // (B, 1, H, W) GAN logits
    float* cls;    // (B, K, H, W) class logits
} DcActs;

// Declares dc.trunk, dc.gan, dc.cls in pt, which must stay at its address while dc is used.
void dc_build(Dc* dc, ParamTable* pt, const DcConfig* cfg);
void dc_acts_alloc(DcActs* a, const Dc* dc, int B, int H, int W);
void dc_acts_free(DcActs* a);
// Scratch floats of dc_forward / dc_backward at (B, H, W).
size_t dc_workspace_floats(const Dc* dc, int B, int H, int W);

// Forward at the acts' (B, H, W). layer_id keys the trunk dropout (contract
// §4: 100 on x_1.0, 101 on fake, 102 + j on MSC output j; 100 in step2):
// element j of sample b is dropped iff
// hd_rng_uniform(seed, rng_stream(RNG_DROPOUT, iter, sample0 + b), (layer_id << 32) + j) < p;
// no dropout when rng->training == 0.
void dc_forward(const Dc* dc,
                const float* params,  // (pt->total)
                DcActs* a,
                const float* x,       // (B, D, H, W)
                int layer_id, const StepRng* rng,
                float* ws);           // (dc_workspace_floats)

// Backward of the heads' upstream gradients (either may be NULL = zero).
// ACCUMULATES (+=) the D/C parameter gradients into grads (skipped when NULL)
// and the input gradient into dx (skipped when NULL). x must be the forward's input.
void dc_backward(const Dc* dc,
                 const float* params,  // (pt->total)
                 float* grads,         // (pt->total) or NULL; accumulated
                 const DcActs* a,
                 const float* x,       // (B, D, H, W) forward input
                 const float* dgan,    // (B, 1, H, W) or NULL
                 const float* dcls,    // (B, K, H, W) or NULL
                 float* dx,            // (B, D, H, W) or NULL; accumulated
                 float* ws);           // (dc_workspace_floats)

#endif  // ZSSEG_DISC_CLS_H
