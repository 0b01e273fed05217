// GPU modules against the CPU reference: backbone (identity and projection
// shortcuts, non-square input), contextual module (training and eval),
// generator (active and inactive dropout) and discriminator/classifier
// (both heads, then the input-gradient-only path). Same tiny modules, random
// parameters, inputs and RNG keys on both backends; every activation and
// gradient is compared by relative L2 error. The GPU runs each backward twice
// from zero gradients and is compared at half: that checks += and that the
// acts survive a backward. Its workspace starts as NaN, so no stale read goes
// unnoticed. Exits 77 (ctest: skipped) when no GPU is visible.
#include <math.h>
#include <string.h>

#include "backbone.h"
#include "common.h"
#include "context_module.h"
#include "disc_cls.h"
#include "generator.h"
#include "testing.h"
#include "zsseg_cuda.h"

// fp32: only the summation order differs from the CPU. TF32 rounds every conv
// input to 10 mantissa bits (~3e-4 per layer, compounding with depth), and a
// pre-activation within that rounding of 0 flips its ReLU mask (or a near-tie
// moves a max-pool argmax), moving one position's whole gradient: gradients
// are then only checked over the module.
typedef struct {
    const char* name;
    CudaContext* ctx;
    double tol_out;     // per activation tensor
    double tol_tensor;  // per gradient tensor; 0 = not checked
    double tol_module;  // over all gradients of a module
} Mode;

static DeviceArena* arena;

static float* dev_upload(const float* h, size_t n) {
    float* d = device_arena_alloc(arena, n * sizeof(float));
    cuda_memcpy_h2d(d, h, n * sizeof(float));
    return d;
}
static float* dev_fill(const Mode* md, size_t n, float v) {
    float* d = device_arena_alloc(arena, n * sizeof(float));
    fill_cuda(md->ctx, d, v, n);
    return d;
}
static float* host_random(size_t n, uint64_t seed, float lo, float hi) {
    float* h = t_falloc(n);
    t_fill_uniform(h, n, seed, lo, hi);
    return h;
}
static float* host_download(const float* d, size_t n, float scale) {
    float* h = t_falloc(n);
    cuda_memcpy_d2h(h, d, n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] *= scale;
    return h;
}

// Finalises pt; weights He-uniform, conv biases and BN beta/mean in +-0.2,
// BN gamma and variance in [0.5, 1.5].
static float* random_params(ParamTable* pt, uint64_t seed) {
    float* p = t_falloc(param_table_finalize(pt));
    for (int i = 0; i < pt->n; i++) {
        const ParamTensor* t = &pt->t[i];
        float lo = -0.2f, hi = 0.2f;
        if (t->kind == PARAM_CONV_WEIGHT)
            hi = sqrtf(6.0f / (float)(t->shape[1] * t->shape[2] * t->shape[3])), lo = -hi;
        if (t->kind == PARAM_BN_WEIGHT || t->kind == PARAM_BN_VAR) lo = 0.5f, hi = 1.5f;
        t_fill_uniform(p + t->offset, t->numel, seed + (uint64_t)i, lo, hi);
    }
    return p;
}

// Sums of squares: (got - want) and want.
typedef struct {
    double err, ref;
} Sq;

static Sq sq_diff(const float* got, const float* want, size_t n) {
    Sq s = {0.0, 0.0};
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        s.err += d * d;
        s.ref += (double)want[i] * want[i];
    }
    return s;
}
// 0 when both are zero (a gradient that must stay untouched), inf when only want is.
static double rel(Sq s) { return s.ref > 0 ? sqrt(s.err / s.ref) : (s.err > 0 ? INFINITY : 0.0); }

