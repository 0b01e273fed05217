// A small generated dataset in the COCO-stuff layout for the dataset, loader
// and MPI sharding tests: 21 classes whose file ids are listed in a permuted
// order (training index = row != id), seen/unseen/ignored classes, images of
// varying sizes, and optional bad samples.
//
//   DIR/classes.tsv               row k: id (8k mod 21) <TAB> "c<id>"
//   DIR/seen.txt, DIR/unseen.txt  unseen ids 3 7 12 18 20; id 0 in neither; the rest seen
//   DIR/images/{train,val}/ID.jpg, DIR/annotations/{train,val}/ID.png
//   DIR/train.txt                 the training ids, written in a scrambled order
//
// Label of image i: three vertical bands of the values fx_band(i, 0..2), a
// top row of the ignore value 255, and pixel (H-1, 0) of id 0.
#ifndef ZSSEG_DATASET_FIXTURE_H
#define ZSSEG_DATASET_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "image_io.h"

#define FX_K 21
static const int fx_unseen_ids[5] = {3, 7, 12, 18, 20};

static inline int fx_class_id(int row) { return (8 * row) % FX_K; }
static inline int fx_is_unseen(int id) {
    for (int k = 0; k < 5; k++)
        if (fx_unseen_ids[k] == id) return 1;
    return 0;
}
static inline int fx_H(int i) { return 20 + (i % 3) * 4; }
static inline int fx_W(int i) { return 24 + (i % 4) * 6; }
// Seen ids for most bands; band 1 of images with has_unseen holds an unseen id.
static inline int fx_band(int i, int band, int has_unseen) {
    if (band == 1 && has_unseen) return fx_unseen_ids[i % 5];
    static const int seen_ids[6] = {1, 5, 9, 14, 16, 19};
    return seen_ids[(i + 2 * band) % 6];
}

static inline void fx_write_text(const char* path, const char* text) {
    FILE* fp = fopen(path, "w");
    if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0) {
        perror(path);
        exit(1);
    }
}

static inline void fx_mkdirs(const char* dir) {
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot create %s\n", dir);
        exit(1);
    }
}

// Class list and split files.
static inline void fx_write_classes(const char* dir) {
    char path[1024], text[4096];
    size_t n = 0;
    for (int k = 0; k < FX_K; k++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%d\tc%d\n", fx_class_id(k),
                              fx_class_id(k));
    snprintf(path, sizeof path, "%s/classes.tsv", dir);
    fx_write_text(path, text);
    n = 0;
    for (int id = 1; id < FX_K; id++)
        if (!fx_is_unseen(id)) n += (size_t)snprintf(text + n, sizeof text - n, "%d\n", id);
    snprintf(path, sizeof path, "%s/seen.txt", dir);
    fx_write_text(path, text);
    snprintf(path, sizeof path, "%s/unseen.txt", dir);
    fx_write_text(path, "3\n7\n12\n18\r\n20\n");  // a CRLF line on purpose
}

// Label map of image i into lbl (H, W).
static inline void fx_label(int i, int has_unseen, uint8_t* lbl) {
    int H = fx_H(i), W = fx_W(i);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            lbl[y * W + x] = y == 0 ? 255 : (uint8_t)fx_band(i, x * 3 / W, has_unseen);
    lbl[(H - 1) * W] = 0;
}

// Image i and its label in split folder `split` with id `id`.
static inline void fx_write_sample(const char* dir, const char* split, const char* id, int i,
                                   int has_unseen) {
    int H = fx_H(i), W = fx_W(i);
    uint8_t* rgb = (uint8_t*)malloc((size_t)H * W * 3);
    uint8_t* lbl = (uint8_t*)malloc((size_t)H * W);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                rgb[(y * W + x) * 3 + c] = (uint8_t)(40 + 5 * x + 3 * y + 60 * c + 17 * i);
    fx_label(i, has_unseen, lbl);
    char path[1024];
    snprintf(path, sizeof path, "%s/images/%s/%s.jpg", dir, split, id);
    image_write_jpeg(path, rgb, H, W, 95);
    snprintf(path, sizeof path, "%s/annotations/%s/%s.png", dir, split, id);
    label_write_png(path, lbl, H, W);
    free(rgb);
    free(lbl);
}

static inline void fx_id(char* out, size_t n, const char* split, int i) {
    snprintf(out, n, "%s_%04d", split, i);
}

// Bad sample kinds, written over a good sample by fx_break.
enum { FX_TRUNCATED_JPEG = 1, FX_WRONG_SIZE_PNG, FX_VALUE_200, FX_MISSING_IMAGE };

