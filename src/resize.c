// Bilinear and nearest resizing; see resize.h.
#include "resize.h"

#include <stddef.h>
#include <string.h>

#include "hd_math.h"

void resize_bilinear_forward(float* out, const float* inp, int B, int C, int H, int W, int Ho,
                             int Wo, int align_corners) {
    const float sh = hd_resize_scale(H, Ho, align_corners);
    const float sw = hd_resize_scale(W, Wo, align_corners);
    const int planes = B * C;
#pragma omp parallel for collapse(2)
    for (int pl = 0; pl < planes; pl++) {
        for (int oh = 0; oh < Ho; oh++) {
            const float* ip = inp + (size_t)pl * H * W;
            float* op = out + ((size_t)pl * Ho + oh) * Wo;
            int h0, h1, w0, w1;
            float lh, lw;
            hd_bilinear_taps(sh, oh, H, align_corners, &h0, &h1, &lh);
            const float* r0 = ip + (size_t)h0 * W;
            const float* r1 = ip + (size_t)h1 * W;
            for (int ow = 0; ow < Wo; ow++) {
                hd_bilinear_taps(sw, ow, W, align_corners, &w0, &w1, &lw);
                op[ow] = hd_bilerp(r0[w0], r0[w1], r1[w0], r1[w1], lh, lw);
            }
        }
    }
}

void resize_bilinear_backward(float* dinp, const float* dout, int B, int C, int H, int W, int Ho,
                              int Wo, int align_corners) {
    const float sh = hd_resize_scale(H, Ho, align_corners);
    const float sw = hd_resize_scale(W, Wo, align_corners);
    const int planes = B * C;
    // one thread per plane: output pixels of a plane scatter into shared taps
#pragma omp parallel for
    for (int pl = 0; pl < planes; pl++) {
        float* dp = dinp + (size_t)pl * H * W;
        for (int oh = 0; oh < Ho; oh++) {
            const float* g = dout + ((size_t)pl * Ho + oh) * Wo;
            int h0, h1, w0, w1;
            float lh, lw;
            hd_bilinear_taps(sh, oh, H, align_corners, &h0, &h1, &lh);
            float* r0 = dp + (size_t)h0 * W;
            float* r1 = dp + (size_t)h1 * W;
            for (int ow = 0; ow < Wo; ow++) {
                hd_bilinear_taps(sw, ow, W, align_corners, &w0, &w1, &lw);
                float g0 = (1.0f - lh) * g[ow], g1 = lh * g[ow];
                r0[w0] += (1.0f - lw) * g0;
                r0[w1] += lw * g0;
                r1[w0] += (1.0f - lw) * g1;
                r1[w1] += lw * g1;
            }
        }
    }
}

void resize_nearest(void* out, const void* inp, size_t elem, int B, int H, int W, int Ho,
                    int Wo) {
    const unsigned char* in = inp;
    unsigned char* o = out;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int oh = 0; oh < Ho; oh++) {
            const unsigned char* row = in + ((size_t)b * H + hd_nearest_src(oh, H, Ho)) * W * elem;
            unsigned char* op = o + ((size_t)b * Ho + oh) * Wo * elem;
            for (int ow = 0; ow < Wo; ow++) {
                size_t src = (size_t)hd_nearest_src(ow, W, Wo);
                memcpy(op + (size_t)ow * elem, row + src * elem, elem);
            }
        }
    }
}

void resize_nearest_labels(uint8_t* out, const uint8_t* inp, int B, int H, int W, int Ho, int Wo) {
    resize_nearest(out, inp, 1, B, H, W, Ho, Wo);
}
