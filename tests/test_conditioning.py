"""One model for a whole scan: conditioning on beta, dmu (semi-grand) and composition
(canonical), checked against exact enumeration at points inside the trained ranges."""

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from lattherm.cli import app
from lattherm.exact.enumeration import exact_thermo
from lattherm.models import build_model
from lattherm.sampling import evaluate
from lattherm.sampling.evaluate import Conditioning, system_cond
from lattherm.systems import build_system
from lattherm.training import TrainConfig, load_trained_model, train, training_conditioning


def ising(size, **kw):
    return build_system({"model": "ising", "lattice": "square", "train_size": list(size), **kw})


def made(system, n_cond, hidden=32):
    torch.manual_seed(0)
    return build_model({"kind": "made", "hidden": hidden, "depth": 2, "n_cond": n_cond}, system.lattice)


def test_cond_features_are_the_documented_ones():
    system = ising((3, 4), dmu=0.1)
    config = TrainConfig(temperature_range=[2.0, 4.0], dmu_range=[-0.2, 0.5])
    cond = training_conditioning(config, system)
    assert cond.variables == ("beta", "dmu") and cond.scales == {"beta": 0.5, "dmu": 0.5}
    # beta / beta_ref, dmu / dmu_scale, n_ones / N, in that fixed order
    full = Conditioning(("beta", "dmu", "concentration"), {"beta": 2.0, "dmu": 0.5})
    features = full.features(3, beta=1.0, dmu=-0.25, n_ones=3, n_sites=12)
    assert features.dtype == torch.float32
    assert torch.equal(features, torch.tensor([[0.5, -0.5, 0.25]] * 3))
    # evaluation takes dmu from the system itself
    model = made(system, n_cond=2)
    assert torch.allclose(system_cond(model, system, 2.5, cond, 2), torch.tensor([[0.8, 0.2]] * 2))
    canonical = ising((3, 4), ensemble="canonical", concentration=0.25)
    x_cond = training_conditioning(TrainConfig(temperature=2.0, concentration_range=[0.25, 0.75]), canonical)
    assert x_cond.variables == ("concentration",) and x_cond.scales == {}
    assert torch.equal(system_cond(made(canonical, 1), canonical, 2.0, x_cond, 1), torch.tensor([[0.25]]))
    assert Conditioning.from_dict(full.to_dict()) == full


