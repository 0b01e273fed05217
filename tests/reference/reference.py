"""Independent PyTorch reference of the CaGNet model contract (README.md here).

Networks (DeepLabv2 ResNet with frozen BN, ASPP, contextual module, generator,
discriminator/classifier, multi-scale), the parameter list in contract order
with the closed-form test fill, step1 and step2 iterations (all gradient sets
from one forward, then PyTorch-semantics SGD/Adam and the lr schedules), with
every random draw taken from philox.py exactly as contract §4 says. No torch
RNG is used anywhere. CPU only.

    python3 tests/reference/reference.py --selftest   # finite differences (float64)
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import philox  # noqa: E402

torch.set_num_threads(2)

BN_EPS = 1e-5
ADAM_EPS = 1e-8  # PyTorch's default; not a config key
IGNORE = 255

# ---------------------------------------------------------------- config

DEFAULTS = {  # README configuration reference (the keys used here)
    "run.seed": 0,
    "model.backbone": "resnet101", "model.tiny_width": 32, "model.feature_dim": 600,
    "model.latent_dim": 600, "model.embedding_dim": 600,
    "model.aspp_dilations": [6, 12, 18, 24], "model.cm_channels": 256,
    "model.cm_dilations": [1, 2, 5], "model.msc": True, "model.msc_scales": [0.5, 0.75],
    "model.gen_widths": [1024, 960, 864, 784, 720],
    "model.gen_dropouts": [0.1, 0.1, 0.3, 0.5, 0.5], "model.leaky_slope": 0.2,
    "model.d_hidden": 1024, "model.d_dropout": 0.5,
    "loss.gan": "l1", "loss.gan_weight": 1.0, "loss.content": "mmd",
    "loss.content_weight": 50.0, "loss.kl_weight": 100.0, "loss.backbone_ce_weight": 0.5,
    "loss.real_ce_weight": 1.0, "loss.fake_ce_weight": 0.0,
    "loss.mmd_sigmas": [2.0, 5.0, 10.0, 20.0, 40.0, 60.0],
    "optim.lr": 0.00025, "optim.momentum": 0.9, "optim.weight_decay": 0.0005,
    "optim.poly_power": 0.9, "optim.lr_mult_cm": 5.0, "optim.lr_mult_aspp_weight": 10.0,
    "optim.lr_mult_aspp_bias": 20.0, "optim.d_lr": 0.0005, "optim.d_weight_decay": 0.0005,
    "optim.g_lr": 0.0002, "optim.g_weight_decay": 0.0, "optim.adam_beta1": 0.9,
    "optim.adam_beta2": 0.999, "optim.decay_gamma": 0.3, "optim.d_decay_start": 10000,
    "optim.d_decay_every": 10000, "optim.g_decay_start": 10000, "optim.g_decay_every": 5000,
    "optim.mixed_lr": 0.00001, "optim.mixed_decay_gamma": 0.3,
    "optim.mixed_decay_start": 3000, "optim.mixed_decay_every": 2000,
    "schedule.step1_iters": 40000,
    "step2.unseen_prior": 59.0, "step2.classifier_ce_weight": 1.0,
    "step2.generator_ce_weight": 1.0,
}


def make_config(**over):
    """Full config dict: DEFAULTS with overrides given as group__key=value."""
    cfg = dict(DEFAULTS)
    for k, v in over.items():
        key = k.replace("__", ".")
        assert key in cfg, "unknown key " + key
        cfg[key] = v
    return cfg


# ---------------------------------------------------------------- networks

class FrozenBN(nn.Module):
    """Frozen BatchNorm: y = (x - mean) / sqrt(var + eps) * weight + bias (buffers only)."""

    def __init__(self, c):
        super().__init__()
        for n in ("weight", "bias", "running_mean", "running_var"):
            self.register_buffer(n, torch.zeros(c))

    def forward(self, x):
        v = lambda t: t.view(1, -1, 1, 1)  # noqa: E731
        return (x - v(self.running_mean)) / torch.sqrt(v(self.running_var) + BN_EPS) * v(self.weight) + v(self.bias)


class ConvBnReLU(nn.Module):
    def __init__(self, cin, cout, k, stride, pad, dil, relu):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, dil, bias=False)
        self.bn = FrozenBN(cout)
        self.relu = relu

    def forward(self, x):
        y = self.bn(self.conv(x))
        return F.relu(y) if self.relu else y


class Stem(nn.Module):  # layer1
    def __init__(self, w):
        super().__init__()
        self.conv1 = ConvBnReLU(3, w, 7, 2, 3, 1, True)

    def forward(self, x):
        return F.max_pool2d(self.conv1(x), 3, 2, 1, ceil_mode=True)


class Bottleneck(nn.Module):
    def __init__(self, cin, mid, cout, stride, dil, first):
        super().__init__()
        s = stride if first else 1
        self.reduce = ConvBnReLU(cin, mid, 1, s, 0, 1, True)  # stride on the 1x1 (caffe)
        self.conv3x3 = ConvBnReLU(mid, mid, 3, 1, dil, dil, True)
        self.increase = ConvBnReLU(mid, cout, 1, 1, 0, 1, False)
        self.shortcut = ConvBnReLU(cin, cout, 1, s, 0, 1, False) if first else None

    def forward(self, x):
        y = self.increase(self.conv3x3(self.reduce(x)))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class Stage(nn.Module):
    def __init__(self, n, cin, mid, cout, stride, dil):
        super().__init__()
        self.n = n
        for k in range(1, n + 1):
            setattr(self, "block%d" % k, Bottleneck(cin if k == 1 else cout, mid, cout, stride, dil, k == 1))

    def forward(self, x):
        for k in range(1, self.n + 1):
            x = getattr(self, "block%d" % k)(x)
        return x


def backbone_shape(cfg):
    b = cfg["model.backbone"]
    if b == "resnet101":
        return 64, (3, 4, 23, 3)
    if b == "resnet50":
        return 64, (3, 4, 6, 3)
    assert b == "tiny"
    return cfg["model.tiny_width"], (1, 1, 1, 1)


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        w, blocks = backbone_shape(cfg)
        self.layer1 = Stem(w)
        spec = [(w, 4 * w, 1, 1), (2 * w, 8 * w, 2, 1), (4 * w, 16 * w, 1, 2), (8 * w, 32 * w, 1, 4)]
        cin = w
        for L, (n, (mid, out, s, d)) in enumerate(zip(blocks, spec), start=2):
            setattr(self, "layer%d" % L, Stage(n, cin, mid, out, s, d))
            cin = out
        self.out_channels = 32 * w

    def forward(self, x, rec=None):
        for L in range(1, 6):
            x = getattr(self, "layer%d" % L)(x)
            if rec is not None:
                rec["layer%d" % L] = x
        return x


class ASPP(nn.Module):
    def __init__(self, cin, cout, dilations):
        super().__init__()
        self.n = len(dilations)
        for i, d in enumerate(dilations):
            setattr(self, "c%d" % i, nn.Conv2d(cin, cout, 3, 1, d, d, bias=True))

    def forward(self, x):
        h = getattr(self, "c0")(x)
        for i in range(1, self.n):
            h = h + getattr(self, "c%d" % i)(x)
        return h


class ContextModule(nn.Module):
    def __init__(self, D, Cc, dils):
        super().__init__()
        self.conv1 = nn.Conv2d(D, Cc, 3, 1, dils[0], dils[0])
        self.conv2 = nn.Conv2d(Cc, Cc, 3, 1, dils[1], dils[1])
        self.conv3 = nn.Conv2d(Cc, Cc, 3, 1, dils[2], dils[2])
        self.selector = nn.Conv2d(3 * Cc, 3, 3, 1, 1)
        self.fuse = nn.Conv2d(3 * Cc, D, 1)
        self.mu = nn.Conv2d(D, D, 3, 1, 1)
        self.logvar = nn.Conv2d(D, D, 3, 1, 1)

    def forward(self, h, eps):
        """eps (B, D, h, w) or None (test: z = mu). Returns a dict of the intermediates."""
        c1 = F.relu(self.conv1(torch.sigmoid(h)))
        c2 = F.relu(self.conv2(c1))
        c3 = F.relu(self.conv3(c2))
        s = torch.sigmoid(F.relu(self.selector(torch.cat([c1, c2, c3], 1))))
        p = F.relu(self.fuse(torch.cat([c1 * s[:, 0:1], c2 * s[:, 1:2], c3 * s[:, 2:3]], 1)))
        mu = self.mu(p)
        logvar = F.relu(self.logvar(p))
        z = mu if eps is None else mu + torch.exp(logvar / 2) * eps
        x = torch.sigmoid(h + h * torch.sigmoid(z))
        return dict(c1=c1, c2=c2, c3=c3, s=s, p=p, mu=mu, logvar=logvar, z=z, x=x)


class Generator(nn.Module):
    def __init__(self, E, L, widths, D):
        super().__init__()
        dims = [E + L] + list(widths) + [D]
        self.n = len(widths)
        for i in range(self.n + 1):
            setattr(self, "fc%d" % (i + 1), nn.Conv2d(dims[i], dims[i + 1], 1))


class DC(nn.Module):
    def __init__(self, D, hidden, K):
        super().__init__()
        self.trunk = nn.Conv2d(D, hidden, 1)
        self.gan = nn.Conv2d(hidden, 1, 1)
        self.cls = nn.Conv2d(hidden, K, 1)


class CaGNet(nn.Module):
    def __init__(self, cfg, num_classes):
        super().__init__()
        D = cfg["model.feature_dim"]
        assert cfg["model.latent_dim"] == D, "contract: the latent has D channels"
        self.cfg, self.K = cfg, num_classes
        self.backbone = Backbone(cfg)
        self.aspp = ASPP(self.backbone.out_channels, D, cfg["model.aspp_dilations"])
        self.cm = ContextModule(D, cfg["model.cm_channels"], cfg["model.cm_dilations"])
        self.dc = DC(D, cfg["model.d_hidden"], num_classes)
        self.gen = Generator(cfg["model.embedding_dim"], D, cfg["model.gen_widths"], D)


# ---------------------------------------------------------------- parameter list (§2)

def param_names(model):
    """Every tensor name in contract §2 order."""
    cfg = model.cfg
    _, blocks = backbone_shape(cfg)
    convs = ["backbone.layer1.conv1"]
    for L, n in zip(range(2, 6), blocks):
        for k in range(1, n + 1):
            for part in ("reduce", "conv3x3", "increase") + (("shortcut",) if k == 1 else ()):
                convs.append("backbone.layer%d.block%d.%s" % (L, k, part))
    names = [c + ".conv.weight" for c in convs]
    for i in range(len(cfg["model.aspp_dilations"])):
        names += ["aspp.c%d.weight" % i, "aspp.c%d.bias" % i]
    for m in ("conv1", "conv2", "conv3", "selector", "fuse", "mu", "logvar"):
        names += ["cm.%s.weight" % m, "cm.%s.bias" % m]
    for m in ("trunk", "gan", "cls"):
        names += ["dc.%s.weight" % m, "dc.%s.bias" % m]
    for i in range(1, len(cfg["model.gen_widths"]) + 2):
        names += ["gen.fc%d.weight" % i, "gen.fc%d.bias" % i]
    for c in convs:
        names += [c + ".bn." + s for s in ("weight", "bias", "running_mean", "running_var")]
    sd = model.state_dict()
    assert sorted(names) == sorted(sd.keys()), set(names) ^ set(sd.keys())
    return names


def tensor_map(model):
    """name -> the live tensor (parameter or buffer)."""
    d = dict(model.named_parameters())
    d.update(dict(model.named_buffers()))
    return d


def region(name):
    """Optimizer region of a tensor: backbone, aspp_w, aspp_b, cm, dc, gen, frozen."""
    if ".bn." in name:
        return "frozen"
    if name.startswith("backbone."):
        return "backbone"
    if name.startswith("aspp."):
        return "aspp_w" if name.endswith("weight") else "aspp_b"
    return name.split(".")[0]


def closed_form(name, t, shape):
    """Contract §2 closed-form fill of tensor number t (double, rounded to float)."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.float64)
    if ".bn." in name:
        kind = name.rsplit(".", 1)[1]
        if kind == "weight":
            v = 1 + 0.1 * np.sin(0.53 * i + t)
        elif kind == "bias":
            v = 0.1 * np.sin(0.29 * i + 2 * t)
        elif kind == "running_mean":
            v = 0.1 * np.sin(0.71 * i + 3 * t)
        else:
            v = 1 + 0.25 * (1 + np.sin(0.43 * i + t))
    elif name.endswith("bias"):
        v = 0.05 * np.sin(0.91 * i + 1.7 * t)
    else:
        fan_in = int(np.prod(shape[1:]))
        v = math.sqrt(1.0 / fan_in) * math.sqrt(2.0) * np.sin(0.37 * i + 1.3 * t + 0.5)
        if ".increase." in name:
            v = v * 0.25
    return v.astype(np.float32).reshape(shape)


