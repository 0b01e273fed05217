// Throughput benchmark of the training data loader (decode + augment + label
// remap, DESIGN §3): tests/bench/loader.sh runs it next to a PyTorch
// DataLoader with the CaGNet reference transforms (bench_loader.py) on the
// same images.
//
//   bench_loader --data DIR [--workers W] [--warmup E] [--epochs E] [--set key=value]...
//   bench_loader --data DIR --breakdown [--set key=value]...
//
// DIR is a dataset written by `zsseg synth` (COCO-stuff layout). The config is
// the schema defaults, i.e. the published transform (warp 513, scale 0.5-1.5,
// crop 368, flip, global batch 8), on one rank, then each --set.
//
// Throughput: the training loop does nothing but call loader_next; after E
// warm-up epochs (page cache, thread start) the next `--epochs` epochs are
// timed, in wall time and in the CPU time of the whole process (decoder
// threads and the caller, which decodes the head batch's unstarted samples
// while it waits). Images per CPU-second is the per-core throughput.
//
// Breakdown: one thread, every sample once untimed (page cache), then once
// timed, part by part.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "config.h"
#include "dataset.h"
#include "image_io.h"
#include "loader.h"
#include "transform.h"

#define MAX_SETS 32

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double wall_s(void) { return clock_s(CLOCK_MONOTONIC); }
static double cpu_s(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

static void run_throughput(const Dataset* ds, const Config* cfg, int warmup, int epochs) {
    Loader* L = loader_open_train(ds, cfg, 0, 1, NULL);
    long bpe = loader_batches_per_epoch(L);
    int B = config_get_int(cfg, "data.batch_size");
    for (long k = 0; k < warmup * bpe; k++) loader_next(L);
    double w0 = wall_s(), c0 = cpu_s();
    long images = 0;
    for (long k = 0; k < epochs * bpe; k++) images += loader_next(L)->n;
    double wall = wall_s() - w0, cpu = cpu_s() - c0;
    loader_close(L);
    int W = config_get_int(cfg, "data.workers");
    printf("zsseg: %d images of %s, batch %d, %ld batches/epoch, data.workers %d, "
           "%d warm-up + %d timed epochs\n",
           ds->n, ds->split, B, bpe, W, warmup, epochs);
    printf("  %ld images in %.3f s wall, %.3f CPU-s: %.1f images/s, %.1f images per CPU-s "
           "(%.2f cores busy)\n",
           images, wall, cpu, images / wall, images / cpu, cpu / wall);
    printf("RESULT zsseg workers=%d images=%ld wall_s=%.4f cpu_s=%.4f\n", W, images, wall, cpu);
}

// Parts of fill_slot (loader.c) on one thread: JPEG file read + TurboJPEG
// decode, PNG read + decode, the label value check, transform_train (warp,
// scale, pad, crop and flip composed into one resampling of the crop),
// label_remap.
enum { P_JPEG, P_PNG, P_CHECK, P_TRANSFORM, P_REMAP, N_PARTS };
static const char* PART_KEYS[N_PARTS] = {"jpeg", "png", "check", "transform", "remap"};

static void run_breakdown(const Dataset* ds, const Config* cfg) {
    TransformConfig tc;
    transform_config_from(&tc, cfg);
    uint64_t seed = (uint64_t)config_get_int(cfg, "run.seed");
    size_t plane = (size_t)tc.crop * tc.crop;
    float* img = mallocCheck(3 * plane * sizeof(float));
    uint8_t* lbl = mallocCheck(plane);
    size_t sc_bytes = 0;
    void* sc = NULL;
    double part[N_PARTS] = {0};
    char err[1024];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < ds->n; i++) {
            uint8_t *rgb, *label;
            int H, W, lH, lW;
            double t[N_PARTS + 1];
            t[0] = wall_s();
            if (image_read_rgb(ds->image_paths[i], &rgb, &H, &W, err, sizeof err))
                ZS_FAIL("regenerate the dataset with zsseg synth", "%s", err);
            t[1] = wall_s();
            if (label_read_png(ds->label_paths[i], &label, &lH, &lW, err, sizeof err))
                ZS_FAIL("regenerate the dataset with zsseg synth", "%s", err);
            t[2] = wall_s();
            if (lH != H || lW != W || dataset_first_bad_value(ds->cs, label, (size_t)H * W) >= 0)
                ZS_FAIL("regenerate the dataset with zsseg synth", "%s: bad label",
                        ds->label_paths[i]);
            t[3] = wall_s();
            if (sc_bytes < transform_scratch_bytes(&tc, W)) {
                free(sc);
                sc_bytes = transform_scratch_bytes(&tc, W);
                sc = mallocCheck(sc_bytes);
            }
            transform_train(&tc, rgb, label, H, W, seed, 0, (uint64_t)i, img, lbl, sc, sc_bytes);
            t[4] = wall_s();
            label_remap(lbl, plane, ds->map);
            t[5] = wall_s();
            if (pass == 1)
                for (int p = 0; p < N_PARTS; p++) part[p] += t[p + 1] - t[p];
            free(rgb);
            free(label);
        }
    double total = 0.0;
    printf("zsseg breakdown, one thread, ms per image (%d images):", ds->n);
    for (int p = 0; p < N_PARTS; p++) {
        printf(" %s %.2f", PART_KEYS[p], 1e3 * part[p] / ds->n);
        total += part[p];
    }
    printf(", total %.2f\nBREAKDOWN zsseg", 1e3 * total / ds->n);
    for (int p = 0; p < N_PARTS; p++) printf(" %s_ms=%.4f", PART_KEYS[p], 1e3 * part[p] / ds->n);
    printf(" total_ms=%.4f\n", 1e3 * total / ds->n);
    free(sc);
    free(img);
    free(lbl);
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_loader --data DIR [--workers W] [--warmup E] [--epochs E] "
            "[--breakdown] [--set key=value]...\n");
    exit(2);
}

