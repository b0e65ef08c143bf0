"""The experiment-grid runner: `spriteforge experiment GRID.toml`.

A grid file (TOML) names a model, default options, a search grid and per-dataset overrides:

    model = "stargan-paired"
    output = "experiments/stargan-selection"   # logs, state, results and (by default) run folders
    sort = "validation_l1"                     # results column to sort by (default validation_l1)
    evaluate = "fid,kid,l1"                    # optional: run `spriteforge evaluate` after each run

    [defaults]                                 # options of `spriteforge train` (flag names)
    steps = 80000
    adhoc = ["callback-evaluate-l1", "save-model"]   # boolean flags, emitted as --flag
    experiment = "@dataset,&lambda-domain,&capacity"

    [grid]                                     # every key a list of values; runs = Cartesian product
    lambda-domain = [1.0, 10.0]
    capacity = [1, 2, 4]
    adhoc = [["no-hue"], ["no-tran", "no-hue"]]  # alternatives, each one or several flags

    [datasets.rm2k]                            # one run set per dataset, with its own options
    adhoc = ["no-tran"]
    [datasets.all]                             # `all` = tiny + rm2k + rmxp + rmvx + misc, pooled

Semantics follow the original system's runner: runs = datasets × the product of the grid lists;
per run, defaults ← grid values ← the dataset's options (scalars replace, lists such as `adhoc`
are concatenated). String values may reference others, resolved in dependency order: `@name` is the
value of `name`, `&name` is `name-value`; special names `@model`, `@dataset`, `@adhoc` (the flags,
comma-joined) and `@network` (none, source-aware, conditional or both). Leading '-' and trailing ','
are trimmed.

Each run is `python -m spriteforge train MODEL --flag value …` in a subprocess, one after the other,
with its run folder pinned (`--log-folder/--experiment/--run-string`, defaults: OUTPUT/runs, the
grid's name, the run's name) and its output in OUTPUT/logs/<run>.log. A run whose folder holds
`summary.json` is finished and never repeated; one with only `checkpoints/latest.safetensors` was
interrupted and continues with `--resume`. OUTPUT/state.json records every attempt;
OUTPUT/results.csv and results.md hold each run's final metrics, sorted.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import itertools
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from spriteforge.data import registry
from spriteforge.errors import SpriteForgeError
from spriteforge.evaluation.protocol import parse_metrics
from spriteforge.imageio import atomic_write
from spriteforge.models import model_class
from spriteforge.options import BY_KEY, BY_NAME, load_toml_file, option_key, option_name, resolve
from spriteforge.training.run_folder import RunFolder

TOP_LEVEL = {"model", "output", "sort", "evaluate", "defaults", "grid", "datasets"}
SPECIAL = {"model", "dataset", "adhoc", "network"}
PINNED = ("log-folder", "experiment", "run-string")
REFERENCE = re.compile(r"([@&])([A-Za-z0-9_\-]+)")
SUMMARY_COLUMNS = ("steps", "best_step", "validation_l1", "test_l1")
EVALUATION_COLUMNS = ("fid", "kid", "l1")


@dataclass
class Run:
    index: int
    name: str
    params: dict[str, Any]
    varying: dict[str, Any]
    command: list[str] = field(default_factory=list)
    run_dir: Path = Path()

    @property
    def log_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.,+=-]", "_", self.name)


@dataclass
class Grid:
    path: Path
    model: str
    output: Path
    sort: str
    evaluate: str | None
    runs: list[Run]


# -- reading and expanding ------------------------------------------------------------------------
def read_grid(path: str | Path, output: str | Path | None = None, python: str | None = None) -> Grid:
    """Parse a grid file and expand it into runs with their commands (no validation against models)."""
    path = Path(path)
    raw = load_toml_file(path, "grid file")
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        raise SpriteForgeError(f"{path}: unknown top-level key '{unknown[0]}'; a grid has {', '.join(sorted(TOP_LEVEL))}")
    defaults = _table(raw, "defaults", path)
    grid = _table(raw, "grid", path)
    datasets = _table(raw, "datasets", path)
    model = defaults.pop("model", None) if "model" not in raw else raw["model"]
    if not isinstance(model, str) or not model:
        raise SpriteForgeError(f"{path}: name the model to train, e.g. model = \"stargan-paired\" at the top")
    for where, table in [("defaults", defaults), ("grid", grid)] + [(f"datasets.{k}", v) for k, v in datasets.items()]:
        if not isinstance(table, dict):
            raise SpriteForgeError(f"{path}: [{where}] must be a table of options")
        for key in table:
            _check_key(key, f"{path}: [{where}]")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SpriteForgeError(f"{path}: [grid] {key} must be a non-empty list of values to try, e.g. {key} = [{_toml(values)}]")
    evaluate = raw.get("evaluate", None)
    if evaluate is True:
        evaluate = "fid,kid,l1"
    elif evaluate is False:
        evaluate = None
    elif evaluate is not None and not isinstance(evaluate, str):
        raise SpriteForgeError(f"{path}: evaluate must be true, false or a metrics string like \"fid,l1\"")
    if evaluate:
        try:
            parse_metrics(evaluate)
        except SpriteForgeError as error:
            raise SpriteForgeError(f"{path}: evaluate = \"{evaluate}\": {error}") from None
    out = Path(output) if output else Path(raw.get("output", Path("experiments") / path.stem))
    runs = expand(path, model, defaults, grid, datasets, out, python or sys.executable)
    return Grid(path, model, out, str(raw.get("sort", "validation_l1")), evaluate, runs)


def _table(raw: dict, name: str, path: Path) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise SpriteForgeError(f"{path}: '{name}' must be a table ([{name}])")
    return dict(value)


def _check_key(key: str, where: str) -> None:
    if key == "adhoc":
        return
    if key == "model":
        raise SpriteForgeError(f"{where}: put model = \"…\" at the top of the grid file (one model per grid)")
    if option_name(key) not in BY_NAME:
        raise SpriteForgeError(f"{where}: unknown option '{key}' (see spriteforge train --help)")


def _toml(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, list) else ", ".join(json.dumps(v) for v in value)


def _merge(base: dict, extra: dict) -> dict:
    """Scalars replace; lists are concatenated (repeats dropped)."""
    merged = dict(base)
    for key, value in extra.items():
        key = option_name(key)
        if isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        else:
            merged[key] = list(value) if isinstance(value, list) else value
    return merged


def _flags(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def expand(path: Path, model: str, defaults: dict, grid: dict, datasets: dict, output: Path, python: str) -> list[Run]:
    axes = [(option_name(key), values) for key, values in grid.items()]
    dataset_keys = list(datasets) or [None]
    runs: list[Run] = []
    folders: dict[Path, str] = {}
    for dataset in dataset_keys:
        for choice in itertools.product(*[values for _, values in axes]):
            params = _merge({}, defaults)
            varying: dict[str, Any] = {}
            if dataset is not None:
                varying["dataset"] = dataset
            for (key, _), value in zip(axes, choice):
                if key == "adhoc":
                    value = _flags(value)
                params = _merge(params, {key: value})
                varying[key] = value
            if dataset is not None:
                own = _merge({}, datasets[dataset])
                if "dataset" not in own:
                    own["dataset"] = registry.expand([dataset]) if dataset == "all" else [dataset]
                params = _merge(params, own)
            if "adhoc" in params:
                params["adhoc"] = _flags(params["adhoc"])
            where = f"{path}: run {len(runs) + 1}"
            params = resolve_templates(params, model, dataset, where)
            name = params.get("run-string") or _default_name(varying) or f"run-{len(runs) + 1}"
            params.setdefault("log-folder", str(output / "runs"))
            params.setdefault("experiment", path.stem)
            params.setdefault("run-string", name)
            run = Run(len(runs) + 1, str(params["run-string"]), params, varying)
            run.command = train_command(python, model, params, where)
            run.run_dir = RunFolder.parent(params["log-folder"], params.get("model-name") or model, params["experiment"]) / run.name
            if run.run_dir in folders:
                raise SpriteForgeError(
                    f"{path}: runs '{folders[run.run_dir]}' and '{run.name}' would share the folder {run.run_dir}; "
                    f"add the differing options to experiment or run-string (e.g. &capacity)"
                )
            folders[run.run_dir] = run.name
            runs.append(run)
    return runs


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, list):
        return "+".join(_format(v) for v in value)
    return str(value)


def _default_name(varying: dict) -> str:
    parts = []
    for key, value in varying.items():
        if key == "dataset":
            parts.append(str(value))
        elif key == "adhoc":
            parts.append("+".join(value) if value else "no-flags")
        else:
            parts.append(f"{key}-{_format(value)}")
    return ",".join(parts)


def _special(name: str, params: dict, model: str, dataset: str | None) -> str:
    if name == "model":
        return model
    if name == "dataset":
        if dataset is not None:
            return dataset
        chosen = list(params.get("dataset", [])) + [f for f in params.get("adhoc", []) if f in registry.NAMED_DATASETS]
        chosen += [k for k in registry.NAMED_DATASETS if params.get(k) is True]
        return "+".join(dict.fromkeys(chosen)) or "synthetic"
    if name == "adhoc":
        return ",".join(params.get("adhoc", []))
    flags = set(params.get("adhoc", [])) | {k for k, v in params.items() if v is True}
    source, conditional = "source-domain-aware-generator" in flags, "conditional-discriminator" in flags
    return {(False, False): "none", (True, False): "source-aware", (False, True): "conditional", (True, True): "both"}[(source, conditional)]


def _longest_known(run: str, known: set[str]) -> tuple[str, str]:
    """Split a reference's characters into (name, rest): the longest prefix that names a parameter."""
    for end in range(len(run), 0, -1):
        if run[:end] in known:
            return run[:end], run[end:]
    return run, ""


