// Segmentation backbone E: DeepLabv2 ResNet (output stride 8, frozen BN) plus
// the ASPP head, h = sum of the ASPP branches (tests/reference/README.md §1).
//
// Memory: the forward keeps only what the backward reads, each tensor once: the
// pooled stem output with its argmax, and per bottleneck the reduce and conv3x3
// outputs and the block output, all after BN and ReLU (applied in place; the
// ReLU backward reads the output). The stem conv output is not kept: its ReLU
// mask at the pooled positions equals pooled value > 0. Every temporary (im2col,
// gradient ping-pong buffers, folded BN) lives in one caller-owned workspace.
#ifndef ZSSEG_BACKBONE_H
#define ZSSEG_BACKBONE_H

#include <stddef.h>

#include "config.h"
#include "conv.h"
#include "conv_layer.h"
#include "params.h"

#define BACKBONE_MAX_ASPP 8
#define BACKBONE_BN_EPS 1e-5f

typedef struct {
    int width;        // w: stem channels; stage L has mid = w*2^(L-2), out = 4*mid
    int blocks[4];    // bottlenecks in layer2..layer5
    int feature_dim;  // D, the ASPP output channels
    int n_aspp;
    int aspp_dilations[BACKBONE_MAX_ASPP];
} BackboneConfig;

// model.backbone (resnet101 | resnet50 | tiny), model.tiny_width,
// model.feature_dim, model.aspp_dilations. Fails on more than
// BACKBONE_MAX_ASPP dilations.
void backbone_config_from(BackboneConfig* bc, const Config* cfg);

// conv (no bias) -> frozen BN -> optional ReLU; fields are parameter indices.
typedef struct {
    Conv2dDesc d;
    int weight;                               // (C_out, C_in, kh, kw), REGION_BACKBONE
    int bn_weight, bn_bias, bn_mean, bn_var;  // (C_out) each, REGION_FROZEN
    int relu;
} ConvBn;

typedef struct {
    ConvBn reduce, conv3x3, increase, shortcut;  // shortcut used iff has_shortcut
    int has_shortcut;
    int stride;  // of reduce and shortcut (the stage stride in block1, else 1)
} Bottleneck;

typedef struct {
    BackboneConfig cfg;
    const ParamTable* pt;  // offsets of the indices below; must outlive the Backbone
    ConvBn stem;           // layer1.conv1
    Bottleneck* blocks;    // (n_blocks) layer2.block1 ... layer5.blockN in network order
    int n_blocks;
    ConvLayer aspp[BACKBONE_MAX_ASPP];  // aspp.c{i}: (D, 32w, 3, 3) + (D), REGION_ASPP
} Backbone;

// Declares every tensor under the contract's names (backbone.layer1.conv1.conv.weight,
// backbone.layerL.blockK.{reduce,conv3x3,increase,shortcut}.{conv.weight,bn.*},
// aspp.c{i}.{weight,bias}). The table is finalised later by the caller.
void backbone_build(Backbone* bb, ParamTable* pt, const BackboneConfig* bc);
void backbone_free(Backbone* bb);

// Stored activations of one bottleneck, all after BN and ReLU.
typedef struct {
    int H, W;     // block input size
    int Ho, Wo;   // block output size
    float* mid1;  // (B, mid, Ho, Wo) reduce output
    float* mid2;  // (B, mid, Ho, Wo) conv3x3 output
    float* out;   // (B, out, Ho, Wo) ReLU(increase + shortcut)
} BottleneckActs;

// Activations for one input size (each scale of multi-scale training has its own).
typedef struct {
    int B, H, W;             // input
    int Hs, Ws;              // stem conv output
    int Hp, Wp;              // after the max pool
    int Hf, Wf;              // feature map h
    float* img;              // (B, 3, H, W) copy of the input: conv1's weight gradient reads it
    float* pool;             // (B, w, Hp, Wp) pooled stem output = layer2.block1 input
    int* argmax;             // (B, w, Hp, Wp) max pool argmax
    BottleneckActs* blocks;  // (n_blocks)
    float* h;                // (B, D, Hf, Wf) the backbone output
    float* mem;              // one allocation holding every float tensor above
    size_t bytes;            // bytes held (floats, argmax, block records)
} BackboneActs;

// The feature map size h of an H x W input (what backbone_acts_alloc sets as Hf, Wf).
void backbone_feature_size(const Backbone* bb, int H, int W, int* Hf, int* Wf);
void backbone_acts_alloc(BackboneActs* a, const Backbone* bb, int B, int H, int W);
// The same layout with the float block and argmax from alloc (the CUDA
// mirror's device arena); a->blocks stays host memory (the host reads the
// block sizes) and is the caller's to free.
void backbone_acts_alloc_with(BackboneActs* a, const Backbone* bb, int B, int H, int W,
                              void* (*alloc)(void* ctx, size_t bytes), void* ctx);
void backbone_acts_free(BackboneActs* a);

// Floats of the workspace shared by forward and backward at this input size
// (the largest im2col, two block-sized and two mid-sized gradient buffers,
// folded BN scale/shift). One workspace can serve every scale: take the max.
size_t backbone_workspace_floats(const Backbone* bb, int B, int H, int W);

// The workspace's parts (backbone_workspace_floats): the im2col scratch
// (with_col 0: none, as on the GPU where cuDNN owns its own), two
// block-sized and two mid-sized gradient buffers, the folded BN scale and
// shift.
typedef struct {
    float *col, *X, *Y, *M1, *M2, *scale, *shift;
} BackboneWs;
BackboneWs backbone_ws_split(const Backbone* bb, int B, int H, int W, float* ws, int with_col);

// a->h = E(img). Overwrites every tensor of a.
void backbone_forward(const Backbone* bb,
                      const float* params,  // (pt->total)
                      BackboneActs* a,      // allocated for img's size
                      const float* img,     // (B, 3, H, W)
                      float* ws);           // (backbone_workspace_floats(bb, B, H, W))

// Parameter gradients of sum(h * dh) for the activations of the last
// backbone_forward on a. ACCUMULATES (+=) into grads at the backbone and ASPP
// tensors (the frozen BN tensors get nothing). No input gradient is produced
// (the input is an image), so grads == NULL returns at once. Overwrites the
// workspace only; a stays valid for another backward.
void backbone_backward(const Backbone* bb,
                       const float* params,    // (pt->total)
                       float* grads,           // (pt->total) accumulated, or NULL
                       const BackboneActs* a,  // from backbone_forward
                       const float* dh,        // (B, D, Hf, Wf)
                       float* ws);             // (backbone_workspace_floats(bb, B, H, W))

#endif  // ZSSEG_BACKBONE_H
