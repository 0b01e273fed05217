// The layout / glue kernels (kernels_glue.cu) against the CPU reference on
// the same random inputs: frozen BN, max pooling (ceil_mode, ties, overlapping
// windows), bilinear resize up and down with both corner modes, nearest label
// resize, max fusion, channel blocks, element-wise ops, label embedding, the
// valid count and row gathers. Backwards start from random gradients, so the
// accumulation (+=) is checked. Bitwise where both sides do the same float
// operations; elsewhere the GPU's fused multiply-adds allow relative 1e-5.
// Exits 77 (ctest: skipped) when no GPU is visible.
#include <string.h>

#include "batchnorm.h"
#include "common.h"
#include "pool.h"
#include "resize.h"
#include "tensor_ops.h"
#include "testing.h"
#include "zsseg_cuda.h"

static DeviceArena* arena;
static CudaContext* ctx;

static void* dev_upload_bytes(const void* h, size_t bytes) {
    void* d = device_arena_alloc(arena, bytes);
    cuda_memcpy_h2d(d, h, bytes);
    return d;
}
static float* dev_upload(const float* h, size_t n) {
    return dev_upload_bytes(h, n * sizeof(float));
}
static float* dev_alloc(size_t n) { return device_arena_alloc(arena, n * sizeof(float)); }
static float* host_random(size_t n, uint64_t seed) {
    float* h = t_falloc(n);
    t_fill_uniform(h, n, seed, -1.0f, 1.0f);
    return h;
}
// Random values on a grid of 1/4 steps: many exact ties.
static float* host_coarse(size_t n, uint64_t seed) {
    float* h = host_random(n, seed);
    for (size_t i = 0; i < n; i++) h[i] = floorf(h[i] * 4.0f) / 4.0f;
    return h;
}
// Labels in [0, K) with about a quarter 255 (ignored).
static uint8_t* host_labels(size_t n, int K, uint64_t seed) {
    uint8_t* l = callocCheck(n ? n : 1, 1);
    for (size_t i = 0; i < n; i++) {
        float u = hd_rng_uniform(seed, 97, i);
        l[i] = u < 0.25f ? 255 : (uint8_t)((u - 0.25f) / 0.75f * (float)K) % K;
    }
    return l;
}

// Download n floats from d and compare with want: bitwise, or within the
// fused-multiply-add tolerance (|got - want| <= atol + 1e-5 |want|).
static void expect_exact(const char* what, const float* d, const float* want, size_t n) {
    float* got = t_falloc(n);
    cuda_memcpy_d2h(got, d, n * sizeof(float));
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (!(got[i] == want[i]) && bad++ == 0) first = i;
    CHECK(bad == 0, "%s: %zu of %zu elements not bit-identical (first [%zu]: %.9g vs %.9g)", what,
          bad, n, first, bad ? got[first] : 0.0f, bad ? want[first] : 0.0f);
    free(got);
}
static void expect_close(const char* what, const float* d, const float* want, size_t n,
                         double atol) {
    float* got = t_falloc(n);
    cuda_memcpy_d2h(got, d, n * sizeof(float));
    t_check_array(what, got, want, n, atol, 1e-5);
    free(got);
}
static void expect_bytes(const char* what, const void* d, const void* want, size_t bytes) {
    void* got = mallocCheck(bytes ? bytes : 1);
    cuda_memcpy_d2h(got, d, bytes);
    CHECK(memcmp(got, want, bytes) == 0, "%s: bytes differ", what);
    free(got);
}

// ---------------------------------------------------------------- fill, axpy, batch norm

static void test_fill_axpy(void) {
    enum { N = 10007 };  // not a multiple of the block size
    float* x = host_random(N, 1);
    float* y = host_random(N, 2);
    float* want = t_falloc(N);
    float* d_y = dev_upload(y, N);
    fill_cuda(ctx, d_y, 0.37f, N);
    for (int i = 0; i < N; i++) want[i] = 0.37f;
    expect_exact("fill", d_y, want, N);

    cuda_memcpy_h2d(d_y, y, N * sizeof(float));
    axpy_cuda(ctx, d_y, dev_upload(x, N), -0.7f, N);
    for (int i = 0; i < N; i++) want[i] = y[i] + -0.7f * x[i];
    expect_close("axpy", d_y, want, N, 1e-7);
    free(x), free(y), free(want);
}

