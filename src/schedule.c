#include "schedule.h"

#include <math.h>

#include "common.h"

// Both compute in double and round once, so the rate does not depend on how a
// compiler contracts the float expression.
float lr_poly(float base, long iter, long max_iter, float power) {
    if (max_iter <= 0)
        ZS_FAIL("set a positive iteration count", "lr_poly: max_iter = %ld", max_iter);
    if (iter >= max_iter) return 0.0f;  // (1 - x)^p is NaN past the end
    double frac = 1.0 - (double)iter / (double)max_iter;
    return (float)((double)base * pow(frac, (double)power));
}

float lr_step(float base, long iter, long start, long every, float gamma) {
    if (every <= 0) ZS_FAIL("set a positive decay interval", "lr_step: every = %ld", every);
    if (iter < start) return base;
    long k = 1 + (iter - start) / every;
    return (float)((double)base * pow((double)gamma, (double)k));
}
