// Contextual module: parameter names and shapes, config defaults, forward
// against a step-by-step double-precision reference (dilated convs written
// out, eps from the contract's keys), eval mode, backward by finite
// differences (training, eps fixed) including extra upstream gradients into
// mu and logvar, optional outputs, batch/rank independence.
#include <string.h>

#include "context_module.h"
#include "testing.h"

enum { D = 6, CC = 4, B = 2, H = 5, W = 4, HW = H * W, NMAX = 3 };

typedef struct {
    ParamTable pt;
    Cm m;
    float *params, *grads, *ws;
} Model;

// Weights uniform in +-1.5/sqrt(fan_in), biases in +-0.2 (logvar's in [0.3,
// 0.8] so that most of logvar passes its ReLU): pre-activations of order 1,
// so the sigmoids work in their graded range and exp(logvar/2) stays small.
static void model_init(Model* m, int n, const int* dil, int Bm, uint64_t seed) {
    param_table_init(&m->pt);
    CmConfig cfg = {.D = D, .Cc = CC, .n = n};
    memcpy(cfg.dil, dil, (size_t)n * sizeof(int));
    cm_build(&m->m, &m->pt, &cfg);
    size_t total = param_table_finalize(&m->pt);
    m->params = t_falloc(total);
    m->grads = t_falloc(total);
    for (int i = 0; i < m->pt.n; i++) {
        const ParamTensor* t = &m->pt.t[i];
        float lo = -0.2f, hi = 0.2f;
        if (t->kind == PARAM_CONV_WEIGHT)
            hi = 1.5f / sqrtf((float)(t->shape[1] * t->shape[2] * t->shape[3])), lo = -hi;
        if (strcmp(t->name, "cm.logvar.bias") == 0) lo = 0.3f, hi = 0.8f;
        t_fill_uniform(m->params + t->offset, t->numel, seed + (uint64_t)i, lo, hi);
    }
    size_t nws = cm_workspace_floats(&m->m, Bm, H, W);
    m->ws = t_falloc(nws);
    // garbage in the workspace must never leak into results
    for (size_t i = 0; i < nws; i++) m->ws[i] = NAN;
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

// ---------------------------------------------------------------- reference
static double sig(double v) { return 1.0 / (1.0 + exp(-v)); }
static double relu(double v) { return v > 0 ? v : 0; }

// One image: out (Cout, HW) = conv(in (Cin, HW)) + bias, k x k, pad = dil * (k/2).
static void ref_conv(double* out, const double* in, const float* w, const float* bias, int Cin,
                     int Cout, int k, int dil) {
    const int pad = dil * (k / 2);
    for (int o = 0; o < Cout; o++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double s = bias[o];
                for (int c = 0; c < Cin; c++)
                    for (int i = 0; i < k; i++)
                        for (int j = 0; j < k; j++) {
                            int iy = y - pad + i * dil, ix = x - pad + j * dil;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            s += (double)w[((o * Cin + c) * k + i) * k + j] * in[(c * H + iy) * W + ix];
                        }
                out[o * HW + y * W + x] = s;
            }
}

typedef struct {
    double c[B][NMAX * CC * HW], s[B][NMAX * HW], p[B][D * HW];
    double mu[B][D * HW], lv[B][D * HW], z[B][D * HW], x[B][D * HW];
} Ref;

// The module's definition, one step at a time, per sample in double; eps from
// hd_rng_normal with the contract's stream (purpose 5 | iteration | global
// sample) and index (scale << 32) + flat (D, H, W) element.
static void cm_reference(Ref* r, const Model* m, const float* h, int scale, const StepRng* rng,
                         int Bn) {
    const int n = m->m.cfg.n;
    char name[64];
    for (int b = 0; b < Bn; b++) {
        double in[D * HW], t[D * HW], cs[NMAX * CC * HW];
        for (int i = 0; i < D * HW; i++) in[i] = sig(h[b * D * HW + i]);
        const double* prev = in;
        for (int k = 0; k < n; k++) {
            snprintf(name, sizeof name, "cm.conv%d.weight", k + 1);
            const float* w = tensor(m, name);
            snprintf(name, sizeof name, "cm.conv%d.bias", k + 1);
            double* ck = r->c[b] + k * CC * HW;
            ref_conv(ck, prev, w, tensor(m, name), k ? CC : D, CC, 3, m->m.cfg.dil[k]);
            for (int i = 0; i < CC * HW; i++) ck[i] = relu(ck[i]);
            prev = ck;
        }
        ref_conv(r->s[b], r->c[b], tensor(m, "cm.selector.weight"), tensor(m, "cm.selector.bias"),
                 n * CC, n, 3, 1);
        for (int i = 0; i < n * HW; i++) r->s[b][i] = sig(relu(r->s[b][i]));
        for (int k = 0; k < n; k++)
            for (int c = 0; c < CC; c++)
                for (int p = 0; p < HW; p++)
                    cs[(k * CC + c) * HW + p] = r->c[b][(k * CC + c) * HW + p] * r->s[b][k * HW + p];
        ref_conv(r->p[b], cs, tensor(m, "cm.fuse.weight"), tensor(m, "cm.fuse.bias"), n * CC, D, 1, 1);
        for (int i = 0; i < D * HW; i++) r->p[b][i] = relu(r->p[b][i]);
        ref_conv(r->mu[b], r->p[b], tensor(m, "cm.mu.weight"), tensor(m, "cm.mu.bias"), D, D, 3, 1);
        ref_conv(t, r->p[b], tensor(m, "cm.logvar.weight"), tensor(m, "cm.logvar.bias"), D, D, 3, 1);
        uint64_t stream = (5ull << 56) | ((uint64_t)rng->iter << 32) | (uint64_t)(rng->sample0 + b);
        for (int i = 0; i < D * HW; i++) {
            r->lv[b][i] = relu(t[i]);
            double eps = rng->training
                             ? hd_rng_normal(rng->seed, stream, ((uint64_t)scale << 32) + (uint64_t)i)
                             : 0.0;
            r->z[b][i] = r->mu[b][i] + exp(0.5 * r->lv[b][i]) * eps;
            double hv = h[b * D * HW + i];
            r->x[b][i] = sig(hv + hv * sig(r->z[b][i]));
        }
    }
}

static void check_vs_double(const char* what, const float* got, const double* want, size_t n,
                            double atol, double rtol) {
    float* w = t_falloc(n);
    for (size_t i = 0; i < n; i++) w[i] = (float)want[i];
    t_check_array(what, got, w, n, atol, rtol);
    free(w);
}

// ---------------------------------------------------------------- names
static void test_names_and_config(void) {
    static const int dil[3] = {1, 2, 3};
    Model m;
    model_init(&m, 3, dil, B, 1);
    static const char* convs[] = {"conv1", "conv2", "conv3", "selector", "fuse", "mu", "logvar"};
    static const int shapes[7][4] = {{CC, D, 3, 3},  {CC, CC, 3, 3}, {CC, CC, 3, 3}, {3, 3 * CC, 3, 3},
                                     {D, 3 * CC, 1, 1}, {D, D, 3, 3},  {D, D, 3, 3}};
    CHECK(m.pt.n == 14, "%d tensors, want 14", m.pt.n);
    for (int i = 0; i < 14 && i < m.pt.n; i++) {
        const ParamTensor* t = &m.pt.t[i];
        char want[64];
        snprintf(want, sizeof want, "cm.%s.%s", convs[i / 2], i % 2 ? "bias" : "weight");
        CHECK(strcmp(t->name, want) == 0, "tensor %d is %s, want %s", i, t->name, want);
        CHECK(t->region == REGION_CM, "%s region %d", t->name, t->region);
        CHECK(t->kind == (i % 2 ? PARAM_BIAS : PARAM_CONV_WEIGHT), "%s kind %d", t->name, t->kind);
        const int* s = shapes[i / 2];
        if (i % 2)
            CHECK(t->ndim == 1 && t->shape[0] == s[0], "%s shape", t->name);
        else
            CHECK(t->ndim == 4 && t->shape[0] == s[0] && t->shape[1] == s[1] && t->shape[2] == s[2] &&
                      t->shape[3] == s[3],
                  "%s shape (%d, %d, %d, %d)", t->name, t->shape[0], t->shape[1], t->shape[2],
                  t->shape[3]);
    }
    model_free(&m);

    Config* cfg = config_new();
    CmConfig c;
    cm_config_from(&c, cfg);
    CHECK(c.D == 600 && c.Cc == 256 && c.n == 3 && c.dil[0] == 1 && c.dil[1] == 2 && c.dil[2] == 5,
          "published defaults: D %d Cc %d dilations %d: %d %d %d", c.D, c.Cc, c.n, c.dil[0], c.dil[1],
          c.dil[2]);
    config_free(cfg);
}

// ---------------------------------------------------------------- forward
static void test_forward(int n, const int* dil, int training, const char* label) {
    Model m;
    model_init(&m, n, dil, B, 2);
    float* h = t_falloc(B * D * HW);
    t_fill_uniform(h, B * D * HW, 3, -2.0f, 2.0f);
    StepRng rng = {.seed = 4242, .iter = 11, .sample0 = 3, .training = training};
    CmActs a;
    cm_acts_alloc(&a, &m.m, B, H, W);
    cm_forward(&m.m, m.params, &a, h, 2, &rng, m.ws);
    Ref* r = malloc(sizeof *r);
    cm_reference(r, &m, h, 2, &rng, B);
    char what[96];
    for (int b = 0; b < B; b++) {
#define CMP(field, ref, count)                                                             \
    snprintf(what, sizeof what, "%s sample %d " #field, label, b);                           \
    check_vs_double(what, a.field + (size_t)b * (count), r->ref[b], (count), 1e-5, 1e-5)
        CMP(c, c, n * CC * HW);
        CMP(s, s, n * HW);
        CMP(p, p, D * HW);
        CMP(mu, mu, D * HW);
        CMP(logvar, lv, D * HW);
        CMP(z, z, D * HW);
        CMP(x, x, D * HW);
#undef CMP
    }
    if (!training) {
        CHECK(memcmp(a.z, a.mu, B * D * HW * sizeof(float)) == 0, "%s: eval z is not mu", label);
    } else {
        // z really carries noise, and logvar is not all clipped by its ReLU
        size_t moved = 0, open = 0;
        for (size_t i = 0; i < (size_t)B * D * HW; i++) {
            moved += fabsf(a.z[i] - a.mu[i]) > 1e-3f;
            open += a.logvar[i] > 0.0f;
        }
        CHECK(moved > B * D * HW / 2, "%s: z differs from mu at %zu elements only", label, moved);
        CHECK(open > B * D * HW / 4, "%s: logvar positive at %zu elements only", label, open);
    }
    free(r), free(h);
    cm_acts_free(&a);
    model_free(&m);
}

// ---------------------------------------------------------------- backward
typedef struct {
    Model* m;
    CmActs* a;
    float *h, *rx, *rmu, *rlv;
    StepRng rng;
    uint8_t* live;  // ReLU outputs > 0 at the unperturbed point
    size_t nlive;
    int flips;      // ReLU units whose state changed in some perturbed forward
} GradCtx;

static size_t live_count(int n) { return (size_t)B * HW * (n * CC + n + 2 * D); }

static void live_pattern(const CmActs* a, int n, uint8_t* out) {
    size_t k = 0;
    for (size_t i = 0; i < (size_t)B * n * CC * HW; i++) out[k++] = a->c[i] > 0.0f;
    for (size_t i = 0; i < (size_t)B * n * HW; i++) out[k++] = a->sel[i] > 0.0f;
    for (size_t i = 0; i < (size_t)B * D * HW; i++) out[k++] = a->p[i] > 0.0f;
    for (size_t i = 0; i < (size_t)B * D * HW; i++) out[k++] = a->logvar[i] > 0.0f;
}

static double grad_loss(void* p) {
    GradCtx* c = p;
    cm_forward(&c->m->m, c->m->params, c->a, c->h, 1, &c->rng, c->m->ws);
    uint8_t* now = malloc(c->nlive);
    live_pattern(c->a, c->m->m.cfg.n, now);
    for (size_t i = 0; i < c->nlive; i++) c->flips += now[i] != c->live[i];
    free(now);
    const size_t nD = (size_t)B * D * HW;
    return t_dot(c->a->x, c->rx, nD) + t_dot(c->a->mu, c->rmu, nD) + t_dot(c->a->logvar, c->rlv, nD);
}

// Loss = x.rx + mu.rmu + logvar.rlv: rmu and rlv stand for the KL gradients
// the caller adds. Central differences with eps 1e-3 in training mode (eps
// draws are fixed by the keys): truncation O(eps^2) ~ 1e-6 relative; fp32
// rounding of the <= 720 outputs a step moves gives noise ~ sqrt(720) * 6e-8
// / 2e-3 ~ 1e-3 at worst, hence atol 2e-3. ReLU kinks would break the
// quotient: the test counts every unit whose ReLU state differs in a perturbed
// forward and requires none (~1000 units and ~400 steps: most parameter seeds
// give a few crossings, mostly on bias steps that move a whole channel; seed
// 31 gives none). The observed |numeric - analytic| is <= 3e-4.
#define GRAD_EPS 1e-3
static void test_backward(void) {
    static const int dil[3] = {1, 2, 3};
    Model m;
    model_init(&m, 3, dil, B, 31);
    const size_t nD = (size_t)B * D * HW;
    GradCtx c = {&m, NULL, t_falloc(nD), t_falloc(nD), t_falloc(nD), t_falloc(nD),
                 {.seed = 99, .iter = 3, .sample0 = 1, .training = 1}, NULL, live_count(3), 0};
    CmActs a;
    cm_acts_alloc(&a, &m.m, B, H, W);
    c.a = &a;
    c.live = malloc(c.nlive);
    t_fill_uniform(c.h, nD, 6, -2.0f, 2.0f);
    t_fill_uniform(c.rx, nD, 7, -1.0f, 1.0f);
    t_fill_uniform(c.rmu, nD, 8, -0.5f, 0.5f);
    t_fill_uniform(c.rlv, nD, 9, -0.5f, 0.5f);

    float* dh = calloc(nD, sizeof(float));
    memset(m.grads, 0, m.pt.total * sizeof(float));
    cm_forward(&m.m, m.params, &a, c.h, 1, &c.rng, m.ws);
    live_pattern(&a, 3, c.live);
    cm_backward(&m.m, m.params, m.grads, &a, c.h, c.rx, c.rmu, c.rlv, dh, m.ws);
    t_gradcheck("cm dh", c.h, dh, nD, 1, grad_loss, &c, GRAD_EPS, 2e-3, 1e-2);
    for (int i = 0; i < m.pt.n; i++) {
        const ParamTensor* t = &m.pt.t[i];
        size_t stride = t->numel > 12 ? t->numel / 12 : 1;
        t_gradcheck(t->name, m.params + t->offset, m.grads + t->offset, t->numel, stride, grad_loss,
                    &c, GRAD_EPS, 2e-3, 1e-2);
    }
    CHECK(c.flips == 0, "%d finite-difference steps crossed a ReLU kink: change the test data",
          c.flips);

    // optional outputs: grads only, dh only, and accumulation
    cm_forward(&m.m, m.params, &a, c.h, 1, &c.rng, m.ws);
    float* g1 = calloc(m.pt.total, sizeof(float));
    float* dh1 = calloc(nD, sizeof(float));
    cm_backward(&m.m, m.params, g1, &a, c.h, c.rx, c.rmu, c.rlv, NULL, m.ws);
    cm_backward(&m.m, m.params, NULL, &a, c.h, c.rx, c.rmu, c.rlv, dh1, m.ws);
    t_check_array("cm grads without dh", g1, m.grads, m.pt.total, 1e-6, 1e-5);
    t_check_array("cm dh without grads", dh1, dh, nD, 1e-6, 1e-5);
    cm_backward(&m.m, m.params, g1, &a, c.h, c.rx, c.rmu, c.rlv, dh1, m.ws);
    for (size_t i = 0; i < m.pt.total; i++) m.grads[i] *= 2.0f;
    for (size_t i = 0; i < nD; i++) dh[i] *= 2.0f;
    t_check_array("cm grads accumulate", g1, m.grads, m.pt.total, 1e-6, 1e-5);
    t_check_array("cm dh accumulates", dh1, dh, nD, 1e-6, 1e-5);

    // NULL upstream gradients are zeros
    float* zeros = calloc(nD, sizeof(float));
    float* dh2 = calloc(nD, sizeof(float));
    memset(dh1, 0, nD * sizeof(float));
    cm_backward(&m.m, m.params, NULL, &a, c.h, c.rx, NULL, NULL, dh1, m.ws);
    cm_backward(&m.m, m.params, NULL, &a, c.h, c.rx, zeros, zeros, dh2, m.ws);
    t_check_array("cm NULL dmu/dlogvar", dh1, dh2, nD, 0, 0);

    free(g1), free(dh1), free(dh2), free(zeros), free(dh), free(c.live);
    free(c.h), free(c.rx), free(c.rmu), free(c.rlv);
    cm_acts_free(&a);
    model_free(&m);
}

// ---------------------------------------------------------------- ranks
// A batch of 2 at sample0 = 0 equals sample 0 alone (sample0 = 0) and sample
// 1 alone (sample0 = 1): same eps, same outputs and input gradients.
static void test_rank_independence(void) {
    static const int dil[3] = {1, 2, 3};
    Model m;
    model_init(&m, 3, dil, B, 9);
    const size_t nD = (size_t)B * D * HW, n1 = (size_t)D * HW;
    float* h = t_falloc(nD);
    float* r = t_falloc(nD);
    t_fill_uniform(h, nD, 10, -2.0f, 2.0f);
    t_fill_uniform(r, nD, 11, -1.0f, 1.0f);
    StepRng rng = {.seed = 5, .iter = 2, .sample0 = 0, .training = 1};
    CmActs all, one;
    cm_acts_alloc(&all, &m.m, B, H, W);
    cm_acts_alloc(&one, &m.m, 1, H, W);
    float* dh_all = calloc(nD, sizeof(float));
    float* dh_one = calloc(nD, sizeof(float));
    cm_forward(&m.m, m.params, &all, h, 0, &rng, m.ws);
    cm_backward(&m.m, m.params, NULL, &all, h, r, NULL, NULL, dh_all, m.ws);
    for (int b = 0; b < B; b++) {
        StepRng rb = rng;
        rb.sample0 = b;
        cm_forward(&m.m, m.params, &one, h + b * n1, 0, &rb, m.ws);
        cm_backward(&m.m, m.params, NULL, &one, h + b * n1, r + b * n1, NULL, NULL, dh_one + b * n1,
                    m.ws);
        t_check_array("rank z", one.z, all.z + b * n1, n1, 1e-6, 1e-6);
        t_check_array("rank x", one.x, all.x + b * n1, n1, 1e-6, 1e-6);
    }
    t_check_array("rank dh", dh_one, dh_all, nD, 1e-6, 1e-5);
    cm_acts_free(&all), cm_acts_free(&one);
    free(h), free(r), free(dh_all), free(dh_one);
    model_free(&m);
}

int main(void) {
    static const int dil3[3] = {1, 2, 3}, dil2[2] = {2, 1};
    test_names_and_config();
    test_forward(3, dil3, 1, "train");
    test_forward(3, dil3, 0, "eval");
    test_forward(2, dil2, 1, "two context convs");
    test_backward();
    test_rank_independence();
    return t_report("test_context_module");
}
