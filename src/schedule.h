// Learning-rate schedules (DESIGN §2.1): pure functions of the iteration, so a
// resumed run recomputes the same rate from the checkpointed iteration alone.
// `iter` counts optimizer steps already taken (0 for the first step), as
// PyTorch schedulers stepped after each optimizer step see it.
#ifndef ZSSEG_SCHEDULE_H
#define ZSSEG_SCHEDULE_H

// DeepLab poly: base * (1 - iter/max_iter)^power, 0 from max_iter on.
// This is the continuous form (the rate changes every iteration). The CaGNet
// reference (trainer.py poly_lr_scheduler, lr_decay_iter = 100) recomputes it
// only every 100 iterations; callers reproduce that exactly by passing
// iter - iter % 100.
float lr_poly(float base, long iter, long max_iter, float power);

// Step decay: base * gamma^k with k = 0 before `start`, then
// 1 + (iter - start) / every (the CaGNet reference's LambdaLR). E.g. D: start
// 10000, every 10000, gamma 0.3; G: start 10000, every 5000; mixed: start 3000,
// every 2000.
float lr_step(float base, long iter, long start, long every, float gamma);

#endif  // ZSSEG_SCHEDULE_H
