#include "train.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "coordinator.h"
#include "evaluate.h"
#include "loader.h"
#include "predict.h"
#include "run.h"
#include "train_log.h"
#include "weights_h5.h"

// Rank 0 fills in the learning rates of the step the record asks for.
static UpdatePlan plan_of(const CagNet* m, const Coordinator* c, const ControlRecord* r) {
    long it = r->iter - c->start[r->stage];
    if (r->kind == STEP_KIND_STEP2) return cagnet_plan_step2(m, it);
    if (c->kind[r->stage] == STAGE_MIXED) return cagnet_plan_mixed_step1(m, it);
    return cagnet_plan_step1(m, it);
}

static void save_params(const RunContext* r, const CagNet* m, const char* name) {
    if (r->d.rank != 0) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->out_dir, name);
    weights_save_h5(path, &m->pt, m->params);
}

static void log_start(const RunContext* r, const CagNet* m, const Dataset* train,
                      const Dataset* test, const Coordinator* c) {
    if (r->d.rank != 0) return;
    int unseen = 0;
    for (int k = 0; k < r->cs.K; k++) unseen += r->cs.unseen[k] != 0;
    log_info("resolved config:\n%s", r->cfg_text);
    log_info("world %d rank(s), %d per node | device cpu | %d OpenMP thread(s) per rank",
             r->d.world, r->d.local_world, omp_get_max_threads());
    log_info("data: %d training images (%d dropped by strict_inductive), %d test images, "
             "%d classes (%d unseen)",
             train->n, train->n_dropped, test->n, r->cs.K, unseen);
    log_info("model: %zu parameters (%.1f MiB), per-rank batch %d x 3 x %d x %d",
             m->pt.total, (double)m->pt.total * 4 / 1048576.0, m->B, m->H, m->W);
    for (int s = 0; s < c->n; s++)
        log_info("stage %d: %s, %ld iterations (global %ld..%ld)", s,
                 coord_stage_name(c->kind[s]), c->iters[s], c->start[s],
                 c->start[s] + c->iters[s] - 1);
}

int cmd_train(const CliArgs* args, const Config* cfg0) {
    const char* sets[1];
    int nsets = 0;
    char set_dir[4200];
    const char* dir = cli_option(args, "run-dir");
    if (dir) {
        snprintf(set_dir, sizeof set_dir, "run.out_dir=\"%s\"", dir);
        sets[nsets++] = set_dir;
    }
    RunContext r;
    run_open(&r, cfg0, sets, nsets);
    const Config* cfg = r.cfg;
    Coordinator co;
    coord_init(&co, cfg);

    Dataset train, test;
    dataset_open(&train, cfg, &r.cs, DATASET_TRAIN);
    dataset_open(&test, cfg, &r.cs, DATASET_TEST);
    Loader* loader = loader_open_train(&train, cfg, r.d.rank, r.d.world, NULL);
    int B = config_get_int(cfg, "data.batch_size") / r.d.world;
    int crop = config_get_int(cfg, "data.crop_size");
    CagNet m;
    run_model_init(&r, &m, B, crop, crop);
    dist_broadcast_params(&r.d, m.params, m.pt.total);

    if (r.d.rank == 0) {
        char path[4096];
        // never overwrite a finished or running run's parameters
        snprintf(path, sizeof path, "%s/model.h5", r.out_dir);
        if (access(path, F_OK) == 0)
            ZS_FAIL("train into a new directory (--run-dir DIR) or move the old run away; "
                    "resuming a run arrives with checkpoints (README roadmap)",
                    "run directory '%s' already holds trained parameters (%s)", r.out_dir, path);
        dir_create(r.out_dir);
        snprintf(path, sizeof path, "%s/config.cfg", r.out_dir);
        file_write_atomic(path, r.cfg_text, strlen(r.cfg_text));
        snprintf(path, sizeof path, "%s/eval", r.out_dir);
        dir_create(path);
    }
    FILE* trace = NULL;
    if (config_get_bool(cfg, "log.trace")) {
        char path[4096];
        snprintf(path, sizeof path, "%s/trace", r.out_dir);
        if (r.d.rank == 0) dir_create(path);
        mpiCheck(MPI_Barrier(r.d.comm));
        snprintf(path, sizeof path, "%s/trace/rank_%d.txt", r.out_dir, r.d.rank);
        trace = fopenCheck(path, "w");
    }
    log_start(&r, &m, &train, &test, &co);

    TrainLog tl;
    train_log_open(&tl, cfg, &r.d, r.out_dir, co.total, 0);
    size_t bucket = (size_t)(config_get_float(cfg, "dist.bucket_mb") * 1048576.0 / 4.0);
    if (bucket == 0) bucket = 1;
    long check_every = config_get_int(cfg, "dist.check_every");
    uint64_t seed = (uint64_t)config_get_int(cfg, "run.seed");
    char eval_dir[4096];
    snprintf(eval_dir, sizeof eval_dir, "%s/eval", r.out_dir);
    double t0 = MPI_Wtime();

    for (long iter = 0; iter < co.total; iter++) {
        ControlRecord rec;
        memset(&rec, 0, sizeof rec);
        if (r.d.rank == 0) {
            rec = coord_decide(&co, iter, 0);
            UpdatePlan p = plan_of(&m, &co, &rec);
            rec.lr_e = p.update_e ? p.lr_e : 0.0f;
            rec.lr_d = p.update_d ? p.lr_d : 0.0f;
            rec.lr_g = p.update_g ? p.lr_g : 0.0f;
        }
        dist_broadcast_control(&r.d, &rec);
        StageKind stage = co.kind[rec.stage];
        // every rank derives the same plan; the record's rates are rank 0's
        UpdatePlan plan = plan_of(&m, &co, &rec);
        plan.lr_e = rec.lr_e, plan.lr_d = rec.lr_d, plan.lr_g = rec.lr_g;

        StepRng rng = {seed, rec.iter, r.d.rank * B, 1};
        if (rec.kind == STEP_KIND_STEP1) {
            const LoaderBatch* b = loader_next(loader);
            rng.sample0 = b->sample0;
            Step1Mode mode = cagnet_mode_mixed(&m);
            Step1Losses l1;
            cagnet_step1(&m, b->images, b->labels, &rng, stage == STAGE_MIXED ? &mode : NULL, &l1);
            train_log_step1(&tl, &l1);
        } else {
            train_log_step2(&tl, cagnet_step2(&m, &rng));
        }
        size_t off[3], cnt[3];
        int nr = cagnet_update_ranges(&m, &plan, off, cnt);
        dist_allreduce_ranges(&r.d, m.grads, off, cnt, nr, bucket, 1.0f);
        cagnet_apply(&m, &plan);
        if (check_every > 0 && (iter + 1) % check_every == 0)
            dist_check_params(&r.d, m.params, m.pt.total, iter);
        if (trace) fprintf(trace, "%ld %s %s\n", iter, coord_stage_name(stage),
                           coord_kind_name((StepKind)rec.kind));
        train_log_maybe_flush(&tl, &rec, coord_stage_name(stage),
                              coord_kind_name((StepKind)rec.kind));

        if (rec.checkpoint) {
            save_params(&r, &m, "model.h5");
            long it = rec.iter - co.start[rec.stage];
            if (it + 1 == co.iters[rec.stage]) {
                char name[64];
                snprintf(name, sizeof name, "model_%s.h5", coord_stage_name(stage));
                save_params(&r, &m, name);
            }
        }
        if (rec.evaluate) {
            Metrics mt;
            evaluate_run(&m, cfg, &r.cs, &test, &r.d, eval_dir, rec.iter + 1, &mt);
            train_log_eval(&tl, rec.iter, coord_stage_name(stage), &mt);
        }
        if (rec.stop) break;
    }
    double wall = MPI_Wtime() - t0;
    if (r.d.rank == 0)
        log_info("training done: %ld iterations in %.1f s; gradient allreduce %.2f s (%.1f%%), "
                 "%llu calls, %.1f MiB summed; parameters in %s/model.h5",
                 co.total, wall, r.d.allreduce_s, wall > 0 ? 100.0 * r.d.allreduce_s / wall : 0.0,
                 (unsigned long long)r.d.allreduce_calls,
                 (double)r.d.allreduce_bytes / 1048576.0, r.out_dir);
    train_log_close(&tl);
    if (trace) fcloseCheck(trace, "trace file");
    cagnet_free(&m);
    loader_close(loader);
    dataset_free(&train);
    dataset_free(&test);
    run_close(&r);
    return 0;
}

