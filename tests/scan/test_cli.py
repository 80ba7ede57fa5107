"""``safeart scan``: exit codes, output formats, thresholds and the target-resolver hook."""

import json
import pickle
import subprocess
import sys

import pytest

from payloads import canary_reduce_pickle
from safeart import cli
from safeart.scan import ScanReport, ScanResult


@pytest.fixture
def files(tmp_path):
    canary = tmp_path / "canary"
    clean = tmp_path / "clean.pkl"
    clean.write_bytes(pickle.dumps({"a": [1, 2]}, protocol=4))
    evil = tmp_path / "evil.bin"
    evil.write_bytes(canary_reduce_pickle(canary))
    unknown = tmp_path / "unknown.pkl"
    unknown.write_bytes(b"\x80\x04\x8c\x05mypkg\x8c\x03Net\x93)\x81.")
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(pickle.dumps([1, 2, 3], protocol=2)[:-4])
    evil_then_broken = tmp_path / "evil_broken.pkl"
    evil_then_broken.write_bytes(canary_reduce_pickle(canary, 2)[:-1] + b"\xff")
    yield {p.stem: str(p) for p in (clean, evil, unknown, broken, evil_then_broken)}
    assert not canary.exists()


def run(*args):
    return cli.main(["scan", *args])


def test_exit_codes(files, capsys):
    assert run(files["clean"]) == 0
    assert run(files["evil"]) == 1
    assert run(files["unknown"]) == 1
    assert run(files["clean"], files["evil"]) == 1
    assert "DANGEROUS" in capsys.readouterr().out


def test_fail_on_dangerous_lets_unknown_pass_but_never_a_parse_error(files):
    assert run("--fail-on", "dangerous", files["unknown"]) == 0
    assert run("--fail-on", "dangerous", files["evil"]) == 1
    assert run("--fail-on", "dangerous", files["broken"]) == 1
    assert run(files["broken"]) == 1


def test_dangerous_before_a_parse_error_is_exit_1(files, capsys):
    assert run("--format", "json", files["evil_broken"]) == 1
    [result] = json.loads(capsys.readouterr().out)["results"]
    assert result["verdict"] == "dangerous" and result["complete"] is False
    assert [f["kind"] for f in result["findings"]] == ["import", "malformed"]


def test_usage_and_io_errors_are_exit_2(files, tmp_path, capsys):
    assert run(str(tmp_path / "missing.pkl")) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        run("--format", "xml", files["clean"])
    assert info.value.code == 2
    bad_policy = tmp_path / "safeart.toml"
    bad_policy.write_text("allow = 3\n")
    assert run("--policy", str(bad_policy), files["clean"]) == 2
    unreadable = tmp_path / "dir_as_output"
    unreadable.mkdir()
    assert run("--output", str(unreadable), files["clean"]) == 2


def test_policy_file_allows_a_class(files, tmp_path):
    policy = tmp_path / "safeart.toml"
    policy.write_text('allow = ["mypkg.Net"]\n')
    assert run("--policy", str(policy), files["unknown"]) == 0


def test_allow_and_alias_options_extend_the_policy(files, tmp_path, capsys):
    assert run("--allow", "mypkg.Net", files["unknown"]) == 0
    main_net = tmp_path / "main_net.pkl"
    main_net.write_bytes(b"\x80\x04\x8c\x08__main__\x8c\x03Net\x93)\x81.")
    assert run(str(main_net)) == 1
    assert run("--alias", "__main__.Net=mypkg.Net", str(main_net)) == 0
    assert run("--alias", "nonsense", str(main_net)) == 2
    assert "NAME=CLASS" in capsys.readouterr().err


