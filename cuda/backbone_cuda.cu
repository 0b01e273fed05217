// DeepLabv2 ResNet + ASPP on the device: backbone.c op for op (see
// backbone.h), same activations, same order, convs through cuDNN. cuDNN owns
// its conv workspace, so ws holds no im2col: the gradient ping-pong buffers
// and the folded BN start at ws (fits in backbone_workspace_floats).
#include "cuda_common.h"
#include "hd_math.h"
#include "map.cuh"

// ---------------------------------------------------------------- sizes
static int conv_out(const Conv2dDesc* d, int in) {
    return conv2d_out_size(in, d->kh, d->stride, d->pad, d->dilation);
}
static int block_mid(const Bottleneck* b) { return b->reduce.d.C_out; }
static int block_out(const Bottleneck* b) { return b->increase.d.C_out; }
static int block_in(const Bottleneck* b) { return b->reduce.d.C_in; }
static size_t min_z(size_t a, size_t b) { return a < b ? a : b; }

static void* arena_alloc(void* arena, size_t bytes) {
    return device_arena_alloc((DeviceArena*)arena, bytes);
}

// backbone_acts_alloc's layout with the float block and argmax in the arena;
// a->blocks (read by the host) is host memory: the caller frees it.
extern "C" void backbone_acts_alloc_cuda(BackboneActs* a, const Backbone* bb, int B, int H, int W,
                                         DeviceArena* arena) {
    backbone_acts_alloc_with(a, bb, B, H, W, arena_alloc, arena);
}

// ---------------------------------------------------------------- forward
static const float* tensor(const Backbone* bb, const float* params, int idx) {
    return params + bb->pt->t[idx].offset;
}

static void convbn_fold(CudaContext* ctx, const Backbone* bb, const float* params, const ConvBn* u,
                        const BackboneWs* w) {
    frozen_bn_fold_cuda(ctx, w->scale, w->shift, tensor(bb, params, u->bn_mean),
                        tensor(bb, params, u->bn_var), tensor(bb, params, u->bn_weight),
                        tensor(bb, params, u->bn_bias), BACKBONE_BN_EPS, u->d.C_out);
}

// out = [ReLU](BN(conv(inp))), BN and ReLU in place.
static void convbn_forward(CudaContext* ctx, const Backbone* bb, const float* params,
                           const ConvBn* u, float* out, const float* inp, int B, int H, int W,
                           const BackboneWs* w) {
    conv2d_forward_cuda(ctx, out, inp, tensor(bb, params, u->weight), NULL, &u->d, B, H, W);
    int HWo = conv_out(&u->d, H) * conv_out(&u->d, W);
    convbn_fold(ctx, bb, params, u, w);
    frozen_bn_forward_cuda(ctx, out, out, w->scale, w->shift, B, u->d.C_out, HWo);
    if (u->relu) relu_forward_cuda(ctx, out, out, (size_t)B * u->d.C_out * HWo);
}

