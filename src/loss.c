#include "loss.h"

#include <cblas.h>

#include "common.h"
#include "hd_math.h"

// ---------------------------------------------------------------- deterministic sums
// Index ranges are cut into LOSS_CHUNKS fixed pieces; each piece is summed
// serially in double and the pieces are added in index order. The partition
// does not depend on the thread count, so neither does any bit of the loss.
#define LOSS_CHUNKS 64

static size_t chunk_begin(size_t n, int c) { return n * (size_t)c / LOSS_CHUNKS; }

static double sum_parts(const double* part) {
    double s = 0.0;
    for (int c = 0; c < LOSS_CHUNKS; c++) s += part[c];
    return s;
}

static size_t count_nonzero(const uint8_t* m, size_t n) {
    if (!m) return n;
    size_t cnt = 0;  // integer sum: exact in any order
#pragma omp parallel for reduction(+ : cnt)
    for (size_t i = 0; i < n; i++) cnt += m[i] != 0;
    return cnt;
}

// ---------------------------------------------------------------- element-wise means
// GAN, KL and MSE are all "mean over counted elements of a per-element loss";
// one loop serves them. Elements are (B, C, HW); a pixel's valid flag (B, HW)
// covers its C channels.
enum { ELEM_GAN, ELEM_KL, ELEM_MSE };

static float elementwise_mean(int op, int gan_kind, float target,
                              float* g0, float* g1,                // (B, C, HW) or NULL; accumulated
                              const float* p0, const float* p1,    // (B, C, HW); p1 unused for GAN
                              const uint8_t* valid,                // (B, HW) or NULL
                              size_t B, size_t C, size_t HW, float grad_scale) {
    size_t count = count_nonzero(valid, B * HW) * C;
    if (count == 0) return 0.0f;
    size_t n = B * C * HW;
    float g = (float)((double)grad_scale / (double)count);
    double part[LOSS_CHUNKS];
#pragma omp parallel for schedule(static)
    for (int c = 0; c < LOSS_CHUNKS; c++) {
        double s = 0.0;
        for (size_t e = chunk_begin(n, c); e < chunk_begin(n, c + 1); e++) {
            if (valid && !valid[e / (C * HW) * HW + e % HW]) continue;
            float d0, d1 = 0.0f, l;
            if (op == ELEM_GAN) l = hd_gan_loss(gan_kind, p0[e], target, &d0);
            else if (op == ELEM_KL) l = hd_kl(p0[e], p1[e], &d0, &d1);
            else l = hd_sq_err(p0[e], p1[e], &d0);
            s += l;
            if (g0) g0[e] += g * d0;
            if (g1) g1[e] += g * d1;
        }
        part[c] = s;
    }
    return (float)(sum_parts(part) / (double)count);
}

float gan_loss_forward_backward(float* dx, const float* x, const uint8_t* mask, int kind,
                                float target, size_t n, float grad_scale) {
    return elementwise_mean(ELEM_GAN, kind, target, dx, NULL, x, NULL, mask, 1, 1, n, grad_scale);
}

float kl_forward_backward(float* dmu, float* dlogvar, const float* mu, const float* logvar,
                          const uint8_t* valid, int B, int C, int HW, float grad_scale) {
    return elementwise_mean(ELEM_KL, 0, 0.0f, dmu, dlogvar, mu, logvar, valid, (size_t)B,
                            (size_t)C, (size_t)HW, grad_scale);
}

float mse_forward_backward(float* da, const float* a, const float* b, const uint8_t* valid, int B,
                           int C, int HW, float grad_scale) {
    return elementwise_mean(ELEM_MSE, 0, 0.0f, da, NULL, a, b, valid, (size_t)B, (size_t)C,
                            (size_t)HW, grad_scale);
}

