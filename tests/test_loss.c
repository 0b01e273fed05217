// Losses: hand values, brute-force double references, masks/ignore handling,
// grad_scale + accumulation, and gradients by central differences of the
// double references.
#include <omp.h>
#include <string.h>

#include "loss.h"
#include "testing.h"
#include "tiny_cagnet.h"

// ---------------------------------------------------------------- references
static double ref_ce(const float* z, const uint8_t* y, const float* w, int B, int K, int HW) {
    double num = 0.0, den = 0.0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < HW; i++) {
            int lab = y[b * HW + i];
            if (lab == 255) continue;
            double wp = w ? w[b * HW + i] : 1.0, se = 0.0;
            for (int k = 0; k < K; k++) se += exp((double)z[(b * K + k) * HW + i]);
            num += wp * (log(se) - z[(b * K + lab) * HW + i]);
            den += wp;
        }
    return den > 0.0 ? num / den : 0.0;
}

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static double ref_gan(const float* x, const uint8_t* m, int kind, double t, size_t n) {
    double s = 0.0;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && !m[i]) continue;
        double p = ref_sigmoid(x[i]);
        if (kind == GAN_L1) s += fabs(p - t);
        else if (kind == GAN_LSGAN) s += (p - t) * (p - t);
        else s += -(t * log(p) + (1.0 - t) * log(1.0 - p));
        cnt++;
    }
    return cnt ? s / cnt : 0.0;
}

// mean over valid (pixel, channel); kl != 0 selects KL(mu=a, lv=b), else (a-b)^2
static double ref_masked(int kl, const float* a, const float* b, const uint8_t* v, int B, int C,
                         int HW) {
    double s = 0.0;
    size_t cnt = 0;
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < HW; i++) {
                if (v && !v[n * HW + i]) continue;
                double x = a[(n * C + c) * HW + i], y = b[(n * C + c) * HW + i];
                s += kl ? -0.5 * (1.0 + y - x * x - exp(y)) : (x - y) * (x - y);
                cnt++;
            }
    return cnt ? s / cnt : 0.0;
}

static double ref_rbf(const float* a, const float* b, int D, const float* sig, int S) {
    double d = 0.0, k = 0.0;
    for (int t = 0; t < D; t++) d += ((double)a[t] - b[t]) * ((double)a[t] - b[t]);
    for (int s = 0; s < S; s++) k += exp(-d / (2.0 * sig[s]));
    return k;
}

static double ref_mmd(const float* X, const float* Y, int M, int N, int D, const float* sig, int S) {
    double xx = 0.0, yy = 0.0, xy = 0.0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++) xx += ref_rbf(X + i * D, X + j * D, D, sig, S);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) yy += ref_rbf(Y + i * D, Y + j * D, D, sig, S);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) xy += ref_rbf(X + i * D, Y + j * D, D, sig, S);
    double m2 = xx / ((double)M * M) + yy / ((double)N * N) - 2.0 * xy / ((double)M * N);
    return sqrt(fmax(m2, 0.0));
}

static int all_zero(const float* g, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (g[i] != 0.0f) return 0;
    return 1;
}

// ---------------------------------------------------------------- gradcheck contexts
typedef struct {
    const float *a, *b, *w, *sig;
    const uint8_t* m;
    int kind, B, C, HW, M, N, D, S;
    double t;
} Ctx;

static double f_ce(void* p) {
    Ctx* c = p;
    return ref_ce(c->a, c->m, c->w, c->B, c->C, c->HW);
}
static double f_gan(void* p) {
    Ctx* c = p;
    return ref_gan(c->a, c->m, c->kind, c->t, (size_t)c->HW);
}
static double f_masked(void* p) {
    Ctx* c = p;
    return ref_masked(c->kind, c->a, c->b, c->m, c->B, c->C, c->HW);
}
static double f_mmd(void* p) {
    Ctx* c = p;
    return ref_mmd(c->a, c->b, c->M, c->N, c->D, c->sig, c->S);
}

