#include "train.h"

#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "coordinator.h"
#include "device_backend.h"
#include "evaluate.h"
#include "loader.h"
#include "predict.h"
#include "run.h"
#include "run_lock.h"
#include "signals.h"
#include "st_round.h"
#include "train_selftrain.h"
#include "train_log.h"
#include "weights_h5.h"

// Rank 0 fills in the learning rates of the step the record asks for.
static UpdatePlan plan_of(const CagNet* m, const Coordinator* c, const ControlRecord* r) {
    long it = r->iter - c->start[r->stage];
    if (r->kind == STEP_KIND_STEP2) return cagnet_plan_step2(m, it);
    StageKind k = c->kind[r->stage];
    if (k == STAGE_MIXED || k == STAGE_ST_MIXED) return cagnet_plan_mixed_step1(m, it);
    if (k == STAGE_ST) return cagnet_plan_st(m, it);
    return cagnet_plan_step1(m, it);
}

static void save_params(const RunContext* r, const CagNet* m, const char* name) {
    if (r->d.rank != 0) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->out_dir, name);
    weights_save_h5(path, &m->pt, m->params);
}

static void log_start(const RunContext* r, const CagNet* m, const Dataset* train,
                      const Dataset* test, const Coordinator* c, const DeviceRun* dv) {
    if (r->d.rank != 0) return;
    int unseen = 0;
    for (int k = 0; k < r->cs.K; k++) unseen += r->cs.unseen[k] != 0;
    log_info("resolved config:\n%s", r->cfg_text);
    log_info("world %d rank(s), %d per node | device %s | %d OpenMP thread(s) per rank",
             r->d.world, r->d.local_world, dv->desc, omp_get_max_threads());
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

// Config keys a resumed run may change: where things are and how often
// they are logged, evaluated or saved, and how long stages run.
static const char* const resume_allowed[] = {
    "log.", "eval.", "checkpoint.", "run.out_dir", "run.threads", "run.device", "data.root",
    "data.train_list", "data.test_list", "data.classes", "data.seen", "data.unseen",
    "data.embedding", "data.word_vectors", "data.workers", "data.max_bad_fraction",
    "model.pretrained", "dist.", "schedule.step1_iters", "schedule.mixed_iters",
    "schedule.st_iters", "schedule.st_mixed_iters", NULL};

static int file_exists(const char* path) { return access(path, F_OK) == 0; }

// A save killed before its rename leaves RUN/ckpt/*.tmp: never a candidate,
// but say so (the file is left for the user to inspect or delete).
static void warn_unfinished(const char* run_dir) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    DIR* d = opendir(dir);
    if (!d) return;
    for (struct dirent* e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0)
            log_warn("skipping unfinished checkpoint %s/%s (a save was interrupted)", dir,
                     e->d_name);
    }
    closedir(d);
}

// Rank 0: the checkpoint to resume from ("" = start fresh) for --resume
// auto|PATH|none. A fresh start never reuses a directory holding a run.
static char* choose_checkpoint(const RunContext* r, const char* resume) {
    char** list = NULL;
    int n = ckpt_list(r->out_dir, &list);
    char* chosen = NULL;
    if (strcmp(resume, "none") != 0 && strcmp(resume, "auto") != 0) {
        char* err = ckpt_verify(resume);
        if (err) ZS_FAIL("pick another checkpoint (zsseg ckpt verify PATH checks one)", "%s", err);
        chosen = strdup(resume);
    } else if (strcmp(resume, "auto") == 0) {
        warn_unfinished(r->out_dir);
        for (int i = 0; i < n && !chosen; i++) {
            char* err = ckpt_verify(list[i]);
            if (!err) {
                chosen = strdup(list[i]);
            } else {
                log_warn("skipping checkpoint %s: %s", list[i], err);
                free(err);
            }
        }
        if (n > 0 && !chosen)
            ZS_FAIL("check the disk; to start over use a new --run-dir",
                    "none of the %d checkpoints in %s/ckpt verifies", n, r->out_dir);
    }
    char model[4096];
    snprintf(model, sizeof model, "%s/model.h5", r->out_dir);
    if (!chosen && (n > 0 || file_exists(model))) {
        if (strcmp(resume, "none") == 0)
            ZS_FAIL("resume with --resume auto, or train into a new directory (--run-dir DIR)",
                    "run directory '%s' already holds a run (%s); --resume none never "
                    "overwrites it",
                    r->out_dir, n > 0 ? list[0] : model);
        ZS_FAIL("resume from a checkpoint file with --resume PATH, or train into a new "
                "directory (--run-dir DIR)",
                "run directory '%s' holds %s but no checkpoint in %s/ckpt: --resume auto has "
                "nothing to continue from and never overwrites a finished model",
                r->out_dir, model, r->out_dir);
    }
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
    return chosen ? chosen : strdup("");
}

