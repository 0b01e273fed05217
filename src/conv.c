// Convolution as GEMM: per image, the input is unrolled into col
// (C_in*kh*kw, Ho*Wo) so that out_b (C_out, Ho*Wo) = weight (C_out, K) @ col.
// BLAS runs outside OpenMP regions; the unroll loops are the parallel part.
#include "conv.h"

#include <cblas.h>

#include "common.h"

int conv2d_out_size(int in, int k, int stride, int pad, int dilation) {
    return (in + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
}

// 1x1 convs with unit stride and no padding read the input plane as col directly.
static int conv2d_is_gemm(const Conv2dDesc* d) {
    return d->kh == 1 && d->kw == 1 && d->stride == 1 && d->pad == 0;
}

static void conv2d_check(const Conv2dDesc* d, int H, int W) {
    if (d->C_in < 1 || d->C_out < 1 || d->kh < 1 || d->kw < 1 || d->stride < 1 || d->pad < 0 ||
        d->dilation < 1)
        ZS_FAIL("check the layer definition in the model code",
                "bad conv: C_in %d C_out %d kernel %dx%d stride %d pad %d dilation %d", d->C_in,
                d->C_out, d->kh, d->kw, d->stride, d->pad, d->dilation);
    int Ho = conv2d_out_size(H, d->kh, d->stride, d->pad, d->dilation);
    int Wo = conv2d_out_size(W, d->kw, d->stride, d->pad, d->dilation);
    if (H < 1 || W < 1 || Ho < 1 || Wo < 1)
        ZS_FAIL("the input is too small for this kernel/dilation; use a larger crop",
                "conv on %dx%d input gives %dx%d output (kernel %dx%d dilation %d pad %d)", H, W,
                Ho, Wo, d->kh, d->kw, d->dilation, d->pad);
}

size_t conv2d_workspace_floats(const Conv2dDesc* d, int H, int W) {
    if (conv2d_is_gemm(d)) return 0;
    size_t Ho = (size_t)conv2d_out_size(H, d->kh, d->stride, d->pad, d->dilation);
    size_t Wo = (size_t)conv2d_out_size(W, d->kw, d->stride, d->pad, d->dilation);
    return (size_t)d->C_in * d->kh * d->kw * Ho * Wo;
}

// col[(c, i, j), (oy, ox)] = inp[c, oy*s - p + i*dil, ox*s - p + j*dil], 0 outside.
static void im2col(float* col,        // (C_in*kh*kw, Ho*Wo)
                   const float* inp,  // (C_in, H, W)
                   const Conv2dDesc* d, int H, int W, int Ho, int Wo) {
    int K = d->C_in * d->kh * d->kw;
#pragma omp parallel for
    for (int row = 0; row < K; row++) {
        int j = row % d->kw, i = (row / d->kw) % d->kh, c = row / (d->kw * d->kh);
        const float* plane = inp + (size_t)c * H * W;
        float* dst = col + (size_t)row * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            int iy = oy * d->stride - d->pad + i * d->dilation;
            for (int ox = 0; ox < Wo; ox++) {
                int ix = ox * d->stride - d->pad + j * d->dilation;
                dst[oy * Wo + ox] =
                    (iy >= 0 && iy < H && ix >= 0 && ix < W) ? plane[(size_t)iy * W + ix] : 0.0f;
            }
        }
    }
}

// Transpose of im2col: dinp += scatter(col). One thread per input channel, so
// the overlapping kernel taps of a channel never race.
static void col2im_add(float* dinp,       // (C_in, H, W)
                       const float* col,  // (C_in*kh*kw, Ho*Wo)
                       const Conv2dDesc* d, int H, int W, int Ho, int Wo) {
#pragma omp parallel for
    for (int c = 0; c < d->C_in; c++) {
        float* plane = dinp + (size_t)c * H * W;
        for (int i = 0; i < d->kh; i++) {
            for (int j = 0; j < d->kw; j++) {
                const float* src = col + ((size_t)(c * d->kh + i) * d->kw + j) * Ho * Wo;
                for (int oy = 0; oy < Ho; oy++) {
                    int iy = oy * d->stride - d->pad + i * d->dilation;
                    if (iy < 0 || iy >= H) continue;
                    for (int ox = 0; ox < Wo; ox++) {
                        int ix = ox * d->stride - d->pad + j * d->dilation;
                        if (ix >= 0 && ix < W) plane[(size_t)iy * W + ix] += src[oy * Wo + ox];
                    }
                }
            }
        }
    }
}

