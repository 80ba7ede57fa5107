"""Fixtures for tests that run real Metaflow flows (reusable by any test package).

``flow_env`` (function scope) is a :class:`FlowEnv`: a temporary working directory with its
own local datastore and local metadata. ``s3_flow_env`` is the same with the datastore on
the session's moto S3 server (``moto_s3``, bucket ``mfbucket``). Typical use::

    def test_something(flow_env):
        result = flow_env.run(FLOW_SOURCE, "--max-workers", "2")
        with flow_env.client() as mf:
            task = mf.Flow("MyFlow")[result.run_id]["start"].task
            assert task["x"].data == 1

Runs are real ``python flow.py run`` subprocesses with a clean environment (no user
Metaflow config, ``USERNAME=tester``); ``client()`` points the in-process Metaflow client at
the same datastore (``metadata('local@<workdir>')``, ``namespace(None)``, a private client
cache) and restores the previous client state afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import pytest

#: Seconds one flow command may take before the test fails.
FLOW_TIMEOUT = 240
S3_BUCKET = "mfbucket"

_FLOW_CLASS = re.compile(r"^class\s+(\w+)\s*\(\s*FlowSpec\s*\)", re.M)


def _base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "SAFEART_"))}
    env.update(
        USERNAME="tester",
        PYTHONUNBUFFERED="1",
        METAFLOW_HOME=str(workdir / ".mfhome"),  # no user profile / config.json
        METAFLOW_DEFAULT_METADATA="local",
        METAFLOW_DEFAULT_DATASTORE="local",
        METAFLOW_DATASTORE_SYSROOT_LOCAL=str(workdir),
        METAFLOW_CLIENT_CACHE_PATH=str(workdir / ".client_cache"),
    )
    return env


@dataclass
class FlowResult:
    """Outcome of one ``python flow.py <command>`` invocation."""

    flow: Optional[str]
    run_id: Optional[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        """stdout and stderr together (Metaflow prints task logs to both)."""
        return self.stdout + self.stderr

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}"


class FlowEnv:
    """A working directory with its own Metaflow datastore and metadata.

    Args:
        workdir: Where flow files, ``.metaflow`` and the client cache live.
        extra_env: Variables added to every command's environment (e.g. the S3 datastore).
    """

    def __init__(self, workdir: Path, extra_env: Optional[Mapping[str, str]] = None) -> None:
        self.workdir = workdir
        self.env = _base_env(workdir)
        self.env.update(extra_env or {})

    def write(self, source: str, name: str = "flow.py") -> Path:
        """Write ``source`` (dedented) into the working directory."""
        path = self.workdir / name
        path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
        return path

    def cli(
        self,
        flow_file: Path,
        *args: str,
        env: Optional[Mapping[str, str]] = None,
        timeout: float = FLOW_TIMEOUT,
    ) -> FlowResult:
        """Run ``python <flow_file> <args>`` (any Metaflow command: run, resume, dump ...).

        A ``--run-id-file`` is added to ``run``/``resume`` so the result carries the run id.
        """
        run_id_file = self.workdir / f".run_id_{time.monotonic_ns()}"
        argv = [sys.executable, str(flow_file), "--no-pylint", *args]
        if args and args[0] in ("run", "resume"):
            argv += ["--run-id-file", str(run_id_file)]
        proc = subprocess.run(
            argv,
            cwd=self.workdir,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        match = _FLOW_CLASS.search(flow_file.read_text(encoding="utf-8"))
        run_id = run_id_file.read_text().strip() if run_id_file.exists() else None
        flow = match.group(1) if match else None
        return FlowResult(flow, run_id, proc.returncode, proc.stdout, proc.stderr)

    def run(
        self,
        source: str,
        *args: str,
        name: str = "flow.py",
        env: Optional[Mapping[str, str]] = None,
        check: bool = True,
    ) -> FlowResult:
        """Write ``source`` as ``name`` and ``run`` it; with ``check``, fail the test unless
        the run succeeds (showing its output)."""
        result = self.cli(self.write(source, name), "run", *args, env=env)
        if check and not result.ok:
            pytest.fail(f"flow run failed ({result.returncode}):\n{result.output[-6000:]}")
        return result

    def python(self, code: str, env: Optional[Mapping[str, str]] = None) -> FlowResult:
        """Run a Python snippet in a fresh interpreter with this environment (cwd: workdir)."""
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=self.workdir,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=FLOW_TIMEOUT,
        )
        return FlowResult(None, None, proc.returncode, proc.stdout, proc.stderr)

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """The ``metaflow`` module with its client pointed at this environment's runs."""
        import metaflow
        from metaflow import metaflow_config
        from metaflow.client import core
        from metaflow.client.filecache import FileCache
        from metaflow.plugins.datastores import s3_storage
        from metaflow.plugins.datastores.local_storage import LocalStorage

        saved = (
            os.getcwd(),
            s3_storage.ARTIFACT_LOCALROOT,
            dict(os.environ),
            core.current_metadata,
            getattr(core.current_metadata, "INFO", None),
            LocalStorage.datastore_root,
            core.filecache,
            core.current_namespace,
            dict(metaflow_config.DATATOOLS_CLIENT_PARAMS),
        )
        os.environ.update({k: v for k, v in self.env.items() if not k.startswith("METAFLOW_")})
        endpoint = self.env.get("METAFLOW_S3_ENDPOINT_URL")
        if endpoint:
            metaflow_config.DATATOOLS_CLIENT_PARAMS["endpoint_url"] = endpoint
        # Metaflow's S3 client keeps temporary files in the working directory.
        os.chdir(self.workdir)
        s3_storage.ARTIFACT_LOCALROOT = str(self.workdir)
        core.filecache = FileCache(cache_dir=str(self.workdir / ".client_cache_inproc"))
        metaflow.metadata(f"local@{self.workdir}")
        metaflow.namespace(None)
        try:
            yield metaflow
        finally:
            cwd, localroot, env, provider, info, root, cache, ns, params = saved
            os.chdir(cwd)
            s3_storage.ARTIFACT_LOCALROOT = localroot
            os.environ.clear()
            os.environ.update(env)
            core.current_metadata = provider
            if info is not None:
                provider.INFO = info
            LocalStorage.datastore_root = root
            core.filecache = cache
            core.current_namespace = ns
            metaflow_config.DATATOOLS_CLIENT_PARAMS.clear()
            metaflow_config.DATATOOLS_CLIENT_PARAMS.update(params)

    def task_datastore(
        self, flow: str, run_id: str, step: str, task_id: Optional[str] = None
    ) -> Any:
        """The read-mode ``TaskDataStore`` of a task (first task of ``step`` by default);
        use inside :meth:`client`. Its ``_info``/``_objects`` are Metaflow's own records."""
        from metaflow.datastore import FlowDataStore
        from metaflow.plugins import DATASTORES

        if task_id is None:
            with self.client() as mf:
                task_id = mf.Step(f"{flow}/{run_id}/{step}").task.id
        ds_type = self.env["METAFLOW_DEFAULT_DATASTORE"]
        impl = next(d for d in DATASTORES if d.TYPE == ds_type)
        root = (
            str(self.workdir / ".metaflow")
            if ds_type == "local"
            else self.env["METAFLOW_DATASTORE_SYSROOT_S3"]
        )
        return FlowDataStore(flow, storage_impl=impl, ds_root=root).get_task_datastore(
            run_id, step, task_id
        )

    def local_blob_path(self, flow: str, sha: str) -> Path:
        """Where the local content-addressed store keeps blob ``sha`` (gzip-framed, or raw for large safeart blobs)."""
        return self.workdir / ".metaflow" / flow / "data" / sha[:2] / sha


