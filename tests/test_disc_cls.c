// Discriminator/classifier: parameter names and shapes, forward against a
// per-pixel double-precision MLP with the contract's dropout masks, backward by
// finite differences (dropout on), eval mode, batch/rank independence, and the
// step1 pattern of two backwards on one forward.
#include <string.h>

#include "disc_cls.h"
#include "testing.h"

enum { D = 6, HID = 7, K = 4, B = 2, H = 5, W = 5, HW = H * W };
static const float P_DROP = 0.3f;
static const int LAYER = 101;

typedef struct {
    ParamTable pt;
    Dc dc;
    float *params, *grads, *ws;
    size_t nws;
} Model;

static void model_init(Model* m, int Bm, uint64_t seed) {
    param_table_init(&m->pt);
    DcConfig cfg = {D, HID, K, P_DROP};
    dc_build(&m->dc, &m->pt, &cfg);
    size_t n = param_table_finalize(&m->pt);
    m->params = t_falloc(n);
    m->grads = t_falloc(n);
    t_fill_uniform(m->params, n, seed, -0.5f, 0.5f);
    m->nws = dc_workspace_floats(&m->dc, Bm, H, W);
    m->ws = t_falloc(m->nws);
    // garbage in the workspace must never leak into results
    for (size_t i = 0; i < m->nws; i++) m->ws[i] = NAN;
}

static void model_free(Model* m) {
    free(m->params), free(m->grads), free(m->ws);
    param_table_free(&m->pt);
}

static const float* tensor(const Model* m, const char* name) {
    int i = param_find(&m->pt, name);
    if (i < 0) { fprintf(stderr, "no tensor %s\n", name); exit(1); }
    return m->params + m->pt.t[i].offset;
}

// Per-pixel MLP in double, dropout masks from hd_rng_uniform. Also returns the
// smallest |trunk pre-activation| (distance to the ReLU kink).
static double dc_reference(const Model* m, const float* x, const StepRng* rng, int layer, int Bn,
                           double* gan, double* cls) {
    const float *wt = tensor(m, "dc.trunk.weight"), *bt = tensor(m, "dc.trunk.bias");
    const float *wg = tensor(m, "dc.gan.weight"), *bg = tensor(m, "dc.gan.bias");
    const float *wc = tensor(m, "dc.cls.weight"), *bc = tensor(m, "dc.cls.bias");
    double margin = INFINITY;
    for (int b = 0; b < Bn; b++)
        for (int p = 0; p < HW; p++) {
            double t[HID];
            for (int j = 0; j < HID; j++) {
                double s = bt[j];
                for (int c = 0; c < D; c++) s += (double)wt[j * D + c] * x[(b * D + c) * HW + p];
                if (fabs(s) < margin) margin = fabs(s);
                t[j] = s > 0 ? s : 0;
                if (rng->training) {
                    float u = hd_rng_uniform(rng->seed, t_drop_stream(rng->iter, rng->sample0 + b),
                                             ((uint64_t)layer << 32) + (uint64_t)(j * HW + p));
                    t[j] = u < P_DROP ? 0.0 : t[j] / (1.0 - P_DROP);
                }
            }
            double g = bg[0];
            for (int j = 0; j < HID; j++) g += (double)wg[j] * t[j];
            gan[b * HW + p] = g;
            for (int k = 0; k < K; k++) {
                double s = bc[k];
                for (int j = 0; j < HID; j++) s += (double)wc[k * HID + j] * t[j];
                cls[(b * K + k) * HW + p] = s;
            }
        }
    return margin;
}

static void check_vs_double(const char* what, const float* got, const double* want, size_t n,
                            double atol, double rtol) {
    float* w = t_falloc(n);
    for (size_t i = 0; i < n; i++) w[i] = (float)want[i];
    t_check_array(what, got, w, n, atol, rtol);
    free(w);
}

static void test_names(void) {
    Model m;
    model_init(&m, B, 1);
    static const char* names[] = {"dc.trunk.weight", "dc.trunk.bias", "dc.gan.weight",
                                  "dc.gan.bias",     "dc.cls.weight", "dc.cls.bias"};
    static const int shapes[6][4] = {{HID, D, 1, 1}, {HID}, {1, HID, 1, 1}, {1}, {K, HID, 1, 1}, {K}};
    CHECK(m.pt.n == 6, "%d tensors, want 6", m.pt.n);
    for (int i = 0; i < 6 && i < m.pt.n; i++) {
        const ParamTensor* t = &m.pt.t[i];
        CHECK(strcmp(t->name, names[i]) == 0, "tensor %d is %s, want %s", i, t->name, names[i]);
        CHECK(t->region == REGION_DC, "%s region %d", t->name, t->region);
        CHECK(t->kind == (i % 2 ? PARAM_BIAS : PARAM_CONV_WEIGHT), "%s kind %d", t->name, t->kind);
        CHECK(t->ndim == (i % 2 ? 1 : 4), "%s ndim %d", t->name, t->ndim);
        for (int d = 0; d < t->ndim; d++)
            CHECK(t->shape[d] == shapes[i][d], "%s shape[%d] %d want %d", t->name, d, t->shape[d],
                  shapes[i][d]);
    }
    model_free(&m);
}

