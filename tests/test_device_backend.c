// run.device resolution and dispatch on the host, with a fake backend in
// place of CUDA (the same table cuda/train_cuda.cu registers):
// - the GPU-sharing check on UUID lists;
// - no backend: cpu and auto give the CPU, cuda stops with the rebuild hint;
// - a backend seeing 0 devices: auto gives the CPU, cuda stops with the hint;
// - a backend seeing devices: auto and cuda select it (allow_gpu_sharing
//   passed through, the description kept), and the trainer's step and update
//   calls reach the backend's functions, not the CPU's.
#include <string.h>

#include "common.h"
#include "config.h"
#include "device_backend.h"
#include "testing.h"

static Dist g_dist;
static Config* g_cfg;

// ---------------------------------------------------------------- fake backend

static int fake_count, fake_select_calls, fake_sharing, fake_step1_calls, fake_step2_calls,
    fake_update_calls;
static int fake_device_count(void) { return fake_count; }
static void fake_select(const Dist* d, int allow_sharing, char* desc, size_t n) {
    (void)d;
    fake_select_calls++;
    fake_sharing = allow_sharing;
    snprintf(desc, n, "fake GPU 0 of %d", fake_count);
}
static void fake_step1(DeviceModel* g, CagNet* m, const UpdatePlan* plan, const float* img,
                       const uint8_t* labels, const float* weights, const StepRng* rng,
                       const Step1Mode* mode, Step1Losses* out) {
    (void)g, (void)m, (void)plan, (void)img, (void)labels, (void)weights, (void)rng, (void)mode;
    fake_step1_calls++;
    memset(out, 0, sizeof *out);
    out->loss_d = 42.0f;
}
static float fake_step2(DeviceModel* g, CagNet* m, const UpdatePlan* plan, const StepRng* rng) {
    (void)g, (void)m, (void)plan, (void)rng;
    fake_step2_calls++;
    return 7.0f;
}
static void fake_update(DeviceModel* g, CagNet* m, const UpdatePlan* plan) {
    (void)g, (void)m, (void)plan;
    fake_update_calls++;
}
static const DeviceBackend FAKE = {"fake",     fake_device_count, fake_select, {NULL, NULL},
                                   NULL,       NULL,              fake_step1,  fake_step2,
                                   fake_update, NULL,             NULL,        NULL};

// ---------------------------------------------------------------- helpers

static void set_device(const char* choice, int sharing) {
    char a[64];
    snprintf(a, sizeof a, "run.device=\"%s\"", choice);
    char* err = config_apply_set(g_cfg, a);
    CHECK(!err, "set %s: %s", a, err ? err : "");
    free(err);
    err = config_apply_set(g_cfg, sharing ? "run.allow_gpu_sharing=true"
                                          : "run.allow_gpu_sharing=false");
    free(err);
}

static DeviceRun g_dv;
static void select_now(void) { device_run_select(&g_dv, g_cfg, &g_dist); }

// device_run_select in a child: exit code and stderr.
static int select_in_child(char* err, size_t n) { return t_run_child(select_now, 2, err, n); }

static void check_shared(void) {
    unsigned char u[4 * 16];
    memset(u, 0, sizeof u);
    u[0] = 1, u[16] = 2, u[32] = 1, u[48] = 3;  // ranks 0 and 2 on one GPU
    CHECK(device_find_shared(u, 4, 0) == 2, "rank 0 shares with rank 2");
    CHECK(device_find_shared(u, 4, 2) == 0, "rank 2 shares with rank 0");
    CHECK(device_find_shared(u, 4, 1) == -1, "rank 1 alone");
    CHECK(device_find_shared(u, 4, 3) == -1, "rank 3 alone");
    CHECK(device_find_shared(u, 1, 0) == -1, "a single rank shares nothing");
    memcpy(u + 48, u + 16, 16);  // rank 3 = rank 1's GPU
    CHECK(device_find_shared(u, 4, 3) == 1, "rank 3 shares with rank 1");
    u[63] ^= 1;  // now differs in the last byte only
    CHECK(device_find_shared(u, 4, 3) == -1, "UUIDs differing in one byte are two GPUs");
}

static void check_no_backend(void) {
    char err[4096];
    device_backend_register(NULL);
    set_device("cpu", 0);
    select_now();
    CHECK(!g_dv.be && !strcmp(g_dv.desc, "cpu"), "cpu: the CPU (%s)", g_dv.desc);
    set_device("auto", 0);
    select_now();
    CHECK(!g_dv.be, "auto without a backend: the CPU");
    set_device("cuda", 0);
    CHECK(select_in_child(err, sizeof err) == 1, "cuda without a backend must stop");
    CHECK(strstr(err, "built without the CUDA backend") && strstr(err, "-DZSSEG_CUDA=ON"),
          "rebuild hint: %s", err);
}

static void check_backend(void) {
    char err[4096];
    device_backend_register(&FAKE);
    fake_count = 0;
    set_device("auto", 0);
    select_now();
    CHECK(!g_dv.be && fake_select_calls == 0, "auto, 0 devices: the CPU, nothing selected");
    set_device("cuda", 0);
    CHECK(select_in_child(err, sizeof err) == 1, "cuda with 0 devices must stop");
    CHECK(strstr(err, "no CUDA GPU is visible") && strstr(err, "run.device = cpu"),
          "no-GPU hint: %s", err);

    fake_count = 2;
    set_device("auto", 1);
    select_now();
    CHECK(g_dv.be == &FAKE && fake_select_calls == 1, "auto, 2 devices: the backend");
    CHECK(fake_sharing == 1, "run.allow_gpu_sharing passed to select");
    CHECK(!strcmp(g_dv.desc, "fake GPU 0 of 2"), "description kept: %s", g_dv.desc);
    set_device("cuda", 0);
    select_now();
    CHECK(g_dv.be == &FAKE && fake_select_calls == 2 && fake_sharing == 0, "cuda: the backend");

    // dispatch: with a device model the trainer's calls go to the backend
    g_dv.g = (DeviceModel*)&g_dv;  // any non-NULL handle: the fake never reads it
    UpdatePlan plan;
    memset(&plan, 0, sizeof plan);
    StepRng rng = {0, 0, 0, 1};
    Step1Losses l;
    device_run_step1(&g_dv, NULL, &plan, NULL, NULL, NULL, &rng, NULL, &l);
    CHECK(fake_step1_calls == 1 && l.loss_d == 42.0f, "step1 reached the backend");
    CHECK(device_run_step2(&g_dv, NULL, &plan, &rng) == 7.0f && fake_step2_calls == 1,
          "step2 reached the backend");
    device_run_update(&g_dv, NULL, &plan, &g_dist, 1);
    CHECK(fake_update_calls == 1, "update reached reduce_and_apply");
    g_dv.g = NULL;
}

int main(int argc, char** argv) {
    dist_init(&g_dist, &argc, &argv);
    g_cfg = config_new();
    check_shared();
    check_no_backend();
    check_backend();
    config_free(g_cfg);
    dist_finalize(&g_dist);
    return t_report("test_device_backend");
}
