// Pixel features of a split into one HDF5 file, written by all ranks; see extract.h.
#include "extract.h"

#include <errno.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "infer.h"
#include "loader.h"
#include "resize.h"
#include "run.h"
#include "weights_h5.h"

#define EXTRACT_CHUNK_BYTES (1 << 20)
#define EXTRACT_DEFLATE 4  // most of level 9's gain at a fraction of its time

// murmur3's 64-bit finalizer: a bijection of the 64-bit words.
static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

// This rank's shard at the feature grid, and which of its pixels get a row.
typedef struct {
    int K, Hf, Wf;
    int n;               // images of the shard
    uint8_t* lbl;        // (n, Hf, Wf) training/test indices, 255 = no row
    int* index;          // (n) position of each image in the split list
    uint64_t seed_mix;   // mix64(run.seed)
    uint64_t* thr;       // (K) keep keys <= thr[c]; NULL: keep every labelled pixel
} Shard;

static uint64_t pixel_key(const Shard* s, int j, int p) {
    return mix64(((uint64_t)s->index[j] * (uint64_t)(s->Hf * s->Wf) + (uint64_t)p) ^ s->seed_mix);
}

static int pixel_kept(const Shard* s, int j, int p) {
    uint8_t c = s->lbl[(size_t)j * s->Hf * s->Wf + p];
    return c != DATASET_IGNORE && (!s->thr || pixel_key(s, j, p) <= s->thr[c]);
}

// Pass 1: the labels of this rank's shard, through the same loader as pass 2
// (its images are decoded and dropped).
static void shard_load(Shard* s, const Dataset* ds, const Config* cfg, const Dist* d, int B) {
    const size_t HWf = (size_t)s->Hf * s->Wf;
    const int cap = ds->n / d->world + 1;  // the largest shard
    s->lbl = mallocCheck((size_t)cap * HWf);
    s->index = mallocCheck((size_t)cap * sizeof(int));
    s->n = 0;
    Loader* L = loader_open_test(ds, cfg, d->rank, d->world, B, NULL);
    const LoaderBatch* b;
    while ((b = loader_next(L))) {
        resize_nearest_labels(s->lbl + (size_t)s->n * HWf, b->labels, b->n, b->H, b->W, s->Hf,
                              s->Wf);
        for (int j = 0; j < b->n; j++) s->index[s->n + j] = b->index[j];
        s->n += b->n;
    }
    loader_close(L);
}

// thr[c] = the cap-th smallest key of class c over all ranks, UINT64_MAX when
// the class has at most cap pixels. Radix selection from the top byte: need[c]
// is the rank of the wanted key among the keys that share thr[c]'s bytes so far.
static void select_thresholds(Shard* s, const Dist* d, long cap, const int64_t* total) {
    const int K = s->K, HWf = s->Hf * s->Wf;
    int64_t* need = mallocCheck((size_t)K * sizeof(int64_t));
    int64_t* hist = mallocCheck((size_t)K * 256 * sizeof(int64_t));
    s->thr = callocCheck((size_t)K, sizeof(uint64_t));
    for (int c = 0; c < K; c++) need[c] = total[c] > cap ? cap : 0;
    for (int shift = 56; shift >= 0; shift -= 8) {
        memset(hist, 0, (size_t)K * 256 * sizeof(int64_t));
        for (int j = 0; j < s->n; j++)
            for (int p = 0; p < HWf; p++) {
                uint8_t c = s->lbl[(size_t)j * HWf + p];
                if (c == DATASET_IGNORE || !need[c]) continue;
                uint64_t key = pixel_key(s, j, p);
                if (shift < 56 && key >> (shift + 8) != s->thr[c] >> (shift + 8)) continue;
                hist[c * 256 + ((key >> shift) & 255)]++;
            }
        mpiCheck(MPI_Allreduce(MPI_IN_PLACE, hist, K * 256, MPI_INT64_T, MPI_SUM, d->comm));
        for (int c = 0; c < K; c++) {
            if (!need[c]) continue;
            const int64_t* h = hist + c * 256;
            int v = 0;
            while (h[v] < need[c]) need[c] -= h[v++];
            s->thr[c] |= (uint64_t)v << shift;
        }
    }
    for (int c = 0; c < K; c++)
        if (total[c] <= cap) s->thr[c] = UINT64_MAX;
    free(need);
    free(hist);
}

