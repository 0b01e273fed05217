// DeepLabv2 ResNet + ASPP, forward and parameter backward; see backbone.h.
#include "backbone.h"

#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "batchnorm.h"
#include "common.h"
#include "hd_math.h"
#include "pool.h"
#include "tensor_ops.h"

// ---------------------------------------------------------------- config and build
void backbone_config_from(BackboneConfig* bc, const Config* cfg) {
    static const int r101[4] = {3, 4, 23, 3}, r50[4] = {3, 4, 6, 3}, tiny[4] = {1, 1, 1, 1};
    memset(bc, 0, sizeof *bc);
    const int* blocks = r101;
    bc->width = 64;
    if (config_is(cfg, "model.backbone", "resnet50")) {
        blocks = r50;
    } else if (config_is(cfg, "model.backbone", "tiny")) {
        blocks = tiny;
        bc->width = config_get_int(cfg, "model.tiny_width");
    }
    memcpy(bc->blocks, blocks, sizeof bc->blocks);
    bc->feature_dim = config_get_int(cfg, "model.feature_dim");
    const int* dil = config_get_int_list(cfg, "model.aspp_dilations", &bc->n_aspp);
    if (bc->n_aspp < 1 || bc->n_aspp > BACKBONE_MAX_ASPP)
        ZS_FAIL("give between 1 and 8 ASPP dilations, e.g. model.aspp_dilations = [6, 12, 18, 24]",
                "model.aspp_dilations has %d entries", bc->n_aspp);
    memcpy(bc->aspp_dilations, dil, (size_t)bc->n_aspp * sizeof(int));
}

// The contract's ConvBnReLU(cin, cout, k, stride, pad, dil, relu); quarter marks
// the closed-form test fill's 0.25 (bottleneck 'increase').
static void convbn_declare(ConvBn* u, ParamTable* pt, const char* prefix, int cin, int cout, int k,
                           int stride, int pad, int dil, int relu, int quarter) {
    u->d = (Conv2dDesc){.C_in = cin,
                        .C_out = cout,
                        .kh = k,
                        .kw = k,
                        .stride = stride,
                        .pad = pad,
                        .dilation = dil};
    u->relu = relu;
    char name[128];
    int wshape[4] = {cout, cin, k, k}, cshape[1] = {cout};
    snprintf(name, sizeof name, "%s.conv.weight", prefix);
    u->weight = param_declare(pt, name, REGION_BACKBONE, PARAM_CONV_WEIGHT, 4, wshape);
    pt->t[u->weight].init_scale_quarter = quarter;
    static const char* bn_names[4] = {"weight", "bias", "running_mean", "running_var"};
    static const ParamKind bn_kinds[4] = {PARAM_BN_WEIGHT, PARAM_BN_BIAS, PARAM_BN_MEAN,
                                          PARAM_BN_VAR};
    int* idx[4] = {&u->bn_weight, &u->bn_bias, &u->bn_mean, &u->bn_var};
    for (int j = 0; j < 4; j++) {
        snprintf(name, sizeof name, "%s.bn.%s", prefix, bn_names[j]);
        *idx[j] = param_declare(pt, name, REGION_FROZEN, bn_kinds[j], 1, cshape);
    }
}

