"""A table of malformed inputs: every one is refused by the real command line with one line,
``error: ...``, naming the offending field (or file) and value, before any output is written.

System files, command-line lists and options, tables and a user's ASE database. Each case calls
``lattherm.cli.main`` in-process (one torch start for the whole table) from an empty directory,
which must stay empty.
"""

import pytest
import yaml
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect

from lattherm.cli import main

ISING = {"model": "ising", "lattice": "square", "size": [4, 4]}
SYSTEMS = {  # file name -> spec written as YAML
    "ok.yaml": ISING,
    "size_string.yaml": {**ISING, "size": "4x4"},
    "size_zero.yaml": {**ISING, "size": [0, 4]},
    "size_million.yaml": {**ISING, "size": [1000, 1000]},
    "size_rank.yaml": {**ISING, "size": [4, 4, 4]},
    "j_word.yaml": {**ISING, "J": "one"},
    "unknown_key.yaml": {**ISING, "colour": "red"},
    "lattice.yaml": {**ISING, "lattice": "hexagonal"},
    "model.yaml": {**ISING, "model": "potts"},
    "ensemble.yaml": {**ISING, "ensemble": "nvt"},
    "a_negative.yaml": {**ISING, "a": -1.5},
    "dmu_canonical.yaml": {**ISING, "ensemble": "canonical", "concentration": 0.5, "dmu": 0.25},
    "x_semi_grand.yaml": {**ISING, "concentration": 0.5},
    "x_uneven.yaml": {**ISING, "ensemble": "canonical", "concentration": 0.3},
    "x_range.yaml": {**ISING, "ensemble": "canonical", "concentration": 1.5},
    "species.yaml": {**ISING, "species": ["Cu", "Cu"]},
    "sk_million.yaml": {"model": "sherrington_kirkpatrick", "n_sites": 1000000},
    "sk_dense.yaml": {"model": "sherrington_kirkpatrick", "n_sites": 10000},
    "big_for_enumeration.yaml": {**ISING, "size": [8, 8]},
    "ea.yaml": {"model": "edwards_anderson", "lattice": "square", "size": [4, 4]},
    "list.yaml": [1, 2],
}
FILES = {  # file name -> raw content
    "empty.yaml": "",
    "comments.yaml": "# nothing but a comment\n",
    "garbage.yaml": "model: [ising\n",
    "binary.yaml": b"\x89\xff\xfe\x00garbage",
    "empty.csv": "",
    "header_only.csv": "\n\n",
    "binary.csv": b"\x00\xff\xfe\x89PNG\n",
    "quote.csv": 'beta,energy,energy_err\n0,"1\n',
    "bad.parquet": "not parquet",
    "no_err.csv": "beta,energy,n_sites\n0,0,16\n1,-20,16\n",
    "text_energy.csv": "beta,energy,energy_err,n_sites\n0,0,0,16\n1,low,0.1,16\n",
    "no_zero.csv": "beta,energy,energy_err,n_sites\n0.5,-5,0.1,16\n1,-20,0.1,16\n",
    "no_n_sites.csv": "beta,energy,energy_err\n0,0,0\n1,-20,0.1\n",
    "two_n_sites.csv": "beta,energy,energy_err,n_sites\n0,0,0,16\n1,-20,0.1,64\n",
    "nan_n_sites.csv": "beta,energy,energy_err,n_sites\n0,0,0,\n1,-20,0.1,\n",
    "ti.csv": "temperature,free_energy_per_site\n1.0,-2.0\n",
    "comparison.csv": "system,method,size,temperature,error_per_site\nising,mcmc,4x4,2.0,1e-4\n",
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
    for name, content in FILES.items():
        (root / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (root / "a_directory").mkdir()
    (root / "directory.db").mkdir()
    pure = [(bulk("Cu", "fcc", a=3.8), -3.5), (bulk("Au", "fcc", a=3.8), -3.2)]
    _write_database(root / "foreign.db", pure + [(bulk("Ni", "fcc", a=3.8), -4.0)])
    _write_database(root / "bcc_row.db", pure + [(bulk("Cu", "bcc", a=3.0, cubic=True), -7.0)])
    _write_database(root / "no_energy.db", [(bulk("Cu", "fcc", a=3.8), None)])
    return root


def enumerate_(system, *options):
    return ["exact", "enumerate", "--system", f"{{in}}/{system}", *(options or ("--temperatures", "1")),
            "--out", "out.csv"]


def run(*options, system="ok.yaml"):
    return ["mcmc", "run", "--system", f"{{in}}/{system}", "--temperatures", "1", "--chains", "2",
            "--sweeps", "400", "--burn-in", "100", *options, "--out", "out.csv"]


def integrate(table, *options):
    return ["mcmc", "integrate", "--table", f"{{in}}/{table}", *options, "--out", "free.csv"]


def phase_diagram(*canonical):
    return ["analysis", "phase-diagram", *[a for c in canonical for a in ("--canonical", c)],
            "--out-boundaries", "b.csv", "--out-order-disorder", "od.csv", "--out-semi-grand", "sg.csv"]


def ce_fit(database, *options):
    return ["ce", "fit", "--source", "database", *(["--database", f"{{in}}/{database}"] if database else []),
            *options, "--out-ce", "ce.json", "--out-metrics", "metrics.json", "--out-ground-states", "gs.csv",
            "--out-hull-plot", "hull.png"]


# (id, command line, texts the one error line must contain: the field or file, and the value)
CASES = [
    # system files: fields
    ("size-string", enumerate_("size_string.yaml"), ["'size'", "4x4"]),
    ("size-zero", enumerate_("size_zero.yaml"), ["'size'", "[0, 4]"]),
    ("size-million-sites", enumerate_("size_million.yaml"), ["'size'", "[1000, 1000]", "1000000 sites", "65536"]),
    ("size-rank", enumerate_("size_rank.yaml"), ["'size'", "[4, 4, 4]", "square"]),
    ("J-word", enumerate_("j_word.yaml"), ["'J'", "'one'"]),
    ("unknown-key", enumerate_("unknown_key.yaml"), ["unknown", "colour"]),
    ("unknown-lattice", enumerate_("lattice.yaml"), ["'lattice'", "hexagonal"]),
    ("unknown-model", enumerate_("model.yaml"), ["'model'", "potts"]),
    ("unknown-ensemble", enumerate_("ensemble.yaml"), ["'ensemble'", "nvt"]),
    ("a-negative", enumerate_("a_negative.yaml"), ["'a'", "-1.5"]),
    ("dmu-in-canonical", enumerate_("dmu_canonical.yaml"), ["'dmu'", "0.25", "semi_grand"]),
    ("concentration-in-semi-grand", enumerate_("x_semi_grand.yaml"), ["'concentration'", "0.5", "canonical"]),
    ("concentration-uneven", enumerate_("x_uneven.yaml"), ["'concentration'", "0.3", "16 sites"]),
    ("concentration-range", enumerate_("x_range.yaml"), ["'concentration'", "1.5"]),
    ("species-twice", enumerate_("species.yaml"), ["'species'", "'Cu', 'Cu'"]),
    ("n-sites-million", enumerate_("sk_million.yaml"), ["'n_sites'", "1000000", "65536"]),
    ("sk-dense-matrix-too-large", enumerate_("sk_dense.yaml"), ["'n_sites'", "10000", "8192"]),
    ("too-big-to-enumerate", enumerate_("big_for_enumeration.yaml"), ["64 sites", "24"]),
    # system files: the file itself
    ("system-missing", enumerate_("nope.yaml"), ["nope.yaml", "not found"]),
    ("system-empty", enumerate_("empty.yaml"), ["empty.yaml", "empty"]),
    ("system-comments-only", enumerate_("comments.yaml"), ["comments.yaml", "empty"]),
    ("system-directory", enumerate_("a_directory"), ["a_directory", "directory"]),
    ("system-malformed", enumerate_("garbage.yaml"), ["garbage.yaml", "malformed"]),
    ("system-binary", enumerate_("binary.yaml"), ["binary.yaml", "malformed"]),
    ("system-a-list", enumerate_("list.yaml"), ["list.yaml", "list"]),
    # temperature and beta lists
    ("temperatures-empty", enumerate_("ok.yaml", "--temperatures", ""), ["--temperatures", "empty"]),
    ("temperatures-blank", enumerate_("ok.yaml", "--temperatures", " , "), ["--temperatures", "empty"]),
    ("temperatures-nan", enumerate_("ok.yaml", "--temperatures", "1,nan"), ["--temperatures", "'nan'"]),
    ("temperatures-word", enumerate_("ok.yaml", "--temperatures", "1,hot"), ["--temperatures", "'hot'"]),
    ("temperatures-negative", enumerate_("ok.yaml", "--temperatures", "2,-1"), ["--temperatures", "-1"]),
    ("temperatures-zero", enumerate_("ok.yaml", "--temperatures", "0"), ["--temperatures", "value 0"]),
    ("temperatures-overflow", enumerate_("ok.yaml", "--temperatures", "1e400"), ["--temperatures", "1e400"]),
    ("betas-negative", enumerate_("ok.yaml", "--betas", "0,-0.5"), ["--betas", "-0.5"]),
    ("betas-inf", enumerate_("ok.yaml", "--betas", "0,inf"), ["--betas", "inf"]),
    ("betas-overflow", enumerate_("ok.yaml", "--betas", "1e400"), ["--betas", "1e400"]),
    ("temperatures-and-betas", enumerate_("ok.yaml", "--temperatures", "1", "--betas", "1"),
     ["--temperatures", "--betas"]),
    ("out-not-a-table", ["exact", "enumerate", "--system", "{in}/ok.yaml", "--temperatures", "1", "--out", "o.txt"],
     ["o.txt", ".csv"]),
    ("kaufman-size", ["exact", "kaufman", "--size", "1", "4", "--temperatures", "1", "--out", "k.csv"], ["L1", "1"]),
    ("kaufman-J", ["exact", "kaufman", "--size", "4", "4", "--J", "-1", "--temperatures", "1", "--out", "k.csv"],
     ["J", "-1"]),
    ("kaufman-overflow", ["exact", "kaufman", "--size", "4", "4", "--temperatures", "2,1e999", "--out", "k.csv"],
     ["--temperatures", "1e999"]),
    # mcmc run options
    ("run-overflow", run("--temperatures", "inf,1e400"), ["--temperatures", "1e400"]),
    ("run-swap-semi-grand", run("--move", "swap"), ["--move", "swap", "semi_grand"]),
    ("run-unknown-move", run("--move", "jump"), ["--move", "jump"]),
    ("run-wolff-spin-glass", run("--move", "wolff", system="ea.yaml"), ["wolff", "edwards_anderson"]),
    ("run-chains-zero", run("--chains", "0"), ["--chains", "0"]),
    ("run-short", run("--sweeps", "150"), ["--sweeps 150", "--burn-in 100", "50"]),
    ("run-bad-system", run(system="x_uneven.yaml"), ["'concentration'", "0.3"]),
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
    ("table-text-energy", integrate("text_energy.csv"), ["text_energy.csv", "energy"]),
    ("table-no-beta-zero", integrate("no_zero.csv"), ["beta", "0.5"]),
    ("table-no-n-sites", integrate("no_n_sites.csv"), ["no_n_sites.csv", "'n_sites'", "--n-sites"]),
    ("table-two-n-sites", integrate("two_n_sites.csv"), ["two_n_sites.csv", "n_sites", "64"]),
    ("table-nan-n-sites", integrate("nan_n_sites.csv"), ["nan_n_sites.csv", "n_sites", "nan"]),
    ("integrate-method", integrate("no_n_sites.csv", "--method", "simpson"), ["--method", "simpson"]),
    # analysis
    ("phase-diagram-key", phase_diagram("half={in}/ti.csv"), ["--canonical", "'half'"]),
    ("phase-diagram-missing", phase_diagram("0.5={in}/nope.csv"), ["nope.csv", "not found"]),
    ("phase-diagram-columns", phase_diagram("0.5={in}/ti.csv"), ["ti.csv", "heat_capacity_per_site"]),
    ("compare-label", ["analysis", "compare", "--name", "ising", "--table", "mcmc={in}/comparison.csv",
                       "--out", "c.csv"], ["--table label", "'mcmc'"]),
    ("figure-format", ["analysis", "figure-free-energy-error", "{in}/comparison.csv", "--out", "fig.txt"],
     ["--out", "fig.txt"]),
    # a user's ASE database (ce fit --source database)
    ("database-option-missing", ce_fit(None), ["'database'", "--database"]),
    ("database-missing", ce_fit("nope.db"), ["nope.db", "not found"]),
    ("database-directory", ce_fit("directory.db"), ["directory.db", "directory"]),
    ("database-garbage", ce_fit("garbage.db"), ["garbage.db", "not a readable ASE database"]),
    ("database-empty", ce_fit("empty.db"), ["empty.db", "no structures"]),
    ("database-unknown-type", ce_fit("structures.txt"), ["structures.txt", "txt"]),
    ("yaml-python-tag", enumerate_("python_tag.yaml"), ["python_tag.yaml", "python/object/apply:os.system"]),
    ("database-foreign-species", ce_fit("foreign.db"), ["foreign.db", "row 3", "['Ni']"]),
    ("database-not-on-lattice", ce_fit("bcc_row.db"), ["bcc_row.db", "row 3", "not a supercell of the fcc"]),
    ("database-no-energy", ce_fit("no_energy.db"), ["no_energy.db", "row 1", "no energy"]),
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
