// Test-split evaluation; see evaluate.h.
#include "evaluate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "infer.h"
#include "loader.h"
#include "resize.h"

void eval_score_batch(ConfMat* cm, const float* logits, const uint8_t* labels, const uint8_t* valid,
                      int n, int K, int Hf, int Wf, int H, int W, int full_resolution,
                      uint8_t* ws) {
    const size_t HW = (size_t)H * W, HWf = (size_t)Hf * Wf;
    const uint8_t* gt = labels;
    size_t np = HW;  // pixels scored per sample
    uint8_t* pred = ws;
    if (full_resolution) {
        cag_predict_labels_resized(logits, n, K, Hf, Wf, H, W, pred);
    } else {
        uint8_t* small = ws + (size_t)n * HWf;
        resize_nearest_labels(small, labels, n, H, W, Hf, Wf);
        cag_predict_labels(logits, n, K, Hf, Wf, pred);
        gt = small;
        np = HWf;
    }
    for (int b = 0; b < n; b++)
        if (!valid || valid[b]) confusion_add(cm, gt + b * np, pred + b * np, np);
}

// The table with a header line, as one heap string (caller frees).
static char* eval_text(const Metrics* mt, const DatasetClasses* cs, long step, long images,
                       int full_resolution, int Hs, int Ws) {
    char* text = NULL;
    size_t len = 0;
    FILE* fp = open_memstream(&text, &len);
    if (!fp) ZS_FAIL("the process is out of memory", "cannot buffer the evaluation table");
    fprintf(fp, "evaluation at step %ld: %ld test images scored at %s resolution %dx%d\n", step,
            images, full_resolution ? "label" : "feature", Hs, Ws);
    metrics_print_table(fp, mt, (const char* const*)cs->names, cs->unseen);
    fclose(fp);
    return text;
}

int evaluate_run(const CagNet* m, const Config* cfg, const DatasetClasses* cs, const Dataset* test,
                 Dist* d, const char* out_dir, long step, Metrics* out) {
    if (cs->K != m->K)
        ZS_FAIL("evaluate with the class list the model was built for (data.classes)",
                "the model has %d classes, the class list %d", m->K, cs->K);
    const int full = config_get_bool(cfg, "eval.full_resolution");
    const int B = config_get_int(cfg, "eval.batch_size");
    const int max_images = config_get_int(cfg, "eval.max_images");
    Dataset lim = *test;  // the first eval.max_images of the list (shallow: shares the paths)
    if (max_images > 0 && max_images < lim.n) lim.n = max_images;
    if (lim.n < 1)
        ZS_FAIL("check data.test_list and data.test_split", "the test split '%s' has no images",
                test->split);

    double t0 = MPI_Wtime();
    Loader* L = loader_open_test(&lim, cfg, d->rank, d->world, B, NULL);
    const int warp = config_get_int(cfg, "data.warp_size");
    CagInfer inf;
    cag_infer_init(&inf, m, B, warp, warp);
    uint8_t* ws = mallocCheck((size_t)B * ((size_t)warp * warp + (size_t)inf.Hf * inf.Wf));
    ConfMat cm;
    confusion_init(&cm, m->K);
    double counts[2] = {0, 0};  // images scored, unreadable images
    const LoaderBatch* b;
    while ((b = loader_next(L))) {
        const float* logits = cag_infer_forward(&inf, m, b->images, b->n);
        eval_score_batch(&cm, logits, b->labels, b->valid, b->n, m->K, inf.Hf, inf.Wf, b->H, b->W,
                         full, ws);
        for (int i = 0; i < b->n; i++) counts[b->valid[i] ? 0 : 1] += 1;
    }
    confusion_allreduce(&cm, d->comm);
    dist_allreduce_doubles(d, counts, 2);
    double secs = MPI_Wtime() - t0;

    Metrics mt;
    metrics_compute(&cm, cs->unseen, &mt);
    if (out) *out = mt;
    if (d->rank == 0) {
        char* text = eval_text(&mt, cs, step, (long)counts[0], full, full ? warp : inf.Hf,
                               full ? warp : inf.Wf);
        log_info("%.*s", (int)strlen(text) - 1, text);  // the table ends with a newline
        log_info("eval: %ld images (%ld unreadable) in %.1f s, %.2f images/s over %d rank(s)",
                 (long)(counts[0] + counts[1]), (long)counts[1], secs,
                 secs > 0 ? (counts[0] + counts[1]) / secs : 0.0, d->world);
        if (out_dir) {
            dir_create(out_dir);
            char path[4096];
            snprintf(path, sizeof path, "%s/eval_%08ld.txt", out_dir, step);
            file_write_atomic(path, text, strlen(text));
            snprintf(path, sizeof path, "%s/eval_%08ld.json", out_dir, step);
            metrics_write_json(path, &mt, (const char* const*)cs->names, cs->unseen);
        }
        free(text);
    }
    confusion_free(&cm);
    free(ws);
    cag_infer_free(&inf);
    loader_close(L);
    return 0;
}
