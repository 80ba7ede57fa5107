"""The denylist: known code-execution, file, process and network primitives.

It only *grades* scan findings (dangerous vs unknown). It never admits anything: what is
neither allowed nor listed here is "unknown" and is refused by default all the same.

A name is *dangerous* only if it can execute code, touch files, processes or the network, or
resolve arbitrary names. Matching is deliberately broad: a name is dangerous when its module,
any dotted prefix of it, or any component of the name (``pathlib`` + ``os.system``,
``pathlib.os``) is a listed module; when ``module.name`` or a prefix of it is a listed exact
name; or when it traverses attributes below a module of :data:`TRAVERSAL_DENIED`
(``pathlib.Path.write_text``). Inert value types of mixed modules (``builtins.int``,
``uuid.UUID``, ``http.HTTPStatus``) are therefore not dangerous: unlisted, they grade
"unknown".
"""

from __future__ import annotations


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
    "urllib": "network access",
    "http.client": "network access",
    "http.server": "network servers; SimpleHTTPRequestHandler serves files",
    "http.cookiejar": "FileCookieJar loads and saves cookie files",
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
    "__builtin__": "Python 2 builtins: eval/exec/open",
    "gc": "reaches every live object",
    "inspect": "reaches frames and globals",
    "operator": "attrgetter/methodcaller call arbitrary methods",
    "functools": "partial/reduce compose arbitrary calls",
    "ast": "parses and compiles source",
    "platform": "runs helper commands",
    "logging": "logging.config can import and call arbitrary objects",
    "distutils": "spawns compilers and processes",
    "setuptools": "runs build commands",
    "pip": "installs and runs packages",
    "venv": "creates environments, runs processes",
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

#: Exact names, for modules otherwise not listed or worth a more precise reason. The modules
#: of inert value types that real pickles name (``builtins.int``, ``uuid.UUID``,
#: ``pathlib.PurePosixPath``, ``http.HTTPStatus``, ``types.SimpleNamespace``, ``io.BytesIO``)
#: are listed name by name; their other names grade "unknown" (still refused unless allowed).
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
    "builtins.print": "writes to stdout or to any file-like object passed as file=",
    "builtins.globals": "reaches module globals",
    "builtins.locals": "reaches the caller's frame variables",
    "builtins.vars": "reaches object dicts",
    "builtins.dir": "lists the attributes of any object (name discovery)",
    "builtins.exit": "raises SystemExit: ends the loading process",
    "builtins.quit": "raises SystemExit: ends the loading process",
    "builtins.help": "runs pydoc, whose pager spawns a shell command",
    "builtins.license": "reads license files from disk and pages them",
    "builtins.credits": "site printer: pages text",
    "builtins.copyright": "site printer: pages text",
    "builtins.map": "calls a pickled function on pickled arguments once consumed",
    "builtins.filter": "calls a pickled function on pickled arguments once consumed",
    "builtins.iter": "iter(callable, sentinel) calls a pickled function once consumed",
    "builtins.classmethod": "wraps functions: builds descriptors that call them",
    "builtins.staticmethod": "wraps functions: builds descriptors that call them",
    "builtins.property": "wraps functions: builds descriptors that call them",
    "copyreg._reconstructor": "calls base.__new__ with pickled arguments (only allowed explicitly)",
    "torch.storage._load_from_bytes": "calls torch.load(weights_only=False) on nested bytes",
    "torch._utils._rebuild_from_type": "calls an arbitrary pickled function",
    "uuid.getnode": "runs helper processes (ifconfig, ip, arp) to find a MAC address",
    "uuid.uuid1": "calls getnode(): helper processes",
    "uuid._get_command_stdout": "runs a command in a subprocess",
    "uuid._popen": "runs a command in a subprocess",
    **{f"uuid.{n}": "runs a helper command to find a MAC address" for n in (
        "_ifconfig_getnode", "_ip_getnode", "_arp_getnode", "_lanscan_getnode",
        "_netstat_getnode", "_ipconfig_getnode", "_netbios_getnode", "_unix_getnode",
        "_windll_getnode", "_find_mac", "_find_mac_near_keyword", "_find_mac_under_heading")},
    **{f"{m}.{n}": "opens files" for m in ("io", "_io") for n in (
        "open", "open_code", "FileIO", "_IOBase", "BufferedReader", "BufferedWriter",
        "BufferedRandom", "BufferedRWPair", "TextIOWrapper", "RawIOBase", "BufferedIOBase",
        "TextIOBase", "IOBase")},
    **{f"types.{n}": "builds functions, code, frames or modules, or calls a pickled function"
       for n in ("FunctionType", "LambdaType", "CodeType", "MethodType", "ModuleType",
                 "CellType", "FrameType", "TracebackType", "GeneratorType", "CoroutineType",
                 "AsyncGeneratorType", "new_class", "prepare_class", "coroutine",
                 "DynamicClassAttribute", "BuiltinFunctionType", "BuiltinMethodType",
                 "MethodWrapperType", "WrapperDescriptorType", "MethodDescriptorType",
                 "ClassMethodDescriptorType", "GetSetDescriptorType", "MemberDescriptorType")},
}

#: Modules whose listed names above are dangerous while their value classes are not: any
#: attribute traversal below them (``pathlib.Path.write_text``, ``builtins.int.__subclasses__``,
#: ``uuid.UUID.__init__.__globals__``) is dangerous, as methods there touch files or reach code.
TRAVERSAL_DENIED: dict[str, str] = {
    "builtins": "builtin types' methods and dunders reach code and other objects",
    "__builtin__": "builtin types' methods and dunders reach code and other objects",
    "pathlib": "path methods open, write, delete and list files",
    "uuid": "module internals run helper processes",
    "http": "http.client/http.server internals",
    "io": "file objects' methods read and write files",
    "_io": "file objects' methods read and write files",
    "types": "function and code objects' internals",
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
        if prefix in DANGEROUS_NAMES:  # builtins.getattr.__call__
            return f"attribute traversal below {prefix}: {DANGEROUS_NAMES[prefix]}"
    # Attribute traversal: every component of the name counts (pathlib + os.system), even a
    # single one (pathlib.os: a module re-exported by another).
    for part in name.split("."):
        if part in DANGEROUS_MODULES:
            return f"attribute traversal reaches {part}: {DANGEROUS_MODULES[part]}"
    if module == "builtins" and name.startswith("__"):
        return "builtins internals (__loader__, __spec__, __build_class__, __dict__)"
    if "." in name:
        for prefix in _prefixes(module):
            if prefix in TRAVERSAL_DENIED:
                return f"attribute traversal below {prefix}: {TRAVERSAL_DENIED[prefix]}"
        if any(p.startswith("__") and p.endswith("__") for p in name.split(".")):
            return "attribute traversal through a dunder attribute"
    if module != module.strip() or name != name.strip() or not module or not name:
        return "malformed or obfuscated import name"
    if not all(part.isidentifier() and part.isascii() for part in full.split(".")):
        return "import name is not a plain ASCII dotted identifier (obfuscation or homoglyphs)"
    return None