// d (on the device, times scale) against want; want must not be all zero.
static void check_act(const Mode* md, const char* what, const float* d, const float* want, size_t n,
                      float scale) {
    float* got = host_download(d, n, scale);
    Sq s = sq_diff(got, want, n);
    CHECK(s.ref > 0 && rel(s) <= md->tol_out, "%s %s: relative error %.3g (tol %g), |want| %.3g",
          md->name, what, rel(s), md->tol_out, sqrt(s.ref));
    printf("  %s %-28s %.2e\n", md->name, what, rel(s));
    free(got);
}

// Gradients of every tensor of pt (d_grads holds two backwards' worth).
static void check_grads(const Mode* md, const char* what, const ParamTable* pt,
                        const float* d_grads, const float* want) {
    float* got = host_download(d_grads, pt->total, 0.5f);
    Sq all = {0.0, 0.0};
    double worst = 0.0;
    const char* worst_name = "-";
    for (int i = 0; i < pt->n; i++) {
        const ParamTensor* t = &pt->t[i];
        Sq s = sq_diff(got + t->offset, want + t->offset, t->numel);
        all.err += s.err, all.ref += s.ref;
        if (rel(s) >= worst) worst = rel(s), worst_name = t->name;
        if (md->tol_tensor > 0)
            CHECK(rel(s) <= md->tol_tensor, "%s %s gradient %s: relative error %.3g (tol %g)",
                  md->name, what, t->name, rel(s), md->tol_tensor);
    }
    CHECK(all.ref > 0 && rel(all) <= md->tol_module,
          "%s %s gradients: relative error %.3g over the module (tol %g)", md->name, what, rel(all),
          md->tol_module);
    printf("  %s %-28s %.2e (worst tensor %s %.2e)\n", md->name, what, rel(all), worst_name, worst);
    free(got);
}

// ---------------------------------------------------------------- backbone

static void test_backbone(const Mode* md) {
    // layer4 has a second block: an identity shortcut
    BackboneConfig bc = {.width = 4,
                         .blocks = {1, 1, 2, 1},
                         .feature_dim = 6,
                         .n_aspp = 2,
                         .aspp_dilations = {1, 2}};
    ParamTable pt;
    param_table_init(&pt);
    Backbone bb;
    backbone_build(&bb, &pt, &bc);
    float* params = random_params(&pt, 100);
    const int B = 2, H = 29, W = 23;
    BackboneActs a, ga;
    backbone_acts_alloc(&a, &bb, B, H, W);
    size_t nimg = (size_t)B * 3 * H * W, nh = (size_t)B * bc.feature_dim * a.Hf * a.Wf;
    size_t nws = backbone_workspace_floats(&bb, B, H, W);
    float* img = host_random(nimg, 101, -1.0f, 1.0f);
    float* dh = host_random(nh, 102, -1.0f, 1.0f);
    float* ws = t_falloc(nws);
    float* grads = callocCheck(pt.total, sizeof(float));
    backbone_forward(&bb, params, &a, img, ws);
    backbone_backward(&bb, params, grads, &a, dh, ws);

    device_arena_reset(arena);
    backbone_acts_alloc_cuda(&ga, &bb, B, H, W, arena);
    CHECK(ga.Hs == a.Hs && ga.Wp == a.Wp && ga.Hf == a.Hf && ga.Wf == a.Wf && ga.bytes == a.bytes,
          "device acts: %dx%d features, %zu bytes; host %dx%d, %zu", ga.Hf, ga.Wf, ga.bytes, a.Hf,
          a.Wf, a.bytes);
    float *d_params = dev_upload(params, pt.total), *d_grads = dev_fill(md, pt.total, 0.0f);
    float *d_img = dev_upload(img, nimg), *d_dh = dev_upload(dh, nh);
    float* d_ws = dev_fill(md, nws, NAN);
    backbone_forward_cuda(md->ctx, &bb, d_params, &ga, d_img, d_ws);
    for (int r = 0; r < 2; r++)
        backbone_backward_cuda(md->ctx, &bb, d_params, d_grads, &ga, d_dh, d_ws, NULL);

    // one float block in the CPU layout: every stored activation at once
    size_t nmem = (size_t)(a.h - a.mem) + nh;
    check_act(md, "backbone activations", ga.mem, a.mem, nmem, 1.0f);
    check_act(md, "backbone h", ga.h, a.h, nh, 1.0f);
    check_grads(md, "backbone", &pt, d_grads, grads);

    backbone_acts_free(&a);
    free(ga.blocks);  // host records; the floats live in the arena
    backbone_free(&bb);
    param_table_free(&pt);
    free(params), free(img), free(dh), free(ws), free(grads);
}

