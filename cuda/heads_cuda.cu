// The CaGNet heads on the device: conv_layer.c, context_module.c,
// generator.c and disc_cls.c op for op (same activations, same order, same
// RNG keys), convs through cuDNN. cuDNN owns its conv workspace, so each
// module's ws starts with its gradient buffers (backbone_cuda.cu likewise);
// the layouts fit in the CPU *_workspace_floats.
#include "cuda_common.h"
#include "hd_math.h"
#include "map.cuh"

// ---------------------------------------------------------------- conv layer
extern "C" void conv_layer_forward_cuda(CudaContext* ctx, const ConvLayer* l, const float* params,
                                        float* out, const float* inp, int B, int H, int W) {
    conv2d_forward_cuda(ctx, out, inp, params + l->pt->t[l->w].offset,
                        params + l->pt->t[l->b].offset, &l->d, B, H, W);
}

extern "C" void conv_layer_backward_cuda(CudaContext* ctx, const ConvLayer* l, const float* params,
                                         float* grads, float* dinp, const float* dout,
                                         const float* inp, int B, int H, int W) {
    if (!grads && !dinp) return;
    float* dw = grads ? grads + l->pt->t[l->w].offset : NULL;
    float* db = grads ? grads + l->pt->t[l->b].offset : NULL;
    conv2d_backward_cuda(ctx, dinp, dw, db, dout, inp, params + l->pt->t[l->w].offset, &l->d, B, H,
                         W);
}

// ---------------------------------------------------------------- shared
static void zero(CudaContext* ctx, float* p, size_t n) { fill_cuda(ctx, p, 0.0f, n); }

// activation.c's dropout_batch_forward, in place (every caller's case): sample
// b of the slice draws from rng_stream(RNG_DROPOUT, iter, sample0 + b) at
// offset (layer << 32) + element.
static int dropout_batch_active(float p, const StepRng* rng) { return rng->training && p > 0.0f; }

static uint64_t dropout_batch_stream(const StepRng* rng, int b) {
    return rng_stream(RNG_DROPOUT, (uint64_t)rng->iter, (uint64_t)rng->sample0 + (uint64_t)b);
}

static void dropout_batch_inplace_cuda(CudaContext* ctx,
                                       float* y,  // (B, n)
                                       float p, const StepRng* rng, int layer, int B, size_t n) {
    if (!dropout_batch_active(p, rng)) return;
    for (int b = 0; b < B; b++)
        dropout_forward_cuda(ctx, y + b * n, y + b * n, p, rng->seed, dropout_batch_stream(rng, b),
                             (uint64_t)layer << 32, n);
}

static void dropout_batch_backward_cuda(CudaContext* ctx,
                                        float* dinp,        // (B, n); accumulated
                                        const float* dout,  // (B, n)
                                        float p, const StepRng* rng, int layer, int B, size_t n) {
    if (!dropout_batch_active(p, rng)) {
        axpy_cuda(ctx, dinp, dout, 1.0f, (size_t)B * n);
        return;
    }
    for (int b = 0; b < B; b++)
        dropout_backward_cuda(ctx, dinp + b * n, dout + b * n, p, rng->seed,
                              dropout_batch_stream(rng, b), (uint64_t)layer << 32, n);
}

// ---------------------------------------------------------------- contextual module
// context_module.c's scratch layout without the conv part.
typedef struct {
    float *gA, *gB, *gP, *gC, *gD, *gs;
} CmWs;

static CmWs cm_ws(const Cm* m, int B, int H, int W, float* ws) {
    CmScratch o = cm_scratch_layout(m, B, H, W, 0);
    CmWs s = {ws + o.gA, ws + o.gB, ws + o.gP, ws + o.gC, ws + o.gD, ws + o.gs};
    return s;
}

