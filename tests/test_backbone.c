// Backbone E: config mapping, parameter names and shapes, output sizes, the
// forward against a naive double-precision DeepLabv2 written from the contract
// (not from backbone.c's tables), the parameter backward against finite
// differences, accumulation, and a resnet101 forward with its timing. The
// PyTorch fixtures (stage outputs, closed form) are checked by test_cagnet_fixture.
#include <omp.h>
#include <string.h>

#include "backbone.h"
#include "config.h"
#include "testing.h"

// ---------------------------------------------------------------- naive reference (double)
typedef struct {
    double* x;
    int C, H, W;  // one image
} Map;

static Map map_new(int C, int H, int W) {
    Map m = {(double*)calloc((size_t)C * H * W, sizeof(double)), C, H, W};
    return m;
}

static const float* P(const ParamTable* pt, const float* params, const char* name) {
    int i = param_find(pt, name);
    if (i < 0) {
        fprintf(stderr, "missing parameter %s\n", name);
        exit(1);
    }
    return params + pt->t[i].offset;
}

// conv (Cout from the weight's shape) -> BN (eps 1e-5) -> optional ReLU, by contract name.
static Map ref_convbn(const ParamTable* pt, const float* params, const char* prefix, Map in, int k,
                      int stride, int pad, int dil, int relu) {
    char name[160];
    snprintf(name, sizeof name, "%s.conv.weight", prefix);
    const ParamTensor* t = &pt->t[param_find(pt, name)];
    const float* w = P(pt, params, name);
    int Co = t->shape[0];
    int Ho = (in.H + 2 * pad - dil * (k - 1) - 1) / stride + 1;
    int Wo = (in.W + 2 * pad - dil * (k - 1) - 1) / stride + 1;
    Map out = map_new(Co, Ho, Wo);
    const float* g = (snprintf(name, sizeof name, "%s.bn.weight", prefix), P(pt, params, name));
    const float* be = (snprintf(name, sizeof name, "%s.bn.bias", prefix), P(pt, params, name));
    const float* mu =
        (snprintf(name, sizeof name, "%s.bn.running_mean", prefix), P(pt, params, name));
    const float* var =
        (snprintf(name, sizeof name, "%s.bn.running_var", prefix), P(pt, params, name));
    for (int o = 0; o < Co; o++)
        for (int y = 0; y < Ho; y++)
            for (int x = 0; x < Wo; x++) {
                double s = 0.0;
                for (int c = 0; c < in.C; c++)
                    for (int i = 0; i < k; i++)
                        for (int j = 0; j < k; j++) {
                            int iy = y * stride - pad + i * dil, ix = x * stride - pad + j * dil;
                            if (iy < 0 || iy >= in.H || ix < 0 || ix >= in.W) continue;
                            s += (double)w[((o * in.C + c) * k + i) * k + j] *
                                 in.x[((size_t)c * in.H + iy) * in.W + ix];
                        }
                s = (s - mu[o]) / sqrt((double)var[o] + 1e-5) * g[o] + be[o];
                out.x[((size_t)o * Ho + y) * Wo + x] = relu && s < 0 ? 0.0 : s;
            }
    return out;
}

// 3x3 stride 2 pad 1 max pool, ceil mode (PyTorch's rule for the last window).
static Map ref_pool(Map in) {
    int Ho = (in.H + 2 - 3 + 1) / 2 + 1, Wo = (in.W + 2 - 3 + 1) / 2 + 1;
    if ((Ho - 1) * 2 >= in.H + 1) Ho--;
    if ((Wo - 1) * 2 >= in.W + 1) Wo--;
    Map out = map_new(in.C, Ho, Wo);
    for (int c = 0; c < in.C; c++)
        for (int y = 0; y < Ho; y++)
            for (int x = 0; x < Wo; x++) {
                double m = -INFINITY;
                for (int iy = y * 2 - 1; iy < y * 2 + 2; iy++)
                    for (int ix = x * 2 - 1; ix < x * 2 + 2; ix++)
                        if (iy >= 0 && iy < in.H && ix >= 0 && ix < in.W)
                            m = fmax(m, in.x[((size_t)c * in.H + iy) * in.W + ix]);
                out.x[((size_t)c * Ho + y) * Wo + x] = m;
            }
    return out;
}