// ---------------------------------------------------------------- contextual module

static void test_cm(const Mode* md, int training) {
    CmConfig cfg = {.D = 6, .Cc = 4, .n = 2, .dil = {1, 2}};
    ParamTable pt;
    param_table_init(&pt);
    Cm m;
    cm_build(&m, &pt, &cfg);
    float* params = random_params(&pt, 200);
    const int B = 2, H = 5, W = 4, scale = training ? 2 : 0;
    const StepRng rng = {.seed = 77, .iter = 5, .sample0 = 3, .training = training};
    size_t nD = (size_t)B * cfg.D * H * W, nS = (size_t)B * cfg.n * H * W;
    size_t nws = cm_workspace_floats(&m, B, H, W);
    float* h = host_random(nD, 201, -2.0f, 2.0f);
    float* dx = host_random(nD, 202, -1.0f, 1.0f);
    float* dmu = host_random(nD, 203, -1.0f, 1.0f);
    float* dlv = host_random(nD, 204, -1.0f, 1.0f);
    float* dh = callocCheck(nD, sizeof(float));
    float* grads = callocCheck(pt.total, sizeof(float));
    float* ws = t_falloc(nws);
    CmActs a, ga;
    cm_acts_alloc(&a, &m, B, H, W);
    cm_forward(&m, params, &a, h, scale, &rng, ws);
    // eval: dx only (mu and logvar get no extra gradient)
    cm_backward(&m, params, grads, &a, h, dx, training ? dmu : NULL, training ? dlv : NULL, dh, ws);

    device_arena_reset(arena);
    cm_acts_alloc_cuda(&ga, &m, B, H, W, arena);
    float *d_params = dev_upload(params, pt.total), *d_grads = dev_fill(md, pt.total, 0.0f);
    float *d_h = dev_upload(h, nD), *d_dx = dev_upload(dx, nD), *d_dmu = dev_upload(dmu, nD);
    float *d_dlv = dev_upload(dlv, nD), *d_dh = dev_fill(md, nD, 0.0f);
    float* d_ws = dev_fill(md, nws, NAN);
    cm_forward_cuda(md->ctx, &m, d_params, &ga, d_h, scale, &rng, d_ws);
    CHECK(ga.scale == scale && ga.rng.iter == rng.iter && ga.rng.training == training,
          "device acts keep scale %d and the rng keys", ga.scale);
    for (int r = 0; r < 2; r++)
        cm_backward_cuda(md->ctx, &m, d_params, d_grads, &ga, d_h, d_dx, training ? d_dmu : NULL,
                         training ? d_dlv : NULL, d_dh, d_ws);

    char what[64];
    const char* tag = training ? "cm" : "cm eval";
    const float* dev[] = {ga.c, ga.sel, ga.s, ga.p, ga.mu, ga.logvar, ga.z, ga.x};
    const float* host[] = {a.c, a.sel, a.s, a.p, a.mu, a.logvar, a.z, a.x};
    const char* names[] = {"c", "sel", "s", "p", "mu", "logvar", "z", "x"};
    const size_t sizes[] = {nS * cfg.Cc, nS, nS, nD, nD, nD, nD, nD};
    for (int i = 0; i < 8; i++) {
        snprintf(what, sizeof what, "%s %s", tag, names[i]);
        check_act(md, what, dev[i], host[i], sizes[i], 1.0f);
    }
    snprintf(what, sizeof what, "%s dh", tag);
    check_act(md, what, d_dh, dh, nD, 0.5f);
    check_grads(md, tag, &pt, d_grads, grads);

    cm_acts_free(&a);
    param_table_free(&pt);
    free(params), free(h), free(dx), free(dmu), free(dlv), free(dh), free(grads), free(ws);
}

