"""No false alarms: every benign corpus file scans clean with the default policy and loads
back, through the guarded loader, to a value equal to the original."""

import pytest

from safeart.guard import load_pickle
from safeart.scan import scan_bytes

from .conftest import ITEMS

LOADABLE = [name for name, item in ITEMS.items() if item.to_pickle is not None]


@pytest.mark.parametrize("name", list(ITEMS))
def test_scans_clean(corpus, name):
    path, _ = corpus[name]
    result = scan_bytes(path.read_bytes(), name=name)
    assert result.complete and result.verdict == "clean", result.findings
    assert all(g["grade"] == "allowed" for g in result.globals.values())


@pytest.mark.parametrize("name", LOADABLE)
def test_loads_back_equal(corpus, name):
    item = ITEMS[name]
    path, original = corpus[name]
    loaded = load_pickle(item.to_pickle(path.read_bytes()), artifact=name)
    item.equal(original, loaded)


def test_corpus_covers_every_family():
    families = {name.split()[0] for name in ITEMS}
    assert {"stdlib", "numpy", "pandas", "sklearn", "torch", "metaflow"} <= families
    assert len(ITEMS) > 400
    unloadable = {name: item.unloadable for name, item in ITEMS.items() if item.to_pickle is None}
    assert all(unloadable.values()) and len(unloadable) <= 1, unloadable
