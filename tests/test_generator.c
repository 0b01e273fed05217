// Generator: parameter names and shapes, config defaults, forward against a
// per-pixel double-precision MLP with the contract's dropout masks, backward
// by finite differences (dropout on), eval mode, batch/rank independence.
#include <string.h>

#include "generator.h"
#include "testing.h"

enum { E = 5, D = 6, W1 = 7, W2 = 5, NH = 2, B = 2, H = 5, W = 4, HW = H * W, CMAX = 11 };
static const float DROP[NH] = {0.2f, 0.4f};
static const float SLOPE = 0.2f;

typedef struct {
    ParamTable pt;
    Gen g;
    float *params, *grads, *ws;
} Model;

static void model_init(Model* m, uint64_t seed) {
    param_table_init(&m->pt);
    GenConfig cfg = {.E = E, .D = D, .n_hidden = NH, .widths = {W1, W2},
                     .dropouts = {DROP[0], DROP[1]}, .slope = SLOPE};
    gen_build(&m->g, &m->pt, &cfg);
    size_t n = param_table_finalize(&m->pt);
    m->params = t_falloc(n);
    m->grads = t_falloc(n);
    t_fill_uniform(m->params, n, seed, -0.5f, 0.5f);
    size_t nws = gen_workspace_floats(&m->g, B, H, W);
    m->ws = t_falloc(nws);
    // garbage in the workspace must never leak into results
    for (size_t i = 0; i < nws; i++) m->ws[i] = NAN;
}

static void model_free(Model* m) {
    free(m->params), free(m->grads), free(m->ws);
    param_table_free(&m->pt);
}

// Per-pixel MLP in double on cat(e, l), dropout masks from hd_rng_uniform.
static void gen_reference(const Model* m, const float* e, const float* l, const StepRng* rng,
                          int Bn, double* fake) {
    const int widths[NH + 1] = {W1, W2, D};
    for (int b = 0; b < Bn; b++)
        for (int p = 0; p < HW; p++) {
            double in[CMAX], out[CMAX];
            int cin = E + D;
            for (int c = 0; c < E; c++) in[c] = e[(b * E + c) * HW + p];
            for (int c = 0; c < D; c++) in[E + c] = l[(b * D + c) * HW + p];
            for (int layer = 0; layer <= NH; layer++) {
                const ParamTensor* tw = &m->pt.t[2 * layer];
                const float* w = m->params + tw->offset;
                const float* bias = m->params + m->pt.t[2 * layer + 1].offset;
                for (int j = 0; j < widths[layer]; j++) {
                    double s = bias[j];
                    for (int c = 0; c < cin; c++) s += (double)w[j * cin + c] * in[c];
                    if (layer == NH) {
                        out[j] = 1.0 / (1.0 + exp(-s));
                        continue;
                    }
                    s = s > 0 ? s : SLOPE * s;
                    if (rng->training) {
                        float u = hd_rng_uniform(rng->seed, t_drop_stream(rng->iter, rng->sample0 + b),
                                                 ((uint64_t)(layer + 1) << 32) + (uint64_t)(j * HW + p));
                        s = u < DROP[layer] ? 0.0 : s / (1.0 - DROP[layer]);
                    }
                    out[j] = s;
                }
                cin = widths[layer];
                memcpy(in, out, sizeof in);
            }
            for (int c = 0; c < D; c++) fake[(b * D + c) * HW + p] = in[c];
        }
}

static void test_names_and_config(void) {
    Model m;
    model_init(&m, 1);
    static const char* names[] = {"gen.fc1.weight", "gen.fc1.bias", "gen.fc2.weight",
                                  "gen.fc2.bias",   "gen.fc3.weight", "gen.fc3.bias"};
    static const int shapes[6][4] = {{W1, E + D, 1, 1}, {W1}, {W2, W1, 1, 1}, {W2}, {D, W2, 1, 1}, {D}};
    CHECK(m.pt.n == 6, "%d tensors, want 6", m.pt.n);
    for (int i = 0; i < 6 && i < m.pt.n; i++) {
        const ParamTensor* t = &m.pt.t[i];
        CHECK(strcmp(t->name, names[i]) == 0, "tensor %d is %s, want %s", i, t->name, names[i]);
        CHECK(t->region == REGION_GEN, "%s region %d", t->name, t->region);
        CHECK(t->kind == (i % 2 ? PARAM_BIAS : PARAM_CONV_WEIGHT), "%s kind %d", t->name, t->kind);
        CHECK(t->ndim == (i % 2 ? 1 : 4), "%s ndim %d", t->name, t->ndim);
        for (int d = 0; d < t->ndim; d++)
            CHECK(t->shape[d] == shapes[i][d], "%s shape[%d] %d want %d", t->name, d, t->shape[d],
                  shapes[i][d]);
    }
    model_free(&m);

    Config* cfg = config_new();
    GenConfig g;
    gen_config_from(&g, cfg);
    static const int widths[5] = {1024, 960, 864, 784, 720};
    static const float drops[5] = {0.1f, 0.1f, 0.3f, 0.5f, 0.5f};
    CHECK(g.E == 600 && g.D == 600 && g.n_hidden == 5 && g.slope == 0.2f,
          "published defaults: E %d D %d %d hidden slope %g", g.E, g.D, g.n_hidden, g.slope);
    for (int i = 0; i < 5 && i < g.n_hidden; i++)
        CHECK(g.widths[i] == widths[i] && g.dropouts[i] == drops[i], "layer %d: %d / %g", i,
              g.widths[i], g.dropouts[i]);
    config_free(cfg);
}

