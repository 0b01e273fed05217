// CaGNet generator; see generator.h.
//
// Each hidden layer keeps only its output after LeakyReLU and dropout: that
// is fc{i+1}'s input, and it also gives the LeakyReLU gradient, because a kept
// element has the sign of its pre-activation (scaled by 1/(1-p) > 0) and a
// dropped one gets no gradient through the dropout anyway.
#include "generator.h"

#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "common.h"
#include "tensor_ops.h"

void gen_config_from(GenConfig* gc, const Config* cfg) {
    memset(gc, 0, sizeof *gc);
    gc->E = config_get_int(cfg, "model.embedding_dim");
    gc->D = config_get_int(cfg, "model.feature_dim");
    int nd = 0;
    const int* w = config_get_int_list(cfg, "model.gen_widths", &gc->n_hidden);
    const double* p = config_get_float_list(cfg, "model.gen_dropouts", &nd);
    if (gc->n_hidden > GEN_MAX_HIDDEN || nd != gc->n_hidden)
        ZS_FAIL("give at most 16 generator widths and one dropout per width",
                "model.gen_widths has %d entries, model.gen_dropouts %d", gc->n_hidden, nd);
    for (int i = 0; i < gc->n_hidden; i++) {
        gc->widths[i] = w[i];
        gc->dropouts[i] = (float)p[i];
    }
    gc->slope = (float)config_get_float(cfg, "model.leaky_slope");
}

void gen_build(Gen* g, ParamTable* pt, const GenConfig* cfg) {
    if (cfg->E < 1 || cfg->D < 1 || cfg->n_hidden < 0 || cfg->n_hidden > GEN_MAX_HIDDEN)
        ZS_FAIL("check model.embedding_dim, model.feature_dim and model.gen_widths (at most 16)",
                "generator: E %d, D %d, %d hidden layers", cfg->E, cfg->D, cfg->n_hidden);
    g->cfg = *cfg;
    int cin = cfg->E + cfg->D;
    for (int i = 0; i <= cfg->n_hidden; i++) {
        int cout = i < cfg->n_hidden ? cfg->widths[i] : cfg->D;
        if (cout < 1 || (i < cfg->n_hidden && !(cfg->dropouts[i] >= 0.0f && cfg->dropouts[i] <= 1.0f)))
            ZS_FAIL("generator widths must be >= 1 and dropouts in [0, 1]",
                    "generator layer %d: width %d", i + 1, cout);
        char name[32];
        snprintf(name, sizeof name, "gen.fc%d", i + 1);
        Conv2dDesc d = {cin, cout, 1, 1, 1, 0, 1};
        conv_layer_declare(&g->fc[i], pt, name, REGION_GEN, &d);
        cin = cout;
    }
}

void gen_acts_alloc(GenActs* a, const Gen* g, int B, int H, int W) {
    memset(a, 0, sizeof(*a));
    a->B = B, a->H = H, a->W = W;
    const size_t n = (size_t)B * H * W;
    a->in = mallocCheck(n * (g->cfg.E + g->cfg.D) * sizeof(float));
    for (int i = 0; i < g->cfg.n_hidden; i++)
        a->hid[i] = mallocCheck(n * g->cfg.widths[i] * sizeof(float));
    a->fake = mallocCheck(n * g->cfg.D * sizeof(float));
}

void gen_acts_free(GenActs* a) {
    free(a->in);
    for (int i = 0; i < GEN_MAX_HIDDEN; i++) free(a->hid[i]);
    free(a->fake);
    memset(a, 0, sizeof(*a));
}

// Workspace: the largest per-image conv scratch (0 for the 1x1 layers), then
// two gradient buffers of the widest layer output.
static size_t gen_conv_ws(const Gen* g, int H, int W) {
    size_t n = 0;
    for (int i = 0; i <= g->cfg.n_hidden; i++) {
        size_t k = conv_layer_workspace_floats(&g->fc[i], H, W);
        if (k > n) n = k;
    }
    return n;
}

static size_t gen_grad_floats(const Gen* g, int B, int H, int W) {
    int c = g->cfg.D;
    for (int i = 0; i < g->cfg.n_hidden; i++)
        if (g->cfg.widths[i] > c) c = g->cfg.widths[i];
    return (size_t)B * c * H * W;
}

size_t gen_workspace_floats(const Gen* g, int B, int H, int W) {
    return gen_conv_ws(g, H, W) + 2 * gen_grad_floats(g, B, H, W);
}

void gen_forward(const Gen* g, const float* params, GenActs* a, const float* e, const float* l,
                 const StepRng* rng, float* ws) {
    const int B = a->B, H = a->H, W = a->W, HW = H * W;
    const GenConfig* cfg = &g->cfg;
    a->rng = *rng;
    const float* pieces[2] = {e, l};
    const int C[2] = {cfg->E, cfg->D};
    concat_channels_forward(a->in, pieces, C, 2, B, HW);
    const float* x = a->in;
    for (int i = 0; i < cfg->n_hidden; i++) {
        const size_t n = (size_t)cfg->widths[i] * HW;  // per sample
        float* y = a->hid[i];
        conv_layer_forward(&g->fc[i], params, y, x, ws, B, H, W);
        leaky_relu_forward(y, y, cfg->slope, B * n);
        dropout_batch_forward(y, y, cfg->dropouts[i], rng, i + 1, B, n);
        x = y;
    }
    const size_t nf = (size_t)B * cfg->D * HW;
    conv_layer_forward(&g->fc[cfg->n_hidden], params, a->fake, x, ws, B, H, W);
    sigmoid_forward(a->fake, a->fake, nf);
}

static void zero(float* p, size_t n) { memset(p, 0, n * sizeof(float)); }

void gen_backward(const Gen* g, const float* params, float* grads, const GenActs* a,
                  const float* dfake, float* ws) {
    const int B = a->B, H = a->H, W = a->W, HW = H * W;
    const GenConfig* cfg = &g->cfg;
    float* cws = ws;
    float* cur = ws + gen_conv_ws(g, H, W);  // dL/d(pre-activation of the layer at hand)
    float* nxt = cur + gen_grad_floats(g, B, H, W);

    const size_t nf = (size_t)B * cfg->D * HW;
    zero(cur, nf);
    sigmoid_backward(cur, dfake, a->fake, nf);
    for (int i = cfg->n_hidden; i >= 1; i--) {
        const float* hid = a->hid[i - 1];
        const size_t n = (size_t)cfg->widths[i - 1] * HW;  // per sample
        zero(nxt, B * n);
        conv_layer_backward(&g->fc[i], params, grads, nxt, cur, hid, cws, B, H, W);
        zero(cur, B * n);
        dropout_batch_backward(cur, nxt, cfg->dropouts[i - 1], &a->rng, i, B, n);
        zero(nxt, B * n);
        leaky_relu_backward(nxt, cur, hid, cfg->slope, B * n);
        float* t = cur;
        cur = nxt;
        nxt = t;
    }
    conv_layer_backward(&g->fc[0], params, grads, NULL, cur, a->in, cws, B, H, W);
}
