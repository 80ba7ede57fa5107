"""safeart.pickle_facts against CPython's and torch's own definitions, and proof that the
scanner, the restricted unpickler and the policy generator read the very same objects."""

from __future__ import annotations

import importlib
import io
import pickle
import warnings
import zipfile

import pytest

from safeart import pickle_facts as facts

torch = pytest.importorskip("torch")
serialization = pytest.importorskip("torch.serialization")


def test_legacy_stream_numbers_are_torchs():
    assert facts.TORCH_LEGACY_MAGIC == serialization.MAGIC_NUMBER
    assert facts.TORCH_LEGACY_PROTOCOL == serialization.PROTOCOL_VERSION


def test_legacy_storage_types_are_torchs_table():
    from torch.storage import _dtype_to_storage_type_map

    theirs = {f"torch.{storage}": str(dtype).removeprefix("torch.")
              for dtype, storage in _dtype_to_storage_type_map().items()}
    assert dict(facts.TORCH_LEGACY_STORAGE_TYPES) == theirs
    for name, dtype in facts.TORCH_LEGACY_STORAGE_TYPES.items():
        storage_type = getattr(torch, name.removeprefix("torch."))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TypedStorage is deprecated
            assert storage_type.dtype is getattr(torch, dtype)  # what _legacy_load reads


def test_itemsizes_are_torchs():
    assert set(facts.TORCH_DTYPE_ITEMSIZE) == set(facts.TORCH_ZIP_STORAGE_TYPES.values())
    for dtype, size in facts.TORCH_DTYPE_ITEMSIZE.items():
        assert torch._utils._element_size(getattr(torch, dtype)) == size
    assert facts.storage_itemsize("torch.ComplexDoubleStorage") == 16
    assert facts.storage_itemsize("torch.storage.UntypedStorage") is None  # not legacy
    assert facts.storage_itemsize("torch.UntypedStorage", facts.TORCH_ZIP_STORAGE_TYPES) == 1
    assert facts.storage_itemsize(None) is None


def test_zip_checkpoints_add_untyped_storage_legacy_streams_cannot_load_it():
    buf = io.BytesIO()
    torch.save({"s": torch.UntypedStorage(4)}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        data = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    assert b"ctorch.storage\nUntypedStorage\n" in data
    assert torch.UntypedStorage is torch.storage.UntypedStorage  # torch.load tests identity
    extra = set(facts.TORCH_ZIP_STORAGE_TYPES) - set(facts.TORCH_LEGACY_STORAGE_TYPES)
    assert extra == {"torch.storage.UntypedStorage", "torch.UntypedStorage"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        legacy = pickle.dumps(torch.UntypedStorage(4))  # _load_from_bytes(legacy stream)
        with pytest.raises(AttributeError, match="dtype"):
            pickle.loads(legacy)  # trusted bytes built right here


def test_scan_and_load_agree_on_a_legacy_untyped_storage():
    """Plain-pickled UntypedStorage: torch cannot load it, the loader refuses it, and the scan
    (which used to take it for a storage tag and report it clean) no longer passes it."""
    from safeart.errors import PolicyError
    from safeart.scan import scan_bytes
    from safeart.unpickle import restricted_loads

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blob = pickle.dumps(torch.UntypedStorage(4))
    result = scan_bytes(blob, name="untyped")
    assert result.verdict != "clean"
    assert any(f.name == "torch.storage.UntypedStorage" for f in result.findings)
    assert any(f.kind == "persistent-id" for f in result.findings)  # not a legacy storage
    with pytest.raises(PolicyError):
        restricted_loads(blob)


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("module, name", [("__builtin__", "xrange"),  # an exact pair
                                          ("copy_reg", "_reconstructor")])  # a module alone
def test_compat_name_is_what_cpython_imports(proto, module, name):
    blob = b"\x80" + bytes([proto]) + f"c{module}\n{name}\n.".encode()  # trusted, written here
    got = facts.compat_name(module, name, proto)
    try:
        loaded = pickle.loads(blob)
    except ImportError:
        assert proto >= 3 and got == (module, name)
    else:
        assert proto < 3 and loaded is getattr(importlib.import_module(got[0]), got[1])


def test_proto_header_is_what_cpython_accepts():
    assert facts.HIGHEST_PROTOCOL == pickle.HIGHEST_PROTOCOL
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        assert facts.proto_header(pickle.dumps(None, protocol=proto)) == (proto if proto >= 2
                                                                          else None)
    too_high = b"\x80" + bytes([pickle.HIGHEST_PROTOCOL + 1]) + b"N."
    with pytest.raises(ValueError, match="unsupported pickle protocol"):
        pickle.loads(too_high)
    assert facts.proto_header(too_high) is None
    assert facts.proto_header(b"\x80") is None
    assert facts.proto_header(b"xx\x80\x04", 2) == 4
    assert facts.proto_header(b"xx\x80\x04", 2, 3) is None
    assert facts.proto_header(memoryview(b"\x80\x02")) == 2


def test_scan_unpickle_and_generator_share_one_definition():
    from safeart.policy.generate import usage
    from safeart.scan import archives, pickles, streams
    from safeart.unpickle import restricted, torch_legacy

    assert pickles.compat_name is restricted.compat_name is usage.compat_name \
        is facts.compat_name
    assert archives.proto_header is restricted.proto_header is facts.proto_header
    assert streams.TORCH_LEGACY_MAGIC is torch_legacy.TORCH_LEGACY_MAGIC \
        is facts.TORCH_LEGACY_MAGIC
    assert streams.TORCH_LEGACY_STORAGE_TYPES is torch_legacy.TORCH_LEGACY_STORAGE_TYPES \
        is facts.TORCH_LEGACY_STORAGE_TYPES
    assert archives.TORCH_ZIP_STORAGE_TYPES is facts.TORCH_ZIP_STORAGE_TYPES
    for module in (pickles, streams, archives, restricted, torch_legacy, usage):
        source = open(module.__file__, encoding="utf-8").read().lower()
        assert "import _compat_pickle" not in source
        assert hex(facts.TORCH_LEGACY_MAGIC) not in source
