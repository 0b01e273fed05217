// CaGNet contextual module; see context_module.h.
//
// c1..cn are written straight into their slices of c = cat(c1..cn), so the
// selector needs no concat; the context convs therefore run per sample (a
// slice is contiguous within a sample only). The selection c_k * s_k is
// scale_by_map over (n*B, Cc, HW): c_k of sample b is "image" n*b + k-1.
#include "context_module.h"

#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "common.h"
#include "hd_math.h"
#include "tensor_ops.h"

void cm_config_from(CmConfig* cc, const Config* cfg) {
    memset(cc, 0, sizeof *cc);
    cc->D = config_get_int(cfg, "model.feature_dim");
    cc->Cc = config_get_int(cfg, "model.cm_channels");
    const int* dil = config_get_int_list(cfg, "model.cm_dilations", &cc->n);
    if (cc->n < 1 || cc->n > CM_MAX_CONTEXT)
        ZS_FAIL("give between 1 and 8 context dilations, e.g. model.cm_dilations = [1, 2, 5]",
                "model.cm_dilations has %d entries", cc->n);
    memcpy(cc->dil, dil, (size_t)cc->n * sizeof(int));
}

CmScratch cm_scratch_layout(const Cm* m, int B, int H, int W, size_t conv) {
    size_t HW = (size_t)H * W, nD = B * m->cfg.D * HW, nC = B * m->cfg.n * m->cfg.Cc * HW;
    CmScratch s;
    s.gA = conv;
    s.gB = s.gA + nD;
    s.gP = s.gB + nD;
    s.gC = s.gP + nD;
    s.gD = s.gC + nC;
    s.gs = s.gD + nC;
    s.total = s.gs + B * m->cfg.n * HW;
    return s;
}

// The CPU layout: the largest per-image im2col scratch first.
static CmScratch cm_scratch(const Cm* m, int B, int H, int W) {
    const ConvLayer* convs[] = {&m->selector, &m->fuse, &m->mu, &m->logvar};
    size_t conv = 0;
    for (int i = 0; i < 4 + m->cfg.n; i++) {
        size_t k = conv_layer_workspace_floats(i < 4 ? convs[i] : &m->conv[i - 4], H, W);
        if (k > conv) conv = k;
    }
    return cm_scratch_layout(m, B, H, W, conv);
}

size_t cm_workspace_floats(const Cm* m, int B, int H, int W) { return cm_scratch(m, B, H, W).total; }

void cm_build(Cm* m, ParamTable* pt, const CmConfig* cfg) {
    int ok = cfg->D >= 1 && cfg->Cc >= 1 && cfg->n >= 1 && cfg->n <= CM_MAX_CONTEXT;
    for (int k = 0; ok && k < cfg->n; k++) ok = cfg->dil[k] >= 1;
    if (!ok)
        ZS_FAIL("check model.feature_dim, model.cm_channels and model.cm_dilations",
                "contextual module: D %d, Cc %d, %d context convs", cfg->D, cfg->Cc, cfg->n);
    m->cfg = *cfg;
    const int D = cfg->D, Cc = cfg->Cc, n = cfg->n;
    for (int k = 0; k < n; k++) {
        char name[32];
        snprintf(name, sizeof name, "cm.conv%d", k + 1);
        Conv2dDesc d = {k ? Cc : D, Cc, 3, 3, 1, cfg->dil[k], cfg->dil[k]};
        conv_layer_declare(&m->conv[k], pt, name, REGION_CM, &d);
    }
    // {C_in, C_out, kh, kw, stride, pad, dilation}
    Conv2dDesc dsel = {n * Cc, n, 3, 3, 1, 1, 1};
    Conv2dDesc dfuse = {n * Cc, D, 1, 1, 1, 0, 1};
    Conv2dDesc dlat = {D, D, 3, 3, 1, 1, 1};
    conv_layer_declare(&m->selector, pt, "cm.selector", REGION_CM, &dsel);
    conv_layer_declare(&m->fuse, pt, "cm.fuse", REGION_CM, &dfuse);
    conv_layer_declare(&m->mu, pt, "cm.mu", REGION_CM, &dlat);
    conv_layer_declare(&m->logvar, pt, "cm.logvar", REGION_CM, &dlat);
}

