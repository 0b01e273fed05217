#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "config_literal.h"

#ifndef ZSSEG_VERSION
#define ZSSEG_VERSION "dev"
#endif

// One resolved key. Which array is used depends on the key's type.
typedef struct {
    int n;         // element count (1 for scalars)
    int* i;        // CFG_INT, CFG_BOOL, CFG_INT_LIST
    double* f;     // CFG_FLOAT, CFG_FLOAT_LIST
    char** s;      // CFG_STRING, CFG_CHOICE, CFG_STRING_LIST
    char* source;  // "default", "FILE:LINE" or "--set"
} CfgValue;

struct Config {
    CfgValue* values;  // (cfg_schema_count,) parallel to cfg_schema
};

typedef enum { KIND_INT, KIND_FLOAT, KIND_BOOL, KIND_STRING } ElemKind;

static int is_list(CfgType t) {
    return t == CFG_INT_LIST || t == CFG_FLOAT_LIST || t == CFG_STRING_LIST;
}

static ElemKind elem_kind(CfgType t) {
    switch (t) {
        case CFG_INT: case CFG_INT_LIST: return KIND_INT;
        case CFG_FLOAT: case CFG_FLOAT_LIST: return KIND_FLOAT;
        case CFG_BOOL: return KIND_BOOL;
        default: return KIND_STRING;
    }
}

// ---------------------------------------------------------------- strings

typedef struct {
    char* p;
    size_t len, cap;
} Buf;

static void buf_vprintf(Buf* b, const char* fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char* p = (char*)realloc(b->p, cap);
        if (!p) ZS_FAIL("the machine is out of memory", "cannot grow a text buffer to %zu bytes", cap);
        b->p = p;
        b->cap = cap;
    }
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

