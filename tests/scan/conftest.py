"""tests/payloads.py (shared canary builders) lives one level up."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
