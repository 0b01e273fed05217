// Speed/memory benchmark of one CaGNet step1 iteration (forward, the three
// backward passes, the three optimizer updates: cagnet_step1 + cagnet_apply)
// of the published setting (configs/cocostuff_cagnet.cfg: ResNet-101, D = 600,
// MSC 1.0/0.5/0.75, K = 182) at batch 1 and a 321x321 crop. tests/bench/step.sh
// runs it next to the PyTorch reference (bench_step.py) on the same inputs.
//
//   bench_step [--config FILE] [--set key=value]... [--size N] [--warmup N] [--iters N]
//   bench_step --print-config [...]   # the resolved config (for bench_step.py)
//
// Where the time goes: the GNU linker's --wrap reroutes the core library's
// calls to cblas_sgemm, conv2d_forward/backward and the module entry points
// through the timers below, so the library is benchmarked unmodified.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cagnet.h"
#include "common.h"
#include "conv.h"

#define MAX_SETS 32

// ---------------------------------------------------------------- timers

// Parts of an iteration; calls made outside every wrapped module count as REST
// (losses, MMD, resizes, MSC fusion, label embedding, gradient zeroing).
enum { P_BB_F, P_BB_B, P_CM_F, P_CM_B, P_G_F, P_G_B, P_DC_F, P_DC_B, P_OPT, P_REST, N_PARTS };
static const char* PART_NAMES[N_PARTS] = {
    "backbone+ASPP forward", "backbone+ASPP backward", "CM forward", "CM backward",
    "G forward", "G backward", "D/C forward", "D/C backward", "optimizer updates",
    "rest (losses, MMD, resize, ...)"};

typedef struct {
    double total[N_PARTS];      // wall seconds inside the part
    double gemm[N_PARTS];       // ... of which inside cblas_sgemm
    double conv[N_PARTS];       // ... of which inside conv2d_forward/backward (GEMM included)
    double conv_gemm[N_PARTS];  // ... of which inside the convs' GEMMs
    double gemm_flop;           // 2*M*N*K summed over the GEMM calls
    long gemm_calls;
} Timers;

static Timers tm;
static int part = P_REST;
static int in_conv = 0;

static double part_enter(int p) {
    part = p;
    return omp_get_wtime();
}

static void part_leave(int p, double t0) {
    tm.total[p] += omp_get_wtime() - t0;
    part = P_REST;
}

void __real_cblas_sgemm(const enum CBLAS_ORDER o, const enum CBLAS_TRANSPOSE ta,
                        const enum CBLAS_TRANSPOSE tb, const blasint M, const blasint N,
                        const blasint K, const float alpha, const float* A, const blasint lda,
                        const float* B, const blasint ldb, const float beta, float* C,
                        const blasint ldc);
void __wrap_cblas_sgemm(const enum CBLAS_ORDER o, const enum CBLAS_TRANSPOSE ta,
                        const enum CBLAS_TRANSPOSE tb, const blasint M, const blasint N,
                        const blasint K, const float alpha, const float* A, const blasint lda,
                        const float* B, const blasint ldb, const float beta, float* C,
                        const blasint ldc) {
    double t0 = omp_get_wtime();
    __real_cblas_sgemm(o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double t = omp_get_wtime() - t0;
    tm.gemm[part] += t;
    if (in_conv) tm.conv_gemm[part] += t;
    tm.gemm_flop += 2.0 * M * N * K;
    tm.gemm_calls++;
}

void __real_conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                           float* ws, const Conv2dDesc* d, int B, int H, int W);
void __wrap_conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                           float* ws, const Conv2dDesc* d, int B, int H, int W) {
    double t0 = omp_get_wtime();
    in_conv = 1;
    __real_conv2d_forward(out, inp, weight, bias, ws, d, B, H, W);
    in_conv = 0;
    tm.conv[part] += omp_get_wtime() - t0;
}

void __real_conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                            const float* inp, const float* weight, float* ws,
                            const Conv2dDesc* d, int B, int H, int W);
