// Segmentation metrics (DESIGN §4): a confusion matrix over all K classes,
// accumulated per rank and summed across ranks, and the scores computed from
// it: pixel accuracy, mean accuracy, per-class IoU, mIoU, seen / unseen mIoU
// and their harmonic mean hIoU.
//
// Presence rule: a class takes part in a mean IoU when it occurs in the ground
// truth or in the prediction (of non-ignored pixels); mean accuracy averages
// the classes that occur in the ground truth. A mean over an empty set is 0.
#ifndef ZSSEG_METRICS_H
#define ZSSEG_METRICS_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// labels are uint8 and 255 marks ignored pixels
#define METRICS_MAX_CLASSES 255
#define METRICS_IGNORE 255

typedef struct {
    int K;
    uint64_t* m;     // (K, K) rows = ground truth, cols = prediction
    int nthr;        // OpenMP threads confusion_add uses (fixed at init)
    uint64_t* part;  // (nthr, K, K) per-thread counts, all zero between calls
} ConfMat;

// K classes, 1 <= K <= METRICS_MAX_CLASSES; the matrix starts at zero.
void confusion_init(ConfMat* cm, int K);
void confusion_free(ConfMat* cm);
void confusion_reset(ConfMat* cm);

// Count n pixels: m[gt][pred] += 1 for every gt != 255. Fatal if a gt label is
// >= K (other than 255) or a prediction of a counted pixel is >= K. Integer
// counts merged in a fixed order: identical for any number of threads.
void confusion_add(ConfMat* cm,
                   const uint8_t* gt,    // (n) 255 = ignore
                   const uint8_t* pred,  // (n)
                   size_t n);

// Sum the matrices of all ranks of comm in place; every rank gets the total.
// All ranks must call it with the same K.
void confusion_allreduce(ConfMat* cm, MPI_Comm comm);

typedef struct {
    int K;
    uint64_t total;                 // counted pixels
    double pixel_acc;               // trace / total (0 if no pixel)
    double mean_acc;                // mean of acc over classes in GT
    double miou;                    // mean IoU over present classes
    double seen_miou, unseen_miou;  // same, within each class set
    double hiou;                    // 2SU/(S+U), 0 if S+U = 0
    int n_present, n_seen_present, n_unseen_present;
    double iou[METRICS_MAX_CLASSES];            // (K) NaN if absent from GT and prediction
    double acc[METRICS_MAX_CLASSES];            // (K) recall; NaN if absent from GT
    uint64_t gt_pixels[METRICS_MAX_CLASSES];    // (K) row sums
    uint64_t pred_pixels[METRICS_MAX_CLASSES];  // (K) column sums
} Metrics;

// unseen: (K) nonzero = unseen class, or NULL = every class seen.
void metrics_compute(const ConfMat* cm, const uint8_t* unseen, Metrics* out);

// The one-line summary: "pixel acc … mean acc … mIoU … seen mIoU … unseen
// mIoU … hIoU …" (no newline).
void metrics_print_summary(FILE* fp, const Metrics* m);

// Per-class table (id, name, seen/unseen, IoU, acc, GT pixels; "-" for an
// undefined score) followed by the summary line. names: (K) or NULL
// ("class_<id>"); unseen as in metrics_compute.
void metrics_print_table(FILE* fp, const Metrics* m, const char* const* names,
                         const uint8_t* unseen);

// The same content as one JSON object (undefined scores as null).
void metrics_print_json(FILE* fp, const Metrics* m, const char* const* names,
                        const uint8_t* unseen);
// metrics_print_json into PATH, atomically (file_write_atomic).
void metrics_write_json(const char* path, const Metrics* m, const char* const* names,
                        const uint8_t* unseen);

#endif  // ZSSEG_METRICS_H
