"""Write the corpus once per session into a temp dir (writing only: nothing here loads)."""

from pathlib import Path
from typing import Any

import pytest

from .build import items

ITEMS = {item.name: item for item in items()}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, tuple[Path, Any]]:
    """Test id -> (file path, the original value)."""
    root = tmp_path_factory.mktemp("benign_corpus")
    written = {}
    for index, (name, item) in enumerate(ITEMS.items()):
        value = item.make()
        path = root / f"{index:04d}.bin"
        path.write_bytes(item.write(value))
        written[name] = (path, value)
    return written
