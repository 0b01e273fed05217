// The losses of loss.c on the device, same per-element math (hd_math.h).
// Sums are deterministic without atomics: every thread accumulates a
// grid-stride slice in double, each block reduces its threads in a fixed tree
// into the context's scratch, and one block then adds the block partials in a
// fixed order. The grid depends only on the element count, so every bit of a
// loss (and of any gradient scaled by a reduced normaliser) is the same from
// run to run.
#include "cuda_common.h"
#include "hd_math.h"
#include "map.cuh"

extern "C" {
#include "loss.h"
}

// Internal linkage for the op structs and kernels: other .cu files may use
// the same names, and template instantiations would otherwise be merged.
namespace {

// ---------------------------------------------------------------- deterministic sums
enum { RED_THREADS = 256, RED_MAX_BLOCKS = 1024 };

static unsigned reduce_grid(size_t n) {
    size_t b = (n + RED_THREADS - 1) / RED_THREADS;
    return (unsigned)(b == 0 ? 1 : (b < RED_MAX_BLOCKS ? b : RED_MAX_BLOCKS));
}

// Tree sum of each thread's acc[NV] over the block (blockDim.x == RED_THREADS);
// the totals end up in sh[v][0], visible to every thread.
template <int NV>
__device__ void block_sum(double (*sh)[RED_THREADS], const double* acc) {
    for (int v = 0; v < NV; v++) sh[v][threadIdx.x] = acc[v];
    __syncthreads();
    for (unsigned s = RED_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            for (int v = 0; v < NV; v++) sh[v][threadIdx.x] += sh[v][threadIdx.x + s];
        __syncthreads();
    }
}

// Op::operator()(i, acc) adds element i's terms to acc[0..NV) (and may write
// that element's gradient). partials[v * gridDim.x + block] = the block's sums.
template <int NV, typename Op>
__global__ void reduce_blocks_kernel(Op op, size_t n, double* partials) {
    double acc[NV];
    for (int v = 0; v < NV; v++) acc[v] = 0.0;
    size_t step = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) op(i, acc);
    __shared__ double sh[NV][RED_THREADS];
    block_sum<NV>(sh, acc);
    if (threadIdx.x == 0)
        for (int v = 0; v < NV; v++) partials[(size_t)v * gridDim.x + blockIdx.x] = sh[v][0];
}

// One block: out[v] = sum of the nb partials of value v.
template <int NV>
__global__ void reduce_partials_kernel(const double* partials, unsigned nb, double* out) {
    double acc[NV];
    for (int v = 0; v < NV; v++) {
        acc[v] = 0.0;
        for (unsigned b = threadIdx.x; b < nb; b += RED_THREADS) acc[v] += partials[v * nb + b];
    }
    __shared__ double sh[NV][RED_THREADS];
    block_sum<NV>(sh, acc);
    if (threadIdx.x == 0)
        for (int v = 0; v < NV; v++) out[v] = sh[v][0];
}

// Scratch doubles a reduction of NV values needs besides its outputs.
static size_t reduce_scratch(int NV) { return (size_t)NV * RED_MAX_BLOCKS; }

// out[0..NV) (device) = sums of op over [0, n); partials: reduce_scratch(NV) doubles.
template <int NV, typename Op>
static void reduce_to_device(CudaContext* ctx, Op op, size_t n, double* partials, double* out) {
    unsigned nb = reduce_grid(n);
    reduce_blocks_kernel<NV><<<nb, RED_THREADS, 0, ctx->stream>>>(op, n, partials);
    cudaCheckLaunch();
    reduce_partials_kernel<NV><<<1, RED_THREADS, 0, ctx->stream>>>(partials, nb, out);
    cudaCheckLaunch();
}

// sum[0..NV) (host) = sums of op over [0, n); synchronises.
template <int NV, typename Op>
static void reduce_to_host(CudaContext* ctx, Op op, size_t n, double* sum) {
    double* scratch = cuda_scratch_doubles(ctx, NV + reduce_scratch(NV));
    reduce_to_device<NV>(ctx, op, n, scratch + NV, scratch);
    cuda_memcpy_d2h(sum, scratch, NV * sizeof(double));
}

// ---------------------------------------------------------------- element-wise means
// loss.c elementwise_mean: GAN, KL and MSE as "mean over counted elements".
enum { ELEM_GAN, ELEM_KL, ELEM_MSE };

struct CountNonzero {
    const uint8_t* m;
    __device__ void operator()(size_t i, double* acc) const { acc[0] += m[i] != 0; }
};

