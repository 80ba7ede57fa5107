"""Codecs for torch values that are not plain tensors (imported without importing torch)."""

from __future__ import annotations

from typing import Any

from . import Codec


def _encode_buffer(tensor: Any) -> dict:
    return {"data": tensor.detach().requires_grad_(tensor.requires_grad),
            "persistent": tensor.persistent}


def _decode_buffer(state: Any, version: int) -> Any:
    import torch

    if type(state) is not dict or state.keys() != {"data", "persistent"}:
        raise TypeError("a Buffer state must be a dict of data, persistent")
    data, persistent = state["data"], state["persistent"]
    if type(data) is not torch.Tensor or type(persistent) is not bool:
        raise TypeError("a Buffer state is a plain tensor and a bool")
    return torch.nn.Buffer(data, persistent=persistent)


#: A tensor marked by ``torch.nn.Buffer`` (``_is_buffer``, ``persistent`` attributes; what
#: transformers' models register). Its type is ``torch.Tensor``, so it is never dispatched
#: by type (``types`` is empty): the writer's tensor handler picks it for exactly those marks.
BUFFER = Codec("torch.nn.parameter.Buffer", (), 1, _encode_buffer, _decode_buffer,
               "a plain tensor plus the persistent flag; torch.nn.Buffer only marks it")

CODECS: tuple[Codec, ...] = (BUFFER,)