extern "C" void cm_acts_alloc_cuda(CmActs* a, const Cm* m, int B, int H, int W,
                                   DeviceArena* arena) {
    memset(a, 0, sizeof(*a));
    a->B = B, a->H = H, a->W = W;
    size_t HW = (size_t)H * W, nD = (size_t)B * m->cfg.D * HW, nS = (size_t)B * m->cfg.n * HW;
    a->c = (float*)device_arena_alloc(arena, nS * m->cfg.Cc * sizeof(float));
    a->sel = (float*)device_arena_alloc(arena, nS * sizeof(float));
    a->s = (float*)device_arena_alloc(arena, nS * sizeof(float));
    a->p = (float*)device_arena_alloc(arena, nD * sizeof(float));
    a->mu = (float*)device_arena_alloc(arena, nD * sizeof(float));
    a->logvar = (float*)device_arena_alloc(arena, nD * sizeof(float));
    a->z = (float*)device_arena_alloc(arena, nD * sizeof(float));
    a->x = (float*)device_arena_alloc(arena, nD * sizeof(float));
}

// Sample b's eps stream: rng_stream(RNG_REPARAM, iter, sample0) + b (the
// sample is rng_stream's low field). stream0 is unused when !training.
static uint64_t cm_eps_stream0(const StepRng* rng) {
    return rng->training ? rng_stream(RNG_REPARAM, (uint64_t)rng->iter, (uint64_t)rng->sample0) : 0;
}

// z = mu (+ exp(logvar/2) eps when training), x = sigmoid(h + h sigmoid(z));
// element j = b*nD + i, i the flat (D, H, W) index.
struct CmLatentFwd {
    float *z, *x;
    const float *mu, *logvar, *h;
    int training;
    uint64_t seed, stream0, off;
    size_t nD;
    __device__ void operator()(size_t j) const {
        size_t b = j / nD, i = j - b * nD;
        float zj = mu[j];
        if (training) zj = hd_reparam(zj, logvar[j], hd_rng_normal(seed, stream0 + b, off + i));
        z[j] = zj;
        x[j] = hd_cm_feature(h[j], zj);
    }
};

// Backward of x and the reparameterisation: gA = dL/dmu, gB = dL/d(logvar
// before its ReLU), dh += the direct path (context_module.c's first loop).
struct CmLatentBwd {
    float *gA, *gB, *dh;
    const float *h, *z, *x, *logvar, *dx, *dmu, *dlogvar;
    int training;
    uint64_t seed, stream0, off;
    size_t nD;
    __device__ void operator()(size_t j) const {
        size_t b = j / nD, i = j - b * nD;
        float dhx = 0.0f, dz = 0.0f;
        if (dx) hd_cm_feature_grad(h[j], z[j], x[j], dx[j], &dhx, &dz);
        if (dh) dh[j] += dhx;
        float dlv = dlogvar ? dlogvar[j] : 0.0f;
        if (training)
            dlv += dz * hd_reparam_dlv(logvar[j], hd_rng_normal(seed, stream0 + b, off + i));
        gA[j] = dz + (dmu ? dmu[j] : 0.0f);
        // logvar holds the ReLU output: positive exactly where its input is
        gB[j] = dlv * hd_relu_grad(logvar[j]);
    }
};