void backbone_build(Backbone* bb, ParamTable* pt, const BackboneConfig* bc) {
    memset(bb, 0, sizeof *bb);
    bb->cfg = *bc;
    bb->pt = pt;
    int w = bc->width;
    convbn_declare(&bb->stem, pt, "backbone.layer1.conv1", 3, w, 7, 2, 3, 1, 1, 0);
    for (int s = 0; s < 4; s++) bb->n_blocks += bc->blocks[s];
    bb->blocks = (Bottleneck*)callocCheck((size_t)bb->n_blocks, sizeof(Bottleneck));
    int cin = w, k = 0;
    for (int s = 0; s < 4; s++) {
        int mid = w << s, out = 4 * mid;
        int stride = s == 1 ? 2 : 1, dil = s == 2 ? 2 : s == 3 ? 4 : 1;
        for (int j = 0; j < bc->blocks[s]; j++, k++) {
            Bottleneck* b = &bb->blocks[k];
            char p[96];
            b->stride = j == 0 ? stride : 1;
            b->has_shortcut = j == 0;
            snprintf(p, sizeof p, "backbone.layer%d.block%d.reduce", s + 2, j + 1);
            convbn_declare(&b->reduce, pt, p, cin, mid, 1, b->stride, 0, 1, 1, 0);
            snprintf(p, sizeof p, "backbone.layer%d.block%d.conv3x3", s + 2, j + 1);
            convbn_declare(&b->conv3x3, pt, p, mid, mid, 3, 1, dil, dil, 1, 0);
            snprintf(p, sizeof p, "backbone.layer%d.block%d.increase", s + 2, j + 1);
            convbn_declare(&b->increase, pt, p, mid, out, 1, 1, 0, 1, 0, 1);
            if (b->has_shortcut) {
                snprintf(p, sizeof p, "backbone.layer%d.block%d.shortcut", s + 2, j + 1);
                convbn_declare(&b->shortcut, pt, p, cin, out, 1, b->stride, 0, 1, 0, 0);
            }
            cin = out;
        }
    }
    for (int i = 0; i < bc->n_aspp; i++) {
        int dil = bc->aspp_dilations[i];
        Conv2dDesc d = {.C_in = cin,
                        .C_out = bc->feature_dim,
                        .kh = 3,
                        .kw = 3,
                        .stride = 1,
                        .pad = dil,
                        .dilation = dil};
        char name[32];
        snprintf(name, sizeof name, "aspp.c%d", i);
        conv_layer_declare(&bb->aspp[i], pt, name, REGION_ASPP, &d);
    }
}

void backbone_free(Backbone* bb) {
    free(bb->blocks);
    memset(bb, 0, sizeof *bb);
}

// ---------------------------------------------------------------- sizes
static int block_out_size(const Bottleneck* b, int in) {
    return conv2d_out_size(in, 1, b->stride, 0, 1);
}
static int block_mid(const Bottleneck* b) { return b->reduce.d.C_out; }
static int block_out(const Bottleneck* b) { return b->increase.d.C_out; }
static int block_in(const Bottleneck* b) { return b->reduce.d.C_in; }
static int feat_in(const Backbone* bb) { return block_out(&bb->blocks[bb->n_blocks - 1]); }

static int stem_out_size(const Backbone* bb, int in) {
    const Conv2dDesc* d = &bb->stem.d;
    return conv2d_out_size(in, d->kh, d->stride, d->pad, d->dilation);
}
static int pool_out_size(int in) { return maxpool2d_out_size(in, 3, 2, 1, 1); }

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

// Workspace parts, in floats: col (im2col of one image), two block-sized
// gradient buffers X and Y, two mid-sized ones M1 and M2, BN scale and shift.
typedef struct {
    size_t col, big, mid, bn;
} WsSizes;

static WsSizes ws_sizes(const Backbone* bb, int B, int H, int W) {
    WsSizes s = {0, 0, 0, 0};
    int Hs = stem_out_size(bb, H), Ws = stem_out_size(bb, W);
    s.col = conv2d_workspace_floats(&bb->stem.d, H, W);
    s.big = (size_t)B * bb->cfg.width * Hs * Ws;  // stem output (forward), its gradient (backward)
    int h = pool_out_size(Hs), w = pool_out_size(Ws);
    for (int k = 0; k < bb->n_blocks; k++) {
        const Bottleneck* b = &bb->blocks[k];
        int ho = block_out_size(b, h), wo = block_out_size(b, w);
        s.col = max_z(s.col, conv2d_workspace_floats(&b->reduce.d, h, w));
        s.col = max_z(s.col, conv2d_workspace_floats(&b->conv3x3.d, ho, wo));
        if (b->has_shortcut) s.col = max_z(s.col, conv2d_workspace_floats(&b->shortcut.d, h, w));
        s.big = max_z(s.big, (size_t)B * block_in(b) * h * w);
        s.big = max_z(s.big, (size_t)B * block_out(b) * ho * wo);
        s.mid = max_z(s.mid, (size_t)B * block_mid(b) * ho * wo);
        s.bn = max_z(s.bn, (size_t)block_out(b));
        h = ho;
        w = wo;
    }
    for (int i = 0; i < bb->cfg.n_aspp; i++)
        s.col = max_z(s.col, conv_layer_workspace_floats(&bb->aspp[i], h, w));
    s.big = max_z(s.big, (size_t)B * bb->cfg.feature_dim * h * w);  // one ASPP branch
    s.bn = 2 * max_z(s.bn, (size_t)bb->cfg.width);
    return s;
}

