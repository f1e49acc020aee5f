#!/usr/bin/env python3
"""Reference for `npm run bench`: WGAN-GP (Gulrajani et al., 2017) trained with PyTorch on CPU.

The networks, losses and update order of packages/worker/src/families/wgan-gp/ (GanTrainer with
`wassersteinUpdate`, training/wasserstein-step.ts, losses.ts):
  G: DCGAN's generator (dcgan_pytorch.py's G, the same layers and initialisation).
  D (critic): DCGAN's discriminator without batch norm (`buildDcgan` with `critic`): x -> conv 4x4/2 f ->
    LReLU(0.2) -> (conv 4x4/2 with bias, LReLU(0.2)) x (k-1), doubling -> linear 1. Weights N(0, 0.02).
One step: n_critic critic updates, each on a fresh real batch and G(z) without gradients, with
  L_D = mean D(G(z)) - mean D(x) + lambda * mean (|grad_x_hat D(x_hat)|_2 - 1)^2,
  x_hat = eps x + (1 - eps) G(z), one eps ~ U[0, 1] per sample, the penalty differentiated again (double
  backward); then one generator update on -mean D(G(z)). Adam (lr 1e-4, betas 0 and 0.9) for both.
Random tensors stand in for the data: the data pipeline is not what is measured here.
Options and output: the contract of torch_bench.py (`--batch --steps --warmup --threads --serve`, the last
line JSON with images_per_sec, params, peak_rss_mb), plus --latent --filters --size --channels --n-critic
--gp-lambda --lr --beta1 --beta2.
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from dcgan_pytorch import G, init_weights, layout
from torch_bench import add_loop_args, param_count, run, setup


class Critic(nn.Module):
    def __init__(self, side, channels, f):
        super().__init__()
        s0, w = layout(side, f)
        self.convs = nn.ModuleList(
            nn.Conv2d(channels if i == 0 else w[i - 1], w[i], 4, 2, 1) for i in range(len(w))
        )
        self.fc = nn.Linear(s0 * s0 * w[-1], 1)

    def forward(self, x):
        h = x
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
        return self.fc(h.flatten(1)).view(-1)


def gradient_penalty(d, real, fake, lam):
    """lambda * mean (|grad D(x_hat)| - 1)^2 at x_hat between real and fake, as `gradientPenalty`."""
    eps = torch.rand(real.shape[0], 1, 1, 1)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(d(mixed).sum(), mixed, create_graph=True)
    norm = torch.sqrt(grad.square().sum((1, 2, 3)) + 1e-12)
    return lam * (norm - 1).square().mean()


def main():
    p = argparse.ArgumentParser()
    add_loop_args(p, batch=64, steps=2, warmup=1)
    p.add_argument("--latent", type=int, default=100)
    p.add_argument("--filters", type=int, default=64)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--n-critic", type=int, default=5)
    p.add_argument("--gp-lambda", type=float, default=10.0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--beta1", type=float, default=0.0)
    p.add_argument("--beta2", type=float, default=0.9)
    a = p.parse_args()
    setup(a)
    g, d = G(a.latent, a.size, a.channels, a.filters), Critic(a.size, a.channels, a.filters)
    g.apply(init_weights)
    d.apply(init_weights)
    opt_g = torch.optim.Adam(g.parameters(), lr=a.lr, betas=(a.beta1, a.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=a.lr, betas=(a.beta1, a.beta2))
    reals = [torch.rand(a.batch, a.channels, a.size, a.size) * 2 - 1 for _ in range(a.n_critic)]

    def step():
        for real in reals:
            with torch.no_grad():
                fake = g(torch.randn(a.batch, a.latent))
            loss_d = d(fake).mean() - d(real).mean() + gradient_penalty(d, real, fake, a.gp_lambda)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        d.requires_grad_(False)
        loss_g = -d(g(torch.randn(a.batch, a.latent))).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        d.requires_grad_(True)
        return loss_d.item() + loss_g.item()

    info = {"size": a.size, "channels": a.channels, "filters": a.filters, "n_critic": a.n_critic}
    run(step, a, param_count(g, d), info)


if __name__ == "__main__":
    main()