void cm_acts_alloc(CmActs* a, const Cm* m, int B, int H, int W) {
    memset(a, 0, sizeof(*a));
    a->B = B, a->H = H, a->W = W;
    size_t HW = (size_t)H * W, nD = (size_t)B * m->cfg.D * HW, nS = (size_t)B * m->cfg.n * HW;
    a->c = mallocCheck(nS * m->cfg.Cc * sizeof(float));
    a->sel = mallocCheck(nS * sizeof(float));
    a->s = mallocCheck(nS * sizeof(float));
    a->p = mallocCheck(nD * sizeof(float));
    a->mu = mallocCheck(nD * sizeof(float));
    a->logvar = mallocCheck(nD * sizeof(float));
    a->z = mallocCheck(nD * sizeof(float));
    a->x = mallocCheck(nD * sizeof(float));
}

void cm_acts_free(CmActs* a) {
    free(a->c), free(a->sel), free(a->s), free(a->p);
    free(a->mu), free(a->logvar), free(a->z), free(a->x);
    memset(a, 0, sizeof(*a));
}

static void zero(float* p, size_t n) { memset(p, 0, n * sizeof(float)); }

static uint64_t cm_eps_stream(const StepRng* rng, int b) {
    return rng_stream(RNG_REPARAM, (uint64_t)rng->iter, (uint64_t)rng->sample0 + (uint64_t)b);
}

void cm_forward(const Cm* m, const float* params, CmActs* a, const float* h, int scale,
                const StepRng* rng, float* ws) {
    if (scale < 0) ZS_FAIL("scale indices start at 0 (the 1.0 input)", "cm_forward: scale %d", scale);
    const int B = a->B, H = a->H, W = a->W, HW = H * W, Cc = m->cfg.Cc, n = m->cfg.n;
    const size_t nD = (size_t)m->cfg.D * HW, nC = (size_t)Cc * HW, nS = (size_t)B * n * HW;
    const CmScratch s = cm_scratch(m, B, H, W);
    float *sh = ws + s.gA, *selected = ws + s.gC;
    a->scale = scale;
    a->rng = *rng;

    sigmoid_forward(sh, h, B * nD);
    for (int b = 0; b < B; b++) {
        const float* in = sh + b * nD;
        for (int k = 0; k < n; k++) {
            float* ck = a->c + ((size_t)b * n + k) * nC;
            conv_layer_forward(&m->conv[k], params, ck, in, ws, 1, H, W);
            relu_forward(ck, ck, nC);
            in = ck;
        }
    }
    conv_layer_forward(&m->selector, params, a->sel, a->c, ws, B, H, W);
    relu_forward(a->sel, a->sel, nS);
    sigmoid_forward(a->s, a->sel, nS);
    scale_by_map_forward(selected, a->c, a->s, n * B, Cc, HW);
    conv_layer_forward(&m->fuse, params, a->p, selected, ws, B, H, W);
    relu_forward(a->p, a->p, B * nD);
    conv_layer_forward(&m->mu, params, a->mu, a->p, ws, B, H, W);
    conv_layer_forward(&m->logvar, params, a->logvar, a->p, ws, B, H, W);
    relu_forward(a->logvar, a->logvar, B * nD);

    const uint64_t off = (uint64_t)scale << 32;
    for (int b = 0; b < B; b++) {
        const uint64_t stream = rng->training ? cm_eps_stream(rng, b) : 0;
        const size_t o = b * nD;
#pragma omp parallel for
        for (size_t i = 0; i < nD; i++) {
            float z = a->mu[o + i];
            if (rng->training)
                z = hd_reparam(z, a->logvar[o + i], hd_rng_normal(rng->seed, stream, off + i));
            a->z[o + i] = z;
            a->x[o + i] = hd_cm_feature(h[o + i], z);
        }
    }
}

