// GPU against the CPU reference: cuDNN conv forward/backward (stride, dilation,
// bias, 1x1, accumulation, determinism), cuBLAS GEMM in all transpose modes
// (fp32 and TF32), the element-wise kernels, RNG fills, SGD/Adam and a NCCL
// all-reduce. Exits 77 (ctest: skipped) when no GPU is visible.
#include <math.h>
#include <mpi.h>
#include <string.h>

#include "activation.h"
#include "common.h"
#include "conv.h"
#include "optim.h"
#include "rng.h"
#include "testing.h"
#include "zsseg_cuda.h"

static DeviceArena* arena;

static float* dev_alloc(size_t n) { return device_arena_alloc(arena, n * sizeof(float)); }
static float* dev_upload(const float* h, size_t n) {
    float* d = dev_alloc(n);
    cuda_memcpy_h2d(d, h, n * sizeof(float));
    return d;
}
static float* host_download(const float* d, size_t n) {
    float* h = mallocCheck(n * sizeof(float));
    cuda_memcpy_d2h(h, d, n * sizeof(float));
    return h;
}
static float* host_random(size_t n, uint64_t seed) {
    float* h = mallocCheck(n * sizeof(float));
    t_fill_uniform(h, n, seed, -1.0f, 1.0f);
    return h;
}
// Elements that differ in any bit (NaN never equal).
static size_t count_unequal(const float* a, const float* b, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !(a[i] == b[i]);
    return bad;
}

// ---------------------------------------------------------------- memory

static void test_memory(void) {
    DeviceArena* a = device_arena_create(1 << 20);
    char* p1 = device_arena_alloc(a, 10);
    char* p2 = device_arena_alloc(a, 1);
    CHECK(p2 - p1 == 256, "second block at +%td, want +256 (256-byte alignment)", p2 - p1);
    CHECK(device_arena_free_bytes(a) == (1 << 20) - 512, "free bytes %zu after 10 + 1 bytes",
          device_arena_free_bytes(a));
    device_arena_reset(a);
    CHECK(device_arena_free_bytes(a) == 1 << 20, "free bytes %zu after reset",
          device_arena_free_bytes(a));
    CHECK(device_arena_alloc(a, 10) == (void*)p1, "reset does not restart at the base");

    // pinned host -> device -> pinned host round trip
    enum { NR = 1000 };
    float* src = cuda_pinned_alloc(NR * sizeof(float));
    float* dst = cuda_pinned_alloc(NR * sizeof(float));
    for (int i = 0; i < NR; i++) src[i] = (float)i * 0.5f, dst[i] = -1.0f;
    float* d = device_arena_alloc(a, NR * sizeof(float));
    cuda_memcpy_h2d(d, src, NR * sizeof(float));
    cuda_memcpy_d2h(dst, d, NR * sizeof(float));
    CHECK(count_unequal(dst, src, NR) == 0, "pinned round trip differs");
    cuda_pinned_free(src);
    cuda_pinned_free(dst);
    device_arena_destroy(a);
}

// ---------------------------------------------------------------- conv

