"""What the writer calls a function it references, and what it tells the user to do about
an object it refuses (hints that fit the class: a user class, a library type with a known
alternative, a subclass of a type a codec handles)."""

from __future__ import annotations

import sys
import sysconfig
import types
from typing import Any

from ..codecs import codec_for_type, type_name


FUNCTION_TYPES = (
    types.FunctionType, types.BuiltinFunctionType, types.MethodType,
    types.MethodWrapperType, types.WrapperDescriptorType, types.MethodDescriptorType,
)
REFERENCE_HINT = ("reference a module-level function or class instead (def at module level; "
                   "it loads once its name is allowed as a kind='reference' rule), or store "
                   "the data and re-create the function in code on load")


def reference_name(obj: Any) -> tuple[str, str] | str:
    """``(module, qualname)`` whose lookup gives back ``obj``, or why there is none."""
    owner = getattr(obj, "__self__", None)
    if (owner is not None and not isinstance(owner, (type, types.ModuleType))
            and isinstance(obj, FUNCTION_TYPES)):
        return (f"bound method {getattr(obj, '__qualname__', obj)!r} of a "
                f"{type(owner).__qualname__} instance cannot be stored")
    qualname = getattr(obj, "__qualname__", None)
    home = getattr(obj, "__objclass__", owner)  # str.upper, dict.fromkeys: their class
    module = getattr(obj, "__module__", None) or getattr(home, "__module__", None)
    if type(qualname) is not str or type(module) is not str:
        return f"{obj!r} has no module-level name, so it cannot be referenced"
    if "<" in qualname:  # <lambda>, <locals>
        what = "lambda" if "<lambda>" in qualname else "local function or class"
        return (f"{what} {module}.{qualname}: functions and classes are stored only as "
                "references to module-level names")
    name = getattr(obj, "__name__", qualname)
    for candidate in dict.fromkeys((name, qualname)):  # torch.tanh before its class path
        found: Any = sys.modules.get(module)
        for attr in candidate.split("."):
            found = getattr(found, attr, None)
        if found is obj or (owner is not None and isinstance(owner, type) and found == obj):
            return module, candidate
    return (f"{module}.{qualname} does not resolve back to this object by name, so it "
            "cannot be referenced")


#: Library types pickle rebuilds by calling a function, and what to store instead.
_ALTERNATIVES = {
    "torch._C.Generator": "store generator.get_state() (a uint8 tensor); set_state() on load",
    "numpy.random._generator.Generator": "store rng.bit_generator.state (a plain dict)",
    "numpy.random.mtrand.RandomState": "store rs.get_state(legacy=False) (a plain dict)",
    "numpy.ma.core.MaskedArray": "store .data and .mask as two arrays",
    "re.Pattern": "store pattern.pattern and pattern.flags",
}
_LAMBDA_LR = ("store sched.state_dict() instead (it leaves the functions out), rebuild the "
              "scheduler in code with the same function and call load_state_dict on it")
#: Library classes whose state can hold what cannot be stored, and what to store instead.
STATE_HINTS = {
    "torch.optim.lr_scheduler.LambdaLR": _LAMBDA_LR,
    "torch.optim.lr_scheduler.MultiplicativeLR": _LAMBDA_LR,
}
_LIBRARY_DIRS = tuple({sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib",
                                                               "purelib", "platlib")})


def reduce_hint(cls: type) -> str:
    """What to do about an instance of ``cls`` that reduces to some other callable."""
    name = type_name(cls)
    if name in _ALTERNATIVES:
        return _ALTERNATIVES[name]
    for base in cls.__mro__[1:]:
        codec = codec_for_type(base)
        if codec is not None:
            return (f"safeart stores exact {type_name(base)} values (codec {codec.name}), "
                    f"not subclasses: convert it to {base.__qualname__}")
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if cls.__module__ != "__main__" and (file is None or file.startswith(_LIBRARY_DIRS)):
        return (f"safeart has no codec for {name}: store its data (arrays, plain values, "
                "state_dict()) and rebuild it in code on load")
    return "drop the custom __reduce__, or store the object's data instead"


def refusal(obj: Any) -> tuple[str, str] | None:
    """Why ``obj`` can never be stored and what to do instead, for the common cases."""
    if isinstance(obj, types.ModuleType):
        return (f"module {obj.__name__}: modules cannot be stored",
                "store data only; import the module in code on load")
    return None
