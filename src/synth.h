// The embedded synthetic dataset (`zsseg synth`): Voronoi scenes of real
// COCO-stuff classes whose appearance is a fixed smooth function of their real
// class embedding, written in the COCO-stuff layout:
//
//   ROOT/images/{train2017,val2017}/ID.jpg       RGB scenes
//   ROOT/annotations/{train2017,val2017}/ID.png  labels: COCO-stuff class ids
//   (split folder names from data.train_split / data.test_split; ID = %012d index)
//   ROOT/train_ids.txt, ROOT/test_ids.txt    image ids (file stems)
//   ROOT/classes.tsv                         id<TAB>name of the chosen classes, id order
//   ROOT/seen.txt, ROOT/unseen.txt           chosen class ids
//   ROOT/embedding.h5                        their 600-d embeddings (embed.h layout)
//   ROOT/SYNTH_DONE                          written last: the dataset is complete
//
// The appearance function and the scene recipe are documented exactly in
// datasets/README.md ("Synthetic dataset"); the constants live in synth.c.
// Everything is a pure function of (seed, options, reference files): any
// thread count gives byte-identical files.
#ifndef ZSSEG_SYNTH_H
#define ZSSEG_SYNTH_H

#include <stdint.h>

#include "cli.h"
#include "config.h"

// Split numbers: the `a` field of rng_stream(RNG_SYNTH, a, b).
#define SYNTH_TRAIN 0
#define SYNTH_TEST 1
#define SYNTH_CLASS_DRAW 2  // choice of the classes (b = 0 seen, 1 unseen)

typedef struct {
    uint64_t seed;
    int train_images, test_images;
    int image_size;  // side of the square scenes, pixels
    int seen_classes, unseen_classes;
    int min_regions, max_regions;  // Voronoi regions per scene
    int appearance_dims;           // k: leading principal directions used
    int jpeg_quality;
    const char* train_split;  // sub-folders of images/ and annotations/
    const char* test_split;   // (data.train_split, data.test_split)
} SynthOptions;

// The synth.* keys, run.seed, data.train_split/test_split and a JPEG quality
// of 95. The split names point into cfg.
void synth_options_from(SynthOptions* o, const Config* cfg);

// Appearance of one class (datasets/README.md gives the formulas).
typedef struct {
    float colour[3];  // base RGB, 0..255
    float theta;      // stripe direction, radians in (0, pi)
    float period;     // stripe period, pixels
    float amplitude;  // stripe amplitude, grey levels
    float noise;      // per-pixel noise standard deviation, grey levels
} SynthAppearance;

// Principal directions of a set of embedding rows (the seen classes).
typedef struct {
    int k, D;
    float* mean;    // (D) mean of the rows used
    float* dirs;    // (k, D) unit directions, largest variance first; the
                    // largest-magnitude entry of each is positive
    float* spread;  // (k) RMS coordinate of the rows used along each direction
} SynthPca;

// PCA of the rows of emb with use[i] != 0 (through their Gram matrix, in
// double, cyclic Jacobi). Needs k < number of rows used. Other rows have no
// influence at all on the result.
void synth_pca_fit(SynthPca* p,
                   const float* emb,  // (n, D)
                   const int* use,    // (n)
                   int n, int D, int k);
void synth_pca_free(SynthPca* p);
// u[j] = ((e - mean) . dirs[j]) / spread[j]: normalised coordinates.
void synth_pca_coords(const SynthPca* p,
                      const float* e,  // (D)
                      float* u);       // (k)

// The appearance of normalised coordinates u on a scene of side image_size.
void synth_appearance(const float* u,  // (k)
                      int k, int image_size, SynthAppearance* a);

// The chosen classes, in increasing id order.
typedef struct {
    int n, D;
    int* ids;              // (n) COCO-stuff class ids
    char** names;          // (n) names as in the reference classes.tsv
    int* unseen;           // (n) 1 for an unseen class
    float* emb;            // (n, D) fastText ⊕ word2vec, L2-normalised rows
    SynthAppearance* app;  // (n)
} SynthClasses;

// Read REF/classes.tsv, seen.txt and unseen.txt (dataset_classes_load),
// sample o->seen_classes seen and o->unseen_classes unseen classes (seeded),
// embed them exactly as `zsseg embed` does (embedding_build over vec_paths,
// L2-normalised), and compute their appearances from the PCA of the seen rows.
void synth_classes_build(SynthClasses* sc, const SynthOptions* o, const char* ref_dir,
                         const char* const* vec_paths, int nvec);
// Appearances from sc->emb (called by synth_classes_build; exposed so a test
// can perturb an embedding row and recompute).
void synth_classes_appearance(SynthClasses* sc, const SynthOptions* o);
void synth_classes_free(SynthClasses* sc);

// One scene: split SYNTH_TRAIN or SYNTH_TEST, image index within the split.
void synth_render(const SynthClasses* sc, const SynthOptions* o, int split, int index,
                  uint8_t* rgb,     // (P, P, 3), P = o->image_size
                  uint8_t* label);  // (P, P)

// Write the whole dataset into root (see the top of this file), the
// embedding into embedding_path (NULL = ROOT/embedding.h5). The dataset is
// built in a temporary sibling directory and renamed into place, so root is
// either absent, the old dataset or the complete new one. An existing
// non-empty root is replaced only with force, and only when it holds a
// SYNTH_DONE marker (a dataset written by this function); likewise an
// existing embedding file outside root is replaced only with force.
void synth_generate(const char* root, const char* embedding_path, const SynthOptions* o,
                    const char* ref_dir, const char* const* vec_paths, int nvec, int force);

// `zsseg synth`: options -o/--out DIR (data.root), --seed S (run.seed),
// --images N (synth.train_images), --size P (synth.image_size), --quality Q
// (JPEG, default 95), --from DIR (reference class lists, default
// datasets/cocostuff), --force.
int cmd_synth(const CliArgs* args, const Config* cfg);

#endif  // ZSSEG_SYNTH_H
