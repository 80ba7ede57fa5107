"""The one policy model shared by serializer, scanner and loader.

Which policy applies when none is passed: :func:`resolve_policy` (an explicit policy, else
``$SAFEART_POLICY``, else the built-in allowlist; ``allow=`` extends that base).
"""

from .files import POLICY_ENV, load_policy, policy_from_mapping, resolve_policy
from .model import AllowSpec, Grade, Policy, Rule, Verdict, qualified_name

__all__ = [
    "AllowSpec",
    "Grade",
    "Policy",
    "Rule",
    "Verdict",
    "qualified_name",
    "load_policy",
    "policy_from_mapping",
    "resolve_policy",
    "POLICY_ENV",
]