// h for one image of (3, H, W), written straight from tests/reference/README.md §1.
static Map ref_backbone(const ParamTable* pt, const float* params, const float* img, int H, int W,
                        const int* blocks, const int* aspp_dil, int n_aspp, int D) {
    Map x = map_new(3, H, W);
    for (size_t i = 0; i < (size_t)3 * H * W; i++) x.x[i] = img[i];
    Map s = ref_convbn(pt, params, "backbone.layer1.conv1", x, 7, 2, 3, 1, 1);
    free(x.x);
    x = ref_pool(s);
    free(s.x);
    static const int strides[4] = {1, 2, 1, 1}, dils[4] = {1, 1, 2, 4};
    for (int L = 0; L < 4; L++) {
        for (int k = 0; k < blocks[L]; k++) {
            char p[128];
            int st = k == 0 ? strides[L] : 1;
            snprintf(p, sizeof p, "backbone.layer%d.block%d.reduce", L + 2, k + 1);
            Map r = ref_convbn(pt, params, p, x, 1, st, 0, 1, 1);
            snprintf(p, sizeof p, "backbone.layer%d.block%d.conv3x3", L + 2, k + 1);
            Map c = ref_convbn(pt, params, p, r, 3, 1, dils[L], dils[L], 1);
            snprintf(p, sizeof p, "backbone.layer%d.block%d.increase", L + 2, k + 1);
            Map o = ref_convbn(pt, params, p, c, 1, 1, 0, 1, 0);
            Map sc = x;
            if (k == 0) {
                snprintf(p, sizeof p, "backbone.layer%d.block%d.shortcut", L + 2, k + 1);
                sc = ref_convbn(pt, params, p, x, 1, st, 0, 1, 0);
            }
            for (size_t i = 0; i < (size_t)o.C * o.H * o.W; i++)
                o.x[i] = fmax(o.x[i] + sc.x[i], 0.0);
            if (sc.x != x.x) free(sc.x);
            free(r.x);
            free(c.x);
            free(x.x);
            x = o;
        }
    }
    Map h = map_new(D, x.H, x.W);
    for (int a = 0; a < n_aspp; a++) {
        char name[64];
        snprintf(name, sizeof name, "aspp.c%d.weight", a);
        const float* wt = P(pt, params, name);
        snprintf(name, sizeof name, "aspp.c%d.bias", a);
        const float* bias = P(pt, params, name);
        int d = aspp_dil[a];
        for (int o = 0; o < D; o++)
            for (int y = 0; y < x.H; y++)
                for (int xx = 0; xx < x.W; xx++) {
                    double s = bias[o];
                    for (int c = 0; c < x.C; c++)
                        for (int i = 0; i < 3; i++)
                            for (int j = 0; j < 3; j++) {
                                int iy = y - d + i * d, ix = xx - d + j * d;
                                if (iy < 0 || iy >= x.H || ix < 0 || ix >= x.W) continue;
                                s += (double)wt[((o * x.C + c) * 3 + i) * 3 + j] *
                                     x.x[((size_t)c * x.H + iy) * x.W + ix];
                            }
                    h.x[((size_t)o * x.H + y) * x.W + xx] += s;
                }
    }
    free(x.x);
    return h;
}

// ---------------------------------------------------------------- gradient check
typedef struct {
    const Backbone* bb;
    const float* params;
    BackboneActs* acts;
    const float* img;
    const float* r;  // projection of h
    float* ws;
} LossCtx;

static double loss_fn(void* p) {
    LossCtx* c = (LossCtx*)p;
    backbone_forward(c->bb, c->params, c->acts, c->img, c->ws);
    BackboneActs* a = c->acts;
    return t_dot(a->h, c->r, (size_t)a->B * c->bb->cfg.feature_dim * a->Hf * a->Wf);
}

