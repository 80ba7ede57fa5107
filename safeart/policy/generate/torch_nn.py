"""The torch part of the default allowlist: every ``torch.nn`` layer class, and the
activation functions layers keep as attributes.

Layers are pickled as their own class name (NEWOBJ plus a ``__dict__`` of tensors, submodules
and plain config), so the list comes from the module tree: every ``torch.nn.Module`` subclass
defined in a ``torch.nn.modules`` submodule. Functions: a ``TransformerEncoderLayer`` /
``TransformerDecoderLayer`` keeps ``F.relu`` or ``F.gelu`` (its ``activation`` string) or the
function the user passed; the list holds the ``torch.nn.functional`` activations, each under
the name pickle records for it (``F.gelu`` is ``torch._C._nn.gelu``). ``torch.tanh`` and its
kind pickle as ``getattr(torch._C._VariableFunctionsClass, 'tanh')``, which is never admitted.
"""

from __future__ import annotations

import importlib
import pickle
import pkgutil

from .usage import uses

__all__ = ["ACTIVATIONS", "entries"]

_LAYER_REASON = ("torch.nn layer: its state is tensors, submodules and plain config values, "
                 "and Module.__setstate__ only updates __dict__")
_FUNCTION_REASON = ("torch.nn.functional activation kept by a layer (Transformer*Layer."
                    "activation): a pure tensor -> tensor function, never called on load")
#: ``torch.nn.functional`` attributes users pass as a layer's activation.
ACTIVATIONS = ("relu", "gelu", "silu", "mish", "elu", "selu", "celu", "leaky_relu", "relu6",
               "hardswish", "hardsigmoid", "hardtanh", "softplus", "softsign", "tanh", "sigmoid",
               "logsigmoid", "tanhshrink", "glu")


def entries() -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """``(name, kind, reason)`` for every layer class and activation; nothing excluded."""
    import torch
    import torch.nn.functional as F

    layers: set[str] = set()
    for info in pkgutil.iter_modules(torch.nn.modules.__path__, "torch.nn.modules."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, torch.nn.Module)
                    and obj.__module__ == info.name and not obj.__name__.startswith("_")):
                layers.add(f"{obj.__module__}.{obj.__qualname__}")
    functions: set[str] = set()
    for attr in ACTIVATIONS:
        names = set(uses(pickle.dumps(getattr(F, attr))))
        if len(names) != 1:
            raise ValueError(f"torch.nn.functional.{attr} pickles as {sorted(names)}")
        functions |= names
    listed = [(n, "class", _LAYER_REASON) for n in layers]
    listed += [(n, "reference", _FUNCTION_REASON) for n in functions]
    return sorted(listed), []
