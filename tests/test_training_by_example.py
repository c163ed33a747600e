"""Training by example (training ``example_sweeps``): the draws of parallel tempering going on
beside training follow enumeration and resume exactly from the stream's state, the forward-KL
term brings back a mode the reverse KL misses, training with it resumes bit for bit, and bad
settings are one line naming the field."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import chi2

from lattherm.errors import LatthermError
from lattherm.exact.enumeration import enumerate_energies, exact_thermo
from lattherm.mcmc.samplers import BoltzmannStream
from lattherm.models import build_model
from lattherm.sampling import evaluate
from lattherm.systems import build_system
from lattherm.training import TrainConfig, train
from lattherm.models.symmetric import symmetry_images
from lattherm.training.variational import TrainingSettingsError

LADDER = {"temperatures": [8.0, 4.0, 3.0, 2.5, 2.0, 1.6, 1.3, 1.0], "chains": 16, "sweeps": 400, "burn_in": 50}


def ising_4x4():
    return build_system({"model": "ising", "lattice": "square", "train_size": [4, 4], "mcmc": LADDER})


SYSTEMS = {  # each system's own move over its own ladder: heat bath, tempering ladder of a glass, swaps
    "ising": {"model": "ising", "lattice": "square", "train_size": [3, 3],
              "mcmc": {"temperatures": [6.0, 3.0, 2.0, 1.5], "chains": 16, "sweeps": 1300, "burn_in": 50}},
    "edwards_anderson": {"model": "edwards_anderson", "lattice": "square", "train_size": [3, 3],
                         "mcmc": {"temperatures": [6.0, 2.0, 1.0, 0.7], "rungs": 6, "chains": 16, "sweeps": 1300,
                                  "burn_in": 50}},
    "canonical": {"model": "ising", "lattice": "square", "train_size": [3, 3], "ensemble": "canonical",
                  "concentration": 4 / 9, "mcmc": {"temperatures": [6.0, 2.0, 1.0], "chains": 16, "sweeps": 1300,
                                                   "burn_in": 50}},
}


def stream_samples(system, temperature: float, draws: int, seed: int) -> torch.Tensor:
    """``draws`` draws, 10 sweeps apart, of the system's stream at ``temperature``."""
    stream = BoltzmannStream(system, [temperature], 10, seed=seed)
    return torch.cat([stream.draw(k) for k in range(draws)])


def energy_chi_square_p(system, x: torch.Tensor, beta: float) -> float:
    """p-value of the energy histogram of ``x`` against the Boltzmann distribution at ``beta``
    (enumeration; classes expected fewer than 5 times pooled)."""
    energies, ones = enumerate_energies(system.hamiltonian)
    allowed = np.ones_like(ones, dtype=bool) if system.n_ones is None else ones == system.n_ones
    classes, inverse = np.unique(np.round(energies[allowed], 6), return_inverse=True)
    weights = np.exp(-beta * (energies[allowed] - energies[allowed].min()))
    expected = np.bincount(inverse, weights=weights / weights.sum() * len(x), minlength=len(classes))
    sampled = np.round(system.hamiltonian.energy(x).double().numpy(), 6)
    observed = np.array([(sampled == c).sum() for c in classes])
    assert observed.sum() == len(x)  # every sample has an allowed energy
    rare = expected < 5
    expected = np.append(expected[~rare], expected[rare].sum())
    observed = np.append(observed[~rare], observed[rare].sum())
    keep = expected > 0
    stat = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    return chi2.sf(stat, keep.sum() - 1)


@pytest.mark.parametrize("name", SYSTEMS)
def test_stream_draws_follow_enumeration(name):
    """125 draws of 16 chains at the coldest temperature of the ladder: the energy histogram
    matches the Boltzmann distribution there and not one 50 % hotter; canonical samples keep their
    count."""
    system = build_system(SYSTEMS[name])
    temperature = SYSTEMS[name]["mcmc"]["temperatures"][-1]
    x = stream_samples(system, temperature, 125, seed=3)
    assert x.shape == (2000, system.n_sites)
    if system.n_ones is not None:
        assert (x.sum(dim=1) == system.n_ones).all()
    assert energy_chi_square_p(system, x, system.beta(temperature)) > 1e-4
    assert energy_chi_square_p(system, x, system.beta(1.5 * temperature)) < 1e-4


def test_stream_at_a_temperature_off_the_ladder():
    """The target temperature joins the ladder's hotter rungs; the samples are its own."""
    system = build_system(SYSTEMS["ising"])
    x = stream_samples(system, 2.4, 125, seed=1)
    assert energy_chi_square_p(system, x, system.beta(2.4)) > 1e-4


