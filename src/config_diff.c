// Which config keys differ between two configs (resume refuses changes
// outside an allowed list); see config.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"

static int values_equal(const Config* a, const Config* b, const CfgSpec* sp) {
    const char* key = sp->key;
    int na = 0, nb = 0;
    switch (sp->type) {
        case CFG_INT: return config_get_int(a, key) == config_get_int(b, key);
        case CFG_FLOAT: return config_get_float(a, key) == config_get_float(b, key);
        case CFG_BOOL: return config_get_bool(a, key) == config_get_bool(b, key);
        case CFG_STRING:
        case CFG_CHOICE: return strcmp(config_get_string(a, key), config_get_string(b, key)) == 0;
        case CFG_INT_LIST: {
            const int *x = config_get_int_list(a, key, &na), *y = config_get_int_list(b, key, &nb);
            for (int i = 0; i < na && na == nb; i++)
                if (x[i] != y[i]) return 0;
            return na == nb;
        }
        case CFG_FLOAT_LIST: {
            const double *x = config_get_float_list(a, key, &na),
                         *y = config_get_float_list(b, key, &nb);
            for (int i = 0; i < na && na == nb; i++)
                if (x[i] != y[i]) return 0;
            return na == nb;
        }
        case CFG_STRING_LIST: {
            const char* const* x = config_get_string_list(a, key, &na);
            const char* const* y = config_get_string_list(b, key, &nb);
            for (int i = 0; i < na && na == nb; i++)
                if (strcmp(x[i], y[i]) != 0) return 0;
            return na == nb;
        }
    }
    return 0;
}

// The value as config text: 5, 0.25, true, "a", [1, 2], ["a", "b"].
static void value_print(FILE* fp, const Config* c, const CfgSpec* sp) {
    const char* key = sp->key;
    char num[32];
    int n = 1;
    switch (sp->type) {
        case CFG_INT: fprintf(fp, "%d", config_get_int(c, key)); return;
        case CFG_FLOAT:
            double_text_shortest(num, sizeof num, config_get_float(c, key));
            fputs(num, fp);
            return;
        case CFG_BOOL: fputs(config_get_bool(c, key) ? "true" : "false", fp); return;
        case CFG_STRING:
        case CFG_CHOICE: fprintf(fp, "\"%s\"", config_get_string(c, key)); return;
        case CFG_INT_LIST: {
            const int* x = config_get_int_list(c, key, &n);
            fputc('[', fp);
            for (int i = 0; i < n; i++) fprintf(fp, "%s%d", i ? ", " : "", x[i]);
            fputc(']', fp);
            return;
        }
        case CFG_FLOAT_LIST: {
            const double* x = config_get_float_list(c, key, &n);
            fputc('[', fp);
            for (int i = 0; i < n; i++) {
                double_text_shortest(num, sizeof num, x[i]);
                fprintf(fp, "%s%s", i ? ", " : "", num);
            }
            fputc(']', fp);
            return;
        }
        case CFG_STRING_LIST: {
            const char* const* x = config_get_string_list(c, key, &n);
            fputc('[', fp);
            for (int i = 0; i < n; i++) fprintf(fp, "%s\"%s\"", i ? ", " : "", x[i]);
            fputc(']', fp);
            return;
        }
    }
}

char* config_diff(const Config* a, const Config* b, const char* const* allowed) {
    char* text = NULL;
    size_t len = 0;
    FILE* fp = open_memstream(&text, &len);
    if (!fp) ZS_FAIL("the process is out of memory", "cannot buffer the config difference");
    for (int k = 0; k < cfg_schema_count; k++) {
        const CfgSpec* sp = &cfg_schema[k];
        int skip = 0;
        for (const char* const* p = allowed; p && *p && !skip; p++)
            skip = strncmp(sp->key, *p, strlen(*p)) == 0;
        if (skip || values_equal(a, b, sp)) continue;
        fprintf(fp, "  %s: ", sp->key);
        value_print(fp, a, sp);
        fputs(" -> ", fp);
        value_print(fp, b, sp);
        fputc('\n', fp);
    }
    fclose(fp);
    if (len == 0) {
        free(text);
        return NULL;
    }
    return text;
}