// ---------------------------------------------------------------- forward
static void test_forward(int training) {
    Model m;
    model_init(&m, 2);
    float* e = t_falloc(B * E * HW);
    float* l = t_falloc(B * D * HW);
    t_fill_uniform(e, B * E * HW, 3, -1.0f, 1.0f);
    t_fill_normal(l, B * D * HW, 4, 1.0f);
    StepRng rng = {.seed = 4242, .iter = 11, .sample0 = 3, .training = training};
    GenActs a;
    gen_acts_alloc(&a, &m.g, B, H, W);
    gen_forward(&m.g, m.params, &a, e, l, &rng, m.ws);
    double ref[B * D * HW];
    float reff[B * D * HW];
    gen_reference(&m, e, l, &rng, B, ref);
    for (int i = 0; i < B * D * HW; i++) reff[i] = (float)ref[i];
    t_check_array(training ? "fake train" : "fake eval", a.fake, reff, B * D * HW, 1e-6, 1e-5);
    // the dropout masks differ from eval's no-dropout output in training only
    StepRng eval = rng;
    eval.training = 0;
    GenActs ev;
    gen_acts_alloc(&ev, &m.g, B, H, W);
    gen_forward(&m.g, m.params, &ev, e, l, &eval, m.ws);
    size_t dropped = 0;
    for (size_t i = 0; i < (size_t)B * W1 * HW; i++) dropped += ev.hid[0][i] != 0.0f && a.hid[0][i] == 0.0f;
    if (training)
        CHECK(dropped > 5, "training dropout zeroed only %zu fc1 units", dropped);
    else
        CHECK(dropped == 0, "eval forward dropped %zu units", dropped);
    gen_acts_free(&a), gen_acts_free(&ev);
    free(e), free(l);
    model_free(&m);
}

// ---------------------------------------------------------------- backward
typedef struct {
    Model* m;
    GenActs* a;
    float *e, *l, *r;
    StepRng rng;
    uint8_t* live;  // (B, W1 + W2, HW) hidden output > 0 at the unperturbed point
    int flips;      // hidden units whose sign changed in some perturbed forward
} GradCtx;

static void live_pattern(const GenActs* a, uint8_t* out) {
    for (size_t i = 0; i < (size_t)B * W1 * HW; i++) out[i] = a->hid[0][i] > 0.0f;
    for (size_t i = 0; i < (size_t)B * W2 * HW; i++) out[B * W1 * HW + i] = a->hid[1][i] > 0.0f;
}

static double grad_loss(void* p) {
    GradCtx* c = p;
    gen_forward(&c->m->g, c->m->params, c->a, c->e, c->l, &c->rng, c->m->ws);
    uint8_t now[B * (W1 + W2) * HW];
    live_pattern(c->a, now);
    for (size_t i = 0; i < sizeof now; i++) c->flips += now[i] != c->live[i];
    return t_dot(c->a->fake, c->r, B * D * HW);
}

