// SGD and Adam on f(p) = 0.5 * sum a_i p_i^2 (gradient a_i p_i), against the
// PyTorch algorithms written out below in double, independently of
// hd_math.h; parameter groups (lr multiplier, weight decay, frozen ranges).
#include <string.h>

#include "optim.h"
#include "testing.h"

enum { N = 40, STEPS = 6 };

// Three groups; [18, 25) and [35, 40) belong to none (frozen).
static const ParamGroup GROUPS[3] = {
    {"backbone", 0, 10, 1.0f, 5e-4f},
    {"aspp.bias", 10, 8, 20.0f, 0.0f},
    {"cm", 25, 10, 5.0f, 0.05f},
};

static const ParamGroup* group_of(size_t i) {
    for (int g = 0; g < 3; g++)
        if (i >= GROUPS[g].offset && i < GROUPS[g].offset + GROUPS[g].count) return &GROUPS[g];
    return NULL;
}

// curvatures in [0.5, 2], starting points with |p| in [0.2, 1] so Adam's
// gradients stay far above eps
static void setup(float* a, float* p) {
    for (int i = 0; i < N; i++) {
        a[i] = 0.5f + 1.5f * hd_rng_uniform(3, 1, (uint64_t)i);
        float mag = 0.2f + 0.8f * hd_rng_uniform(3, 2, (uint64_t)i);
        p[i] = (i % 3 == 0) ? -mag : mag;
    }
}

static void grad(float* g, const float* a, const float* p) {
    for (int i = 0; i < N; i++) g[i] = a[i] * p[i];
}

// torch.optim.SGD (dampening 0, nesterov off), one parameter, STEPS steps
static double ref_sgd(double p, double a, double lr, double mom, double wd) {
    double buf = 0.0;
    for (int t = 1; t <= STEPS; t++) {
        double d = a * p + wd * p;
        buf = (t == 1) ? d : mom * buf + d;
        p -= lr * buf;
    }
    return p;
}

// torch.optim.Adam (amsgrad off, L2 weight decay), one parameter, STEPS steps
static double ref_adam(double p, double a, double lr, double b1, double b2, double eps,
                       double wd) {
    double m = 0.0, v = 0.0;
    for (int t = 1; t <= STEPS; t++) {
        double g = a * p + wd * p;
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
        double denom = sqrt(v) / sqrt(bc2) + eps;
        p -= (lr / bc1) * (m / denom);
    }
    return p;
}

// Run STEPS steps and compare with the double reference; frozen elements
// must keep their bits.
static void check_trajectory(int kind) {
    float a[N], p[N], p0[N], g[N];
    setup(a, p);
    memcpy(p0, p, sizeof p);
    Optimizer o;
    const float lr = kind == OPTIM_SGD ? 2.5e-3f : 5e-3f;
    const SgdConfig sc = {0.9f};
    const AdamConfig ac = {0.5f, 0.999f, 1e-8f};
    if (kind == OPTIM_SGD) optimizer_init_sgd(&o, sc, GROUPS, 3, N);
    else optimizer_init_adam(&o, ac, GROUPS, 3, N);
    for (int t = 0; t < STEPS; t++) {
        grad(g, a, p);
        optimizer_step(&o, p, g, lr);
    }
    CHECK(o.step == STEPS, "step counter %ld", o.step);
    const char* what = kind == OPTIM_SGD ? "sgd" : "adam";
    for (int i = 0; i < N; i++) {
        const ParamGroup* pg = group_of((size_t)i);
        if (!pg) {
            CHECK(memcmp(&p[i], &p0[i], sizeof(float)) == 0, "%s: frozen p[%d] changed", what, i);
            continue;
        }
        double glr = (double)lr * pg->lr_mult;
        double wd = pg->weight_decay;
        double want = kind == OPTIM_SGD
                          ? ref_sgd(p0[i], a[i], glr, sc.momentum, wd)
                          : ref_adam(p0[i], a[i], glr, ac.beta1, ac.beta2, ac.eps, wd);
        char name[64];
        snprintf(name, sizeof name, "%s p[%d] after %d steps (%s)", what, i, STEPS, pg->name);
        // float vs double trajectories of a contraction: relative error ~1e-6
        CHECK_CLOSE(p[i], want, 1e-6, 1e-5, name);
        // and the group really moved: its lr and decay were applied
        CHECK(fabs(p[i] - p0[i]) > 1e-3, "%s p[%d] did not move", what, i);
    }
    optimizer_free(&o);
}

// Adam's first step, bias-corrected: m_hat = g, v_hat = g^2, so the update is
// lr * g / (|g| + eps), i.e. |update| = lr to ~1e-7 when |g| >> eps.
static void test_adam_first_step(void) {
    float a[N], p[N], p0[N], g[N];
    setup(a, p);
    memcpy(p0, p, sizeof p);
    grad(g, a, p);
    Optimizer o;
    optimizer_init_adam(&o, (AdamConfig){0.9f, 0.999f, 1e-8f}, GROUPS, 3, N);
    const float lr = 1e-2f;
    optimizer_step(&o, p, g, lr);
    for (int i = 0; i < N; i++) {
        const ParamGroup* pg = group_of((size_t)i);
        if (!pg) continue;
        double gi = (double)g[i] + (double)pg->weight_decay * p0[i];
        double step = (double)p0[i] - (double)p[i];
        double want = (double)lr * pg->lr_mult * (gi > 0 ? 1 : -1);
        // p rounds to float after the update: 6e-8 * |p| on a step of >= 1e-2
        CHECK_CLOSE(step, want, 0, 1e-5, "adam step 1 = lr * sign(g)");
    }
    optimizer_free(&o);
}