// The model of a finished run for inference: a one-image batch at the test size.
static void load_for_inference(RunContext* r, const CliArgs* args, CagNet* m) {
    char path[4096];
    const char* ckpt = cli_option(args, "ckpt");
    if (!ckpt) {
        run_default_ckpt(r, path, sizeof path);
        ckpt = path;
    }
    int warp = config_get_int(r->cfg, "data.warp_size");
    run_model_init(r, m, 1, warp, warp);
    run_load_params(m, ckpt);
    log_info("parameters from %s", ckpt);
}

int cmd_eval(const CliArgs* args, const Config* cfg0) {
    RunContext r;
    run_open(&r, cfg0, NULL, 0);
    CagNet m;
    load_for_inference(&r, args, &m);
    Dataset test;
    dataset_open(&test, r.cfg, &r.cs, DATASET_TEST);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/eval", r.out_dir);
    if (r.d.rank == 0) dir_create(dir);
    Metrics mt;
    evaluate_run(&m, r.cfg, &r.cs, &test, &r.d, dir, 0, &mt);
    dataset_free(&test);
    cagnet_free(&m);
    run_close(&r);
    return 0;
}

int cmd_predict(const CliArgs* args, const Config* cfg0) {
    if (args->npositionals < 1) {
        fprintf(stderr, "zsseg predict: give at least one image (see zsseg predict --help)\n");
        return CLI_EXIT_USAGE;
    }
    RunContext r;
    run_open(&r, cfg0, NULL, 0);
    CagNet m;
    load_for_inference(&r, args, &m);
    char dir[4096];
    const char* out = cli_option(args, "out");
    if (!out) {
        snprintf(dir, sizeof dir, "%s/predictions", r.out_dir);
        out = dir;
    }
    int rc = 0;
    if (r.d.rank == 0) {
        dir_create(out);
        rc = predict_images(&m, r.cfg, &r.cs, args->positionals, args->npositionals, out);
        log_info("wrote %d prediction(s) to %s", args->npositionals, out);
    }
    cagnet_free(&m);
    run_close(&r);
    return rc ? 1 : 0;
}
