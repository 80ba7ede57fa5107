"""safetensors and safeart blobs in scans: the loader's own checks, shared by every scan.

A scan must never pass what the loader refuses. ``safeart.load_file``/``safeart.loads``
refuse a blob whose safetensors header is invalid (truncated, ranges that do not tile the
data ...) or whose safeart manifest is malformed or names a class the policy does not
allow. :func:`audit_findings` runs exactly those checks -- :func:`safeart.format.audit`,
which validates the header and the whole manifest and checks every class against the
policy, importing and building nothing -- and turns each problem into a scan finding. A
plain safetensors file (tensors only, e.g. ``safetensors.torch.save_file`` output) has its
header validated the same way (the validation the loader starts with) and is clean when
it is valid.

Used by the file scanner (content that looks like safetensors, and any file named
``*.safetensors``: a name that promises safetensors content the loader cannot read is never
clean) and by the Metaflow run scanner for ``safeart-v1`` artifacts.
"""

from __future__ import annotations

from ..errors import LimitExceeded, PolicyError, SafeartError
from ..format import audit
from ..format.layout import METADATA_KEY, as_view, read_header
from ..policy import Grade, Policy
from ..policy.dangerous import reason_for
from .context import ScanContext
from .report import Finding
from .walker import Buffer


#: File names ending so promise safetensors content.
SUFFIX = ".safetensors"


def audit_findings(data: Buffer, policy: Policy, location: str) -> tuple[list[Finding], bool]:
    """What the loader would refuse in ``data`` (a safetensors or safeart blob), as findings.

    Args:
        data: The whole blob (bytes, memoryview ...; not copied).
        policy: Grades manifest classes and sets the limits, as for loading.
        location: Where the blob is (a file, ``archive > member``, a blob's sha); findings
            are located there, followed by the object path inside the blob.

    Returns:
        The findings (none: the loader accepts the blob) and whether the blob was analysed
        completely (False when its header or manifest could not be read).
    """
    try:  # the validation the loader starts with
        header = read_header(as_view(data), policy.limits)
    except SafeartError as exc:
        return [_finding(exc, location)], False
    if METADATA_KEY not in header.metadata:  # plain safetensors: tensors only
        return [], True
    problems = audit(data, policy=policy).problems
    complete = all(isinstance(p, PolicyError) for p in problems)
    return [_finding(p, location) for p in problems], complete


def scan_safetensors(ctx: ScanContext, buf: Buffer, start: int, end: int, loc: str) -> None:
    """Add :func:`audit_findings` of ``buf[start:end]`` to the scan."""
    with memoryview(buf) as whole, whole[start:end] as view:
        findings, complete = audit_findings(view, ctx.policy, loc)
    if not complete:
        ctx.result.complete = False
    ctx.result.findings.extend(findings)


def _finding(problem: SafeartError, location: str) -> Finding:
    """A loader refusal as a scan finding (a refused class is graded like an import)."""
    where = location + (f" > {problem.path}" if problem.path else "")
    if isinstance(problem, PolicyError):
        module, _, name = problem.name.rpartition(".")
        danger = reason_for(module, name) if module else None
        grade = Grade.DANGEROUS if danger else Grade.UNKNOWN
        reason = danger or f"not on the allowlist; {problem.hint or ''}".rstrip("; ")
        return Finding(grade, "class", problem.name, reason, location=where)
    kind = "limit" if isinstance(problem, LimitExceeded) else "malformed"
    return Finding(Grade.UNKNOWN, kind, type(problem).__name__, problem.message, location=where)