// ---------------------------------------------------------------- CE
static void test_ce(void) {
    {  // hand case: K=3, logits [1,2,3], label 2
        float z[3] = {1, 2, 3}, dz[3] = {0, 0, 0};
        uint8_t y = 2;
        float l = softmax_ce_forward_backward(dz, z, &y, NULL, 1, 3, 1, 1.0f);
        CHECK_CLOSE(l, 0.40760596, 1e-6, 1e-6, "ce hand loss");
        float want[3] = {0.09003057f, 0.24472847f, 0.66524096f - 1.0f};
        t_check_array("ce hand grad", dz, want, 3, 1e-6, 1e-5);
    }
    enum { B = 2, K = 5, HW = 7, N = B * K * HW };
    float z[N], w[B * HW], dz[N], dz1[N], base[N];
    uint8_t y[B * HW];
    t_fill_normal(z, N, 1, 2.0f);
    t_fill_uniform(w, B * HW, 2, 0.2f, 2.0f);
    t_fill_uniform(base, N, 3, -1.0f, 1.0f);
    for (int p = 0; p < B * HW; p++) y[p] = (uint8_t)(hd_rng_uniform(4, 0, p) * K);
    y[3] = 255;
    y[HW + 5] = 255;
    w[6] = 0.0f;
    w[HW + 1] = 0.0f;
    // ignored and zero-weight pixels: no loss, no gradient (not even -0 noise)
    memset(dz, 0, sizeof dz);
    float l = softmax_ce_forward_backward(dz, z, y, w, B, K, HW, 1.0f);
    CHECK_CLOSE(l, ref_ce(z, y, w, B, K, HW), 1e-6, 1e-5, "ce weighted loss");
    int untouched = 1;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < HW; i++)
            if (y[b * HW + i] == 255 || w[b * HW + i] == 0.0f)
                for (int k = 0; k < K; k++) untouched &= dz[(b * K + k) * HW + i] == 0.0f;
    CHECK(untouched, "ce: ignored / zero-weight pixels got a gradient");
    // the weighted mean must differ from the unweighted one (weights really used)
    float lu = softmax_ce_forward_backward(NULL, z, y, NULL, B, K, HW, 1.0f);
    CHECK_CLOSE(lu, ref_ce(z, y, NULL, B, K, HW), 1e-6, 1e-5, "ce unweighted loss");
    CHECK(fabs(lu - l) > 1e-3, "ce: weights had no effect (%g vs %g)", lu, l);

    Ctx c = {.a = z, .w = w, .m = y, .B = B, .C = K, .HW = HW};
    t_gradcheck("ce weighted", z, dz, N, 1, f_ce, &c, 1e-2, 1e-4, 2e-3);
    memset(dz1, 0, sizeof dz1);
    softmax_ce_forward_backward(dz1, z, y, NULL, B, K, HW, 1.0f);
    c.w = NULL;
    t_gradcheck("ce unweighted", z, dz1, N, 1, f_ce, &c, 1e-2, 1e-4, 2e-3);

    // grad_scale and accumulation: base + 0.5 * grad
    float want[N];
    for (int i = 0; i < N; i++) want[i] = base[i] + 0.5f * dz[i];
    float l2 = softmax_ce_forward_backward(base, z, y, w, B, K, HW, 0.5f);
    CHECK(l2 == l, "ce: grad_scale changed the loss");
    t_check_array("ce scaled accumulate", base, want, N, 1e-6, 1e-5);

    // all ignored, or all weight zero: loss 0, nothing touched
    uint8_t yi[B * HW];
    float w0[B * HW];
    memset(yi, 255, sizeof yi);
    memset(w0, 0, sizeof w0);
    memset(dz, 0, sizeof dz);
    CHECK(softmax_ce_forward_backward(dz, z, yi, NULL, B, K, HW, 1.0f) == 0.0f, "ce all ignored");
    CHECK(softmax_ce_forward_backward(dz, z, y, w0, B, K, HW, 1.0f) == 0.0f, "ce all weight 0");
    CHECK(all_zero(dz, N), "ce: gradient with nothing counted");

    // big logits: max subtraction keeps it finite and right
    float zb[3] = {1000.0f, 1001.0f, 1002.0f}, dzb[3] = {0, 0, 0};
    uint8_t y0 = 0;
    float lb = softmax_ce_forward_backward(dzb, zb, &y0, NULL, 1, 3, 1, 1.0f);
    CHECK_CLOSE(lb, 2.40760596, 1e-5, 1e-5, "ce large logits");
    CHECK(isfinite(dzb[0]) && isfinite(dzb[2]), "ce large logits grad finite");
}

