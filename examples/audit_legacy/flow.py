"""A legacy flow: no safeart import, so Metaflow pickles every artifact."""

import numpy as np
import torch
from metaflow import FlowSpec, step

from model import Net


class LegacyFlow(FlowSpec):
    @step
    def start(self):
        torch.manual_seed(3)
        self.model = Net()
        self.inputs = torch.randn(5, 3)
        self.losses = np.array([0.9, 0.5, 0.3], dtype=np.float32)
        self.next(self.score)

    @step
    def score(self):
        with torch.no_grad():
            self.outputs = self.model(self.inputs)
        self.next(self.end)

    @step
    def end(self):
        print("final loss", float(self.losses[-1]), "outputs", tuple(self.outputs.shape))


if __name__ == "__main__":
    LegacyFlow()
