#include "dataset.h"

#include <dirent.h>
#include <errno.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "image_io.h"

// ---------------------------------------------------------------- layouts
// COCO-stuff 164k and the synthetic dataset (written by `zsseg synth` in the
// COCO layout) have split folders. Pascal-Context comes as CaGNet ships it
// (images/ and annotations/ with train and val folders). Pascal-VOC 2012 + SBD
// is the usual augmented layout of VOCdevkit/VOC2012: one folder of JPEGs and
// SegmentationClassAug (values 0..20, 255) for every split; the id lists pick
// the split.
#define COCO_IMAGES "images/{split}/{id}.jpg"
#define COCO_LABELS "annotations/{split}/{id}.png"
static const DatasetLayout layouts[] = {
    {"synthetic", COCO_IMAGES, COCO_LABELS},
    {"cocostuff", COCO_IMAGES, COCO_LABELS},
    {"voc12", "JPEGImages/{id}.jpg", "SegmentationClassAug/{id}.png"},
    {"context", COCO_IMAGES, COCO_LABELS},
};

const DatasetLayout* dataset_layout_find(const char* name) {
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (strcmp(layouts[i].name, name) == 0) return &layouts[i];
    return NULL;
}

// root/pattern with {split} and {id} replaced; heap string.
static char* layout_path(const char* root, const char* pattern, const char* split, const char* id) {
    size_t cap = strlen(root) + strlen(pattern) + 2;
    for (const char* p = pattern; (p = strchr(p, '{')) != NULL; p++)
        cap += strlen(split) + strlen(id);
    char* out = (char*)mallocCheck(cap);
    size_t n = (size_t)snprintf(out, cap, "%s/", root);
    for (const char* p = pattern; *p;) {
        const char* sub = NULL;
        if (strncmp(p, "{split}", 7) == 0) sub = split, p += 7;
        else if (strncmp(p, "{id}", 4) == 0) sub = id, p += 4;
        if (sub) {
            n += (size_t)snprintf(out + n, cap - n, "%s", sub);
        } else {
            out[n++] = *p++;
            out[n] = '\0';
        }
    }
    return out;
}

// ---------------------------------------------------------------- text lists
// Next line of a NUL-terminated buffer, trimmed of surrounding white space
// (a trailing \r included); NULL at the end. Cuts the buffer in place.
static char* next_line(char** cursor, int* lineno) {
    char* s = *cursor;
    if (!s || !*s) return NULL;
    char* nl = strchr(s, '\n');
    *cursor = nl ? nl + 1 : s + strlen(s);
    if (nl) *nl = '\0';
    (*lineno)++;
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
}

// A whole-line integer in [0, 255]; -1 if the text is not one.
static int parse_value(const char* s, char** end) {
    errno = 0;
    long v = strtol(s, end, 10);
    if (*end == s || errno || v < 0 || v > 255) return -1;
    return (int)v;
}

static void push_string(char*** list, int* n, int* cap, const char* s) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        char** grown = (char**)realloc(*list, (size_t)*cap * sizeof(char*));
        if (!grown)
            ZS_FAIL("free memory or use a smaller id list", "out of memory reading an id list");
        *list = grown;
    }
    char* copy = strdup(s);
    if (!copy) ZS_FAIL("free memory", "out of memory reading an id list");
    (*list)[(*n)++] = copy;
}

// ---------------------------------------------------------------- classes
static int class_of_value(const DatasetClasses* cs, int v) {
    for (int k = 0; k < cs->K; k++)
        if (cs->ids[k] == v) return k;
    return -1;
}

// seen.txt / unseen.txt: one listed class id per line; sets flag[k].
static void read_split(DatasetClasses* cs, const char* path, const char* key, uint8_t* flag,
                       const uint8_t* other, const char* other_key) {
    char* text = file_read_all(path, NULL);
    char* cur = text;
    int lineno = 0;
    char* line;
    while ((line = next_line(&cur, &lineno)) != NULL) {
        if (!*line) continue;
        char* end;
        int v = parse_value(line, &end);
        if (v < 0 || *end)
            ZS_FAIL("one class id (a number of the class list) per line",
                    "%s:%d (%s): expected a class id, got \"%s\"", path, lineno, key, line);
        int k = class_of_value(cs, v);
        if (k < 0)
            ZS_FAIL("seen and unseen ids must be ids of data.classes",
                    "%s:%d (%s): class id %d is not in the class list", path, lineno, key, v);
        if (flag[k])
            ZS_FAIL("list each class once", "%s:%d (%s): class id %d is listed twice", path,
                    lineno, key, v);
        if (other[k])
            ZS_FAIL("a class is either seen or unseen",
                    "%s:%d (%s): class id %d (%s) is also in %s", path, lineno, key, v,
                    cs->names[k], other_key);
        flag[k] = 1;
    }
    free(text);
}