__attribute__((format(printf, 2, 3))) static void buf_printf(Buf* b, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

static char* str_dup(const char* s) {
    size_t n = strlen(s) + 1;
    char* p = (char*)mallocCheck(n);
    memcpy(p, s, n);
    return p;
}

// Copy of s[0..n) without surrounding whitespace.
static char* str_trim(const char* s, size_t n) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n')) n--;
    char* p = (char*)mallocCheck(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

// Shortest decimal that reads back to the same double, always with a '.' or
// an exponent so libconfig parses it as a float.
static void format_double(double x, char* out, size_t size) {
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(out, size, "%.*g", prec, x);
        if (strtod(out, NULL) == x) break;
    }
    // Keep every integer digit of moderate numbers: 50.0, not 5e+01.
    double mag = fabs(x);
    if (mag >= 1 && mag < 1e15) {
        int digits = (int)floor(log10(mag)) + 1;
        if (digits > prec) prec = digits;
    }
    snprintf(out, size, "%.*g", prec, x);
    if (!strpbrk(out, ".e")) strncat(out, ".0", size - strlen(out) - 1);
}

static void buf_quoted(Buf* b, const char* s) {
    buf_printf(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') buf_printf(b, "\\%c", c);
        else if (c == '\n') buf_printf(b, "\\n");
        else if (c == '\t') buf_printf(b, "\\t");
        else if (c < 0x20) buf_printf(b, "\\x%02x", c);
        else buf_printf(b, "%c", c);
    }
    buf_printf(b, "\"");
}

// Levenshtein distance, for "did you mean" suggestions.
static int edit_distance(const char* a, const char* b) {
    size_t la = strlen(a), lb = strlen(b);
    int* row = (int*)mallocCheck((lb + 1) * sizeof(int));
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    int d = row[lb];
    free(row);
    return d;
}

// ---------------------------------------------------------------- schema lookups

int config_schema_find(const char* key) {
    for (int k = 0; k < cfg_schema_count; k++)
        if (strcmp(cfg_schema[k].key, key) == 0) return k;
    return -1;
}

static const char* key_name(const CfgSpec* sp) { return strchr(sp->key, '.') + 1; }

static int key_in_group(const CfgSpec* sp, const char* group, size_t glen) {
    return strncmp(sp->key, group, glen) == 0 && sp->key[glen] == '.';
}

static int group_find(const char* name) {
    for (int g = 0; g < cfg_group_count; g++)
        if (strcmp(cfg_groups[g].name, name) == 0) return g;
    return -1;
}

// Closest schema key to `full` ("group.key" or a bare "key"): a close key of
// the same group first, else the best over all keys, where a key whose own
// name is close but sits in another group also counts as close.
static const char* suggest_key(const char* full) {
    const char* dot = strchr(full, '.');
    const char* name = dot ? dot + 1 : full;
    size_t glen = dot ? (size_t)(dot - full) : 0;
    int best = -1, best_d = INT_MAX;
    if (dot) {
        for (int k = 0; k < cfg_schema_count; k++) {
            if (!key_in_group(&cfg_schema[k], full, glen)) continue;
            int d = edit_distance(name, key_name(&cfg_schema[k]));
            if (d < best_d) best = k, best_d = d;
        }
        int slack = (int)strlen(name) / 3;
        if (best >= 0 && best_d <= (slack > 2 ? slack : 2)) return cfg_schema[best].key;
    }
    best = 0, best_d = INT_MAX;
    for (int k = 0; k < cfg_schema_count; k++) {
        int d = edit_distance(full, cfg_schema[k].key);
        int d_name = edit_distance(name, key_name(&cfg_schema[k])) + 2;
        if (d_name < d) d = d_name;
        if (d < best_d) best = k, best_d = d;
    }
    return cfg_schema[best].key;
}

static const char* suggest_group(const char* name) {
    int best = 0, best_d = INT_MAX;
    for (int g = 0; g < cfg_group_count; g++) {
        int d = edit_distance(name, cfg_groups[g].name);
        if (d < best_d) best = g, best_d = d;
    }
    return cfg_groups[best].name;
}

// Does the '|'-separated list `choices` contain `s`? NULL choices allow anything.
static int choice_ok(const char* choices, const char* s) {
    if (!choices) return 1;
    size_t n = strlen(s);
    for (const char* c = choices;;) {
        const char* end = strchr(c, '|');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if (len == n && strncmp(c, s, n) == 0) return 1;
        if (!end) return 0;
        c = end + 1;
    }
}

// Closest choice if it is plausibly a typo (or s is its prefix), else NULL.
static char* suggest_choice(const char* choices, const char* s) {
    char* copy = str_dup(choices);
    char *best = NULL, *save = NULL;
    int best_d = INT_MAX;
    for (char* c = strtok_r(copy, "|", &save); c; c = strtok_r(NULL, "|", &save)) {
        int d = strncmp(c, s, strlen(s)) == 0 && *s ? 0 : edit_distance(s, c);
        if (d < best_d) best = c, best_d = d;
    }
    int slack = (int)strlen(s) / 2;
    char* out = best && best_d <= (slack > 2 ? slack : 2) ? str_dup(best) : NULL;
    free(copy);
    return out;
}

// ---------------------------------------------------------------- describing types

static void buf_range(Buf* b, const CfgSpec* sp) {
    char lo[40], hi[40];
    if (sp->type == CFG_INT || sp->type == CFG_INT_LIST) {
        snprintf(lo, sizeof lo, "%.0f", sp->min);
        snprintf(hi, sizeof hi, "%.0f", sp->max);
    } else {  // bounds as written in the schema: 0, not 0.0
        snprintf(lo, sizeof lo, "%g", sp->min);
        snprintf(hi, sizeof hi, "%g", sp->max);
    }
    int inf_max = isinf(sp->max);
    buf_printf(b, "%c%s, %s%c", (sp->open & CFG_OPEN_MIN) ? '(' : '[', lo, inf_max ? "inf" : hi,
               (inf_max || (sp->open & CFG_OPEN_MAX)) ? ')' : ']');
}

static void buf_choices(Buf* b, const char* choices, const char* quote) {
    for (const char* c = choices; *c; c++) {
        if (c == choices) buf_printf(b, "%s", quote);
        if (*c == '|') buf_printf(b, "%s, %s", quote, quote);
        else buf_printf(b, "%c", *c);
    }
    buf_printf(b, "%s", quote);
}

// "int in [8, 8192]", "one of auto, cpu, cuda", "list of 2 floats, each in [0.05, 8]".
static void buf_expected(Buf* b, const CfgSpec* sp) {
    static const char* elem[] = {"int", "float", "bool", "string"};
    const char* e = elem[elem_kind(sp->type)];
    if (is_list(sp->type)) {
        if (sp->len) buf_printf(b, "list of %d %ss", sp->len, e);
        else buf_printf(b, "list of %ss", e);
    } else if (sp->type == CFG_CHOICE) {
        buf_printf(b, "one of ");
        buf_choices(b, sp->choices, "");
        return;
    } else {
        buf_printf(b, "%s", e);
    }
    if (sp->type == CFG_INT || sp->type == CFG_FLOAT) {
        buf_printf(b, " in ");
        buf_range(b, sp);
    } else if (sp->type == CFG_INT_LIST || sp->type == CFG_FLOAT_LIST) {
        buf_printf(b, ", each in ");
        buf_range(b, sp);
    } else if (sp->type == CFG_STRING_LIST && sp->choices) {
        buf_printf(b, ", each one of ");
        buf_choices(b, sp->choices, "");
    }
}

// "<what>; expected <type>" as a heap string.
__attribute__((format(printf, 2, 3))) static char* problem(const CfgSpec* sp, const char* fmt, ...) {
    Buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    buf_printf(&b, "; expected ");
    buf_expected(&b, sp);
    return b.p;
}

// ---------------------------------------------------------------- values

static void value_clear(CfgValue* v) {
    if (v->s)
        for (int k = 0; k < v->n; k++) free(v->s[k]);
    free(v->i);
    free(v->f);
    free(v->s);
    free(v->source);
    memset(v, 0, sizeof *v);
}

static void value_alloc(CfgValue* v, CfgType t, int n) {
    memset(v, 0, sizeof *v);
    v->n = n;
    switch (elem_kind(t)) {
        case KIND_INT: case KIND_BOOL: v->i = (int*)callocCheck((size_t)n, sizeof(int)); break;
        case KIND_FLOAT: v->f = (double*)callocCheck((size_t)n, sizeof(double)); break;
        case KIND_STRING: v->s = (char**)callocCheck((size_t)n, sizeof(char*)); break;
    }
}

// "float 368.5", "string \"big\"", "a list" — what a libconfig setting holds.
static void buf_setting(Buf* b, const config_setting_t* s) {
    char num[40];
    switch (config_setting_type(s)) {
        case CONFIG_TYPE_INT: case CONFIG_TYPE_INT64:
            buf_printf(b, "int %lld", config_setting_get_int64(s)); break;
        case CONFIG_TYPE_FLOAT:
            format_double(config_setting_get_float(s), num, sizeof num);
            buf_printf(b, "float %s", num);
            break;
        case CONFIG_TYPE_BOOL:
            buf_printf(b, "bool %s", config_setting_get_bool(s) ? "true" : "false"); break;
        case CONFIG_TYPE_STRING:
            buf_printf(b, "string ");
            buf_quoted(b, config_setting_get_string(s));
            break;
        case CONFIG_TYPE_GROUP: buf_printf(b, "a group { ... }"); break;
        default: buf_printf(b, "a list"); break;
    }
}

// "<what>got float 368.5<note>; expected int in [8, 8192]": a setting of the wrong type.
static char* problem_setting(const CfgSpec* sp, const char* what, const config_setting_t* s,
                             const char* note) {
    Buf b = {0};
    buf_setting(&b, s);
    char* p = problem(sp, "%sgot %s%s", what, b.p, note);
    free(b.p);
    return p;
}

// Element k of v from a libconfig scalar setting. Returns NULL or a problem.
static char* elem_from_setting(const CfgSpec* sp, const config_setting_t* s, CfgValue* v, int k,
                               const char* what) {
    int t = config_setting_type(s);
    ElemKind kind = elem_kind(sp->type);
    int is_int = t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
    if (kind == KIND_INT && is_int) {
        long long x = config_setting_get_int64(s);
        if (x < INT_MIN || x > INT_MAX) return problem(sp, "%s%lld does not fit in an int", what, x);
        v->i[k] = (int)x;
    } else if (kind == KIND_FLOAT && (is_int || t == CONFIG_TYPE_FLOAT)) {
        v->f[k] = is_int ? (double)config_setting_get_int64(s) : config_setting_get_float(s);
    } else if (kind == KIND_BOOL && t == CONFIG_TYPE_BOOL) {
        v->i[k] = config_setting_get_bool(s);
    } else if (kind == KIND_STRING && t == CONFIG_TYPE_STRING) {
        v->s[k] = str_dup(config_setting_get_string(s));
    } else {
        return problem_setting(sp, what, s, "");
    }
    return NULL;
}

static char* value_from_setting(const CfgSpec* sp, const config_setting_t* s, CfgValue* v) {
    memset(v, 0, sizeof *v);
    int t = config_setting_type(s);
    if (!is_list(sp->type)) {
        value_alloc(v, sp->type, 1);
        return elem_from_setting(sp, s, v, 0, "");
    }
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
        return problem_setting(sp, "", s, " (write lists as [a, b, ...])");
    int n = config_setting_length(s);
    value_alloc(v, sp->type, n);
    for (int k = 0; k < n; k++) {
        const config_setting_t* e = config_setting_get_elem(s, (unsigned)k);
        char what[48];
        snprintf(what, sizeof what, "element %d: ", k + 1);
        char* p = elem_from_setting(sp, e, v, k, what);
        if (p) return p;
    }
    return NULL;
}

// Element k of v from text (a --set value or a schema default).
static char* elem_from_text(const CfgSpec* sp, const char* text, CfgValue* v, int k,
                            const char* what) {
    char* end = NULL;
    errno = 0;
    switch (elem_kind(sp->type)) {
        case KIND_INT: {
            long long x = strtoll(text, &end, 10);
            if (!*text || *end || errno == ERANGE || x < INT_MIN || x > INT_MAX)
                return problem(sp, "%sgot \"%s\"", what, text);
            v->i[k] = (int)x;
            return NULL;
        }
        case KIND_FLOAT: {
            double x = strtod(text, &end);
            if (!*text || *end || !isfinite(x)) return problem(sp, "%sgot \"%s\"", what, text);
            v->f[k] = x;
            return NULL;
        }
        case KIND_BOOL:
            if (strcasecmp(text, "true") == 0) v->i[k] = 1;
            else if (strcasecmp(text, "false") == 0) v->i[k] = 0;
            else return problem(sp, "%sgot \"%s\" (write true or false)", what, text);
            return NULL;
        case KIND_STRING: {
            size_t n = strlen(text);
            int quoted = n >= 2 && text[0] == '"' && text[n - 1] == '"';
            v->s[k] = quoted ? str_trim(text + 1, n - 2) : str_dup(text);
            return NULL;
        }
    }
    return NULL;
}

// A value from --set text: scalars as written; lists comma-separated
// ("2,5,10") or in libconfig syntax ("[2, 5, 10]", "(\"a\", \"b\")").
static char* value_from_text(const CfgSpec* sp, const char* raw, CfgValue* v) {
    memset(v, 0, sizeof *v);
    char* text = str_trim(raw, strlen(raw));
    char* err = NULL;
    if (!is_list(sp->type)) {
        value_alloc(v, sp->type, 1);
        err = elem_from_text(sp, text, v, 0, "");
    } else if (text[0] == '[' || text[0] == '(') {
        char* doc = strf("v = %s;", text);
        config_t lc;
        config_init(&lc);
        if (config_read_string(&lc, doc)) err = value_from_setting(sp, config_lookup(&lc, "v"), v);
        else err = problem(sp, "cannot parse \"%s\" (%s)", text, config_error_text(&lc));
        config_destroy(&lc);
        free(doc);
    } else {
        int n = *text ? 1 : 0;
        for (const char* c = text; *c; c++) n += *c == ',';
        value_alloc(v, sp->type, n);
        const char* start = text;
        for (int k = 0; k < n && !err; k++) {
            const char* end = strchr(start, ',');
            if (!end) end = start + strlen(start);
            char* elem = str_trim(start, (size_t)(end - start));
            char what[48];
            snprintf(what, sizeof what, "element %d: ", k + 1);
            err = elem_from_text(sp, elem, v, k, what);
            free(elem);
            start = end + 1;
        }
    }
    free(text);
    return err;
}

// Range, length and choice checks shared by every source.
static char* value_check(const CfgSpec* sp, const CfgValue* v) {
    if (is_list(sp->type) && sp->len && v->n != sp->len)
        return problem(sp, "got %d element%s", v->n, v->n == 1 ? "" : "s");
    for (int k = 0; k < v->n; k++) {
        char at[48] = "";  // names the element of a list
        if (is_list(sp->type)) snprintf(at, sizeof at, "element %d ", k + 1);
        if (v->f || (v->i && sp->type != CFG_BOOL)) {
            double x = v->f ? v->f[k] : (double)v->i[k];
            int below = (sp->open & CFG_OPEN_MIN) ? x <= sp->min : x < sp->min;
            int above = (sp->open & CFG_OPEN_MAX) ? x >= sp->max : x > sp->max;
            if (below || above || !isfinite(x)) {
                char num[40];
                if (v->f) format_double(x, num, sizeof num);
                else snprintf(num, sizeof num, "%d", v->i[k]);
                if (*at) return problem(sp, "%s(%s) is out of range", at, num);
                return problem(sp, "%s is out of range", num);
            }
        }
        if (v->s && !choice_ok(sp->choices, v->s[k])) {
            char* near = suggest_choice(sp->choices, v->s[k]);
            char* p = problem(sp, "%s\"%s\" is not a valid choice%s%s%s", at, v->s[k],
                              near ? " (did you mean \"" : "", near ? near : "", near ? "\"?)" : "");
            free(near);
            return p;
        }
    }
    return NULL;
}

// Parse-and-check result goes into cfg (taking ownership), or is freed.
static char* value_commit(Config* cfg, int idx, CfgValue* v, const char* source) {
    char* err = value_check(&cfg_schema[idx], v);
    if (err) {
        value_clear(v);
        return err;
    }
    value_clear(&cfg->values[idx]);
    cfg->values[idx] = *v;
    cfg->values[idx].source = str_dup(source);
    return NULL;
}

// ---------------------------------------------------------------- loading

Config* config_new(void) {
    Config* cfg = (Config*)mallocCheck(sizeof(Config));
    cfg->values = (CfgValue*)callocCheck((size_t)cfg_schema_count, sizeof(CfgValue));
    for (int k = 0; k < cfg_schema_count; k++) {
        CfgValue v;
        char* err = value_from_text(&cfg_schema[k], cfg_schema[k].def, &v);
        if (!err) err = value_commit(cfg, k, &v, "default");
        else value_clear(&v);
        if (err) ZS_FAIL("fix the default in src/schema.c", "schema default of %s: %s", cfg_schema[k].key, err);
    }
    return cfg;
}

void config_free(Config* cfg) {
    if (!cfg) return;
    for (int k = 0; k < cfg_schema_count; k++) value_clear(&cfg->values[k]);
    free(cfg->values);
    free(cfg);
}

// Appends one message line to the error list.
static void add_error(Buf* errs, char* msg) {
    buf_printf(errs, "%s%s", errs->len ? "\n" : "", msg);
    free(msg);
}

// ---------------------------------------------------------------- wide integer literals
// libconfig 1.5 keeps an unsuffixed integer literal in an int and wraps what
// does not fit, silently (batch_size = 4294967306 reads as 10, 0x1FFFFFFFF as
// -1). The literals of a setting's value are read again from its source text.

// "KEY at FILE:LINE: VALUE is out of range [min, max]" when the value of s has
// an integer literal libconfig wrapped; NULL otherwise.
static char* wide_problem(ConfigSrcText* st, const config_setting_t* s, const char* file,
                          const char* full, const CfgSpec* sp) {
    if (!config_setting_holds_int(s)) return NULL;
    int len = 0, line = config_setting_source_line(s);
    const char* lit = config_wide_literal(config_src_text(st, s, file), line, config_setting_name(s), &len);
    if (!lit) return NULL;
    Buf range = {0};
    if (sp && (elem_kind(sp->type) == KIND_INT || elem_kind(sp->type) == KIND_FLOAT))
        buf_range(&range, sp);
    else
        buf_printf(&range, "[%d, %d]", INT_MIN, INT_MAX);
    char* p = strf("%s at %s:%d: %.*s is out of range %s (write it as a number in that range; "
                   "this libconfig wraps integers wider than 32 bits)",
                   full, file, line, len, lit, range.p);
    free(range.p);
    return p;
}

// Every setting of a parsed file, checked against the schema. All problems are
// reported, one per line, so a user can fix them in one pass.
static char* load_settings(Config* cfg, config_t* lc, const char* name, const char* mem) {
    ConfigSrcText st = {mem, NULL, NULL};
    Buf errs = {0};
    const config_setting_t* root = config_root_setting(lc);
    for (int gi = 0; gi < config_setting_length(root); gi++) {
        const config_setting_t* g = config_setting_get_elem(root, (unsigned)gi);
        const char* file = config_setting_source_file(g) ? config_setting_source_file(g) : name;
        const char* gname = config_setting_name(g);
        int line = config_setting_source_line(g);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            if (group_find(gname) >= 0)
                add_error(&errs, strf("%s:%d: '%s' must be a group: %s = { key = value; ... };",
                                      file, line, gname, gname));
            else
                add_error(&errs, strf("%s:%d: '%s' is not inside a group (did you mean '%s'?)",
                                      file, line, gname, suggest_key(gname)));
            continue;
        }
        if (config_setting_length(g) == 0 && group_find(gname) < 0)
            add_error(&errs, strf("%s:%d: unknown group '%s' (did you mean '%s'?)", file, line,
                                  gname, suggest_group(gname)));
        for (int si = 0; si < config_setting_length(g); si++) {
            const config_setting_t* s = config_setting_get_elem(g, (unsigned)si);
            const char* sfile = config_setting_source_file(s) ? config_setting_source_file(s) : name;
            char* full = strf("%s.%s", gname, config_setting_name(s));
            char* where = strf("%s:%d", sfile, config_setting_source_line(s));
            int idx = config_schema_find(full);
            char* wide = wide_problem(&st, s, sfile, full, idx >= 0 ? &cfg_schema[idx] : NULL);
            if (wide) {
                add_error(&errs, wide);
            } else if (idx < 0) {
                add_error(&errs, strf("%s: unknown key '%s' (did you mean '%s'?)", where, full,
                                      suggest_key(full)));
            } else {
                CfgValue v;
                char* err = value_from_setting(&cfg_schema[idx], s, &v);
                if (err) value_clear(&v);
                else err = value_commit(cfg, idx, &v, where);
                if (err) add_error(&errs, strf("%s: %s: %s", where, full, err));
                free(err);
            }
            free(where);
            free(full);
        }
    }
    config_src_text_free(&st);
    return errs.p;
}