def resolve_templates(params: dict, model: str, dataset: str | None, where: str) -> dict:
    """Replace @name/&name in string values, in dependency order (a cycle is an error)."""
    known = set(params) | SPECIAL
    templated = {k: v for k, v in params.items() if isinstance(v, str) and REFERENCE.search(v)}
    dependencies = {}
    for key, text in templated.items():
        names = [_longest_known(match.group(2), known)[0] for match in REFERENCE.finditer(text)]
        for name in names:
            if name not in known:
                raise SpriteForgeError(f"{where}: {key} = \"{text}\" refers to '{name}', which is not an option of this run")
        dependencies[key] = {n for n in names if n in templated and n != key} | ({key} if key in names else set())
    resolved = dict(params)
    done: set[str] = set()

    def substitute(match: re.Match) -> str:
        name, rest = _longest_known(match.group(2), known)
        value = _special(name, resolved, model, dataset) if name in SPECIAL else _format(resolved[name])
        return (value if match.group(1) == "@" else f"{name}-{value}") + rest

    while len(done) < len(templated):
        ready = [k for k in templated if k not in done and dependencies[k] <= done]
        if not ready:
            cycle = sorted(set(templated) - done)
            raise SpriteForgeError(f"{where}: the references among {', '.join(cycle)} form a cycle; break it")
        for key in ready:
            text = REFERENCE.sub(substitute, resolved[key])
            resolved[key] = re.sub(r",{2,}", ",", text).lstrip("-").rstrip(",")
            done.add(key)
    return resolved