void dataset_classes_load(DatasetClasses* cs, const Config* cfg) {
    memset(cs, 0, sizeof *cs);
    const char* path = config_get_string(cfg, "data.classes");
    cs->ignore_value = config_get_int(cfg, "data.ignore_label");
    char* text = file_read_all(path, NULL);
    int cap = 256;  // ids are 8-bit values, so at most 256 rows
    cs->ids = (int*)mallocCheck(cap * sizeof(int));
    cs->names = (char**)callocCheck(cap, sizeof(char*));
    char* cur = text;
    int lineno = 0;
    char* line;
    while ((line = next_line(&cur, &lineno)) != NULL) {
        if (!*line) continue;
        char* end;
        int v = parse_value(line, &end);
        if (v < 0 || *end != '\t' || !end[1])
            ZS_FAIL("each line is: id (0-255) TAB name",
                    "%s:%d (data.classes): expected \"id<TAB>name\", got \"%s\"", path, lineno,
                    line);
        if (v == cs->ignore_value)
            ZS_FAIL("the ignore value marks unlabelled pixels and cannot be a class id",
                    "%s:%d (data.classes): class id %d equals data.ignore_label", path, lineno, v);
        if (class_of_value(cs, v) >= 0)
            ZS_FAIL("list each class id once", "%s:%d (data.classes): class id %d appears twice",
                    path, lineno, v);
        if (cs->K == DATASET_IGNORE)
            ZS_FAIL("training indices are 8-bit with 255 = ignore",
                    "%s:%d (data.classes): more than %d classes", path, lineno, DATASET_IGNORE);
        cs->ids[cs->K] = v;
        cs->names[cs->K] = strdup(end + 1);
        if (!cs->names[cs->K]) ZS_FAIL("free memory", "out of memory reading %s", path);
        cs->K++;
    }
    free(text);
    if (cs->K == 0) ZS_FAIL("data.classes lists id<TAB>name per line", "%s: no classes", path);

    cs->seen = (uint8_t*)callocCheck(cs->K, 1);
    cs->unseen = (uint8_t*)callocCheck(cs->K, 1);
    read_split(cs, config_get_string(cfg, "data.seen"), "data.seen", cs->seen, cs->unseen,
               "data.unseen");
    read_split(cs, config_get_string(cfg, "data.unseen"), "data.unseen", cs->unseen, cs->seen,
               "data.seen");

    memset(cs->train_map, DATASET_IGNORE, 256);
    memset(cs->test_map, DATASET_IGNORE, 256);
    cs->known[cs->ignore_value] = 1;
    for (int k = 0; k < cs->K; k++) {
        int v = cs->ids[k];
        cs->known[v] = 1;
        cs->unseen_value[v] = cs->unseen[k];
        if (cs->seen[k]) cs->train_map[v] = (uint8_t)k;
        if (cs->seen[k] || cs->unseen[k]) cs->test_map[v] = (uint8_t)k;
    }
}

void dataset_classes_free(DatasetClasses* cs) {
    for (int k = 0; k < cs->K; k++) free(cs->names[k]);
    free(cs->names);
    free(cs->ids);
    free(cs->seen);
    free(cs->unseen);
    memset(cs, 0, sizeof *cs);
}

void dataset_classes_log(const DatasetClasses* cs) {
    int ns = 0, nu = 0;
    for (int k = 0; k < cs->K; k++) ns += cs->seen[k], nu += cs->unseen[k];
    log_info("classes: %d (%d seen, %d unseen, %d ignored); label value -> training index / "
             "test index (%d = ignore; file value %d = ignore):",
             cs->K, ns, nu, cs->K - ns - nu, DATASET_IGNORE, cs->ignore_value);
    for (int k = 0; k < cs->K; k++) {
        int v = cs->ids[k];
        log_info("  %3d -> %3d / %3d  %-7s %s", v, cs->train_map[v], cs->test_map[v],
                 cs->seen[k] ? "seen" : cs->unseen[k] ? "unseen" : "ignored", cs->names[k]);
    }
}

