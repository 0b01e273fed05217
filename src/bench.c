// `zsseg bench`; see bench.h.
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "device_backend.h"
#include "flops.h"
#include "rng.h"
#include "run.h"

// Defaults, NVIDIA H100 SXM5 datasheet: TF32 tensor cores 989 TFLOPS is
// quoted with 2:4 sparsity, dense is half of 989.4; HBM3 3.35 TB/s.
#define H100_TF32_DENSE_TFLOPS 494.7
#define H100_HBM_GBS 3350.0
// NCCL allreduce bus bandwidth on 8 H100 SXM over NVLink4: about 370 GB/s
// with the ring algorithm, about 480 GB/s with NVLink SHARP (NCCL maintainer
// in NVIDIA/nccl-tests#212); 360 stays a little under the ring figure.
#define H100_NVLINK_BUSBW_GBS 360.0
// What cuDNN convolutions commonly reach of the tensor-core peak: an
// assumption, not a measurement.
#define ASSUMED_EFFICIENCY 0.45
// The model is built at this input side when nothing is measured: the counts
// need only its layers, not full-size activations.
#define PAPER_ONLY_SIDE 64

typedef struct {
    int iters, gpus;  // gpus 0: the MPI world size
    double peak_tflops, efficiency, hbm_gbs, busbw_gbs;
} BenchOptions;

// ---------------------------------------------------------------- options

