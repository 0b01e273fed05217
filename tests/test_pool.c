// maxpool2d: output sizes (PyTorch's ceil_mode rule, hand-computed), forward
// against a brute-force scan, tie/padding/NaN rules, backward by finite
// differences on inputs without near-ties.
#include <math.h>
#include <string.h>

#include "pool.h"
#include "testing.h"

typedef struct {
    int B, C, H, W, k, stride, pad, ceil_mode;
    int Ho, Wo;
    float* inp;  // (B, C, H, W)
    float* out;  // (B, C, Ho, Wo)
    int* argmax;
    float* r;    // (B, C, Ho, Wo)
} Ctx;

static void test_out_size(void) {
    // {in, k, stride, pad, ceil_mode, want}; PyTorch: ceil((in+2p-k)/s)+1, minus
    // one when the last window would start at or beyond in + p
    const int cases[][6] = {
        {65, 3, 2, 1, 1, 33},  {65, 3, 2, 1, 0, 33}, {6, 3, 2, 1, 1, 4},  {6, 3, 2, 1, 0, 3},
        {7, 3, 2, 1, 1, 4},    {7, 3, 2, 1, 0, 4},   {161, 3, 2, 1, 1, 81}, {184, 3, 2, 1, 1, 93},
        {184, 3, 2, 1, 0, 92}, {5, 2, 2, 0, 1, 3},   {5, 2, 2, 0, 0, 2},  {4, 2, 2, 0, 1, 2},
        // window o starts at input index o*s - p; one starting at >= in is dropped
        {5, 2, 2, 1, 1, 3},  // ceil gives 4, window 3 would start at 5 (right padding)
        {4, 2, 3, 1, 1, 2},  // ceil gives 3, window 2 would start at 5 (right padding)
        {3, 3, 3, 1, 1, 2},  // window 1 starts at 2 < 3: kept (floor gives 1)
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int* c = cases[i];
        int got = maxpool2d_out_size(c[0], c[1], c[2], c[3], c[4]);
        CHECK(got == c[5], "maxpool out size in %d k %d s %d p %d ceil %d: got %d want %d", c[0], c[1],
              c[2], c[3], c[4], got, c[5]);
    }
}

// Distinct values 0.01 apart in shuffled order: no ties, and a finite-difference
// step of 1e-3 never changes which input wins a window.
static void fill_shuffled(float* x, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) x[i] = 0.01f * ((float)i - 0.5f * (float)n);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(hd_rng_uniform(seed, 1, i) * (float)(i + 1));
        if (j > i) j = i;
        float t = x[i];
        x[i] = x[j], x[j] = t;
    }
}

static void ctx_forward(Ctx* c) {
    maxpool2d_forward(c->out, c->argmax, c->inp, c->B, c->C, c->H, c->W, c->k, c->stride, c->pad,
                      c->ceil_mode);
}

static double ctx_loss(void* p) {
    Ctx* c = p;
    ctx_forward(c);
    return t_dot(c->out, c->r, (size_t)c->B * c->C * c->Ho * c->Wo);
}