def test_json_shape(files, capsys):
    run("--format", "json", files["clean"], files["evil"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["scanned"] == 2 and doc["summary"]["dangerous"] == 1
    evil = doc["results"][1]
    [finding] = evil["findings"]
    assert finding == {
        "grade": "dangerous", "kind": "import", "name": "builtins.open",
        "reason": finding["reason"], "offset": 18, "location": files["evil"],
        "opcode": "STACK_GLOBAL",
    }
    assert evil["globals"]["builtins.open"] == {"grade": "dangerous", "count": 1}


def test_sarif_shape(files, tmp_path):
    out = tmp_path / "report.sarif"
    assert run("--format", "sarif", "--output", str(out), files["evil"], files["broken"]) == 1
    doc = json.loads(out.read_text())
    assert doc["version"] == "2.1.0" and "$schema" in doc
    [run_] = doc["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "safeart"
    rule_ids = {r["id"] for r in driver["rules"]}
    for result in run_["results"]:
        assert result["ruleId"] in rule_ids
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"]
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] in (files["evil"], files["broken"])
    assert {r["ruleId"] for r in run_["results"]} == {"import", "malformed"}


def test_text_names_offset_opcode_and_reason(files, capsys):
    run(files["evil"])
    out = capsys.readouterr().out
    assert "dangerous import: builtins.open  offset 18 (STACK_GLOBAL)" in out
    assert "opens files" in out


def test_folders_are_scanned_recursively(files, tmp_path, capsys):
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    (sub / "x").write_bytes(pickle.dumps(1))
    assert run(str(tmp_path / "deep")) == 0
    assert run(str(tmp_path)) == 1


def test_non_path_targets_go_to_resolvers(monkeypatch, capsys):
    seen = []

    def resolver(arg, policy, args, progress):
        seen.append(arg)
        if arg.count("/") != 2:
            return None
        return ScanReport(results=[ScanResult(target=f"metaflow:{arg}")])

    monkeypatch.setattr(cli, "RESOLVERS", [resolver])
    assert run("Flow/12/step") == 0
    assert seen == ["Flow/12/step"] and "metaflow:Flow/12/step" in capsys.readouterr().out
    assert run("NotAPath") == 2


def test_console_script_entry_point(files):
    proc = subprocess.run([sys.executable, "-m", "safeart.cli", "scan", files["evil"]],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "builtins.open" in proc.stdout


def test_a_scanner_crash_is_never_a_pass(files, monkeypatch, capsys):
    import safeart
    import safeart.scan.api as api

    def boom(*args, **kwargs):
        raise RuntimeError("simulated scanner bug")

    monkeypatch.setattr(api, "scan_blob", boom)
    assert run("--fail-on", "dangerous", files["clean"]) == 1
    out = capsys.readouterr().out
    assert "UNKNOWN (incomplete)" in out and "simulated scanner bug" in out
    result = safeart.scan_bytes(b"\x80\x04N.")
    assert not result.complete and result.findings[0].kind == "error"


# -- safetensors files: the scan passes exactly what the loader loads ------------------------
def _reframed(blob: bytes, old: str, new: str) -> bytes:
    """``blob`` with ``old`` replaced by ``new`` in its manifest (header re-framed)."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size])
    manifest = header["__metadata__"]["safeart"]
    assert old in manifest
    header["__metadata__"]["safeart"] = manifest.replace(old, new)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + blob[8 + size:]


@pytest.fixture
def safetensors_files(tmp_path):
    """name -> (path, what the loader does with it: 'loads' or 'refuses')."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    import safeart

    torch.manual_seed(0)
    blob = safeart.dumps({"w": torch.randn(4, 3), "head": torch.nn.Linear(3, 2)})
    linear = '["torch.nn.modules.linear","Linear"]'
    contents = {
        "model": blob,
        "unlisted": _reframed(blob, linear, '["mypkg.layers","Linear"]'),
        "dangerous": _reframed(blob, linear, '["subprocess","Popen"]'),
        "truncated": blob[:-7],
        "truncated_header": blob[:40],
        "random": bytes(range(256)) * 3,
        "empty": b"",
    }
    files = {}
    for name, data in contents.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        files[name] = path
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.randn(4, 3), "b": torch.zeros(2, dtype=torch.int64)}, plain)
    files["plain"] = plain
    return files


def _loader_accepts(path) -> bool:
    """``safeart.load_file`` for safeart files, ``safetensors`` itself for plain ones."""
    import safetensors.torch

    import safeart

    try:
        if safeart.is_safeart(path.read_bytes()):
            safeart.load_file(path)
        else:
            safetensors.torch.load_file(path)
    except Exception:  # noqa: BLE001 - any refusal counts
        return False
    return True


def test_safetensors_file_scan_passes_exactly_what_the_loader_loads(safetensors_files, capsys):
    accepted = {name for name, path in safetensors_files.items() if _loader_accepts(path)}
    assert accepted == {"model", "plain"}
    for name, path in safetensors_files.items():
        code = run(str(path))
        assert code == (0 if name in accepted else 1), (name, capsys.readouterr().out)


def test_safetensors_findings_name_the_class_or_the_header_problem(safetensors_files, capsys):
    run("--format", "json", *map(str, safetensors_files.values()))
    results = {r["target"].rsplit("/", 1)[1]: r for r in json.loads(capsys.readouterr().out)["results"]}
    unlisted = results["unlisted.safetensors"]
    assert unlisted["verdict"] == "unknown" and unlisted["complete"] is True
    (cls,) = unlisted["findings"]
    assert cls["kind"] == "class" and cls["name"] == "mypkg.layers.Linear"
    assert "allow=['mypkg.layers.Linear']" in cls["reason"]
    assert cls["location"].endswith("unlisted.safetensors > ['head']")
    assert results["dangerous.safetensors"]["verdict"] == "dangerous"
    assert results["dangerous.safetensors"]["findings"][0]["name"] == "subprocess.Popen"
    truncated = results["truncated.safetensors"]
    assert truncated["complete"] is False
    assert "truncated" in truncated["findings"][0]["reason"]
    for name in ("truncated_header", "random", "empty"):  # named so, content is not
        result = results[f"{name}.safetensors"]
        assert result["verdict"] == "unknown" and result["complete"] is False, name
    assert results["plain.safetensors"]["findings"] == []


def test_only_the_safetensors_name_makes_unrecognised_bytes_a_finding(tmp_path):
    (tmp_path / "random.bin").write_bytes(bytes(range(256)) * 3)
    assert run(str(tmp_path / "random.bin")) == 0
