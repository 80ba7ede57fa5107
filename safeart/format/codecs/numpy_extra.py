"""Codecs for the numpy values the native manifest kinds do not cover.

* ``numpy.ndarray`` -- only the arrays the ``ndarray`` kind refuses: object dtype (elements
  stored as values, with the shape) and structured dtypes of plain fields (one array per
  field, packed or C-aligned layout).
* ``numpy.dtype`` -- dtype *instances* of plain kinds (``np.dtype('float64')``), by their
  type string.
* ``numpy.ma.MaskedArray`` -- data, mask, fill value, hard-mask flag.
* ``numpy.random.RandomState``, ``numpy.random.Generator`` and the bit generators
  ``MT19937``, ``PCG64``, ``PCG64DXSM``, ``Philox``, ``SFC64`` -- their ``state`` dicts
  (and the ``SeedSequence`` a bit generator spawns from).

Decoding checks every key, type, dtype, shape and range before numpy sees a value; arrays
are allocated only as large as the data the state carries. The validation helpers here
(``check_*``) are shared with the scikit-learn codecs.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from ...errors import EncodeError
from . import Codec, type_name


_PLAIN_KINDS = frozenset("biufcmMSU")
_MAX_RANK = 64


# -- validation helpers (shared with the sklearn codecs) ------------------------------------
def check_keys(state: Any, keys: tuple[str, ...] | frozenset[str], what: str) -> dict:
    """``state`` must be a dict with exactly ``keys``."""
    if type(state) is not dict:
        raise TypeError(f"{what}: expected a dict, got {type(state).__name__}")
    if set(state) != set(keys):
        raise ValueError(f"{what}: expected the keys {sorted(keys)}, got {sorted(map(str, state))}")
    return state


def check_int(value: Any, what: str, low: int | None = None, high: int | None = None) -> int:
    """An int (or numpy integer, not bool) within ``[low, high]``."""
    if type(value) is bool or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what}: expected an int, got {type(value).__name__}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{what}: {value} is outside [{low}, {high}]")
    return value


def check_float(value: Any, what: str) -> float:
    """A float (or numpy floating / int) value."""
    if type(value) is bool or not isinstance(value, (float, int, np.floating, np.integer)):
        raise TypeError(f"{what}: expected a float, got {type(value).__name__}")
    return float(value)


def check_bool(value: Any, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what}: expected a bool, got {type(value).__name__}")
    return bool(value)


def check_array(value: Any, what: str, dtype: Any = None, shape: tuple | None = None,
                ndim: int | None = None) -> np.ndarray:
    """A plain ndarray; ``dtype`` (any byte order, converted to native), ``shape`` (``None``
    entries match any length) and ``ndim`` are checked when given. Returns it C-contiguous."""
    if type(value) is not np.ndarray:
        raise TypeError(f"{what}: expected a numpy array, got {type(value).__name__}")
    if dtype is not None:
        wanted = np.dtype(dtype)
        if value.dtype != wanted:
            if value.dtype.fields is not None or value.dtype.newbyteorder("=") != wanted:
                raise ValueError(f"{what}: expected dtype {wanted}, got {value.dtype}")
            value = value.astype(wanted)
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{what}: expected {ndim} dimensions, got shape {value.shape}")
    if shape is not None and (len(shape) != value.ndim or any(
            want is not None and want != got for want, got in zip(shape, value.shape))):
        raise ValueError(f"{what}: expected shape {shape}, got {value.shape}")
    return np.ascontiguousarray(value)


#: A state spec: a dict of key -> spec (the keys must match exactly), or a checker
#: ``f(value, what) -> value``.
Spec = Any


def check_state(state: Any, spec: Spec, what: str) -> Any:
    """Check ``state`` against ``spec``; returns it with each leaf as its checker returned."""
    if isinstance(spec, Mapping):
        check_keys(state, frozenset(spec), what)
        return {key: check_state(state[key], sub, f"{what}[{key!r}]") for key, sub in spec.items()}
    return spec(state, what)


def _int_in(low: int, high: int) -> Callable[[Any, str], int]:
    return lambda value, what: check_int(value, what, low, high)


def _array_of(dtype: str, shape: tuple) -> Callable[[Any, str], np.ndarray]:
    return lambda value, what: check_array(value, what, dtype, shape)


def _equal_to(expected: str) -> Callable[[Any, str], str]:
    def check(value: Any, what: str) -> str:
        if value != expected:
            raise ValueError(f"{what}: expected {expected!r}, got {value!r}")
        return value
    return check


def _shape(value: Any, what: str) -> tuple[int, ...]:
    if type(value) not in (list, tuple) or len(value) > _MAX_RANK:
        raise TypeError(f"{what}: expected a list of at most {_MAX_RANK} ints")
    return tuple(check_int(n, f"{what}[{i}]", 0) for i, n in enumerate(value))


# -- object and structured arrays -----------------------------------------------------------
def _plain(dtype: np.dtype) -> bool:
    return dtype.kind in _PLAIN_KINDS and dtype.fields is None and dtype.itemsize > 0


def _encode_array(array: np.ndarray) -> dict:
    dtype = array.dtype
    if dtype.kind == "O":
        return {"shape": list(array.shape), "items": list(array.reshape(-1))}
    if dtype.fields is None:
        raise EncodeError(f"arrays of dtype {dtype} are stored natively, not by this codec")
    fields = [(name, dtype.fields[name]) for name in dtype.names]
    if any(len(info) != 2 or not _plain(info[0].base) for _, info in fields):
        raise EncodeError(f"structured dtype {dtype}: only fields of plain numeric, string or "
                          "date kinds without titles can be stored")
    layout = [(name, info[0]) for name, info in fields]
    aligned = dtype == np.dtype(layout, align=True)
    if not aligned and dtype != np.dtype(layout):
        raise EncodeError(f"structured dtype {dtype}: only packed or C-aligned field layouts "
                          "can be stored", hint="repack it: array.astype(numpy.dtype(fields))")
    return {"shape": list(array.shape), "aligned": aligned,
            "fields": [[name, np.ascontiguousarray(array[name])] for name, _ in fields]}


def _decode_array(state: Any, version: int) -> np.ndarray:
    if type(state) is dict and "items" in state:
        check_keys(state, ("shape", "items"), "object array")
        shape = _shape(state["shape"], "object array shape")
        items = state["items"]
        if type(items) is not list or len(items) != math.prod(shape):
            raise ValueError(f"object array: {len(items) if type(items) is list else 'no'} "
                             f"items for shape {shape}")
        out = np.empty(len(items), dtype=object)
        for i, item in enumerate(items):
            out[i] = item  # one element at a time: a list item stays one object
        return out.reshape(shape)
    check_keys(state, ("shape", "aligned", "fields"), "structured array")
    shape = _shape(state["shape"], "structured array shape")
    aligned = check_bool(state["aligned"], "structured array 'aligned'")
    fields = state["fields"]
    if type(fields) is not list or not fields:
        raise TypeError("structured array: 'fields' must be a non-empty list")
    layout, arrays = [], []
    for i, pair in enumerate(fields):
        what = f"structured array field {i}"
        if type(pair) not in (list, tuple) or len(pair) != 2 or type(pair[0]) is not str:
            raise TypeError(f"{what}: expected a [name, array] pair")
        name, array = pair[0], check_array(pair[1], what)
        if not _plain(array.dtype) or array.shape[:len(shape)] != shape:
            raise ValueError(f"{what} {name!r}: dtype {array.dtype} / shape {array.shape} does "
                             f"not fit a structured array of shape {shape}")
        layout.append((name, array.dtype, array.shape[len(shape):]))
        arrays.append(array)
    dtype = np.dtype(layout, align=aligned)  # duplicate or empty names: ValueError
    out = np.empty(shape, dtype=dtype)  # as large as the field arrays together (+ padding)
    for (name, _, _), array in zip(layout, arrays):
        out[name] = array
    return out


# -- dtype instances -------------------------------------------------------------------------
def _encode_dtype(dtype: np.dtype) -> str:
    if dtype.fields is not None or dtype.subdtype is not None or not (
            _plain(dtype) or dtype.kind == "O"):
        raise EncodeError(f"numpy dtype {dtype}: only plain (non-structured) dtypes can be stored")
    return dtype.str


def _decode_dtype(state: Any, version: int) -> np.dtype:
    if type(state) is not str or len(state) > 32:
        raise TypeError("numpy dtype: expected a short type string such as '<f8'")
    dtype = np.dtype(state)
    if dtype.str != state or dtype.fields is not None or not (_plain(dtype) or dtype.kind == "O"):
        raise ValueError(f"numpy dtype: {state!r} is not a plain dtype string")
    return dtype


_DTYPE_TYPES = tuple(sorted({type_name(type(np.dtype(code))) for code in "?bhilqBHILQefdgFDGSUMmO"}))


# -- masked arrays ---------------------------------------------------------------------------
_FILL_TYPES = (type(None), bool, int, float, complex, str, bytes)


def _encode_masked(array: np.ma.MaskedArray) -> dict:
    if array._baseclass is not np.ndarray:
        raise EncodeError(f"masked arrays over {array._baseclass.__qualname__} cannot be stored")
    mask = array._mask
    if mask is not np.ma.nomask and mask.dtype != np.bool_:
        raise EncodeError("masked arrays with a structured mask cannot be stored")
    return {"data": np.asarray(array.data), "hard_mask": bool(array._hardmask),
            "mask": False if mask is np.ma.nomask else np.array(mask),
            "fill_value": array._fill_value}


def _decode_masked(state: Any, version: int) -> np.ma.MaskedArray:
    check_keys(state, ("data", "mask", "fill_value", "hard_mask"), "masked array")
    data = state["data"]
    if type(data) is not np.ndarray:
        raise TypeError(f"masked array data: expected a numpy array, got {type(data).__name__}")
    mask = state["mask"]
    if mask is False:
        mask = np.ma.nomask
    else:
        mask = check_array(mask, "masked array mask", np.bool_, data.shape)
    fill = state["fill_value"]
    if type(fill) is np.ndarray and fill.ndim == 0 and (fill.dtype != object or type(
            fill.item()) in _FILL_TYPES):
        pass
    elif type(fill) not in _FILL_TYPES and not isinstance(fill, np.generic):
        raise TypeError(f"masked array fill value: a {type(fill).__name__} is not a scalar")
    return np.ma.MaskedArray(data, mask=mask, fill_value=fill,
                             hard_mask=check_bool(state["hard_mask"], "masked array hard_mask"))


# -- random number generators ----------------------------------------------------------------
_U32 = _int_in(0, (1 << 32) - 1)
_U128 = _int_in(0, (1 << 128) - 1)
_FLAG = _int_in(0, 1)
_PCG = {"state": {"state": _U128, "inc": _U128}, "has_uint32": _FLAG, "uinteger": _U32}
#: numpy.random attribute -> (defining module, the layout of its ``state`` dict).
_BIT_GENERATORS: dict[str, tuple[str, dict]] = {
    "MT19937": ("numpy.random._mt19937",
                {"state": {"key": _array_of("<u4", (624,)), "pos": _int_in(0, 624)}}),
    "PCG64": ("numpy.random._pcg64", _PCG),
    "PCG64DXSM": ("numpy.random._pcg64", _PCG),
    "Philox": ("numpy.random._philox",
               {"state": {"counter": _array_of("<u8", (4,)), "key": _array_of("<u8", (2,))},
                "buffer": _array_of("<u8", (4,)), "buffer_pos": _int_in(0, 4),
                "has_uint32": _FLAG, "uinteger": _U32}),
    "SFC64": ("numpy.random._sfc64",
              {"state": {"state": _array_of("<u8", (4,))}, "has_uint32": _FLAG, "uinteger": _U32}),
}
_MAX_POOL = 1024  # SeedSequence pool words (numpy's default is 4)


def _bit_generator_types() -> tuple[type, ...]:
    return tuple(getattr(np.random, name) for name in _BIT_GENERATORS)


def _check_bit_generator(value: Any, what: str) -> Any:
    if type(value) not in _bit_generator_types():
        raise TypeError(f"{what}: expected a numpy bit generator, got {type(value).__name__}")
    return value


def _encode_seed_seq(seq: Any) -> dict | None:
    if seq is None:
        return None
    if type(seq) is not np.random.SeedSequence:
        raise EncodeError(f"a bit generator seeded by a {type(seq).__qualname__} cannot be stored")
    entropy = seq.entropy
    if isinstance(entropy, np.ndarray):
        entropy = [int(v) for v in entropy.reshape(-1)]
    return {"entropy": entropy, "spawn_key": list(seq.spawn_key), "pool_size": seq.pool_size,
            "n_children_spawned": seq.n_children_spawned}


def _decode_seed_seq(state: Any) -> Any:
    if state is None:
        return None
    check_keys(state, ("entropy", "spawn_key", "pool_size", "n_children_spawned"), "seed_seq")
    entropy = state["entropy"]
    if type(entropy) in (list, tuple):
        entropy = [check_int(v, f"seed_seq entropy[{i}]", 0) for i, v in enumerate(entropy)]
    else:
        entropy = check_int(entropy, "seed_seq entropy", 0)
    key = state["spawn_key"]
    if type(key) not in (list, tuple):
        raise TypeError("seed_seq spawn_key: expected a list of ints")
    return np.random.SeedSequence(
        entropy, spawn_key=tuple(check_int(v, f"seed_seq spawn_key[{i}]", 0)
                                 for i, v in enumerate(key)),
        pool_size=check_int(state["pool_size"], "seed_seq pool_size", 4, _MAX_POOL),
        n_children_spawned=check_int(state["n_children_spawned"], "seed_seq n_children_spawned", 0))


def _bit_generator_codec(name: str) -> Codec:
    module, spec = _BIT_GENERATORS[name]
    full_spec = {"bit_generator": _equal_to(name), **spec}

    def encode(bit_generator: Any) -> dict:
        return {"state": bit_generator.state, "seed_seq": _encode_seed_seq(bit_generator.seed_seq)}

    def decode(state: Any, version: int) -> Any:
        check_keys(state, ("state", "seed_seq"), name)
        bg_state = check_state(state["state"], full_spec, f"{name} state")
        bit_generator = getattr(np.random, name)()  # freshly seeded, then overwritten
        bit_generator.__setstate__((bg_state, _decode_seed_seq(state["seed_seq"])))
        return bit_generator

    return Codec(name=f"numpy.random.{name}", types=(f"{module}.{name}",), version=1,
                 encode=encode, decode=decode,
                 reason=f"numpy's {name} bit generator from its state dict, every field "
                        "checked for type, dtype, shape and range")


def _encode_random_state(random_state: np.random.RandomState) -> dict:
    state = random_state.get_state(legacy=False)
    return {"bit_generator": random_state._bit_generator, "has_gauss": int(state["has_gauss"]),
            "gauss": float(state["gauss"])}


def _decode_random_state(state: Any, version: int) -> np.random.RandomState:
    state = check_state(state, {"bit_generator": _check_bit_generator, "has_gauss": _FLAG,
                                "gauss": check_float}, "RandomState")
    bit_generator = state.pop("bit_generator")
    random_state = np.random.RandomState(bit_generator)
    random_state.set_state({**bit_generator.state, **state})
    return random_state


def _decode_generator(state: Any, version: int) -> np.random.Generator:
    state = check_state(state, {"bit_generator": _check_bit_generator}, "Generator")
    return np.random.Generator(state["bit_generator"])


CODECS: tuple[Codec, ...] = (
    Codec(name="numpy.ndarray", types=("numpy.ndarray",), version=1,
          encode=_encode_array, decode=_decode_array,
          reason="object arrays from a list of already-built values and a shape of the same "
                 "size; structured arrays of plain fields from one plain array per field"),
    Codec(name="numpy.dtype", types=_DTYPE_TYPES, version=1,
          encode=_encode_dtype, decode=_decode_dtype,
          reason="numpy.dtype() of a plain type string, which must read back as itself"),
    Codec(name="numpy.ma.MaskedArray", types=("numpy.ma.MaskedArray",), version=1,
          encode=_encode_masked, decode=_decode_masked,
          reason="MaskedArray(data, mask, fill_value, hard_mask) over an already-built array, "
                 "a boolean mask of its shape and a scalar fill value"),
    Codec(name="numpy.random.RandomState", types=("numpy.random.mtrand.RandomState",),
          version=1, encode=_encode_random_state, decode=_decode_random_state,
          reason="RandomState over an already-built bit generator plus the cached gaussian"),
    Codec(name="numpy.random.Generator", types=("numpy.random._generator.Generator",),
          version=1, encode=lambda g: {"bit_generator": g.bit_generator},
          decode=_decode_generator,
          reason="Generator over an already-built bit generator"),
    *(_bit_generator_codec(name) for name in _BIT_GENERATORS),
)