// One shape: forward and backward on both backends from the same inputs, with
// pre-filled gradients so accumulation (+=) is checked too. fp32 FMA math on
// the GPU, so only the summation order differs from the CPU.
static void check_conv(CudaContext* ctx, const char* what, Conv2dDesc d, int B, int H, int W,
                       int with_bias, int with_dinp) {
    int Ho = conv2d_out_size(H, d.kh, d.stride, d.pad, d.dilation);
    int Wo = conv2d_out_size(W, d.kw, d.stride, d.pad, d.dilation);
    size_t n_in = (size_t)B * d.C_in * H * W, n_out = (size_t)B * d.C_out * Ho * Wo;
    size_t n_w = (size_t)d.C_out * d.C_in * d.kh * d.kw;
    float* inp = host_random(n_in, 1);
    float* weight = host_random(n_w, 2);
    float* bias = host_random(d.C_out, 3);
    float* dout = host_random(n_out, 4);
    float* dinp = host_random(n_in, 5);
    float* dweight = host_random(n_w, 6);
    float* dbias = host_random(d.C_out, 7);
    float* out = mallocCheck(n_out * sizeof(float));
    float* ws = mallocCheck((conv2d_workspace_floats(&d, H, W) + 1) * sizeof(float));

    float *d_inp = dev_upload(inp, n_in), *d_weight = dev_upload(weight, n_w);
    float *d_bias = dev_upload(bias, d.C_out), *d_dout = dev_upload(dout, n_out);
    float *d_dinp = dev_upload(dinp, n_in), *d_dweight = dev_upload(dweight, n_w);
    float *d_dbias = dev_upload(dbias, d.C_out), *d_out = dev_alloc(n_out);

    conv2d_forward(out, inp, weight, with_bias ? bias : NULL, ws, &d, B, H, W);
    conv2d_backward(with_dinp ? dinp : NULL, dweight, with_bias ? dbias : NULL, dout, inp, weight,
                    ws, &d, B, H, W);
    conv2d_forward_cuda(ctx, d_out, d_inp, d_weight, with_bias ? d_bias : NULL, &d, B, H, W);
    conv2d_backward_cuda(ctx, with_dinp ? d_dinp : NULL, d_dweight, with_bias ? d_dbias : NULL,
                         d_dout, d_inp, d_weight, &d, B, H, W);

    char name[128];
    float* g = host_download(d_out, n_out);
    snprintf(name, sizeof name, "%s out", what);
    t_check_array(name, g, out, n_out, 1e-5, 1e-4);
    free(g);
    g = host_download(d_dweight, n_w);
    snprintf(name, sizeof name, "%s dweight", what);
    t_check_array(name, g, dweight, n_w, 1e-4, 1e-4);
    free(g);
    g = host_download(d_dinp, n_in);  // untouched when with_dinp == 0
    snprintf(name, sizeof name, "%s dinp", what);
    t_check_array(name, g, dinp, n_in, 1e-5, 1e-4);
    free(g);
    g = host_download(d_dbias, d.C_out);  // untouched when with_bias == 0
    snprintf(name, sizeof name, "%s dbias", what);
    t_check_array(name, g, dbias, d.C_out, 1e-4, 1e-4);
    free(g);

    free(inp), free(weight), free(bias), free(dout), free(dinp), free(dweight), free(dbias);
    free(out), free(ws);
}

// Deterministic mode: the same backward twice gives bit-identical gradients.
static void check_conv_deterministic(CudaContext* ctx, Conv2dDesc d, int B, int H, int W) {
    int Ho = conv2d_out_size(H, d.kh, d.stride, d.pad, d.dilation);
    int Wo = conv2d_out_size(W, d.kw, d.stride, d.pad, d.dilation);
    size_t n_in = (size_t)B * d.C_in * H * W, n_out = (size_t)B * d.C_out * Ho * Wo;
    size_t n_w = (size_t)d.C_out * d.C_in * d.kh * d.kw;
    float* inp = host_random(n_in, 11);
    float* weight = host_random(n_w, 12);
    float* dout = host_random(n_out, 13);
    float *d_inp = dev_upload(inp, n_in), *d_weight = dev_upload(weight, n_w);
    float* d_dout = dev_upload(dout, n_out);
    float* runs[2][2];
    for (int r = 0; r < 2; r++) {
        float *d_dinp = dev_alloc(n_in), *d_dw = dev_alloc(n_w);
        float* zeros = callocCheck(n_in > n_w ? n_in : n_w, sizeof(float));
        cuda_memcpy_h2d(d_dinp, zeros, n_in * sizeof(float));
        cuda_memcpy_h2d(d_dw, zeros, n_w * sizeof(float));
        free(zeros);
        conv2d_backward_cuda(ctx, d_dinp, d_dw, NULL, d_dout, d_inp, d_weight, &d, B, H, W);
        runs[r][0] = host_download(d_dinp, n_in);
        runs[r][1] = host_download(d_dw, n_w);
    }
    CHECK(count_unequal(runs[0][0], runs[1][0], n_in) == 0,
          "deterministic dinp differs between runs");
    CHECK(count_unequal(runs[0][1], runs[1][1], n_w) == 0,
          "deterministic dweight differs between runs");
    for (int r = 0; r < 2; r++) free(runs[r][0]), free(runs[r][1]);
    free(inp), free(weight), free(dout);
}

