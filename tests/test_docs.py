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


@pytest.mark.parametrize(
    ("build", "kwargs"),
    [
        ("phyloclr.cluster:ClusterConfig", {"input": "fgcr"}),
        ("phyloclr.families:FamiliesConfig", {"denovo_method": "mmseq"}),
        ("phyloclr.embed:EmbedConfig", {"dtype": "float64"}),
        ("phyloclr.train.config:ViewsConfig", {"mode": "phylogeny"}),
        ("phyloclr.train.config:RunConfig", {"device": "gpu"}),
    ],
)
def test_literal_settings_are_checked_when_built_in_python(
    build: str, kwargs: dict[str, object]
) -> None:
    """A misspelt choice is an error at construction, not a silent fallback."""
    import importlib

    from phyloclr.errors import ConfigError

    module, name = build.split(":")
    cls = getattr(importlib.import_module(module), name)
    ((field, value),) = kwargs.items()
    with pytest.raises(ConfigError, match=rf"{name}\.{field}: {value!r} is not one of"):
        cls(**kwargs)


def test_shipped_data_files_have_provenance() -> None:
    """Every file under data/ is named in data/PROVENANCE.md (by path or by a brace pattern)."""
    text = (ROOT / "data" / "PROVENANCE.md").read_text()
    named: set[str] = set()
    for cell in re.findall(r"`([^`]+)`", text):
        match = re.fullmatch(r"(.*)\{([^}]+)\}(.*)", cell)
        if match and ".." in match.group(2):
            lo, hi = match.group(2).split("..")
            named |= {f"{match.group(1)}{i}{match.group(3)}" for i in range(int(lo), int(hi) + 1)}
        elif match:
            named |= {f"{match.group(1)}{p}{match.group(3)}" for p in match.group(2).split(",")}
        else:
            named.add(cell)
    data = ROOT / "data"
    files = {
        str(p.relative_to(data))
        for p in data.rglob("*")
        if p.is_file() and p.name != "PROVENANCE.md" and "licenses" not in p.parts
    }
    assert files and files <= named, sorted(files - named)


def test_shipped_23s_set_matches_its_provenance() -> None:
    """The smallest DNA development set (issue 20) ships whole: 331 records, 8 genera, every
    id labelled."""
    from collections import Counter

    from phyloclr.io.fasta import read_fasta

    folder = ROOT / "data" / "dna"
    ids = [r.id for r in read_fasta(folder / "rrna_23s_genera.fasta")]
    rows = (folder / "rrna_23s_genera_labels.csv").read_text().splitlines()
    assert rows[0] == "id,label"
    labels = dict(row.split(",") for row in rows[1:])
    assert len(ids) == len(set(ids)) == 331 and set(ids) == set(labels)
    counts = Counter(labels.values())
    assert counts["Helicobacter"] == 80 and counts["Enterococcus"] == 20 and len(counts) == 8