// ---------------------------------------------------------------- HDF5
// (N) or (N, D) dataset, chunked (about EXTRACT_CHUNK_BYTES), shuffled, gzip.
static hid_t dataset_new(hid_t file, const char* name, hid_t type, hsize_t N, hsize_t D) {
    hsize_t dims[2] = {N, D};
    hsize_t row_bytes = H5Tget_size(type) * (D ? D : 1);
    hsize_t chunk[2] = {EXTRACT_CHUNK_BYTES / row_bytes, D};
    if (chunk[0] < 1) chunk[0] = 1;
    if (chunk[0] > N) chunk[0] = N;
    return h5_dataset_create(file, name, type, D ? 2 : 1, dims, chunk, EXTRACT_DEFLATE);
}

typedef struct {
    hid_t file, dxpl;
    hid_t features, latent, labels, image_index;
} Store;

static void store_open(Store* st, const char* tmp, const Dist* d, hsize_t N, hsize_t D) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    h5Check(fapl);
    h5Check(H5Pset_fapl_mpio(fapl, d->comm, MPI_INFO_NULL));
    // the 1.8 format stores attributes over 64 KiB (a long config) densely
    h5Check(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST));
    st->file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (st->file < 0)
        ZS_FAIL("check that the directory exists and is writable on every node",
                "extract: cannot create %s", tmp);
    h5Check(H5Pclose(fapl));
    st->dxpl = H5Pcreate(H5P_DATASET_XFER);
    h5Check(st->dxpl);
    h5Check(H5Pset_dxpl_mpio(st->dxpl, H5FD_MPIO_COLLECTIVE));
    st->features = dataset_new(st->file, "/features", H5T_IEEE_F32LE, N, D);
    st->latent = dataset_new(st->file, "/latent", H5T_IEEE_F32LE, N, D);
    st->labels = dataset_new(st->file, "/labels", H5T_STD_U8LE, N, 0);
    st->image_index = dataset_new(st->file, "/image_index", H5T_STD_I32LE, N, 0);
}

static void store_close(Store* st) {
    h5Check(H5Dclose(st->features));
    h5Check(H5Dclose(st->latent));
    h5Check(H5Dclose(st->labels));
    h5Check(H5Dclose(st->image_index));
    h5Check(H5Pclose(st->dxpl));
    h5Check(H5Fclose(st->file));
}

// ---------------------------------------------------------------- pass 2
// One batch's rows (at most B * Hf * Wf).
typedef struct {
    float* feat;      // (rows, D)
    float* lat;       // (rows, D)
    uint8_t* lab;     // (rows)
    int32_t* img;     // (rows)
} Rows;

// Rows of shard images j0 .. j0+n-1 from the forward's x and mu; returns the count.
static long rows_gather(Rows* r, const Shard* s, int j0, int n, int D,
                        const float* x,   // (n, D, Hf, Wf)
                        const float* mu)  // (n, D, Hf, Wf)
{
    const int HWf = s->Hf * s->Wf;
    long k = 0;
    for (int j = 0; j < n; j++)
        for (int p = 0; p < HWf; p++) {
            if (!pixel_kept(s, j0 + j, p)) continue;
            const size_t at = (size_t)j * D * HWf + p;
            for (int c = 0; c < D; c++) {
                r->feat[k * D + c] = x[at + (size_t)c * HWf];
                r->lat[k * D + c] = mu[at + (size_t)c * HWf];
            }
            r->lab[k] = s->lbl[(size_t)(j0 + j) * HWf + p];
            r->img[k] = s->index[j0 + j];
            k++;
        }
    return k;
}

