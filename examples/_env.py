"""Driver code shared by the examples (not part of the safeart package).

Every ``examples/<name>/run.py`` runs with one command and writes only under a temporary
directory::

    with example_env("blog") as env:                # temp dir + local Metaflow settings
        run = env.run_flow(BLOG / "flow.py")         # python flow.py run -> "BlogFlow/<id>"
        env.python(BLOG / "serve.py", run)           # a script in the same environment
        code, out = env.safeart("scan", run)         # the safeart command line

The environment: a fresh temporary directory is the working directory and Metaflow's local
datastore and metadata root (``METAFLOW_DEFAULT_DATASTORE=local``,
``METAFLOW_DEFAULT_METADATA=local``, ``METAFLOW_DATASTORE_SYSROOT_LOCAL=<tmp>``);
``METAFLOW_HOME=<tmp>/.mfhome`` so that no user profile applies; ``USERNAME`` if unset;
``METAFLOW_*``/``SAFEART_*``/``AWS_*`` variables of the calling shell are dropped. The
variables are set in this process too, so the Metaflow client and ``safeart.load`` used
by a driver see the same runs. The directory is removed at the end unless ``--keep`` is
passed. No network: S3 runs go to a moto server on 127.0.0.1 (:func:`moto_s3`).
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator, Mapping, Optional

EXAMPLES = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # console scripts (safeart, moto_server) live here
TIMEOUT = 600
_FLOW_CLASS = re.compile(r"^class\s+(\w+)\s*\(\s*FlowSpec\s*\)", re.M)
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ ")


class ExampleFailed(SystemExit):
    """An expectation of an example did not hold (exit code 1 with a message)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"\nEXAMPLE FAILED: {message}")


def check(condition: object, message: str) -> None:
    """Stop the example with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ExampleFailed(message)


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _show(text: str, keep: Optional[Callable[[str], bool]] = None) -> None:
    for line in text.rstrip().splitlines():
        line = _TIMESTAMP.sub("", line)
        if keep is None or keep(line):
            print(f"   | {line}")
    sys.stdout.flush()


class Env:
    """A temporary working directory with its own Metaflow datastore and metadata."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.last_output = ""  # the log of the last flow run
        self.vars = {k: v for k, v in os.environ.items()
                     if not k.startswith(("METAFLOW_", "SAFEART_", "AWS_"))}
        self.vars.setdefault("USERNAME", "safeart-demo")
        self.vars.update(
            METAFLOW_DEFAULT_DATASTORE="local",
            METAFLOW_DEFAULT_METADATA="local",
            METAFLOW_DATASTORE_SYSROOT_LOCAL=str(root),
            METAFLOW_HOME=str(root / ".mfhome"),
            METAFLOW_CLIENT_CACHE_PATH=str(root / ".client_cache"),
            PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
            PYTHONDONTWRITEBYTECODE="1",  # no __pycache__ next to the example files
            PYTHONUNBUFFERED="1",
            NO_PROXY="127.0.0.1,localhost",
        )

    def activate(self, extra: Mapping[str, str] = {}) -> None:
        """Use these variables (plus ``extra``) in this process and its children."""
        self.vars.update(extra)
        os.environ.clear()
        os.environ.update(self.vars)
        os.chdir(self.root)

    def _run(self, argv: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=self.root, env={**self.vars, **env},
                              capture_output=True, text=True, timeout=TIMEOUT)

    def run_flow(self, flow_file: Path, *args: str, env: Mapping[str, str] = {}) -> str:
        """``python flow.py run``; prints its log and returns the run's ``Flow/run-id``."""
        name = _FLOW_CLASS.search(flow_file.read_text(encoding="utf-8"))
        check(name, f"no FlowSpec class in {flow_file}")
        id_file = self.root / f".run-id-{time.monotonic_ns()}"
        print(f"$ python {_rel(flow_file)} run {' '.join(args)}".rstrip(), flush=True)
        proc = self._run([sys.executable, str(flow_file), "--no-pylint", "run",
                          "--run-id-file", str(id_file), *args], env)
        self.last_output = proc.stdout + proc.stderr
        _show(self.last_output,
              lambda line: not line.startswith(("Metaflow ", "Validating", "    The graph")))
        check(proc.returncode == 0 and id_file.exists(), f"the flow run failed ({proc.returncode})")
        return f"{name.group(1)}/{id_file.read_text().strip()}"

    def command(self, argv: list[str], *, env: Mapping[str, str] = {}, check_ok: bool = True,
                keep: Optional[Callable[[str], bool]] = None) -> subprocess.CompletedProcess:
        """Run ``argv`` here; prints it (with any SAFEART_* variable it adds), the output
        lines ``keep`` selects, and returns the finished process."""
        shown = [f"{k}={_rel(Path(v))}" for k, v in env.items() if k.startswith("SAFEART_")]
        shown += ["python" if a == sys.executable else _rel(Path(a)) if os.path.isabs(a) else a
                  for a in argv]
        print("$ " + " ".join(shown), flush=True)
        proc = self._run(argv, env)
        _show(proc.stdout + proc.stderr, keep)
        if check_ok:
            check(proc.returncode == 0, f"{' '.join(argv)} failed ({proc.returncode})")
        return proc

    def python(self, script: Path, *args: str, **kw) -> subprocess.CompletedProcess:
        """``python script args`` (see :meth:`command`)."""
        return self.command([sys.executable, str(script), *args], **kw)

    def safeart(self, *args: str, env: Mapping[str, str] = {},
                keep: Optional[Callable[[str], bool]] = None) -> tuple[int, str]:
        """The ``safeart`` command line (this interpreter's); prints the lines ``keep``
        selects and the exit code, returns ``(exit code, stdout + stderr)``."""
        shown = [_rel(Path(a)) if os.path.isabs(a) else a for a in args]
        print("$ safeart " + " ".join(shown), flush=True)
        proc = self._run([sys.executable, "-m", "safeart.cli", *args], env)
        out = proc.stdout + proc.stderr
        _show(out, keep)
        print(f"   exit code {proc.returncode}", flush=True)
        return proc.returncode, out

    # -- the local datastore, as an attacker with write access sees it ----------------------
    def blob_file(self, run: str, step: str, artifact: str) -> tuple[Path, bool]:
        """Where the local datastore keeps ``artifact`` of ``run``'s ``step`` (its first
        task, attempt 0), and whether the file is stored raw (else gzip-framed)."""
        flow, run_id = run.split("/")
        store = self.root / ".metaflow" / flow
        (record,) = sorted((store / run_id / step).glob("*/0.data.json"))[:1]
        sha = json.loads(record.read_text())["objects"][artifact]
        blob = store / "data" / sha[:2] / sha
        raw = json.loads(blob.with_name(f"{sha}_meta").read_text()).get("cas_raw", False)
        return blob, bool(raw)

    def blob_bytes(self, run: str, step: str, artifact: str) -> bytes:
        """The stored bytes of an artifact, unframed as Metaflow reads them."""
        blob, raw = self.blob_file(run, step, artifact)
        return blob.read_bytes() if raw else gzip.decompress(blob.read_bytes())

    def rewrite_blob(self, run: str, step: str, artifact: str,
                     change: Callable[[bytes], bytes]) -> Path:
        """Replace the stored bytes of an artifact by ``change(bytes)``, in place: same
        file, same content address (every task that shares the blob now reads the new
        bytes). Returns the file."""
        blob, raw = self.blob_file(run, step, artifact)
        new = change(self.blob_bytes(run, step, artifact))
        blob.write_bytes(new if raw else gzip.compress(new))
        return blob