// ---------------------------------------------------------------- generator

static void test_gen(const Mode* md) {
    // layer 1 drops (mask from the contract's keys), layer 2 has p = 0 (no mask)
    GenConfig cfg = {
        .E = 4, .D = 6, .n_hidden = 2, .widths = {8, 5}, .dropouts = {0.3f, 0.0f}, .slope = 0.2f};
    ParamTable pt;
    param_table_init(&pt);
    Gen g;
    gen_build(&g, &pt, &cfg);
    float* params = random_params(&pt, 300);
    const int B = 2, H = 3, W = 4;
    const size_t HWB = (size_t)B * H * W;
    const StepRng rng = {.seed = 78, .iter = 6, .sample0 = 1, .training = 1};
    size_t nws = gen_workspace_floats(&g, B, H, W);
    float* e = host_random(HWB * cfg.E, 301, -1.0f, 1.0f);
    float* l = host_random(HWB * cfg.D, 302, -1.0f, 1.0f);
    float* dfake = host_random(HWB * cfg.D, 303, -1.0f, 1.0f);
    float* grads = callocCheck(pt.total, sizeof(float));
    float* ws = t_falloc(nws);
    GenActs a, ga;
    gen_acts_alloc(&a, &g, B, H, W);
    gen_forward(&g, params, &a, e, l, &rng, ws);
    gen_backward(&g, params, grads, &a, dfake, ws);

    device_arena_reset(arena);
    gen_acts_alloc_cuda(&ga, &g, B, H, W, arena);
    float *d_params = dev_upload(params, pt.total), *d_grads = dev_fill(md, pt.total, 0.0f);
    float *d_e = dev_upload(e, HWB * cfg.E), *d_l = dev_upload(l, HWB * cfg.D);
    float *d_dfake = dev_upload(dfake, HWB * cfg.D), *d_ws = dev_fill(md, nws, NAN);
    gen_forward_cuda(md->ctx, &g, d_params, &ga, d_e, d_l, &rng, d_ws);
    for (int r = 0; r < 2; r++)
        gen_backward_cuda(md->ctx, &g, d_params, d_grads, &ga, d_dfake, d_ws);

    check_act(md, "gen in", ga.in, a.in, HWB * (cfg.E + cfg.D), 1.0f);
    check_act(md, "gen hid1", ga.hid[0], a.hid[0], HWB * cfg.widths[0], 1.0f);
    check_act(md, "gen hid2", ga.hid[1], a.hid[1], HWB * cfg.widths[1], 1.0f);
    check_act(md, "gen fake", ga.fake, a.fake, HWB * cfg.D, 1.0f);
    check_grads(md, "gen", &pt, d_grads, grads);

    gen_acts_free(&a);
    param_table_free(&pt);
    free(params), free(e), free(l), free(dfake), free(grads), free(ws);
}

// ---------------------------------------------------------------- discriminator / classifier

