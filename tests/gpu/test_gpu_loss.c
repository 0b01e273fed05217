// The CUDA losses (loss_cuda.cu) against the CPU reference (loss.c) on the
// same random inputs: softmax CE with ignored pixels, weights, zero weights
// and all-zero weights; the three GAN losses with both targets and a mask; KL
// and MSE with and without a valid map; grouped MMD with empty groups, one
// group and X = Y (no gradient under the guard). Gradients start from random
// values, so the accumulation (+=) is checked, and entries the loss does not
// depend on must come back bit-identical. Every GPU call runs twice: loss and
// gradients must be bitwise equal run to run. Sizes reach past 1024 blocks of
// 256, the reduction's grid cap. Exits 77 (ctest: skipped) without a GPU.
#include <string.h>

#include "common.h"
#include "loss.h"
#include "testing.h"
#include "zsseg_cuda.h"

static DeviceArena* arena;
static CudaContext* ctx;

static void* dev_upload_bytes(const void* h, size_t bytes) {
    void* d = device_arena_alloc(arena, bytes ? bytes : 1);
    cuda_memcpy_h2d(d, h, bytes);
    return d;
}
static float* dev_upload(const float* h, size_t n) {
    return dev_upload_bytes(h, n * sizeof(float));
}
static float* host_uniform(size_t n, uint64_t seed, float lo, float hi) {
    float* h = t_falloc(n);
    t_fill_uniform(h, n, seed, lo, hi);
    return h;
}
// 1 with probability p, else 0.
static uint8_t* host_mask(size_t n, float p, uint64_t seed) {
    uint8_t* m = callocCheck(n ? n : 1, 1);
    for (size_t i = 0; i < n; i++) m[i] = hd_rng_uniform(seed, 96, i) < p;
    return m;
}
// Per-element "not counted" flags of a (B, C, HW) tensor from per-pixel
// counted flags (B, HW); NULL counted = all counted.
static uint8_t* elem_skip(const uint8_t* counted, int B, int C, int HW) {
    size_t n = (size_t)B * C * HW;
    uint8_t* s = callocCheck(n ? n : 1, 1);
    if (counted)
        for (size_t e = 0; e < n; e++) s[e] = !counted[e / ((size_t)C * HW) * HW + e % HW];
    return s;
}

// ---------------------------------------------------------------- checks
// One gradient buffer: a random start in [-scale, scale] (scale about the
// size of the loss's gradient, so the comparison still sees the loss's part),
// the CPU result, and the device buffers of the two GPU runs.
typedef struct {
    size_t n;
    float *init, *cpu;
    float* dev[2];
} Grad;

static Grad grad_make(size_t n, uint64_t seed, float scale) {
    Grad g = {n, host_uniform(n, seed, -scale, scale), t_falloc(n), {NULL, NULL}};
    memcpy(g.cpu, g.init, n * sizeof(float));
    for (int r = 0; r < 2; r++) g.dev[r] = dev_upload(g.init, n);
    return g;
}

// Run 0 against the CPU (|got - want| <= atol_rel * max|want| + 1e-5 |want|),
// run 1 bitwise equal to run 0, and the entries with skip[i] (NULL: none)
// bitwise equal to the start.
static void grad_check(const char* what, Grad* g, const uint8_t* skip, double atol_rel) {
    float* got[2];
    for (int r = 0; r < 2; r++) {
        got[r] = t_falloc(g->n);
        cuda_memcpy_d2h(got[r], g->dev[r], g->n * sizeof(float));
    }
    double amax = 0.0;
    for (size_t i = 0; i < g->n; i++) amax = fmax(amax, fabs(g->cpu[i]));
    char name[160];
    snprintf(name, sizeof name, "%s vs CPU", what);
    t_check_array(name, got[0], g->cpu, g->n, atol_rel * amax, 1e-5);
    size_t rerun = 0, moved = 0, changed = 0;
    for (size_t i = 0; i < g->n; i++) {
        rerun += memcmp(&got[0][i], &got[1][i], sizeof(float)) != 0;
        if (skip && skip[i]) moved += memcmp(&got[0][i], &g->init[i], sizeof(float)) != 0;
        else changed += got[0][i] != g->init[i];
    }
    CHECK(rerun == 0, "%s: %zu of %zu elements differ between two identical GPU runs", what, rerun,
          g->n);
    CHECK(moved == 0, "%s: %zu elements the loss does not depend on were changed", what, moved);
    // the loss's own entries must have received something (guards a no-op kernel)
    CHECK(changed > 0 || g->n == 0 || (skip && memchr(skip, 0, g->n) == NULL),
          "%s: no gradient was added", what);
    free(got[0]), free(got[1]), free(g->init), free(g->cpu);
}

