"""Proof flow (issue 13): a real flow in strict mode stores what ML flows keep -- a torch
model with a TransformerEncoder, a mixed-dtype DataFrame, a scaled RandomForest pipeline, an
Adam optimizer after one step and its state_dict, stdlib values -- on the local datastore
and on S3 (moto); a separate process loads every artifact with ``safeart.load`` and compares
it with the same objects rebuilt there from the same seeds (``STRICT_OBJECTS``)."""

from __future__ import annotations

import pytest

from flow_sources import STRICT_OBJECTS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ARTIFACTS = ("model", "inputs", "frame", "classifier", "features", "optimizer", "opt_state",
             "values")

STRICT_FLOW = """
import safeart.metaflow
from metaflow import FlowSpec, step

safeart.metaflow.strict()
""" + STRICT_OBJECTS + """

class StrictProofFlow(FlowSpec):
    @step
    def start(self):
        for name, value in build_objects().items():
            setattr(self, name, value)
        self.next(self.end)

    @step
    def end(self):  # the next task reads them back, in the flow
        with torch.no_grad():
            self.outputs = self.model(self.inputs)
        self.predicted = self.classifier.predict(self.features)
        print("end read", len(self.frame), self.values["color"], self.opt_state["state"].keys())


if __name__ == "__main__":
    StrictProofFlow()
"""

#: Loads every artifact in a fresh process and compares it with a rebuilt copy.
CHECK = STRICT_OBJECTS + """
import sys

import numpy.testing as npt

import safeart

RUN = sys.argv[1]
expected = build_objects()


def load(name):
    return safeart.load(RUN, name, allow=[Color])


def same_tree(a, b, where):
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            same_tree(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


model = load("model")
same_tree(model.state_dict(), expected["model"].state_dict(), "model")
with torch.no_grad():
    assert torch.equal(model(expected["inputs"]), expected["model"](expected["inputs"]))
assert torch.equal(load("inputs"), expected["inputs"])

frame = load("frame")
assert frame.equals(expected["frame"]) and list(frame.dtypes) == list(expected["frame"].dtypes)

classifier = load("classifier")
assert repr(classifier) == repr(expected["classifier"])
npt.assert_array_equal(classifier.predict_proba(expected["features"]),
                       expected["classifier"].predict_proba(expected["features"]))
npt.assert_array_equal(load("features"), expected["features"])

same_tree(load("optimizer").state_dict(), expected["optimizer"].state_dict(), "optimizer")
same_tree(load("opt_state"), expected["opt_state"], "opt_state")

values = load("values")
same_tree(values, expected["values"], "values")
assert values["window"].maxlen == 5 and values["groups"].default_factory is list
print("all artifacts equal")
"""


@pytest.fixture(params=["local", "s3"])
def env(request: pytest.FixtureRequest):
    return request.getfixturevalue("flow_env" if request.param == "local" else "s3_flow_env")


def test_strict_flow_stores_ml_objects_and_a_fresh_process_loads_them_equal(env) -> None:
    result = env.run(STRICT_FLOW)
    assert "end read 6 Color.GREEN" in result.output
    with env.client():
        start = env.task_datastore("StrictProofFlow", result.run_id, "start")._info
        end = env.task_datastore("StrictProofFlow", result.run_id, "end")._info
    for name in ARTIFACTS:
        assert start[name]["encoding"] == end[name]["encoding"] == "safeart-v1", name
    assert end["outputs"]["encoding"] == end["predicted"]["encoding"] == "safeart-v1"
    env.write(CHECK, "check.py")
    checked = env.python(
        "import runpy, sys; sys.argv = ['check.py', %r]; runpy.run_path('check.py', run_name='__main__')"
        % f"StrictProofFlow/{result.run_id}"
    )
    assert checked.ok, checked.output[-6000:]
    assert "all artifacts equal" in checked.stdout
