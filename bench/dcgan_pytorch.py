#!/usr/bin/env python3
"""Reference for `npm run bench`: the DCGAN of Gantry's example sweep trained with PyTorch on CPU.

Same architecture, loss and optimiser as packages/worker/src/models/dcgan.ts and trainer.ts:
  G: z -> linear (no bias) 7x7x2f -> BN, ReLU -> convT 4x4/2 f (no bias) -> BN, ReLU -> convT 4x4/2 1 -> tanh
  D: x -> conv 4x4/2 f -> LReLU(0.2) -> conv 4x4/2 2f (no bias) -> BN, LReLU(0.2) -> linear 1
One D update (real + fake batch) and one G update per step, non-saturating loss, Adam.
Random tensors stand in for the data: the data pipeline is not what is measured, on either side.
Prints one JSON object: images/s over the timed steps.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class G(nn.Module):
    def __init__(self, latent, f):
        super().__init__()
        self.f = f
        self.fc = nn.Linear(latent, 7 * 7 * 2 * f, bias=False)
        self.bn0 = nn.BatchNorm2d(2 * f)
        self.dc1 = nn.ConvTranspose2d(2 * f, f, 4, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(f)
        self.dc2 = nn.ConvTranspose2d(f, 1, 4, 2, 1)

    def forward(self, z):
        h = self.fc(z).view(-1, 2 * self.f, 7, 7)
        h = F.relu(self.bn0(h))
        h = F.relu(self.bn1(self.dc1(h)))
        return torch.tanh(self.dc2(h))


class D(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.c1 = nn.Conv2d(1, f, 4, 2, 1)
        self.c2 = nn.Conv2d(f, 2 * f, 4, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * f)
        self.fc = nn.Linear(7 * 7 * 2 * f, 1)

    def forward(self, x):
        h = F.leaky_relu(self.c1(x), 0.2)
        h = F.leaky_relu(self.bn2(self.c2(h)), 0.2)
        return self.fc(h.flatten(1)).view(-1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--latent", type=int, default=100)
    p.add_argument("--filters", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    g, d = G(a.latent, a.filters), D(a.filters)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(a.batch, 1, 28, 28) * 2 - 1

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

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = time.perf_counter() - t0
    print(json.dumps({"images_per_sec": a.steps * a.batch / dt, "seconds_per_step": dt / a.steps,
                      "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
