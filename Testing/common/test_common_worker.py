"""Worker process: progress lines parsed, error line surfaced, cancel kills the whole process tree."""

import os
import sys
import textwrap
import time

import pytest

from RadiologyAICommonLib.progress import format_progress_line, parse_progress_line, subprogress
from RadiologyAICommonLib.worker import WorkerProcess


def test_progress_line_round_trip():
    assert parse_progress_line(format_progress_line(0.25, "Vesselness 2/4")) == (0.25, "Vesselness 2/4")
    assert parse_progress_line(format_progress_line(1.7, "")) == (1.0, "")
    assert parse_progress_line("PROGRESS abc x") is None
    assert parse_progress_line("some log line") is None


def test_subprogress_maps_ranges():
    seen = []
    inner = subprogress(lambda f, m: seen.append((round(f, 6), m)), 0.5, 0.75)
    inner(0.0, "a")
    inner(0.5, "b")
    inner(2.0, "c")
    assert seen == [(0.5, "a"), (0.625, "b"), (0.75, "c")]


def _script(tmp_path, body):
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def test_worker_reports_progress_stdout_and_error(tmp_path):
    command = _script(
        tmp_path,
        """
        import sys
        for i in range(5):
            print(f"PROGRESS {i / 4:.2f} step {i}", file=sys.stderr, flush=True)
        print("a log line", file=sys.stderr)
        print('{"result": 1}')
        print("error: the lung mask has another geometry", file=sys.stderr)
        sys.exit(2)
    """,
    )
    seen = []
    result = WorkerProcess([], on_progress=lambda f, m: seen.append((f, m)), command=command).start().wait(timeout=60)
    assert seen == [(i / 4, f"step {i}") for i in range(5)]
    assert result.returncode == 2 and not result.ok
    assert result.error == "the lung mask has another geometry"
    assert result.stdout == '{"result": 1}'
    assert result.log == ["a log line"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups")
def test_cancel_kills_process_tree(tmp_path):
    pid_file = tmp_path / "child.pid"
    command = _script(
        tmp_path,
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("PROGRESS 0.1 started", file=sys.stderr, flush=True)
        time.sleep(60)
    """,
    )
    worker = WorkerProcess([], command=command).start()
    deadline = time.time() + 30
    while not pid_file.exists() or not pid_file.read_text(encoding="utf-8"):
        assert time.time() < deadline
        time.sleep(0.05)
    child = int(pid_file.read_text(encoding="utf-8"))
    worker.cancel()
    while not worker.poll():
        time.sleep(0.01)
    assert worker.result.cancelled and not worker.result.ok
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the killed child may linger as a zombie briefly
            os.kill(child, 0)
            with open(f"/proc/{child}/stat") as stat:
                if stat.read().split()[2] == "Z":
                    raise ProcessLookupError
            time.sleep(0.1)


def test_worker_runs_the_real_cli(tmp_path):
    result = WorkerProcess(["--help"]).start().wait(timeout=120)
    assert result.ok, result.error
    assert "vessels" in result.stdout and "phantom" in result.stdout
    missing = tmp_path / "missing.nrrd"
    result = WorkerProcess(["vessels", str(missing), "--output-dir", str(tmp_path / "out")]).start().wait(timeout=120)
    assert result.returncode == 2
    assert "missing.nrrd" in result.error
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups")
def test_cancel_lets_the_command_clean_up(tmp_path):
    """Slicer's Cancel sends SIGTERM first: the run removes its staging folder (SIGKILL left it behind)."""
    out = tmp_path / "sim"
    args = [
        "phantom",
        "simulate",
        "--output-dir",
        str(out),
        "--doses",
        "0.5,1,2,4",
        "--recons",
        "fbp,ir,dlr",
        "--repetitions",
        "8",
        "--workers",
        "1",
        "--phantom",
        "small",
        "--size",
        "84,84,74",
        "--spacing",
        "0.9,0.9,1.0",
    ]
    seen = []
    worker = WorkerProcess(args, on_progress=lambda f, m: seen.append(m)).start()
    deadline = time.time() + 240
    while not any("simulating" in m for m in seen):
        assert time.time() < deadline and not worker.poll(), worker.result
        time.sleep(0.05)
    assert out.is_dir()  # the staging folder lives inside it while the run goes on
    worker.cancel()
    while not worker.poll():
        time.sleep(0.01)
    assert worker.result.cancelled and worker.result.returncode == 143
    assert not out.exists()