@torch.no_grad()
def fill_closed_form(model):
    tm = tensor_map(model)
    for t, name in enumerate(param_names(model)):
        x = tm[name]
        x.copy_(torch.from_numpy(closed_form(name, t, tuple(x.shape))))


# ---------------------------------------------------------------- random draws (§4)

def _per_sample(fn, seed, purpose, it, sample0, B, offset, n):
    """(B, n) float32 array: fn(seed, rng_stream(purpose, it, sample0 + b), offset + arange(n))."""
    idx = np.arange(n, dtype=np.uint64) + np.uint64(offset)
    return np.stack([fn(seed, philox.rng_stream(purpose, it, sample0 + b), idx) for b in range(B)])


def dropout_keep(seed, it, sample0, shape, layer_id, p):
    """Keep mask (B, C, h, w) bool: uniform draw (layer_id << 32) + flat (C, h, w) >= p."""
    B = shape[0]
    n = int(np.prod(shape[1:]))
    u = _per_sample(philox.rng_uniform, seed, philox.RNG_DROPOUT, it, sample0, B, layer_id << 32, n)
    return torch.from_numpy(u >= np.float32(p)).reshape(shape)


def dropout(x, p, keep):
    if p == 0:
        return x
    return torch.where(keep, x / float(np.float32(1.0) - np.float32(p)), torch.zeros_like(x))


