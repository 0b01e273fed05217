// Discriminator/classifier; see disc_cls.h.
//
// Only the trunk output t is kept: it is the heads' input, and it gives the
// ReLU gradient too (a kept element is positive exactly where its
// pre-activation is; a dropped one gets no gradient through the dropout).
#include "disc_cls.h"

#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "common.h"

void dc_config_from(DcConfig* dcc, const Config* cfg, int K) {
    dcc->D = config_get_int(cfg, "model.feature_dim");
    dcc->hidden = config_get_int(cfg, "model.d_hidden");
    dcc->K = K;
    dcc->dropout = (float)config_get_float(cfg, "model.d_dropout");
}

void dc_build(Dc* dc, ParamTable* pt, const DcConfig* cfg) {
    if (cfg->D < 1 || cfg->hidden < 1 || cfg->K < 1 || !(cfg->dropout >= 0.0f && cfg->dropout <= 1.0f))
        ZS_FAIL("check model.feature_dim, model.d_hidden, model.d_dropout and the class list",
                "discriminator/classifier: D %d, hidden %d, K %d, dropout %g", cfg->D, cfg->hidden,
                cfg->K, cfg->dropout);
    dc->cfg = *cfg;
    Conv2dDesc dt = {cfg->D, cfg->hidden, 1, 1, 1, 0, 1};
    Conv2dDesc dg = {cfg->hidden, 1, 1, 1, 1, 0, 1};
    Conv2dDesc dcl = {cfg->hidden, cfg->K, 1, 1, 1, 0, 1};
    conv_layer_declare(&dc->trunk, pt, "dc.trunk", REGION_DC, &dt);
    conv_layer_declare(&dc->gan, pt, "dc.gan", REGION_DC, &dg);
    conv_layer_declare(&dc->cls, pt, "dc.cls", REGION_DC, &dcl);
}

void dc_acts_alloc(DcActs* a, const Dc* dc, int B, int H, int W) {
    memset(a, 0, sizeof(*a));
    a->B = B, a->H = H, a->W = W;
    const size_t n = (size_t)B * H * W;
    a->t = mallocCheck(n * dc->cfg.hidden * sizeof(float));
    a->gan = mallocCheck(n * sizeof(float));
    a->cls = mallocCheck(n * dc->cfg.K * sizeof(float));
}

void dc_acts_free(DcActs* a) {
    free(a->t), free(a->gan), free(a->cls);
    memset(a, 0, sizeof(*a));
}

// Workspace: the largest per-image conv scratch (0 for 1x1), then two
// (B, hidden, HW) gradient buffers.
static size_t dc_conv_ws(const Dc* dc, int H, int W) {
    size_t n = conv_layer_workspace_floats(&dc->trunk, H, W);
    size_t g = conv_layer_workspace_floats(&dc->gan, H, W);
    size_t c = conv_layer_workspace_floats(&dc->cls, H, W);
    if (g > n) n = g;
    return c > n ? c : n;
}

size_t dc_workspace_floats(const Dc* dc, int B, int H, int W) {
    return dc_conv_ws(dc, H, W) + 2 * (size_t)B * dc->cfg.hidden * H * W;
}

void dc_forward(const Dc* dc, const float* params, DcActs* a, const float* x, int layer_id,
                const StepRng* rng, float* ws) {
    const int B = a->B, H = a->H, W = a->W;
    const size_t n = (size_t)dc->cfg.hidden * H * W;  // per sample
    a->rng = *rng;
    a->layer_id = layer_id;
    conv_layer_forward(&dc->trunk, params, a->t, x, ws, B, H, W);
    relu_forward(a->t, a->t, B * n);
    dropout_batch_forward(a->t, a->t, dc->cfg.dropout, rng, layer_id, B, n);
    conv_layer_forward(&dc->gan, params, a->gan, a->t, ws, B, H, W);
    conv_layer_forward(&dc->cls, params, a->cls, a->t, ws, B, H, W);
}

void dc_backward(const Dc* dc, const float* params, float* grads, const DcActs* a, const float* x,
                 const float* dgan, const float* dcls, float* dx, float* ws) {
    if ((!grads && !dx) || (!dgan && !dcls)) return;
    const int B = a->B, H = a->H, W = a->W;
    const size_t n = (size_t)B * dc->cfg.hidden * H * W;
    float* cws = ws;
    float* g0 = ws + dc_conv_ws(dc, H, W);
    float* g1 = g0 + n;
    memset(g0, 0, n * sizeof(float));
    if (dgan) conv_layer_backward(&dc->gan, params, grads, g0, dgan, a->t, cws, B, H, W);
    if (dcls) conv_layer_backward(&dc->cls, params, grads, g0, dcls, a->t, cws, B, H, W);
    memset(g1, 0, n * sizeof(float));
    dropout_batch_backward(g1, g0, dc->cfg.dropout, &a->rng, a->layer_id, B, n / B);
    memset(g0, 0, n * sizeof(float));
    relu_backward(g0, g1, a->t, n);
    conv_layer_backward(&dc->trunk, params, grads, dx, g0, x, cws, B, H, W);
}