static char* syntax_error(const config_t* lc, const char* name) {
    const char* file = config_error_file(lc) ? config_error_file(lc) : name;
    if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
        return strf("cannot read config file '%s' (%s): is it a regular, readable file?", file,
                    config_error_text(lc));
    if (strstr(config_error_text(lc), "include"))
        return strf("%s:%d: %s (@include paths are relative to the including file)", file,
                    config_error_line(lc), config_error_text(lc));
    return strf("%s:%d: %s (config files use libconfig syntax: group = { key = value; ... };)",
                file, config_error_line(lc), config_error_text(lc));
}

char* config_load_file(Config* cfg, const char* path) {
    char* bad = file_readable_problem(path, "config file");
    if (bad) return bad;
    config_t lc;
    config_init(&lc);
    char* dir_copy = str_dup(path);
    config_set_include_dir(&lc, dirname(dir_copy));  // @include paths are relative to the file
    char* err = config_read_file(&lc, path) ? load_settings(cfg, &lc, path, NULL)
                                            : syntax_error(&lc, path);
    config_destroy(&lc);
    free(dir_copy);
    return err;
}

char* config_load_string(Config* cfg, const char* text, const char* name) {
    config_t lc;
    config_init(&lc);
    char* err = config_read_string(&lc, text) ? load_settings(cfg, &lc, name, text)
                                              : syntax_error(&lc, name);
    config_destroy(&lc);
    return err;
}