// Along one weight the network is piecewise linear (conv, frozen BN, ReLU, max
// pool), so finite differences are exact up to float noise, except where the
// step crosses a ReLU or max-pool switch. With eps = 1e-3 the loss noise (fp32
// forward, ~1e-6 relative, over a 300-element dot) keeps the quotients within
// ~1e-3; so each sample must match the central difference (atol 2e-3, rtol
// 1e-2), or, where the left and right slopes disagree (a switch inside the
// step), one of them: the analytic slope is the one on the side without the
// switch. Returns the number of such kink samples; counts samples.
static int gradcheck_kinks(const char* what, float* x, const float* g, size_t n, size_t stride,
                           LossCtx* ctx, int* samples) {
    const double eps = 1e-3, atol = 2e-3, rtol = 1e-2;
    int bad = 0, kinks = 0;
    for (size_t i = 0; i < n; i += stride, (*samples)++) {
        float keep = x[i];
        double l0 = loss_fn(ctx);
        x[i] = (float)(keep + eps);
        double lp = loss_fn(ctx), hp = (double)x[i] - keep;
        x[i] = (float)(keep - eps);
        double lm = loss_fn(ctx), hm = keep - (double)x[i];
        x[i] = keep;
        double right = (lp - l0) / hp, left = (l0 - lm) / hm, central = (lp - lm) / (hp + hm);
        int kink = !t_close(left, right, atol, rtol);
        kinks += kink;
        int ok = t_close(g[i], central, atol, rtol) ||
                 (kink && (t_close(g[i], left, atol, rtol) || t_close(g[i], right, atol, rtol)));
        if (!ok && bad++ < 5)
            fprintf(stderr, "FAIL grad %s[%zu]: analytic %.9g numeric left %.9g right %.9g\n", what,
                    i, g[i], left, right);
    }
    CHECK(bad == 0, "grad %s: %d elements differ", what, bad);
    return kinks;
}

static void test_config(void) {
    Config* cfg = config_new();
    BackboneConfig bc;
    backbone_config_from(&bc, cfg);
    CHECK(bc.width == 64 && bc.blocks[0] == 3 && bc.blocks[1] == 4 && bc.blocks[2] == 23 &&
              bc.blocks[3] == 3 && bc.feature_dim == 600 && bc.n_aspp == 4 &&
              bc.aspp_dilations[0] == 6 && bc.aspp_dilations[3] == 24,
          "resnet101 defaults: w %d blocks %d,%d,%d,%d D %d aspp %d", bc.width, bc.blocks[0],
          bc.blocks[1], bc.blocks[2], bc.blocks[3], bc.feature_dim, bc.n_aspp);
    char* err = config_apply_set(cfg, "model.backbone=resnet50");
    CHECK(!err, "set resnet50");
    free(err);
    backbone_config_from(&bc, cfg);
    CHECK(bc.width == 64 && bc.blocks[2] == 6, "resnet50 blocks[2] %d", bc.blocks[2]);
    const char* sets[] = {"model.backbone=tiny", "model.tiny_width=5", "model.feature_dim=7",
                          "model.aspp_dilations=[1, 3]"};
    for (int i = 0; i < 4; i++) {
        err = config_apply_set(cfg, sets[i]);
        CHECK(!err, "%s: %s", sets[i], err ? err : "");
        free(err);
    }
    backbone_config_from(&bc, cfg);
    CHECK(bc.width == 5 && bc.blocks[0] == 1 && bc.blocks[3] == 1 && bc.feature_dim == 7 &&
              bc.n_aspp == 2 && bc.aspp_dilations[1] == 3,
          "tiny: w %d D %d aspp %d", bc.width, bc.feature_dim, bc.n_aspp);
    config_free(cfg);
}

