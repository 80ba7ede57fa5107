"""The allowlist policy: which classes may be rebuilt and which pickle globals may load.

One :class:`Policy` serves the serializer (what an in-flow load may rebuild), the
scanner (how each pickle import is graded) and the production loader (what the
restricted unpickler and the manifest decoder admit).

Four kinds of allowlist entries exist:

* ``class`` entries name classes that may be rebuilt from state (``cls.__new__`` plus
  ``__setstate__``/``__dict__``). A safeart manifest can name nothing else.
* ``callable`` entries name reconstructor functions that legacy pickles call
  (``torch._utils._rebuild_tensor_v2``, ``numpy.core.multiarray._reconstruct``). They
  matter only to the scanner and the restricted unpickler; a manifest can never name them.
* ``reference`` entries name objects that are *resolved by name and never called* on load:
  functions a model keeps (``torch.nn.functional.relu`` in a transformer layer), factories
  (``builtins.int`` of a ``defaultdict``), constants (``builtins.Ellipsis``). A manifest
  names them in ``fn`` nodes; a pickle names them as globals. Whatever a later caller does
  with such an object, resolving it runs nothing but the import of its module, and each
  entry's reason says why calling it with plain data would be harmless too.
* ``codec`` entries admit only values safeart's own codec of that name rebuilds (a manifest
  ``val`` node), never a pickle global or a reference: ``functools.partial``, whose codec
  stores a policy-checked function reference and plain arguments, while a pickle importing
  ``functools.partial`` can build a partial of any allowed class or reference and call it
  where no scan sees the call (the denylist keeps grading it dangerous).

Names are matched exactly (``module.qualname``); there are no wildcards, so an entry never
admits more than the one object it names. A :data:`~safeart.policy.dangerous` denylist only
grades scan findings: allowed, dangerous (a known code-execution or I/O primitive) or
unknown (neither: still refused by default).
"""

from __future__ import annotations

import enum
import importlib
import sys
import types
from dataclasses import dataclass, field
from typing import Iterable, Literal, Mapping, Union

from ..errors import ConfigError, PolicyError
from ..limits import Limits
from . import dangerous as _dangerous


Kind = Literal["class", "callable", "reference", "codec"]
#: Every rule kind, in the order the docs list them.
KINDS: tuple[str, ...] = ("class", "callable", "reference", "codec")
#: How much a kind admits: a ``callable`` entry also admits what a ``class`` entry does
#: (``__new__`` plus state), a ``class`` entry what a ``codec`` entry does (values of the
#: codec of that name), and ``class``/``callable`` entries admit holding a reference.
#: ``reference`` and ``codec`` admit different things; of two such entries the later wins.
KIND_BREADTH: Mapping[str, int] = {"reference": 0, "codec": 0, "class": 1, "callable": 2}


class Grade(str, enum.Enum):
    """Severity of a class or global, in increasing order of concern."""

    ALLOWED = "allowed"
    UNKNOWN = "unknown"
    DANGEROUS = "dangerous"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Grade.ALLOWED: 0, Grade.UNKNOWN: 1, Grade.DANGEROUS: 2}


@dataclass(frozen=True)
class Rule:
    """One allowlist entry: an exact ``module.qualname`` and why it is safe."""

    name: str
    reason: str = "allowed by the user"
    kind: Kind = "class"


@dataclass(frozen=True)
class Verdict:
    """How the policy grades one name."""

    grade: Grade
    name: str
    reason: str


#: What ``allow=`` accepts: a class object, a name, a ``(name, reason)`` pair or a Rule.
AllowSpec = Union[type, str, "tuple[str, str]", Rule]