char* config_apply_set(Config* cfg, const char* assignment) {
    const char* eq = strchr(assignment, '=');
    if (!eq) return strf("--set %s: expected group.key=value", assignment);
    char* key = str_trim(assignment, (size_t)(eq - assignment));
    int idx = config_schema_find(key);
    char* err = NULL;
    if (idx < 0) {
        err = strf("--set %s: unknown key '%s' (did you mean '%s'?)", assignment, key,
                   suggest_key(key));
    } else {
        CfgValue v;
        char* p = value_from_text(&cfg_schema[idx], eq + 1, &v);
        if (p) value_clear(&v);
        else p = value_commit(cfg, idx, &v, "--set");
        if (p) err = strf("--set %s: %s", assignment, p);
        free(p);
    }
    free(key);
    return err;
}

static const CfgValue* value_of(const Config* cfg, const char* key, CfgType want, int want2);

char* config_validate(const Config* cfg) {
    Buf errs = {0};
    const char* out_dir = config_get_string(cfg, "run.out_dir");
    if (*out_dir && config_dir_is_system(out_dir))
        add_error(&errs, strf("run.out_dir (%s) is '%s', a system or home directory: a run writes "
                              "its checkpoints and logs there; give the run a directory of its "
                              "own, e.g. run.out_dir = \"runs/NAME\"; or --run-dir runs/NAME",
                              config_source(cfg, "run.out_dir"), out_dir));
    // Lists that pair up element by element.
    static const char* pairs[][2] = {{"model.gen_widths", "model.gen_dropouts"}};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        const CfgValue* a = &cfg->values[config_schema_find(pairs[p][0])];
        const CfgValue* b = &cfg->values[config_schema_find(pairs[p][1])];
        if (a->n != b->n)
            add_error(&errs, strf("%s (%s) has %d elements but %s (%s) has %d: they pair up one "
                                  "to one", pairs[p][1], b->source, b->n, pairs[p][0], a->source,
                                  a->n));
    }
    // Ranges written as [lo, hi] or as two keys.
    const CfgValue* sr = value_of(cfg, "data.scale_range", CFG_FLOAT_LIST, -1);
    if (sr->f[0] > sr->f[1])
        add_error(&errs, strf("data.scale_range (%s): min %g is larger than max %g", sr->source,
                              sr->f[0], sr->f[1]));
    if (config_get_int(cfg, "synth.min_regions") > config_get_int(cfg, "synth.max_regions"))
        add_error(&errs, strf("synth.min_regions (%s) is larger than synth.max_regions (%s)",
                              config_source(cfg, "synth.min_regions"),
                              config_source(cfg, "synth.max_regions")));
    if (config_get_int(cfg, "sign.posenc_channels") % 4)
        add_error(&errs, strf("sign.posenc_channels (%s) must be a multiple of 4: half for x, "
                              "half for y, in sin/cos pairs",
                              config_source(cfg, "sign.posenc_channels")));
    if (config_get_int(cfg, "cagnetv2.pixelcnn_kernel") % 2 == 0)
        add_error(&errs, strf("cagnetv2.pixelcnn_kernel (%s) must be odd",
                              config_source(cfg, "cagnetv2.pixelcnn_kernel")));
    return errs.p;
}