// loss bits must not depend on the thread count (fixed partition)
static void test_ce_determinism(void) {
    enum { B = 2, K = 7, HW = 3001, N = B * K * HW };
    float* z = malloc(sizeof(float) * N);
    uint8_t* y = malloc(B * HW);
    t_fill_normal(z, N, 11, 3.0f);
    for (int p = 0; p < B * HW; p++) y[p] = (uint8_t)(hd_rng_uniform(12, 0, p) * K);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    float l1 = softmax_ce_forward_backward(NULL, z, y, NULL, B, K, HW, 1.0f);
    omp_set_num_threads(3);
    float l3 = softmax_ce_forward_backward(NULL, z, y, NULL, B, K, HW, 1.0f);
    omp_set_num_threads(nt);
    CHECK(l1 == l3, "ce not bitwise reproducible across thread counts: %.9g vs %.9g", l1, l3);
    CHECK_CLOSE(l1, ref_ce(z, y, NULL, B, K, HW), 1e-6, 1e-5, "ce large case");
    free(z);
    free(y);
}

// ---------------------------------------------------------------- GAN
static void test_gan(void) {
    const char* names[3] = {"l1", "lsgan", "bce"};
    // x = 0 (score 0.5) vs target 1; x = 2 (score 0.8807971) vs target 0
    const double at0[3] = {0.5, 0.25, 0.69314718};
    const double at2[3] = {0.88079708, 0.77580349, 2.12692801};
    for (int kind = 0; kind < 3; kind++) {
        float x0 = 0.0f, x2 = 2.0f;
        CHECK_CLOSE(gan_loss_forward_backward(NULL, &x0, NULL, kind, 1.0f, 1, 1.0f), at0[kind],
                    1e-6, 1e-6, names[kind]);
        CHECK_CLOSE(gan_loss_forward_backward(NULL, &x2, NULL, kind, 0.0f, 1, 1.0f), at2[kind],
                    1e-6, 1e-6, names[kind]);
    }
    enum { n = 23 };
    float x[n], dx[n];
    uint8_t m[n];
    t_fill_uniform(x, n, 21, -3.0f, 3.0f);
    for (int i = 0; i < n; i++) m[i] = i % 4 != 1;
    for (int kind = 0; kind < 3; kind++)
        for (int t = 0; t <= 1; t++) {
            float xs[n];
            memcpy(xs, x, sizeof x);
            for (int i = 0; i < n; i++)
                if (!m[i]) xs[i] = 50.0f * (t ? -1.0f : 1.0f);  // would dominate if counted
            memset(dx, 0, sizeof dx);
            float l = gan_loss_forward_backward(dx, xs, m, kind, (float)t, n, 1.0f);
            CHECK_CLOSE(l, ref_gan(xs, m, kind, t, n), 1e-6, 1e-5, names[kind]);
            int untouched = 1;
            for (int i = 0; i < n; i++) untouched &= m[i] || dx[i] == 0.0f;
            CHECK(untouched, "gan %s: masked sample got a gradient", names[kind]);
            Ctx c = {.a = xs, .m = m, .kind = kind, .t = t, .HW = n};
            t_gradcheck(names[kind], xs, dx, n, 1, f_gan, &c, 1e-3, 1e-5, 2e-3);
            // grad_scale + accumulation
            float acc[n], want[n];
            for (int i = 0; i < n; i++) acc[i] = 1.0f, want[i] = 1.0f + 3.0f * dx[i];
            gan_loss_forward_backward(acc, xs, m, kind, (float)t, n, 3.0f);
            t_check_array("gan scaled accumulate", acc, want, n, 1e-6, 1e-5);
        }
    uint8_t none[2] = {0, 0};
    float d2[2] = {0, 0};
    CHECK(gan_loss_forward_backward(d2, x, none, GAN_BCE, 1.0f, 2, 1.0f) == 0.0f &&
              all_zero(d2, 2), "gan: empty mask must give 0 and no gradient");
}

