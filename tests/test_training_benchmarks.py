"""benchmarks/peak_share.py and two_checkouts.py: `--precision bf16` times steps under autocast; a bad value is refused."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ROOT = BENCHMARKS.parent


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=600,
                          cwd=BENCHMARKS)


def test_peak_share_sets_bf16_steps_against_a_bf16_matmul():
    result = run("peak_share.py", "--models", "turnaround", "--steps", "1", "--threads", "1", "--precision", "bf16")
    assert result.returncode == 0, result.stderr
    assert "bf16" in result.stdout.splitlines()[0] and "steps under bf16 autocast" in result.stdout
    cells = [cell.strip() for cell in next(line for line in result.stdout.splitlines() if line.startswith("| turnaround")).strip("|").split("|")]
    assert float(cells[1]) > 0 and float(cells[2]) > 0  # GFLOP per step, ms per step


def test_two_checkouts_times_one_checkout_in_fp32_against_bf16():
    result = run("two_checkouts.py", str(ROOT), str(ROOT), "--models", "turnaround", "--rounds", "1", "--steps", "1",
                 "--threads", "1", "--precision-b", "bf16")
    assert result.returncode == 0, result.stderr
    assert "precision A 32, B bf16" in result.stdout
    cells = [cell.strip() for cell in next(line for line in result.stdout.splitlines() if line.startswith("| turnaround")).strip("|").split("|")]
    assert float(cells[1]) > 0 and float(cells[2]) > 0 and float(cells[3]) > 0  # A ms, B ms, B / A: both measured


def test_an_unknown_precision_is_refused_in_one_line():
    for script in ("peak_share.py", "two_checkouts.py"):
        args = ["--precision", "fp8"] if script == "peak_share.py" else [str(ROOT), str(ROOT), "--precision-b", "fp8"]
        result = run(script, *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "invalid choice: 'fp8'" in result.stderr.strip().splitlines()[-1]
