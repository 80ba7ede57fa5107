"""The one policy model shared by serializer, scanner and loader."""

from .files import POLICY_ENV, load_policy, policy_from_env, policy_from_mapping
from .model import AllowSpec, Grade, Policy, Rule, Verdict, qualified_name

__all__ = [
    "AllowSpec",
    "Grade",
    "Policy",
    "Rule",
    "Verdict",
    "qualified_name",
    "load_policy",
    "policy_from_env",
    "policy_from_mapping",
    "POLICY_ENV",
]
