"""Transfer to a larger supercell: free energy after importance-weight / neural-MCMC correction.

    python bench/bench_transfer.py [--quick] [--ising-temperatures 3.0 2.269] [--cuau-temperature 1200]

The demonstrations the neural-sampler issue asks for: a MAM transformer trained with
:func:`lattherm.training.variational.train` on a small supercell is loaded on a larger one by
:func:`lattherm.transfer.transfer` (rotary encodings rebuilt from the new lattice, weights
kept), evaluated as it is ("zero-shot") and after a few fine-tuning steps on the large cell,
and its samples corrected by importance weights (F_IS, ESS) and neural MCMC (energy).

Cases: Ising 10x10 -> 20x20 (periodic, J = 1) at each of ``--ising-temperatures``; CuAu
2x2x4 -> 4x4x8 primitive FCC cells (16 -> 128 sites, the published CE), canonical x = 0.5 at
``--cuau-temperature`` (default 1200 K, disordered; the 128-site cell orders near 700 K).

References: Ising: Kaufman's exact finite-lattice F and E (no error). CuAu 128 sites:
thermodynamic integration of the mean energy of a batched swap-move MCMC scan on a uniform beta
grid from 0 to the target (:func:`lattherm.mcmc.integration.integrate_free_energy`, not-a-knot
spline; the trapezoid value is reported too, and their difference bounds the quadrature error);
its energy reference is the scan's last grid point. The same scan settings are run on the
16-site cell and checked against exact enumeration, which validates the reference method.
The small-cell model is also evaluated on its own cell against the exact result (Kaufman or
enumeration), to separate training error from transfer error.

Verdict per evaluation: ``within_error_bar`` = |F_IS - F_ref| <= 2 sigma with sigma the IS and
reference statistical errors in quadrature, and a finite, positive ESS. Note that F_IS is biased
upwards by about var(w) / (2 M beta) when the ESS is small, so a small ESS with a tiny error bar
can fail the test although the estimator is consistent.
Writes bench/results/transfer.json.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

import benchlib
from lattherm.ce.published import write_published_ce
from lattherm.exact.enumeration import exact_thermo
from lattherm.exact.kaufman import ising_thermo
from lattherm.mcmc.integration import integrate_free_energy
from lattherm.mcmc.samplers import scan
from lattherm.models import build_model
from lattherm.sampling.evaluate import evaluate
from lattherm.systems import build_system
from lattherm.training.variational import TrainConfig, train
from lattherm.transfer import transfer

PASS_SIGMAS = 2.0  # |F_IS - F_ref| <= PASS_SIGMAS * combined error counts as "within the error bar"


def settings(quick: bool) -> dict:
    """Per-system training, transfer and reference settings."""
    if quick:
        # sized for one core of a 2-core CPU: a training step of the 10x10 model at batch 64 takes ~0.4 s
        neural = {"transformer": {"d_model": 32, "n_head": 2, "n_layer": 2, "attention_shells": 2}, "train_steps": 400,
                  "batch": 64, "lr": 2e-3, "anneal": 0.98, "finetune_steps": 10,
                  "n_samples": 4000, "n_samples_small": 4000, "mcmc_chains": 16, "mcmc_steps": 100}
        ti = {"n_betas": 7, "chains": 8, "sweeps": 160, "burn_in": 20}
    else:
        neural = {"transformer": {"d_model": 64, "n_head": 4, "n_layer": 3, "attention_shells": 2}, "train_steps": 3000,
                  "batch": 256, "lr": 1e-3, "anneal": 0.998, "finetune_steps": 200,
                  "n_samples": 50000, "n_samples_small": 20000, "mcmc_chains": 64, "mcmc_steps": 500}
        ti = {"n_betas": 21, "chains": 128, "sweeps": 2000, "burn_in": 200}
    return {"ising": neural, "cuau": dict(neural), "ti": ti}


def deviation(value: float, value_err: float, reference: float, reference_err: float) -> dict:
    """value - reference in units of the combined error, and the verdict at PASS_SIGMAS."""
    sigma = math.hypot(value_err, reference_err)
    diff = value - reference
    z = diff / sigma if sigma > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    return {"diff": diff, "sigma": sigma, "z": z, "within": bool(abs(diff) <= PASS_SIGMAS * sigma)}


def train_small(system, temperature: float, cfg: dict, out_dir: Path, device: str, seed: int = 0):
    """Train the transformer on the small cell; returns the model, its checkpoint and a summary."""
    config = TrainConfig(steps=cfg["train_steps"], batch_size=cfg["batch"], lr=cfg["lr"], anneal=cfg["anneal"],
                         temperature=temperature, checkpoint_every=cfg["train_steps"], seed=seed, device=device)
    torch.manual_seed(seed)
    model = build_model({"kind": "transformer", **cfg["transformer"]}, system.lattice)
    start = time.perf_counter()
    result = train(model, system, config, out_dir=out_dir, progress=True)
    last = result.log.iloc[-20:]  # the last steps, all at the target beta once annealing is over
    return model, result.checkpoint_path, {
        "train_config": asdict(config), "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": float(result.log.wall_time.iloc[-1]),
        "wall_seconds_including_checkpoint": time.perf_counter() - start,
        "last20_mean_ESS": float(last.ESS.mean()), "last20_mean_F_q": float(last.F_q.mean()),
        "final_beta_fraction": float(result.log.beta.iloc[-1] / system.beta(temperature)),
    }


def summarize_estimate(ev: dict, F_ref: float, F_ref_err: float, E_ref: float, E_ref_err: float) -> dict:
    """The figures of one evaluation (IS and neural MCMC) against the reference."""
    n = ev["n_sites"]
    f = deviation(ev["free_energy"], ev["free_energy_err"], F_ref, F_ref_err)
    e = deviation(ev["energy"], ev["energy_err"], E_ref, E_ref_err)
    ess_ok = math.isfinite(ev["ess"]) and ev["ess"] > 0
    return {
        "n_sites": n, "n_samples": ev["n_samples"], "ess_per_sample": ev["ess"],
        "effective_samples": ev["ess"] * ev["n_samples"],
        "F_IS_per_site": ev["free_energy_per_site"], "F_IS_per_site_err": ev["free_energy_per_site_err"],
        "F_q_per_site": ev["variational_free_energy"] / n,
        "F_ref_per_site": F_ref / n, "F_ref_per_site_err": F_ref_err / n,
        "dF_per_site": f["diff"] / n, "dF_sigma_per_site": f["sigma"] / n, "dF_in_sigma": f["z"],
        "within_error_bar": bool(f["within"] and ess_ok),
        "E_mcmc_per_site": ev["energy"] / n, "E_mcmc_per_site_err": ev["energy_err"] / n,
        "E_ref_per_site": E_ref / n, "E_ref_per_site_err": E_ref_err / n, "dE_in_sigma": e["z"],
        "E_within_error_bar": e["within"],
        "mcmc_acceptance": ev["acceptance"], "mcmc_tau_int_energy": ev["tau_int_energy"],
        **({"finetune_steps": ev["finetune_steps"], "finetune_last_F_q_per_site": ev["finetune_last_F_q"] / n}
           if "finetune_steps" in ev else {}),
    }


def transfer_both(checkpoint: Path, large, temperature: float, cfg: dict, refs: tuple, device: str,
                  seed: int) -> dict:
    """Zero-shot and fine-tuned transfer of ``checkpoint`` to ``large``, each against ``refs``."""
    out = {}
    for label, steps in (("zero_shot", 0), ("finetuned", cfg["finetune_steps"])):
        start = time.perf_counter()
        ev = transfer(checkpoint, large, temperature=temperature, finetune_steps=steps,
                      n_samples=cfg["n_samples"], mcmc_chains=cfg["mcmc_chains"], mcmc_steps=cfg["mcmc_steps"],
                      seed=seed, device=device, progress=True)
        out[label] = {**summarize_estimate(ev, *refs), "seconds": time.perf_counter() - start}
        print_row(f"  {large.name} {label}", out[label])
    return out


def print_row(label: str, r: dict) -> None:
    print(f"{label:34s} F_IS/N = {r['F_IS_per_site']:.6f} +- {r['F_IS_per_site_err']:.1e} "
          f"ref {r['F_ref_per_site']:.6f} +- {r['F_ref_per_site_err']:.1e} ({r['dF_in_sigma']:+.1f} sigma), "
          f"ESS {r['ess_per_sample']:.3g}, E/N {r['E_mcmc_per_site']:.5f} vs {r['E_ref_per_site']:.5f} "
          f"({r['dE_in_sigma']:+.1f} sigma), acc {r['mcmc_acceptance']:.2f}", flush=True)


def ising_case(temperature: float, cfg: dict, tmp: Path, device: str) -> dict:
    small = build_system({"model": "ising", "lattice": "square", "train_size": [10, 10]}, name="ising_10x10")
    large = build_system({"model": "ising", "lattice": "square", "train_size": [20, 20]}, name="ising_20x20")
    beta = small.beta(temperature)
    exact = {L: ising_thermo(L, L, [beta]).iloc[0] for L in (10, 20)}
    model, ckpt, training = train_small(small, temperature, cfg, tmp / f"ising_{temperature:g}", device)
    ev = evaluate(model, small, temperature, n_samples=cfg["n_samples_small"], mcmc_chains=cfg["mcmc_chains"],
                  mcmc_steps=cfg["mcmc_steps"], seed=1)
    small_row = summarize_estimate(ev, float(exact[10].free_energy), 0.0, float(exact[10].energy), 0.0)
    print_row(f"  {small.name} (training cell)", small_row)
    refs = (float(exact[20].free_energy), 0.0, float(exact[20].energy), 0.0)
    return {"case": f"Ising 10x10 -> 20x20, T = {temperature:g}", "temperature": temperature, "beta": beta,
            "reference": "Kaufman exact finite-lattice F and E", "training": training, "small_cell": small_row,
            **transfer_both(ckpt, large, temperature, cfg, refs, device, seed=2)}


def thermodynamic_integration(system, temperature: float, ti: dict, device: str, seed: int) -> dict:
    """F and E at ``temperature`` from a swap-move scan on a uniform beta grid starting at 0."""
    beta = system.beta(temperature)
    betas = np.linspace(0.0, beta, ti["n_betas"])
    start = time.perf_counter()
    table = scan(system.hamiltonian.to(device), betas, ti["chains"], ti["sweeps"], move="swap", n_ones=system.n_ones,
                 burn_in=ti["burn_in"], observables={}, seed=seed, progress=True,
                 temperatures=[system.temperature(b) for b in betas])
    seconds = time.perf_counter() - start
    n = system.n_sites
    ints = {m: integrate_free_energy(betas, table.energy, n, n_ones=system.n_ones, energy_errors=table.energy_err,
                                     method=m).iloc[-1] for m in ("spline", "trapezoid")}
    return {"F": float(ints["spline"].free_energy), "F_err": float(ints["spline"].free_energy_err),
            "F_trapezoid": float(ints["trapezoid"].free_energy),
            "quadrature_diff_per_site": float(ints["spline"].free_energy - ints["trapezoid"].free_energy) / n,
            "E": float(table.energy.iloc[-1]), "E_err": float(table.energy_err.iloc[-1]),
            "max_tau_int": float(table.tau_int.max()), "min_acceptance": float(table.acceptance.min()),
            "seconds": seconds, "betas": betas.tolist()}


def cuau_case(temperature: float, cfg: dict, ti: dict, tmp: Path, device: str) -> dict:
    ce_file = write_published_ce(tmp / "cuau.json")
    spec = {"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "ensemble": "canonical", "concentration": 0.5}
    small = build_system({"train_size": [2, 2, 4], **spec}, ce_file=ce_file, name="cuau_2x2x4")
    large = build_system({"train_size": [4, 4, 8], **spec}, ce_file=ce_file, name="cuau_4x4x8")
    beta = small.beta(temperature)

    # the reference method, validated where enumeration is exact (16 sites, C(16, 8) states)
    exact_small = exact_thermo(small.hamiltonian, [beta], n_ones=small.n_ones).iloc[0]
    ti_small = thermodynamic_integration(small, temperature, ti, device, seed=11)
    ti_check = deviation(ti_small["F"], ti_small["F_err"], float(exact_small.free_energy), 0.0)
    print(f"  TI check 16 sites: F/N {ti_small['F'] / 16:.6f} +- {ti_small['F_err'] / 16:.1e} vs exact "
          f"{float(exact_small.free_energy) / 16:.6f} ({ti_check['z']:+.1f} sigma)", flush=True)
    ti_large = thermodynamic_integration(large, temperature, ti, device, seed=12)
    print(f"  TI 128 sites: F/N {ti_large['F'] / 128:.6f} +- {ti_large['F_err'] / 128:.1e} "
          f"(spline - trapezoid {ti_large['quadrature_diff_per_site']:+.1e}) in {ti_large['seconds']:.0f} s",
          flush=True)

    model, ckpt, training = train_small(small, temperature, cfg, tmp / f"cuau_{temperature:g}", device)
    ev = evaluate(model, small, temperature, n_samples=cfg["n_samples_small"], mcmc_chains=cfg["mcmc_chains"],
                  mcmc_steps=cfg["mcmc_steps"], seed=1)
    small_row = summarize_estimate(ev, float(exact_small.free_energy), 0.0, float(exact_small.energy), 0.0)
    print_row(f"  {small.name} (training cell)", small_row)
    refs = (ti_large["F"], ti_large["F_err"], ti_large["E"], ti_large["E_err"])
    return {"case": f"CuAu 2x2x4 -> 4x4x8 (16 -> 128 sites), x = 0.5, {temperature:g} K",
            "temperature": temperature, "beta": beta, "energy_unit": "eV",
            "reference": "thermodynamic integration of a swap-move MCMC scan (spline; trapezoid reported)",
            "reference_ti": ti_large,
            "reference_check_16_sites": {**ti_small, "F_exact": float(exact_small.free_energy),
                                         "dF_in_sigma": ti_check["z"], "within": ti_check["within"]},
            "training": training, "small_cell": small_row,
            **transfer_both(ckpt, large, temperature, cfg, refs, device, seed=2)}


def headline_rows(case: dict, short: str) -> list[dict]:
    rows = []
    for label in ("zero_shot", "finetuned"):
        r = case[label]
        verdict = "within" if r["within_error_bar"] else "NOT within"
        steps = f", {r['finetune_steps']} fine-tuning steps" if label == "finetuned" else ", no fine-tuning"
        rows.append({"metric": f"F_IS/N {short}{steps}: {r['dF_in_sigma']:+.1f} sigma ({verdict} {PASS_SIGMAS:g}), "
                               f"ESS {r['ess_per_sample']:.3g}, vs reference",
                     "value": r["F_IS_per_site"], "baseline": r["F_ref_per_site"],
                     "ratio": r["F_IS_per_site"] / r["F_ref_per_site"]})
    return rows


def main() -> None:
    p = benchlib.parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--ising-temperatures", type=float, nargs="+", default=[3.0], help="in J / k_B")
    p.add_argument("--cuau-temperature", type=float, default=1200.0, help="kelvin")
    p.add_argument("--systems", nargs="+", choices=["ising", "cuau"], default=["ising", "cuau"])
    p.add_argument("--samples", type=int, default=None, help="importance samples on the large cells (default by mode)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = settings(args.quick)
    if args.samples is not None:
        for system in ("ising", "cuau"):
            cfg[system]["n_samples"] = args.samples
    start = time.perf_counter()
    cases, headline = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for temperature in args.ising_temperatures if "ising" in args.systems else []:
            print(f"Ising 10x10 -> 20x20 at T = {temperature:g}", flush=True)
            cases.append(ising_case(temperature, cfg["ising"], Path(tmp), args.device))
            headline += headline_rows(cases[-1], f"Ising 10x10->20x20 T={temperature:g}")
        if "cuau" in args.systems:
            print(f"CuAu 2x2x4 -> 4x4x8 at {args.cuau_temperature:g} K", flush=True)
            cases.append(cuau_case(args.cuau_temperature, cfg["cuau"], cfg["ti"], Path(tmp), args.device))
            headline += headline_rows(cases[-1], f"CuAu 16->128 sites {args.cuau_temperature:g} K")
    total = time.perf_counter() - start
    print(f"total {total:.0f} s")
    benchlib.write_result("transfer", {"quick": args.quick, "threads": args.threads, "device": args.device,
                                       "systems": args.systems, "ising_temperatures": args.ising_temperatures,
                                       "cuau_temperature_K": args.cuau_temperature,
                                       "pass_rule": f"|F_IS - F_ref| <= {PASS_SIGMAS:g} x hypot(IS err, ref err) "
                                                    "and finite positive ESS", **cfg},
                          {"cases": cases, "total_seconds": total, "headline": headline}, args.out)


if __name__ == "__main__":
    main()
