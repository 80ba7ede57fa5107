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

#: What the strict-mode proof flow stores, rebuilt deterministically (seeded): the flow file
#: embeds it to store the objects, the checking script embeds it to rebuild them. No braces.
STRICT_OBJECTS = """
import collections
import datetime
import decimal
import enum
import pathlib
import uuid

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn


class Color(enum.Enum):
    RED = 1
    GREEN = 2


def build_objects():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0,
                                       batch_first=True)
    model = nn.Sequential(nn.Linear(8, 16), nn.TransformerEncoder(layer, num_layers=2),
                          nn.Linear(16, 2))
    inputs = torch.randn(4, 5, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(inputs).pow(2).mean().backward()
    optimizer.step()
    optimizer.zero_grad()
    model.eval()
    frame = pd.DataFrame(dict(
        f=rng.normal(size=6),
        n=pd.array([1, None, 3, 4, None, 6], dtype="Int64"),
        c=pd.Categorical(["a", "b", "a", "c", "b", "a"]),
        t=pd.date_range("2024-01-01", periods=6, freq="h", tz="Europe/Paris"),
        s=["x", "yy", "zzz", "", "w", "v"],
    ))
    features = rng.normal(size=(40, 4))
    labels = (features[:, 0] > 0).astype(np.int64)
    forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0)
    classifier = Pipeline([("scale", StandardScaler()), ("forest", forest)]).fit(features, labels)
    values = dict(
        when=datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        day=datetime.date(2024, 1, 2),
        price=decimal.Decimal("12.50"),
        id=uuid.UUID(int=42),
        path=pathlib.Path("data/train.csv"),
        color=Color.GREEN,
        z=complex(1, -2),
        groups=collections.defaultdict(list, a=[1, 2]),
        counts=collections.Counter("abracadabra"),
        window=collections.deque([1, 2, 3], maxlen=5),
    )
    return dict(model=model, inputs=inputs, frame=frame, classifier=classifier,
                features=features, optimizer=optimizer, opt_state=optimizer.state_dict(),
                values=values)
"""
