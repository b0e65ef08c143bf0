"""benchmarks/drawing.py: `--dataset` times real test characters; a wrong dataset name is one line."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "drawing.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600,
                          cwd=SCRIPT.parent)


def test_the_drawing_benchmark_times_real_test_characters(archives):
    result = run("--models", "turnaround", "--dataset", "rm2k", "--characters", "100", "--batch", "16", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("| turnaround"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert "error" not in row
    assert float(cells[1]) > 0 and float(cells[2]) > 0  # GFLOP per character, ms per character
    assert cells[6] == "32"  # rm2k's whole test split, not 100 procedural characters


def test_the_drawing_benchmark_rejects_an_unknown_dataset_in_one_line():
    result = run("--models", "turnaround", "--dataset", "no-such-set")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown dataset 'no-such-set'" in result.stderr.strip().splitlines()[-1]
