"""Importable classes for the benign corpus (a user's own dataclasses)."""

from dataclasses import dataclass, field


@dataclass
class Point:
    x: float
    y: float
    tags: list[str] = field(default_factory=list)