// Every rank: parameters, optimizer states and the state of the checkpoint
// (the caller opens the loader at its data position); rank 0 refuses a
// config that changed outside resume_allowed.
static void resume_from(const RunContext* r, CagNet* m, const char* path, CkptState* st) {
    char* text = NULL;
    ckpt_load(path, m, st, &text);
    if (r->d.rank == 0) {
        Config* old = config_new();
        char* err = config_load_string(old, text, path);
        if (err) ZS_FAIL("the checkpoint's /config is damaged; resume from another one", "%s", err);
        // the state against the schedule it was saved under (stage lengths may change on resume)
        Coordinator then;
        coord_init(&then, old);
        char* bad = ckpt_state_check(st, then.iters, then.n, path);
        if (bad) ZS_FAIL("resume from an earlier checkpoint (--resume PATH)", "%s", bad);
        char* diff = config_diff(old, r->cfg, resume_allowed);
        if (diff)
            ZS_FAIL("resume with the checkpoint's config (h5dump -d /config FILE), or start a "
                    "new run in a new --run-dir",
                    "the config differs from the one %s was trained with:\n%s", path, diff);
        config_free(old);
    }
    free(text);
    log_info("resumed from %s: iteration %ld (stage %d, %ld into it), data epoch %ld cursor %ld, "
             "saved by %d rank(s)",
             path, st->iter, st->stage, st->iter_in_stage, st->data_epoch, st->data_cursor,
             st->world_size);
}

// Rank 0: model_<stage>.h5 of the stage that `done` iterations complete, if any.
static void export_stage_model(const RunContext* r, const CagNet* m, const Coordinator* co,
                               long done) {
    for (int s = 0; s < co->n; s++)
        if (co->iters[s] > 0 && co->start[s] + co->iters[s] == done) {
            char name[64];
            snprintf(name, sizeof name, "model_%s.h5", coord_stage_name(co->kind[s]));
            save_params(r, m, name);
        }
}

// Rank 0, on resume: the parameter files match the checkpoint again (a stop
// between the checkpoint's rename and theirs left them stale or missing);
// a passed stage's file that cannot be rebuilt from here is named.
static void export_on_resume(const RunContext* r, const CagNet* m, const Coordinator* co,
                             long done) {
    if (r->d.rank != 0) return;
    export_stage_model(r, m, co, done);
    save_params(r, m, "model.h5");
    for (int s = 0; s < co->n; s++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/model_%s.h5", r->out_dir, coord_stage_name(co->kind[s]));
        if (co->iters[s] > 0 && co->start[s] + co->iters[s] < done && !file_exists(path))
            log_warn("%s is missing and cannot be rebuilt from this checkpoint (it holds "
                     "iteration %ld): resume from a checkpoint of iteration %ld to rebuild it",
                     path, done, co->start[s] + co->iters[s]);
    }
}