// Zero gradient isolates weight decay: a group with wd moves by exactly the
// decay term on step 1, a group without wd keeps every bit (SGD and Adam).
static void test_decay_only(void) {
    float p[N], p0[N], g[N] = {0};
    for (int i = 0; i < N; i++) p[i] = 0.5f + 0.01f * (float)i;
    memcpy(p0, p, sizeof p);
    Optimizer o;
    const float lr = 0.1f;
    optimizer_init_sgd(&o, (SgdConfig){0.9f}, GROUPS, 3, N);
    optimizer_step(&o, p, g, lr);
    for (int i = 0; i < N; i++) {
        const ParamGroup* pg = group_of((size_t)i);
        if (!pg || pg->weight_decay == 0.0f) {
            CHECK(memcmp(&p[i], &p0[i], sizeof(float)) == 0, "sgd: p[%d] moved without grad/wd", i);
            continue;
        }
        double want = p0[i] - (double)lr * pg->lr_mult * pg->weight_decay * p0[i];
        CHECK_CLOSE(p[i], want, 0, 1e-6, "sgd decay-only step");
    }
    optimizer_free(&o);

    memcpy(p, p0, sizeof p);
    optimizer_init_adam(&o, (AdamConfig){0.9f, 0.999f, 1e-8f}, GROUPS, 3, N);
    optimizer_step(&o, p, g, lr);
    for (int i = 0; i < N; i++) {
        const ParamGroup* pg = group_of((size_t)i);
        if (!pg || pg->weight_decay == 0.0f) {
            CHECK(memcmp(&p[i], &p0[i], sizeof(float)) == 0, "adam: p[%d] moved without grad/wd",
                  i);
            continue;
        }
        // L2 (not AdamW): the decay is a gradient, normalised like one:
        // step = lr * mult * gd / (gd + eps), gd = wd * p
        double gd = (double)pg->weight_decay * p0[i];
        double want = p0[i] - (double)lr * pg->lr_mult * gd / (gd + 1e-8);
        CHECK_CLOSE(p[i], want, 0, 1e-6, "adam decay-only step");
    }
    optimizer_free(&o);
}

static void init_overlap(void) {
    const ParamGroup gs[2] = {{"x", 0, 10, 1, 0}, {"y", 9, 5, 1, 0}};
    Optimizer o;
    optimizer_init_sgd(&o, (SgdConfig){0.9f}, gs, 2, 20);
}
static void init_outside(void) {
    const ParamGroup gs[1] = {{"x", 15, 10, 1, 0}};
    Optimizer o;
    optimizer_init_adam(&o, (AdamConfig){0.9f, 0.999f, 1e-8f}, gs, 1, 20);
}

static void test_init_checks(void) {
    CHECK(t_exits_with_error(init_overlap), "overlapping groups are refused");
    CHECK(t_exits_with_error(init_outside), "a group past the buffer is refused");
}

// State is allocated for the groups' span only; a group far into the buffer
// updates exactly as the same group at offset 0 does.
static void test_span(void) {
    enum { N = 64, OFF = 40, CNT = 12 };
    float p_far[N], g_far[N], p_near[CNT], g_near[CNT];
    t_fill_uniform(p_far, N, 11, -1, 1);
    t_fill_uniform(g_far, N, 12, -1, 1);
    for (int i = 0; i < CNT; i++) p_near[i] = p_far[OFF + i], g_near[i] = g_far[OFF + i];
    ParamGroup far = {.name = "far", .offset = OFF, .count = CNT, .lr_mult = 2, .weight_decay = 0.1f};
    ParamGroup near = far;
    near.offset = 0;
    AdamConfig ac = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    Optimizer a, b;
    optimizer_init_adam(&a, ac, &far, 1, N);
    optimizer_init_adam(&b, ac, &near, 1, CNT);
    CHECK(a.span_lo == OFF && a.span_n == CNT, "span [%zu, +%zu)", a.span_lo, a.span_n);
    for (int s = 0; s < 3; s++) {
        optimizer_step(&a, p_far, g_far, 0.01f);
        optimizer_step(&b, p_near, g_near, 0.01f);
    }
    t_check_array("span params", p_far + OFF, p_near, CNT, 0, 0);
    t_check_array("span m", a.m, b.m, CNT, 0, 0);
    optimizer_free(&a);
    optimizer_free(&b);
}

int main(void) {
    test_span();
    check_trajectory(OPTIM_SGD);
    check_trajectory(OPTIM_ADAM);
    test_adam_first_step();
    test_decay_only();
    test_init_checks();
    return t_report("test_optim");
}
