// evaluate_run on the generated dataset (tests/dataset_fixture.h) with the
// tiny model, at feature and label resolution, against a serial reference
// composed here: each of the first eval.max_images test samples read,
// warped, remapped and run alone (batch 1), its pixels scored with
// eval_score_batch. evaluate_run batches 2 per rank (a short last batch),
// meets an unreadable sample and, under mpirun (tests/CMakeLists.txt runs it
// on 2 and 3 ranks), splits the list over the ranks: the metrics must equal
// the reference's on every rank. Rank 0 also checks the files it writes.
#include <string.h>

#include "common.h"
#include "dataset_fixture.h"
#include "dist.h"
#include "evaluate.h"
#include "infer.h"
#include "tiny_cagnet.h"
#include "transform.h"

#define N_TEST 7
#define MAX_IMAGES 6
#define BAD_SAMPLE 2  // a truncated JPEG inside the first MAX_IMAGES
#define WARP 33

static void reference(const CagNet* m, const Config* cfg, const DatasetClasses* cs,
                      const Dataset* ds, int full, Metrics* out) {
    TransformConfig tc;
    transform_config_from(&tc, cfg);
    CagInfer a;
    cag_infer_init(&a, m, 1, WARP, WARP);
    float* img = t_falloc(3 * WARP * WARP);
    uint8_t* lbl = malloc(WARP * WARP);
    uint8_t* ws = malloc(WARP * WARP + (size_t)a.Hf * a.Wf);
    ConfMat cm;
    confusion_init(&cm, m->K);
    int good = 0;
    for (int i = 0; i < MAX_IMAGES; i++) {
        DatasetSample s;
        char err[512];
        if (dataset_read(ds, i, &s, err, sizeof err) != SAMPLE_OK) continue;
        size_t sb = transform_scratch_bytes(&tc, s.W);
        void* scratch = malloc(sb);
        transform_test(&tc, s.rgb, s.label, s.H, s.W, img, lbl, scratch, sb);
        label_remap(lbl, WARP * WARP, cs->test_map);
        const float* logits = cag_infer_forward(&a, m, img, 1);
        eval_score_batch(&cm, logits, lbl, NULL, 1, m->K, a.Hf, a.Wf, WARP, WARP, full, ws);
        free(scratch);
        dataset_sample_free(&s);
        good++;
    }
    CHECK(good == MAX_IMAGES - 1, "reference read %d good samples", good);
    metrics_compute(&cm, cs->unseen, out);
    confusion_free(&cm);
    free(img), free(lbl), free(ws);
    cag_infer_free(&a);
}

static int same(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

static void compare(const Metrics* got, const Metrics* want, const char* what) {
    CHECK(got->total == want->total && got->total > 0, "%s: %llu pixels, reference %llu", what,
          (unsigned long long)got->total, (unsigned long long)want->total);
    int bad = 0;
    for (int k = 0; k < want->K; k++)
        bad += !same(got->iou[k], want->iou[k]) || got->gt_pixels[k] != want->gt_pixels[k] ||
               got->pred_pixels[k] != want->pred_pixels[k];
    CHECK(bad == 0, "%s: %d classes differ from the reference", what, bad);
    CHECK(same(got->miou, want->miou) && same(got->hiou, want->hiou) &&
              same(got->pixel_acc, want->pixel_acc),
          "%s: mIoU %g hIoU %g, reference %g %g", what, got->miou, got->hiou, want->miou,
          want->hiou);
    CHECK(want->n_present >= 2, "%s: %d classes present: vacuous", what, want->n_present);
}

static void check_files(const char* out_dir) {
    char path[1300];
    snprintf(path, sizeof path, "%s/eval_00001234.txt", out_dir);
    char* text = file_read_all(path, NULL);
    CHECK(strstr(text, "evaluation at step 1234: 5 test images") && strstr(text, "hIoU") &&
              strstr(text, "c3 "),
          "%s:\n%s", path, text);
    free(text);
    snprintf(path, sizeof path, "%s/eval_00001234.json", out_dir);
    text = file_read_all(path, NULL);
    CHECK(text[0] == '{' && strstr(text, "\"hiou\""), "%s:\n%s", path, text);
    free(text);
}

int main(int argc, char** argv) {
    Dist d;
    dist_init(&d, &argc, &argv);
    char dir[] = "/tmp/zsseg_evaluate_XXXXXX";
    if (d.rank == 0) {
        fx_make(dir, 2, NULL, N_TEST);
        char id[64];
        fx_id(id, sizeof id, "val", BAD_SAMPLE);
        fx_break(dir, "val", id, 100 + BAD_SAMPLE, FX_TRUNCATED_JPEG);
    }
    char* root = dist_broadcast_text(&d, dir);
    Config* cfg = fx_config(root, 0);
    tiny_model_keys(cfg, 1);
    const char* sets[] = {"data.warp_size=33", "eval.batch_size=2", "eval.max_images=6",
                          "data.max_bad_fraction=0.5"};
    for (int i = 0; i < 4; i++) tiny_set(cfg, sets[i]);
    DatasetClasses cs;
    dataset_classes_load(&cs, cfg);
    Dataset ds;
    dataset_open(&ds, cfg, &cs, DATASET_TEST);
    CHECK(ds.n == N_TEST, "test split of %d images", ds.n);
    CagNet m;
    tiny_cagnet(&m, cfg, cs.K, cs.unseen);

    char out_dir[1200];
    snprintf(out_dir, sizeof out_dir, "%s/eval", root);
    for (int full = 0; full < 2; full++) {
        tiny_set(cfg, full ? "eval.full_resolution=true" : "eval.full_resolution=false");
        Metrics got, want;
        int rc = evaluate_run(&m, cfg, &cs, &ds, &d, full ? NULL : out_dir, 1234, &got);
        CHECK(rc == 0, "evaluate_run returned %d", rc);
        reference(&m, cfg, &cs, &ds, full, &want);
        compare(&got, &want, full ? "label resolution" : "feature resolution");
        if (!full && d.rank == 0) check_files(out_dir);
    }

    cagnet_free(&m);
    dataset_free(&ds);
    dataset_classes_free(&cs);
    config_free(cfg);
    MPI_Barrier(d.comm);
    if (d.rank == 0 && !t_failures) fx_remove(root);
    free(root);
    int failed = t_report("test_evaluate");
    dist_finalize(&d);
    return failed;
}