static void test_tiny(void) {
    BackboneConfig bc = {.width = 4,
                         .blocks = {1, 1, 1, 1},
                         .feature_dim = 6,
                         .n_aspp = 2,
                         .aspp_dilations = {1, 2}};
    ParamTable pt;
    param_table_init(&pt);
    Backbone bb;
    backbone_build(&bb, &pt, &bc);
    size_t total = param_table_finalize(&pt);

    // 17 convs (1 stem + 4 blocks x 4 with shortcuts) x (weight + 4 BN) + 2 x 2 ASPP.
    CHECK(pt.n == 17 * 5 + 4, "tensor count %d", pt.n);
    static const char* first[] = {"backbone.layer1.conv1.conv.weight",
                                  "backbone.layer2.block1.reduce.conv.weight",
                                  "backbone.layer2.block1.conv3x3.conv.weight",
                                  "backbone.layer2.block1.increase.conv.weight",
                                  "backbone.layer2.block1.shortcut.conv.weight",
                                  "backbone.layer3.block1.reduce.conv.weight"};
    for (int i = 0; i < 6; i++) {
        int k = param_find(&pt, first[i]);
        CHECK(k >= 0 && pt.t[k].pos == i, "%s at position %d", first[i], k >= 0 ? pt.t[k].pos : -1);
    }
    int k = param_find(&pt, "aspp.c0.weight");
    CHECK(k >= 0 && pt.t[k].pos == 17 && pt.t[k].offset == pt.region_lo[REGION_ASPP],
          "aspp.c0.weight first of ASPP");
    CHECK(param_find(&pt, "aspp.c1.bias") >= 0 && pt.t[param_find(&pt, "aspp.c1.bias")].pos == 20,
          "aspp.c1.bias last of ASPP");
    k = param_find(&pt, "backbone.layer1.conv1.bn.weight");
    CHECK(k >= 0 && pt.t[k].pos == 21 && pt.t[k].region == REGION_FROZEN, "first BN tensor");
    k = param_find(&pt, "backbone.layer2.block1.shortcut.bn.running_var");
    CHECK(k >= 0 && pt.t[k].pos == 21 + 4 * 5 - 1, "shortcut BN var position %d",
          k >= 0 ? pt.t[k].pos : -1);
    k = param_find(&pt, "backbone.layer4.block1.conv3x3.conv.weight");
    CHECK(k >= 0 && pt.t[k].shape[0] == 16 && pt.t[k].shape[1] == 16 && pt.t[k].shape[2] == 3,
          "layer4 conv3x3 shape");
    k = param_find(&pt, "backbone.layer5.block1.shortcut.conv.weight");
    CHECK(k >= 0 && pt.t[k].shape[0] == 128 && pt.t[k].shape[1] == 64, "layer5 shortcut shape");
    k = param_find(&pt, "aspp.c1.weight");
    CHECK(k >= 0 && pt.t[k].shape[0] == 6 && pt.t[k].shape[1] == 128, "aspp shape");
    CHECK(bb.aspp[1].d.dilation == 2 && bb.aspp[1].d.pad == 2 &&
              bb.blocks[2].conv3x3.d.dilation == 2 && bb.blocks[2].conv3x3.d.pad == 2 &&
              bb.blocks[3].conv3x3.d.dilation == 4 && bb.blocks[1].reduce.d.stride == 2 &&
              bb.blocks[1].conv3x3.d.stride == 1,
          "stage dilations and strides");

    // 33 -> conv1 (7, s2, p3) 17 -> pool (3, s2, p1, ceil) 9 -> layer3 stride 2: 5.
    int B = 2, H = 33, W = 33;
    BackboneActs a;
    backbone_acts_alloc(&a, &bb, B, H, W);
    CHECK(a.Hs == 17 && a.Ws == 17 && a.Hp == 9 && a.Wp == 9 && a.Hf == 5 && a.Wf == 5,
          "sizes %d %d %d", a.Hs, a.Hp, a.Hf);
    CHECK(a.blocks[0].Ho == 9 && a.blocks[1].H == 9 && a.blocks[1].Ho == 5 && a.blocks[3].Ho == 5,
          "block sizes");
    // Non-square input: 40 x 26 -> 20 x 13 -> 11 (ceil) x 7 -> 6 x 4.
    BackboneActs a2;
    backbone_acts_alloc(&a2, &bb, 1, 40, 26);
    CHECK(a2.Hs == 20 && a2.Ws == 13 && a2.Hp == 11 && a2.Wp == 7 && a2.Hf == 6 && a2.Wf == 4,
          "40x26 sizes %dx%d %dx%d %dx%d", a2.Hs, a2.Ws, a2.Hp, a2.Wp, a2.Hf, a2.Wf);
    backbone_acts_free(&a2);
    // A 3x3 input: conv1 2, pool (ceil) 2, layer3 1: still a valid forward.
    {
        float img3[27],
            *ws3 = (float*)malloc(backbone_workspace_floats(&bb, 1, 3, 3) * sizeof(float));
        for (int i = 0; i < 27; i++) img3[i] = (float)(i % 5) - 2.0f;
        float* p3 = (float*)malloc(total * sizeof(float));
        param_fill_closed_form(&pt, p3);
        backbone_acts_alloc(&a2, &bb, 1, 3, 3);
        backbone_forward(&bb, p3, &a2, img3, ws3);
        int finite = 1;
        for (int i = 0; i < 6; i++) finite &= isfinite(a2.h[i]);
        CHECK(a2.Hs == 2 && a2.Hp == 2 && a2.Hf == 1 && a2.Wf == 1 && finite, "3x3 input: %d %d %d",
              a2.Hs, a2.Hp, a2.Hf);
        backbone_acts_free(&a2);
        free(p3);
        free(ws3);
    }

    float* params = (float*)malloc(total * sizeof(float));
    param_fill_closed_form(&pt, params);
    size_t nimg = (size_t)B * 3 * H * W, nh = (size_t)B * 6 * 25;
    float* img = (float*)malloc(nimg * sizeof(float));
    t_fill_normal(img, nimg, 11, 1.0f);
    float* ws = (float*)malloc(backbone_workspace_floats(&bb, B, H, W) * sizeof(float));
    backbone_forward(&bb, params, &a, img, ws);

    // Forward against the double reference, image by image.
    for (int b = 0; b < B; b++) {
        Map h = ref_backbone(&pt, params, img + (size_t)b * 3 * H * W, H, W, bc.blocks,
                             bc.aspp_dilations, 2, 6);
        float* want = (float*)malloc(nh / B * sizeof(float));
        double amax = 0.0;
        for (size_t i = 0; i < nh / B; i++) {
            want[i] = (float)h.x[i];
            amax = fmax(amax, fabs(h.x[i]));
        }
        CHECK(amax > 0.01, "reference h is not degenerate (max |h| %g)", amax);
        t_check_array("tiny h vs double reference", a.h + (size_t)b * nh / B, want, nh / B,
                      1e-5 * amax, 1e-4);
        free(want);
        free(h.x);
    }

    // Backward of sum(h * r) against finite differences (gradcheck_kinks).
    float* r = (float*)malloc(nh * sizeof(float));
    t_fill_uniform(r, nh, 12, -1.0f, 1.0f);
    float* grads = (float*)calloc(total, sizeof(float));
    backbone_backward(&bb, params, grads, &a, r, ws);
    LossCtx ctx = {&bb, params, &a, img, r, ws};
    int kinks = 0, samples = 0;
    static const char* checked[] = {"backbone.layer1.conv1.conv.weight",
                                    "backbone.layer2.block1.reduce.conv.weight",
                                    "backbone.layer2.block1.increase.conv.weight",
                                    "backbone.layer3.block1.reduce.conv.weight",
                                    "backbone.layer3.block1.shortcut.conv.weight",
                                    "backbone.layer4.block1.conv3x3.conv.weight",
                                    "backbone.layer5.block1.conv3x3.conv.weight",
                                    "backbone.layer5.block1.shortcut.conv.weight",
                                    "aspp.c1.weight",
                                    "aspp.c0.bias"};
    // ~370 forwards of a tiny net: OpenMP fork/join would dominate, and with
    // spinning waits on a loaded machine it takes minutes, so one thread here
    // (the forward and backward above ran multithreaded).
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    for (int i = 0; i < 10; i++) {
        const ParamTensor* t = &pt.t[param_find(&pt, checked[i])];
        size_t stride = t->numel / 12 + 1;  // ~12 elements per tensor
        kinks += gradcheck_kinks(checked[i], params + t->offset, grads + t->offset, t->numel,
                                 stride, &ctx, &samples);
    }
    omp_set_num_threads(threads);
    CHECK(kinks * 10 < samples, "%d of %d samples sit on a kink", kinks, samples);
    printf("gradient check: %d samples, %d across a ReLU/max-pool switch\n", samples, kinks);
    // Frozen BN gets nothing; every trained tensor gets something.
    double frozen = 0.0;
    for (size_t i = pt.region_lo[REGION_FROZEN]; i < total; i++) frozen += fabs(grads[i]);
    CHECK(frozen == 0.0, "frozen BN gradient sum %g", frozen);
    for (int i = 0; i < pt.n; i++) {
        if (pt.t[i].region == REGION_FROZEN) continue;
        double s = 0.0;
        for (size_t j = 0; j < pt.t[i].numel; j++) s += fabs(grads[pt.t[i].offset + j]);
        CHECK(s > 0.0, "no gradient reached %s", pt.t[i].name);
    }

    // Accumulation: a second backward (on the same activations) doubles every gradient.
    backbone_forward(&bb, params, &a, img, ws);
    float* once = (float*)malloc(total * sizeof(float));
    memcpy(once, grads, total * sizeof(float));
    backbone_backward(&bb, params, grads, &a, r, ws);
    for (size_t i = 0; i < total; i++) once[i] *= 2.0f;
    t_check_array("backward accumulates", grads, once, total, 1e-6, 1e-5);
    // grads == NULL: nothing to compute, nothing touched.
    memcpy(once, a.h, nh * sizeof(float));
    backbone_backward(&bb, params, NULL, &a, r, ws);
    t_check_array("NULL grads leaves h", a.h, once, nh, 0.0, 0.0);

    free(once);
    free(grads);
    free(r);
    free(ws);
    free(img);
    free(params);
    backbone_acts_free(&a);
    backbone_free(&bb);
    param_table_free(&pt);
}

