// Glue ops: max fusion (values, winners, tie rule, routing), concat/slice
// (exact against index loops, adjoint identity), add/mul/scale_by_map (exact
// forwards, finite-difference backwards). Every backward runs on pre-filled
// gradient buffers to check it accumulates.
#include <string.h>

#include "tensor_ops.h"
#include "testing.h"

// ---------------------------------------------------------------- max fusion

static void test_max_fuse_values(void) {
    // ties: element 1 (a == b), element 3 (all equal), element 4 (a == c)
    const float a[] = {1, 5, 2, -1, 3}, b[] = {2, 5, 1, -1, 0}, c[] = {0, 4, 7, -1, 3};
    const float* in[] = {a, b, c};
    float out[5];
    uint8_t which[5];
    max_fuse_forward(out, which, in, 3, 5);
    const float want[] = {2, 5, 7, -1, 3};
    const uint8_t want_which[] = {1, 0, 2, 0, 0};
    t_check_array("max_fuse out", out, want, 5, 0.0, 0.0);
    CHECK(memcmp(which, want_which, 5) == 0, "max_fuse which: %d %d %d %d %d", which[0], which[1],
          which[2], which[3], which[4]);

    // routing: dout goes to the winner only, accumulated; NULL skips a map
    const float dout[] = {1, 2, 3, 4, 5};
    float da[5] = {0}, db[5] = {0}, dc[5] = {0};
    float* d[] = {da, db, dc};
    max_fuse_backward(d, dout, which, 3, 5);
    max_fuse_backward(d, dout, which, 3, 5);
    const float wa[] = {0, 4, 0, 8, 10}, wb[] = {2, 0, 0, 0, 0}, wc[] = {0, 0, 6, 0, 0};
    t_check_array("max_fuse da", da, wa, 5, 0.0, 0.0);
    t_check_array("max_fuse db", db, wb, 5, 0.0, 0.0);
    t_check_array("max_fuse dc", dc, wc, 5, 0.0, 0.0);
    float* dnull[] = {da, NULL, dc};
    max_fuse_backward(dnull, dout, which, 3, 5);
    CHECK(da[0] == 0 && dc[2] == 9 && da[4] == 15, "max_fuse with a NULL gradient");
}

enum { KF = 4, NF = 60 };
typedef struct {
    float* x[KF];
    float out[NF];
    uint8_t which[NF];
    const float* r;
} FuseCtx;

static double fuse_loss(void* p) {
    FuseCtx* c = p;
    max_fuse_forward(c->out, c->which, (const float* const*)c->x, KF, NF);
    return t_dot(c->out, c->r, NF);
}

static void test_max_fuse_grad(void) {
    static float x[KF][NF], d[KF][NF], acc[KF][NF];
    float r[NF];
    for (int j = 0; j < KF; j++) t_fill_uniform(x[j], NF, 70 + j, -1.0f, 1.0f);
    // tie-free: the winner leads the runner-up by more than the FD step
    for (int i = 0; i < NF; i++) {
        int w = 0;
        for (int j = 1; j < KF; j++)
            if (x[j][i] > x[w][i]) w = j;
        x[w][i] += 0.05f;
    }
    t_fill_uniform(r, NF, 75, -1.0f, 1.0f);
    FuseCtx c = {{x[0], x[1], x[2], x[3]}, {0}, {0}, r};
    fuse_loss(&c);
    for (int j = 0; j < KF; j++) {
        t_fill_uniform(acc[j], NF, 80 + j, -1.0f, 1.0f);
        memcpy(d[j], acc[j], sizeof d[j]);
    }
    float* dp[KF] = {d[0], d[1], d[2], d[3]};
    max_fuse_backward(dp, r, c.which, KF, NF);
    for (int j = 0; j < KF; j++) {
        for (int i = 0; i < NF; i++) d[j][i] -= acc[j][i];
        t_gradcheck("max_fuse", x[j], d[j], NF, 1, fuse_loss, &c, 1e-3, 1e-4, 1e-3);
    }
}

// ---------------------------------------------------------------- concat / slice

