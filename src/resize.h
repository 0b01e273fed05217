// Resizing NCHW maps with PyTorch F.interpolate(size=...) semantics (no
// scale_factor): bilinear for features/logits, nearest for label maps. The
// index math lives in hd_math.h (hd_resize_scale, hd_bilinear_taps,
// hd_nearest_src), shared with CUDA.
#ifndef ZSSEG_RESIZE_H
#define ZSSEG_RESIZE_H

#include <stddef.h>
#include <stdint.h>

// mode='bilinear'. align_corners = 1: src = dst*(in-1)/(out-1) (0 if out == 1);
// align_corners = 0: src = (dst+0.5)*in/out - 0.5, clamped at 0. Overwrites out.
void resize_bilinear_forward(float* out,        // (B, C, Ho, Wo)
                             const float* inp,  // (B, C, H, W)
                             int B, int C, int H, int W, int Ho, int Wo, int align_corners);
// Adjoint of the forward. ACCUMULATES (+=) into dinp.
void resize_bilinear_backward(float* dinp,        // (B, C, H, W); accumulated
                              const float* dout,  // (B, C, Ho, Wo)
                              int B, int C, int H, int W, int Ho, int Wo, int align_corners);

// mode='nearest' for per-pixel maps of any element type (elem bytes each:
// labels, CE weights): src = min(floor(dst * (float)in/out), in-1).
void resize_nearest(void* out,        // (B, Ho, Wo) elements
                    const void* inp,  // (B, H, W) elements
                    size_t elem, int B, int H, int W, int Ho, int Wo);
// resize_nearest of uint8 label maps.
void resize_nearest_labels(uint8_t* out,        // (B, Ho, Wo)
                           const uint8_t* inp,  // (B, H, W)
                           int B, int H, int W, int Ho, int Wo);

#endif  // ZSSEG_RESIZE_H