extern "C" void backbone_forward_cuda(CudaContext* ctx, const Backbone* bb, const float* params,
                                      BackboneActs* a, const float* img, float* ws) {
    int B = a->B;
    BackboneWs w = backbone_ws_split(bb, a->B, a->H, a->W, ws, 0);
    cudaCheck(cudaMemcpyAsync(a->img, img, (size_t)B * 3 * a->H * a->W * sizeof(float),
                              cudaMemcpyDeviceToDevice, ctx->stream));
    convbn_forward(ctx, bb, params, &bb->stem, w.X, a->img, B, a->H, a->W, &w);
    maxpool2d_forward_cuda(ctx, a->pool, a->argmax, w.X, B, bb->cfg.width, a->Hs, a->Ws, 3, 2, 1,
                           1);
    const float* x = a->pool;
    for (int k = 0; k < bb->n_blocks; k++) {
        const Bottleneck* b = &bb->blocks[k];
        BottleneckActs* ba = &a->blocks[k];
        size_t n = (size_t)B * block_out(b) * ba->Ho * ba->Wo;
        convbn_forward(ctx, bb, params, &b->reduce, ba->mid1, x, B, ba->H, ba->W, &w);
        convbn_forward(ctx, bb, params, &b->conv3x3, ba->mid2, ba->mid1, B, ba->Ho, ba->Wo, &w);
        convbn_forward(ctx, bb, params, &b->increase, ba->out, ba->mid2, B, ba->Ho, ba->Wo, &w);
        if (b->has_shortcut) {
            convbn_forward(ctx, bb, params, &b->shortcut, w.X, x, B, ba->H, ba->W, &w);
            add_forward_cuda(ctx, ba->out, ba->out, w.X, n);
        } else {
            add_forward_cuda(ctx, ba->out, ba->out, x, n);
        }
        relu_forward_cuda(ctx, ba->out, ba->out, n);
        x = ba->out;
    }
    size_t nh = (size_t)B * bb->cfg.feature_dim * a->Hf * a->Wf;
    for (int i = 0; i < bb->cfg.n_aspp; i++) {
        conv_layer_forward_cuda(ctx, &bb->aspp[i], params, i == 0 ? a->h : w.X, x, B, a->Hf, a->Wf);
        if (i > 0) add_forward_cuda(ctx, a->h, a->h, w.X, nh);
    }
}

// ---------------------------------------------------------------- backward
// g = dy * scale[c] * relu'(y), backbone.c's bn_relu_grad: scale NULL means 1,
// y NULL means no ReLU; g may == dy. Same product order as the CPU (exact).
struct BnReluGrad {
    float* g;
    const float* dy;
    const float* y;
    const float* scale;
    int C;
    size_t HW;
    __device__ void operator()(size_t i) const {
        float s = scale ? scale[(i / HW) % C] : 1.0f;
        g[i] = dy[i] * s * (y ? hd_relu_grad(y[i]) : 1.0f);
    }
};

static void bn_relu_grad(CudaContext* ctx, float* g, const float* dy, const float* y,
                         const float* scale, int B, int C, size_t HW) {
    launch_map(ctx, BnReluGrad{g, dy, y, scale, C, HW}, (size_t)B * C * HW);
}

// g = gradient at u's conv output, from dy at u's output y (after BN and ReLU).
static void convbn_grad_out(CudaContext* ctx, const Backbone* bb, const float* params,
                            const ConvBn* u, float* g, const float* dy, const float* y, int B,
                            size_t HWo, const BackboneWs* w) {
    convbn_fold(ctx, bb, params, u, w);
    bn_relu_grad(ctx, g, dy, u->relu ? y : NULL, w->scale, B, u->d.C_out, HWo);
}

// Conv weight gradient into grads, input gradient accumulated into dx (or NULL).
static void convbn_conv_backward(CudaContext* ctx, const Backbone* bb, const float* params,
                                 float* grads, const ConvBn* u, float* dx, const float* g,
                                 const float* x, int B, int H, int W) {
    conv2d_backward_cuda(ctx, dx, grads + bb->pt->t[u->weight].offset, NULL, g, x,
                         tensor(bb, params, u->weight), &u->d, B, H, W);
}

