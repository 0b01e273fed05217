// Dataset index on generated datasets (tests/dataset_fixture.h): class list
// and the remapping tables (exact, all 256 values), id-list parsing and folder
// listing, decoded samples, unseen masking, the strict-inductive filter, bad
// samples reported by file name (truncated JPEG, label PNG of the wrong size,
// label value 200 in a 21-class set, missing file), `zsseg data check` output
// (problem count and class pixel histogram) and configuration errors.
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "dataset.h"
#include "dataset_fixture.h"
#include "testing.h"
#include "transform.h"

#define N_TRAIN 6
#define N_TEST 4
static const uint8_t has_unseen[N_TRAIN] = {0, 1, 0, 0, 1, 0};
static char dir[] = "/tmp/zsseg-test-dataset-XXXXXX";
static char bad_dir[] = "/tmp/zsseg-test-dataset-bad-XXXXXX";
static char unlabelled_dir[] = "/tmp/zsseg-test-dataset-unlabelled-XXXXXX";

// Expected remapping of file value v: row of v in classes.tsv (8 v mod 21,
// since row k holds 8 k mod 21 and 8 * 8 = 1 mod 21), ignore otherwise.
static int want_train(int v) {
    if (v == 0 || v >= FX_K || fx_is_unseen(v)) return 255;
    return (8 * v) % FX_K;
}
static int want_test(int v) { return v == 0 || v >= FX_K ? 255 : (8 * v) % FX_K; }

static void test_classes(const Config* cfg) {
    DatasetClasses cs;
    dataset_classes_load(&cs, cfg);
    CHECK(cs.K == FX_K, "K = %d, want %d", cs.K, FX_K);
    int n_seen = 0, n_unseen = 0;
    for (int k = 0; k < cs.K; k++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", fx_class_id(k));
        CHECK(cs.ids[k] == fx_class_id(k), "row %d: id %d, want %d", k, cs.ids[k], fx_class_id(k));
        CHECK(strcmp(cs.names[k], name) == 0, "row %d: name '%s', want '%s'", k, cs.names[k], name);
        int id = fx_class_id(k);
        CHECK(cs.unseen[k] == fx_is_unseen(id), "row %d (id %d): unseen flag %d", k, id,
              cs.unseen[k]);
        CHECK(cs.seen[k] == (id != 0 && !fx_is_unseen(id)), "row %d (id %d): seen flag %d", k, id,
              cs.seen[k]);
        n_seen += cs.seen[k];
        n_unseen += cs.unseen[k];
    }
    CHECK(n_seen == 15 && n_unseen == 5, "%d seen, %d unseen; want 15, 5", n_seen, n_unseen);
    int bad_train = 0, bad_test = 0, bad_known = 0;
    for (int v = 0; v < 256; v++) {
        bad_train += cs.train_map[v] != want_train(v);
        bad_test += cs.test_map[v] != want_test(v);
        bad_known += cs.known[v] != (v < FX_K || v == 255);
    }
    CHECK(bad_train == 0, "train_map: %d of 256 entries wrong", bad_train);
    CHECK(bad_test == 0, "test_map: %d of 256 entries wrong", bad_test);
    CHECK(bad_known == 0, "known: %d of 256 entries wrong", bad_known);
    CHECK(cs.train_map[5] == 19 && cs.train_map[3] == 255 && cs.test_map[3] == 3,
          "spot values: train_map[5] = %d (19), train_map[3] = %d (255), test_map[3] = %d (3)",
          cs.train_map[5], cs.train_map[3], cs.test_map[3]);
    uint8_t lbl[5] = {5, 200, 255, 3, 0};
    CHECK(dataset_first_bad_value(&cs, lbl, 5) == 200, "first bad value of {5,200,255,3,0}");
    CHECK(dataset_first_bad_value(&cs, lbl + 2, 3) == -1, "no bad value in {255,3,0}");
    dataset_classes_log(&cs);
    dataset_classes_free(&cs);
}