char* config_resolve(Config** out, const char* path, const char* const* sets, int nsets) {
    Config* cfg = config_new();
    char* err = path ? config_load_file(cfg, path) : NULL;
    for (int k = 0; k < nsets && !err; k++) err = config_apply_set(cfg, sets[k]);
    if (!err) err = config_validate(cfg);
    if (err) {
        config_free(cfg);
        cfg = NULL;
    }
    *out = cfg;
    return err;
}

// ---------------------------------------------------------------- getters

static const char* type_name(CfgType t) {
    static const char* names[] = {"int", "float", "bool", "string", "choice",
                                  "int list", "float list", "string list"};
    return names[t];
}

// The value of `key`, which must have type `want` (or `want2`, -1 for none).
static const CfgValue* value_of(const Config* cfg, const char* key, CfgType want, int want2) {
    int idx = config_schema_find(key);
    if (idx < 0)
        ZS_FAIL("this is a bug in zsseg: add the key to src/schema.c or fix its spelling",
                "config key '%s' is not in the schema", key);
    CfgType t = cfg_schema[idx].type;
    if (t != want && (int)t != want2)
        ZS_FAIL("this is a bug in zsseg: use the getter matching the schema type",
                "config key '%s' has type %s but was read as %s", key, type_name(t), type_name(want));
    return &cfg->values[idx];
}

