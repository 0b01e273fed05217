// Host-side helpers over the counter-based Philox4x32-10 generator of
// hd_math.h. A draw is a pure function of (seed, stream, index): the same on
// every rank and device, in any order, after any resume. Nothing here holds
// state, so a checkpoint needs only the seed.
//
// Layout of one draw (hd_math.h): Philox key = seed (low word first), counter
// words 0-1 = block index, words 2-3 = stream. Uniform and integer draw i read
// word i&3 of block i>>2; normal draw i is one half of the Box-Muller pair in
// block i>>1. Use one stream for one kind of draw.
#ifndef ZSSEG_RNG_H
#define ZSSEG_RNG_H

#include <stddef.h>
#include <stdint.h>

// What a stream is for. Streams of different purposes never collide, so adding
// a random draw somewhere never shifts another one. 0 is not a purpose: raw
// stream ids below 2^56 (tests, t_fill_*) stay out of the way of these.
// The (a, b) meanings are the convention every caller follows.
typedef enum {
    RNG_INIT = 1,     // parameter initialisation: a = parameter tensor index, b = 0
    RNG_DATA_ORDER,   // sample order: a = epoch, b = 0; draw i = Fisher-Yates step i
    RNG_AUGMENT,      // scale/crop/flip: a = epoch, b = global sample index
    RNG_DROPOUT,      // a = iteration, b = global sample index; index = (layer << 32) + element
    RNG_REPARAM,      // CM's z = mu + sigma * eps: a = iteration, b = global sample index
    RNG_LATENT,       // generator latent codes: a = iteration, b = global sample index
    RNG_CLASS_DRAW,   // step2 class of each feature pixel: a = iteration, b = global sample index
    RNG_PATCH,        // CaGNetv2 patch sampling: a = iteration, b = global sample index
    RNG_SYNTH,        // synthetic dataset: a = split (0 train, 1 test), b = image index; a = 2: class choice
    RNG_PURPOSE_END   // one past the last purpose (purposes must stay below 256)
} RngPurpose;

// Stream id of (purpose, a, b): bits 63..56 purpose, 55..32 a, 31..0 b, so it
// is collision-free for a < 2^24 (iterations, epochs, tensor ids) and b < 2^32
// (global sample indices); larger values stop with an error. Because b is the
// low field, rng_stream(p, a, b + n) == rng_stream(p, a, b) + n: a kernel given
// the stream of its slice's first sample adds the sample's position.
uint64_t rng_stream(int purpose, uint64_t a, uint64_t b);

// Keys of one iteration's draws for a slice of the global batch: sample b of
// the slice is global sample sample0 + b. training = 0 turns dropout off and
// makes the reparameterisation deterministic (z = mu).
typedef struct {
    uint64_t seed;
    long iter;
    int sample0;
    int training;
} StepRng;

// out[i] = hd_rng_uniform(seed, stream, offset + i), in (0, 1).
void rng_fill_uniform(float* out,  // (n)
                      size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

// out[i] = hd_rng_normal(seed, stream, offset + i), standard normal.
void rng_fill_normal(float* out,  // (n)
                     size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

// Draw i of a stream as an unbiased integer in [0, n), n >= 1
// (hd_rng_uint_below: Lemire's method, rejections read further counters).
uint32_t rng_uint_below(uint64_t seed, uint64_t stream, uint64_t i, uint32_t n);

#endif  // ZSSEG_RNG_H
