"""--device, --memory-fraction and --precision: one resolution for every command, mixed precision for every model."""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys

import pytest
import torch
from PIL import Image

from spriteforge.devices import autocast, cpu_has_bf16_arithmetic, limit_memory, mps_available, resolve_device
from spriteforge.errors import SpriteForgeError
from spriteforge.options import config_from_meta
from spriteforge.models import MODELS, model_class
from spriteforge.options import BY_KEY, read_toml, resolve
from spriteforge.training.engine import Trainer
from test_cli import assert_clean_error, run_cli
from test_stargan import _state, tiny_data
from tiny_runs import tiny_run

CPU = torch.device("cpu")
NO_GPU = not torch.cuda.is_available() and not mps_available()
SMALL = {"capacity": 1, "feature_maps": 8, "latent": 8, "embedding": 4, "generator_blocks": 1, "upsample_layers": 2,
         "style_size": 4, "discriminator_scales": 2}
"""The smallest widths each model takes (only the options a model uses are given to it)."""


# -- devices -------------------------------------------------------------------------------------
@pytest.mark.skipif(not NO_GPU, reason="auto picks the GPU on this machine")
def test_auto_is_the_cpu_without_a_gpu():
    assert resolve_device("auto") == CPU and resolve_device(None) == CPU and resolve_device(" CPU ") == CPU


@pytest.mark.parametrize("name, message", [
    ("tpu", "not a device; use auto, cpu, cuda, cuda:N or mps"),
    ("cuda:x", "not a device"),
    ("meta", "runs on cpu, cuda, cuda:N or mps"),
])
def test_unknown_devices_are_one_line(name, message):
    with pytest.raises(SpriteForgeError, match=message):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_names_the_fix(name):
    with pytest.raises(SpriteForgeError, match=f"--device {name}: no CUDA GPU is available here; use --device cpu"):
        resolve_device(name)


@pytest.mark.skipif(mps_available(), reason="this machine has Apple's MPS")
def test_mps_without_apple_silicon_names_the_fix():
    with pytest.raises(SpriteForgeError, match="MPS is not available here"):
        resolve_device("mps")


def test_memory_fraction_is_for_gpus():
    limit_memory(CPU, 1.0)  # no cap: fine anywhere
    with pytest.raises(SpriteForgeError, match="caps a GPU's memory; this run is on the CPU"):
        limit_memory(CPU, 0.5)
    with pytest.raises(SpriteForgeError, match=r"must be in \(0, 1\]"):
        limit_memory(CPU, 0)


def test_replaced_flags_are_refused_with_their_replacement(tmp_path):
    result = run_cli("train", "dcgan", "--gpu", "1", "--steps", "1", cwd=tmp_path)
    assert_clean_error(result, "--gpu N was replaced by --device cuda:N")
    result = run_cli("train", "dcgan", "--vram", "4000", "--steps", "1", cwd=tmp_path)
    assert_clean_error(result, "--vram MB was replaced by --memory-fraction")
    (tmp_path / "old.toml").write_text("gpu = 1\n")
    with pytest.raises(SpriteForgeError, match="old.toml: --gpu N was replaced by --device cuda:N"):
        read_toml(tmp_path / "old.toml")
    (tmp_path / "recorded.toml").write_text('model = "dcgan"\ngpu = 0\nvram = 0\nlr = 0.001\n')  # what older runs wrote
    assert read_toml(tmp_path / "recorded.toml") == {"model": "dcgan", "lr": 0.001}


