// Gradient all-reduce buckets (DDP style): the gradient ranges a step sums
// across ranks, cut into contiguous pieces that can be reduced as soon as the
// backward has produced them. The backward runs from the last declared tensor
// to the first, so the plan lists buckets by descending offset; the first one
// is small so communication starts early.
#ifndef ZSSEG_BUCKETS_H
#define ZSSEG_BUCKETS_H

#include <stddef.h>

#include "params.h"

// floats: a contiguous range of the gradient buffer
typedef struct { size_t offset, count; } GradBucket;
typedef struct { GradBucket* b; int n; } BucketPlan;

// Buckets over the union of n_ranges ascending, disjoint ranges [off[i], off[i]+cnt[i]) of a
// ParamTable-laid-out buffer (src/params.h: tensors contiguous in buffer order), in the order
// the backward completes them: descending offsets (last tensor first). The first bucket
// holds at most first_bytes, the others at most bytes; a bucket closes at a tensor boundary when
// the next tensor would overflow it; a tensor larger than the cap of the (empty) bucket it
// starts is cut into cap-sized pieces from its end, and its remainder opens the next bucket,
// which later tensors may join; a bucket never spans two ranges. Every float of the ranges is
// in exactly one bucket. Caps below one float count as one float.
void bucket_plan_build(BucketPlan* p, const ParamTable* pt, const size_t* off, const size_t* cnt,
                       int n_ranges, size_t first_bytes, size_t bytes);
void bucket_plan_free(BucketPlan* p);
// Index of the last bucket (in plan order) that lies entirely at or above `done_from`: buckets
// 0..k are complete once the backward has finished every gradient in [done_from, end); -1 if none.
int bucket_plan_ready(const BucketPlan* p, size_t done_from);

#endif  // ZSSEG_BUCKETS_H
