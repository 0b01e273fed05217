// Training metrics as JSON lines (RUN/metrics.jsonl), one object per line:
//   {"step": 500, "stage": "mixed", "kind": "step1", "loss/ce": 0.61, ...}
// A line is assembled in memory and written with one fwrite + fflush, so a
// crash never leaves half a line and `tail -f` sees whole records. Numbers
// that are not finite are written as null (JSON has no NaN / Infinity).
//
// Also the two JSON primitives other writers (metrics.c) share.
#ifndef ZSSEG_METRICS_LOG_H
#define ZSSEG_METRICS_LOG_H

#include <stdio.h>

// A JSON string literal: quotes, backslash and control characters escaped;
// other bytes (UTF-8) pass through.
void json_print_string(FILE* fp, const char* s);
// A JSON number that reads back to the same double (shortest of %.15g /
// %.17g), or null when v is NaN or infinite.
void json_print_number(FILE* fp, double v);

typedef struct MetricsLog MetricsLog;

// Open PATH for appending (created if missing); fatal with the path named if
// it cannot be opened.
MetricsLog* metrics_log_open(const char* path);
// Start a line with its step, stage and kind (NULL stage / kind are omitted).
void metrics_log_begin(MetricsLog* log, long step, const char* stage, const char* kind);
// Add "key": value to the open line.
void metrics_log_num(MetricsLog* log, const char* key, double value);
void metrics_log_int(MetricsLog* log, const char* key, long value);
void metrics_log_str(MetricsLog* log, const char* key, const char* value);
// Finish the line: write it and flush.
void metrics_log_end(MetricsLog* log);
void metrics_log_close(MetricsLog* log);

#endif  // ZSSEG_METRICS_LOG_H
