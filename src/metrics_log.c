// JSON-lines metrics writer; see metrics_log.h.
#include "metrics_log.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

void json_print_string(FILE* fp, const char* s) {
    fputc('"', fp);
    for (const unsigned char* c = (const unsigned char*)s; *c; c++) {
        switch (*c) {
            case '"': fputs("\\\"", fp); break;
            case '\\': fputs("\\\\", fp); break;
            case '\n': fputs("\\n", fp); break;
            case '\r': fputs("\\r", fp); break;
            case '\t': fputs("\\t", fp); break;
            case '\b': fputs("\\b", fp); break;
            case '\f': fputs("\\f", fp); break;
            default:
                if (*c < 0x20)
                    fprintf(fp, "\\u%04x", *c);
                else
                    fputc(*c, fp);
        }
    }
    fputc('"', fp);
}

void json_print_number(FILE* fp, double v) {
    if (!isfinite(v)) {
        fputs("null", fp);
        return;
    }
    // %.15g is enough for most values and reads better; %.17g always round-trips
    char s[40];
    snprintf(s, sizeof s, "%.15g", v);
    if (strtod(s, NULL) != v) snprintf(s, sizeof s, "%.17g", v);
    fputs(s, fp);
}

struct MetricsLog {
    FILE* fp;
    char* path;
    FILE* line;  // memstream of the line being built, NULL between lines
    char* buf;
    size_t len;
};

MetricsLog* metrics_log_open(const char* path) {
    MetricsLog* log = (MetricsLog*)callocCheck(1, sizeof *log);
    log->fp = file_open_append_nofollow(path);  // never through a link out of the run dir
    log->path = strdup(path);
    if (!log->path) ZS_FAIL("free some memory", "strdup failed");
    return log;
}

static void key_prefix(MetricsLog* log, const char* key) {
    if (!log->line) ZS_FAIL("call metrics_log_begin first", "no open line in '%s'", log->path);
    fputs(", ", log->line);
    json_print_string(log->line, key);
    fputs(": ", log->line);
}

void metrics_log_begin(MetricsLog* log, long step, const char* stage, const char* kind) {
    if (log->line) ZS_FAIL("call metrics_log_end first", "line already open in '%s'", log->path);
    log->line = open_memstream(&log->buf, &log->len);
    if (!log->line) ZS_FAIL("free some memory", "open_memstream: %s", strerror(errno));
    fprintf(log->line, "{\"step\": %ld", step);
    if (stage) metrics_log_str(log, "stage", stage);
    if (kind) metrics_log_str(log, "kind", kind);
}

void metrics_log_num(MetricsLog* log, const char* key, double value) {
    key_prefix(log, key);
    json_print_number(log->line, value);
}

void metrics_log_int(MetricsLog* log, const char* key, long value) {
    key_prefix(log, key);
    fprintf(log->line, "%ld", value);
}

void metrics_log_str(MetricsLog* log, const char* key, const char* value) {
    key_prefix(log, key);
    json_print_string(log->line, value);
}

void metrics_log_end(MetricsLog* log) {
    if (!log->line) ZS_FAIL("call metrics_log_begin first", "no open line in '%s'", log->path);
    fputs("}\n", log->line);
    if (fclose(log->line) != 0)
        ZS_FAIL("free some memory", "cannot build a line for '%s'", log->path);
    log->line = NULL;
    // a line cut by a full disk is cut off again, so a resume appends to whole lines
    struct stat st;
    off_t good = fstat(fileno(log->fp), &st) == 0 ? st.st_size : -1;
    if (fwrite(log->buf, 1, log->len, log->fp) != log->len || fflush(log->fp) != 0) {
        int err = errno;
        if (good >= 0 && ftruncate(fileno(log->fp), good) != 0)
            log_warn("cannot cut the partial line off '%s': %s", log->path, strerror(errno));
        ZS_FAIL("check free disk space and quota", "cannot write '%s': %s", log->path,
                strerror(err));
    }
    free(log->buf);
    log->buf = NULL;
}

void metrics_log_close(MetricsLog* log) {
    if (!log) return;
    if (log->line) metrics_log_end(log);  // keep a line the caller forgot to finish
    fcloseCheck(log->fp, log->path);
    free(log->path);
    free(log);
}