// ---------------------------------------------------------------- cross-entropy
float softmax_ce_forward_backward(float* dlogits, const float* logits, const uint8_t* labels,
                                  const float* weights, int B, int K, int HW, float grad_scale) {
    size_t P = (size_t)B * HW, hw = (size_t)HW;
    // pass 1: total weight W (needed before any gradient can be scaled) and a label check
    double part[LOSS_CHUNKS];
    size_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad)
    for (int c = 0; c < LOSS_CHUNKS; c++) {
        double s = 0.0;
        for (size_t p = chunk_begin(P, c); p < chunk_begin(P, c + 1); p++) {
            int y = labels[p];
            if (y == LOSS_IGNORE) continue;
            if (y >= K) { bad++; continue; }
            s += weights ? weights[p] : 1.0f;
        }
        part[c] = s;
    }
    if (bad)
        ZS_FAIL("labels must be class ids 0..K-1 or 255 (ignore): check the dataset's label "
                "maps against the configured number of classes",
                "softmax_ce: %zu labels out of range for K = %d", bad, K);
    double W = sum_parts(part);
    if (W <= 0.0) return 0.0f;

    // pass 2: weighted CE and its gradient, pixel by pixel
#pragma omp parallel for schedule(static)
    for (int c = 0; c < LOSS_CHUNKS; c++) {
        double s = 0.0;
        for (size_t p = chunk_begin(P, c); p < chunk_begin(P, c + 1); p++) {
            int y = labels[p];
            float w = weights ? weights[p] : 1.0f;
            if (y == LOSS_IGNORE || w == 0.0f) continue;
            size_t off = p / hw * (size_t)K * hw + p % hw;  // logit of class 0 at pixel p
            float g = (float)((double)grad_scale * w / W);
            s += (double)w * hd_softmax_ce(logits + off, hw, K, y, g, dlogits ? dlogits + off : NULL);
        }
        part[c] = s;
    }
    return (float)(sum_parts(part) / W);
}

// ---------------------------------------------------------------- MMD
// Workspace: G = [X X^T | X Y^T] (M, M+N), then Y Y^T (N, N), then the
// squared row norms of X and Y (M+N). After the loss pass, G holds the
// coefficients A with dMMD2/dx_i = sum_j A_ij (x_i - z_j), z = [X; Y].
size_t mmd_workspace_floats(int M, int N) {
    size_t m = (size_t)M, n = (size_t)N;
    return m * (m + n) + n * n + m + n;
}

// MMD2 of one (X, Y) pair. Leaves in G (M, M+N) the coefficients A of the
// gradient dMMD2/dX_i = rowsum(A)_i x_i - (A [X; Y])_i for mmd2_grad.
static double mmd2_pair(const float* X, const float* Y, int M, int N, int D, const float* sigmas,
                        int S, float* ws) {
    size_t L = (size_t)M + (size_t)N;
    float* G = ws;
    float* GY = G + (size_t)M * L;
    float* nrm = GY + (size_t)N * N;
    // Three GEMMs rather than one over a stacked [X; Y]: no copy of the rows,
    // and a workspace that does not grow with D.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, M, D, 1.0f, X, D, X, D, 0.0f, G, (int)L);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, D, 1.0f, X, D, Y, D, 0.0f, G + M,
                (int)L);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, D, 1.0f, Y, D, Y, D, 0.0f, GY, N);
    // norms from the Gram diagonals: d_ii is then exactly 0
    for (int i = 0; i < M; i++) nrm[i] = G[(size_t)i * L + i];
    for (int j = 0; j < N; j++) nrm[M + j] = GY[(size_t)j * N + j];

    // loss pass over the rows of z; X rows also turn G into A
    double xx[LOSS_CHUNKS], xy[LOSS_CHUNKS], yy[LOSS_CHUNKS];
    double M2 = (double)M * M, MN = (double)M * N, N2 = (double)N * N;
    float axx = (float)(4.0 / M2), axy = (float)(-4.0 / MN);