void __wrap_conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                            const float* inp, const float* weight, float* ws,
                            const Conv2dDesc* d, int B, int H, int W) {
    double t0 = omp_get_wtime();
    in_conv = 1;
    __real_conv2d_backward(dinp, dweight, dbias, dout, inp, weight, ws, d, B, H, W);
    in_conv = 0;
    tm.conv[part] += omp_get_wtime() - t0;
}

// One wrapper per module entry point: time the real call as part P.
#define WRAP_PART(P, name, params, args) \
    void __real_##name params;           \
    void __wrap_##name params {          \
        double t0 = part_enter(P);       \
        __real_##name args;              \
        part_leave(P, t0);               \
    }

WRAP_PART(P_BB_F, backbone_forward,
          (const Backbone* bb, const float* params, BackboneActs* a, const float* img, float* ws),
          (bb, params, a, img, ws))
WRAP_PART(P_BB_B, backbone_backward,
          (const Backbone* bb, const float* params, float* grads, const BackboneActs* a,
           const float* dh, float* ws),
          (bb, params, grads, a, dh, ws))
WRAP_PART(P_CM_F, cm_forward,
          (const Cm* m, const float* params, CmActs* a, const float* h, int scale,
           const StepRng* rng, float* ws),
          (m, params, a, h, scale, rng, ws))
WRAP_PART(P_CM_B, cm_backward,
          (const Cm* m, const float* params, float* grads, const CmActs* a, const float* h,
           const float* dx, const float* dmu, const float* dlogvar, float* dh, float* ws),
          (m, params, grads, a, h, dx, dmu, dlogvar, dh, ws))
WRAP_PART(P_G_F, gen_forward,
          (const Gen* g, const float* params, GenActs* a, const float* e, const float* l,
           const StepRng* rng, float* ws),
          (g, params, a, e, l, rng, ws))
WRAP_PART(P_G_B, gen_backward,
          (const Gen* g, const float* params, float* grads, const GenActs* a, const float* dfake,
           float* ws),
          (g, params, grads, a, dfake, ws))
WRAP_PART(P_DC_F, dc_forward,
          (const Dc* dc, const float* params, DcActs* a, const float* x, int layer_id,
           const StepRng* rng, float* ws),
          (dc, params, a, x, layer_id, rng, ws))
WRAP_PART(P_DC_B, dc_backward,
          (const Dc* dc, const float* params, float* grads, const DcActs* a, const float* x,
           const float* dgan, const float* dcls, float* dx, float* ws),
          (dc, params, grads, a, x, dgan, dcls, dx, ws))
WRAP_PART(P_OPT, optimizer_step,
          (Optimizer* o, float* params, const float* grads, float base_lr),
          (o, params, grads, base_lr))

// ---------------------------------------------------------------- inputs

// Resident set size now (VmRSS), in KiB.
static long rss_now_kb(void) {
    FILE* f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
    fclose(f);
    return kb;
}

// Process CPU time (user + system, every thread), in seconds.
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static long rss_peak_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;  // KiB on Linux
}

// Lines of a text file (the class list: one class per line).
static int count_lines(const char* path) {
    FILE* f = fopenCheck(path, "r");
    int n = 0, c, last = '\n';
    while ((c = fgetc(f)) != EOF) {
        if (c == '\n') n++;
        last = c;
    }
    fclose(f);
    return n + (last != '\n');
}

// Training indices listed in a split file (whitespace-separated ints), as a mask.
static void read_ids(uint8_t* mask, int K, const char* path) {
    FILE* f = fopenCheck(path, "r");
    int id;
    while (fscanf(f, "%d", &id) == 1) {
        if (id < 0 || id >= K)
            ZS_FAIL("check the split file", "%s: id %d outside [0, %d)", path, id, K);
        mask[id] = 1;
    }
    fclose(f);
}