def train_command(python: str, model: str, params: dict, where: str) -> list[str]:
    command = [python, "-m", "spriteforge", "train", model]
    for key, value in params.items():
        if key == "model":
            continue
        if key == "adhoc":
            for flag in value:
                option = BY_NAME.get(flag)
                if option is None or option.kind is not bool:
                    raise SpriteForgeError(f"{where}: adhoc flag '{flag}' is not a boolean option of spriteforge train")
                command.append(f"--{flag}")
            continue
        option = BY_NAME[key]
        if option.kind is bool:
            if not isinstance(value, bool):
                raise SpriteForgeError(f"{where}: {key} is a flag; write {key} = true or false")
            if value:
                command.append(f"--{key}")
            elif not key.startswith("no-"):
                command.append(f"--no-{key}")
        elif option.kind is list:
            values = [_format(v) for v in (value if isinstance(value, list) else [value])]
            if key == "dataset":
                for item in values:
                    command += ["--dataset", item]
            else:
                command += [f"--{key}", ",".join(values)]
        else:
            command += [f"--{key}", _format(value)]
    return command


def validate(grid: Grid) -> None:
    """Check every run's options against the model, as `spriteforge train` would, before anything runs."""
    cls = model_class(grid.model)
    for run in grid.runs:
        given = {}
        for key, value in run.params.items():
            if key in ("adhoc", "model"):
                continue
            given[option_key(key)] = value
        for flag in run.params.get("adhoc", []):
            given[option_key(flag)] = True
        given = {k: (v if BY_KEY[k].kind is not list or isinstance(v, list) else [v]) for k, v in given.items()}
        try:
            resolve(grid.model, cls.uses, cls.defaults, given, cls.refuses)
        except SpriteForgeError as error:
            raise SpriteForgeError(f"{grid.path}: run '{run.name}': {error}") from None