def test_a_checkpoint_of_an_older_run_reads_with_todays_device_options(tmp_path):
    config = config_from_meta({"model": "dcgan", "config": {"model": "dcgan", "gpu": 1, "vram": 512, "lr": 0.001}}, tmp_path / "x")
    assert "gpu" not in config and "vram" not in config
    assert (config.device, config.precision, config.memory_fraction, config.lr) == ("auto", "32", 1.0, 0.001)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_every_model_running_command_resolves_device_alike(tmp_path):
    sprite = tmp_path / "front.png"
    Image.fromarray(tiny_data(size=64).test.images[0, 2]).save(sprite)
    sampler, cleaner = tiny_run(tmp_path / "s", "dcgan"), tiny_run(tmp_path / "a", "autoencoder")
    for command in (["translate", "--front", sprite, "--out", tmp_path / "o.png"], ["sample", sampler, "--out", tmp_path / "o.png"],
                    ["evaluate", "baseline:copy", "--dataset", "synthetic", "--out", tmp_path / "e"],
                    ["denoise", cleaner, sprite, "--out", tmp_path / "d.png"], ["train", "dcgan", "--steps", "1"]):
        assert_clean_error(run_cli(*command, "--device", "cuda:2", cwd=tmp_path), "--device cuda:2: no CUDA GPU is available here")
    for command in ("translate", "sample", "evaluate", "stylize", "denoise", "train"):  # one definition, one help text
        assert "auto (a CUDA GPU, else Apple's MPS, else the CPU)" in " ".join(run_cli(command, "--help").stdout.split())


# -- precision -----------------------------------------------------------------------------------
def tiny_model(name: str, **given):
    cls = model_class(name)
    options = {key: value for key, value in SMALL.items() if key in BY_KEY and BY_KEY[key].name in cls.uses}
    config = resolve(name, cls.uses, cls.defaults, {"batch": 2, **options, **given}, cls.refuses)
    domains = 4 if cls.data_kind == "characters" else 2
    size = 64 if name.startswith("pix2pix") or name == "fastgan" else 32
    torch.manual_seed(0)
    model = cls(config, domains, 4) if name in ("biggan", "deep-biggan") else cls(config, domains, 4, size)
    shape = model.image_size if isinstance(model.image_size, tuple) else (model.image_size, model.image_size)
    batch = torch.rand(2, domains, 4, *shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return model, batch


def steps(model, batch, precision: str, count: int = 2) -> list[dict[str, float]]:
    model.use_grad_scalers(CPU if precision == "16-mixed" else None)
    losses = []
    for step in range(count):
        torch.manual_seed(step)
        with autocast(CPU, precision):
            losses.append(model.train_step(batch, step, 0.1))
    return losses


@pytest.mark.parametrize("name", MODELS)
def test_bf16_trains_every_model_with_finite_losses_close_to_float32(name):
    model, batch = tiny_model(name)
    reference = steps(model, batch, "32", count=1)[0]
    model, batch = tiny_model(name)
    losses = steps(model, batch, "bf16")
    for values in losses:
        assert values and all(math.isfinite(value) for value in values.values()), values
    for key, value in reference.items():  # the same step in bf16: the same losses to bf16's precision
        assert losses[0][key] == pytest.approx(value, rel=0.1, abs=0.05), key


@pytest.mark.parametrize("name", ["wgan-gp", "collagan"])
def test_fp16_with_loss_scaling_keeps_the_gradient_penalty_and_palettes_finite(name):
    given = {"palette_quantization": True} if name == "collagan" else {}
    model, batch = tiny_model(name, **given)
    losses = steps(model, batch, "16-mixed", count=3)
    assert all(math.isfinite(value) for values in losses for value in values.values())
    assert set(model.grad_scalers) == set(model.optimizers)
    assert all(scaler.get_scale() > 0 for scaler in model.grad_scalers.values())


def _trainer(tmp_path, run, **given):
    cls = model_class("wgan-gp")
    config = resolve("wgan-gp", cls.uses, cls.defaults, {"steps": 4, "evaluate_steps": 2, "batch": 2, "image_size": 32,
                                                         "feature_maps": 8, "latent": 8, "test_images": 0,
                                                         "log_folder": str(tmp_path), "run_string": run, **given})
    return Trainer(config, data=tiny_data())


def test_fp16_resume_is_bit_identical_loss_scales_included(tmp_path):
    straight = _trainer(tmp_path, "straight", precision="16-mixed")
    straight.run()
    interrupted = _trainer(tmp_path, "interrupted", precision="16-mixed")
    interrupted.run(stop_at=2)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data())
    assert set(resumed.model.grad_scalers) == {"generator", "discriminator"}
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    for name, scaler in straight.model.grad_scalers.items():
        assert resumed.model.grad_scalers[name].state_dict() == scaler.state_dict()