void backbone_feature_size(const Backbone* bb, int H, int W, int* Hf, int* Wf) {
    int h = pool_out_size(stem_out_size(bb, H)), w = pool_out_size(stem_out_size(bb, W));
    for (int k = 0; k < bb->n_blocks; k++) {
        h = block_out_size(&bb->blocks[k], h);
        w = block_out_size(&bb->blocks[k], w);
    }
    *Hf = h, *Wf = w;
}

size_t backbone_workspace_floats(const Backbone* bb, int B, int H, int W) {
    WsSizes s = ws_sizes(bb, B, H, W);
    return s.col + 2 * s.big + 2 * s.mid + s.bn;
}

BackboneWs backbone_ws_split(const Backbone* bb, int B, int H, int W, float* ws, int with_col) {
    WsSizes s = ws_sizes(bb, B, H, W);
    BackboneWs p;
    p.col = ws;
    p.X = p.col + (with_col ? s.col : 0);
    p.Y = p.X + s.big;
    p.M1 = p.Y + s.big;
    p.M2 = p.M1 + s.mid;
    p.scale = p.M2 + s.mid;
    p.shift = p.scale + s.bn / 2;
    return p;
}

static void* host_alloc(void* ctx, size_t bytes) {
    (void)ctx;
    return mallocCheck(bytes);
}

void backbone_acts_alloc(BackboneActs* a, const Backbone* bb, int B, int H, int W) {
    backbone_acts_alloc_with(a, bb, B, H, W, host_alloc, NULL);
}

void backbone_acts_alloc_with(BackboneActs* a, const Backbone* bb, int B, int H, int W,
                              void* (*alloc)(void* ctx, size_t bytes), void* ctx) {
    memset(a, 0, sizeof *a);
    a->B = B;
    a->H = H;
    a->W = W;
    if (B < 1 || H < 1 || W < 1)
        ZS_FAIL("check data.batch_size, the crop size and model.msc_scales",
                "backbone input of %d images of %dx%d", B, H, W);
    a->Hs = stem_out_size(bb, H);
    a->Ws = stem_out_size(bb, W);
    a->Hp = pool_out_size(a->Hs);
    a->Wp = pool_out_size(a->Ws);
    int w = bb->cfg.width;
    size_t plane_p = (size_t)B * w * a->Hp * a->Wp;
    size_t n = (size_t)B * 3 * H * W + plane_p;
    a->blocks = (BottleneckActs*)callocCheck((size_t)bb->n_blocks, sizeof(BottleneckActs));
    int h = a->Hp, wd = a->Wp;
    for (int k = 0; k < bb->n_blocks; k++) {
        const Bottleneck* b = &bb->blocks[k];
        BottleneckActs* ba = &a->blocks[k];
        ba->H = h;
        ba->W = wd;
        ba->Ho = h = block_out_size(b, h);
        ba->Wo = wd = block_out_size(b, wd);
        n += (size_t)B * (2 * block_mid(b) + block_out(b)) * h * wd;
    }
    a->Hf = h;
    a->Wf = wd;
    n += (size_t)B * bb->cfg.feature_dim * h * wd;
    a->mem = (float*)alloc(ctx, n * sizeof(float));
    a->argmax = (int*)alloc(ctx, plane_p * sizeof(int));
    a->bytes =
        n * sizeof(float) + plane_p * sizeof(int) + (size_t)bb->n_blocks * sizeof(BottleneckActs);
    float* p = a->mem;
    a->img = p;
    p += (size_t)B * 3 * H * W;
    a->pool = p;
    p += plane_p;
    for (int k = 0; k < bb->n_blocks; k++) {
        const Bottleneck* b = &bb->blocks[k];
        BottleneckActs* ba = &a->blocks[k];
        size_t hw = (size_t)ba->Ho * ba->Wo;
        ba->mid1 = p;
        ba->mid2 = ba->mid1 + (size_t)B * block_mid(b) * hw;
        ba->out = ba->mid2 + (size_t)B * block_mid(b) * hw;
        p = ba->out + (size_t)B * block_out(b) * hw;
    }
    a->h = p;
}

void backbone_acts_free(BackboneActs* a) {
    free(a->mem);
    free(a->argmax);
    free(a->blocks);
    memset(a, 0, sizeof *a);
}

