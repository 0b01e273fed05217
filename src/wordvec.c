// Streaming word-vector lookup; see wordvec.h. The wanted words go into two
// small hash tables (exact and lower-cased); the file is read entry by entry
// and only the vectors of matching words are decoded and kept.
#include "wordvec.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common.h"

#define HEADER_HINT \
    "word-vector files start with a line 'WORDS DIM' (fastText .vec, word2vec .bin or .txt)"
#define MAX_TARGETS 64  // distinct wanted words one file word can fill (case variants)
#define TRUNC_HINT "the file is truncated or corrupt (an interrupted download or copy?): re-copy it"

// ---------------------------------------------------------------- wanted-word tables
typedef struct {
    int n;            // distinct wanted words
    char** word;      // (n) as given
    char** lower;     // (n) ASCII lower-cased
    int* next_lower;  // (n) next distinct word with the same lower-cased form, -1 at the end
    unsigned cap;     // slots per table, a power of two
    int* exact;       // (cap) index into word, or -1
    int* caseless;    // (cap) first index of a lower-cased form, or -1
} Wanted;

static uint64_t hash_bytes(const char* s, size_t len) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

// Slot of s (len bytes) in table t keyed by keys[]: its slot, or the empty slot ending the probe.
static unsigned table_slot(const int* t, unsigned cap, char* const* keys, const char* s,
                           size_t len) {
    unsigned i = (unsigned)hash_bytes(s, len) & (cap - 1);
    while (t[i] >= 0 && !(strncmp(keys[t[i]], s, len) == 0 && keys[t[i]][len] == '\0'))
        i = (i + 1) & (cap - 1);
    return i;
}

static void lower_copy(char* dst, const char* src, size_t len) {
    for (size_t i = 0; i < len; i++) dst[i] = (char)tolower((unsigned char)src[i]);
    dst[len] = '\0';
}

// Distinct wanted words; uniq[i] is the distinct index of wanted[i].
static void wanted_build(Wanted* w, const char* const* wanted, int nwanted, int* uniq) {
    memset(w, 0, sizeof *w);
    w->cap = 16;
    while (w->cap < 2u * (unsigned)nwanted) w->cap *= 2;
    w->word = (char**)mallocCheck((size_t)nwanted * sizeof(char*));
    w->lower = (char**)mallocCheck((size_t)nwanted * sizeof(char*));
    w->next_lower = (int*)mallocCheck((size_t)nwanted * sizeof(int));
    w->exact = (int*)mallocCheck(w->cap * sizeof(int));
    w->caseless = (int*)mallocCheck(w->cap * sizeof(int));
    for (unsigned i = 0; i < w->cap; i++) w->exact[i] = w->caseless[i] = -1;
    for (int i = 0; i < nwanted; i++) {
        size_t len = strlen(wanted[i]);
        if (len == 0 || len >= WORDVEC_MAX_WORD)
            ZS_FAIL("class names must be 1 to 1023 bytes long",
                    "cannot look up a word of %zu bytes", len);
        unsigned s = table_slot(w->exact, w->cap, w->word, wanted[i], len);
        if (w->exact[s] >= 0) {
            uniq[i] = w->exact[s];
            continue;
        }
        int u = w->n++;
        uniq[i] = u;
        w->exact[s] = u;
        w->word[u] = (char*)mallocCheck(len + 1);
        memcpy(w->word[u], wanted[i], len + 1);
        w->lower[u] = (char*)mallocCheck(len + 1);
        lower_copy(w->lower[u], wanted[i], len);
        w->next_lower[u] = -1;
        unsigned c = table_slot(w->caseless, w->cap, w->lower, w->lower[u], len);
        if (w->caseless[c] < 0) {
            w->caseless[c] = u;
        } else {
            int last = w->caseless[c];
            while (w->next_lower[last] >= 0) last = w->next_lower[last];
            w->next_lower[last] = u;
        }
    }
}

static void wanted_free(Wanted* w) {
    for (int u = 0; u < w->n; u++) free(w->word[u]), free(w->lower[u]);
    free(w->word), free(w->lower), free(w->next_lower), free(w->exact), free(w->caseless);
}

// ---------------------------------------------------------------- matching one file entry
typedef struct {
    const Wanted* w;
    int D;
    float* vec;           // (w->n, D)
    WordVecMatch* match;  // (w->n)
    int nexact;           // distinct words matched exactly so far
    char lower[WORDVEC_MAX_WORD];
} Matcher;

