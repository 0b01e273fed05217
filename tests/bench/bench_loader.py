"""PyTorch side of tests/bench/loader.sh: a torch DataLoader over the same
`zsseg synth` dataset as bench_loader.c, with the CaGNet reference code's
training transform (libs/datasets/cocostuff.py, `_CocoStuff._transform` and
`CocoStuff164k._load_data`), done with OpenCV as there:

    cv2.imread BGR -> float32, minus mean (no std); cv2.resize to warp x warp
    (image INTER_LINEAR, label INTER_NEAREST); random scale s ~ U(scale range)
    by cv2.resize(fx = fy = s) (same interpolations); pad centred with
    cv2.copyMakeBorder (image 0, label 255) to max(warp, crop); random crop;
    horizontal flip with probability 1/2; HWC -> CHW; float32 image, int64 label
    (the reference's output types); unseen classes -> 255 through a lookup table
    (the reference's `visibility_mask[label]`), as zsseg's label_remap does.

The label stays uint8 through the OpenCV calls (cv2.resize has no int64
path); the lookup table gives the int64 label. DataLoader(batch_size,
num_workers=W, drop_last), the order reshuffled each epoch like shuffle=True,
but as one stream of epochs (RandomSampler with num_samples = epochs x N), so
the timed epochs run back to back like zsseg's never-ending training loader,
without the idle tail and restart of a new iterator per epoch. Each worker
process runs OpenCV and torch on one thread (cv2.setNumThreads(0),
torch.set_num_threads(1)), so one worker = one core.

    python3 tests/bench/bench_loader.py --data DIR [--workers W] [--warmup E] [--epochs E]
        [--batch 8] [--warp 513] [--crop 368] [--scale 0.5 1.5] [--mean B G R] [--seed 0]
    python3 tests/bench/bench_loader.py --data DIR --breakdown [...]

CPU time: the main process's (time.process_time) plus each worker's
utime + stime from /proc/PID/stat over the timed epochs.
"""
import argparse
import glob
import os
import random
import time

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

IGNORE = 255


def train_lut(root):
    """Label-file value -> training index (classes.tsv row) for seen classes,
    255 for unseen, unlisted and ignored values: zsseg's train_map."""
    ids = [int(line.split("\t")[0]) for line in open(os.path.join(root, "classes.tsv")) if line.strip()]
    seen = {int(s) for s in open(os.path.join(root, "seen.txt")).read().split()}
    lut = np.full(256, IGNORE, dtype=np.int64)
    for row, cid in enumerate(ids):
        if cid in seen:
            lut[cid] = row
    return lut


