// Max pooling: one thread per (image, channel) plane, so backward's scatter by
// argmax never races.
#include "pool.h"

#include <math.h>
#include <stddef.h>

#include "common.h"

int maxpool2d_out_size(int in, int k, int stride, int pad, int ceil_mode) {
    int span = in + 2 * pad - k;
    int out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    // a window starting in the right padding would see padding only
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

void maxpool2d_forward(float* out, int* argmax, const float* inp, int B, int C, int H, int W,
                       int k, int stride, int pad, int ceil_mode) {
    if (k < 1 || stride < 1 || pad < 0 || pad > k / 2 || H + 2 * pad < k || W + 2 * pad < k)
        ZS_FAIL("max pooling needs pad <= k/2 and an input at least as large as the window",
                "maxpool k %d stride %d pad %d on %dx%d input", k, stride, pad, H, W);
    int Ho = maxpool2d_out_size(H, k, stride, pad, ceil_mode);
    int Wo = maxpool2d_out_size(W, k, stride, pad, ceil_mode);
#pragma omp parallel for
    for (int bc = 0; bc < B * C; bc++) {
        const float* x = inp + (size_t)bc * H * W;
        float* y = out + (size_t)bc * Ho * Wo;
        int* am = argmax + (size_t)bc * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            int y0 = oy * stride - pad, y1 = y0 + k < H ? y0 + k : H;
            if (y0 < 0) y0 = 0;
            for (int ox = 0; ox < Wo; ox++) {
                int x0 = ox * stride - pad, x1 = x0 + k < W ? x0 + k : W;
                if (x0 < 0) x0 = 0;
                int best = y0 * W + x0;
                float m = x[best];
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        float v = x[iy * W + ix];
                        if (v > m || isnan(v)) {
                            m = v;
                            best = iy * W + ix;
                        }
                    }
                y[oy * Wo + ox] = m;
                am[oy * Wo + ox] = best;
            }
        }
    }
}

void maxpool2d_backward(float* dinp, const float* dout, const int* argmax, int B, int C, int H,
                        int W, int Ho, int Wo) {
#pragma omp parallel for
    for (int bc = 0; bc < B * C; bc++) {
        float* dx = dinp + (size_t)bc * H * W;
        const float* g = dout + (size_t)bc * Ho * Wo;
        const int* am = argmax + (size_t)bc * Ho * Wo;
        for (int i = 0; i < Ho * Wo; i++) dx[am[i]] += g[i];
    }
}
