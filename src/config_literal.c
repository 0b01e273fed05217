// The wide-integer scanner and the system-directory test of config.c; see
// config_literal.h.
#include "config_literal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const char* config_src_text(ConfigSrcText* st, const config_setting_t* s, const char* file) {
    if (st->mem && !config_setting_source_file(s)) return st->mem;
    if (!st->file || strcmp(st->file, file) != 0) {
        free(st->file);
        free(st->text);
        st->file = strdup(file);
        st->text = file_read_all(file, NULL);  // libconfig has just read it
    }
    return st->text;
}

static int is_ident(char c) {
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '*';
}

// Past white space and comments (#, //, /* */).
static const char* skip_blank(const char* p) {
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        const char* close = p[0] == '/' && p[1] == '*' ? strstr(p + 2, "*/") : NULL;
        if (*p == '#' || (p[0] == '/' && p[1] == '/')) p += strcspn(p, "\n");
        else if (p[0] == '/' && p[1] == '*') p = close ? close + 2 : p + strlen(p);
        else return p;
    }
}

// The first integer literal of the value of `name` (on line `line` of text)
// that does not fit an int: its start, length in *len; NULL if none. Floats,
// strings and L-suffixed (64-bit) literals are passed over; lists may span lines.
const char* config_wide_literal(const char* text, int line, const char* name, int* len) {
    const char* p = text;
    for (int l = 1; l < line && (p = strchr(p, '\n')) != NULL; l++) p++;
    size_t nl = strlen(name);
    for (; p; p++) {  // "name" then = or :
        if (!(p = strstr(p, name))) return NULL;
        const char* q = p + nl;
        while (*q == ' ' || *q == '\t') q++;
        if ((p == text || !is_ident(p[-1])) && !is_ident(p[nl]) && (*q == '=' || *q == ':')) {
            p = q + 1;
            break;
        }
    }
    for (int depth = 0; p;) {  // a scalar: one token; a list: up to its closing bracket
        p = skip_blank(p);
        const char* q = p + (*p == '-' || *p == '+');
        if (*p == '[' || *p == '(') {
            depth++, p++;
        } else if ((*p == ']' || *p == ')') && depth > 1) {
            depth--, p++;
        } else if (*p == '"' && depth > 0) {
            for (p++; *p && *p != '"'; p++) p += *p == '\\' && p[1];
            p += *p == '"';
        } else if (isdigit((unsigned char)*q)) {
            int hex = q[0] == '0' && (q[1] == 'x' || q[1] == 'X');
            char* end = NULL;
            errno = 0;
            unsigned long long v = strtoull(q, &end, hex ? 16 : 10);
            int wide = errno == ERANGE || v > (*p == '-' ? 2147483648ull : 2147483647ull);
            int is_float = !hex && (*end == '.' || *end == 'e' || *end == 'E');
            int plain = *end != 'L' && *end != 'l' && !is_float;
            if (wide && plain) {
                *len = (int)(end - p);
                return p;
            }
            if (depth == 0) return NULL;
            for (p = end; is_ident(*p) || *p == '.' ||
                          ((*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E'));)
                p++;  // the rest of a float (1.5e-3)
        } else if (depth > 0 && *p && *p != ']' && *p != ')' && *p != '{' && *p != '}') {
            p++;  // a comma, a word (true) or a stray character inside the list
        } else {
            return NULL;  // the end of the value
        }
    }
    return NULL;
}

// Whether libconfig holds s (or an element of it) as a plain int.
int config_setting_holds_int(const config_setting_t* s) {
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_INT) return 1;
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) return 0;
    for (int k = 0; k < config_setting_length(s); k++)
        if (config_setting_type(config_setting_get_elem(s, (unsigned)k)) == CONFIG_TYPE_INT)
            return 1;
    return 0;
}

void config_src_text_free(ConfigSrcText* st) {
    free(st->file);
    free(st->text);
}

// run.out_dir as a system directory or $HOME itself: the run would write its
// checkpoints and logs among the system's (or the user's) own files. Only the
// directory itself is refused (/var/tmp/run is fine), as written (repeated and
// trailing slashes dropped) and resolved when it exists ("/usr/..", a link).
static int dir_is_system(const char* dir) {
    static const char* const sys[] = {"/",    "/etc", "/usr", "/bin",  "/boot",  "/dev",
                                      "/proc", "/sys", "/sbin", "/var", "/lib",   "/lib32",
                                      "/lib64", "/libx32"};
    for (size_t k = 0; k < sizeof sys / sizeof sys[0]; k++)
        if (strcmp(dir, sys[k]) == 0) return 1;
    const char* home = getenv("HOME");
    char* home_real = home && *home ? realpath(home, NULL) : NULL;
    int hit = home_real && strcmp(dir, home_real) == 0;
    free(home_real);
    return hit;
}

int config_dir_is_system(const char* dir) {
    char* d = strdup(dir);
    size_t n = 0;
    for (const char* c = dir; *c; c++)
        if (*c != '/' || n == 0 || d[n - 1] != '/') d[n++] = *c;
    while (n > 1 && d[n - 1] == '/') n--;
    d[n] = '\0';
    char* real = realpath(dir, NULL);
    int hit = dir_is_system(d) || (real && dir_is_system(real));
    free(real);
    free(d);
    return hit;
}