// The closed forms of bench_step.py (same inputs on both sides, so the
// losses printed for iteration 0 can be compared):
// image sin(0.23x + 0.11y(c+1) + 0.9c) + 0.5cos(0.04xy); embeddings
// sin(0.7kj + 0.3j + k) + 0.2cos(1.9k + 0.5j), rows L2-normalised; labels
// pal[(x/40 + 3(y/46)) mod 14] with pal = every 12th seen id, 255 where
// (x + 2y) mod 17 < 2.
static void make_inputs(float* img, uint8_t* lbl, float* emb, const uint8_t* seen, int K, int E,
                        int H, int W) {
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                img[((size_t)c * H + y) * W + x] =
                    (float)(sin(0.23 * x + 0.11 * y * (c + 1) + 0.9 * c) + 0.5 * cos(0.04 * x * y));
    for (int k = 0; k < K; k++) {
        double* row = mallocCheck((size_t)E * sizeof(double));
        double s = 0.0;
        for (int j = 0; j < E; j++) {
            row[j] = sin(0.7 * k * j + 0.3 * j + k) + 0.2 * cos(1.9 * k + 0.5 * j);
            s += row[j] * row[j];
        }
        for (int j = 0; j < E; j++) emb[(size_t)k * E + j] = (float)(row[j] / sqrt(s));
        free(row);
    }
    int pal[32], np = 0;
    for (int c = 0, i = 0; c < K && np < 32; c++)
        if (seen[c] && i++ % 12 == 0) pal[np++] = c;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            lbl[(size_t)y * W + x] =
                (x + 2 * y) % 17 < 2 ? 255 : (uint8_t)pal[(x / 40 + 3 * (y / 46)) % np];
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

// Median of v (sorted in place).
static double median_of(double* v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_step [--config FILE] [--set key=value]... [--size N] [--warmup N] "
            "[--iters N] [--print-config]\n");
    exit(2);
}

