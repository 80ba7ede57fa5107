"""safeart: pickle-free Metaflow artifacts, a pickle scanner and a restricted loader.

Public API::

    import safeart
    policy = safeart.Policy(allow=[Net])
    model = safeart.load("TrainFlow/1234", "model", allow=[Net])      # from a Metaflow run
    safeart.export("TrainFlow/1234/end/7:model", "serving/", allow=[Net])
    model = safeart.load_file("serving/model.safetensors", allow=[Net])  # no Metaflow

    safeart.convert("legacy.pkl", "model.safetensors", allow=[Net])   # pickle file, no Metaflow
    state = safeart.load_torch_file("model.pt")            # torch.save checkpoint, scanned first
    report = safeart.scan_run("TrainFlow/1234")                        # scan a run's artifacts

Which policy applies when none is passed, everywhere: the ``policy=`` argument, else the
file named by ``$SAFEART_POLICY``, else the built-in allowlist; ``allow=`` extends that base
(:func:`safeart.policy.resolve_policy`).

``import safeart`` (and ``import safeart.errors``) loads only the errors, limits and policy
model: the format (numpy), the scanner, the loaders and Metaflow are imported on first use
of a name that needs them.
"""

from ._lazy import lazy_names
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
from .limits import Limits
from .policy import Grade, Policy, Rule, load_policy

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
    "load_torch_file",
    "loads",
    "save_file",
    "scan_bytes",
    "scan_path",
    "scan_run",
]

#: Public names loaded on first access, and the module each comes from.
_LAZY = {
    **dict.fromkeys(
        ["FORMAT_VERSION", "AuditReport", "ClassRef", "audit", "dumps", "is_safeart",
         "load_file", "loads", "save_file"], ".format"),
    **dict.fromkeys(["ScanReport", "ScanResult", "scan_bytes", "scan_path"], ".scan"),
    "convert": ".transfer.convert",
    "export": ".transfer.export",
    "load": ".metaflow.loader",
    "load_torch_file": ".guard",
    "scan_run": ".metaflow.runscan",
}

__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
