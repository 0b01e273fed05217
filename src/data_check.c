// `zsseg data check`: read every listed sample of both splits the way the
// loader would, report each problem with its file, and print the class pixel
// histogram. Runs on one process (OpenMP threads over the images).
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dataset.h"
#include "image_io.h"

typedef struct {
    unsigned long long pixels[256];  // per label-file value
    long images[256];                // images holding the value
    long n_unseen_images;            // images with an unseen pixel
    long problems;
} SplitStats;

// Append to msg (cap bytes, *n used), silently truncating.
static void append(char* msg, size_t cap, size_t* n, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char* msg, size_t cap, size_t* n, const char* fmt, ...) {
    if (*n + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(msg + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (k > 0) *n = *n + (size_t)k < cap ? *n + (size_t)k : cap - 1;
}

// Problems of sample i as one heap string (NULL if none); histogram of its
// label into st when the label decodes.
static char* check_sample(const Dataset* ds, int i, SplitStats* st) {
    char err_img[1024] = "", err_lbl[1024] = "", msg[4096];
    uint8_t *rgb = NULL, *lbl = NULL;
    int H = 0, W = 0, lH = 0, lW = 0;
    size_t n = 0;
    int img_ok = image_read_rgb(ds->image_paths[i], &rgb, &H, &W, err_img, sizeof err_img) == 0;
    int lbl_ok = label_read_png(ds->label_paths[i], &lbl, &lH, &lW, err_lbl, sizeof err_lbl) == 0;
    free(rgb);
    if (!img_ok) append(msg, sizeof msg, &n, "%s; ", err_img);
    if (!lbl_ok) append(msg, sizeof msg, &n, "%s; ", err_lbl);
    if (img_ok && lbl_ok && (H != lH || W != lW))
        append(msg, sizeof msg, &n, "%s: label is %dx%d (HxW) but its image is %dx%d; ",
               ds->label_paths[i], lH, lW, H, W);
    if (lbl_ok) {
        unsigned long long count[256] = {0};
        for (size_t p = 0; p < (size_t)lH * lW; p++) count[lbl[p]]++;
        int unseen = 0, nbad = 0;
        for (int v = 0; v < 256; v++) {
            if (!count[v]) continue;
            st->pixels[v] += count[v];
            st->images[v]++;
            unseen |= ds->cs->unseen_value[v];
            if (ds->cs->known[v]) continue;
            if (nbad++ == 0) append(msg, sizeof msg, &n, "%s: label values", ds->label_paths[i]);
            append(msg, sizeof msg, &n, " %d (%llu pixels)", v, count[v]);
        }
        if (nbad) append(msg, sizeof msg, &n, " are not in the class list; ");
        st->n_unseen_images += unseen;
    }
    free(lbl);
    if (n == 0) return NULL;
    if (n >= 2 && msg[n - 2] == ';') msg[n - 2] = '\0';  // the last "; "
    st->problems++;
    return strdup(msg);
}

static int cmp_id(const void* a, const void* b) {
    return strcmp(*(char* const*)a, *(char* const*)b);
}

// A split read from its label folder (no id list) never sees an image that
// has no label: list the image folder and report each such image.
static long check_unlabelled(const Dataset* ds, const char* name, const char* list) {
    const char* id_tok = strstr(ds->layout->image_path, "{id}");
    if (*list || !id_tok || ds->n == 0) return 0;  // an id list: missing labels fail to read
    const char* suffix = id_tok + 4;
    char* dir = strdup(ds->image_paths[0]);
    char* label_dir = strdup(ds->label_paths[0]);
    if (!dir || !label_dir) ZS_FAIL("free some memory", "strdup failed");
    *strrchr(dir, '/') = '\0';  // layout paths are root/.../{id}SUFFIX
    *strrchr(label_dir, '/') = '\0';
    DIR* d = opendir(dir);
    long missing = 0;
    size_t ns = strlen(suffix);
    for (struct dirent* e; d && (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n <= ns || strcmp(e->d_name + n - ns, suffix) != 0) continue;
        char* id = strndup(e->d_name, n - ns);
        if (!bsearch(&id, ds->ids, (size_t)ds->n, sizeof(char*), cmp_id)) {
            printf("problem: %s image '%s': '%s/%s' has no label file in '%s'\n", name, id, dir,
                   e->d_name, label_dir);
            missing++;
        }
        free(id);
    }
    if (d) closedir(d);
    free(dir);
    free(label_dir);
    return missing;
}

static void check_split(const Dataset* ds, const char* name, SplitStats* total) {
    memset(total, 0, sizeof *total);
    char** msgs = (char**)callocCheck((size_t)ds->n, sizeof(char*));
#pragma omp parallel
    {
        SplitStats* st = (SplitStats*)callocCheck(1, sizeof(SplitStats));
#pragma omp for schedule(dynamic, 8)
        for (int i = 0; i < ds->n; i++) msgs[i] = check_sample(ds, i, st);
#pragma omp critical
        {
            for (int v = 0; v < 256; v++) {
                total->pixels[v] += st->pixels[v];
                total->images[v] += st->images[v];
            }
            total->n_unseen_images += st->n_unseen_images;
            total->problems += st->problems;
        }
        free(st);
    }
    for (int i = 0; i < ds->n; i++) {
        if (msgs[i]) printf("problem: %s image '%s': %s\n", name, ds->ids[i], msgs[i]);
        free(msgs[i]);
    }
    free(msgs);
    printf("%s split '%s': %d images, %ld with problems, %ld with unseen pixels\n", name, ds->split,
           ds->n, total->problems, total->n_unseen_images);
}

static void print_histogram(const DatasetClasses* cs, const SplitStats* tr, const SplitStats* te) {
    printf("\nclass pixel histogram (label value, split, pixels and images per split):\n");
    printf("%5s  %-24s %-8s %15s %9s %15s %9s\n", "value", "class", "split", "train pixels",
           "images", "test pixels", "images");
    for (int k = 0; k < cs->K; k++) {
        int v = cs->ids[k];
        printf("%5d  %-24s %-8s %15llu %9ld %15llu %9ld\n", v, cs->names[k],
               cs->seen[k] ? "seen" : cs->unseen[k] ? "unseen" : "ignored", tr->pixels[v],
               tr->images[v], te->pixels[v], te->images[v]);
    }
    int v = cs->ignore_value;
    printf("%5d  %-24s %-8s %15llu %9ld %15llu %9ld\n", v, "(ignore)", "-", tr->pixels[v],
           tr->images[v], te->pixels[v], te->images[v]);
    for (v = 0; v < 256; v++)
        if (!cs->known[v] && (tr->images[v] || te->images[v]))
            printf("%5d  %-24s %-8s %15llu %9ld %15llu %9ld\n", v, "(not in the class list)",
                   "bad", tr->pixels[v], tr->images[v], te->pixels[v], te->images[v]);
}

int cmd_data(const CliArgs* args, const Config* cfg) {
    if (args->npositionals != 1 || strcmp(args->positionals[0], "check") != 0) {
        fprintf(stderr, "zsseg data: expected 'check' (see zsseg data --help)\n");
        return CLI_EXIT_USAGE;
    }
    DatasetClasses cs;
    dataset_classes_load(&cs, cfg);
    printf("dataset %s, root %s\n", config_get_string(cfg, "data.dataset"),
           config_get_string(cfg, "data.root"));
    fflush(stdout);
    dataset_classes_log(&cs);
    Dataset train, test;
    dataset_open(&train, cfg, &cs, DATASET_TRAIN_LISTED);
    dataset_open(&test, cfg, &cs, DATASET_TEST);
    SplitStats tr, te;
    check_split(&train, "training", &tr);
    long unlabelled =
        check_unlabelled(&train, "training", config_get_string(cfg, "data.train_list"));
    check_split(&test, "test", &te);
    unlabelled += check_unlabelled(&test, "test", config_get_string(cfg, "data.test_list"));
    print_histogram(&cs, &tr, &te);
    long problems = tr.problems + te.problems + unlabelled;
    printf("\nproblems: %ld of %ld images (missing, unreadable or mismatched files, bad label "
           "values, images without a label)\n",
           problems, train.n + test.n + unlabelled);
    dataset_free(&train);
    dataset_free(&test);
    dataset_classes_free(&cs);
    fflush(stdout);
    return problems ? 1 : 0;
}