int main(int argc, char** argv) {
    const char* cfg_path = ZSSEG_SOURCE_DIR "/configs/cocostuff_cagnet.cfg";
    const char* sets[MAX_SETS] = {"model.msc=true"};
    int nsets = 1, size = 321, warmup = 1, iters = 5, print_config = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--print-config")) print_config = 1;
        else if (i + 1 >= argc) usage();
        else if (!strcmp(argv[i], "--config")) cfg_path = argv[++i];
        else if (!strcmp(argv[i], "--set") && nsets < MAX_SETS) sets[nsets++] = argv[++i];
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[++i]);
        else usage();
    }
    if (size < 1 || warmup < 0 || iters < 1) usage();
    Config* cfg = NULL;
    char* err = config_resolve(&cfg, cfg_path, sets, nsets);
    if (err) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    if (print_config) {
        char* text = config_resolved_text(cfg);
        fputs(text, stdout);
        free(text);
        config_free(cfg);
        return 0;
    }
    long rss_start = rss_now_kb();

    // class list and split, relative to the source tree as in the config
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", ZSSEG_SOURCE_DIR, config_get_string(cfg, "data.classes"));
    int K = count_lines(path);
    uint8_t* seen = callocCheck((size_t)K, 1);
    uint8_t* unseen = mallocCheck((size_t)K);
    snprintf(path, sizeof path, "%s/%s", ZSSEG_SOURCE_DIR, config_get_string(cfg, "data.seen"));
    read_ids(seen, K, path);
    for (int c = 0; c < K; c++) unseen[c] = !seen[c];
    int E = config_get_int(cfg, "model.embedding_dim"), H = size, W = size;
    float* img = mallocCheck((size_t)3 * H * W * sizeof(float));
    uint8_t* lbl = mallocCheck((size_t)H * W);
    float* emb = mallocCheck((size_t)K * E * sizeof(float));
    make_inputs(img, lbl, emb, seen, K, E, H, W);

    CagNet m;
    cagnet_init(&m, cfg, K, emb, unseen, 1, H, W);
    param_fill_closed_form(&m.pt, m.params);
    long rss_init = rss_now_kb();
    printf("zsseg: %s, B=1, input 1x3x%dx%d, K=%d, feature %dx%d, %d scale(s), %zu params "
           "(%.1f MiB), OpenMP threads %d, OpenBLAS threads %d\n",
           config_get_string(cfg, "model.backbone"), H, W, K, m.sc[0].Hf, m.sc[0].Wf, m.n_scales,
           m.pt.total, m.pt.total * 4.0 / 1048576.0, omp_get_max_threads(),
           openblas_get_num_threads());

    StepRng rng = {.seed = (uint64_t)config_get_int(cfg, "run.seed"), .sample0 = 0, .training = 1};
    double* secs = mallocCheck((size_t)iters * sizeof(double));
    double* cpus = mallocCheck((size_t)iters * sizeof(double));
    for (int it = 0; it < warmup + iters; it++) {
        if (it == warmup) memset(&tm, 0, sizeof tm);  // the breakdown covers the timed runs only
        rng.iter = it;
        Step1Losses L;
        double c0 = cpu_seconds(), t0 = omp_get_wtime();
        cagnet_step1(&m, img, lbl, NULL, &rng, NULL, &L);
        UpdatePlan plan = cagnet_plan_step1(&m, it);
        cagnet_apply(&m, &plan);
        double t = omp_get_wtime() - t0, c = cpu_seconds() - c0;
        if (it >= warmup) secs[it - warmup] = t, cpus[it - warmup] = c;
        printf("  iter %d%s: %.3f s (CPU %.3f s)  L_D %.6g  L_E %.6g  L_G %.6g\n", it,
               it < warmup ? " (warm-up)" : "", t, c, L.loss_d, L.loss_e, L.loss_g);
        fflush(stdout);
    }
    double total = 0.0;
    for (int i = 0; i < iters; i++) total += secs[i];
    double median = median_of(secs, iters), cpu_median = median_of(cpus, iters);

    // breakdown, per timed iteration
    double gemm = 0.0, im2col = 0.0, parts = 0.0;
    for (int p = 0; p < N_PARTS; p++) gemm += tm.gemm[p], im2col += tm.conv[p] - tm.conv_gemm[p];
    for (int p = 0; p < P_REST; p++) parts += tm.total[p];
    tm.total[P_REST] = total - parts;
    printf("where the time goes (mean s/iter over %d timed runs):\n", iters);
    printf("  %-32s %8s %8s %8s %8s\n", "part", "total", "GEMM", "im2col*", "other");
    for (int p = 0; p < N_PARTS; p++) {
        double t = tm.total[p] / iters, g = tm.gemm[p] / iters;
        double c = (tm.conv[p] - tm.conv_gemm[p]) / iters;
        printf("  %-32s %8.3f %8.3f %8.3f %8.3f\n", PART_NAMES[p], t, g, c, t - g - c);
    }
    printf("  (* im2col: conv2d time outside its GEMMs: im2col, col2im, bias)\n");
    printf("  GEMM (conv/1x1) time: %.3f s/iter (%.1f%%), %ld calls, %.1f GFLOP/iter at %.1f "
           "GFLOP/s\n",
           gemm / iters, 100.0 * gemm / total, tm.gemm_calls / iters, tm.gemm_flop / iters / 1e9,
           tm.gemm_flop / gemm / 1e9);
    printf("  everything else: %.3f s/iter (%.1f%%), of which conv im2col/col2im/bias %.3f s\n",
           (total - gemm) / iters, 100.0 * (total - gemm) / total, im2col / iters);
    long peak = rss_peak_kb();
    printf("zsseg: median %.3f s/iter (min %.3f, median CPU time %.3f s) over %d runs (after %d "
           "warm-up); RSS at start %.0f MiB, after init %.0f MiB, peak (ru_maxrss) %.0f MiB\n",
           median, secs[0], cpu_median, iters, warmup, rss_start / 1024.0, rss_init / 1024.0,
           peak / 1024.0);
    printf("RESULT zsseg median_s=%.4f min_s=%.4f cpu_s=%.4f maxrss_kb=%ld start_kb=%ld "
           "gemm_s=%.4f\n",
           median, secs[0], cpu_median, peak, rss_start, gemm / iters);

    free(secs), free(cpus), free(img), free(lbl), free(emb), free(seen), free(unseen);
    cagnet_free(&m);
    config_free(cfg);
    return 0;
}