def reparam_eps(seed, it, sample0, shape, scale_idx):
    B = shape[0]
    n = int(np.prod(shape[1:]))
    e = _per_sample(philox.rng_normal, seed, philox.RNG_REPARAM, it, sample0, B, scale_idx << 32, n)
    return torch.from_numpy(e).reshape(shape)


def latent_eps(seed, it, sample0, shape):
    B = shape[0]
    n = int(np.prod(shape[1:]))
    e = _per_sample(philox.rng_normal, seed, philox.RNG_LATENT, it, sample0, B, 0, n)
    return torch.from_numpy(e).reshape(shape)


def class_weights(seen_mask, unseen_prior):
    """Integer draw weights: 1 for seen, 1 + r for unseen (r must be integral)."""
    r = float(unseen_prior)
    assert r == int(r), "step2.unseen_prior must be integral for integer weights"
    return np.where(np.asarray(seen_mask, bool), 1, 1 + int(r)).astype(np.int64)


def draw_classes(seed, it, sample0, B, h, w, weights):
    """(B, h, w) int64: u = uint_below(sum w) per pixel; first c with cumsum(w)[c] > u."""
    cum = np.cumsum(weights)
    out = np.zeros((B, h * w), np.int64)
    for b in range(B):
        s = philox.rng_stream(philox.RNG_CLASS_DRAW, it, sample0 + b)
        u = philox.rng_uint_below(seed, s, np.arange(h * w, dtype=np.uint64), int(cum[-1]))
        out[b] = np.searchsorted(cum, u.astype(np.int64), side="right")
    return torch.from_numpy(out.reshape(B, h, w))


