"""What strict mode stores, measured from the code: ``python tests/metaflow/coverage_table.py``
prints a Markdown table ``type · stored as · allow needed`` for the values ML flows keep.

Each sample is encoded with ``safeart.dumps`` and loaded back with ``safeart.loads`` under
the default policy; "stored as" summarises the manifest nodes the blob holds (classes,
codecs, function references, tensors), "allow needed" is what the default policy refused
(empty: loads as is). Nothing is hard-coded, so the table cannot drift from the code.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Callable, Iterator

import safeart

_MANIFEST_KEY = "safeart"


def _manifest(blob: bytes) -> Any:
    size = int.from_bytes(blob[:8], "little")
    return json.loads(json.loads(blob[8:8 + size])["__metadata__"][_MANIFEST_KEY])


def _nodes(tree: Any) -> Iterator[dict]:
    if isinstance(tree, dict):
        if "k" in tree:
            yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def stored_as(blob: bytes) -> str:
    """The manifest's classes, codecs, references and tensor count, in words."""
    kinds: Counter[str] = Counter()
    names: dict[str, set[str]] = {"obj": set(), "val": set(), "fn": set(), "enum": set()}
    for node in _nodes(_manifest(blob)["root"]):
        kinds[node["k"]] += 1
        if node["k"] in names and isinstance(node.get("c"), list):
            names[node["k"]].add(".".join(node["c"]))
    parts = []
    labels = {"obj": "object", "val": "codec", "fn": "reference", "enum": "enum"}
    for kind, label in labels.items():
        if names[kind]:
            shown = sorted(names[kind])
            more = f" +{len(shown) - 3}" if len(shown) > 3 else ""
            parts.append(f"{label} {', '.join(shown[:3])}{more}")
    arrays = kinds["tensor"] + kinds["ndarray"]
    if arrays:
        parts.append(f"{arrays} safetensors tensor{'s' if arrays > 1 else ''}")
    return "; ".join(parts) or "manifest literal"


def row(label: str, build: Callable[[], Any]) -> tuple[str, str, str]:
    """(type, stored as, allow needed) for one sample."""
    value = build()
    try:
        blob = safeart.dumps(value, name=label)
    except safeart.EncodeError as err:
        return label, f"refused: {err.message}", "—"
    needed = sorted({p.name for p in safeart.audit(blob).problems
                     if isinstance(p, safeart.PolicyError)})
    return label, stored_as(blob), ", ".join(f"`{n}`" for n in needed) or "no"


def samples() -> list[tuple[str, Callable[[], Any]]]:
    """The values the README table covers (built in code, seeded)."""
    import collections
    import datetime
    import decimal
    import enum
    import math
    import pathlib
    import uuid

    import numpy as np
    import pandas as pd
    import torch
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from torch import nn

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 3)), np.arange(30) % 2

    def transformer() -> nn.Module:
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        return nn.Sequential(nn.Linear(8, 16), nn.TransformerEncoder(layer, 2))

    def adam() -> torch.optim.Optimizer:
        model = nn.Linear(3, 1)
        opt = torch.optim.Adam(model.parameters())
        model(torch.ones(2, 3)).sum().backward()
        opt.step()
        return opt

    frame = lambda: pd.DataFrame({  # noqa: E731
        "f": [0.5, 1.5], "n": pd.array([1, None], dtype="Int64"),
        "c": pd.Categorical(["a", "b"]), "s": ["x", "y"],
        "t": pd.date_range("2024-01-01", periods=2, tz="UTC"),
    })
    color = enum.Enum("Color", "RED GREEN", module=__name__)
    return [
        ("torch.nn module (Linear)", lambda: nn.Linear(4, 2)),
        ("torch.nn TransformerEncoder", transformer),
        ("torch.Tensor", lambda: torch.arange(6.0).reshape(2, 3)),
        ("numpy.ndarray", lambda: np.arange(6, dtype=np.int32)),
        ("numpy scalar", lambda: np.float32(1.5)),
        ("pandas.DataFrame (mixed dtypes)", frame),
        ("pandas.Series", lambda: pd.Series([1.0, 2.0], index=["a", "b"])),
        ("sklearn Pipeline(StandardScaler, RandomForest)", lambda: Pipeline(
            [("s", StandardScaler()), ("f", RandomForestClassifier(3, random_state=0))]
        ).fit(x, y)),
        ("sklearn LogisticRegression", lambda: LogisticRegression().fit(x, y)),
        ("torch.optim.Adam", adam),
        ("Adam.state_dict()", lambda: adam().state_dict()),
        ("datetime.datetime (tz-aware)",
         lambda: datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc)),
        ("datetime.date", lambda: datetime.date(2024, 1, 2)),
        ("decimal.Decimal", lambda: decimal.Decimal("1.25")),
        ("uuid.UUID", lambda: uuid.UUID(int=1)),
        ("pathlib.Path", lambda: pathlib.Path("data/x.csv")),
        ("enum member (your Enum)", lambda: color.GREEN),
        ("complex", lambda: complex(1, 2)),
        ("collections.defaultdict(list)", lambda: collections.defaultdict(list, a=[1])),
        ("collections.Counter", lambda: collections.Counter("abca")),
        ("collections.deque", lambda: collections.deque([1, 2], maxlen=3)),
        ("function (math.sqrt)", lambda: math.sqrt),
        ("function (torch.nn.functional.relu)", lambda: torch.nn.functional.relu),
        ("lambda", lambda: (lambda v: v)),
    ]


def table() -> str:
    """The Markdown table."""
    lines = ["| type | stored as | allow needed |", "|---|---|---|"]
    for label, build in samples():
        lines.append("| " + " | ".join(row(label, build)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
