// 2D max pooling on NCHW fp32 with PyTorch semantics (padding never wins, the
// first maximum in raster order is taken, NaN propagates, ceil_mode).
#ifndef ZSSEG_POOL_H
#define ZSSEG_POOL_H

// Output size along one dim. ceil_mode rounds the window count up, but the last
// window must start inside the input or the left padding (PyTorch rule).
// Requires pad <= k/2 (as PyTorch), so every window holds an input pixel.
int maxpool2d_out_size(int in, int k, int stride, int pad, int ceil_mode);

// Overwrites out and argmax.
void maxpool2d_forward(float* out,        // (B, C, Ho, Wo)
                       int* argmax,       // (B, C, Ho, Wo) flat index into the H*W plane
                       const float* inp,  // (B, C, H, W)
                       int B, int C, int H, int W, int k, int stride, int pad, int ceil_mode);

// dinp[argmax] += dout. ACCUMULATES into dinp.
void maxpool2d_backward(float* dinp,        // (B, C, H, W); accumulated
                        const float* dout,  // (B, C, Ho, Wo)
                        const int* argmax,  // (B, C, Ho, Wo) from maxpool2d_forward
                        int B, int C, int H, int W, int Ho, int Wo);

#endif  // ZSSEG_POOL_H
