"""Source snippets shared by the flow files the Metaflow tests write."""

#: The blog's model, defined in each flow file (so runs record it as ``__main__.Net``) and in
#: client-side stand-ins. No braces: it can be concatenated into ``str.format`` templates.
NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
"""
