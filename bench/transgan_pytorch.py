#!/usr/bin/env python3
"""Reference for `npm run bench`: the TransGAN of Gantry's sweeps trained with PyTorch on CPU.

Same layers, loss and update order as packages/worker/src/families/transgan/networks.ts (`buildTransgan`),
models/transformer.ts and training/wasserstein-step.ts, in Gantry's token layout ([N, T, C], images NHWC):
  block (pre-LN): a = x + proj(attention(LN1(x))); out = a + mlp2(GELU(mlp1(LN2(a)))), q/k/v without bias,
     softmax(q k^T / sqrt(C / heads)) v per head, exact (erf) GELU, layer norm eps 1e-5
  G: z -> linear (side/4)^2 x g_embed -> + pos0 -> g_depth_1 blocks (global attention)
     -> pixel shuffle x2 (depth_to_space: width / 4) -> + pos1 -> g_depth_2 blocks (attention within
     windows of side/4 tokens a side) -> again, g_depth_3 blocks -> each token linearly to its pixel -> tanh
  D: patch x patch pieces -> linear d_embed -> [cls, tokens] + pos -> d_depth blocks -> LN -> linear 1 on cls
Weights Xavier normal (linears), position embeddings and class token N(0, 0.02), D's patch bias
N(0, 1 / (3 fan-in)), other biases 0, layer norms 1 and 0.
One step (WGAN-GP, Gulrajani et al., 2017, Algorithm 1): `n_critic` critic updates, each on a real batch
and G(z) (no gradient into G), loss mean D(fake) - mean D(real) + gp_lambda * mean (|grad_x D(x_hat)| - 1)^2
(x_hat = eps real + (1 - eps) fake, one eps per image, double backward) + drift * mean D(real)^2; then one
generator update on -mean D(G(z)) (D's weights get no gradient). Adam (lr 1e-4, betas (0, 0.99)) on both.
Random tensors stand in for the data: the data pipeline is not what is measured here.

Contract (as the bench's other scripts): argv `--batch --steps --warmup --threads` plus the network's options
`--size --channels --latent --g-embed --d-embed --g-depths (3 comma-separated) --d-depth --heads --mlp-ratio
--patch --n-critic --gp-lambda --drift` (defaults: the family's defaults at 28x28x1, Fashion-MNIST's shape);
the last stdout line is JSON with `images_per_sec` (images of the generator's batch per second),
`params` (trainable parameters of G and D together) and `peak_rss_mb` (resource.getrusage); `--serve`
warms up once and repeats per stdin line (torch_bench.py's loop, which prints these lines).
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_bench import run

EMBED_STD = 0.02


def xavier_linear(fan_in, fan_out, bias=True):
    lin = nn.Linear(fan_in, fan_out, bias=bias)
    nn.init.normal_(lin.weight, 0.0, math.sqrt(2 / (fan_in + fan_out)))
    if bias:
        nn.init.zeros_(lin.bias)
    return lin


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q = xavier_linear(dim, dim, bias=False)
        self.k = xavier_linear(dim, dim, bias=False)
        self.v = xavier_linear(dim, dim, bias=False)
        self.proj = xavier_linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        d = c // self.heads

        def split(y):
            return y.view(n, t, self.heads, d).transpose(1, 2)  # [N, H, T, d]

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = torch.matmul(q * (1 / math.sqrt(d)), k.transpose(-1, -2))  # the scale on q, as Gantry
        mixed = torch.matmul(torch.softmax(scores, -1), v)
        return self.proj(mixed.transpose(1, 2).reshape(n, t, c))


def to_windows(x, s):
    """[N, H, W, C] -> [N * (H/s) * (W/s), s * s, C], as toWindows."""
    n, h, w, c = x.shape
    t = x.reshape(n * (h // s), s, w // s, s * c).transpose(1, 2)
    return t.reshape(n * (h // s) * (w // s), s * s, c)


def from_windows(x, shape, s):
    n, h, w, c = shape
    t = x.reshape(n * (h // s), w // s, s, s * c).transpose(1, 2)
    return t.reshape(n, h, w, c)


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, grid=None, window=None):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp1 = xavier_linear(dim, dim * mlp_ratio)
        self.mlp2 = xavier_linear(dim * mlp_ratio, dim)
        self.grid, self.window = grid, window

    def attend(self, h):
        if self.grid is None or self.window == self.grid:
            return self.attn(h)
        n, _, c = h.shape
        shape = (n, self.grid, self.grid, c)
        mixed = self.attn(to_windows(h.reshape(shape), self.window))
        return from_windows(mixed, shape, self.window).reshape(h.shape)

    def forward(self, x):
        a = x + self.attend(self.ln1(x))
        return a + self.mlp2(F.gelu(self.mlp1(self.ln2(a))))


def pixel_shuffle(x, r):
    """depth_to_space on NHWC: [N, H, W, r*r*C] -> [N, H*r, W*r, C], as layers.ts' pixelShuffle."""
    n, h, w, depth = x.shape
    c = depth // (r * r)
    t = x.reshape(n * h, w, r, r * c).transpose(1, 2)
    return t.reshape(n, h * r, w * r, c)


