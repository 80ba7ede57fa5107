"""The torch part of the default allowlist: every ``torch.nn`` layer class, the activation
functions layers keep as attributes, and every ``torch.optim`` optimizer and learning-rate
scheduler class.

Layers are pickled as their own class name (NEWOBJ plus a ``__dict__`` of tensors, submodules
and plain config), so the list comes from the module tree: every ``torch.nn.Module`` subclass
defined in a ``torch.nn.modules`` submodule. Functions: a ``TransformerEncoderLayer`` /
``TransformerDecoderLayer`` keeps ``F.relu`` or ``F.gelu`` (its ``activation`` string) or the
function the user passed; the list holds the ``torch.nn.functional`` activations, each under
the name pickle records for it (``F.gelu`` is ``torch._C._nn.gelu``). ``torch.tanh`` and its
kind pickle as ``getattr(torch._C._VariableFunctionsClass, 'tanh')``, which is never admitted;
safeart's manifest records them as ``torch.tanh`` (a reference looked up by that name), which
is listed. Optimizers and schedulers come from the module tree like layers: every
``Optimizer`` / ``LRScheduler`` subclass defined in a ``torch.optim`` submodule.
"""

from __future__ import annotations

import importlib
import pickle
import pkgutil

from .usage import uses


_LAYER_REASON = ("torch.nn layer: its state is tensors, submodules and plain config values, "
                 "and Module.__setstate__ only updates __dict__")
_FUNCTION_REASON = ("torch.nn.functional activation kept by a layer (Transformer*Layer."
                    "activation): a pure tensor -> tensor function, never called on load")
_OPTIM_REASON = ("torch.optim optimizer: its state is defaults, param_groups (lists of the "
                 "model's Parameters and plain hyper-parameters) and per-parameter tensors in a "
                 "defaultdict; Optimizer.__setstate__ updates __dict__ and re-patches its own "
                 "step method, nothing from the blob")
_SCHEDULER_REASON = ("torch.optim.lr_scheduler scheduler: plain counters and learning rates plus "
                     "a reference to its optimizer; the functions a LambdaLR keeps are separate "
                     "references, each needing its own entry")
_TORCH_FUNCTION_REASON = ("torch tensor function kept by a layer as its activation, recorded by "
                          "safeart under its torch.<name> alias: a pure tensor -> tensor "
                          "function, never called on load")
#: ``torch.<name>`` functions users pass as an activation (``activation=torch.tanh``).
TORCH_FUNCTIONS = ("tanh", "sigmoid", "relu")
#: ``torch.nn.functional`` attributes users pass as a layer's activation.
ACTIVATIONS = ("relu", "gelu", "silu", "mish", "elu", "selu", "celu", "leaky_relu", "relu6",
               "hardswish", "hardsigmoid", "hardtanh", "softplus", "softsign", "tanh", "sigmoid",
               "logsigmoid", "tanhshrink", "glu")


def entries() -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """``(name, kind, reason)`` for every layer class and activation; nothing excluded."""
    import torch
    import torch.nn.functional as F

    functions: set[str] = set()
    for attr in ACTIVATIONS:
        names = set(uses(pickle.dumps(getattr(F, attr))))
        if len(names) != 1:
            raise ValueError(f"torch.nn.functional.{attr} pickles as {sorted(names)}")
        functions |= names
    listed = [(n, "class", _LAYER_REASON) for n in _subclasses(torch.nn.modules, torch.nn.Module)]
    listed += [(n, "reference", _FUNCTION_REASON) for n in functions]
    listed += [(f"torch.{n}", "reference", _TORCH_FUNCTION_REASON) for n in TORCH_FUNCTIONS]
    listed += [(n, "class", _OPTIM_REASON) for n in _subclasses(torch.optim, torch.optim.Optimizer)]
    listed += [(n, "class", _SCHEDULER_REASON)
               for n in _subclasses(torch.optim, torch.optim.lr_scheduler.LRScheduler)]
    return sorted(listed), []


def _subclasses(package: object, base: type) -> set[str]:
    """Public subclasses of ``base`` (``base`` included) defined in ``package``'s modules."""
    found: set[str] = set()
    prefix = package.__name__ + "."  # type: ignore[attr-defined]
    for info in pkgutil.iter_modules(package.__path__, prefix):  # type: ignore[attr-defined]
        for obj in vars(importlib.import_module(info.name)).values():
            if (isinstance(obj, type) and issubclass(obj, base)
                    and obj.__module__ == info.name and not obj.__name__.startswith("_")
                    and "<" not in obj.__qualname__):  # local classes have no importable name
                found.add(f"{obj.__module__}.{obj.__qualname__}")
    return found
