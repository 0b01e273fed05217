// Memory plan of the tiny CaGNet: parameters, gradients and optimizer state
// exact from the parameter table, activations against an independent count
// from the model dimensions, the fit check around its boundary, the message
// and the log line.
#include <stdlib.h>
#include <string.h>

#include "infer.h"
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
    // evaluation buffers: at least what cag_infer_init really allocates, growing with the batch
    MemPlan pe = p;
    mem_plan_eval(&pe, &m, 1, 16);
    MemPlan pe4 = p;
    mem_plan_eval(&pe4, &m, 4, 16);
    CagInfer inf;
    cag_infer_init(&inf, &m, 1, 16, 16);
    size_t bb = 0;
    for (int j = 0; j < inf.n_scales; j++) bb += inf.sc[j].bb.bytes;
    size_t floor_b = bb + 4 * (inf.ws_n + 3 * 16 * 16 + (size_t)TK * inf.Hf * inf.Wf);
    cag_infer_free(&inf);
    CHECK(pe.eval >= floor_b && pe.total == p.total + pe.eval,
          "%s: eval %zu >= %zu allocated by cag_infer_init, total %zu", what, pe.eval, floor_b,
          pe.total);
    CHECK(pe4.eval > 2 * pe.eval && pe4.eval < 4 * pe.eval,
          "%s: eval of 4 images %zu vs 1 image %zu (the workspace is per image)", what, pe4.eval,
          pe.eval);
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
                          "conv_workspace 4096.0 MiB, eval 0.0 MiB, total 7.44 GiB"),
        "log line: %s", out);
}

// Host memory: the plan against the node's available memory shared by its ranks.
static MemPlan host_plan;
static void child_check_host(void) { mem_plan_check_host(&host_plan, 2); }

static void test_host(void) {
    MemPlan p = {.params = 100 << 20, .activations = (size_t)3 << 30, .eval = (size_t)1 << 30};
    p.total = p.params + p.activations + p.eval;
    char msg[1024];
    CHECK(mem_plan_check_host_bytes(&p, 2 * p.total, 2, "test", msg, sizeof msg) == 0 &&
              msg[0] == '\0',
          "fits exactly: 2 ranks, twice the plan available");
    CHECK(mem_plan_check_host_bytes(&p, 2 * p.total - 2, 2, "test", msg, sizeof msg) == 1,
          "2 bytes short on the node does not fit");
    printf("message: %s\n", msg);
    CHECK(strstr(msg, "needs 4.10 GiB of host memory per rank (training 3.10 GiB, evaluation "
                      "1.00 GiB) but 4.10 GiB is available per rank (8.20 GiB from test, 2 "
                      "rank(s)") != NULL,
          "message has the sizes: %s", msg);
    CHECK(strstr(msg, "biggest item is activations (3.00 GiB)") && strstr(msg, "data.crop_size") &&
              strstr(msg, "data.batch_size"),
          "training biggest: names data.crop_size: %s", msg);
    p.eval = (size_t)6 << 30;
    p.total = p.params + p.activations + p.eval;
    CHECK(mem_plan_check_host_bytes(&p, (size_t)8 << 30, 1, "test", msg, sizeof msg) == 1 &&
              strstr(msg, "biggest item is eval (6.00 GiB)") && strstr(msg, "eval.batch_size"),
          "evaluation biggest: names eval.batch_size: %s", msg);
    CHECK(mem_plan_check_host_bytes(&p, (size_t)10 << 30, 1, "test", msg, sizeof msg) == 0,
          "fits 10 GiB on one rank");

    const char* src = NULL;
    setenv("ZSSEG_MEM_AVAILABLE", "123456789", 1);
    CHECK(mem_host_available(&src) == 123456789 && src && strcmp(src, "ZSSEG_MEM_AVAILABLE") == 0,
          "ZSSEG_MEM_AVAILABLE overrides (source %s)", src ? src : "NULL");
    setenv("ZSSEG_MEM_AVAILABLE", "8589934592", 1);  // 8 GiB over 2 ranks: 4 GiB each
    host_plan = p;
    char out[2048];
    int rc = t_run_child(child_check_host, 2, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "4.00 GiB is available per rank") &&
              strstr(out, "eval.batch_size") && strstr(out, "ZSSEG_MEM_AVAILABLE"),
          "mem_plan_check_host stops the run (rc %d): %s", rc, out);
    host_plan.total = host_plan.eval = (size_t)1 << 30;
    host_plan.params = host_plan.activations = 0;
    rc = t_run_child(child_check_host, 2, out, sizeof out);
    CHECK(rc == 0, "a 1 GiB plan fits 4 GiB per rank (rc %d): %s", rc, out);
    unsetenv("ZSSEG_MEM_AVAILABLE");
    size_t real = mem_host_available(&src);
    printf("host memory available: %.2f GiB (%s)\n", (double)real / (1 << 30), src);
    CHECK(real > 0, "the host's available memory can be read (%s)", src);
}

int main(void) {
    test_host();
    check_model("no msc, mmd", 0, NULL, 0);
    check_model("msc, mmd", 1, NULL, 0);
    static const char* const l2_adam[] = {"loss.content=l2", "optim.e_optimizer=adam", NULL};
    check_model("msc, l2, adam E", 1, l2_adam, 1);
    test_check_and_log();
    return t_report("test_mem_plan");
}