# ---------------------------------------------------------------- resizes

def nearest_labels(lbl, size):
    """PyTorch mode='nearest' with an output size: src = min(floor(dst * (float)in/out), in-1)."""
    Hin, Win = lbl.shape[-2:]
    def src(out, inn):
        sc = np.float32(inn) / np.float32(out)
        i = np.floor(np.arange(out, dtype=np.float32) * sc).astype(np.int64)
        return np.minimum(i, inn - 1)
    ys, xs = torch.from_numpy(src(size[0], Hin)), torch.from_numpy(src(size[1], Win))
    return lbl[:, ys][:, :, xs]


def bilinear(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# ---------------------------------------------------------------- losses

def gan_loss(kind, logit, target, valid):
    """Mean over valid pixels of the per-pixel GAN loss (hd_gan_loss). logit (B,1,h,w)."""
    s = torch.sigmoid(logit)[:, 0]
    if kind == "l1":
        l = torch.abs(s - target)
    elif kind == "lsgan":
        l = (s - target) ** 2
    else:
        x = logit[:, 0]
        l = target * F.softplus(-x) + (1 - target) * F.softplus(x)
    return l[valid].mean()


def ce_loss(logits, labels):
    """Softmax CE, mean over non-ignored pixels. labels (B,h,w) int64 with 255 = ignore."""
    return F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="mean")


def rows(t, valid_lbl, c):
    """(n_c, D) feature rows of the pixels of class c, raster order (b, y, x)."""
    m = valid_lbl == c  # (B, h, w)
    return t.permute(0, 2, 3, 1)[m]


def mmd_content(fake, real, lbl, sigmas):
    """sqrt(sum over present classes (ascending) of the biased (V-statistic) MMD^2
    mean k(X,X) + mean k(Y,Y) - 2 mean k(X,Y), k(a, b) = sum_s exp(-|a-b|^2 / (2 sigma_s)),
    |a-b|^2 summed directly over channels.

    The kernel is evaluated as sum_s expm1(-d / (2 sigma_s)), i.e. k - S: the three
    means' weights sum to zero, so the constant drops out of MMD^2 exactly, and
    the value no longer cancels ~6 against ~6 (in float32 the plain form loses
    ~4 digits when features are close, as sigmoid features with these sigmas are)."""
    S = fake.new_zeros(())
    for c in sorted(set(int(v) for v in lbl.unique().tolist()) - {IGNORE}):
        X, Y = rows(fake, lbl, c), rows(real, lbl, c)
        def k(a, b):
            d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
            return sum(torch.expm1(-d / (2.0 * s)) for s in sigmas)
        S = S + k(X, X).mean() + k(Y, Y).mean() - 2 * k(X, Y).mean()
    return torch.sqrt(S)


# ---------------------------------------------------------------- forward pieces

def dc_forward(model, x, it, sample0, layer_id, seed):
    dc = model.dc
    t = F.relu(dc.trunk(x))
    p = model.cfg["model.d_dropout"]
    t = dropout(t, p, dropout_keep(seed, it, sample0, tuple(t.shape), layer_id, p) if p > 0 else None)
    return dc.gan(t), dc.cls(t)


def gen_forward(model, e, l, it, sample0, seed):
    g, cfg = model.gen, model.cfg
    a = torch.cat([e, l], 1)
    for i in range(g.n):
        a = F.leaky_relu(getattr(g, "fc%d" % (i + 1))(a), cfg["model.leaky_slope"])
        p = cfg["model.gen_dropouts"][i]
        a = dropout(a, p, dropout_keep(seed, it, sample0, tuple(a.shape), i + 1, p) if p > 0 else None)
    return torch.sigmoid(getattr(g, "fc%d" % (g.n + 1))(a))


