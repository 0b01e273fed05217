// Confusion matrix and segmentation scores; see metrics.h.
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "metrics_log.h"

void confusion_init(ConfMat* cm, int K) {
    if (K < 1 || K > METRICS_MAX_CLASSES)
        ZS_FAIL("labels are uint8 with 255 = ignore", "confusion matrix: %d classes (1..%d)", K,
                METRICS_MAX_CLASSES);
    size_t kk = (size_t)K * K;
    cm->K = K;
    cm->nthr = omp_get_max_threads();
    cm->m = (uint64_t*)callocCheck(kk, sizeof(uint64_t));
    cm->part = (uint64_t*)callocCheck((size_t)cm->nthr * kk, sizeof(uint64_t));
}

void confusion_free(ConfMat* cm) {
    free(cm->m);
    free(cm->part);
    memset(cm, 0, sizeof *cm);
}

void confusion_reset(ConfMat* cm) { memset(cm->m, 0, (size_t)cm->K * cm->K * sizeof(uint64_t)); }

// Count pixels [lo, hi) into dst; returns how many had an out-of-range label.
static size_t count_range(uint64_t* dst, const uint8_t* gt, const uint8_t* pred, size_t lo,
                          size_t hi, int K) {
    size_t bad = 0;
    for (size_t i = lo; i < hi; i++) {
        int g = gt[i], p = pred[i];
        if (g == METRICS_IGNORE) continue;
        if (g >= K || p >= K) {
            bad++;
            continue;
        }
        dst[g * K + p]++;
    }
    return bad;
}

void confusion_add(ConfMat* cm, const uint8_t* gt, const uint8_t* pred, size_t n) {
    const int K = cm->K;
    const size_t kk = (size_t)K * K;
    size_t bad = 0;
    // merging the per-thread matrices reads nthr*K*K counters: below that many
    // pixels one thread counting straight into the matrix is faster
    if (cm->nthr == 1 || n < (size_t)cm->nthr * kk) {
        bad = count_range(cm->m, gt, pred, 0, n, K);
    } else {
#pragma omp parallel num_threads(cm->nthr) reduction(+ : bad)
        {
            // the team may be smaller than asked (nested region): chunk by its real size
            int T = omp_get_num_threads(), t = omp_get_thread_num();
            bad += count_range(cm->part + (size_t)t * kk, gt, pred, n * t / T, n * (t + 1) / T, K);
#pragma omp barrier
#pragma omp for schedule(static)
            for (size_t e = 0; e < kk; e++) {
                uint64_t s = 0;
                for (int u = 0; u < T; u++) {  // fixed order; leaves the partials zeroed
                    s += cm->part[(size_t)u * kk + e];
                    cm->part[(size_t)u * kk + e] = 0;
                }
                cm->m[e] += s;
            }
        }
    }
    if (bad) {
        size_t i = 0;
        while (gt[i] == METRICS_IGNORE || (gt[i] < K && pred[i] < K)) i++;
        ZS_FAIL("labels must be < the number of classes or 255 (ignore)",
                "confusion matrix over %d classes: %zu pixels out of range, first at %zu "
                "(gt %d, pred %d)",
                K, bad, i, gt[i], pred[i]);
    }
}

void confusion_allreduce(ConfMat* cm, MPI_Comm comm) {
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, cm->m, cm->K * cm->K, MPI_UINT64_T, MPI_SUM, comm));
}

// Mean of v[k] over the classes with use[k] (0 if none); ascending k.
static double mean_over(const double* v, const uint8_t* use, int K, int* count) {
    double s = 0.0;
    int c = 0;
    for (int k = 0; k < K; k++)
        if (use[k]) {
            s += v[k];
            c++;
        }
    if (count) *count = c;
    return c ? s / c : 0.0;
}

void metrics_compute(const ConfMat* cm, const uint8_t* unseen, Metrics* out) {
    const int K = cm->K;
    memset(out, 0, sizeof *out);
    out->K = K;
    uint64_t trace = 0;
    for (int k = 0; k < K; k++) {
        for (int j = 0; j < K; j++) {
            out->gt_pixels[k] += cm->m[k * K + j];
            out->pred_pixels[k] += cm->m[j * K + k];
        }
        trace += cm->m[k * K + k];
        out->total += out->gt_pixels[k];
    }
    uint8_t in_gt[METRICS_MAX_CLASSES], seen_p[METRICS_MAX_CLASSES], unseen_p[METRICS_MAX_CLASSES],
        present[METRICS_MAX_CLASSES];
    for (int k = 0; k < K; k++) {
        double tp = (double)cm->m[k * K + k];
        double uni = (double)out->gt_pixels[k] + (double)out->pred_pixels[k] - tp;
        out->iou[k] = uni > 0 ? tp / uni : NAN;
        out->acc[k] = out->gt_pixels[k] ? tp / (double)out->gt_pixels[k] : NAN;
        in_gt[k] = out->gt_pixels[k] > 0;
        present[k] = uni > 0;
        int u = unseen && unseen[k];
        seen_p[k] = present[k] && !u;
        unseen_p[k] = present[k] && u;
    }
    out->pixel_acc = out->total ? (double)trace / (double)out->total : 0.0;
    out->mean_acc = mean_over(out->acc, in_gt, K, NULL);
    out->miou = mean_over(out->iou, present, K, &out->n_present);
    out->seen_miou = mean_over(out->iou, seen_p, K, &out->n_seen_present);
    out->unseen_miou = mean_over(out->iou, unseen_p, K, &out->n_unseen_present);
    double S = out->seen_miou, U = out->unseen_miou;
    out->hiou = S + U > 0 ? 2.0 * S * U / (S + U) : 0.0;
}

