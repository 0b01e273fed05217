// Class embeddings: lookup rules in embed.h, file reading in wordvec.c.
#include "embed.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "weights_h5.h"
#include "wordvec.h"

#define WORD_SEPARATORS " _-"
#define EMBED_FILE_HINT "build it with `zsseg embed -o FILE` (data.embedding names the file)"

static char* str_dup(const char* s) {
    size_t n = strlen(s) + 1;
    char* d = (char*)mallocCheck(n);
    memcpy(d, s, n);
    return d;
}

// Growing text buffer for the all-at-once missing-class report.
typedef struct {
    char* s;
    size_t len, cap;
} Text;

static void text_add(Text* t, const char* s) {
    size_t n = strlen(s);
    if (t->len + n + 1 > t->cap) {
        t->cap = 2 * (t->len + n + 1);
        char* grown = (char*)realloc(t->s, t->cap);
        if (!grown) ZS_FAIL("free some memory", "out of memory for the report");
        t->s = grown;
    }
    memcpy(t->s + t->len, s, n + 1);
    t->len += n;
}

// ---------------------------------------------------------------- class names -> wanted words
// Per class: the whole-name key (spaces as '_') and, for names of several
// words, the words to average.
typedef struct {
    int C;
    char** whole;  // (C)
    int* first;    // (C + 1) words of class c: word[first[c] .. first[c+1])
    int nwords;
    char** word;   // (nwords)
} ClassWords;

static void class_words_build(ClassWords* cw, const char* const* names, int C) {
    cw->C = C;
    cw->whole = (char**)mallocCheck((size_t)C * sizeof(char*));
    cw->first = (int*)mallocCheck((size_t)(C + 1) * sizeof(int));
    int cap = 4 * C + 4;
    cw->word = (char**)mallocCheck((size_t)cap * sizeof(char*));
    cw->nwords = 0;
    for (int c = 0; c < C; c++) {
        cw->whole[c] = str_dup(names[c]);
        for (char* p = cw->whole[c]; *p; p++)
            if (*p == ' ') *p = '_';
        cw->first[c] = cw->nwords;
        char* copy = str_dup(names[c]);
        int n = 0;
        char* save = NULL;
        for (char* w = strtok_r(copy, WORD_SEPARATORS, &save); w;
             w = strtok_r(NULL, WORD_SEPARATORS, &save), n++) {
            if (cw->nwords == cap) {
                cap *= 2;
                char** grown = (char**)realloc(cw->word, (size_t)cap * sizeof(char*));
                if (!grown) ZS_FAIL("free some memory", "out of memory for class words");
                cw->word = grown;
            }
            cw->word[cw->nwords++] = str_dup(w);
        }
        free(copy);
        if (n < 2) {  // one word: the whole name already is that word
            for (int k = cw->first[c]; k < cw->nwords; k++) free(cw->word[k]);
            cw->nwords = cw->first[c];
        }
    }
    cw->first[C] = cw->nwords;
}

static void class_words_free(ClassWords* cw) {
    for (int c = 0; c < cw->C; c++) free(cw->whole[c]);
    for (int k = 0; k < cw->nwords; k++) free(cw->word[k]);
    free(cw->whole), free(cw->first), free(cw->word);
}

// ---------------------------------------------------------------- building
// Fill columns [col, col + L->D) of e->vec from one file's lookup of
// (whole names, then words); append a line per class it cannot embed.
static void embed_source(ClassEmbedding* e, int col, const ClassWords* cw, const WordVecLookup* L,
                         const char* path, EmbedSourceStats* st, Text* report,
                         unsigned char* failed) {  // (C) set for each class not embedded
    int C = cw->C, D = L->D;
    memset(st, 0, sizeof *st);
    st->D = D;
    for (int c = 0; c < C; c++) {
        float* row = e->vec + (size_t)c * e->D + col;
        if (L->match[c] != WORDVEC_MISSING) {
            memcpy(row, L->vec + (size_t)c * D, (size_t)D * sizeof(float));
            st->whole++;
            st->caseless += L->match[c] == WORDVEC_CASELESS;
            continue;
        }
        int k0 = cw->first[c], k1 = cw->first[c + 1], lacking = 0, caseless = 0;
        char line[1024] = "";
        for (int k = k0; k < k1; k++) {
            WordVecMatch m = L->match[C + k];
            caseless |= m == WORDVEC_CASELESS;
            if (m != WORDVEC_MISSING) continue;
            size_t n = strlen(line);
            snprintf(line + n, sizeof line - n, "%s%s", lacking++ ? ", " : "", cw->word[k]);
        }
        if (k0 == k1 || lacking) {
            char msg[2048];
            snprintf(msg, sizeof msg, "  class %d '%s': not in %s%s%s%s\n", c, e->names[c], path,
                     lacking ? " (missing words: " : "", line, lacking ? ")" : "");
            text_add(report, msg);
            st->missing++;
            failed[c] = 1;
            continue;
        }
        // mean of the words, accumulated in double
        for (int j = 0; j < D; j++) {
            double s = 0.0;
            for (int k = k0; k < k1; k++) s += L->vec[(size_t)(C + k) * D + j];
            row[j] = (float)(s / (k1 - k0));
        }
        st->averaged++;
        st->caseless += caseless;
    }
}

