// Graceful stop for cluster jobs (issue 6): SIGTERM, SIGINT and SIGUSR1 (what
// SLURM sends before a time limit or preemption, and what mpirun forwards)
// only set a flag; the trainer's ranks agree on it at the next iteration
// boundary, write a checkpoint and exit 0. A second SIGINT (an impatient
// Ctrl-C) ends the process at once with status 130.
//
// Fault injection for tests: ZSSEG_FAULT_AT="ITER:RANK:SIG" makes rank RANK
// raise signal SIG (a number, e.g. 15 or 9) to itself just before global
// iteration ITER, through the same handlers a real signal reaches.
#ifndef ZSSEG_SIGNALS_H
#define ZSSEG_SIGNALS_H

// Install the handlers; call first thing in main() for `train` (SLURM may
// signal early).
void signals_install(void);
// The signal number that asked to stop (0 = none yet).
int signals_pending(void);
// Apply ZSSEG_FAULT_AT for this rank before iteration `iter` (no-op when unset).
void signals_fault_injection(long iter, int rank);

#endif  // ZSSEG_SIGNALS_H