#pragma omp parallel for schedule(static)
    for (int c = 0; c < LOSS_CHUNKS; c++) {
        double sxx = 0.0, sxy = 0.0, syy = 0.0;
        for (size_t r = chunk_begin(L, c); r < chunk_begin(L, c + 1); r++) {
            if (r < (size_t)M) {
                float* row = G + r * L;
                for (size_t j = 0; j < L; j++) {
                    float d = fmaxf(nrm[r] + nrm[j] - 2.0f * row[j], 0.0f), dk;
                    float k = hd_rbf_multi(d, sigmas, S, &dk);
                    // dk/dx_i = dk/dd * 2 (x_i - z_j); the XX term counts pair (i,j) twice
                    if (j < (size_t)M) { sxx += k; row[j] = axx * dk; }
                    else { sxy += k; row[j] = axy * dk; }
                }
            } else {
                const float* row = GY + (r - M) * N;
                for (size_t j = 0; j < (size_t)N; j++) {
                    float d = fmaxf(nrm[r] + nrm[M + j] - 2.0f * row[j], 0.0f), dk;
                    syy += hd_rbf_multi(d, sigmas, S, &dk);
                }
            }
        }
        xx[c] = sxx;
        xy[c] = sxy;
        yy[c] = syy;
    }
    return sum_parts(xx) / M2 + sum_parts(yy) / N2 - 2.0 * sum_parts(xy) / MN;
}

// dX += cs * dMMD2/dX from the coefficients mmd2_pair left in ws.
static void mmd2_grad(float* dX, const float* X, const float* Y, int M, int N, int D, float cs,
                      const float* ws) {
    size_t L = (size_t)M + (size_t)N;
    const float* G = ws;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, M, -cs, G, (int)L, X, D, 1.0f,
                dX, D);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, N, -cs, G + M, (int)L, Y, D, 1.0f,
                dX, D);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        const float* a = G + (size_t)i * L;
        float rs = 0.0f;
        for (size_t j = 0; j < L; j++) rs += a[j];
        rs *= cs;
        for (int k = 0; k < D; k++) dX[(size_t)i * D + k] += rs * X[(size_t)i * D + k];
    }
}

size_t mmd_grouped_workspace_floats(const int* x_start, const int* y_start, int n_groups) {
    size_t best = 0;
    for (int g = 0; g < n_groups; g++) {
        size_t w = mmd_workspace_floats(x_start[g + 1] - x_start[g], y_start[g + 1] - y_start[g]);
        if (w > best) best = w;
    }
    return best;
}

float mmd_grouped_forward_backward(float* dX, const float* X, const float* Y, const int* x_start,
                                   const int* y_start, int n_groups, int D, const float* sigmas,
                                   int S, float* ws, float grad_scale) {
    // pass 1: the total, which the sqrt's gradient needs before any group's
    double total = 0.0;
    for (int g = 0; g < n_groups; g++) {
        int M = x_start[g + 1] - x_start[g], N = y_start[g + 1] - y_start[g];
        if (M <= 0 || N <= 0) continue;
        total += mmd2_pair(X + (size_t)x_start[g] * D, Y + (size_t)y_start[g] * D, M, N, D, sigmas,
                           S, ws);
    }
    double loss = sqrt(fmax(total, 0.0));
    if (!dX || total <= 1e-12) return (float)loss;
    // pass 2: recompute each group's coefficients (one group's workspace at a time)
    float cs = (float)((double)grad_scale / (2.0 * loss));
    for (int g = 0; g < n_groups; g++) {
        int M = x_start[g + 1] - x_start[g], N = y_start[g + 1] - y_start[g];
        if (M <= 0 || N <= 0) continue;
        const float* Xg = X + (size_t)x_start[g] * D;
        const float* Yg = Y + (size_t)y_start[g] * D;
        if (n_groups > 1) mmd2_pair(Xg, Yg, M, N, D, sigmas, S, ws);
        mmd2_grad(dX + (size_t)x_start[g] * D, Xg, Yg, M, N, D, cs, ws);
    }
    return (float)loss;
}

float mmd_forward_backward(float* dX, const float* X, const float* Y, int M, int N, int D,
                           const float* sigmas, int S, float* ws, float grad_scale) {
    int xs[2] = {0, M}, ys[2] = {0, N};
    return mmd_grouped_forward_backward(dX, X, Y, xs, ys, 1, D, sigmas, S, ws, grad_scale);
}