// Central differences with eps 1e-3: the sigmoid output's truncation error is
// O(eps^2) ~ 1e-6, the fp32 rounding noise of the <= 240 outputs a step moves
// is ~sqrt(240) * 3e-8 / 2e-3 ~ 2e-4, under atol 1e-3. The LeakyReLU kinks
// would break the quotient; instead of bounding shifts, the test counts every
// hidden unit whose sign differs in a perturbed forward and requires none.
#define GRAD_EPS 1e-3
static void test_backward(void) {
    Model m;
    model_init(&m, 5);
    uint8_t live[B * (W1 + W2) * HW];
    GradCtx c = {&m, NULL, t_falloc(B * E * HW), t_falloc(B * D * HW), t_falloc(B * D * HW),
                 {.seed = 99, .iter = 3, .sample0 = 1, .training = 1}, live, 0};
    GenActs a;
    gen_acts_alloc(&a, &m.g, B, H, W);
    c.a = &a;
    t_fill_uniform(c.e, B * E * HW, 6, -1.0f, 1.0f);
    t_fill_normal(c.l, B * D * HW, 7, 1.0f);
    t_fill_uniform(c.r, B * D * HW, 8, -1.0f, 1.0f);

    memset(m.grads, 0, m.pt.total * sizeof(float));
    gen_forward(&m.g, m.params, &a, c.e, c.l, &c.rng, m.ws);
    live_pattern(&a, live);
    gen_backward(&m.g, m.params, m.grads, &a, c.r, m.ws);
    for (int i = 0; i < m.pt.n; i++) {
        const ParamTensor* t = &m.pt.t[i];
        size_t stride = t->numel > 12 ? t->numel / 12 : 1;
        t_gradcheck(t->name, m.params + t->offset, m.grads + t->offset, t->numel, stride, grad_loss,
                    &c, GRAD_EPS, 1e-3, 1e-3);
    }
    CHECK(c.flips == 0, "%d finite-difference steps crossed a LeakyReLU kink: change the test data",
          c.flips);

    // accumulation: a second backward on the same forward doubles the gradients
    float* two = t_falloc(m.pt.total);
    for (size_t i = 0; i < m.pt.total; i++) two[i] = 2.0f * m.grads[i];
    gen_forward(&m.g, m.params, &a, c.e, c.l, &c.rng, m.ws);
    gen_backward(&m.g, m.params, m.grads, &a, c.r, m.ws);
    t_check_array("gen grads accumulate", m.grads, two, m.pt.total, 1e-6, 1e-6);

    free(two), free(c.e), free(c.l), free(c.r);
    gen_acts_free(&a);
    model_free(&m);
}

// ---------------------------------------------------------------- ranks
// A batch of 2 at sample0 = 0 equals sample 0 alone (sample0 = 0) and sample
// 1 alone (sample0 = 1): same masks bitwise, same outputs and gradients.
static void test_rank_independence(void) {
    Model m;
    model_init(&m, 9);
    float* e = t_falloc(B * E * HW);
    float* l = t_falloc(B * D * HW);
    float* r = t_falloc(B * D * HW);
    t_fill_uniform(e, B * E * HW, 10, -1.0f, 1.0f);
    t_fill_normal(l, B * D * HW, 11, 1.0f);
    t_fill_uniform(r, B * D * HW, 12, -1.0f, 1.0f);
    StepRng rng = {.seed = 5, .iter = 2, .sample0 = 0, .training = 1};
    GenActs all, one;
    gen_acts_alloc(&all, &m.g, B, H, W);
    gen_acts_alloc(&one, &m.g, 1, H, W);
    float* g_all = calloc(m.pt.total, sizeof(float));
    gen_forward(&m.g, m.params, &all, e, l, &rng, m.ws);
    gen_backward(&m.g, m.params, g_all, &all, r, m.ws);
    memset(m.grads, 0, m.pt.total * sizeof(float));
    for (int b = 0; b < B; b++) {
        StepRng rb = rng;
        rb.sample0 = b;
        gen_forward(&m.g, m.params, &one, e + (size_t)b * E * HW, l + (size_t)b * D * HW, &rb, m.ws);
        gen_backward(&m.g, m.params, m.grads, &one, r + (size_t)b * D * HW, m.ws);
        for (int k = 0; k < NH; k++) {
            const int w = k ? W2 : W1;
            size_t diff = 0;
            for (size_t i = 0; i < (size_t)w * HW; i++)
                diff += (one.hid[k][i] == 0.0f) != (all.hid[k][(size_t)b * w * HW + i] == 0.0f);
            CHECK(diff == 0, "sample %d layer %d: %zu units dropped differently", b, k + 1, diff);
        }
        t_check_array("rank fake", one.fake, all.fake + (size_t)b * D * HW, D * HW, 1e-6, 1e-6);
    }
    t_check_array("rank grads (sum of the two samples)", m.grads, g_all, m.pt.total, 1e-5, 1e-5);
    gen_acts_free(&all), gen_acts_free(&one);
    free(e), free(l), free(r), free(g_all);
    model_free(&m);
}

int main(void) {
    test_names_and_config();
    test_forward(1);
    test_forward(0);
    test_backward();
    test_rank_independence();
    return t_report("test_generator");
}
