// Training progress on rank 0: losses averaged over the last log.every
// iterations, one line per window (stage, kind, iteration/total, each loss,
// learning rates, images/s, s/iter, ETA) on stdout, the same numbers to
// RUN/metrics.jsonl and RUN/tb/, and a live progress bar on stderr when it is
// a terminal (plain lines only otherwise, as in SLURM logs). Other ranks hold
// an inactive TrainLog: every call is a no-op there.
#ifndef ZSSEG_TRAIN_LOG_H
#define ZSSEG_TRAIN_LOG_H

#include "cagnet.h"
#include "dist.h"
#include "metrics.h"
#include "metrics_log.h"
#include "tb_events.h"

typedef struct {
    int active;                  // rank 0
    int every;                   // log.every
    long total;                  // iterations of the whole schedule
    int batch;                   // global batch (images per step1 iteration)
    int tty;                     // stderr is a terminal: progress bar
    MetricsLog* json;            // NULL when log.json is off
    TbWriter* tb;                // NULL when log.tensorboard is off
    double t_window, t_start;    // wall clock at the window's / run's start
    long first_iter;             // first iteration of this process (ETA)
    // window sums
    double s1[11];               // Step1Losses fields in order
    long n1;
    double s2;                   // step2 CE
    long n2;
    long images;                 // images consumed by step1 iterations
} TrainLog;

void train_log_open(TrainLog* L, const Config* cfg, const Dist* d, const char* run_dir,
                    long total, long first_iter);
void train_log_close(TrainLog* L);

// Add one iteration's losses (l1 for step1 kinds, ce for step2).
void train_log_step1(TrainLog* L, const Step1Losses* l1);
void train_log_step2(TrainLog* L, float ce);
// Name of the first non-finite loss of one iteration (l1's fields in log
// order, else ce_step2 when l1 is NULL), its value in *value; NULL if all
// are finite. Any rank, its own partial losses.
const char* train_log_nonfinite(const Step1Losses* l1, float ce_step2, double* value);
// Every log.every iterations (and at the last one): print and record the window.
void train_log_maybe_flush(TrainLog* L, const ControlRecord* rec, const char* stage,
                           const char* kind);
// Evaluation results of iteration `iter`.
void train_log_eval(TrainLog* L, long iter, const char* stage, const Metrics* m);

#endif  // ZSSEG_TRAIN_LOG_H
