"""Value codecs (kind ``val``): stdlib round trips, malformed states, policy gating, registry."""

from __future__ import annotations

import argparse
import collections
import datetime
import decimal
import enum
import fractions
import functools
import http
import math
import pathlib
import re
import types
import uuid
import zoneinfo
from typing import Any

import pytest

import safeart
from safeart import FormatError, Policy, PolicyError, Rule
from safeart.format.codecs import CODECS, codec_for_type, codec_named, stdlib, torch_extra
from format_models import FrozenPoint, Pair, TrainConfig, make_blob

STDLIB = [codec.name for codec in stdlib.CODECS]
REFS = [Rule(f"builtins.{n}", "a defaultdict factory", kind="reference") for n in ("list", "int")]
POLICY = Policy(allow=[*STDLIB, *REFS, TrainConfig, FrozenPoint, Pair, "argparse.Namespace",
                       "http.HTTPStatus", "re.RegexFlag", "test_format_codecs.Perm"])
PARIS = zoneinfo.ZoneInfo("Europe/Paris")


class Perm(enum.IntFlag):
    R = 4
    W = 2
    X = 1


def roundtrip(value: Any, policy: Policy = POLICY) -> Any:
    return safeart.loads(safeart.dumps(value), policy=policy)


VALUES = [
    datetime.date(2024, 2, 29),
    datetime.time(23, 59, 59, 999999),
    datetime.time(1, 2, tzinfo=datetime.timezone.utc, fold=1),
    datetime.datetime(2020, 1, 1),
    datetime.datetime(2021, 10, 31, 2, 30, tzinfo=PARIS, fold=1),  # the second 02:30
    datetime.datetime(1, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))),
    datetime.timedelta(days=-3, seconds=5, microseconds=7),
    datetime.timezone.utc,
    datetime.timezone(-datetime.timedelta(hours=5), "EST"),
    PARIS,
    decimal.Decimal("1.2300E+5"), decimal.Decimal("-0.000"), decimal.Decimal("NaN"),
    decimal.Decimal("-sNaN12"), decimal.Decimal("Infinity"), decimal.Decimal("1" * 3000),
    fractions.Fraction(-3, 9), fractions.Fraction(2**100, 3),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    pathlib.PurePosixPath("/a/b c"), pathlib.PureWindowsPath(r"C:\x\y"), pathlib.PosixPath("rel/x"),
    3 + 4j, complex(-0.0, math.inf),
    range(1, 10**30, 7), range(0), slice(None, 3, "x"),
    bytearray(b"ab\x00"),
    collections.defaultdict(list, {"a": [1], 2: []}), collections.defaultdict(None),
    collections.Counter("abracadabra"), collections.deque([1, [2]], maxlen=3), collections.deque(),
    types.SimpleNamespace(a=1, b=[2], c=types.SimpleNamespace()),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_stdlib_round_trip(value: Any) -> None:
    back = roundtrip({"x": value})["x"]
    assert type(back) is type(value)
    assert repr(back) == repr(value)  # exact digits, fold, names, maxlen, factory ...
    nan = isinstance(value, decimal.Decimal) and value.is_nan()
    assert nan or back == value


def test_nested_values_share_identity_and_paths_read_through_codecs() -> None:
    tags = ["shared"]
    counts = collections.defaultdict(int, {"a": 1})
    value = {"d": collections.defaultdict(list, {"k": tags}), "q": collections.deque([tags]),
             "again": counts, "same": counts, "when": [datetime.datetime(2020, 1, 1, tzinfo=PARIS)] * 2}
    back = roundtrip(value)
    assert back["d"]["k"] is back["q"][0] and back["again"] is back["same"]
    assert back["when"][0] is back["when"][1]
    back["again"]["new"] += 1  # the factory works (builtins.int, resolved by name)
    assert back["again"] == {"a": 1, "new": 1}


