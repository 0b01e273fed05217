// Label-map datasets (DESIGN §3): where a dataset's files are, its class list
// and seen/unseen split, the one remapping table from label-file values to
// training indices, and reading one validated sample.
//
// A dataset is an image directory, a label directory (both given by the
// layout of data.dataset under data.root), an id list, a class list
// (classes.tsv: id<TAB>name, training index = row) and a seen/unseen split.
// Classes listed in neither seen.txt nor unseen.txt (VOC background, Context
// unlabel) are ignored in training and test labels, as in SPNet and CaGNet.
//
// Bad input never exits here: dataset_read reports a missing, truncated or
// corrupt file, an image/label size mismatch or a label value outside the
// class list with the file name, and the loader skips and counts the sample.
// Configuration errors (unreadable class or id lists, bad ids) stop with ZS_FAIL.
#ifndef ZSSEG_DATASET_H
#define ZSSEG_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "config.h"

// Label value of ignored pixels in the loader's output (training and test
// indices); the model and losses use the same value.
#define DATASET_IGNORE 255

// ---------------------------------------------------------------- layouts
// Paths of one sample under data.root; "{split}" and "{id}" are replaced by
// the split folder and the image id. One row per data.dataset choice.
typedef struct {
    const char* name;        // data.dataset value
    const char* image_path;  // "images/{split}/{id}.jpg"
    const char* label_path;  // "annotations/{split}/{id}.png"
} DatasetLayout;

// The layout of data.dataset `name`, or NULL.
const DatasetLayout* dataset_layout_find(const char* name);

// ---------------------------------------------------------------- classes
typedef struct {
    int K;                     // classes: rows of classes.tsv
    int* ids;                  // (K) label-file value of each training index
    char** names;              // (K)
    uint8_t* seen;             // (K) 1 = seen
    uint8_t* unseen;           // (K) 1 = unseen (neither: ignored everywhere)
    int ignore_value;          // data.ignore_label: file value of ignored pixels
    // The remapping, label-file value -> index; DATASET_IGNORE for the
    // ignore value, classes of neither split and values outside the list.
    uint8_t train_map[256];    // unseen -> DATASET_IGNORE too
    uint8_t test_map[256];     // unseen keep their index
    uint8_t known[256];        // 1 = a listed id or the ignore value; else a bad value
    uint8_t unseen_value[256]; // 1 = the file value of an unseen class
} DatasetClasses;

// Read data.classes, data.seen, data.unseen (and data.ignore_label). Stops
// with an error naming the file and line on malformed or inconsistent lists.
void dataset_classes_load(DatasetClasses* cs, const Config* cfg);
void dataset_classes_free(DatasetClasses* cs);
// Print the remapping table (one line per class: file value, training index,
// test index, split, name) with log_info, i.e. on rank 0.
void dataset_classes_log(const DatasetClasses* cs);

// ---------------------------------------------------------------- index
typedef enum {
    DATASET_TEST = 0,
    DATASET_TRAIN = 1,        // with the data.strict_inductive filter when it is on
    DATASET_TRAIN_LISTED = 2, // every listed training image, never filtered (data check)
} DatasetSplit;

typedef struct {
    const DatasetClasses* cs;  // not owned
    const DatasetLayout* layout;
    int training;              // 1: a training split (train_map)
    const uint8_t* map;        // cs->train_map or cs->test_map
    char* split;               // data.train_split / data.test_split (copy)
    int n;                     // samples
    char** ids;                // (n) image ids in list order
    char** image_paths;        // (n)
    char** label_paths;        // (n)
    int n_listed;              // ids before the strict-inductive filter
    int n_dropped;             // training images dropped by data.strict_inductive
} Dataset;

// Index a split: the id list (data.train_list / data.test_list; empty = every
// label file of the split folder, sorted) and the sample paths. With
// data.strict_inductive, DATASET_TRAIN drops every
// image whose label holds an unseen class: the labels are scanned once here
// (OpenMP threads; split across MPI ranks when MPI runs with several), nothing
// is cached on disk, and the count dropped is logged. A label that cannot be
// read during the scan stays in the index (the loader reports and skips it).
void dataset_open(Dataset* ds, const Config* cfg, const DatasetClasses* cs, DatasetSplit split);
void dataset_free(Dataset* ds);

// Why a sample cannot be used.
typedef enum {
    SAMPLE_OK = 0,
    SAMPLE_BAD_IMAGE,     // missing, truncated or corrupt image file
    SAMPLE_BAD_LABEL,     // missing, truncated or corrupt label file
    SAMPLE_SIZE_MISMATCH, // image and label sizes differ
    SAMPLE_BAD_VALUE,     // a label value outside the class list
} SampleStatus;

// One decoded sample; buffers are malloc'd by the readers.
typedef struct {
    uint8_t* rgb;    // (H, W, 3) interleaved RGB
    uint8_t* label;  // (H, W) label-file values (remap with ds->map after the transform)
    int H, W;
} DatasetSample;

// Decode and validate sample i. On SAMPLE_OK, s holds the buffers (free with
// dataset_sample_free); otherwise s holds nothing and err names the file and
// the reason.
SampleStatus dataset_read(const Dataset* ds, int i, DatasetSample* s, char* err, size_t errlen);
void dataset_sample_free(DatasetSample* s);

// Read, bounds-checked through cs->known: first value of label (n) outside
// the class list, or -1 when all are known.
int dataset_first_bad_value(const DatasetClasses* cs, const uint8_t* label, size_t n);

// `zsseg data check -c CFG` (data_check.c): count the images of both splits,
// verify every pair exists, decodes and has matching sizes, print the class
// pixel histogram and the number of problems. Exit code 1 if any problem.
int cmd_data(const CliArgs* args, const Config* cfg);

#endif  // ZSSEG_DATASET_H
