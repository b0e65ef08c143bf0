"""Issue 18: concurrent use, divergence, I/O failures and crafted files lose nothing and end in one line.

Each test reproduces one item of the issue (numbered as there) and fails on the code before the fix.
Models are tiny DCGANs (feature maps 8) on tiny data so that every test runs in seconds on one thread.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from spriteforge import __version__, imageio
from spriteforge.cli import main
from spriteforge.data import registry
from spriteforge.data.folders import CharacterSet
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.options import resolve
from spriteforge.training import checkpoint as ckpt
from spriteforge.training.engine import Trainer

from conftest import write_split_folder
from test_stargan import tiny_data

DCGAN = model_class("dcgan")
TINY = {"steps": 4, "evaluate_steps": 2, "batch": 2, "image_size": 32, "feature_maps": 8, "latent": 8}
TINY_FLAGS = ["--image-size", "32", "--feature-maps", "8", "--latent", "8", "--batch", "2"]


def trainer(tmp_path, name="run", data=None, **given):
    config = resolve("dcgan", DCGAN.uses, DCGAN.defaults, {**TINY, "log_folder": str(tmp_path / "out"), "run_string": name, **given})
    return Trainer(config, data=data or tiny_data())


def cli(argv, capsys):
    """main() in this process: (exit code, stderr)."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
    return code, capsys.readouterr().err


def one_line_error(code, err, *fragments):
    assert code != 0, err
    assert "Traceback" not in err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("error: "), err
    for fragment in fragments:
        assert fragment in last, err
    return last


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished tiny DCGAN run (4 steps, checkpoints at 2 and 4)."""
    folder = tmp_path_factory.mktemp("tiny-run")
    done = trainer(folder, "done")
    done.run()
    return done.run_dir


# -- 1. concurrent first extraction ----------------------------------------------------------------
EXTRACT = """
import sys
from pathlib import Path
from spriteforge.data import registry
registry.NAMED_DATASETS["rm2k"] = registry.NamedDataset("rm2k", "test", "fake.zip", "-", None, "-")
print(registry.ensure_extracted("rm2k", sys.argv[1]))
"""


def test_1_racing_extractions_leave_one_complete_dataset(tmp_path):
    archive = tmp_path / "archives" / "fake.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as bundle:
        for index in range(3000):
            bundle.writestr(f"train/0-back/{index}.png", os.urandom(256))
    data = tmp_path / "data"
    env = {**os.environ, "SPRITEFORGE_ARCHIVES": str(archive.parent), "OMP_NUM_THREADS": "1"}
    racers = [subprocess.Popen([sys.executable, "-c", EXTRACT, str(data)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(3)]
    for racer in racers:
        out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err
    assert registry.count_files(data / "rm2k") == 3000
    assert registry.is_complete(data / "rm2k")
    assert sorted(p.name for p in data.iterdir() if not p.name.endswith(".lock")) == ["rm2k"]  # no staging folder left
    (data / "rm2k" / "train" / "0-back" / "7.png").unlink()  # a damaged store is no longer taken for complete
    assert not registry.is_complete(data / "rm2k")


def test_1_truncated_cache_is_rebuilt(archives, tmp_path):
    from spriteforge.data.loading import load_splits

    first = load_splits("rm2k")["train"].images
    cache = next((Path(os.environ["SPRITEFORGE_DATA_DIR"]) / "rm2k").glob(".cache-train-*.npy"))
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 3])
    again = load_splits("rm2k")["train"].images
    assert np.array_equal(first, again)
    assert np.array_equal(np.load(cache), first)  # and written again whole


def test_1_read_only_data_dir_is_one_line(archives, capsys):
    code, err = cli(["data", "download", "rm2k", "--data-dir", "/sys/spriteforge-test"], capsys)
    one_line_error(code, err, "/sys/spriteforge-test", "writable --data-dir")


# -- 2. exclusive run folders ----------------------------------------------------------------------
def test_2_a_live_run_folder_is_refused(tmp_path):
    live = trainer(tmp_path, "same")
    with pytest.raises(SpriteForgeError, match="another spriteforge process is training in this run folder"):
        trainer(tmp_path, "same")
    with pytest.raises(SpriteForgeError, match="another spriteforge process"):
        Trainer(live.config, resume=live.run_dir, data=tiny_data())
    live.run()
    with pytest.raises(SpriteForgeError, match="a run already exists there"):
        trainer(tmp_path, "same")


def test_2_default_names_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    from spriteforge.training import run_folder

    class Frozen(run_folder.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(run_folder, "datetime", Frozen)
    first, second = trainer(tmp_path, ""), trainer(tmp_path, "")
    assert first.run_dir.name == "20260102-030405" and second.run_dir.name == "20260102-030405-2"


def test_2_two_processes_racing_on_one_run_name(tmp_path):
    sprites = write_split_folder(tmp_path / "sprites", size=32)
    command = [sys.executable, "-m", "spriteforge", "train", "dcgan", *TINY_FLAGS, "--steps", "2", "--evaluate-steps", "2", "--dataset", sprites,
               "--log-folder", str(tmp_path / "out"), "--run-string", "same"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    racers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(racer.wait(timeout=600), racer.stderr.read()) for racer in racers]
    assert sorted(code for code, _ in results) == [0, 1], results
    loser = next(err for code, err in results if code)
    assert "Traceback" not in loser and ("another spriteforge process" in loser or "a run already exists" in loser), loser


# -- 3. divergence ---------------------------------------------------------------------------------
def poison_from(run, step_number):
    """Make the model's weights and losses NaN from step `step_number` (0-based) on."""
    original = run.model.train_step

    def train_step(batch, step, progress):
        losses = original(batch, step, progress)
        if step >= step_number:
            with torch.no_grad():
                next(run.model.generator.parameters()).fill_(float("nan"))
            losses = {key: float("nan") for key in losses}
        return losses

    run.model.train_step = train_step