# -- selecting ------------------------------------------------------------------------------------
def select(runs: list[Run], only: list[str] | tuple[str, ...] | None) -> list[Run]:
    """`--only 3`, `--only 2-5,7` (numbers as listed by --dry-run) or `--only 'rm2k,*capacity-4*'` (name patterns)."""
    if not only:
        return runs
    chosen: dict[int, Run] = {}
    for selection in only:
        parts = [selection] if not re.fullmatch(r"[\d,\s-]+", selection) else [p for p in re.split(r"[,\s]+", selection) if p]
        for part in parts:
            if re.fullmatch(r"\d+(-\d+)?", part):
                low, _, high = part.partition("-")
                numbers = range(int(low), int(high or low) + 1)
                matched = [r for r in runs if r.index in numbers]
            else:
                matched = [r for r in runs if fnmatch.fnmatchcase(r.name, part) or r.name == part]
            if not matched:
                raise SpriteForgeError(f"--only {part}: matches no run; use numbers 1-{len(runs)} or a pattern of the names --dry-run lists")
            chosen.update({r.index: r for r in matched})
    return [chosen[i] for i in sorted(chosen)]


# -- running --------------------------------------------------------------------------------------
def status(run: Run) -> str:
    return RunFolder(run.run_dir).status()


def resume_command(run: Run, python: str) -> list[str]:
    command = [python, "-m", "spriteforge", "train", "--resume", str(run.run_dir)]
    for key in ("steps", "epochs"):
        if key in run.params:
            command += [f"--{key}", _format(run.params[key])]
    return command


def evaluate_command(run: Run, python: str, metrics: str) -> list[str]:
    return [python, "-m", "spriteforge", "evaluate", str(run.run_dir), "--metrics", metrics, "--no-baselines",
            "--out", str(RunFolder(run.run_dir).evaluation / "grid")]


class State:
    """OUTPUT/state.json: per run the last attempt (status, exit code, times, command, log)."""

    def __init__(self, path: Path, grid_path: Path):
        self.path = path
        self.data: dict[str, Any] = {"grid": str(grid_path), "runs": {}}
        if path.is_file():
            try:
                self.data = json.loads(path.read_text())
            except json.JSONDecodeError:
                raise SpriteForgeError(f"{path}: damaged state file; delete it (finished runs are still found by their summary.json)") from None

    def update(self, run: Run, **values) -> None:
        entry = self.data["runs"].setdefault(run.name, {})
        entry.update({"run_dir": str(run.run_dir), **values})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path) as temporary:
            temporary.write_text(json.dumps(self.data, indent=2) + "\n")