struct ElemTerm {
    int op, gan_kind;
    float target, g;
    float *g0, *g1;        // (B, C, HW) or NULL; accumulated
    const float *p0, *p1;  // (B, C, HW); p1 unused for GAN
    const uint8_t* valid;  // (B, HW) or NULL
    size_t C, HW;
    __device__ void operator()(size_t e, double* acc) const {
        if (valid && !valid[e / (C * HW) * HW + e % HW]) return;
        float d0, d1 = 0.0f, l;
        if (op == ELEM_GAN) l = hd_gan_loss(gan_kind, p0[e], target, &d0);
        else if (op == ELEM_KL) l = hd_kl(p0[e], p1[e], &d0, &d1);
        else l = hd_sq_err(p0[e], p1[e], &d0);
        acc[0] += l;
        if (g0) g0[e] += g * d0;
        if (g1) g1[e] += g * d1;
    }
};

static float elementwise_mean_cuda(CudaContext* ctx, int op, int gan_kind, float target,
                                   float* g0, float* g1,              // (B, C, HW) or NULL
                                   const float* p0, const float* p1,  // (B, C, HW)
                                   const uint8_t* valid,              // (B, HW) or NULL
                                   size_t B, size_t C, size_t HW, float grad_scale) {
    // pass 1: the count, which scales every gradient
    double count = (double)(B * HW);
    if (valid) reduce_to_host<1>(ctx, CountNonzero{valid}, B * HW, &count);
    count *= (double)C;
    if (count == 0.0) return 0.0f;
    float g = (float)((double)grad_scale / count);
    double sum;
    reduce_to_host<1>(ctx, ElemTerm{op, gan_kind, target, g, g0, g1, p0, p1, valid, C, HW},
                      B * C * HW, &sum);
    return (float)(sum / count);
}

}  // namespace

extern "C" float gan_loss_forward_backward_cuda(CudaContext* ctx, float* dx, const float* x,
                                                const uint8_t* mask, int kind, float target,
                                                size_t n, float grad_scale) {
    return elementwise_mean_cuda(ctx, ELEM_GAN, kind, target, dx, NULL, x, NULL, mask, 1, 1, n,
                                 grad_scale);
}

extern "C" float kl_forward_backward_cuda(CudaContext* ctx, float* dmu, float* dlogvar,
                                          const float* mu, const float* logvar,
                                          const uint8_t* valid, int B, int C, int HW,
                                          float grad_scale) {
    return elementwise_mean_cuda(ctx, ELEM_KL, 0, 0.0f, dmu, dlogvar, mu, logvar, valid,
                                 (size_t)B, (size_t)C, (size_t)HW, grad_scale);
}

extern "C" float mse_forward_backward_cuda(CudaContext* ctx, float* da, const float* a,
                                           const float* b, const uint8_t* valid, int B, int C,
                                           int HW, float grad_scale) {
    return elementwise_mean_cuda(ctx, ELEM_MSE, 0, 0.0f, da, NULL, a, b, valid, (size_t)B,
                                 (size_t)C, (size_t)HW, grad_scale);
}

// ---------------------------------------------------------------- cross-entropy
namespace {

// Pass 1 per pixel: acc[0] = weight of the counted pixels, acc[1] = labels out of range.
struct CeWeight {
    const uint8_t* labels;  // (B, HW)
    const float* weights;   // (B, HW) or NULL
    int K;
    __device__ void operator()(size_t p, double* acc) const {
        int y = labels[p];
        if (y == LOSS_IGNORE) return;
        if (y >= K) { acc[1] += 1.0; return; }
        acc[0] += weights ? weights[p] : 1.0f;
    }
};

// Pass 2 per pixel: weighted CE and its gradient.
struct CeTerm {
    float* dlogits;         // (B, K, HW) or NULL; accumulated
    const float* logits;    // (B, K, HW)
    const uint8_t* labels;  // (B, HW)
    const float* weights;   // (B, HW) or NULL
    int K;
    size_t hw;
    double W;
    float grad_scale;
    __device__ void operator()(size_t p, double* acc) const {
        int y = labels[p];
        float w = weights ? weights[p] : 1.0f;
        if (y == LOSS_IGNORE || w == 0.0f) return;
        size_t off = p / hw * (size_t)K * hw + p % hw;  // logit of class 0 at pixel p
        float g = (float)((double)grad_scale * w / W);
        float* dz = dlogits ? dlogits + off : NULL;
        acc[0] += (double)w * hd_softmax_ce(logits + off, hw, K, y, g, dz);
    }
};

}  // namespace

