"""A plain PyTorch SimCLR training loop, written the way its peers write it.

The network is ResNet-18 with the CIFAR stem (3x3 stride-1 convolution, no max pool; the
same graph as `reference.backbones.resnet18_cifar`, written in `torch.nn` without
torchvision), then the MLP projection head Linear -> BN -> ReLU -> Linear. The loop follows
lightly's and solo-learn's SimCLR recipes: channels-last tensors, autocast to bfloat16 where
the device has it (CUDA with bf16 support), `torch.compile` of the model where it works,
SGD with momentum 0.9 and weight decay 5e-4 (lightly's CIFAR-10 benchmark), NT-Xent as a
cross-entropy over the 2N x 2N cosine similarities. The loss is taken in float32.

`loop(...)` returns the train step and what it was built with; a SparseHead `piece` adds one
of `sparsehead.adapters.torch`'s tools to the same loop: the L2,1 penalty or the group Hoyer
penalty on the loss, or the proximal step or the group budget after `optimizer.step()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["PIECES", "Loop", "ResNet18Cifar", "loop"]

#: The SparseHead pieces, in the order the benchmark reports them (None: the plain loop).
PIECES = ("L21", "ProximalL21", "GroupBudget", "GroupHoyer")


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet18Cifar(nn.Module):
    """ResNet-18, CIFAR stem, no fc: images `(N, C, H, W)` -> features `(N, 8 * width)`."""

    def __init__(self, width: int = 64, channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for b in range(2):
                blocks.append(_Block(cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.dim = cin

    def forward(self, x):
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1)


def info_nce(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over `z = [z1; z2]` (2N rows): the positive of row i is row `(i + N) mod 2N`."""
    u = nn.functional.normalize(z.float(), dim=1)
    s = u @ u.T / temperature
    m = s.shape[0]
    s = s.masked_fill(torch.eye(m, dtype=torch.bool, device=s.device), float("-inf"))
    target = (torch.arange(m, device=s.device) + m // 2) % m
    return nn.functional.cross_entropy(s, target)


@dataclass
class Loop:
    """One train step `step(x)` and what it was built with (for the row's note)."""

    step: object
    net: nn.Module
    head_last: nn.Linear
    compiled: str  # "compiled", or why not
    precision: str
    evidence: dict = field(default_factory=dict)  # filled by the step; see `read_evidence`

    def read_evidence(self) -> dict:
        """What the piece left behind (read once, after timing): the last penalty term, the
        zero columns of the head's last weight, the post-step object that ran."""
        w = self.head_last.weight.detach()
        out = dict(self.evidence)
        out["penalty"] = float(out.pop("_penalty", torch.zeros(())))
        out["zero_groups"] = int((w.norm(dim=0) == 0).sum())
        out["groups"] = int(w.shape[1])
        return out


def _compile(net: nn.Module, want: bool, x: torch.Tensor, bf16: bool):
    """`torch.compile(net)` if wanted and it runs here (tried once on `x`), else `net`."""
    if not want:
        return net, "eager (not asked)"
    try:
        compiled = torch.compile(net)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            z = compiled(x)
        z.float().sum().backward()
        net.zero_grad(set_to_none=True)
        return compiled, "compiled"
    except Exception as e:  # inductor needs a C++ compiler / Triton: fall back, and say so
        net.zero_grad(set_to_none=True)
        return net, f"eager (torch.compile failed: {type(e).__name__})"


def loop(
    piece: str | None,
    *,
    width: int,
    hidden: int,
    dim: int,
    x: torch.Tensor,
    compile: bool,
    temperature: float = 0.5,
    l21: float = 1e-4,
    hoyer: float = 1e-3,
    keep: float = 0.5,
    seed: int = 0,
) -> Loop:
    """The SimCLR train step on `x` (2N views, channels-last, on its device) with `piece`;
    `width=0` puts the flattened image in place of the ResNet."""
    from sparsehead.adapters import torch as sh

    if piece is not None and piece not in PIECES:
        raise ValueError(f"piece must be None or one of {PIECES}; got {piece!r}")
    device = x.device
    torch.manual_seed(seed)
    if width:
        backbone, features = ResNet18Cifar(width, x.shape[1]), 8 * width
    else:  # the flattened image (the benchmark's smoke-test size)
        backbone, features = nn.Flatten(), x[0].numel()
    last = nn.Linear(hidden, dim)
    head = nn.Sequential(nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), last)
    net = nn.Sequential(backbone, head).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    precision = "bf16 autocast" if bf16 else "fp32 (no bf16 autocast on this device)"
    model, compiled = _compile(net, compile, x, bf16)
    post = None
    if piece == "ProximalL21":
        post = sh.ProximalL21(opt, l21, last)
    elif piece == "GroupBudget":
        post = sh.GroupBudget(opt, keep, last, begin_step=0)
    evidence: dict = {"post_step": type(post).__name__ if post else None}

    def penalty():
        if piece == "L21":
            return sh.l21_regularization(net, l21, last)
        if piece == "GroupHoyer":
            return sh.hoyer_regularization(net, hoyer, last)
        return None

    def step(xb):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            z = model(xb)
        base = info_nce(z, temperature)
        extra = penalty()
        loss = base if extra is None else base + extra
        evidence["_penalty"] = (loss - base).detach()  # what the piece added to the loss
        loss.backward()
        opt.step()
        if post is not None:
            post.step()
        return loss

    return Loop(step, net, last, compiled, precision, evidence)