@pytest.fixture
def flow_env(tmp_path: Path) -> FlowEnv:
    """A fresh working directory with a local datastore and local metadata."""
    return FlowEnv(tmp_path)


@pytest.fixture(scope="session")
def make_flow_env(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], FlowEnv]:
    """A factory of :class:`FlowEnv` for module- or session-scoped runs shared by tests:
    ``make_flow_env("blog")`` gives a fresh local environment in a new temp directory."""
    return lambda name: FlowEnv(tmp_path_factory.mktemp(name))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class S3Server:
    """A running moto S3 server and the environment that points Metaflow at it."""

    endpoint: str
    env: Mapping[str, str]


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server on a free local port with bucket ``mfbucket`` (killed at the end)."""
    pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    exe = shutil.which("moto_server")
    argv = [exe] if exe else [sys.executable, "-m", "moto.server"]
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    proc = subprocess.Popen([*argv, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start (exit code {proc.poll()})")
                time.sleep(0.2)
        creds = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        s3 = boto3.client("s3", endpoint_url=endpoint, **_boto_creds(creds))
        s3.create_bucket(Bucket=S3_BUCKET)
        env = {
            **creds,
            "METAFLOW_DEFAULT_DATASTORE": "s3",
            "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{S3_BUCKET}/metaflow",
            "METAFLOW_S3_ENDPOINT_URL": endpoint,
        }
        yield S3Server(endpoint, env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _boto_creds(creds: Mapping[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": creds["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": creds["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": creds["AWS_SESSION_TOKEN"],
        "region_name": creds["AWS_DEFAULT_REGION"],
    }


@pytest.fixture
def s3_flow_env(tmp_path: Path, moto_s3: S3Server) -> FlowEnv:
    """Like ``flow_env`` but with the datastore on the moto S3 server (metadata local)."""
    return FlowEnv(tmp_path, moto_s3.env)