static void test_batchnorm(void) {
    enum { B = 2, C = 5, HW = 37, N = B * C * HW };
    float *mean = host_random(C, 3), *gamma = host_random(C, 4), *beta = host_random(C, 5);
    float* var = t_falloc(C);
    t_fill_uniform(var, C, 6, 0.05f, 2.0f);
    const float eps = 1e-5f;
    float scale[C], shift[C];
    frozen_bn_fold(scale, shift, mean, var, gamma, beta, eps, C);
    float *d_scale = dev_alloc(C), *d_shift = dev_alloc(C);
    frozen_bn_fold_cuda(ctx, d_scale, d_shift, dev_upload(mean, C), dev_upload(var, C),
                        dev_upload(gamma, C), dev_upload(beta, C), eps, C);
    // double math on both sides; a fused multiply-add in double can move the
    // float result by one ulp at most
    expect_close("bn fold scale", d_scale, scale, C, 0.0);
    expect_close("bn fold shift", d_shift, shift, C, 1e-7);

    float* x = host_random(N, 7);
    float* out = t_falloc(N);
    float *d_x = dev_upload(x, N), *d_out = dev_alloc(N);
    d_scale = dev_upload(scale, C), d_shift = dev_upload(shift, C);  // same fold on both sides
    frozen_bn_forward(out, x, scale, shift, B, C, HW);
    frozen_bn_forward_cuda(ctx, d_out, d_x, d_scale, d_shift, B, C, HW);
    expect_close("bn forward", d_out, out, N, 1e-6);
    frozen_bn_forward_cuda(ctx, d_x, d_x, d_scale, d_shift, B, C, HW);  // in place
    expect_close("bn forward in place", d_x, out, N, 1e-6);

    float* dout = host_random(N, 8);
    float* dinp = host_random(N, 9);
    float* d_dinp = dev_upload(dinp, N);
    frozen_bn_backward(dinp, dout, scale, B, C, HW);
    frozen_bn_backward_cuda(ctx, d_dinp, dev_upload(dout, N), d_scale, B, C, HW);
    expect_close("bn backward (accumulated)", d_dinp, dinp, N, 1e-6);
    free(mean), free(gamma), free(beta), free(var), free(x), free(out), free(dout), free(dinp);
}

// ---------------------------------------------------------------- max pooling

// Forward: values and argmax bitwise. Backward: the gather adds in the CPU's
// order with no multiply, so bitwise too, overlapping windows included.
static void check_pool(const char* what, int B, int C, int H, int W, int k, int stride, int pad,
                       int ceil_mode, int coarse) {
    int Ho = maxpool2d_out_size(H, k, stride, pad, ceil_mode);
    int Wo = maxpool2d_out_size(W, k, stride, pad, ceil_mode);
    size_t n_in = (size_t)B * C * H * W, n_out = (size_t)B * C * Ho * Wo;
    float* x = coarse ? host_coarse(n_in, 11) : host_random(n_in, 11);
    float* out = t_falloc(n_out);
    int* am = mallocCheck(n_out * sizeof(int));
    float *d_out = dev_alloc(n_out), *d_x = dev_upload(x, n_in);
    int* d_am = device_arena_alloc(arena, n_out * sizeof(int));
    maxpool2d_forward(out, am, x, B, C, H, W, k, stride, pad, ceil_mode);
    maxpool2d_forward_cuda(ctx, d_out, d_am, d_x, B, C, H, W, k, stride, pad, ceil_mode);
    char name[128];
    snprintf(name, sizeof name, "%s forward", what);
    expect_exact(name, d_out, out, n_out);
    snprintf(name, sizeof name, "%s argmax", what);
    expect_bytes(name, d_am, am, n_out * sizeof(int));

    float* dout = host_random(n_out, 12);
    float* dinp = host_random(n_in, 13);
    float* d_dinp = dev_upload(dinp, n_in);
    maxpool2d_backward(dinp, dout, am, B, C, H, W, Ho, Wo);
    maxpool2d_backward_cuda(ctx, d_dinp, dev_upload(dout, n_out), d_am, B, C, H, W, Ho, Wo, k,
                            stride, pad);
    snprintf(name, sizeof name, "%s backward", what);
    expect_exact(name, d_dinp, dinp, n_in);
    free(x), free(out), free(am), free(dout), free(dinp);
}