// ---------------------------------------------------------------- KL and MSE
static void test_kl_mse(void) {
    {  // KL hand values: (mu 0, lv 0) -> 0, (mu 1, lv 0) -> 0.5; mean 0.25
        float mu[2] = {0, 1}, lv[2] = {0, 0};
        CHECK_CLOSE(kl_forward_backward(NULL, NULL, mu, lv, NULL, 1, 1, 1, 1.0f), 0.0, 1e-7, 0,
                    "kl(0,0)");
        CHECK_CLOSE(kl_forward_backward(NULL, NULL, mu + 1, lv, NULL, 1, 1, 1, 1.0f), 0.5, 1e-7, 0,
                    "kl(1,0)");
        CHECK_CLOSE(kl_forward_backward(NULL, NULL, mu, lv, NULL, 1, 2, 1, 1.0f), 0.25, 1e-7, 0,
                    "kl mean");
        // MSE hand: a=[1,2], b=[0,4] -> (1+4)/2 = 2.5, da = 2(a-b)/2 = [1,-2]
        float a[2] = {1, 2}, b[2] = {0, 4}, da[2] = {0, 0}, want[2] = {1, -2};
        CHECK_CLOSE(mse_forward_backward(da, a, b, NULL, 1, 1, 2, 1.0f), 2.5, 1e-7, 0, "mse hand");
        t_check_array("mse hand grad", da, want, 2, 1e-7, 0);
    }
    enum { B = 2, C = 3, HW = 5, N = B * C * HW };
    float mu[N], lv[N], tgt[N], dmu[N], dlv[N];
    uint8_t v[B * HW];
    t_fill_normal(mu, N, 31, 1.0f);
    t_fill_uniform(lv, N, 32, -2.0f, 1.0f);
    t_fill_uniform(tgt, N, 33, 0.0f, 1.0f);
    for (int p = 0; p < B * HW; p++) v[p] = p % 3 != 0;
    for (int kl = 1; kl >= 0; kl--) {
        const char* what = kl ? "kl" : "mse";
        const float* b = kl ? lv : tgt;
        memset(dmu, 0, sizeof dmu);
        memset(dlv, 0, sizeof dlv);
        float l = kl ? kl_forward_backward(dmu, dlv, mu, lv, v, B, C, HW, 1.0f)
                     : mse_forward_backward(dmu, mu, tgt, v, B, C, HW, 1.0f);
        CHECK_CLOSE(l, ref_masked(kl, mu, b, v, B, C, HW), 1e-6, 1e-5, what);
        CHECK(fabs(l - ref_masked(kl, mu, b, NULL, B, C, HW)) > 1e-3, "%s: mask had no effect", what);
        int untouched = 1;
        for (int n = 0; n < B; n++)
            for (int c = 0; c < C; c++)
                for (int i = 0; i < HW; i++)
                    if (!v[n * HW + i])
                        untouched &= dmu[(n * C + c) * HW + i] == 0.0f &&
                                     dlv[(n * C + c) * HW + i] == 0.0f;
        CHECK(untouched, "%s: invalid pixel got a gradient", what);
        Ctx c = {.a = mu, .b = kl ? lv : tgt, .m = v, .kind = kl, .B = B, .C = C, .HW = HW};
        t_gradcheck(what, mu, dmu, N, 1, f_masked, &c, 1e-3, 1e-5, 2e-3);
        if (kl) t_gradcheck("kl logvar", lv, dlv, N, 1, f_masked, &c, 1e-3, 1e-5, 2e-3);
        else CHECK(all_zero(dlv, N), "mse wrote a second gradient");
        // grad_scale + accumulation, only one of the KL buffers given
        float acc[N], want[N];
        for (int i = 0; i < N; i++) acc[i] = -0.5f, want[i] = -0.5f + 100.0f * (kl ? dlv[i] : dmu[i]);
        if (kl) kl_forward_backward(NULL, acc, mu, lv, v, B, C, HW, 100.0f);
        else mse_forward_backward(acc, mu, tgt, v, B, C, HW, 100.0f);
        t_check_array("kl/mse scaled accumulate", acc, want, N, 1e-5, 1e-5);
    }
    uint8_t none[B * HW];
    memset(none, 0, sizeof none);
    memset(dmu, 0, sizeof dmu);
    CHECK(kl_forward_backward(dmu, NULL, mu, lv, none, B, C, HW, 1.0f) == 0.0f &&
              mse_forward_backward(dmu, mu, tgt, none, B, C, HW, 1.0f) == 0.0f && all_zero(dmu, N),
          "kl/mse: nothing valid must give 0 and no gradient");
}

