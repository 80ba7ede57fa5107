"""Containers and formats beyond plain pickles scan clean with the default policy (torch.save
archives, .npy/.npz, joblib, gzip'd Metaflow blobs, real Metaflow runs). Plain pickles of every
library type are the generated corpus in tests/corpus (which also loads each one back)."""

import gzip
import io
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from benign_types import Point
from safeart import Grade, Policy
from safeart.scan import scan_bytes, scan_path

torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")
joblib = pytest.importorskip("joblib")
sklearn = pytest.importorskip("sklearn")


def _torch_save(obj, **kw):
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def _np_save(fn, *args, **kw):
    buf = io.BytesIO()
    fn(buf, *args, **kw)
    return buf.getvalue()


def _joblib(obj, **kw):
    buf = io.BytesIO()
    joblib.dump(obj, buf, **kw)
    return buf.getvalue()


def _corpus():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.random((40, 3))
    y = (X[:, 0] > 0.5).astype(int)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.BatchNorm1d(4), torch.nn.Dropout(),
        torch.nn.LSTM(4, 4),
    )
    pipe = Pipeline([("s", StandardScaler()), ("lr", LogisticRegression())]).fit(X, y)
    rf = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    cases = {
        "module_p4 (Metaflow)": pickle.dumps(model, protocol=4),
        "module_p2": pickle.dumps(model, protocol=2),
        "module_p5": pickle.dumps(model, protocol=5),
        "state_dict_p4": pickle.dumps(model.state_dict(), protocol=4),
        "tensors_of_dtypes": pickle.dumps(
            [torch.ones(2, dtype=d) for d in (torch.int64, torch.bfloat16, torch.bool,
                                               torch.float16, torch.uint8)], protocol=4),
        "torch.save zip": _torch_save(model.state_dict()),
        "torch.save zip model": _torch_save(model),
        "torch.save legacy": _torch_save(model.state_dict(), _use_new_zipfile_serialization=False),
        "torch.save legacy model": _torch_save(model, _use_new_zipfile_serialization=False),
        ".npy": _np_save(np.save, np.arange(10.0)),
        ".npy object": _np_save(np.save, np.array([1, "a"], dtype=object), allow_pickle=True),
        ".npz": _np_save(np.savez, a=np.arange(3), b=np.ones(2)),
        "joblib RandomForest": _joblib(rf),
        "joblib arrays": _joblib({"a": np.arange(100.0), "o": np.array([1, "x"], dtype=object)}),
        "joblib zlib": _joblib(pipe, compress=3),
        "gzip module (Metaflow blob)": gzip.compress(pickle.dumps(model, protocol=4)),
    }
    return cases


CORPUS = _corpus()


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_benign_object_is_clean(name):
    result = scan_bytes(CORPUS[name], name=name)
    assert result.complete, result.findings
    assert result.verdict == "clean", result.findings
    assert all(g["grade"] == "allowed" for g in result.globals.values())


def test_metaflow_torch_artifact_grades_on_its_inner_streams():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    result = scan_bytes(pickle.dumps(model, protocol=4))
    assert "torch-legacy" in result.formats
    # Every tensor's storage stream was scanned: one storage-type tag per tensor.
    tags = sum(g["count"] for n, g in result.globals.items() if n.endswith("Storage"))
    assert tags == len(model.state_dict())


def test_user_dataclass_needs_the_user_policy():
    data = pickle.dumps(Point(1.0, 2.0, ["a"]), protocol=4)
    default = scan_bytes(data)
    assert default.verdict == "unknown"
    assert [f.name for f in default.findings] == ["benign_types.Point"]
    assert scan_bytes(data, policy=Policy(allow=[Point])).verdict == "clean"


_FLOW = textwrap.dedent('''
    import pickle
    from metaflow import FlowSpec, step

    class ScanMeFlow(FlowSpec):
        @step
        def start(self):
            import torch
            self.model = torch.nn.Linear(2, 2)
            self.items = [1, 2]
            self.next(self.inner, foreach="items")

        @step
        def inner(self):
            self.value = self.input * 2
            self.next(self.join)

        @step
        def join(self, inputs):
            self.values = [i.value for i in inputs]
            self.merge_artifacts(inputs, exclude=["value"])
            self.next(self.end)

        @step
        def end(self):
            pass

    if __name__ == "__main__":
        ScanMeFlow()
''')


def test_metaflow_internal_artifacts_on_disk_are_clean(tmp_path):
    flow = tmp_path / "scanme_flow.py"
    flow.write_text(_FLOW)
    env = {**os.environ, "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DEFAULT_METADATA": "local",
           "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(tmp_path), "USERNAME": "tester"}
    run = subprocess.run([sys.executable, str(flow), "--quiet", "run"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    blobs = tmp_path / ".metaflow" / "ScanMeFlow" / "data"
    report = scan_path(blobs)
    blobs = [r for r in report.results if not r.target.endswith("_meta")]
    assert len(blobs) >= 10 and all(r.formats[:2] == ["gzip", "pickle"] for r in blobs)
    seen = {name for r in blobs for name in r.globals}
    assert "__main__.ForeachFrame" in seen  # _foreach_stack of the foreach step
    assert any("torch-legacy" in r.formats for r in blobs)  # self.model
    dirty = [(r.target, r.findings) for r in report.results if r.fails(Grade.UNKNOWN)]
    assert dirty == []
