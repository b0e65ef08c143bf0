"""`spriteforge train MODEL --help` shows MODEL's flags with their defaults; `--print-config` prints the resolved TOML."""

from __future__ import annotations

import tomllib

from click.testing import CliRunner

from spriteforge.cli import cli
from spriteforge.models import model_class
from spriteforge.options import BY_NAME


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_help_of_one_model_lists_only_its_flags_with_defaults():
    text = invoke("train", "dcgan", "--help").output
    assert "Options of dcgan" in text
    assert "--latent" in text and "--ema-decay" in text and "--lr" in text and "--print-config" in text
    assert "--lambda-l1" not in text and "--generator-blocks" not in text and "--input-dropout" not in text
    flat = " ".join(text.split())
    for flag, kind in (("latent", "INTEGER"), ("lr", "FLOAT"), ("lr-decay", "[")):
        default = model_class("dcgan").defaults.get(flag, BY_NAME[flag].default)
        assert f"[default: {default}]" in flat.split(f"--{flag} {kind}")[1].split(" --")[0], flag  # the model's own defaults
    pix2pix = invoke("train", "pix2pix", "-h").output
    assert "--lambda-l1" in pix2pix and "--latent" not in pix2pix


def test_help_without_a_model_lists_every_flag():
    for args in (("train", "--help"), ("train", "--steps", "3", "--help")):  # a flag's value is no model name
        text = invoke(*args).output
        assert "--latent" in text and "--lambda-l1" in text and "--print-config" in text


def test_print_config_prints_the_resolved_toml_and_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "dcgan", "--steps", 3, "--latent", 16, "--log-folder", tmp_path / "runs", "--print-config")
    assert result.exit_code == 0, result.output
    config = tomllib.loads(result.output)
    assert config["model"] == "dcgan" and config["steps"] == 3 and config["latent"] == 16
    assert "lambda-l1" not in config and "lr" in config
    assert not (tmp_path / "runs").exists()
