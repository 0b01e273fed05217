// CaGNet contextual module CM (tests/reference/README.md §1): from the
// backbone feature h it builds the latent code z (mu, logvar, reparameterised
// with the contract's eps draws) and the real feature
// x = sigmoid(h + h * sigmoid(z)). With n = number of dilations (3 in CaGNet):
//   c1 = ReLU(conv1(sigmoid(h))) 3x3 D -> Cc; ck = ReLU(convk(c{k-1})) 3x3 Cc -> Cc,
//        convk with dilation dil[k-1]
//   s  = sigmoid(ReLU(selector(cat(c1..cn))))  3x3 nCc -> n
//   p  = ReLU(fuse(cat(c1 * s_1, ..., cn * s_n)))  1x1 nCc -> D
//   mu = mu(p), logvar = ReLU(logvar(p))  3x3 D -> D
//   z  = mu + exp(logvar/2) * eps (training) or mu (eval)
// Parameters cm.{conv1..conv<n>,selector,fuse,mu,logvar}.{weight,bias},
// region REGION_CM. All 3x3 convs use pad = dilation, so sizes are kept.
#ifndef ZSSEG_CONTEXT_MODULE_H
#define ZSSEG_CONTEXT_MODULE_H

#include <stddef.h>

#include "config.h"
#include "conv_layer.h"
#include "params.h"
#include "rng.h"

#define CM_MAX_CONTEXT 8

typedef struct {
    int D;                    // feature channels (model.feature_dim)
    int Cc;                   // context channels (model.cm_channels)
    int n;                    // context convs, 1..CM_MAX_CONTEXT
    int dil[CM_MAX_CONTEXT];  // their dilations (model.cm_dilations)
} CmConfig;

// model.feature_dim, model.cm_channels, model.cm_dilations.
void cm_config_from(CmConfig* cc, const Config* cfg);

typedef struct {
    CmConfig cfg;
    ConvLayer conv[CM_MAX_CONTEXT];  // conv1..conv<n>
    ConvLayer selector, fuse, mu, logvar;
} Cm;

// Activations of one forward at (B, H, W), kept for the backward (which only
// reads them). Sample b's c_k (k = 1..n) is c + (b*n + k-1) * Cc*H*W, its s_k
// is s + (b*n + k-1) * H*W.
typedef struct {
    int B, H, W;
    int scale;      // eps index block of the last forward (contract §4)
    StepRng rng;    // keys of the last forward: the backward redraws eps
    float* c;       // (B, n*Cc, H, W) cat(c1..cn), after ReLU
    float* sel;     // (B, n, H, W) ReLU(selector(c))
    float* s;       // (B, n, H, W) sigmoid(sel)
    float* p;       // (B, D, H, W) fuse output after ReLU
    float* mu;      // (B, D, H, W)
    float* logvar;  // (B, D, H, W) after ReLU
    float* z;       // (B, D, H, W) latent code (the caller detaches it for G)
    float* x;       // (B, D, H, W) the real feature
} CmActs;

// Declares the CM tensors (contract names and order) in pt, which must stay at
// its address while m is used.
void cm_build(Cm* m, ParamTable* pt, const CmConfig* cfg);
void cm_acts_alloc(CmActs* a, const Cm* m, int B, int H, int W);
void cm_acts_free(CmActs* a);
// Workspace layout, in floats from ws: `conv` floats of per-image conv
// scratch (the CPU's im2col; 0 on the GPU, where cuDNN owns its own), three
// (B, D, HW) and two (B, nCc, HW) gradient buffers and one (B, n, HW). The
// forward uses gA (sigmoid(h)) and gC (the selected features) only.
typedef struct {
    size_t gA, gB, gP, gC, gD, gs, total;
} CmScratch;
CmScratch cm_scratch_layout(const Cm* m, int B, int H, int W, size_t conv);
// Scratch floats of cm_forward / cm_backward at (B, H, W).
size_t cm_workspace_floats(const Cm* m, int B, int H, int W);

// Forward at the acts' (B, H, W). scale is the multi-scale index of this input
// (0 = 1.0, then model.msc_scales in order): eps of element i of sample b is
// hd_rng_normal(seed, rng_stream(RNG_REPARAM, iter, sample0 + b), (scale << 32) + i),
// i the flat (D, H, W) index; rng->training == 0 gives z = mu.
void cm_forward(const Cm* m,
                const float* params,  // (pt->total)
                CmActs* a,
                const float* h,       // (B, D, H, W) backbone feature
                int scale, const StepRng* rng,
                float* ws);           // (cm_workspace_floats)

// Backward of the outputs x, mu and logvar (z itself gets no gradient: G
// reads it detached, but x's dependence on z flows to mu and logvar through
// the reparameterisation). dx, dmu, dlogvar may each be NULL (= zero).
// ACCUMULATES (+=) into grads (the CM tensors; skipped when NULL) and into dh
// (skipped when NULL).
void cm_backward(const Cm* m,
                 const float* params,   // (pt->total)
                 float* grads,          // (pt->total) or NULL; accumulated
                 const CmActs* a,
                 const float* h,        // (B, D, H, W) forward input
                 const float* dx,       // (B, D, H, W) or NULL
                 const float* dmu,      // (B, D, H, W) or NULL, e.g. the KL gradient
                 const float* dlogvar,  // (B, D, H, W) or NULL, e.g. the KL gradient
                 float* dh,             // (B, D, H, W) or NULL; accumulated
                 float* ws);            // (cm_workspace_floats)

#endif  // ZSSEG_CONTEXT_MODULE_H
