// conv2d: forward against a direct double-precision convolution, backward by
// finite differences of sum(out * r), accumulation semantics, PixelCNN masks.
#include <math.h>
#include <string.h>

#include "conv.h"
#include "testing.h"

typedef struct {
    const char* name;
    Conv2dDesc d;
    int B, H, W;
    int has_bias;
} Config;

// Everything the loss callback needs to re-run the forward pass.
typedef struct {
    Conv2dDesc d;
    int B, H, W, Ho, Wo;
    float* inp;     // (B, C_in, H, W)
    float* weight;  // (C_out, C_in, kh, kw), raw (before the mask)
    float* bias;    // (C_out) or NULL
    float* mask;    // (C_out, C_in, kh, kw) or NULL
    float* wm;      // (C_out, C_in, kh, kw), weight * mask
    float* ws;
    float* out;  // (B, C_out, Ho, Wo)
    float* r;    // (B, C_out, Ho, Wo), projection of the loss
    size_t n_in, n_w, n_out;
} Ctx;

static void ctx_init(Ctx* c, const Conv2dDesc* d, int B, int H, int W, int has_bias, uint64_t seed) {
    memset(c, 0, sizeof(*c));
    c->d = *d;
    c->B = B, c->H = H, c->W = W;
    c->Ho = conv2d_out_size(H, d->kh, d->stride, d->pad, d->dilation);
    c->Wo = conv2d_out_size(W, d->kw, d->stride, d->pad, d->dilation);
    c->n_in = (size_t)B * d->C_in * H * W;
    c->n_w = (size_t)d->C_out * d->C_in * d->kh * d->kw;
    c->n_out = (size_t)B * d->C_out * c->Ho * c->Wo;
    c->inp = t_falloc(c->n_in);
    c->weight = t_falloc(c->n_w);
    c->wm = t_falloc(c->n_w);
    c->out = t_falloc(c->n_out);
    c->r = t_falloc(c->n_out);
    size_t nws = conv2d_workspace_floats(d, H, W);
    c->ws = nws ? t_falloc(nws) : NULL;
    // garbage in the workspace must never leak into results
    for (size_t i = 0; i < nws; i++) c->ws[i] = NAN;
    t_fill_uniform(c->inp, c->n_in, seed, -1.0f, 1.0f);
    t_fill_uniform(c->weight, c->n_w, seed + 1, -0.5f, 0.5f);
    t_fill_uniform(c->r, c->n_out, seed + 2, -1.0f, 1.0f);
    if (has_bias) {
        c->bias = t_falloc(d->C_out);
        t_fill_uniform(c->bias, d->C_out, seed + 3, -0.5f, 0.5f);
    }
}

static void ctx_free(Ctx* c) {
    free(c->inp), free(c->weight), free(c->wm), free(c->out), free(c->r), free(c->ws);
    free(c->bias), free(c->mask);
}

// The weight the conv actually sees.
static const float* ctx_weight(Ctx* c) {
    if (!c->mask) return c->weight;
    conv2d_apply_mask(c->wm, c->weight, c->mask, c->n_w);
    return c->wm;
}

static void ctx_forward(Ctx* c) {
    conv2d_forward(c->out, c->inp, ctx_weight(c), c->bias, c->ws, &c->d, c->B, c->H, c->W);
}

static double ctx_loss(void* p) {
    Ctx* c = p;
    ctx_forward(c);
    return t_dot(c->out, c->r, c->n_out);
}

// Direct convolution in double, straight from the definition.
static void conv_reference(double* out, const Ctx* c, const float* weight) {
    const Conv2dDesc* d = &c->d;
    for (int b = 0; b < c->B; b++)
        for (int o = 0; o < d->C_out; o++)
            for (int oy = 0; oy < c->Ho; oy++)
                for (int ox = 0; ox < c->Wo; ox++) {
                    double s = c->bias ? c->bias[o] : 0.0;
                    for (int ci = 0; ci < d->C_in; ci++)
                        for (int i = 0; i < d->kh; i++)
                            for (int j = 0; j < d->kw; j++) {
                                int y = oy * d->stride - d->pad + i * d->dilation;
                                int x = ox * d->stride - d->pad + j * d->dilation;
                                if (y < 0 || y >= c->H || x < 0 || x >= c->W) continue;
                                s += (double)c->inp[((size_t)(b * d->C_in + ci) * c->H + y) * c->W + x] *
                                     weight[((size_t)(o * d->C_in + ci) * d->kh + i) * d->kw + j];
                            }
                    out[((size_t)(b * d->C_out + o) * c->Ho + oy) * c->Wo + ox] = s;
                }
}