def encode(model, img, it, sample0, scale_idx, seed, training=True, rec=None):
    h = model.aspp(model.backbone(img, rec))
    eps = None
    if training:
        eps = reparam_eps(seed, it, sample0, tuple(h.shape), scale_idx).to(h.dtype)
    out = model.cm(h, eps)
    out["h"] = h
    if eps is not None:
        out["eps"] = eps
    return out


def embed_labels(emb, lbl):
    """e_y (B, E, h, w): embedding row of each label, zeros where ignored."""
    valid = lbl != IGNORE
    idx = torch.where(valid, lbl, torch.zeros_like(lbl))
    e = emb[idx]  # (B, h, w, E)
    e = e * valid[..., None].to(e.dtype)
    return e.permute(0, 3, 1, 2).contiguous()


def step1_forward(model, img, labels, emb, it, seed, sample0=0):
    """One step1 forward (§3). Returns (losses dict of scalar tensors, outputs dict)."""
    cfg = model.cfg
    H, W = img.shape[-2:]
    scales = cfg["model.msc_scales"] if cfg["model.msc"] else []
    out = {}
    rec = {}
    e0 = encode(model, img, it, sample0, 0, seed, rec=rec)
    for k, v in rec.items():
        out["backbone/" + k] = v
    out["backbone/h_0"] = e0["h"]
    for k in ("c1", "c2", "c3", "s", "p", "mu", "logvar", "eps", "z", "x"):
        out["cm/" + k] = e0[k]
    x = e0["x"]
    fh, fw = x.shape[-2:]
    lbl = nearest_labels(labels, (fh, fw))
    valid = lbl != IGNORE
    out["labels/lbl_0"] = lbl
    # multi-scale outputs for CE: (x_s at own size, labels) per scale, then x_max
    msc = []
    if scales:
        xmax = x
        for j, s in enumerate(scales, start=1):
            size = (int(math.floor(H * s)), int(math.floor(W * s)))
            es = encode(model, bilinear(img, size), it, sample0, j, seed)
            xs = es["x"]
            out["msc/input_%d" % j] = bilinear(img, size)
            out["backbone/h_%d" % j] = es["h"]
            out["cm/x_%d" % j] = xs
            up = bilinear(xs, (fh, fw))
            out["msc/x_up_%d" % j] = up
            xmax = torch.maximum(xmax, up)
            ls = nearest_labels(labels, tuple(xs.shape[-2:]))
            out["labels/lbl_%d" % j] = ls
            msc.append((xs, ls))
        out["msc/x_max"] = xmax
        msc.append((xmax, lbl))

    # D/C calls: 100 on x_1.0, 101 on fake, 102 + j on MSC output j
    gan_real, cls_real = dc_forward(model, x, it, sample0, 100, seed)
    out["dc/real/gan"], out["dc/real/cls"] = gan_real, cls_real
    ces = [ce_loss(cls_real, lbl)]
    for j, (xs, ls) in enumerate(msc):
        g, c = dc_forward(model, xs, it, sample0, 102 + j, seed)
        out["dc/msc%d/gan" % j], out["dc/msc%d/cls" % j] = g, c
        ces.append(ce_loss(c, ls))
    ce_msc = sum(ces) / len(ces)

    ey = embed_labels(emb, lbl)
    fake = gen_forward(model, ey, e0["z"].detach(), it, sample0, seed)
    out["gen/e_y"], out["gen/fake"] = ey, fake
    gan_fake, cls_fake = dc_forward(model, fake, it, sample0, 101, seed)
    out["dc/fake/gan"], out["dc/fake/cls"] = gan_fake, cls_fake

    kind = cfg["loss.gan"]
    mu, lv = e0["mu"], e0["logvar"]
    kl_el = -0.5 * (1 + lv - mu ** 2 - torch.exp(lv))
    kl = kl_el.permute(0, 2, 3, 1)[valid].mean()
    L = {}
    L["d_gan_real"] = gan_loss(kind, gan_real, 1.0, valid)
    L["d_gan_fake"] = gan_loss(kind, gan_fake, 0.0, valid)
    L["d_ce_real"] = ce_msc
    L["d_ce_fake"] = ce_loss(cls_fake, lbl)
    L["e_ce"] = ce_msc
    L["kl"] = kl
    L["g_gan"] = gan_loss(kind, gan_fake, 1.0, valid)
    if cfg["loss.content"] == "mmd":
        L["g_content"] = mmd_content(fake, x, lbl, cfg["loss.mmd_sigmas"])
    else:
        L["g_content"] = ((fake - x) ** 2).permute(0, 2, 3, 1)[valid].mean()
    L["L_D"] = (L["d_gan_real"] + L["d_gan_fake"] + cfg["loss.real_ce_weight"] * L["d_ce_real"]
                + cfg["loss.fake_ce_weight"] * L["d_ce_fake"])
    L["L_E"] = cfg["loss.backbone_ce_weight"] * L["e_ce"] + cfg["loss.kl_weight"] * L["kl"]
    L["L_G"] = cfg["loss.gan_weight"] * L["g_gan"] + cfg["loss.content_weight"] * L["g_content"]
    return L, out