static void test_pool(void) {
    // the backbone stem: k3 s2 p1 ceil, odd and even sizes
    check_pool("pool 3/2/1 ceil 13x11", 2, 3, 13, 11, 3, 2, 1, 1, 0);
    check_pool("pool 3/2/1 ceil 8x8 ties", 2, 3, 8, 8, 3, 2, 1, 1, 1);
    // ceil_mode window hanging over the right edge without padding
    check_pool("pool 3/2/0 ceil 10x9 ties", 1, 2, 10, 9, 3, 2, 0, 1, 1);
    check_pool("pool 2/2/0 floor 7x9", 2, 2, 7, 9, 2, 2, 0, 0, 0);
    // stride 1: every input sits in up to 9 windows
    check_pool("pool 3/1/1 6x5 ties", 1, 3, 6, 5, 3, 1, 1, 0, 1);
    // stride > k: some inputs are in no window
    check_pool("pool 2/3/1 11x10", 1, 2, 11, 10, 2, 3, 1, 1, 0);
}

// ---------------------------------------------------------------- resize

static void check_bilinear(int B, int C, int H, int W, int Ho, int Wo, int ac) {
    size_t n_in = (size_t)B * C * H * W, n_out = (size_t)B * C * Ho * Wo;
    float* x = host_random(n_in, 21);
    float* out = t_falloc(n_out);
    float *d_out = dev_alloc(n_out), *d_x = dev_upload(x, n_in);
    resize_bilinear_forward(out, x, B, C, H, W, Ho, Wo, ac);
    resize_bilinear_forward_cuda(ctx, d_out, d_x, B, C, H, W, Ho, Wo, ac);
    char name[128];
    snprintf(name, sizeof name, "bilinear %dx%d -> %dx%d ac %d forward", H, W, Ho, Wo, ac);
    expect_close(name, d_out, out, n_out, 1e-6);

    float* dout = host_random(n_out, 22);
    float* dinp = host_random(n_in, 23);
    float* d_dinp = dev_upload(dinp, n_in);
    resize_bilinear_backward(dinp, dout, B, C, H, W, Ho, Wo, ac);
    resize_bilinear_backward_cuda(ctx, d_dinp, dev_upload(dout, n_out), B, C, H, W, Ho, Wo, ac);
    snprintf(name, sizeof name, "bilinear %dx%d -> %dx%d ac %d backward", H, W, Ho, Wo, ac);
    // up to ~(2 Ho/H)(2 Wo/W) terms per input gradient, each rounded once
    // differently: the absolute slack is that of the sum's magnitude
    expect_close(name, d_dinp, dinp, n_in, 1e-5);
    free(x), free(out), free(dout), free(dinp);
}

static void check_nearest(int B, int H, int W, int Ho, int Wo) {
    size_t n_in = (size_t)B * H * W, n_out = (size_t)B * Ho * Wo;
    uint8_t* l = host_labels(n_in, 21, 24);
    uint8_t* out = mallocCheck(n_out);
    uint8_t* d_out = device_arena_alloc(arena, n_out);
    resize_nearest_labels(out, l, B, H, W, Ho, Wo);
    resize_nearest_labels_cuda(ctx, d_out, dev_upload_bytes(l, n_in), B, H, W, Ho, Wo);
    char name[128];
    snprintf(name, sizeof name, "nearest labels %dx%d -> %dx%d", H, W, Ho, Wo);
    expect_bytes(name, d_out, out, n_out);
    free(l), free(out);
}

