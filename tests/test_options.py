import pytest

from spriteforge.models import model_class
from spriteforge.options import read_toml, resolve
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