extern "C" float softmax_ce_forward_backward_cuda(CudaContext* ctx, float* dlogits,
                                                  const float* logits, const uint8_t* labels,
                                                  const float* weights, int B, int K, int HW,
                                                  float grad_scale) {
    size_t P = (size_t)B * HW;
    double wb[2];
    reduce_to_host<2>(ctx, CeWeight{labels, weights, K}, P, wb);
    if (wb[1] > 0.0)
        ZS_FAIL("labels must be class ids 0..K-1 or 255 (ignore): check the dataset's label "
                "maps against the configured number of classes",
                "softmax_ce: %.0f labels out of range for K = %d", wb[1], K);
    double W = wb[0];
    if (W <= 0.0) return 0.0f;
    double sum;
    reduce_to_host<1>(ctx, CeTerm{dlogits, logits, labels, weights, K, (size_t)HW, W, grad_scale},
                      P, &sum);
    return (float)(sum / W);
}

// ---------------------------------------------------------------- MMD
namespace {

// Workspace of mmd_workspace_floats(M, N), the CPU size, laid out for gemm_cuda
// (which has no leading-dimension argument): XX = X X^T (M, M), XY = X Y^T
// (M, N), YY = Y Y^T (N, N), then the squared row norms of [X; Y] (M + N).
// The terms pass turns XX, XY into the gradient coefficients A (loss.c).

// Bandwidths by value: the kernels read them without a host-to-device copy.
enum { MMD_MAX_SIGMAS = 16 };
struct Sigmas {
    float s[MMD_MAX_SIGMAS];
};

// Norms from the Gram diagonals: d_ii is then exactly 0.
struct MmdNorms {
    float* nrm;            // (M + N)
    const float *XX, *YY;  // (M, M), (N, N)
    int M, N;
    __device__ void operator()(size_t r) const {
        size_t m = (size_t)M, n = (size_t)N;
        nrm[r] = r < m ? XX[r * m + r] : YY[(r - m) * n + (r - m)];
    }
};

// Entry e of the workspace [XX | XY | YY] (flat): acc = (sum k_xx, sum k_xy,
// sum k_yy); XX and XY entries are replaced by their gradient coefficients.
struct MmdTerms {
    float* ws;         // (M*M + M*N + N*N) Gram matrices, then coefficients
    const float* nrm;  // (M + N)
    int M, N, S;
    float axx, axy;
    Sigmas sig;
    __device__ void operator()(size_t e, double* acc) const {
        size_t m = (size_t)M, n = (size_t)N, mm = m * m, mn = m * n;
        size_t a, b;  // rows of z = [X; Y]
        int v;
        if (e < mm) a = e / m, b = e % m, v = 0;
        else if (e < mm + mn) a = (e - mm) / n, b = m + (e - mm) % n, v = 1;
        else a = m + (e - mm - mn) / n, b = m + (e - mm - mn) % n, v = 2;
        float d = fmaxf(nrm[a] + nrm[b] - 2.0f * ws[e], 0.0f), dk;
        float k = hd_rbf_multi(d, sig.s, S, &dk);
        // dk/dx_i = dk/dd * 2 (x_i - z_j); the XX term counts pair (i,j) twice
        if (v == 0) acc[0] += k, ws[e] = axx * dk;
        else if (v == 1) acc[1] += k, ws[e] = axy * dk;
        else acc[2] += k;
    }
};

// Gram matrices, norms and the terms pass of one group; its three kernel sums
// go to out[0..3) (device).
static void mmd_group_terms(CudaContext* ctx, const float* X, const float* Y, int M, int N, int D,
                            const Sigmas& sig, int S, float* ws, double* partials, double* out) {
    size_t m = (size_t)M, n = (size_t)N;
    float *XX = ws, *XY = XX + m * m, *YY = XY + m * n, *nrm = YY + n * n;
    gemm_cuda(ctx, 0, 1, M, M, D, 1.0f, X, X, 0.0f, XX);
    gemm_cuda(ctx, 0, 1, M, N, D, 1.0f, X, Y, 0.0f, XY);
    gemm_cuda(ctx, 0, 1, N, N, D, 1.0f, Y, Y, 0.0f, YY);
    launch_map(ctx, MmdNorms{nrm, XX, YY, M, N}, m + n);
    float axx = (float)(4.0 / ((double)M * M)), axy = (float)(-4.0 / ((double)M * N));
    reduce_to_device<3>(ctx, MmdTerms{ws, nrm, M, N, S, axx, axy, sig}, m * m + m * n + n * n,
                        partials, out);
}

// One block per row i: dX_i += cs * rowsum(A)_i * X_i (the GEMMs add the rest).
__global__ void mmd_rowsum_kernel(float* dX,         // (M, D); accumulated
                                  const float* X,    // (M, D)
                                  const float* Axx,  // (M, M)
                                  const float* Axy,  // (M, N)
                                  int M, int N, int D, float cs) {
    size_t i = blockIdx.x;
    const float* a = Axx + i * (size_t)M;
    const float* b = Axy + i * (size_t)N;
    double acc = 0.0;
    for (int j = threadIdx.x; j < M; j += RED_THREADS) acc += a[j];
    for (int j = threadIdx.x; j < N; j += RED_THREADS) acc += b[j];
    __shared__ double sh[1][RED_THREADS];
    block_sum<1>(sh, &acc);
    float rs = (float)sh[0][0] * cs;
    for (int k = threadIdx.x; k < D; k += RED_THREADS)
        dX[i * (size_t)D + k] += rs * X[i * (size_t)D + k];
}

// dX += cs * dMMD2/dX = cs * (rowsum(A)_i x_i - (A [X; Y])_i) from the coefficients in ws.
static void mmd_group_grad(CudaContext* ctx, float* dX, const float* X, const float* Y, int M,
                           int N, int D, float cs, const float* ws) {
    const float *Axx = ws, *Axy = ws + (size_t)M * M;
    gemm_cuda(ctx, 0, 0, M, D, M, -cs, Axx, X, 1.0f, dX);
    gemm_cuda(ctx, 0, 0, M, D, N, -cs, Axy, Y, 1.0f, dX);
    mmd_rowsum_kernel<<<M, RED_THREADS, 0, ctx->stream>>>(dX, X, Axx, Axy, M, N, D, cs);
    cudaCheckLaunch();
}

}  // namespace