static void test_resize(void) {
    for (int ac = 0; ac < 2; ac++) {
        check_bilinear(2, 3, 13, 11, 5, 7, ac);   // down
        check_bilinear(2, 2, 5, 4, 17, 23, ac);   // up (many outputs per input)
        check_bilinear(1, 2, 33, 31, 8, 9, ac);   // down by ~4: inputs with no output
        check_bilinear(1, 3, 9, 9, 9, 9, ac);     // same size
        check_bilinear(1, 2, 7, 12, 21, 5, ac);   // up in H, down in W
        check_bilinear(2, 1, 1, 3, 4, 1, ac);     // single row / column
    }
    check_nearest(2, 13, 11, 5, 7);
    check_nearest(2, 5, 4, 17, 23);
    check_nearest(1, 321, 321, 41, 41);
}

// ---------------------------------------------------------------- max fusion

static void check_max_fuse(int k) {
    enum { N = 5003 };
    float* in[8];
    float* d_in[8];
    float* din[8];
    float* d_din[8];
    for (int j = 0; j < k; j++) {
        in[j] = host_coarse(N, 31 + j);  // ties between maps: the first one wins
        d_in[j] = dev_upload(in[j], N);
        din[j] = j == 1 ? NULL : host_random(N, 41 + j);  // map 1 without gradient
        d_din[j] = din[j] ? dev_upload(din[j], N) : NULL;
    }
    float* out = t_falloc(N);
    uint8_t* which = mallocCheck(N);
    float* d_out = dev_alloc(N);
    uint8_t* d_which = device_arena_alloc(arena, N);
    max_fuse_forward(out, which, (const float* const*)in, k, N);
    max_fuse_forward_cuda(ctx, d_out, d_which, (const float* const*)d_in, k, N);
    char name[64];
    snprintf(name, sizeof name, "max fuse k %d forward", k);
    expect_exact(name, d_out, out, N);
    snprintf(name, sizeof name, "max fuse k %d which", k);
    expect_bytes(name, d_which, which, N);

    float* dout = host_random(N, 51);
    max_fuse_backward(din, dout, which, k, N);
    max_fuse_backward_cuda(ctx, d_din, dev_upload(dout, N), d_which, k, N);
    for (int j = 0; j < k; j++) {
        if (!din[j]) continue;
        snprintf(name, sizeof name, "max fuse k %d backward map %d", k, j);
        expect_exact(name, d_din[j], din[j], N);
        free(din[j]);
    }
    for (int j = 0; j < k; j++) free(in[j]);
    free(out), free(which), free(dout);
}

// ---------------------------------------------------------------- channel blocks

static void test_channels(void) {
    enum { B = 2, HW = 29, C0 = 3, C1 = 4, CT = C0 + C1, CS = 3, SC0 = 2 };
    float *a = host_random((size_t)B * C0 * HW, 61), *b = host_random((size_t)B * C1 * HW, 62);
    float* cat = t_falloc((size_t)B * CT * HW);
    const float* pieces[2] = {a, b};
    const int C[2] = {C0, C1};
    concat_channels_forward(cat, pieces, C, 2, B, HW);
    float* d_cat = dev_alloc((size_t)B * CT * HW);
    copy_channels_cuda(ctx, d_cat, dev_upload(a, (size_t)B * C0 * HW), B, C0, CT, 0, HW);
    copy_channels_cuda(ctx, d_cat, dev_upload(b, (size_t)B * C1 * HW), B, C1, CT, C0, HW);
    expect_exact("copy channels (concat)", d_cat, cat, (size_t)B * CT * HW);

    float* sl = t_falloc((size_t)B * CS * HW);
    float* d_sl = dev_alloc((size_t)B * CS * HW);
    slice_channels_forward(sl, cat, B, CT, HW, SC0, CS);
    slice_channels_forward_cuda(ctx, d_sl, d_cat, B, CT, HW, SC0, CS);
    expect_exact("slice forward", d_sl, sl, (size_t)B * CS * HW);

    float* dout = host_random((size_t)B * CS * HW, 63);
    float* dinp = host_random((size_t)B * CT * HW, 64);
    float* d_dinp = dev_upload(dinp, (size_t)B * CT * HW);
    slice_channels_backward(dinp, dout, B, CT, HW, SC0, CS);
    slice_channels_backward_cuda(ctx, d_dinp, dev_upload(dout, (size_t)B * CS * HW), B, CT, HW,
                                 SC0, CS);
    expect_exact("slice backward", d_dinp, dinp, (size_t)B * CT * HW);
    free(a), free(b), free(cat), free(sl), free(dout), free(dinp);
}