def test_semi_grand_model_conditioned_on_temperature_and_dmu(tmp_path):
    system = ising((3, 3))
    model = made(system, n_cond=2)
    result = train(model, system, TrainConfig(steps=1500, batch_size=256, lr=0.01, anneal=0.9,
                                              temperature_range=[2.0, 4.0], dmu_range=[-0.5, 0.5]),
                   tmp_path, progress=False)
    # Measured (seed 0): relative errors 4.2e-4, 2.2e-4, 7.0e-5; ESS 0.92, 0.97, 0.98.
    for t, dmu in [(2.0, -0.4), (3.0, 0.1), (2.5, 0.3)]:
        point = ising((3, 3), dmu=dmu)
        exact = exact_thermo(point.hamiltonian, [1 / t]).free_energy[0]
        est = evaluate(model, point, t, n_samples=8000, conditioning=result.conditioning, mcmc_steps=10)
        assert est["ess"] > 0.8
        assert abs(est["free_energy"] - exact) < 4 * est["free_energy_err"]
        assert abs(est["free_energy"] - exact) / abs(exact) < 2e-3

    # The same checkpoint serves another dmu through the command line.
    (tmp_path / "point.yaml").write_text(yaml.safe_dump(
        {"model": "ising", "lattice": "square", "train_size": [3, 3], "dmu": 0.3}))
    out = tmp_path / "est.csv"
    cli = CliRunner().invoke(app, ["neural", "sample", "--checkpoint", str(tmp_path / "checkpoint.pt"),
                                   "--system", str(tmp_path / "point.yaml"), "--samples", "8000",
                                   "--temperatures", "2.5", "--mcmc-steps", "10", "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    row = pd.read_csv(out).iloc[0]
    exact = exact_thermo(ising((3, 3), dmu=0.3).hamiltonian, [0.4]).free_energy[0]
    assert abs(row.free_energy - exact) < 4 * row.free_energy_err


def test_canonical_model_conditioned_on_temperature_and_composition():
    system = ising((3, 4), ensemble="canonical", concentration=0.5)
    model = made(system, n_cond=2, hidden=64)
    config = TrainConfig(steps=1500, batch_size=256, lr=0.01, anneal=0.9, temperature_range=[1.5, 3.0],
                         concentration_range=[0.25, 0.75])
    result = train(model, system, config, progress=False)
    assert set(result.log.concentration) == {n / 12 for n in range(3, 10)}  # every allowed count is drawn
    # Measured (seed 0): relative errors 8.0e-4, 2.0e-4, 2.5e-4; ESS 0.77, 0.80, 0.89.
    for t, x in [(1.5, 0.25), (2.0, 0.5), (2.5, 0.75)]:
        point = ising((3, 4), ensemble="canonical", concentration=x)
        exact = exact_thermo(point.hamiltonian, [1 / t], n_ones=point.n_ones).free_energy[0]
        est = evaluate(model, point, t, n_samples=8000, conditioning=result.conditioning, mcmc_steps=10)
        assert est["ess"] > 0.6
        assert abs(est["free_energy"] - exact) < 4 * est["free_energy_err"]
        assert abs(est["free_energy"] - exact) / abs(exact) < 3e-3


def test_checkpoint_round_trips_the_conditioning(tmp_path):
    semi = ising((2, 3), dmu=0.1)
    config = TrainConfig(steps=2, batch_size=8, temperature_range=[2.0, 3.0], dmu_range=[-0.3, 0.6])
    trained = train(made(semi, 2), semi, config, tmp_path / "sg", progress=False)
    other_dmu = ising((2, 3), dmu=-0.2)
    loaded = load_trained_model(tmp_path / "sg" / "checkpoint.pt", other_dmu)
    assert loaded.conditioning == trained.conditioning == Conditioning(("beta", "dmu"), {"beta": 0.5, "dmu": 0.6})
    cond = system_cond(loaded.model, other_dmu, 2.5, loaded.conditioning, 4)
    x = torch.randint(0, 2, (4, 6))
    assert torch.equal(loaded.model.log_prob(x, cond=cond), trained.model.log_prob(x, cond=cond))

    # A composition-conditioned model loads on another composition of its cell; a plain one does not.
    canonical = ising((2, 3), ensemble="canonical", concentration=0.5)
    train(made(canonical, 1), canonical, TrainConfig(steps=2, batch_size=8, temperature=2.0,
                                                     concentration_range=[0.0, 1.0]), tmp_path / "x", progress=False)
    train(made(canonical, 0), canonical, TrainConfig(steps=2, batch_size=8, temperature=2.0), tmp_path / "plain",
          progress=False)
    third = ising((2, 3), ensemble="canonical", concentration=1 / 3)
    assert load_trained_model(tmp_path / "x" / "checkpoint.pt", third).conditioning.variables == ("concentration",)
    with pytest.raises(ValueError, match="n_ones"):
        load_trained_model(tmp_path / "plain" / "checkpoint.pt", third)


def test_bad_conditioning_inputs():
    for bad in ({"dmu_range": [0.5, -0.5]}, {"dmu_range": [0.1, 0.1]}, {"dmu_range": [0.0]},
                {"concentration_range": [0.2, 1.5]}, {"concentration_range": [0.6, 0.4]}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=name):
            TrainConfig(temperature=2.0, **bad)
    semi = ising((3, 3))
    canonical = ising((3, 3), ensemble="canonical", concentration=1 / 3)
    with pytest.raises(ValueError, match="dmu_range needs a semi_grand system"):
        train(made(canonical, 1), canonical, TrainConfig(temperature=2.0, dmu_range=[0, 1]), progress=False)
    with pytest.raises(ValueError, match="concentration_range needs a canonical system"):
        train(made(semi, 1), semi, TrainConfig(temperature=2.0, concentration_range=[0.2, 0.8]), progress=False)
    with pytest.raises(ValueError, match="contains no composition n / 9"):  # 0.3 < n / 9 < 0.32 has no n
        train(made(canonical, 1), canonical, TrainConfig(temperature=2.0, concentration_range=[0.3, 0.32]),
              progress=False)
    with pytest.raises(ValueError, match=r"condition on \['beta', 'dmu'\].*n_cond = 2; got n_cond = 1"):
        train(made(semi, 1), semi, TrainConfig(temperature_range=[2.0, 3.0], dmu_range=[0, 1]), progress=False)

    # a dmu-conditioned model has nothing to read on a canonical system
    conditioning = training_conditioning(TrainConfig(temperature=2.0, dmu_range=[0, 1]), semi)
    with pytest.raises(ValueError, match=r"got no \['dmu'\]"):
        evaluate(made(semi, 1), canonical, 2.0, n_samples=10, conditioning=conditioning)
    with pytest.raises(ValueError, match="n_cond = 1"):
        evaluate(made(semi, 1), semi, 2.0, n_samples=10)
    with pytest.raises(ValueError, match="sub-sequence"):
        Conditioning(("dmu", "beta"), {"beta": 1.0, "dmu": 1.0})
