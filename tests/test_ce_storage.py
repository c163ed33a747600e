"""Pickle-free CE files: round trips, a pickle payload refused everywhere, checked fields and
reference energies, and CEs of another lattice refused by every entry point."""

import io
import json
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
import yaml
from ase.build import bulk
from icet import ClusterExpansion, ClusterSpace

from lattherm.ce.published import published_cluster_expansion, write_published_ce
from lattherm.ce.storage import (ClusterExpansionError, cluster_expansion_hash, parent_lattice,
                                 read_cluster_expansion, write_cluster_expansion)
from lattherm.cli import main
from lattherm.hamiltonians.cluster_expansion import ClusterExpansionHamiltonian
from lattherm.lattices import make_lattice
from lattherm.errors import LatthermError
from lattherm.systems import build_system


def run_cli(capsys, *args):
    """``lattherm ARGS`` as the console entry runs it: (exit status, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code, capsys.readouterr().err


def assert_one_line_error(status, err, *fragments):
    assert status == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and all(f in err for f in fragments), err


def enumerate_args(tmp_path, ce_file, lattice="fcc"):
    """An exact reference of a system of the alloy ``ce_file`` (named after the file)."""
    spec = {"model": "cluster_expansion", "alloy": ce_file.stem, "lattice": lattice, "train_size": [2, 2, 2],
            "ensemble": "canonical", "concentration": 0.5, "temperatures": [1000.0]}
    path = tmp_path / "system.yaml"
    path.write_text(yaml.safe_dump(spec))
    return ["exact", "reference", "--system", path, "--alloys", ce_file.parent, "--out", tmp_path / "exact.csv"]


def mchammer_args(tmp_path, ce_file):
    """A canonical mchammer scan of the alloy ``ce_file`` at x = 0.5."""
    settings = {"alloy": ce_file.stem, "lattice": "fcc_cubic", "size": [2, 2, 2],
                "temperatures": [2000.0], "concentrations": [0.25, 0.5], "dmus": [0.0, 0.1]}
    path = tmp_path / "phase_diagram.yaml"
    path.write_text(yaml.safe_dump(settings))
    return ["mcmc", "mchammer", "--settings", path, "--alloys", ce_file.parent, "--concentration", "0.5",
            "--steps-per-site", "128", "--out", tmp_path / "mch.csv"]


@pytest.fixture(scope="module")
def bcc_ce():
    """A FeCr-like BCC expansion (a = 2.87 Å) with fixed random parameters."""
    cs = ClusterSpace(bulk("Fe", "bcc", a=2.87), cutoffs=[5.0, 4.0], chemical_symbols=["Fe", "Cr"])
    return ClusterExpansion(cs, np.random.default_rng(1).normal(0.0, 0.02, len(cs)))


def random_energies(ce, lattice, species, n=20, seed=0):
    """icet's energy per site of random decorations of ``lattice``."""
    x = np.random.default_rng(seed).integers(0, 2, (n, lattice.n_sites))
    return x, np.array([ce.predict(lattice.to_atoms(row, species)) for row in x])


def test_published_ce_round_trip(tmp_path):
    ce = published_cluster_expansion()
    path = write_published_ce(tmp_path / "cuau.json")
    assert json.loads(path.read_text())["format"] == "lattherm-ce-1"
    read = read_cluster_expansion(path)
    lattice = make_lattice("fcc_cubic", (2, 2, 2), a=3.8)  # 32 sites
    x, expected = random_energies(ce, lattice, ["Cu", "Au"])
    np.testing.assert_allclose([read.predict(lattice.to_atoms(row, ["Cu", "Au"])) for row in x], expected,
                               rtol=0, atol=1e-12)
    torch_energy = ClusterExpansionHamiltonian.from_file(path, lattice).energy_per_site(torch.as_tensor(x))
    np.testing.assert_allclose(torch_energy.numpy(), expected, rtol=0, atol=1e-12)
    # provenance kept, not replaced on reading (against the file: `ce` was built apart, and icet stamps
    # date_created to the second, so the two may differ there)
    assert read.metadata == json.loads(path.read_text())["metadata"]
    assert {k: v for k, v in read.metadata.items() if k != "date_created"} == \
        {k: v for k, v in json.loads(json.dumps(ce.metadata)).items() if k != "date_created"}
    assert cluster_expansion_hash(path) == cluster_expansion_hash(ce) == cluster_expansion_hash(read)
    edited = ClusterExpansion(ce.get_cluster_space_copy(), ce.parameters + 1e-9)
    assert cluster_expansion_hash(edited) != cluster_expansion_hash(ce)


