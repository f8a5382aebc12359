"""Templates keep the layering contract of pyproject.toml: lint-imports cannot see a template's {% load %},
{% extends %} or {% include %}, so this test reads them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USES = re.compile(r"{%\s*load\s+([\w ]+?)\s*%}|{%\s*(?:extends|include)\s+[\"'](\w+)/")


def layer_ranks() -> dict[str, int]:
    """Each app's rank in the contract, lowest layer 0 (apps of one layer, "a | b", share it)."""
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    layers = list(reversed(contract["layers"]))
    return {app.strip(): rank for rank, layer in enumerate(layers) for app in re.split(r"[|:]", layer)}


def test_no_app_template_uses_the_tags_or_templates_of_a_higher_app():
    ranks = layer_ranks()
    library_owner = {path.stem: path.parts[-3] for path in ROOT.glob("*/templatetags/*.py")}
    upward = []
    for template in sorted((ROOT / "templates").rglob("*.html")):
        app = template.relative_to(ROOT / "templates").parts[0]
        if app not in ranks:
            continue  # the site's own templates (base, errors, admin overrides) sit above every app
        for libraries, folder in USES.findall(template.read_text()):
            for owner in [library_owner.get(name) for name in libraries.split()] + [folder]:
                if owner in ranks and ranks[owner] > ranks[app]:
                    upward.append(f"{template.relative_to(ROOT)} uses {owner}")
    assert not upward