static void test_conv(CudaContext* det, CudaContext* fast) {
    // DeepLab-style atrous conv: 3x3, stride 2, dilation 2, bias
    Conv2dDesc atrous = {
        .C_in = 3, .C_out = 5, .kh = 3, .kw = 3, .stride = 2, .pad = 2, .dilation = 2};
    check_conv(det, "atrous", atrous, 2, 13, 11, 1, 1);
    check_conv(fast, "atrous (non-deterministic algos)", atrous, 2, 13, 11, 1, 1);
    // the same shape again hits the plan cache
    check_conv(det, "atrous (cached plan)", atrous, 2, 13, 11, 1, 1);
    // 1x1 (plain GEMM on the CPU), no bias, no input gradient
    Conv2dDesc pw = {.C_in = 8, .C_out = 6, .kh = 1, .kw = 1, .stride = 1, .pad = 0, .dilation = 1};
    check_conv(det, "1x1", pw, 3, 7, 5, 0, 0);
    // non-square kernel, wider channels
    Conv2dDesc rect = {
        .C_in = 16, .C_out = 24, .kh = 3, .kw = 5, .stride = 1, .pad = 1, .dilation = 1};
    check_conv(det, "3x5", rect, 2, 12, 10, 1, 1);
    check_conv_deterministic(det, atrous, 2, 13, 11);
    check_conv_deterministic(det, rect, 2, 12, 10);
}

// ---------------------------------------------------------------- GEMM

// C = alpha op(A) op(B) + beta C against a double loop. The error allowed for
// element (i, j) scales with sum_k |alpha a_ik b_kj| (rounding of each term).
static void check_gemm(CudaContext* ctx, int tA, int tB, double rel) {
    const int M = 37, N = 19, K = 23;
    const float alpha = 0.7f, beta = 0.3f;
    float* A = host_random((size_t)M * K, 21);
    float* B = host_random((size_t)K * N, 22);
    float* C = host_random((size_t)M * N, 23);
    float *dA = dev_upload(A, (size_t)M * K), *dB = dev_upload(B, (size_t)K * N);
    float* dC = dev_upload(C, (size_t)M * N);
    gemm_cuda(ctx, tA, tB, M, N, K, alpha, dA, dB, beta, dC);
    float* got = host_download(dC, (size_t)M * N);
    int bad = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0, mag = 0.0;
            for (int k = 0; k < K; k++) {
                double a = tA ? A[k * M + i] : A[i * K + k];
                double b = tB ? B[j * K + k] : B[k * N + j];
                s += a * b;
                mag += fabs(alpha * a * b);
            }
            double want = alpha * s + beta * C[i * N + j];
            bad += fabs(got[i * N + j] - want) > rel * (mag + fabs(beta * C[i * N + j])) + 1e-7;
        }
    CHECK(bad == 0, "gemm transA %d transB %d (rel %g): %d of %d elements off", tA, tB, rel, bad,
          M * N);
    free(A), free(B), free(C), free(got);
}

static void test_gemm(CudaContext* fp32, CudaContext* tf32) {
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++) {
            check_gemm(fp32, tA, tB, 4e-6);
            // TF32 keeps 10 mantissa bits of each input: ~1e-3 per product
            check_gemm(tf32, tA, tB, 4e-3);
        }
}

// ---------------------------------------------------------------- element-wise

enum { NE = 10007 };  // not a multiple of the block size

// Download NE floats from d and compare: bit-identical when atol < 0.
static void expect(const char* what, const float* d, const float* want, double atol, double rtol) {
    float* got = host_download(d, NE);
    if (atol < 0) {
        size_t bad = count_unequal(got, want, NE);
        CHECK(bad == 0, "%s: %zu of %d elements not bit-identical", what, bad, NE);
    } else {
        t_check_array(what, got, want, NE, atol, rtol);
    }
    free(got);
}