static void test_config(int B, int C, int H, int W, int k, int stride, int pad, int ceil_mode,
                        uint64_t seed) {
    Ctx c = {B, C, H, W, k, stride, pad, ceil_mode, 0, 0, NULL, NULL, NULL, NULL};
    c.Ho = maxpool2d_out_size(H, k, stride, pad, ceil_mode);
    c.Wo = maxpool2d_out_size(W, k, stride, pad, ceil_mode);
    size_t n_in = (size_t)B * C * H * W, n_out = (size_t)B * C * c.Ho * c.Wo;
    c.inp = malloc(n_in * sizeof(float));
    c.out = malloc(n_out * sizeof(float));
    c.argmax = malloc(n_out * sizeof(int));
    c.r = malloc(n_out * sizeof(float));
    fill_shuffled(c.inp, n_in, seed);
    t_fill_uniform(c.r, n_out, seed + 1, -1.0f, 1.0f);
    char name[96];
    snprintf(name, sizeof name, "pool %dx%d k%d s%d p%d ceil%d", H, W, k, stride, pad, ceil_mode);

    // brute force: every input pixel is tested for membership in every window
    ctx_forward(&c);
    int bad = 0;
    for (int bc = 0; bc < B * C; bc++)
        for (int oy = 0; oy < c.Ho; oy++)
            for (int ox = 0; ox < c.Wo; ox++) {
                double best = -INFINITY;
                int arg = -1;
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        int in_y = y >= oy * stride - pad && y < oy * stride - pad + k;
                        int in_x = x >= ox * stride - pad && x < ox * stride - pad + k;
                        double v = c.inp[(size_t)bc * H * W + y * W + x];
                        if (in_y && in_x && v > best) best = v, arg = y * W + x;
                    }
                size_t o = (size_t)bc * c.Ho * c.Wo + oy * c.Wo + ox;
                if (arg < 0 || c.out[o] != (float)best || c.argmax[o] != arg) {
                    if (bad++ < 5)
                        fprintf(stderr, "%s: out[%zu] %g argmax %d, want %g at %d\n", name, o,
                                c.out[o], c.argmax[o], best, arg);
                }
            }
    CHECK(bad == 0, "%s: forward matches brute force (%d wrong)", name, bad);

    float* dinp = calloc(n_in, sizeof(float));
    maxpool2d_backward(dinp, c.r, c.argmax, B, C, H, W, c.Ho, c.Wo);
    t_gradcheck(name, c.inp, dinp, n_in, 1, ctx_loss, &c, 1e-3, 1e-3, 1e-2);

    float* twice = malloc(n_in * sizeof(float));
    for (size_t i = 0; i < n_in; i++) twice[i] = 2.0f * dinp[i];
    maxpool2d_backward(dinp, c.r, c.argmax, B, C, H, W, c.Ho, c.Wo);
    t_check_array("pool backward accumulates", dinp, twice, n_in, 0.0, 1e-6);

    free(c.inp), free(c.out), free(c.argmax), free(c.r), free(dinp), free(twice);
}

// Hand-computed: ties pick the first in raster order, padding never wins over
// negative inputs, NaN propagates.
static void test_rules(void) {
    float out[4];
    int am[4];
    const float tie[4] = {1, 3, 3, 2};
    maxpool2d_forward(out, am, tie, 1, 1, 2, 2, 2, 2, 0, 0);
    CHECK(out[0] == 3.0f && am[0] == 1, "tie: got %g at %d, want 3 at 1", out[0], am[0]);

    // 3x3 all negative, k3 s2 p1 ceil -> 2x2; windows rows/cols {0,1} and {1,2}
    const float neg[9] = {-5, -6, -7, -8, -9, -4, -3, -2, -1};
    const float want[4] = {-5, -4, -2, -1};
    const int want_am[4] = {0, 5, 7, 8};
    maxpool2d_forward(out, am, neg, 1, 1, 3, 3, 3, 2, 1, 1);
    t_check_array("negative input, padded windows", out, want, 4, 0.0, 0.0);
    CHECK(am[0] == want_am[0] && am[1] == want_am[1] && am[2] == want_am[2] && am[3] == want_am[3],
          "negative input argmax %d %d %d %d", am[0], am[1], am[2], am[3]);

    const float nan_in[4] = {1, NAN, 5, 2};
    maxpool2d_forward(out, am, nan_in, 1, 1, 2, 2, 2, 2, 0, 0);
    CHECK(isnan(out[0]) && am[0] == 1, "NaN propagates: got %g at %d", out[0], am[0]);
}

int main(void) {
    test_out_size();
    test_rules();
    test_config(2, 3, 6, 6, 3, 2, 1, 1, 10);  // DeepLabv2 pool, even size (ceil adds a row)
    test_config(2, 3, 7, 7, 3, 2, 1, 1, 20);  // DeepLabv2 pool, odd size
    test_config(2, 3, 7, 9, 3, 2, 1, 0, 30);
    test_config(2, 3, 6, 6, 3, 2, 1, 0, 40);
    test_config(2, 2, 5, 5, 2, 2, 1, 1, 50);  // ceil rule drops the padding-only window
    test_config(2, 2, 7, 9, 2, 2, 0, 1, 60);  // partial last window on the right/bottom
    test_config(1, 2, 13, 11, 3, 2, 1, 1, 70);
    test_config(1, 2, 6, 7, 3, 1, 1, 0, 80);  // stride 1, heavy overlap
    return t_report("test_pool");
}