// Distinct words the file word (len bytes) fills: its exact twin unless already
// matched exactly, and the still-missing words of the same lower-cased form.
// Returns how many (index, kind) pairs were put in ids/kinds.
static int matcher_targets(Matcher* m, const char* word, size_t len, int* ids,
                           WordVecMatch* kinds, int cap) {
    const Wanted* w = m->w;
    if (len >= WORDVEC_MAX_WORD) return 0;
    int n = 0;
    int e = w->exact[table_slot(w->exact, w->cap, w->word, word, len)];
    if (e >= 0 && m->match[e] != WORDVEC_EXACT) ids[n] = e, kinds[n++] = WORDVEC_EXACT;
    lower_copy(m->lower, word, len);
    for (int u = w->caseless[table_slot(w->caseless, w->cap, w->lower, m->lower, len)];
         u >= 0 && n < cap; u = w->next_lower[u])
        if (u != e && m->match[u] == WORDVEC_MISSING) ids[n] = u, kinds[n++] = WORDVEC_CASELESS;
    return n;
}

static void matcher_store(Matcher* m, int n, const int* ids, const WordVecMatch* kinds,
                          const float* v) {
    for (int i = 0; i < n; i++) {
        memcpy(m->vec + (size_t)ids[i] * m->D, v, (size_t)m->D * sizeof(float));
        m->match[ids[i]] = kinds[i];
        m->nexact += kinds[i] == WORDVEC_EXACT;
    }
}