extern "C" void cm_forward_cuda(CudaContext* ctx, const Cm* m, const float* params, CmActs* a,
                                const float* h, int scale, const StepRng* rng, float* ws) {
    if (scale < 0)
        ZS_FAIL("scale indices start at 0 (the 1.0 input)", "cm_forward: scale %d", scale);
    const int B = a->B, H = a->H, W = a->W, HW = H * W, Cc = m->cfg.Cc, n = m->cfg.n;
    const size_t nD = (size_t)m->cfg.D * HW, nC = (size_t)Cc * HW, nS = (size_t)B * n * HW;
    const CmWs s = cm_ws(m, B, H, W, ws);
    float *sh = s.gA, *selected = s.gC;
    a->scale = scale;
    a->rng = *rng;

    sigmoid_forward_cuda(ctx, sh, h, B * nD);
    for (int b = 0; b < B; b++) {
        const float* in = sh + b * nD;
        for (int k = 0; k < n; k++) {
            float* ck = a->c + ((size_t)b * n + k) * nC;
            conv_layer_forward_cuda(ctx, &m->conv[k], params, ck, in, 1, H, W);
            relu_forward_cuda(ctx, ck, ck, nC);
            in = ck;
        }
    }
    conv_layer_forward_cuda(ctx, &m->selector, params, a->sel, a->c, B, H, W);
    relu_forward_cuda(ctx, a->sel, a->sel, nS);
    sigmoid_forward_cuda(ctx, a->s, a->sel, nS);
    scale_by_map_forward_cuda(ctx, selected, a->c, a->s, n * B, Cc, HW);
    conv_layer_forward_cuda(ctx, &m->fuse, params, a->p, selected, B, H, W);
    relu_forward_cuda(ctx, a->p, a->p, B * nD);
    conv_layer_forward_cuda(ctx, &m->mu, params, a->mu, a->p, B, H, W);
    conv_layer_forward_cuda(ctx, &m->logvar, params, a->logvar, a->p, B, H, W);
    relu_forward_cuda(ctx, a->logvar, a->logvar, B * nD);

    launch_map(ctx,
               CmLatentFwd{a->z, a->x, a->mu, a->logvar, h, rng->training, rng->seed,
                           cm_eps_stream0(rng), (uint64_t)scale << 32, nD},
               B * nD);
}

extern "C" void cm_backward_cuda(CudaContext* ctx, const Cm* m, const float* params, float* grads,
                                 const CmActs* a, const float* h, const float* dx, const float* dmu,
                                 const float* dlogvar, float* dh, float* ws) {
    if (!grads && !dh) return;
    const int B = a->B, H = a->H, W = a->W, HW = H * W, Cc = m->cfg.Cc, n = m->cfg.n;
    const size_t nD = (size_t)m->cfg.D * HW, nC = (size_t)Cc * HW, nS = (size_t)B * n * HW;
    const CmWs s = cm_ws(m, B, H, W, ws);
    float *gA = s.gA, *gB = s.gB, *gP = s.gP, *gC = s.gC, *gD = s.gD, *gs = s.gs;
    const StepRng* rng = &a->rng;

    // x and the reparameterisation: gA = dL/dmu, gB = dL/d(logvar before its ReLU)
    launch_map(ctx,
               CmLatentBwd{gA, gB, dh, h, a->z, a->x, a->logvar, dx, dmu, dlogvar, rng->training,
                           rng->seed, cm_eps_stream0(rng), (uint64_t)a->scale << 32, nD},
               B * nD);

    // mu and logvar convs -> gP = dL/dp, then the fuse ReLU -> gA
    zero(ctx, gP, B * nD);
    conv_layer_backward_cuda(ctx, &m->mu, params, grads, gP, gA, a->p, B, H, W);
    conv_layer_backward_cuda(ctx, &m->logvar, params, grads, gP, gB, a->p, B, H, W);
    zero(ctx, gA, B * nD);
    relu_backward_cuda(ctx, gA, gP, a->p, B * nD);

    // fuse (its input, the selected features, is recomputed into gD) -> gC
    scale_by_map_forward_cuda(ctx, gD, a->c, a->s, n * B, Cc, HW);
    zero(ctx, gC, nS * Cc);
    conv_layer_backward_cuda(ctx, &m->fuse, params, grads, gC, gA, gD, B, H, W);

    // selection -> gD = dL/dc along the scaled path, gs = dL/ds
    zero(ctx, gD, nS * Cc);
    zero(ctx, gs, nS);
    scale_by_map_backward_cuda(ctx, gD, gs, gC, a->c, a->s, n * B, Cc, HW);

    // selector: sigmoid, ReLU (gC as the temporary), conv adding into gD
    zero(ctx, gC, nS);
    sigmoid_backward_cuda(ctx, gC, gs, a->s, nS);
    zero(ctx, gs, nS);
    relu_backward_cuda(ctx, gs, gC, a->sel, nS);
    conv_layer_backward_cuda(ctx, &m->selector, params, grads, gD, gs, a->c, B, H, W);

    // context convs last to first, per sample; conv1's input sigmoid(h) is
    // recomputed into gB, its input gradient goes to gP
    sigmoid_forward_cuda(ctx, gB, h, B * nD);
    for (int b = 0; b < B; b++) {
        float* t = gC;
        for (int k = n - 1; k >= 0; k--) {
            const size_t ok = ((size_t)b * n + k) * nC;
            zero(ctx, t, nC);
            relu_backward_cuda(ctx, t, gD + ok, a->c + ok, nC);
            const float* in = k ? a->c + ok - nC : gB + b * nD;
            float* din = k ? gD + ok - nC : (dh ? gP + b * nD : NULL);
            if (!k && din) zero(ctx, din, nD);
            conv_layer_backward_cuda(ctx, &m->conv[k], params, grads, din, t, in, 1, H, W);
        }
        if (dh) sigmoid_backward_cuda(ctx, dh + b * nD, gP + b * nD, gB + b * nD, nD);
    }
}

