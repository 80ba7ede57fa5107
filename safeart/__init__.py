"""safeart: pickle-free Metaflow artifacts, a pickle scanner and a restricted loader.

Public API (more arrives with the format, scanner and loader modules)::

    import safeart
    policy = safeart.Policy(allow=[Net])
"""

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
    "dumps",
    "is_safeart",
    "load_file",
    "load_policy",
    "loads",
    "save_file",
    "scan_bytes",
    "scan_path",
]
