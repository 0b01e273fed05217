// Class embeddings: word-vector files -> one HDF5 file the trainer reads.
// File layout: /embeddings (C, D) float32, /names (C) variable-length strings
// (class names in class-list order), root attributes "sources" (the input
// files joined by ';') and "normalized" (1 when rows are L2-normalised).
#ifndef ZSSEG_EMBED_H
#define ZSSEG_EMBED_H

#include <stddef.h>

typedef struct {
    int C, D;
    float* vec;    // (C, D)
    char** names;  // (C)
} ClassEmbedding;

// Read an embedding HDF5; exits with a clear error naming the file when it is
// missing, truncated, or not of this layout.
void embedding_read_h5(ClassEmbedding* e, const char* path);
void embedding_write_h5(const char* path, const ClassEmbedding* e, const char* sources, int normalized);
void embedding_free(ClassEmbedding* e);

#endif  // ZSSEG_EMBED_H
