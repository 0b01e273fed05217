// Self-training pseudo-label rules and the zs3 global threshold (selftrain.h).
// Probabilities are fp32 softmax with the max subtracted (as hd_softmax_ce);
// every comparison (candidate, top-p rank, argmax) is made between values
// produced by the one expression in st_prob, so equal logits always tie.
#include "selftrain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void st_rule_from(StRule* r, const Config* cfg, int K, const uint8_t* unseen) {
    const char* mode = config_get_string(cfg, "selftrain.mode");
    if (strcmp(mode, "cagnet") == 0) r->mode = ST_MODE_CAGNET;
    else if (strcmp(mode, "zs3") == 0) r->mode = ST_MODE_ZS3;
    else if (strcmp(mode, "sign") == 0) r->mode = ST_MODE_SIGN;
    else ZS_FAIL("use cagnet, zs3 or sign", "selftrain.mode: unknown mode '%s'", mode);
    r->top_p = config_get_int(cfg, "selftrain.top_p");
    r->percent = config_get_float(cfg, "selftrain.percent");
    r->temperature = config_get_float(cfg, "selftrain.temperature");
    r->K = K;
    r->unseen = unseen;
}

const char* st_mode_name(StMode m) {
    switch (m) {
        case ST_MODE_CAGNET: return "cagnet";
        case ST_MODE_ZS3: return "zs3";
        case ST_MODE_SIGN: return "sign";
    }
    return "?";
}

// ---------------------------------------------------------------- per image

// Probability of class k at one pixel, given its max logit m and the sum s of
// expf(z - m).
static inline float st_prob(const float* z, size_t stride, int k, float m, float s) {
    return expf(z[(size_t)k * stride] - m) / s;
}

void st_label_image(const StRule* r, const float* logits, const uint8_t* gt, int HW,
                    uint8_t* label, float* conf, float* weight) {
    const int K = r->K;
    const size_t stride = (size_t)HW;
    float cmax = -INFINITY;  // sign: the image's largest candidate confidence
#pragma omp parallel for reduction(max : cmax)
    for (int i = 0; i < HW; i++) {
        label[i] = 255;
        conf[i] = 0.0f;
        weight[i] = 0.0f;
        if (gt[i] != 255) continue;
        const float* z = logits + i;
        float m = z[0];
        for (int k = 1; k < K; k++) m = fmaxf(m, z[(size_t)k * stride]);
        float s = 0.0f;
        for (int k = 0; k < K; k++) s += expf(z[(size_t)k * stride] - m);
        // best unseen class and argmax over all classes, ties to the lower index
        int c = -1, top = 0;
        float pc = 0.0f, ptop = st_prob(z, stride, 0, m, s);
        for (int k = 0; k < K; k++) {
            float p = st_prob(z, stride, k, m, s);
            if (p > ptop) { ptop = p; top = k; }
            if (r->unseen[k] && (c < 0 || p > pc)) { pc = p; c = k; }
        }
        if (c < 0) continue;  // no unseen class at all
        if (r->mode == ST_MODE_CAGNET) {
            // rank of c: classes ahead of it (higher probability, or equal and lower index)
            int ahead = 0;
            for (int k = 0; k < K && ahead < r->top_p; k++) {
                float p = st_prob(z, stride, k, m, s);
                ahead += p > pc || (p == pc && k < c);
            }
            if (ahead >= r->top_p) continue;
        } else if (r->mode == ST_MODE_ZS3) {
            if (top != c) continue;  // argmax is seen (top == c iff argmax unseen)
        } else {
            cmax = fmaxf(cmax, pc);
        }
        label[i] = (uint8_t)c;
        conf[i] = pc;
        weight[i] = 1.0f;
    }
    if (r->mode != ST_MODE_SIGN) return;
    // exp((conf - cmax) / T) in fp32: the most confident pixel gets exactly 1
    const float T = (float)r->temperature;
#pragma omp parallel for
    for (int i = 0; i < HW; i++)
        if (label[i] != 255) weight[i] = expf((conf[i] - cmax) / T);
}

// ---------------------------------------------------------------- zs3 threshold

#define ST_BINS 65536