// ---------------------------------------------------------------- MMD
static const float SIG[6] = {2, 5, 10, 20, 40, 60};

static void test_mmd_case(int M, int N, int D, float shift, uint64_t seed, int grad) {
    float* X = malloc(sizeof(float) * M * D);
    float* Y = malloc(sizeof(float) * N * D);
    float* dX = calloc((size_t)M * D, sizeof(float));
    float* acc = malloc(sizeof(float) * M * D);
    float* want = malloc(sizeof(float) * M * D);
    float* ws = malloc(sizeof(float) * mmd_workspace_floats(M, N));
    t_fill_uniform(X, (size_t)M * D, seed, 0.0f, 1.0f);
    t_fill_uniform(Y, (size_t)N * D, seed + 1, shift, 1.0f);
    double ref = ref_mmd(X, Y, M, N, D, SIG, 6);
    CHECK(ref > 0.05, "mmd case not clearly positive (%g)", ref);
    float l = mmd_forward_backward(dX, X, Y, M, N, D, SIG, 6, ws, 1.0f);
    char what[64];
    snprintf(what, sizeof what, "mmd M=%d N=%d D=%d", M, N, D);
    CHECK_CLOSE(l, ref, 1e-5, 1e-4, what);
    CHECK(mmd_forward_backward(NULL, X, Y, M, N, D, SIG, 6, ws, 1.0f) == l, "mmd: dX NULL differs");
    if (grad) {
        Ctx c = {.a = X, .b = Y, .sig = SIG, .M = M, .N = N, .D = D, .S = 6};
        t_gradcheck(what, X, dX, (size_t)M * D, 1, f_mmd, &c, 1e-2, 1e-5, 5e-3);
    }
    for (int i = 0; i < M * D; i++) acc[i] = 0.25f, want[i] = 0.25f + 50.0f * dX[i];
    mmd_forward_backward(acc, X, Y, M, N, D, SIG, 6, ws, 50.0f);
    t_check_array("mmd scaled accumulate", acc, want, (size_t)M * D, 1e-5, 1e-4);
    free(X), free(Y), free(dX), free(acc), free(want), free(ws);
}

static void test_mmd(void) {
    {  // hand case: D=1, X={0}, Y={1}, one sigma 0.5: MMD2 = 1 + 1 - 2 e^{-1}
        float x = 0.0f, y = 1.0f, s = 0.5f, dx = 0.0f, ws[5];
        CHECK(mmd_workspace_floats(1, 1) == 5, "mmd workspace size");
        float l = mmd_forward_backward(&dx, &x, &y, 1, 1, 1, &s, 1, ws, 1.0f);
        double m2 = 2.0 - 2.0 * exp(-1.0);
        CHECK_CLOSE(l, sqrt(m2), 1e-6, 1e-6, "mmd hand loss");
        // d/dx of sqrt(2 - 2 exp(-(x-1)^2)) at 0: -2 e^{-1} / sqrt(m2)
        CHECK_CLOSE(dx, -2.0 * exp(-1.0) / sqrt(m2), 1e-6, 1e-5, "mmd hand grad");
    }
    test_mmd_case(5, 7, 8, 0.4f, 41, 1);
    test_mmd_case(6, 3, 8, 0.3f, 43, 1);
    test_mmd_case(40, 50, 600, 0.1f, 45, 0);  // realistic width: float Gram cancellation
    {  // identical sets: loss 0 and no gradient (the sqrt guard)
        enum { M = 6, D = 8 };
        float X[M * D], Y[M * D], dX[M * D], ws[4 * M * M + 2 * M];
        t_fill_uniform(X, M * D, 47, 0.0f, 1.0f);
        memcpy(Y, X, sizeof X);
        memset(dX, 0, sizeof dX);
        CHECK(mmd_workspace_floats(M, M) <= sizeof ws / sizeof ws[0], "ws");
        float l = mmd_forward_backward(dX, X, Y, M, M, D, SIG, 6, ws, 1.0f);
        CHECK(l == 0.0f, "mmd of identical sets = %g", l);
        CHECK(all_zero(dX, M * D), "mmd of identical sets: nonzero gradient");
    }
}