// A numeric option in [lo, hi] (default def when absent); -1 with a message when malformed.
static int option_number(const CliArgs* args, const char* name, double def, double lo, double hi,
                         double* out) {
    const char* text = cli_option(args, name);
    *out = def;
    if (!text) return 0;
    char* end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "zsseg bench: --%s %s: expected a number in [%g, %g]\n", name, text, lo,
                hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_options(const CliArgs* args, BenchOptions* o) {
    double iters, gpus;
    if (option_number(args, "iters", 3, 0, 1e6, &iters) ||
        option_number(args, "gpus", 0, 1, 1e5, &gpus) ||
        option_number(args, "peak-tflops", H100_TF32_DENSE_TFLOPS, 1e-6, 1e6, &o->peak_tflops) ||
        option_number(args, "efficiency", ASSUMED_EFFICIENCY, 1e-3, 1, &o->efficiency) ||
        option_number(args, "hbm-gbs", H100_HBM_GBS, 1e-6, 1e7, &o->hbm_gbs) ||
        option_number(args, "busbw-gbs", H100_NVLINK_BUSBW_GBS, 1e-6, 1e7, &o->busbw_gbs))
        return -1;
    if (iters != floor(iters) || gpus != floor(gpus)) {
        fprintf(stderr, "zsseg bench: --iters and --gpus take whole numbers\n");
        return -1;
    }
    o->iters = (int)iters;
    o->gpus = (int)gpus;
    return 0;
}

// Per-rank batch of the global data.batch_size over n ranks.
static int batch_per_rank(const Config* cfg, int n, const char* what) {
    int batch = config_get_int(cfg, "data.batch_size");
    if (batch % n)
        ZS_FAIL("use a divisor of data.batch_size, or --set data.batch_size=...",
                "data.batch_size %d (the global batch) does not split over %d %s", batch, n, what);
    return batch / n;
}

// ---------------------------------------------------------------- on paper

// Allreduce of bytes over n GPUs at NCCL bus bandwidth busbw (nccl-tests:
// busbw = algbw * 2(n-1)/n, time = bytes / algbw); 0 on one GPU.
static double allreduce_seconds(double bytes, int n, double busbw_gbs) {
    if (n < 2) return 0.0;
    return bytes / (busbw_gbs * 1e9 * n / (2.0 * (n - 1)));
}

// Step time = the counted FLOPs at a fraction of the peak, then the
// element-wise bytes at the memory bandwidth (separate kernels, no overlap),
// at 100 % and at the assumed --efficiency.
static void print_paper(const CagNet* m, const Config* cfg, const BenchOptions* o, int B,
                        double grad_bytes) {
    int crop = config_get_int(cfg, "data.crop_size");
    StepFlops f;
    flops_cagnet(&f, m, NULL, B, crop, crop);
    printf("== on paper, per GPU: data.batch_size %d over %d GPU(s) = %d x 3 x %d x %d, %d input "
           "scale(s)\n",
           config_get_int(cfg, "data.batch_size"), o->gpus, B, crop, crop, m->n_scales);
    flops_print(stdout, &f);
    double t_mem = f.backbone_bytes / (o->hbm_gbs * 1e9);
    double t_ar = allreduce_seconds(grad_bytes, o->gpus, o->busbw_gbs);
    printf("grad  step1 sums %.0f bytes (%.3f MB) of gradients across the GPUs\n", grad_bytes,
           grad_bytes / 1e6);
    if (o->gpus > 1)
        printf("allreduce on %d GPUs at busbw %g GB/s (algbw %.6g GB/s) = %.6g ms\n", o->gpus,
               o->busbw_gbs, o->busbw_gbs * o->gpus / (2.0 * (o->gpus - 1)), t_ar * 1e3);
    double effs[2] = {1.0, o->efficiency};
    for (int i = 0; i < (o->efficiency < 1.0 ? 2 : 1); i++) {
        double rate = o->peak_tflops * 1e12 * effs[i];
        double t_gemm = flops_step1(&f) / rate, t = t_gemm + t_mem;
        printf("time  step1 at %g%% of %g TFLOP/s: GEMM %.6g ms + elementwise %.6g ms at %g GB/s "
               "= %.6g ms\n",
               100 * effs[i], o->peak_tflops, t_gemm * 1e3, t_mem * 1e3, o->hbm_gbs, t * 1e3);
        printf("time  step2 at %g%% of %g TFLOP/s: GEMM %.6g ms\n", 100 * effs[i], o->peak_tflops,
               f.step2 / rate * 1e3);
        if (o->gpus > 1)
            printf("scaling on %d GPUs, step1 at %g%% of peak: no overlap %.4f, "
                   "full overlap %.4f\n",
                   o->gpus, 100 * effs[i], t / (t + t_ar), t / fmax(t, t_ar));
    }
}

// ---------------------------------------------------------------- measured

// One timed iteration of a step kind: the step and its optimizer update on
// the run's device. On the CPU the gradient allreduce is left out (timed on
// its own below); on a GPU the NCCL sums overlap the backward, as in training.
typedef void (*BenchStep)(void* ctx, long iter);

typedef struct {
    DeviceRun* dv;
    RunContext* r;
    CagNet* m;
    const float* img;    // (B, 3, H, W)
    const uint8_t* lbl;  // (B, H, W)
    uint64_t seed;
    int sample0;  // global index of this rank's first sample
} BenchSteps;

static void bench_update(BenchSteps* c, const UpdatePlan* p) {
    if (c->dv->g)
        device_run_update(c->dv, c->m, p, &c->r->d, 1);
    else
        cagnet_apply(c->m, p);
}

static void bench_step1(void* ctx, long iter) {
    BenchSteps* c = ctx;
    StepRng rng = {c->seed, iter, c->sample0, 1};
    Step1Losses l;
    UpdatePlan p = cagnet_plan_step1(c->m, iter);
    device_run_step1(c->dv, c->m, &p, c->img, c->lbl, NULL, &rng, NULL, &l);
    bench_update(c, &p);
}

static void bench_step2(void* ctx, long iter) {
    BenchSteps* c = ctx;
    StepRng rng = {c->seed, iter, c->sample0, 1};
    UpdatePlan p = cagnet_plan_step2(c->m, iter);
    device_run_step2(c->dv, c->m, &p, &rng);
    bench_update(c, &p);
}

// Seconds per iteration over iters iterations after one warm-up, barrier to
// barrier (the slowest rank's).
static double time_steps(BenchStep fn, void* ctx, int iters, const Dist* d) {
    fn(ctx, 0);
    mpiCheck(MPI_Barrier(d->comm));
    double t0 = MPI_Wtime();
    for (int i = 1; i <= iters; i++) fn(ctx, i);
    mpiCheck(MPI_Barrier(d->comm));
    return (MPI_Wtime() - t0) / iters;
}

// Seconds of one sum of the step1 ranges, as training does it, averaged.
static double time_allreduce(RunContext* r, CagNet* m, const size_t* off, const size_t* cnt,
                             int nr, int iters) {
    size_t bucket = (size_t)(config_get_float(r->cfg, "dist.bucket_mb") * 1048576.0 / 4.0);
    memset(m->grads, 0, m->pt.total * sizeof(float));  // sums of zeros stay finite
    dist_allreduce_ranges(&r->d, m->grads, off, cnt, nr, bucket ? bucket : 1, 1.0f);
    mpiCheck(MPI_Barrier(r->d.comm));
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++)
        dist_allreduce_ranges(&r->d, m->grads, off, cnt, nr, bucket ? bucket : 1, 1.0f);
    mpiCheck(MPI_Barrier(r->d.comm));
    return (MPI_Wtime() - t0) / iters;
}

