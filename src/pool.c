// Max pooling: one thread per (image, channel) plane, so backward's scatter by
// argmax never races.
#include "pool.h"

#include <stddef.h>

#include "common.h"
#include "hd_math.h"

int maxpool2d_out_size(int in, int k, int stride, int pad, int ceil_mode) {
    int span = in + 2 * pad - k;
    int out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    // a window starting in the right padding would see padding only
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

void maxpool2d_forward(float* out, int* argmax, const float* inp, int B, int C, int H, int W,
                       int k, int stride, int pad, int ceil_mode) {
    if (!hd_maxpool_geometry_ok(H, W, k, stride, pad))
        ZS_FAIL("max pooling needs pad <= k/2 and an input at least as large as the window",
                "maxpool k %d stride %d pad %d on %dx%d input", k, stride, pad, H, W);
    int Ho = maxpool2d_out_size(H, k, stride, pad, ceil_mode);
    int Wo = maxpool2d_out_size(W, k, stride, pad, ceil_mode);
#pragma omp parallel for
    for (int bc = 0; bc < B * C; bc++) {
        const float* x = inp + (size_t)bc * H * W;
        float* y = out + (size_t)bc * Ho * Wo;
        int* am = argmax + (size_t)bc * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++)
                am[oy * Wo + ox] =
                    hd_maxpool_window(x, H, W, oy, ox, k, stride, pad, &y[oy * Wo + ox]);
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
