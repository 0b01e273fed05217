// `zsseg train`, `zsseg eval`, `zsseg predict`: the command bodies over a
// RunContext. Training is data-parallel over the MPI ranks; rank 0 decides
// every iteration (coordinator.h) and the others follow its control record.
#ifndef ZSSEG_TRAIN_H
#define ZSSEG_TRAIN_H

#include "cli.h"
#include "config.h"

int cmd_train(const CliArgs* args, const Config* cfg);
int cmd_eval(const CliArgs* args, const Config* cfg);
int cmd_predict(const CliArgs* args, const Config* cfg);

#endif  // ZSSEG_TRAIN_H