int main(int argc, char** argv) {
    const char* data = NULL;
    const char* user_sets[MAX_SETS];
    int nuser = 0, workers = 1, warmup = 1, epochs = 3, breakdown = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--breakdown")) breakdown = 1;
        else if (i + 1 >= argc) usage();
        else if (!strcmp(argv[i], "--data")) data = argv[++i];
        else if (!strcmp(argv[i], "--workers")) workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--epochs")) epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--set") && nuser < MAX_SETS) user_sets[nuser++] = argv[++i];
        else usage();
    }
    if (!data || workers < 0 || warmup < 0 || epochs < 1) usage();

    // The dataset's own lists, every label file of its training folder.
    char buf[5][4200];
    snprintf(buf[0], sizeof buf[0], "data.root=%s", data);
    snprintf(buf[1], sizeof buf[1], "data.classes=%s/classes.tsv", data);
    snprintf(buf[2], sizeof buf[2], "data.seen=%s/seen.txt", data);
    snprintf(buf[3], sizeof buf[3], "data.unseen=%s/unseen.txt", data);
    snprintf(buf[4], sizeof buf[4], "data.workers=%d", workers);
    const char* sets[7 + MAX_SETS] = {"data.dataset=synthetic", "data.train_list=", buf[0],
                                      buf[1], buf[2], buf[3], buf[4]};
    int nsets = 7;
    for (int i = 0; i < nuser; i++) sets[nsets++] = user_sets[i];
    Config* cfg = NULL;
    char* err = config_resolve(&cfg, NULL, sets, nsets);
    if (err) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    DatasetClasses cs;
    Dataset ds;
    dataset_classes_load(&cs, cfg);
    dataset_open(&ds, cfg, &cs, DATASET_TRAIN);
    if (breakdown) run_breakdown(&ds, cfg);
    else run_throughput(&ds, cfg, warmup, epochs);
    dataset_free(&ds);
    dataset_classes_free(&cs);
    config_free(cfg);
    return 0;
}