// ---------------------------------------------------------------- forward
static void test_forward(int training) {
    Model m;
    model_init(&m, B, 2);
    float* x = t_falloc(B * D * HW);
    t_fill_uniform(x, B * D * HW, 3, -1.0f, 1.0f);
    StepRng rng = {.seed = 4242, .iter = 11, .sample0 = 3, .training = training};
    DcActs a;
    dc_acts_alloc(&a, &m.dc, B, H, W);
    dc_forward(&m.dc, m.params, &a, x, LAYER, &rng, m.ws);
    double gan[B * HW], cls[B * K * HW];
    dc_reference(&m, x, &rng, LAYER, B, gan, cls);
    check_vs_double(training ? "gan train" : "gan eval", a.gan, gan, B * HW, 1e-5, 1e-5);
    check_vs_double(training ? "cls train" : "cls eval", a.cls, cls, B * K * HW, 1e-5, 1e-5);
    // dropout really acts in training only: ~30% of the trunk is zero beyond the ReLU zeros
    StepRng eval = rng;
    eval.training = 0;
    DcActs e;
    dc_acts_alloc(&e, &m.dc, B, H, W);
    dc_forward(&m.dc, m.params, &e, x, LAYER, &eval, m.ws);
    size_t extra = 0;
    for (size_t i = 0; i < (size_t)B * HID * HW; i++) extra += e.t[i] > 0.0f && a.t[i] == 0.0f;
    if (training)
        CHECK(extra > 10, "training dropout zeroed only %zu live trunk units", extra);
    else
        CHECK(extra == 0, "eval forward dropped %zu units", extra);
    dc_acts_free(&a), dc_acts_free(&e);
    free(x);
    model_free(&m);
}

// ---------------------------------------------------------------- backward
typedef struct {
    Model* m;
    DcActs* a;
    float *x, *rg, *rc;
    StepRng rng;
} GradCtx;

static double grad_loss(void* p) {
    GradCtx* c = p;
    dc_forward(&c->m->dc, c->m->params, c->a, c->x, LAYER, &c->rng, c->m->ws);
    return t_dot(c->a->gan, c->rg, B * HW) + t_dot(c->a->cls, c->rc, B * K * HW);
}

// The loss is piecewise linear in x and every parameter, so central
// differences are exact up to fp32 rounding unless a step straddles a ReLU
// kink. A step of eps moves a trunk pre-activation by at most
// eps * max(|x|, |w|, 1) = eps here; the fixed data keeps every pre-activation
// at least 2 * eps from 0 (checked), so no step crosses a kink. The rounding
// noise of the 5 outputs a step changes is ~1e-7 / (2 eps) = 5e-5.
#define GRAD_EPS 1e-3
static void test_backward(void) {
    Model m;
    model_init(&m, B, 5);
    GradCtx c = {&m, NULL, t_falloc(B * D * HW), t_falloc(B * HW), t_falloc(B * K * HW),
                 {.seed = 99, .iter = 3, .sample0 = 1, .training = 1}};
    DcActs a;
    dc_acts_alloc(&a, &m.dc, B, H, W);
    c.a = &a;
    t_fill_uniform(c.x, B * D * HW, 6, -1.0f, 1.0f);
    t_fill_uniform(c.rg, B * HW, 7, -1.0f, 1.0f);
    t_fill_uniform(c.rc, B * K * HW, 8, -1.0f, 1.0f);
    double gan[B * HW], cls[B * K * HW];
    double margin = dc_reference(&m, c.x, &c.rng, LAYER, B, gan, cls);
    CHECK(margin > 2 * GRAD_EPS, "test data too close to a ReLU kink: %g", margin);

    float* dx = t_falloc(B * D * HW);
    memset(dx, 0, B * D * HW * sizeof(float));
    memset(m.grads, 0, m.pt.total * sizeof(float));
    dc_forward(&m.dc, m.params, &a, c.x, LAYER, &c.rng, m.ws);
    dc_backward(&m.dc, m.params, m.grads, &a, c.x, c.rg, c.rc, dx, m.ws);
    t_gradcheck("dc dx", c.x, dx, B * D * HW, 1, grad_loss, &c, GRAD_EPS, 1e-3, 1e-3);
    for (int i = 0; i < m.pt.n; i++) {
        const ParamTensor* t = &m.pt.t[i];
        size_t stride = t->numel > 12 ? t->numel / 12 : 1;
        t_gradcheck(t->name, m.params + t->offset, m.grads + t->offset, t->numel, stride, grad_loss,
                    &c, GRAD_EPS, 1e-3, 1e-3);
    }

    // step1 pattern: a params-only backward, then an input-only backward, on
    // one forward, equal one backward with both (the acts are only read)
    float* g1 = t_falloc(m.pt.total);
    float* dx1 = t_falloc(B * D * HW);
    memset(g1, 0, m.pt.total * sizeof(float));
    memset(dx1, 0, B * D * HW * sizeof(float));
    dc_forward(&m.dc, m.params, &a, c.x, LAYER, &c.rng, m.ws);
    dc_backward(&m.dc, m.params, g1, &a, c.x, c.rg, c.rc, NULL, m.ws);
    dc_backward(&m.dc, m.params, NULL, &a, c.x, c.rg, c.rc, dx1, m.ws);
    t_check_array("params-only backward", g1, m.grads, m.pt.total, 0, 0);
    t_check_array("input-only backward", dx1, dx, B * D * HW, 0, 0);
    // E-loss style: only the class head feeds dx; equals the dcls part of a full backward
    float* dxc = t_falloc(B * D * HW);
    float* zero_g = calloc(B * HW, sizeof(float));
    memset(dxc, 0, B * D * HW * sizeof(float));
    memset(dx1, 0, B * D * HW * sizeof(float));
    dc_backward(&m.dc, m.params, NULL, &a, c.x, NULL, c.rc, dxc, m.ws);
    dc_backward(&m.dc, m.params, NULL, &a, c.x, zero_g, c.rc, dx1, m.ws);
    t_check_array("dcls-only backward", dxc, dx1, B * D * HW, 0, 0);
    // accumulation: a second full backward doubles everything
    float* two = t_falloc(m.pt.total);
    for (size_t i = 0; i < m.pt.total; i++) two[i] = 2.0f * m.grads[i];
    dc_backward(&m.dc, m.params, m.grads, &a, c.x, c.rg, c.rc, NULL, m.ws);
    t_check_array("param grads accumulate", m.grads, two, m.pt.total, 1e-6, 1e-6);

    free(g1), free(dx1), free(dxc), free(zero_g), free(two), free(dx);
    free(c.x), free(c.rg), free(c.rc);
    dc_acts_free(&a);
    model_free(&m);
}

