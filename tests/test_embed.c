// Class embeddings: the word2vec binary and text readers on small generated
// files (exact vectors, first/exact/case-insensitive matches, truncated and
// malformed files), the multi-word mean, the all-at-once missing-class report
// (captured from a forked child), the HDF5 round trip and its error paths,
// streaming memory on a large generated file, and the published COCO-stuff
// embedding: one row against an independent parse and python literals, all
// 182 rows against the PyTorch fixture.
#include <hdf5.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "config.h"
#include "embed.h"
#include "h5fixture.h"
#include "testing.h"
#include "wordvec.h"

#define BIN "/tmp/zsseg_test_embed_words.bin"
#define TXT "/tmp/zsseg_test_embed_words.vec"
#define BIG "/tmp/zsseg_test_embed_big.bin"
#define BAD "/tmp/zsseg_test_embed_bad.vec"
#define H5OK "/tmp/zsseg_test_embed.h5"
#define H5TRUNC "/tmp/zsseg_test_embed_trunc.h5"
#define H5OTHER "/tmp/zsseg_test_embed_other.h5"
#define H5COCO "/tmp/zsseg_test_embed_coco.h5"
#define COCO ZSSEG_SOURCE_DIR "/datasets/cocostuff/"

// ---------------------------------------------------------------- child capture
typedef void (*child_fn)(void);


static void check_fails_with(const char* what, child_fn fn, const char* const* patterns) {
    char buf[8192];
    int rc = t_run_child(fn, 2, buf, sizeof buf);
    CHECK(rc == 1, "%s: exit status %d, want 1; output:\n%s", what, rc, buf);
    for (; *patterns; patterns++)
        CHECK(strstr(buf, *patterns) != NULL, "%s: output lacks '%s':\n%s", what, *patterns, buf);
}

// ---------------------------------------------------------------- generated word files
#define WD 4
// File order matters: "DOG" before "Dog" (the first case-insensitive hit is
// kept), "Sky" before "sky" (an exact hit replaces an earlier caseless one).
static const char* file_words[] = {"</s>", "cat", "DOG", "traffic", "Sky", "Dog",
                                   "light", "sky", "cat", "hot-dog"};
#define NFILE ((int)(sizeof file_words / sizeof file_words[0]))

// Vector of file entry k: distinct, not exactly representable in few bits.
static float file_value(int k, int j) {
    return 0.1f * (float)(k + 1) - 0.03f * (float)j * (float)(j + k);
}

static const float* entry(int k) {
    static float v[NFILE][WD];
    for (int j = 0; j < WD; j++) v[k][j] = file_value(k, j);
    return v[k];
}

static void write_binary(const char* path, int trailing_newline) {
    FILE* fp = fopenCheck(path, "wb");
    fprintf(fp, "%d %d\n", NFILE, WD);
    for (int k = 0; k < NFILE; k++) {
        fprintf(fp, "%s ", file_words[k]);
        for (int j = 0; j < WD; j++) {  // little-endian whatever the host
            uint32_t u;
            memcpy(&u, &entry(k)[j], 4);
            unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8),
                                  (unsigned char)(u >> 16), (unsigned char)(u >> 24)};
            fwrite(b, 1, 4, fp);
        }
        if (trailing_newline) fputc('\n', fp);
    }
    fcloseCheck(fp, path);
}

static void write_text(const char* path) {
    FILE* fp = fopenCheck(path, "w");
    fprintf(fp, "%d %d\n", NFILE, WD);
    for (int k = 0; k < NFILE; k++) {
        fprintf(fp, "%s", file_words[k]);
        for (int j = 0; j < WD; j++) fprintf(fp, " %.9g", (double)entry(k)[j]);
        fprintf(fp, " \n");  // word2vec's text writer leaves a trailing space
    }
    fcloseCheck(fp, path);
}

static void check_vec(const char* what, const float* got, int k) {
    t_check_array(what, got, entry(k), WD, 0.0, 0.0);
}