// ---------------------------------------------------------------- add, mul, scale by map

static void test_arith(void) {
    enum { B = 2, C = 5, HW = 103, N = B * C * HW };
    float *a = host_random(N, 71), *b = host_random(N, 72), *dout = host_random(N, 73);
    float *da = host_random(N, 74), *db = host_random(N, 75);
    float* out = t_falloc(N);
    float *d_a = dev_upload(a, N), *d_b = dev_upload(b, N), *d_dout = dev_upload(dout, N);
    float *d_da = dev_upload(da, N), *d_db = dev_upload(db, N), *d_out = dev_alloc(N);
    add_forward(out, a, b, N);
    add_forward_cuda(ctx, d_out, d_a, d_b, N);
    expect_exact("add forward", d_out, out, N);
    mul_forward(out, a, b, N);
    mul_forward_cuda(ctx, d_out, d_a, d_b, N);
    expect_exact("mul forward", d_out, out, N);
    mul_backward(da, db, dout, a, b, N);
    mul_backward_cuda(ctx, d_da, d_db, d_dout, d_a, d_b, N);
    mul_backward(NULL, db, dout, a, b, N);  // db only, twice accumulated
    mul_backward_cuda(ctx, NULL, d_db, d_dout, d_a, d_b, N);
    expect_close("mul backward da", d_da, da, N, 1e-6);
    expect_close("mul backward db", d_db, db, N, 1e-6);

    // s is (B, 1, HW): the first B*HW elements of b
    float *dx = host_random(N, 76), *ds = host_random((size_t)B * HW, 77);
    float *d_dx = dev_upload(dx, N), *d_ds = dev_upload(ds, (size_t)B * HW);
    scale_by_map_forward(out, a, b, B, C, HW);
    scale_by_map_forward_cuda(ctx, d_out, d_a, d_b, B, C, HW);
    expect_exact("scale by map forward", d_out, out, N);
    scale_by_map_backward(dx, ds, dout, a, b, B, C, HW);
    scale_by_map_backward_cuda(ctx, d_dx, d_ds, d_dout, d_a, d_b, B, C, HW);
    scale_by_map_backward(NULL, ds, dout, a, b, B, C, HW);
    scale_by_map_backward_cuda(ctx, NULL, d_ds, d_dout, d_a, d_b, B, C, HW);
    scale_by_map_backward(dx, NULL, dout, a, b, B, C, HW);
    scale_by_map_backward_cuda(ctx, d_dx, NULL, d_dout, d_a, d_b, B, C, HW);
    expect_close("scale by map backward dx", d_dx, dx, N, 1e-6);
    expect_close("scale by map backward ds", d_ds, ds, (size_t)B * HW, 1e-6);
    free(a), free(b), free(dout), free(da), free(db), free(out), free(dx), free(ds);
}

// ---------------------------------------------------------------- labels and rows