// Two GPU losses bitwise equal, the first within 1e-5 relative of the CPU's.
static void loss_check(const char* what, const float gpu[2], float cpu, double atol) {
    CHECK(memcmp(&gpu[0], &gpu[1], sizeof(float)) == 0,
          "%s: loss differs between two identical GPU runs (%.9g vs %.9g)", what, gpu[0], gpu[1]);
    CHECK_CLOSE(gpu[0], cpu, atol, 1e-5, what);
}

// ---------------------------------------------------------------- cross-entropy
// weights: 0 none, 1 random in [0, 2) with about 10% exact zeros, 2 all zero.
static void check_ce(const char* what, int B, int K, int HW, int weights, int with_grad,
                     float grad_scale) {
    size_t P = (size_t)B * HW, n = P * K;
    float* logits = host_uniform(n, 1, -3.0f, 3.0f);
    uint8_t* labels = callocCheck(P, 1);
    for (size_t p = 0; p < P; p++) {
        float u = hd_rng_uniform(2, 97, p);
        labels[p] = u < 0.2f ? LOSS_IGNORE : (uint8_t)((u - 0.2f) / 0.8f * (float)K) % K;
    }
    float* w = weights ? host_uniform(P, 3, 0.0f, 2.0f) : NULL;
    for (size_t p = 0; w && p < P; p++)
        if (weights == 2 || hd_rng_uniform(4, 95, p) < 0.1f) w[p] = 0.0f;
    uint8_t* counted = callocCheck(P, 1);
    for (size_t p = 0; p < P; p++) counted[p] = labels[p] != LOSS_IGNORE && (!w || w[p] != 0.0f);
    uint8_t* skip = elem_skip(counted, B, K, HW);

    float* d_logits = dev_upload(logits, n);
    uint8_t* d_labels = dev_upload_bytes(labels, P);
    float* d_w = w ? dev_upload(w, P) : NULL;
    Grad g = grad_make(n, 5, grad_scale / (float)P);
    float cpu = softmax_ce_forward_backward(with_grad ? g.cpu : NULL, logits, labels, w, B, K, HW,
                                            grad_scale);
    float gpu[2];
    for (int r = 0; r < 2; r++)
        gpu[r] = softmax_ce_forward_backward_cuda(ctx, with_grad ? g.dev[r] : NULL, d_logits,
                                                  d_labels, d_w, B, K, HW, grad_scale);
    loss_check(what, gpu, cpu, 0.0);
    if (weights == 2) CHECK(cpu == 0.0f && gpu[0] == 0.0f, "%s: all-zero weights give %g / %g",
                            what, cpu, gpu[0]);
    else CHECK(cpu > 0.1f, "%s: CPU loss %g, test inputs degenerate", what, cpu);
    if (!with_grad) memset(skip, 1, n);  // no gradient buffer: nothing may change
    grad_check(what, &g, skip, 1e-6);
    free(logits), free(labels), free(w), free(counted), free(skip);
    device_arena_reset(arena);
}

