"""The public surface: the exact top-level names, and what importing them costs.

``import safeart.errors`` runs in every Metaflow process (the extension imports it), so it
must not drag in numpy, torch, Metaflow, the format or the scanner.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import safeart

TOP_LEVEL = (
    "FORMAT_VERSION AuditReport ClassRef ConfigError EncodeError FormatError Grade "
    "LimitExceeded Limits Policy PolicyError Rule SafeartError ScanReport ScanResult "
    "UnsafeArtifactError UnsupportedVersion audit convert dumps export is_safeart load "
    "load_file load_policy load_torch_file loads save_file scan_bytes scan_path scan_run"
).split()
#: Top-level packages and safeart subpackages a light import must not load.
HEAVY = ("numpy", "torch", "metaflow", "safeart.format", "safeart.scan", "safeart.metaflow")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_top_level_all_is_exact() -> None:
    assert safeart.__all__ == TOP_LEVEL


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_each_top_level_name_resolves(name: str) -> None:
    assert getattr(safeart, name) is not None
    assert name in dir(safeart)


def test_lazy_names_are_the_objects_of_their_home_modules() -> None:
    from safeart.format import loads
    from safeart.guard import load_torch_file
    from safeart.metaflow.runscan import scan_run
    from safeart.transfer.convert import convert
    from safeart.transfer.export import export

    assert (safeart.loads, safeart.scan_run, safeart.convert, safeart.export,
            safeart.load_torch_file) == (loads, scan_run, convert, export, load_torch_file)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        safeart.no_such_name  # noqa: B018


@pytest.mark.parametrize("code", ["import safeart.errors", "import safeart",
                                  "import safeart.guard", "import safeart.policy"])
def test_light_imports_load_no_heavy_module(code: str) -> None:
    loaded = _modules_after(code)
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == [], f"{code} imported {heavy}"


def test_safeart_metaflow_package_does_not_import_the_scanner_or_metaflow() -> None:
    loaded = _modules_after("import safeart.metaflow")
    assert not {"numpy", "metaflow", "safeart.scan", "safeart.metaflow.runscan"} & loaded


@pytest.mark.parametrize("package", ["safeart.format", "safeart.scan", "safeart.policy",
                                     "safeart.unpickle", "safeart.metaflow", "safeart.transfer"])
def test_package_all_names_resolve(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_only_package_inits_declare_all() -> None:
    """The public surface is each package ``__init__``'s ``__all__``; a module declares none."""
    import ast
    import pathlib

    root = pathlib.Path(safeart.__file__).parent
    declaring = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                declaring.append(str(path.relative_to(root)))
    assert declaring == []
