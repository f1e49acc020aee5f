#!/usr/bin/env python3
"""Reference for `npm run bench`: SRGAN (Ledig et al., 2017) trained with PyTorch on CPU.

The networks, losses and update order of packages/worker/src/families/srgan/ (`buildSrgan`, SrganTrainer):
  G (SRResNet): LR -> conv 9x9 f, PReLU -> B x [conv 3x3 f (no bias), BN, PReLU, conv 3x3 f (no bias), BN,
    + skip] -> conv 3x3 f (no bias), BN, + the skip from the first PReLU -> log2(scale) x [conv 3x3 4f,
    pixel shuffle x2, PReLU] -> conv 9x9 C -> tanh. PReLU per channel, slopes 0.25; G's BN keeps running
    statistics, as Gantry's (NormStats).
  D: HR -> conv 3x3 f, LReLU(0.2) -> conv 3x3/2 f, BN, LReLU -> then per level (widths 2f, 4f, 8f, 8f...)
    conv 3x3 w, BN, LReLU, conv 3x3/2 w, BN, LReLU, until the side is 4 or less (`srganDLayers`) ->
    dense 16f, LReLU -> dense 1. Only the first conv has a bias; D's BN keeps no running statistics.
  He-initialised convs and dense layers, BN scales 1.
Stage `adversarial`: G(LR) without gradients, one D update on HR against it (non-saturating loss), then one
G update on MSE(G(LR), HR) + adv_weight * softplus(-D(G(LR))) through D (no gradients for D's weights);
Adam (lr 1e-4, beta1 0.9) for both. Stage `pretrain`: G alone on the MSE.
Differences that leave the cost as it is: NCHW instead of NHWC; PixelShuffle orders channels unlike
depth_to_space; a stride-2 3x3 conv pads 1 on each side where TF's 'same' pads 0 before and 1 after (the
same output side); G's BN also records running statistics in the forward pass of the D update.
Random tensors stand in for the data: the data pipeline is not what is measured here.
Options and output: the contract of torch_bench.py (`--batch --steps --warmup --threads --serve`, the last
line JSON with images_per_sec, params, peak_rss_mb), plus the network's options below.
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_bench import add_loop_args, param_count, run, setup


def d_layers(side, f):
    """[(width, stride)] of D's convs and the side after them, as srganDLayers computes them."""
    layers, s, width, level = [(f, 1)], side, f, 0
    while s > 4:
        if level > 0:
            layers.append((width, 1))
        layers.append((width, 2))
        s = math.ceil(s / 2)
        width = min(width * 2, 8 * f)
        level += 1
    return layers, s


class Residual(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(f, f, 3, padding=1, bias=False), nn.BatchNorm2d(f), nn.PReLU(f, 0.25),
            nn.Conv2d(f, f, 3, padding=1, bias=False), nn.BatchNorm2d(f),
        )

    def forward(self, x):
        return x + self.body(x)


class G(nn.Module):
    def __init__(self, channels, f, blocks, scale):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(channels, f, 9, padding=4), nn.PReLU(f, 0.25))
        self.blocks = nn.Sequential(*(Residual(f) for _ in range(blocks)))
        self.mid = nn.Sequential(nn.Conv2d(f, f, 3, padding=1, bias=False), nn.BatchNorm2d(f))
        self.up = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(f, 4 * f, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(f, 0.25))
            for _ in range(int(math.log2(scale)))
        ))
        self.out = nn.Conv2d(f, channels, 9, padding=4)

    def forward(self, lr):
        head = self.head(lr)
        x = head + self.mid(self.blocks(head))
        return torch.tanh(self.out(self.up(x)))


class D(nn.Module):
    def __init__(self, side, channels, f):
        super().__init__()
        layers, final = d_layers(side, f)
        mods, cin = [], channels
        for i, (width, stride) in enumerate(layers):
            mods.append(nn.Conv2d(cin, width, 3, stride, 1, bias=i == 0))
            if i > 0:
                mods.append(nn.BatchNorm2d(width, track_running_stats=False))
            mods.append(nn.LeakyReLU(0.2))
            cin = width
        self.convs = nn.Sequential(*mods)
        self.fc1 = nn.Linear(final * final * cin, 16 * f)
        self.fc2 = nn.Linear(16 * f, 1)

    def forward(self, x):
        h = F.leaky_relu(self.fc1(self.convs(x).flatten(1)), 0.2)
        return self.fc2(h).view(-1)


def init_weights(m):
    """He-normal convs and dense layers, zero biases, as buildSrgan does (D's last layer: see main)."""
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def main():
    p = argparse.ArgumentParser()
    add_loop_args(p, batch=16, steps=4, warmup=1)
    p.add_argument("--stage", choices=["pretrain", "adversarial"], default="adversarial")
    p.add_argument("--size", type=int, default=64, help="high-resolution side")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--filters", type=int, default=32)
    p.add_argument("--adv-weight", type=float, default=1e-3)
    a = p.parse_args()
    setup(a)
    g, d = G(a.channels, a.filters, a.blocks, a.scale), D(a.size, a.channels, a.filters)
    g.apply(init_weights)
    d.apply(init_weights)
    nn.init.normal_(d.fc2.weight, 0.0, (1 / d.fc2.in_features) ** 0.5)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.9, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.9, 0.999))
    hr = torch.rand(a.batch, a.channels, a.size, a.size) * 2 - 1
    lr = torch.rand(a.batch, a.channels, a.size // a.scale, a.size // a.scale) * 2 - 1

    def pretrain_step():
        loss = F.mse_loss(g(lr), hr)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        return loss.item()

    def adversarial_step():
        with torch.no_grad():
            sr = g(lr)
        loss_d = F.softplus(-d(hr)).mean() + F.softplus(d(sr)).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        d.requires_grad_(False)
        out = g(lr)
        loss_g = F.mse_loss(out, hr) + a.adv_weight * F.softplus(-d(out)).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        d.requires_grad_(True)
        return loss_d.item() + loss_g.item()

    step = adversarial_step if a.stage == "adversarial" else pretrain_step
    info = {"stage": a.stage, "size": a.size, "scale": a.scale, "blocks": a.blocks, "filters": a.filters}
    run(step, a, param_count(g, d), info)


if __name__ == "__main__":
    main()
