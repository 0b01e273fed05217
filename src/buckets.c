// Bucket plan: walk the ranges from the top of the buffer down, tensor piece
// by tensor piece, growing the open bucket downwards.
#include "buckets.h"

#include <stdlib.h>

#include "common.h"

static int cmp_size(const void* a, const void* b) {
    size_t x = *(const size_t*)a, y = *(const size_t*)b;
    return (x > y) - (x < y);
}

typedef struct {
    BucketPlan* p;
    int cap_n;
    size_t lo, hi;  // open bucket [lo, hi); empty when lo == hi
    size_t first_cap, cap;  // floats
} Builder;

static void close_bucket(Builder* b) {
    if (b->lo == b->hi) return;
    BucketPlan* p = b->p;
    if (p->n == b->cap_n) {
        b->cap_n = b->cap_n ? 2 * b->cap_n : 16;
        GradBucket* nb = realloc(p->b, (size_t)b->cap_n * sizeof *nb);
        if (!nb) ZS_FAIL("free memory", "out of memory growing the bucket plan to %d", b->cap_n);
        p->b = nb;
    }
    p->b[p->n++] = (GradBucket){b->lo, b->hi - b->lo};
    b->hi = b->lo;
}

// The tensor piece [a, top) joins the plan (top == b->lo: pieces come in descending order).
static void add_piece(Builder* b, size_t a, size_t top) {
    while (top > a) {
        size_t cap = b->p->n == 0 ? b->first_cap : b->cap, len = top - a;
        if (b->lo == b->hi) b->lo = b->hi = top;
        size_t used = b->hi - b->lo;
        if (used + len <= cap) {  // fits whole
            b->lo = a;
            return;
        }
        if (used) {  // close at the tensor boundary, retry in a fresh bucket
            close_bucket(b);
            continue;
        }
        b->lo = top - cap;  // too big for an empty bucket: a cap-sized piece from its end
        close_bucket(b);
        top -= cap;
    }
}

void bucket_plan_build(BucketPlan* p, const ParamTable* pt, const size_t* off, const size_t* cnt,
                       int n_ranges, size_t first_bytes, size_t bytes) {
    p->b = NULL, p->n = 0;
    // tensor starts ascending: the boundaries a bucket may close at
    size_t* start = mallocCheck(((size_t)pt->n + 1) * sizeof *start);
    for (int i = 0; i < pt->n; i++) start[i] = pt->t[i].offset;
    qsort(start, (size_t)pt->n, sizeof *start, cmp_size);
    Builder b = {p, 0, 0, 0, first_bytes / sizeof(float), bytes / sizeof(float)};
    if (b.first_cap == 0) b.first_cap = 1;
    if (b.cap == 0) b.cap = 1;
    for (int r = n_ranges - 1; r >= 0; r--) {
        size_t lo = off[r], hi = off[r] + cnt[r];
        if (hi > pt->total || (r + 1 < n_ranges && hi > off[r + 1]))
            ZS_FAIL("the caller must pass ascending, disjoint ranges inside the parameter buffer",
                    "bucket range %d [%zu, %zu) is out of order or past the buffer (%zu floats)", r,
                    lo, hi, pt->total);
        int t = pt->n;  // start[t - 1]: the highest tensor start below top
        for (size_t top = hi; top > lo;) {
            while (t > 0 && start[t - 1] >= top) t--;
            size_t a = t > 0 && start[t - 1] > lo ? start[t - 1] : lo;
            add_piece(&b, a, top);
            top = a;
        }
        close_bucket(&b);  // never across two ranges
    }
    free(start);
}

void bucket_plan_free(BucketPlan* p) {
    free(p->b);
    p->b = NULL, p->n = 0;
}

int bucket_plan_ready(const BucketPlan* p, size_t done_from) {
    int lo = 0, hi = p->n;  // offsets descend: find the first bucket below done_from
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (p->b[mid].offset >= done_from) lo = mid + 1;
        else hi = mid;
    }
    return lo - 1;
}
