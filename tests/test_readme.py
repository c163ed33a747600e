"""The README's two commands are what CI runs: the main command verbatim but for the config
(in a fresh venv, without test extras), and the test command verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = " --configfile config/tiny.yaml"


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)[:2]


def ci_lines() -> list[str]:
    return [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]


def test_readme_starts_with_the_main_and_the_test_command():
    main, tests = readme_commands()
    assert main.endswith("snakemake --cores all") and "[test]" not in main
    assert "-c constraints.txt" in main and "-c constraints.txt" in tests
    assert tests.endswith("python -m pytest") and '".[test]"' in tests


def test_ci_runs_the_readme_main_command_on_the_tiny_config_and_then_the_test_command():
    main, tests = readme_commands()
    lines = ci_lines()
    assert main + TINY in lines
    assert tests in lines
    assert lines.index(main + TINY) < lines.index(tests)


def test_constraints_pin_every_package_exactly():
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=\s]+", line) for line in pins), pins
    names = {line.split("==")[0].lower() for line in pins}
    assert {"torch", "typer", "snakemake", "icet", "jsonschema", "trainstation"} <= names
    assert "torch==2.13.0" in pins


def test_every_declared_dependency_is_pinned():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    names = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in declared}
    pinned = {line.split("==")[0].lower().replace("_", "-") for line in (ROOT / "constraints.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    assert names <= pinned, names - pinned


def test_the_system_table_lists_exactly_the_fields_of_a_system_block():
    """The README's one table of a system block: a row per SystemConfig field, with its default."""
    import dataclasses

    from lattherm.schema import schema_defaults
    from lattherm.systems import SystemConfig

    text = (ROOT / "README.md").read_text()
    table = text[text.index("| field | default | meaning |"):].split("\n\n")[0].splitlines()[2:]
    rows = {}
    for row in table:
        names, default = row.split(" | ")[0:2]
        for name in re.findall(r"`([a-zA-Z_]+)`", names):
            rows[name] = default
    fields = {f.name for f in dataclasses.fields(SystemConfig)}
    assert set(rows) == fields
    defaults = schema_defaults(SystemConfig)
    for name in fields:
        expected = "required" if name not in defaults else None
        assert expected is None or rows[name] == expected, name
    assert rows["ensemble"] == "`semi_grand`" and rows["transfer_sizes"] == "`[]`"