static void test_lookup(const char* path, WordVecFormat format) {
    // "Light" is only a case variant of "light", itself wanted: both are filled
    const char* wanted[] = {"cat",   "dog", "sky",     "zebra", "light",
                            "cat",   "hot-dog", "Traffic", "Light"};
    WordVecLookup L;
    wordvec_lookup(&L, path, wanted, 9);
    CHECK(L.format == format, "%s: format %d, want %d", path, L.format, format);
    CHECK(L.D == WD && L.nwords == NFILE && L.nwanted == 9, "%s: header %lld %d", path, L.nwords,
          L.D);
    WordVecMatch want_match[] = {WORDVEC_EXACT,   WORDVEC_CASELESS, WORDVEC_EXACT,
                                 WORDVEC_MISSING, WORDVEC_EXACT,    WORDVEC_EXACT,
                                 WORDVEC_EXACT,   WORDVEC_CASELESS, WORDVEC_CASELESS};
    int want_entry[] = {1, 2, 7, -1, 6, 1, 9, 3, 6};  // the first "cat", the first "DOG"
    for (int i = 0; i < 9; i++) {
        CHECK(L.match[i] == want_match[i], "%s '%s': match %d, want %d", path, wanted[i],
              L.match[i], want_match[i]);
        if (want_entry[i] >= 0) {
            check_vec(wanted[i], L.vec + i * WD, want_entry[i]);
        } else {
            float zero[WD] = {0};
            t_check_array("missing word is zero", L.vec + i * WD, zero, WD, 0.0, 0.0);
        }
    }
    wordvec_lookup_free(&L);
}

// ---------------------------------------------------------------- multi-word mean and report
static void test_build(void) {
    const char* names[] = {"cat", "traffic light", "Dog", "sky"};
    const char* paths[] = {BIN, TXT};
    EmbedSourceStats st[2];
    ClassEmbedding e;
    embedding_build(&e, names, 4, paths, 2, 0, st);
    CHECK(e.C == 4 && e.D == 2 * WD, "build shape (%d, %d)", e.C, e.D);
    int rows[] = {1, -1, 5, 7};  // "Dog" is in the file as such: exact
    for (int c = 0; c < 4; c++) {
        float want[2 * WD];
        for (int j = 0; j < WD; j++) {
            want[j] = c == 1 ? (float)(((double)entry(3)[j] + entry(6)[j]) / 2) : entry(rows[c])[j];
            want[WD + j] = want[j];
        }
        t_check_array(names[c], e.vec + c * e.D, want, 2 * WD, 0.0, 0.0);
        CHECK(strcmp(e.names[c], names[c]) == 0, "name %d '%s'", c, e.names[c]);
    }
    for (int s = 0; s < 2; s++)
        CHECK(st[s].D == WD && st[s].whole == 3 && st[s].averaged == 1 && st[s].caseless == 0 &&
                  st[s].missing == 0,
              "stats %d: D %d whole %d averaged %d caseless %d missing %d", s, st[s].D,
              st[s].whole, st[s].averaged, st[s].caseless, st[s].missing);
    embedding_free(&e);

    // Case fallback inside a mean ("LIGHT"), and normalisation: row = v / ||v||.
    const char* names2[] = {"Traffic LIGHT", "dog"};
    embedding_build(&e, names2, 2, paths, 1, 1, st);
    CHECK(st[0].averaged == 1 && st[0].whole == 1 && st[0].caseless == 2,
          "caseless stats: whole %d averaged %d caseless %d", st[0].whole, st[0].averaged,
          st[0].caseless);
    double ss = 0.0, mean[WD];
    for (int j = 0; j < WD; j++) {
        mean[j] = (double)(float)(((double)entry(3)[j] + entry(6)[j]) / 2);
        ss += mean[j] * mean[j];
    }
    for (int j = 0; j < WD; j++)
        CHECK_CLOSE(e.vec[j], mean[j] / sqrt(ss), 1e-7, 0, "normalised mean");
    double n1 = t_dot(e.vec + WD, e.vec + WD, WD);
    CHECK_CLOSE(n1, 1.0, 1e-6, 0, "row norm");
    embedding_free(&e);
}

static void build_missing(void) {
    const char* names[] = {"cat", "zebra", "hot dog", "sky"};
    const char* paths[] = {BIN, TXT};
    ClassEmbedding e;
    embedding_build(&e, names, 4, paths, 2, 1, NULL);
}

// ---------------------------------------------------------------- malformed word files
static void lookup_truncated(void) {
    const char* w[] = {"zebra"};
    WordVecLookup L;
    wordvec_lookup(&L, BIN, w, 1);
}