def _rel(path: Path) -> str:
    """``path`` relative to the repository or the current directory when shorter."""
    for base in (EXAMPLES.parent, Path.cwd()):
        try:
            return str(path.resolve().relative_to(base))
        except ValueError:
            continue
    return str(path)


@contextlib.contextmanager
def example_env(name: str) -> Iterator[Env]:
    """A temporary :class:`Env` (removed at the end unless ``--keep`` is passed)."""
    root = Path(tempfile.mkdtemp(prefix=f"safeart-{name}-")).resolve()
    cwd, saved = os.getcwd(), dict(os.environ)
    env = Env(root)
    env.activate()
    print(f"working directory and Metaflow root: {root}", flush=True)
    try:
        yield env
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)
        if "--keep" in sys.argv:
            print(f"\n(kept {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)


def s3_bucket(endpoint: str, bucket: str) -> dict[str, str]:
    """Create ``bucket`` on the S3-compatible server at ``endpoint`` (dummy credentials);
    the variables that point Metaflow at it."""
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="dummy",
                 aws_secret_access_key="dummy", region_name="us-east-1",
                 ).create_bucket(Bucket=bucket)
    print(f"   S3 endpoint {endpoint}, bucket {bucket}", flush=True)
    return {
        "AWS_ACCESS_KEY_ID": "dummy",
        "AWS_SECRET_ACCESS_KEY": "dummy",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "METAFLOW_DEFAULT_DATASTORE": "s3",
        "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{bucket}/metaflow",
        "METAFLOW_S3_ENDPOINT_URL": endpoint,
    }


@contextlib.contextmanager
def moto_s3(env: Env, bucket: str = "mfbucket") -> Iterator[dict[str, str]]:
    """A moto S3 server on a free 127.0.0.1 port with ``bucket`` (stopped at the end);
    yields the variables that point Metaflow at it (dummy credentials)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    exe = shutil.which("moto_server", path=os.pathsep.join([str(BIN), os.environ["PATH"]]))
    argv = [exe] if exe else [sys.executable, "-m", "moto.server"]
    log = (env.root / "moto.log").open("w")
    print(f"$ moto_server -H 127.0.0.1 -p {port} &", flush=True)
    server = subprocess.Popen([*argv, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                              stderr=subprocess.STDOUT, cwd=env.root)
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 30
        while True:
            try:
                opener.open(endpoint, timeout=1).close()
                break
            except OSError:
                check(server.poll() is None and time.monotonic() < deadline,
                      f"moto_server did not start (see {env.root / 'moto.log'})")
                time.sleep(0.2)
        yield s3_bucket(endpoint, bucket)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        print(f"   stopped moto_server (port {port})", flush=True)


def import_example(relpath: str) -> ModuleType:
    """Import ``examples/<relpath>`` (another example's ``run.py``) as a module."""
    path = EXAMPLES / relpath
    spec = importlib.util.spec_from_file_location(f"example_{path.parent.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