// Rank 0: checkpoint after global iteration `iter`, plus the parameter files
// eval/predict read: model_<stage>.h5 first at a stage's end (a checkpoint
// past a stage end implies its file), model.h5 after the checkpoint.
static void save_checkpoint(const RunContext* r, const CagNet* m, const Coordinator* co,
                            Loader* loader, long iter, double best) {
    if (r->d.rank != 0) return;
    CkptState st;
    memset(&st, 0, sizeof st);
    st.iter = iter + 1;
    int s = st.iter < co->total ? coord_stage_of(co, st.iter, &st.iter_in_stage) : co->n - 1;
    if (st.iter >= co->total) st.iter_in_stage = co->iters[s];
    st.stage = s;
    st.mixed_pos = st.iter_in_stage % (2 * co->interval);
    long round_start = 0;
    st.st_round = st.iter < co->total ? coord_round_of(co, st.iter, &round_start) : -1;
    if (st.st_round >= 0 && !config_get_bool(r->cfg, "selftrain.online"))
        st_round_path(r->out_dir, st.st_round, st.st_file, sizeof st.st_file);
    LoaderState ls = loader_get_state(loader);
    st.data_epoch = ls.epoch, st.data_cursor = ls.cursor;
    st.seed = (uint64_t)config_get_int(r->cfg, "run.seed");
    st.best_metric = best;
    st.world_size = r->d.world;
    char path[4096];
    export_stage_model(r, m, co, st.iter);
    ckpt_save(r->out_dir, &st, m, r->cfg_text, config_get_int(r->cfg, "checkpoint.keep"),
              config_get_int(r->cfg, "checkpoint.keep_every"), path, sizeof path);
    save_params(r, m, "model.h5");
}

// What one training iteration needs besides the model.
typedef struct {
    RunContext* r;  // its Dist counts allreduce time
    const Coordinator* co;
    Loader* loader;
    TrainLog* tl;
    DeviceRun* dv;  // the CPU when dv->g is NULL
    SelfTrain* st;
    size_t bucket;  // allreduce bucket, floats
    uint64_t seed;
    int B;          // per-rank batch
} TrainStep;

// Test hook: ZSSEG_FAULT_NONFINITE="ITER:RANK:loss|grad" poisons that rank's
// L_G (or first gradient) at global iteration ITER, as an overflow would.
static int fault_nonfinite(long iter, int rank, const char* what) {
    const char* f = getenv("ZSSEG_FAULT_NONFINITE");
    long at = -1;
    int r = -1;
    char kind[8] = "";
    return f && sscanf(f, "%ld:%d:%7s", &at, &r, kind) == 3 && at == iter && r == rank &&
           strcmp(kind, what) == 0;
}

