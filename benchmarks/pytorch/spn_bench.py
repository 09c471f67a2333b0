"""PyTorch reference timings for `mcir-host bench` (the same shapes): EDSR-light (EDSR-M: 64 features, 16 blocks,
BasicSR's EDSR) x2/x3/x4, a batch of B random LR patches of S x S, Adam (1e-4, betas 0.9/0.99); VGG16 features to
relu3_3 (random weights: timing only), K negative models. One round times three full training steps:
  plain        L1
  spn_authors  L1 + SPN as the authors' code computes it (phi(f(x)) recomputed for every negative)
  spn_batched  L1 + SPN with phi(f(x)) once and all K negative outputs in one batched no-grad VGG pass
  plain_cl, spn_batched_cl
               the same two on copies of the networks and data in torch.channels_last (faster on some CPUs, slower
               on others: the comparison takes PyTorch's faster one)

Standalone:  python3 spn_bench.py [--scale 4 --batch 4 --lr-size 48 --negatives 4 --threads 2 --rounds 5]
             prints the medians (after --warmup steps of each kind).
--serve:     the line protocol `mcir-host bench --compare-pytorch` drives, so that rounds alternate between the two
             sides: after the warm-up one JSON line {"ready": true, "torch": ..., "python": ..., "threads": ...}; then
             for each line "round" on stdin one JSON line {"plain": s, "spn_authors": s, "spn_batched": s, "plain_cl": s, "spn_batched_cl": s}
             (seconds);
             "quit" or end of input stops.
Origin: the project's reference measurement (README, Benchmark), made shape-configurable."""
import argparse, copy, json, platform, statistics, sys, time

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--model", default="edsr-light", choices=["edsr-light"])
ap.add_argument("--scale", type=int, default=4, choices=[2, 3, 4])
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--lr-size", type=int, default=48)
ap.add_argument("--negatives", type=int, default=4)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--serve", action="store_true")
a = ap.parse_args()

import torch, torch.nn as nn, torch.nn.functional as F  # noqa: E402 (argument errors first, without torch)
torch.set_num_threads(a.threads)

class RB(nn.Module):
    def __init__(s, c): super().__init__(); s.conv1 = nn.Conv2d(c, c, 3, 1, 1); s.conv2 = nn.Conv2d(c, c, 3, 1, 1)
    def forward(s, x): return x + s.conv2(F.relu(s.conv1(x)))
class EDSR(nn.Module):
    def __init__(s, c=64, nb=16, up=4):
        super().__init__(); s.conv_first = nn.Conv2d(3, c, 3, 1, 1); s.body = nn.Sequential(*[RB(c) for _ in range(nb)])
        s.conv_after_body = nn.Conv2d(c, c, 3, 1, 1)
        ups = []
        if up == 3: ups += [nn.Conv2d(c, 9 * c, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            for _ in range({2: 1, 4: 2}[up]): ups += [nn.Conv2d(c, 4 * c, 3, 1, 1), nn.PixelShuffle(2)]
        s.upsample = nn.Sequential(*ups); s.conv_last = nn.Conv2d(c, 3, 3, 1, 1)
        s.register_buffer("mean", torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1))
    def forward(s, x):
        x = (x - s.mean) * 255.; x = s.conv_first(x); r = s.conv_after_body(s.body(x)) + x
        return s.conv_last(s.upsample(r)) / 255. + s.mean
cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256]
layers, c = [], 3
for v in cfg:
    if v == "M": layers.append(nn.MaxPool2d(2))
    else: layers += [nn.Conv2d(c, v, 3, 1, 1), nn.ReLU()]; c = v
vgg = nn.Sequential(*layers).eval()
for p in vgg.parameters(): p.requires_grad_(False)
taps = {3: 0.2, 8: 0.3, 15: 0.5}
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1); std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
def feats(x, vgg=vgg):
    x = (x - mean) / std; out = {}
    for i, m in enumerate(vgg):
        x = m(x)
        if i in taps: out[i] = x
        if i == 15: break
    return out