def test_existing_kinds_cover_enums_namespaces_and_records() -> None:
    value = [http.HTTPStatus.NOT_FOUND, re.IGNORECASE | re.MULTILINE, Perm.R | Perm.X, Perm(0),
             argparse.Namespace(lr=0.1, when=datetime.date(2020, 1, 1)), Pair(1, (2, 3)),
             TrainConfig(), FrozenPoint(1, 2)]
    back = roundtrip(value)
    assert back == value and [type(v) for v in back] == [type(v) for v in value]
    assert back[1] is re.I | re.M and back[2] is Perm.R | Perm.X


def test_unsupported_variants_are_refused_when_encoding() -> None:
    with pytest.raises(safeart.EncodeError, match="tzinfo") as info:
        safeart.dumps({"t": datetime.datetime(2020, 1, 1, tzinfo=_FixedTz())})
    assert info.value.path == "['t']" and "zoneinfo" in info.value.hint
    with pytest.raises(safeart.EncodeError, match="file") as info:
        with open(_zone_file(), "rb") as file:
            safeart.dumps([zoneinfo.ZoneInfo.from_file(file)])
    assert info.value.path == "[0]"
    with pytest.raises(safeart.EncodeError, match="lambda"):
        safeart.dumps(collections.defaultdict(lambda: 0))


def test_partial_keeps_its_function_arguments_attributes_and_identity() -> None:
    shared = ["tag"]
    to_int = functools.partial(int, base=2)
    to_int.note = shared  # a partial's own attributes (update_wrapper sets them too)
    value = {"p": to_int, "again": to_int, "tags": shared,
             "counts": collections.defaultdict(functools.partial(int, "7"))}
    back = roundtrip(value)
    assert type(back["p"]) is functools.partial and back["p"].func is int
    assert back["p"]("101") == 5 and back["p"].keywords == {"base": 2}
    assert back["again"] is back["p"] and back["p"].note is back["tags"]
    assert back["counts"]["new"] == 7  # a partial as a defaultdict factory


class _Callable:
    def __call__(self) -> int:
        return 0


def _triple(x: int) -> int:
    return 3 * x


def test_partial_function_is_a_policy_checked_reference() -> None:
    with pytest.raises(safeart.EncodeError, match="functools.partial of a") as info:
        safeart.dumps({"p": functools.partial(_Callable())})
    assert info.value.path == "['p']" and "kind='reference'" in info.value.hint
    with pytest.raises(safeart.EncodeError, match="lambda") as info:
        safeart.dumps({"p": functools.partial(lambda: 0)})
    assert info.value.path == "['p'].func"
    blob = safeart.dumps({"p": functools.partial(_triple, 2)})
    with pytest.raises(PolicyError, match="reference test_format_codecs._triple") as info:
        safeart.loads(blob, policy=POLICY)
    assert info.value.path == "['p'].func" and "kind='reference'" in info.value.hint
    allowed = POLICY.extend([Rule("test_format_codecs._triple", "test", kind="reference")])
    assert safeart.loads(blob, policy=allowed)["p"]() == 6
    import os

    system = safeart.dumps([functools.partial(os.system, "true")])
    with pytest.raises(PolicyError, match="reference posix.system is not on the allowlist"):
        safeart.loads(system, policy=POLICY)
    with pytest.raises(PolicyError, match="which a reference may not name"):
        safeart.loads(system, policy=POLICY.extend([Rule("posix.system", "x", kind="reference")]))


class _FixedTz(datetime.tzinfo):
    def utcoffset(self, dt: Any) -> datetime.timedelta:
        return datetime.timedelta(0)


def _zone_file() -> str:
    for root in zoneinfo.TZPATH:
        path = pathlib.Path(root) / "UTC"
        if path.is_file():
            return str(path)
    pytest.skip("no system time zone database")


def val(name: str, state: Any, cv: int = 1) -> dict:
    module, _, qualname = name.rpartition(".")
    return {"k": "val", "c": [module, qualname], "cv": cv, "v": state}