static void root_attributes(hid_t file, const Config* cfg, const Dataset* ds, const char* ckpt,
                            int D, int K, long max_per_class, const int64_t* counts) {
    char* text = config_resolved_text(cfg);
    h5_attr_write_string(file, "config", text);
    free(text);
    h5_attr_write_string(file, "checkpoint", ckpt ? ckpt : "");
    h5_attr_write_string(file, "split", ds->training ? "train" : "test");
    h5_attr_write(file, "D", H5T_STD_I32LE, H5T_NATIVE_INT, 0, &D);
    h5_attr_write(file, "K", H5T_STD_I32LE, H5T_NATIVE_INT, 0, &K);
    h5_attr_write(file, "counts", H5T_STD_I64LE, H5T_NATIVE_INT64, (hsize_t)K, counts);
    int64_t cap = max_per_class, seed = config_get_int(cfg, "run.seed");
    h5_attr_write(file, "max_per_class", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &cap);
    h5_attr_write(file, "seed", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &seed);
}

int extract_run(const CagNet* m, const Config* cfg, const Dataset* ds, Dist* d, const char* ckpt,
                long max_per_class, const char* path) {
    const int B = config_get_int(cfg, "eval.batch_size");
    const int warp = config_get_int(cfg, "data.warp_size");
    const int K = m->K, D = m->D;
    double t0 = MPI_Wtime();
    CagInfer inf;
    cag_infer_init(&inf, m, B, warp, warp);
    Shard s = {.K = K, .Hf = inf.Hf, .Wf = inf.Wf,
               .seed_mix = mix64((uint64_t)config_get_int(cfg, "run.seed"))};
    const int HWf = s.Hf * s.Wf;
    shard_load(&s, ds, cfg, d, B);

    // rows per class, global; then the subsample and the per-class result
    int64_t* counts = callocCheck((size_t)K, sizeof(int64_t));
    for (size_t i = 0; i < (size_t)s.n * HWf; i++)
        if (s.lbl[i] != DATASET_IGNORE) counts[s.lbl[i]]++;
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, counts, K, MPI_INT64_T, MPI_SUM, d->comm));
    if (max_per_class > 0) {
        select_thresholds(&s, d, max_per_class, counts);
        for (int c = 0; c < K; c++)
            if (counts[c] > max_per_class) counts[c] = max_per_class;
    }
    int64_t mine = 0, off = 0, N = 0;
    for (int j = 0; j < s.n; j++)
        for (int p = 0; p < HWf; p++) mine += pixel_kept(&s, j, p);
    mpiCheck(MPI_Exscan(&mine, &off, 1, MPI_INT64_T, MPI_SUM, d->comm));
    if (d->rank == 0) off = 0;  // MPI_Exscan leaves rank 0's result undefined
    mpiCheck(MPI_Allreduce(&mine, &N, 1, MPI_INT64_T, MPI_SUM, d->comm));
    if (N == 0)
        ZS_FAIL("check data.ignore_label and the class lists: every label pixel is ignored",
                "extract: the %s split '%s' (%d images) has no labelled pixel at the %dx%d "
                "feature grid",
                ds->training ? "training" : "test", ds->split, ds->n, s.Hf, s.Wf);

    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    Store st;
    store_open(&st, tmp, d, (hsize_t)N, (hsize_t)D);
    root_attributes(st.file, cfg, ds, ckpt, D, K, max_per_class, counts);

    // pass 2: every rank joins every round's collective writes, with 0 rows
    // once its shard is done
    Loader* L = loader_open_test(ds, cfg, d->rank, d->world, B, NULL);
    long rounds = loader_batches_per_epoch(L);
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_LONG, MPI_MAX, d->comm));
    const size_t cap_rows = (size_t)B * HWf;
    Rows r = {mallocCheck(cap_rows * D * sizeof(float)), mallocCheck(cap_rows * D * sizeof(float)),
              mallocCheck(cap_rows), mallocCheck(cap_rows * sizeof(int32_t))};
    int j0 = 0;
    for (long k = 0; k < rounds; k++) {
        const LoaderBatch* b = j0 < s.n ? loader_next(L) : NULL;
        long n = 0;
        if (b) {
            cag_infer_forward(&inf, m, b->images, b->n);
            n = rows_gather(&r, &s, j0, b->n, D, inf.sc[0].cm.x, inf.sc[0].cm.mu);
            j0 += b->n;
        }
        h5_rows_write(st.features, st.dxpl, H5T_NATIVE_FLOAT, (hsize_t)off, (hsize_t)n, r.feat);
        h5_rows_write(st.latent, st.dxpl, H5T_NATIVE_FLOAT, (hsize_t)off, (hsize_t)n, r.lat);
        h5_rows_write(st.labels, st.dxpl, H5T_NATIVE_UINT8, (hsize_t)off, (hsize_t)n, r.lab);
        h5_rows_write(st.image_index, st.dxpl, H5T_NATIVE_INT32, (hsize_t)off, (hsize_t)n, r.img);
        off += n;
    }
    loader_close(L);
    store_close(&st);
    if (d->rank == 0) file_commit(tmp, path);
    mpiCheck(MPI_Barrier(d->comm));  // the file is in place when any rank returns

    if (d->rank == 0) {
        struct stat sb;
        double mb = stat(path, &sb) == 0 ? sb.st_size / 1e6 : 0.0;
        int present = 0;
        for (int c = 0; c < K; c++) present += counts[c] > 0;
        double raw_mb = N * (2.0 * D * sizeof(float) + 1 + sizeof(int32_t)) / 1e6;
        log_info("extract: %ld rows (D = %d, %d of %d classes%s) from %d %s images in %.1f s",
                 (long)N, D, present, K, max_per_class > 0 ? ", subsampled" : "", ds->n,
                 ds->training ? "training" : "test", MPI_Wtime() - t0);
        log_info("extract: wrote %s (%.2f MB; %.2f MB uncompressed)", path, mb, raw_mb);
    }
    free(r.feat), free(r.lat), free(r.lab), free(r.img);
    free(counts);
    free(s.lbl), free(s.index), free(s.thr);
    cag_infer_free(&inf);
    return 0;
}