void embedding_build(ClassEmbedding* e, const char* const* names, int C, const char* const* paths,
                     int npaths, int normalize, EmbedSourceStats* stats) {
    if (C < 1 || npaths < 1)
        ZS_FAIL("set data.classes and data.word_vectors", "embedding needs classes (%d) and "
                "word-vector files (%d)", C, npaths);
    ClassWords cw;
    class_words_build(&cw, names, C);
    // wanted = the C whole names, then every class word
    const char** wanted = (const char**)mallocCheck((size_t)(C + cw.nwords) * sizeof(char*));
    for (int c = 0; c < C; c++) wanted[c] = cw.whole[c];
    for (int k = 0; k < cw.nwords; k++) wanted[C + k] = cw.word[k];

    WordVecLookup* L = (WordVecLookup*)mallocCheck((size_t)npaths * sizeof(WordVecLookup));
    e->C = C;
    e->D = 0;
    for (int s = 0; s < npaths; s++) {
        wordvec_lookup(&L[s], paths[s], wanted, C + cw.nwords);
        e->D += L[s].D;
    }
    e->vec = (float*)callocCheck((size_t)C * (size_t)e->D, sizeof(float));
    e->names = (char**)mallocCheck((size_t)C * sizeof(char*));
    for (int c = 0; c < C; c++) e->names[c] = str_dup(names[c]);

    Text report = {0};
    EmbedSourceStats* st =
        stats ? stats : (EmbedSourceStats*)mallocCheck((size_t)npaths * sizeof(EmbedSourceStats));
    unsigned char* failed = (unsigned char*)callocCheck((size_t)C, 1);
    for (int s = 0, col = 0; s < npaths; col += L[s].D, s++) {
        embed_source(e, col, &cw, &L[s], paths[s], &st[s], &report, failed);
        wordvec_lookup_free(&L[s]);
    }
    int missing = 0;
    for (int c = 0; c < C; c++) missing += failed[c];
    if (missing) {
        fprintf(stderr, "cannot embed these classes:\n%s", report.s);
        ZS_FAIL("add the words to the word-vector file, or rename the class in the class list "
                "(a multi-word name is found as words joined by '_', or as the mean of its words)",
                "%d of %d classes cannot be embedded (listed above)", missing, C);
    }
    free(failed);
    if (normalize) {
        for (int c = 0; c < C; c++) {
            float* row = e->vec + (size_t)c * e->D;
            double ss = 0.0;
            for (int j = 0; j < e->D; j++) ss += (double)row[j] * row[j];
            if (!(ss > 0.0) || !isfinite(ss))
                ZS_FAIL("check the word-vector files", "class %d '%s' has a %s vector", c,
                        names[c], ss > 0.0 ? "non-finite" : "zero");
            double inv = 1.0 / sqrt(ss);
            for (int j = 0; j < e->D; j++) row[j] = (float)(row[j] * inv);
        }
    }
    if (!stats) free(st);
    free(report.s);
    free(L);
    free(wanted);
    class_words_free(&cw);
}

// ---------------------------------------------------------------- HDF5
static hid_t vlen_string_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    h5Check(t);
    h5Check(H5Tset_size(t, H5T_VARIABLE));
    h5Check(H5Tset_cset(t, H5T_CSET_UTF8));
    return t;
}

