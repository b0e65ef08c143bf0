import typing

import pytest

from spriteforge.models import model_class
from spriteforge.options import OPTIONS, Config, read_toml, resolve
from spriteforge.errors import SpriteForgeError

STARGAN = model_class("stargan-paired")


def resolve_stargan(**given):
    return resolve("stargan-paired", STARGAN.uses, STARGAN.defaults, given)


def test_model_defaults_layer_under_given_values():
    config = resolve_stargan(lambda_l1=5.0)
    assert config.lambda_l1 == 5.0
    assert config.lambda_gp == 10.0 and config.lr == 2e-4 and config.conditional_discriminator
    assert config.batch == 4 and config.beta1 == 0.5


def test_flag_unused_by_the_model_is_rejected():
    with pytest.raises(SpriteForgeError, match="--lambda-ssim not used by stargan-paired"):
        resolve_stargan(lambda_ssim=1.0)
    with pytest.raises(SpriteForgeError, match="--input-dropout, --temperature not used"):
        resolve_stargan(input_dropout="original", temperature=1.0)


def test_bad_values_are_rejected():
    with pytest.raises(SpriteForgeError, match="--lr-decay must be one of"):
        resolve_stargan(lr_decay="constant-than-linear")  # the original's silent typo
    with pytest.raises(SpriteForgeError, match="not both"):
        resolve_stargan(steps=10, epochs=2)
    with pytest.raises(SpriteForgeError, match="--batch must be positive"):
        resolve_stargan(batch=0)
    with pytest.raises(SpriteForgeError, match="add --callback-evaluate-l1"):
        resolve_stargan(callback_early_stop=True)
    with pytest.raises(SpriteForgeError, match="--input-channels must equal"):
        resolve_stargan(input_channels=3)


def test_toml_config_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('model = "stargan-paired"\nlambda-l1 = 50\n"no-tran" = true\ndomains = ["back", "left", "front", "right"]\n')
    values = read_toml(path)
    assert values["lambda_l1"] == 50.0 and values["no_tran"] is True and values["model"] == "stargan-paired"
    (tmp_path / "bad.toml").write_text("lambda-l2 = 1\n")
    with pytest.raises(SpriteForgeError, match="unknown option 'lambda-l2'"):
        read_toml(tmp_path / "bad.toml")
    (tmp_path / "broken.toml").write_text("lambda-l1 = \n")
    with pytest.raises(SpriteForgeError, match="not valid TOML"):
        read_toml(tmp_path / "broken.toml")
    (tmp_path / "typed.toml").write_text('batch = "four"\n')
    with pytest.raises(SpriteForgeError, match="--batch expects int"):
        read_toml(tmp_path / "typed.toml")


def test_config_attributes_are_typed_from_the_option_table():
    """`Config` declares every option of the table, in its order, with the table's type (None default: optional)."""
    def expected(option):
        kind = list[str] if option.kind is list else option.kind
        return kind | None if option.default is None else kind

    declared = typing.get_type_hints(Config)
    assert declared.pop("model") is str
    wanted = {option.key: expected(option) for option in OPTIONS}
    block = "\n".join(f"    {key}: {kind}".replace("<class '", "").replace("'>", "") for key, kind in wanted.items())
    assert list(declared.items()) == list(wanted.items()), f"options.Config's annotations differ from OPTIONS; they should read:\n{block}"
    for option in OPTIONS:  # the defaults themselves have the declared type
        assert option.default is None or isinstance(option.default, option.kind), option.name


def test_config_reads_options_as_attributes_and_stays_a_dict():
    config = resolve_stargan(capacity=2)
    assert config.capacity == 2 and config["capacity"] == 2 and isinstance(config, dict)
    assert "latent" not in config  # a flag stargan does not use is absent, and reading it says which
    with pytest.raises(AttributeError, match="latent"):
        config.latent
    assert config.to_toml_dict()["capacity"] == 2
