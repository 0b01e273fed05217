// Activations and dropout: forwards against hand values, backwards by central
// finite differences (away from kinks), dropout mask statistics and keying.
#include <string.h>

#include "activation.h"
#include "testing.h"

enum { N = 64 };

typedef enum { ACT_RELU, ACT_LEAKY, ACT_SIGMOID } Act;
typedef struct {
    Act act;
    float* x;
    float* out;
    const float* r;
} ActCtx;

static const float SLOPE = 0.2f;

static void act_forward(Act a, float* out, const float* x, size_t n) {
    if (a == ACT_RELU) relu_forward(out, x, n);
    if (a == ACT_LEAKY) leaky_relu_forward(out, x, SLOPE, n);
    if (a == ACT_SIGMOID) sigmoid_forward(out, x, n);
}

static double act_loss(void* p) {
    ActCtx* c = p;
    act_forward(c->act, c->out, c->x, N);
    return t_dot(c->out, c->r, N);
}

static void test_forward_values(void) {
    float x[] = {-2.0f, -0.5f, 0.0f, 0.5f, 3.0f, 100.0f, -100.0f};
    float y[7];
    relu_forward(y, x, 7);
    float relu_want[] = {0.0f, 0.0f, 0.0f, 0.5f, 3.0f, 100.0f, 0.0f};
    t_check_array("relu", y, relu_want, 7, 0.0, 0.0);

    leaky_relu_forward(y, x, SLOPE, 7);
    float leaky_want[] = {-0.4f, -0.1f, 0.0f, 0.5f, 3.0f, 100.0f, -20.0f};
    t_check_array("leaky_relu", y, leaky_want, 7, 1e-7, 1e-6);

    // 1/(1+e^-x): sigmoid(-100) = e^-100/(1+e^-100) ~ 3.72e-44 is a float
    // denormal; it must come out as that, not NaN/0/1 from overflow.
    float xs[] = {-2.0f, 0.0f, 2.0f, 100.0f, -100.0f};
    double sig_want[] = {0.11920292202211755, 0.5, 0.8807970779778823, 1.0, 3.720075976020836e-44};
    sigmoid_forward(y, xs, 5);
    for (int i = 0; i < 5; i++) {
        CHECK(!isnan(y[i]), "sigmoid(%g) is NaN", xs[i]);
        CHECK_CLOSE(y[i], sig_want[i], 1e-45, 1e-6, "sigmoid");
    }
    CHECK(y[4] > 0.0f, "sigmoid(-100) underflowed to %g", y[4]);

    // in place
    float z[] = {-1.0f, 2.0f};
    relu_forward(z, z, 2);
    CHECK(z[0] == 0.0f && z[1] == 2.0f, "relu in place: %g %g", z[0], z[1]);
}

// Backward vs finite differences; dinp is pre-filled to check it accumulates.
static void test_backward(Act a, const char* name) {
    float x[N], out[N], r[N], acc[N], dinp[N], g[N];
    t_fill_normal(x, N, 11 + a, 1.5f);
    // keep every input at least 1e-2 from the kink at 0 (eps below is 1e-3)
    for (int i = 0; i < N; i++)
        if (fabsf(x[i]) < 1e-2f) x[i] += x[i] < 0.0f ? -2e-2f : 2e-2f;
    t_fill_uniform(r, N, 12, -1.0f, 1.0f);
    t_fill_uniform(acc, N, 13, -1.0f, 1.0f);
    memcpy(dinp, acc, sizeof dinp);
    act_forward(a, out, x, N);
    if (a == ACT_RELU) relu_backward(dinp, r, x, N);
    if (a == ACT_LEAKY) leaky_relu_backward(dinp, r, x, SLOPE, N);
    if (a == ACT_SIGMOID) sigmoid_backward(dinp, r, out, N);
    for (int i = 0; i < N; i++) g[i] = dinp[i] - acc[i];
    ActCtx c = {a, x, out, r};
    t_gradcheck(name, x, g, N, 1, act_loss, &c, 1e-3, 1e-4, 1e-3);
}