// Analytic gradients of ctx_loss w.r.t. inp, raw weight and bias (zeroed first).
static void ctx_backward(Ctx* c, float* dinp, float* dw, float* db) {
    memset(dinp, 0, c->n_in * sizeof(float));
    memset(dw, 0, c->n_w * sizeof(float));
    if (db) memset(db, 0, c->d.C_out * sizeof(float));
    conv2d_backward(dinp, dw, db, c->r, c->inp, ctx_weight(c), c->ws, &c->d, c->B, c->H, c->W);
    if (c->mask) conv2d_apply_mask(dw, dw, c->mask, c->n_w);
}

// Gradient check of the current ctx (masked or not) on inp, weight and bias.
// The loss is exactly linear in each single variable, so central differences
// have no truncation error and the step only scales the fp32 rounding noise of
// the forward: eps 1e-2 instead of 1e-3 cuts that noise (~4e-4 on the 7x7
// config at 1e-3) tenfold, keeping atol 1e-3 / rtol 1e-2 with a wide margin.
#define GRAD_EPS 1e-2
static void check_grads(const char* name, Ctx* c, float* dinp, float* dw, float* db) {
    char what[128];
    snprintf(what, sizeof what, "%s dinp", name);
    t_gradcheck(what, c->inp, dinp, c->n_in, 1, ctx_loss, c, GRAD_EPS, 1e-3, 1e-2);
    snprintf(what, sizeof what, "%s dweight", name);
    t_gradcheck(what, c->weight, dw, c->n_w, 1, ctx_loss, c, GRAD_EPS, 1e-3, 1e-2);
    if (c->bias) {
        snprintf(what, sizeof what, "%s dbias", name);
        t_gradcheck(what, c->bias, db, c->d.C_out, 1, ctx_loss, c, GRAD_EPS, 1e-3, 1e-2);
    }
}

static void test_config(const Config* cfg, uint64_t seed) {
    Ctx c;
    ctx_init(&c, &cfg->d, cfg->B, cfg->H, cfg->W, cfg->has_bias, seed);
    const Conv2dDesc* d = &cfg->d;
    char what[128];

    int gemm = d->kh == 1 && d->kw == 1 && d->stride == 1 && d->pad == 0;
    size_t want_ws = gemm ? 0 : (size_t)d->C_in * d->kh * d->kw * c.Ho * c.Wo;
    CHECK(conv2d_workspace_floats(d, c.H, c.W) == want_ws, "%s: workspace %zu want %zu", cfg->name,
          conv2d_workspace_floats(d, c.H, c.W), want_ws);

    // forward: out is overwritten (NaN beforehand), matches the direct conv
    for (size_t i = 0; i < c.n_out; i++) c.out[i] = NAN;
    ctx_forward(&c);
    double* ref = malloc(c.n_out * sizeof(double));
    float* reff = t_falloc(c.n_out);
    conv_reference(ref, &c, c.weight);
    for (size_t i = 0; i < c.n_out; i++) reff[i] = (float)ref[i];
    snprintf(what, sizeof what, "%s forward", cfg->name);
    t_check_array(what, c.out, reff, c.n_out, 1e-5, 1e-5);

    // backward against finite differences
    float* dinp = t_falloc(c.n_in);
    float* dw = t_falloc(c.n_w);
    float* db = t_falloc(d->C_out);
    ctx_backward(&c, dinp, dw, c.bias ? db : NULL);
    check_grads(cfg->name, &c, dinp, dw, db);

    // a second backward call adds the same gradient again
    float* two = t_falloc(c.n_in + c.n_w + d->C_out);
    for (size_t i = 0; i < c.n_in; i++) two[i] = 2.0f * dinp[i];
    for (size_t i = 0; i < c.n_w; i++) two[c.n_in + i] = 2.0f * dw[i];
    for (int i = 0; i < d->C_out; i++) two[c.n_in + c.n_w + i] = 2.0f * db[i];
    conv2d_backward(dinp, dw, c.bias ? db : NULL, c.r, c.inp, c.weight, c.ws, d, c.B, c.H, c.W);
    snprintf(what, sizeof what, "%s dinp accumulates", cfg->name);
    t_check_array(what, dinp, two, c.n_in, 1e-6, 1e-6);
    snprintf(what, sizeof what, "%s dweight accumulates", cfg->name);
    t_check_array(what, dw, two + c.n_in, c.n_w, 1e-6, 1e-6);
    if (c.bias) {
        snprintf(what, sizeof what, "%s dbias accumulates", cfg->name);
        t_check_array(what, db, two + c.n_in + c.n_w, d->C_out, 1e-6, 1e-6);
    }

    // dinp and dbias are optional; dweight alone is unchanged by skipping them
    memset(dw, 0, c.n_w * sizeof(float));
    conv2d_backward(NULL, dw, NULL, c.r, c.inp, c.weight, c.ws, d, c.B, c.H, c.W);
    for (size_t i = 0; i < c.n_w; i++) two[c.n_in + i] *= 0.5f;
    snprintf(what, sizeof what, "%s dweight without dinp", cfg->name);
    t_check_array(what, dw, two + c.n_in, c.n_w, 1e-6, 1e-6);

    // dweight is optional too (input gradient only, e.g. a frozen classifier)
    float* dinp1 = calloc(c.n_in, sizeof(float));
    conv2d_backward(dinp1, NULL, NULL, c.r, c.inp, c.weight, c.ws, d, c.B, c.H, c.W);
    for (size_t i = 0; i < c.n_in; i++) two[i] *= 0.5f;
    snprintf(what, sizeof what, "%s dinp without dweight", cfg->name);
    t_check_array(what, dinp1, two, c.n_in, 1e-6, 1e-6);
    free(dinp1);

    free(ref), free(reff), free(dinp), free(dw), free(db), free(two);
    ctx_free(&c);
}

