#!/usr/bin/env python3
"""Reference for `npm run bench`: one stage of progressive growing (Karras et al., 2018) in PyTorch on CPU.

The networks, losses and update order of packages/worker/src/families/progan/ (`buildProgan`,
ProganTrainer) at the stage's resolution R, c_r = max(min(f, 8), f / 2^max(0, log2(r) - 3)), LReLU 0.2,
'same' convs, equalised learning rate everywhere (weights N(0, 1) scaled at run time by gain / sqrt(fan_in),
gain sqrt 2, 1 for toRGB and D's last dense), zero biases:
  G: pixelNorm(z) -> dense L -> 4x4xc4 (one bias per channel) -> LReLU -> pixelNorm -> conv 3x3 c4 -> LReLU
    -> pixelNorm; per r = 8..R: nearest 2x up -> 2 x (conv 3x3 c_r -> LReLU -> pixelNorm). Output
    (1 - alpha) up(toRGB_{R/2}(h_{R/2})) + alpha toRGB_R(h_R), toRGB a 1x1 conv, linear.
  D: (1 - alpha) fromRGB_{R/2}(avgpool(x)) + alpha block_R(fromRGB_R(x)), fromRGB a 1x1 conv and LReLU,
    block_r: conv 3x3 c_r, LReLU, conv 3x3 c_{r/2}, LReLU, 2x2 average pool; then blocks R/2..8; then
    minibatch stddev (one more channel) -> conv 3x3 c4 -> LReLU -> dense 16 c4 -> c4 -> LReLU -> dense 1.
  Both fade-in paths are computed, as Gantry's; the stable phase runs at alpha 1.
One step: one critic update (n_critic) on WGAN-GP with the drift term,
  L_D = mean D(G(z)) - mean D(x) + lambda * mean (|grad D(x_hat)| - 1)^2 + drift * mean D(x)^2,
the penalty differentiated again (double backward); one generator update on -mean D(G(z)); then the
moving average of G's weights (decay min(ema_decay, (1 + t) / (10 + t))). Adam 1e-3, betas 0 and 0.99.
Differences that leave the cost as it is: NCHW instead of NHWC; Gantry box-filters its real batch from the
canvas down to R (one average pool) where random tensors at R stand in for the data here.
Options and output: the contract of torch_bench.py (`--batch --steps --warmup --threads --serve`, the last
line JSON with images_per_sec, params, peak_rss_mb), plus --resolution --channels --latent --filters
--n-critic --gp-lambda --drift --ema-decay --alpha.
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_bench import add_loop_args, param_count, run, setup

SLOPE = 0.2


def channels_at(r, f):
    """proganChannels: f at 4x4 and 8x8, halved per doubling after, not below min(f, 8)."""
    return max(min(f, 8), f // 2 ** max(0, int(math.log2(r)) - 3))


class EqConv(nn.Module):
    def __init__(self, cin, cout, k, gain=math.sqrt(2)):
        super().__init__()
        self.w = nn.Parameter(torch.randn(cout, cin, k, k))
        self.b = nn.Parameter(torch.zeros(cout))
        self.scale = gain / math.sqrt(cin * k * k)

    def forward(self, x):
        return F.conv2d(x, self.w * self.scale, self.b, padding=self.w.shape[-1] // 2)


class EqDense(nn.Module):
    def __init__(self, cin, cout, gain=math.sqrt(2), bias=None):
        super().__init__()
        self.w = nn.Parameter(torch.randn(cout, cin))
        self.b = nn.Parameter(torch.zeros(cout if bias is None else bias))
        self.scale = gain / math.sqrt(cin)

    def forward(self, x):
        return F.linear(x, self.w * self.scale, self.b if self.b.shape[0] == self.w.shape[0] else None)


def pixel_norm(x, eps=1e-8):
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + eps)


def minibatch_std(x, eps=1e-8):
    std = torch.sqrt((x - x.mean(0, keepdim=True)).square().mean(0) + eps)
    n, _, h, w = x.shape
    return torch.cat([x, torch.ones(n, 1, h, w) * std.mean()], 1)


def up(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


def down(x):
    return F.avg_pool2d(x, 2)


def lrelu(x):
    return F.leaky_relu(x, SLOPE)


def fade(old, fresh, alpha):
    return old * (1 - alpha) + fresh * alpha


def blocks(top):
    return [2**i for i in range(3, int(math.log2(top)) + 1)]


class G(nn.Module):
    def __init__(self, R, C, L, f):
        super().__init__()
        c = lambda r: channels_at(r, f)  # noqa: E731
        self.R, self.c4 = R, c(4)
        self.dense = EqDense(L, 16 * c(4), bias=c(4))
        self.conv4 = EqConv(c(4), c(4), 3)
        self.convs = nn.ModuleList(
            nn.ModuleList([EqConv(c(r // 2), c(r), 3), EqConv(c(r), c(r), 3)]) for r in blocks(R)
        )
        self.torgb = nn.ModuleDict({str(r): EqConv(c(r), C, 1, gain=1) for r in ([R // 2, R] if R > 4 else [R])})

    def forward(self, z, alpha):
        n = z.shape[0]
        zn = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
        h = self.dense(zn).view(n, self.c4, 4, 4) + self.dense.b.view(1, -1, 1, 1)
        h = pixel_norm(lrelu(h))
        h = pixel_norm(lrelu(self.conv4(h)))
        prev = h
        for c1, c2 in self.convs:
            prev = h
            h = pixel_norm(lrelu(c1(up(h))))
            h = pixel_norm(lrelu(c2(h)))
        fresh = self.torgb[str(self.R)](h)
        return fresh if self.R == 4 else fade(up(self.torgb[str(self.R // 2)](prev)), fresh, alpha)


class D(nn.Module):
    def __init__(self, R, C, f):
        super().__init__()
        c = lambda r: channels_at(r, f)  # noqa: E731
        self.R, self.c4 = R, c(4)
        self.conv4 = EqConv(c(4) + 1, c(4), 3)
        self.dense1 = EqDense(16 * c(4), c(4))
        self.dense2 = EqDense(c(4), 1, gain=1)
        self.blocks = nn.ModuleDict(
            {str(r): nn.ModuleList([EqConv(c(r), c(r), 3), EqConv(c(r), c(r // 2), 3)]) for r in blocks(R)}
        )
        self.fromrgb = nn.ModuleDict({str(r): EqConv(C, c(r), 1) for r in ([R // 2, R] if R > 4 else [R])})

    def block(self, r, h):
        c1, c2 = self.blocks[str(r)]
        return down(lrelu(c2(lrelu(c1(h)))))

    def forward(self, x, alpha):
        R = self.R
        h = lrelu(self.fromrgb[str(R)](x))
        if R > 4:
            h = fade(lrelu(self.fromrgb[str(R // 2)](down(x))), self.block(R, h), alpha)
        for r in reversed(blocks(R // 2)):
            h = self.block(r, h)
        h = lrelu(self.conv4(minibatch_std(h)))
        return self.dense2(lrelu(self.dense1(h.flatten(1)))).view(-1)


def main():
    p = argparse.ArgumentParser()
    add_loop_args(p, batch=32, steps=2, warmup=1)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--latent", type=int, default=128)
    p.add_argument("--filters", type=int, default=64)
    p.add_argument("--n-critic", type=int, default=1)
    p.add_argument("--gp-lambda", type=float, default=10.0)
    p.add_argument("--drift", type=float, default=0.001)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta1", type=float, default=0.0)
    p.add_argument("--beta2", type=float, default=0.99)
    a = p.parse_args()
    setup(a)
    R = a.resolution
    g, d = G(R, a.channels, a.latent, a.filters), D(R, a.channels, a.filters)
    ema = [w.detach().clone() for w in g.parameters()]
    opt_g = torch.optim.Adam(g.parameters(), lr=a.lr, betas=(a.beta1, a.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=a.lr, betas=(a.beta1, a.beta2))
    reals = [torch.rand(a.batch, a.channels, R, R) * 2 - 1 for _ in range(a.n_critic)]
    t = [0]

    def step():
        for real in reals:
            with torch.no_grad():
                fake = g(torch.randn(a.batch, a.latent), a.alpha)
            r, f = d(real, a.alpha), d(fake, a.alpha)
            eps = torch.rand(a.batch, 1, 1, 1)
            mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(d(mixed, a.alpha).sum(), mixed, create_graph=True)
            gp = a.gp_lambda * (torch.sqrt(grad.square().sum((1, 2, 3)) + 1e-12) - 1).square().mean()
            loss_d = f.mean() - r.mean() + gp + a.drift * r.square().mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        d.requires_grad_(False)
        loss_g = -d(g(torch.randn(a.batch, a.latent), a.alpha), a.alpha).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        d.requires_grad_(True)
        decay = min(a.ema_decay, (1 + t[0]) / (10 + t[0]))
        with torch.no_grad():
            for e, w in zip(ema, g.parameters()):
                e.mul_(decay).add_(w, alpha=1 - decay)
        t[0] += 1
        return loss_d.item() + loss_g.item()

    info = {"resolution": R, "channels": a.channels, "filters": a.filters, "latent": a.latent}
    run(step, a, param_count(g, d), info)


if __name__ == "__main__":
    main()