def test_stream_over_a_range_draws_every_rung_in_it():
    """A temperature range [1.3, 2.4] of the Ising ladder [6, 3, 2, 1.5]: rungs at both ends and
    the ladder's two between, each rung's rows following enumeration at its own temperature and
    not at one 50 % hotter."""
    system = build_system(SYSTEMS["ising"])
    stream = BoltzmannStream(system, [2.4, 1.3], 10, seed=4)
    np.testing.assert_allclose([system.temperature(b) for b in stream.betas], [6.0, 3.0, 2.4, 2.0, 1.5, 1.3])
    temperatures = [system.temperature(b) for b in stream.target_betas]
    np.testing.assert_allclose(temperatures, [2.4, 2.0, 1.5, 1.3])
    draws = torch.stack([stream.draw(k) for k in range(125)])  # (draws, rungs x chains, N)
    assert draws.shape == (125, 4 * 16, system.n_sites)
    rungs = draws.reshape(125, 4, 16, system.n_sites).transpose(0, 1).reshape(4, -1, system.n_sites)
    for x, temperature in zip(rungs, temperatures):
        assert energy_chi_square_p(system, x, system.beta(temperature)) > 1e-4, temperature
        assert energy_chi_square_p(system, x, system.beta(1.5 * temperature)) < 1e-4, temperature


def test_stream_restored_from_its_state_draws_what_it_would_have():
    system = build_system(SYSTEMS["edwards_anderson"])
    whole = BoltzmannStream(system, [0.7], 3, seed=2)
    draws = [whole.draw(k) for k in range(5)]
    part = BoltzmannStream(system, [0.7], 3, seed=2)
    for k in range(2):
        part.draw(k)
    restored = BoltzmannStream(system, [0.7], 3, seed=2, state=part.state.to(torch.int8))
    assert all(torch.equal(restored.draw(k), draws[k]) for k in (2, 3, 4))
    assert not torch.equal(draws[3], draws[4])
    with pytest.raises(LatthermError, match=r"^Boltzmann stream state of shape \(3, 9\): this ladder holds"):
        BoltzmannStream(system, [0.7], 3, seed=2, state=part.state[:3])


def by_energy_and_by_example(system, seed: int, temperatures: list[float], n_cond: int = 0, on: list | None = None,
                             **training) -> dict:
    """Estimates at each of ``temperatures`` (on each system of ``on``, default ``system``: the
    outer loop) of a MADE (no spin-flip mixture) trained on ``system`` 150 steps of 256 from
    ``seed`` by energy alone (key 0) and by example too, two sweeps a step (key 2)."""
    found = {}
    for sweeps in (0, 2):
        torch.manual_seed(seed)
        model = build_model({"kind": "made", "hidden": 32, "depth": 2, "z2_symmetric": False, "n_cond": n_cond},
                            system.lattice)
        result = train(model, system, TrainConfig(steps=150, batch_size=256, lr=0.01, anneal=0.95,
                                                  example_sweeps=sweeps, **training), progress=False)
        found[sweeps] = [evaluate(result.model, where, t, n_samples=4000, mcmc_steps=2,
                                  conditioning=result.conditioning) for where in on or [system] for t in temperatures]
    return found


def test_training_by_example_brings_back_the_missed_mode():
    """4x4 Ising at T = 1 without the spin-flip mixture: trained by energy alone (this seed), MADE
    settles on one of the two ordered states, F_IS = F + T ln 2; by example too (two sweeps of
    the tempering run a step) both are kept and F_IS is the exact F."""
    system = ising_4x4()
    exact = exact_thermo(system.hamiltonian, [1.0]).free_energy[0]
    (missed,), (kept,) = by_energy_and_by_example(system, 0, [1.0], temperature=1.0).values()
    assert abs(missed["free_energy"] - exact - math.log(2)) < 0.05, missed
    assert abs(kept["free_energy"] - exact) < 4 * kept["free_energy_err"], kept
    assert kept["ess"] > 0.8


def test_a_temperature_conditioned_model_learns_by_example_across_its_range():
    """One MADE conditioned on beta over T in [0.7, 1.0] (4x4 Ising, no spin-flip mixture): trained
    by energy alone (this seed) it keeps one ordered state at both ends, F_IS = F + T ln 2; by
    example (the stream's rungs at both ends, each row conditioned on its own rung's beta) F_IS is
    the exact F at both ends."""
    system = ising_4x4()
    temperatures = [0.7, 1.0]
    exact = exact_thermo(system.hamiltonian, [1 / t for t in temperatures]).free_energy
    found = by_energy_and_by_example(system, 2, temperatures, n_cond=1, temperature_range=temperatures)
    for temperature, f, missed, kept in zip(temperatures, exact, *found.values()):
        assert abs(missed["free_energy"] - f - temperature * math.log(2)) < 0.05, (temperature, missed)
        assert abs(kept["free_energy"] - f) < 4 * kept["free_energy_err"], (temperature, kept)
        assert kept["ess"] > 0.9


