// Layout and glue kernels: batchnorm.h, pool.h, resize.h, tensor_ops.h and
// cagnet.c's label helpers on the device, with the per-element math of
// hd_math.h that the CPU runs. The CPU backwards that scatter (max pool,
// bilinear resize) are gathers here: one thread owns each gradient element
// and adds its contributions in the CPU's order, so there are no atomics, the
// result is run-to-run identical and it matches the CPU up to fused
// multiply-adds (bitwise where no multiply is involved).
#include "cuda_common.h"
#include "hd_math.h"
#include "map.cuh"

extern "C" {
#include "pool.h"
}

// ---------------------------------------------------------------- fill, axpy

struct Fill {
    float* p;
    float v;
    __device__ void operator()(size_t i) const { p[i] = v; }
};
struct Axpy {
    float* y;
    const float* x;
    float alpha;
    __device__ void operator()(size_t i) const { y[i] += alpha * x[i]; }
};

extern "C" void fill_cuda(CudaContext* ctx, float* p, float value, size_t n) {
    launch_map(ctx, Fill{p, value}, n);
}
extern "C" void axpy_cuda(CudaContext* ctx, float* y, const float* x, float alpha, size_t n) {
    launch_map(ctx, Axpy{y, x, alpha}, n);
}

// ---------------------------------------------------------------- frozen batch norm

struct BnFold {
    float *scale, *shift;
    const float *mean, *var, *gamma, *beta;
    float eps;
    __device__ void operator()(size_t c) const {
        hd_bn_fold(mean[c], var[c], gamma[c], beta[c], eps, &scale[c], &shift[c]);
    }
};
// Element i of (B, C, HW) is in channel (i / HW) % C.
struct BnFwd {
    float* out;
    const float *inp, *scale, *shift;
    int C, HW;
    __device__ void operator()(size_t i) const {
        size_t c = i / HW % C;
        out[i] = inp[i] * scale[c] + shift[c];
    }
};
struct BnBwd {
    float* dinp;
    const float *dout, *scale;
    int C, HW;
    __device__ void operator()(size_t i) const { dinp[i] += dout[i] * scale[i / HW % C]; }
};

extern "C" void frozen_bn_fold_cuda(CudaContext* ctx, float* scale, float* shift, const float* mean,
                                    const float* var, const float* gamma, const float* beta,
                                    float eps, int C) {
    launch_map(ctx, BnFold{scale, shift, mean, var, gamma, beta, eps}, (size_t)C);
}
extern "C" void frozen_bn_forward_cuda(CudaContext* ctx, float* out, const float* inp,
                                       const float* scale, const float* shift, int B, int C,
                                       int HW) {
    launch_map(ctx, BnFwd{out, inp, scale, shift, C, HW}, (size_t)B * C * HW);
}
extern "C" void frozen_bn_backward_cuda(CudaContext* ctx, float* dinp, const float* dout,
                                        const float* scale, int B, int C, int HW) {
    launch_map(ctx, BnBwd{dinp, dout, scale, C, HW}, (size_t)B * C * HW);
}

// ---------------------------------------------------------------- max pooling

struct PoolFwd {
    float* out;
    int* argmax;
    const float* inp;
    int H, W, Ho, Wo, k, stride, pad;
    __device__ void operator()(size_t i) const {
        size_t plane = i / ((size_t)Ho * Wo);
        int o = (int)(i % ((size_t)Ho * Wo));
        argmax[i] = hd_maxpool_window(inp + plane * H * W, H, W, o / Wo, o % Wo, k, stride, pad,
                                      &out[i]);
    }
};

// Outputs [*lo, *hi] along one axis whose window [o*stride - pad, +k) holds
// input index i (empty when *lo > *hi).
__device__ static void pool_reach(int i, int k, int stride, int pad, int out, int* lo, int* hi) {
    int a = i + pad - k;  // o*stride > a
    *lo = a < 0 ? 0 : a / stride + 1;
    int h = (i + pad) / stride;
    *hi = h < out - 1 ? h : out - 1;
}

