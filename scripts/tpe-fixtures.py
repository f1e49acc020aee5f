#!/usr/bin/python3
"""Reference values for the TPE searcher (packages/coordinator/src/search/tpe.ts, parzen.ts) from Optuna 3.1.

Writes packages/coordinator/src/search/fixtures/tpe-optuna.json, which tpe.test.ts reads; the project's setup
and tests never need Optuna. To regenerate (Debian's python3-optuna is 3.1.0):

    apt-get install -y python3-optuna
    /usr/bin/python3 scripts/tpe-fixtures.py   # then formats the file with the workspace's biome

Everything comes from Optuna's own code: default_gamma and default_weights, the sampler's
_get_observation_pairs and _split_observation_pairs, and the _ParzenEstimator objects that
TPESampler.sample_independent builds (captured as it builds them), evaluated at fixed points.

Two deliberate changes, made before anything is evaluated:
- Optuna 3.1's _truncnorm.logpdf leaves out the -log(scale) term of a scaled truncated normal, so a continuous
  parameter's estimator does not integrate to 1 and kernels weigh in proportion to their sigma
  (optuna/optuna#5109, fixed by #5110 in Optuna 3.5). The script restores the term, so the fixture holds the
  true densities; integer and categorical parameters are unaffected.
- The estimator sorts observations with numpy's default argsort (introsort), which orders equal observations
  arbitrarily; with unequal weights (the ramp from 25 observations on) that decides which of them gets which
  sigma. The script makes that sort stable (equal observations in the order given), as Gantry sorts them.
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe import _truncnorm
from optuna.samplers._tpe import parzen_estimator
from optuna.samplers._tpe import sampler as tpe_sampler
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.trial import TrialState, create_trial

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "packages/coordinator/src/search/fixtures/tpe-optuna.json")
BIOME = os.path.join(ROOT, "node_modules/.bin/biome")

if optuna.__version__ != "3.1.0":
    sys.exit(f"expected optuna 3.1.0 (python3-optuna), found {optuna.__version__}")
warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.WARNING)

_unscaled_logpdf = _truncnorm.logpdf


def _scaled_logpdf(x, a, b, loc=0, scale=1):
    return _unscaled_logpdf(x, a, b, loc=loc, scale=scale) - np.log(scale)


_truncnorm.logpdf = _scaled_logpdf  # optuna/optuna#5110


class _StableArgsortNumpy:
    """numpy for parzen_estimator.py, with argsort stable unless a kind is given."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def argsort(a, *args, **kwargs):
        if not args:
            kwargs.setdefault("kind", "stable")
        return np.argsort(a, *args, **kwargs)


parzen_estimator.np = _StableArgsortNumpy()

_built = []


