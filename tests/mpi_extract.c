// `zsseg extract`'s extract_run under MPI (run with mpirun -np R, R = 1, 2, 3)
// on the dataset fixture (training list in scrambled order, unseen bands
// masked) with a tiny CaGNet saved as weights and loaded back:
//   - rank 0 alone (MPI_COMM_SELF) writes the reference file; its rows equal a
//     serial recomputation (batch 1 forward, labels downsampled here, rows in
//     (image, pixel) order): N, labels and image indices exactly, features
//     and latent codes within 1e-6;
//   - the R-rank file equals the reference bit for bit, attributes included;
//   - --max-per-class: per-class counts min(N_c, cap) and exactly the rows of
//     the documented rule recomputed here (smallest keys per class), the same
//     for R ranks as for one;
//   - the test split: N equals the labelled pixels counted here;
//   - no PATH.tmp is left behind.
#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "dataset.h"
#include "dataset_fixture.h"
#include "dist.h"
#include "extract.h"
#include "infer.h"
#include "loader.h"
#include "run.h"
#include "mpi_testing.h"
#include "testing.h"
#include "tiny_cagnet.h"
#include "weights_h5.h"

#define N_TRAIN 7
#define N_TEST 5
#define WARP 40

// The expected rows of a split, in (image, pixel) order.
typedef struct {
    long n, D;
    float* feat;     // (n, D)
    float* lat;      // (n, D)
    uint8_t* lab;    // (n)
    int32_t* img;    // (n)
    int32_t* pix;    // (n) pixel h*Wf + w
} RowSet;

// One file's datasets and the attributes compared across rank counts.
typedef struct {
    RowSet r;
    int64_t counts[FX_K];
    int D, K;
    int64_t cap;
    char split[16], ckpt[256];
} FileRows;

// The documented key: murmur3's finalizer of (image * Hf*Wf + pixel) XOR finalizer(seed).
static uint64_t fmix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static int nearest(int dst, int in, int out) {  // resize_nearest_labels' documented rule
    int i = (int)floorf((float)dst * ((float)in / (float)out));
    return i < in - 1 ? i : in - 1;
}

static void rows_alloc(RowSet* r, long n, long D) {
    r->n = n, r->D = D;
    r->feat = t_falloc((size_t)(n ? n : 1) * D);
    r->lat = t_falloc((size_t)(n ? n : 1) * D);
    r->lab = malloc((size_t)(n ? n : 1));
    r->img = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    r->pix = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
}

static void rows_free(RowSet* r) {
    free(r->feat), free(r->lat), free(r->lab), free(r->img), free(r->pix);
}

// Serial recomputation: one image per forward, rows of every labelled pixel;
// counts[c] = labelled pixels of class c.
static void serial_rows(const CagNet* m, const Config* cfg, const Dataset* ds, RowSet* out,
                        int64_t* counts, int* grid) {  // grid: (2) Hf, Wf
    CagInfer inf;
    cag_infer_init(&inf, m, 1, WARP, WARP);
    const int Hf = inf.Hf, Wf = inf.Wf, HWf = Hf * Wf, D = m->D;
    grid[0] = Hf, grid[1] = Wf;
    rows_alloc(out, (long)ds->n * HWf, D);
    memset(counts, 0, FX_K * sizeof(int64_t));
    Loader* L = loader_open_test(ds, cfg, 0, 1, 1, NULL);
    const LoaderBatch* b;
    long n = 0;
    while ((b = loader_next(L))) {
        cag_infer_forward(&inf, m, b->images, 1);
        const float* x = inf.sc[0].cm.x;
        const float* mu = inf.sc[0].cm.mu;
        for (int h = 0; h < Hf; h++)
            for (int w = 0; w < Wf; w++) {
                uint8_t c = b->labels[nearest(h, WARP, Hf) * WARP + nearest(w, WARP, Wf)];
                if (c == 255) continue;
                int p = h * Wf + w;
                for (int k = 0; k < D; k++) {
                    out->feat[n * D + k] = x[k * HWf + p];
                    out->lat[n * D + k] = mu[k * HWf + p];
                }
                out->lab[n] = c, out->img[n] = (int32_t)b->position[0], out->pix[n] = p;
                counts[c]++;
                n++;
            }
    }
    out->n = n;
    loader_close(L);
    cag_infer_free(&inf);
}