extern "C" float mmd_grouped_forward_backward_cuda(CudaContext* ctx, float* dX, const float* X,
                                                   const float* Y, const int* x_start,
                                                   const int* y_start, int n_groups, int D,
                                                   const float* sigmas, int S, float* ws,
                                                   float grad_scale) {
    if (S > MMD_MAX_SIGMAS)
        ZS_FAIL("give at most 16 MMD bandwidths (loss.mmd_sigmas / zs3net.mmd_sigmas), or run "
                "on the CPU",
                "the CUDA MMD loss takes at most %d sigmas, got %d", MMD_MAX_SIGMAS, S);
    Sigmas sig = {};
    for (int s = 0; s < S; s++) sig.s[s] = sigmas[s];
    // The distances subtract Gram entries of order ||x||^2 to get d, often far
    // smaller: TF32 products would swamp d, so these GEMMs stay fp32.
    int tf32 = ctx->tf32;
    ctx->tf32 = 0;
    // scratch: 3 sums per group, then the block partials
    double* sums = cuda_scratch_doubles(ctx, 3 * (size_t)n_groups + reduce_scratch(3));
    double* partials = sums + 3 * (size_t)n_groups;

    // pass 1: the total, which the sqrt's gradient needs before any group's
    int last = -1;  // the group whose coefficients are left in ws
    for (int g = 0; g < n_groups; g++) {
        int M = x_start[g + 1] - x_start[g], N = y_start[g + 1] - y_start[g];
        if (M <= 0 || N <= 0) continue;
        mmd_group_terms(ctx, X + (size_t)x_start[g] * D, Y + (size_t)y_start[g] * D, M, N, D, sig,
                        S, ws, partials, sums + 3 * (size_t)g);
        last = g;
    }
    double total = 0.0;
    if (last >= 0) {
        double* h = (double*)mallocCheck(3 * (size_t)n_groups * sizeof(double));
        cuda_memcpy_d2h(h, sums, 3 * (size_t)n_groups * sizeof(double));
        for (int g = 0; g <= last; g++) {
            int M = x_start[g + 1] - x_start[g], N = y_start[g + 1] - y_start[g];
            if (M <= 0 || N <= 0) continue;
            double M2 = (double)M * M, MN = (double)M * N, N2 = (double)N * N;
            total += h[3 * g] / M2 + h[3 * g + 2] / N2 - 2.0 * h[3 * g + 1] / MN;
        }
        free(h);
    }
    double loss = sqrt(fmax(total, 0.0));
    if (dX && total > 1e-12) {
        // pass 2, last group first: its coefficients are still in ws; rows of
        // different groups are disjoint, so the order does not change dX
        float cs = (float)((double)grad_scale / (2.0 * loss));
        for (int g = last; g >= 0; g--) {
            int M = x_start[g + 1] - x_start[g], N = y_start[g + 1] - y_start[g];
            if (M <= 0 || N <= 0) continue;
            const float* Xg = X + (size_t)x_start[g] * D;
            const float* Yg = Y + (size_t)y_start[g] * D;
            if (g != last) mmd_group_terms(ctx, Xg, Yg, M, N, D, sig, S, ws, partials, sums);
            mmd_group_grad(ctx, dX + (size_t)x_start[g] * D, Xg, Yg, M, N, D, cs, ws);
        }
    }
    ctx->tf32 = tf32;
    return (float)loss;
}
