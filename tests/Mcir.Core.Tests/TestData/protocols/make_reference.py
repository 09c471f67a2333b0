"""Reference numbers for the evaluation protocols (tests/Mcir.Core.Tests/Metrics/EvaluationProtocolTests.cs).

Usage: /usr/bin/python3 make_reference.py REPO_ROOT OUT_DIR   (torch 1.13, numpy, Pillow; no OpenCV, SciPy, skimage,
pytorch_msssim or MATLAB on this machine, so the few functions they provide are re-implemented below with the
semantics of the originals, each named where it is used).

Every protocol is written the way its official evaluation code computes, read from:
  basicsr, sr    XPixelGroup/BasicSR basicsr/metrics/psnr_ssim.py, metric_util.py (to_y_channel), color_util.py
  ffa-net        zhilin007/FFA-Net net/metrics.py (psnr, ssim)
  dehazeformer   IDKiro/DehazeFormer test.py; VainF/pytorch-msssim pytorch_msssim/ssim.py (ssim, _ssim,
                 gaussian_filter, _fspecial_gauss_1d)
  idt            swz30/Restormer Deraining/evaluate_PSNR_SSIM.m (compute_psnr, compute_ssim, SSIM_index) with
                 MATLAB rgb2ycbcr (uint8 input), fspecial('gaussian'), filter2(..., 'valid'), mean2
  nafnet         megvii-research/NAFNet basicsr/metrics/psnr_ssim.py (calculate_psnr, calculate_ssim ssim3d=True)
"official" numbers run the code's own dtype (float32 tensors and float32 Gaussian windows where the original uses
torch); "*_f64" numbers run the same arithmetic in float64 (windows included) from the same float32/uint8 inputs (what
the C# port computes), so the C# tests can check the algorithm tightly and the official value with a float32 tolerance.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

torch.set_num_threads(1)
repo, out_dir = sys.argv[1], sys.argv[2]
os.makedirs(out_dir, exist_ok=True)


# ---------------------------------------------------------------------------------------------------------- inputs
def read_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def tensor2img_u8(x):
    """BasicSR tensor2img(min_max=(0,1)) / skimage img_as_ubyte: clamp, x255 in float32, round half to even."""
    x = np.clip(x.astype(np.float32), 0, 1)
    return np.round(x * np.float32(255.0)).astype(np.uint8)


def make_cases():
    cases = {}
    g = torch.Generator().manual_seed(2024)
    chelsea = read_rgb(os.path.join(repo, "data/quickstart/test/chelsea.png"))
    astronaut = read_rgb(os.path.join(repo, "data/quickstart/train/astronaut.png"))
    for name, gt in [("chelsea_48x64", chelsea[120:168, 200:264]), ("astronaut_389x401", astronaut[60:449, 50:451])]:
        gt = np.ascontiguousarray(gt)
        noise = torch.randn(gt.shape, generator=g).numpy()
        out = (gt.astype(np.float32) / np.float32(255.0)) * np.float32(0.9) + np.float32(0.07) + np.float32(0.05) * noise
        cases[name] = (gt, out.astype(np.float32))
    # Nearly black: the restored 8-bit image has maximum 1 (NAFNet then uses peak 1), the GT values 0..2.
    gt = torch.randint(0, 3, (16, 20, 3), generator=g).numpy().astype(np.uint8)
    out = (torch.rand((16, 20, 3), generator=g).numpy() * np.float32(0.0075) - np.float32(0.002)).astype(np.float32)
    cases["dark_16x20"] = (gt, out)
    return cases


# --------------------------------------------------------------------------------------------- basicsr / sr (numpy)
def cv2_gaussian_kernel(n, sigma):
    """cv2.getGaussianKernel(n, sigma) (CV_64F, sigma > 0): exp(-(i-(n-1)/2)^2 / (2 sigma^2)) / sum."""
    x = np.arange(n, dtype=np.float64) - (n - 1) * 0.5
    k = np.exp(-0.5 / (sigma * sigma) * x * x)
    return (k / k.sum()).reshape(n, 1)


def correlate_valid(img, window):
    """The [5:-5, 5:-5] part of cv2.filter2D(img, -1, window): the 'valid' correlation (float64)."""
    kh, kw = window.shape
    h, w = img.shape
    out = np.zeros((h - kh + 1, w - kw + 1), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            out += window[i, j] * img[i:i + h - kh + 1, j:j + w - kw + 1]
    return out


def basicsr_to_y(img_bgr):
    """metric_util.to_y_channel -> color_util.bgr2ycbcr(y_only=True) on float32/255, as BasicSR."""
    img = img_bgr.astype(np.float32) / 255.
    y = np.dot(img, [24.966, 128.553, 65.481]) + 16.0
    y = (y / 255.).astype(np.float32)
    return (y[..., None] * 255.)


def basicsr_psnr(img, img2, crop, y):
    if crop:
        img, img2 = img[crop:-crop, crop:-crop], img2[crop:-crop, crop:-crop]
    if y:
        img, img2 = basicsr_to_y(img), basicsr_to_y(img2)
    mse = np.mean((img.astype(np.float64) - img2.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10. * np.log10(255. * 255. / mse)


def basicsr_ssim_plane(a, b):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2_gaussian_kernel(11, 1.5)
    win = np.outer(k, k.transpose())
    mu1, mu2 = correlate_valid(a, win), correlate_valid(b, win)
    s11 = correlate_valid(a * a, win) - mu1 ** 2
    s22 = correlate_valid(b * b, win) - mu2 ** 2
    s12 = correlate_valid(a * b, win) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2))
    return m.mean()


def basicsr_ssim(img, img2, crop, y):
    if crop:
        img, img2 = img[crop:-crop, crop:-crop], img2[crop:-crop, crop:-crop]
    if y:
        img, img2 = basicsr_to_y(img), basicsr_to_y(img2)
    img, img2 = img.astype(np.float64), img2.astype(np.float64)
    return float(np.mean([basicsr_ssim_plane(img[..., i], img2[..., i]) for i in range(img.shape[2])]))


# -------------------------------------------------------------------------------------------- ffa-net (torch)
def ffa_window(window_size, channel, dtype):
    """create_window / gaussian; the original builds it in float32 (torch.Tensor), the float64 run in float64."""
    gauss = torch.tensor([math.exp(-(x - window_size // 2) ** 2 / float(2 * 1.5 ** 2)) for x in range(window_size)], dtype=dtype)
    g1 = (gauss / gauss.sum()).unsqueeze(1)
    w2 = g1.mm(g1.t()).unsqueeze(0).unsqueeze(0)
    return w2.expand(channel, 1, window_size, window_size).contiguous()


def ffa_ssim(img1, img2, dtype):
    img1, img2 = img1.clamp(0, 1), img2.clamp(0, 1)
    ch = img1.shape[1]
    w = ffa_window(11, ch, dtype)
    conv = lambda x: F.conv2d(x, w, padding=5, groups=ch)
    mu1, mu2 = conv(img1), conv(img2)
    s11 = conv(img1 * img1) - mu1.pow(2)
    s22 = conv(img2 * img2) - mu2.pow(2)
    s12 = conv(img1 * img2) - mu1 * mu2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1.pow(2) + mu2.pow(2) + c1) * (s11 + s22 + c2))
    return m.mean().item()


def ffa_psnr(pred, gt):
    pred, gt = pred.clamp(0, 1).numpy(), gt.clamp(0, 1).numpy()
    rmse = math.sqrt(np.mean((pred - gt) ** 2))
    return 100 if rmse == 0 else 20 * math.log10(1.0 / rmse)


# ------------------------------------------------------------------- dehazeformer (test.py + pytorch_msssim.ssim)
def msssim_gauss_1d(size, sigma, dtype):
    """_fspecial_gauss_1d; the original builds it in float32 (torch.float), the float64 run in float64."""
    coords = torch.arange(size).to(dtype=dtype)
    coords -= size // 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    return g.unsqueeze(0).unsqueeze(0)


def msssim_filter(x, win):
    c = x.shape[1]
    out = F.conv2d(x, win, stride=1, padding=0, groups=c)
    return F.conv2d(out, win.transpose(2, 3), stride=1, padding=0, groups=c)


def msssim_ssim(x, y, data_range):
    win = msssim_gauss_1d(11, 1.5, x.dtype).repeat(x.shape[1], 1, 1, 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu1, mu2 = msssim_filter(x, win), msssim_filter(y, win)
    mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    s11 = msssim_filter(x * x, win) - mu1_sq
    s22 = msssim_filter(y * y, win) - mu2_sq
    s12 = msssim_filter(x * y, win) - mu1_mu2
    cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
    ssim_map = ((2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return torch.flatten(ssim_map, 2).mean(-1).mean(1)  # size_average=False: per image


def dehazeformer(output, target):
    psnr = 10 * torch.log10(1 / F.mse_loss(output, target)).item()
    _, _, h, w = output.size()
    down = max(1, round(min(h, w) / 256))
    size = (int(h / down), int(w / down))
    ssim = msssim_ssim(F.adaptive_avg_pool2d(output, size), F.adaptive_avg_pool2d(target, size), 1).item()
    return psnr, ssim, down


# ---------------------------------------------------------------------------------------- idt (MATLAB semantics)
def matlab_round(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def matlab_rgb2ycbcr_y_uint8(rgb):
    """rgb2ycbcr on uint8: T = origT/255, offset 16; imlincomb in double, rounded half away, saturated to uint8."""
    t = np.array([65.481, 128.553, 24.966]) / 255
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = t[0] * r + t[1] * g + t[2] * b + 16
    return np.clip(matlab_round(y), 0, 255).astype(np.uint8)


def matlab_fspecial_gaussian(n, sigma):
    half = (n - 1) / 2
    x, y = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1))
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


def idt(restored_u8, gt_u8):
    a = matlab_rgb2ycbcr_y_uint8(restored_u8).astype(np.float64)
    b = matlab_rgb2ycbcr_y_uint8(gt_u8).astype(np.float64)
    d = (a - b).ravel()
    psnr = 20 * math.log10(255 / math.sqrt(np.mean(d ** 2)))
    window = matlab_fspecial_gaussian(11, 1.5)
    window = window / window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = correlate_valid(a, window), correlate_valid(b, window)  # filter2(window, img, 'valid')
    s11 = correlate_valid(a * a, window) - mu1 * mu1
    s22 = correlate_valid(b * b, window) - mu2 * mu2
    s12 = correlate_valid(a * b, window) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (s11 + s22 + c2))
    return psnr, float(m.mean())  # mean2


# ------------------------------------------------------------------------------------------------ nafnet (torch)
def nafnet_psnr(img1, img2):
    img1, img2 = img1.astype(np.float64), img2.astype(np.float64)
    mse = np.mean((img1 - img2) ** 2)
    if mse == 0:
        return float("inf")
    max_value = 1. if img1.max() <= 1 else 255.
    return float(20. * np.log10(max_value / np.sqrt(mse)))


def nafnet_ssim3d(img1, img2, dtype):
    img1, img2 = img1.astype(np.float64), img2.astype(np.float64)
    max_value = 1 if img1.max() <= 1 else 255
    c1, c2 = (0.01 * max_value) ** 2, (0.03 * max_value) ** 2
    k = cv2_gaussian_kernel(11, 1.5)
    window = np.outer(k, k.transpose())
    kernel = torch.tensor(np.stack([window * kk for kk in k], axis=0))
    conv3d = torch.nn.Conv3d(1, 1, (11, 11, 11), stride=1, padding=(5, 5, 5), bias=False, padding_mode='replicate')
    conv3d = conv3d.to(dtype)
    conv3d.weight.requires_grad = False
    conv3d.weight[0, 0, :, :, :] = kernel
    f = lambda x: conv3d(x.unsqueeze(0).unsqueeze(0)).squeeze(0).squeeze(0)
    with torch.no_grad():
        x, y = torch.tensor(img1).to(dtype), torch.tensor(img2).to(dtype)
        mu1, mu2 = f(x), f(y)
        s11 = f(x ** 2) - mu1 ** 2
        s22 = f(y ** 2) - mu2 ** 2
        s12 = f(x * y) - mu1 * mu2
        m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2))
    return float(m.mean())


# ------------------------------------------------------------------------------------------------------ run
def chw(x, dtype):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).unsqueeze(0).to(dtype)


expected = {"note": "see make_reference.py; psnr/ssim = the official code's dtype, *_f64 = the same in float64", "cases": {}}
for name, (gt, out) in make_cases().items():
    restored = tensor2img_u8(out)
    Image.fromarray(gt).save(os.path.join(out_dir, f"gt_{name}.png"))
    Image.fromarray(restored).save(os.path.join(out_dir, f"restored_{name}.png"))
    np.save(os.path.join(out_dir, f"restored_{name}.npy"), out)  # float32 HWC RGB, unclamped
    gt_bgr, restored_bgr = gt[..., ::-1], restored[..., ::-1]  # OpenCV order, as BasicSR/NAFNet read and write
    r = {"size": list(gt.shape[:2])}
    r["basicsr"] = {"crop_border": 0, "y_channel": False,
                    "psnr": basicsr_psnr(restored_bgr, gt_bgr, 0, False), "ssim": basicsr_ssim(restored_bgr, gt_bgr, 0, False)}
    r["sr_x2"] = {"scale": 2, "psnr": basicsr_psnr(restored_bgr, gt_bgr, 2, True), "ssim": basicsr_ssim(restored_bgr, gt_bgr, 2, True)}

    # ffa-net: the output tensor (float32, clamped inside psnr/ssim) against ToTensor(clear) = u8 / 255 float32.
    o32, g32 = chw(out, torch.float32), chw(gt.astype(np.float32) / np.float32(255), torch.float32)
    o64, g64 = o32.double(), g32.double()
    r["ffa-net"] = {"psnr": ffa_psnr(o32, g32), "ssim": ffa_ssim(o32, g32, torch.float32),
                    "psnr_f64": ffa_psnr(o64, g64), "ssim_f64": ffa_ssim(o64, g64, torch.float64)}

    # dehazeformer: output = network(input).clamp_(-1, 1) * 0.5 + 0.5 = our [0, 1] output clamped; target read as
    # (u8 / 255) * 2 - 1 (float32, loader.py) then * 0.5 + 0.5.
    t32 = chw((gt.astype(np.float32) / np.float32(255.0)) * np.float32(2) - np.float32(1), torch.float32) * 0.5 + 0.5
    p, s, down = dehazeformer(o32.clamp(0, 1), t32)
    p64, s64, _ = dehazeformer(o64.clamp(0, 1), g64)
    r["dehazeformer"] = {"down_ratio": down, "psnr": p, "ssim": s, "psnr_f64": p64, "ssim_f64": s64}

    p, s = idt(restored, gt)
    r["idt"] = {"psnr": p, "ssim": s}

    r["nafnet"] = {"psnr": nafnet_psnr(restored_bgr, gt_bgr), "ssim": nafnet_ssim3d(restored_bgr, gt_bgr, torch.float32),
                   "ssim_f64": nafnet_ssim3d(restored_bgr, gt_bgr, torch.float64)}
    expected["cases"][name] = r
    print(name, json.dumps(r))

with open(os.path.join(out_dir, "expected.json"), "w") as f:
    json.dump(expected, f, indent=2)