void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    float* ws, const Conv2dDesc* d, int B, int H, int W) {
    conv2d_check(d, H, W);
    int Ho = conv2d_out_size(H, d->kh, d->stride, d->pad, d->dilation);
    int Wo = conv2d_out_size(W, d->kw, d->stride, d->pad, d->dilation);
    int N = Ho * Wo, K = d->C_in * d->kh * d->kw;
    int gemm = conv2d_is_gemm(d);
    for (int b = 0; b < B; b++) {
        const float* x = inp + (size_t)b * d->C_in * H * W;
        float* y = out + (size_t)b * d->C_out * N;
        if (bias) {
#pragma omp parallel for
            for (int o = 0; o < d->C_out; o++)
                for (int n = 0; n < N; n++) y[(size_t)o * N + n] = bias[o];
        }
        const float* col = x;
        if (!gemm) {
            im2col(ws, x, d, H, W, Ho, Wo);
            col = ws;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->C_out, N, K, 1.0f, weight, K,
                    col, N, bias ? 1.0f : 0.0f, y, N);
    }
}

void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, float* ws, const Conv2dDesc* d,
                     int B, int H, int W) {
    conv2d_check(d, H, W);
    int Ho = conv2d_out_size(H, d->kh, d->stride, d->pad, d->dilation);
    int Wo = conv2d_out_size(W, d->kw, d->stride, d->pad, d->dilation);
    int N = Ho * Wo, K = d->C_in * d->kh * d->kw;
    int gemm = conv2d_is_gemm(d);
    if (dbias) {
#pragma omp parallel for
        for (int o = 0; o < d->C_out; o++) {
            float s = 0.0f;
            for (int b = 0; b < B; b++) {
                const float* g = dout + ((size_t)b * d->C_out + o) * N;
                for (int n = 0; n < N; n++) s += g[n];
            }
            dbias[o] += s;
        }
    }
    for (int b = 0; b < B; b++) {
        const float* x = inp + (size_t)b * d->C_in * H * W;
        const float* g = dout + (size_t)b * d->C_out * N;
        const float* col = x;
        if (!gemm && dweight) {
            im2col(ws, x, d, H, W, Ho, Wo);
            col = ws;
        }
        // dweight (C_out, K) += dout_b (C_out, N) @ col^T
        if (dweight)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->C_out, K, N, 1.0f, g, N, col,
                        N, 1.0f, dweight, K);
        if (!dinp) continue;
        float* dx = dinp + (size_t)b * d->C_in * H * W;
        // dcol (K, N) = weight^T @ dout_b; the 1x1 case accumulates straight into dinp
        if (gemm) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, d->C_out, 1.0f, weight, K,
                        g, N, 1.0f, dx, N);
        } else {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, d->C_out, 1.0f, weight, K,
                        g, N, 0.0f, ws, N);
            col2im_add(dx, ws, d, H, W, Ho, Wo);
        }
    }
}

void conv2d_mask_pixelcnn(float* mask, const Conv2dDesc* d, char type) {
    if (type != 'A' && type != 'B')
        ZS_FAIL("PixelCNN mask types are 'A' (first layer) and 'B' (later layers)",
                "unknown mask type '%c'", type);
    if (d->kh % 2 == 0 || d->kw % 2 == 0)
        ZS_FAIL("use an odd kernel size for masked convs",
                "PixelCNN mask needs an odd kernel, got %dx%d", d->kh, d->kw);
    int cy = d->kh / 2, cx = d->kw / 2;
    size_t planes = (size_t)d->C_out * d->C_in, khw = (size_t)d->kh * d->kw;
    for (size_t p = 0; p < planes; p++) {
        for (int i = 0; i < d->kh; i++) {
            for (int j = 0; j < d->kw; j++) {
                int open = i < cy || (i == cy && j < cx) || (i == cy && j == cx && type == 'B');
                mask[p * khw + (size_t)i * d->kw + j] = open ? 1.0f : 0.0f;
            }
        }
    }
}

void conv2d_apply_mask(float* out, const float* w, const float* mask, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) out[i] = w[i] * mask[i];
}