class _Recorded(_ParzenEstimator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _built.append(self)


tpe_sampler._ParzenEstimator = _Recorded


def distribution(spec):
    """Gantry's ParameterSpec -> the Optuna distribution the brief maps it to."""
    if spec["kind"] == "values":
        return CategoricalDistribution(tuple(spec["values"]))
    kind = spec["distribution"]
    if kind == "uniform":
        return FloatDistribution(spec["min"], spec["max"])
    if kind == "log_uniform":
        return FloatDistribution(spec["min"], spec["max"], log=True)
    if kind == "int_uniform":
        return IntDistribution(spec["min"], spec["max"])
    raise ValueError(kind)


def points(spec):
    """Where densities are compared: a grid over the domain (external values)."""
    if spec["kind"] == "values":
        return list(spec["values"])
    lo, hi = spec["min"], spec["max"]
    if spec["distribution"] == "int_uniform":
        return list(range(lo, hi + 1))
    if spec["distribution"] == "log_uniform":
        return [float(v) for v in np.geomspace(lo, hi, 11)]
    return [float(v) for v in np.linspace(lo, hi, 11)]


def estimator_record(pe, name, spec, at):
    dist = pe._search_space[name]
    internal = np.asarray([dist.to_internal_repr(v) for v in at], dtype=float)
    if isinstance(dist, CategoricalDistribution):
        internal = internal.astype(int)
    rec = {"mixture": pe._weights.tolist()}
    if spec["kind"] == "values":
        rec["table"] = pe._categorical_weights[name].tolist()
    else:
        rec["mus"] = pe._mus[name].tolist()
        rec["sigmas"] = pe._sigmas[name].tolist()
        rec["low"] = float(pe._low[name])
        rec["high"] = float(pe._high[name])
    rec["points"] = list(at)
    rec["log_pdf"] = pe.log_pdf({name: internal}).tolist()
    return rec


def parzen_case(label, spec, observations, weights=None, prior_weight=1.0):
    params = _ParzenEstimatorParameters(
        consider_prior=True,
        prior_weight=prior_weight,
        consider_magic_clip=True,
        consider_endpoints=False,
        weights=tpe_sampler.default_weights,
        multivariate=False,
    )
    dist = distribution(spec)
    internal = np.asarray([dist.to_internal_repr(v) for v in observations], dtype=float)
    pe = _ParzenEstimator(
        {"x": internal},
        {"x": dist},
        params,
        None if weights is None else np.asarray(weights, dtype=float),
    )
    rec = {
        "label": label,
        "spec": spec,
        "observations": list(observations),
        "weights": (
            weights if weights is not None else tpe_sampler.default_weights(len(observations)).tolist()
        ),
        "prior_weight": prior_weight,
    }
    rec.update(estimator_record(pe, "x", spec, points(spec)))
    return rec


def gamma_fn(gamma):
    if gamma == 0.1:
        return tpe_sampler.default_gamma
    return lambda n: min(int(np.ceil(gamma * n)), 25)


def tpe_case(label, space, complete, pruned, running, config):
    """A study holding complete, then pruned, then running trials (the order suggestTpe is given them)."""
    study = optuna.create_study(direction="minimize")
    dists = {name: distribution(spec) for name, spec in space.items()}

    def add(state, params, **kw):
        used = {k: dists[k] for k in params}
        study.add_trial(create_trial(state=state, params=params, distributions=used, **kw))

    for t in complete:
        add(TrialState.COMPLETE, t["params"], value=t["value"])
    for t in pruned:
        # An earlier report too: Optuna ranks a pruned trial by its last (largest) step.
        first = max(1, t["step"] // 2)
        reports = {first: t["value"] + 1.0, t["step"]: t["value"]}
        add(TrialState.PRUNED, t["params"], intermediate_values=reports)
    for t in running:
        add(TrialState.RUNNING, t["params"])
    given = len(complete) + len(pruned) + len(running)

    gamma = gamma_fn(config["gamma"])
    sampler = optuna.samplers.TPESampler(
        n_startup_trials=config["startup_trials"],
        n_ei_candidates=config["n_ei_candidates"],
        prior_weight=config["prior_weight"],
        gamma=gamma,
        constant_liar=config["constant_liar"],
        seed=0,
    )
    trial = study.ask()  # running too: Optuna's constant liar sees it, without parameters
    frozen = study._storage.get_trial(trial._trial_id)
    rec = {
        "label": label,
        "space": space,
        "complete": complete,
        "pruned": pruned,
        "running": running,
        "config": config,
        "params": {},
    }
    for name in sorted(space):
        _, scores, _ = tpe_sampler._get_observation_pairs(study, [name], config["constant_liar"])
        n = sum(s < float("inf") for s, _ in scores)
        below, above = tpe_sampler._split_observation_pairs(scores, gamma(n), None)
        _built.clear()
        sampler.sample_independent(study, frozen, name, dists[name])
        assert len(_built) == 2, "expected the below and above estimators"
        rec["params"][name] = {
            "n": int(n),
            "n_below": int(gamma(n)),
            "below": [int(i) for i in below if i < given],
            "above": [int(i) for i in above if i < given],
            "l": estimator_record(_built[0], name, space[name], points(space[name])),
            "g": estimator_record(_built[1], name, space[name], points(space[name])),
        }
    return rec


def main():
    rs = np.random.RandomState(20230101)
    r6 = lambda v: float(round(v, 6))  # noqa: E731 (short, readable observation values)

    uniform = {"kind": "distribution", "distribution": "uniform", "min": -5.0, "max": 5.0}
    log_lr = {"kind": "distribution", "distribution": "log_uniform", "min": 1e-5, "max": 0.1}
    ints = {"kind": "distribution", "distribution": "int_uniform", "min": 1, "max": 10}
    wide_ints = {"kind": "distribution", "distribution": "int_uniform", "min": 0, "max": 100}
    choices = {"kind": "values", "values": [16, 32, 64, 128]}

    parzen = [
        parzen_case("float, prior only", uniform, []),
        parzen_case("float, one observation", uniform, [1.0]),
        parzen_case("float, three observations", uniform, [0.3, -2.1, 4.9]),
        parzen_case("float, two close observations", uniform, [0.5, 0.52]),
        parzen_case("float, 30 observations (ramp weights)", uniform, [r6(v) for v in rs.uniform(-5, 5, 30)]),
        parzen_case(
            "float, given weights, prior weight 2",
            uniform,
            [-4.0, -1.5, 0.0, 2.5, 3.0],
            weights=[0.2, 1.0, 0.5, 0.9, 0.1],
            prior_weight=2.0,
        ),
        parzen_case("log-float, prior only", log_lr, []),
        parzen_case("log-float, four observations", log_lr, [3e-5, 1e-3, 2e-3, 0.05]),
        parzen_case(
            "log-float, 40 observations (ramp weights)",
            log_lr,
            [r6(float(np.exp(v))) for v in rs.uniform(np.log(1e-5), np.log(0.1), 40)],
        ),
        parzen_case("int, prior only", ints, []),
        parzen_case("int, repeated observations", ints, [3, 3, 7]),
        parzen_case("int, endpoints", ints, [1, 10], prior_weight=0.5),
        parzen_case(
            "int, 60 observations (ramp weights)", wide_ints, [int(v) for v in rs.randint(0, 101, 60)]
        ),
        parzen_case("categorical, prior only", choices, []),
        parzen_case("categorical, observations", choices, [32, 32, 128]),
        parzen_case(
            "categorical, given weights, prior weight 3",
            choices,
            [16, 64, 64, 128],
            weights=[1.0, 0.25, 0.5, 0.75],
            prior_weight=3.0,
        ),
        parzen_case(
            "categorical, 30 observations (ramp weights)",
            choices,
            [int(v) for v in rs.choice([16, 32, 64, 128], 30)],
        ),
    ]

    def quad(x):
        return r6((x - 2.0) ** 2 + rs.normal(0, 0.1))

    wide = {"kind": "distribution", "distribution": "uniform", "min": -10.0, "max": 10.0}
    xs = [r6(v) for v in rs.uniform(-10, 10, 38)]
    complete_1d = [{"params": {"x": x}, "value": quad(x)} for x in xs[:30]]
    complete_1d[7]["value"] = complete_1d[3]["value"]  # a tie: kept in the order given
    pruned_1d = [
        {"params": {"x": x}, "step": step, "value": r6(v)}
        for x, step, v in zip(xs[30:35], [100, 300, 300, 200, 100], [5.0, 9.0, 2.0, 0.5, 0.1])
    ]
    running_1d = [{"params": {"x": x}} for x in xs[35:38]]
    base = {"startup_trials": 10, "gamma": 0.1, "n_ei_candidates": 24, "prior_weight": 1.0}

    space_multi = {
        "lr": log_lr,
        "layers": {**ints, "max": 8},
        "width": choices,
        "dropout": {**uniform, "min": 0.0, "max": 0.5},
    }

    def multi_params(i):
        p = {
            "lr": r6(float(np.exp(rs.uniform(np.log(1e-5), np.log(0.1))))),
            "layers": int(rs.randint(1, 9)),
            "width": int(rs.choice([16, 32, 64, 128])),
            "dropout": r6(rs.uniform(0.0, 0.5)),
        }
        if i % 9 == 4:
            del p["dropout"]  # a trial without the parameter: left out of its estimators only
        return p

    def multi_value(p):
        loss = (np.log10(p["lr"]) + 3) ** 2 + abs(p["layers"] - 4) + (p["width"] != 64)
        return r6(loss + rs.normal(0, 0.05))

    complete_m = []
    for i in range(40):
        p = multi_params(i)
        complete_m.append({"params": p, "value": multi_value(p)})
    pruned_m = []
    for i, step in enumerate([200, 200, 400, 100, 400, 200]):
        p = multi_params(i + 40)
        pruned_m.append({"params": p, "step": step, "value": multi_value(p)})
    running_m = [{"params": multi_params(i + 50)} for i in range(2)]

    few_xs = [r6(v) for v in rs.uniform(-10, 10, 12)]
    # Every third trial has the same value 1.0: ties, ranked in the order given.
    complete_few = [
        {"params": {"x": x}, "value": 1.0 if i % 3 == 0 else quad(x)} for i, x in enumerate(few_xs)
    ]

    many_xs = [r6(v) for v in rs.uniform(-10, 10, 300)]
    complete_many = [{"params": {"x": x}, "value": quad(x)} for x in many_xs]

    tpe = [
        tpe_case(
            "1-D float, constant liar",
            {"x": wide},
            complete_1d,
            pruned_1d,
            running_1d,
            {**base, "constant_liar": True},
        ),
        tpe_case(
            "1-D float, no constant liar",
            {"x": wide},
            complete_1d,
            pruned_1d,
            running_1d,
            {**base, "constant_liar": False},
        ),
        tpe_case(
            "mixed space, gamma 0.25, prior weight 2",
            space_multi,
            complete_m,
            pruned_m,
            running_m,
            {**base, "gamma": 0.25, "prior_weight": 2.0, "constant_liar": True},
        ),
        tpe_case(
            "12 trials, tied values", {"x": wide}, complete_few, [], [], {**base, "constant_liar": True}
        ),
        tpe_case(
            "300 trials: gamma capped at 25", {"x": wide}, complete_many, [], [], {**base, "constant_liar": True}
        ),
    ]

    out = {
        "generator": "scripts/tpe-fixtures.py",
        "optuna": optuna.__version__,
        "note": "true densities: Optuna 3.1 with the -log(scale) term of optuna/optuna#5110 restored",
        "gamma": [
            {"n": n, "n_below": tpe_sampler.default_gamma(n)}
            for n in [0, 1, 9, 10, 11, 30, 99, 100, 249, 250, 251, 1000]
        ],
        "weights": [
            {"n": n, "weights": tpe_sampler.default_weights(n).tolist()} for n in [0, 1, 24, 25, 26, 27, 40]
        ],
        "parzen": parzen,
        "tpe": tpe,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1, allow_nan=False)
        f.write("\n")
    # The repository's lint checks every JSON file's formatting: let biome lay it out.
    if os.path.exists(BIOME):
        subprocess.run([BIOME, "format", "--write", OUT], cwd=ROOT, check=True, capture_output=True)
    else:
        print(f"format it before committing: npx biome format --write {os.path.relpath(OUT, ROOT)}")
    print(f"wrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
