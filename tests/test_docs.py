"""The API reference (docs/api.md) lists every public name, so each one gets a page.

Building the docs (``sphinx-build -W -b html docs docs/_build/html``, a stage of ``.ci/run``) checks the rest.
"""

import re
from pathlib import Path

import pytest

import ruotools as rt

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _autosummary_entries(path: Path) -> set[str]:
    """Names listed in the ``autosummary`` blocks of a docs page (relative to ``ruotools``)."""
    entries = set()
    for block in re.findall(r"\.\. autosummary::\n((?:   .*\n|\n)+)", path.read_text()):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith(":"):
                entries.add(line)
    return entries


@pytest.mark.parametrize("namespace", ["tl", "pl", "get", "datasets"])
def test_api_page_lists_every_public_name(namespace):
    listed = _autosummary_entries(DOCS / "api.md")
    public = {f"{namespace}.{name}" for name in getattr(rt, namespace).__all__}
    assert public <= listed, f"missing from docs/api.md: {sorted(public - listed)}"


def test_api_page_lists_model_settings_and_cli():
    assert {"RUOTModel", "settings"} <= _autosummary_entries(DOCS / "api.md")
    assert {"cli.main", "cli.build_parser"} <= _autosummary_entries(DOCS / "cli.md")


def test_tutorials_page_lists_every_notebook():
    notebooks = {path.stem for path in (DOCS.parent / "tutorials").glob("*.ipynb")}
    toctree = (DOCS / "tutorials.md").read_text()
    assert notebooks
    assert all(f"tutorials/{name}" in toctree for name in notebooks)
