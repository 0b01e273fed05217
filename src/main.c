// zsseg: one binary, one subcommand per job. The command table below is the
// whole CLI surface; parsing, usage texts and config resolution live in cli.c.
// `config` never initialises MPI, so it runs anywhere, mpirun included.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "checkpoint.h"
#include "cli.h"
#include "config.h"
#include "dataset.h"
#include "embed.h"
#include "extract.h"
#include "signals.h"
#include "synth.h"
#include "train.h"
#ifdef ZSSEG_HAVE_CUDA
#include "zsseg_cuda.h"
#endif

static const CliOption train_options[] = {
    {"run-dir", 0, "DIR", "run directory (overrides run.out_dir)"},
    {"resume", 'r', "auto|PATH|none",
     "auto (default): continue from RUN_DIR/ckpt/latest if it verifies (else the newest "
     "that does); PATH: that checkpoint; none: start fresh (the run directory must be new)"},
    {0},
};
static const CliOption eval_options[] = {
    {"ckpt", 0, "PATH", "parameters to evaluate (default: RUN_DIR/model.h5)"},
    {0},
};
static const CliOption predict_options[] = {
    {"ckpt", 0, "PATH", "parameters to predict with (default: RUN_DIR/model.h5)"},
    {"out", 'o', "DIR", "directory for the colour PNGs (default: RUN_DIR/predictions)"},
    {0},
};
static const CliOption extract_options[] = {
    {"ckpt", 0, "PATH", "parameters of the segmentation network (default: RUN_DIR/model.h5)"},
    {"split", 0, "train|test", "which image list to extract (default: train)"},
    {"out", 'o', "FILE", "features HDF5 file (default: RUN_DIR/features_SPLIT.h5)"},
    {"max-per-class", 0, "N", "keep at most N rows per class, a seeded random subsample"},
    {0},
};
static const CliOption embed_options[] = {
    {"out", 'o', "FILE", "class embedding HDF5 to write (default: data.embedding)"},
    {0},
};
static const CliOption synth_options[] = {
    {"out", 'o', "DIR", "dataset directory (default: data.root)"},
    {"seed", 0, "S", "seed of every draw (default: run.seed)"},
    {"images", 0, "N", "training scenes (default: synth.train_images)"},
    {"size", 0, "P", "side of the square scenes in pixels (default: synth.image_size)"},
    {"quality", 0, "Q", "JPEG quality (default: 95)"},
    {"from", 0, "DIR", "COCO-stuff reference class lists (default: datasets/cocostuff)"},
    {"force", 0, NULL, "replace an existing dataset written by zsseg synth"},
    {0},
};
static const CliOption config_options[] = {
    {"reference", 0, NULL, "print the markdown reference of every key instead (README section)"},
    {"markdown", 0, NULL, "same as --reference"},
    {0},
};

static const CliOption bench_options[] = {
    {"iters", 0, "N", "timed CPU iterations of step1 and of step2 (default 3; 0: on paper only)"},
    {"gpus", 0, "N", "GPUs of the on-paper estimate (default: the MPI ranks)"},
    {"peak-tflops", 0, "X", "GPU peak (default 494.7: H100 SXM dense TF32)"},
    {"efficiency", 0, "F", "assumed fraction of the peak the convolutions reach (default 0.45)"},
    {"hbm-gbs", 0, "Y", "GPU memory bandwidth for element-wise passes (default 3350: H100 SXM)"},
    {"busbw-gbs", 0, "Z", "NCCL allreduce bus bandwidth (default 360: H100 NVLink, ring)"},
    {0},
};

static int run_config(const CliArgs* args, const Config* cfg) {
    char* text = cli_option(args, "reference") || cli_option(args, "markdown")
                     ? config_reference_markdown()
                     : config_resolved_text(cfg);
    fputs(text, stdout);
    free(text);
    return fflush(stdout) == 0 ? 0 : 1;
}

