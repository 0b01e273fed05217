#!/usr/bin/env python3
"""Convert a deeplab-pytorch DeepLabV2 ResNet state dict (.pth) into zsseg's
HDF5 weights layout, for `model.pretrained`.

Input: e.g. deeplabv2_resnet101_init.pth or
deeplabv2_resnet101_msc-cocostuff164k-100000.pth from
https://github.com/kazuto1011/deeplab-pytorch (keys like
base.layer2.block1.reduce.conv.weight, with or without the MSC `base.` or
DataParallel `module.` prefix; older releases name the shortcut `proj` and
the ASPP `aspp.stages.cN`).

Output: one float32 dataset per tensor at /params/<zsseg name with '.' -> '/'>,
e.g. /params/backbone/layer2/block1/reduce/conv/weight, as src/weights_h5.c
reads it. The ASPP of those files classifies into 182 (COCO-stuff) or 21
(VOC) classes, while zsseg's ASPP produces the model.feature_dim feature, so
the ASPP is left out unless --keep-aspp (zsseg then initialises it).

Usage:
  python3 datasets/convert_weights.py --check deeplabv2_resnet101_init.pth
  python3 datasets/convert_weights.py deeplabv2_resnet101_init.pth weights/deeplabv2_init.h5
  zsseg ckpt info weights/deeplabv2_init.h5
  # then in the config: model { pretrained = "weights/deeplabv2_init.h5"; }

Needs torch (to read .pth), numpy and h5py for a conversion; the name mapping
itself (map_key, MAPPING) needs only the standard library, and
`--self-test` checks it.
"""
import argparse
import os
import re
import sys

# ---------------------------------------------------------------- the name mapping
# Applied in order to a key after the prefixes are stripped; the first rule
# whose pattern matches gives the zsseg name (re.sub replacement), or SKIP.
PREFIXES = ("module.", "base.")
SKIP = None
_BN = r"bn\.(?:weight|bias|running_mean|running_var)"
MAPPING = [
    # BatchNorm step counters: zsseg's BN is frozen
    (r"^.*\.num_batches_tracked$", SKIP),
    # stem
    (r"^layer1\.conv1\.(conv\.weight|" + _BN + r")$", r"backbone.layer1.conv1.\1"),
    # bottlenecks; releases before 2019 call the shortcut 'proj'
    (r"^(layer[2-5]\.block\d+)\.(reduce|conv3x3|increase|shortcut)\.(conv\.weight|" + _BN + r")$",
     r"backbone.\1.\2.\3"),
    (r"^(layer[2-5]\.block\d+)\.proj\.(conv\.weight|" + _BN + r")$", r"backbone.\1.shortcut.\2"),
    # ASPP branches; older releases nest them under 'stages'
    (r"^aspp\.(?:stages\.)?(c\d+)\.(weight|bias)$", r"aspp.\1.\2"),
]
_COMPILED = [(re.compile(p), r) for p, r in MAPPING]


class Unmapped(KeyError):
    pass


def map_key(key):
    """zsseg name of a deeplab-pytorch state-dict key; None for keys that are
    deliberately left out (SKIP); raises Unmapped for unknown keys."""
    k = key
    stripped = True
    while stripped:
        stripped = False
        for p in PREFIXES:
            if k.startswith(p):
                k, stripped = k[len(p):], True
    for pattern, repl in _COMPILED:
        if pattern.match(k):
            return None if repl is SKIP else pattern.sub(repl, k)
    raise Unmapped(key)


def convert_names(keys, keep_aspp=False):
    """Maps every key: returns ({zsseg name: key}, skipped keys, unmapped keys).
    Fails on two keys mapping to one name."""
    mapped, skipped, unmapped = {}, [], []
    for key in keys:
        try:
            name = map_key(key)
        except Unmapped:
            unmapped.append(key)
            continue
        if name is None or (name.startswith("aspp.") and not keep_aspp):
            skipped.append(key)
            continue
        if name in mapped:
            raise ValueError("keys %r and %r both map to %s" % (mapped[name], key, name))
        mapped[name] = key
    return mapped, skipped, unmapped


def blocks_per_stage(names):
    """Bottlenecks in layer2..layer5 among zsseg names, e.g. (3, 4, 23, 3)."""
    counts = []
    for layer in range(2, 6):
        ids = {int(m.group(1)) for n in names
               for m in [re.match(r"backbone\.layer%d\.block(\d+)\." % layer, n)] if m}
        counts.append(max(ids) if ids else 0)
    return tuple(counts)


BACKBONES = {(3, 4, 23, 3): "resnet101", (3, 4, 6, 3): "resnet50"}