// dinp[i] gathers the dout of every output whose argmax is i, in raster
// order, adding to the running value like the CPU's scatter: bitwise equal.
struct PoolBwd {
    float* dinp;
    const float* dout;
    const int* argmax;
    int H, W, Ho, Wo, k, stride, pad;
    __device__ void operator()(size_t i) const {
        size_t plane = i / ((size_t)H * W);
        int at = (int)(i % ((size_t)H * W));
        int oy0, oy1, ox0, ox1;
        pool_reach(at / W, k, stride, pad, Ho, &oy0, &oy1);
        pool_reach(at % W, k, stride, pad, Wo, &ox0, &ox1);
        const float* g = dout + plane * Ho * Wo;
        const int* am = argmax + plane * Ho * Wo;
        float v = dinp[i];
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++)
                if (am[oy * Wo + ox] == at) v += g[oy * Wo + ox];
        dinp[i] = v;
    }
};

extern "C" void maxpool2d_forward_cuda(CudaContext* ctx, float* out, int* argmax, const float* inp,
                                       int B, int C, int H, int W, int k, int stride, int pad,
                                       int ceil_mode) {
    if (!hd_maxpool_geometry_ok(H, W, k, stride, pad))
        ZS_FAIL("max pooling needs pad <= k/2 and an input at least as large as the window",
                "maxpool k %d stride %d pad %d on %dx%d input", k, stride, pad, H, W);
    int Ho = maxpool2d_out_size(H, k, stride, pad, ceil_mode);
    int Wo = maxpool2d_out_size(W, k, stride, pad, ceil_mode);
    launch_map(ctx, PoolFwd{out, argmax, inp, H, W, Ho, Wo, k, stride, pad},
               (size_t)B * C * Ho * Wo);
}
extern "C" void maxpool2d_backward_cuda(CudaContext* ctx, float* dinp, const float* dout,
                                        const int* argmax, int B, int C, int H, int W, int Ho,
                                        int Wo, int k, int stride, int pad) {
    launch_map(ctx, PoolBwd{dinp, dout, argmax, H, W, Ho, Wo, k, stride, pad},
               (size_t)B * C * H * W);
}

// ---------------------------------------------------------------- resize

struct BilinearFwd {
    float* out;
    const float* inp;
    int H, W, Ho, Wo, ac;
    float sh, sw;
    __device__ void operator()(size_t i) const {
        size_t plane = i / ((size_t)Ho * Wo);
        int o = (int)(i % ((size_t)Ho * Wo));
        int h0, h1, w0, w1;
        float lh, lw;
        hd_bilinear_taps(sh, o / Wo, H, ac, &h0, &h1, &lh);
        hd_bilinear_taps(sw, o % Wo, W, ac, &w0, &w1, &lw);
        const float* r0 = inp + (plane * H + h0) * W;
        const float* r1 = inp + (plane * H + h1) * W;
        out[i] = hd_bilerp(r0[w0], r0[w1], r1[w0], r1[w1], lh, lw);
    }
};