static void test_elementwise(CudaContext* ctx) {
    float* x = host_random(NE, 31);
    float* dout = host_random(NE, 32);
    float* acc = host_random(NE, 33);  // pre-filled gradient: backwards accumulate
    float* sig = mallocCheck(NE * sizeof(float));
    float* want = mallocCheck(NE * sizeof(float));
    sigmoid_forward(sig, x, NE);
    float *d_x = dev_upload(x, NE), *d_dout = dev_upload(dout, NE), *d_sig = dev_upload(sig, NE);
    float* d_y = dev_alloc(NE);
    const float slope = 0.2f, p = 0.3f;
    const uint64_t seed = 1234, stream = 77, offset = 12345;
    const double EXACT = -1.0;

    // forwards: exact where no transcendental is involved (device expf is not glibc's)
    relu_forward(want, x, NE);
    relu_forward_cuda(ctx, d_y, d_x, NE);
    expect("relu forward", d_y, want, EXACT, 0);
    leaky_relu_forward(want, x, slope, NE);
    leaky_relu_forward_cuda(ctx, d_y, d_x, slope, NE);
    expect("leaky forward", d_y, want, EXACT, 0);
    sigmoid_forward_cuda(ctx, d_y, d_x, NE);
    expect("sigmoid forward", d_y, sig, 1e-7, 1e-6);
    dropout_forward(want, x, p, seed, stream, offset, NE);
    dropout_forward_cuda(ctx, d_y, d_x, p, seed, stream, offset, NE);
    expect("dropout forward", d_y, want, EXACT, 0);

    // backwards: dinp += dout * f'; nvcc fuses the multiply-add (1 ulp) unless
    // the factor is 0/1 (relu) or there is no multiply (dropout)
    memcpy(want, acc, NE * sizeof(float));
    cuda_memcpy_h2d(d_y, acc, NE * sizeof(float));
    relu_backward(want, dout, x, NE);
    relu_backward_cuda(ctx, d_y, d_dout, d_x, NE);
    expect("relu backward", d_y, want, EXACT, 0);

    memcpy(want, acc, NE * sizeof(float));
    cuda_memcpy_h2d(d_y, acc, NE * sizeof(float));
    leaky_relu_backward(want, dout, x, slope, NE);
    leaky_relu_backward_cuda(ctx, d_y, d_dout, d_x, slope, NE);
    expect("leaky backward", d_y, want, 1e-7, 1e-6);

    memcpy(want, acc, NE * sizeof(float));
    cuda_memcpy_h2d(d_y, acc, NE * sizeof(float));
    sigmoid_backward(want, dout, sig, NE);
    sigmoid_backward_cuda(ctx, d_y, d_dout, d_sig, NE);
    expect("sigmoid backward", d_y, want, 1e-7, 1e-6);

    memcpy(want, acc, NE * sizeof(float));
    cuda_memcpy_h2d(d_y, acc, NE * sizeof(float));
    dropout_backward(want, dout, p, seed, stream, offset, NE);
    dropout_backward_cuda(ctx, d_y, d_dout, p, seed, stream, offset, NE);
    expect("dropout backward", d_y, want, EXACT, 0);

    free(x), free(dout), free(acc), free(sig), free(want);
}

// ---------------------------------------------------------------- RNG

static void test_rng(CudaContext* ctx) {
    // more elements than one grid covers (65536 blocks x 256), so the
    // grid-stride loop runs more than once; odd offset starts mid-block
    const size_t n = ((size_t)1 << 24) + 1001;
    const uint64_t seed = 0x9E3779B97F4A7C15ull, stream = rng_stream(RNG_INIT, 3, 0), offset = 7;
    float* want = mallocCheck(n * sizeof(float));
    float* d = dev_alloc(n);
    rng_fill_uniform(want, n, seed, stream, offset);
    rng_fill_uniform_cuda(ctx, d, n, seed, stream, offset);
    float* got = host_download(d, n);
    CHECK(count_unequal(got, want, n) == 0, "uniform draws: %zu of %zu not bit-identical",
          count_unequal(got, want, n), n);
    free(got);

    const size_t nn = 100003;
    rng_fill_normal(want, nn, seed, stream, offset);
    rng_fill_normal_cuda(ctx, d, nn, seed, stream, offset);
    got = host_download(d, nn);
    // device logf/sinf/cosf differ from glibc's by an ulp or two
    t_check_array("normal draws", got, want, nn, 1e-6, 1e-6);
    free(got), free(want);
}

// ---------------------------------------------------------------- optimizers

enum { NP = 5003 };

