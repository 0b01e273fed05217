// Learning-rate schedules at their boundaries, against numbers worked out by
// hand (poly values from Python: 2.5e-4 * (1 - it/40000) ** 0.9).
#include "schedule.h"
#include "testing.h"

// float results: one rounding of the double value, plus the float base
#define RT 1e-6

static void test_poly(void) {
    const float b = 2.5e-4f;  // E+CM SGD, 40k iterations, power 0.9
    CHECK(lr_poly(b, 0, 40000, 0.9f) == b, "poly at iter 0 is the base rate exactly");
    CHECK_CLOSE(lr_poly(b, 1, 40000, 0.9f), 2.4999437499296866e-4, 0, RT, "poly iter 1");
    CHECK_CLOSE(lr_poly(b, 100, 40000, 0.9f), 2.494374296229622e-4, 0, RT, "poly iter 100");
    CHECK_CLOSE(lr_poly(b, 10000, 40000, 0.9f), 1.9297237668089264e-4, 0, RT, "poly iter 10000");
    CHECK_CLOSE(lr_poly(b, 20000, 40000, 0.9f), 1.3397168281703665e-4, 0, RT, "poly half way");
    CHECK_CLOSE(lr_poly(b, 39900, 40000, 0.9f), 1.1378526268912782e-6, 0, RT, "poly iter 39900");
    CHECK_CLOSE(lr_poly(b, 39999, 40000, 0.9f), 1.8033748823874418e-8, 0, RT, "poly last iter");
    CHECK(lr_poly(b, 40000, 40000, 0.9f) == 0.0f, "poly at max_iter is 0");
    CHECK(lr_poly(b, 50000, 40000, 0.9f) == 0.0f, "poly past max_iter is 0, not NaN");
    // power 1 is linear: exact quarters
    CHECK_CLOSE(lr_poly(1.0f, 10000, 40000, 1.0f), 0.75, 0, RT, "linear poly 1/4");
    CHECK_CLOSE(lr_poly(1.0f, 30000, 40000, 1.0f), 0.25, 0, RT, "linear poly 3/4");
    // the CaGNet reference's every-100 staircase, as the header tells callers to get it
    CHECK(lr_poly(b, 199 - 199 % 100, 40000, 0.9f) == lr_poly(b, 100, 40000, 0.9f),
          "staircase: iters 100..199 share the rate of 100");
}

static void test_step(void) {
    // D: Adam 5e-4, x0.3 every 10k from 10k
    const float d = 5e-4f;
    CHECK(lr_step(d, 0, 10000, 10000, 0.3f) == d, "D iter 0 is the base rate");
    CHECK(lr_step(d, 9999, 10000, 10000, 0.3f) == d, "D iter start-1 is the base rate");
    CHECK_CLOSE(lr_step(d, 10000, 10000, 10000, 0.3f), 1.5e-4, 0, RT, "D at start");
    CHECK_CLOSE(lr_step(d, 19999, 10000, 10000, 0.3f), 1.5e-4, 0, RT, "D start+every-1");
    CHECK_CLOSE(lr_step(d, 20000, 10000, 10000, 0.3f), 4.5e-5, 0, RT, "D start+every");
    CHECK_CLOSE(lr_step(d, 39999, 10000, 10000, 0.3f), 1.35e-5, 0, RT, "D last step1 iter");
    // G: Adam 2e-4, x0.3 every 5k from 10k
    const float g = 2e-4f;
    CHECK(lr_step(g, 9999, 10000, 5000, 0.3f) == g, "G iter start-1");
    CHECK_CLOSE(lr_step(g, 10000, 10000, 5000, 0.3f), 6e-5, 0, RT, "G at start");
    CHECK_CLOSE(lr_step(g, 14999, 10000, 5000, 0.3f), 6e-5, 0, RT, "G start+every-1");
    CHECK_CLOSE(lr_step(g, 15000, 10000, 5000, 0.3f), 1.8e-5, 0, RT, "G start+every");
    CHECK_CLOSE(lr_step(g, 20000, 10000, 5000, 0.3f), 5.4e-6, 0, RT, "G start+2*every");
    // mixed: 1e-5, x0.3 every 2k from 3k
    const float x = 1e-5f;
    CHECK(lr_step(x, 0, 3000, 2000, 0.3f) == x, "mixed iter 0");
    CHECK(lr_step(x, 2999, 3000, 2000, 0.3f) == x, "mixed start-1");
    CHECK_CLOSE(lr_step(x, 3000, 3000, 2000, 0.3f), 3e-6, 0, RT, "mixed at start");
    CHECK_CLOSE(lr_step(x, 4999, 3000, 2000, 0.3f), 3e-6, 0, RT, "mixed start+every-1");
    CHECK_CLOSE(lr_step(x, 5000, 3000, 2000, 0.3f), 9e-7, 0, RT, "mixed start+every");
    CHECK_CLOSE(lr_step(x, 5999, 3000, 2000, 0.3f), 9e-7, 0, RT, "mixed last iter");
}

int main(void) {
    test_poly();
    test_step();
    return t_report("test_schedule");
}