def test_3_divergence_keeps_the_last_good_checkpoints_and_resume_takes_a_new_lr(tmp_path, capsys):
    run = trainer(tmp_path, "nan", steps=6, checkpoint_steps=1, keep_checkpoints=3)
    poison_from(run, 4)
    with pytest.raises(SpriteForgeError, match=r"training diverged at step 5 .*still holds step 4.*--resume .* --lr \S+"):
        run.run()
    latest = run.run_dir / "checkpoints" / "latest.safetensors"
    tensors, meta = ckpt.read_checkpoint(latest)
    assert meta["step"] == 4 and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    kept = [p.name for p in ckpt.previous_checkpoints(latest)]
    assert kept == ["latest-00000003.safetensors", "latest-00000002.safetensors"]  # --keep-checkpoints 3
    code, err = cli(["train", "--resume", run.run_dir, "--lr", "1e-5"], capsys)
    assert code == 0, err
    record = tomllib.loads((run.run_dir / "configuration.toml").read_text())
    assert record["lr"] == 1e-5
    assert record["resumed"][-1]["changed"] == {"lr": 1e-5} and record["resumed"][-1]["step"] == 4
    _, meta = ckpt.read_checkpoint(latest)
    assert meta["step"] == 6 and meta["config"]["lr"] == 1e-5


