// Rank 0's decisions (issue 5): the stage list of schedule.stages laid out on
// one global iteration axis, and for each iteration the control record every
// rank follows — stage, step kind, evaluation, checkpoint, stop. Pure
// functions of the config and the iteration, so a test can replay them and a
// resumed run makes the same decisions.
#ifndef ZSSEG_COORDINATOR_H
#define ZSSEG_COORDINATOR_H

#include <stdint.h>

#include "config.h"
#include "dist.h"

#define COORD_MAX_STAGES 16

typedef enum { STAGE_STEP1 = 0, STAGE_MIXED, STAGE_ST, STAGE_ST_MIXED } StageKind;
typedef enum { STEP_KIND_STEP1 = 0, STEP_KIND_STEP2 = 1 } StepKind;

// ControlRecord.flags bits (OR of every rank's local flags, dist_agree_flags).
#define COORD_FLAG_STOP 1u  // a rank asked to stop (signal): checkpoint and leave

typedef struct {
    int n;                               // stages
    StageKind kind[COORD_MAX_STAGES];
    long iters[COORD_MAX_STAGES];        // iterations of each stage
    long start[COORD_MAX_STAGES];        // global iteration of each stage's first step
    long total;                          // iterations of all stages
    long interval;                       // schedule.mixed_interval
    int rounds;                          // selftrain.rounds per self-training stage
    long eval_every, checkpoint_every;   // 0 = at stage ends only
} Coordinator;

// Lay out schedule.stages.
void coord_init(Coordinator* c, const Config* cfg);

const char* coord_stage_name(StageKind k);
const char* coord_kind_name(StepKind k);

// Stage index of global iteration `iter` (< c->total) and the iteration
// inside that stage.
int coord_stage_of(const Coordinator* c, long iter, long* it_in_stage);

// Step kind at iteration `it` of a stage: mixed stages run `interval` step1
// then `interval` step2 iterations, repeating; other stages only step1.
StepKind coord_step_kind(const Coordinator* c, int stage, long it);

// The record of global iteration `iter`: stage, kind, iter; evaluate after
// every eval_every-th iteration and at each stage's end; checkpoint likewise
// with checkpoint_every; stop after the last iteration or when `flags` holds
// COORD_FLAG_STOP (then also checkpoint). Learning rates are left 0: they
// belong to the model (the trainer fills them in on rank 0).
ControlRecord coord_decide(const Coordinator* c, long iter, uint32_t flags);

// Self-training (st, st_mixed): each such stage runs selftrain.rounds
// pseudo-labelling rounds, round r of a stage starting at its iteration
// floor(r * iters / rounds); rounds are numbered 0, 1, ... over all
// self-training stages in order. coord_round_of gives the round whose labels
// iteration iter trains on (-1 outside self-training) and sets *start to
// that round's first global iteration (-1 outside): the labels are made
// before it.
int coord_is_selftrain(const Coordinator* c, int stage);
int coord_round_of(const Coordinator* c, long iter, long* start);

#endif  // ZSSEG_COORDINATOR_H
