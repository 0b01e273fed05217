// Frozen BN: folding and forward against the textbook formula (hand-computed
// and random), in-place forward, backward by finite differences, accumulation.
#include <math.h>
#include <string.h>

#include "batchnorm.h"
#include "testing.h"

enum { B = 2, C = 3, HW = 7, N = B * C * HW };

typedef struct {
    float inp[N], out[N], r[N], scale[C], shift[C];
} Ctx;

static double ctx_loss(void* p) {
    Ctx* c = p;
    frozen_bn_forward(c->out, c->inp, c->scale, c->shift, B, C, HW);
    return t_dot(c->out, c->r, N);
}

// Numbers chosen so sqrt(var + eps) is exact: scale {1.5, -2}, shift {-1, -2}.
static void test_hand(void) {
    const float mean[2] = {1, -2}, var[2] = {3.99f, 0.24f}, gamma[2] = {3, -1}, beta[2] = {0.5f, 2};
    float scale[2], shift[2];
    frozen_bn_fold(scale, shift, mean, var, gamma, beta, 0.01f, 2);
    CHECK_CLOSE(scale[0], 1.5, 1e-6, 1e-6, "scale[0] = 3 / sqrt(4)");
    CHECK_CLOSE(scale[1], -2.0, 1e-6, 1e-6, "scale[1] = -1 / sqrt(0.25)");
    CHECK_CLOSE(shift[0], -1.0, 1e-6, 1e-6, "shift[0] = 0.5 - 1 * 1.5");
    CHECK_CLOSE(shift[1], -2.0, 1e-6, 1e-6, "shift[1] = 2 - (-2) * (-2)");
    // (B=1, C=2, HW=2): (5-1)/2*3+0.5 = 6.5, (1+2)/0.5*(-1)+2 = -4
    const float x[4] = {5, -1, 1, -2};
    const float want[4] = {6.5f, -2.5f, -4.0f, 2.0f};
    float y[4];
    frozen_bn_forward(y, x, scale, shift, 1, 2, 2);
    t_check_array("bn hand forward", y, want, 4, 1e-6, 1e-6);
}

int main(void) {
    test_hand();

    float mean[C], var[C], gamma[C], beta[C];
    t_fill_uniform(mean, C, 1, -1.0f, 1.0f);
    t_fill_uniform(var, C, 2, 0.1f, 2.0f);
    t_fill_uniform(gamma, C, 3, -2.0f, 2.0f);
    t_fill_uniform(beta, C, 4, -1.0f, 1.0f);
    const float eps = 1e-5f;

    Ctx c;
    t_fill_uniform(c.inp, N, 5, -2.0f, 2.0f);
    t_fill_uniform(c.r, N, 6, -1.0f, 1.0f);
    frozen_bn_fold(c.scale, c.shift, mean, var, gamma, beta, eps, C);
    frozen_bn_forward(c.out, c.inp, c.scale, c.shift, B, C, HW);

    float want[N];
    for (int i = 0; i < N; i++) {
        int ch = (i / HW) % C;
        want[i] = (float)(((double)c.inp[i] - mean[ch]) / sqrt((double)var[ch] + eps) * gamma[ch] +
                          beta[ch]);
    }
    t_check_array("bn forward", c.out, want, N, 1e-6, 1e-5);

    float inplace[N];
    memcpy(inplace, c.inp, sizeof inplace);
    frozen_bn_forward(inplace, inplace, c.scale, c.shift, B, C, HW);
    t_check_array("bn forward in place", inplace, c.out, N, 0.0, 0.0);

    float dinp[N] = {0}, twice[N];
    frozen_bn_backward(dinp, c.r, c.scale, B, C, HW);
    t_gradcheck("bn dinp", c.inp, dinp, N, 1, ctx_loss, &c, 1e-3, 1e-3, 1e-2);
    for (int i = 0; i < N; i++) twice[i] = 2.0f * dinp[i];
    frozen_bn_backward(dinp, c.r, c.scale, B, C, HW);
    t_check_array("bn backward accumulates", dinp, twice, N, 0.0, 1e-6);
    return t_report("test_batchnorm");
}