// Sum the histograms (n_slots, ST_BINS) onto rank 0 (no-op on one process).
static void st_reduce_hist(const Dist* d, uint64_t* h, int n_slots) {
    if (!d || d->world == 1) return;
    int count = n_slots * ST_BINS;
    if (d->rank == 0)
        mpiCheck(MPI_Reduce(MPI_IN_PLACE, h, count, MPI_UINT64_T, MPI_SUM, 0, d->comm));
    else
        mpiCheck(MPI_Reduce(h, NULL, count, MPI_UINT64_T, MPI_SUM, 0, d->comm));
}

// The bin of h (ST_BINS) holding the k-th largest value (k >= 1, counted
// from the top bin down); *k becomes its rank inside that bin.
static int st_find_bin(const uint64_t* h, uint64_t* k) {
    for (int b = ST_BINS - 1; b >= 0; b--) {
        if (*k <= h[b]) return b;
        *k -= h[b];
    }
    return -1;  // unreachable for k <= total
}

static uint32_t st_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

void st_zs3_thresholds(const StRule* r, const Dist* d, const uint8_t* label, const float* conf,
                       size_t n, float* thr) {
    const int K = r->K;
    // slot of each unseen class in the histograms, -1 for seen classes
    int slot[256], n_slots = 0;
    for (int k = 0; k < 256; k++) slot[k] = k < K && k != 255 && r->unseen[k] ? n_slots++ : -1;
    for (int k = 0; k < K; k++) thr[k] = INFINITY;
    if (n_slots == 0) return;
    const int root = !d || d->rank == 0;
    const int mpi = d && d->world > 1;

    // Confidences are >= 0, so their bit patterns order like their values.
    // Pass 1: top 16 bits.
    uint64_t* h = (uint64_t*)callocCheck((size_t)n_slots * ST_BINS, sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        int s = slot[label[i]];
        if (s >= 0) h[(size_t)s * ST_BINS + (st_bits(conf[i]) >> 16)]++;
    }
    st_reduce_hist(d, h, n_slots);
    int bin[256];              // per slot: top 16 bits of the threshold, -1 if no candidates
    uint64_t rank_in_bin[256]; // per slot (rank 0): its rank among that bin's values
    if (root) {
        for (int s = 0; s < n_slots; s++) {
            const uint64_t* hs = h + (size_t)s * ST_BINS;
            uint64_t n_c = 0;
            for (int b = 0; b < ST_BINS; b++) n_c += hs[b];
            bin[s] = -1;
            if (n_c == 0) continue;
            // ceil(percent/100 * n_c) as ceil(percent * n_c / 100): integer
            // percents give an exact product, so 28% of 25 is 7, not 8
            double x = ceil(r->percent * (double)n_c / 100.0);
            uint64_t k = x < 1.0 ? 1 : (x > (double)n_c ? n_c : (uint64_t)x);
            bin[s] = st_find_bin(hs, &k);
            rank_in_bin[s] = k;
        }
    }
    if (mpi) mpiCheck(MPI_Bcast(bin, n_slots, MPI_INT, 0, d->comm));

    // Pass 2: low 16 bits of the values inside each slot's bin.
    memset(h, 0, (size_t)n_slots * ST_BINS * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        int s = slot[label[i]];
        if (s < 0 || bin[s] < 0) continue;
        uint32_t u = st_bits(conf[i]);
        if ((int)(u >> 16) == bin[s]) h[(size_t)s * ST_BINS + (u & 0xFFFFu)]++;
    }
    st_reduce_hist(d, h, n_slots);
    if (root) {
        for (int k = 0; k < K; k++) {
            int s = slot[k];
            if (s < 0 || bin[s] < 0) continue;
            uint64_t kk = rank_in_bin[s];
            uint32_t low = (uint32_t)st_find_bin(h + (size_t)s * ST_BINS, &kk);
            uint32_t u = ((uint32_t)bin[s] << 16) | low;
            memcpy(&thr[k], &u, sizeof u);
        }
    }
    if (mpi) mpiCheck(MPI_Bcast(thr, K, MPI_FLOAT, 0, d->comm));
    free(h);
}

void st_zs3_apply(const float* thr, uint8_t* label, const float* conf, float* weight, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        if (label[i] != 255 && conf[i] >= thr[label[i]]) {
            weight[i] = 1.0f;
        } else {
            label[i] = 255;
            weight[i] = 0.0f;
        }
    }
}
