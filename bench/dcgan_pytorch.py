#!/usr/bin/env python3
"""Reference for `npm run bench`: the DCGAN of Gantry's sweeps trained with PyTorch on CPU.

Same architecture, loss and optimiser as packages/worker/src/models/dcgan.ts (`dcganLayout`, `buildDcgan`)
and trainer.ts. The networks start (G) or end (D) at s0 x s0, 7 for side 28 and 4 for powers of two, with
k = log2(side / s0) stride-2 layers of widths w_i = f * min(2^i, 8), index 0 next to the image:
  G: z -> linear (no bias) s0 x s0 x w_(k-1) -> BN, ReLU -> (convT 4x4/2 (no bias) -> BN, ReLU) x (k-1),
     halving the width -> convT 4x4/2 C -> tanh
  D: x -> conv 4x4/2 f -> LReLU(0.2) -> (conv 4x4/2 (no bias) -> BN, LReLU(0.2)) x (k-1), doubling
     -> linear 1
At 28x28 that is G linear 7x7x2f, convTs f and C; D convs f, 2f. At 64x64, the paper's network
(Radford et al., 2016): 4x4x8f, then 4f, 2f, f, C; D f, 2f, 4f, 8f. Weights N(0, 0.02).
One D update (real + fake batch) and one G update per step, non-saturating loss, Adam.
Random tensors stand in for the data: the data pipeline is not what is measured here.
Options and output: the contract of torch_bench.py (`--batch --steps --warmup --threads --serve`, the last
line JSON with images_per_sec, params, peak_rss_mb), plus --latent --filters --size --channels.
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_bench import add_loop_args, param_count, run, setup


def layout(side, f):
    """(s0, widths) as dcganLayout computes them."""
    s0 = 7 if side % 7 == 0 else 4
    k = math.log2(side / s0)
    if k != int(k) or k < 1:
        raise SystemExit(f"DCGAN needs a side of 7 * 2^k or 4 * 2^k (k >= 1), got {side}")
    return s0, [f * min(2**i, 8) for i in range(int(k))]


class G(nn.Module):
    def __init__(self, latent, side, channels, f):
        super().__init__()
        self.s0, w = layout(side, f)
        self.top = w[-1]
        self.fc = nn.Linear(latent, self.s0 * self.s0 * self.top, bias=False)
        self.bn0 = nn.BatchNorm2d(self.top)
        # Level by level from the top down: width w[i] to w[i - 1], without bias (BN follows).
        self.up = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(w[i], w[i - 1], 4, 2, 1, bias=False), nn.BatchNorm2d(w[i - 1]), nn.ReLU())
            for i in range(len(w) - 1, 0, -1)
        )
        self.out = nn.ConvTranspose2d(w[0], channels, 4, 2, 1)

    def forward(self, z):
        h = F.relu(self.bn0(self.fc(z).view(-1, self.top, self.s0, self.s0)))
        for layer in self.up:
            h = layer(h)
        return torch.tanh(self.out(h))


class D(nn.Module):
    def __init__(self, side, channels, f):
        super().__init__()
        s0, w = layout(side, f)
        self.c1 = nn.Conv2d(channels, w[0], 4, 2, 1)
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(w[i - 1], w[i], 4, 2, 1, bias=False), nn.BatchNorm2d(w[i]), nn.LeakyReLU(0.2))
            for i in range(1, len(w))
        )
        self.fc = nn.Linear(s0 * s0 * w[-1], 1)

    def forward(self, x):
        h = F.leaky_relu(self.c1(x), 0.2)
        for layer in self.down:
            h = layer(h)
        return self.fc(h.flatten(1)).view(-1)


def init_weights(m):
    """N(0, 0.02) weights, BN scale N(1, 0.02), zero biases, as buildDcgan initialises them."""
    if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def main():
    p = argparse.ArgumentParser()
    add_loop_args(p, batch=64, steps=20, warmup=3)
    p.add_argument("--latent", type=int, default=100)
    p.add_argument("--filters", type=int, default=64)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    a = p.parse_args()
    setup(a)
    g, d = G(a.latent, a.size, a.channels, a.filters), D(a.size, a.channels, a.filters)
    g.apply(init_weights)
    d.apply(init_weights)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(a.batch, a.channels, a.size, a.size) * 2 - 1

    def step():
        z = torch.randn(a.batch, a.latent)
        fake = g(z).detach()
        loss_d = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        z = torch.randn(a.batch, a.latent)
        loss_g = F.softplus(-d(g(z))).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        return loss_d.item() + loss_g.item()

    run(step, a, param_count(g, d), {"size": a.size, "channels": a.channels, "filters": a.filters})


if __name__ == "__main__":
    main()