static void test_labels(void) {
    // embed_labels: emap[b, e, p] = emb[lbl[b, p], e], 0 where ignored
    enum { B = 2, E = 7, HW = 53, K = 11 };
    float* emb = host_random((size_t)K * E, 81);
    uint8_t* lbl = host_labels((size_t)B * HW, K, 82);
    float* want = t_falloc((size_t)B * E * HW);
    for (int b = 0; b < B; b++)
        for (int e = 0; e < E; e++)
            for (int p = 0; p < HW; p++) {
                uint8_t y = lbl[b * HW + p];
                want[((size_t)b * E + e) * HW + p] = y == 255 ? 0.0f : emb[y * E + e];
            }
    float* d_emap = dev_alloc((size_t)B * E * HW);
    fill_cuda(ctx, d_emap, 9.0f, (size_t)B * E * HW);  // overwritten, ignored pixels included
    embed_labels_cuda(ctx, d_emap, dev_upload(emb, (size_t)K * E),
                      dev_upload_bytes(lbl, (size_t)B * HW), B, E, HW);
    expect_exact("embed labels", d_emap, want, (size_t)B * E * HW);
    free(emb), free(lbl), free(want);

    // count_valid: a small odd n and one past a full grid (65536 x 256), so
    // whole blocks loop in step; without the mask too
    const size_t sizes[3] = {0, 100003, ((size_t)1 << 24) + 1001};
    for (int t = 0; t < 3; t++) {
        size_t n = sizes[t];
        uint8_t* l = host_labels(n, 21, 83 + t);
        uint8_t* v = mallocCheck(n ? n : 1);
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++) cnt += (v[i] = l[i] != 255);
        uint8_t* d_l = dev_upload_bytes(l, n ? n : 1);
        uint8_t* d_v = device_arena_alloc(arena, n ? n : 1);
        double got = count_valid_cuda(ctx, d_v, d_l, n);
        CHECK(got == (double)cnt, "count_valid n %zu: %.0f, want %zu", n, got, cnt);
        expect_bytes("count_valid mask", d_v, v, n);
        got = count_valid_cuda(ctx, NULL, d_l, n);
        CHECK(got == (double)cnt, "count_valid without mask n %zu: %.0f, want %zu", n, got, cnt);
        free(l), free(v);
    }
}

static void test_rows(void) {
    // R distinct pixels of (B, C, HW), in a scrambled order
    enum { B = 3, C = 6, HW = 37, R = 50 };
    int pos[R];
    for (int r = 0; r < R; r++) pos[r] = (r * 61 + 7) % (B * HW);  // 61 coprime to 111
    float* X = host_random((size_t)B * C * HW, 91);
    float* rows = t_falloc((size_t)R * C);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            rows[r * C + c] = X[((size_t)(pos[r] / HW) * C + c) * HW + pos[r] % HW];
    int* d_pos = dev_upload_bytes(pos, sizeof pos);
    float* d_rows = dev_alloc((size_t)R * C);
    gather_rows_cuda(ctx, d_rows, dev_upload(X, (size_t)B * C * HW), d_pos, R, C, HW);
    expect_exact("gather rows", d_rows, rows, (size_t)R * C);

    float* drows = host_random((size_t)R * C, 92);
    float* dX = host_random((size_t)B * C * HW, 93);
    float* d_dX = dev_upload(dX, (size_t)B * C * HW);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            dX[((size_t)(pos[r] / HW) * C + c) * HW + pos[r] % HW] += drows[r * C + c];
    scatter_rows_add_cuda(ctx, d_dX, dev_upload(drows, (size_t)R * C), d_pos, R, C, HW);
    expect_exact("scatter rows add", d_dX, dX, (size_t)B * C * HW);
    free(X), free(rows), free(drows), free(dX);
}

int main(void) {
    if (cuda_device_count() == 0) {
        printf("test_gpu_glue: no GPU visible, skipped\n");
        return 77;
    }
    ctx = cuda_context_create(0, 1);
    arena = device_arena_create((size_t)256 << 20);
    test_fill_axpy();
    test_batchnorm();
    test_pool();
    test_resize();
    check_max_fuse(1);
    check_max_fuse(3);
    check_max_fuse(8);
    test_channels();
    test_arith();
    test_labels();
    test_rows();
    cuda_synchronize(ctx);
    device_arena_destroy(arena);
    cuda_context_destroy(ctx);
    return t_report("test_gpu_glue");
}
