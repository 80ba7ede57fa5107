"""The blog's flow, stored without pickle: a PyTorch model built in `start`, used in `a`."""

import safeart.metaflow  # noqa: F401 -- every public artifact is stored as safetensors + manifest
import torch
from metaflow import FlowSpec, step
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(1, 5)
        self.linear2 = nn.Linear(5, 1)

    def forward(self, x):
        return self.linear2(torch.relu(self.linear1(x)))


class BlogFlow(FlowSpec):
    @step
    def start(self):
        torch.manual_seed(7)
        self.model = Net()
        self.inputs = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
        self.next(self.a)

    @step
    def a(self):
        # Inside the flow, classes defined in this file (__main__.Net) load without any policy.
        with torch.no_grad():
            self.outputs = self.model(self.inputs)
        self.next(self.end)

    @step
    def end(self):
        print("outputs in the DAG:", self.outputs.flatten().tolist())


if __name__ == "__main__":
    BlogFlow()
