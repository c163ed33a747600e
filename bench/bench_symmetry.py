"""The lattice-symmetry mixture of the neural samplers (``lattice_symmetric``), with and without,
at the same training budget: its F against the exact one, ESS and CPU cost.

    python bench/bench_symmetry.py [--quick] [--cases cuau450 cuau700 ising8] [--samples N]

Cases:

- ``cuau450``, ``cuau700``: the published CuAu cluster expansion on 16 fcc sites (2x2x4 primitive
  repeats, point group about a site: 12 operations), canonical x = 0.5, exact F by enumeration.
  Models: config.yaml's ``made`` (both temperatures) and ``mam`` (450 K only: its mixture costs
  about 20 CPU-min of training here) at config.yaml's training settings (400 steps of 256,
  lr 3e-3, anneal 0.985: the default run's CuAu jobs), trained without (``plain``) and with
  (``symmetric``) the mixture; the plain-trained model is also sampled through the mixture
  (``plain, sampled symmetric``: no extra training cost, |S| log_prob passes per sample).
- ``ising8``: periodic Ising 8x8 at beta_c (exact F: Kaufman), the patched physics-logit
  transformer of bench_time_to_f / bench_ablation (2x2 patches, Z2 auto: on) at bench_ablation's
  budget (250 steps of 128, lr 2e-3, anneal 0.98), point group 8 operations.

One torch thread; CPU seconds are ``time.process_time`` of this process (the machine may be
shared). F is importance-sampled from ``--samples`` draws (seed 1). Per row: F - F_exact per
site in meV (CuAu) or in units of J (Ising), in sigmas, ESS per sample, training CPU-s and
sampling CPU-s per 1000 samples; per case the ESS ratio and training-cost ratio of symmetric
to plain. Results are written after every row to bench/results/symmetry.json.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
import yaml

import benchlib
from bench_ablation import enumerated_free_energy
from bench_time_to_f import TRANSFORMER_PATCH
from lattherm.ce.published import write_published_ce
from lattherm.exact.kaufman import BETA_C, ising_thermo
from lattherm.models import build_model
from lattherm.models.symmetric import LatticeSymmetric, Z2Symmetric
from lattherm.sampling.evaluate import importance_estimates
from lattherm.systems import build_system
from lattherm.training.variational import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
DEFAULT_TRAINING = {"steps": 400, "batch_size": 256, "lr": 3e-3, "anneal": 0.985}  # config.yaml's `training`
ABLATION_TRAINING = {"steps": 250, "batch_size": 128, "lr": 2e-3, "anneal": 0.98}  # bench_ablation's


def cases(ce_file: Path) -> dict:
    """Per case: system, temperature, exact F, models {label: spec}, training settings, energy scale per site."""
    cuau = build_system({"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "ensemble": "canonical",
                         "concentration": 0.5, "train_size": [2, 2, 4]}, ce_file=ce_file)
    ising = build_system({"model": "ising", "lattice": "square", "train_size": [8, 8]})
    made, mam = ({name: CONFIG["models"][name]} for name in ("made", "mam"))
    return {
        "cuau450": lambda: (cuau, 450.0, enumerated_free_energy(cuau, 450.0), {**made, **mam}, DEFAULT_TRAINING),
        "cuau700": lambda: (cuau, 700.0, enumerated_free_energy(cuau, 700.0), made, DEFAULT_TRAINING),
        "ising8": lambda: (ising, 1 / BETA_C, float(ising_thermo(8, 8, [BETA_C]).free_energy.iloc[0]),
                           {"transformer_physics_patch": TRANSFORMER_PATCH}, ABLATION_TRAINING),
    }


def estimate(model, system, temperature: float, exact: float, samples: int, meV: bool) -> dict:
    t0 = time.process_time()
    est = importance_estimates(model, system, temperature, samples, None, generator=torch.Generator().manual_seed(1))
    sampling = time.process_time() - t0
    scale = 1e3 / system.n_sites if meV else 1.0 / system.n_sites
    error = est["free_energy"] - exact
    return {"free_energy": est["free_energy"], "free_energy_err": est["free_energy_err"],
            "error_per_site": error * scale, "error_per_site_err": est["free_energy_err"] * scale,
            "unit": "meV/site" if meV else "J/site", "sigmas": error / est["free_energy_err"], "ess": est["ess"],
            "sampling_cpu_seconds_per_1000": 1000 * sampling / samples}


def run(spec: dict, symmetric: bool, system, temperature: float, training: dict, quick: bool):
    torch.manual_seed(0)
    model = build_model({**spec, "lattice_symmetric": symmetric}, system.lattice)
    config = TrainConfig(temperature=temperature, seed=0, **training, checkpoint_every=training["steps"])
    if quick:
        config.steps = config.checkpoint_every = 3
    t0 = time.process_time()
    result = train(model, system, config, progress=False)
    return result.model, time.process_time() - t0


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=["cuau450", "cuau700", "ising8"])
    p.add_argument("--samples", type=int, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    samples = args.samples or (256 if args.quick else 4000)
    out = args.out or benchlib.RESULTS_DIR / "symmetry.json"
    results = {name: case for name, case in json.loads(out.read_text())["results"].items()
               if name != "headline"} if out.exists() else {}
    parameters = {"quick": args.quick, "samples": samples, "seed": 0, "torch_threads": 1, "clock": "process_time",
                  "cuau_training": DEFAULT_TRAINING, "ising_training": ABLATION_TRAINING}
    with tempfile.TemporaryDirectory() as tmp:
        all_cases = cases(write_published_ce(Path(tmp) / "cuau.json"))
        for name in args.cases:
            system, temperature, exact, models, training = all_cases[name]()
            meV = system.energy_unit == "eV"
            print(f"{name}: {system.n_sites} sites at T = {temperature:.4f}, exact F = {exact:.6f}", flush=True)
            case = results[name] = {"n_sites": system.n_sites, "temperature": temperature, "exact_free_energy": exact,
                                    "training": training, "rows": {}, "ratios": {}}
            for label, spec in models.items():
                rows = {}
                for symmetric in (False, True):
                    model, cpu = run(spec, symmetric, system, temperature, training, args.quick)
                    variant = "symmetric" if symmetric else "plain"
                    rows[variant] = {"model": {**spec, "lattice_symmetric": symmetric}, "train_cpu_seconds": cpu,
                                     "group_order": len(_lattice(model).perms) if symmetric else 1,
                                     **estimate(model, system, temperature, exact, samples, meV)}
                    if not symmetric:  # the plain-trained model, sampled through the mixture
                        wrapped = _symmetrised(model, system)
                        rows["plain, sampled symmetric"] = {**rows["plain"], "group_order": len(_lattice(wrapped).perms),
                                                            **estimate(wrapped, system, temperature, exact, samples, meV)}
                    for v in ([variant, "plain, sampled symmetric"] if not symmetric else [variant]):
                        r = rows[v]
                        print(f"  {label:26s} {v:25s} F error {r['error_per_site']:+.4f} +- {r['error_per_site_err']:.4f} "
                              f"{r['unit']} ({r['sigmas']:+.1f} sigma), ESS {r['ess']:.3f}, train {r['train_cpu_seconds']:.0f} "
                              f"CPU-s, {r['sampling_cpu_seconds_per_1000']:.2f} s/1000 samples", flush=True)
                    case["rows"][label] = rows
                    if "symmetric" in rows:
                        case["ratios"][label] = {
                            "ess_symmetric_over_plain": rows["symmetric"]["ess"] / max(rows["plain"]["ess"], 1e-300),
                            "train_cost_symmetric_over_plain": rows["symmetric"]["train_cpu_seconds"]
                            / rows["plain"]["train_cpu_seconds"],
                            "sampling_cost_symmetric_over_plain": rows["symmetric"]["sampling_cpu_seconds_per_1000"]
                            / rows["plain"]["sampling_cpu_seconds_per_1000"]}
                    benchlib.write_result("symmetry", parameters, {**results, "headline": headline(results)}, out)
    print(f"wrote {out}")


def _lattice(model) -> LatticeSymmetric:
    return model.base if isinstance(model, Z2Symmetric) else model


def _symmetrised(model, system):
    """The plain-trained model's network in the mixture (inside its spin flip, if any)."""
    if isinstance(model, Z2Symmetric):
        return Z2Symmetric(LatticeSymmetric(model.base, system.lattice))
    return LatticeSymmetric(model, system.lattice)


def headline(results: dict) -> list[dict]:
    """Per case and model: |F error| in sigmas and ESS per sample, symmetric (lattherm) against
    plain (baseline), and the training cost."""
    rows = []
    for name, case in results.items():
        for label, r in case["rows"].items():
            if "symmetric" not in r:
                continue
            on, off = r["symmetric"], r["plain"]
            what = f"{name} {label} ({case['n_sites']} sites, T = {case['temperature']:.4g}), point-group mixture vs plain"
            rows.append({"metric": f"|F - F_exact| in sigmas, {what}", "value": abs(on["sigmas"]),
                         "baseline": abs(off["sigmas"]), "ratio": abs(on["sigmas"]) / max(abs(off["sigmas"]), 1e-300)})
            rows.append({"metric": f"ESS per sample, {what}", "value": on["ess"], "baseline": off["ess"],
                         "ratio": on["ess"] / max(off["ess"], 1e-300)})
            rows.append({"metric": f"training CPU-s, {what}", "value": on["train_cpu_seconds"],
                         "baseline": off["train_cpu_seconds"],
                         "ratio": on["train_cpu_seconds"] / off["train_cpu_seconds"]})
    return rows

if __name__ == "__main__":
    main()
