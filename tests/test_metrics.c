// Metrics: a hand-built confusion matrix with hand-computed scores (a class
// absent from ground truth and prediction, one present only in predictions,
// a seen/unseen split); confusion_add on a small label pair with ignore
// pixels and against a brute-force count for 1-3 threads; the table, the JSON
// file, and the JSON-lines log byte for byte. confusion_allreduce is checked
// under mpirun by tests/mpi_metrics.c (1, 2 and 3 ranks): MPI_Init in a unit
// test that also runs OpenMP threads crashes LeakSanitizer's tracer.
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "metrics.h"
#include "metrics_log.h"
#include "testing.h"

static char tmpdir[] = "/tmp/test_metrics_XXXXXX";

// rows = ground truth, cols = prediction. Class 1 (seen) occurs only in
// predictions, class 2 (unseen) nowhere.
static const uint64_t M4[16] = {
    50, 10, 0, 5,   //
    0,  0,  0, 0,   //
    0,  0,  0, 0,   //
    15, 5,  0, 20,  //
};
static const uint8_t UNSEEN4[4] = {0, 0, 1, 1};
static const char* const NAMES4[4] = {"sky", "tree \"oak\"", "cat", "dog"};

static void set_matrix(ConfMat* cm, const uint64_t* m) {
    memcpy(cm->m, m, (size_t)cm->K * cm->K * sizeof(uint64_t));
}

static void test_hand_matrix(void) {
    ConfMat cm;
    confusion_init(&cm, 4);
    set_matrix(&cm, M4);
    Metrics m;
    metrics_compute(&cm, UNSEEN4, &m);
    // GT rows 65, 0, 0, 40; predicted columns 65, 15, 0, 25; diagonal 50, 0, 0, 20
    CHECK(m.total == 105 && m.gt_pixels[0] == 65 && m.gt_pixels[3] == 40 &&
              m.pred_pixels[1] == 15 && m.pred_pixels[3] == 25,
          "pixel counts");
    CHECK_CLOSE(m.pixel_acc, 70.0 / 105.0, 1e-12, 0, "pixel acc");
    CHECK_CLOSE(m.acc[0], 50.0 / 65.0, 1e-12, 0, "acc[0]");
    CHECK_CLOSE(m.acc[3], 20.0 / 40.0, 1e-12, 0, "acc[3]");
    CHECK(isnan(m.acc[1]) && isnan(m.acc[2]), "acc of classes absent from GT is undefined");
    CHECK_CLOSE(m.mean_acc, (50.0 / 65.0 + 0.5) / 2, 1e-12, 0, "mean acc (classes in GT)");
    CHECK_CLOSE(m.iou[0], 50.0 / 80.0, 1e-12, 0, "iou[0] = 50/(65+65-50)");
    CHECK_CLOSE(m.iou[1], 0.0, 1e-12, 0, "iou[1]: predicted only");
    CHECK(isnan(m.iou[2]), "iou[2]: absent from both is undefined");
    CHECK_CLOSE(m.iou[3], 20.0 / 45.0, 1e-12, 0, "iou[3] = 20/(40+25-20)");
    // present: 0, 1, 3 (class 1 counts: it was predicted)
    CHECK_CLOSE(m.miou, (5.0 / 8 + 0.0 + 4.0 / 9) / 3, 1e-12, 0, "mIoU");
    CHECK_CLOSE(m.seen_miou, (5.0 / 8 + 0.0) / 2, 1e-12, 0, "seen mIoU");
    CHECK_CLOSE(m.unseen_miou, 4.0 / 9, 1e-12, 0, "unseen mIoU (class 2 absent)");
    CHECK_CLOSE(m.hiou, 40.0 / 109.0, 1e-12, 0, "hIoU = 2SU/(S+U)");
    CHECK(m.n_present == 3 && m.n_seen_present == 2 && m.n_unseen_present == 1,
          "present %d seen %d unseen %d", m.n_present, m.n_seen_present, m.n_unseen_present);

    // no unseen set: seen = all, unseen 0, hIoU 0
    metrics_compute(&cm, NULL, &m);
    CHECK_CLOSE(m.seen_miou, 77.0 / 216, 1e-12, 0, "all-seen seen mIoU");
    CHECK(m.unseen_miou == 0.0 && m.hiou == 0.0 && m.n_unseen_present == 0, "all-seen unseen/hIoU");

    // empty matrix: every mean is 0, no NaN in the summary
    confusion_reset(&cm);
    metrics_compute(&cm, UNSEEN4, &m);
    CHECK(m.pixel_acc == 0.0 && m.mean_acc == 0.0 && m.miou == 0.0 && m.seen_miou == 0.0 &&
              m.unseen_miou == 0.0 && m.hiou == 0.0 && m.n_present == 0,
          "empty matrix summary");
    CHECK(isnan(m.iou[0]) && isnan(m.acc[3]), "empty matrix per-class undefined");
    confusion_free(&cm);
}