// ---------------------------------------------------------------- generator
extern "C" void gen_acts_alloc_cuda(GenActs* a, const Gen* g, int B, int H, int W,
                                    DeviceArena* arena) {
    memset(a, 0, sizeof(*a));
    a->B = B, a->H = H, a->W = W;
    const size_t n = (size_t)B * H * W;
    a->in = (float*)device_arena_alloc(arena, n * (g->cfg.E + g->cfg.D) * sizeof(float));
    for (int i = 0; i < g->cfg.n_hidden; i++)
        a->hid[i] = (float*)device_arena_alloc(arena, n * g->cfg.widths[i] * sizeof(float));
    a->fake = (float*)device_arena_alloc(arena, n * g->cfg.D * sizeof(float));
}

// Floats of one gradient buffer: the widest layer output (generator.c).
static size_t gen_grad_floats(const Gen* g, int B, int H, int W) {
    int c = g->cfg.D;
    for (int i = 0; i < g->cfg.n_hidden; i++)
        if (g->cfg.widths[i] > c) c = g->cfg.widths[i];
    return (size_t)B * c * H * W;
}

extern "C" void gen_forward_cuda(CudaContext* ctx, const Gen* g, const float* params, GenActs* a,
                                 const float* e, const float* l, const StepRng* rng, float* ws) {
    (void)ws;  // cuDNN needs no conv scratch and the forward no other
    const int B = a->B, H = a->H, W = a->W, HW = H * W;
    const GenConfig* cfg = &g->cfg;
    a->rng = *rng;
    copy_channels_cuda(ctx, a->in, e, B, cfg->E, cfg->E + cfg->D, 0, HW);
    copy_channels_cuda(ctx, a->in, l, B, cfg->D, cfg->E + cfg->D, cfg->E, HW);
    const float* x = a->in;
    for (int i = 0; i < cfg->n_hidden; i++) {
        const size_t n = (size_t)cfg->widths[i] * HW;  // per sample
        float* y = a->hid[i];
        conv_layer_forward_cuda(ctx, &g->fc[i], params, y, x, B, H, W);
        leaky_relu_forward_cuda(ctx, y, y, cfg->slope, B * n);
        dropout_batch_inplace_cuda(ctx, y, cfg->dropouts[i], rng, i + 1, B, n);
        x = y;
    }
    const size_t nf = (size_t)B * cfg->D * HW;
    conv_layer_forward_cuda(ctx, &g->fc[cfg->n_hidden], params, a->fake, x, B, H, W);
    sigmoid_forward_cuda(ctx, a->fake, a->fake, nf);
}