static void test_concat(void) {
    enum { K = 3, B = 2, HW = 5, CT = 6 };
    const int C[K] = {2, 1, 3};
    float x0[B * 2 * HW], x1[B * 1 * HW], x2[B * 3 * HW], out[B * CT * HW], g[B * CT * HW];
    float* xs[K] = {x0, x1, x2};
    for (int i = 0; i < K; i++) t_fill_uniform(xs[i], (size_t)B * C[i] * HW, 90 + i, -1.0f, 1.0f);
    concat_channels_forward(out, (const float* const*)xs, C, K, B, HW);
    int bad = 0;
    for (int b = 0; b < B; b++) {
        int off = 0;
        for (int i = 0; i < K; off += C[i], i++)
            for (int c = 0; c < C[i]; c++)
                for (int p = 0; p < HW; p++)
                    bad += out[(b * CT + off + c) * HW + p] != xs[i][(b * C[i] + c) * HW + p];
    }
    CHECK(bad == 0, "concat forward: %d misplaced elements", bad);

    // backward: split of g added onto acc, exactly; piece 1 skipped by NULL
    float d0[B * 2 * HW], d2[B * 3 * HW], a0[B * 2 * HW], a2[B * 3 * HW];
    t_fill_uniform(g, B * CT * HW, 95, -1.0f, 1.0f);
    t_fill_uniform(a0, B * 2 * HW, 96, -1.0f, 1.0f);
    t_fill_uniform(a2, B * 3 * HW, 97, -1.0f, 1.0f);
    memcpy(d0, a0, sizeof d0);
    memcpy(d2, a2, sizeof d2);
    float* ds[K] = {d0, NULL, d2};
    concat_channels_backward(ds, g, C, K, B, HW);
    bad = 0;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < HW; p++) {
            for (int c = 0; c < 2; c++)
                bad +=
                    d0[(b * 2 + c) * HW + p] != a0[(b * 2 + c) * HW + p] + g[(b * CT + c) * HW + p];
            for (int c = 0; c < 3; c++)
                bad += d2[(b * 3 + c) * HW + p] !=
                       a2[(b * 3 + c) * HW + p] + g[(b * CT + 3 + c) * HW + p];
        }
    CHECK(bad == 0, "concat backward: %d wrong elements", bad);

    // adjoint: <concat(x), g> == sum_i <x_i, split(g)_i>
    float e0[B * 2 * HW] = {0}, e1[B * 1 * HW] = {0}, e2[B * 3 * HW] = {0};
    float* es[K] = {e0, e1, e2};
    concat_channels_backward(es, g, C, K, B, HW);
    double rhs = t_dot(x0, e0, B * 2 * HW) + t_dot(x1, e1, B * HW) + t_dot(x2, e2, B * 3 * HW);
    CHECK_CLOSE(rhs, t_dot(out, g, B * CT * HW), 1e-9, 1e-9, "concat adjoint");
}

static void test_slice(void) {
    enum { B = 2, C = 5, HW = 3, C0 = 1, CS = 3 };
    float x[B * C * HW], out[B * CS * HW], g[B * CS * HW], acc[B * C * HW], d[B * C * HW];
    t_fill_uniform(x, B * C * HW, 100, -1.0f, 1.0f);
    slice_channels_forward(out, x, B, C, HW, C0, CS);
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < CS; c++)
            for (int p = 0; p < HW; p++)
                bad += out[(b * CS + c) * HW + p] != x[(b * C + C0 + c) * HW + p];
    CHECK(bad == 0, "slice forward: %d wrong elements", bad);

    t_fill_uniform(g, B * CS * HW, 101, -1.0f, 1.0f);
    t_fill_uniform(acc, B * C * HW, 102, -1.0f, 1.0f);
    memcpy(d, acc, sizeof d);
    slice_channels_backward(d, g, B, C, HW, C0, CS);
    bad = 0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < HW; p++) {
                int i = (b * C + c) * HW + p;
                float want =
                    c >= C0 && c < C0 + CS ? acc[i] + g[(b * CS + c - C0) * HW + p] : acc[i];
                bad += d[i] != want;
            }
    CHECK(bad == 0, "slice backward: %d wrong elements", bad);

    for (int i = 0; i < B * C * HW; i++) d[i] -= acc[i];
    CHECK_CLOSE(t_dot(x, d, B * C * HW), t_dot(out, g, B * CS * HW), 1e-6, 1e-6, "slice adjoint");
}

// ---------------------------------------------------------------- add / mul / scale_by_map

enum { BS = 2, CS_ = 3, HWS = 7, NE = BS * CS_ * HWS };
typedef enum { OP_MUL, OP_SCALE } Op;
typedef struct {
    Op op;
    float* a;  // mul: a; scale: x
    float* b;  // mul: b; scale: s (BS, 1, HWS)
    float out[NE];
    const float* r;
} EwCtx;