void cm_backward(const Cm* m, const float* params, float* grads, const CmActs* a, const float* h,
                 const float* dx, const float* dmu, const float* dlogvar, float* dh, float* ws) {
    if (!grads && !dh) return;
    const int B = a->B, H = a->H, W = a->W, HW = H * W, Cc = m->cfg.Cc, n = m->cfg.n;
    const size_t nD = (size_t)m->cfg.D * HW, nC = (size_t)Cc * HW, nS = (size_t)B * n * HW;
    const CmScratch s = cm_scratch(m, B, H, W);
    float *gA = ws + s.gA, *gB = ws + s.gB, *gP = ws + s.gP;
    float *gC = ws + s.gC, *gD = ws + s.gD, *gs = ws + s.gs;
    const StepRng* rng = &a->rng;
    const uint64_t off = (uint64_t)a->scale << 32;

    // x and the reparameterisation: gA = dL/dmu, gB = dL/d(logvar before its ReLU)
    for (int b = 0; b < B; b++) {
        const uint64_t stream = rng->training ? cm_eps_stream(rng, b) : 0;
        const size_t o = b * nD;
#pragma omp parallel for
        for (size_t i = 0; i < nD; i++) {
            const size_t j = o + i;
            float dhx = 0.0f, dz = 0.0f;
            if (dx) hd_cm_feature_grad(h[j], a->z[j], a->x[j], dx[j], &dhx, &dz);
            if (dh) dh[j] += dhx;
            float dlv = dlogvar ? dlogvar[j] : 0.0f;
            if (rng->training)
                dlv += dz * hd_reparam_dlv(a->logvar[j], hd_rng_normal(rng->seed, stream, off + i));
            gA[j] = dz + (dmu ? dmu[j] : 0.0f);
            // logvar holds the ReLU output: positive exactly where its input is
            gB[j] = dlv * hd_relu_grad(a->logvar[j]);
        }
    }

    // mu and logvar convs -> gP = dL/dp, then the fuse ReLU -> gA
    zero(gP, B * nD);
    conv_layer_backward(&m->mu, params, grads, gP, gA, a->p, ws, B, H, W);
    conv_layer_backward(&m->logvar, params, grads, gP, gB, a->p, ws, B, H, W);
    zero(gA, B * nD);
    relu_backward(gA, gP, a->p, B * nD);

    // fuse (its input, the selected features, is recomputed into gD) -> gC
    scale_by_map_forward(gD, a->c, a->s, n * B, Cc, HW);
    zero(gC, nS * Cc);
    conv_layer_backward(&m->fuse, params, grads, gC, gA, gD, ws, B, H, W);

    // selection -> gD = dL/dc along the scaled path, gs = dL/ds
    zero(gD, nS * Cc);
    zero(gs, nS);
    scale_by_map_backward(gD, gs, gC, a->c, a->s, n * B, Cc, HW);

    // selector: sigmoid, ReLU (gC as the temporary), conv adding into gD
    zero(gC, nS);
    sigmoid_backward(gC, gs, a->s, nS);
    zero(gs, nS);
    relu_backward(gs, gC, a->sel, nS);
    conv_layer_backward(&m->selector, params, grads, gD, gs, a->c, ws, B, H, W);

    // context convs last to first, per sample; conv1's input sigmoid(h) is
    // recomputed into gB, its input gradient goes to gP
    sigmoid_forward(gB, h, B * nD);
    for (int b = 0; b < B; b++) {
        float* t = gC;
        for (int k = n - 1; k >= 0; k--) {
            const size_t ok = ((size_t)b * n + k) * nC;
            zero(t, nC);
            relu_backward(t, gD + ok, a->c + ok, nC);
            const float* in = k ? a->c + ok - nC : gB + b * nD;
            float* din = k ? gD + ok - nC : (dh ? gP + b * nD : NULL);
            if (!k && din) zero(din, nD);
            conv_layer_backward(&m->conv[k], params, grads, din, t, in, ws, 1, H, W);
        }
        if (dh) sigmoid_backward(dh + b * nD, gP + b * nD, gB + b * nD, nD);
    }
}