# ---------------------------------------------------------------- file I/O
def load_state_dict(path):
    import torch  # only needed here

    obj = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        sys.exit("%s: expected a state dict, found %s" % (path, type(obj).__name__))
    return obj


def write_h5(path, tensors):
    import h5py
    import numpy as np

    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for name in sorted(tensors):
            arr = np.ascontiguousarray(tensors[name], dtype="<f4")
            f.create_dataset("params/" + name.replace(".", "/"), data=arr)
    os.replace(tmp, path)


def self_test():
    """Checks the mapping on representative keys of every known release."""
    cases = {
        "base.layer1.conv1.conv.weight": "backbone.layer1.conv1.conv.weight",
        "module.base.layer1.conv1.bn.running_var": "backbone.layer1.conv1.bn.running_var",
        "layer2.block1.reduce.conv.weight": "backbone.layer2.block1.reduce.conv.weight",
        "base.layer4.block23.conv3x3.bn.weight": "backbone.layer4.block23.conv3x3.bn.weight",
        "base.layer5.block1.shortcut.bn.running_mean": "backbone.layer5.block1.shortcut.bn.running_mean",
        "layer3.block1.proj.conv.weight": "backbone.layer3.block1.shortcut.conv.weight",
        "base.layer2.block3.increase.bn.bias": "backbone.layer2.block3.increase.bn.bias",
        "base.aspp.c3.bias": "aspp.c3.bias",
        "aspp.stages.c0.weight": "aspp.c0.weight",
        "base.layer2.block1.reduce.bn.num_batches_tracked": None,
    }
    bad = 0
    for key, want in cases.items():
        got = map_key(key)
        if got != want:
            print("FAIL map_key(%r) = %r, want %r" % (key, got, want))
            bad += 1
    for key in ("base.layer6.block1.reduce.conv.weight", "base.fc.weight",
                "base.layer2.block1.reduce.conv.bias", "base.aspp.c0.running_mean"):
        try:
            print("FAIL map_key(%r) = %r, want Unmapped" % (key, map_key(key)))
            bad += 1
        except Unmapped:
            pass
    mapped, skipped, unmapped = convert_names(list(cases) + ["base.fc.weight"])
    if "aspp.c3.bias" in mapped or len(skipped) != 3 or unmapped != ["base.fc.weight"]:
        print("FAIL convert_names: %d mapped, skipped %s, unmapped %s" % (len(mapped), skipped, unmapped))
        bad += 1
    if len(convert_names(cases, keep_aspp=True)[0]) != 9:
        print("FAIL convert_names(keep_aspp=True) should keep both ASPP keys")
        bad += 1
    print("convert_weights self-test: %s" % ("FAILED" if bad else "all %d checks passed" % (len(cases) + 6)))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pth", nargs="?", help="deeplab-pytorch state dict (.pth)")
    ap.add_argument("out", nargs="?", help="zsseg weights file to write (.h5)")
    ap.add_argument("--check", action="store_true",
                    help="only list how the keys map (and which do not); write nothing")
    ap.add_argument("--keep-aspp", action="store_true",
                    help="also convert the ASPP (only useful when model.feature_dim equals its classes)")
    ap.add_argument("--force", action="store_true", help="overwrite an existing output file")
    ap.add_argument("--self-test", action="store_true", help="check the name mapping and exit")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.pth or (not args.check and not args.out):
        ap.error("give PTH and OUT, or --check PTH")

    if not args.check and os.path.exists(args.out) and not args.force:
        sys.exit("%s exists; pass --force to overwrite it" % args.out)
    sd = load_state_dict(args.pth)
    mapped, skipped, unmapped = convert_names(list(sd), keep_aspp=args.keep_aspp)
    blocks = blocks_per_stage(mapped)
    print("%s: %d keys: %d converted, %d left out, %d unmapped; blocks per stage %s (%s)"
          % (args.pth, len(sd), len(mapped), len(skipped), len(unmapped), blocks,
             "model.backbone = " + BACKBONES[blocks] if blocks in BACKBONES else "not a known ResNet"))
    if args.check:
        for name in sorted(mapped):
            print("  %-50s -> %s %s" % (mapped[name], name, tuple(sd[mapped[name]].shape)))
        for key in skipped:
            print("  %-50s    left out" % key)
    for key in unmapped:
        print("  UNMAPPED %s %s" % (key, tuple(getattr(sd[key], "shape", ()))))
    if args.check:
        return 1 if unmapped else 0
    if unmapped:
        sys.exit("refusing to convert with unmapped keys (listed above): extend MAPPING at the "
                 "top of %s" % __file__)
    write_h5(args.out, {name: sd[key].detach().cpu().float().numpy() for name, key in mapped.items()})
    print("wrote %s (%d tensors)" % (args.out, len(mapped)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
