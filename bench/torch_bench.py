"""The timing loop and output of the bench's PyTorch scripts (bench/*_pytorch.py), the contract that
bench/pytorch-run.ts reads.

Every script takes `--batch --steps --warmup --threads` (and `--serve`) plus options of its network, builds
the same networks as Gantry's family, and calls `run`. Its last stdout line is one JSON object with at
least `images_per_sec` (over the timed steps), `params` (trainable parameters of G and D together) and
`peak_rss_mb` (the process's peak resident set, resource.getrusage).

Without `--serve`: `warmup` untimed steps, then `steps` timed ones, then that line.
With `--serve` (how `npm run bench` runs them, so that warm-up is paid once and repeats can alternate with
Gantry's): after the warm-up a line `{"ready": true, "params": ...}`; then for each line read on stdin one
repeat of `steps` timed steps and a line `{"images_per_sec": ...}`; at the end of stdin the last line, its
`images_per_sec` the median of the repeats and `repeats` all of them.
"""
import json
import resource
import statistics
import sys
import time

import torch


def add_loop_args(p, batch, steps, warmup):
    """The contract's options, with the script's defaults."""
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--warmup", type=int, default=warmup)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--serve", action="store_true", help="repeat on each stdin line (see torch_bench.py)")


def setup(a, seed=0):
    """One thread (or `--threads`), a fixed seed."""
    torch.set_num_threads(a.threads)
    torch.manual_seed(seed)


def param_count(*modules):
    """Trainable parameters of the modules together."""
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


def peak_rss_mb():
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(step, a, params, info):
    """Warm-up, timed steps as the contract says, and the JSON lines; `info` is added to the last one."""
    for _ in range(a.warmup):
        step()

    def timed():
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        dt = time.perf_counter() - t0
        return {"images_per_sec": a.steps * a.batch / dt, "seconds_per_step": dt / a.steps}

    if a.serve:
        _emit({"ready": True, "params": params})
        repeats = []
        while sys.stdin.readline():
            r = timed()
            repeats.append(r["images_per_sec"])
            _emit(r)
        last = {"images_per_sec": statistics.median(repeats) if repeats else None, "repeats": repeats}
    else:
        last = timed()
    _emit({**last, "params": params, "peak_rss_mb": peak_rss_mb(), "batch": a.batch, "threads": a.threads,
           "torch": torch.__version__, **info})