void embedding_write_h5(const char* path, const ClassEmbedding* e, const char* sources,
                        int normalized) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        ZS_FAIL("use a shorter path", "path too long: '%s'", path);
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    h5Check(file);
    hid_t str = vlen_string_type();
    // no object timestamps: the same embedding gives the same bytes
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    h5Check(dcpl);
    h5Check(H5Pset_obj_track_times(dcpl, 0));

    hsize_t dims[2] = {(hsize_t)e->C, (hsize_t)e->D};
    hid_t space = H5Screate_simple(2, dims, NULL);
    h5Check(space);
    hid_t ds = H5Dcreate2(file, "/embeddings", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl,
                          H5P_DEFAULT);
    h5Check(ds);
    h5Check(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, e->vec));
    h5Check(H5Dclose(ds));
    h5Check(H5Sclose(space));

    space = H5Screate_simple(1, dims, NULL);
    h5Check(space);
    ds = H5Dcreate2(file, "/names", str, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    h5Check(H5Pclose(dcpl));
    h5Check(ds);
    h5Check(H5Dwrite(ds, str, H5S_ALL, H5S_ALL, H5P_DEFAULT, e->names));
    h5Check(H5Dclose(ds));
    h5Check(H5Sclose(space));

    space = H5Screate(H5S_SCALAR);
    h5Check(space);
    hid_t at = H5Acreate2(file, "sources", str, space, H5P_DEFAULT, H5P_DEFAULT);
    h5Check(at);
    h5Check(H5Awrite(at, str, &sources));
    h5Check(H5Aclose(at));
    at = H5Acreate2(file, "normalized", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    h5Check(at);
    h5Check(H5Awrite(at, H5T_NATIVE_INT, &normalized));
    h5Check(H5Aclose(at));
    h5Check(H5Sclose(space));

    h5Check(H5Tclose(str));
    h5Check(H5Fflush(file, H5F_SCOPE_GLOBAL));
    h5Check(H5Fclose(file));
    file_commit(tmp, path);
}

// Dataset `name` with `ndim` dimensions of type class `cls` (extent in dims), or -1.
static hid_t open_dataset(hid_t file, const char* name, H5T_class_t cls, int ndim, hsize_t* dims) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return -1;
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t space = H5Dget_space(ds), type = H5Dget_type(ds);
    int ok = space >= 0 && type >= 0 && H5Sget_simple_extent_ndims(space) == ndim &&
             H5Tget_class(type) == cls &&
             (cls != H5T_STRING || H5Tis_variable_str(type) > 0);
    if (ok) H5Sget_simple_extent_dims(space, dims, NULL);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (!ok) H5Dclose(ds);
    return ok ? ds : -1;
}

