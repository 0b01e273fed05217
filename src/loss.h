// Training losses on the CPU: softmax cross-entropy, GAN losses on
// discriminator logits, KL to N(0, I), masked MSE and the multi-bandwidth MMD
// of the GMMN / CaGNet reference code. Per-element formulas live in hd_math.h
// so the CUDA kernels run the same math.
//
// Every function returns the scalar loss and, when a gradient buffer is
// non-NULL, ACCUMULATES (+=) grad_scale * dLoss/dInput into it, so loss weights
// (0.5*CE, 100*KL, ...) cost no extra pass and shared inputs just add up.
// Entries the loss does not depend on (ignored, masked or zero-weight pixels)
// are left untouched.
//
// Loss sums are reduced in double over a fixed partition of the index range,
// combined in a fixed order: the result is bitwise the same for any number of
// OpenMP threads.
#ifndef ZSSEG_LOSS_H
#define ZSSEG_LOSS_H

#include <stddef.h>
#include <stdint.h>

// label value that contributes neither loss nor gradient
#define LOSS_IGNORE 255

// Softmax cross-entropy over K classes per pixel, with optional per-pixel
// weights w (NULL = all 1): loss = sum_p w_p*CE_p / sum_p w_p over the
// non-ignored pixels; 0 and no gradient when that sum is 0. Weights must be
// >= 0. A label >= K other than 255 is a fatal error.
float softmax_ce_forward_backward(float* dlogits,         // (B, K, HW) or NULL; accumulated
                                  const float* logits,    // (B, K, HW)
                                  const uint8_t* labels,  // (B, HW), 255 = ignore
                                  const float* weights,   // (B, HW) or NULL
                                  int B, int K, int HW, float grad_scale);

// GAN loss on discriminator logits x (score sigmoid(x)); every sample has the
// target t (0 or 1); kind is GAN_L1 / GAN_LSGAN / GAN_BCE (hd_math.h). Mean
// over the samples whose mask is nonzero (mask NULL = all); 0 if none.
float gan_loss_forward_backward(float* dx,             // (n) or NULL; accumulated
                                const float* x,        // (n)
                                const uint8_t* mask,   // (n) or NULL
                                int kind, float target, size_t n, float grad_scale);

// KL of N(mu, exp(logvar)) to N(0, I): mean over valid (pixel, channel) of
// -1/2 (1 + lv - mu^2 - e^lv); 0 if no pixel is valid.
float kl_forward_backward(float* dmu,              // (B, C, HW) or NULL; accumulated
                          float* dlogvar,          // (B, C, HW) or NULL; accumulated
                          const float* mu,         // (B, C, HW)
                          const float* logvar,     // (B, C, HW)
                          const uint8_t* valid,    // (B, HW) nonzero = counted; NULL = all
                          int B, int C, int HW, float grad_scale);

// Masked MSE: mean over valid (pixel, channel) of (a - b)^2; 0 if no pixel is
// valid. b is a target: gradient to a only.
float mse_forward_backward(float* da,             // (B, C, HW) or NULL; accumulated
                           const float* a,        // (B, C, HW)
                           const float* b,        // (B, C, HW)
                           const uint8_t* valid,  // (B, HW) nonzero = counted; NULL = all
                           int B, int C, int HW, float grad_scale);

// MMD between generated rows X and real rows Y (rows are pixel feature
// vectors), as the CaGNet / ZS3Net GMMN moment_loss computes it:
//   k(a, b) = sum_s exp(-||a - b||^2 / (2 sigma_s))
//   MMD2 = mean_{x,x'} k + mean_{y,y'} k - 2 mean_{x,y} k   (diagonals included)
//   loss = sqrt(max(MMD2, 0))
// The gradient of sqrt is unbounded at 0: when MMD2 <= 1e-12 (the two sets
// match to rounding) no gradient is added. Distances come from Gram matrices
// (cblas_sgemm), so they carry float cancellation of order 1e-7 * ||x||^2.
// Returns 0 if M or N is 0.
size_t mmd_workspace_floats(int M, int N);
float mmd_forward_backward(float* dX,            // (M, D) or NULL; accumulated
                           const float* X,       // (M, D)
                           const float* Y,       // (N, D)
                           int M, int N, int D,
                           const float* sigmas,  // (S)
                           int S,
                           float* ws,            // (mmd_workspace_floats(M, N))
                           float grad_scale);

// CaGNet's content loss: rows come in groups (one per class, "runs of equal
// labels"); group g is X rows [x_start[g], x_start[g+1]) against Y rows
// [y_start[g], y_start[g+1]). loss = sqrt(sum_g MMD2_g), same kernels and
// guard as above; empty groups contribute nothing. The workspace holds the
// largest group's (mmd_grouped_workspace_floats).
size_t mmd_grouped_workspace_floats(const int* x_start, const int* y_start, int n_groups);
float mmd_grouped_forward_backward(float* dX,            // (x_start[n_groups], D) or NULL; accumulated
                                   const float* X,       // (x_start[n_groups], D)
                                   const float* Y,       // (y_start[n_groups], D)
                                   const int* x_start,   // (n_groups + 1) row offsets
                                   const int* y_start,   // (n_groups + 1) row offsets
                                   int n_groups, int D,
                                   const float* sigmas,  // (S)
                                   int S,
                                   float* ws,            // (mmd_grouped_workspace_floats(...))
                                   float grad_scale);

#endif  // ZSSEG_LOSS_H
