// Coordinator decisions on a forced schedule: step1 (4) then mixed (10) with
// interval 3, eval every 5, checkpoint every 6 — every field of every record
// against the hand-written sequence.
#include <string.h>

#include "config.h"
#include "coordinator.h"
#include "testing.h"

static Coordinator make(const char* text) {
    Config* cfg = config_new();
    char* err = config_load_string(cfg, text, "test");
    CHECK(err == NULL, "config: %s", err ? err : "");
    Coordinator c;
    coord_init(&c, cfg);
    config_free(cfg);
    return c;
}

static void test_sequence(void) {
    Coordinator c = make(
        "schedule = { stages = [\"step1\", \"mixed\"]; step1_iters = 4; mixed_iters = 10;"
        " mixed_interval = 3; }; eval = { every = 5; }; checkpoint = { every = 6; };");
    CHECK(c.n == 2 && c.total == 14 && c.start[1] == 4, "layout n %d total %ld", c.n, c.total);
    //                    it: 0  1  2  3 | 4  5  6  7  8  9 10 11 12 13
    const int stage[14] = {0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const int kind[14] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1};
    const int eval[14] = {0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1};  // stage ends 3, 13; 4, 9
    const int ckpt[14] = {0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1};  // stage ends; 5, 11
    for (long i = 0; i < 14; i++) {
        ControlRecord r = coord_decide(&c, i, 0);
        CHECK(r.iter == i && r.stage == stage[i] && r.kind == kind[i], "it %ld: stage %d kind %d",
              i, r.stage, r.kind);
        CHECK(r.evaluate == eval[i] && r.checkpoint == ckpt[i], "it %ld: eval %d ckpt %d", i,
              r.evaluate, r.checkpoint);
        CHECK(r.stop == (i == 13), "it %ld: stop %d", i, r.stop);
    }
    // a stop request ends the run at once, with a checkpoint
    ControlRecord r = coord_decide(&c, 6, COORD_FLAG_STOP);
    CHECK(r.stop == 1 && r.checkpoint == 1 && r.flags == COORD_FLAG_STOP, "stop flag");
    CHECK(!strcmp(coord_stage_name(c.kind[1]), "mixed") && !strcmp(coord_kind_name(1), "step2"),
          "names");
}

static void test_empty_stage(void) {
    // a zero-length step1 stage is skipped: iteration 0 is mixed's first
    Coordinator c = make(
        "schedule = { stages = [\"step1\", \"mixed\"]; step1_iters = 0; mixed_iters = 4;"
        " mixed_interval = 1; };");
    long it = -1;
    CHECK(coord_stage_of(&c, 0, &it) == 1 && it == 0, "stage of 0: it %ld", it);
    const int kind[4] = {0, 1, 0, 1};
    for (long i = 0; i < 4; i++) CHECK(coord_decide(&c, i, 0).kind == kind[i], "kind at %ld", i);
}

// step1 3, st 5 with 2 rounds (start at 0 and 2 of the stage), st_mixed 4 with
// interval 1 and 2 rounds (0, 2): global rounds 0, 1, 2, 3 at iterations 3, 5, 8, 10.
static void test_rounds(void) {
    Coordinator c = make("schedule = { stages = [\"step1\", \"st\", \"st_mixed\"]; step1_iters = 3; "
                         "st_iters = 5; st_mixed_iters = 4; mixed_interval = 1; };"
                         "selftrain = { rounds = 2; };");
    const int round[12] = {-1, -1, -1, 0, 0, 1, 1, 1, 2, 2, 3, 3};
    const long starts[12] = {-1, -1, -1, 3, 3, 5, 5, 5, 8, 8, 10, 10};
    const int kind[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1};
    for (long i = 0; i < 12; i++) {
        long start = 0;
        int r = coord_round_of(&c, i, &start);
        CHECK(r == round[i] && start == starts[i],
              "iteration %ld: round %d starts at %ld, want %d %ld", i, r, start, round[i],
              starts[i]);
        ControlRecord rec = coord_decide(&c, i, 0);
        CHECK(rec.kind == kind[i], "iteration %ld: kind %d, want %d", i, rec.kind, kind[i]);
    }
    CHECK(coord_is_selftrain(&c, 1) && coord_is_selftrain(&c, 2) && !coord_is_selftrain(&c, 0),
          "st and st_mixed are self-training stages");
    // more rounds than iterations: rounds that would be empty (0, 1 at
    // iteration 0; 3 at iteration 1) never run, the last one of each start does
    c = make("schedule = { stages = [\"st\"]; st_iters = 2; }; selftrain = { rounds = 5; };");
    long start = 0;
    CHECK(coord_round_of(&c, 0, &start) == 2 && start == 0, "iteration 0 starts round 2");
    CHECK(coord_round_of(&c, 1, &start) == 4 && start == 1, "iteration 1 starts round 4");
}

int main(void) {
    test_sequence();
    test_empty_stage();
    test_rounds();
    return t_report("test_coordinator");
}
