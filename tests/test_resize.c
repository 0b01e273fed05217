// Bilinear resize (PyTorch F.interpolate(size=..., mode='bilinear')) and
// nearest label resize: hand-computed literals, an independent double
// reference written from PyTorch's formulas, finite differences and the
// adjoint identity for the backward.
#include <string.h>

#include "resize.h"
#include "testing.h"

// ---------------------------------------------------------------- references

// PyTorch's formula text, in double: align_corners -> src = dst*(in-1)/(out-1)
// (0 if out == 1); else src = max((dst+0.5)*in/out - 0.5, 0); taps floor(src)
// and floor(src)+1 clipped to in-1, weights by the fractional part.
static void ref_taps(int dst, int in, int out, int ac, int* i0, int* i1, double* l) {
    double src;
    if (ac)
        src = out > 1 ? dst * (double)(in - 1) / (out - 1) : 0.0;
    else
        src = fmax((dst + 0.5) * in / out - 0.5, 0.0);
    *i0 = (int)floor(src);
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    *l = src - *i0;
}

static void ref_bilinear(double* out, const float* inp, int P, int H, int W, int Ho, int Wo,
                         int ac) {
    for (int p = 0; p < P; p++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                int h0, h1, w0, w1;
                double lh, lw;
                ref_taps(oh, H, Ho, ac, &h0, &h1, &lh);
                ref_taps(ow, W, Wo, ac, &w0, &w1, &lw);
                const float* x = inp + (size_t)p * H * W;
                out[((size_t)p * Ho + oh) * Wo + ow] =
                    (1 - lh) * ((1 - lw) * x[h0 * W + w0] + lw * x[h0 * W + w1]) +
                    lh * ((1 - lw) * x[h1 * W + w0] + lw * x[h1 * W + w1]);
            }
}

// ---------------------------------------------------------------- bilinear

static void check_bilinear_literal(const char* what, const float* inp, int H, int W, int Ho, int Wo,
                                   int ac, const float* want) {
    float out[64];
    resize_bilinear_forward(out, inp, 1, 1, H, W, Ho, Wo, ac);
    t_check_array(what, out, want, (size_t)Ho * Wo, 1e-6, 1e-6);
}

static void test_bilinear_literals(void) {
    const float sq[] = {1, 2, 3, 4};
    // align_corners=1, 2 -> 3: src = 0, 0.5, 1 on both axes
    const float ac1[] = {1, 1.5f, 2, 2, 2.5f, 3, 3, 3.5f, 4};
    check_bilinear_literal("2x2->3x3 ac1", sq, 2, 2, 3, 3, 1, ac1);
    // align_corners=0, 2 -> 4: src = max(-0.25,0)=0, 0.25, 0.75, 1.25 (tap 1,1)
    const float ac0[] = {1,    1.25f, 1.75f, 2,    1.5f, 1.75f, 2.25f, 2.5f,
                         2.5f, 2.75f, 3.25f, 3.5f, 3,    3.25f, 3.75f, 4};
    check_bilinear_literal("2x2->4x4 ac0", sq, 2, 2, 4, 4, 0, ac0);

    const float row4[] = {1, 2, 3, 4};
    // ac0 4 -> 2: scale 2, src = 0.5, 2.5: midpoints
    const float down0[] = {1.5f, 3.5f};
    check_bilinear_literal("1x4->1x2 ac0", row4, 1, 4, 1, 2, 0, down0);
    // ac1 4 -> 2: src = 0, 3: the corners
    const float down1[] = {1, 4};
    check_bilinear_literal("1x4->1x2 ac1", row4, 1, 4, 1, 2, 1, down1);
    // ac1 4 -> 1: out == 1 takes src 0
    const float one[] = {1};
    check_bilinear_literal("1x4->1x1 ac1", row4, 1, 4, 1, 1, 1, one);

    const float col3[] = {1, 3, 7};
    // ac0 3 -> 5: scale 0.6, src = 0(clamped), 0.4, 1.0, 1.6, 2.2 (tap 2,2)
    const float up0[] = {1, 1.8f, 3, 5.4f, 7};
    check_bilinear_literal("3x1->5x1 ac0", col3, 3, 1, 5, 1, 0, up0);
    // ac1 3 -> 5: src = 0, 0.5, 1, 1.5, 2
    const float up1[] = {1, 2, 3, 5, 7};
    check_bilinear_literal("3x1->5x1 ac1", col3, 3, 1, 5, 1, 1, up1);
}

typedef struct {
    int B, C, H, W, Ho, Wo;
} Shape;

static const Shape SHAPES[] = {
    {2, 3, 65, 7, 33, 4},  // downscale 65->33, 7->4
    {1, 2, 5, 3, 13, 11},  // odd upscale
    {1, 1, 9, 16, 9, 16},  // identity size
    {2, 1, 4, 6, 1, 17},   // to a single row, mixed directions
};
enum { NSHAPES = sizeof SHAPES / sizeof SHAPES[0] };

