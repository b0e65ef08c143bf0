"""The experiment-grid runner: grid semantics, templating, resumable execution and the results table.

Runs go through a fake interpreter that imitates `python -m spriteforge train/evaluate` in
milliseconds (a real training run costs a minute even at 2 steps on CPU)."""

from __future__ import annotations

import csv
import json
import os
import socket
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from spriteforge import experiment as runner
from spriteforge.cli import main
from spriteforge.errors import SpriteForgeError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

FAKE = textwrap.dedent('''\
    #!{python}
    """Imitates `python -m spriteforge train|evaluate` for the runner tests."""
    import json, os, sys
    from pathlib import Path

    args = sys.argv[1:]
    assert args[:2] == ["-m", "spriteforge"], args
    command, rest = args[2], args[3:]
    with open(os.environ["FAKE_CALLS"], "a") as handle:
        handle.write(json.dumps(args) + "\\n")

    def value(flag, default=None):
        return rest[rest.index(flag) + 1] if flag in rest else default

    if command == "evaluate":
        out = Path(value("--out"))
        out.mkdir(parents=True, exist_ok=True)
        means = {{"fid": 12.5, "kid": 0.01, "l1": 0.05}}
        report = {{"systems": {{"m": {{"by_missing": {{"1": means, "2": means, "3": means, "all": means}}}}}}}}
        (out / "evaluation.json").write_text(json.dumps(report))
        sys.exit(0)
    assert command == "train", command
    if "--resume" in rest:
        run = Path(value("--resume"))
        options = json.loads((run / "options.json").read_text())
        print("resuming", run)
    else:
        model = rest[0]
        run = Path(value("--log-folder")) / (value("--model-name") or model) / value("--experiment") / value("--run-string")
        run.mkdir(parents=True, exist_ok=True)
        options = {{"capacity": float(value("--capacity", 1)), "lambda": float(value("--lambda-domain", 1)), "steps": int(value("--steps", 10))}}
        (run / "options.json").write_text(json.dumps(options))
        if os.environ.get("FAKE_SLEEP") and os.environ["FAKE_SLEEP"] in run.name:
            import signal, time

            def saved(signum, frame):
                (run / "checkpoints").mkdir(exist_ok=True)
                (run / "checkpoints" / "latest.safetensors").write_text("saved on Ctrl-C")
                sys.exit(130)

            signal.signal(signal.SIGINT, saved)
            (run / "started").write_text("yes")
            time.sleep(60)
        failing = os.environ.get("FAKE_FAIL")
        if failing and failing in run.name:
            (run / "checkpoints").mkdir(exist_ok=True)
            (run / "checkpoints" / "latest.safetensors").write_text("half-way")
            print("error: simulated crash", file=sys.stderr)
            sys.exit(3)
    score = options["capacity"] / 10 + options["lambda"] / 100
    summary = {{"steps": options["steps"], "best_step": options["steps"], "validation_l1": score, "test_l1": score + 0.001}}
    (run / "summary.json").write_text(json.dumps(summary))
''')


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an experiment test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def fake_python(tmp_path, monkeypatch):
    script = tmp_path / "fake-python"
    script.write_text(FAKE.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    return script, calls


def write_grid(tmp_path: Path, body: str, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


SMALL = """\
    model = "stargan-paired"
    output = "{output}"

    [defaults]
    steps = 4
    adhoc = ["callback-evaluate-l1"]

    [grid]
    lambda-domain = [1.0, 10.0]
    capacity = [2, 1]

    [datasets.rm2k]
    adhoc = ["no-tran"]
"""


# -- reading and expanding ------------------------------------------------------------------------
def test_stargan_selection_example():
    grid = runner.read_grid(EXAMPLES / "stargan-selection-grid.toml", python="python")
    assert len(grid.runs) == 12 and grid.evaluate == "fid,kid,l1"
    runner.validate(grid)
    first = grid.runs[0].command
    assert first[:5] == ["python", "-m", "spriteforge", "train", "stargan-paired"]
    assert [first[i + 1] for i, a in enumerate(first) if a == "--dataset"] == ["tiny", "rm2k", "rmxp", "rmvx", "misc"]  # `all`
    assert "--no-tran" in first and "--conditional-discriminator" in first and "--experiment" in first
    assert first[first.index("--experiment") + 1] == "selection-all"
    combos = {(r.params["lambda-domain"], r.params["lambda-reconstruction"], r.params["capacity"]) for r in grid.runs}
    assert len(combos) == 12 and len({r.run_dir for r in grid.runs}) == 12


def test_collagan_example_expands_and_validates():
    grid = runner.read_grid(EXAMPLES / "collagan-input-dropout.toml")
    assert [r.params["input-dropout"] for r in grid.runs] == ["none", "original", "curriculum", "aggressive", "balanced", "conservative"]
    assert grid.runs[5].name == "input-dropout-conservative,cycled-source-replacer-forward"
    runner.validate(grid)


def test_merge_order_and_adhoc_alternatives(tmp_path):
    path = write_grid(tmp_path, """\
        model = "stargan-paired"
        [defaults]
        steps = 10
        lr = 0.001
        adhoc = ["callback-evaluate-l1"]
        [grid]
        adhoc = ["no-hue", ["no-tran", "save-model"]]
        [datasets.tiny]
        lr = 0.005
        adhoc = ["no-aug"]
        [datasets.mine]
        dataset = ["rm2k", "rmxp"]
        steps = 20
    """)
    grid = runner.read_grid(path)
    assert len(grid.runs) == 4
    tiny_second = grid.runs[1]
    assert tiny_second.params["adhoc"] == ["callback-evaluate-l1", "no-tran", "save-model", "no-aug"]  # lists concatenate
    assert tiny_second.params["lr"] == 0.005 and tiny_second.params["dataset"] == ["tiny"]  # the dataset wins
    mine = grid.runs[2]
    assert mine.params["dataset"] == ["rm2k", "rmxp"] and mine.params["steps"] == 20 and mine.params["lr"] == 0.001
    assert mine.name == "mine,no-hue"
    assert grid.output == Path("experiments") / "grid"


def test_templating_in_dependency_order(tmp_path):
    path = write_grid(tmp_path, """\
        model = "stargan-paired"
        [defaults]
        adhoc = ["conditional-discriminator"]
        lambda-l1 = 100.0
        model-name = "@model"
        experiment = "@run-string-x"
        run-string = "@dataset,&lambda-l1,&capacity,@network,@adhoc"
        [grid]
        capacity = [2]
        [datasets.rm2k]
    """)
    grid = runner.read_grid(path)
    run = grid.runs[0]
    assert run.params["run-string"] == "rm2k,lambda-l1-100,capacity-2,conditional,conditional-discriminator"
    assert run.params["experiment"] == run.params["run-string"] + "-x"  # resolved after run-string
    assert run.params["model-name"] == "stargan-paired"
    assert run.run_dir == Path("experiments/grid/runs/stargan-paired") / run.params["experiment"] / run.params["run-string"]


def test_templating_trims_and_detects_cycles(tmp_path):
    path = write_grid(tmp_path, """\
        model = "stargan-paired"
        [defaults]
        experiment = "-@adhoc,"
        run-string = "&capacity&lambda-domain"
        capacity = 1
        lambda-domain = 1.0
    """)
    run = runner.read_grid(path).runs[0]
    assert run.params["experiment"] == "" and run.params["run-string"] == "capacity-1lambda-domain-1"
    cyclic = write_grid(tmp_path, """\
        model = "stargan-paired"
        [defaults]
        experiment = "@run-string"
        run-string = "@experiment"
    """, "cyclic.toml")
    with pytest.raises(SpriteForgeError, match="cycle"):
        runner.read_grid(cyclic)
    unknown = write_grid(tmp_path, """\
        model = "stargan-paired"
        [defaults]
        experiment = "@lambda-nothing"
    """, "unknown.toml")
    with pytest.raises(SpriteForgeError, match="refers to 'lambda-nothing'"):
        runner.read_grid(unknown)


@pytest.mark.parametrize("body,message", [
    ('model = "stargan-paired"\n[grid]\ncapacity = 4\n', "non-empty list"),
    ('model = "stargan-paired"\n[defaults]\nlambda-nothing = 1\n', "unknown option 'lambda-nothing'"),
    ('[defaults]\nsteps = 1\n', "name the model"),
    ('model = "stargan-paired"\nsearch = 1\n', "unknown top-level key 'search'"),
    ('model = "stargan-paired"\n[defaults]\nadhoc = ["lr"]\n', "not a boolean option"),
    ('model = "stargan-paired"\n[defaults]\nrun-string = "same"\n[grid]\ncapacity = [1, 2]\n', "would share the folder"),
    ('model = "stargan-paired"\n[defaults\n', "not valid TOML"),
    ('model = "stargan-paired"\n[defaults]\nsave-model = "yes"\n', "is a flag"),
    ('model = "stargan-paired"\n[grid]\nmodel = ["a", "b"]\n', "one model per grid"),
    ('model = "stargan-paired"\nevaluate = "fid,lpips"\n', "unknown metric 'lpips'"),
])
def test_grid_mistakes_are_one_line(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(SpriteForgeError, match=message) as error:
        runner.read_grid(path)
    assert str(path) in str(error.value) or "--" not in str(error.value)


def test_validation_catches_options_the_model_rejects(tmp_path):
    path = write_grid(tmp_path, 'model = "stargan-paired"\n[grid]\ninput-dropout = ["none"]\n')
    with pytest.raises(SpriteForgeError, match="input-dropout not used by stargan-paired"):
        runner.validate(runner.read_grid(path))


def test_only_selects_by_number_range_and_pattern(tmp_path):
    grid = runner.read_grid(write_grid(tmp_path, SMALL.format(output=tmp_path / "out")))
    names = [r.name for r in grid.runs]
    assert [r.index for r in runner.select(grid.runs, ["2-3", "1"])] == [1, 2, 3]
    assert [r.name for r in runner.select(grid.runs, ["*capacity-1"])] == [n for n in names if n.endswith("capacity-1")]
    assert [r.index for r in runner.select(grid.runs, ["4", "rm2k,lambda-domain-1,capacity-2"])] == [1, 4]
    with pytest.raises(SpriteForgeError, match="--only 9"):
        runner.select(grid.runs, ["9"])


# -- running --------------------------------------------------------------------------------------
def calls(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_grid_runs_resumes_and_tabulates(tmp_path, fake_python, monkeypatch, capsys):
    script, call_log = fake_python
    output = tmp_path / "out"
    grid_file = write_grid(tmp_path, SMALL.format(output=output))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_FAIL", "lambda-domain-10,capacity-2")

    with pytest.raises(SystemExit) as exit_info:  # one run "crashes": the grid goes on, then reports it
        main(["experiment", str(grid_file), "--python", str(script)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "1 of 4 runs failed" in err and "simulated crash" in err and err.strip().splitlines()[-1].startswith("error:")
    assert len(calls(call_log)) == 4
    state = json.loads((output / "state.json").read_text())["runs"]
    assert state["rm2k,lambda-domain-10,capacity-2"]["status"] == "failed"
    assert sum(entry["status"] == "done" for entry in state.values()) == 3
    log = output / "logs" / "rm2k,lambda-domain-10,capacity-2.log"
    assert "simulated crash" in log.read_text()

    main(["experiment", str(grid_file), "--python", str(script), "--dry-run"])
    printed = capsys.readouterr().out
    assert printed.count("[done]") == 3 and "[interrupted]" in printed and "--resume" in printed

    monkeypatch.delenv("FAKE_FAIL")
    main(["experiment", str(grid_file), "--python", str(script)])
    captured = capsys.readouterr()
    assert captured.err.count("finished before, skipped") == 3 and "resuming" in captured.err
    new_calls = calls(call_log)[4:]
    assert len(new_calls) == 1 and "--resume" in new_calls[0] and new_calls[0][new_calls[0].index("--steps") + 1] == "4"
    assert "resuming" in log.read_text()

    rows = list(csv.DictReader(open(output / "results.csv")))
    assert [float(r["validation_l1"]) for r in rows] == sorted(float(r["validation_l1"]) for r in rows)
    assert rows[0]["run"] == "rm2k,lambda-domain-1,capacity-1" and all(r["status"] == "done" for r in rows)
    assert {"lambda-domain", "capacity", "dataset", "steps", "test_l1", "folder"} <= set(rows[0])
    markdown = (output / "results.md").read_text()
    assert "| rm2k,lambda-domain-1,capacity-1 |" in markdown and markdown in captured.out

    main(["experiment", str(grid_file), "--python", str(script)])  # all finished: nothing runs again
    assert len(calls(call_log)) == 5


def test_evaluate_after_each_run_and_only(tmp_path, fake_python, monkeypatch, capsys):
    script, call_log = fake_python
    output = tmp_path / "out"
    grid_file = write_grid(tmp_path, SMALL.format(output=output))
    monkeypatch.chdir(tmp_path)
    main(["experiment", str(grid_file), "--python", str(script), "--only", "*capacity-1", "--evaluate", "fid,l1"])
    made = calls(call_log)
    assert [c[2] for c in made] == ["train", "evaluate", "train", "evaluate"]
    assert made[1][made[1].index("--metrics") + 1] == "fid,l1" and "--no-baselines" in made[1]
    rows = {r["run"]: r for r in csv.DictReader(open(output / "results.csv"))}
    assert len(rows) == 4  # the table lists every run of the grid
    assert rows["rm2k,lambda-domain-1,capacity-1"]["protocol_fid"] == "12.5"
    assert rows["rm2k,lambda-domain-1,capacity-2"]["status"] == "new"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["experiment", str(grid_file), "--python", str(script), "--evaluate", "fid,lpips"])
    assert "unknown metric 'lpips'" in capsys.readouterr().err


def test_dry_run_of_an_invalid_model_warns(tmp_path, capsys):
    grid_file = tmp_path / "unknown-model.toml"
    grid_file.write_text((EXAMPLES / "collagan-input-dropout.toml").read_text().replace('model = "collagan"', 'model = "collagan-x"'))
    main(["experiment", str(grid_file), "--dry-run", "--output", str(tmp_path / "x"), "--only", "6"])
    captured = capsys.readouterr()
    assert "train collagan-x" in captured.out and "--input-dropout conservative" in captured.out
    assert "warning:" in captured.err and "unknown model 'collagan-x'" in captured.err
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):
        main(["experiment", str(grid_file), "--output", str(tmp_path / "x")])
    assert "unknown model 'collagan-x'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_interrupted_grid_continues_where_it_stopped(tmp_path, fake_python, monkeypatch):
    script, call_log = fake_python
    output = tmp_path / "out"
    grid_file = write_grid(tmp_path, SMALL.format(output=output))
    command = [sys.executable, "-m", "spriteforge", "experiment", str(grid_file), "--python", str(script)]
    env = {**os.environ, "FAKE_SLEEP": "lambda-domain-1,capacity-1"}
    # SIG_DFL in the child: Python then turns SIGINT into KeyboardInterrupt even when this test runs with
    # SIGINT ignored (as under `cmd &` in a non-interactive shell), which a user's terminal never does.
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    started = output / "runs" / "stargan-paired" / "grid" / "rm2k,lambda-domain-1,capacity-1" / "started"
    deadline = time.time() + 60
    while not started.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert started.exists(), process.communicate(timeout=10)
    process.send_signal(signal.SIGINT)  # only the runner gets it; it passes it on and waits for the save
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    state = json.loads((output / "state.json").read_text())["runs"]
    assert state["rm2k,lambda-domain-1,capacity-1"]["status"] == "interrupted"
    assert len(calls(call_log)) == 2  # the second run was interrupted; nothing after it started

    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    later = calls(call_log)[2:]
    assert "--resume" in later[0] and len(later) == 3
    assert all(r["status"] == "done" for r in csv.DictReader(open(output / "results.csv")))


def test_submitit_local_launcher_runs_cells_at_once(tmp_path, fake_python, monkeypatch, capsys):
    """--launcher local --jobs 2: the cells run as submitit jobs on this machine, two at a time; state,
    resume and the results table work as with the sequential runner."""
    pytest.importorskip("submitit", reason="submitit is the optional [cluster] extra")
    script, call_log = fake_python
    output = tmp_path / "out"
    grid_file = write_grid(tmp_path, SMALL.format(output=output))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_FAIL", "lambda-domain-10,capacity-2")
    with pytest.raises(SystemExit):
        main(["experiment", str(grid_file), "--python", str(script), "--launcher", "local", "--jobs", "2", "--only", "1-3"])
    err = capsys.readouterr().err
    assert err.count("as local job") == 3 and "1 of 3 runs failed" in err and "simulated crash" in err, err
    state = json.loads((output / "state.json").read_text())["runs"]
    assert sorted(entry["status"] for entry in state.values()) == ["done", "done", "failed"]
    assert all(entry.get("job") for entry in state.values())
    assert list((output / "submitit").iterdir())  # submitit's own job folder

    monkeypatch.delenv("FAKE_FAIL")
    main(["experiment", str(grid_file), "--python", str(script), "--launcher", "local", "--jobs", "2"])
    captured = capsys.readouterr()
    assert captured.err.count("finished before, skipped") == 2 and "resuming as local job" in captured.err
    assert all(row["status"] == "done" for row in csv.DictReader(open(output / "results.csv")))
    assert len(calls(call_log)) == 3 + 2  # the failed one resumed, the one not selected before trained


def test_launcher_options_are_checked(tmp_path, capsys):
    grid_file = write_grid(tmp_path, SMALL.format(output=tmp_path / "out"))
    with pytest.raises(SystemExit):
        main(["experiment", str(grid_file), "--jobs", "2"])
    assert "--jobs, --gpus-per-run and --partition apply with --launcher local or slurm" in capsys.readouterr().err
    assert runner.Launcher("slurm", gpus=2).command(["py", "-m", "spriteforge", "train", "collagan"]) == [
        "py", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "spriteforge", "train", "collagan"]
    assert runner.Launcher("local", gpus=1).command(["py", "-m", "spriteforge", "train", "x"]) == ["py", "-m", "spriteforge", "train", "x"]


@pytest.mark.skipif(shutil.which("srun") is not None, reason="this machine is a Slurm node")
def test_slurm_launcher_off_a_cluster_is_one_line(tmp_path, capsys):
    pytest.importorskip("submitit", reason="submitit is the optional [cluster] extra")
    grid_file = write_grid(tmp_path, SMALL.format(output=tmp_path / "out"))
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", str(grid_file), "--launcher", "slurm"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: --launcher slurm:") and "use --launcher local" in err