static void test_optim(CudaContext* ctx) {
    const float base_lr = 0.05f, wd = 1e-3f;
    ParamGroup group = {
        .name = "all", .offset = 0, .count = NP, .lr_mult = 1.0f, .weight_decay = wd};
    for (int kind = 0; kind < 2; kind++) {
        float* params = host_random(NP, 41);
        float* grads = host_random(NP, 42);
        Optimizer o;
        SgdConfig sc = {.momentum = 0.9f};
        AdamConfig ac = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
        if (kind == OPTIM_SGD)
            optimizer_init_sgd(&o, sc, &group, 1, NP);
        else
            optimizer_init_adam(&o, ac, &group, 1, NP);
        float *d_p = dev_upload(params, NP), *d_g = dev_upload(grads, NP);
        float *d_m = dev_upload(o.m, NP), *d_v = kind == OPTIM_ADAM ? dev_upload(o.v, NP) : NULL;
        for (int step = 0; step < 3; step++) {
            if (kind == OPTIM_SGD) {
                sgd_update_cuda(ctx, d_p, d_m, d_g, base_lr, sc.momentum, wd, NP);
            } else {
                float bc1, bc2;
                adam_bias_corrections(&ac, o.step, &bc1, &bc2);
                adam_update_cuda(ctx, d_p, d_m, d_v, d_g, base_lr, ac.beta1, ac.beta2, ac.eps, wd,
                                 bc1, bc2, NP);
            }
            optimizer_step(&o, params, grads, base_lr);
        }
        // fused multiply-adds on the GPU: a few ulps per step
        float* got = host_download(d_p, NP);
        t_check_array(kind == OPTIM_SGD ? "sgd params" : "adam params", got, params, NP, 1e-6,
                      1e-5);
        free(got);
        got = host_download(d_m, NP);
        t_check_array(kind == OPTIM_SGD ? "sgd momentum" : "adam m", got, o.m, NP, 1e-7, 1e-5);
        free(got);
        if (kind == OPTIM_ADAM) {
            got = host_download(d_v, NP);
            t_check_array("adam v", got, o.v, NP, 1e-9, 1e-5);
            free(got);
        }
        optimizer_free(&o);
        free(params), free(grads);
    }
}

// ---------------------------------------------------------------- NCCL

static void test_nccl(CudaContext* ctx, int world) {
    enum { NB = 4099 };
    float* h = mallocCheck(NB * sizeof(float));
    for (int i = 0; i < NB; i++) h[i] = (float)(i % 7) - 3.0f;
    float* d = dev_upload(h, NB);
    NcclComm* nc = nccl_comm_init(MPI_COMM_WORLD);
    nccl_allreduce_sum(nc, d, NB, ctx);
    float* got = host_download(d, NB);
    int bad = 0;
    for (int i = 0; i < NB; i++) bad += got[i] != (float)world * h[i];  // small integers: exact
    CHECK(bad == 0, "nccl all-reduce over %d rank(s): %d of %d sums wrong", world, bad, NB);
    nccl_comm_destroy(nc);
    free(h), free(got);
}

int main(int argc, char** argv) {
    if (cuda_device_count() == 0) {
        printf("test_cuda_ops: no GPU visible, skipped\n");
        return 77;
    }
    MPI_Init(&argc, &argv);
    int rank = 0, world = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    zs_set_rank(rank, world);
    if (world > cuda_device_count()) {  // NCCL needs one GPU per rank
        if (rank == 0) printf("test_cuda_ops: %d ranks but %d GPU(s), skipped\n", world,
                              cuda_device_count());
        MPI_Finalize();
        return 77;
    }
    unsigned char uuid[16];
    char desc[256];
    cuda_device_select(rank, uuid, desc, sizeof desc);  // single node: rank = local rank

    CudaContext* det = cuda_context_create(0, 1);
    CudaContext* fast = cuda_context_create(0, 0);
    CudaContext* tf32 = cuda_context_create(1, 0);
    test_memory();
    arena = device_arena_create((size_t)256 << 20);
    test_conv(det, fast);
    test_gemm(fast, tf32);
    test_elementwise(fast);
    test_rng(fast);
    test_optim(fast);
    test_nccl(fast, world);
    cuda_synchronize(fast);
    device_arena_destroy(arena);
    cuda_context_destroy(det);
    cuda_context_destroy(fast);
    cuda_context_destroy(tf32);
    int rc = t_report("test_cuda_ops");
    MPI_Finalize();
    return rc;
}
