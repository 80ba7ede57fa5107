"""Unchanged Metaflow client code: reads the run's model the usual way (run.data)."""

import sys

from metaflow import Run

model = Run(sys.argv[1]).data.model
print("client got", type(model))
