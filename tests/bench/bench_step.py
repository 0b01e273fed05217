"""PyTorch side of tests/bench/step.sh: one CaGNet step1 iteration of the
reference (tests/reference/reference.py: forward, the three gradient sets by
autograd, D Adam, E+CM SGD, G Adam), timed like bench_step.c on the same
closed-form inputs and config values.

    python3 tests/bench/bench_step.py --config RESOLVED.cfg [--size 321] [--warmup 1] [--iters 5]
                                      [--draws philox|torch] [--bn reference|fused]

RESOLVED.cfg is `bench_step --print-config` (the C driver's resolved config),
so both sides run the same values. --draws philox (default) takes every random
draw from the reference's numpy Philox port, exactly as the C code draws them
(the losses of iteration 0 then match the C driver's); their time is reported
separately. --draws torch replaces them with torch.rand / torch.randn of the
same shapes, as the original CaGNet code draws dropout masks and the
reparameterisation noise (same work otherwise; losses differ). --bn fused
runs each frozen BN as one F.batch_norm in eval mode (what nn.BatchNorm2d in
eval mode does in deeplab-pytorch, which the original code builds on) instead
of the reference's four elementwise ops, each saved for autograd; the values
agree to rounding.
"""
import argparse
import ast
import os
import re
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import reference as R  # noqa: E402


def rss_now_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def read_resolved(path):
    """{"group.key": value} from libconfig text as config_resolved_text writes it
    (one `key = value;` per line inside `group = { ... };`, trailing # comments)."""
    out, group = {}, None
    for line in open(path):
        line = line.strip()
        m = re.match(r"^(\w+)\s*=\s*\{$", line)
        if m:
            group = m.group(1)
            continue
        if line.startswith("};"):
            group = None
            continue
        m = re.match(r'^(\w+)\s*=\s*((?:"[^"]*"|[^;"])*);', line)
        if not m or group is None:
            continue
        v = m.group(2).strip().replace("(", "[").replace(")", "]")
        v = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", v))
        out[group + "." + m.group(1)] = ast.literal_eval(v)
    return out


def make_inputs(seen, E, H, W):
    """The closed forms of bench_step.c (image, L2-normalised embeddings, labels)."""
    K = len(seen)
    c, y, x = np.meshgrid(np.arange(3), np.arange(H), np.arange(W), indexing="ij")
    img = (np.sin(0.23 * x + 0.11 * y * (c + 1) + 0.9 * c) + 0.5 * np.cos(0.04 * x * y))[None].astype(np.float32)
    k, j = np.meshgrid(np.arange(K), np.arange(E), indexing="ij")
    emb = np.sin(0.7 * k * j + 0.3 * j + k) + 0.2 * np.cos(1.9 * k + 0.5 * j)
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    pal = np.flatnonzero(seen)[::12]
    y, x = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    lbl = pal[(x // 40 + 3 * (y // 46)) % len(pal)]
    lbl = np.where((x + 2 * y) % 17 < 2, R.IGNORE, lbl)[None]
    return (torch.from_numpy(img), torch.from_numpy(lbl.astype(np.int64)), torch.from_numpy(emb))


class DrawTimer:
    """Wraps the reference's draw functions: accumulates their wall time, or
    (torch mode) replaces them with torch's own generator."""

    def __init__(self, mode):
        self.t = 0.0
        orig_keep, orig_eps = R.dropout_keep, R.reparam_eps

        def keep(seed, it, sample0, shape, layer_id, p):
            t0 = time.perf_counter()
            k = torch.rand(shape) >= p if mode == "torch" else orig_keep(seed, it, sample0, shape, layer_id, p)
            self.t += time.perf_counter() - t0
            return k

        def eps(seed, it, sample0, shape, scale_idx):
            t0 = time.perf_counter()
            e = torch.randn(shape) if mode == "torch" else orig_eps(seed, it, sample0, shape, scale_idx)
            self.t += time.perf_counter() - t0
            return e

        R.dropout_keep, R.reparam_eps = keep, eps  # looked up as module globals at call time


def fused_bn(self, x):
    return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                        training=False, eps=R.BN_EPS)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--size", type=int, default=321)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--draws", choices=("philox", "torch"), default="philox")
    ap.add_argument("--bn", choices=("reference", "fused"), default="reference")
    a = ap.parse_args()
    if a.bn == "fused":
        R.FrozenBN.forward = fused_bn
    torch.set_num_threads(2)
    rss_start = rss_now_kb()

    resolved = read_resolved(a.config)
    cfg = R.make_config(**{k.replace(".", "__"): resolved[k] for k in R.DEFAULTS})
    K = sum(1 for _ in open(os.path.join(ROOT, resolved["data.classes"])))
    seen = np.zeros(K, np.uint8)
    seen[[int(v) for v in open(os.path.join(ROOT, resolved["data.seen"])).read().split()]] = 1
    img, lbl, emb = make_inputs(seen, cfg["model.embedding_dim"], a.size, a.size)

    torch.set_default_dtype(torch.float32)
    model = R.CaGNet(cfg, K)
    R.fill_closed_form(model)
    opt = R.Optimizers(model)
    for n in opt.members("E"):  # SGD reads only its momentum buffer; the reference allocates two
        opt.state[n][1] = torch.empty(0)
    draws = DrawTimer(a.draws)
    n_params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    rss_init = rss_now_kb()
    print("pytorch %s (%s draws, %s BN): %s, B=1, input 1x3x%dx%d, K=%d, %d scale(s), %d params, threads %d"
          % (torch.__version__, a.draws, a.bn, cfg["model.backbone"], a.size, a.size, K,
             1 + (len(cfg["model.msc_scales"]) if cfg["model.msc"] else 0), n_params, torch.get_num_threads()))
    secs, draw_secs, cpus = [], [], []
    seed = cfg["run.seed"]
    for it in range(a.warmup + a.iters):
        draws.t = 0.0
        c0, t0 = time.process_time(), time.perf_counter()
        L, grads, out, _ = R.step1(model, opt, img, lbl, emb, it, seed)
        del grads, out
        t, c = time.perf_counter() - t0, time.process_time() - c0
        if it >= a.warmup:
            secs.append(t)
            draw_secs.append(draws.t)
            cpus.append(c)
        print("  iter %d%s: %.3f s (CPU %.3f s, draws %.3f s)  L_D %.6g  L_E %.6g  L_G %.6g"
              % (it, " (warm-up)" if it < a.warmup else "", t, c, draws.t, L["L_D"], L["L_E"], L["L_G"]),
              flush=True)
    med = statistics.median(secs)
    med_nodraw = statistics.median(s - d for s, d in zip(secs, draw_secs))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu = statistics.median(cpus)
    print("pytorch: median %.3f s/iter (min %.3f, median CPU time %.3f s) over %d runs (after %d warm-up); "
          "without the draws %.3f s; RSS at start (after import) %.0f MiB, after init %.0f MiB, "
          "peak (ru_maxrss) %.0f MiB" % (med, min(secs), cpu, a.iters, a.warmup, med_nodraw,
                                         rss_start / 1024, rss_init / 1024, peak / 1024))
    print("RESULT pytorch_%s_%s median_s=%.4f min_s=%.4f cpu_s=%.4f nodraw_s=%.4f draws_s=%.4f maxrss_kb=%d "
          "start_kb=%d" % (a.draws, a.bn, med, min(secs), cpu, med_nodraw, statistics.median(draw_secs), peak,
                           rss_start))


if __name__ == "__main__":
    main()