// ---------------------------------------------------------------- ranks
// A batch of 2 at sample0 = 0 equals sample 0 alone (sample0 = 0) and sample
// 1 alone (sample0 = 1): same masks bitwise, same outputs and gradients.
static void test_rank_independence(void) {
    Model m;
    model_init(&m, B, 9);
    float* x = t_falloc(B * D * HW);
    float* r = t_falloc(B * K * HW);
    t_fill_uniform(x, B * D * HW, 10, -1.0f, 1.0f);
    t_fill_uniform(r, B * K * HW, 11, -1.0f, 1.0f);
    StepRng rng = {.seed = 5, .iter = 2, .sample0 = 0, .training = 1};
    DcActs all, one;
    dc_acts_alloc(&all, &m.dc, B, H, W);
    dc_acts_alloc(&one, &m.dc, 1, H, W);
    float* dx_all = calloc(B * D * HW, sizeof(float));
    float* dx_one = calloc(B * D * HW, sizeof(float));
    dc_forward(&m.dc, m.params, &all, x, 100, &rng, m.ws);
    dc_backward(&m.dc, m.params, NULL, &all, x, NULL, r, dx_all, m.ws);
    for (int b = 0; b < B; b++) {
        StepRng rb = rng;
        rb.sample0 = b;
        const float* xb = x + (size_t)b * D * HW;
        dc_forward(&m.dc, m.params, &one, xb, 100, &rb, m.ws);
        dc_backward(&m.dc, m.params, NULL, &one, xb, NULL, r + (size_t)b * K * HW,
                    dx_one + (size_t)b * D * HW, m.ws);
        size_t diff = 0;
        for (size_t i = 0; i < (size_t)HID * HW; i++)
            diff += (one.t[i] == 0.0f) != (all.t[(size_t)b * HID * HW + i] == 0.0f);
        CHECK(diff == 0, "sample %d: %zu trunk units dropped differently", b, diff);
        t_check_array("rank cls", one.cls, all.cls + (size_t)b * K * HW, K * HW, 1e-6, 1e-6);
        t_check_array("rank gan", one.gan, all.gan + (size_t)b * HW, HW, 1e-6, 1e-6);
    }
    t_check_array("rank dx", dx_one, dx_all, B * D * HW, 1e-6, 1e-6);
    dc_acts_free(&all), dc_acts_free(&one);
    free(x), free(r), free(dx_all), free(dx_one);
    model_free(&m);
}

static void test_config_from(void) {
    Config* cfg = config_new();
    DcConfig d;
    dc_config_from(&d, cfg, 7);
    CHECK(d.D == 600 && d.hidden == 1024 && d.K == 7 && d.dropout == 0.5f,
          "published defaults: D %d hidden %d K %d dropout %g", d.D, d.hidden, d.K, d.dropout);
    config_free(cfg);
}

int main(void) {
    test_config_from();
    test_names();
    test_forward(1);
    test_forward(0);
    test_backward();
    test_rank_independence();
    return t_report("test_disc_cls");
}
