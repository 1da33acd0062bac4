"""The Kubernetes configuration says the same course as the single-host one, and respects the z2jh chart's schema."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
import yaml

from tests.notebook_tools import ROOT

K8S = ROOT / "deploiement" / "kubernetes"
VALUES = yaml.safe_load((K8S / "values.yaml").read_text(encoding="utf-8"))
COURSE = "cours-autograd"


def _merge(defaults, override):
    if isinstance(defaults, dict) and isinstance(override, dict):
        merged = dict(defaults)
        for key, value in override.items():
            merged[key] = _merge(defaults[key], value) if key in defaults else value
        return merged
    return override


def _text(node: ast.expr) -> str:
    """A string or f-string literal of the config, with {COURSE} filled in."""
    return re.sub(r"^f?(['\"])(.*)\1$", r"\2", ast.unparse(node)).replace("{COURSE}", COURSE)


def _single_host_role_scopes() -> dict[str, list[str]]:
    """The roles of deploiement/jupyterhub_config.py, read from its source (it needs a deployment to execute)."""
    tree = ast.parse((ROOT / "deploiement" / "jupyterhub_config.py").read_text(encoding="utf-8"))
    roles = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = [k.value if isinstance(k, ast.Constant) else None for k in node.keys]
            if "name" in keys and "scopes" in keys:
                name = node.values[keys.index("name")]
                scopes = node.values[keys.index("scopes")]
                roles[_text(name)] = [_text(scope) for scope in scopes.elts]
    return roles


def test_kubernetes_roles_are_the_single_host_roles():
    single_host = _single_host_role_scopes()
    for name, role in VALUES["hub"]["loadRoles"].items():
        assert role["scopes"] == single_host[name], name
    assert "admin" not in str(VALUES["hub"]["services"]) and "apiToken" not in str(VALUES["hub"]["services"])
    assert f"formgrade-{COURSE}" in VALUES["hub"]["loadRoles"] and f"nbgrader-{COURSE}" in VALUES["hub"]["loadRoles"]


def test_kubernetes_storm_and_memory_settings_match_the_measurements():
    assert VALUES["singleuser"]["startTimeout"] >= 120
    assert VALUES["hub"]["db"]["type"] == "postgres"
    formgrader = list(yaml.safe_load_all((K8S / "formgrader.yaml").read_text(encoding="utf-8")))
    env = {e["name"]: e for e in formgrader[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["COURS_AUTOGRAD_FORMGRADER"]["value"] == "1"
    assert "COURS_AUTOGRAD_GRADEBOOK_URL" in env


CHART = os.environ.get("Z2JH_CHART")


@pytest.mark.skipif(
    not CHART, reason="chart z2jh absent (Z2JH_CHART=…/jupyterhub) : il ne s'obtient pas d'un dépôt de paquets"
)
def test_values_respect_the_chart_schema():
    import jsonschema

    chart = Path(CHART)
    schema = yaml.safe_load((chart / "values.schema.yaml").read_text(encoding="utf-8"))
    values = _merge(yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8")), VALUES)
    errors = [f"{list(e.path)} : {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(values)]
    assert errors == []
    values["hub"]["champ_inconnu"] = 1  # the schema refuses what the chart does not know: the check can fail
    assert list(jsonschema.Draft7Validator(schema).iter_errors(values))
