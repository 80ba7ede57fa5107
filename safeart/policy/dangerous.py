"""The denylist: known code-execution, file, process and network primitives.

It only *grades* scan findings (dangerous vs unknown). It never admits anything: what is
neither allowed nor listed here is "unknown" and is refused by default all the same.

Matching is deliberately broad: a name is dangerous when its module, any dotted prefix of
its module, or any component of an attribute traversal (``pathlib`` + ``os.system``) is a
listed module, or when ``module.name`` is a listed exact name.
"""

from __future__ import annotations

__all__ = ["DANGEROUS_MODULES", "DANGEROUS_NAMES", "reason_for"]

#: Modules any of whose attributes can run code, touch files, processes or the network.
DANGEROUS_MODULES: dict[str, str] = {
    "os": "process, file and environment primitives (os.system, os.popen, os.exec*)",
    "posix": "the C implementation behind os: process and file primitives",
    "nt": "the Windows implementation behind os: process and file primitives",
    "subprocess": "runs arbitrary commands",
    "pty": "spawns processes",
    "runpy": "runs arbitrary modules or files",
    "importlib": "imports arbitrary modules (code execution on import)",
    "imp": "imports arbitrary modules",
    "pickle": "nested pickle loads execute code",
    "_pickle": "nested pickle loads execute code",
    "cPickle": "nested pickle loads execute code",
    "dill": "pickle extension that loads code objects",
    "cloudpickle": "pickle extension that loads code objects",
    "marshal": "loads code objects",
    "shelve": "pickle-backed storage: loads execute code",
    "ctypes": "calls arbitrary native functions, writes memory",
    "_ctypes": "calls arbitrary native functions",
    "cffi": "calls arbitrary native functions",
    "socket": "network access",
    "_socket": "network access",
    "ssl": "network access",
    "http": "network access",
    "urllib": "network access",
    "urllib3": "network access",
    "requests": "network access",
    "httpx": "network access",
    "ftplib": "network access",
    "smtplib": "network access",
    "telnetlib": "network access",
    "xmlrpc": "network access and remote calls",
    "asyncio": "subprocess and network primitives",
    "multiprocessing": "spawns processes; its reduction unpickles",
    "concurrent": "runs callables in pools",
    "threading": "runs callables in threads",
    "_thread": "runs callables in threads",
    "signal": "installs handlers, sends signals",
    "shutil": "copies, moves and deletes files",
    "tempfile": "creates files",
    "glob": "lists the file system",
    "pathlib": "file system access; attribute traversal reaches os",
    "io": "opens files (io.open, FileIO)",
    "_io": "opens files",
    "codecs": "codecs.open writes files",
    "fileinput": "opens files",
    "zipfile": "reads and writes archives on disk",
    "tarfile": "extracts archives to disk",
    "sqlite3": "opens database files",
    "code": "interactive interpreter: runs source",
    "codeop": "compiles source",
    "pdb": "debugger: runs arbitrary statements",
    "bdb": "debugger: runs arbitrary statements",
    "cProfile": "cProfile.run executes source strings",
    "profile": "profile.run executes source strings",
    "timeit": "timeit executes source strings",
    "trace": "runs code under tracing",
    "doctest": "runs source from docstrings",
    "webbrowser": "launches programs",
    "sys": "interpreter internals (sys.modules, settrace, exit)",
    "builtins": "builtins expose eval/exec/open/getattr/__import__",
    "__builtin__": "Python 2 builtins: eval/exec/open",
    "gc": "reaches every live object",
    "inspect": "reaches frames and globals",
    "operator": "attrgetter/methodcaller call arbitrary methods",
    "functools": "partial/reduce compose arbitrary calls",
    "types": "FunctionType/CodeType build functions from code",
    "ast": "parses and compiles source",
    "platform": "runs helper commands",
    "logging": "logging.config can import and call arbitrary objects",
    "distutils": "spawns compilers and processes",
    "setuptools": "runs build commands",
    "pip": "installs and runs packages",
    "venv": "creates environments, runs processes",
    "uuid": "historically spawned helper processes",
    "joblib": "joblib.load unpickles",
    "numpy.load": "numpy.load with allow_pickle unpickles",
    "numpy.lib.npyio": "numpy loaders can unpickle",
    "numpy.testing": "runs subprocesses and tests",
    "numpy.f2py": "compiles and runs code",
    "numpy.distutils": "spawns compilers",
    "torch.hub": "downloads and runs code from the internet",
    "torch.load": "torch.load with weights_only=False unpickles",
    "torch.serialization": "torch.load unpickles",
    "torch.jit": "loads and compiles TorchScript",
    "torch._dynamo": "compiles and runs code",
    "torch._inductor": "compiles and runs native code",
    "torch.utils.cpp_extension": "compiles and loads native code",
    "torch.package": "loads packaged code",
    "torch.ops": "calls arbitrary registered operators",
    "torch._ops": "calls arbitrary registered operators",
    "torch.cuda": "device and process control",
    "torch.distributed": "network access and remote calls",
    "torch.multiprocessing": "spawns processes",
    "transformers": "can download and run remote code",
    "keras": "can deserialize lambdas",
    "tensorflow": "runs graphs and file I/O",
    "pandas.io": "reads files, URLs and pickles",
    "pandas.read_pickle": "unpickles",
    "sklearn.utils._testing": "runs subprocesses",
    "idlelib": "IDE helpers that run code and open files (GHSA-r8g5-cgf2-4m4m picklescan bypass)",
    "lib2to3": "refactoring tools that import and run fixers (GHSA-r8g5-cgf2-4m4m)",
    "ensurepip": "installs packages (GHSA-vqmv-47xg-9wpr picklescan bypass)",
    "pydoc": "pydoc.pipepager/tempfilepager run shell commands",
    "pkgutil": "pkgutil.resolve_name imports and returns any object",
    "zipimport": "imports code from archives",
    "site": "site.addsitedir executes .pth files",
    "_posixsubprocess": "fork_exec spawns processes",
    "_winapi": "CreateProcess and file primitives",
    "_operator": "C operator module: attrgetter/methodcaller (GHSA-m273-6v24-x4m4)",
    "_functools": "C functools: partial/reduce compose arbitrary calls",
    "_imp": "low-level import machinery",
    "_frozen_importlib": "import machinery: imports arbitrary modules",
    "_frozen_importlib_external": "import machinery: loads modules from files",
    "_interpreters": "runs source in a subinterpreter (GHSA-6ggj-6f2q-f7mx fickling bypass)",
    "_xxsubinterpreters": "runs source in a subinterpreter (GHSA-6ggj-6f2q-f7mx)",
    "_osx_support": "runs compiler helper processes (fickling unsafe-imports report)",
    "_aix_support": "runs helper processes (fickling unsafe-imports report)",
    "aiohttp": "network access (GHSA-hgrh-qx5j-jfwx)",
    "httplib": "Python 2 http.client: network access",
    "socketserver": "network servers",
    "imaplib": "network access",
    "poplib": "network access",
    "nntplib": "network access",
    "wsgiref": "network servers",
    "mmap": "maps files into memory",
    "fcntl": "file descriptor control",
    "resource": "changes process limits",
    "select": "waits on file descriptors",
    "selectors": "waits on file descriptors",
    "linecache": "reads arbitrary files",
    "tokenize": "tokenize.open reads files",
    "bz2": "bz2.open reads and writes files",
    "gzip": "gzip.open reads and writes files",
    "lzma": "lzma.open reads and writes files",
    "dbm": "opens database files",
    "tkinter": "GUI toolkit: runs Tcl code",
    "turtle": "GUI toolkit: runs Tcl code",
    "unittest": "test loaders import and run modules",
    "test": "CPython's test package: runs subprocesses and scripts",
    "safeart": "scanner deactivation: a pickle must never reach safeart's own internals",
    "fickling": "scanner deactivation: pickle scanner internals",
    "picklescan": "scanner deactivation: pickle scanner internals",
    "modelscan": "scanner deactivation: pickle scanner internals",
    "metaflow": "Metaflow internals: datastore, S3 clients and subprocess launchers",
    "boto3": "cloud credentials and network access",
    "botocore": "cloud credentials and network access",
}