static void test_bilinear_reference(void) {
    for (int s = 0; s < NSHAPES; s++)
        for (int ac = 0; ac <= 1; ac++) {
            Shape S = SHAPES[s];
            int P = S.B * S.C;
            size_t ni = (size_t)P * S.H * S.W, no = (size_t)P * S.Ho * S.Wo;
            float* x = malloc(ni * sizeof(float));
            float* y = malloc(no * sizeof(float));
            float* want = malloc(no * sizeof(float));
            double* ref = malloc(no * sizeof(double));
            t_fill_uniform(x, ni, 31 + s, -1.0f, 1.0f);
            resize_bilinear_forward(y, x, S.B, S.C, S.H, S.W, S.Ho, S.Wo, ac);
            ref_bilinear(ref, x, P, S.H, S.W, S.Ho, S.Wo, ac);
            for (size_t i = 0; i < no; i++) want[i] = (float)ref[i];
            char what[64];
            snprintf(what, sizeof what, "bilinear %dx%d->%dx%d ac%d", S.H, S.W, S.Ho, S.Wo, ac);
            // PyTorch (and we) compute src in float: up to 64 * 6e-8 off the
            // double coordinate, times a slope of at most 2 between inputs
            t_check_array(what, y, want, no, 2e-5, 1e-5);
            free(x);
            free(y);
            free(want);
            free(ref);
        }
}

typedef struct {
    Shape S;
    int ac;
    float* x;
    float* y;
    const float* r;
} BilCtx;

static double bil_loss(void* p) {
    BilCtx* c = p;
    resize_bilinear_forward(c->y, c->x, c->S.B, c->S.C, c->S.H, c->S.W, c->S.Ho, c->S.Wo, c->ac);
    return t_dot(c->y, c->r, (size_t)c->S.B * c->S.C * c->S.Ho * c->S.Wo);
}

static void test_bilinear_backward(void) {
    for (int s = 0; s < NSHAPES; s++)
        for (int ac = 0; ac <= 1; ac++) {
            Shape S = SHAPES[s];
            size_t ni = (size_t)S.B * S.C * S.H * S.W, no = (size_t)S.B * S.C * S.Ho * S.Wo;
            float* x = malloc(ni * sizeof(float));
            float* acc = malloc(ni * sizeof(float));
            float* dx = malloc(ni * sizeof(float));
            float* y = malloc(no * sizeof(float));
            float* r = malloc(no * sizeof(float));
            t_fill_uniform(x, ni, 41 + s, -1.0f, 1.0f);
            t_fill_uniform(r, no, 51 + s, -1.0f, 1.0f);
            t_fill_uniform(acc, ni, 61 + s, -1.0f, 1.0f);
            memcpy(dx, acc, ni * sizeof(float));
            resize_bilinear_backward(dx, r, S.B, S.C, S.H, S.W, S.Ho, S.Wo, ac);
            for (size_t i = 0; i < ni; i++) dx[i] -= acc[i];

            // adjoint identity <R x, r> == <x, R^T r>, in double
            resize_bilinear_forward(y, x, S.B, S.C, S.H, S.W, S.Ho, S.Wo, ac);
            double lhs = t_dot(y, r, no), rhs = t_dot(x, dx, ni);
            CHECK_CLOSE(rhs, lhs, 1e-5, 1e-5, "bilinear adjoint <Rx,y> vs <x,R^T y>");

            // linear op: a large step is exact up to rounding
            char what[64];
            snprintf(what, sizeof what, "bilinear %dx%d->%dx%d ac%d", S.H, S.W, S.Ho, S.Wo, ac);
            BilCtx c = {S, ac, x, y, r};
            t_gradcheck(what, x, dx, ni, ni > 400 ? 7 : 1, bil_loss, &c, 1e-2, 1e-4, 1e-4);
            free(x);
            free(acc);
            free(dx);
            free(y);
            free(r);
        }
}

// ---------------------------------------------------------------- nearest

static void test_nearest_labels(void) {
    // labels 100*b + 10*h + w; (2, 4, 3) -> (2, 2, 5)
    // rows 4->2: scale 2, src 0, 2; cols 3->5: scale 0.6, floor(0,.6,1.2,1.8,2.4) = 0,0,1,1,2
    uint8_t in1[2 * 4 * 3], out1[2 * 2 * 5];
    for (int b = 0; b < 2; b++)
        for (int h = 0; h < 4; h++)
            for (int w = 0; w < 3; w++) in1[(b * 4 + h) * 3 + w] = (uint8_t)(100 * b + 10 * h + w);
    const uint8_t want1[] = {0,   0,   1,   1,   2,   20,  20,  21,  21,  22,
                             100, 100, 101, 101, 102, 120, 120, 121, 121, 122};
    resize_nearest_labels(out1, in1, 2, 4, 3, 2, 5);
    CHECK(memcmp(out1, want1, sizeof want1) == 0, "nearest (2,4,3)->(2,2,5)");

    // (1, 5, 4) -> (1, 3, 2): rows 5->3 floor(0, 1.67, 3.33) = 0, 1, 3; cols 4->2: 0, 2
    uint8_t in2[5 * 4], out2[3 * 2];
    for (int h = 0; h < 5; h++)
        for (int w = 0; w < 4; w++) in2[h * 4 + w] = (uint8_t)(10 * h + w);
    const uint8_t want2[] = {0, 2, 10, 12, 30, 32};
    resize_nearest_labels(out2, in2, 1, 5, 4, 3, 2);
    CHECK(memcmp(out2, want2, sizeof want2) == 0, "nearest (1,5,4)->(1,3,2)");

    // 2x upscale repeats, 255 (ignore) survives
    const uint8_t in3[] = {1, 255, 3, 4};
    const uint8_t want3[] = {1, 1, 255, 255, 1, 1, 255, 255, 3, 3, 4, 4, 3, 3, 4, 4};
    uint8_t out3[16];
    resize_nearest_labels(out3, in3, 1, 2, 2, 4, 4);
    CHECK(memcmp(out3, want3, sizeof want3) == 0, "nearest 2x2->4x4");
}

int main(void) {
    test_bilinear_literals();
    test_bilinear_reference();
    test_bilinear_backward();
    test_nearest_labels();
    return t_report("test_resize");
}