static void test_ce(void) {
    check_ce("ce K=5", 2, 5, 37 * 41, 0, 1, 1.0f);
    check_ce("ce weighted K=21", 3, 21, 29 * 31, 1, 1, 0.5f);
    check_ce("ce all-zero weights", 2, 4, 100, 2, 1, 1.0f);
    check_ce("ce no gradient", 2, 7, 333, 1, 0, 1.0f);
    // 2 * 400 * 400 = 320000 pixels > 1024 blocks of 256: grid-stride loops
    check_ce("ce large", 2, 3, 400 * 400, 0, 1, 2.0f);
}

// ---------------------------------------------------------------- GAN
// mask_p: probability a sample counts (< 0: no mask).
static void check_gan(const char* what, int kind, float target, size_t n, float mask_p) {
    float* x = host_uniform(n, 10 + kind, -4.0f, 4.0f);
    uint8_t* mask = mask_p >= 0.0f ? host_mask(n, mask_p, 11) : NULL;
    uint8_t* skip = callocCheck(n, 1);
    for (size_t i = 0; mask && i < n; i++) skip[i] = !mask[i];
    float* d_x = dev_upload(x, n);
    uint8_t* d_mask = mask ? dev_upload_bytes(mask, n) : NULL;
    Grad g = grad_make(n, 12, 0.75f / (float)n);
    float cpu = gan_loss_forward_backward(g.cpu, x, mask, kind, target, n, 0.75f);
    float gpu[2];
    for (int r = 0; r < 2; r++)
        gpu[r] = gan_loss_forward_backward_cuda(ctx, g.dev[r], d_x, d_mask, kind, target, n, 0.75f);
    loss_check(what, gpu, cpu, 0.0);
    if (mask_p == 0.0f) CHECK(gpu[0] == 0.0f, "%s: empty mask gives loss %g", what, gpu[0]);
    else CHECK(cpu > 0.1f, "%s: CPU loss %g, test inputs degenerate", what, cpu);
    grad_check(what, &g, skip, 1e-6);
    free(x), free(mask), free(skip);
    device_arena_reset(arena);
}

static void test_gan(void) {
    const char* names[3] = {"L1", "LSGAN", "BCE"};
    char what[64];
    for (int kind = GAN_L1; kind <= GAN_BCE; kind++) {
        for (int t = 0; t <= 1; t++) {
            snprintf(what, sizeof what, "gan %s target %d", names[kind], t);
            check_gan(what, kind, (float)t, 4097, -1.0f);
            snprintf(what, sizeof what, "gan %s target %d masked", names[kind], t);
            check_gan(what, kind, (float)t, 3001, 0.6f);
        }
    }
    check_gan("gan BCE large masked", GAN_BCE, 1.0f, 300001, 0.5f);
    check_gan("gan LSGAN empty mask", GAN_LSGAN, 0.0f, 777, 0.0f);
}

// ---------------------------------------------------------------- KL and MSE
// valid_p: probability a pixel counts (< 0: no valid map).
static void check_kl(const char* what, int B, int C, int HW, float valid_p, int with_dlv) {
    size_t n = (size_t)B * C * HW, P = (size_t)B * HW;
    float* mu = host_uniform(n, 20, -1.5f, 1.5f);
    float* lv = host_uniform(n, 21, -2.0f, 1.0f);
    uint8_t* valid = valid_p >= 0.0f ? host_mask(P, valid_p, 22) : NULL;
    uint8_t* skip = elem_skip(valid, B, C, HW);
    float *d_mu = dev_upload(mu, n), *d_lv = dev_upload(lv, n);
    uint8_t* d_valid = valid ? dev_upload_bytes(valid, P) : NULL;
    Grad gmu = grad_make(n, 23, 100.0f / (float)n), glv = grad_make(n, 24, 100.0f / (float)n);
    float cpu = kl_forward_backward(gmu.cpu, with_dlv ? glv.cpu : NULL, mu, lv, valid, B, C, HW,
                                    100.0f);
    float gpu[2];
    for (int r = 0; r < 2; r++)
        gpu[r] = kl_forward_backward_cuda(ctx, gmu.dev[r], with_dlv ? glv.dev[r] : NULL, d_mu, d_lv,
                                          d_valid, B, C, HW, 100.0f);
    loss_check(what, gpu, cpu, 0.0);
    CHECK(cpu > 0.1f, "%s: CPU loss %g, test inputs degenerate", what, cpu);
    char name[96];
    snprintf(name, sizeof name, "%s dmu", what);
    grad_check(name, &gmu, skip, 1e-6);
    snprintf(name, sizeof name, "%s dlogvar", what);
    if (!with_dlv) memset(skip, 1, n);
    grad_check(name, &glv, skip, 1e-6);
    free(mu), free(lv), free(valid), free(skip);
    device_arena_reset(arena);
}