void metrics_print_summary(FILE* fp, const Metrics* m) {
    fprintf(fp,
            "pixel acc %.4f  mean acc %.4f  mIoU %.4f  seen mIoU %.4f  unseen mIoU %.4f  hIoU %.4f",
            m->pixel_acc, m->mean_acc, m->miou, m->seen_miou, m->unseen_miou, m->hiou);
}

static void print_score(FILE* fp, double v) {
    if (isnan(v))
        fprintf(fp, "  %6s", "-");
    else
        fprintf(fp, "  %6.4f", v);
}

void metrics_print_table(FILE* fp, const Metrics* m, const char* const* names,
                         const uint8_t* unseen) {
    int w = 5;  // width of the name column: the longest name, at least "class"
    for (int k = 0; names && k < m->K; k++) {
        int len = (int)strlen(names[k]);
        if (len > w) w = len;
    }
    if (!names && w < 9) w = 9;  // "class_254"
    fprintf(fp, "%3s  %-*s  %-6s  %6s  %6s  %12s\n", "id", w, "class", "split", "IoU", "acc",
            "GT pixels");
    for (int k = 0; k < m->K; k++) {
        char fallback[24];
        snprintf(fallback, sizeof fallback, "class_%d", k);
        fprintf(fp, "%3d  %-*s  %-6s", k, w, names ? names[k] : fallback,
                unseen && unseen[k] ? "unseen" : "seen");
        print_score(fp, m->iou[k]);
        print_score(fp, m->acc[k]);
        fprintf(fp, "  %12llu\n", (unsigned long long)m->gt_pixels[k]);
    }
    fprintf(fp, "%d of %d classes present (%d seen, %d unseen), %llu pixels\n", m->n_present, m->K,
            m->n_seen_present, m->n_unseen_present, (unsigned long long)m->total);
    metrics_print_summary(fp, m);
    fputc('\n', fp);
}

void metrics_print_json(FILE* fp, const Metrics* m, const char* const* names,
                        const uint8_t* unseen) {
    static const char* keys[] = {"pixel_acc", "mean_acc",    "miou",
                                 "seen_miou", "unseen_miou", "hiou"};
    const double vals[] = {m->pixel_acc, m->mean_acc,    m->miou,
                           m->seen_miou, m->unseen_miou, m->hiou};
    fputs("{\n", fp);
    for (int i = 0; i < 6; i++) {
        fprintf(fp, "  \"%s\": ", keys[i]);
        json_print_number(fp, vals[i]);
        fputs(",\n", fp);
    }
    fprintf(fp, "  \"pixels\": %llu,\n  \"classes\": [\n", (unsigned long long)m->total);
    for (int k = 0; k < m->K; k++) {
        fprintf(fp, "    {\"id\": %d, \"name\": ", k);
        if (names)
            json_print_string(fp, names[k]);
        else
            fprintf(fp, "\"class_%d\"", k);
        fprintf(fp, ", \"unseen\": %s, \"iou\": ", unseen && unseen[k] ? "true" : "false");
        json_print_number(fp, m->iou[k]);
        fputs(", \"acc\": ", fp);
        json_print_number(fp, m->acc[k]);
        fprintf(fp, ", \"gt_pixels\": %llu, \"pred_pixels\": %llu}%s\n",
                (unsigned long long)m->gt_pixels[k], (unsigned long long)m->pred_pixels[k],
                k + 1 < m->K ? "," : "");
    }
    fputs("  ]\n}\n", fp);
}

void metrics_write_json(const char* path, const Metrics* m, const char* const* names,
                        const uint8_t* unseen) {
    char* buf = NULL;
    size_t len = 0;
    FILE* fp = open_memstream(&buf, &len);
    if (!fp) ZS_FAIL("free some memory", "open_memstream: %s", strerror(errno));
    metrics_print_json(fp, m, names, unseen);
    if (fclose(fp) != 0) ZS_FAIL("free some memory", "cannot build '%s'", path);
    file_write_atomic(path, buf, len);
    free(buf);
}