static inline void fx_break(const char* dir, const char* split, const char* id, int i, int kind) {
    char path[1024];
    if (kind == FX_TRUNCATED_JPEG) {
        snprintf(path, sizeof path, "%s/images/%s/%s.jpg", dir, split, id);
        struct stat st;
        if (stat(path, &st) != 0 || truncate(path, st.st_size / 2) != 0) {
            perror(path);
            exit(1);
        }
    } else if (kind == FX_WRONG_SIZE_PNG || kind == FX_VALUE_200) {
        int H = fx_H(i) + (kind == FX_WRONG_SIZE_PNG), W = fx_W(i);
        uint8_t* lbl = (uint8_t*)calloc((size_t)H * W, 1);
        memset(lbl, 1, (size_t)H * W);
        if (kind == FX_VALUE_200) lbl[W + 2] = 200;
        snprintf(path, sizeof path, "%s/annotations/%s/%s.png", dir, split, id);
        label_write_png(path, lbl, H, W);
        free(lbl);
    } else {
        snprintf(path, sizeof path, "%s/images/%s/%s.jpg", dir, split, id);
        if (unlink(path) != 0) {
            perror(path);
            exit(1);
        }
    }
}

static inline void fx_set(Config* cfg, const char* assignment) {
    char* err = config_apply_set(cfg, assignment);
    if (err) {
        fprintf(stderr, "config_apply_set(%s): %s\n", assignment, err);
        exit(1);
    }
}

// A config over DIR for the fixture (train list DIR/train.txt when with_list,
// else the split folder; test split = the folder "val").
static inline Config* fx_config(const char* dir, int with_list) {
    Config* cfg = config_new();
    char set[1200];
    const char* keys[][2] = {
        {"data.dataset", "synthetic"},   {"data.root", dir},
        {"data.train_split", "train"},   {"data.test_split", "val"},
        {"data.train_list", ""},         {"data.test_list", ""},
        {"data.classes", "classes.tsv"}, {"data.seen", "seen.txt"},
        {"data.unseen", "unseen.txt"},   {"data.warp_size", "16"},
        {"data.crop_size", "12"},        {"data.scale_range", "0.6,1.4"},
        {"data.batch_size", "4"},        {"data.workers", "0"},
        {"run.seed", "11"},
    };
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char* v = keys[k][1];
        int in_dir = strstr(keys[k][0], "data.classes") || strstr(keys[k][0], "seen");
        if (in_dir) snprintf(set, sizeof set, "%s=%s/%s", keys[k][0], dir, v);
        else snprintf(set, sizeof set, "%s=%s", keys[k][0], v);
        fx_set(cfg, set);
    }
    if (with_list) {
        snprintf(set, sizeof set, "data.train_list=%s/train.txt", dir);
        fx_set(cfg, set);
    }
    return cfg;
}

// A fresh directory with the class files, n_train training samples (the
// ones with has_unseen[i] set hold an unseen band; has_unseen may be NULL),
// n_test test samples (every third with an unseen band) and train.txt.
static inline void fx_make(char* dir_template, int n_train, const uint8_t* has_unseen, int n_test) {
    if (!mkdtemp(dir_template)) {
        perror(dir_template);
        exit(1);
    }
    char sub[1100], id[64];
    const char* folders[4] = {"images/train", "annotations/train", "images/val", "annotations/val"};
    for (int f = 0; f < 4; f++) {
        snprintf(sub, sizeof sub, "%s/%s", dir_template, folders[f]);
        fx_mkdirs(sub);
    }
    fx_write_classes(dir_template);
    size_t cap = (size_t)n_train * 32 + 16, n = 0;
    char* list = (char*)malloc(cap);
    list[0] = '\0';
    for (int i = 0; i < n_train; i++) {
        fx_id(id, sizeof id, "train", i);
        fx_write_sample(dir_template, "train", id, i, has_unseen ? has_unseen[i] : 0);
    }
    // list order: odd indices first, then even; a blank line and trailing blanks on purpose
    for (int pass = 1; pass >= 0; pass--)
        for (int i = pass; i < n_train; i += 2) {
            fx_id(id, sizeof id, "train", i);
            n += (size_t)snprintf(list + n, cap - n, "%s%s\n", id, i == 1 ? "  " : "");
            if (i == 1) n += (size_t)snprintf(list + n, cap - n, "\n");
        }
    snprintf(sub, sizeof sub, "%s/train.txt", dir_template);
    fx_write_text(sub, list);
    free(list);
    for (int i = n_test - 1; i >= 0; i--) {  // written in reverse: the listing must sort
        fx_id(id, sizeof id, "val", i);
        fx_write_sample(dir_template, "val", id, 100 + i, i % 3 == 0);
    }
}

// Index of training image i in the list order of train.txt (odd first).
static inline int fx_list_pos(int i, int n_train) {
    int n_odd = n_train / 2;
    return i % 2 ? i / 2 : n_odd + i / 2;
}

static inline void fx_remove(const char* dir) {
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: cannot remove %s\n", dir);
}

#endif  // ZSSEG_DATASET_FIXTURE_H