// ---------------------------------------------------------------- forward
static const float* tensor(const Backbone* bb, const float* params, int idx) {
    return params + bb->pt->t[idx].offset;
}

static void convbn_fold(const Backbone* bb, const float* params, const ConvBn* u,
                        const BackboneWs* w) {
    frozen_bn_fold(w->scale, w->shift, tensor(bb, params, u->bn_mean),
                   tensor(bb, params, u->bn_var), tensor(bb, params, u->bn_weight),
                   tensor(bb, params, u->bn_bias), BACKBONE_BN_EPS, u->d.C_out);
}

// out = [ReLU](BN(conv(inp))), BN and ReLU in place.
static void convbn_forward(const Backbone* bb, const float* params, const ConvBn* u, float* out,
                           const float* inp, int B, int H, int W, const BackboneWs* w) {
    conv2d_forward(out, inp, tensor(bb, params, u->weight), NULL, w->col, &u->d, B, H, W);
    int HWo = conv2d_out_size(H, u->d.kh, u->d.stride, u->d.pad, u->d.dilation) *
              conv2d_out_size(W, u->d.kw, u->d.stride, u->d.pad, u->d.dilation);
    convbn_fold(bb, params, u, w);
    frozen_bn_forward(out, out, w->scale, w->shift, B, u->d.C_out, HWo);
    if (u->relu) relu_forward(out, out, (size_t)B * u->d.C_out * HWo);
}

void backbone_forward(const Backbone* bb, const float* params, BackboneActs* a, const float* img,
                      float* ws) {
    int B = a->B;
    BackboneWs w = backbone_ws_split(bb, B, a->H, a->W, ws, 1);
    memcpy(a->img, img, (size_t)B * 3 * a->H * a->W * sizeof(float));
    convbn_forward(bb, params, &bb->stem, w.X, a->img, B, a->H, a->W, &w);
    maxpool2d_forward(a->pool, a->argmax, w.X, B, bb->cfg.width, a->Hs, a->Ws, 3, 2, 1, 1);
    const float* x = a->pool;
    for (int k = 0; k < bb->n_blocks; k++) {
        const Bottleneck* b = &bb->blocks[k];
        BottleneckActs* ba = &a->blocks[k];
        size_t n = (size_t)B * block_out(b) * ba->Ho * ba->Wo;
        convbn_forward(bb, params, &b->reduce, ba->mid1, x, B, ba->H, ba->W, &w);
        convbn_forward(bb, params, &b->conv3x3, ba->mid2, ba->mid1, B, ba->Ho, ba->Wo, &w);
        convbn_forward(bb, params, &b->increase, ba->out, ba->mid2, B, ba->Ho, ba->Wo, &w);
        if (b->has_shortcut) {
            convbn_forward(bb, params, &b->shortcut, w.X, x, B, ba->H, ba->W, &w);
            add_forward(ba->out, ba->out, w.X, n);
        } else {
            add_forward(ba->out, ba->out, x, n);
        }
        relu_forward(ba->out, ba->out, n);
        x = ba->out;
    }
    size_t nh = (size_t)B * bb->cfg.feature_dim * a->Hf * a->Wf;
    for (int i = 0; i < bb->cfg.n_aspp; i++) {
        conv_layer_forward(&bb->aspp[i], params, i == 0 ? a->h : w.X, x, w.col, B, a->Hf, a->Wf);
        if (i > 0) add_forward(a->h, a->h, w.X, nh);
    }
}

// ---------------------------------------------------------------- backward
// g = dy * scale[c] * relu'(y); scale NULL means 1, y NULL means no ReLU. g may == dy.
// relu'(y) from the ReLU output is the same as from its input (y > 0 iff x > 0).
static void bn_relu_grad(float* g, const float* dy, const float* y, const float* scale, int B,
                         int C, size_t HW) {
#pragma omp parallel for
    for (int bc = 0; bc < B * C; bc++) {
        float s = scale ? scale[bc % C] : 1.0f;
        size_t o = (size_t)bc * HW;
        for (size_t i = 0; i < HW; i++)
            g[o + i] = dy[o + i] * s * (y ? hd_relu_grad(y[o + i]) : 1.0f);
    }
}

