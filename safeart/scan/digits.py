"""How many decimal digits the numbers an allowed number type computes with have.

``fractions.Fraction`` and ``decimal.Decimal`` are ``callable`` entries (real pickles call
``Fraction('22/7')`` and ``Decimal('1.5')``), and some arguments cost CPU rather than memory:
``Fraction('1e10000000')`` builds ``10**10000000`` (seconds from 20 bytes, forever for an
exponent of 4300 digits), ``Fraction(Decimal('1e10000000'))`` the same through
``as_integer_ratio``, ``Fraction(a, b)`` of two 3-million-bit ints runs a quadratic gcd
(~15 s) and ``Decimal(2**3000000)`` a quadratic conversion (~17 s). :mod:`.calls` charges
these counts against CPython's own bound for ``int('9' * 4301)``,
``sys.get_int_max_str_digits()`` (4300 digits by default, far above any real pickle's), for
the scanner and the restricted unpickler alike. Nothing here converts a number.
"""

from __future__ import annotations

import decimal
import fractions
import numbers
import re
from typing import Any, Callable, Optional


def argument(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, key: str) -> Any:
    """Positional argument ``i`` of a call, or keyword ``key`` (None when neither)."""
    return args[i] if len(args) > i else kwargs.get(key)


#: An exponent at the end of a number string, as ``Fraction`` and ``Decimal`` read it (``\d``:
#: any Unicode digit, as ``int()`` accepts; ``_`` between digits).
_EXPONENT = re.compile(r"[eE]([-+]?\d+(?:_\d+)*)\s*\Z")


def _int_digits(n: int) -> int:
    """Decimal digits of ``n`` (at least; from its bit length, no conversion)."""
    return abs(n).bit_length() * 30103 // 100_000 + 1


def _text_digits(text: str) -> int | None:
    """Digits of the largest integer ``Fraction(text)`` builds: each part of ``'n/d'`` is
    parsed by ``int()`` (bounded by CPython itself), a decimal or exponent form makes
    ``10**(decimals + exponent)`` first. None: an exponent too long for ``int()``."""
    if "/" in text:
        return 0
    found = _EXPONENT.search(text)
    try:
        exponent = abs(int(found.group(1))) if found else 0
    except ValueError:  # more than the digit limit: 10**exponent is beyond any bound
        return None
    return len(text) + exponent


def _number_digits(value: Any) -> int | None:
    """Digits of the largest integer ``Fraction`` builds from one argument; None when the
    argument does not bound it (a stub: the result of another call)."""
    if value is None or isinstance(value, (bool, float)):
        return 0
    if isinstance(value, str):
        return _text_digits(value)
    if isinstance(value, int):
        return _int_digits(value)
    if isinstance(value, decimal.Decimal):  # as_integer_ratio builds 10**exponent
        _, digits, exponent = value.as_tuple()
        return len(digits) + abs(exponent) if type(exponent) is int else 0  # NaN, Infinity
    if isinstance(value, numbers.Rational):
        parts = (value.numerator, value.denominator)
        return max(map(_int_digits, parts)) if all(type(p) is int for p in parts) else None
    return None


def fraction_digits(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """``Fraction(numerator=0, denominator=None)``: the largest integer it builds."""
    counts = [_number_digits(argument(args, kwargs, 0, "numerator")),
              _number_digits(argument(args, kwargs, 1, "denominator"))]
    return None if None in counts else max(counts)  # type: ignore[type-var]


_LINEAR_DECIMALS = (str, float, tuple, decimal.Decimal, fractions.Fraction)


def decimal_digits(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """``Decimal(value='0', context=None)``: from an int, a quadratic conversion to
    decimal; strings, floats, tuples and Decimals are read in linear time (0)."""
    value = argument(args, kwargs, 0, "value")
    if value is None or isinstance(value, _LINEAR_DECIMALS):
        return 0  # (a Fraction is a TypeError at once)
    return _int_digits(value) if isinstance(value, int) else None


#: Number types by the name a pickle imports -> the digits a call of it computes with.
DIGIT_COUNTS: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], Optional[int]]] = {
    "fractions.Fraction": fraction_digits,
    "decimal.Decimal": decimal_digits,
}
