// Convolution with bias from the parameter table; see conv_layer.h.
#include "conv_layer.h"

#include <stdio.h>

void conv_layer_declare(ConvLayer* l, ParamTable* pt, const char* prefix, ParamRegion region,
                        const Conv2dDesc* d) {
    char name[128];
    int wshape[4] = {d->C_out, d->C_in, d->kh, d->kw};
    l->pt = pt;
    l->d = *d;
    snprintf(name, sizeof name, "%s.weight", prefix);
    l->w = param_declare(pt, name, region, PARAM_CONV_WEIGHT, 4, wshape);
    snprintf(name, sizeof name, "%s.bias", prefix);
    l->b = param_declare(pt, name, region, PARAM_BIAS, 1, &d->C_out);
}

size_t conv_layer_workspace_floats(const ConvLayer* l, int H, int W) {
    return conv2d_workspace_floats(&l->d, H, W);
}

void conv_layer_forward(const ConvLayer* l, const float* params, float* out, const float* inp,
                        float* ws, int B, int H, int W) {
    conv2d_forward(out, inp, params + l->pt->t[l->w].offset, params + l->pt->t[l->b].offset, ws,
                   &l->d, B, H, W);
}

void conv_layer_backward(const ConvLayer* l, const float* params, float* grads, float* dinp,
                         const float* dout, const float* inp, float* ws, int B, int H, int W) {
    if (!grads && !dinp) return;
    float* dw = grads ? grads + l->pt->t[l->w].offset : NULL;
    float* db = grads ? grads + l->pt->t[l->b].offset : NULL;
    conv2d_backward(dinp, dw, db, dout, inp, params + l->pt->t[l->w].offset, ws, &l->d, B, H, W);
}
