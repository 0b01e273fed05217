// CaGNet generator G (tests/reference/README.md §1): a pixel-wise MLP as 1x1
// convs with bias on cat(e, l), e the class embedding map and l the latent
// code; hidden layers LeakyReLU then dropout, the last layer -> D + sigmoid.
// Parameters gen.fc{1..n+1}.{weight,bias}, region REGION_GEN. The inputs get
// no gradient (embeddings are fixed, the latent is detached or random).
#ifndef ZSSEG_GENERATOR_H
#define ZSSEG_GENERATOR_H

#include <stddef.h>

#include "config.h"
#include "conv_layer.h"
#include "params.h"
#include "rng.h"

#define GEN_MAX_HIDDEN 16

typedef struct {
    int E;                           // embedding channels (model.embedding_dim)
    int D;                           // latent and output channels (model.feature_dim)
    int n_hidden;                    // 0..GEN_MAX_HIDDEN
    int widths[GEN_MAX_HIDDEN];      // model.gen_widths
    float dropouts[GEN_MAX_HIDDEN];  // model.gen_dropouts, in [0, 1]
    float slope;                     // model.leaky_slope
} GenConfig;

// model.embedding_dim, model.feature_dim, model.gen_widths, model.gen_dropouts,
// model.leaky_slope.
void gen_config_from(GenConfig* gc, const Config* cfg);

typedef struct {
    GenConfig cfg;
    ConvLayer fc[GEN_MAX_HIDDEN + 1];
} Gen;

// Activations of one forward at (B, H, W), only read by the backward.
typedef struct {
    int B, H, W;
    StepRng rng;                 // keys of the last forward: the backward redraws the masks
    float* in;                   // (B, E + D, H, W) cat(e, l)
    float* hid[GEN_MAX_HIDDEN];  // (B, widths[i], H, W) after LeakyReLU and dropout
    float* fake;                 // (B, D, H, W) the generated feature
} GenActs;

// Declares gen.fc1..fc{n+1} in pt, which must stay at its address while g is used.
void gen_build(Gen* g, ParamTable* pt, const GenConfig* cfg);
void gen_acts_alloc(GenActs* a, const Gen* g, int B, int H, int W);
void gen_acts_free(GenActs* a);
// Scratch floats of gen_forward / gen_backward at (B, H, W).
size_t gen_workspace_floats(const Gen* g, int B, int H, int W);

// Forward at the acts' (B, H, W). Dropout of hidden layer i (1-based) drops
// element j of sample b iff
// hd_rng_uniform(seed, rng_stream(RNG_DROPOUT, iter, sample0 + b), (i << 32) + j) < p_i,
// j the flat (C, H, W) index; no dropout when rng->training == 0.
void gen_forward(const Gen* g,
                 const float* params,  // (pt->total)
                 GenActs* a,
                 const float* e,       // (B, E, H, W) class embedding map
                 const float* l,       // (B, D, H, W) latent code
                 const StepRng* rng,
                 float* ws);           // (gen_workspace_floats)

// ACCUMULATES (+=) the G parameter gradients of dfake into grads.
void gen_backward(const Gen* g,
                  const float* params,  // (pt->total)
                  float* grads,         // (pt->total); accumulated
                  const GenActs* a,
                  const float* dfake,   // (B, D, H, W)
                  float* ws);           // (gen_workspace_floats)

#endif  // ZSSEG_GENERATOR_H