static void lookup_bad(void) {
    const char* w[] = {"zebra"};
    WordVecLookup L;
    wordvec_lookup(&L, BAD, w, 1);
}

static void write_file(const char* path, const char* text) {
    FILE* fp = fopenCheck(path, "w");
    fputs(text, fp);
    fcloseCheck(fp, path);
}

static void test_malformed(void) {
    // binary cut in the middle of the 6th vector
    write_binary(BIN, 1);
    FILE* fp = fopenCheck(BIN, "rb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    size_t cut = 0;
    while (cut + 4 <= n && memcmp(buf + cut, "Dog ", 4) != 0) cut++;
    fp = fopenCheck(BIN, "wb");
    fwrite(buf, 1, cut + 4 + 6, fp);
    fclose(fp);
    const char* p1[] = {"'" BIN "' ends after 5 of its 10 words", "truncated", NULL};
    check_fails_with("truncated binary", lookup_truncated, p1);
    write_binary(BIN, 1);

    write_file(BAD, "cat 1 2 3\n");
    const char* p2[] = {"'" BAD "' is not a word-vector file", "WORDS DIM", NULL};
    check_fails_with("no header", lookup_bad, p2);
    write_file(BAD, "2 3\nzebra 1 2 3\nzebra2 1 2\n");
    // a later duplicate of an exact hit is not even parsed
    write_file(BAD, "2 3\nzebra 1 2 3\nzebra 1 2\n");
    WordVecLookup L;
    const char* w[] = {"zebra"};
    wordvec_lookup(&L, BAD, w, 1);
    CHECK(L.format == WORDVEC_TEXT && L.match[0] == WORDVEC_EXACT && L.vec[2] == 3.0f,
          "duplicate after an exact hit");
    wordvec_lookup_free(&L);
    write_file(BAD, "2 4\nabc 1.5 2 3\nzebra 1 2 3\n");  // a wrong header
    const char* p6[] = {BAD ":2: 'abc' has 3 values, the header says 4", NULL};
    check_fails_with("wrong header dimension", lookup_bad, p6);
    write_file(BAD, "2 3\nabc 1 2 3\nzebra 1 2\n");
    const char* p4[] = {BAD ":3: 'zebra' has 2 values, the header says 3", NULL};
    check_fails_with("short text line", lookup_bad, p4);
    write_file(BAD, "3 3\nabc 1 2 3\nzebrb 1 2 3\n");
    const char* p5[] = {"'" BAD "' ends after 2 of its 3 words", NULL};
    check_fails_with("truncated text", lookup_bad, p5);
}

// ---------------------------------------------------------------- streaming memory
static long max_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

// 100k filler words of 128 floats (52 MB); the wanted word is the last one.
static void test_streaming(void) {
    const int N = 100000, DB = 128;
    FILE* fp = fopenCheck(BIG, "wb");
    fprintf(fp, "%d %d\n", N, DB);
    float v[128];
    for (int k = 0; k < N; k++) {
        for (int j = 0; j < DB; j++) v[j] = (float)(k % 1000) * 1e-3f + (float)j;
        fprintf(fp, "%s%d ", k == N - 1 ? "needle" : "filler", k);
        fwrite(v, sizeof(float), (size_t)DB, fp);  // the test assumes a little-endian host
        fputc('\n', fp);
    }
    fcloseCheck(fp, BIG);
    long before = max_rss_kb();
    const char* w[] = {"needle99999", "absent"};
    WordVecLookup L;
    wordvec_lookup(&L, BIG, w, 2);
    long grown = max_rss_kb() - before;
    CHECK(L.match[0] == WORDVEC_EXACT && L.match[1] == WORDVEC_MISSING, "needle found");
    CHECK_CLOSE(L.vec[0], 0.999, 1e-6, 0, "needle[0]");
    CHECK_CLOSE(L.vec[127], 127.999, 1e-4, 0, "needle[127]");
    CHECK(grown < 8 * 1024, "peak RSS grew by %ld kB reading a 52 MB file", grown);
    printf("streaming 52 MB: peak RSS +%ld kB\n", grown);
    wordvec_lookup_free(&L);
    unlink(BIG);
}

// ---------------------------------------------------------------- HDF5
static void read_missing(void) {
    ClassEmbedding e;
    embedding_read_h5(&e, "/tmp/zsseg_no_such_embedding.h5");
}
static void read_trunc(void) {
    ClassEmbedding e;
    embedding_read_h5(&e, H5TRUNC);
}
static void read_other(void) {
    ClassEmbedding e;
    embedding_read_h5(&e, H5OTHER);
}
static void read_text(void) {
    ClassEmbedding e;
    embedding_read_h5(&e, BAD);
}

static char* attr_string(hid_t f, const char* name) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT), t = H5Aget_type(a);
    char* s = NULL;
    H5Aread(a, t, &s);
    char* copy = strdup(s ? s : "");
    H5free_memory(s);
    H5Tclose(t);
    H5Aclose(a);
    return copy;
}

