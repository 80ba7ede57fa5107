"""safeart: pickle-free Metaflow artifacts, a pickle scanner and a restricted loader.

Public API::

    import safeart
    policy = safeart.Policy(allow=[Net])
    model = safeart.load("TrainFlow/1234", "model", allow=[Net])      # from a Metaflow run
    safeart.export("TrainFlow/1234/end/7:model", "serving/", allow=[Net])
    model = safeart.load_file("serving/model.safetensors", allow=[Net])  # no Metaflow

``load`` and ``export`` import Metaflow on first use; ``import safeart`` imports neither
Metaflow nor torch.
"""

import importlib
from typing import Any

from .errors import (
    ConfigError,
    EncodeError,
    FormatError,
    LimitExceeded,
    PolicyError,
    SafeartError,
    UnsafeArtifactError,
    UnsupportedVersion,
)
from .format import (
    FORMAT_VERSION,
    AuditReport,
    ClassRef,
    audit,
    dumps,
    is_safeart,
    load_file,
    loads,
    save_file,
)
from .guard import convert
from .limits import Limits
from .policy import Grade, Policy, Rule, load_policy
from .scan import ScanReport, ScanResult, scan_bytes, scan_path

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "AuditReport",
    "ClassRef",
    "ConfigError",
    "EncodeError",
    "FormatError",
    "Grade",
    "LimitExceeded",
    "Limits",
    "Policy",
    "PolicyError",
    "Rule",
    "SafeartError",
    "ScanReport",
    "ScanResult",
    "UnsafeArtifactError",
    "UnsupportedVersion",
    "audit",
    "convert",
    "dumps",
    "export",
    "is_safeart",
    "load",
    "load_file",
    "load_policy",
    "loads",
    "save_file",
    "scan_bytes",
    "scan_path",
]

#: Public names whose modules import Metaflow, loaded on first access.
_LAZY = {"load": "safeart.metaflow.loader", "export": "safeart.metaflow.export"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'safeart' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