int dataset_first_bad_value(const DatasetClasses* cs, const uint8_t* label, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!cs->known[label[i]]) return label[i];
    return -1;
}

// ---------------------------------------------------------------- id lists
static int cmp_str(const void* a, const void* b) {
    return strcmp(*(char* const*)a, *(char* const*)b);
}

static void read_id_list(Dataset* ds, const char* path, const char* key) {
    char* text = file_read_all(path, NULL);
    char* cur = text;
    int lineno = 0, cap = 0;
    char* line;
    while ((line = next_line(&cur, &lineno)) != NULL) {
        if (!*line) continue;
        if (strpbrk(line, " \t/"))
            ZS_FAIL("one image id (file name without extension) per line",
                    "%s:%d (%s): \"%s\" is not an image id", path, lineno, key, line);
        push_string(&ds->ids, &ds->n, &cap, line);
    }
    free(text);
}

// Every label file of the split folder, sorted: the folder and suffix come
// from the layout's label pattern "DIR/{id}SUFFIX".
static void list_split_folder(Dataset* ds, const char* root, const char* list_key) {
    const char* pat = ds->layout->label_path;
    const char* id_tok = strstr(pat, "{id}");
    if (!strstr(pat, "{split}") || !id_tok || id_tok == pat || id_tok[-1] != '/')
        ZS_FAIL("give the image ids of this split in a list file",
                "%s is empty, but the %s layout (%s) has no split folder to list", list_key,
                ds->layout->name, pat);
    char* dir_pat = strndup(pat, (size_t)(id_tok - 1 - pat));
    const char* suffix = id_tok + 4;
    char* dir = layout_path(root, dir_pat, ds->split, "");
    free(dir_pat);
    DIR* d = opendir(dir);
    if (!d)
        ZS_FAIL("check data.root and the split keys (datasets/README.md shows the layout)",
                "cannot list the label folder '%s' (%s is empty): %s", dir, list_key,
                strerror(errno));
    size_t ns = strlen(suffix);
    int cap = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n <= ns || strcmp(e->d_name + n - ns, suffix) != 0) continue;
        e->d_name[n - ns] = '\0';
        push_string(&ds->ids, &ds->n, &cap, e->d_name);
    }
    closedir(d);
    if (ds->n == 0)
        ZS_FAIL("check data.root and the split keys",
                "no *%s label files in '%s' (%s is empty)", suffix, dir, list_key);
    free(dir);
    qsort(ds->ids, (size_t)ds->n, sizeof(char*), cmp_str);
}

// ---------------------------------------------------------------- strict inductive
// has[i] = 1 when label i holds an unseen class. OpenMP over the images; with
// several MPI ranks each scans every world-th label and the flags are OR-ed.
static void scan_unseen(const Dataset* ds, uint8_t* has) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    int split = init && !fin && zs_world > 1;
    int stride = split ? zs_world : 1, first = split ? zs_rank : 0;
    memset(has, 0, (size_t)ds->n);
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = first; i < ds->n; i += stride) {
        uint8_t* lbl = NULL;
        int H = 0, W = 0;
        char err[512];
        if (label_read_png(ds->label_paths[i], &lbl, &H, &W, err, sizeof err) != 0) continue;
        for (size_t p = 0; p < (size_t)H * W; p++)
            if (ds->cs->unseen_value[lbl[p]]) {
                has[i] = 1;
                break;
            }
        free(lbl);
    }
    if (split)
        mpiCheck(MPI_Allreduce(MPI_IN_PLACE, has, ds->n, MPI_UNSIGNED_CHAR, MPI_MAX,
                               MPI_COMM_WORLD));
}

static void drop_unseen_images(Dataset* ds) {
    uint8_t* has = (uint8_t*)mallocCheck((size_t)ds->n);
    scan_unseen(ds, has);
    int keep = 0;
    for (int i = 0; i < ds->n; i++) {
        if (has[i]) {
            free(ds->ids[i]);
            free(ds->image_paths[i]);
            free(ds->label_paths[i]);
            continue;
        }
        ds->ids[keep] = ds->ids[i];
        ds->image_paths[keep] = ds->image_paths[i];
        ds->label_paths[keep] = ds->label_paths[i];
        keep++;
    }
    free(has);
    ds->n_dropped = ds->n - keep;
    ds->n = keep;
    log_info("data.strict_inductive: dropped %d of %d training images that contain unseen "
             "pixels; %d remain",
             ds->n_dropped, ds->n_listed, ds->n);
    if (ds->n == 0)
        ZS_FAIL("turn data.strict_inductive off or use a training list with seen-only images",
                "every training image contains an unseen class");
}