// One iteration on every rank: rank 0 decides (with the agreed signal
// flags), all follow its record; gradients summed over the updated ranges,
// then the same update everywhere. Returns the record; *nonfinite is set on
// every rank when any rank saw a non-finite loss or the summed gradient is
// not finite (one 4-byte allreduce), the rank's own finding logged there.
static ControlRecord train_iteration(const TrainStep* t, CagNet* m, long iter, int* nonfinite) {
    RunContext* r = t->r;
    // a signal on any rank reaches rank 0's decision through the agreed flags
    uint32_t flags = dist_agree_flags(&r->d, signals_pending() ? COORD_FLAG_STOP : 0);
    ControlRecord rec;
    memset(&rec, 0, sizeof rec);
    if (r->d.rank == 0) {
        rec = coord_decide(t->co, iter, flags);
        UpdatePlan p = plan_of(m, t->co, &rec);
        rec.lr_e = p.update_e ? p.lr_e : 0.0f;
        rec.lr_d = p.update_d ? p.lr_d : 0.0f;
        rec.lr_g = p.update_g ? p.lr_g : 0.0f;
    }
    dist_broadcast_control(&r->d, &rec);
    // every rank derives the same plan; the record's rates are rank 0's
    UpdatePlan plan = plan_of(m, t->co, &rec);
    plan.lr_e = rec.lr_e, plan.lr_d = rec.lr_d, plan.lr_g = rec.lr_g;

    StepRng rng = {t->seed, rec.iter, r->d.rank * t->B, 1};
    const char* bad = NULL;
    double value = 0.0;
    if (rec.kind == STEP_KIND_STEP1) {
        const LoaderBatch* b = loader_next(t->loader);
        rng.sample0 = b->sample0;
        Step1Mode mode = cagnet_mode_mixed(m);
        StageKind k = t->co->kind[rec.stage];
        const Step1Mode* md = k == STAGE_MIXED || k == STAGE_ST_MIXED ? &mode : NULL;
        Step1Losses l1;
        const uint8_t* labels = selftrain_labels(t->st, r, m, t->co, rec.stage, b);
        device_run_step1(t->dv, m, &plan, b->images, labels, b->weights, &rng, md, &l1);
        if (fault_nonfinite(rec.iter, r->d.rank, "loss")) l1.loss_g = INFINITY;
        bad = train_log_nonfinite(&l1, 0.0f, &value);
        train_log_step1(t->tl, &l1);
    } else {
        float ce = device_run_step2(t->dv, m, &plan, &rng);
        bad = train_log_nonfinite(NULL, ce, &value);
        train_log_step2(t->tl, ce);
    }
    if (fault_nonfinite(rec.iter, r->d.rank, "grad") && !t->dv->g) {
        size_t off[3], cnt[3];
        if (cagnet_update_ranges(m, &plan, off, cnt) > 0) m->grads[off[0]] = NAN;
    }
    double sq = device_run_update(t->dv, m, &plan, &r->d, t->bucket);
    if (!bad && !isfinite(sq)) bad = "gradient norm", value = sq;
    if (bad)
        log_error("non-finite %s (%g) at iteration %ld: stopping without a checkpoint of this "
                  "state",
                  bad, value, rec.iter + 1);
    *nonfinite = dist_agree_flags(&r->d, bad ? 1u : 0u) != 0;
    return rec;
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
    const char* resume = cli_option(args, "resume");
    if (!resume) resume = "auto";
    RunContext r;
    run_open(&r, cfg0, sets, nsets);
    const Config* cfg = r.cfg;
    Coordinator co;
    coord_init(&co, cfg);
    DeviceRun dv;
    device_run_select(&dv, cfg, &r.d);

    if (r.d.rank == 0) {
        // before anything reads or writes the run directory
        char* busy = run_lock_acquire(r.out_dir);
        if (busy)
            ZS_FAIL("wait for that run to end, stop it (it checkpoints on SIGTERM), or train "
                    "into another --run-dir",
                    "%s", busy);
    }
    char* chosen = r.d.rank == 0 ? choose_checkpoint(&r, resume) : NULL;
    char* ckpt = dist_broadcast_text(&r.d, chosen);
    free(chosen);
    Dataset train, test;
    dataset_open(&train, cfg, &r.cs, DATASET_TRAIN);
    dataset_open(&test, cfg, &r.cs, DATASET_TEST);
    int crop = config_get_int(cfg, "data.crop_size");
    CagNet m;
    run_model_init(&r, &m, config_get_int(cfg, "data.batch_size") / r.d.world, crop, crop);
    CkptState st;
    memset(&st, 0, sizeof st);
    st.best_metric = -1.0;
    if (*ckpt) {
        resume_from(&r, &m, ckpt, &st);
        export_on_resume(&r, &m, &co, st.iter);
    }
    dist_broadcast_params(&r.d, m.params, m.pt.total);
    // the loader and batch of the stage the run starts in, at the checkpoint's data position
    SelfTrain stt;
    selftrain_init(&stt, cfg, &co, r.d.world, st.iter);
    Loader* loader = loader_open_train_batch(&train, cfg, stt.batch_key, r.d.rank, r.d.world,
                                             device_run_batch_allocator(&dv));
    if (*ckpt) loader_set_state(loader, (LoaderState){st.data_epoch, st.data_cursor});
    int B = config_get_int(cfg, stt.batch_key) / r.d.world;
    cagnet_set_batch(&m, B);

    if (r.d.rank == 0) {
        char path[4096];
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
        trace = file_open_append_nofollow(path);
    }
    device_run_start(&dv, cfg, &r.d, &m);
    log_start(&r, &m, &train, &test, &co, &dv);

    TrainLog tl;
    train_log_open(&tl, cfg, &r.d, r.out_dir, co.total, st.iter);
    size_t bucket = (size_t)(config_get_float(cfg, "dist.bucket_mb") * 1048576.0 / 4.0);
    TrainStep ts = {&r, &co, loader, &tl, &dv, &stt, bucket ? bucket : 1,
                    (uint64_t)config_get_int(cfg, "run.seed"), B};
    long check_every = config_get_int(cfg, "dist.check_every");
    char eval_dir[4096];
    snprintf(eval_dir, sizeof eval_dir, "%s/eval", r.out_dir);
    double best = st.best_metric;
    int signal_seen = 0, nonfinite = 0;
    long iter = st.iter;
    double t0 = MPI_Wtime();

    for (; iter < co.total; iter++) {
        signals_fault_injection(iter, r.d.rank);
        if (selftrain_before(&stt, &r, &m, &dv, &train, &ts.loader, &ts.B, &co, iter)) {
            // stopped while labelling: the state before this iteration (on a
            // GPU the host copy is only as new as the last download)
            device_run_download(&dv, &m);
            save_checkpoint(&r, &m, &co, ts.loader, iter - 1, best);
            signal_seen = 1;
            break;
        }
        ControlRecord rec = train_iteration(&ts, &m, iter, &nonfinite);
        if (nonfinite) break;  // no evaluation, checkpoint or pruning of this state
        StageKind stage = co.kind[rec.stage];
        int check = check_every > 0 && (iter + 1) % check_every == 0;
        if (check || rec.checkpoint) device_run_download(&dv, &m);  // eval runs on the device
        if (check) dist_check_params(&r.d, m.params, m.pt.total, iter);
        if (trace) fprintf(trace, "%ld %s %s\n", iter, coord_stage_name(stage),
                           coord_kind_name((StepKind)rec.kind));
        train_log_maybe_flush(&tl, &rec, coord_stage_name(stage),
                              coord_kind_name((StepKind)rec.kind));

        if (rec.evaluate) {
            Metrics mt;
            evaluate_run(&m, cfg, &r.cs, &test, &r.d, eval_dir, rec.iter + 1, &mt);
            train_log_eval(&tl, rec.iter, coord_stage_name(stage), &mt);
            if (mt.hiou > best) best = mt.hiou;
        }
        if (rec.checkpoint) save_checkpoint(&r, &m, &co, ts.loader, iter, best);
        if (rec.stop) {
            iter++;
            signal_seen = (rec.flags & COORD_FLAG_STOP) && iter < co.total;
            break;
        }
    }
    double wall = MPI_Wtime() - t0;
    if (r.d.rank == 0) {
        log_info("%s: %ld iterations in %.1f s; gradient allreduce %.2f s (%.1f%%), %llu calls, "
                 "%.1f MiB summed; parameters in %s/model.h5",
                 nonfinite ? "stopped by non-finite values"
                 : signal_seen ? "stopped by a signal"
                               : "training done",
                 iter - st.iter, wall,
                 r.d.allreduce_s, wall > 0 ? 100.0 * r.d.allreduce_s / wall : 0.0,
                 (unsigned long long)r.d.allreduce_calls,
                 (double)r.d.allreduce_bytes / 1048576.0, r.out_dir);
        char path[4096];
        if (nonfinite) {
            log_error("non-finite values at iteration %ld: the run stopped without saving this "
                      "state; the checkpoints in %s/ckpt are untouched (`--resume auto` "
                      "continues from the last one, which is finite): lower the learning rates "
                      "or loss weights first",
                      iter + 1, r.out_dir);
        } else if (signal_seen) {
            log_info("checkpoint of iteration %ld written; run the same command to resume", iter);
        } else {
            // what batch scripts test to tell "finished" from "stopped, requeue me"
            char done[64];
            int n = snprintf(done, sizeof done, "%ld\n", iter);
            snprintf(path, sizeof path, "%s/DONE", r.out_dir);
            file_write_atomic(path, done, (size_t)n);
        }
    }
    train_log_close(&tl);
    if (trace) fcloseCheck(trace, "trace file");
    free(ckpt);
    selftrain_free(&stt, ts.loader);
    device_run_close(&dv);
    cagnet_free(&m);
    loader_close(ts.loader);
    dataset_free(&train);
    dataset_free(&test);
    run_close(&r);
    return nonfinite ? 1 : 0;
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