// ckpt info PATH: list the datasets of a weights or checkpoint file.
static int run_ckpt(const CliArgs* args, const Config* cfg) {
    (void)cfg;
    const char* sub = args->npositionals > 0 ? args->positionals[0] : "";
    if (args->npositionals != 2 || (strcmp(sub, "info") != 0 && strcmp(sub, "verify") != 0)) {
        fprintf(stderr,
                "zsseg ckpt: expected 'info PATH' or 'verify PATH' (see zsseg ckpt --help)\n");
        return CLI_EXIT_USAGE;
    }
    const char* path = args->positionals[1];
    if (strcmp(sub, "verify") == 0) {
        int n = 0;
        char* err = ckpt_verify_count(path, &n);
        if (err) {
            fprintf(stderr, "zsseg ckpt verify: %s\n", err);
            free(err);
            return 1;
        }
        printf("%s: ok (%d datasets verified)\n", path, n);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    ckpt_print_info(path, stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

static const CliCommand commands[] = {
    {"train", "train a model through the stages of schedule.stages",
     "Train on data.dataset with model.method, stage by stage (schedule.stages), on every rank\n"
     "of the MPI job. The run directory (run.out_dir) receives the resolved config, the\n"
     "parameters (model.h5, model_STAGE.h5), metrics.jsonl, tb/ and eval/.",
     NULL, 0, train_options, cmd_train},
    {"eval", "evaluate a checkpoint: seen/unseen mIoU and hIoU",
     "Evaluate a checkpoint on the test list: confusion matrix over all classes, per-class IoU,\n"
     "seen and unseen mIoU and their harmonic mean hIoU.",
     NULL, 0, eval_options, cmd_eval},
    {"predict", "write colour PNG segmentations of images",
     "Segment the given images among all classes and write colour PNGs.", "IMAGE...",
     CLI_MAX_POSITIONALS, predict_options, cmd_predict},
    {"extract", "extract pixel features of a split to HDF5",
     "Run the frozen segmentation network over a split and write its pixel features and labels\n"
     "to one HDF5 file, collectively from all ranks (ZS3Net trains on these).",
     NULL, 0, extract_options, cmd_extract},
    {"embed", "build the class embedding HDF5 from word-vector files",
     "Concatenate the word vectors of data.word_vectors for the classes of data.classes,\n"
     "L2-normalise each row, and write the class embedding HDF5.",
     NULL, 0, embed_options, cmd_embed},
    {"synth", "generate the synthetic dataset into data.root",
     "Generate the embedded synthetic dataset (COCO-stuff layout, appearance driven by the\n"
     "class embeddings) into data.root, with the sizes of the synth group.",
     NULL, 0, synth_options, cmd_synth},
    {"data", "check a dataset: pairs, sizes, class pixel histogram",
     "check: count the images of data.train_list/test_list, verify that every image has its\n"
     "label and that their sizes match, and print the class pixel histogram (exit 1 on any\n"
     "problem).",
     "check", 1, NULL, cmd_data},
    {"ckpt", "inspect or verify a checkpoint file",
     "info: list what a weights or checkpoint file holds (every dataset with its dtype and\n"
     "shape, and the total size); verify: check its checksums.",
     "info|verify CKPT", 2, NULL, run_ckpt},
    {"bench", "one training iteration on paper (FLOPs, GPU time, scaling) and measured",
     "Count the FLOPs of one step1 and one step2 iteration of the config from its layer shapes,\n"
     "estimate the step time per GPU at --peak-tflops, the gradient allreduce at --busbw-gbs and\n"
     "the scaling efficiency on --gpus GPUs; then time --iters iterations of each on random\n"
     "inputs on this machine's CPU (and, under mpirun, the gradient allreduce).",
     NULL, 0, bench_options, cmd_bench},
    {"config", "print the resolved config, or the reference of every key",
     "Print every config key with its resolved value and, as a comment, its source (default,\n"
     "FILE:LINE or --set). The output is itself a valid config file.",
     NULL, 0, config_options, run_config},
};

int main(int argc, char** argv) {
    // before anything slow: SLURM's warning signal may come at job start
    if (argc > 1 && strcmp(argv[1], "train") == 0) signals_install();
#ifdef ZSSEG_HAVE_CUDA
    cuda_backend_register();
#endif
    return cli_main(argc, argv, commands, (int)(sizeof commands / sizeof commands[0]));
}