def step2_forward(model, emb, seen_mask, B, h, w, it, seed, sample0=0):
    cfg = model.cfg
    D = cfg["model.feature_dim"]
    y = draw_classes(seed, it, sample0, B, h, w, class_weights(seen_mask, cfg["step2.unseen_prior"]))
    eps = latent_eps(seed, it, sample0, (B, D, h, w)).to(emb.dtype)
    fake = gen_forward(model, embed_labels(emb, y), eps, it, sample0, seed)
    _, cls = dc_forward(model, fake, it, sample0, 100, seed)
    return ce_loss(cls, y), dict(y=y, eps=eps, fake=fake, cls=cls)


# ---------------------------------------------------------------- optimizers and schedules

def lr_poly(base, it, max_it, power):
    return 0.0 if it >= max_it else base * (1.0 - it / max_it) ** power


def lr_step(base, it, start, every, gamma):
    k = 0 if it < start else 1 + (it - start) // every
    return base * gamma ** k


class Optimizers:
    """E+CM SGD (groups by region), D Adam over dc.*, G Adam over gen.* (PyTorch semantics)."""

    def __init__(self, model):
        self.model = model
        cfg = model.cfg
        self.names = param_names(model)
        self.tm = tensor_map(model)
        self.groups = {  # region -> (optimizer, lr multiplier, weight decay)
            "backbone": ("E", 1.0, cfg["optim.weight_decay"]),
            "cm": ("E", cfg["optim.lr_mult_cm"], cfg["optim.weight_decay"]),
            "aspp_w": ("E", cfg["optim.lr_mult_aspp_weight"], cfg["optim.weight_decay"]),
            "aspp_b": ("E", cfg["optim.lr_mult_aspp_bias"], 0.0),
            "dc": ("D", 1.0, cfg["optim.d_weight_decay"]),
            "gen": ("G", 1.0, cfg["optim.g_weight_decay"]),
        }
        self.state = {n: [torch.zeros_like(self.tm[n]), torch.zeros_like(self.tm[n])]
                      for n in self.names if region(n) != "frozen"}
        self.steps = {"D": 0, "G": 0}

    def members(self, which):
        return [n for n in self.names if region(n) != "frozen" and self.groups[region(n)][0] == which]

    @torch.no_grad()
    def sgd_step(self, grads, base_lr):
        mom = self.model.cfg["optim.momentum"]
        for n in self.members("E"):
            _, mult, wd = self.groups[region(n)]
            p, buf = self.tm[n], self.state[n][0]
            g = grads[n] + wd * p if wd else grads[n].clone()
            buf.mul_(mom).add_(g)
            p.add_(buf, alpha=-(base_lr * mult))

    @torch.no_grad()
    def adam_step(self, which, grads, lr):
        cfg = self.model.cfg
        b1, b2 = cfg["optim.adam_beta1"], cfg["optim.adam_beta2"]
        self.steps[which] += 1
        t = self.steps[which]
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        for n in self.members(which):
            _, _, wd = self.groups[region(n)]
            p, m, v = self.tm[n], self.state[n][0], self.state[n][1]
            g = grads[n] + wd * p if wd else grads[n].clone()
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(bc2)).add_(ADAM_EPS)
            p.addcdiv_(m, denom, value=-(lr / bc1))


def step1_lrs(cfg, it):
    return dict(
        lr_e=lr_poly(cfg["optim.lr"], it, cfg["schedule.step1_iters"], cfg["optim.poly_power"]),
        lr_d=lr_step(cfg["optim.d_lr"], it, cfg["optim.d_decay_start"], cfg["optim.d_decay_every"],
                     cfg["optim.decay_gamma"]),
        lr_g=lr_step(cfg["optim.g_lr"], it, cfg["optim.g_decay_start"], cfg["optim.g_decay_every"],
                     cfg["optim.decay_gamma"]))


def step2_lrs(cfg, it):
    """Fixture choice (the contract is silent): step2 runs inside the mixed stage, so D and G
    use optim.mixed_lr with the mixed step decay at the global iteration."""
    lr = lr_step(cfg["optim.mixed_lr"], it, cfg["optim.mixed_decay_start"], cfg["optim.mixed_decay_every"],
                 cfg["optim.mixed_decay_gamma"])
    return dict(lr_d=lr, lr_g=lr)