static void test_resnet101(void) {
    Config* cfg = config_new();
    BackboneConfig bc;
    backbone_config_from(&bc, cfg);
    config_free(cfg);
    ParamTable pt;
    param_table_init(&pt);
    Backbone bb;
    backbone_build(&bb, &pt, &bc);
    size_t total = param_table_finalize(&pt);
    // 104 convs; 4 ASPP branches with bias.
    CHECK(pt.n == 104 * 5 + 8, "resnet101 tensors %d", pt.n);
    CHECK(pt.region_n[REGION_BACKBONE] == 42394816, "resnet101 conv weights %zu",
          pt.region_n[REGION_BACKBONE]);
    float* params = (float*)malloc(total * sizeof(float));
    param_fill_closed_form(&pt, params);
    int H = 41, W = 41;
    BackboneActs a;
    backbone_acts_alloc(&a, &bb, 1, H, W);
    // 41 -> 21 -> pool 11 -> layer3 6
    CHECK(a.Hf == 6 && a.Wf == 6, "resnet101 feature %dx%d", a.Hf, a.Wf);
    float* img = (float*)malloc((size_t)3 * H * W * sizeof(float));
    t_fill_normal(img, (size_t)3 * H * W, 21, 1.0f);
    float* ws = (float*)malloc(backbone_workspace_floats(&bb, 1, H, W) * sizeof(float));
    double t0 = omp_get_wtime();
    backbone_forward(&bb, params, &a, img, ws);
    double t1 = omp_get_wtime();
    size_t nh = (size_t)600 * 36;
    int finite = 1;
    double amax = 0.0;
    for (size_t i = 0; i < nh; i++) {
        finite &= isfinite(a.h[i]);
        amax = fmax(amax, fabs(a.h[i]));
    }
    CHECK(finite && amax > 1e-3 && amax < 1e4, "resnet101 h finite and bounded (max |h| %g)", amax);
    CHECK(t1 - t0 < 20.0, "resnet101 forward at 41x41 took %.2f s",
          t1 - t0);  // ~0.15 s; catches pathologies only
    printf("resnet101 forward 1x3x41x41: %.3f s, activations %.1f MB\n", t1 - t0,
           (double)a.bytes / 1e6);
    free(ws);
    free(img);
    free(params);
    backbone_acts_free(&a);
    backbone_free(&bb);
    param_table_free(&pt);
}

int main(void) {
    test_config();
    test_tiny();
    test_resnet101();
    return t_report("test_backbone");
}
