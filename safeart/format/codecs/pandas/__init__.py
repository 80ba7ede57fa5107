"""Codecs for pandas: DataFrame, Series, the Index types and pandas scalars, without pickle.

A frame is stored as its index, its column labels (an Index) and one *column state* per
column (:mod:`.arrays`): a plain dict naming the dtype (a name from the fixed table
:data:`DTYPE_KINDS`) and holding numpy arrays the safetensors container stores as they are
(numeric, bool, datetime64/timedelta64 values, nullable values plus mask, categorical codes,
period ordinals, UTF-8 text plus offsets for strings). ``object`` columns are lists whose
elements the format stores as values. Nothing pandas-internal (blocks, managers, module paths)
is recorded, so the state reads the same on pandas 2 and 3 and the auditor sees every part
of it.

Decoding treats the state as hostile: every field, type, dtype and length is checked (values
as long as the index, codes within their categories, offsets inside the text, time zones as
IANA keys or fixed offsets, never paths) and the objects are built with pandas' public
constructors. No name is looked up from the state. pandas is imported on first use only.

Modules: :mod:`.state` (checks shared by every codec, time zones, how a codec is declared),
:mod:`.arrays` (column states), :mod:`.frame` (DataFrame, Series), :mod:`.index` (the Index
types), :mod:`.scalars` (Timestamp, Timedelta, NaT, NA).
"""

from __future__ import annotations

from .. import Codec
from . import frame, index, scalars  # noqa: F401  (each declares its codecs)
from .arrays import DTYPE_KINDS
from .state import DECLARED

__all__ = ["CODECS", "DTYPE_KINDS"]

#: Every pandas codec, in declaration order: DataFrame, Series, the Index types, scalars.
CODECS: tuple[Codec, ...] = tuple(DECLARED)