def step1(model, opt, img, labels, emb, it, seed, sample0=0):
    """Forward, the three gradient sets, then D Adam, E+CM SGD, G Adam. Returns (losses, grads, outputs, lrs)."""
    L, out = step1_forward(model, img, labels, emb, it, seed, sample0)
    tm = opt.tm
    grads = {}
    for loss, which in (("L_D", "D"), ("L_E", "E"), ("L_G", "G")):
        names = opt.members(which)
        gs = torch.autograd.grad(L[loss], [tm[n] for n in names], retain_graph=True, allow_unused=True)
        for n, g in zip(names, gs):
            grads[n] = torch.zeros_like(tm[n]) if g is None else g
    lrs = step1_lrs(model.cfg, it)
    opt.adam_step("D", grads, lrs["lr_d"])
    opt.sgd_step(grads, lrs["lr_e"])
    opt.adam_step("G", grads, lrs["lr_g"])
    return {k: float(v.detach()) for k, v in L.items()}, grads, out, lrs


def step2(model, opt, emb, seen_mask, B, h, w, it, seed, sample0=0):
    """C (whole D range: the gan head gets a zero gradient) and G Adam on the step2 CE."""
    cfg = model.cfg
    ce, out = step2_forward(model, emb, seen_mask, B, h, w, it, seed, sample0)
    tm = opt.tm
    dn, gn = opt.members("D"), opt.members("G")
    gs = torch.autograd.grad(ce, [tm[n] for n in dn + gn], allow_unused=True)
    grads = {}
    for n, g in zip(dn + gn, gs):
        g = torch.zeros_like(tm[n]) if g is None else g
        w_ = cfg["step2.classifier_ce_weight"] if n in dn else cfg["step2.generator_ce_weight"]
        grads[n] = g * w_
    lrs = step2_lrs(cfg, it)
    opt.adam_step("D", grads, lrs["lr_d"])
    if cfg["step2.generator_ce_weight"] > 0:
        opt.adam_step("G", grads, lrs["lr_g"])
    return {"ce": float(ce.detach())}, grads, out, lrs


# ---------------------------------------------------------------- self-test

def tiny_config():
    """The tiny fixture setting (make_fixtures.py uses the same)."""
    return make_config(
        run__seed=7, model__backbone="tiny", model__tiny_width=8, model__feature_dim=16,
        model__latent_dim=16, model__embedding_dim=12, model__aspp_dilations=[1, 2],
        model__cm_channels=8, model__cm_dilations=[1, 2, 5], model__msc=True,
        model__msc_scales=[0.5, 0.75], model__gen_widths=[32, 32], model__gen_dropouts=[0.1, 0.1],
        model__leaky_slope=0.2, model__d_hidden=32, model__d_dropout=0.5,
        loss__gan="l1", loss__content="mmd", loss__content_weight=50.0, loss__kl_weight=10.0,
        loss__backbone_ce_weight=0.5, loss__real_ce_weight=1.0, loss__fake_ce_weight=0.5,
        loss__gan_weight=1.0,
        optim__lr=0.01, optim__momentum=0.9, optim__weight_decay=0.0005, optim__poly_power=0.9,
        optim__d_lr=0.01, optim__d_weight_decay=0.0005, optim__g_lr=0.002, optim__g_weight_decay=0.001,
        optim__decay_gamma=0.5, optim__d_decay_start=1, optim__d_decay_every=1,
        optim__g_decay_start=2, optim__g_decay_every=1,
        optim__mixed_lr=0.005, optim__mixed_decay_gamma=0.3, optim__mixed_decay_start=1000,
        optim__mixed_decay_every=1000,
        schedule__step1_iters=10,
        step2__unseen_prior=3.0, step2__classifier_ce_weight=1.0, step2__generator_ce_weight=0.5)