def _run_logged(command: list[str], log: Path) -> int:
    """Run a command with its output appended to `log`. The child has its own session, so a Ctrl-C (or
    SIGTERM) reaches only the runner, which passes one SIGINT on and waits for the child to save."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as handle:
        handle.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n")
        handle.flush()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, preexec_fn=_default_sigint)
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)  # `train` saves its checkpoint on SIGINT
            try:
                process.wait(timeout=600)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise


def _default_sigint() -> None:
    """In the child before exec: SIGINT handled again even if the runner was started with it ignored
    (as `cmd &` in a script does), so the child can save its checkpoint when the runner stops it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _TerminateAsInterrupt:
    """While running, SIGTERM behaves like Ctrl-C (the current run is stopped cleanly and resumable)."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _last_error(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith(("error:", "Error:"))]
    return (errors or lines or [""])[-1][:300]


def _record_outcome(state: State, run: Run, code: int, seconds: float, reason: str, prefix: str,
                    echo: Callable[[str], None]) -> bool:
    """Record how a run's training ended (failed unless it exited 0 and finished); True when it finished."""
    if code != 0 or status(run) != "done":
        state.update(run, status="failed", returncode=code, seconds=seconds)
        echo(f"{prefix}: failed (exit {code}) after {seconds:.0f} s: {reason}")
        return False
    state.update(run, status="done", returncode=0, seconds=seconds, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    echo(f"{prefix}: done in {seconds / 60:.1f} min")
    return True


def execute(grid: Grid, runs: list[Run], python: str | None = None, echo: Callable[[str], None] = print,
            evaluate: str | None = None, launcher: Launcher | None = None) -> list[str]:
    """Run the selected runs (skipping finished ones): in order here, or several at once through `launcher`
    (submitit: local processes or Slurm jobs). Returns the names of failed runs."""
    python = python or sys.executable
    evaluate = evaluate if evaluate is not None else grid.evaluate
    with _TerminateAsInterrupt():
        if launcher is None:
            return _execute(grid, runs, python, echo, evaluate)
        return _execute_launched(grid, runs, python, echo, evaluate, launcher)


@dataclass
class Launcher:
    """Where `experiment` runs its cells when not one after another here: submitit's `local` executor
    (processes on this machine, `jobs` at once) or `slurm` (one job per cell, `jobs` queued at once).
    `gpus` per cell; with more than one a cell trains under torchrun, one process per GPU."""

    kind: str  # "local" or "slurm"
    jobs: int = 1
    gpus: int = 0
    minutes: int = 24 * 60
    partition: str | None = None

    def executor(self, folder: Path):
        try:
            import submitit  # an optional extra: pip install -e ".[cluster]"
        except ImportError:
            raise SpriteForgeError(f"--launcher {self.kind} needs submitit: pip install -e \".[cluster]\"") from None
        executor: Any
        if self.kind == "local":
            executor = submitit.LocalExecutor(folder=str(folder))
            parameters: dict[str, Any] = {"timeout_min": self.minutes, "gpus_per_node": self.gpus, "tasks_per_node": 1, "nodes": 1}
        else:
            try:
                executor = submitit.SlurmExecutor(folder=str(folder))
            except RuntimeError as error:  # no srun/sbatch here
                raise SpriteForgeError(f"--launcher slurm: {error} Run the grid on a Slurm login node, or use --launcher local") from None
            parameters = {"time": self.minutes, "gpus_per_node": self.gpus, "ntasks_per_node": 1, "nodes": 1,
                          "job_name": "spriteforge", "array_parallelism": self.jobs}
            if self.partition:
                parameters["partition"] = self.partition
        executor.update_parameters(**parameters)
        return executor

    def command(self, command: list[str]) -> list[str]:
        """A cell's command: as is, or under torchrun with one process per GPU (`python -m spriteforge` →
        `python -m torch.distributed.run --standalone --nproc-per-node N -m spriteforge`)."""
        if self.gpus <= 1 or command[1:3] != ["-m", "spriteforge"] or "train" not in command[3:4]:
            return command
        return [command[0], "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(self.gpus), *command[1:]]


def run_cell(commands: list[list[str]], log: str) -> int:
    """One cell inside a submitit job: its commands in order (train, then evaluate), output to `log`;
    the first non-zero exit code, or 0."""
    for command in commands:
        code = _run_logged(command, Path(log))
        if code != 0:
            return code
    return 0


def _execute_launched(grid: Grid, runs: list[Run], python: str, echo: Callable[[str], None], evaluate: str | None,
                      launcher: Launcher) -> list[str]:
    """Submit the unfinished runs, at most `launcher.jobs` at once; this process alone writes state.json."""
    state = State(grid.output / "state.json", grid.path)
    executor = launcher.executor(grid.output / "submitit")
    waiting: list[tuple[str, Run, str, list[list[str]]]] = []
    active: dict[Any, tuple[str, Run, Path, float]] = {}
    failed: list[str] = []
    for position, run in enumerate(runs, 1):
        prefix = f"[{position}/{len(runs)}] {run.name}"
        current = status(run)
        evaluated = (RunFolder(run.run_dir).evaluation / "grid" / "evaluation.json").is_file()
        if current == "done" and (not evaluate or evaluated):
            echo(f"{prefix}: finished before, skipped")
            state.update(run, status="done")
            continue
        commands = [] if current == "done" else [launcher.command(resume_command(run, python) if current == "interrupted" else run.command)]
        if evaluate and not evaluated:
            commands.append(evaluate_command(run, python, evaluate))
        waiting.append((prefix, run, current, commands))
    try:
        while waiting or active:
            while waiting and len(active) < launcher.jobs:
                prefix, run, current, commands = waiting.pop(0)
                log = grid.output / "logs" / f"{run.log_name}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                try:
                    job = executor.submit(run_cell, commands, str(log))
                except Exception as error:  # sbatch refused it (partition, limits, …): one line, the grid stops
                    lines = str(error).strip().splitlines()
                    state.update(run, status="failed", returncode=-1)
                    raise SpriteForgeError(f"{run.name}: the {launcher.kind} launcher could not submit it "
                                           f"({lines[-1][:300] if lines else type(error).__name__}); fix and run the same command again") from None
                action = "evaluating" if current == "done" else "resuming" if current == "interrupted" else "training"
                echo(f"{prefix}: {action} as {launcher.kind} job {job.job_id} (log: {log})")
                state.update(run, status="running", command=shlex.join(commands[0]), log=str(log),
                             started=time.strftime("%Y-%m-%d %H:%M:%S"), job=str(job.job_id))
                active[job] = (prefix, run, log, time.time())
            for job in [job for job in active if job.done()]:
                prefix, run, log, started = active.pop(job)
                seconds = round(time.time() - started, 1)
                try:
                    code = job.result()
                except Exception as error:  # the job itself failed (killed, timed out, node lost)
                    code, reason = -1, str(error).strip().splitlines()[-1][:300] if str(error).strip() else type(error).__name__
                else:
                    reason = _last_error(log)
                if not _record_outcome(state, run, code, seconds, reason, prefix, echo):
                    failed.append(run.name)
            if active:
                time.sleep(0.5)
    except KeyboardInterrupt:
        for job, (prefix, run, _, started) in active.items():
            job.cancel(check=False)  # submitit interrupts the job; `train` saves its checkpoint on the signal
            state.update(run, status="done" if status(run) == "done" else "interrupted", seconds=round(time.time() - started, 1))
            echo(f"{prefix}: interrupted; run the same command again to continue where it stopped")
        write_results(grid)
        raise
    return failed


def _execute(grid: Grid, runs: list[Run], python: str, echo: Callable[[str], None], evaluate: str | None) -> list[str]:
    state = State(grid.output / "state.json", grid.path)
    failed = []
    for position, run in enumerate(runs, 1):
        log = grid.output / "logs" / f"{run.log_name}.log"
        prefix = f"[{position}/{len(runs)}] {run.name}"
        current = status(run)
        if current == "done":
            echo(f"{prefix}: finished before, skipped")
            state.update(run, status="done")
        else:
            command = resume_command(run, python) if current == "interrupted" else run.command
            echo(f"{prefix}: {'resuming' if current == 'interrupted' else 'training'} (log: {log})")
            started = time.time()
            state.update(run, status="running", command=shlex.join(command), log=str(log), started=time.strftime("%Y-%m-%d %H:%M:%S"))
            try:
                code = _run_logged(command, log)
            except KeyboardInterrupt:
                state.update(run, status="done" if status(run) == "done" else "interrupted", seconds=round(time.time() - started, 1))
                write_results(grid)
                echo(f"{prefix}: interrupted; run the same command again to continue where it stopped")
                raise
            if not _record_outcome(state, run, code, round(time.time() - started, 1), _last_error(log), prefix, echo):
                failed.append(run.name)
                continue
        if evaluate and not (RunFolder(run.run_dir).evaluation / "grid" / "evaluation.json").is_file():
            echo(f"{prefix}: evaluating ({evaluate})")
            code = _run_logged(evaluate_command(run, python, evaluate), log)
            if code != 0:
                echo(f"{prefix}: evaluation failed (exit {code}): {_last_error(log)}")
                failed.append(run.name)
    return failed


# -- results --------------------------------------------------------------------------------------
def collect(grid: Grid) -> list[dict]:
    rows = []
    for run in grid.runs:
        row: dict[str, Any] = {"#": run.index, "run": run.name, "status": status(run)}
        row.update({k: _format(v) for k, v in run.varying.items()})
        summary = RunFolder(run.run_dir).summary
        if summary.is_file():
            try:
                values = json.loads(summary.read_text())
            except json.JSONDecodeError:
                values = {}
            row.update({k: values.get(k) for k in SUMMARY_COLUMNS})
        evaluation = RunFolder(run.run_dir).evaluation / "grid" / "evaluation.json"
        if evaluation.is_file():
            try:
                report = json.loads(evaluation.read_text())
                first = next(iter(report["systems"].values()))
                means = first["by_missing"]["all"]
                row.update({f"protocol_{k}": means.get(k) for k in EVALUATION_COLUMNS if k in means})
            except (json.JSONDecodeError, KeyError, StopIteration):
                pass
        row["folder"] = str(run.run_dir)
        rows.append(row)
    return rows


def sort_rows(rows: list[dict], key: str) -> list[dict]:
    def order(row):
        value = row.get(key)
        return (not isinstance(value, (int, float)) or value != value, value if isinstance(value, (int, float)) else 0, row["#"])

    return sorted(rows, key=order)


def write_results(grid: Grid) -> tuple[Path, Path, str]:
    """OUTPUT/results.csv and results.md: every run of the grid, sorted by the grid's `sort` column."""
    rows = sort_rows(collect(grid), grid.sort)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns and k != "folder"]
    columns.append("folder")
    grid.output.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    csv_path, md_path = grid.output / "results.csv", grid.output / "results.md"
    with atomic_write(csv_path) as temporary:
        temporary.write_text(buffer.getvalue())

    def cell(value):
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
        return str(value)

    shown = [c for c in columns if c != "folder"]
    lines = [f"Results of {grid.path} ({len(rows)} runs, sorted by {grid.sort})", "",
             "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in shown) + " |" for row in rows]
    markdown = "\n".join(lines) + "\n"
    with atomic_write(md_path) as temporary:
        temporary.write_text(markdown)
    return csv_path, md_path, markdown


def dry_run_lines(grid: Grid, runs: list[Run], python: str | None = None) -> list[str]:
    python = python or sys.executable
    lines = []
    for run in runs:
        current = status(run)
        command = resume_command(run, python) if current == "interrupted" else run.command
        lines.append(f"# {run.index} {run.name} [{current}]")
        lines.append(shlex.join(command))
    return lines
