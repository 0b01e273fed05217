// Gradient buckets: exact plans (order, offsets, counts) computed by hand for
// a small table, the coverage and cap invariants on random tables and ranges,
// and bucket_plan_ready.
#include <string.h>

#include "buckets.h"
#include "testing.h"

// Buffer layout (floats): t0 [0,5) t1 [5,13) t2 [13,43) t3 [43,47) t4 [47,53) g [53,65).
// g is declared first but its region (gen) comes last: the plan follows the buffer.
static void build(ParamTable* pt) {
    int g[1] = {12}, s[5][1] = {{5}, {8}, {30}, {4}, {6}};
    param_table_init(pt);
    param_declare(pt, "gen.fc1.weight", REGION_GEN, PARAM_BIAS, 1, g);
    char name[32];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "backbone.t%d", i);
        param_declare(pt, name, REGION_BACKBONE, PARAM_BIAS, 1, s[i]);
    }
    param_table_finalize(pt);
}

// Every float of the ranges in exactly one bucket, none outside; offsets
// descending; caps kept; no bucket across two ranges.
static void check_invariants(const char* what, const BucketPlan* p, size_t total, const size_t* off,
                             const size_t* cnt, int nr, size_t first_cap, size_t cap) {
    int* cover = calloc(total, sizeof(int));
    int ok_cover = 1, ok_order = 1, ok_cap = 1, ok_range = 1;
    for (int k = 0; k < p->n; k++) {
        const GradBucket* b = &p->b[k];
        for (size_t i = b->offset; i < b->offset + b->count && i < total; i++) cover[i]++;
        if (b->count == 0 || b->offset + b->count > total) ok_cover = 0;
        if (k > 0 && b->offset + b->count > p->b[k - 1].offset) ok_order = 0;
        if (b->count > (k == 0 ? first_cap : cap)) ok_cap = 0;
        int inside = 0;
        for (int r = 0; r < nr; r++)
            inside |= b->offset >= off[r] && b->offset + b->count <= off[r] + cnt[r];
        if (!inside) ok_range = 0;
    }
    for (size_t i = 0; i < total; i++) {
        int want = 0;
        for (int r = 0; r < nr; r++) want |= i >= off[r] && i < off[r] + cnt[r];
        if (cover[i] != want) ok_cover = 0;
    }
    free(cover);
    CHECK(ok_cover, "%s: every float of the ranges in exactly one bucket", what);
    CHECK(ok_order, "%s: buckets in descending offset order", what);
    CHECK(ok_cap, "%s: bucket caps", what);
    CHECK(ok_range, "%s: no bucket spans two ranges", what);
}

static void check_plan(const char* what, const ParamTable* pt, const size_t* off, const size_t* cnt,
                       int nr, size_t first_bytes, size_t bytes, const GradBucket* want, int n) {
    BucketPlan p;
    bucket_plan_build(&p, pt, off, cnt, nr, first_bytes, bytes);
    int same = p.n == n;
    for (int k = 0; same && k < n; k++)
        same = p.b[k].offset == want[k].offset && p.b[k].count == want[k].count;
    CHECK(same, "%s: plan differs (%d buckets, want %d)", what, p.n, n);
    if (!same)
        for (int k = 0; k < p.n; k++)
            fprintf(stderr, "  got bucket %d: offset %zu count %zu\n", k, p.b[k].offset,
                    p.b[k].count);
    check_invariants(what, &p, pt->total, off, cnt, nr, first_bytes / 4, bytes / 4);
    bucket_plan_free(&p);
}