class RefCocoStuff(Dataset):
    def __init__(self, root, split, warp, crop, scale, mean):
        labels = sorted(glob.glob(os.path.join(root, "annotations", split, "*.png")))
        self.ids = [os.path.basename(p)[:-4] for p in labels]
        self.root, self.split = root, split
        self.warp, self.crop, self.scale = warp, crop, scale
        self.mean = np.array(mean)
        self.lut = train_lut(root)

    def __len__(self):
        return len(self.ids)

    def load(self, i):
        name = self.ids[i]
        image = cv2.imread(os.path.join(self.root, "images", self.split, name + ".jpg"),
                           cv2.IMREAD_COLOR).astype(np.float32)
        label = cv2.imread(os.path.join(self.root, "annotations", self.split, name + ".png"),
                           cv2.IMREAD_GRAYSCALE)
        return image, label

    def transform(self, image, label):
        image -= self.mean
        base = (self.warp, self.warp)
        image = cv2.resize(image, base, interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, base, interpolation=cv2.INTER_NEAREST)
        s = random.uniform(self.scale[0], self.scale[1])
        image = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, None, fx=s, fy=s, interpolation=cv2.INTER_NEAREST)
        h, w = label.shape
        pad_h = max(max(base[1], self.crop) - h, 0)
        pad_w = max(max(base[0], self.crop) - w, 0)
        if pad_h > 0 or pad_w > 0:
            pad = dict(top=pad_h // 2, bottom=pad_h - pad_h // 2, left=pad_w // 2,
                       right=pad_w - pad_w // 2, borderType=cv2.BORDER_CONSTANT)
            image = cv2.copyMakeBorder(image, value=(0.0, 0.0, 0.0), **pad)
            label = cv2.copyMakeBorder(label, value=IGNORE, **pad)
        h, w = label.shape
        y = random.randint(0, h - self.crop)
        x = random.randint(0, w - self.crop)
        image = image[y:y + self.crop, x:x + self.crop]
        label = label[y:y + self.crop, x:x + self.crop]
        if random.random() < 0.5:
            image = np.fliplr(image).copy()
            label = np.fliplr(label).copy()
        image = image.transpose(2, 0, 1)
        return image.astype(np.float32), self.lut[label]

    def __getitem__(self, i):
        return self.transform(*self.load(i))


def one_thread(_worker_id=None):
    cv2.setNumThreads(0)
    torch.set_num_threads(1)


def proc_cpu_s(pid):
    """utime + stime of process pid, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(ds, a):
    n_epochs = a.warmup + a.epochs
    sampler = RandomSampler(ds, num_samples=n_epochs * len(ds),
                            generator=torch.Generator().manual_seed(a.seed))
    loader = DataLoader(ds, batch_size=a.batch, sampler=sampler, num_workers=a.workers,
                        drop_last=True, worker_init_fn=one_thread)
    bpe = len(ds) // a.batch
    it = iter(loader)
    pids = [w.pid for w in getattr(it, "_workers", [])]
    for _ in range(a.warmup * bpe):
        next(it)
    # Batches of one epoch straddle the boundary (the sampler's stream
    # continues); the timed count is exact.
    cpu0 = time.process_time() + sum(proc_cpu_s(p) for p in pids)
    t0 = time.perf_counter()
    images = 0
    for _ in range(a.epochs * bpe):
        images += next(it)[0].shape[0]
    wall = time.perf_counter() - t0
    cpu = time.process_time() + sum(proc_cpu_s(p) for p in pids) - cpu0
    del it
    print(f"pytorch: {len(ds)} images of {ds.split}, batch {a.batch}, {bpe} batches/epoch, "
          f"num_workers {a.workers}, {a.warmup} warm-up + {a.epochs} timed epochs "
          f"(torch {torch.__version__}, OpenCV {cv2.__version__})")
    print(f"  {images} images in {wall:.3f} s wall, {cpu:.3f} CPU-s: {images / wall:.1f} images/s, "
          f"{images / cpu:.1f} images per CPU-s ({cpu / wall:.2f} cores busy)")
    print(f"RESULT pytorch workers={a.workers} images={images} wall_s={wall:.4f} cpu_s={cpu:.4f}")


def breakdown(ds):
    """One process, one thread: every sample once untimed, then once timed,
    part by part: cv2.imread of the JPEG, its astype(float32), cv2.imread of
    the PNG, transform (mean to the int64 label)."""
    keys = ("jpeg", "to_float", "png", "transform")
    parts = dict.fromkeys(keys, 0.0)
    random.seed(0)
    for timed in (False, True):
        for i in range(len(ds)):
            name = ds.ids[i]
            t = [time.perf_counter()]
            image = cv2.imread(os.path.join(ds.root, "images", ds.split, name + ".jpg"),
                               cv2.IMREAD_COLOR)
            t.append(time.perf_counter())
            image = image.astype(np.float32)
            t.append(time.perf_counter())
            label = cv2.imread(os.path.join(ds.root, "annotations", ds.split, name + ".png"),
                               cv2.IMREAD_GRAYSCALE)
            t.append(time.perf_counter())
            ds.transform(image, label)
            t.append(time.perf_counter())
            if timed:
                for k, key in enumerate(keys):
                    parts[key] += t[k + 1] - t[k]
    n = len(ds)
    total = sum(parts.values())
    print(f"pytorch breakdown, one thread, ms per image ({n} images): "
          + " ".join(f"{k} {1e3 * v / n:.2f}" for k, v in parts.items())
          + f", total {1e3 * total / n:.2f}")
    print("BREAKDOWN pytorch " + " ".join(f"{k}_ms={1e3 * v / n:.4f}" for k, v in parts.items())
          + f" total_ms={1e3 * total / n:.4f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="train2017")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warp", type=int, default=513)
    p.add_argument("--crop", type=int, default=368)
    p.add_argument("--scale", type=float, nargs=2, default=[0.5, 1.5])
    p.add_argument("--mean", type=float, nargs=3, default=[104.008, 116.669, 122.675])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--breakdown", action="store_true")
    a = p.parse_args()
    one_thread()
    ds = RefCocoStuff(a.data, a.split, a.warp, a.crop, a.scale, a.mean)
    if a.breakdown:
        breakdown(ds)
    else:
        throughput(ds, a)


if __name__ == "__main__":
    main()
