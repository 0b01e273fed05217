// The embedded synthetic dataset; see synth.h and datasets/README.md
// ("Synthetic dataset"), which documents every constant below.
#define _GNU_SOURCE  // mkdtemp, nftw
#include "synth.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "dataset.h"
#include "embed.h"
#include "hd_math.h"
#include "image_io.h"
#include "rng.h"

#define PI_F 3.14159265358979f
#define COLOUR_SCALE 120.0f   // grey levels per unit of the squashed coordinate
#define JITTER_STD 6.0f       // per-region colour jitter, grey levels
#define UNSEEN_TRAIN_P 0.25f  // share of training scenes with one unseen region
#define SQUASH 2.0f           // t = tanh(z / SQUASH)
#define MAX_REGIONS 64        // synth.max_regions limit
#define SYNTH_MAX_DIMS 16     // synth.appearance_dims limit
#define N_ATTR 7              // brightness, red-green, yellow-blue, theta, period, amplitude, noise

// Draw numbers on a scene's stream (rng_stream(RNG_SYNTH, split, index)).
#define DRAW_REGIONS 0                            // uniform integer: region count
#define DRAW_UNSEEN 1                             // uniform: training scene gets an unseen region
#define DRAW_REGION(r, f) (8 + 8 * (r) + (f))     // uniform: f = 0 x, 1 y, 2 class, 3 phase
#define DRAW_JITTER(r, c) (1024 + 4 * (r) + (c))  // normal, blocks above the uniforms
#define DRAW_NOISE (1ull << 32)                   // normal: + 3 * pixel + channel

#define DONE_MARKER "SYNTH_DONE"
#define REF_HINT "--from DIR must hold the COCO-stuff reference lists (datasets/cocostuff)"

void synth_options_from(SynthOptions* o, const Config* cfg) {
    o->seed = (uint64_t)config_get_int(cfg, "run.seed");
    o->train_images = config_get_int(cfg, "synth.train_images");
    o->test_images = config_get_int(cfg, "synth.test_images");
    o->image_size = config_get_int(cfg, "synth.image_size");
    o->seen_classes = config_get_int(cfg, "synth.seen_classes");
    o->unseen_classes = config_get_int(cfg, "synth.unseen_classes");
    o->min_regions = config_get_int(cfg, "synth.min_regions");
    o->max_regions = config_get_int(cfg, "synth.max_regions");
    o->appearance_dims = config_get_int(cfg, "synth.appearance_dims");
    o->jpeg_quality = 95;
    o->train_split = config_get_string(cfg, "data.train_split");
    o->test_split = config_get_string(cfg, "data.test_split");
}

static void options_check(const SynthOptions* o) {
    if (o->min_regions > o->max_regions)
        ZS_FAIL("set synth.min_regions <= synth.max_regions",
                "synth: min_regions %d > max_regions %d", o->min_regions, o->max_regions);
    if (o->max_regions > o->seen_classes)
        ZS_FAIL("lower synth.max_regions: the regions of a scene have distinct classes",
                "synth: %d regions need at least as many seen classes (have %d)", o->max_regions,
                o->seen_classes);
    if (o->appearance_dims < 1 || o->appearance_dims > SYNTH_MAX_DIMS)
        ZS_FAIL("set synth.appearance_dims between 1 and 16", "synth: %d appearance dimensions",
                o->appearance_dims);
    if (o->max_regions > MAX_REGIONS)
        ZS_FAIL("set synth.max_regions to at most 64", "synth: %d regions", o->max_regions);
    if (o->jpeg_quality < 1 || o->jpeg_quality > 100)
        ZS_FAIL("give --quality between 1 and 100", "synth: JPEG quality %d", o->jpeg_quality);
}

// snprintf that stops on a truncated path instead of writing elsewhere.
__attribute__((format(printf, 3, 4))) static void path_fmt(char* out, size_t cap, const char* fmt,
                                                           ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        ZS_FAIL("use a shorter dataset path", "path too long: '%s...'", out);
}

