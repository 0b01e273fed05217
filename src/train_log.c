#include "train_log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static const char* const step1_names[11] = {"d_gan_real", "d_gan_fake", "d_ce_real", "d_ce_fake",
                                            "e_ce",       "kl",         "g_gan",     "g_content",
                                            "L_D",        "L_E",        "L_G"};

static void step1_fields(const Step1Losses* l, float f[11]) {
    const float v[11] = {l->d_gan_real, l->d_gan_fake, l->d_ce_real, l->d_ce_fake,
                         l->e_ce,       l->kl,         l->g_gan,     l->g_content,
                         l->loss_d,     l->loss_e,     l->loss_g};
    memcpy(f, v, sizeof v);
}

void train_log_open(TrainLog* L, const Config* cfg, const Dist* d, const char* run_dir,
                    long total, long first_iter) {
    memset(L, 0, sizeof *L);
    L->active = d->rank == 0;
    if (!L->active) return;
    L->every = config_get_int(cfg, "log.every");
    L->total = total;
    L->batch = config_get_int(cfg, "data.batch_size");
    L->tty = isatty(STDERR_FILENO);
    char path[4096];
    if (config_get_bool(cfg, "log.json")) {
        snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
        L->json = metrics_log_open(path);
    }
    if (config_get_bool(cfg, "log.tensorboard")) {
        snprintf(path, sizeof path, "%s/tb", run_dir);
        L->tb = tb_open(path);
    }
    L->t_start = L->t_window = MPI_Wtime();
    L->first_iter = first_iter;
}

void train_log_close(TrainLog* L) {
    if (!L->active) return;
    if (L->tty) fputc('\n', stderr);
    if (L->json) metrics_log_close(L->json);
    tb_close(L->tb);
    memset(L, 0, sizeof *L);
}

void train_log_step1(TrainLog* L, const Step1Losses* l1) {
    if (!L->active) return;
    float f[11];
    step1_fields(l1, f);
    for (int i = 0; i < 11; i++) L->s1[i] += f[i];
    L->n1++;
    L->images += L->batch;
}

const char* train_log_nonfinite(const Step1Losses* l1, float ce_step2, double* value) {
    float f[11];
    if (l1) step1_fields(l1, f);
    for (int i = 0; l1 && i < 11; i++)
        if (!isfinite(f[i])) return *value = f[i], step1_names[i];
    if (!l1 && !isfinite(ce_step2)) return *value = ce_step2, "ce_step2";
    return NULL;
}

void train_log_step2(TrainLog* L, float ce) {
    if (!L->active) return;
    L->s2 += ce;
    L->n2++;
}

// One named value to the line, the JSON record and TensorBoard.
static void emit(TrainLog* L, char* line, size_t cap, const char* key, double v, long step) {
    size_t n = strlen(line);
    snprintf(line + n, cap - n, " %s %.4g", key, v);
    if (L->json) metrics_log_num(L->json, key, v);
    if (L->tb) tb_scalar(L->tb, key, (float)v, step);
}

static void format_eta(char* out, size_t cap, double s) {
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
}

static void progress_bar(const TrainLog* L, long done, double eta) {
    char bar[31], e[32];
    int fill = (int)(30.0 * (double)done / (double)(L->total ? L->total : 1));
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    format_eta(e, sizeof e, eta);
    fprintf(stderr, "\r[%s] %ld/%ld ETA %s ", bar, done, L->total, e);
    fflush(stderr);
}

void train_log_maybe_flush(TrainLog* L, const ControlRecord* rec, const char* stage,
                           const char* kind) {
    if (!L->active) return;
    long done = rec->iter + 1;
    double now = MPI_Wtime();
    double per_iter = (now - L->t_start) / (double)(done - L->first_iter);
    double eta = per_iter * (double)(L->total - done);
    int last = done == L->total || rec->stop;
    if (L->tty) progress_bar(L, done, eta);
    if (done % L->every != 0 && !last) return;
    long n = L->n1 + L->n2;
    double dt = now - L->t_window;
    char line[1024];
    snprintf(line, sizeof line, "%-5s %s it %ld/%ld |", stage, kind, done, L->total);
    if (L->json) metrics_log_begin(L->json, done, stage, kind);
    for (int i = 0; L->n1 && i < 11; i++)
        emit(L, line, sizeof line, step1_names[i], L->s1[i] / (double)L->n1, done);
    if (L->n2) emit(L, line, sizeof line, "ce_step2", L->s2 / (double)L->n2, done);
    size_t k = strlen(line);
    snprintf(line + k, sizeof line - k, " |");
    if (rec->lr_e > 0.0f) emit(L, line, sizeof line, "lr_e", rec->lr_e, done);
    emit(L, line, sizeof line, "lr_d", rec->lr_d, done);
    emit(L, line, sizeof line, "lr_g", rec->lr_g, done);
    k = strlen(line);
    snprintf(line + k, sizeof line - k, " |");
    emit(L, line, sizeof line, "img/s", dt > 0 ? (double)L->images / dt : 0.0, done);
    emit(L, line, sizeof line, "s/it", n ? dt / (double)n : 0.0, done);
    char e[32];
    format_eta(e, sizeof e, eta);
    k = strlen(line);
    snprintf(line + k, sizeof line - k, " ETA %s", e);
    if (L->json) metrics_log_end(L->json);
    if (L->tb) tb_flush(L->tb);
    if (L->tty) fputc('\n', stderr);
    log_info("%s", line);
    memset(L->s1, 0, sizeof L->s1);
    L->n1 = L->n2 = L->images = 0;
    L->s2 = 0.0;
    L->t_window = now;
}

void train_log_eval(TrainLog* L, long iter, const char* stage, const Metrics* m) {
    if (!L->active) return;
    const char* keys[6] = {"eval/pixel_acc", "eval/mean_acc",    "eval/miou",
                           "eval/seen_miou", "eval/unseen_miou", "eval/hiou"};
    const double v[6] = {m->pixel_acc, m->mean_acc, m->miou, m->seen_miou, m->unseen_miou, m->hiou};
    long step = iter + 1;
    if (L->json) metrics_log_begin(L->json, step, stage, "eval");
    for (int i = 0; i < 6; i++) {
        if (L->json) metrics_log_num(L->json, keys[i], v[i]);
        if (L->tb) tb_scalar(L->tb, keys[i], (float)v[i], step);
    }
    if (L->json) metrics_log_end(L->json);
    if (L->tb) tb_flush(L->tb);
}