static void test_index_and_samples(const Config* cfg_list, const Config* cfg_folder) {
    DatasetClasses cs;
    dataset_classes_load(&cs, cfg_list);
    Dataset tr, all, te;
    dataset_open(&tr, cfg_list, &cs, DATASET_TRAIN);
    dataset_open(&all, cfg_folder, &cs, DATASET_TRAIN);
    dataset_open(&te, cfg_list, &cs, DATASET_TEST);
    CHECK(tr.n == N_TRAIN && all.n == N_TRAIN && te.n == N_TEST, "sizes %d %d %d", tr.n, all.n,
          te.n);
    char id[64], path[1200];
    for (int i = 0; i < N_TRAIN && tr.n == N_TRAIN; i++) {
        int p = fx_list_pos(i, N_TRAIN);
        fx_id(id, sizeof id, "train", i);
        CHECK(strcmp(tr.ids[p], id) == 0, "list position %d: '%s', want '%s'", p, tr.ids[p], id);
        CHECK(strcmp(all.ids[i], id) == 0, "folder listing %d: '%s', want '%s'", i, all.ids[i], id);
        snprintf(path, sizeof path, "%s/images/train/%s.jpg", dir, id);
        CHECK(strcmp(tr.image_paths[p], path) == 0, "image path '%s'", tr.image_paths[p]);
        snprintf(path, sizeof path, "%s/annotations/train/%s.png", dir, id);
        CHECK(strcmp(tr.label_paths[p], path) == 0, "label path '%s'", tr.label_paths[p]);
    }
    for (int i = 0; i < N_TEST && te.n == N_TEST; i++) {
        fx_id(id, sizeof id, "val", i);
        CHECK(strcmp(te.ids[i], id) == 0, "test listing %d: '%s', want '%s'", i, te.ids[i], id);
    }
    CHECK(tr.map == cs.train_map && te.map == cs.test_map, "split tables");

    // Decoded samples: sizes, exact label values, and the two remappings.
    for (int i = 0; i < N_TRAIN && tr.n == N_TRAIN; i++) {
        DatasetSample s;
        char err[1024];
        int p = fx_list_pos(i, N_TRAIN);
        SampleStatus st = dataset_read(&tr, p, &s, err, sizeof err);
        CHECK(st == SAMPLE_OK, "sample %d: status %d (%s)", i, st, err);
        if (st != SAMPLE_OK) continue;
        CHECK(s.H == fx_H(i) && s.W == fx_W(i), "sample %d: %dx%d", i, s.H, s.W);
        size_t n = (size_t)s.H * s.W;
        uint8_t* want = (uint8_t*)malloc(n);
        uint8_t* tr_lbl = (uint8_t*)malloc(n);
        uint8_t* te_lbl = (uint8_t*)malloc(n);
        fx_label(i, has_unseen[i], want);
        CHECK(memcmp(s.label, want, n) == 0, "sample %d: label values differ from the file", i);
        memcpy(tr_lbl, s.label, n);
        memcpy(te_lbl, s.label, n);
        label_remap(tr_lbl, n, tr.map);
        label_remap(te_lbl, n, te.map);
        int bad_tr = 0, bad_te = 0, unseen_px = 0, ignored = 0;
        for (size_t q = 0; q < n; q++) {
            bad_tr += tr_lbl[q] != want_train(want[q]);
            bad_te += te_lbl[q] != want_test(want[q]);
            unseen_px += fx_is_unseen(want[q]);
            ignored += tr_lbl[q] == 255;
        }
        CHECK(bad_tr == 0 && bad_te == 0, "sample %d: %d train / %d test remapped pixels wrong",
              i, bad_tr, bad_te);
        CHECK((unseen_px > 0) == has_unseen[i], "sample %d: %d unseen pixels", i, unseen_px);
        // ignored in training: the top row, the id-0 pixel, and the unseen band
        CHECK(ignored == s.W + 1 + unseen_px, "sample %d: %d ignored pixels, want %d", i, ignored,
              s.W + 1 + unseen_px);
        free(want);
        free(tr_lbl);
        free(te_lbl);
        dataset_sample_free(&s);
    }
    dataset_free(&tr);
    dataset_free(&all);
    dataset_free(&te);
    dataset_classes_free(&cs);
}

static void test_strict_inductive(Config* cfg) {
    fx_set(cfg, "data.strict_inductive=true");
    DatasetClasses cs;
    dataset_classes_load(&cs, cfg);
    Dataset tr, listed;
    dataset_open(&tr, cfg, &cs, DATASET_TRAIN);
    dataset_open(&listed, cfg, &cs, DATASET_TRAIN_LISTED);
    // list order 1 3 5 0 2 4; images 1 and 4 hold unseen pixels
    const char* want[4] = {"train_0003", "train_0005", "train_0000", "train_0002"};
    CHECK(tr.n == 4 && tr.n_dropped == 2 && tr.n_listed == 6, "kept %d, dropped %d of %d", tr.n,
          tr.n_dropped, tr.n_listed);
    for (int i = 0; i < 4 && tr.n == 4; i++)
        CHECK(strcmp(tr.ids[i], want[i]) == 0, "kept %d: '%s', want '%s'", i, tr.ids[i], want[i]);
    CHECK(listed.n == 6 && listed.n_dropped == 0, "listed split: %d images", listed.n);
    dataset_free(&tr);
    dataset_free(&listed);
    dataset_classes_free(&cs);
    fx_set(cfg, "data.strict_inductive=false");
}