// ---------------------------------------------------------------- CLI
int cmd_extract(const CliArgs* args, const Config* cfg0) {
    const char* split = cli_option(args, "split");
    if (!split) split = "train";
    if (strcmp(split, "train") != 0 && strcmp(split, "test") != 0) {
        fprintf(stderr, "zsseg extract: --split %s: expected train or test\n", split);
        return CLI_EXIT_USAGE;
    }
    long cap = 0;
    const char* cap_text = cli_option(args, "max-per-class");
    if (cap_text) {
        char* end;
        errno = 0;
        cap = strtol(cap_text, &end, 10);
        if (errno || end == cap_text || *end || cap < 1) {
            fprintf(stderr, "zsseg extract: --max-per-class %s: expected a positive integer\n",
                    cap_text);
            return CLI_EXIT_USAGE;
        }
    }
    RunContext r;
    run_open(&r, cfg0, NULL, 0);
    char ckpt_buf[4096], out_buf[4096];
    const char* ckpt = cli_option(args, "ckpt");
    if (!ckpt) {
        run_default_ckpt(&r, ckpt_buf, sizeof ckpt_buf);
        ckpt = ckpt_buf;
    }
    const char* out = cli_option(args, "out");
    if (!out) {
        snprintf(out_buf, sizeof out_buf, "%s/features_%s.h5", r.out_dir, split);
        out = out_buf;
        if (r.d.rank == 0) dir_create(r.out_dir);
    }
    CagNet m;
    int warp = config_get_int(r.cfg, "data.warp_size");
    run_model_init(&r, &m, 1, warp, warp);
    run_load_params(&m, ckpt);
    log_info("parameters from %s", ckpt);
    Dataset ds;
    dataset_open(&ds, r.cfg, &r.cs, strcmp(split, "train") == 0 ? DATASET_TRAIN : DATASET_TEST);
    extract_run(&m, r.cfg, &ds, &r.d, ckpt, cap, out);
    dataset_free(&ds);
    cagnet_free(&m);
    run_close(&r);
    return 0;
}
