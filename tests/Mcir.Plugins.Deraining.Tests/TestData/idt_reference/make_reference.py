"""Reference data for the IDT tests, computed with jiexiaou/IDT @ d72510c53af6d45eac5c22092e7a4dde9c64877f.

Usage: /usr/bin/python3 make_reference.py IDT_CHECKOUT OUT_DIR
  IDT_CHECKOUT: a checkout of that commit (model.py, test_full_size.py, loss/SSIM.py and the vendored timm/einops).
No IDT source is stored here: the window/merge functions are taken from the checkout's test_full_size.py at run time.
"""
import ast, json, math, os, sys, types

import numpy as np
import torch

idt_dir, out_dir = sys.argv[1], sys.argv[2]
sys.path.insert(0, idt_dir)
# timm's package __init__ imports torchvision (timm.data); IDT only needs timm.models.layers, so register the packages
# without running their __init__.
for name, sub in [("timm", "timm"), ("timm.models", "timm/models")]:
    m = types.ModuleType(name)
    m.__path__ = [os.path.join(idt_dir, sub)]
    sys.modules[name] = m
from model import IDT  # noqa: E402
from loss.SSIM import SSIM  # noqa: E402

torch.set_num_threads(1)
fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "archs", "idt")
config = json.load(open(os.path.join(fixture, "config.json")))

# IDT's full-size test procedure: splitimage / get_scoremap / mergeimage from test_full_size.py, unchanged.
tree = ast.parse(open(os.path.join(idt_dir, "test_full_size.py")).read())
funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in ("splitimage", "get_scoremap", "mergeimage")]
assert len(funcs) == 3
ns = {"torch": torch, "math": math}
exec(compile(ast.Module(body=funcs, type_ignores=[]), "test_full_size.py", "exec"), ns)

torch.manual_seed(0)
net = IDT(**config["constructor_kwargs"])
net.load_state_dict(torch.load(os.path.join(fixture, "state_dict.pth")))
net.eval()

# 1. A 150x170 rainy image (8-bit), restored window by window as test_full_size.py does (before its clamp/save).
h, w = 150, 170
rainy = torch.rand((1, 3, h, w), generator=torch.Generator().manual_seed(1002))
rainy_u8 = torch.round(rainy * 255).to(torch.uint8)
x = rainy_u8.float() / 255
with torch.no_grad():
    split_data, starts = ns["splitimage"](x)
    for i, data in enumerate(split_data):
        split_data[i] = net(data)
    merged = ns["mergeimage"](split_data, starts, resolution=(1, 3, h, w))
np.save(os.path.join(out_dir, "rainy_u8.npy"), rainy_u8.numpy())
np.save(os.path.join(out_dir, "expected_float.npy"), merged.numpy().astype(np.float32))

# 2. The fixture weights as IDT's train_derain.py saves them: the DataParallel state dict ('module.' prefixes).
torch.save(torch.nn.DataParallel(net).state_dict(), os.path.join(out_dir, "idt_dataparallel.pth"))

# 3. IDT's loss: -SSIM (loss/SSIM.py, train_derain.py) on an output/target pair, value and d loss / d output.
out = torch.rand((2, 3, 32, 40), generator=torch.Generator().manual_seed(2000))
noise = torch.rand((2, 3, 32, 40), generator=torch.Generator().manual_seed(2001))
gt = (out + 0.2 * (noise - 0.5)).clamp(0, 1)
out.requires_grad_(True)
loss = -1 * SSIM()(out, gt)
loss.backward()
with torch.no_grad():
    loss64 = -1 * SSIM()(out.detach().double(), gt.double())
np.save(os.path.join(out_dir, "ssim_out.npy"), out.detach().numpy())
np.save(os.path.join(out_dir, "ssim_gt.npy"), gt.numpy())
np.save(os.path.join(out_dir, "ssim_grad_out.npy"), out.grad.numpy())
json.dump({
    "windows": {"starts": [list(s) for s in starts], "input": "rainy_u8.npy / 255", "output": "expected_float.npy"},
    "neg_ssim_float32": loss.item(), "neg_ssim_float64": loss64.item(),
    "torch_version": torch.__version__, "num_threads": 1,
}, open(os.path.join(out_dir, "expected.json"), "w"), indent=1)