def test_bcc_ce_round_trip(bcc_ce, tmp_path):
    path = write_cluster_expansion(bcc_ce, tmp_path / "fecr.json")
    read = read_cluster_expansion(path)
    assert parent_lattice(read)[0] == "bcc" and parent_lattice(read)[1] == pytest.approx(2.87, rel=1e-12)
    lattice = make_lattice("bcc_cubic", (2, 2, 2), a=2.87)
    x, expected = random_energies(bcc_ce, lattice, ["Fe", "Cr"])
    np.testing.assert_allclose([read.predict(lattice.to_atoms(row, ["Fe", "Cr"])) for row in x], expected,
                               rtol=0, atol=1e-12)
    assert cluster_expansion_hash(path) == cluster_expansion_hash(bcc_ce)


class Payload:
    """Unpickling this runs a shell command: what a crafted .ce can hold."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def crafted_ce_file(path, marker):
    """A .ce laid out exactly as icet's ``ClusterExpansion.write`` lays it out (a tar with a
    ``cluster_space`` member and a pickled ``items`` member), with a payload as ``items``."""
    published_cluster_expansion().get_cluster_space_copy().write(str(path.with_suffix(".cs")))
    items = pickle.dumps(Payload(f"touch {marker}"))
    with tarfile.open(path, "w") as tar:
        tar.add(path.with_suffix(".cs"), arcname="cluster_space")
        info = tarfile.TarInfo("items")
        info.size = len(items)
        tar.addfile(info, io.BytesIO(items))
    return path


def test_pickle_payload_is_refused_everywhere(tmp_path, capsys):
    marker = tmp_path / "payload_ran"
    evil = crafted_ce_file(tmp_path / "evil.json", marker)  # a tar archive, whatever its name
    refusal = [str(evil), "icet .ce file", "--trust-pickle"]
    with pytest.raises(ClusterExpansionError, match="refused") as info:
        read_cluster_expansion(evil)
    assert "\n" not in str(info.value)
    assert_one_line_error(*run_cli(capsys, *enumerate_args(tmp_path, evil)), *refusal)
    assert_one_line_error(*run_cli(capsys, *mchammer_args(tmp_path, evil)), *refusal)
    assert_one_line_error(*run_cli(capsys, "ce", "convert", evil, "--out", tmp_path / "converted.json"), *refusal)
    assert not marker.exists()
    # the file is a working exploit: with the explicit opt-in (trusted files only) the payload runs
    with pytest.raises(ClusterExpansionError, match="not a readable icet cluster expansion"):
        read_cluster_expansion(evil, allow_pickle=True)
    assert marker.exists()


def test_trusted_icet_file_opt_in_and_convert(tmp_path, capsys):
    ce = published_cluster_expansion()
    legacy = tmp_path / "cuau.ce"
    ce.write(str(legacy))
    assert run_cli(capsys, "ce", "convert", "--trust-pickle", legacy, "--out", tmp_path / "cuau.json")[0] == 0
    assert cluster_expansion_hash(tmp_path / "cuau.json") == cluster_expansion_hash(ce)
    spec = {"model": "cluster_expansion", "alloy": "cuau", "lattice": "fcc", "train_size": [2, 2, 4]}
    x = torch.randint(0, 2, (4, 16), generator=torch.Generator().manual_seed(0))
    expected = ClusterExpansionHamiltonian(ce, make_lattice("fcc", (2, 2, 4), a=3.8)).energy(x)
    assert torch.equal(build_system(spec, ce_file=tmp_path / "cuau.json").hamiltonian.energy(x), expected)
    with pytest.raises(LatthermError, match="icet .ce file"):  # a system reads only the converted file
        build_system(spec, ce_file=legacy)


def test_edited_or_malformed_files_are_refused(tmp_path, capsys):
    path = write_published_ce(tmp_path / "cuau.json")
    doc = json.loads(path.read_text())

    def refused(text, *fragments):
        bad = tmp_path / "bad.json"
        bad.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(ClusterExpansionError) as info:
            read_cluster_expansion(bad)
        message = str(info.value)
        assert "\n" not in message and str(bad) in message and all(f in message for f in fragments), message

    edited = json.loads(json.dumps(doc))
    edited["parameters"][3] += 1e-4
    refused(json.dumps(edited), "reference energies", "edited")
    refused(path.read_text()[: len(path.read_text()) // 2], "not a readable cluster expansion")
    refused(b"\x00\xff garbage \xfe", "not a readable cluster expansion")
    refused("[1, 2, 3]", "JSON object")
    for field, value, fragment in [("format", "icet", "'format'"), ("cutoffs", "6.0", "'cutoffs'"),
                                   ("parameters", [1.0, "x"], "'parameters'"), ("parameters", None, "'parameters'"),
                                   ("metadata", [], "'metadata'")]:
        broken = json.loads(json.dumps(doc))
        if value is None:
            del broken[field]
        else:
            broken[field] = value
        refused(json.dumps(broken), fragment)
    broken = json.loads(json.dumps(doc))
    broken["structure"]["cell"][0] = [1.0, True, 0.0]
    refused(json.dumps(broken), "'structure.cell'")
    broken = json.loads(json.dumps(doc))
    broken["reference"]["decorations"] = broken["reference"]["decorations"][:2]
    refused(json.dumps(broken), "'reference.decorations'")
    # the command line prints the same as one line
    (tmp_path / "bad.json").write_text(path.read_text()[:100])
    assert_one_line_error(*run_cli(capsys, *enumerate_args(tmp_path, tmp_path / "bad.json")), "bad.json")


def test_pruned_cluster_space_cannot_be_written(tmp_path):
    cs = published_cluster_expansion().get_cluster_space_copy()
    cs.prune_orbit_list([5])
    with pytest.raises(ClusterExpansionError, match="cannot rebuild"):
        write_cluster_expansion(ClusterExpansion(cs, np.zeros(len(cs))), tmp_path / "pruned.json")
    assert not (tmp_path / "pruned.json").exists()


def test_ce_of_another_lattice_is_refused(bcc_ce, tmp_path, capsys):
    bcc_file = write_cluster_expansion(bcc_ce, tmp_path / "fecr.json")
    found = "the bcc lattice with lattice constant 2.87 Å"
    assert_one_line_error(*run_cli(capsys, *enumerate_args(tmp_path, bcc_file)),
                          str(bcc_file), found, "not the fcc lattice with lattice constant 2.87 Å")
    assert_one_line_error(*run_cli(capsys, *mchammer_args(tmp_path, bcc_file)),
                          str(bcc_file), found, "not the fcc_cubic lattice")
    # the CE's own lattice (and constant) is accepted
    fcc_file = write_published_ce(tmp_path / "cuau.json")
    status, err = run_cli(capsys, *mchammer_args(tmp_path, fcc_file))
    assert status == 0 and (tmp_path / "mch.csv").exists(), err
    assert run_cli(capsys, *enumerate_args(tmp_path, fcc_file))[0] == 0