def test_3_non_finite_weights_are_never_saved(tmp_path):
    run = trainer(tmp_path, "weights")
    run.run(stop_at=2)
    before = (run.run_dir / "checkpoints" / "latest.safetensors").read_bytes()
    with torch.no_grad():
        next(run.model.discriminator.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(SpriteForgeError, match="diverged.*holds NaN or infinity"):
        run.save_latest()
    assert (run.run_dir / "checkpoints" / "latest.safetensors").read_bytes() == before


# -- 4. kill -9 during the first checkpoint --------------------------------------------------------
def test_4_a_run_killed_before_its_first_checkpoint_resumes_or_restarts(tmp_path, capsys):
    run = trainer(tmp_path, "killed")
    orphan = run.run_dir / "checkpoints" / ".latest.safetensors.k1ll3d00.tmp"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half a checkpoint")
    run.release()  # as kill -9 would
    code, err = cli(["train", "--resume", run.run_dir], capsys)
    assert code == 0, err
    assert "training again from step 0" in err and not orphan.exists()
    assert ckpt.read_checkpoint(run.run_dir / "checkpoints" / "latest.safetensors")[1]["step"] == 4
    other = trainer(tmp_path, "killed-again")
    other.release()
    restarted = trainer(tmp_path, "killed-again")  # the same command again: a clean restart, not "run exists"
    assert restarted.run().step == 4


# -- 5. --out equal to an input --------------------------------------------------------------------
def test_5_out_equal_to_an_input_is_refused_by_every_command(tmp_path, tiny_run, capsys):
    sprite = imageio.save_png(np.full((32, 32, 4), 255, np.uint8), tmp_path / "s.png")
    before = sprite.read_bytes()
    checkpoint = tiny_run / "checkpoints" / "latest.safetensors"
    weights = checkpoint.read_bytes()
    for argv in (["translate", tiny_run, "--front", sprite, "--out", sprite],
                 ["translate", tiny_run, "--front", tmp_path / "x.png", "--palette-from", sprite, "--out", sprite],
                 ["pixelate", sprite, "--out", sprite],
                 ["stylize", tiny_run, sprite, "--out", sprite],
                 ["denoise", tiny_run, sprite, "--out", sprite],
                 ["sample", checkpoint, "--out", checkpoint],
                 ["data", "inspect", sprite, "--preview", sprite]):
        code, err = cli(argv, capsys)
        one_line_error(code, err, "would overwrite the input")
    assert sprite.read_bytes() == before and checkpoint.read_bytes() == weights
    assert main_writes(["pixelate", sprite, "--out", tmp_path / "other.png"], capsys)  # the protection ends with the command
    imageio.save_png(np.zeros((4, 4, 4), np.uint8), sprite)


def main_writes(argv, capsys):
    code, err = cli(argv, capsys)
    assert code == 0, err
    return True


# -- 6. I/O errors ---------------------------------------------------------------------------------
def test_6_read_only_output_folder_is_one_line(tmp_path, tiny_run, capsys):
    one_line_error(*cli(["train", "dcgan", *TINY_FLAGS, "--steps", "1", "--log-folder", "/sys/spriteforge-test"], capsys),
                   "/sys/spriteforge-test", "cannot write")
    sprite = imageio.save_png(np.full((8, 8, 4), 255, np.uint8), tmp_path / "s.png")
    one_line_error(*cli(["pixelate", sprite, "--out", "/sys/spriteforge-test/p.png"], capsys), "/sys/spriteforge-test/p.png")
    one_line_error(*cli(["sample", tiny_run, "-n", "2", "--out", "/sys/spriteforge-test/g.png"], capsys), "cannot write")


def test_6_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run = trainer(tmp_path, "full", checkpoint_steps=1)
    run.run(stop_at=2)
    latest = run.run_dir / "checkpoints" / "latest.safetensors"
    before = latest.read_bytes()

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full_disk)
    with pytest.raises(SpriteForgeError, match=r"latest.safetensors: cannot write \(No space left on device\)"):
        run.run()
    assert latest.read_bytes() == before
    assert not list(latest.parent.glob(".*.tmp"))


# -- 7. long output names --------------------------------------------------------------------------
def test_7_a_250_character_output_name_is_written(tmp_path, capsys):
    sprite = imageio.save_png(np.full((8, 8, 4), 255, np.uint8), tmp_path / "s.png")
    long = tmp_path / ("n" * 246 + ".png")
    assert len(long.name) == 250
    assert main_writes(["pixelate", sprite, "--out", long, "--size", "8"], capsys)
    assert long.is_file()