// ---------------------------------------------------------------- index
void dataset_open(Dataset* ds, const Config* cfg, const DatasetClasses* cs, DatasetSplit split) {
    memset(ds, 0, sizeof *ds);
    int training = split != DATASET_TEST;
    ds->cs = cs;
    ds->training = training;
    ds->map = training ? cs->train_map : cs->test_map;
    const char* name = config_get_string(cfg, "data.dataset");
    ds->layout = dataset_layout_find(name);
    if (!ds->layout)
        ZS_FAIL("add the dataset's row to layouts[] in dataset.c",
                "no layout for data.dataset = %s", name);
    const char* split_key = training ? "data.train_split" : "data.test_split";
    const char* list_key = training ? "data.train_list" : "data.test_list";
    ds->split = strdup(config_get_string(cfg, split_key));
    const char* root = config_get_string(cfg, "data.root");
    const char* list = config_get_string(cfg, list_key);
    if (*list) read_id_list(ds, list, list_key);
    else list_split_folder(ds, root, list_key);
    if (ds->n == 0)
        ZS_FAIL("the id list needs one image id per line", "%s (%s) lists no images", list,
                list_key);

    ds->image_paths = (char**)mallocCheck((size_t)ds->n * sizeof(char*));
    ds->label_paths = (char**)mallocCheck((size_t)ds->n * sizeof(char*));
    for (int i = 0; i < ds->n; i++) {
        ds->image_paths[i] = layout_path(root, ds->layout->image_path, ds->split, ds->ids[i]);
        ds->label_paths[i] = layout_path(root, ds->layout->label_path, ds->split, ds->ids[i]);
    }
    ds->n_listed = ds->n;
    if (split == DATASET_TRAIN && config_get_bool(cfg, "data.strict_inductive"))
        drop_unseen_images(ds);
    log_info("%s split '%s': %d images (%s)", training ? "training" : "test", ds->split, ds->n,
             *list ? list : "every label file of the split folder");
}

void dataset_free(Dataset* ds) {
    for (int i = 0; i < ds->n; i++) {
        free(ds->ids[i]);
        free(ds->image_paths[i]);
        free(ds->label_paths[i]);
    }
    free(ds->ids);
    free(ds->image_paths);
    free(ds->label_paths);
    free(ds->split);
    memset(ds, 0, sizeof *ds);
}

// ---------------------------------------------------------------- samples
SampleStatus dataset_read(const Dataset* ds, int i, DatasetSample* s, char* err, size_t errlen) {
    memset(s, 0, sizeof *s);
    uint8_t *rgb = NULL, *lbl = NULL;
    int H, W, lH, lW;
    if (image_read_rgb(ds->image_paths[i], &rgb, &H, &W, err, errlen) != 0) return SAMPLE_BAD_IMAGE;
    if (label_read_png(ds->label_paths[i], &lbl, &lH, &lW, err, errlen) != 0) {
        free(rgb);
        return SAMPLE_BAD_LABEL;
    }
    SampleStatus st = SAMPLE_OK;
    int bad;
    if (lH != H || lW != W) {
        snprintf(err, errlen, "%s: label is %dx%d (HxW) but its image %s is %dx%d",
                 ds->label_paths[i], lH, lW, ds->image_paths[i], H, W);
        st = SAMPLE_SIZE_MISMATCH;
    } else if ((bad = dataset_first_bad_value(ds->cs, lbl, (size_t)H * W)) >= 0) {
        snprintf(err, errlen, "%s: label value %d is not a class id of the class list (%d classes)",
                 ds->label_paths[i], bad, ds->cs->K);
        st = SAMPLE_BAD_VALUE;
    }
    if (st != SAMPLE_OK) {
        free(rgb);
        free(lbl);
        return st;
    }
    s->rgb = rgb;
    s->label = lbl;
    s->H = H;
    s->W = W;
    return SAMPLE_OK;
}

void dataset_sample_free(DatasetSample* s) {
    free(s->rgb);
    free(s->label);
    memset(s, 0, sizeof *s);
}
