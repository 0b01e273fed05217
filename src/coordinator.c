#include "coordinator.h"

#include <string.h>

#include "common.h"

static const char* const stage_names[] = {"step1", "mixed", "st", "st_mixed"};
static const char* const stage_iter_keys[] = {"schedule.step1_iters", "schedule.mixed_iters",
                                              "schedule.st_iters", "schedule.st_mixed_iters"};

const char* coord_stage_name(StageKind k) { return stage_names[k]; }
const char* coord_kind_name(StepKind k) { return k == STEP_KIND_STEP2 ? "step2" : "step1"; }

void coord_init(Coordinator* c, const Config* cfg) {
    memset(c, 0, sizeof *c);
    int n = 0;
    const char* const* names = config_get_string_list(cfg, "schedule.stages", &n);
    if (n < 1 || n > COORD_MAX_STAGES)
        ZS_FAIL("list 1 to 16 stages, e.g. schedule.stages = [\"step1\", \"mixed\"]",
                "schedule.stages has %d entries", n);
    for (int i = 0; i < n; i++) {
        int k = 0;  // the schema has already rejected unknown names
        while (k < 3 && strcmp(names[i], stage_names[k]) != 0) k++;
        c->kind[i] = (StageKind)k;
        c->iters[i] = config_get_int(cfg, stage_iter_keys[k]);
        c->start[i] = c->total;
        c->total += c->iters[i];
    }
    c->n = n;
    c->rounds = config_get_int(cfg, "selftrain.rounds");
    c->interval = config_get_int(cfg, "schedule.mixed_interval");
    c->eval_every = config_get_int(cfg, "eval.every");
    c->checkpoint_every = config_get_int(cfg, "checkpoint.every");
}

int coord_stage_of(const Coordinator* c, long iter, long* it_in_stage) {
    int s = 0;
    while (s + 1 < c->n && iter >= c->start[s] + c->iters[s]) s++;
    *it_in_stage = iter - c->start[s];
    return s;
}

StepKind coord_step_kind(const Coordinator* c, int stage, long it) {
    StageKind k = c->kind[stage];
    if (k != STAGE_MIXED && k != STAGE_ST_MIXED) return STEP_KIND_STEP1;
    return (it / c->interval) % 2 ? STEP_KIND_STEP2 : STEP_KIND_STEP1;
}

static int every(long iter, long n) { return n > 0 && (iter + 1) % n == 0; }

ControlRecord coord_decide(const Coordinator* c, long iter, uint32_t flags) {
    ControlRecord r;
    memset(&r, 0, sizeof r);
    long it = 0;
    int s = coord_stage_of(c, iter, &it);
    int stage_end = it + 1 == c->iters[s];
    r.stage = s;
    r.kind = coord_step_kind(c, s, it);
    r.iter = iter;
    r.flags = flags;
    r.stop = iter + 1 >= c->total || (flags & COORD_FLAG_STOP);
    r.evaluate = stage_end || every(iter, c->eval_every);
    r.checkpoint = stage_end || every(iter, c->checkpoint_every) || r.stop;
    return r;
}

int coord_is_selftrain(const Coordinator* c, int stage) {
    return c->kind[stage] == STAGE_ST || c->kind[stage] == STAGE_ST_MIXED;
}

// Rounds of stage s start at its iterations floor(r * iters / rounds); a
// stage shorter than the round count has one round per iteration.
static long round_start(const Coordinator* c, int s, int r) {
    return c->iters[s] * r / c->rounds;
}

int coord_round_of(const Coordinator* c, long iter, long* start) {
    long it = 0;
    int s = coord_stage_of(c, iter, &it);
    *start = -1;
    if (iter >= c->total || !coord_is_selftrain(c, s)) return -1;
    int before = 0;  // rounds of the earlier self-training stages
    for (int i = 0; i < s; i++)
        if (coord_is_selftrain(c, i) && c->iters[i] > 0) before += c->rounds;
    int r = c->rounds - 1;
    while (round_start(c, s, r) > it) r--;
    *start = c->start[s] + round_start(c, s, r);
    return before + r;
}