// ---------------------------------------------------------------- PCA
// Eigen-decomposition of the symmetric m x m matrix a (destroyed) by cyclic
// Jacobi rotations: eigenvalues in w, eigenvectors in the columns of v.
static void jacobi_eigen(double* a, int m, double* w, double* v) {
    for (int i = 0; i < m * m; i++) v[i] = 0.0;
    for (int i = 0; i < m; i++) v[i * m + i] = 1.0;
    double total = 0.0;
    for (int i = 0; i < m * m; i++) total += a[i] * a[i];
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++) off += a[p * m + q] * a[p * m + q];
        if (off <= 1e-30 * total) break;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++) {
                double apq = a[p * m + q];
                if (apq == 0.0) continue;
                double theta = (a[q * m + q] - a[p * m + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < m; k++) {  // columns p, q
                    double akp = a[k * m + p], akq = a[k * m + q];
                    a[k * m + p] = c * akp - s * akq;
                    a[k * m + q] = s * akp + c * akq;
                }
                for (int k = 0; k < m; k++) {  // rows p, q
                    double apk = a[p * m + k], aqk = a[q * m + k];
                    a[p * m + k] = c * apk - s * aqk;
                    a[q * m + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < m; k++) {
                    double vkp = v[k * m + p], vkq = v[k * m + q];
                    v[k * m + p] = c * vkp - s * vkq;
                    v[k * m + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < m; i++) w[i] = a[i * m + i];
}

void synth_pca_fit(SynthPca* p, const float* emb, const int* use, int n, int D, int k) {
    int m = 0;
    for (int i = 0; i < n; i++) m += use[i] != 0;
    if (k < 1 || k >= m)
        ZS_FAIL("set synth.appearance_dims below synth.seen_classes",
                "synth: %d principal directions need more than %d seen classes", k, m);
    double* x = (double*)mallocCheck((size_t)m * D * sizeof(double));  // (m, D) centred rows
    double* mean = (double*)callocCheck((size_t)D, sizeof(double));
    for (int i = 0, r = 0; i < n; i++)
        if (use[i]) {
            for (int d = 0; d < D; d++) x[(size_t)r * D + d] = emb[(size_t)i * D + d];
            r++;
        }
    for (int r = 0; r < m; r++)
        for (int d = 0; d < D; d++) mean[d] += x[(size_t)r * D + d] / m;
    for (int r = 0; r < m; r++)
        for (int d = 0; d < D; d++) x[(size_t)r * D + d] -= mean[d];
    // m <= 181 rows of 600: the m x m Gram matrix is the small eigenproblem.
    double* g = (double*)mallocCheck((size_t)m * m * sizeof(double));
    for (int a = 0; a < m; a++)
        for (int b = 0; b <= a; b++) {
            double s = 0.0;
            for (int d = 0; d < D; d++) s += x[(size_t)a * D + d] * x[(size_t)b * D + d];
            g[a * m + b] = g[b * m + a] = s;
        }
    double* w = (double*)mallocCheck((size_t)m * sizeof(double));
    double* v = (double*)mallocCheck((size_t)m * m * sizeof(double));
    jacobi_eigen(g, m, w, v);

    p->k = k;
    p->D = D;
    p->mean = (float*)mallocCheck((size_t)D * sizeof(float));
    p->dirs = (float*)mallocCheck((size_t)k * D * sizeof(float));
    p->spread = (float*)mallocCheck((size_t)k * sizeof(float));
    for (int d = 0; d < D; d++) p->mean[d] = (float)mean[d];
    int* taken = (int*)callocCheck((size_t)m, sizeof(int));
    double* dir = (double*)mallocCheck((size_t)D * sizeof(double));
    double lead = 0.0;
    for (int j = 0; j < k; j++) {
        int best = -1;  // largest remaining eigenvalue, lowest index on ties
        for (int i = 0; i < m; i++)
            if (!taken[i] && (best < 0 || w[i] > w[best])) best = i;
        taken[best] = 1;
        if (j == 0) lead = w[best];
        if (!(w[best] > 1e-10 * lead))
            ZS_FAIL("lower synth.appearance_dims or choose more seen classes",
                    "synth: the seen embeddings span fewer than %d directions", k);
        // direction = X^T a / sqrt(lambda): unit length for a unit eigenvector a
        int amax = 0;
        for (int d = 0; d < D; d++) {
            double s = 0.0;
            for (int r = 0; r < m; r++) s += x[(size_t)r * D + d] * v[r * m + best];
            dir[d] = s / sqrt(w[best]);
            if (fabs(dir[d]) > fabs(dir[amax])) amax = d;
        }
        double sign = dir[amax] < 0 ? -1.0 : 1.0;
        for (int d = 0; d < D; d++) p->dirs[(size_t)j * D + d] = (float)(sign * dir[d]);
        p->spread[j] = (float)sqrt(w[best] / m);
    }
    free(dir);
    free(taken);
    free(v);
    free(w);
    free(g);
    free(mean);
    free(x);
}

void synth_pca_free(SynthPca* p) {
    free(p->mean);
    free(p->dirs);
    free(p->spread);
    p->mean = p->dirs = p->spread = NULL;
}

void synth_pca_coords(const SynthPca* p, const float* e, float* u) {
    for (int j = 0; j < p->k; j++) {
        double s = 0.0;
        for (int d = 0; d < p->D; d++)
            s += ((double)e[d] - p->mean[d]) * p->dirs[(size_t)j * p->D + d];
        u[j] = (float)(s / p->spread[j]);
    }
}

// ---------------------------------------------------------------- appearance
void synth_appearance(const float* u, int k, int image_size, SynthAppearance* a) {
    float t[N_ATTR];
    for (int at = 0; at < N_ATTR; at++) {
        // attribute at is driven by the coordinates j = at (mod 7); attributes
        // beyond k reuse coordinate at mod k
        double z = 0.0;
        int cnt = 0;
        if (at < k) {
            for (int j = at; j < k; j += N_ATTR, cnt++) z += u[j];
        } else {
            z = u[at % k];
            cnt = 1;
        }
        t[at] = tanhf((float)(z / sqrt((double)cnt)) / SQUASH);
    }
    // brightness (1,1,1)/√3, red-green (1,-1,0)/√2, yellow-blue (1,1,-2)/√6
    static const float basis[3][3] = {{0.57735027f, 0.57735027f, 0.57735027f},
                                      {0.70710678f, -0.70710678f, 0.0f},
                                      {0.40824829f, 0.40824829f, -0.81649658f}};
    for (int c = 0; c < 3; c++)
        a->colour[c] =
            128.0f + COLOUR_SCALE * (t[0] * basis[0][c] + t[1] * basis[1][c] + t[2] * basis[2][c]);
    float size_scale = image_size > 64 ? (float)image_size / 64.0f : 1.0f;
    a->theta = 0.5f * PI_F * (1.0f + t[3]);
    a->period = size_scale * 8.0f * exp2f(t[4]);
    a->amplitude = 30.0f + 20.0f * t[5];
    a->noise = 10.0f + 6.0f * t[6];
}

// ---------------------------------------------------------------- classes
// Partial Fisher-Yates: the first `want` entries of ids become a seeded sample.
static void sample_ids(int* ids, int n, int want, uint64_t seed, uint64_t stream,
                       const char* what) {
    if (want > n)
        ZS_FAIL("lower synth.seen_classes / synth.unseen_classes",
                "synth: %d %s classes asked for, the reference lists have %d", want, what, n);
    for (int i = 0; i < want; i++) {
        int j = i + (int)rng_uint_below(seed, stream, (uint64_t)i, (uint32_t)(n - i));
        int t = ids[i];
        ids[i] = ids[j];
        ids[j] = t;
    }
}

static int cmp_int(const void* a, const void* b) { return *(const int*)a - *(const int*)b; }

// The reference class list and split of ref_dir, read by the dataset code.
static void reference_classes(DatasetClasses* cs, const char* ref_dir) {
    static const char* const keys[][2] = {
        {"data.classes", "classes.tsv"}, {"data.seen", "seen.txt"}, {"data.unseen", "unseen.txt"}};
    Config* ref = config_new();
    for (int i = 0; i < 3; i++) {
        char set[4200];
        path_fmt(set, sizeof set, "%s=%s/%s", keys[i][0], ref_dir, keys[i][1]);
        char* err = config_apply_set(ref, set);
        if (err) ZS_FAIL(REF_HINT, "synth: %s", err);
    }
    dataset_classes_load(cs, ref);
    config_free(ref);
}

void synth_classes_appearance(SynthClasses* sc, const SynthOptions* o) {
    // principal directions and spread of the seen rows only: unseen classes
    // are placed by the same map, with no say in it
    SynthPca p;
    int* seen = (int*)mallocCheck((size_t)sc->n * sizeof(int));
    for (int i = 0; i < sc->n; i++) seen[i] = !sc->unseen[i];
    synth_pca_fit(&p, sc->emb, seen, sc->n, sc->D, o->appearance_dims);
    float u[SYNTH_MAX_DIMS];
    for (int i = 0; i < sc->n; i++) {
        synth_pca_coords(&p, sc->emb + (size_t)i * sc->D, u);
        synth_appearance(u, p.k, o->image_size, &sc->app[i]);
    }
    synth_pca_free(&p);
    free(seen);
}

void synth_classes_build(SynthClasses* sc, const SynthOptions* o, const char* ref_dir,
                         const char* const* vec_paths, int nvec) {
    options_check(o);
    DatasetClasses cs;
    reference_classes(&cs, ref_dir);
    int* pool[2];  // indices of the reference seen / unseen classes
    int npool[2] = {0, 0}, want[2] = {o->seen_classes, o->unseen_classes};
    for (int u = 0; u < 2; u++) {
        pool[u] = (int*)mallocCheck((size_t)cs.K * sizeof(int));
        for (int k = 0; k < cs.K; k++)
            if (u ? cs.unseen[k] : cs.seen[k]) pool[u][npool[u]++] = k;
        sample_ids(pool[u], npool[u], want[u], o->seed, rng_stream(RNG_SYNTH, SYNTH_CLASS_DRAW, u),
                   u ? "unseen" : "seen");
    }
    memset(sc, 0, sizeof *sc);
    sc->n = want[0] + want[1];
    int* chosen = (int*)mallocCheck((size_t)sc->n * sizeof(int));  // reference indices
    memcpy(chosen, pool[0], (size_t)want[0] * sizeof(int));
    memcpy(chosen + want[0], pool[1], (size_t)want[1] * sizeof(int));
    qsort(chosen, (size_t)sc->n, sizeof(int), cmp_int);  // classes.tsv keeps increasing ids
    sc->ids = (int*)mallocCheck((size_t)sc->n * sizeof(int));
    sc->unseen = (int*)mallocCheck((size_t)sc->n * sizeof(int));
    const char** names = (const char**)mallocCheck((size_t)sc->n * sizeof(char*));
    for (int i = 0; i < sc->n; i++) {
        sc->ids[i] = cs.ids[chosen[i]];
        sc->unseen[i] = cs.unseen[chosen[i]];
        names[i] = cs.names[chosen[i]];
    }
    // the embedding the trainer builds from data.word_vectors for these names
    ClassEmbedding e;
    embedding_build(&e, names, sc->n, vec_paths, nvec, 1, NULL);
    sc->D = e.D;
    sc->emb = e.vec;
    sc->names = e.names;
    free(names);
    free(chosen);
    free(pool[0]);
    free(pool[1]);
    dataset_classes_free(&cs);
    sc->app = (SynthAppearance*)mallocCheck((size_t)sc->n * sizeof(SynthAppearance));
    synth_classes_appearance(sc, o);
}

void synth_classes_free(SynthClasses* sc) {
    for (int i = 0; i < sc->n; i++) free(sc->names[i]);
    free(sc->names);
    free(sc->ids);
    free(sc->unseen);
    free(sc->emb);
    free(sc->app);
    memset(sc, 0, sizeof *sc);
}

// ---------------------------------------------------------------- scenes
void synth_render(const SynthClasses* sc, const SynthOptions* o, int split, int index, uint8_t* rgb,
                  uint8_t* label) {
    const int P = o->image_size;
    const uint64_t seed = o->seed;
    const uint64_t S = rng_stream(RNG_SYNTH, (uint64_t)split, (uint64_t)index);
    int R = o->min_regions + (int)rng_uint_below(seed, S, DRAW_REGIONS,
                                                 (uint32_t)(o->max_regions - o->min_regions + 1));
    int unseen_slot = split == SYNTH_TEST || hd_rng_uniform(seed, S, DRAW_UNSEEN) < UNSEEN_TRAIN_P;

    float sx[MAX_REGIONS], sy[MAX_REGIONS], phase[MAX_REGIONS], base[MAX_REGIONS][3];
    float kx[MAX_REGIONS], ky[MAX_REGIONS];  // stripe wave vector 2π (cos θ, sin θ) / period
    int cls[MAX_REGIONS];
    int cand[256];
    for (int r = 0; r < R; r++) {
        // region 0 of an unseen-slot scene: an unseen class; other regions:
        // seen classes (training) or any class (test); all distinct
        int nc = 0;
        for (int i = 0; i < sc->n; i++) {
            int ok =
                (r == 0 && unseen_slot) ? sc->unseen[i] : (split == SYNTH_TEST || !sc->unseen[i]);
            for (int q = 0; q < r && ok; q++) ok = cls[q] != i;
            if (ok) cand[nc++] = i;
        }
        cls[r] = cand[rng_uint_below(seed, S, DRAW_REGION(r, 2), (uint32_t)nc)];
        sx[r] = (float)P * hd_rng_uniform(seed, S, DRAW_REGION(r, 0));
        sy[r] = (float)P * hd_rng_uniform(seed, S, DRAW_REGION(r, 1));
        phase[r] = 2.0f * PI_F * hd_rng_uniform(seed, S, DRAW_REGION(r, 3));
        const SynthAppearance* a = &sc->app[cls[r]];
        kx[r] = 2.0f * PI_F * cosf(a->theta) / a->period;
        ky[r] = 2.0f * PI_F * sinf(a->theta) / a->period;
        for (int c = 0; c < 3; c++)
            base[r][c] = a->colour[c] + JITTER_STD * hd_rng_normal(seed, S, DRAW_JITTER(r, c));
    }
    for (int y = 0; y < P; y++)
        for (int x = 0; x < P; x++) {
            float px = (float)x + 0.5f, py = (float)y + 0.5f;
            int best = 0;  // nearest seed, lowest region on ties
            float bd = INFINITY;
            for (int r = 0; r < R; r++) {
                float d = (px - sx[r]) * (px - sx[r]) + (py - sy[r]) * (py - sy[r]);
                if (d < bd) bd = d, best = r;
            }
            const SynthAppearance* a = &sc->app[cls[best]];
            float stripe = a->amplitude * sinf(kx[best] * px + ky[best] * py + phase[best]);
            size_t pix = (size_t)y * P + x;
            label[pix] = (uint8_t)sc->ids[cls[best]];
            for (int c = 0; c < 3; c++) {
                float v = base[best][c] + stripe +
                          a->noise * hd_rng_normal(seed, S, DRAW_NOISE + 3 * pix + c);
                v = floorf(v + 0.5f);
                rgb[3 * pix + c] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
            }
        }
}

// ---------------------------------------------------------------- files
// 0 absent, 1 empty directory, 2 non-empty directory, 3 not a directory.
static int path_state(const char* path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return 3;
    DIR* d = opendir(path);
    if (!d)
        ZS_FAIL("check the directory's permissions", "cannot read '%s': %s", path, strerror(errno));
    int any = 0;
    for (struct dirent* e; !any && (e = readdir(d));)
        any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return any ? 2 : 1;
}

static void make_parent_dirs(const char* path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char* slash = strrchr(buf, '/');
    if (slash && slash != buf) {
        *slash = '\0';
        dir_create(buf);
    }
}

// A text file built in memory, then written atomically.
typedef struct {
    char* buf;
    size_t len;
    FILE* fp;
} TextOut;

static FILE* text_begin(TextOut* t) {
    t->fp = open_memstream(&t->buf, &t->len);
    if (!t->fp) ZS_FAIL("free some memory", "open_memstream: %s", strerror(errno));
    return t->fp;
}

static void text_commit(TextOut* t, const char* dir, const char* name) {
    char path[4096];
    fclose(t->fp);
    path_fmt(path, sizeof path, "%s/%s", dir, name);
    file_write_atomic(path, t->buf, t->len);
    free(t->buf);
}

static void write_lists(const char* dir, const SynthClasses* sc, const SynthOptions* o) {
    TextOut t;
    FILE* fp = text_begin(&t);
    for (int i = 0; i < sc->n; i++) fprintf(fp, "%d\t%s\n", sc->ids[i], sc->names[i]);
    text_commit(&t, dir, "classes.tsv");
    for (int u = 0; u < 2; u++) {
        fp = text_begin(&t);
        for (int i = 0; i < sc->n; i++)
            if (sc->unseen[i] == u) fprintf(fp, "%d\n", sc->ids[i]);
        text_commit(&t, dir, u ? "unseen.txt" : "seen.txt");
    }
    for (int s = 0; s < 2; s++) {
        fp = text_begin(&t);
        for (int i = 0; i < (s ? o->test_images : o->train_images); i++) fprintf(fp, "%012d\n", i);
        text_commit(&t, dir, s ? "test_ids.txt" : "train_ids.txt");
    }
}

static void write_embedding(const char* path, const SynthClasses* sc, const char* const* vec_paths,
                            int nvec) {
    char sources[8192] = "";
    for (int f = 0; f < nvec; f++) {
        size_t len = strlen(sources);
        snprintf(sources + len, sizeof sources - len, "%s%s", f ? ";" : "", vec_paths[f]);
    }
    ClassEmbedding e = {.C = sc->n, .D = sc->D, .vec = sc->emb, .names = sc->names};
    make_parent_dirs(path);
    embedding_write_h5(path, &e, sources, 1);
}

static void write_images(const char* dir, const SynthClasses* sc, const SynthOptions* o) {
    const char* split_dir[2] = {o->train_split, o->test_split};
    char path[4096];
    for (int s = 0; s < 2; s++) {
        path_fmt(path, sizeof path, "%s/images/%s", dir, split_dir[s]);
        dir_create(path);
        path_fmt(path, sizeof path, "%s/annotations/%s", dir, split_dir[s]);
        dir_create(path);
    }
    const long total = (long)o->train_images + o->test_images;
    const size_t P = (size_t)o->image_size;
#pragma omp parallel
    {
        uint8_t* rgb = (uint8_t*)mallocCheck(P * P * 3);
        uint8_t* label = (uint8_t*)mallocCheck(P * P);
        char file[4096];
#pragma omp for schedule(dynamic, 4)
        for (long i = 0; i < total; i++) {
            int split = i < o->train_images ? SYNTH_TRAIN : SYNTH_TEST;
            int index = (int)(split == SYNTH_TRAIN ? i : i - o->train_images);
            synth_render(sc, o, split, index, rgb, label);
            path_fmt(file, sizeof file, "%s/images/%s/%012d.jpg", dir, split_dir[split], index);
            image_write_jpeg(file, rgb, (int)P, (int)P, o->jpeg_quality);
            path_fmt(file, sizeof file, "%s/annotations/%s/%012d.png", dir, split_dir[split],
                     index);
            label_write_png(file, label, (int)P, (int)P);
        }
        free(rgb);
        free(label);
    }
}

static void write_marker(const char* dir, const SynthOptions* o) {
    TextOut t;
    FILE* fp = text_begin(&t);
    fprintf(fp,
            "complete dataset written by zsseg synth\nseed %llu\ntrain_images %d\ntest_images %d\n"
            "image_size %d\nseen_classes %d\nunseen_classes %d\nregions %d-%d\n"
            "appearance_dims %d\njpeg_quality %d\n",
            (unsigned long long)o->seed, o->train_images, o->test_images, o->image_size,
            o->seen_classes, o->unseen_classes, o->min_regions, o->max_regions, o->appearance_dims,
            o->jpeg_quality);
    text_commit(&t, dir, DONE_MARKER);
}

static int remove_entry(const char* path, const struct stat* st, int flag, struct FTW* ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void fsync_parent(const char* path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char* slash = strrchr(buf, '/');
    if (slash == buf)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(buf, ".");
    int fd = open(buf, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

// Swap the finished tree tmp into root; an old dataset (state 2) is moved
// aside first and deleted only once the new one is in place.
static void install_tree(const char* tmp, const char* root, int state) {
    char old[4096] = "";
    if (state == 2) {
        path_fmt(old, sizeof old, "%s.old-XXXXXX", root);
        if (!mkdtemp(old) || rename(root, old) != 0)
            ZS_FAIL("check the permissions of the parent directory",
                    "synth: cannot move the old dataset '%s' aside: %s", root, strerror(errno));
    }
    if (rename(tmp, root) != 0)
        ZS_FAIL("check the permissions of the parent directory",
                "synth: cannot rename '%s' to '%s': %s", tmp, root, strerror(errno));
    fsync_parent(root);
    if (old[0] && nftw(old, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        log_warn("synth: could not delete the old dataset, moved to '%s': %s", old,
                 strerror(errno));
}

void synth_generate(const char* root_arg, const char* embedding_path, const SynthOptions* o,
                    const char* ref_dir, const char* const* vec_paths, int nvec, int force) {
    options_check(o);
    char root[4096];
    if (strlen(root_arg) >= sizeof root - 32)
        ZS_FAIL("use a shorter dataset path", "path too long: '%s'", root_arg);
    strcpy(root, root_arg);
    for (size_t len = strlen(root); len > 1 && root[len - 1] == '/';) root[--len] = '\0';

    int state = path_state(root);
    char path[4096];
    path_fmt(path, sizeof path, "%s/%s", root, DONE_MARKER);
    if (state == 3)
        ZS_FAIL("choose another output directory", "synth: '%s' exists and is not a directory",
                root);
    if (state == 2 && !force)
        ZS_FAIL("pass --force to replace it, or choose another output directory (-o DIR)",
                "synth: '%s' exists and is not empty", root);
    if (state == 2 && access(path, F_OK) != 0)
        ZS_FAIL("delete or move it yourself if it is no longer needed, or choose another -o DIR",
                "synth: '%s' holds no %s marker, so it is not a complete dataset of zsseg synth: "
                "refusing to replace it, even with --force",
                root, DONE_MARKER);
    // the embedding goes into the new tree unless data.embedding points outside root
    const char* inside = "embedding.h5";
    const char* outside = NULL;
    if (embedding_path && embedding_path[0]) {
        size_t rl = strlen(root);
        if (strncmp(embedding_path, root, rl) == 0 && embedding_path[rl] == '/')
            inside = embedding_path + rl + 1;
        else
            outside = embedding_path;
    }
    if (outside && access(outside, F_OK) == 0 && !force)
        ZS_FAIL("pass --force to replace it, or point data.embedding elsewhere",
                "synth: the embedding file '%s' exists", outside);

    double t0 = omp_get_wtime();
    SynthClasses sc;
    synth_classes_build(&sc, o, ref_dir, vec_paths, nvec);
    make_parent_dirs(root);
    char tmp[4096];
    path_fmt(tmp, sizeof tmp, "%s.tmp-XXXXXX", root);
    if (!mkdtemp(tmp))
        ZS_FAIL("check the permissions of the parent directory", "synth: cannot create '%s': %s",
                tmp, strerror(errno));
    chmod(tmp, 0755);
    write_lists(tmp, &sc, o);
    path_fmt(path, sizeof path, "%s/%s", tmp, inside);
    write_embedding(path, &sc, vec_paths, nvec);
    write_images(tmp, &sc, o);
    if (outside) write_embedding(outside, &sc, vec_paths, nvec);
    write_marker(tmp, o);
    install_tree(tmp, root, state);
    double dt = omp_get_wtime() - t0;
    int images = o->train_images + o->test_images;
    log_info(
        "synth: %d seen + %d unseen classes, %d train + %d test scenes of %dx%d in %s "
        "(%.2f s, %.0f images/s)",
        o->seen_classes, o->unseen_classes, o->train_images, o->test_images, o->image_size,
        o->image_size, root, dt, images / dt);
    synth_classes_free(&sc);
}

// ---------------------------------------------------------------- CLI
// An integer option in [lo, hi]; -1 with a message when malformed.
static long option_int(const char* text, const char* name, long lo, long hi) {
    char* end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "zsseg synth: --%s %s: expected an integer in [%ld, %ld]\n", name, text, lo,
                hi);
        return -1;
    }
    return v;
}

int cmd_synth(const CliArgs* args, const Config* cfg) {
    SynthOptions o;
    synth_options_from(&o, cfg);
    static const struct {
        const char* name;
        long lo, hi;
    } ints[] = {{"seed", 0, 2147483647},
                {"images", 1, 2147483647},
                {"size", 16, 4096},
                {"quality", 1, 100}};
    long val[4];
    for (int i = 0; i < 4; i++) {
        const char* text = cli_option(args, ints[i].name);
        val[i] = text ? option_int(text, ints[i].name, ints[i].lo, ints[i].hi) : -2;
        if (val[i] == -1) return CLI_EXIT_USAGE;
    }
    if (val[0] >= 0) o.seed = (uint64_t)val[0];
    if (val[1] >= 0) o.train_images = (int)val[1];
    if (val[2] >= 0) o.image_size = (int)val[2];
    if (val[3] >= 0) o.jpeg_quality = (int)val[3];
    const char* out = cli_option(args, "out");
    const char* root = out ? out : config_get_string(cfg, "data.root");
    const char* from = cli_option(args, "from");
    int nvec;
    const char* const* vecs = config_get_string_list(cfg, "data.word_vectors", &nvec);
    // -o DIR puts everything under DIR; otherwise data.embedding is honoured
    synth_generate(root, out ? NULL : config_get_string(cfg, "data.embedding"), &o,
                   from ? from : "datasets/cocostuff", vecs, nvec,
                   cli_option(args, "force") != NULL);

    // the trainer finds the class lists through data.*: say when they point elsewhere
    static const char* const lists[][2] = {
        {"data.classes", "classes.tsv"}, {"data.seen", "seen.txt"}, {"data.unseen", "unseen.txt"}};
    for (int i = 0; i < 3; i++) {
        char want[4096];
        path_fmt(want, sizeof want, "%s/%s", root, lists[i][1]);
        if (strcmp(config_get_string(cfg, lists[i][0]), want) != 0)
            log_warn("synth: %s is '%s'; to train on this dataset set %s = \"%s\"", lists[i][0],
                     config_get_string(cfg, lists[i][0]), lists[i][0], want);
    }
    return 0;
}