# -- 8. option ranges ------------------------------------------------------------------------------
@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "nan", "--lr must be a finite number"), ("--beta1", "5", "--beta1 must be in [0, 1)"),
    ("--ttur", "-1", "--ttur must be positive"), ("--checkpoint-steps", "0", "--checkpoint-steps must be positive"),
    ("--checkpoint-steps", "-1", "--checkpoint-steps must be positive"), ("--keep-checkpoints", "0", "--keep-checkpoints must be at least 1 and at most 1000"),
])
def test_8_option_ranges_come_from_the_option_table(flag, value, message, tmp_path, capsys):
    one_line_error(*cli(["train", "dcgan", flag, value, "--log-folder", tmp_path], capsys), message)
    assert not (tmp_path / "dcgan").exists()


# -- 9. TOML that is not UTF-8 ---------------------------------------------------------------------
def test_9_config_and_grid_that_are_not_utf8(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'model = "dcgan"\nexperiment = "caf\xe9"\n')
    one_line_error(*cli(["train", "--config", bad], capsys), "not UTF-8")
    one_line_error(*cli(["experiment", bad, "--dry-run"], capsys), "not UTF-8")


# -- 10. batch larger than the training split --------------------------------------------------------
def test_10_a_batch_larger_than_the_training_split_is_refused(tmp_path):
    with pytest.raises(SpriteForgeError, match=r"--batch 100000 is larger than the training split \(5 characters\)"):
        trainer(tmp_path, batch=100000)
    assert not (tmp_path / "out" / "dcgan" / "playground" / "run").exists()


# -- 11. crafted checkpoints -----------------------------------------------------------------------
def crafted(tiny_run, tmp_path, name, **changes):
    source = tiny_run / "checkpoints" / "latest.safetensors"
    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata())
    for key, value in changes.items():
        if value is None:
            metadata.pop(key)
        else:
            metadata[key] = value
    path = tmp_path / f"{name}.safetensors"
    save_file(load_file(str(source)), str(path), metadata=metadata)
    return path


def test_11_crafted_checkpoints_are_one_line(tmp_path, tiny_run, capsys, monkeypatch):
    built = []
    monkeypatch.setattr(DCGAN, "__init__", lambda self, *a, **k: built.append(a) or (_ for _ in ()).throw(AssertionError("built")))
    cases = {
        "no-config": ({"config": None}, "damaged checkpoint metadata (no config)"),
        "bad-json": ({"shape": "{not json"}, "'shape' is not valid JSON"),
        "step": ({"step": "4.5"}, "step '4.5' is not a whole number"),
        "huge": ({"shape": json.dumps({"domains": 4, "channels": 4, "image_size": 10**6})}, "outside what any model takes"),
        "capacity": ({"config": json.dumps({"model": "dcgan", "feature_maps": 10**7})}, "--feature-maps must be at least 1 and at most 4096"),
        "checksum": ({"checksum": "sha256:" + "0" * 64}, "do not match the checksum"),
    }
    for name, (changes, message) in cases.items():
        path = crafted(tiny_run, tmp_path, name, **changes)
        one_line_error(*cli(["sample", path, "-n", "1", "--out", tmp_path / "g.png"], capsys), message)
    assert not built  # nothing was allocated from a declared shape


# -- 12. memory guard ------------------------------------------------------------------------------
def test_12_huge_outputs_are_refused_before_allocation_naming_the_command_flags(tmp_path, tiny_run, capsys, monkeypatch):
    picture = np.random.default_rng(0).integers(0, 256, (1024, 1024, 4), dtype=np.uint8)
    picture[..., 3] = 255
    sprite = imageio.save_png(picture, tmp_path / "s.png")
    one_line_error(*cli(["pixelate", sprite, "--out", tmp_path / "p.png", "--size", "1024", "--scale", "32"], capsys),
                   "32768x32768", "lower --size or --scale")
    drawn = []
    monkeypatch.setattr("spriteforge.api.latent_vectors", lambda *a: drawn.append(a) or (_ for _ in ()).throw(AssertionError))
    one_line_error(*cli(["sample", tiny_run, "-n", "4096", "--scale", "32", "--out", tmp_path / "g.png"], capsys),
                   "the grid would be", "lower -n or --scale")
    assert not drawn

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("spriteforge.pixelating.pixelate_file", no_memory)
    one_line_error(*cli(["pixelate", sprite, "--out", tmp_path / "p.png"], capsys), "out of memory; lower --size or --scale")


