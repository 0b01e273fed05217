// A convolution with bias whose two tensors live in the model's ParamTable
// ("<prefix>.weight", "<prefix>.bias"): the building block of the CaGNet heads
// (contextual module, generator, discriminator/classifier). The layer keeps
// tensor indices, not pointers, so it is declared before the table is
// finalised and works on any buffer with the table's layout (params, grads).
#ifndef ZSSEG_CONV_LAYER_H
#define ZSSEG_CONV_LAYER_H

#include <stddef.h>

#include "conv.h"
#include "params.h"

typedef struct {
    const ParamTable* pt;  // must stay at this address while the layer is used
    int w, b;              // tensor indices: weight (C_out, C_in, kh, kw), bias (C_out)
    Conv2dDesc d;
} ConvLayer;

// Declares "<prefix>.weight" (PARAM_CONV_WEIGHT) then "<prefix>.bias" (PARAM_BIAS).
void conv_layer_declare(ConvLayer* l, ParamTable* pt, const char* prefix, ParamRegion region,
                        const Conv2dDesc* d);

// conv2d_workspace_floats of the layer's conv (0 for 1x1).
size_t conv_layer_workspace_floats(const ConvLayer* l, int H, int W);

// out = conv(inp) + bias with the layer's tensors in params. Overwrites out.
void conv_layer_forward(const ConvLayer* l,
                        const float* params,  // (pt->total)
                        float* out,           // (B, C_out, Ho, Wo)
                        const float* inp,     // (B, C_in, H, W)
                        float* ws,            // (conv_layer_workspace_floats(l, H, W))
                        int B, int H, int W);

// ACCUMULATES (+=) the weight and bias gradients into grads (skipped when
// grads is NULL) and the input gradient into dinp (skipped when NULL).
void conv_layer_backward(const ConvLayer* l,
                         const float* params,  // (pt->total)
                         float* grads,         // (pt->total) or NULL; accumulated
                         float* dinp,          // (B, C_in, H, W) or NULL; accumulated
                         const float* dout,    // (B, C_out, Ho, Wo)
                         const float* inp,     // (B, C_in, H, W) forward input
                         float* ws,            // (conv_layer_workspace_floats(l, H, W))
                         int B, int H, int W);

#endif  // ZSSEG_CONV_LAYER_H