def tiny_inputs(B=2, H=33, W=33, K=8, E=12, n_seen=6):
    """Closed-form inputs of the tiny fixture (documented in README.md)."""
    b, c, y, x = np.meshgrid(np.arange(B), np.arange(3), np.arange(H), np.arange(W), indexing="ij")
    img = (np.sin(0.31 * x + 0.17 * y * (c + 1) + 1.3 * b + 0.7 * c)
           + 0.5 * np.cos(0.05 * x * y + c)).astype(np.float32)
    b, y, x = np.meshgrid(np.arange(B), np.arange(H), np.arange(W), indexing="ij")
    lbl = (x // 7 + 2 * (y // 9) + 3 * b) % n_seen
    lbl = np.where((x + y + 4 * b) % 13 < 2, IGNORE, lbl)  # diagonal ignore stripes
    lbl = np.where((y < 4) & (x > 20), IGNORE, lbl)         # an ignored corner
    k, j = np.meshgrid(np.arange(K), np.arange(E), indexing="ij")
    emb = np.sin(0.7 * k * j + 0.3 * j + k) + 0.2 * np.cos(1.9 * k + 0.5 * j)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    seen = (np.arange(K) < n_seen).astype(np.uint8)
    return img, lbl.astype(np.uint8), emb.astype(np.float32), seen


def _fd_check(name, loss_fn, tensor, tol=1e-5):
    """Central differences (h = 1e-6, float64) at the entry of largest |gradient|
    and at the entry of median |gradient| among the nonzero ones."""
    g_all = torch.autograd.grad(loss_fn(), [tensor])[0].reshape(-1)
    a = g_all.abs()
    nz = torch.nonzero(a > 0).reshape(-1)
    assert nz.numel() > 0, name + ": gradient is identically zero"
    med = nz[torch.argsort(a[nz])[nz.numel() // 2]]
    ok = True
    for flat in sorted({int(torch.argmax(a)), int(med)}):
        with torch.no_grad():
            v = tensor.view(-1)
            old = float(v[flat])
            hstep = 1e-6
            v[flat] = old + hstep; lp = float(loss_fn())
            v[flat] = old - hstep; lm = float(loss_fn())
            v[flat] = old
        fd = (lp - lm) / (2 * hstep)
        g = float(g_all[flat])
        err = abs(fd - g) / max(1e-8, abs(fd), abs(g))
        ok &= abs(fd - g) <= tol * abs(g) + 1e-8  # 1e-8: the differences' roundoff (~1e-16 L / h)
        print("  %-44s [%6d] analytic % .8e  fd % .8e  rel %.1e" % (name, flat, g, fd, err))
    return ok


def selftest():
    torch.set_default_dtype(torch.float64)
    cfg = tiny_config()
    img, lbl, emb, seen = tiny_inputs()
    model = CaGNet(cfg, len(seen)).double()
    fill_closed_form(model)
    tm = tensor_map(model)
    img_t = torch.from_numpy(img).double()
    lbl_t = torch.from_numpy(lbl.astype(np.int64))
    emb_t = torch.from_numpy(emb).double()
    it, seed = 1, cfg["run.seed"]
    ok = True
    print("finite differences, float64, step1 forward of the tiny fixture (msc on, mmd, l1):")
    checks = [("L_E", "backbone.layer3.block1.conv3x3.conv.weight"), ("L_E", "cm.mu.weight"),
              ("L_E", "aspp.c1.bias"), ("L_E", "cm.selector.weight"),
              ("L_D", "dc.trunk.weight"), ("L_D", "dc.cls.bias"),
              ("L_G", "gen.fc1.weight"), ("L_G", "gen.fc3.bias")]
    for loss, name in checks:
        t = tm[name]
        ok &= _fd_check(loss + " / " + name, lambda: step1_forward(model, img_t, lbl_t, emb_t, it, seed)[0][loss], t)
    for kind, content in (("lsgan", "l2"), ("bce", "mmd")):
        model.cfg = dict(cfg, **{"loss.gan": kind, "loss.content": content})
        for loss, name in (("L_G", "gen.fc2.weight"), ("L_D", "dc.gan.weight")):
            ok &= _fd_check("%s/%s %s / %s" % (kind, content, loss, name),
                            lambda: step1_forward(model, img_t, lbl_t, emb_t, it, seed)[0][loss], tm[name])
    model.cfg = cfg
    # the expm1 form of the MMD kernel equals the plain exp form
    x = torch.from_numpy(np.sin(np.arange(800.0)).reshape(2, 16, 5, 5) * 0.3 + 0.5)
    y = x.flip(-1) * 0.9 + 0.05
    l5 = nearest_labels(lbl_t, (5, 5))
    sig = cfg["loss.mmd_sigmas"]
    plain = 0.0
    for c in sorted(set(l5.unique().tolist()) - {IGNORE}):
        X, Y = rows(x, l5, c), rows(y, l5, c)
        kk = lambda a, b: sum(torch.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2.0 * s)) for s in sig)  # noqa: E731
        plain += float(kk(X, X).mean() + kk(Y, Y).mean() - 2 * kk(X, Y).mean())
    mine = float(mmd_content(x, y, l5, sig)) ** 2
    print("  MMD^2 expm1 form %.15g, exp form %.15g" % (mine, plain))
    ok &= abs(mine - plain) < 1e-12 * max(1.0, abs(plain)) + 1e-9 * abs(plain)
    # nearest label resize = PyTorch's mode='nearest' with an output size
    for size in ((5, 5), (3, 3), (4, 4), (7, 11), (33, 33)):
        t = F.interpolate(lbl_t[:, None].double(), size=size, mode="nearest")[:, 0].long()
        ok &= bool(torch.equal(t, nearest_labels(lbl_t, size)))
    print("finite differences, step2 CE:")
    ok &= _fd_check("ce / gen.fc2.weight",
                    lambda: step2_forward(model, emb_t, seen, 2, 5, 5, 4, seed)[0], tm["gen.fc2.weight"])
    ok &= _fd_check("ce / dc.trunk.bias",
                    lambda: step2_forward(model, emb_t, seen, 2, 5, 5, 4, seed)[0], tm["dc.trunk.bias"])
    torch.set_default_dtype(torch.float32)
    print("reference selftest:", "OK" if ok else "FAILED")
    return ok


if __name__ == "__main__":
    if "--selftest" in sys.argv:
        ok = philox.selftest()
        ok &= selftest()
        sys.exit(0 if ok else 1)
    print(__doc__)