static void test_out_size(void) {
    CHECK(conv2d_out_size(7, 3, 1, 1, 1) == 7, "3x3 pad 1 keeps size");
    CHECK(conv2d_out_size(9, 3, 2, 1, 1) == 5, "(9+2-3)/2+1 = 5");
    CHECK(conv2d_out_size(321, 7, 2, 3, 1) == 161, "ResNet conv1 on 321 gives 161");
    CHECK(conv2d_out_size(46, 3, 1, 24, 24) == 46, "ASPP dilation 24 keeps size");
    CHECK(conv2d_out_size(10, 3, 1, 0, 4) == 2, "(10-8-1)/1+1 = 2");
}

// Hand-written expected kernels, one (kh, kw) plane each.
static const float mask3_A[9] = {1, 1, 1, 1, 0, 0, 0, 0, 0};
static const float mask3_B[9] = {1, 1, 1, 1, 1, 0, 0, 0, 0};
static const float mask7_A[49] = {
    1, 1, 1, 1, 1, 1, 1,  //
    1, 1, 1, 1, 1, 1, 1,  //
    1, 1, 1, 1, 1, 1, 1,  //
    1, 1, 1, 0, 0, 0, 0,  //
    0, 0, 0, 0, 0, 0, 0,  //
    0, 0, 0, 0, 0, 0, 0,  //
    0, 0, 0, 0, 0, 0, 0,  //
};
static const float mask7_B[49] = {
    1, 1, 1, 1, 1, 1, 1,  //
    1, 1, 1, 1, 1, 1, 1,  //
    1, 1, 1, 1, 1, 1, 1,  //
    1, 1, 1, 1, 0, 0, 0,  //
    0, 0, 0, 0, 0, 0, 0,  //
    0, 0, 0, 0, 0, 0, 0,  //
    0, 0, 0, 0, 0, 0, 0,  //
};

static void test_mask_pattern(int k, char type, const float* want) {
    Conv2dDesc d = {.C_in = 2, .C_out = 3, .kh = k, .kw = k, .stride = 1, .pad = k / 2, .dilation = 1};
    size_t khw = (size_t)k * k, n = 6 * khw;
    float* mask = t_falloc(n);
    conv2d_mask_pixelcnn(mask, &d, type);
    char what[64];
    for (int p = 0; p < 6; p++) {
        snprintf(what, sizeof what, "mask %dx%d %c plane %d", k, k, type, p);
        t_check_array(what, mask + p * khw, want, khw, 0.0, 0.0);
    }
    free(mask);
}