static void test_plans(void) {
    ParamTable pt;
    build(&pt);
    CHECK(pt.total == 65 && pt.t[0].offset == 53, "layout: total %zu, g at %zu", pt.total,
          pt.t[0].offset);
    size_t all_off[1] = {0}, all_cnt[1] = {65};

    // caps 10 / 25 floats: g (12) is bigger than the first cap, cut from its end;
    // its remainder [53,55) opens bucket 1 with t4 and t3; t2 (30) overflows
    // bucket 1 (closed at t2's end), is cut to [18,43) and its remainder
    // [13,18) collects t1 and t0.
    static const GradBucket a[] = {{55, 10}, {43, 12}, {18, 25}, {0, 18}};
    check_plan("first 40 B, rest 100 B", &pt, all_off, all_cnt, 1, 40, 100, a, 4);

    // caps 20 / 25: g + t4 = 18 fit the first bucket, t3 would make 22 so it
    // closes at a tensor boundary; t3 alone, since t2 would overflow it.
    static const GradBucket b[] = {{47, 18}, {43, 4}, {18, 25}, {0, 18}};
    check_plan("first 80 B, rest 100 B", &pt, all_off, all_cnt, 1, 80, 100, b, 4);

    // two ranges with a gap (t3 and t0 excluded): the upper range's last
    // bucket closes at the range end although t1 and t2 would fit.
    size_t off2[2] = {5, 47}, cnt2[2] = {38, 18};
    static const GradBucket c[] = {{55, 10}, {47, 8}, {18, 25}, {5, 13}};
    check_plan("two ranges", &pt, off2, cnt2, 2, 40, 100, c, 4);

    // a range cutting tensors: t4 and t1 only partly inside
    size_t off3[1] = {10}, cnt3[1] = {40};
    static const GradBucket d[] = {{43, 7}, {18, 25}, {10, 8}};
    check_plan("range inside tensors", &pt, off3, cnt3, 1, 40, 100, d, 3);

    // caps bigger than everything: one bucket per range
    static const GradBucket e[] = {{47, 18}, {5, 38}};
    check_plan("huge caps", &pt, off2, cnt2, 2, 1 << 20, 1 << 20, e, 2);

    // a tensor exactly the cap is one bucket, not cut
    static const GradBucket f[] = {{53, 12}, {43, 10}, {13, 30}, {0, 13}};
    check_plan("cap equals tensor", &pt, all_off, all_cnt, 1, 48, 120, f, 4);

    // bucket_plan_ready on plan a: buckets 0..k complete once [done_from, 65) is done
    BucketPlan p;
    bucket_plan_build(&p, &pt, all_off, all_cnt, 1, 40, 100);
    static const size_t from[] = {65, 56, 55, 44, 43, 19, 18, 1, 0};
    static const int ready[] = {-1, -1, 0, 0, 1, 1, 2, 2, 3};
    for (int i = 0; i < 9; i++)
        CHECK(bucket_plan_ready(&p, from[i]) == ready[i], "ready(%zu) = %d, want %d", from[i],
              bucket_plan_ready(&p, from[i]), ready[i]);
    bucket_plan_free(&p);
    CHECK(p.n == 0 && p.b == NULL, "free resets the plan");
    CHECK(bucket_plan_ready(&p, 0) == -1, "empty plan: nothing ready");

    bucket_plan_build(&p, &pt, all_off, all_cnt, 0, 40, 100);
    CHECK(p.n == 0, "no ranges: no buckets (%d)", p.n);
    bucket_plan_free(&p);
    param_table_free(&pt);
}

// Random tables, ranges and caps: the invariants, and every bucket boundary is
// a tensor start, a range end or a cut (which leaves a full bucket above it).
static void test_random(void) {
    for (int trial = 0; trial < 200; trial++) {
        uint64_t s = (uint64_t)trial;  // RNG stream of this trial
        ParamTable pt;
        param_table_init(&pt);
        int nt = 1 + (int)(hd_rng_uniform(7, s, 0) * 12);
        for (int i = 0; i < nt; i++) {
            int sh[1] = {1 + (int)(hd_rng_uniform(7, s, 1 + (uint64_t)i) * 40)};
            char name[32];
            snprintf(name, sizeof name, "t%d", i);
            param_declare(&pt, name, (ParamRegion)(i % REGION_COUNT), PARAM_BIAS, 1, sh);
        }
        param_table_finalize(&pt);
        size_t off[3], cnt[3], at = 0;
        int nr = 0;
        for (int r = 0; r < 3 && at < pt.total; r++) {
            size_t lo =
                at + (size_t)(hd_rng_uniform(7, s, 100 + (uint64_t)r) * (pt.total - at) / 2);
            size_t n = (size_t)(hd_rng_uniform(7, s, 200 + (uint64_t)r) * (pt.total - lo)) + 1;
            if (lo + n > pt.total) n = pt.total - lo;
            off[nr] = lo, cnt[nr] = n, nr++;
            at = lo + n + 1;
        }
        size_t fc = 1 + (size_t)(hd_rng_uniform(7, s, 300) * 30);
        size_t c = 1 + (size_t)(hd_rng_uniform(7, s, 301) * 60);
        BucketPlan p;
        bucket_plan_build(&p, &pt, off, cnt, nr, fc * 4, c * 4);
        char what[64];
        snprintf(what, sizeof what, "random trial %d", trial);
        check_invariants(what, &p, pt.total, off, cnt, nr, fc, c);
        int ok = 1;
        for (int k = 0; k < p.n; k++) {
            size_t lo = p.b[k].offset;
            int boundary = 0;
            for (int i = 0; i < pt.n; i++) boundary |= pt.t[i].offset == lo;
            for (int r = 0; r < nr; r++) boundary |= off[r] == lo;
            int cut = k + 1 < p.n && p.b[k + 1].offset + p.b[k + 1].count == lo &&
                      p.b[k].count == (k == 0 ? fc : c);
            if (!boundary && !cut) ok = 0;
        }
        CHECK(ok, "%s: buckets close at tensor starts, range starts or full cuts", what);
        bucket_plan_free(&p);
        param_table_free(&pt);
    }
}

int main(void) {
    test_plans();
    test_random();
    return t_report("test_buckets");
}