#: Exact names, for modules otherwise not listed or worth a more precise reason.
DANGEROUS_NAMES: dict[str, str] = {
    "builtins.eval": "evaluates source code",
    "builtins.exec": "executes source code",
    "builtins.compile": "compiles source code",
    "builtins.getattr": "reaches arbitrary attributes (getattr(os, 'system'))",
    "builtins.setattr": "mutates arbitrary objects",
    "builtins.delattr": "mutates arbitrary objects",
    "builtins.__import__": "imports arbitrary modules",
    "builtins.open": "opens files",
    "builtins.breakpoint": "starts a debugger",
    "builtins.input": "reads from the terminal",
    "builtins.globals": "reaches module globals",
    "builtins.vars": "reaches object dicts",
    "copyreg._reconstructor": "calls base.__new__ with pickled arguments (only allowed explicitly)",
    "torch.storage._load_from_bytes": "calls torch.load(weights_only=False) on nested bytes",
    "torch._utils._rebuild_from_type": "calls an arbitrary pickled function",
}


def _prefixes(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def reason_for(module: str, name: str) -> str | None:
    """Why ``module`` + ``name`` is dangerous, or None when it is not on the denylist."""
    full = f"{module}.{name}"
    if full in DANGEROUS_NAMES:
        return DANGEROUS_NAMES[full]
    for prefix in _prefixes(full):
        if prefix in DANGEROUS_MODULES:
            return f"{prefix}: {DANGEROUS_MODULES[prefix]}"
    # Attribute traversal: every component of a dotted name counts (pathlib + os.system).
    if "." in name:
        for part in name.split("."):
            if part in DANGEROUS_MODULES:
                return f"attribute traversal reaches {part}: {DANGEROUS_MODULES[part]}"
        if any(p.startswith("__") and p.endswith("__") for p in name.split(".")):
            return "attribute traversal through a dunder attribute"
    if module != module.strip() or name != name.strip() or not module or not name:
        return "malformed or obfuscated import name"
    if not all(part.isidentifier() and part.isascii() for part in full.split(".")):
        return "import name is not a plain ASCII dotted identifier (obfuscation or homoglyphs)"
    return None
