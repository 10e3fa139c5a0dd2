"""The README's Python example and the notebook's code cells run as tests."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.conftest import ROOT


def test_readme_python_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    monkeypatch.chdir(ROOT)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


@pytest.mark.parametrize(
    ("name", "variable"), [("01_families.ipynb", "seeds"), ("02_embed_evaluate.ipynb", "scores")]
)
def test_notebook_cells_run(monkeypatch: pytest.MonkeyPatch, name: str, variable: str) -> None:
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    monkeypatch.chdir(ROOT / "notebooks")
    scope: dict[str, object] = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), name, "exec"), scope)
    assert scope[variable] is not None
    assert os.getcwd().endswith("notebooks")


def test_shipped_config_loads() -> None:
    from phyloclr.config import load_config
    from phyloclr.families import FamiliesConfig

    cfg = load_config(FamiliesConfig, ROOT / "configs" / "families.yaml", "families")
    assert cfg == FamiliesConfig()