static void test_dc(const Mode* md) {
    DcConfig cfg = {.D = 6, .hidden = 7, .K = 5, .dropout = 0.5f};
    ParamTable pt;
    param_table_init(&pt);
    Dc dc;
    dc_build(&dc, &pt, &cfg);
    float* params = random_params(&pt, 400);
    const int B = 2, H = 4, W = 3, layer_id = 101;
    const size_t HWB = (size_t)B * H * W;
    const StepRng rng = {.seed = 79, .iter = 7, .sample0 = 2, .training = 1};
    size_t nws = dc_workspace_floats(&dc, B, H, W);
    float* x = host_random(HWB * cfg.D, 401, -1.0f, 1.0f);
    float* dgan = host_random(HWB, 402, -1.0f, 1.0f);
    float* dcls = host_random(HWB * cfg.K, 403, -1.0f, 1.0f);
    float* dx = callocCheck(HWB * cfg.D, sizeof(float));
    float* dx_gan = callocCheck(HWB * cfg.D, sizeof(float));
    float* grads = callocCheck(pt.total, sizeof(float));
    float* ws = t_falloc(nws);
    DcActs a, ga;
    dc_acts_alloc(&a, &dc, B, H, W);
    dc_forward(&dc, params, &a, x, layer_id, &rng, ws);
    dc_backward(&dc, params, grads, &a, x, dgan, dcls, dx, ws);
    // step1's E-loss path: the GAN head's input gradient only, no parameter gradients
    dc_backward(&dc, params, NULL, &a, x, dgan, NULL, dx_gan, ws);

    device_arena_reset(arena);
    dc_acts_alloc_cuda(&ga, &dc, B, H, W, arena);
    float *d_params = dev_upload(params, pt.total), *d_grads = dev_fill(md, pt.total, 0.0f);
    float *d_x = dev_upload(x, HWB * cfg.D), *d_dgan = dev_upload(dgan, HWB);
    float *d_dcls = dev_upload(dcls, HWB * cfg.K), *d_ws = dev_fill(md, nws, NAN);
    float *d_dx = dev_fill(md, HWB * cfg.D, 0.0f), *d_dx_gan = dev_fill(md, HWB * cfg.D, 0.0f);
    dc_forward_cuda(md->ctx, &dc, d_params, &ga, d_x, layer_id, &rng, d_ws);
    CHECK(ga.layer_id == layer_id, "device acts keep layer id %d", ga.layer_id);
    for (int r = 0; r < 2; r++) {
        dc_backward_cuda(md->ctx, &dc, d_params, d_grads, &ga, d_x, d_dgan, d_dcls, d_dx, d_ws);
        dc_backward_cuda(md->ctx, &dc, d_params, NULL, &ga, d_x, d_dgan, NULL, d_dx_gan, d_ws);
    }

    check_act(md, "dc t", ga.t, a.t, HWB * cfg.hidden, 1.0f);
    check_act(md, "dc gan", ga.gan, a.gan, HWB, 1.0f);
    check_act(md, "dc cls", ga.cls, a.cls, HWB * cfg.K, 1.0f);
    check_act(md, "dc dx", d_dx, dx, HWB * cfg.D, 0.5f);
    check_act(md, "dc dx (gan head only)", d_dx_gan, dx_gan, HWB * cfg.D, 0.5f);
    check_grads(md, "dc", &pt, d_grads, grads);

    dc_acts_free(&a);
    param_table_free(&pt);
    free(params), free(x), free(dgan), free(dcls), free(dx), free(dx_gan), free(grads), free(ws);
}

int main(void) {
    if (cuda_device_count() == 0) {
        printf("test_gpu_modules: no GPU visible, skipped\n");
        return 77;
    }
    unsigned char uuid[16];
    char desc[256];
    cuda_device_select(0, uuid, desc, sizeof desc);
    printf("test_gpu_modules on %s\n", desc);
    arena = device_arena_create((size_t)64 << 20);
    Mode modes[2] = {{"fp32", cuda_context_create(0, 1), 1e-5, 1e-5, 1e-5},
                     {"tf32", cuda_context_create(1, 1), 2e-3, 0.0, 1e-2}};
    for (int i = 0; i < 2; i++) {
        printf("%s: relative L2 error GPU vs CPU\n", modes[i].name);
        test_backbone(&modes[i]);
        test_cm(&modes[i], 1);
        test_cm(&modes[i], 0);
        test_gen(&modes[i]);
        test_dc(&modes[i]);
    }
    for (int i = 0; i < 2; i++) cuda_context_destroy(modes[i].ctx);
    device_arena_destroy(arena);
    return t_report("test_gpu_modules");
}