static void check_mse(const char* what, int B, int C, int HW, float valid_p) {
    size_t n = (size_t)B * C * HW, P = (size_t)B * HW;
    float* a = host_uniform(n, 30, 0.0f, 1.0f);
    float* b = host_uniform(n, 31, 0.0f, 1.0f);
    uint8_t* valid = valid_p >= 0.0f ? host_mask(P, valid_p, 32) : NULL;
    uint8_t* skip = elem_skip(valid, B, C, HW);
    float *d_a = dev_upload(a, n), *d_b = dev_upload(b, n);
    uint8_t* d_valid = valid ? dev_upload_bytes(valid, P) : NULL;
    Grad ga = grad_make(n, 33, 3.0f / (float)n);
    float cpu = mse_forward_backward(ga.cpu, a, b, valid, B, C, HW, 3.0f);
    float gpu[2];
    for (int r = 0; r < 2; r++)
        gpu[r] = mse_forward_backward_cuda(ctx, ga.dev[r], d_a, d_b, d_valid, B, C, HW, 3.0f);
    loss_check(what, gpu, cpu, 0.0);
    if (valid_p == 0.0f) CHECK(gpu[0] == 0.0f, "%s: no valid pixel gives loss %g", what, gpu[0]);
    else CHECK(cpu > 0.1f, "%s: CPU loss %g, test inputs degenerate", what, cpu);
    grad_check(what, &ga, skip, 1e-6);
    free(a), free(b), free(valid), free(skip);
    device_arena_reset(arena);
}

static void test_kl_mse(void) {
    check_kl("kl", 2, 7, 19 * 23, -1.0f, 1);
    check_kl("kl valid", 3, 5, 31 * 17, 0.7f, 1);
    check_kl("kl valid no dlogvar", 2, 3, 100, 0.5f, 0);
    check_kl("kl large valid", 2, 16, 97 * 101, 0.8f, 1);
    check_mse("mse", 2, 6, 21 * 22, -1.0f);
    check_mse("mse valid", 3, 9, 17 * 19, 0.6f);
    check_mse("mse large valid", 4, 20, 61 * 63, 0.9f);
    check_mse("mse no valid pixel", 2, 4, 50, 0.0f);
}