// Masked conv at pixel (cy, cx) of an 8x8 image must depend on exactly the input
// pixels the mask opens: perturbing any other (future) pixel leaves it bit-identical.
static void test_mask_causal(int k, char type) {
    Conv2dDesc d = {.C_in = 2, .C_out = 3, .kh = k, .kw = k, .stride = 1, .pad = k / 2, .dilation = 1};
    Ctx c;
    ctx_init(&c, &d, 1, 8, 8, 1, 700 + k + type);
    c.mask = t_falloc(c.n_w);
    conv2d_mask_pixelcnn(c.mask, &d, type);
    int cy = 4, cx = 4, HW = 64;
    ctx_forward(&c);
    float base[3];
    for (int o = 0; o < 3; o++) base[o] = c.out[o * HW + cy * 8 + cx];
    int bad = 0;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            int i = y - cy + k / 2, j = x - cx + k / 2;
            int inside = i >= 0 && i < k && j >= 0 && j < k;
            int open = inside && c.mask[i * k + j] != 0.0f;
            for (int ci = 0; ci < 2; ci++) c.inp[ci * HW + y * 8 + x] += 1.0f;
            ctx_forward(&c);
            for (int ci = 0; ci < 2; ci++) c.inp[ci * HW + y * 8 + x] -= 1.0f;
            double change = 0.0;
            for (int o = 0; o < 3; o++) change = fmax(change, fabs(c.out[o * HW + cy * 8 + cx] - base[o]));
            if (open ? change < 1e-3 : change != 0.0) {
                if (bad++ < 5)
                    fprintf(stderr, "mask %c %dx%d: input (%d,%d) changes centre by %g, open=%d\n",
                            type, k, k, y, x, change, open);
            }
        }
    CHECK(bad == 0, "masked conv %c %dx%d depends on exactly the open pixels (%d wrong)", type, k, k, bad);
    ctx_free(&c);
}

// Finite differences through w -> w*mask -> conv; closed taps get exactly zero.
static void test_mask_grad(int k, char type) {
    Conv2dDesc d = {.C_in = 2, .C_out = 3, .kh = k, .kw = k, .stride = 1, .pad = k / 2, .dilation = 1};
    Ctx c;
    ctx_init(&c, &d, 2, 5, 6, 1, 800 + k + type);
    c.mask = t_falloc(c.n_w);
    conv2d_mask_pixelcnn(c.mask, &d, type);
    float* dinp = t_falloc(c.n_in);
    float* dw = t_falloc(c.n_w);
    float* db = t_falloc(d.C_out);
    ctx_backward(&c, dinp, dw, db);
    char name[64];
    snprintf(name, sizeof name, "masked %c %dx%d", type, k, k);
    check_grads(name, &c, dinp, dw, db);
    int leaked = 0;
    for (size_t i = 0; i < c.n_w; i++) leaked += c.mask[i] == 0.0f && dw[i] != 0.0f;
    CHECK(leaked == 0, "%s: %d closed taps got a gradient", name, leaked);
    free(dinp), free(dw), free(db);
    ctx_free(&c);
}

int main(void) {
    const Config configs[] = {
        {"3x3 pad1", {3, 4, 3, 3, 1, 1, 1}, 2, 5, 6, 1},
        {"3x3 dil2 odd", {3, 4, 3, 3, 1, 2, 2}, 2, 7, 9, 0},
        {"3x3 dil4", {2, 3, 3, 3, 1, 4, 4}, 2, 9, 10, 1},
        {"3x3 stride2 odd", {3, 4, 3, 3, 2, 1, 1}, 2, 7, 9, 1},
        {"1x1 gemm", {5, 4, 1, 1, 1, 0, 1}, 2, 5, 6, 1},
        {"1x1 gemm nobias", {5, 4, 1, 1, 1, 0, 1}, 2, 7, 3, 0},
        {"1x1 stride2", {3, 4, 1, 1, 2, 0, 1}, 2, 7, 9, 0},
        {"7x7 stride2 pad3", {3, 2, 7, 7, 2, 3, 1}, 2, 11, 13, 1},
        {"1x3 pad1", {2, 3, 1, 3, 1, 1, 1}, 2, 4, 5, 1},
    };
    test_out_size();
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) test_config(&configs[i], 100 + 10 * i);

    test_mask_pattern(3, 'A', mask3_A);
    test_mask_pattern(3, 'B', mask3_B);
    test_mask_pattern(7, 'A', mask7_A);
    test_mask_pattern(7, 'B', mask7_B);
    test_mask_causal(3, 'A');
    test_mask_causal(3, 'B');
    test_mask_causal(7, 'A');
    test_mask_causal(7, 'B');
    test_mask_grad(3, 'A');
    test_mask_grad(7, 'B');
    return t_report("test_conv");
}