static void test_add_small(void) {
    ConfMat cm;
    confusion_init(&cm, 3);
    // pixel 2 is ignored with an invalid prediction, pixel 6 ignored with a valid one
    const uint8_t gt[8] = {0, 1, 255, 2, 2, 1, 255, 0};
    const uint8_t pred[8] = {0, 2, 255, 2, 0, 1, 2, 0};
    const uint64_t want[9] = {2, 0, 0, 0, 1, 1, 1, 0, 1};
    confusion_add(&cm, gt, pred, 8);
    int ok = 1;
    for (int e = 0; e < 9; e++) ok &= cm.m[e] == want[e];
    CHECK(ok, "small confusion matrix");
    confusion_add(&cm, gt, pred, 8);
    ok = 1;
    for (int e = 0; e < 9; e++) ok &= cm.m[e] == 2 * want[e];
    CHECK(ok, "confusion_add accumulates");
    confusion_free(&cm);
}

static void child_bad_gt(void) {
    ConfMat cm;
    confusion_init(&cm, 3);
    const uint8_t gt[2] = {0, 3}, pred[2] = {0, 0};
    confusion_add(&cm, gt, pred, 2);
}
static void child_bad_pred(void) {
    ConfMat cm;
    confusion_init(&cm, 3);
    const uint8_t gt[2] = {0, 1}, pred[2] = {0, 3};
    confusion_add(&cm, gt, pred, 2);
}
static void child_too_many_classes(void) {
    ConfMat cm;
    confusion_init(&cm, 256);
}

// random labels in [0, K) with about 10% ignored, brute-force counted
static void test_add_threads(void) {
    enum { K = 7, N = 200003 };
    uint8_t* gt = (uint8_t*)mallocCheck(N);
    uint8_t* pred = (uint8_t*)mallocCheck(N);
    uint64_t want[K * K] = {0};
    for (int i = 0; i < N; i++) {
        gt[i] = hd_rng_uniform(11, 0, i) < 0.1f ? 255 : (uint8_t)(hd_rng_uniform(11, 1, i) * K);
        pred[i] = (uint8_t)(hd_rng_uniform(11, 2, i) * K);
        if (gt[i] != 255) want[gt[i] * K + pred[i]]++;
    }
    int keep = omp_get_max_threads();
    for (int T = 1; T <= 3; T++) {
        omp_set_num_threads(T);
        ConfMat cm;
        confusion_init(&cm, K);
        confusion_add(&cm, gt, pred, N);  // one call: the per-thread path for T > 1
        int ok = 1;
        for (int e = 0; e < K * K; e++) ok &= cm.m[e] == want[e];
        CHECK(ok, "%d threads: one large call equals the brute-force count", T);
        // many small calls (single-thread path) after the partials were merged
        confusion_reset(&cm);
        for (int i = 0; i < N; i += 97)
            confusion_add(&cm, gt + i, pred + i, N - i < 97 ? N - i : 97);
        confusion_add(&cm, gt, pred, N);
        ok = 1;
        for (int e = 0; e < K * K; e++) ok &= cm.m[e] == 2 * want[e];
        CHECK(ok, "%d threads: small calls then a large one", T);
        confusion_free(&cm);
    }
    omp_set_num_threads(keep);
    free(gt);
    free(pred);
}

