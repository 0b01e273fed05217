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
        int k = 0;
        while (k < 4 && strcmp(names[i], stage_names[k]) != 0) k++;
        if (k >= STAGE_ST)  // the schema has already rejected unknown names
            ZS_FAIL("remove st and st_mixed from schedule.stages: self-training is on the "
                    "roadmap (README), not in this version",
                    "schedule.stages: stage '%s' is not available yet", names[i]);
        c->kind[i] = (StageKind)k;
        c->iters[i] = config_get_int(cfg, stage_iter_keys[k]);
        c->start[i] = c->total;
        c->total += c->iters[i];
    }
    c->n = n;
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