def test_the_training_data_lives_on_the_device(tmp_path):
    trainer = _trainer(tmp_path, "device", device="cpu", precision="bf16")
    assert trainer.train_images.device == trainer.device == CPU and trainer.train_images.dtype == torch.uint8
    state = trainer.run()
    assert state.step == 4


@pytest.mark.parametrize("failure", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                     RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")])
def test_out_of_memory_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, failure):
    trainer = _trainer(tmp_path, "oom", checkpoint_steps=2)
    step = trainer.model.train_step

    def fails_at_step_three(batch, number, progress):
        if number == 2:
            raise failure
        return step(batch, number, progress)

    monkeypatch.setattr(trainer.model, "train_step", fails_at_step_three)
    with pytest.raises(SpriteForgeError) as raised:
        trainer.run()
    message = str(raised.value)
    assert message.startswith("out of memory at step 3 on cpu (--batch 2, --precision 32, --image-size 32)")
    assert "checkpoints/latest.safetensors still holds step 2" in message and "lower --batch" in message
    assert f"--resume {trainer.run_dir} --precision bf16" in message
    assert trainer.folder.read_latest()[2]["step"] == 2


def test_other_runtime_errors_are_not_called_out_of_memory(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, "bug")
    monkeypatch.setattr(trainer.model, "train_step", lambda *args: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        trainer.run()


FAULTS = r"""
import json, resource, sys, torch
from spriteforge.devices import keep_freed_memory

def faults():
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.empty(64 << 18).fill_(1.0)  # 64 MiB, freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

faults()
before = faults()
took = keep_freed_memory()
faults()  # the heap grows to fit the block once
print(json.dumps({"before": before, "took": took, "after": faults()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_keep_freed_memory_reuses_freed_blocks_instead_of_faulting_fresh_pages():
    result = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, timeout=120, check=True)
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    pages = 5 * (64 << 20) // 4096
    assert counts["took"]
    assert counts["before"] > 0.9 * pages  # glibc maps each 64 MiB block afresh: every page faults every time
    assert counts["after"] < 0.3 * pages  # then freed blocks are reused (at most one of the five faults afresh)


def test_system_malloc_environment_variable_leaves_the_allocator_alone(monkeypatch):
    from spriteforge.devices import keep_freed_memory

    monkeypatch.setenv("SPRITEFORGE_SYSTEM_MALLOC", "1")
    assert keep_freed_memory() is False


def test_every_command_keeps_freed_memory(monkeypatch, capsys):
    import spriteforge.devices
    from spriteforge.cli import main

    calls = []
    monkeypatch.setattr(spriteforge.devices, "keep_freed_memory", lambda: calls.append(True) or True)
    main(["models"])
    assert calls == [True] and "default" in capsys.readouterr().out


@pytest.mark.parametrize("capabilities, hardware", [({"avx512_bf16": True, "amx_bf16": False}, True), ({"amx_bf16": True}, True),
                                                    ({"avx512_bf16": False, "amx_bf16": False}, False), ({}, False)])
def test_a_cpu_with_bf16_arithmetic_hints_at_bf16_when_training_at_32(tmp_path, monkeypatch, capsys, capabilities, hardware):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert cpu_has_bf16_arithmetic() is hardware
    _trainer(tmp_path, "fp32", device="cpu").run()
    assert ("hint: this CPU computes bfloat16 in hardware; --precision bf16" in capsys.readouterr().err) is hardware
    _trainer(tmp_path, "bf16", device="cpu", precision="bf16").run()
    assert "hint:" not in capsys.readouterr().err  # already in bf16: nothing to suggest