// stdout of cmd_data into a heap string; *rc = its exit code.
static char* run_data_check(const Config* cfg, int* rc) {
    char path[] = "/tmp/zsseg-test-dataset-out-XXXXXX";
    int fd = mkstemp(path);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    CliArgs args;
    memset(&args, 0, sizeof args);
    args.positionals[0] = "check";
    args.npositionals = 1;
    *rc = cmd_data(&args, cfg);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(fd);
    char* text = file_read_all(path, NULL);
    unlink(path);
    return text;
}

// The histogram line of class id v with brute-force pixel and image counts.
static void check_histogram_line(const char* out, int v, int n_train, const uint8_t* unseen_of) {
    unsigned long long px[2] = {0, 0};
    long im[2] = {0, 0};
    for (int split = 0; split < 2; split++) {
        int n = split ? N_TEST : n_train;
        for (int i = 0; i < n; i++) {
            int img = split ? 100 + i : i, hu = split ? i % 3 == 0 : unseen_of[i];
            size_t np = (size_t)fx_H(img) * fx_W(img);
            uint8_t* lbl = (uint8_t*)malloc(np);
            fx_label(img, hu, lbl);
            unsigned long long c = 0;
            for (size_t q = 0; q < np; q++) c += lbl[q] == v;
            px[split] += c;
            im[split] += c > 0;
            free(lbl);
        }
    }
    char name[16], line[256];
    snprintf(name, sizeof name, "c%d", v);
    snprintf(line, sizeof line, "%5d  %-24s %-8s %15llu %9ld %15llu %9ld\n", v, name,
             v == 0 ? "ignored" : fx_is_unseen(v) ? "unseen" : "seen", px[0], im[0], px[1], im[1]);
    CHECK(strstr(out, line) != NULL, "data check output lacks the histogram line:\n%s", line);
}

static void test_data_check_good(const Config* cfg) {
    int rc = -1;
    char* out = run_data_check(cfg, &rc);
    CHECK(rc == 0, "data check on a good dataset: exit %d", rc);
    CHECK(strstr(out, "problems: 0 of 10 images") != NULL, "problem count missing:\n%s", out);
    CHECK(strstr(out, "training split 'train': 6 images, 0 with problems, 2 with unseen pixels"),
          "training summary missing:\n%s", out);
    for (int v = 0; v < FX_K; v++) check_histogram_line(out, v, N_TRAIN, has_unseen);
    free(out);
}

// Bad samples: 2 truncated JPEG, 3 label PNG one row too tall, 5 label value
// 200, 6 image missing. Each is reported with its file and counted.
static const int bad_kind[8] = {0, 0, FX_TRUNCATED_JPEG, FX_WRONG_SIZE_PNG, 0, FX_VALUE_200,
                                FX_MISSING_IMAGE, 0};

static void test_bad_samples(void) {
    uint8_t none[8] = {0};
    fx_make(bad_dir, 8, none, N_TEST);
    char id[64];
    for (int i = 0; i < 8; i++) {
        fx_id(id, sizeof id, "train", i);
        if (bad_kind[i]) fx_break(bad_dir, "train", id, i, bad_kind[i]);
    }
    Config* cfg = fx_config(bad_dir, 0);
    DatasetClasses cs;
    dataset_classes_load(&cs, cfg);
    Dataset tr;
    dataset_open(&tr, cfg, &cs, DATASET_TRAIN);
    const SampleStatus want[5] = {SAMPLE_OK, SAMPLE_BAD_IMAGE, SAMPLE_SIZE_MISMATCH,
                                  SAMPLE_BAD_VALUE, SAMPLE_BAD_IMAGE};
    for (int i = 0; i < tr.n; i++) {
        DatasetSample s;
        char err[1024] = "";
        SampleStatus st = dataset_read(&tr, i, &s, err, sizeof err);
        int k = bad_kind[i];
        CHECK(st == want[k], "sample %d (kind %d): status %d, want %d (%s)", i, k, st, want[k],
              err);
        if (st == SAMPLE_OK) {
            dataset_sample_free(&s);
            continue;
        }
        CHECK(s.rgb == NULL && s.label == NULL, "sample %d: buffers left after a failure", i);
        const char* file = k == FX_TRUNCATED_JPEG || k == FX_MISSING_IMAGE ? tr.image_paths[i]
                                                                           : tr.label_paths[i];
        CHECK(strstr(err, file) != NULL, "sample %d: message does not name %s: %s", i, file, err);
        if (k == FX_VALUE_200)
            CHECK(strstr(err, "label value 200") != NULL, "value message: %s", err);
    }
    int rc = -1;
    char* out = run_data_check(cfg, &rc);
    CHECK(rc == 1, "data check with 4 bad samples: exit %d, want 1", rc);
    CHECK(strstr(out, "problems: 4 of 12 images") != NULL, "problem count missing:\n%s", out);
    for (int i = 0; i < 8; i++) {
        char line[128];
        fx_id(id, sizeof id, "train", i);
        snprintf(line, sizeof line, "problem: training image '%s'", id);
        CHECK((strstr(out, line) != NULL) == (bad_kind[i] != 0), "report of %s:\n%s", id, out);
    }
    CHECK(strstr(out, "label values 200 (1 pixels) are not in the class list"),
          "value 200 report missing:\n%s", out);
    CHECK(strstr(out, "(not in the class list)"), "histogram row of bad values missing");
    free(out);
    dataset_free(&tr);
    dataset_classes_free(&cs);
    config_free(cfg);
    fx_remove(bad_dir);
}

