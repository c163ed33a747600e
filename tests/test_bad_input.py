"""A table of malformed inputs: every one is refused by the real command line with one line,
``error: ...``, naming the offending field (or file) and value, before any output is written.

System blocks (the fields of :class:`lattherm.systems.SystemConfig`, with their ``mcmc`` block),
alloy blocks (``lattherm ce fit --alloy``) and the user's ASE database they name, command-line
lists and options, and tables. Each case calls ``lattherm.cli.main`` in-process (one torch start
for the whole table) from an empty directory, which must stay empty.
"""

import pytest
import yaml
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect

from lattherm.cli import main

ISING = {"model": "ising", "lattice": "square", "train_size": [4, 4], "temperatures": [2.0]}
EA = {"model": "edwards_anderson", "lattice": "square", "train_size": [4, 4], "temperatures": [2.0]}
SK = {"model": "sherrington_kirkpatrick", "temperatures": [2.0]}
MCMC = {"temperatures": [2.0], "chains": 2, "sweeps": 200, "burn_in": 50}
SYSTEMS = {  # file name -> system block written as YAML
    "ok.yaml": ISING,
    "ok_mcmc.yaml": {**ISING, "mcmc": MCMC},
    "ea_odd_chains.yaml": {**EA, "mcmc": {**MCMC, "chains": 3}},
    "disorder_zero.yaml": {**EA, "disorder_samples": 0},
    "size_string.yaml": {**ISING, "train_size": "4x4"},
    "size_zero.yaml": {**ISING, "train_size": [0, 4]},
    "size_million.yaml": {**ISING, "train_size": [1000, 1000]},
    "size_rank.yaml": {**ISING, "train_size": [4, 4, 4]},
    "size_missing.yaml": {"model": "ising", "lattice": "square"},
    "transfer_not_multiple.yaml": {**ISING, "transfer_sizes": [[6, 6]]},
    "j_word.yaml": {**ISING, "J": "one"},
    "unknown_key.yaml": {**ISING, "colour": "red"},
    "lattice.yaml": {**ISING, "lattice": "hexagonal"},
    "model.yaml": {**ISING, "model": "potts"},
    "ensemble.yaml": {**ISING, "ensemble": "nvt"},
    "field_of_other_model.yaml": {**ISING, "coupling_seed": 3},
    "dmu_canonical.yaml": {**ISING, "ensemble": "canonical", "concentration": 0.5, "dmu": 0.25},
    "x_semi_grand.yaml": {**ISING, "concentration": 0.5},
    "x_uneven.yaml": {**ISING, "ensemble": "canonical", "concentration": 0.3, "mcmc": MCMC},
    "x_range.yaml": {**ISING, "ensemble": "canonical", "concentration": 1.5},
    "sk_million.yaml": {**SK, "train_size": [1000000]},
    "sk_dense.yaml": {**SK, "train_size": [10000]},
    "big_for_enumeration.yaml": {**EA, "train_size": [8, 8]},
    "antiferro_big.yaml": {**ISING, "J": -1.0, "train_size": [8, 8]},
    "list.yaml": [1, 2],
    # the evaluation grid
    "t_empty.yaml": {**ISING, "temperatures": []},
    "t_nan.yaml": {**ISING, "temperatures": [1.0, float("nan")]},
    "t_word.yaml": {**ISING, "temperatures": [1.0, "hot"]},
    "t_negative.yaml": {**ISING, "temperatures": [2.0, -1.0]},
    "t_zero.yaml": {**ISING, "temperatures": [0.0]},
    "neural_off_grid.yaml": {**ISING, "temperatures": [2.0, 3.0], "neural_temperatures": [2.5]},
    # the mcmc block
    "mcmc_missing.yaml": ISING,
    "mcmc_t_empty.yaml": {**ISING, "mcmc": {**MCMC, "temperatures": []}},
    "mcmc_t_negative.yaml": {**ISING, "mcmc": {**MCMC, "temperatures": [2.0, -0.5]}},
    "mcmc_t_inf.yaml": {**ISING, "mcmc": {**MCMC, "temperatures": [float("inf"), 2.0]}},
    "mcmc_swap.yaml": {**ISING, "mcmc": {**MCMC, "move": "swap"}},
    "mcmc_jump.yaml": {**ISING, "mcmc": {**MCMC, "move": "jump"}},
    "mcmc_wolff_ea.yaml": {**EA, "mcmc": {**MCMC, "move": "wolff"}},
    "mcmc_chains_zero.yaml": {**ISING, "mcmc": {**MCMC, "chains": 0}},
    "mcmc_short.yaml": {**ISING, "mcmc": {**MCMC, "sweeps": 150, "burn_in": 100}},
    "mcmc_unknown_key.yaml": {**ISING, "mcmc": {**MCMC, "steps": 100}},
}
ALLOYS = {  # file name -> alloy block written as YAML ({in}: the inputs directory)
    "a_negative.yaml": {"lattice_constant": -1.5},
    "species.yaml": {"species": ["Cu", "Cu"]},
    "db_option_missing.yaml": {"source": "database"},
    "db_missing.yaml": {"source": "database", "database": "{in}/nope.db"},
    "db_directory.yaml": {"source": "database", "database": "{in}/directory.db"},
    "db_garbage.yaml": {"source": "database", "database": "{in}/garbage.db"},
    "db_empty.yaml": {"source": "database", "database": "{in}/empty.db"},
    "db_txt.yaml": {"source": "database", "database": "{in}/structures.txt"},
    "db_foreign.yaml": {"source": "database", "database": "{in}/foreign.db"},
    "db_bcc_row.yaml": {"source": "database", "database": "{in}/bcc_row.db"},
    "db_no_energy.yaml": {"source": "database", "database": "{in}/no_energy.db"},
}
FILES = {  # file name -> raw content
    "empty.yaml": "",
    "comments.yaml": "# nothing but a comment\n",
    "garbage.yaml": "model: [ising\n",
    "binary.yaml": b"\x89\xff\xfe\x00garbage",
    # numbers beyond 1.8e308 overflow to inf as YAML reads them
    "t_overflow.yaml": "model: ising\nlattice: square\ntrain_size: [4, 4]\ntemperatures: [2.0, 1.0e+999]\n",
    "mcmc_t_overflow.yaml": ("model: ising\nlattice: square\ntrain_size: [4, 4]\n"
                             "mcmc: {temperatures: [1.0e+400], chains: 2, sweeps: 200, burn_in: 50}\n"),
    "empty.csv": "",
    "header_only.csv": "\n\n",
    "binary.csv": b"\x00\xff\xfe\x89PNG\n",
    "quote.csv": 'beta,energy,energy_err\n0,"1\n',
    "bad.parquet": "not parquet",
    "scan.csv": "beta,energy,energy_err,n_sites\n0,0,0,16\n1,-20,0.1,16\n",
    "no_err.csv": "beta,energy,n_sites\n0,0,16\n1,-20,16\n",
    "text_energy.csv": "beta,energy,energy_err,n_sites\n0,0,0,16\n1,low,0.1,16\n",
    "no_zero.csv": "beta,energy,energy_err,n_sites\n0.5,-5,0.1,16\n1,-20,0.1,16\n",
    "no_n_sites.csv": "beta,energy,energy_err\n0,0,0\n1,-20,0.1\n",
    "two_n_sites.csv": "beta,energy,energy_err,n_sites\n0,0,0,16\n1,-20,0.1,64\n",
    "nan_n_sites.csv": "beta,energy,energy_err,n_sites\n0,0,0,\n1,-20,0.1,\n",
    "ti.csv": "concentration,temperature,free_energy_per_site\n0.5,1.0,-2.0\n",
    "comparison.csv": "system,method,size,temperature,error_per_site\nising,mcmc,4x4,2.0,1e-4\n",
    "no_method.csv": "system,size,temperature,free_energy_per_site\nising,4x4,2.0,-2.0\n",
    "garbage.db": "this is not an sqlite file " * 10,
    "empty.db": "",
    "structures.txt": "Cu 0 0 0\n",
    # a YAML tag that would run code under yaml.load; safe_load refuses it (it writes into the cwd,
    # which the test checks stays empty)
    "python_tag.yaml": "!!python/object/apply:os.system ['touch ran_code']\n",
}