int config_get_int(const Config* cfg, const char* key) {
    return value_of(cfg, key, CFG_INT, -1)->i[0];
}
double config_get_float(const Config* cfg, const char* key) {
    return value_of(cfg, key, CFG_FLOAT, -1)->f[0];
}
int config_get_bool(const Config* cfg, const char* key) {
    return value_of(cfg, key, CFG_BOOL, -1)->i[0];
}
const char* config_get_string(const Config* cfg, const char* key) {
    return value_of(cfg, key, CFG_STRING, CFG_CHOICE)->s[0];
}
const int* config_get_int_list(const Config* cfg, const char* key, int* n) {
    const CfgValue* v = value_of(cfg, key, CFG_INT_LIST, -1);
    *n = v->n;
    return v->i;
}
const double* config_get_float_list(const Config* cfg, const char* key, int* n) {
    const CfgValue* v = value_of(cfg, key, CFG_FLOAT_LIST, -1);
    *n = v->n;
    return v->f;
}
const char* const* config_get_string_list(const Config* cfg, const char* key, int* n) {
    const CfgValue* v = value_of(cfg, key, CFG_STRING_LIST, -1);
    *n = v->n;
    return (const char* const*)v->s;
}

int config_is(const Config* cfg, const char* key, const char* value) {
    int idx = config_schema_find(key);
    const CfgValue* v = idx >= 0 && cfg_schema[idx].type == CFG_STRING_LIST
                            ? value_of(cfg, key, CFG_STRING_LIST, -1)
                            : value_of(cfg, key, CFG_STRING, CFG_CHOICE);
    for (int k = 0; k < v->n; k++)
        if (strcmp(v->s[k], value) == 0) return 1;
    return 0;
}

const char* config_source(const Config* cfg, const char* key) {
    int idx = config_schema_find(key);
    if (idx < 0)
        ZS_FAIL("this is a bug in zsseg: add the key to src/schema.c or fix its spelling",
                "config key '%s' is not in the schema", key);
    return cfg->values[idx].source;
}

// ---------------------------------------------------------------- output

// A value as a libconfig literal: 368, 0.00025, true, "auto", [0.5, 1.5].
static void buf_value(Buf* b, CfgType t, const CfgValue* v) {
    if (is_list(t)) buf_printf(b, "[");
    for (int k = 0; k < v->n; k++) {
        if (k) buf_printf(b, ", ");
        char num[40];
        switch (elem_kind(t)) {
            case KIND_INT: buf_printf(b, "%d", v->i[k]); break;
            case KIND_FLOAT: format_double(v->f[k], num, sizeof num); buf_printf(b, "%s", num); break;
            case KIND_BOOL: buf_printf(b, "%s", v->i[k] ? "true" : "false"); break;
            case KIND_STRING: buf_quoted(b, v->s[k]); break;
        }
    }
    if (is_list(t)) buf_printf(b, "]");
}

char* config_resolved_text(const Config* cfg) {
    Buf b = {0};
    buf_printf(&b, "# zsseg %s resolved configuration: every key, with where its value came from.\n",
               ZSSEG_VERSION);
    for (int g = 0; g < cfg_group_count; g++) {
        const char* gname = cfg_groups[g].name;
        buf_printf(&b, "%s = {\n", gname);
        for (int k = 0; k < cfg_schema_count; k++) {
            if (!key_in_group(&cfg_schema[k], gname, strlen(gname))) continue;
            size_t start = b.len;
            buf_printf(&b, "  %s = ", key_name(&cfg_schema[k]));
            buf_value(&b, cfg_schema[k].type, &cfg->values[k]);
            buf_printf(&b, ";");
            int width = (int)(b.len - start);
            // A newline in a file name would end the comment early.
            buf_printf(&b, "%*s# ", width < 44 ? 44 - width : 1, "");
            for (const char* c = cfg->values[k].source; *c; c++)
                buf_printf(&b, "%c", *c == '\n' || *c == '\r' ? ' ' : *c);
            buf_printf(&b, "\n");
        }
        buf_printf(&b, "};\n");
    }
    return b.p;
}

