// Memory plan of the tiny CaGNet: parameters, gradients and optimizer state
// exact from the parameter table, activations against an independent count
// from the model dimensions, the fit check around its boundary, the message
// and the log line.
#include <string.h>

#include "mem_plan.h"
#include "tiny_cagnet.h"

// TK classes; tiny_model_keys: TD = feature_dim, TE = embedding_dim, CC = cm_channels,
// NC = len(cm_dilations), HID = d_hidden, GW = gen_widths[0]
enum { TK = 5, TD = 8, TE = 4, CC = 4, NC = 2, HID = 6, GW = 8 };

static Config* config(int msc, const char* const* extra) {
    Config* cfg = config_new();
    tiny_model_keys(cfg, msc);
    for (; extra && *extra; extra++) tiny_set(cfg, *extra);
    char* err = config_validate(cfg);
    if (err) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    return cfg;
}

// Bytes of the activations, counted per output pixel px_j = B*Hf_j*Wf_j of
// scale j (px0 = scale 0's, n0 = TD*px0), S scales, world ranks:
//   sum_j [ backbone bytes_j + 4*3*B*H_j*W_j (j > 0) + px_j + 4*px_j (labels, CE weights)
//           + 4*px_j*((NC*CC + 2*NC + 5*TD) + (HID + 1 + TK) + 2*TD) + 4*n0 (x_up, j > 0) ]
//   + MSC: 4*2*n0 + n0 + 4*px0*(HID + 1 + TK)           (x_max, dx_max, which, dc_max)
//   + 4*px0*TE + 4*n0 + px0                             (emap, latent, y2)
//   + 4*px0*((TE + TD) + GW + TD) + 4*px0*(HID + 1 + TK)   (gen acts, dc_fake)
//   + 4*n0 + 4*px0 + 4*TK*max_j px_j + px0              (dfake, dgan, dcls, valid)
//   + 4*(TK + 1 + TK + px0)                              (MMD class index ints)
//   + MMD: 4*(2*world*n0 + max(world > 1 ? 2*world*n0 : 0, world*n0))
static size_t expected_acts(const CagNet* m, int mmd, int world) {
    size_t B = (size_t)m->B, px0 = B * m->sc[0].Hf * m->sc[0].Wf, n0 = TD * px0, a = 0, pmax = 0;
    for (int j = 0; j < m->n_scales; j++) {
        const CagScale* s = &m->sc[j];
        size_t px = B * s->Hf * s->Wf;
        a += s->bb.bytes + px + 4 * px;
        a += 4 * px * ((NC * CC + 2 * NC + 5 * TD) + (HID + 1 + TK) + 2 * TD);
        if (j) a += 4 * 3 * B * s->H * s->W + 4 * n0;
        if (px > pmax) pmax = px;
    }
    if (m->n_scales > 1) a += 4 * 2 * n0 + n0 + 4 * px0 * (HID + 1 + TK);
    a += 4 * px0 * TE + 4 * n0 + px0;
    a += 4 * px0 * ((TE + TD) + GW + TD) + 4 * px0 * (HID + 1 + TK);
    a += 4 * n0 + 4 * px0 + 4 * TK * pmax + px0;
    a += 4 * (TK + 1 + TK + px0);
    if (mmd) {
        size_t w = (size_t)world;
        a += 4 * (2 * w * n0 + (world > 1 ? 2 * w * n0 : w * n0));
    }
    return a;
}

