// What train, eval and predict share before their own work: MPI up, one
// config for every rank (rank 0 resolves it, the others load its text), the
// class list and the class embedding, and the model built from them.
#ifndef ZSSEG_RUN_H
#define ZSSEG_RUN_H

#include "cagnet.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"

typedef struct {
    Dist d;
    Config* cfg;         // rank 0's resolved config, loaded on every rank
    char* cfg_text;      // its resolved text (written to RUN/config.cfg)
    const char* out_dir; // run.out_dir
    DatasetClasses cs;
    float* emb;          // (K, E) class embedding rows in class-list order
} RunContext;

// Collective. `sets` ("group.key=value", applied on top of cfg on rank 0
// before broadcasting; e.g. --run-dir) may be NULL.
void run_open(RunContext* r, const Config* cfg, const char* const* sets, int nsets);
void run_close(RunContext* r);

// Build model.method's model (CaGNet) for a per-rank batch (B, 3, H, W), with
// model.pretrained loaded when set; gradients are summed over r->d.
void run_model_init(RunContext* r, CagNet* m, int B, int H, int W);

// Load every parameter of m from a weights or checkpoint file (strict: the
// file must hold exactly m's tensors). All ranks read it.
void run_load_params(CagNet* m, const char* path);

// Checkpoint a command uses when --ckpt is not given: RUN/model.h5.
void run_default_ckpt(const RunContext* r, char* path, size_t len);

#endif  // ZSSEG_RUN_H
