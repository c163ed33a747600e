"""Feature ablation of the neural samplers (issue 12): physics-informed logits, patches and MC
refinement, each switched on and off in one run, with their effect on ESS and on time-to-F.

    python bench/bench_ablation.py [--quick] [--steps N] [--target 1e-4] [--cases ising8 cuau16]

Cases: periodic Ising 8x8 at beta_c (exact F: Kaufman) and the published CuAu cluster expansion
on 16 fcc sites (2x2x4 primitive repeats), canonical x = 0.5 at 700 K (exact F: enumeration).
Variants, all trained with one TrainConfig (``--steps`` steps of ``--batch``, Adam lr 2e-3,
anneal 0.98, seed 0, the same initial seed) and estimated from the same ``--samples`` samples:

- ``mam``: the transformer of config.yaml (``models.mam``, local attention, Z2 "auto": on for
  Ising, off for canonical CuAu), ``physics_logits: false``;
- ``+physics``: with the local Boltzmann factor in the logits;
- ``+patch``: with 4-site patches (2x2 on the square lattice, 2x2x1 on fcc), no physics logits;
- ``+physics+patch``: with physics logits and patches; a patch token carries the physics term
  of its whole patch (pair Hamiltonians only: not run on CuAu, whose cluster expansion the code
  does not support with patches);
- ``+physics+refine``: with physics logits and ``refine_sweeps`` (MC refinement and
  self-distillation, the system's flip / swap move);
- ``+physics+patch+refine``: all three (Ising only);
- ``made`` and ``made+physics``: MADE at bench_time_to_f's settings (width 4 per site, depth 3,
  Z2 "auto") without and with physics logits.

One torch thread; CPU seconds are ``time.process_time`` of this process (the machine may be
shared). Per variant: the importance-sampled F against the exact one (relative error, its error
bar, the distance in sigmas), ESS per sample, the variational F_q, training CPU-s, sampling CPU-s
per 1000 samples, and the CPU seconds to a relative F error bar of ``--target`` with training
charged, by bench_time_to_f's rule (the drawn samples' error bar extrapolated as
1/sqrt(samples) at the measured sampling rate; none where the estimate is off by > 2 sigma or the
ESS is below 0.01: "never within budget"). Per feature: ratios of ESS and time-to-F of the variant
with it to the variant without it. Results are written after every variant (and kept for cases
not rerun) to bench/results/ablation.json.

Measured (2026-12-06, both cases): 21 CPU-min, 37 min of wall time on the shared 2-core CPU;
the figures and what they say are in bench/README.md.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
import yaml

import benchlib
from bench_time_to_f import MADE_PHYSICS, MIN_ESS, neural_estimate, time_to_f
from lattherm.ce.published import write_published_ce
from lattherm.exact.enumeration import enumerate_energies, thermo_from_energies
from lattherm.exact.kaufman import BETA_C, ising_thermo
from lattherm.models import build_model
from lattherm.systems import build_system
from lattherm.training.variational import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
REFINE_SWEEPS = 4
# (feature, variant with it, variant without it): each ratio is with / without
FEATURES = [
    ("physics logits", "mam+physics", "mam"),
    ("patches", "mam+physics+patch", "mam+physics"),
    ("patches, no physics logits", "mam+patch", "mam"),
    ("refinement", "mam+physics+refine", "mam+physics"),
    ("patches, refined", "mam+physics+patch+refine", "mam+physics+refine"),
    ("refinement, patched", "mam+physics+patch+refine", "mam+physics+patch"),
    ("all three", "mam+physics+patch+refine", "mam"),
    ("physics logits (MADE)", "made+physics", "made"),
]


def variants(patch: list[int], patch_physics: bool) -> dict:
    """Per variant: model spec and refinement sweeps (with physics logits and patches together
    only where ``patch_physics``)."""
    mam = {**yaml.safe_load((ROOT / "config.yaml").read_text())["models"]["mam"], "z2_symmetric": "auto",
           "physics_logits": False}
    physics = {**mam, "physics_logits": True}
    out = {
        "mam": (mam, 0),
        "mam+physics": (physics, 0),
        "mam+patch": ({**mam, "patch": patch}, 0),
        "mam+physics+patch": ({**physics, "patch": patch}, 0),
        "mam+physics+refine": (physics, REFINE_SWEEPS),
        "mam+physics+patch+refine": ({**physics, "patch": patch}, REFINE_SWEEPS),
        "made": ({**MADE_PHYSICS, "physics_logits": False}, 0),
        "made+physics": (MADE_PHYSICS, 0),
    }
    if not patch_physics:
        del out["mam+physics+patch"], out["mam+physics+patch+refine"]
    return out


def cases(ce_file: Path) -> dict:
    """Per case: system, temperature, exact F, patch shape, whether physics logits take patches."""
    ising = build_system({"model": "ising", "lattice": "square", "train_size": [8, 8]})
    cuau = build_system({"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "ensemble": "canonical",
                         "concentration": 0.5, "train_size": [2, 2, 4]}, ce_file=ce_file)
    return {
        "ising8": lambda: (ising, 1 / BETA_C, float(ising_thermo(8, 8, [BETA_C]).free_energy.iloc[0]), [2, 2], True),
        "cuau16": lambda: (cuau, 700.0, enumerated_free_energy(cuau, 700.0), [2, 2, 1], False),
    }


def enumerated_free_energy(system, temperature: float) -> float:
    energies, n_ones = enumerate_energies(system.hamiltonian)
    table = thermo_from_energies(energies, n_ones, system.n_sites, [system.beta(temperature)],
                                 canonical_n_ones=system.n_ones)
    return float(table.free_energy.iloc[0])


def run_variant(spec: dict, sweeps: int, system, temperature: float, exact: float, args) -> dict:
    torch.manual_seed(0)
    model = build_model(spec, system.lattice)
    config = TrainConfig(temperature=temperature, steps=args.steps, batch_size=args.batch, lr=2e-3, anneal=0.98,
                         seed=0, checkpoint_every=args.steps, refine_sweeps=sweeps)
    t0 = time.process_time()
    result = train(model, system, config, progress=False)
    training = time.process_time() - t0
    ev, sampling = neural_estimate(result.model, system, temperature, args.samples)
    row = {"model": spec, "refine_sweeps": sweeps, "steps": args.steps, "batch_size": args.batch,
           "samples": args.samples, "free_energy": ev["free_energy"], "free_energy_err": ev["free_energy_err"],
           "variational_free_energy": ev["variational_free_energy"], "ess": ev["ess"],
           "z2_symmetric": ev["z2_symmetric"], "train_cpu_seconds": training,
           "train_cpu_seconds_per_step": training / args.steps, "sampling_seconds": sampling,
           "sampling_cpu_seconds_per_1000": 1000 * sampling / args.samples, "cpu_seconds": training + sampling}
    row.update(time_to_f(row, exact, 0.0, args.target))
    return row


def ratios(rows: dict) -> dict:
    """Per feature whose two variants ran: ESS and time-to-F of with / without (None where either
    never reaches the target within the budget)."""
    out = {}
    for feature, on, off in FEATURES:
        if on not in rows or off not in rows:
            continue
        a, b = rows[on], rows[off]
        t_on, t_off = a["seconds_to_target"], b["seconds_to_target"]
        out[feature] = {"with": on, "without": off, "ess_ratio": a["ess"] / max(b["ess"], 1e-300),
                        "seconds_to_target_ratio": t_on / t_off if t_on is not None and t_off is not None else None,
                        "abs_rel_error_ratio": abs(a["rel_error"]) / max(abs(b["rel_error"]), 1e-300),
                        "train_cost_ratio": a["train_cpu_seconds"] / b["train_cpu_seconds"]}
    return out


def headline(results: dict, target: float) -> list[dict]:
    rows = []
    for name, case in results.items():
        for feature, r in case["ratios"].items():
            on, off = case["variants"][r["with"]], case["variants"][r["without"]]
            label = f"{name}, {feature}: {r['with']} vs {r['without']}"
            rows.append({"metric": f"ESS per sample {label}", "value": on["ess"], "baseline": off["ess"],
                         "ratio": r["ess_ratio"]})
            rows.append({"metric": f"CPU s to F at relative error {target:g} (training charged; never: not within "
                                   f"2 sigma or ESS < {MIN_ESS:g}) {label}",
                         "value": _seconds(on), "baseline": _seconds(off), "ratio": r["seconds_to_target_ratio"]})
    return rows


def _seconds(row: dict):
    return "never" if row["seconds_to_target"] is None else row["seconds_to_target"]


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--target", type=float, default=1e-4, help="relative error bar of F to reach")
    p.add_argument("--cases", nargs="+", default=["ising8", "cuau16"])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--samples", type=int, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    args.steps = args.steps or (3 if args.quick else 250)
    args.samples = args.samples or (256 if args.quick else 4000)
    if args.quick:
        args.batch = min(args.batch, 32)
    out = args.out or benchlib.RESULTS_DIR / "ablation.json"
    # --cases reruns some cases and keeps the others' results from the last run
    results = {name: case for name, case in json.loads(out.read_text())["results"].items()
               if name != "headline"} if out.exists() else {}
    parameters = {"quick": args.quick, "steps": args.steps, "batch_size": args.batch, "lr": 2e-3, "anneal": 0.98,
                  "seed": 0, "samples": args.samples, "refine_sweeps": REFINE_SWEEPS,
                  "target_relative_error": args.target, "min_ess": MIN_ESS, "torch_threads": 1,
                  "clock": "process_time"}
    with tempfile.TemporaryDirectory() as tmp:
        all_cases = cases(write_published_ce(Path(tmp) / "cuau.json"))
        for name in args.cases:
            system, temperature, exact, patch, patch_physics = all_cases[name]()
            print(f"{name}: {system.n_sites} sites at T = {temperature:.4f}, exact F = {exact:.6f}", flush=True)
            case = results[name] = {"n_sites": system.n_sites, "temperature": temperature, "exact_free_energy": exact,
                                    "patch": patch, "variants": {}, "ratios": {}}
            for variant, (spec, sweeps) in variants(patch, patch_physics).items():
                row = case["variants"][variant] = run_variant(spec, sweeps, system, temperature, exact, args)
                seconds = row["seconds_to_target"]
                print(f"  {variant:26s} rel F error {row['rel_error']:+.2e} +- {row['rel_error_bar']:.1e} "
                      f"({row['sigmas']:+.1f} sigma), ESS {row['ess']:.4f}, train {row['train_cpu_seconds']:.0f} s, "
                      f"{row['sampling_cpu_seconds_per_1000']:.2f} s/1000 samples, time-to-F "
                      f"{'never' if seconds is None else f'{seconds:.0f} s'}", flush=True)
                case["ratios"] = ratios(case["variants"])
                # after every variant: a killed run keeps what it measured
                benchlib.write_result("ablation", parameters, {**results, "headline": headline(results, args.target)},
                                      out)
            for feature, r in case["ratios"].items():
                t = r["seconds_to_target_ratio"]
                print(f"  {feature:22s} ESS x{r['ess_ratio']:.3g}, time-to-F x{'-' if t is None else f'{t:.3g}'}")


if __name__ == "__main__":
    main()