// First output index along one axis whose low tap is >= target (out if none).
// The low tap never decreases with the output index, so bisection finds it.
__device__ static int first_tap_at_least(float scale, int in, int out, int ac, int target) {
    int lo = 0, hi = out;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, t0, t1;
        float w;
        hd_bilinear_taps(scale, mid, in, ac, &t0, &t1, &w);
        if (t0 >= target)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

// Input index i is a tap of exactly the outputs whose low tap is i - 1 or i
// (the high tap is low + 1, clamped): a contiguous range. dinp[i] walks it in
// the CPU's order (rows, columns, then taps 00, 01, 10, 11), so only fused
// multiply-adds separate it from the CPU's scatter.
struct BilinearBwd {
    float* dinp;
    const float* dout;
    int H, W, Ho, Wo, ac;
    float sh, sw;
    __device__ void operator()(size_t i) const {
        size_t plane = i / ((size_t)H * W);
        int at = (int)(i % ((size_t)H * W)), ih = at / W, iw = at % W;
        int oh0 = first_tap_at_least(sh, H, Ho, ac, ih - 1);
        int oh1 = first_tap_at_least(sh, H, Ho, ac, ih + 1);
        int ow0 = first_tap_at_least(sw, W, Wo, ac, iw - 1);
        int ow1 = first_tap_at_least(sw, W, Wo, ac, iw + 1);
        float v = dinp[i];
        for (int oh = oh0; oh < oh1; oh++) {
            int h0, h1;
            float lh;
            hd_bilinear_taps(sh, oh, H, ac, &h0, &h1, &lh);
            const float* g = dout + (plane * Ho + oh) * Wo;
            for (int ow = ow0; ow < ow1; ow++) {
                int w0, w1;
                float lw;
                hd_bilinear_taps(sw, ow, W, ac, &w0, &w1, &lw);
                float g0 = (1.0f - lh) * g[ow], g1 = lh * g[ow];
                if (h0 == ih) {
                    if (w0 == iw) v += (1.0f - lw) * g0;
                    if (w1 == iw) v += lw * g0;
                }
                if (h1 == ih) {
                    if (w0 == iw) v += (1.0f - lw) * g1;
                    if (w1 == iw) v += lw * g1;
                }
            }
        }
        dinp[i] = v;
    }
};

struct NearestLabels {
    uint8_t* out;
    const uint8_t* inp;
    int H, W, Ho, Wo;
    __device__ void operator()(size_t i) const {
        size_t b = i / ((size_t)Ho * Wo);
        int o = (int)(i % ((size_t)Ho * Wo));
        int h = hd_nearest_src(o / Wo, H, Ho), w = hd_nearest_src(o % Wo, W, Wo);
        out[i] = inp[(b * H + h) * W + w];
    }
};

extern "C" void resize_bilinear_forward_cuda(CudaContext* ctx, float* out, const float* inp, int B,
                                             int C, int H, int W, int Ho, int Wo,
                                             int align_corners) {
    float sh = hd_resize_scale(H, Ho, align_corners), sw = hd_resize_scale(W, Wo, align_corners);
    launch_map(ctx, BilinearFwd{out, inp, H, W, Ho, Wo, align_corners, sh, sw},
               (size_t)B * C * Ho * Wo);
}
extern "C" void resize_bilinear_backward_cuda(CudaContext* ctx, float* dinp, const float* dout,
                                              int B, int C, int H, int W, int Ho, int Wo,
                                              int align_corners) {
    float sh = hd_resize_scale(H, Ho, align_corners), sw = hd_resize_scale(W, Wo, align_corners);
    launch_map(ctx, BilinearBwd{dinp, dout, H, W, Ho, Wo, align_corners, sh, sw},
               (size_t)B * C * H * W);
}
extern "C" void resize_nearest_labels_cuda(CudaContext* ctx, uint8_t* out, const uint8_t* inp,
                                           int B, int H, int W, int Ho, int Wo) {
    launch_map(ctx, NearestLabels{out, inp, H, W, Ho, Wo}, (size_t)B * Ho * Wo);
}

// ---------------------------------------------------------------- multi-scale max fusion

enum { MAX_FUSE_MAPS = 8 };
// The k device pointers travel by value in the kernel's arguments; unused
// slots stay NULL.
struct FuseInputs {
    const float* p[MAX_FUSE_MAPS];
};
struct FuseGrads {
    float* p[MAX_FUSE_MAPS];
};

struct MaxFuseFwd {
    float* out;
    uint8_t* which;
    FuseInputs in;
    int k;
    __device__ void operator()(size_t i) const {
        which[i] = (uint8_t)hd_max_fuse(in.p, k, i, &out[i]);
    }
};
struct MaxFuseBwd {
    FuseGrads d;
    const float* dout;
    const uint8_t* which;
    __device__ void operator()(size_t i) const {
        float* dst = d.p[which[i]];
        if (dst) dst[i] += dout[i];
    }
};

static void check_fuse_maps(const char* fn, int k) {
    if (k < 1 || k > MAX_FUSE_MAPS)
        ZS_FAIL("the CUDA max fusion takes 1 to 8 maps (scales); use fewer scales",
                "%s: k = %d", fn, k);
}

extern "C" void max_fuse_forward_cuda(CudaContext* ctx, float* out, uint8_t* which,
                                      const float* const* inputs, int k, size_t n) {
    check_fuse_maps("max_fuse_forward_cuda", k);
    FuseInputs in = {};
    for (int j = 0; j < k; j++) in.p[j] = inputs[j];
    launch_map(ctx, MaxFuseFwd{out, which, in, k}, n);
}
extern "C" void max_fuse_backward_cuda(CudaContext* ctx, float* const* dinputs, const float* dout,
                                       const uint8_t* which, int k, size_t n) {
    check_fuse_maps("max_fuse_backward_cuda", k);
    FuseGrads d = {};
    for (int j = 0; j < k; j++) d.p[j] = dinputs[j];
    launch_map(ctx, MaxFuseBwd{d, dout, which}, n);
}

// ---------------------------------------------------------------- channel blocks

// A block of Cb channels moved between two channel layouts: element i of
// (B, Cb, HW) goes from channel src_c0 + c of (B, Csrc, HW) to channel
// dst_c0 + c of (B, Cdst, HW), overwritten or added. Concat pieces, slices
// and their backwards are all this.
struct ChannelBlock {
    float* dst;
    const float* src;
    int Cb, HW, Cdst, dst_c0, Csrc, src_c0, add;
    __device__ void operator()(size_t i) const {
        size_t len = (size_t)Cb * HW, b = i / len, r = i % len;
        float v = src[(b * Csrc + src_c0) * HW + r];
        float* d = &dst[(b * Cdst + dst_c0) * HW + r];
        *d = add ? *d + v : v;
    }
};

extern "C" void copy_channels_cuda(CudaContext* ctx, float* out, const float* inp, int B, int C,
                                   int Ctot, int c0, int HW) {
    launch_map(ctx, ChannelBlock{out, inp, C, HW, Ctot, c0, C, 0, 0}, (size_t)B * C * HW);
}
extern "C" void slice_channels_forward_cuda(CudaContext* ctx, float* out, const float* inp, int B,
                                            int C, int HW, int c0, int Cs) {
    launch_map(ctx, ChannelBlock{out, inp, Cs, HW, Cs, 0, C, c0, 0}, (size_t)B * Cs * HW);
}
extern "C" void slice_channels_backward_cuda(CudaContext* ctx, float* dinp, const float* dout,
                                             int B, int C, int HW, int c0, int Cs) {
    launch_map(ctx, ChannelBlock{dinp, dout, Cs, HW, C, c0, Cs, 0, 1}, (size_t)B * Cs * HW);
}

// ---------------------------------------------------------------- add, mul, scale by map

struct Add {
    float* out;
    const float *a, *b;
    __device__ void operator()(size_t i) const { out[i] = a[i] + b[i]; }
};
struct Mul {
    float* out;
    const float *a, *b;
    __device__ void operator()(size_t i) const { out[i] = a[i] * b[i]; }
};
struct MulBwd {
    float *da, *db;
    const float *dout, *a, *b;
    __device__ void operator()(size_t i) const {
        if (da) da[i] += dout[i] * b[i];
        if (db) db[i] += dout[i] * a[i];
    }
};
// Element i of (B, C, HW) reads pixel (i / (C*HW), i % HW) of the (B, 1, HW) map.
struct ScaleMapFwd {
    float* out;
    const float *x, *s;
    int C, HW;
    __device__ void operator()(size_t i) const {
        out[i] = x[i] * s[i / ((size_t)C * HW) * HW + i % HW];
    }
};
struct ScaleMapBwdX {
    float* dx;
    const float *dout, *s;
    int C, HW;
    __device__ void operator()(size_t i) const {
        dx[i] += dout[i] * s[i / ((size_t)C * HW) * HW + i % HW];
    }
};
// One thread per pixel sums over channels in the CPU's order.
struct ScaleMapBwdS {
    float* ds;
    const float *dout, *x;
    int C, HW;
    __device__ void operator()(size_t i) const {
        size_t o = i / HW * C * HW + i % HW;
        float acc = 0.0f;
        for (int c = 0; c < C; c++) acc += dout[o + (size_t)c * HW] * x[o + (size_t)c * HW];
        ds[i] += acc;
    }
};

extern "C" void add_forward_cuda(CudaContext* ctx, float* out, const float* a, const float* b,
                                 size_t n) {
    launch_map(ctx, Add{out, a, b}, n);
}
extern "C" void mul_forward_cuda(CudaContext* ctx, float* out, const float* a, const float* b,
                                 size_t n) {
    launch_map(ctx, Mul{out, a, b}, n);
}
extern "C" void mul_backward_cuda(CudaContext* ctx, float* da, float* db, const float* dout,
                                  const float* a, const float* b, size_t n) {
    if (da || db) launch_map(ctx, MulBwd{da, db, dout, a, b}, n);
}
extern "C" void scale_by_map_forward_cuda(CudaContext* ctx, float* out, const float* x,
                                          const float* s, int B, int C, int HW) {
    launch_map(ctx, ScaleMapFwd{out, x, s, C, HW}, (size_t)B * C * HW);
}
extern "C" void scale_by_map_backward_cuda(CudaContext* ctx, float* dx, float* ds,
                                           const float* dout, const float* x, const float* s,
                                           int B, int C, int HW) {
    if (dx) launch_map(ctx, ScaleMapBwdX{dx, dout, s, C, HW}, (size_t)B * C * HW);
    if (ds) launch_map(ctx, ScaleMapBwdS{ds, dout, x, C, HW}, (size_t)B * HW);
}

// ---------------------------------------------------------------- labels and feature rows

struct EmbedLabels {
    float* emap;
    const float* emb;
    const uint8_t* lbl;
    int E, HW;
    __device__ void operator()(size_t i) const {
        size_t b = i / ((size_t)E * HW), e = i / HW % E;
        uint8_t y = lbl[b * HW + i % HW];
        emap[i] = y == 255 ? 0.0f : emb[(size_t)y * E + e];
    }
};

// valid[i] = lbl[i] != 255 (valid may be NULL), each block's count added to
// *count: integers, so the atomic sum is exact. Whole blocks step through the
// grid-stride loop together so every thread reaches __syncthreads_count.
__global__ static void count_valid_kernel(uint8_t* valid, const uint8_t* lbl, size_t n,
                                          unsigned long long* count) {
    unsigned long long c = 0;
    size_t step = (size_t)gridDim.x * blockDim.x;
    for (size_t base = (size_t)blockIdx.x * blockDim.x; base < n; base += step) {
        size_t i = base + threadIdx.x;
        int v = i < n && lbl[i] != 255;
        if (valid && i < n) valid[i] = (uint8_t)v;
        c += (unsigned long long)__syncthreads_count(v);
    }
    if (threadIdx.x == 0 && c) atomicAdd(count, c);
}

// Row r of (R, C) <-> pixel pos[r] = b*HW + p of (B, C, HW), channel c.
__device__ static size_t row_src(const int* pos, size_t i, int C, int HW) {
    size_t r = i / C, c = i % C, q = (size_t)pos[r];
    return (q / HW * C + c) * HW + q % HW;
}
struct GatherRows {
    float* rows;
    const float* X;
    const int* pos;
    int C, HW;
    __device__ void operator()(size_t i) const { rows[i] = X[row_src(pos, i, C, HW)]; }
};
// Distinct pixels: every element of dX has at most one writer.
struct ScatterRowsAdd {
    float* dX;
    const float* drows;
    const int* pos;
    int C, HW;
    __device__ void operator()(size_t i) const { dX[row_src(pos, i, C, HW)] += drows[i]; }
};

extern "C" void embed_labels_cuda(CudaContext* ctx, float* emap, const float* emb,
                                  const uint8_t* lbl, int B, int E, int HW) {
    launch_map(ctx, EmbedLabels{emap, emb, lbl, E, HW}, (size_t)B * E * HW);
}
extern "C" double count_valid_cuda(CudaContext* ctx, uint8_t* valid, const uint8_t* lbl,
                                   size_t n) {
    // stream-ordered allocation: no device-wide synchronisation
    unsigned long long *d_count, count = 0;
    cudaCheck(cudaMallocAsync((void**)&d_count, sizeof *d_count, ctx->stream));
    cudaCheck(cudaMemsetAsync(d_count, 0, sizeof *d_count, ctx->stream));
    if (n) {
        count_valid_kernel<<<cuda_grid(n), CUDA_BLOCK, 0, ctx->stream>>>(valid, lbl, n, d_count);
        cudaCheckLaunch();
    }
    cudaCheck(cudaMemcpyAsync(&count, d_count, sizeof count, cudaMemcpyDeviceToHost, ctx->stream));
    cudaCheck(cudaFreeAsync(d_count, ctx->stream));
    cudaCheck(cudaStreamSynchronize(ctx->stream));
    return (double)count;
}
extern "C" void gather_rows_cuda(CudaContext* ctx, float* rows, const float* X, const int* pos,
                                 int R, int C, int HW) {
    launch_map(ctx, GatherRows{rows, X, pos, C, HW}, (size_t)R * C);
}
extern "C" void scatter_rows_add_cuda(CudaContext* ctx, float* dX, const float* drows,
                                      const int* pos, int R, int C, int HW) {
    launch_map(ctx, ScatterRowsAdd{dX, drows, pos, C, HW}, (size_t)R * C);
}
