// The trainer's side of self-training (issue 8): before each iteration, the
// batch size of its stage (selftrain.batch_size in st/st_mixed, else
// data.batch_size: the loader is reopened at the same data position and the
// model's activations resized) and the pseudo-labels of its round (labelled
// at the round's first iteration, read back after a resume, labelled again
// with a warning when that file is missing or damaged on any rank); with
// selftrain.online, each step1 batch of a self-training stage relabelled with
// the current model instead.
#ifndef ZSSEG_TRAIN_SELFTRAIN_H
#define ZSSEG_TRAIN_SELFTRAIN_H

#include "coordinator.h"
#include "device_backend.h"
#include "loader.h"
#include "run.h"
#include "st_round.h"

typedef struct {
    StStore store;
    int round;        // round in the store, -1 none
    int online;       // selftrain.online
    StOnline on;      // its labeller, sized for the current batch (on.labels NULL until needed)
    int batch;              // global batch of the current loader
    const char* batch_key;  // its config key
} SelfTrain;

// Checks every stage's batch against the rank count; batch and batch_key are
// those of the stage of iteration iter (where the run starts or resumes).
void selftrain_init(SelfTrain* s, const Config* cfg, const Coordinator* co, int world,
                    long iter);
// Collective. Loader and model for iteration iter (*loader may be replaced,
// *B_local updated). Returns 1 when a stop signal came during labelling
// (the caller checkpoints the state before iter and leaves).
int selftrain_before(SelfTrain* s, RunContext* r, CagNet* m, DeviceRun* dv, const Dataset* train,
                     Loader** loader, int* B_local, const Coordinator* co, long iter);
// The labels a step1 batch of stage `stage` trains on: the batch's own, or
// with selftrain.online in a self-training stage, relabelled.
const uint8_t* selftrain_labels(SelfTrain* s, RunContext* r, CagNet* m,
                                const Coordinator* co, int stage, const LoaderBatch* b);
void selftrain_free(SelfTrain* s, Loader* loader);

#endif  // ZSSEG_TRAIN_SELFTRAIN_H
