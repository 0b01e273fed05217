// Training and test transforms of the reference code (CaGNet's
// libs/datasets/cocostuff.py, which uses OpenCV), on one decoded sample:
//
//   train: BGR float, minus mean, over data.std (1: the reference); warp to warp x warp (image
//          cv2.INTER_LINEAR, label cv2.INTER_NEAREST); random scale s uniform
//          in [scale_min, scale_max] by cv2.resize(fx = fy = s): side
//          round(warp * s), source position (dst + 0.5) / s - 0.5; pad centred
//          (top = pad / 2, bottom = the rest, same for left/right) to at least
//          max(warp, crop) with image 0 and label `ignore`; random crop
//          crop x crop; horizontal flip with probability 1/2 (if flip).
//   test:  the same warp, nothing else.
//
// Resampling follows OpenCV: bilinear with half-pixel centres
// (align_corners = False; taps clamped at the borders), nearest
// src = min(floor(dst * in / out), in - 1). The two resizes of the training
// transform are composed into one pass with up to 4 taps per axis and only the
// crop is computed, so the cost does not depend on the scale draw.
//
// Random draws: every draw of a sample is a pure function of (seed, epoch,
// global sample index), so a sample is augmented identically whichever rank
// or thread processes it. Stream = rng_stream(RNG_AUGMENT, epoch, sample_index);
// draw numbers on that stream:
//   0  scale:  s = scale_min + (scale_max - scale_min) * hd_rng_uniform(.., 0)
//   1  crop y: rng_uint_below(.., 1, padded_H - crop + 1)
//   2  crop x: rng_uint_below(.., 2, padded_W - crop + 1)
//   3  flip:   hd_rng_uniform(.., 3) < 0.5 (only when flip is on)
#ifndef ZSSEG_TRANSFORM_H
#define ZSSEG_TRANSFORM_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct {
    int warp;                     // data.warp_size: side of the square warp
    int crop;                     // data.crop_size: side of the training crop
    float scale_min, scale_max;   // data.scale_range
    int flip;                     // data.flip
    float mean_bgr[3];            // data.mean, BGR order
    float std_bgr[3];             // data.std, BGR order (1 = the reference: no division)
    uint8_t ignore;               // data.ignore_label: label of padded pixels
} TransformConfig;

void transform_config_from(TransformConfig* tc, const Config* cfg);

// The random choices of one training sample (draws 0-3 above).
typedef struct {
    double scale;        // s
    int size;            // side of the scaled warp: round(warp * s), at least 1
    int pad_top, pad_left;  // offset of the scaled image inside the padded one
    int padded;          // side of the padded image: max(size, warp, crop)
    int crop_y, crop_x;  // top-left corner of the crop in the padded image
    int flip;            // 1 = mirrored left-right
} TransformDraw;

void transform_draw(const TransformConfig* tc, uint64_t seed, uint64_t epoch,
                    uint64_t sample_index, TransformDraw* d);

// Scratch bytes transform_train / transform_test need for images up to max_W
// pixels wide (the height does not matter). Allocate once per thread.
size_t transform_scratch_bytes(const TransformConfig* tc, int max_W);

// Training transform of one sample. rgb and label have the same H x W (the
// caller checks). Stops with an error if scratch_bytes is too small for W.
void transform_train(const TransformConfig* tc,
                     const uint8_t* rgb,    // (H, W, 3) interleaved RGB
                     const uint8_t* label,  // (H, W)
                     int H, int W, uint64_t seed, uint64_t epoch, uint64_t sample_index,
                     float* out_img,        // (3, crop, crop) BGR minus mean
                     uint8_t* out_label,    // (crop, crop)
                     void* scratch, size_t scratch_bytes);

// Where crop pixel (y, x) of the training sample drawn as d comes from in
// the warp x warp image (the label path of transform_train: flip, crop, pad,
// nearest from the scaled side back to warp): (*wy, *wx) in [0, warp), or
// both -1 when the pixel is padding. transform_train's label at (y, x) is the
// nearest-warped label (transform_test's) at (*wy, *wx), or ignore.
void transform_train_source(const TransformConfig* tc, const TransformDraw* d, int y, int x,
                            int* wy, int* wx);
// The same by axis (the map is separable): wy[y], wx[x] for every crop row
// and column, -1 where that row / column is padding.
void transform_train_source_axes(const TransformConfig* tc, const TransformDraw* d,
                                 int* wy,   // (crop)
                                 int* wx);  // (crop)

// Test transform: warp only. label may be NULL (then out_label is untouched);
// for full-resolution evaluation the caller keeps the original label.
void transform_test(const TransformConfig* tc,
                    const uint8_t* rgb,    // (H, W, 3) interleaved RGB
                    const uint8_t* label,  // (H, W) or NULL
                    int H, int W,
                    float* out_img,        // (3, warp, warp) BGR minus mean
                    uint8_t* out_label,    // (warp, warp)
                    void* scratch, size_t scratch_bytes);

// labels[i] = table[labels[i]]: dataset id -> training index (unseen and
// unknown ids -> 255 in the table, 255 -> 255).
void label_remap(uint8_t* labels,  // (n)
                 size_t n, const uint8_t table[256]);

#endif  // ZSSEG_TRANSFORM_H