static double ew_loss(void* p) {
    EwCtx* c = p;
    if (c->op == OP_MUL)
        mul_forward(c->out, c->a, c->b, NE);
    else
        scale_by_map_forward(c->out, c->a, c->b, BS, CS_, HWS);
    return t_dot(c->out, c->r, NE);
}

static void test_add_mul(void) {
    float a[NE], b[NE], out[NE];
    t_fill_uniform(a, NE, 110, -2.0f, 2.0f);
    t_fill_uniform(b, NE, 111, -2.0f, 2.0f);
    int bad = 0;
    add_forward(out, a, b, NE);
    for (int i = 0; i < NE; i++) bad += out[i] != a[i] + b[i];
    mul_forward(out, a, b, NE);
    for (int i = 0; i < NE; i++) bad += out[i] != a[i] * b[i];
    CHECK(bad == 0, "add/mul forward: %d wrong elements", bad);
    const float x[] = {1.5f, -2.0f}, y[] = {4.0f, 0.25f};
    float z[2];
    mul_forward(z, x, y, 2);
    CHECK(z[0] == 6.0f && z[1] == -0.5f, "mul literal: %g %g", z[0], z[1]);

    float r[NE], acc_a[NE], acc_b[NE], da[NE], db[NE], only[NE];
    t_fill_uniform(r, NE, 112, -1.0f, 1.0f);
    t_fill_uniform(acc_a, NE, 113, -1.0f, 1.0f);
    t_fill_uniform(acc_b, NE, 114, -1.0f, 1.0f);
    memcpy(da, acc_a, sizeof da);
    memcpy(db, acc_b, sizeof db);
    mul_backward(da, db, r, a, b, NE);
    // NULL partner: the other gradient comes out the same
    memcpy(only, acc_b, sizeof only);
    mul_backward(NULL, only, r, a, b, NE);
    CHECK(memcmp(only, db, sizeof db) == 0, "mul_backward with da == NULL changes db");
    for (int i = 0; i < NE; i++) {
        da[i] -= acc_a[i];
        db[i] -= acc_b[i];
    }
    EwCtx c = {OP_MUL, a, b, {0}, r};
    t_gradcheck("mul da", a, da, NE, 1, ew_loss, &c, 1e-3, 1e-4, 1e-3);
    t_gradcheck("mul db", b, db, NE, 1, ew_loss, &c, 1e-3, 1e-4, 1e-3);
}

static void test_scale_by_map(void) {
    float x[NE], s[BS * HWS], out[NE];
    t_fill_uniform(x, NE, 120, -2.0f, 2.0f);
    t_fill_uniform(s, BS * HWS, 121, 0.0f, 1.0f);
    scale_by_map_forward(out, x, s, BS, CS_, HWS);
    int bad = 0;
    for (int b = 0; b < BS; b++)
        for (int c = 0; c < CS_; c++)
            for (int p = 0; p < HWS; p++) {
                int i = (b * CS_ + c) * HWS + p;
                bad += out[i] != x[i] * s[b * HWS + p];
            }
    CHECK(bad == 0, "scale_by_map forward: %d wrong elements", bad);

    float r[NE], acc_x[NE], acc_s[BS * HWS], dx[NE], ds[BS * HWS];
    t_fill_uniform(r, NE, 122, -1.0f, 1.0f);
    t_fill_uniform(acc_x, NE, 123, -1.0f, 1.0f);
    t_fill_uniform(acc_s, BS * HWS, 124, -1.0f, 1.0f);
    memcpy(dx, acc_x, sizeof dx);
    memcpy(ds, acc_s, sizeof ds);
    scale_by_map_backward(dx, ds, r, x, s, BS, CS_, HWS);
    for (int i = 0; i < NE; i++) dx[i] -= acc_x[i];
    for (int i = 0; i < BS * HWS; i++) ds[i] -= acc_s[i];
    EwCtx c = {OP_SCALE, x, s, {0}, r};
    t_gradcheck("scale_by_map dx", x, dx, NE, 1, ew_loss, &c, 1e-3, 1e-4, 1e-3);
    t_gradcheck("scale_by_map ds", s, ds, BS * HWS, 1, ew_loss, &c, 1e-3, 1e-4, 1e-3);
}

int main(void) {
    test_max_fuse_values();
    test_max_fuse_grad();
    test_concat();
    test_slice();
    test_add_mul();
    test_scale_by_map();
    return t_report("test_tensor_ops");
}