void embedding_read_h5(ClassEmbedding* e, const char* path) {
    char* bad = file_readable_problem(path, "class embedding file");
    if (bad) ZS_FAIL(EMBED_FILE_HINT, "%s", bad);
    H5Quiet quiet = h5_quiet();  // the messages below say more than HDF5's stack
    htri_t is = H5Fis_hdf5(path);
    hid_t file = is > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    hsize_t dims[2] = {0, 0}, ndims[1] = {0};
    hid_t dv = file >= 0 ? open_dataset(file, "/embeddings", H5T_FLOAT, 2, dims) : -1;
    hid_t dn = file >= 0 ? open_dataset(file, "/names", H5T_STRING, 1, ndims) : -1;
    int layout_ok = dv >= 0 && dn >= 0 && dims[0] == ndims[0] && dims[0] > 0 && dims[1] > 0;
    e->C = (int)dims[0];
    e->D = (int)dims[1];
    e->vec = NULL;
    e->names = NULL;
    hid_t str = vlen_string_type();
    char** raw = NULL;
    int read_ok = 0;
    if (layout_ok) {
        e->vec = (float*)mallocCheck((size_t)e->C * (size_t)e->D * sizeof(float));
        raw = (char**)callocCheck((size_t)e->C, sizeof(char*));
        read_ok = H5Dread(dv, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, e->vec) >= 0 &&
                  H5Dread(dn, str, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0;
    }
    h5_loud(quiet);
    if (is <= 0)
        ZS_FAIL(EMBED_FILE_HINT, "'%s' is not an HDF5 file", path);
    if (file < 0)
        ZS_FAIL("the file is truncated or corrupt (an interrupted write or copy?): rebuild it "
                "with `zsseg embed`",
                "cannot open HDF5 file '%s': it is truncated or corrupt", path);
    if (!layout_ok)
        ZS_FAIL(EMBED_FILE_HINT,
                "'%s' is not a class embedding file: it needs /embeddings (C, D) float and "
                "/names (C) strings",
                path);
    if (!read_ok)
        ZS_FAIL("the file is truncated or corrupt: rebuild it with `zsseg embed`",
                "cannot read the class embedding of '%s'", path);
    e->names = (char**)mallocCheck((size_t)e->C * sizeof(char*));
    for (int c = 0; c < e->C; c++) {  // H5free_memory: the one reclaim call HDF5 1.10-1.14 share
        e->names[c] = str_dup(raw[c] ? raw[c] : "");
        H5free_memory(raw[c]);
    }
    free(raw);
    h5Check(H5Tclose(str));
    h5Check(H5Dclose(dv));
    h5Check(H5Dclose(dn));
    h5Check(H5Fclose(file));
}

void embedding_free(ClassEmbedding* e) {
    for (int c = 0; e->names && c < e->C; c++) free(e->names[c]);
    free(e->names);
    free(e->vec);
    e->names = NULL;
    e->vec = NULL;
}

// ---------------------------------------------------------------- class list and command
// data.classes: "id<TAB>name" per line, ids increasing (row = training index).
static char** class_list_read(const char* path, int* C) {
    char* text = file_read_all(path, NULL);
    int cap = 64, n = 0;
    char** names = (char**)mallocCheck((size_t)cap * sizeof(char*));
    long prev = -1;
    int lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ')) line[--len] = '\0';
        if (!len) continue;
        char* tab = strchr(line, '\t');
        char* end = NULL;
        long id = strtol(line, &end, 10);
        if (!tab || end != tab || end == line || !tab[1] || id <= prev)
            ZS_FAIL("each line is 'ID<TAB>NAME' with ids increasing (datasets/README.md)",
                    "%s:%d: bad class line '%s'", path, lineno, line);
        prev = id;
        if (n == cap) {
            cap *= 2;
            char** grown = (char**)realloc(names, (size_t)cap * sizeof(char*));
            if (!grown) ZS_FAIL("free some memory", "out of memory for class names");
            names = grown;
        }
        names[n++] = str_dup(tab + 1);
    }
    free(text);
    if (!n) ZS_FAIL("check data.classes", "'%s' holds no classes", path);
    *C = n;
    return names;
}

int cmd_embed(const CliArgs* args, const Config* cfg) {
    const char* out = cli_option(args, "out");
    if (!out) out = config_get_string(cfg, "data.embedding");
    if (!*out) {
        fprintf(stderr, "zsseg embed: no output file: give -o FILE or set data.embedding\n");
        return CLI_EXIT_USAGE;
    }
    int np = 0, C = 0;
    const char* const* paths = config_get_string_list(cfg, "data.word_vectors", &np);
    if (np == 0) {
        fprintf(stderr, "zsseg embed: data.word_vectors lists no word-vector file\n");
        return CLI_EXIT_USAGE;
    }
    const char* classes = config_get_string(cfg, "data.classes");
    char** names = class_list_read(classes, &C);
    EmbedSourceStats* st = (EmbedSourceStats*)mallocCheck((size_t)np * sizeof(EmbedSourceStats));
    ClassEmbedding e;
    embedding_build(&e, (const char* const*)names, C, paths, np, 1, st);

    Text sources = {0};
    for (int s = 0; s < np; s++) {
        log_info("%s: %d-d, %d/%d classes (%d whole name, %d averaged, %d case-insensitive)",
                 paths[s], st[s].D, st[s].whole + st[s].averaged, C, st[s].whole, st[s].averaged,
                 st[s].caseless);
        if (s) text_add(&sources, ";");
        text_add(&sources, paths[s]);
    }
    embedding_write_h5(out, &e, sources.s, 1);
    log_info("wrote %s: %d classes of %s, (%d, %d) float32, rows L2-normalised", out, C, classes,
             e.C, e.D);
    free(sources.s);
    free(st);
    embedding_free(&e);
    for (int c = 0; c < C; c++) free(names[c]);
    free(names);
    return 0;
}