// g = gradient at u's conv output, from dy at u's output y (after BN and ReLU).
static void convbn_grad_out(const Backbone* bb, const float* params, const ConvBn* u, float* g,
                            const float* dy, const float* y, int B, size_t HWo,
                            const BackboneWs* w) {
    convbn_fold(bb, params, u, w);
    bn_relu_grad(g, dy, u->relu ? y : NULL, w->scale, B, u->d.C_out, HWo);
}

// Conv weight gradient into grads, input gradient accumulated into dx (or NULL).
static void convbn_conv_backward(const Backbone* bb, const float* params, float* grads,
                                 const ConvBn* u, float* dx, const float* g, const float* x, int B,
                                 int H, int W, const BackboneWs* w) {
    conv2d_backward(dx, grads + bb->pt->t[u->weight].offset, NULL, g, x,
                    tensor(bb, params, u->weight), w->col, &u->d, B, H, W);
}

// On entry w->X holds dL/d(block output); on exit dL/d(block input).
static void bottleneck_backward(const Backbone* bb, const float* params, float* grads,
                                const Bottleneck* b, const BottleneckActs* ba, const float* x,
                                int B, const BackboneWs* w) {
    size_t hwo = (size_t)ba->Ho * ba->Wo, hw = (size_t)ba->H * ba->W;
    bn_relu_grad(w->X, w->X, ba->out, NULL, B, block_out(b), hwo);  // residual ReLU
    convbn_grad_out(bb, params, &b->increase, w->Y, w->X, NULL, B, hwo, w);
    memset(w->M2, 0, (size_t)B * block_mid(b) * hwo * sizeof(float));
    convbn_conv_backward(bb, params, grads, &b->increase, w->M2, w->Y, ba->mid2, B, ba->Ho, ba->Wo,
                         w);
    if (b->has_shortcut) {
        convbn_grad_out(bb, params, &b->shortcut, w->Y, w->X, NULL, B, hwo, w);
        memset(w->X, 0, (size_t)B * block_in(b) * hw * sizeof(float));
        convbn_conv_backward(bb, params, grads, &b->shortcut, w->X, w->Y, x, B, ba->H, ba->W, w);
    }  // identity: X already holds the shortcut's share of dL/d(input)
    convbn_grad_out(bb, params, &b->conv3x3, w->M2, w->M2, ba->mid2, B, hwo, w);
    memset(w->M1, 0, (size_t)B * block_mid(b) * hwo * sizeof(float));
    convbn_conv_backward(bb, params, grads, &b->conv3x3, w->M1, w->M2, ba->mid1, B, ba->Ho, ba->Wo,
                         w);
    convbn_grad_out(bb, params, &b->reduce, w->M1, w->M1, ba->mid1, B, hwo, w);
    convbn_conv_backward(bb, params, grads, &b->reduce, w->X, w->M1, x, B, ba->H, ba->W, w);
}

void backbone_backward(const Backbone* bb, const float* params, float* grads, const BackboneActs* a,
                       const float* dh, float* ws) {
    if (!grads) return;
    int B = a->B, n = bb->n_blocks;
    BackboneWs w = backbone_ws_split(bb, B, a->H, a->W, ws, 1);
    const float* x5 = a->blocks[n - 1].out;
    memset(w.X, 0, (size_t)B * feat_in(bb) * a->Hf * a->Wf * sizeof(float));
    for (int i = 0; i < bb->cfg.n_aspp; i++)
        conv_layer_backward(&bb->aspp[i], params, grads, w.X, dh, x5, w.col, B, a->Hf, a->Wf);
    for (int k = n - 1; k >= 0; k--)
        bottleneck_backward(bb, params, grads, &bb->blocks[k], &a->blocks[k],
                            k ? a->blocks[k - 1].out : a->pool, B, &w);
    // Stem: the pooled value is the ReLU output at the argmax, so it gives the ReLU mask there.
    int C = bb->cfg.width;
    convbn_grad_out(bb, params, &bb->stem, w.X, w.X, a->pool, B, (size_t)a->Hp * a->Wp, &w);
    memset(w.Y, 0, (size_t)B * C * a->Hs * a->Ws * sizeof(float));
    maxpool2d_backward(w.Y, w.X, a->argmax, B, C, a->Hs, a->Ws, a->Hp, a->Wp);
    convbn_conv_backward(bb, params, grads, &bb->stem, NULL, w.Y, a->img, B, a->H, a->W, &w);
}