static int cmp_u64(const void* a, const void* b) {
    uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
    return x < y ? -1 : x > y;
}

// The rows of `all` the --max-per-class rule keeps, in their order.
static void rule_rows(const RowSet* all, long cap, uint64_t seed, int HWf, RowSet* out) {
    uint64_t* keys = malloc((size_t)(all->n ? all->n : 1) * sizeof(uint64_t));
    uint64_t* cls = malloc((size_t)(all->n ? all->n : 1) * sizeof(uint64_t));
    uint64_t thr[FX_K];
    for (long i = 0; i < all->n; i++)
        keys[i] = fmix(((uint64_t)all->img[i] * HWf + (uint64_t)all->pix[i]) ^ fmix(seed));
    for (int c = 0; c < FX_K; c++) {
        long nc = 0;
        for (long i = 0; i < all->n; i++)
            if (all->lab[i] == c) cls[nc++] = keys[i];
        qsort(cls, (size_t)nc, sizeof(uint64_t), cmp_u64);
        thr[c] = nc > cap ? cls[cap - 1] : UINT64_MAX;
    }
    rows_alloc(out, all->n, all->D);
    long n = 0;
    for (long i = 0; i < all->n; i++) {
        if (keys[i] > thr[all->lab[i]]) continue;
        memcpy(out->feat + n * all->D, all->feat + i * all->D, all->D * sizeof(float));
        memcpy(out->lat + n * all->D, all->lat + i * all->D, all->D * sizeof(float));
        out->lab[n] = all->lab[i], out->img[n] = all->img[i], out->pix[n] = all->pix[i];
        n++;
    }
    out->n = n;
    free(keys);
    free(cls);
}

static void read_ds(hid_t f, const char* name, hid_t type, void* buf) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    CHECK(d >= 0 && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "read %s", name);
    H5Dclose(d);
}

static void read_attr(hid_t f, const char* name, hid_t type, void* buf) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    CHECK(a >= 0 && H5Aread(a, type, buf) >= 0, "read attribute %s", name);
    H5Aclose(a);
}

static void read_file(const char* path, FileRows* fr) {
    memset(fr, 0, sizeof *fr);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "FAIL: cannot open %s\n", path);
        exit(1);
    }
    read_attr(f, "D", H5T_NATIVE_INT, &fr->D);
    read_attr(f, "K", H5T_NATIVE_INT, &fr->K);
    read_attr(f, "counts", H5T_NATIVE_INT64, fr->counts);
    read_attr(f, "max_per_class", H5T_NATIVE_INT64, &fr->cap);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, sizeof fr->split - 1);
    read_attr(f, "split", str, fr->split);
    H5Tset_size(str, sizeof fr->ckpt - 1);
    read_attr(f, "checkpoint", str, fr->ckpt);
    H5Tclose(str);
    hid_t d = H5Dopen2(f, "/labels", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    long n = (long)H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp), H5Dclose(d);
    rows_alloc(&fr->r, n, fr->D);
    read_ds(f, "/features", H5T_NATIVE_FLOAT, fr->r.feat);
    read_ds(f, "/latent", H5T_NATIVE_FLOAT, fr->r.lat);
    read_ds(f, "/labels", H5T_NATIVE_UINT8, fr->r.lab);
    read_ds(f, "/image_index", H5T_NATIVE_INT32, fr->r.img);
    H5Fclose(f);
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "%s was left behind", tmp);
}

// want within atol (0: bitwise), labels and image indices exactly.
static void check_rows(const char* what, const RowSet* got, const RowSet* want, double atol) {
    CHECK(got->n == want->n, "%s: %ld rows, want %ld", what, got->n, want->n);
    if (got->n != want->n) return;
    char name[128];
    snprintf(name, sizeof name, "%s features", what);
    t_check_array(name, got->feat, want->feat, (size_t)got->n * got->D, atol, 0);
    snprintf(name, sizeof name, "%s latent", what);
    t_check_array(name, got->lat, want->lat, (size_t)got->n * got->D, atol, 0);
    long bad = 0;
    for (long i = 0; i < got->n; i++) bad += got->lab[i] != want->lab[i] || got->img[i] != want->img[i];
    CHECK(bad == 0, "%s: %ld rows with another label or image index", what, bad);
}