static void measure(RunContext* r, DeviceRun* dv, CagNet* m, const BenchOptions* o,
                    const size_t* off, const size_t* cnt, int nr, double grad_bytes) {
    int B = m->B, H = m->H, W = m->W, K = r->cs.K;
    uint64_t seed = (uint64_t)config_get_int(r->cfg, "run.seed");
    // random normalised images and seen-class labels (raw streams 1, 2: throwaway inputs)
    size_t npix = (size_t)B * H * W;
    float* img = mallocCheck(3 * npix * sizeof(float));
    float* u = mallocCheck(npix * sizeof(float));
    uint8_t* lbl = mallocCheck(npix);
    int* seen = mallocCheck((size_t)K * sizeof(int));
    int n_seen = 0;
    for (int k = 0; k < K; k++)
        if (r->cs.seen[k]) seen[n_seen++] = k;
    if (!n_seen)
        ZS_FAIL("list the seen classes in data.seen", "no seen class to label pixels with");
    rng_fill_normal(img, 3 * npix, seed, 1, (uint64_t)r->d.rank * 3 * npix);
    rng_fill_uniform(u, npix, seed, 2, (uint64_t)r->d.rank * npix);
    for (size_t i = 0; i < npix; i++) lbl[i] = (uint8_t)seen[(int)(u[i] * n_seen) % n_seen];

    device_run_start(dv, r->cfg, &r->d, m);
    BenchSteps c = {dv, r, m, img, lbl, seed, r->d.rank * B};
    double t1 = time_steps(bench_step1, &c, o->iters, &r->d);
    double t2 = time_steps(bench_step2, &c, o->iters, &r->d);
    int n = r->d.world;
    double t_ar = n > 1 ? time_allreduce(r, m, off, cnt, nr, o->iters) : 0.0;
    free(img), free(u), free(lbl), free(seen);
    if (r->d.rank != 0) return;
    StepFlops f;
    flops_cagnet(&f, m, NULL, B, H, W);
    printf("== measured on this machine: %s, %d rank(s) x %d OpenMP thread(s), per rank %d x 3 "
           "x %d x %d (random inputs), %d iteration(s) after 1 warm-up\n",
           dv->g ? dv->desc : "CPU", n, omp_get_max_threads(), B, H, W, o->iters);
    printf("measured step1 %.6g s/iter = %.4g GFLOP/s of the counted %.4g GFLOP\n", t1,
           flops_step1(&f) / t1 / 1e9, flops_step1(&f) / 1e9);
    printf("measured step2 %.6g s/iter = %.4g GFLOP/s of the counted %.4g GFLOP\n", t2,
           f.step2 / t2 / 1e9, f.step2 / 1e9);
    if (n > 1) {
        double algbw = grad_bytes / t_ar / 1e9;
        printf("measured allreduce on %d ranks: %.6g ms for %.3f MB: algbw %.4g GB/s = busbw %.4g "
               "GB/s; the formula at busbw %g GB/s: %.6g ms\n",
               n, t_ar * 1e3, grad_bytes / 1e6, algbw, algbw * 2.0 * (n - 1) / n, o->busbw_gbs,
               allreduce_seconds(grad_bytes, n, o->busbw_gbs) * 1e3);
        if (dv->g)  // the steps above already include the NCCL sums, overlapped
            printf("(the allreduce above is MPI over host buffers; on the GPU the steps' "
                   "measured times include their NCCL sums)\n");
        else
            printf("measured scaling, step1 then allreduce (no overlap): %.4f\n",
                   t1 / (t1 + t_ar));
    }
}

// ---------------------------------------------------------------- command

int cmd_bench(const CliArgs* args, const Config* cfg0) {
    BenchOptions o;
    if (parse_options(args, &o)) return CLI_EXIT_USAGE;
    RunContext r;
    run_open(&r, cfg0, NULL, 0);
    if (!o.gpus) o.gpus = r.d.world;
    int B_gpu = batch_per_rank(r.cfg, o.gpus, "GPUs (--gpus)");
    int crop = config_get_int(r.cfg, "data.crop_size");
    DeviceRun dv;
    device_run_select(&dv, r.cfg, &r.d);
    CagNet m;
    if (o.iters) {
        run_model_init(&r, &m, batch_per_rank(r.cfg, r.d.world, "ranks"), crop, crop);
    } else {
        int side = crop < PAPER_ONLY_SIDE ? crop : PAPER_ONLY_SIDE;
        run_model_init(&r, &m, 1, side, side);
    }
    size_t off[3], cnt[3];
    UpdatePlan plan = cagnet_plan_step1(&m, 0);
    int nr = cagnet_update_ranges(&m, &plan, off, cnt);
    double grad_bytes = 0.0;
    for (int i = 0; i < nr; i++) grad_bytes += 4.0 * (double)cnt[i];
    if (r.d.rank == 0) print_paper(&m, r.cfg, &o, B_gpu, grad_bytes);
    if (o.iters) measure(&r, &dv, &m, &o, off, cnt, nr, grad_bytes);
    device_run_close(&dv);
    cagnet_free(&m);
    run_close(&r);
    return fflush(stdout) == 0 ? 0 : 1;
}
