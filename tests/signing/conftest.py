"""Fixtures of the signing tests: tests/metaflow/conftest.py's real-flow environment
(``flow_env``), loaded under its own module name, and a key pair."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_NAME = "safeart_metaflow_fixtures"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        _NAME, Path(__file__).resolve().parents[1] / "metaflow" / "conftest.py"
    )
    sys.modules[_NAME] = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
    _spec.loader.exec_module(sys.modules[_NAME])  # type: ignore[union-attr]

flow_env = sys.modules[_NAME].flow_env


@pytest.fixture
def keys(tmp_path: Path):
    """A fresh Ed25519 key pair (``safeart.signing.keys.KeyPair``) under ``tmp_path/keys``."""
    from safeart.signing import keygen

    return keygen(tmp_path / "keys" / "flows.pem")
