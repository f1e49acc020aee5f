#!/usr/bin/env python3
"""Reference for `npm run bench`: pix2pix (Isola et al., 2017) trained with PyTorch on CPU.

The networks, losses and update order of packages/worker/src/families/pix2pix/ (`buildPix2pix`,
Pix2pixTrainer), widths w_i = f * min(2^i, 8):
  G (U-Net): log2(side) encoder convs 4x4/2 down to 1x1, widths w_0, w_1, ...; LReLU(0.2) before each but
    the first, BN after each but the first and the innermost (those two have a bias instead); the encoder
    outputs before their LReLU are the skips. Decoder: transposed convs 4x4/2 back up, ReLU before each
    (on the previous output concatenated with the skip of the same side, but for the innermost), BN after
    each but the last (which has a bias), the dropout mask multiplied in after the three innermost; tanh.
    G's BN keeps running statistics, as Gantry's (NormStats).
  D (PatchGAN on concat(A, B)): conv 4x4/2 w_0 (bias), LReLU -> (n_layers - 1) x [conv 4x4/2 w_i, BN,
    LReLU] -> conv 4x4/1 w_n, BN, LReLU -> conv 4x4/1 to 1 (bias). Stride-1 convs pad as TF's 'same' does
    (1 before, 2 after); D's BN keeps no running statistics.
  Weights N(0, 0.02), BN scales N(1, 0.02).
One step: G(A) without gradients; one D update on (A, B) against (A, G(A)), L_D = (softplus(-D(A, B)) +
softplus(D(A, G(A)))) / 2; then G(A) again, with the same dropout masks, and one G update on
softplus(-D(A, G(A))) + l1_weight * |G(A) - B| through D (no gradients for D's weights); Adam 2e-4, beta1
0.5 for both. The masks are drawn once per step (1 / (1 - p) where kept).
Differences that leave the cost as it is: NCHW instead of NHWC; G's BN also records running statistics in
the forward pass of the D update.
Random tensors stand in for the data: the data pipeline is not what is measured here.
Options and output: the contract of torch_bench.py (`--batch --steps --warmup --threads --serve`, the last
line JSON with images_per_sec, params, peak_rss_mb), plus the network's options below.
"""
import argparse
import math
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_bench import add_loop_args, param_count, run, setup


def width(f, i):
    return f * min(2**i, 8)


class UNet(nn.Module):
    def __init__(self, side, channels, f):
        super().__init__()
        self.depth = depth = int(math.log2(side))
        if 2**depth != side or depth < 4:
            raise SystemExit(f"pix2pix runs on a power-of-two side of 16 or more, got {side}")
        outer = [i == 0 or i == depth - 1 for i in range(depth)]
        self.enc = nn.ModuleList(
            nn.Conv2d(channels if i == 0 else width(f, i - 1), width(f, i), 4, 2, 1, bias=outer[i])
            for i in range(depth)
        )
        self.enc_bn = nn.ModuleList(
            nn.Identity() if outer[i] else nn.BatchNorm2d(width(f, i)) for i in range(depth)
        )
        # dec[j]: from encoder level j's side up to level j - 1's, indexed as in buildPix2pix; its input is
        # level j's output (innermost) or the previous output concatenated with the skip.
        cin = [width(f, j) if j == depth - 1 else 2 * width(f, j) for j in range(depth)]
        cout = [channels if j == 0 else width(f, j - 1) for j in range(depth)]
        self.dec = nn.ModuleList(
            nn.ConvTranspose2d(cin[j], cout[j], 4, 2, 1, bias=j == 0) for j in range(depth)
        )
        self.dec_bn = nn.ModuleList(
            nn.Identity() if j == 0 else nn.BatchNorm2d(cout[j]) for j in range(depth)
        )

    def mask_shapes(self, f):
        """[C, H, W] per image of the dropout masks, innermost first (`dropoutMaskShapes`)."""
        blocks = min(3, self.depth - 1)
        return [(width(f, self.depth - 2 - k), 2 ** (k + 1), 2 ** (k + 1)) for k in range(blocks)]

    def forward(self, a, masks):
        skips, x = [], a
        for i in range(self.depth):
            if i > 0:
                x = F.leaky_relu(x, 0.2)
            x = self.enc_bn[i](self.enc[i](x))
            skips.append(x)
        for j in range(self.depth - 1, -1, -1):
            if j < self.depth - 1:
                x = torch.cat([x, skips[j]], 1)
            x = self.dec_bn[j](self.dec[j](F.relu(x)))
            k = self.depth - 1 - j
            if j > 0 and k < len(masks):
                x = x * masks[k]
        return torch.tanh(x)


class PatchD(nn.Module):
    def __init__(self, channels, f, n_layers):
        super().__init__()
        widths = [width(f, i) for i in range(n_layers + 1)]
        mods, cin = [], 2 * channels
        for i, w in enumerate(widths):
            stride = 2 if i < n_layers else 1
            mods.append(nn.Conv2d(cin, w, 4, stride, 1 if stride == 2 else "same", bias=i == 0))
            if i > 0:
                mods.append(nn.BatchNorm2d(w, track_running_stats=False))
            mods.append(nn.LeakyReLU(0.2))
            cin = w
        mods.append(nn.Conv2d(cin, 1, 4, 1, "same"))
        self.net = nn.Sequential(*mods)

    def forward(self, a, b):
        return self.net(torch.cat([a, b], 1)).flatten()


def init_weights(m):
    """N(0, 0.02) weights, BN scales N(1, 0.02), zero biases, as buildPix2pix initialises them."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def main():
    p = argparse.ArgumentParser()
    add_loop_args(p, batch=8, steps=4, warmup=1)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--filters", type=int, default=32)
    p.add_argument("--n-layers", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--l1-weight", type=float, default=100.0)
    a = p.parse_args()
    # The stride-1 4x4 convs pad asymmetrically, as TF's 'same' does, through a padded copy of the input.
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths")
    setup(a)
    g, d = UNet(a.size, a.channels, a.filters), PatchD(a.channels, a.filters, a.n_layers)
    g.apply(init_weights)
    d.apply(init_weights)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    img_a = torch.rand(a.batch, a.channels, a.size, a.size) * 2 - 1
    img_b = torch.rand(a.batch, a.channels, a.size, a.size) * 2 - 1
    shapes = g.mask_shapes(a.filters) if a.dropout > 0 else []

    def step():
        keep = 1 - a.dropout
        masks = [torch.bernoulli(torch.full((a.batch, *s), keep)) / keep for s in shapes]
        with torch.no_grad():
            fake = g(img_a, masks)
        real_logits = d(img_a, img_b)
        loss_d = 0.5 * (F.softplus(-real_logits).mean() + F.softplus(d(img_a, fake)).mean())
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        d.requires_grad_(False)
        out = g(img_a, masks)
        loss_g = F.softplus(-d(img_a, out)).mean() + a.l1_weight * (out - img_b).abs().mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        d.requires_grad_(True)
        return loss_d.item() + loss_g.item()

    run(step, a, param_count(g, d), {"size": a.size, "filters": a.filters, "n_layers": a.n_layers})


if __name__ == "__main__":
    main()