// ---------------------------------------------------------------- MMD
// Rows of group g: x_sizes[g] and y_sizes[g]. Y = X when same (then the
// guard must leave dX untouched); otherwise Y is shifted, so MMD2 is far
// from the float cancellation of the Gram distances.
static void check_mmd(const char* what, const int* x_sizes, const int* y_sizes, int n_groups, int D,
                      const float* sigmas, int S, int same) {
    int xs[16] = {0}, ys[16] = {0};
    for (int g = 0; g < n_groups; g++) {
        xs[g + 1] = xs[g] + x_sizes[g];
        ys[g + 1] = ys[g] + y_sizes[g];
    }
    size_t nx = (size_t)xs[n_groups] * D, ny = (size_t)ys[n_groups] * D;
    float* X = host_uniform(nx, 40, 0.0f, 1.0f);  // sigmoid features, as CaGNet's
    float* Y = same ? X : host_uniform(ny, 41, 0.2f, 1.0f);
    // rows of groups without a partner get no gradient
    uint8_t* skip = callocCheck(nx ? nx : 1, 1);
    for (int g = 0; g < n_groups; g++)
        if (x_sizes[g] == 0 || y_sizes[g] == 0 || same)
            memset(skip + (size_t)xs[g] * D, 1, (size_t)x_sizes[g] * D);
    size_t ws_n = mmd_grouped_workspace_floats(xs, ys, n_groups);
    float* ws = t_falloc(ws_n);
    float *d_X = dev_upload(X, nx), *d_Y = dev_upload(Y, ny);
    float* d_ws = device_arena_alloc(arena, ws_n * sizeof(float));
    Grad g = grad_make(nx, 42, 1e-5f);
    float cpu = mmd_grouped_forward_backward(g.cpu, X, Y, xs, ys, n_groups, D, sigmas, S, ws, 0.5f);
    float gpu[2];
    for (int r = 0; r < 2; r++)
        gpu[r] = mmd_grouped_forward_backward_cuda(ctx, g.dev[r], d_X, d_Y, xs, ys, n_groups, D,
                                                   sigmas, S, d_ws, 0.5f);
    if (same) {
        CHECK(cpu < 1e-5f && gpu[0] < 1e-5f && gpu[0] == gpu[1],
              "%s: X = Y gives loss %g (CPU) %g / %g (GPU)", what, cpu, gpu[0], gpu[1]);
    } else {
        loss_check(what, gpu, cpu, 0.0);
        CHECK(cpu > 0.01f, "%s: CPU loss %g, test inputs degenerate", what, cpu);
        float no_grad = mmd_grouped_forward_backward_cuda(ctx, NULL, d_X, d_Y, xs, ys, n_groups, D,
                                                          sigmas, S, d_ws, 0.5f);
        CHECK(memcmp(&no_grad, &gpu[0], sizeof(float)) == 0,
              "%s: loss without dX %.9g, with dX %.9g", what, no_grad, gpu[0]);
    }
    // the Gram distances carry float cancellation (loss.h): 1e-5 of the largest entry
    grad_check(what, &g, skip, 1e-5);
    free(X), free(skip), free(ws);
    if (!same) free(Y);
    device_arena_reset(arena);
}

static void test_mmd(void) {
    const float cagnet[6] = {2, 5, 10, 20, 40, 60}, small[3] = {0.5f, 1, 4};
    // empty groups of every kind, and the last non-empty group not the last group
    const int gx[5] = {6, 0, 9, 4, 3}, gy[5] = {5, 3, 0, 7, 0};
    check_mmd("mmd groups", gx, gy, 5, 16, small, 3, 0);
    const int ox[1] = {40}, oy[1] = {33};
    check_mmd("mmd one group", ox, oy, 1, 64, cagnet, 6, 0);
    // 600 x (600 + 550) + 550^2 terms: past the reduction's grid cap
    const int bx[3] = {600, 25, 0}, by[3] = {550, 31, 4};
    check_mmd("mmd large groups", bx, by, 3, 24, cagnet, 6, 0);
    const int sx[3] = {7, 0, 12}, sy[3] = {7, 0, 12};
    check_mmd("mmd X = Y", sx, sy, 3, 16, small, 3, 1);
}

int main(void) {
    if (cuda_device_count() == 0) {
        printf("test_gpu_loss: no GPU visible, skipped\n");
        return 77;
    }
    ctx = cuda_context_create(1, 1);  // TF32 on: the MMD GEMMs must stay fp32 anyway
    arena = device_arena_create((size_t)256 << 20);
    test_ce();
    test_gan();
    test_kl_mse();
    test_mmd();
    cuda_synchronize(ctx);
    device_arena_destroy(arena);
    cuda_context_destroy(ctx);
    return t_report("test_gpu_loss");
}