static void test_table_and_json(void) {
    ConfMat cm;
    confusion_init(&cm, 4);
    set_matrix(&cm, M4);
    Metrics m;
    metrics_compute(&cm, UNSEEN4, &m);
    char* text = NULL;
    size_t len = 0;
    FILE* fp = open_memstream(&text, &len);
    metrics_print_table(fp, &m, NAMES4, UNSEEN4);
    fclose(fp);
    CHECK(strstr(text,
                 "pixel acc 0.6667  mean acc 0.6346  mIoU 0.3565  seen mIoU 0.3125  "
                 "unseen mIoU 0.4444  hIoU 0.3670\n") != NULL,
          "summary line in:\n%s", text);
    CHECK(strstr(text, "  2  cat         unseen       -       -             0\n") != NULL,
          "absent class row in:\n%s", text);
    CHECK(strstr(text, "  0  sky         seen    0.6250  0.7692            65\n") != NULL,
          "class 0 row in:\n%s", text);
    CHECK(strstr(text, "3 of 4 classes present (2 seen, 1 unseen), 105 pixels") != NULL,
          "presence line in:\n%s", text);
    free(text);

    char path[256];
    snprintf(path, sizeof path, "%s/eval.json", tmpdir);
    metrics_write_json(path, &m, NAMES4, UNSEEN4);
    char* js = file_read_all(path, NULL);
    const char* h = strstr(js, "\"hiou\": ");
    CHECK(h && strtod(h + 8, NULL) == 40.0 / 109.0, "hIoU reads back exactly");
    CHECK(strstr(js,
                 "{\"id\": 2, \"name\": \"cat\", \"unseen\": true, \"iou\": null, \"acc\": "
                 "null, \"gt_pixels\": 0, \"pred_pixels\": 0}") != NULL,
          "absent class as null in:\n%s", js);
    CHECK(strstr(js, "\"name\": \"tree \\\"oak\\\"\", \"unseen\": false, \"iou\": 0, ") != NULL,
          "escaped name and zero IoU in:\n%s", js);
    CHECK(strstr(js, "\"iou\": 0.625, \"acc\": ") != NULL, "iou[0] in:\n%s", js);
    free(js);
    confusion_free(&cm);
}

static void test_metrics_log(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/metrics.jsonl", tmpdir);
    MetricsLog* log = metrics_log_open(path);
    metrics_log_begin(log, 5, "step1", "step1");
    metrics_log_num(log, "loss/ce", 0.25);
    metrics_log_num(log, "loss/nan", NAN);
    metrics_log_num(log, "loss/inf", -INFINITY);
    metrics_log_num(log, "lr", 2.5e-4);
    metrics_log_int(log, "images", 1234567890123L);
    metrics_log_end(log);
    metrics_log_close(log);
    log = metrics_log_open(path);  // reopening appends
    metrics_log_begin(log, 6, "mixed", NULL);
    metrics_log_str(log, "note\t", "a\"b\\c\n\x01/\xc3\xa9");
    metrics_log_num(log, "x", (double)0.1f);
    metrics_log_num(log, "big", -1e300);
    metrics_log_end(log);
    metrics_log_close(log);
    char* got = file_read_all(path, NULL);
    const char* want =
        "{\"step\": 5, \"stage\": \"step1\", \"kind\": \"step1\", \"loss/ce\": 0.25, \"loss/nan\": "
        "null, \"loss/inf\": null, \"lr\": 0.00025, \"images\": 1234567890123}\n"
        "{\"step\": 6, \"stage\": \"mixed\", \"note\\t\": \"a\\\"b\\\\c\\n\\u0001/\xc3\xa9\", "
        "\"x\": 0.10000000149011612, \"big\": -1e+300}\n";
    CHECK(strcmp(got, want) == 0, "metrics.jsonl:\n%s\nwant:\n%s", got, want);
    CHECK(strtod("0.10000000149011612", NULL) == (double)0.1f, "%%.17g round trip");
    free(got);
}

int main(void) {
    if (!mkdtemp(tmpdir)) ZS_FAIL("check /tmp", "mkdtemp failed");
    test_hand_matrix();
    test_add_small();
    test_add_threads();
    CHECK(t_exits_with_error(child_bad_gt), "gt label >= K is fatal");
    CHECK(t_exits_with_error(child_bad_pred), "prediction >= K is fatal");
    CHECK(t_exits_with_error(child_too_many_classes), "K > 255 is fatal");
    test_table_and_json();
    test_metrics_log();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return t_report("test_metrics");
}