def test_a_canonical_model_learns_by_example_at_its_composition():
    """4x4 Ising at half filling, T = 1 (canonical: the examples' ln q is the one the model samples,
    masked to eight ones): trained by energy alone (this seed) MADE misses stripes, F_IS 1.0 too
    high; by example F_IS is the exact F."""
    system = build_system({"model": "ising", "lattice": "square", "train_size": [4, 4], "ensemble": "canonical",
                           "concentration": 0.5, "mcmc": LADDER})
    exact = exact_thermo(system.hamiltonian, [1.0], n_ones=8).free_energy[0]
    (missed,), (kept,) = by_energy_and_by_example(system, 0, [1.0], temperature=1.0).values()
    assert missed["free_energy"] - exact > 0.5, missed
    assert abs(kept["free_energy"] - exact) < 4 * kept["free_energy_err"], kept


def test_a_composition_conditioned_model_learns_by_example_at_each_composition():
    """One MADE conditioned on composition over x in [0.25, 0.5] (canonical 4x4 Ising, T = 1, no
    spin-flip mixture): trained by energy alone (this seed) F_IS is far too high at half filling;
    by example (a tempering run at each end of the range, each run's rows conditioned on its own
    composition) F_IS is the exact F at both."""
    systems = {x: build_system({"model": "ising", "lattice": "square", "train_size": [4, 4], "ensemble": "canonical",
                                "concentration": x, "mcmc": LADDER}) for x in (0.25, 0.5)}
    exact = [exact_thermo(s.hamiltonian, [1.0], n_ones=s.n_ones).free_energy[0] for s in systems.values()]
    (_, missed), kept = by_energy_and_by_example(systems[0.5], 0, [1.0], n_cond=1, on=list(systems.values()),
                                                 temperature=1.0, concentration_range=[0.25, 0.5]).values()
    assert missed["free_energy"] - exact[1] > 0.5, missed
    for f, estimate in zip(exact, kept):
        assert abs(estimate["free_energy"] - f) < 4 * estimate["free_energy_err"], estimate


def test_example_compositions_must_fit_the_cell():
    system = build_system({"model": "ising", "lattice": "square", "train_size": [3, 3], "ensemble": "canonical",
                           "concentration": 4 / 9, "mcmc": LADDER})
    model = build_model({"kind": "made", "hidden": 8, "depth": 1, "n_cond": 1}, system.lattice)
    with pytest.raises(TrainingSettingsError, match=r"^training example_concentrations = \[0.25, 0.5\]: \[0.25, 0.5\] "
                                                    r"is not a whole number of the 9 sites of the cell$"):
        train(model, system, TrainConfig(steps=1, batch_size=4, temperature=1.0, concentration_range=[0.2, 0.6],
                                         example_sweeps=1, example_concentrations=[0.25, 0.5]), progress=False)


def test_resume_with_training_by_example_is_bit_for_bit(tmp_path):
    """The tempering run resumes from the state in the checkpoint, the images from the run's generator."""
    system = build_system({"model": "ising", "lattice": "square", "train_size": [2, 3],
                           "mcmc": {"temperatures": [4.0, 2.0], "chains": 4, "sweeps": 138, "burn_in": 10}})
    spec, k = {"kind": "made", "hidden": 16}, 4

    def config(steps, sweeps=2):
        return TrainConfig(steps=steps, batch_size=16, lr=0.01, anneal=0.9, checkpoint_every=k, temperature=2.0,
                           example_sweeps=sweeps, example_weight=0.5)

    torch.manual_seed(0)
    whole = train(build_model(spec, system.lattice), system, config(2 * k), tmp_path / "whole", progress=False)
    torch.manual_seed(0)
    train(build_model(spec, system.lattice), system, config(k), tmp_path / "split", progress=False)
    torch.manual_seed(123)
    resumed = train(build_model(spec, system.lattice), system, config(2 * k), tmp_path / "split", progress=False)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    cols = [c for c in whole.log.columns if c != "wall_time"]
    pd.testing.assert_frame_equal(whole.log[cols], resumed.log[cols], check_exact=True)
    torch.manual_seed(0)  # and the examples took part: without them another model
    plain = train(build_model(spec, system.lattice), system, config(2 * k, sweeps=0), progress=False)
    assert any(not torch.equal(v, plain.model.state_dict()[n]) for n, v in whole.model.state_dict().items())


