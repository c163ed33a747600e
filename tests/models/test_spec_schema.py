"""One definition of a model section: the schema's ``models`` properties are exactly the typed
config classes' fields (plus ``kind``), and every class default passes the schema."""

import dataclasses

import jsonschema

from lattherm.models.made import MADEConfig
from lattherm.models.transformer import TransformerConfig
from lattherm.schema import schema


def model_section():
    return schema()["properties"]["models"]["additionalProperties"]


def test_schema_models_section_and_config_classes_agree():
    fields = {f.name for cls in (MADEConfig, TransformerConfig) for f in dataclasses.fields(cls)}
    assert set(model_section()["properties"]) == fields | {"kind"}


def test_class_defaults_pass_the_schema():
    validator = jsonschema.Draft202012Validator({"$defs": schema()["$defs"], **model_section()})
    for kind, cls in (("made", MADEConfig), ("transformer", TransformerConfig)):
        block = {"kind": kind, **dataclasses.asdict(cls())}
        assert not list(validator.iter_errors(block)), kind
    for field in ("z2_symmetric", "lattice_symmetric"):
        for value in (True, False, "auto"):
            assert not list(validator.iter_errors({"kind": "made", field: value}))
        assert list(validator.iter_errors({"kind": "made", field: "yes"}))
