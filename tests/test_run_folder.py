"""RunFolder: one place for a run's paths, its status and its checkpoints; resume reads the checkpoint once."""

from __future__ import annotations

from pathlib import Path

from spriteforge.training import checkpoint as ckpt
from spriteforge.training.run_folder import RunFolder

from test_faults import cli, trainer


def test_paths_status_and_the_weights_to_use(tmp_path):
    folder = RunFolder(tmp_path / "run")
    assert folder.latest == tmp_path / "run" / "checkpoints" / "latest.safetensors"
    assert folder.best == tmp_path / "run" / "checkpoints" / "best.safetensors"
    assert folder.exported == tmp_path / "run" / "models" / "generator.safetensors"
    assert (folder.configuration.name, folder.summary.name) == ("configuration.toml", "summary.json")
    assert folder.status() == "new" and not folder.has_checkpoint() and folder.inference_checkpoint() is None
    for path in (folder.latest, folder.exported):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    assert folder.status() == "interrupted" and folder.has_checkpoint() and folder.inference_checkpoint() == folder.exported
    folder.summary.write_text("{}")
    assert folder.status() == "done"
    assert RunFolder.containing(folder.latest) == folder == RunFolder.containing(folder.path)
    assert RunFolder.below(tmp_path) == [folder]


def test_resume_reads_the_checkpoint_once(tmp_path, monkeypatch, capsys):
    run = trainer(tmp_path, "once", steps=4)
    run.run(stop_at=2)
    reads = []
    read = ckpt.read_checkpoint
    monkeypatch.setattr(ckpt, "read_checkpoint", lambda path, *args, **kwargs: reads.append(Path(path).name) or read(path, *args, **kwargs))
    code, err = cli(["train", "--resume", run.run_dir, "--steps", "3"], capsys)
    assert code == 0, err
    assert reads == ["latest.safetensors"]  # the CLI reads it for the run's options; the Trainer restores from that
    _, meta = read(RunFolder(run.run_dir).latest)
    assert meta["step"] == 3
