// Synthetic dataset: PCA against a brute-force power iteration, the
// appearance formulas by hand, files and their consistency with the
// COCO-stuff reference lists, byte-identical reruns (any thread count),
// scene rules (unseen classes in every test scene and some training scenes),
// smoothness of appearance in the embedding measured on the decoded images,
// and the overwrite rules.
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "embed.h"
#include "image_io.h"
#include "synth.h"
#include "testing.h"

#define REF ZSSEG_SOURCE_DIR "/datasets/cocostuff"
static const char* const VECS[2] = {REF "/fasttext.vec", REF "/word2vec.vec"};

static SynthOptions small_options(uint64_t seed) {
    SynthOptions o = {.seed = seed,
                      .train_images = 12,
                      .test_images = 6,
                      .image_size = 32,
                      .seen_classes = 6,
                      .unseen_classes = 2,
                      .min_regions = 2,
                      .max_regions = 4,
                      .appearance_dims = 3,
                      .jpeg_quality = 95,
                      .train_split = "train2017",
                      .test_split = "val2017"};
    return o;
}

static double pearson(const double* a, const double* b, int n) {
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < n; i++) ma += a[i] / n, mb += b[i] / n;
    for (int i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return sab / sqrt(saa * sbb);
}

static int file_exists(const char* path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int files_equal(const char* a, const char* b) {
    size_t na, nb;
    char* x = file_read_all(a, &na);
    char* y = file_read_all(b, &nb);
    int eq = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

// ---------------------------------------------------------------- PCA
// Top eigenvectors of the seen rows' covariance by power iteration with
// deflation on the full D x D matrix, in double.
static void test_pca(void) {
    SynthOptions o = small_options(3);
    o.seen_classes = 20;
    o.unseen_classes = 5;
    SynthClasses sc;
    synth_classes_build(&sc, &o, REF, VECS, 2);
    const int n = sc.n, D = sc.D, k = 3;
    CHECK(D == 600, "embedding size %d", D);
    int* seen = (int*)malloc(n * sizeof(int));
    int m = 0;
    for (int i = 0; i < n; i++) m += seen[i] = !sc.unseen[i];
    SynthPca p;
    synth_pca_fit(&p, sc.emb, seen, n, D, k);

    double* x = (double*)calloc((size_t)m * D, sizeof(double));  // centred seen rows
    for (int i = 0, r = 0; i < n; i++)
        if (seen[i]) {
            for (int d = 0; d < D; d++) x[(size_t)r * D + d] = sc.emb[(size_t)i * D + d];
            r++;
        }
    for (int d = 0; d < D; d++) {
        double mu = 0.0;
        for (int r = 0; r < m; r++) mu += x[(size_t)r * D + d] / m;
        for (int r = 0; r < m; r++) x[(size_t)r * D + d] -= mu;
    }
    // power iteration on cov = X^T X / m, deflated by the directions found so far
    double vs[3][600], lambdas[3], xv[64];
    double* w = (double*)malloc(D * sizeof(double));
    for (int j = 0; j < k; j++) {
        double* v = vs[j];
        for (int d = 0; d < D; d++) v[d] = 1.0 + 0.01 * d;
        double lambda = 0.0;
        for (int it = 0; it < 5000; it++) {
            for (int r = 0; r < m; r++) {
                xv[r] = 0.0;
                for (int d = 0; d < D; d++) xv[r] += x[(size_t)r * D + d] * v[d];
            }
            for (int d = 0; d < D; d++) {
                w[d] = 0.0;
                for (int r = 0; r < m; r++) w[d] += x[(size_t)r * D + d] * xv[r] / m;
            }
            for (int q = 0; q < j; q++) {
                double dq = 0.0;
                for (int d = 0; d < D; d++) dq += vs[q][d] * v[d];
                for (int d = 0; d < D; d++) w[d] -= lambdas[q] * dq * vs[q][d];
            }
            double norm = 0.0;
            for (int d = 0; d < D; d++) norm += w[d] * w[d];
            lambda = sqrt(norm);
            for (int d = 0; d < D; d++) v[d] = w[d] / lambda;
        }
        lambdas[j] = lambda;
        double dot = 0.0;
        int amax = 0;
        for (int d = 0; d < D; d++) {
            dot += v[d] * p.dirs[(size_t)j * D + d];
            if (fabs(p.dirs[(size_t)j * D + d]) > fabs(p.dirs[(size_t)j * D + amax])) amax = d;
        }
        CHECK_CLOSE(fabs(dot), 1.0, 1e-4, 0, "|direction . power-iteration eigenvector|");
        CHECK_CLOSE((double)p.spread[j] * p.spread[j], lambda, 0, 1e-4, "spread^2 = eigenvalue");
        CHECK(p.dirs[(size_t)j * D + amax] > 0, "sign: largest entry of direction %d is negative",
              j);
    }
    // seen coordinates: zero mean, unit RMS, uncorrelated
    double su[3] = {0}, suu[3][3] = {{0}};
    float u[3];
    for (int i = 0; i < n; i++)
        if (seen[i]) {
            synth_pca_coords(&p, sc.emb + (size_t)i * D, u);
            for (int a = 0; a < k; a++) {
                su[a] += u[a] / m;
                for (int b = 0; b < k; b++) suu[a][b] += (double)u[a] * u[b] / m;
            }
        }
    for (int a = 0; a < k; a++) {
        CHECK_CLOSE(su[a], 0.0, 1e-5, 0, "mean seen coordinate");
        for (int b = 0; b < k; b++)
            CHECK_CLOSE(suu[a][b], a == b ? 1.0 : 0.0, 1e-5, 0, "seen coordinate covariance");
    }

    // seen only: moving an unseen row changes no seen appearance (bit for bit)
    SynthAppearance* before = (SynthAppearance*)malloc(n * sizeof(SynthAppearance));
    memcpy(before, sc.app, n * sizeof(SynthAppearance));
    int uidx = -1, sidx = -1;
    for (int i = 0; i < n; i++) {
        if (sc.unseen[i] && uidx < 0) uidx = i;
        if (!sc.unseen[i] && sidx < 0) sidx = i;
    }
    for (int d = 0; d < D; d++) sc.emb[(size_t)uidx * D + d] = sc.emb[(size_t)sidx * D + d];
    synth_classes_appearance(&sc, &o);
    int seen_same = 1;
    for (int i = 0; i < n; i++)
        if (!sc.unseen[i])
            seen_same &= memcmp(&before[i], &sc.app[i], sizeof(SynthAppearance)) == 0;
    CHECK(seen_same, "an unseen embedding row changed a seen appearance");
    CHECK(memcmp(&sc.app[uidx], &sc.app[sidx], sizeof(SynthAppearance)) == 0,
          "an unseen class with a seen class's embedding must look the same");
    // ... while moving a seen row does move the other seen classes
    for (int d = 0; d < D; d++) sc.emb[(size_t)sidx * D + d] *= (d % 2) ? 1.5f : 0.5f;
    synth_classes_appearance(&sc, &o);
    int moved = 0;
    for (int i = 0; i < n; i++)
        if (!sc.unseen[i] && i != sidx)
            moved += memcmp(&before[i], &sc.app[i], sizeof(SynthAppearance)) != 0;
    CHECK(moved == m - 1, "a seen row moved only %d of %d other seen appearances", moved, m - 1);

    free(before);
    free(w);
    free(x);
    free(seen);
    synth_pca_free(&p);
    synth_classes_free(&sc);
}

// ---------------------------------------------------------------- appearance formulas
static void test_appearance(void) {
    const float pi = 3.14159265f;
    SynthAppearance a;
    float zero[3] = {0, 0, 0};
    synth_appearance(zero, 3, 64, &a);
    for (int c = 0; c < 3; c++) CHECK_CLOSE(a.colour[c], 128.0, 1e-4, 0, "grey at the seen mean");
    CHECK_CLOSE(a.theta, pi / 2, 1e-6, 0, "theta at 0");
    CHECK_CLOSE(a.period, 8.0, 1e-5, 0, "period at 0");
    CHECK_CLOSE(a.amplitude, 30.0, 1e-5, 0, "amplitude at 0");
    CHECK_CLOSE(a.noise, 10.0, 1e-5, 0, "noise at 0");

    // k = 3: attribute a is driven by u[a mod 3]
    float u[3] = {2.0f, -1.0f, 0.5f};
    double t0 = tanh(1.0), t1 = tanh(-0.5), t2 = tanh(0.25);
    synth_appearance(u, 3, 128, &a);
    double r = 128 + 120 * (t0 / sqrt(3) + t1 / sqrt(2) + t2 / sqrt(6));
    double g = 128 + 120 * (t0 / sqrt(3) - t1 / sqrt(2) + t2 / sqrt(6));
    double b = 128 + 120 * (t0 / sqrt(3) - 2 * t2 / sqrt(6));
    CHECK_CLOSE(a.colour[0], r, 1e-3, 0, "R");
    CHECK_CLOSE(a.colour[1], g, 1e-3, 0, "G");
    CHECK_CLOSE(a.colour[2], b, 1e-3, 0, "B");
    CHECK_CLOSE(a.theta, pi / 2 * (1 + t0), 1e-5, 0, "theta from u0");
    CHECK_CLOSE(a.period, 2 * 8 * pow(2.0, t1), 1e-4, 0, "period from u1, doubled at size 128");
    CHECK_CLOSE(a.amplitude, 30 + 20 * t2, 1e-4, 0, "amplitude from u2");
    CHECK_CLOSE(a.noise, 10 + 6 * t0, 1e-4, 0, "noise from u0");

    // k = 9: attribute 0 from (u0 + u7)/sqrt(2), attribute 1 from (u1 + u8)/sqrt(2), 6 from u6
    float u9[9] = {1.0f, 0, 0, 0, 0, 0, -0.8f, 1.0f, 0.6f};
    synth_appearance(u9, 9, 32, &a);
    double s0 = tanh(2 / sqrt(2) / 2), s1 = tanh(0.6 / sqrt(2) / 2);
    CHECK_CLOSE(a.colour[2], 128 + 120 * s0 / sqrt(3), 1e-3, 0, "B with k = 9");
    CHECK_CLOSE(a.colour[0], 128 + 120 * (s0 / sqrt(3) + s1 / sqrt(2)), 1e-3, 0, "R with k = 9");
    CHECK_CLOSE(a.noise, 10 + 6 * tanh(-0.4), 1e-4, 0, "noise from u6 with k = 9");
    CHECK_CLOSE(a.period, 8.0, 1e-5, 0, "period not scaled below size 64");
}

// The default 32 + 8 classes: colour distance follows coordinate distance.
static void test_default_spread(void) {
    SynthOptions o = small_options(0);
    o.seen_classes = 32;
    o.unseen_classes = 8;
    SynthClasses sc;
    synth_classes_build(&sc, &o, REF, VECS, 2);
    int* seen = (int*)malloc(sc.n * sizeof(int));
    for (int i = 0; i < sc.n; i++) seen[i] = !sc.unseen[i];
    SynthPca p;
    synth_pca_fit(&p, sc.emb, seen, sc.n, sc.D, 3);
    float* u = (float*)malloc(sc.n * 3 * sizeof(float));
    for (int i = 0; i < sc.n; i++) synth_pca_coords(&p, sc.emb + (size_t)i * sc.D, u + 3 * i);
    int np = sc.n * (sc.n - 1) / 2, q = 0;
    double* du = (double*)malloc(np * sizeof(double));
    double* dc = (double*)malloc(np * sizeof(double));
    for (int i = 0; i < sc.n; i++)
        for (int j = i + 1; j < sc.n; j++, q++) {
            du[q] = dc[q] = 0;
            for (int a = 0; a < 3; a++) du[q] += pow(u[3 * i + a] - u[3 * j + a], 2);
            for (int c = 0; c < 3; c++) dc[q] += pow(sc.app[i].colour[c] - sc.app[j].colour[c], 2);
            du[q] = sqrt(du[q]);
            dc[q] = sqrt(dc[q]);
        }
    double rho = pearson(du, dc, np);
    CHECK(rho > 0.9, "default classes: corr(coordinate distance, colour distance) = %.3f", rho);
    // unseen classes stay near the seen colour range
    for (int i = 0; i < sc.n; i++)
        for (int c = 0; c < 3; c++)
            CHECK(sc.app[i].colour[c] > 5 && sc.app[i].colour[c] < 250, "class %d colour %.1f",
                  sc.ids[i], sc.app[i].colour[c]);
    free(du);
    free(dc);
    free(u);
    free(seen);
    synth_pca_free(&p);
    synth_classes_free(&sc);
}

// ---------------------------------------------------------------- generated files
static int read_ids(const char* path, int* ids, int cap) {
    char* text = file_read_all(path, NULL);
    int n = 0;
    for (char* line = strtok(text, "\n"); line && n < cap; line = strtok(NULL, "\n"))
        ids[n++] = atoi(line);
    free(text);
    return n;
}

// name of class id in a classes.tsv ("" if absent)
static void class_name(const char* tsv, int id, char* out, size_t cap) {
    char* text = file_read_all(tsv, NULL);
    out[0] = '\0';
    for (char* line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (atoi(line) == id && strchr(line, '\t'))
            snprintf(out, cap, "%s", strchr(line, '\t') + 1);
    free(text);
}

// the .vec row of `name` (spaces as '_'), parsed independently of wordvec.c
static int vec_row(const char* path, const char* name, double* out) {
    char want[256];
    snprintf(want, sizeof want, "%s ", name);
    for (char* c = want; *c; c++)
        if (*c == ' ' && c[1]) *c = '_';
    char* text = file_read_all(path, NULL);
    int found = 0;
    for (char* line = strtok(text, "\n"); line && !found; line = strtok(NULL, "\n"))
        if (strncmp(line, want, strlen(want)) == 0) {
            char* s = line + strlen(want);
            for (int d = 0; d < 300; d++) out[d] = strtod(s, &s);
            found = 1;
        }
    free(text);
    return found;
}

static const char* g_root;  // for the refusal cases run in a child process
static SynthOptions g_opt;
static void gen_no_force(void) { synth_generate(g_root, NULL, &g_opt, REF, VECS, 2, 0); }
static void gen_force(void) { synth_generate(g_root, NULL, &g_opt, REF, VECS, 2, 1); }

static void test_files(const char* tmp) {
    char a[512], b[512], c[512], pa[1024], pb[1024];
    snprintf(a, sizeof a, "%s/a", tmp);
    snprintf(b, sizeof b, "%s/b/nested", tmp);
    snprintf(c, sizeof c, "%s/c", tmp);
    SynthOptions o = small_options(7);
    synth_generate(a, NULL, &o, REF, VECS, 2, 0);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);  // the rerun on one thread must give the same bytes
    synth_generate(b, NULL, &o, REF, VECS, 2, 0);
    omp_set_num_threads(threads);
    SynthOptions o2 = small_options(8);
    synth_generate(c, NULL, &o2, REF, VECS, 2, 0);

    // lists and class files: byte-identical reruns
    static const char* const top[] = {"classes.tsv",  "seen.txt",   "unseen.txt",  "train_ids.txt",
                                      "test_ids.txt", "SYNTH_DONE", "embedding.h5"};
    for (int i = 0; i < 7; i++) {
        snprintf(pa, sizeof pa, "%s/%s", a, top[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, top[i]);
        CHECK(file_exists(pa), "missing %s", pa);
        // HDF5 stores object times, so the embedding is compared by content below
        if (i < 6)
            CHECK(file_exists(pb) && files_equal(pa, pb), "%s differs between reruns", top[i]);
    }
    int seen[8], unseen[8], train_ids[64], test_ids[64];
    snprintf(pa, sizeof pa, "%s/seen.txt", a);
    int ns = read_ids(pa, seen, 8);
    snprintf(pa, sizeof pa, "%s/unseen.txt", a);
    int nu = read_ids(pa, unseen, 8);
    snprintf(pa, sizeof pa, "%s/train_ids.txt", a);
    int ntr = read_ids(pa, train_ids, 64);
    snprintf(pa, sizeof pa, "%s/test_ids.txt", a);
    int nte = read_ids(pa, test_ids, 64);
    CHECK(ns == 6 && nu == 2 && ntr == 12 && nte == 6, "counts %d %d %d %d", ns, nu, ntr, nte);
    for (int i = 0; i < ntr; i++) CHECK(train_ids[i] == i, "train id %d", i);

    // classes: real COCO-stuff ids and names, split as in the reference lists
    int ref_seen[200], ref_unseen[32];
    int nrs = read_ids(REF "/seen.txt", ref_seen, 200),
        nru = read_ids(REF "/unseen.txt", ref_unseen, 32);
    int cls[8], is_unseen[256] = {0}, valid[256] = {0};
    snprintf(pa, sizeof pa, "%s/classes.tsv", a);
    int nc = read_ids(pa, cls, 8);
    CHECK(nc == 8, "classes.tsv has %d rows", nc);
    for (int i = 0; i < nc; i++) {
        CHECK(i == 0 || cls[i] > cls[i - 1], "classes.tsv not in id order");
        valid[cls[i]] = 1;
        char got[128], want[128];
        class_name(pa, cls[i], got, sizeof got);
        class_name(REF "/classes.tsv", cls[i], want, sizeof want);
        CHECK(strcmp(got, want) == 0 && want[0], "class %d: '%s' vs reference '%s'", cls[i], got,
              want);
    }
    for (int i = 0; i < ns; i++) {
        int ok = 0;
        for (int j = 0; j < nrs; j++) ok |= ref_seen[j] == seen[i];
        CHECK(ok && valid[seen[i]], "seen class %d is not a reference seen class", seen[i]);
    }
    for (int i = 0; i < nu; i++) {
        int ok = 0;
        for (int j = 0; j < nru; j++) ok |= ref_unseen[j] == unseen[i];
        CHECK(ok && valid[unseen[i]], "unseen class %d is not a reference unseen class", unseen[i]);
        is_unseen[unseen[i]] = 1;
    }

    // embedding: rows in classes.tsv order, fastText ⊕ word2vec, unit length
    ClassEmbedding ea, eb;
    snprintf(pa, sizeof pa, "%s/embedding.h5", a);
    snprintf(pb, sizeof pb, "%s/embedding.h5", b);
    embedding_read_h5(&ea, pa);
    embedding_read_h5(&eb, pb);
    CHECK(ea.C == 8 && ea.D == 600, "embedding (%d, %d)", ea.C, ea.D);
    CHECK(memcmp(ea.vec, eb.vec, (size_t)ea.C * ea.D * sizeof(float)) == 0,
          "embeddings differ between reruns");
    for (int i = 0; i < ea.C && ea.D == 600; i++) {
        char name[128];
        class_name(REF "/classes.tsv", cls[i], name, sizeof name);
        CHECK(strcmp(ea.names[i], name) == 0, "embedding row %d is '%s', want '%s'", i, ea.names[i],
              name);
        double row[600], ss = 0;
        CHECK(vec_row(VECS[0], name, row) && vec_row(VECS[1], name, row + 300), "no vector for %s",
              name);
        for (int d = 0; d < 600; d++) ss += row[d] * row[d];
        float want[600];
        for (int d = 0; d < 600; d++) want[d] = (float)(row[d] / sqrt(ss));
        t_check_array("embedding row", ea.vec + (size_t)i * 600, want, 600, 1e-6, 1e-5);
    }
    embedding_free(&eb);

    // images and labels: identical reruns, sizes, values, scene rules
    int differs_c = 0, train_with_unseen = 0, train_without = 0;
    double sum[256][3] = {{0}}, cnt[256] = {0};
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < (s ? nte : ntr); i++) {
            const char* split = s ? "val2017" : "train2017";
            for (int f = 0; f < 2; f++) {
                const char* fmt = f ? "%s/annotations/%s/%012d.png" : "%s/images/%s/%012d.jpg";
                snprintf(pa, sizeof pa, fmt, a, split, i);
                snprintf(pb, sizeof pb, fmt, b, split, i);
                CHECK(file_exists(pa) && files_equal(pa, pb), "%s differs between reruns", pa);
                snprintf(pb, sizeof pb, fmt, c, split, i);
                differs_c += !files_equal(pa, pb);
            }
            uint8_t *rgb, *lab;
            int H, W, LH, LW;
            char err[512];
            snprintf(pa, sizeof pa, "%s/images/%s/%012d.jpg", a, split, i);
            CHECK(image_read_rgb(pa, &rgb, &H, &W, err, sizeof err) == 0, "%s", err);
            snprintf(pa, sizeof pa, "%s/annotations/%s/%012d.png", a, split, i);
            CHECK(label_read_png(pa, &lab, &LH, &LW, err, sizeof err) == 0, "%s", err);
            CHECK(H == 32 && W == 32 && LH == 32 && LW == 32, "sizes %dx%d %dx%d", H, W, LH, LW);
            int present[256] = {0}, distinct = 0, any_unseen = 0;
            for (int p = 0; p < 32 * 32; p++) {
                int v = lab[p];
                CHECK(v == 255 || valid[v], "label value %d is not a chosen class", v);
                if (v == 255) continue;
                distinct += !present[v]++;
                any_unseen |= is_unseen[v];
                cnt[v]++;
                for (int ch = 0; ch < 3; ch++) sum[v][ch] += rgb[3 * p + ch];
            }
            CHECK(distinct >= 1 && distinct <= 4, "%d classes in a scene of at most 4 regions",
                  distinct);
            if (s)
                CHECK(any_unseen, "test image %d has no unseen class", i);
            else
                train_with_unseen += any_unseen, train_without += !any_unseen;
            free(rgb);
            free(lab);
        }
    CHECK(train_with_unseen >= 1 && train_without >= 1,
          "training scenes with unseen classes: %d of %d", train_with_unseen, ntr);
    CHECK(differs_c > 2 * (ntr + nte) / 2, "another seed changed only %d of %d files", differs_c,
          2 * (ntr + nte));

    // smoothness, measured on the decoded images: class pairs with close PCA
    // coordinates have close mean colours
    SynthClasses sc;
    synth_classes_build(&sc, &o, REF, VECS, 2);
    int* seen_mask = (int*)malloc(sc.n * sizeof(int));
    for (int i = 0; i < sc.n; i++) seen_mask[i] = !sc.unseen[i];
    SynthPca p;
    synth_pca_fit(&p, sc.emb, seen_mask, sc.n, sc.D, 3);
    double du[64], dc[64];
    int np = 0;
    for (int i = 0; i < sc.n; i++)
        for (int j = i + 1; j < sc.n; j++) {
            int ci = sc.ids[i], cj = sc.ids[j];
            if (cnt[ci] < 50 || cnt[cj] < 50) continue;
            float ui[3], uj[3];
            synth_pca_coords(&p, sc.emb + (size_t)i * sc.D, ui);
            synth_pca_coords(&p, sc.emb + (size_t)j * sc.D, uj);
            du[np] = dc[np] = 0;
            for (int k = 0; k < 3; k++) du[np] += pow(ui[k] - uj[k], 2);
            for (int ch = 0; ch < 3; ch++)
                dc[np] += pow(sum[ci][ch] / cnt[ci] - sum[cj][ch] / cnt[cj], 2);
            du[np] = sqrt(du[np]);
            dc[np] = sqrt(dc[np]);
            np++;
        }
    double rho = pearson(du, dc, np);
    CHECK(np >= 15 && rho > 0.5,
          "image colours: corr(coordinate distance, colour distance) = %.3f over %d pairs", rho,
          np);
    printf("image mean colours vs PCA coordinates: r = %.3f over %d class pairs\n", rho, np);
    free(seen_mask);
    synth_pca_free(&p);
    synth_classes_free(&sc);
    embedding_free(&ea);

    // overwrite rules
    g_root = a;
    g_opt = small_options(9);
    CHECK(t_exits_with_error(gen_no_force), "an existing dataset was replaced without --force");
    snprintf(pa, sizeof pa, "%s/SYNTH_DONE", a);
    char* marker = file_read_all(pa, NULL);
    CHECK(strstr(marker, "seed 7\n") != NULL, "the refused run changed the dataset");
    free(marker);
    gen_force();
    marker = file_read_all(pa, NULL);
    CHECK(strstr(marker, "seed 9\n") != NULL, "--force did not replace the dataset");
    free(marker);
    snprintf(pa, sizeof pa, "%s/user", tmp);  // not a dataset of ours: kept even with --force
    mkdir(pa, 0755);
    snprintf(pb, sizeof pb, "%s/user/notes.txt", tmp);
    file_write_atomic(pb, "keep", 4);
    g_root = pa;
    CHECK(t_exits_with_error(gen_force), "--force replaced a directory without SYNTH_DONE");
    CHECK(file_exists(pb), "user data lost");
    // no temporary or old trees are left next to the datasets
    DIR* d = opendir(tmp);
    int stray = 0;
    for (struct dirent* e; (e = readdir(d));)
        stray += strstr(e->d_name, ".tmp-") || strstr(e->d_name, ".old-");
    closedir(d);
    CHECK(stray == 0, "%d temporary directories left", stray);
}

int main(void) {
    test_appearance();
    test_pca();
    test_default_spread();
    char tmp[] = "/tmp/test_synth-XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_files(tmp);
    int rc = t_report("test_synth");
    if (rc == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    }
    return rc;
}
