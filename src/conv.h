// 2D convolution (groups = 1) on NCHW fp32: im2col + one GEMM per image.
// Also the PixelCNN masks used by CaGNetv2's masked convolutions.
#ifndef ZSSEG_CONV_H
#define ZSSEG_CONV_H

#include <stddef.h>

typedef struct {
    int C_in, C_out;
    int kh, kw;
    int stride, pad, dilation;  // same in both spatial dims
} Conv2dDesc;

// floor((in + 2*pad - dilation*(k-1) - 1) / stride) + 1, as in PyTorch.
int conv2d_out_size(int in, int k, int stride, int pad, int dilation);

// Floats of the im2col buffer for ONE image, (C_in*kh*kw, Ho*Wo); reused for
// every image of the batch. 0 for 1x1/stride 1/pad 0 convs (plain GEMM, ws may
// be NULL).
size_t conv2d_workspace_floats(const Conv2dDesc* d, int H, int W);

// out = conv(inp, weight) + bias. Overwrites out.
void conv2d_forward(float* out,           // (B, C_out, Ho, Wo)
                    const float* inp,     // (B, C_in, H, W)
                    const float* weight,  // (C_out, C_in, kh, kw)
                    const float* bias,    // (C_out) or NULL
                    float* ws,            // (conv2d_workspace_floats(d, H, W))
                    const Conv2dDesc* d, int B, int H, int W);

// Gradients of conv2d_forward. ACCUMULATES (+=) into dinp, dweight, dbias.
void conv2d_backward(float* dinp,          // (B, C_in, H, W) or NULL; accumulated
                     float* dweight,       // (C_out, C_in, kh, kw) or NULL (input grad only); accumulated
                     float* dbias,         // (C_out) or NULL; accumulated
                     const float* dout,    // (B, C_out, Ho, Wo)
                     const float* inp,     // (B, C_in, H, W)
                     const float* weight,  // (C_out, C_in, kh, kw)
                     float* ws,            // (conv2d_workspace_floats(d, H, W))
                     const Conv2dDesc* d, int B, int H, int W);

// PixelCNN masks (van den Oord et al. 2016) for a single-group masked conv with
// odd kh, kw: rows above the centre open, centre row open left of the centre,
// the centre itself open for type 'B' only ('A' hides the current pixel).
// Writes 1 (open) or 0 (closed) into every (C_out, C_in) kernel plane.
void conv2d_mask_pixelcnn(float* mask,  // (C_out, C_in, kh, kw)
                          const Conv2dDesc* d, char type);

// out = w * mask element-wise; out may == w. A masked conv is an ordinary conv
// on apply_mask(weight); its weight gradient is apply_mask(dweight_of_masked),
// which may be done in place on an accumulated dweight since the mask is 0/1.
void conv2d_apply_mask(float* out,         // (n)
                       const float* w,     // (n)
                       const float* mask,  // (n)
                       size_t n);

#endif  // ZSSEG_CONV_H