// Markdown table cell text: '|' would end the cell.
static void buf_cell(Buf* b, const char* s) {
    for (; *s; s++) buf_printf(b, *s == '|' ? "\\|" : "%c", *s);
}

char* config_reference_markdown(void) {
    Buf b = {0};
    Config* defaults = config_new();
    buf_printf(&b,
               "Generated from the schema in `src/schema.c` by `zsseg config --reference`. Set a "
               "key in a config file as `group = { key = value; };` or on the command line as "
               "`--set group.key=value` (lists: `--set model.msc_scales=0.5,0.75`). Ranges use "
               "interval notation: `[` and `]` include the bound, `(` and `)` exclude it. "
               "`zsseg config -c FILE` prints every resolved value with its source.\n");
    for (int g = 0; g < cfg_group_count; g++) {
        const char* gname = cfg_groups[g].name;
        buf_printf(&b, "\n### `%s`: %s\n\n", gname, cfg_groups[g].help);
        buf_printf(&b, "| key | type | default | allowed | description |\n|---|---|---|---|---|\n");
        for (int k = 0; k < cfg_schema_count; k++) {
            const CfgSpec* sp = &cfg_schema[k];
            if (!key_in_group(sp, gname, strlen(gname))) continue;
            buf_printf(&b, "| `%s` | %s", sp->key, type_name(sp->type));
            if (sp->len) buf_printf(&b, " (%d)", sp->len);
            Buf def = {0};
            buf_value(&def, sp->type, &defaults->values[k]);
            buf_printf(&b, " | `");
            buf_cell(&b, def.p);
            buf_printf(&b, "` | ");
            free(def.p);
            if (sp->type == CFG_INT || sp->type == CFG_FLOAT || sp->type == CFG_INT_LIST ||
                sp->type == CFG_FLOAT_LIST)
                buf_range(&b, sp);
            else if (sp->choices)
                buf_choices(&b, sp->choices, "`");
            else if (sp->type == CFG_BOOL)
                buf_printf(&b, "`true`, `false`");
            else
                buf_printf(&b, "-");
            buf_printf(&b, " | ");
            buf_cell(&b, sp->help);
            buf_printf(&b, " |\n");
        }
    }
    config_free(defaults);
    return b.p;
}