// A split read from its label folder: an image without a label file is
// reported by its path and fails the check.
static void test_data_check_unlabelled(void) {
    fx_make(unlabelled_dir, 4, NULL, 2);
    char path[1200];
    snprintf(path, sizeof path, "%s/annotations/train/train_0002.png", unlabelled_dir);
    CHECK(unlink(path) == 0, "cannot remove %s", path);
    Config* cfg = fx_config(unlabelled_dir, 0);
    int rc = -1;
    char* out = run_data_check(cfg, &rc);
    char want[1500];
    snprintf(want, sizeof want,
             "problem: training image 'train_0002': '%s/images/train/train_0002.jpg' has no "
             "label file in '%s/annotations/train'",
             unlabelled_dir, unlabelled_dir);
    CHECK(rc == 1, "data check with an unlabelled image: exit %d, want 1", rc);
    CHECK(strstr(out, want) != NULL, "unlabelled image not reported:\n%s", out);
    CHECK(strstr(out, "problems: 1 of 6 images") != NULL, "problem count:\n%s", out);
    free(out);
    config_free(cfg);
    fx_remove(unlabelled_dir);
}

// ---------------------------------------------------------------- configuration errors
static Config* err_cfg;
static void load_classes_of_err_cfg(void) {
    DatasetClasses cs;
    dataset_classes_load(&cs, err_cfg);
}
static void open_train_of_err_cfg(void) {
    DatasetClasses cs;
    Dataset ds;
    dataset_classes_load(&cs, err_cfg);
    dataset_open(&ds, err_cfg, &cs, DATASET_TRAIN);
}

static void test_config_errors(void) {
    char path[1200], set[1300];
    err_cfg = fx_config(dir, 1);
    snprintf(path, sizeof path, "%s/seen_bad.txt", dir);
    fx_write_text(path, "1\n99\n");
    snprintf(set, sizeof set, "data.seen=%s", path);
    fx_set(err_cfg, set);
    CHECK(t_exits_with_error(load_classes_of_err_cfg), "seen id 99 outside the class list");
    snprintf(path, sizeof path, "%s/seen_overlap.txt", dir);
    fx_write_text(path, "1\n3\n");
    snprintf(set, sizeof set, "data.seen=%s", path);
    fx_set(err_cfg, set);
    CHECK(t_exits_with_error(load_classes_of_err_cfg), "id 3 both seen and unseen");
    snprintf(set, sizeof set, "data.seen=%s/seen.txt", dir);
    fx_set(err_cfg, set);
    fx_set(err_cfg, "data.dataset=voc12");  // no split folder: an empty train list cannot work
    fx_set(err_cfg, "data.train_list=");
    CHECK(t_exits_with_error(open_train_of_err_cfg), "voc12 layout with an empty train list");
    config_free(err_cfg);
}

int main(void) {
    fx_make(dir, N_TRAIN, has_unseen, N_TEST);
    Config* cfg_list = fx_config(dir, 1);
    Config* cfg_folder = fx_config(dir, 0);
    CHECK(dataset_layout_find("cocostuff") && !dataset_layout_find("imagenet"), "layout table");
    CHECK(strcmp(dataset_layout_find("voc12")->label_path, "SegmentationClassAug/{id}.png") == 0,
          "voc12 layout");
    test_classes(cfg_list);
    test_index_and_samples(cfg_list, cfg_folder);
    test_strict_inductive(cfg_list);
    test_data_check_good(cfg_folder);
    test_bad_samples();
    test_data_check_unlabelled();
    test_config_errors();
    config_free(cfg_list);
    config_free(cfg_folder);
    fx_remove(dir);
    return t_report("test_dataset");
}
