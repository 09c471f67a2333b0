"""Reference outputs of NAFNet with TLC local pooling (NAFNetLocal) for the nafnet_small fixture weights.

Written for this repository (no code of the NAFNet repository is copied): a functional NAFNet forward over the
fixture's state dict, in which every simplified-channel-attention pool is either the global mean (plain NAFNet) or the
local mean that NAFNetLocal (megvii-research/NAFNet @ 2b4af71, basicsr/models/archs/local_arch.py + NAFNet_arch.py)
uses at test time:

* base_size = (int(1.5 * H_train), int(1.5 * W_train)) for train_size = (N, C, H_train, W_train);
* each pool's kernel is fixed by one forward pass on a train_size input: kernel = (h * base_h // H_train,
  w * base_w // W_train), where (h, w) is the feature map that pool sees for that input (the input is first zero-padded
  to a multiple of 2 ** levels, as NAFNet does);
* on a feature map of (h, w): global mean when kernel_h >= h and kernel_w >= w; otherwise the mean over every
  k1 x k2 window (k1 = min(h, kernel_h), k2 = min(w, kernel_w), stride 1, no padding), replicate-padded back to (h, w)
  with ((w - w') // 2, (w - w' + 1) // 2) columns left/right and ((h - h') // 2, (h - h' + 1) // 2) rows top/bottom
  (fast_imp=False).

The window means are computed here with F.avg_pool2d (the original uses a summed-area table; the port under test uses a
summed-area table too, so the two are independent computations of the same numbers).

Run from this folder: /usr/bin/python3 make_reference.py  (torch 1.13, CPU, float32, 1 thread). It first checks the plain
forward against ../nafnet_small/output.npy and output_pad.npy, then writes the files listed in CASES and prints their
statistics.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "nafnet_small")
LEVELS = 4  # enc_blk_nums = dec_blk_nums = [1, 1, 1, 1], middle_blk_num = 1, width 8


def layer_norm_2d(x, w, b, eps=1e-6):
    mu = x.mean(1, keepdim=True)
    var = (x - mu).pow(2).mean(1, keepdim=True)
    y = (x - mu) / (var + eps).sqrt()
    return w.view(1, -1, 1, 1) * y + b.view(1, -1, 1, 1)


def conv(sd, name, x, **kw):
    return F.conv2d(x, sd[name + ".weight"], sd.get(name + ".bias"), **kw)


def local_mean(x, kernel):
    """NAFNetLocal's test-time pool (fast_imp=False) with a fixed kernel (kh, kw); kernel None = global mean."""
    h, w = x.shape[2:]
    if kernel is None or (kernel[0] >= h and kernel[1] >= w):
        return x.mean((2, 3), keepdim=True)
    k1, k2 = min(h, kernel[0]), min(w, kernel[1])
    out = F.avg_pool2d(x.double(), (k1, k2), stride=1).float()
    oh, ow = out.shape[2:]
    pad = ((w - ow) // 2, (w - ow + 1) // 2, (h - oh) // 2, (h - oh + 1) // 2)
    return F.pad(out, pad, mode="replicate")


def block(sd, p, x, pool):
    inp = x
    x = layer_norm_2d(x, sd[p + "norm1.weight"], sd[p + "norm1.bias"])
    x = conv(sd, p + "conv1", x)
    x = conv(sd, p + "conv2", x, padding=1, groups=x.shape[1])
    a, b = x.chunk(2, dim=1)
    x = a * b
    x = x * conv(sd, p + "sca.1", pool(x))
    x = conv(sd, p + "conv3", x)
    y = inp + x * sd[p + "beta"]
    x = conv(sd, p + "conv4", layer_norm_2d(y, sd[p + "norm2.weight"], sd[p + "norm2.bias"]))
    a, b = x.chunk(2, dim=1)
    x = conv(sd, p + "conv5", a * b)
    return y + x * sd[p + "gamma"]


def nafnet(sd, inp, pool_for):
    """pool_for(block_prefix) -> pool function. Returns the output and the feature-map size each pool saw."""
    seen = {}

    def run(prefix, x):
        seen[prefix] = tuple(x.shape[2:])
        return block(sd, prefix, x, pool_for(prefix))

    H, W = inp.shape[2:]
    m = 2 ** LEVELS
    x0 = F.pad(inp, (0, (m - W % m) % m, 0, (m - H % m) % m))
    x = conv(sd, "intro", x0, padding=1)
    skips = []
    for i in range(LEVELS):
        x = run(f"encoders.{i}.0.", x)
        skips.append(x)
        x = conv(sd, f"downs.{i}", x, stride=2)
    x = run("middle_blks.0.", x)
    for i in range(LEVELS):
        x = F.pixel_shuffle(conv(sd, f"ups.{i}.0", x), 2)
        x = x + skips[LEVELS - 1 - i]
        x = run(f"decoders.{i}.0.", x)
    x = conv(sd, "ending", x, padding=1) + x0
    return x[:, :, :H, :W], seen


def kernels_for(sd, train_size):
    """Each pool's kernel as NAFNetLocal fixes it: one pass on a train_size input, kernel = size * base // train."""
    _, c, th, tw = train_size
    base = (int(th * 1.5), int(tw * 1.5))
    _, seen = nafnet(sd, torch.zeros(train_size), lambda p: local_mean_global)
    return {p: (h * base[0] // th, w * base[1] // tw) for p, (h, w) in seen.items()}


def local_mean_global(x):
    return x.mean((2, 3), keepdim=True)


CASES = [
    # output file, input (file or seed), input shape, train_size
    ("output_local_t32.npy", "input_local.npy", 1002, (1, 3, 64, 80), (1, 3, 32, 32)),
    ("output_pad_local_t24x40.npy", "../nafnet_small/input_pad.npy", None, (1, 3, 50, 70), (1, 3, 24, 40)),
]


def main():
    torch.set_num_threads(1)
    sd = torch.load(os.path.join(FIXTURE, "state_dict.pth"), map_location="cpu")
    with torch.no_grad():
        for i, o in (("input.npy", "output.npy"), ("input_pad.npy", "output_pad.npy")):
            x = torch.from_numpy(np.load(os.path.join(FIXTURE, i)))
            y, _ = nafnet(sd, x, lambda p: local_mean_global)
            d = (y - torch.from_numpy(np.load(os.path.join(FIXTURE, o)))).abs().max().item()
            assert d < 1e-5, (o, d)
            print(f"plain forward vs {o}: max |diff| = {d:.2e}")

        summary = {}
        for out_file, in_file, seed, shape, train_size in CASES:
            if seed is not None:
                x = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
                np.save(os.path.join(HERE, in_file), x.numpy())
            else:
                x = torch.from_numpy(np.load(os.path.join(HERE, in_file)))
                assert tuple(x.shape) == shape
            kernels = kernels_for(sd, train_size)
            y, seen = nafnet(sd, x, lambda p: (lambda t, k=kernels[p]: local_mean(t, k)))
            g, _ = nafnet(sd, x, lambda p: local_mean_global)
            np.save(os.path.join(HERE, out_file), y.numpy())
            local = [p for p in seen if not (kernels[p][0] >= seen[p][0] and kernels[p][1] >= seen[p][1])]
            summary[out_file] = {
                "input": in_file, "input_seed": seed, "input_shape": list(shape), "train_size": list(train_size),
                "kernels": {p.rstrip("."): list(k) for p, k in kernels.items()},
                "feature_maps": {p.rstrip("."): list(s) for p, s in seen.items()},
                "local_pools": [p.rstrip(".") for p in local],
                "min": y.min().item(), "max": y.max().item(), "mean": y.double().mean().item(),
                "max_abs_diff_to_global_pooling": (y - g).abs().max().item(),
            }
            print(out_file, json.dumps(summary[out_file]))
        with open(os.path.join(HERE, "reference.json"), "w") as f:
            json.dump({"torch": torch.__version__, "cases": summary}, f, indent=1)


if __name__ == "__main__":
    main()