class G(nn.Module):
    def __init__(self, a):
        super().__init__()
        bottom = a.size // 4
        self.stages = [(bottom * 2**i, a.g_embed // 4**i) for i in range(3)]
        grid0, dim0 = self.stages[0]
        self.fc = xavier_linear(a.latent, grid0 * grid0 * dim0)
        # Xavier of the first linear uses (latent, dim0), as buildTransgan does.
        nn.init.normal_(self.fc.weight, 0.0, math.sqrt(2 / (a.latent + dim0)))
        self.pos = nn.ParameterList(
            nn.Parameter(torch.randn(grid * grid, dim) * EMBED_STD) for grid, dim in self.stages
        )
        self.blocks = nn.ModuleList(
            nn.ModuleList(Block(dim, a.heads, a.mlp_ratio, grid, bottom) for _ in range(depth))
            for (grid, dim), depth in zip(self.stages, a.g_depths)
        )
        last = self.stages[-1][1]
        self.out = xavier_linear(last, a.channels)
        self.side, self.channels = a.size, a.channels

    def forward(self, z):
        n = z.shape[0]
        grid0, dim0 = self.stages[0]
        x = self.fc(z).view(n, grid0 * grid0, dim0)
        for i, ((grid, dim), blocks) in enumerate(zip(self.stages, self.blocks)):
            if i > 0:
                pgrid, pdim = self.stages[i - 1]
                x = pixel_shuffle(x.reshape(n, pgrid, pgrid, pdim), 2).reshape(n, grid * grid, dim)
            x = x + self.pos[i]
            for b in blocks:
                x = b(x)
        return torch.tanh(self.out(x)).view(n, self.side, self.side, self.channels)


class D(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.patch = a.patch
        grid = a.size // a.patch
        patch_dim = a.patch * a.patch * a.channels
        self.embed = xavier_linear(patch_dim, a.d_embed)
        nn.init.normal_(self.embed.bias, 0.0, 1 / math.sqrt(3 * patch_dim))
        self.cls = nn.Parameter(torch.randn(1, 1, a.d_embed) * EMBED_STD)
        self.pos = nn.Parameter(torch.randn(grid * grid + 1, a.d_embed) * EMBED_STD)
        self.blocks = nn.ModuleList(Block(a.d_embed, a.heads, a.mlp_ratio) for _ in range(a.d_depth))
        self.ln = nn.LayerNorm(a.d_embed, eps=1e-5)
        self.head = xavier_linear(a.d_embed, 1)

    def forward(self, x):
        n = x.shape[0]
        pieces = to_windows(x, self.patch)  # [N * T, patch * patch, C], T patches an image
        tokens = self.embed(pieces.reshape(pieces.shape[0], -1)).view(n, -1, self.embed.out_features)
        h = torch.cat([self.cls.expand(n, -1, -1), tokens], 1) + self.pos
        for b in self.blocks:
            h = b(h)
        return self.head(self.ln(h)[:, 0]).view(n)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--latent", type=int, default=128)
    p.add_argument("--g-embed", type=int, default=128)
    p.add_argument("--d-embed", type=int, default=64)
    p.add_argument("--g-depths", default="2,2,1")
    p.add_argument("--d-depth", type=int, default=3)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--mlp-ratio", type=int, default=4)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--n-critic", type=int, default=4)
    p.add_argument("--gp-lambda", type=float, default=10.0)
    p.add_argument("--drift", type=float, default=0.001)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--serve", action="store_true", help="repeat on each stdin line (see torch_bench.py)")
    a = p.parse_args()
    a.g_depths = [int(x) for x in a.g_depths.split(",")]
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    g, d = G(a), D(a)
    params = sum(x.numel() for m in (g, d) for x in m.parameters() if x.requires_grad)
    opt_g = torch.optim.Adam(g.parameters(), lr=a.lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=a.lr, betas=(0.0, 0.99))
    real_set = torch.rand(a.batch, a.size, a.size, a.channels) * 2 - 1

    def critic_update():
        real = real_set
        with torch.no_grad():
            fake = g(torch.randn(a.batch, a.latent))
        eps = torch.rand(a.batch).view(-1, 1, 1, 1)
        r, f = d(real), d(fake)
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(d(mixed).sum(), mixed, create_graph=True)
        norm = torch.sqrt(grad.square().sum((1, 2, 3)) + 1e-12)
        penalty = a.gp_lambda * (norm - 1).square().mean()
        loss = f.mean() - r.mean() + penalty + a.drift * r.square().mean()
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        return loss

    def step():
        for _ in range(a.n_critic):
            loss_d = critic_update()
        d.requires_grad_(False)
        loss_g = -d(g(torch.randn(a.batch, a.latent))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        d.requires_grad_(True)
        return loss_d.item() + loss_g.item()

    run(step, a, params, {"size": a.size, "channels": a.channels})


if __name__ == "__main__":
    main()