// ---------------------------------------------------------------- file structure
// First line "N D"; leaves the stream at the first entry.
static void read_header(FILE* fp, const char* path, long long* nwords, int* D) {
    char line[256];
    size_t n = 0;
    int c;
    while ((c = getc(fp)) != EOF && c != '\n' && n + 1 < sizeof line) line[n++] = (char)c;
    line[n] = '\0';
    char* end = NULL;
    errno = 0;
    long long N = strtoll(line, &end, 10);
    char* p = end;
    long d = strtol(p, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\r') end++;
    if (c != '\n' || errno || p == line || end == p || *end || N < 0 || d < 1 || d > (1 << 20))
        ZS_FAIL(HEADER_HINT, "'%s' is not a word-vector file: its first line is not 'WORDS DIM'",
                path);
    *nwords = N;
    *D = (int)d;
}

// Bytes up to a space, skipping the line breaks between entries. Returns its
// length (words too long to be wanted are consumed and reported as
// WORDVEC_MAX_WORD), or -1 at end of file.
static long read_word(FILE* fp, char* buf) {
    int c;
    do c = getc_unlocked(fp);
    while (c == '\n' || c == '\r');
    if (c == EOF) return -1;
    long n = 0;
    for (; c != EOF && c != ' ' && c != '\n'; c = getc_unlocked(fp))
        if (n < WORDVEC_MAX_WORD - 1) buf[n++] = (char)c;
        else n = WORDVEC_MAX_WORD;
    if (n < WORDVEC_MAX_WORD) buf[n] = '\0';
    return n;
}

// The D values of a text line after its word; returns how many were found
// (D + 1 when there are more than D).
static int parse_values(const char* s, float* out, int D) {
    const char* p = s;
    for (int j = 0; j < D; j++) {
        char* end;
        out[j] = strtof(p, &end);
        if (end == p) return j;
        p = end;
    }
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    return *p ? D + 1 : D;
}

// A text file's first entry is its word then exactly D numbers on one line;
// a binary file's raw float bytes essentially never parse that way. A line of
// at least 2D-1 number characters with another count of values is a text file
// whose header is wrong (binary floats never look like that).
static WordVecFormat sniff_format(FILE* fp, const char* path, int D) {
    long start = ftell(fp);
    char word[WORDVEC_MAX_WORD];
    char* line = NULL;
    size_t cap = 0;
    WordVecFormat f = WORDVEC_BINARY;
    float* tmp = (float*)mallocCheck((size_t)D * sizeof(float));
    ssize_t len = read_word(fp, word) >= 0 ? getline(&line, &cap, fp) : -1;
    int got = len > 0 ? parse_values(line, tmp, D) : 0;
    if (got == D) {
        f = WORDVEC_TEXT;
    } else if (len >= 2 * (ssize_t)D - 1 && strspn(line, "0123456789.eE+- \t\r\n") == (size_t)len) {
        ZS_FAIL(HEADER_HINT, "%s:2: '%s' has %s%d values, the header says %d", path, word,
                got > D ? "more than " : "", got > D ? D : got, D);
    }
    free(line);
    free(tmp);
    if (start < 0 || fseek(fp, start, SEEK_SET) != 0)
        ZS_FAIL("word-vector files must be regular files, not pipes", "cannot seek in '%s'", path);
    return f;
}

static float le_float(const unsigned char* b) {
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void stream_binary(FILE* fp, const char* path, long long nwords, Matcher* m) {
    int D = m->D, ids[MAX_TARGETS];
    WordVecMatch kinds[MAX_TARGETS];
    unsigned char* raw = (unsigned char*)mallocCheck((size_t)D * 4);
    float* v = (float*)mallocCheck((size_t)D * sizeof(float));
    char word[WORDVEC_MAX_WORD];
    for (long long k = 0; k < nwords && m->nexact < m->w->n; k++) {
        long len = read_word(fp, word);
        if (len < 0 || fread(raw, 4, (size_t)D, fp) != (size_t)D)
            ZS_FAIL(TRUNC_HINT, "'%s' ends after %lld of its %lld words", path, k, nwords);
        int n = matcher_targets(m, word, (size_t)len, ids, kinds, MAX_TARGETS);
        if (n == 0) continue;
        for (int j = 0; j < D; j++) v[j] = le_float(raw + 4 * j);
        matcher_store(m, n, ids, kinds, v);
    }
    free(raw);
    free(v);
}

static void stream_text(FILE* fp, const char* path, long long nwords, Matcher* m) {
    int D = m->D, ids[MAX_TARGETS];
    WordVecMatch kinds[MAX_TARGETS];
    float* v = (float*)mallocCheck((size_t)D * sizeof(float));
    char* line = NULL;
    size_t cap = 0;
    for (long long k = 0; k < nwords && m->nexact < m->w->n; k++) {
        if (getline(&line, &cap, fp) < 0)
            ZS_FAIL(TRUNC_HINT, "'%s' ends after %lld of its %lld words", path, k, nwords);
        size_t len = strcspn(line, " \n");
        if (line[len] != ' ')
            ZS_FAIL(TRUNC_HINT, "%s:%lld: expected 'word v1 ... v%d'", path, k + 2, D);
        int n = matcher_targets(m, line, len, ids, kinds, MAX_TARGETS);
        if (n == 0) continue;
        int got = parse_values(line + len, v, D);
        if (got != D)
            ZS_FAIL(TRUNC_HINT, "%s:%lld: '%.*s' has %s%d values, the header says %d", path, k + 2,
                    (int)len, line, got > D ? "more than " : "", got > D ? D : got, D);
        matcher_store(m, n, ids, kinds, v);
    }
    free(line);
    free(v);
}

// ---------------------------------------------------------------- public
void wordvec_lookup(WordVecLookup* out, const char* path, const char* const* wanted, int nwanted) {
    FILE* fp = fopenCheck(path, "rb");
    setvbuf(fp, NULL, _IOFBF, 1 << 20);  // GoogleNews is 3.6 GB: large reads
    memset(out, 0, sizeof *out);
    read_header(fp, path, &out->nwords, &out->D);
    out->format = sniff_format(fp, path, out->D);
    out->nwanted = nwanted;

    int* uniq = (int*)mallocCheck((size_t)nwanted * sizeof(int));
    Wanted w;
    wanted_build(&w, wanted, nwanted, uniq);
    Matcher m = {.w = &w, .D = out->D};
    m.vec = (float*)callocCheck((size_t)w.n * (size_t)out->D, sizeof(float));
    m.match = (WordVecMatch*)callocCheck((size_t)w.n, sizeof(WordVecMatch));
    if (out->format == WORDVEC_BINARY)
        stream_binary(fp, path, out->nwords, &m);
    else
        stream_text(fp, path, out->nwords, &m);
    fcloseCheck(fp, path);

    out->vec = (float*)mallocCheck((size_t)nwanted * (size_t)out->D * sizeof(float));
    out->match = (WordVecMatch*)mallocCheck((size_t)nwanted * sizeof(WordVecMatch));
    for (int i = 0; i < nwanted; i++) {
        memcpy(out->vec + (size_t)i * out->D, m.vec + (size_t)uniq[i] * out->D,
               (size_t)out->D * sizeof(float));
        out->match[i] = m.match[uniq[i]];
    }
    free(m.vec);
    free(m.match);
    free(uniq);
    wanted_free(&w);
}

void wordvec_lookup_free(WordVecLookup* w) {
    free(w->vec);
    free(w->match);
    w->vec = NULL;
    w->match = NULL;
}
