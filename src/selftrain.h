// Self-training pseudo-labels (DESIGN §2.3, issue 8): the three published
// rules that turn the current model's class scores into labels (and weights)
// for the ignored pixels of a training image, and the exact global
// threshold of the zs3 rule. Pure functions of their inputs (plus one
// collective), so a labelling round gives the same labels for any rank count.
//
// Scores are the softmax over all K classes of the logits at one pixel.
// For a pixel whose ground truth is ignored (255), its candidate is the
// unseen class with the highest probability (ties: the lowest class index)
// and its confidence is that probability.
//   cagnet: label = the candidate if it is among the pixel's top_p classes
//           (ranked by probability, ties by lower index first), weight 1;
//           otherwise no label.
//   zs3:    the pixel is a candidate of class c when its argmax over all K
//           classes (ties: lowest index) is the unseen class c; it keeps label
//           c, weight 1, when its confidence is >= c's threshold
//           (st_zs3_thresholds: the top `percent` % of c's candidates over the
//           whole training set); otherwise no label.
//   sign:   every ignored pixel gets its candidate, with weight
//           w = softmax over the image's ignored pixels of (conf / T), scaled
//           so the largest is 1, i.e. w = exp((conf - max conf) / T).
// Pixels with a ground-truth label get no pseudo-label (255, weight 0).
#ifndef ZSSEG_SELFTRAIN_H
#define ZSSEG_SELFTRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dist.h"

typedef enum { ST_MODE_CAGNET = 0, ST_MODE_ZS3 = 1, ST_MODE_SIGN = 2 } StMode;

typedef struct {
    StMode mode;           // selftrain.mode
    int top_p;             // selftrain.top_p (cagnet)
    double percent;        // selftrain.percent (zs3), in (0, 100]
    double temperature;    // selftrain.temperature (sign)
    int K;                 // classes
    const uint8_t* unseen; // (K) 1 = unseen; not owned
} StRule;

// selftrain.* keys; unseen (K) must outlive the rule.
void st_rule_from(StRule* r, const Config* cfg, int K, const uint8_t* unseen);
const char* st_mode_name(StMode m);

// One image. Overwrites label, conf and weight at every pixel. For zs3,
// label holds the candidate class before thresholding (st_zs3_apply).
void st_label_image(const StRule* r,
                    const float* logits,  // (K, HW) one image's class logits
                    const uint8_t* gt,    // (HW) training labels, 255 = ignored
                    int HW,
                    uint8_t* label,       // (HW) pseudo class, 255 = none
                    float* conf,          // (HW) the label's probability (0 where label is 255)
                    float* weight);       // (HW) 0 where no pseudo-label

// zs3: per unseen class c, the confidence of the ceil(percent/100 * n_c)-th
// most confident candidate over all ranks' pixels (n_c = candidates of c on
// all ranks); +inf when n_c == 0; seen classes +inf. Exact: a two-pass radix
// selection on the floats' bit patterns, per-rank histograms reduced onto
// rank 0, which broadcasts the thresholds (never gathers the pixels).
// Collective (d NULL: one process). conf must be >= 0 (the selection orders
// bit patterns); labels of seen classes are not counted.
void st_zs3_thresholds(const StRule* r, const Dist* d,
                       const uint8_t* label,  // (n) candidate classes, 255 = none
                       const float* conf,     // (n)
                       size_t n,
                       float* thr);           // (K)
// Keep candidates with conf >= thr[label] (ties at the threshold are all
// kept), drop the others (255, weight 0); kept ones weight 1.
void st_zs3_apply(const float* thr,  // (K)
                  uint8_t* label,    // (n)
                  const float* conf, // (n)
                  float* weight,     // (n)
                  size_t n);

#endif  // ZSSEG_SELFTRAIN_H