torch.manual_seed(0)
net = EDSR(up=a.scale); negs = [EDSR(up=a.scale).eval() for _ in range(a.negatives)]
for n in negs:
    for p in n.parameters(): p.requires_grad_(False)
opt = torch.optim.Adam(net.parameters(), 1e-4, betas=(0.9, 0.99))
hr = a.lr_size * a.scale
lq = torch.rand(a.batch, 3, a.lr_size, a.lr_size); gt = torch.rand(a.batch, 3, hr, hr); lam = 1e-3
def plain(net=net, opt=opt, lq=lq, gt=gt):
    opt.zero_grad(); o = net(lq); l = F.l1_loss(o, gt); l.backward(); opt.step()
def spn_authors():
    opt.zero_grad(); o = net(lq); l = F.l1_loss(o, gt); neg = 0
    for n in negs:
        with torch.no_grad(): no = n(lq)
        fo = feats(o)
        with torch.no_grad(): fn = feats(no)
        neg = neg + lam * sum(w * F.l1_loss(fo[i], fn[i]) for i, w in taps.items())
    (l - neg / len(negs)).backward(); opt.step()
def spn_batched(net=net, negs=negs, vgg=vgg, opt=opt, lq=lq, gt=gt):
    opt.zero_grad(); o = net(lq); l = F.l1_loss(o, gt); fo = feats(o, vgg)
    with torch.no_grad():
        no = torch.cat([n(lq) for n in negs]); fn = feats(no, vgg)
    neg = 0
    for i, w in taps.items():
        a_ = fo[i].unsqueeze(0); b = fn[i].view(len(negs), *fo[i].shape)
        neg = neg + w * (a_ - b).abs().mean()
    (l - lam * neg).backward(); opt.step()
# channels-last copies (same weights), with their own optimizer state
cl = torch.channels_last
net_cl = copy.deepcopy(net).to(memory_format=cl); negs_cl = [copy.deepcopy(n).to(memory_format=cl) for n in negs]
vgg_cl = copy.deepcopy(vgg).to(memory_format=cl)
opt_cl = torch.optim.Adam(net_cl.parameters(), 1e-4, betas=(0.9, 0.99))
lq_cl = lq.contiguous(memory_format=cl); gt_cl = gt.contiguous(memory_format=cl)
def plain_cl(): plain(net_cl, opt_cl, lq_cl, gt_cl)
def spn_batched_cl(): spn_batched(net_cl, negs_cl, vgg_cl, opt_cl, lq_cl, gt_cl)
fns = {"plain": plain, "spn_authors": spn_authors, "spn_batched": spn_batched, "plain_cl": plain_cl, "spn_batched_cl": spn_batched_cl}

def one_round():
    t = {}
    for k, f in fns.items():
        s = time.perf_counter(); f(); t[k] = time.perf_counter() - s
    return t

for _ in range(a.warmup):
    for f in fns.values(): f()
if a.serve:
    print(json.dumps({"ready": True, "torch": torch.__version__, "python": platform.python_version(),
                      "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit": break
        if cmd != "round":
            print(json.dumps({"error": f"unknown command {cmd!r}; expected 'round' or 'quit'"}), flush=True); continue
        print(json.dumps(one_round()), flush=True)
else:
    t = {k: [] for k in fns}
    for _ in range(a.rounds):
        for k, v in one_round().items(): t[k].append(v)
    m = {k: statistics.median(v) for k, v in t.items()}
    print(f"pytorch {torch.__version__} threads {torch.get_num_threads()}: plain {m['plain']:.3f} s, "
          f"spn_authors {m['spn_authors']:.3f} s ({m['spn_authors']/m['plain']:.2f}x), spn_batched {m['spn_batched']:.3f} s ({m['spn_batched']/m['plain']:.2f}x); "
          f"channels_last: plain {m['plain_cl']:.3f} s, spn_batched {m['spn_batched_cl']:.3f} s")