def test_examples_are_scored_a_shard_at_a_time():
    """A tempering run's chains x target rungs outnumber a batch (paper.yaml's 2D glass: 640 rows
    of 256 sites, 18.8 GB scored at once): each log_prob call sees at most a shard's rows, and
    every example row is scored once a step."""
    system = build_system({"model": "ising", "lattice": "square", "train_size": [2, 3],
                           "mcmc": {"temperatures": [4.0, 2.0, 1.5], "chains": 6, "sweeps": 138, "burn_in": 10}})
    model = build_model({"kind": "made", "hidden": 8, "depth": 1, "n_cond": 1, "z2_symmetric": False},
                        system.lattice)
    rows, score = [], model.log_prob

    def recorded(x, *args, **kwargs):
        rows.append(len(x))
        return score(x, *args, **kwargs)

    model.log_prob = recorded
    train(model, system, TrainConfig(steps=2, batch_size=4, shards=2, temperature_range=[1.5, 2.0], example_sweeps=1),
          progress=False)
    assert max(rows) == 2  # shards of 2 rows: the 12 examples (6 chains x 2 rungs) in 6 calls a step
    assert rows.count(2) >= 2 * 6 and sum(rows) >= 2 * 12


@pytest.mark.parametrize("settings, message", [
    ({"example_sweeps": -1, "temperature": 1.0}, r"^training example_sweeps = -1 must be an integer >= 0$"),
    ({"example_sweeps": 1.5, "temperature": 1.0}, r"^training example_sweeps = 1.5 must be an integer >= 0$"),
    ({"example_sweeps": 2, "example_weight": 0.0, "temperature": 1.0},
     r"^training example_weight = 0.0 must be a positive number$"),
    ({"example_sweeps": 2, "temperature": 1.0, "dmu_range": [-1.0, 1.0]},
     r"^training example_sweeps = 2 takes no dmu_range: the examples are of the system's own dmu$"),
    ({"example_sweeps": 2, "temperature": 1.0, "example_concentrations": [0.25]},
     r"^training example_concentrations = \[0.25\] needs example_sweeps > 0 and a concentration_range$"),
    ({"temperature": 1.0, "concentration_range": [0.25, 0.5], "example_concentrations": [0.25]},
     r"^training example_concentrations = \[0.25\] needs example_sweeps > 0"),
    ({"example_sweeps": 2, "temperature": 1.0, "concentration_range": [0.25, 0.5], "example_concentrations": [0.75]},
     r"^training example_concentrations = \[0.75\] must be distinct numbers within concentration_range = "
     r"\[0.25, 0.5\]$"),
    ({"example_sweeps": 2, "temperature": 1.0, "concentration_range": [0.25, 0.5],
      "example_concentrations": [0.25, 0.25]}, r"^training example_concentrations = \[0.25, 0.25\] must be distinct"),
])
def test_bad_settings_are_one_line(settings, message):
    with pytest.raises(TrainingSettingsError, match=message):
        TrainConfig(steps=1, batch_size=4, **settings)


def test_a_system_without_mcmc_is_refused_in_one_line():
    system = build_system({"model": "ising", "lattice": "square", "train_size": [2, 2]})
    model = build_model({"kind": "made", "hidden": 8}, system.lattice)
    with pytest.raises(TrainingSettingsError, match=r"^training example_sweeps = 2: system '.*' has no mcmc block"):
        train(model, system, TrainConfig(steps=1, batch_size=4, temperature=1.0, example_sweeps=2), progress=False)


def test_symmetry_images_are_the_energy_keeping_space_group():
    """Ising 4x4: the 8 x 16 operations of its space group, each keeping every energy; a glass on
    the same lattice (random couplings) and SK (no lattice): none."""
    system = ising_4x4()
    images = symmetry_images(system)
    assert images.shape == (128, 16) and torch.equal(images[0], torch.arange(16))
    assert len({tuple(p.tolist()) for p in images}) == 128
    x = torch.randint(0, 2, (32, 16), generator=torch.Generator().manual_seed(0))
    for perm in images:
        assert torch.allclose(system.hamiltonian.energy(x.gather(1, perm.expand(32, -1))), system.hamiltonian.energy(x))
    glass = build_system({"model": "edwards_anderson", "lattice": "square", "train_size": [4, 4]})
    assert symmetry_images(glass) is None
    assert symmetry_images(build_system({"model": "sherrington_kirkpatrick", "train_size": [8]})) is None