static void check_same_file(const char* what, const FileRows* a, const FileRows* ref) {
    check_rows(what, &a->r, &ref->r, 0.0);
    CHECK(memcmp(a->counts, ref->counts, sizeof a->counts) == 0 && a->D == ref->D &&
              a->K == ref->K && a->cap == ref->cap && strcmp(a->split, ref->split) == 0 &&
              strcmp(a->ckpt, ref->ckpt) == 0,
          "%s: attributes differ from the one-rank file", what);
}

int main(int argc, char** argv) {
    Dist d;
    dist_init(&d, &argc, &argv);
    char dir[64] = "/tmp/zsseg-mpi-extract-XXXXXX";
    uint8_t has_unseen[N_TRAIN] = {0};
    has_unseen[2] = has_unseen[5] = 1;
    if (d.rank == 0) fx_make(dir, N_TRAIN, has_unseen, N_TEST);
    mpiCheck(MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, d.comm));

    Config* cfg = fx_config(dir, 1);
    tiny_model_keys(cfg, 0);
    char set[64];
    snprintf(set, sizeof set, "data.warp_size=%d", WARP);
    fx_set(cfg, set);
    fx_set(cfg, "data.std=[57.4, 57.1, 58.4]");  // inputs near 1: x does not saturate
    fx_set(cfg, "eval.batch_size=2");
    fx_set(cfg, "data.workers=1");
    char* err = config_validate(cfg);
    if (err) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    DatasetClasses cs;
    dataset_classes_load(&cs, cfg);
    Dataset tr, te;
    dataset_open(&tr, cfg, &cs, DATASET_TRAIN);
    dataset_open(&te, cfg, &cs, DATASET_TEST);

    // the tiny model, saved by rank 0 and loaded by every rank into a fresh one
    CagNet ref, m;
    tiny_cagnet(&ref, cfg, cs.K, cs.unseen);
    char ckpt[256], f1[256], fw[256], f1c[256], fwc[256], ftest[256];
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", dir);
    snprintf(f1, sizeof f1, "%s/one.h5", dir);
    snprintf(fw, sizeof fw, "%s/world.h5", dir);
    snprintf(f1c, sizeof f1c, "%s/one_cap.h5", dir);
    snprintf(fwc, sizeof fwc, "%s/world_cap.h5", dir);
    snprintf(ftest, sizeof ftest, "%s/test.h5", dir);
    if (d.rank == 0) weights_save_h5(ckpt, &ref.pt, ref.params);
    mpiCheck(MPI_Barrier(d.comm));
    float* emb = t_falloc((size_t)cs.K * 4);
    t_fill_normal(emb, (size_t)cs.K * 4, 5, 1.0f);
    cagnet_init(&m, cfg, cs.K, emb, cs.unseen, 1, 16, 16);
    free(emb);
    run_load_params(&m, ckpt);

    // rank 0: the serial recomputation, a cap between the smallest and the
    // largest class, and the one-rank reference files
    RowSet all = {0};
    int64_t counts[FX_K];
    long cap = 0;
    int grid[2] = {0, 0};
    if (d.rank == 0) {
        serial_rows(&ref, cfg, &tr, &all, counts, grid);
        int64_t lo = INT64_MAX, hi = 0;
        for (int c = 0; c < FX_K; c++)
            if (counts[c] > 0) lo = counts[c] < lo ? counts[c] : lo, hi = counts[c] > hi ? counts[c] : hi;
        cap = (long)(lo + hi) / 2;
        CHECK(lo < cap && cap < hi, "class counts %ld..%ld leave no cap between", (long)lo,
              (long)hi);
        Dist self = d;
        self.rank = 0, self.world = 1, self.comm = MPI_COMM_SELF;
        extract_run(&m, cfg, &tr, &self, ckpt, 0, f1);
        extract_run(&m, cfg, &tr, &self, ckpt, cap, f1c);
    }
    mpiCheck(MPI_Bcast(&cap, 1, MPI_LONG, 0, d.comm));
    extract_run(&m, cfg, &tr, &d, ckpt, 0, fw);
    extract_run(&m, cfg, &tr, &d, ckpt, cap, fwc);
    extract_run(&m, cfg, &te, &d, ckpt, 0, ftest);

    if (d.rank == 0) {
        FileRows one, world, one_cap, world_cap, test;
        read_file(f1, &one);
        read_file(fw, &world);
        read_file(f1c, &one_cap);
        read_file(fwc, &world_cap);
        read_file(ftest, &test);
        long masked = 0;  // unseen bands are ignored in the training labels
        for (long i = 0; i < all.n; i++) masked += cs.unseen[all.lab[i]];
        CHECK(masked == 0 && all.n > 50, "serial: %ld rows, %ld of unseen classes", all.n, masked);
        long inner = 0;  // features strictly inside (0, 1): the comparison has teeth
        for (long i = 0; i < all.n * all.D; i++) inner += all.feat[i] > 1e-3f && all.feat[i] < 0.999f;
        CHECK(inner > all.n * all.D / 4, "only %ld of %ld features are not saturated", inner,
              all.n * all.D);
        printf("training split: %ld rows of D = %d over %d images, cap %ld; %ld of %ld features "
               "in (0, 1)\n",
               all.n, one.D, tr.n, cap, inner, all.n * all.D);

        check_rows("one rank vs serial", &one.r, &all, 1e-6);
        CHECK(memcmp(one.counts, counts, sizeof counts) == 0, "counts attribute differs");
        CHECK(one.D == m.D && one.K == FX_K && one.cap == 0 && strcmp(one.split, "train") == 0 &&
                  strcmp(one.ckpt, ckpt) == 0,
              "attributes: D %d K %d cap %ld split '%s' checkpoint '%s'", one.D, one.K,
              (long)one.cap, one.split, one.ckpt);
        check_same_file("R ranks vs one", &world, &one);

        RowSet kept;
        rule_rows(&all, cap, 11, grid[0] * grid[1], &kept);  // run.seed 11 of fx_config
        long capped = 0;
        for (int c = 0; c < FX_K; c++) {
            int64_t want = counts[c] < cap ? counts[c] : cap;
            CHECK(one_cap.counts[c] == want, "class %d: %ld rows kept, want min(%ld, %ld)", c,
                  (long)one_cap.counts[c], (long)counts[c], cap);
            capped += counts[c] > cap;
        }
        CHECK(capped > 0, "no class was capped");
        check_rows("capped one rank vs rule", &one_cap.r, &kept, 1e-6);
        check_same_file("capped R ranks vs one", &world_cap, &one_cap);

        long want_test = 0;
        Loader* L = loader_open_test(&te, cfg, 0, 1, 1, NULL);
        const LoaderBatch* b;
        const int Hf = grid[0], Wf = grid[1];
        while ((b = loader_next(L)))
            for (int h = 0; h < Hf; h++)
                for (int w = 0; w < Wf; w++)
                    want_test += b->labels[nearest(h, WARP, Hf) * WARP + nearest(w, WARP, Wf)] != 255;
        loader_close(L);
        CHECK(test.r.n == want_test && strcmp(test.split, "test") == 0,
              "test split: %ld rows (split '%s'), want %ld", test.r.n, test.split, want_test);
        rows_free(&kept);
        rows_free(&one.r), rows_free(&world.r), rows_free(&one_cap.r), rows_free(&world_cap.r);
        rows_free(&test.r);
        rows_free(&all);
    }

    cagnet_free(&m);
    cagnet_free(&ref);
    dataset_free(&tr);
    dataset_free(&te);
    dataset_classes_free(&cs);
    config_free(cfg);
    t_mpi_sum_failures(d.comm);
    mpiCheck(MPI_Barrier(d.comm));
    if (d.rank == 0) fx_remove(dir);
    int rank = d.rank, world = d.world;
    dist_finalize(&d);
    return t_mpi_report(rank, world, "mpi_extract");
}
