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
from .limits import Limits
from .policy import Grade, Policy, Rule, load_policy

__version__ = "0.1.0"

__all__ = [
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
    "UnsafeArtifactError",
    "UnsupportedVersion",
    "load_policy",
]
