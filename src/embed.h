// Class embeddings: word-vector files -> one HDF5 file the trainer reads.
// File layout: /embeddings (C, D) float32, /names (C) variable-length strings
// (class names in class-list order), root attributes "sources" (the input
// files joined by ';') and "normalized" (1 when rows are L2-normalised).
//
// Row c is the c-th class of the class list (data.classes, rows in increasing
// id order), i.e. the training index, whatever the dataset ids are.
// Lookup of a class name in each word-vector file (see wordvec.h for the exact
// and case-insensitive match of one word):
//   1. the whole name with spaces written as '_' ("traffic light" ->
//      "traffic_light"; the shipped .vec files store every class this way;
//      the name as is cannot differ usefully: file words hold no spaces);
//   2. else, when the name has several words (split on ' ', '_' and '-':
//      "wall-concrete" -> wall, concrete), the plain mean of their vectors,
//      every word required.
// The sources are concatenated in the given order (fastText then word2vec:
// 600-d), then each row is L2-normalised when asked (`zsseg embed` always does).
#ifndef ZSSEG_EMBED_H
#define ZSSEG_EMBED_H

#include <stddef.h>

#include "cli.h"

typedef struct {
    int C, D;
    float* vec;    // (C, D)
    char** names;  // (C)
} ClassEmbedding;

// Read an embedding HDF5; exits with a clear error naming the file when it is
// missing, truncated, or not of this layout.
void embedding_read_h5(ClassEmbedding* e, const char* path);
void embedding_write_h5(const char* path, const ClassEmbedding* e, const char* sources,
                        int normalized);
void embedding_free(ClassEmbedding* e);

// How one source embedded the classes.
typedef struct {
    int D;         // vector size of the file
    int whole;     // classes found under their whole name
    int averaged;  // classes embedded as the mean of their words
    int caseless;  // classes (whole or averaged) that needed a case-insensitive match
    int missing;   // classes it cannot embed
} EmbedSourceStats;

// Embed the C classes `names` from the word-vector files `paths` (concatenated
// in this order), L2-normalising each row when `normalize`. Every class some
// file cannot embed is reported (class, file, missing words) before failing.
// stats: (npaths) per-file counts, or NULL.
void embedding_build(ClassEmbedding* e, const char* const* names, int C, const char* const* paths,
                     int npaths, int normalize, EmbedSourceStats* stats);

// `zsseg embed`: data.classes and data.word_vectors -> --out or data.embedding.
int cmd_embed(const CliArgs* args, const Config* cfg);

#endif  // ZSSEG_EMBED_H
