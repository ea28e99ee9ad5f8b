"""jaxhash's ResNet-18 hashing model and the naive hashing loss, written in PyTorch.

For ``benchmarks.train_step_torch``: the same network as ``jaxhash.models`` (``resnet18``,
``stem="cifar"``): a 3x3 stem conv, four stages of two basic blocks (64, 128, 256, 512 filters,
stride 2 at the first block of stages 2-4, a 1x1 conv + BN shortcut where the shape changes),
global mean pooling, a hash layer of K units z (the codes are sign(z)) and a classifier reading
z. Convolutions have no bias; BN has epsilon 1e-5 and keeps running averages with Flax's
momentum 0.9 (PyTorch's ``momentum=0.1``); every block's last BN scale starts at zero. Weights
start as Flax's defaults do: LeCun normal (truncated at two standard deviations) kernels, zero
biases. One difference: a stride-2 3x3 conv pads (1, 1) here, as PyTorch users write it, where
Flax's "SAME" pads (0, 1); the shapes and the work are the same.

The loss mirrors ``benchmarks.losses.reference_hashing`` term for term, in float32:
CE + L_sim + L_KL with weights 1 (the config defaults), full ``[B, B]`` matrices and ``topk``:

* L_sim: relaxed Hamming distances ``d = (1 - cos(z_i, z_j)) / 2`` and the class distances of
  the labels, each divided by its off-diagonal mean; the mean off-diagonal ``(d - t)^2``.
* L_KL: the Wang-Kulkarni-Verdu kNN estimate of KL(z || targets), targets uniform on
  ``{-1, +1}^K``: ``K * mean_i log(nu_k(i) / rho_k(i)) + log(n / (n - 1))`` with ``rho_k`` the
  k-th neighbour distance within z and ``nu_k`` that to the targets (Wang et al., IEEE Trans.
  Inf. Theory 55(5), 2009).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Flax's lecun_normal truncates a normal at +-2 and rescales by this to keep the variance.
_TRUNCATED_STD = 0.87962566103423978


def lecun_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Flax's default kernel init: truncated normal, variance 1 / fan_in."""
    fan_in = weight[0].numel()
    std = math.sqrt(1.0 / fan_in) / _TRUNCATED_STD
    return nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)


def _norm(channels: int, zero_scale: bool = False) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)
    if zero_scale:
        nn.init.zeros_(norm.weight)
    return norm


class ResNetBlock(nn.Module):
    """Basic residual block: two 3x3 convolutions (``jaxhash.models.ResNetBlock``)."""

    def __init__(self, cin: int, filters: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, filters, 3, stride), _norm(filters)
        self.conv2, self.bn2 = _conv(filters, filters, 3), _norm(filters, zero_scale=True)
        self.shortcut = None
        if stride != 1 or cin != filters:
            self.shortcut = nn.Sequential(_conv(cin, filters, 1, stride), _norm(filters))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        residual = x if self.shortcut is None else self.shortcut(x)
        return F.relu(residual + y)


class ResNet18Hashing(nn.Module):
    """Images ``[B, 3, 32, 32]`` -> (codes z ``[B, K]``, logits ``[B, C]``), both float32."""

    def __init__(self, bits: int = 64, num_classes: int = 100, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(_conv(3, width, 3), _norm(width), nn.ReLU())
        blocks, cin = [], width
        for i, size in enumerate((2, 2, 2, 2)):
            for j in range(size):
                filters = width * 2**i
                blocks.append(ResNetBlock(cin, filters, 2 if i > 0 and j == 0 else 1))
                cin = filters
        self.blocks = nn.Sequential(*blocks)
        self.hash = nn.Linear(cin, bits)
        self.classifier = nn.Linear(bits, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                lecun_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.blocks(self.stem(images)).mean(dim=(2, 3))
        z = self.hash(features).float()
        return z, self.classifier(z).float()


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return d.clamp_min(0.0)


def similarity_loss(z: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Full-matrix relative distance matching ("mean" normalisation, p = 2); ``dist`` [B, B]."""
    n = z.shape[0]
    u = z / z.norm(dim=1, keepdim=True).clamp_min(1e-6)
    d = 0.5 * (1.0 - u @ u.T)
    off = ~torch.eye(n, dtype=torch.bool, device=z.device)
    pairs = n * (n - 1)
    d = d / (torch.where(off, d, 0.0).sum() / pairs)
    dist = dist / (torch.where(off, dist, 0.0).sum() / pairs)
    return torch.where(off, (d - dist) ** 2, 0.0).sum() / pairs


def binary_kl_loss(z: torch.Tensor, targets: torch.Tensor, k: int = 1) -> torch.Tensor:
    """kNN estimate of KL(z || targets), ``z`` and ``targets`` ``[B, K]``, with ``topk``."""
    n, dim = z.shape
    dxx = _sq_dists(z, z) + torch.diag(torch.full((n,), math.inf, device=z.device))
    rho2 = torch.topk(dxx, k, dim=1, largest=False).values[:, k - 1]
    nu2 = torch.topk(_sq_dists(z, targets), k, dim=1, largest=False).values[:, k - 1]
    log_ratio = 0.5 * (torch.log(nu2.clamp_min(1e-12)) - torch.log(rho2.clamp_min(1e-12)))
    return dim * log_ratio.mean() + math.log(n / (n - 1))


def rademacher(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Uniform samples of ``{-1, +1}``, float32."""
    return torch.randint(0, 2, shape, device=device).float() * 2.0 - 1.0


def hashing_loss(
    z: torch.Tensor,
    logits: torch.Tensor,
    labels: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """CE + L_sim(z, table[labels][:, labels]) + L_KL(z, targets), in float32."""
    z, logits = z.float(), logits.float()
    return (
        F.cross_entropy(logits, labels)
        + similarity_loss(z, table[labels][:, labels])
        + binary_kl_loss(z, targets)
    )