def qualified_name(cls: type) -> str:
    """The name safeart records for ``cls``: ``module.qualname``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _to_rule(spec: AllowSpec) -> Rule:
    if isinstance(spec, Rule):
        return spec
    if isinstance(spec, type):
        return Rule(qualified_name(spec), "passed as a class object by the caller")
    if isinstance(spec, str):
        return Rule(spec)
    if isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(s, str) for s in spec):
        return Rule(spec[0], spec[1])
    raise ConfigError(
        f"cannot use {spec!r} as an allowlist entry",
        hint="pass a class, a 'module.Class' string, a (name, reason) pair or a safeart.Rule",
    )


@dataclass(frozen=True)
class Policy:
    """An immutable allowlist plus resource limits.

    Build one with :meth:`Policy.default`, ``Policy(allow=[Net])`` (defaults included),
    :meth:`extend`, or :func:`safeart.policy.load_policy` from TOML.

    Args:
        allow: Extra classes allowed, as class objects, names, ``(name, reason)`` pairs or
            :class:`Rule` objects.
        aliases: Recorded name -> class (or class name) that stands for it, e.g.
            ``{"__main__.Net": mypkg.models.Net}`` for models defined in a flow file.
            A class object in ``allow`` also stands for ``__main__.<its qualname>``.
        include_defaults: Start from the built-in allowlist (torch.nn layers, numpy and
            torch reconstructors, plain containers). ``False`` gives an empty allowlist.
        trust_main: Allow classes *defined in* the running ``__main__`` module. Used inside
            a Metaflow task, whose ``__main__`` is the flow file being executed.
        limits: Resource limits for decoding and scanning.
    """

    allow: Iterable[AllowSpec] = ()
    aliases: Mapping[str, Union[type, str]] = field(default_factory=dict)
    include_defaults: bool = True
    trust_main: bool = False
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        from .defaults import DEFAULT_RULES

        user = [_to_rule(s) for s in self.allow]
        rules: dict[str, Rule] = {}
        for rule in (list(DEFAULT_RULES) if self.include_defaults else []) + user:
            known = rules.get(rule.name)  # allow=["datetime.date"] keeps the default callable
            if known is None or KIND_BREADTH[rule.kind] >= KIND_BREADTH[known.kind]:
                rules[rule.name] = rule
        aliases: dict[str, Union[type, str]] = {}
        for spec in self.allow:
            if isinstance(spec, type) and spec.__module__ != "__main__":
                aliases.setdefault(f"__main__.{spec.__qualname__}", spec)
        aliases.update(self.aliases)
        for recorded, target in aliases.items():
            target_name = qualified_name(target) if isinstance(target, type) else target
            rules.setdefault(target_name, Rule(target_name, f"alias target of {recorded}"))
        object.__setattr__(self, "allow", tuple(user))
        object.__setattr__(self, "aliases", aliases)
        object.__setattr__(self, "_rules", rules)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def default(cls) -> "Policy":
        """The built-in allowlist only."""
        return cls()

    def extend(
        self,
        allow: Iterable[AllowSpec] = (),
        *,
        aliases: Mapping[str, Union[type, str]] | None = None,
        trust_main: bool | None = None,
        limits: Limits | None = None,
    ) -> "Policy":
        """Return a new policy with more entries (and optionally other settings)."""
        return Policy(
            allow=tuple(self.allow) + tuple(allow),
            aliases={**self.aliases, **(aliases or {})},
            include_defaults=self.include_defaults,
            trust_main=self.trust_main if trust_main is None else trust_main,
            limits=limits or self.limits,
        )

    # -- queries --------------------------------------------------------------------------
    @property
    def rules(self) -> Mapping[str, Rule]:
        """Every allowlist entry by name (defaults and user entries)."""
        return dict(self._rules)  # type: ignore[attr-defined]

    def rule_for(self, name: str, kind: Kind | None = None) -> Rule | None:
        """The rule admitting ``name`` (optionally of ``kind``), or None."""
        rule = self._rules.get(self.aliases_target(name))  # type: ignore[attr-defined]
        if rule is None or (kind is not None and rule.kind != kind):
            return None
        return rule

    def aliases_target(self, name: str) -> str:
        """The name that stands for ``name`` after aliasing (``name`` itself if none)."""
        target = self.aliases.get(name)
        if target is None:
            return name
        return qualified_name(target) if isinstance(target, type) else target

    def grade(self, module: str, name: str) -> Verdict:
        """Grade a pickle global ``module`` + ``name`` (as the unpickler would import it).

        Allowed only on an exact allowlist match of a ``class``, ``callable`` or
        ``reference`` entry (a ``codec`` entry admits no pickle global). A dotted ``name``
        (attribute traversal, ``pathlib`` + ``os.system``) is never allowed unless spelled
        exactly in the list.
        """
        full = f"{module}.{name}"
        rule = self.rule_for(full)
        if rule is not None and rule.kind != "codec":
            return Verdict(Grade.ALLOWED, full, rule.reason)
        danger = _dangerous.reason_for(module, name)
        if danger is not None:
            return Verdict(Grade.DANGEROUS, full, danger)
        if self.trust_main and module == "__main__" and "." not in name:
            return Verdict(Grade.ALLOWED, full, "defined in the running flow file (__main__)")
        return Verdict(Grade.UNKNOWN, full, "not on the allowlist")

    def check_class(self, module: str, qualname: str, *, path: str = "") -> None:
        """Audit a recorded class name without importing anything.

        Raises:
            PolicyError: the class is not allowed, with a hint saying how to allow it.
        """
        full = f"{module}.{qualname}"
        if self.rule_for(full, "class") is None:
            self._refuse(f"class {full} is not on the allowlist", module, full, path)

    def how_to_allow(self, full: str, kind: Kind = "class") -> str:
        """One sentence telling the user exactly how to allow ``full`` as a ``kind`` entry."""
        if full.startswith("__main__."):
            short = full.split(".", 1)[1]
            return (
                f"{full} was defined in a flow file or script; pass the class that stands "
                f"for it: allow=[{short}] (a class object also stands for __main__.{short}), "
                f"or aliases={{'{full}': 'yourpkg.module.{short}'}}, or in safeart.toml: "
                f"[aliases] \"{full}\" = \"yourpkg.module.{short}\""
            )
        if kind != "class":
            return (
                f"if you trust it, pass allow=[safeart.Rule('{full}', '<why it is safe>', "
                f"kind='{kind}')], or add {{ name = \"{full}\", kind = \"{kind}\", reason = "
                f"\"...\" }} to allow = [...] in safeart.toml / [tool.safeart]"
            )
        return (
            f"if you trust it, pass allow=['{full}'] (or the class object), or add "
            f"\"{full}\" to allow = [...] in safeart.toml / [tool.safeart]"
        )

    def resolve_class(self, module: str, qualname: str, *, path: str = "") -> type:
        """Audit, then import and return the class a manifest names.

        Importing the allowed class's module is the only code that runs. The object found
        must be a class whose own ``module.qualname`` is exactly the allowed name.
        """
        self.check_class(module, qualname, path=path)
        recorded = f"{module}.{qualname}"
        target = self.aliases.get(recorded)
        if isinstance(target, type):
            return target
        wanted = target if isinstance(target, str) else recorded
        return _import_exact(wanted, recorded, path)

    def check_codec(self, module: str, qualname: str, *, path: str = "") -> None:
        """Audit a type whose values safeart's own code rebuilds: a manifest ``val`` (a
        safeart codec) or ``enum`` node (a member looked up by value, ``cls(value)``).

        A ``class`` or ``callable`` entry of that name admits it (pickles call an enum class
        to look a member up, so the defaults often list enums as ``callable``), and so does
        a ``codec`` entry. The hint names a ``codec`` entry for a name the denylist grades
        dangerous (``functools.partial``): a ``class`` entry would admit its pickles too.

        Raises:
            PolicyError: no such entry exists, with a hint saying how to allow it.
        """
        full = f"{module}.{qualname}"
        rule = self.rule_for(full)
        if rule is None or rule.kind == "reference":
            kind: Kind = "codec" if _dangerous.reason_for(module, qualname) else "class"
            self._refuse(f"values of {full} are not on the allowlist", module, full, path, kind)

    def _refuse(self, message: str, module: str, full: str, path: str,
                kind: Kind = "class") -> None:
        """Raise a PolicyError saying how to allow ``full``, unless ``trust_main`` admits it
        (a name in the running ``__main__``)."""
        if self.trust_main and module == "__main__":
            return
        raise PolicyError(message, name=full, path=path or None,
                          hint=self.how_to_allow(full, kind))

    def check_reference(self, module: str, qualname: str, *, path: str = "") -> None:
        """Audit a recorded reference (a function, factory or constant kept by name)
        without importing anything.

        Any entry but a ``codec`` one admits a reference to what it names: resolving a name
        only imports its module, and an allowed class or reconstructor is safe to hold.
        ``reference`` entries exist for what is neither (``torch.nn.functional.relu``,
        ``builtins.Ellipsis``).

        Raises:
            PolicyError: ``module.qualname`` is not on the allowlist (or only as a codec).
        """
        full = f"{module}.{qualname}"
        rule = self.rule_for(full)
        if rule is not None and rule.kind != "codec":
            return
        if self.trust_main and module == "__main__":
            return
        raise PolicyError(
            f"reference {full} is not on the allowlist",
            name=full,
            path=path or None,
            hint=self.how_to_allow(full, "reference"),
        )

    def resolve_reference(self, module: str, qualname: str, *, path: str = "") -> object:
        """Audit, then import and return the object a reference names (never called).

        The entry's exact name decides what is returned: the attribute found at that path.
        Two things are refused even then: a module, and an object that declares itself
        (``__module__.__qualname__``) under a name the denylist grades dangerous, such as
        an entry whose path turns out to re-export ``os.system``.
        """
        self.check_reference(module, qualname, path=path)
        recorded = f"{module}.{qualname}"
        wanted = self.aliases_target(recorded)
        obj = _lookup_attribute(wanted, recorded, path)
        own_module = getattr(obj, "__module__", None)
        own_name = getattr(obj, "__qualname__", None)
        danger = (_dangerous.reason_for(own_module, own_name)
                  if isinstance(own_module, str) and isinstance(own_name, str) else None)
        own = f"{own_module}.{own_name}"
        if (danger is not None and own_module == "builtins" and self.rule_for(own) is not None
                and own not in _dangerous.DANGEROUS_NAMES):
            danger = None  # the denylist grades all of builtins but names its dangerous members
            # exactly: builtins.list allowed by its own name is what the entry meant
        if isinstance(obj, types.ModuleType) or danger is not None:
            raise PolicyError(
                f"{wanted} resolves to "
                + ("a module" if danger is None else f"{own_module}.{own_name} ({danger})")
                + ", which a reference may not name",
                name=recorded, path=path or None,
                hint="name the function or constant by its own defining module",
            )
        return obj


def _lookup_attribute(wanted: str, recorded: str, path: str, what: str = "reference") -> object:
    """Import the longest importable module prefix of ``wanted`` and walk the rest."""
    parts = wanted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        modname = ".".join(parts[:cut])
        try:
            obj: object = sys.modules.get(modname) or importlib.import_module(modname)
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise PolicyError(
        f"allowed {what} {wanted} cannot be imported in this environment",
        name=recorded,
        path=path or None,
        hint=f"install the package that defines {wanted}, or map {recorded} to another "
        f"{'class' if what == 'class' else 'name'} with aliases=",
    )


def _import_exact(wanted: str, recorded: str, path: str) -> type:
    """Import ``wanted`` (longest importable module prefix + attribute chain), exactly."""
    obj = _lookup_attribute(wanted, recorded, path, "class")
    if isinstance(obj, type) and qualified_name(obj) == wanted:
        return obj
    raise PolicyError(
        f"{wanted} does not name a class defined under that name "
        f"(found {type(obj).__name__} {getattr(obj, '__qualname__', obj)!r})",
        name=recorded,
        path=path or None,
        hint="allowlist entries must name classes by their defining module",
    )