extern "C" void gen_backward_cuda(CudaContext* ctx, const Gen* g, const float* params, float* grads,
                                  const GenActs* a, const float* dfake, float* ws) {
    const int B = a->B, H = a->H, W = a->W, HW = H * W;
    const GenConfig* cfg = &g->cfg;
    float* cur = ws;  // dL/d(pre-activation of the layer at hand)
    float* nxt = cur + gen_grad_floats(g, B, H, W);

    const size_t nf = (size_t)B * cfg->D * HW;
    zero(ctx, cur, nf);
    sigmoid_backward_cuda(ctx, cur, dfake, a->fake, nf);
    for (int i = cfg->n_hidden; i >= 1; i--) {
        const float* hid = a->hid[i - 1];
        const size_t n = (size_t)cfg->widths[i - 1] * HW;  // per sample
        zero(ctx, nxt, B * n);
        conv_layer_backward_cuda(ctx, &g->fc[i], params, grads, nxt, cur, hid, B, H, W);
        zero(ctx, cur, B * n);
        dropout_batch_backward_cuda(ctx, cur, nxt, cfg->dropouts[i - 1], &a->rng, i, B, n);
        zero(ctx, nxt, B * n);
        leaky_relu_backward_cuda(ctx, nxt, cur, hid, cfg->slope, B * n);
        float* t = cur;
        cur = nxt;
        nxt = t;
    }
    conv_layer_backward_cuda(ctx, &g->fc[0], params, grads, NULL, cur, a->in, B, H, W);
}

// ---------------------------------------------------------------- discriminator / classifier
extern "C" void dc_acts_alloc_cuda(DcActs* a, const Dc* dc, int B, int H, int W,
                                   DeviceArena* arena) {
    memset(a, 0, sizeof(*a));
    a->B = B, a->H = H, a->W = W;
    const size_t n = (size_t)B * H * W;
    a->t = (float*)device_arena_alloc(arena, n * dc->cfg.hidden * sizeof(float));
    a->gan = (float*)device_arena_alloc(arena, n * sizeof(float));
    a->cls = (float*)device_arena_alloc(arena, n * dc->cfg.K * sizeof(float));
}

extern "C" void dc_forward_cuda(CudaContext* ctx, const Dc* dc, const float* params, DcActs* a,
                                const float* x, int layer_id, const StepRng* rng, float* ws) {
    (void)ws;  // cuDNN needs no conv scratch and the forward no other
    const int B = a->B, H = a->H, W = a->W;
    const size_t n = (size_t)dc->cfg.hidden * H * W;  // per sample
    a->rng = *rng;
    a->layer_id = layer_id;
    conv_layer_forward_cuda(ctx, &dc->trunk, params, a->t, x, B, H, W);
    relu_forward_cuda(ctx, a->t, a->t, B * n);
    dropout_batch_inplace_cuda(ctx, a->t, dc->cfg.dropout, rng, layer_id, B, n);
    conv_layer_forward_cuda(ctx, &dc->gan, params, a->gan, a->t, B, H, W);
    conv_layer_forward_cuda(ctx, &dc->cls, params, a->cls, a->t, B, H, W);
}

extern "C" void dc_backward_cuda(CudaContext* ctx, const Dc* dc, const float* params, float* grads,
                                 const DcActs* a, const float* x, const float* dgan,
                                 const float* dcls, float* dx, float* ws) {
    if ((!grads && !dx) || (!dgan && !dcls)) return;
    const int B = a->B, H = a->H, W = a->W;
    const size_t n = (size_t)B * dc->cfg.hidden * H * W;
    float* g0 = ws;
    float* g1 = g0 + n;
    zero(ctx, g0, n);
    if (dgan) conv_layer_backward_cuda(ctx, &dc->gan, params, grads, g0, dgan, a->t, B, H, W);
    if (dcls) conv_layer_backward_cuda(ctx, &dc->cls, params, grads, g0, dcls, a->t, B, H, W);
    zero(ctx, g1, n);
    dropout_batch_backward_cuda(ctx, g1, g0, dc->cfg.dropout, &a->rng, a->layer_id, B, n / B);
    zero(ctx, g0, n);
    relu_backward_cuda(ctx, g0, g1, a->t, n);
    conv_layer_backward_cuda(ctx, &dc->trunk, params, grads, dx, g0, x, B, H, W);
}