def _write_database(path, rows):
    with connect(str(path)) as db:
        for atoms, energy in rows:
            if energy is not None:
                atoms.calc = SinglePointCalculator(atoms, energy=energy)
            db.write(atoms)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    for name, spec in SYSTEMS.items():
        (root / name).write_text(yaml.safe_dump(spec))
    (root / "alloys").mkdir()
    for name, spec in ALLOYS.items():
        (root / "alloys" / name).write_text(yaml.safe_dump(spec).replace("{in}", str(root)))
    for name, content in FILES.items():
        (root / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (root / "a_directory").mkdir()
    (root / "directory.db").mkdir()
    pure = [(bulk("Cu", "fcc", a=3.8), -3.5), (bulk("Au", "fcc", a=3.8), -3.2)]
    _write_database(root / "foreign.db", pure + [(bulk("Ni", "fcc", a=3.8), -4.0)])
    _write_database(root / "bcc_row.db", pure + [(bulk("Cu", "bcc", a=3.0, cubic=True), -7.0)])
    _write_database(root / "no_energy.db", [(bulk("Cu", "fcc", a=3.8), None)])
    return root


def reference(system, *options):
    return ["exact", "reference", "--system", f"{{in}}/{system}", *options, "--out", "out.csv"]


def run(system="ok_mcmc.yaml", *options):
    return ["mcmc", "run", "--system", f"{{in}}/{system}", *options, "--out", "out.csv"]


def sample(temperatures):
    """`neural sample` parses --temperatures before it reads the system or the checkpoint."""
    return ["neural", "sample", "--checkpoint", "{in}/nope.pt", "--system", "{in}/ok.yaml",
            "--temperatures", temperatures, "--out", "out.csv"]


def integrate(table, *options):
    return ["mcmc", "integrate", "--table", f"{{in}}/{table}", *options, "--out", "free.csv"]


SPLINE = ("--estimator", "spline")  # a quadrature of <E>(beta); the default, MBAR, needs the scan's samples


def phase_diagram(*tables):
    return ["analysis", "phase-diagram", *[f"{{in}}/{t}" for t in tables],
            "--out-boundaries", "b.csv", "--out-phases", "p.csv", "--out-transitions", "t.csv",
            "--out-semi-grand", "sg.csv", "--out-hysteresis", "h.csv", "--out-vcsgc-check", "vc.csv",
            "--out-vcsgc-binodals", "vb.csv"]


def ce_fit(alloy):
    return ["ce", "fit", "--alloy", f"{{in}}/alloys/{alloy}", "--out-ce", "ce.json", "--out-metrics", "metrics.json",
            "--out-ground-states", "gs.csv", "--out-hull-plot", "hull.png"]


# (id, command line, texts the one error line must contain: the field or file, and the value)
CASES = [
    # system files: fields (named FILE.field)
    ("size-string", reference("size_string.yaml"), ["size_string.yaml.train_size", "'4x4'"]),
    ("size-zero", reference("size_zero.yaml"), ["size_zero.yaml.train_size[0]", "0 is less than the minimum of 1"]),
    ("size-million-sites", reference("size_million.yaml"),
     ["size_million.yaml.train_size", "[1000, 1000]", "1000000 sites", "65536"]),
    ("size-rank", reference("size_rank.yaml"), ["size_rank.yaml.train_size", "[4, 4, 4]", "square"]),
    ("size-missing", reference("size_missing.yaml"), ["size_missing.yaml", "'train_size'"]),
    ("transfer-not-a-multiple", reference("transfer_not_multiple.yaml"),
     ["transfer_not_multiple.yaml.transfer_sizes[0]", "[6, 6]", "[4, 4]"]),
    ("J-word", reference("j_word.yaml"), ["j_word.yaml.J", "'one'"]),
    ("unknown-key", reference("unknown_key.yaml"), ["unknown_key.yaml", "not allowed", "'colour'"]),
    ("unknown-lattice", reference("lattice.yaml"), ["lattice.yaml.lattice", "'hexagonal'"]),
    ("unknown-model", reference("model.yaml"), ["model.yaml.model", "'potts'"]),
    ("unknown-ensemble", reference("ensemble.yaml"), ["ensemble.yaml.ensemble", "'nvt'"]),
    ("field-of-another-model", reference("field_of_other_model.yaml"),
     ["field_of_other_model.yaml.coupling_seed", "'ising'"]),
    ("dmu-in-canonical", reference("dmu_canonical.yaml"), ["dmu_canonical.yaml.dmu", "0.25", "semi_grand"]),
    ("concentration-in-semi-grand", reference("x_semi_grand.yaml"),
     ["x_semi_grand.yaml.concentration", "0.5", "canonical"]),
    ("concentration-uneven", reference("x_uneven.yaml"),
     ["x_uneven.yaml.train_size", "concentration 0.3", "of 16"]),
    ("concentration-range", reference("x_range.yaml"), ["x_range.yaml.concentration", "1.5"]),
    ("n-sites-million", reference("sk_million.yaml"), ["sk_million.yaml.train_size", "1000000", "8192"]),
    ("sk-dense-matrix-too-large", reference("sk_dense.yaml"), ["sk_dense.yaml.train_size", "10000", "8192"]),
    ("too-big-to-enumerate", reference("big_for_enumeration.yaml"), ["'big_for_enumeration'", "64 sites", "24"]),
    ("disorder-samples-zero", reference("disorder_zero.yaml"), ["disorder_zero.yaml.disorder_samples", "0"]),
    ("overlap-too-big-to-enumerate", ["exact", "overlap", "--system", "{in}/big_for_enumeration.yaml", "--out", "o.csv"],
     ["'big_for_enumeration'", "64 sites", "at most 24"]),
    ("tempering-odd-chains", ["mcmc", "tempering", "--system", "{in}/ea_odd_chains.yaml", "--out", "o.csv",
                              "--out-summary", "s.csv"], ["'ea_odd_chains'", "mcmc.chains must be even", "got 3"]),
    ("no-kaufman-for-antiferromagnet", reference("antiferro_big.yaml"),
     ["'antiferro_big'", "64 sites", "ferromagnetic"]),
    # system files: the file itself
    ("system-missing", reference("nope.yaml"), ["nope.yaml", "not found"]),
    ("system-empty", reference("empty.yaml"), ["empty.yaml", "empty"]),
    ("system-comments-only", reference("comments.yaml"), ["comments.yaml", "empty"]),
    ("system-directory", reference("a_directory"), ["a_directory", "directory"]),
    ("system-malformed", reference("garbage.yaml"), ["garbage.yaml", "malformed"]),
    ("system-binary", reference("binary.yaml"), ["binary.yaml", "malformed"]),
    ("system-a-list", reference("list.yaml"), ["list.yaml", "list"]),
    ("yaml-python-tag", reference("python_tag.yaml"), ["python_tag.yaml", "python/object/apply:os.system"]),
    # command-line options of exact reference
    ("out-not-a-table", ["exact", "reference", "--system", "{in}/ok.yaml", "--out", "o.txt"], ["o.txt", ".csv"]),
    ("size-option-word", reference("ok.yaml", "--size", "four"), ["'four'", "4x4"]),
    ("size-option-zero", reference("ok.yaml", "--size", "0x4"), ["'0x4'", "positive"]),
    ("size-option-rank", reference("ok.yaml", "--size", "4"), ["[4]", "square"]),
    # the evaluation grid: a system's temperatures
    ("temperatures-empty", reference("t_empty.yaml"), ["'t_empty'", "no temperatures", "mcmc.temperatures"]),
    ("temperatures-nan", reference("t_nan.yaml"), ["t_nan.yaml.temperatures[1]", "nan"]),
    ("temperatures-word", reference("t_word.yaml"), ["t_word.yaml.temperatures[1]", "'hot'"]),
    ("temperatures-negative", reference("t_negative.yaml"), ["t_negative.yaml.temperatures[1]", "-1.0"]),
    ("temperatures-zero", reference("t_zero.yaml"), ["t_zero.yaml.temperatures[0]", "0.0"]),
    ("temperatures-overflow", reference("t_overflow.yaml"), ["t_overflow.yaml.temperatures[1]", "inf", "finite"]),
    ("neural-temperature-off-grid", reference("neural_off_grid.yaml"),
     ["neural_off_grid.yaml.neural_temperatures[0]", "2.5", "[2.0, 3.0]"]),
    # command-line temperature lists (neural sample and transfer)
    ("cli-temperatures-empty", sample(""), ["--temperatures", "empty"]),
    ("cli-temperatures-blank", sample(" , "), ["--temperatures", "empty"]),
    ("cli-temperatures-nan", sample("1,nan"), ["--temperatures", "'nan'"]),
    ("cli-temperatures-word", sample("1,hot"), ["--temperatures", "'hot'"]),
    ("cli-temperatures-negative", sample("2,-1"), ["--temperatures", "'-1'"]),
    ("cli-temperatures-zero", sample("0"), ["--temperatures", "'0'"]),
    ("cli-temperatures-overflow", sample("1e400"), ["--temperatures", "'1e400'"]),
    ("cli-lattice-symmetric-word", sample("1") + ["--lattice-symmetric", "maybe"], ["--lattice-symmetric", "'maybe'"]),
    # mcmc run: the system's mcmc block
    ("run-no-mcmc-block", run("mcmc_missing.yaml"), ["'mcmc_missing'", "mcmc"]),
    ("run-temperatures-empty", run("mcmc_t_empty.yaml"), ["mcmc_t_empty.yaml.mcmc.temperatures", "[]"]),
    ("run-temperatures-negative", run("mcmc_t_negative.yaml"), ["mcmc_t_negative.yaml.mcmc.temperatures[1]", "-0.5"]),
    ("run-temperatures-inf", run("mcmc_t_inf.yaml"), ["mcmc_t_inf.yaml.mcmc.temperatures[0]", "inf"]),
    ("run-overflow", run("mcmc_t_overflow.yaml"), ["mcmc_t_overflow.yaml.mcmc.temperatures[0]", "inf", "finite"]),
    ("run-swap-semi-grand", run("mcmc_swap.yaml"), ["mcmc_swap.yaml.mcmc.move", "'swap'", "semi_grand"]),
    ("run-unknown-move", run("mcmc_jump.yaml"), ["mcmc_jump.yaml.mcmc.move", "'jump'"]),
    ("run-wolff-spin-glass", run("mcmc_wolff_ea.yaml"), ["mcmc_wolff_ea.yaml.mcmc.move", "'wolff'", "ferromagnetic ising"]),
    ("run-chains-zero", run("mcmc_chains_zero.yaml"), ["mcmc_chains_zero.yaml.mcmc.chains", "0"]),
    ("run-short", run("mcmc_short.yaml"), ["mcmc_short.yaml.mcmc.sweeps = 150", "burn_in = 100", "50"]),
    ("run-unknown-key", run("mcmc_unknown_key.yaml"), ["mcmc_unknown_key.yaml.mcmc", "'steps'"]),
    ("run-bad-system", run("x_uneven.yaml"), ["x_uneven.yaml.train_size", "concentration 0.3"]),
    ("run-bad-size", run("ok_mcmc.yaml", "--size", "4x4x4"), ["[4, 4, 4]", "square"]),
    # mcmc integrate tables
    ("table-missing", integrate("nope.csv"), ["nope.csv", "not found"]),
    ("table-empty", integrate("empty.csv"), ["empty.csv", "empty"]),
    ("table-blank-lines", integrate("header_only.csv"), ["header_only.csv", "No columns"]),
    ("table-binary", integrate("binary.csv"), ["binary.csv", "not a readable csv"]),
    ("table-open-quote", integrate("quote.csv"), ["quote.csv", "not a readable csv"]),
    ("table-bad-parquet", integrate("bad.parquet"), ["bad.parquet", "not a readable parquet"]),
    ("table-directory", integrate("a_directory"), ["a_directory", "directory"]),
    ("table-not-a-table", integrate("ok.yaml"), ["ok.yaml", ".csv or .parquet"]),
    ("table-lacks-column", integrate("no_err.csv"), ["no_err.csv", "energy_err"]),
    ("table-text-energy", integrate("text_energy.csv", *SPLINE), ["text_energy.csv", "energy"]),
    ("table-no-beta-zero", integrate("no_zero.csv", *SPLINE), ["beta", "0.5"]),
    ("table-no-n-sites", integrate("no_n_sites.csv"), ["no_n_sites.csv", "'n_sites'"]),
    ("table-two-n-sites", integrate("two_n_sites.csv", *SPLINE), ["two_n_sites.csv", "n_sites", "64"]),
    ("table-nan-n-sites", integrate("nan_n_sites.csv", *SPLINE), ["nan_n_sites.csv", "n_sites", "nan"]),
    ("integrate-estimator", integrate("scan.csv", "--estimator", "simpson"), ["--estimator", "'simpson'"]),
    # analysis
    ("phase-diagram-missing", phase_diagram("nope.csv"), ["nope.csv", "not found"]),
    ("phase-diagram-columns", phase_diagram("ti.csv"), ["ti.csv", "heat_capacity_per_site"]),
    ("compare-columns", ["analysis", "compare", "{in}/no_method.csv", "--out", "c.csv"], ["no_method.csv", "'method'"]),
    ("figure-format", ["analysis", "figure-free-energy-error", "{in}/comparison.csv", "--out", "fig.txt"],
     ["--out", "fig.txt"]),
    # alloy blocks (ce fit --alloy) and the user's ASE database they name (source: database)
    ("lattice-constant-negative", ce_fit("a_negative.yaml"), ["a_negative.yaml.lattice_constant", "-1.5"]),
    ("species-twice", ce_fit("species.yaml"), ["species.yaml", "species", "'Cu', 'Cu'"]),
    ("alloy-missing", ce_fit("nope.yaml"), ["nope.yaml", "not found"]),
    ("database-option-missing", ce_fit("db_option_missing.yaml"), ["db_option_missing.yaml.database", "None"]),
    ("database-missing", ce_fit("db_missing.yaml"), ["db_missing.yaml.database", "nope.db", "not found"]),
    ("database-directory", ce_fit("db_directory.yaml"), ["db_directory.yaml.database", "directory.db", "is a directory"]),
    ("database-garbage", ce_fit("db_garbage.yaml"), ["garbage.db", "not a readable ASE database"]),
    ("database-empty", ce_fit("db_empty.yaml"), ["empty.db", "no structures"]),
    ("database-unknown-type", ce_fit("db_txt.yaml"), ["structures.txt", "txt"]),
    ("database-foreign-species", ce_fit("db_foreign.yaml"), ["foreign.db", "row 3", "['Ni']"]),
    ("database-not-on-lattice", ce_fit("db_bcc_row.yaml"), ["bcc_row.db", "row 3", "not a supercell of the fcc"]),
    ("database-no-energy", ce_fit("db_no_energy.yaml"), ["no_energy.db", "row 1", "no energy"]),
]


def test_the_table_is_large():
    print(f"\n{len(CASES)} malformed-input cases")
    assert len(CASES) >= 30 and len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("args,expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_malformed_input_is_one_error_line(inputs, tmp_path, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([arg.replace("{in}", str(inputs)) for arg in args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_info.value.code not in (0, None), err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary
