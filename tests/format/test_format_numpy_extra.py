"""numpy values beyond plain arrays through safeart.dumps/loads: random generators, masked
arrays, dtype instances, object and structured arrays; hostile states refused with a
FormatError naming the object path."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn_estimators import codec_states, tamper

import safeart
from safeart.errors import EncodeError, FormatError
from safeart.format.codecs import numpy_extra
from safeart.format.codecs.numpy_extra import _decode_array

BIT_GENERATORS = ["MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64"]


def round_trip(obj: object) -> object:
    return safeart.loads(safeart.dumps(obj, name="x"), name="x")


# -- random number generators ----------------------------------------------------------------
@pytest.mark.parametrize("name", BIT_GENERATORS)
def test_generator_continues_its_stream(name: str) -> None:
    rng = np.random.Generator(getattr(np.random, name)(1234))
    rng.random(5)  # advance, leave buffered state (Philox buffer, has_uint32) mid-way
    rng.integers(0, 10, dtype=np.uint32)
    back = round_trip(rng)
    assert type(back.bit_generator) is type(rng.bit_generator)
    np.testing.assert_array_equal(back.random(7), rng.random(7))
    np.testing.assert_array_equal(back.integers(0, 2**31, 5), rng.integers(0, 2**31, 5))
    assert [c.random() for c in back.spawn(2)] == [c.random() for c in rng.spawn(2)]


@pytest.mark.parametrize("bit_generator", [None, "PCG64"])
def test_random_state_continues_with_its_cached_gaussian(bit_generator: str | None) -> None:
    rs = np.random.RandomState(7 if bit_generator is None else np.random.PCG64(7))
    rs.standard_normal()  # leaves has_gauss = 1
    back = round_trip(rs)
    np.testing.assert_array_equal(back.standard_normal(3), rs.standard_normal(3))
    np.testing.assert_array_equal(back.randint(0, 100, 5), rs.randint(0, 100, 5))


def test_shared_generator_keeps_its_identity() -> None:
    rng = np.random.default_rng(0)
    back = round_trip({"a": rng, "b": [rng, rng.bit_generator]})
    assert back["a"] is back["b"][0] and back["b"][1] is back["a"].bit_generator


def _refused(blob: bytes, message: str, path: str = "x") -> None:
    with pytest.raises(FormatError, match=message) as info:
        safeart.loads(blob, name="x")
    assert info.value.path is not None and info.value.path.startswith(path), info.value.path


def _edit_state(obj: object, codec: str, change) -> bytes:
    def edit(manifest: dict, arrays: dict) -> None:
        change(next(codec_states(manifest, codec))["m"], arrays)
    return tamper(safeart.dumps(obj, name="x"), edit)


@pytest.mark.parametrize("name, change, message", [
    ("MT19937", lambda s, a: s["state"]["m"]["state"]["m"].update(pos=625), "pos"),
    ("MT19937", lambda s, a: a.update({s["state"]["m"]["state"]["m"]["key"]["t"]:
                                       np.zeros(3, np.uint32)}), "shape"),
    ("Philox", lambda s, a: s["state"]["m"].update(buffer_pos=5), "buffer_pos"),
    ("PCG64", lambda s, a: s["state"]["m"].update(has_uint32=2), "has_uint32"),
    ("SFC64", lambda s, a: s["state"]["m"].update(bit_generator="MT19937"), "bit_generator"),
    ("PCG64", lambda s, a: s["state"]["m"].update(extra=1), "keys"),
    ("PCG64", lambda s, a: s["seed_seq"]["m"].update(pool_size=1 << 40), "pool_size"),
    ("PCG64", lambda s, a: s["seed_seq"]["m"].update(entropy="os.system"), "entropy"),
])
def test_crafted_bit_generator_states_are_refused(name: str, change, message: str) -> None:
    rng = np.random.Generator(getattr(np.random, name)(1))
    _refused(_edit_state({"rng": rng}, f"numpy.random.{name}", change), message, "x['rng']")


def test_random_state_over_something_else_is_refused() -> None:
    def change(state: dict, arrays: dict) -> None:
        state["bit_generator"] = 3
        arrays.clear()  # the MT19937 key is no longer referenced
    _refused(_edit_state(np.random.RandomState(0), "numpy.random.RandomState", change),
             "bit generator")


# -- masked arrays -----------------------------------------------------------------------------
@pytest.mark.parametrize("array", [
    np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0], fill_value=-1.0),
    np.ma.masked_array(np.arange(6).reshape(2, 3)),  # nomask
    np.ma.masked_array([1, 2], mask=[1, 0], hard_mask=True),
])
def test_masked_array_round_trip(array: np.ma.MaskedArray) -> None:
    back = round_trip(array)
    assert type(back) is np.ma.MaskedArray and back.dtype == array.dtype
    np.testing.assert_array_equal(back.data, array.data)
    np.testing.assert_array_equal(np.ma.getmaskarray(back), np.ma.getmaskarray(array))
    assert (back.mask is np.ma.nomask) == (array.mask is np.ma.nomask)
    assert back.fill_value == array.fill_value and back.hardmask == array.hardmask


def test_object_masked_array_round_trip() -> None:
    array = np.ma.masked_array(np.array([0.1, "a", None], dtype=object), mask=[0, 1, 0])
    back = round_trip(array)
    assert back.dtype == object and list(back.data) == [0.1, "a", None]
    np.testing.assert_array_equal(back.mask, array.mask)


def test_crafted_mask_shape_is_refused() -> None:
    def change(state: dict, arrays: dict) -> None:
        name = state["mask"]["t"]
        arrays[name] = arrays[name][:1]
    array = np.ma.masked_array([1.0, 2.0], mask=[0, 1])
    _refused(_edit_state(array, "numpy.ma.MaskedArray", change), "mask")


# -- dtype instances, object and structured arrays --------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", ">i4", "U3", "M8[ns]", "object", "bool"])
def test_dtype_round_trip(dtype: str) -> None:
    assert round_trip(np.dtype(dtype)) == np.dtype(dtype)


@pytest.mark.parametrize("text", ["f8,i4", "<f8 ", "V8", "(2,)f8"])
def test_crafted_dtype_is_refused(text: str) -> None:
    def change(manifest: dict, arrays: dict) -> None:
        node = manifest["root"]["m"]["dt"]
        node["v"] = text
    blob = tamper(safeart.dumps({"dt": np.dtype("<f8")}, name="x"), change)
    _refused(blob, "dtype", "x['dt']")


def test_object_array_round_trip() -> None:
    array = np.empty((2, 2), dtype=object)
    array[:] = [[1, "a"], [None, 2.5]]
    array[1, 1] = [1, 2]  # a list stays one element
    back = round_trip(array)
    assert back.dtype == object and back.shape == (2, 2) and back[1, 1] == [1, 2]
    assert back.tolist() == array.tolist()


def test_structured_array_round_trip() -> None:
    from sklearn.tree._tree import NODE_DTYPE  # C-aligned, with padding

    for dtype in (NODE_DTYPE, np.dtype([("a", "<i8"), ("b", "<U2"), ("c", "<f4", (2,))])):
        array = np.zeros(3, dtype=dtype)
        array[dtype.names[0]] = [1, 2, 3]
        back = round_trip(array)
        assert back.dtype == dtype
        np.testing.assert_array_equal(back, array)


# The array codec directly: the writer hands it only what the ndarray kind refuses.
@pytest.mark.parametrize("state, message", [
    ({"shape": [2, 2], "items": [1, 2, 3]}, "3 items for shape"),
    ({"shape": [-1], "items": []}, "outside"),
    ({"shape": [1] * 65, "items": [1]}, "at most 64"),
    ({"shape": [2], "aligned": False, "fields": [["a", np.zeros(3)]]}, "does not fit"),
    ({"shape": [2], "aligned": False, "fields": [["a", np.zeros(2, dtype=object)]]}, "does not fit"),
    ({"shape": [2], "aligned": False, "fields": []}, "non-empty"),
    ({"shape": [2], "aligned": False, "fields": [["a", np.zeros(2)], ["a", np.zeros(2)]]},
     "more than once"),
])
def test_crafted_array_states_are_refused(state: dict, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        _decode_array(state, 1)


def test_plain_arrays_are_not_this_codecs_business() -> None:
    codec = next(c for c in numpy_extra.CODECS if c.name == "numpy.ndarray")
    with pytest.raises(EncodeError):
        codec.encode(np.zeros(3))


def test_codec_types_are_the_real_types_and_on_the_default_policy() -> None:
    policy = safeart.Policy()
    real = {f"{t.__module__}.{t.__qualname__}" for t in
            [np.ndarray, np.ma.MaskedArray, np.random.RandomState, np.random.Generator,
             *(getattr(np.random, name) for name in BIT_GENERATORS)]}
    for codec in numpy_extra.CODECS:
        assert policy.rule_for(codec.name) is not None, codec.name
        if codec.name != "numpy.dtype":
            assert set(codec.types) <= real, codec.types