// On entry w->X holds dL/d(block output); on exit dL/d(block input).
static void bottleneck_backward(CudaContext* ctx, const Backbone* bb, const float* params,
                                float* grads, const Bottleneck* b, const BottleneckActs* ba,
                                const float* x, int B, const BackboneWs* w) {
    size_t hwo = (size_t)ba->Ho * ba->Wo, hw = (size_t)ba->H * ba->W;
    bn_relu_grad(ctx, w->X, w->X, ba->out, NULL, B, block_out(b), hwo);  // residual ReLU
    convbn_grad_out(ctx, bb, params, &b->increase, w->Y, w->X, NULL, B, hwo, w);
    fill_cuda(ctx, w->M2, 0.0f, (size_t)B * block_mid(b) * hwo);
    convbn_conv_backward(ctx, bb, params, grads, &b->increase, w->M2, w->Y, ba->mid2, B, ba->Ho,
                         ba->Wo);
    if (b->has_shortcut) {
        convbn_grad_out(ctx, bb, params, &b->shortcut, w->Y, w->X, NULL, B, hwo, w);
        fill_cuda(ctx, w->X, 0.0f, (size_t)B * block_in(b) * hw);
        convbn_conv_backward(ctx, bb, params, grads, &b->shortcut, w->X, w->Y, x, B, ba->H, ba->W);
    }  // identity: X already holds the shortcut's share of dL/d(input)
    convbn_grad_out(ctx, bb, params, &b->conv3x3, w->M2, w->M2, ba->mid2, B, hwo, w);
    fill_cuda(ctx, w->M1, 0.0f, (size_t)B * block_mid(b) * hwo);
    convbn_conv_backward(ctx, bb, params, grads, &b->conv3x3, w->M1, w->M2, ba->mid1, B, ba->Ho,
                         ba->Wo);
    convbn_grad_out(ctx, bb, params, &b->reduce, w->M1, w->M1, ba->mid1, B, hwo, w);
    convbn_conv_backward(ctx, bb, params, grads, &b->reduce, w->X, w->M1, x, B, ba->H, ba->W);
}

// First gradient offset of block b (its weights are declared in network
// order; the frozen BN tensors live elsewhere).
static size_t block_first_offset(const Backbone* bb, const Bottleneck* b) {
    const ParamTensor* t = bb->pt->t;
    size_t lo = t[b->reduce.weight].offset;
    const ConvBn* cs[3] = {&b->conv3x3, &b->increase, &b->shortcut};
    for (int i = 0; i < (b->has_shortcut ? 3 : 2); i++) lo = min_z(lo, t[cs[i]->weight].offset);
    return lo;
}

static void notify(const GradReady* ready, size_t done_from) {
    if (ready) ready->fn(ready->arg, done_from);
}

extern "C" void backbone_backward_cuda(CudaContext* ctx, const Backbone* bb, const float* params,
                                       float* grads, const BackboneActs* a, const float* dh,
                                       float* ws, const GradReady* ready) {
    if (!grads) return;
    int B = a->B, n = bb->n_blocks;
    BackboneWs w = backbone_ws_split(bb, a->B, a->H, a->W, ws, 0);
    const float* x5 = a->blocks[n - 1].out;
    fill_cuda(ctx, w.X, 0.0f, (size_t)B * block_out(&bb->blocks[n - 1]) * a->Hf * a->Wf);
    for (int i = 0; i < bb->cfg.n_aspp; i++)
        conv_layer_backward_cuda(ctx, &bb->aspp[i], params, grads, w.X, dh, x5, B, a->Hf, a->Wf);
    notify(ready, bb->pt->region_lo[REGION_ASPP]);
    for (int k = n - 1; k >= 0; k--) {
        bottleneck_backward(ctx, bb, params, grads, &bb->blocks[k], &a->blocks[k],
                            k ? a->blocks[k - 1].out : a->pool, B, &w);
        notify(ready, block_first_offset(bb, &bb->blocks[k]));
    }
    // Stem: the pooled value is the ReLU output at the argmax, so it gives the ReLU mask there.
    int C = bb->cfg.width;
    convbn_grad_out(ctx, bb, params, &bb->stem, w.X, w.X, a->pool, B, (size_t)a->Hp * a->Wp, &w);
    fill_cuda(ctx, w.Y, 0.0f, (size_t)B * C * a->Hs * a->Ws);
    maxpool2d_backward_cuda(ctx, w.Y, w.X, a->argmax, B, C, a->Hs, a->Ws, a->Hp, a->Wp, 3, 2, 1);
    convbn_conv_backward(ctx, bb, params, grads, &bb->stem, NULL, w.Y, a->img, B, a->H, a->W);
}
