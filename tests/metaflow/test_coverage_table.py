"""The README coverage table is generated from the code (``coverage_table.py``): it builds,
and its key rows say what strict mode promises."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_coverage_table_generates_and_states_the_basics() -> None:
    from coverage_table import row, samples, table

    text = table()
    assert text.startswith("| type | stored as | allow needed |")
    rows = {label: row(label, build) for label, build in samples()}
    assert len(text.splitlines()) == len(rows) + 2
    assert rows["torch.Tensor"][1:] == ("1 safetensors tensor", "no")
    assert rows["lambda"][1].startswith("refused:")
    assert "reference torch.nn.functional.relu" in rows["torch.nn TransformerEncoder"][1]
    assert rows["enum member (your Enum)"][2].endswith(".Color`")  # your class: allow it
