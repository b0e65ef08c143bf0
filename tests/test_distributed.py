"""Data-parallel training on the CPU with the gloo backend: N processes at global batch B follow one process
at batch B, a run written by N processes resumes on one, and rank 0 alone writes the run folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from spriteforge import distributed
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer
from conftest import write_split_folder
from test_stargan import _state, tiny_data

SIZES = {"stargan-paired": 32}
"""Sprites of 16×16 (StarGAN's discriminator needs 32), so a step costs little."""
SMALL = {"capacity": 1, "feature_maps": 8, "latent": 8, "embedding": 4}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tiny_config(model: str, root: Path, name: str, **options):
    cls = model_class(model)
    given = {"steps": 3, "batch": 4, "image_size": SIZES.get(model, 16), "log_folder": str(root), "run_string": name, "evaluate_steps": 100,
             "test_images": 0, **{key: value for key, value in SMALL.items() if key.replace("_", "-") in cls.uses}, **options}
    return resolve(model, cls.uses, cls.defaults, given)


def _rank_main(rank: int, world: int, port: int, model: str, root: str, name: str, options: dict, resume: bool, out: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1"})
    torch.set_num_threads(1)
    config = tiny_config(model, Path(root), name, **options)
    run_dir = Path(root) / model / name if resume else None
    trainer = Trainer(config, data=tiny_data(size=config.image_size), resume=run_dir) if resume else Trainer(config, data=tiny_data(size=config.image_size))
    trainer.run()
    torch.save({**outcome(trainer), "run_dir": str(trainer.run_dir), "main": trainer.is_main}, f"{out}.{rank}")
    dist.destroy_process_group()


def run_ranks(world: int, model: str, root: Path, name: str, resume: bool = False, **options) -> list[dict]:
    """Train with `world` gloo processes (what torchrun starts); each rank's final state."""
    out = str(root / f"{name}-state")
    mp.start_processes(_rank_main, args=(world, free_port(), model, str(root), name, options, resume, out), nprocs=world,
                       start_method="spawn")
    return [torch.load(f"{out}.{rank}") for rank in range(world)]


def outcome(trainer: Trainer) -> dict:
    """A finished run: its weights and optimiser states, its networks' weights, and the losses it logged."""
    weights = {f"{n}.{k}": v.clone() for n, net in trainer.model.networks().items() for k, v in net.state_dict().items()}
    return {"state": _state(trainer), "weights": weights, "history": trainer.state.history}


def run_one(model: str, root: Path, name: str, **options) -> dict:
    config = tiny_config(model, root, name, **options)
    trainer = Trainer(config, data=tiny_data(size=config.image_size))
    trainer.run()
    return outcome(trainer)


def assert_same_run(left: dict, right: dict, steps: int, lr: float) -> None:
    """Two runs equal up to float rounding. Their logged losses agree closely (to 1e-5 after the first step,
    1e-3 after the last). Weights: Adam divides by a gradient's own size, so rounding noise in a gradient that
    is zero in exact arithmetic (a bias before a normalisation) flips whole steps of ±lr; a weight may
    then differ by up to 2·lr·steps, but most tensors must agree to a thousandth of their size."""
    for first, second in zip(left["history"], right["history"], strict=True):
        tolerance = 1e-5 if first["step"] == 1 else 1e-3
        for name, value in first.items():
            assert second[name] == pytest.approx(value, rel=tolerance, abs=tolerance), f"step {first['step']} {name}"
    relative = []
    for key, value in left["weights"].items():
        a, b = value.double(), right["weights"][key].double()
        if not b.numel() or not b.is_floating_point():
            continue
        difference = (a - b).abs()
        bound = 2 * lr * steps + 1e-5 * max(1.0, float(b.abs().max()))
        assert float(difference.max()) <= bound, f"{key}: max difference {float(difference.max()):.3g} > {bound:.3g}"
        relative.append(float(difference.mean()) / (float(b.abs().mean()) + 1e-12))
    assert sorted(relative)[len(relative) // 2] < 1e-3, f"median relative difference {sorted(relative)[len(relative) // 2]:.3g}"


@pytest.mark.parametrize("model, options", [
    ("stargan-paired", {"steps": 2}),
    ("collagan", {}),
    ("dcgan", {}),  # BatchNorm over the global batch, dropout masks cut from the global one, label smoothing
    ("wgan-gp", {"d_steps": 2}),  # the gradient penalty's double backward and a --d-steps schedule
])
def test_two_processes_follow_one_at_the_same_global_batch(tmp_path, model, options):
    one = run_one(model, tmp_path, "one", **options)
    ranks = run_ranks(2, model, tmp_path, "two", **options)
    for key, value in ranks[0]["state"].items():  # the ranks hold identical weights and optimiser states
        assert torch.equal(value, ranks[1]["state"][key]), key
    config = tiny_config(model, tmp_path, "x", **options)
    assert_same_run(ranks[0], one, config.steps, config.lr * max(1.0, config.get("ttur", 1.0)))


def test_a_two_process_run_resumes_on_one(tmp_path):
    straight = run_one("dcgan", tmp_path, "straight", steps=4, evaluate_steps=2)
    split = run_ranks(2, "dcgan", tmp_path, "split", steps=2, evaluate_steps=2)  # BatchNorm's running statistics travel too
    config = tiny_config("dcgan", tmp_path, "split", steps=4, evaluate_steps=2)
    resumed = Trainer(config, data=tiny_data(size=config.image_size), resume=Path(split[0]["run_dir"]))
    resumed.run()
    assert_same_run(outcome(resumed), straight, 4, resumed.config.lr)


def test_rank_zero_alone_writes_the_run_folder(tmp_path):
    ranks = run_ranks(2, "dcgan", tmp_path, "folders")
    assert ranks[0]["main"] and not ranks[1]["main"]
    assert ranks[0]["run_dir"] == ranks[1]["run_dir"]
    run_dir = Path(ranks[0]["run_dir"])
    assert (run_dir / "checkpoints").is_dir() and list(run_dir.glob("events.out.tfevents.*"))
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1  # one TensorBoard writer, rank 0's


def test_the_global_batch_must_split_over_the_processes(tmp_path):
    with pytest.raises(Exception) as raised:
        run_ranks(2, "dcgan", tmp_path, "odd", batch=3)
    assert "--batch 3 does not split over 2 processes" in str(raised.value)


def test_one_process_functions_are_the_identity():
    rows = torch.arange(6.0)
    assert not distributed.active() and distributed.world_size() == 1 and distributed.is_main()
    assert distributed.shard(rows) is rows and distributed.global_count(3) == 3
    assert distributed.average_values({"a": 1.5}, True) == ({"a": 1.5}, True)
    torch.manual_seed(0)
    expected = torch.rand(4, 2)
    torch.manual_seed(0)
    assert torch.equal(distributed.rand(4, 2), expected)  # one process draws exactly what it drew before
    distributed.check_batch(3)


def test_a_world_without_torchrun_is_not_started(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    distributed.start(torch.device("cpu"))
    assert not distributed.active()
    with pytest.raises(SpriteForgeError, match="--batch 3 does not split over 2 processes"):
        monkeypatch.setattr(distributed, "world_size", lambda: 2)
        distributed.check_batch(3)


def test_torchrun_trains_from_the_command_line(tmp_path):
    """What a user types: `torchrun … -m spriteforge train …`; rank 0 alone speaks and writes."""
    split_folder = write_split_folder(tmp_path / "sprites", size=16)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "spriteforge",
         "train", "dcgan", "--dataset", str(split_folder), "--steps", "2", "--batch", "2", "--image-size", "16",
         "--feature-maps", "8", "--latent", "8", "--log-folder", str(tmp_path), "--run-string", "cli", "--test-images", "0"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("run folder:") == 1 and result.stderr.count("done: 2 steps") == 1, result.stderr
    assert "2 processes, 1 example each per step" in result.stderr
    assert list(tmp_path.rglob("latest.safetensors"))