// Grouped MMD (one group per class): sqrt of the summed per-group MMD2, with an
// empty group and groups of unequal sizes; gradient by finite differences.
typedef struct { const float *X, *Y; const int *xs, *ys; int G, D; } GroupCtx;
static double ref_grouped(const float* X, const float* Y, const int* xs, const int* ys, int G,
                          int D) {
    double tot = 0.0;
    for (int g = 0; g < G; g++) {
        int M = xs[g + 1] - xs[g], N = ys[g + 1] - ys[g];
        if (M <= 0 || N <= 0) continue;
        double m = ref_mmd(X + xs[g] * D, Y + ys[g] * D, M, N, D, SIG, 6);
        tot += m * m;
    }
    return sqrt(tot);
}
static double f_grouped(void* p) {
    GroupCtx* c = p;
    return ref_grouped(c->X, c->Y, c->xs, c->ys, c->G, c->D);
}
static void test_mmd_grouped(void) {
    enum { D = 6, G = 3 };
    int xs[G + 1] = {0, 4, 4, 9}, ys[G + 1] = {0, 3, 5, 11};  // group 1 has no X rows
    float X[9 * D], Y[11 * D], dX[9 * D];
    t_fill_uniform(X, 9 * D, 61, 0.0f, 1.0f);
    t_fill_uniform(Y, 11 * D, 62, 0.3f, 1.0f);
    memset(dX, 0, sizeof dX);
    size_t nws = mmd_grouped_workspace_floats(xs, ys, G);
    CHECK(nws == mmd_workspace_floats(5, 6), "grouped workspace = largest group's (%zu)", nws);
    float* ws = malloc(nws * sizeof(float));
    double ref = ref_grouped(X, Y, xs, ys, G, D);
    float l = mmd_grouped_forward_backward(dX, X, Y, xs, ys, G, D, SIG, 6, ws, 1.0f);
    CHECK_CLOSE(l, ref, 1e-5, 1e-4, "grouped mmd loss");
    // not the MMD of the pooled sets: grouping must matter
    double pooled = ref_mmd(X, Y, 9, 11, D, SIG, 6);
    CHECK(fabs(pooled - ref) > 1e-3, "grouped %g vs pooled %g should differ", ref, pooled);
    GroupCtx c = {X, Y, xs, ys, G, D};
    t_gradcheck("grouped mmd", X, dX, 9 * D, 1, f_grouped, &c, 1e-2, 1e-5, 5e-3);
    free(ws);
}

// loss.content = mmd on a batch whose every pixel is ignored: no rows to
// match, so the content loss is 0 and nothing touches the (empty) row buffer
// (UBSan: memset(NULL, 0, 0) before the guard).
static void test_content_mmd_no_valid_pixel(void) {
    Config* cfg = tiny_config(0, 16);
    tiny_set(cfg, "loss.content=mmd");
    uint8_t unseen[3] = {0, 0, 1};
    CagNet m;
    tiny_cagnet(&m, cfg, 3, unseen);
    float* img = t_falloc(3 * 16 * 16);
    t_fill_normal(img, 3 * 16 * 16, 5, 1.0f);
    uint8_t lbl[16 * 16];
    memset(lbl, 255, sizeof lbl);
    StepRng rng = {.seed = 3, .iter = 0, .sample0 = 0, .training = 1};
    Step1Losses L;
    memset(&L, 0, sizeof L);
    cagnet_step1(&m, img, lbl, NULL, &rng, NULL, &L);
    CHECK(L.g_content == 0.0f, "content MMD of an all-ignore batch: %g, want 0", L.g_content);
    free(img);
    cagnet_free(&m);
    config_free(cfg);
}

int main(void) {
    test_content_mmd_no_valid_pixel();
    test_mmd_grouped();
    test_ce();
    test_ce_determinism();
    test_gan();
    test_kl_mse();
    test_mmd();
    return t_report("test_loss");
}
