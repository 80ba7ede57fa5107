"""Production: load BlogFlow's model without pickle and check it against the DAG.

    python serve.py BlogFlow/<run-id>      (or just BlogFlow: its latest successful run)
"""

import sys

import torch

import safeart
from flow import Net  # the class flow.py defines; here its name is flow.Net

run = sys.argv[1] if len(sys.argv) > 1 else "BlogFlow"

# The run recorded the model's class as "__main__.Net": flow.py ran as a script. A class
# object in allow= also stands for __main__.<its name>, so allow=[Net] maps __main__.Net to
# flow.Net. Nothing outside the allowlist (torch.nn layers, tensors, ... and Net) can load.
model = safeart.load(run, "model", allow=[Net])
inputs = safeart.load(run, "inputs")
in_dag = safeart.load(run, "outputs")

with torch.no_grad():
    outputs = model(inputs)
print("loaded:", f"{type(model).__module__}.{type(model).__qualname__}", "(recorded as __main__.Net)")
print("outputs in production:", outputs.flatten().tolist())
assert torch.equal(outputs, in_dag), "production outputs differ from the DAG's"
print("exactly the same as in the DAG")