# -- 13. FIFOs and devices -------------------------------------------------------------------------
def test_13_a_fifo_or_device_input_does_not_hang(tmp_path, tiny_run, capsys):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    previous = signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError("hung on a FIFO")))
    signal.alarm(60)
    try:
        one_line_error(*cli(["pixelate", fifo, "--out", tmp_path / "p.png"], capsys), "not a regular file")
        one_line_error(*cli(["pixelate", "/dev/zero", "--out", tmp_path / "p.png"], capsys), "not a regular file")
        one_line_error(*cli(["translate", tiny_run, "--front", fifo, "--out", tmp_path / "t.png"], capsys))
        one_line_error(*cli(["train", "--config", fifo], capsys), "not a regular file")
        one_line_error(*cli(["sample", fifo, "--out", tmp_path / "g.png"], capsys), "not a regular file")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- 14. file modes follow the umask -----------------------------------------------------------------
def test_14_written_files_follow_the_umask(tmp_path, tiny_run):
    previous = os.umask(0o027)
    try:
        path = imageio.save_png(np.zeros((4, 4, 4), np.uint8), tmp_path / "m.png")
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(previous)
    for name in ("configuration.toml", "summary.json", "checkpoints/latest.safetensors", "command-line.txt"):
        assert stat.S_IMODE((tiny_run / name).stat().st_mode) == 0o666 & ~previous, name


# -- 15. versions ----------------------------------------------------------------------------------
def test_15_versions_are_recorded_and_a_different_one_warns_on_resume(tmp_path, tiny_run, monkeypatch, capsys):
    expected = {"spriteforge": __version__, "torch": torch.__version__}
    record = tomllib.loads((tiny_run / "configuration.toml").read_text())["versions"]
    summary = json.loads((tiny_run / "summary.json").read_text())["versions"]
    _, meta = ckpt.read_checkpoint(tiny_run / "checkpoints" / "latest.safetensors")
    for found in (record, summary, meta["versions"]):
        assert expected.items() <= found.items() and found["python"].count(".") == 2
    monkeypatch.setattr("spriteforge.versions.versions", lambda: {"spriteforge": "0.0.1", "torch": "x", "python": "3"})
    old = trainer(tmp_path, "old", steps=2)
    old.run()
    monkeypatch.undo()
    Trainer(old.config, resume=old.run_dir, data=tiny_data()).release()
    assert "written by SpriteForge 0.0.1, this is " + __version__ in capsys.readouterr().err


# -- 16. checksums ---------------------------------------------------------------------------------
def test_16_a_flipped_byte_is_caught_and_resume_falls_back(tmp_path, capsys):
    run = trainer(tmp_path, "flip", checkpoint_steps=1)
    run.run(stop_at=3)
    latest = run.run_dir / "checkpoints" / "latest.safetensors"
    data = bytearray(latest.read_bytes())
    data[-3] ^= 0x10  # inside the last tensor's bytes
    latest.write_bytes(bytes(data))
    with pytest.raises(SpriteForgeError, match="do not match the checksum"):
        ckpt.read_checkpoint(latest)
    resumed = Trainer(run.config, resume=run.run_dir, data=tiny_data())
    assert resumed.state.step == 2
    assert "using the previous checkpoint latest-00000002.safetensors" in capsys.readouterr().err
    resumed.release()
