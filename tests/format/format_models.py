"""Models, plain classes and blob-building helpers shared by the format tests."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from safeart.format.layout import Piece, pack, read_header
from safeart.limits import Limits


class Net(nn.Module):
    """The blog post's model."""

    def __init__(self) -> None:
        super().__init__()
        self.linear1 = nn.Linear(1, 5)
        self.linear2 = nn.Linear(5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(torch.relu(self.linear1(x)))


class Block(nn.Module):
    """A custom submodule with a non-persistent buffer."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(0.25)
        self.register_buffer("scale", torch.full((dim,), 0.5), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(x)) * self.scale


class TiedLM(nn.Module):
    """Conv, batchnorm, embedding tied to the output layer, dropout, a shared block."""

    def __init__(self, vocab: int = 11, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.conv = nn.Conv1d(dim, dim, 3, padding=1)
        self.norm = nn.BatchNorm1d(dim)
        self.block = Block(dim)
        self.layers = nn.ModuleList([self.block, nn.ReLU(), self.block])  # shared submodule
        self.heads = nn.ModuleDict({"out": nn.Linear(dim, vocab, bias=False)})
        self.heads["out"].weight = self.embed.weight  # tied weights

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens).transpose(1, 2)
        x = self.norm(self.conv(x)).transpose(1, 2)
        for layer in self.layers:
            x = layer(x)
        return self.heads["out"](x)


@dataclass
class TrainConfig:
    lr: float = 1e-3
    layers: list[int] = field(default_factory=lambda: [4, 8])
    name: str = "run"


@dataclass(frozen=True)
class FrozenPoint:
    x: int
    y: int


class Pair(NamedTuple):
    left: Any
    right: Any


class Color(enum.Enum):
    RED = 1
    GREEN = "green"


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a: Any, b: Any) -> None:
        self.a = a
        self.b = b

    def __eq__(self, other: object) -> bool:
        return type(other) is Slotted and (self.a, self.b) == (other.a, other.b)


class WithState:
    """Custom __getstate__/__setstate__ with non-dict state."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.cache = object()  # not stored: __getstate__ drops it

    def __getstate__(self) -> tuple:
        return ("v1", self.value)

    def __setstate__(self, state: tuple) -> None:
        self.value = state[1]
        self.cache = None


class CustomReduce:
    def __reduce__(self) -> tuple:
        return (print, ("called",))


class NewReturnsOther:
    """An allowed class whose __new__ returns something else."""

    def __new__(cls, *args: Any) -> Any:
        return Pair(1, 2)


class Migrating:
    """Its __setstate__ swaps the class: the built type would differ from the audited one."""

    def __setstate__(self, state: dict) -> None:
        self.__class__ = WithState


ALLOW = [Net, Block, TiedLM, TrainConfig, FrozenPoint, Pair, Color, Slotted, WithState]


def trained(model: nn.Module, steps: int = 2, seed: int = 0) -> nn.Module:
    """A few optimizer steps so that batchnorm statistics and weights are non-trivial."""
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for _ in range(steps):
        out = model(torch.randint(0, 11, (4, 6)) if isinstance(model, TiedLM) else torch.randn(4, 1))
        out.sum().backward()
        opt.step()
        opt.zero_grad()
    return model


# -- hand-made blobs -------------------------------------------------------------------------
def make_blob(root: Any, tensors: dict[str, np.ndarray] | None = None, *, version: Any = 2,
              manifest: Any = None) -> bytes:
    """A blob holding ``root`` as its manifest root (or a whole ``manifest``) and ``tensors``
    (uint8 arrays stored as U8), written with the real container writer."""
    pieces = [Piece(name, "U8", array.shape, memoryview(np.ascontiguousarray(array)).cast("B"))
              for name, array in (tensors or {}).items()]
    if manifest is None:
        manifest = {"version": version, "root": root}
    return b"".join(pack(json.dumps(manifest), pieces, Limits()))


def raw_blob(header: dict, data: bytes = b"") -> bytes:
    """A safetensors blob with an arbitrary header (nothing validated)."""
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data


def manifest_of(blob: bytes) -> dict:
    """The parsed manifest of a blob (for tests that tamper with it)."""
    return json.loads(read_header(memoryview(blob), Limits()).metadata["safeart"])


def tensors_of(blob: bytes) -> dict[str, np.ndarray]:
    """The tensors of a blob as raw uint8 arrays, keyed by name."""
    view = memoryview(blob)
    header = read_header(view, Limits())
    return {name: np.frombuffer(view[e.begin:e.end], dtype=np.uint8).copy()
            for name, e in header.tensors.items()}


def retensor(blob: bytes, manifest: dict) -> bytes:
    """``blob`` with its manifest replaced; its tensors are kept as U8 bytes."""
    return make_blob(None, tensors_of(blob), manifest=manifest)
