// Word-vector files, read by streaming: only the vectors of a given set of
// wanted words are kept, so a 3.6 GB GoogleNews binary costs O(D x wanted)
// memory. Two formats, told apart by content (not by file name):
// - word2vec binary: header "N D\n", then per word its bytes up to a space and
//   D little-endian float32, optionally followed by '\n';
// - text (.vec, fastText/word2vec): header "N D", then "word v1 ... vD" per line.
// Lookup: an exact match wins wherever it appears in the file; otherwise the
// first case-insensitive match (ASCII letters only; other bytes compare as is).
#ifndef ZSSEG_WORDVEC_H
#define ZSSEG_WORDVEC_H

#define WORDVEC_MAX_WORD 1024  // longest word (bytes) a wanted word may have

typedef enum { WORDVEC_TEXT, WORDVEC_BINARY } WordVecFormat;

typedef enum {
    WORDVEC_MISSING = 0,
    WORDVEC_EXACT,     // the file holds the word as given
    WORDVEC_CASELESS,  // found only with a different case
} WordVecMatch;

typedef struct {
    WordVecFormat format;
    long long nwords;    // word count of the header
    int D;               // vector size of the file
    int nwanted;
    float* vec;          // (nwanted, D) vector of each wanted word, zeros when missing
    WordVecMatch* match; // (nwanted)
} WordVecLookup;

// Stream PATH once and look up `wanted` (duplicates allowed). Exits with an
// error naming the file on a missing, malformed or truncated file; words that
// are not found are not an error (see match).
void wordvec_lookup(WordVecLookup* out, const char* path, const char* const* wanted, int nwanted);
void wordvec_lookup_free(WordVecLookup* w);

#endif  // ZSSEG_WORDVEC_H
