"""Shared fixtures: where the real data lives, and an isolated cache for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PROTEIN = SHARED / "protein"
DATA = ROOT / "data"
#: a families config without FAMSA's iterative refinement, which is not always reproducible
#: (pyfamsa 0.7.0: one family of the test proteome's 86 aligns two ways from run to run): for
#: tests that compare two families runs
REPRODUCIBLE_FAMILIES_YAML = "families: {align_refine: false}\n"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PHYLOCLR_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def protein() -> Path:
    if not PROTEIN.is_dir():
        pytest.skip("../shared/data/protein is not present")
    return PROTEIN


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
