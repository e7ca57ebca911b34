"""Each protocol is a folder: its connector, its settings model, a README listing every option,
and a sample TOML that loads. Adding a protocol means one folder and one line in the factory."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

import circman5.connectors
from circman5.connectors.config import AnyConnectorSettings, load_connectors
from circman5.connectors.factory import CONNECTOR_CLASSES

CONNECTORS = Path(circman5.connectors.__file__).parent
SETTINGS: dict[str, type[BaseModel]] = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(AnyConnectorSettings)
}


def nested_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The model and the models of its fields (tags, discovery rules, security, TLS)."""
    found = [model]
    for field in model.model_fields.values():
        for arg in [field.annotation, *_flat_args(field.annotation)]:
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in found:
                found.append(arg)
    return found


def _flat_args(annotation: object) -> list[object]:
    out: list[object] = []
    for arg in typing.get_args(annotation):
        out.append(arg)
        out.extend(_flat_args(arg))
    return out


def test_every_connector_type_has_a_folder_and_a_factory_entry() -> None:
    folders = {p.parent.name for p in CONNECTORS.glob("*/config.py")}
    assert set(SETTINGS) == folders == set(CONNECTOR_CLASSES)
    for kind, target in CONNECTOR_CLASSES.items():
        assert target.startswith(f"circman5.connectors.{kind}.")
        assert SETTINGS[kind].__module__ == f"circman5.connectors.{kind}.config"


@pytest.mark.parametrize("kind", sorted(SETTINGS))
def test_sample_toml_loads_as_that_connector(kind: str) -> None:
    connectors = load_connectors(CONNECTORS / kind / "sample.toml")
    assert connectors and all(c.type == kind for c in connectors)
    assert all(c.tags for c in connectors)


@pytest.mark.parametrize("kind", sorted(SETTINGS))
def test_readme_names_every_option(kind: str) -> None:
    readme = (CONNECTORS / kind / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# ") and f'`type = "{kind}"`' in readme.splitlines()[0]
    missing = [
        f"{model.__name__}.{name}"
        for model in nested_models(SETTINGS[kind])
        for name in model.model_fields
        if f"`{name}`" not in readme
    ]
    assert not missing, f"connectors/{kind}/README.md does not mention {missing}"