static void check_model(const char* what, int msc, const char* const* extra, int adam_e) {
    static const uint8_t unseen[TK] = {0, 0, 1, 0, 1};
    Config* cfg = config(msc, extra);
    CagNet m;
    tiny_cagnet(&m, cfg, TK, unseen);
    CHECK(m.n_scales == (msc ? 3 : 1) && m.D == TD && m.E == TE && m.B == 1 && m.H == 16,
          "%s: model dims (scales %d, D %d, E %d)", what, m.n_scales, m.D, m.E);
    MemPlan p;
    mem_plan_cagnet(&p, &m, 12345);
    const ParamTable* pt = &m.pt;
    CHECK(p.params == 4 * pt->total && p.grads == 4 * pt->total,
          "%s: params %zu grads %zu (total %zu floats)", what, p.params, p.grads, pt->total);
    // E's span: backbone, ASPP and CM regions (adjacent); D and G: Adam (m and v)
    size_t e = pt->region_n[REGION_BACKBONE] + pt->region_n[REGION_ASPP] + pt->region_n[REGION_CM];
    size_t optim =
        4 * (e * (adam_e ? 2 : 1) + 2 * pt->region_n[REGION_DC] + 2 * pt->region_n[REGION_GEN]);
    CHECK(m.opt_e.span_n == e && p.optim == optim, "%s: optim %zu want %zu (E span %zu want %zu)",
          what, p.optim, optim, m.opt_e.span_n, e);
    int mmd = config_is(cfg, "loss.content", "mmd");
    size_t acts = expected_acts(&m, mmd, 1);
    CHECK(p.activations == acts, "%s: activations %zu want %zu", what, p.activations, acts);
    CHECK(p.workspace == 4 * m.ws_n && m.ws_n > 0, "%s: workspace %zu (ws_n %zu)", what,
          p.workspace, m.ws_n);
    CHECK(p.batch == 1 * 16 * 16 * (3 * 4 + 1), "%s: batch %zu want 3328", what, p.batch);
    CHECK(p.conv_workspace == 12345, "%s: conv workspace %zu", what, p.conv_workspace);
    CHECK(p.total == p.params + p.grads + p.optim + p.activations + p.workspace + p.batch + 12345,
          "%s: total %zu is the sum", what, p.total);
    // several ranks: each gathers every rank's MMD rows
    Dist three = {.rank = 1, .world = 3};
    m.dist = &three;
    MemPlan p3;
    mem_plan_cagnet(&p3, &m, 12345);
    m.dist = NULL;
    size_t acts3 = expected_acts(&m, mmd, 3);
    CHECK(p3.activations == acts3 && (mmd ? acts3 > acts : acts3 == acts),
          "%s: 3 ranks: activations %zu want %zu", what, p3.activations, acts3);
    printf(
        "%s: params %zu, optim %zu, activations %zu (3 ranks %zu), workspace %zu, total %zu "
        "bytes\n",
        what, p.params, p.optim, p.activations, p3.activations, p.workspace, p.total);
    cagnet_free(&m);
    config_free(cfg);
}

static MemPlan logged;
static void child_log(void) { mem_plan_log(&logged, "cuda"); }

static void test_check_and_log(void) {
    MemPlan p = {.params = 100 << 20,
                 .grads = 100 << 20,
                 .optim = 200 << 20,
                 .activations = (size_t)3 << 30,
                 .workspace = 50 << 20,
                 .batch = 1 << 20,
                 .conv_workspace = 512 << 20};
    p.total =
        p.params + p.grads + p.optim + p.activations + p.workspace + p.batch + p.conv_workspace;
    size_t dev = (size_t)8 << 30, reserve = dev / 20;  // 409.6 MiB
    char msg[1024];
    CHECK(mem_plan_check(&p, p.total + reserve, dev, msg, sizeof msg) == 0 && msg[0] == '\0',
          "fits exactly at total + reserve");
    CHECK(mem_plan_check(&p, dev, dev, msg, sizeof msg) == 0, "fits an empty 8 GiB device");
    CHECK(mem_plan_check(&p, p.total + reserve - 1, dev, msg, sizeof msg) == 1,
          "one byte short does not fit");
    printf("message: %s\n", msg);
    char want[128];
    snprintf(want, sizeof want, "needs %.2f GiB of device memory (%.2f GiB planned + 0.40 GiB",
             (double)(p.total + reserve) / (1 << 30), (double)p.total / (1 << 30));
    CHECK(strstr(msg, want) != NULL, "message names the need (%s): %s", want, msg);
    snprintf(want, sizeof want, "%.2f GiB of 8.00 GiB is free",
             (double)(p.total + reserve - 1) / (1 << 30));
    CHECK(strstr(msg, want) != NULL, "message names the free memory (%s): %s", want, msg);
    CHECK(strstr(msg, "biggest item is activations (3.00 GiB)") != NULL, "biggest item: %s", msg);
    CHECK(strstr(msg, "data.batch_size") && strstr(msg, "data.crop_size") &&
              strstr(msg, "model.msc = false") && strstr(msg, "GPU with more memory"),
          "message names the fixes: %s", msg);
    p.conv_workspace = (size_t)4 << 30;
    p.total += ((size_t)4 << 30) - (512 << 20);
    CHECK(mem_plan_check(&p, dev / 2, dev, msg, sizeof msg) == 1 &&
              strstr(msg, "biggest item is conv_workspace (4.00 GiB)"),
          "biggest item follows the sizes: %s", msg);

    logged = p;
    char out[2048];
    int rc = t_run_child(child_log, 1, out, sizeof out);
    CHECK(
        rc == 0 && strstr(out,
                          "memory plan (cuda): params 100.0 MiB, grads 100.0 MiB, optim 200.0 MiB, "
                          "activations 3072.0 MiB, workspace 50.0 MiB, batch 1.0 MiB, "
                          "conv_workspace 4096.0 MiB, total 7.44 GiB"),
        "log line: %s", out);
}

int main(void) {
    check_model("no msc, mmd", 0, NULL, 0);
    check_model("msc, mmd", 1, NULL, 0);
    static const char* const l2_adam[] = {"loss.content=l2", "optim.e_optimizer=adam", NULL};
    check_model("msc, l2, adam E", 1, l2_adam, 1);
    test_check_and_log();
    return t_report("test_mem_plan");
}