static void test_h5(void) {
    float vec[3 * 5];
    t_fill_normal(vec, 15, 7, 1.0f);
    char* names[] = {"person", "traffic light", "cr\xc3\xa8me br\xc3\xbb" "l\xc3\xa9" "e"};
    ClassEmbedding e = {3, 5, vec, names}, r;
    embedding_write_h5(H5OK, &e, "a.vec;b.bin", 1);
    embedding_read_h5(&r, H5OK);
    CHECK(r.C == 3 && r.D == 5, "round trip shape (%d, %d)", r.C, r.D);
    t_check_array("round trip", r.vec, vec, 15, 0.0, 0.0);
    for (int c = 0; c < 3; c++)
        CHECK(strcmp(r.names[c], names[c]) == 0, "name %d '%s'", c, r.names[c]);
    embedding_free(&r);
    CHECK(access(H5OK ".tmp", F_OK) != 0, "the .tmp file is renamed away");
    hid_t f = H5Fopen(H5OK, H5F_ACC_RDONLY, H5P_DEFAULT);
    char* src = attr_string(f, "sources");
    CHECK(strcmp(src, "a.vec;b.bin") == 0, "sources attribute '%s'", src);
    free(src);
    int norm = -1;
    hid_t a = H5Aopen(f, "normalized", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_INT, &norm);
    H5Aclose(a);
    CHECK(norm == 1, "normalized attribute %d", norm);
    H5Fclose(f);

    // truncated copy
    size_t len = 0;
    char* bytes = file_read_all(H5OK, &len);
    FILE* fp = fopenCheck(H5TRUNC, "wb");
    fwrite(bytes, 1, len / 2, fp);
    fclose(fp);
    free(bytes);
    const char* p1[] = {"'" H5TRUNC "'", "truncated or corrupt", "HINT:", NULL};
    check_fails_with("truncated h5", read_trunc, p1);
    const char* p2[] = {"cannot read class embedding file '/tmp/zsseg_no_such_embedding.h5'",
                        "zsseg embed", NULL};
    check_fails_with("missing h5", read_missing, p2);
    // an HDF5 file of another kind
    f = H5Fcreate(H5OTHER, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {3, 5};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t ds = H5Dcreate2(f, "/params", H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, vec);
    H5Dclose(ds), H5Sclose(sp), H5Fclose(f);
    const char* p3[] = {"'" H5OTHER "' is not a class embedding file", "/embeddings (C, D)",
                        NULL};
    check_fails_with("other h5", read_other, p3);
    const char* p4[] = {"'" BAD "' is not an HDF5 file", NULL};
    check_fails_with("text as h5", read_text, p4);
}

// ---------------------------------------------------------------- COCO-stuff: the published embedding
// Independent reader: the line of `word` in a .vec file, values in double.
static void vec_line(const char* path, const char* word, double* out, int n) {
    size_t len = 0;
    char* text = file_read_all(path, &len);
    size_t wl = strlen(word);
    int found = 0;
    for (char* line = strchr(text, '\n'); line && !found; line = strchr(line + 1, '\n')) {
        if (strncmp(line + 1, word, wl) == 0 && line[1 + wl] == ' ') {
            char* p = line + 1 + wl;
            for (int j = 0; j < n; j++) out[j] = strtod(p, &p);
            found = 1;
        }
    }
    free(text);
    CHECK(found, "%s has no '%s'", path, word);
}

// `zsseg embed` run in-process on the shipped files, as the CLI does it.
static void test_cocostuff(void) {
    Config* cfg = NULL;
    const char* sets[] = {"data.classes=" COCO "classes.tsv",
                          "data.word_vectors=" COCO "fasttext.vec," COCO "word2vec.vec"};
    char* err = config_resolve(&cfg, NULL, sets, 2);
    CHECK(err == NULL, "config: %s", err ? err : "");
    free(err);
    static const CliOption opts[] = {{"out", 'o', "FILE", ""}, {0}};
    CliCommand cmd = {"embed", "", "", NULL, 0, opts, cmd_embed};
    CliArgs args = {.command = &cmd};
    args.values[0] = H5COCO;
    CHECK(cmd_embed(&args, cfg) == 0, "cmd_embed");
    config_free(cfg);

    ClassEmbedding e;
    embedding_read_h5(&e, H5COCO);
    CHECK(e.C == 182 && e.D == 600, "cocostuff shape (%d, %d)", e.C, e.D);
    CHECK(strcmp(e.names[0], "person") == 0 && strcmp(e.names[9], "traffic light") == 0 &&
              strcmp(e.names[181], "wood") == 0,
          "names %s / %s / %s", e.names[0], e.names[9], e.names[181]);

    // Row "traffic light" (row 9, id 9): concat(ft, w2v) / ||concat||, independently.
    double row[600], ss = 0.0;
    vec_line(COCO "fasttext.vec", "traffic_light", row, 300);
    vec_line(COCO "word2vec.vec", "traffic_light", row + 300, 300);
    for (int j = 0; j < 600; j++) ss += row[j] * row[j];
    for (int j = 0; j < 600; j++) row[j] /= sqrt(ss);
    int idx[] = {0, 1, 2, 300, 597, 598, 599};
    for (int i = 0; i < 7; i++)
        CHECK_CLOSE(e.vec[9 * 600 + idx[i]], row[idx[i]], 1e-7, 0, "traffic light vs parse");
    // Literals from python (numpy float64 parse of both files), rows 0 and 9.
    const double person[] = {-0.0133080445, -0.0394984621, -0.0177888687, 0.0854370573,
                             -0.0405977661, 0.0230255974,  -0.0286305168};
    const double traffic[] = {-0.00971053161, -0.032361073, -0.0499019739, 0.0824090857,
                              -0.00342691307, 0.0598893874, -0.0521380374};
    for (int i = 0; i < 7; i++) {
        CHECK_CLOSE(e.vec[idx[i]], person[i], 1e-8, 0, "person literal");
        CHECK_CLOSE(e.vec[9 * 600 + idx[i]], traffic[i], 1e-8, 0, "traffic light literal");
    }

    // All 182 rows against the PyTorch fixture's /inputs/embeddings.
    hid_t f =
        H5Fopen(ZSSEG_SOURCE_DIR "/tests/fixtures/resnet101.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
    size_t n = 0;
    float* want = fx_read(f, "/inputs/embeddings", H5T_NATIVE_FLOAT, &n);
    H5Fclose(f);
    CHECK(n == 182 * 600, "fixture has %zu values", n);
    if (n == 182 * 600) t_check_array("fixture embeddings", e.vec, want, n, 1e-6, 0.0);
    free(want);
    embedding_free(&e);
}

int main(void) {
    test_streaming();  // first: peak RSS is measured from the process's start
    write_binary(BIN, 1);
    test_lookup(BIN, WORDVEC_BINARY);
    write_binary(BIN, 0);  // GoogleNews variant without '\n' after vectors
    test_lookup(BIN, WORDVEC_BINARY);
    write_text(TXT);
    test_lookup(TXT, WORDVEC_TEXT);
    test_build();
    const char* p[] = {"class 1 'zebra': not in " BIN "\n",
                       "class 1 'zebra': not in " TXT "\n",
                       "class 2 'hot dog': not in " BIN " (missing words: hot)",
                       "class 2 'hot dog': not in " TXT " (missing words: hot)",
                       "2 of 4 classes cannot be embedded", "HINT:", NULL};
    check_fails_with("missing classes", build_missing, p);
    test_malformed();
    test_h5();
    test_cocostuff();
    unlink(BIN), unlink(TXT), unlink(BAD), unlink(H5OK), unlink(H5TRUNC), unlink(H5OTHER),
        unlink(H5COCO);
    return t_report("test_embed");
}