def tup(*items: Any) -> dict:
    return {"k": "tuple", "v": list(items)}


def lst(*items: Any) -> dict:
    return {"k": "list", "v": list(items)}


def dct(**items: Any) -> dict:
    return {"k": "dict", "m": items}


def partial_state(func: Any = None, args: Any = None, keywords: Any = None,
                  attrs: Any = None) -> dict:
    return val("functools.partial", dct(
        func={"k": "fn", "c": ["builtins", "int"]} if func is None else func,
        args=tup() if args is None else args, keywords=dct() if keywords is None else keywords,
        attrs=dct() if attrs is None else attrs))


@pytest.mark.parametrize("node, match", [
    (val("datetime.date", tup(2024, 13, 1)), "month must be in 1..12"),
    (val("datetime.date", tup(2024, 1)), "tuple of 3"),
    (val("datetime.date", lst(2024, 1, 1)), "tuple of 3"),
    (val("datetime.date", tup(2024, 1, True)), "integers only"),
    (val("datetime.datetime", tup(2020, 1, 1, 0, 0, 0, 0, "UTC", 0)), "tzinfo must be"),
    (val("datetime.datetime", tup(2020, 1, 1, 0, 0, 0, 0, None, 2)), "fold"),
    (val("datetime.timezone", tup(5, None)), "timedelta offset"),
    (val("zoneinfo.ZoneInfo", "../../etc/passwd"), "not an IANA"),
    (val("zoneinfo.ZoneInfo", "/usr/share/zoneinfo/UTC"), "not an IANA"),
    (val("zoneinfo.ZoneInfo", "Nowhere/Atlantis"), "No time zone found"),
    (val("decimal.Decimal", "1_000"), "canonical"),
    (val("decimal.Decimal", "one"), "InvalidOperation"),
    (val("fractions.Fraction", tup(2, 4)), "lowest terms"),
    (val("fractions.Fraction", tup(1, 0)), "positive"),
    (val("uuid.UUID", "{12345678-1234-5678-1234-567812345678}"), "canonical"),
    (val("builtins.complex", tup(1, 2.0)), "float real"),
    (val("builtins.range", tup(0, 10, 0)), "must not be zero"),
    (val("builtins.bytearray", "ab"), "must be bytes"),
    (val("collections.defaultdict", dct(factory=None)), "factory, items"),
    (val("collections.defaultdict", dct(factory="builtins.list", items={"k": "dict"})),
     "factory must be"),
    (val("collections.deque", dct(items=lst(1, 2), maxlen=1)), "maxlen"),
    (val("collections.Counter", {"k": "list"}), "must be a dict"),
    (val("types.SimpleNamespace", {"k": "dict", "v": [[1, 2]]}), "string keys"),
    (val("functools.partial", dct(func={"k": "fn", "c": ["builtins", "int"]})), "func, args"),
    (partial_state(func="builtins.int"), "func must be a referenced"),
    (partial_state(func={"k": "obj", "c": ["format_models", "TrainConfig"]}), "func must be"),
    (partial_state(args=lst(1)), "args must be a tuple"),
    (partial_state(keywords={"k": "dict", "v": [[1, 2]]}), "keywords must be a dict"),
    (partial_state(attrs=lst()), "attrs must be a dict"),
])
def test_malformed_states_are_refused_naming_the_path(node: dict, match: str) -> None:
    blob = make_blob({"k": "dict", "m": {"cfg": {"k": "list", "v": [node]}}})
    with pytest.raises(FormatError, match=match) as info:
        safeart.loads(blob, policy=POLICY)
    assert info.value.path == "['cfg'][0]"