static void test_dropout(void) {
    enum { M = 100000 };
    const float p = 0.3f;
    const uint64_t seed = 1234, stream = 7, off = 12345;
    float* x = malloc(M * sizeof(float));
    float* y = malloc(M * sizeof(float));
    float* y2 = malloc(M * sizeof(float));
    float* d = malloc(M * sizeof(float));
    float* dx = malloc(M * sizeof(float));
    // inputs bounded away from 0, so out == 0 means "dropped"
    t_fill_uniform(x, M, 21, 0.5f, 1.5f);
    t_fill_uniform(d, M, 22, 0.5f, 1.5f);

    dropout_forward(y, x, 0.0f, seed, stream, off, M);
    CHECK(memcmp(x, y, M * sizeof(float)) == 0, "dropout p=0 is not the identity");

    dropout_forward(y, x, p, seed, stream, off, M);
    size_t dropped = 0, badkeep = 0;
    for (size_t i = 0; i < M; i++) {
        if (y[i] == 0.0f)
            dropped++;
        else if (y[i] != x[i] / (1.0f - p))
            badkeep++;
    }
    double sigma = sqrt(M * p * (1.0 - p));
    CHECK(fabs((double)dropped - M * p) < 4.0 * sigma, "dropped %zu of %d, want %g +- %g", dropped,
          M, M * p, 4.0 * sigma);
    CHECK(badkeep == 0, "%zu kept values differ from x/(1-p)", badkeep);

    // backward: same mask and scale, accumulated
    memset(dx, 0, M * sizeof(float));
    dropout_backward(dx, d, p, seed, stream, off, M);
    size_t badback = 0;
    for (size_t i = 0; i < M; i++)
        if (dx[i] != (y[i] == 0.0f ? 0.0f : d[i] / (1.0f - p))) badback++;
    CHECK(badback == 0, "%zu backward values do not follow the forward mask", badback);
    memcpy(y2, dx, M * sizeof(float));
    dropout_backward(dx, d, p, seed, stream, off, M);
    size_t badacc = 0;
    for (size_t i = 0; i < M; i++)
        if (dx[i] != 2.0f * y2[i]) badacc++;
    CHECK(badacc == 0, "%zu dropout_backward values did not accumulate", badacc);

    // chunking: two pieces split off a Philox block boundary, offsets advanced
    const size_t h = M / 2 + 1;
    dropout_forward(y2, x, p, seed, stream, off, h);
    dropout_forward(y2 + h, x + h, p, seed, stream, off + h, M - h);
    CHECK(memcmp(y, y2, M * sizeof(float)) == 0, "dropout mask depends on chunking");

    // another stream, seed or offset gives an independent mask: masks differ
    // on ~2p(1-p) = 42% of elements
    const uint64_t keys[3][3] = {
        {seed, stream + 1, off}, {seed + 1, stream, off}, {seed, stream, off + 1}};
    for (int k = 0; k < 3; k++) {
        dropout_forward(y2, x, p, keys[k][0], keys[k][1], keys[k][2], M);
        size_t diff = 0;
        for (size_t i = 0; i < M; i++) diff += (y[i] == 0.0f) != (y2[i] == 0.0f);
        CHECK(fabs((double)diff / M - 2.0 * p * (1.0 - p)) < 0.02,
              "key %d: masks differ on %zu of %d", k, diff, M);
    }

    dropout_forward(y2, x, 1.0f, seed, stream, off, M);
    size_t nonzero = 0;
    for (size_t i = 0; i < M; i++) nonzero += y2[i] != 0.0f;
    CHECK(nonzero == 0, "dropout p=1 kept %zu elements", nonzero);

    free(x);
    free(y);
    free(y2);
    free(d);
    free(dx);
}

// Batch dropout: sample b of a slice starting at global sample sample0 gets
// exactly the mask of dropout_forward keyed by the contract's stream
// (purpose 4 in bits 63..56, iteration in 55..32, global sample in 31..0) and
// offset layer << 32; eval mode and p = 0 are the identity.
static void test_dropout_batch(void) {
    enum { B = 3, M = 1000 };
    const float p = 0.4f;
    const StepRng rng = {.seed = 77, .iter = 9, .sample0 = 5, .training = 1};
    const int layer = 101;
    float* x = malloc(B * M * sizeof(float));
    float* y = malloc(B * M * sizeof(float));
    float* want = malloc(B * M * sizeof(float));
    float* dx = malloc(B * M * sizeof(float));
    t_fill_uniform(x, B * M, 23, 0.5f, 1.5f);
    for (int b = 0; b < B; b++) {
        uint64_t stream = (4ull << 56) | (9ull << 32) | (uint64_t)(5 + b);
        dropout_forward(want + b * M, x + b * M, p, 77, stream, (uint64_t)layer << 32, M);
    }
    dropout_batch_forward(y, x, p, &rng, layer, B, M);
    CHECK(memcmp(y, want, B * M * sizeof(float)) == 0, "batch dropout differs from per-sample keys");
    size_t dropped = 0;
    for (size_t i = 0; i < B * M; i++) dropped += y[i] == 0.0f;
    CHECK(dropped > 0.3 * B * M && dropped < 0.5 * B * M, "batch dropout dropped %zu", dropped);
    // the slice [1, 3) of the batch, run alone with sample0 + 1, gets the same masks
    StepRng tail = rng;
    tail.sample0 = 6;
    dropout_batch_forward(y, x + M, p, &tail, layer, B - 1, M);
    CHECK(memcmp(y, want + M, (B - 1) * M * sizeof(float)) == 0, "batch dropout depends on the slice");

    // backward: accumulates the forward's mask and scale
    for (size_t i = 0; i < B * M; i++) dx[i] = 1.0f;
    dropout_batch_backward(dx, x, p, &rng, layer, B, M);
    size_t bad = 0;
    for (size_t i = 0; i < B * M; i++) bad += dx[i] != 1.0f + want[i];
    CHECK(bad == 0, "%zu batch dropout gradients differ", bad);

    // eval mode and p = 0: identity forward (in place too), plain accumulation backward
    StepRng eval = rng;
    eval.training = 0;
    dropout_batch_forward(y, x, p, &eval, layer, B, M);
    CHECK(memcmp(y, x, B * M * sizeof(float)) == 0, "eval batch dropout is not the identity");
    dropout_batch_forward(y, y, 0.0f, &rng, layer, B, M);
    CHECK(memcmp(y, x, B * M * sizeof(float)) == 0, "p = 0 batch dropout is not the identity");
    for (size_t i = 0; i < B * M; i++) dx[i] = 1.0f;
    dropout_batch_backward(dx, x, p, &eval, layer, B, M);
    bad = 0;
    for (size_t i = 0; i < B * M; i++) bad += dx[i] != 1.0f + x[i];
    CHECK(bad == 0, "%zu eval batch dropout gradients differ", bad);
    free(x), free(y), free(want), free(dx);
}

int main(void) {
    test_forward_values();
    test_backward(ACT_RELU, "relu");
    test_backward(ACT_LEAKY, "leaky_relu");
    test_backward(ACT_SIGMOID, "sigmoid");
    test_dropout();
    test_dropout_batch();
    return t_report("test_activation");
}