@pytest.mark.parametrize("node, match", [
    (val("datetime.nothing", 1), "no safeart codec is named 'datetime.nothing'"),
    (val("os.system", "ls"), "no safeart codec is named 'os.system'"),
    (val("datetime.date", tup(1, 1, 1), cv=2), "reads versions 1 to 1, not 2"),
    (val("datetime.date", tup(1, 1, 1), cv=True), "not True"),
    ({"k": "val", "c": ["datetime", "date"], "v": 1}, "without 'cv'"),
    ({"k": "val", "c": "datetime.date", "cv": 1, "v": 1}, "dotted identifiers"),
])
def test_malformed_val_nodes_are_refused_by_the_audit(node: dict, match: str) -> None:
    report = safeart.audit(make_blob(lst(node)), policy=POLICY)
    assert not report.ok and match in str(report.problems[0])
    assert report.problems[0].path == "[0]"


def test_fraction_terms_past_the_int_digit_limit_are_refused_before_the_gcd() -> None:
    """Fraction(a, b) of two 3-million-bit ints spends ~15 s in gcd: terms are bounded by
    sys.get_int_max_str_digits() (CPython's own bound; pickle writes Fractions as strings)."""
    import numpy as np

    big = [(1 << 3_000_000) | 1, (1 << 3_000_000) | 3]
    tensors = {f"n{i}": np.frombuffer(n.to_bytes(375_001, "little", signed=True), np.uint8)
               for i, n in enumerate(big)}
    node = val("fractions.Fraction", tup({"k": "int", "t": "n0"}, {"k": "int", "t": "n1"}))
    with pytest.raises(FormatError, match="Exceeds the limit") as info:
        safeart.loads(make_blob(lst(node), tensors), policy=POLICY)
    assert info.value.path == "[0]"
    with pytest.raises(safeart.EncodeError, match="too long") as refused:
        safeart.dumps([fractions.Fraction(big[0], 3)])
    assert refused.value.path == "[0]" and "set_int_max_str_digits" in refused.value.hint
    within = fractions.Fraction(10**4000 + 1, 3)
    assert roundtrip([within]) == [within]


def test_a_reference_into_a_codec_value_is_refused() -> None:
    node = val("collections.deque", dct(items=lst({"k": "ref", "id": 0}), maxlen=None))
    node["id"] = 0
    with pytest.raises(FormatError, match="still being built"):
        safeart.loads(make_blob(node), policy=POLICY)
    cyclic = collections.deque()
    cyclic.append(cyclic)
    with pytest.raises(safeart.EncodeError, match="codec value"):
        safeart.dumps(cyclic)


def test_codec_values_need_a_policy_entry() -> None:
    blob = safeart.dumps({"when": datetime.date(2020, 1, 1)})
    policy = Policy(include_defaults=False)
    report = safeart.audit(blob, policy=policy)
    (problem,) = report.problems
    assert isinstance(problem, PolicyError) and problem.name == "datetime.date"
    assert problem.path == "['when']" and "allow=['datetime.date']" in problem.hint
    assert [(ref.name, ref.kind) for ref in report.classes] == [("datetime.date", "codec")]
    assert roundtrip({"when": datetime.date(2020, 1, 1)},
                     Policy(include_defaults=False, allow=["datetime.date"]))
    callable_entry = Rule("datetime.date", "reviewed", kind="callable")
    assert safeart.loads(blob, policy=Policy(include_defaults=False, allow=[callable_entry]))
    with pytest.raises(PolicyError, match="datetime.date"):
        safeart.loads(blob, policy=Policy(include_defaults=False, allow=[
            Rule("datetime.date", "reviewed", kind="reference")]))


def test_registry() -> None:
    # That every codec name is on the default policy: tests/policy/test_defaults.py.
    assert codec_for_type(datetime.datetime) is codec_named("datetime.datetime")
    assert codec_for_type(dict) is None and codec_named("builtins.dict") is None
    for codec in CODECS:
        assert codec.reason.strip() and codec.version >= 1, codec.name
        assert codec.types or codec is torch_extra.BUFFER, codec.name  # only it is picked by hand
        assert codec_named(codec.name) is codec

