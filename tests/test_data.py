import shutil
import zipfile

import numpy as np
import pytest

from spriteforge import VIEWS
from spriteforge.data import registry
from spriteforge.data.folders import CharacterSet, read_folder
from spriteforge.data.loading import load_data
from spriteforge.errors import SpriteForgeError
from spriteforge.imageio import save_png

from conftest import random_sprite


def test_split_layout_pairs_by_name(split_folder):
    splits = read_folder(split_folder, VIEWS, 64)
    assert splits["train"].images.shape == (6, 4, 64, 64, 4)
    assert splits["test"].images.shape == (2, 4, 64, 64, 4)
    assert splits["train"].names[0].endswith("train/0")


def test_flat_layout_split_is_deterministic_and_seedable(tmp_path):
    rng = np.random.default_rng(0)
    for domain in range(4):
        for index in range(20):
            save_png(random_sprite(rng), tmp_path / "flat" / str(domain) / f"{index}.png")
    first = read_folder(tmp_path / "flat", VIEWS, 64, seed=3)
    again = read_folder(tmp_path / "flat", VIEWS, 64, seed=3)
    other = read_folder(tmp_path / "flat", VIEWS, 64, seed=4)
    assert (len(first["train"]), len(first["test"])) == (17, 3)
    assert first["test"].names == again["test"].names
    assert first["test"].names != other["test"].names
    assert not set(first["train"].names) & set(first["test"].names)


def test_domains_rename_and_select(split_folder):
    renamed = read_folder(split_folder, ("n", "w", "s", "e"), 64)  # same count: taken by index
    assert renamed["train"].images.shape[1] == 4
    picked = read_folder(split_folder, ("front", "right"), 64)  # names present: selected in that order
    full = read_folder(split_folder, VIEWS, 64)
    assert np.array_equal(picked["train"].images[:, 0], full["train"].images[:, 2])


def test_missing_domain_folder(split_folder):
    shutil.rmtree(split_folder / "train" / "3-right")
    with pytest.raises(SpriteForgeError, match="3-right missing"):
        read_folder(split_folder, VIEWS, 64)


def test_mismatched_names_and_counts_name_the_files(split_folder):
    (split_folder / "train" / "1-left" / "5.png").rename(split_folder / "train" / "1-left" / "9.png")
    with pytest.raises(SpriteForgeError, match=r"1-left: files do not pair.*9\.png"):
        read_folder(split_folder, VIEWS, 64)
    (split_folder / "train" / "1-left" / "9.png").unlink()
    with pytest.raises(SpriteForgeError, match="5 vs 6 files"):
        read_folder(split_folder, VIEWS, 64)


def test_non_png_and_wrong_size_are_rejected(split_folder):
    (split_folder / "test" / "0-back" / "notes.txt").write_text("x")
    with pytest.raises(SpriteForgeError, match=r"notes\.txt: not a PNG"):
        read_folder(split_folder, VIEWS, 64)
    (split_folder / "test" / "0-back" / "notes.txt").unlink()
    with pytest.raises(SpriteForgeError, match="is 64x64 but 32x32 is expected"):
        read_folder(split_folder, VIEWS, 32)


def test_half_split_layout_and_missing_folder(tmp_path, split_folder):
    shutil.rmtree(split_folder / "test")
    with pytest.raises(SpriteForgeError, match="needs both train/ and test/"):
        read_folder(split_folder, VIEWS, 64)
    with pytest.raises(SpriteForgeError, match="no such folder"):
        read_folder(tmp_path / "nowhere", VIEWS, 64)


def test_validation_is_carved_from_the_end_of_train(split_folder):
    data = load_data([str(split_folder)], validation_fraction=0.34)
    assert (len(data.train), len(data.validation), len(data.test)) == (3, 3, 2)
    assert data.validation.names[-1].endswith("train/5")


def test_unknown_dataset_name():
    with pytest.raises(SpriteForgeError, match="unknown dataset 'rm3k'"):
        load_data(["rm3k"])


def test_offline_without_archive_says_where_to_put_it(monkeypatch, tmp_path):
    monkeypatch.setenv("SPRITEFORGE_ARCHIVES", str(tmp_path / "empty"))
    with pytest.raises(SpriteForgeError, match=r"put rpg-maker-2000\.zip in a folder named by \$SPRITEFORGE_ARCHIVES"):
        registry.ensure_extracted("rm2k", tmp_path / "data", allow_download=False)


def test_hostile_zip_is_refused(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as bundle:
        bundle.writestr("../escape.txt", "x")
    with pytest.raises(SpriteForgeError, match="escape the target"):
        registry.extract(bad, tmp_path / "out", None)
    assert not (tmp_path / "escape.txt").exists()


def test_checksum_mismatch_is_refused(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("train/0-back/0.png", "x")
    with pytest.raises(SpriteForgeError, match="does not match the expected"):
        registry.extract(archive, tmp_path / "out", "0" * 64)


def test_rm2k_from_archive(archives):
    data = load_data(["rm2k"])
    assert (len(data.train), len(data.validation), len(data.test)) == (165, 19, 32)
    images = data.train.images
    assert images.shape[1:] == (4, 64, 64, 4)
    assert set(np.unique(images[..., 3])) <= {0, 255}
    assert (images[images[..., 3] == 0] == 0).all()
    pooled = load_data(["rm2k", "rm2k"], validation_fraction=0)
    assert len(pooled.train) == 184  # repeats dropped


def test_test_partition_override(archives):
    data = load_data(["rm2k"], test_sources=["rm2k"])
    assert len(data.test) == 32


def test_synthetic_is_the_default():
    data = load_data([])
    assert data.sources == ["synthetic"]
    assert len(data.train) + len(data.validation) + len(data.test) == 480
    assert data.train.images.shape[1:] == (4, 64, 64, 4)


def test_a_block_subset_is_a_view_and_a_list_subset_a_copy():
    images = np.arange(5 * 2 * 2 * 2 * 4, dtype=np.uint8).reshape(5, 2, 2, 2, 4)
    characters = CharacterSet(images, [f"c{i}" for i in range(5)])
    block = characters.subset(range(1, 4))  # the validation carve: no copy of the pooled data
    assert np.shares_memory(block.images, images) and block.names == ["c1", "c2", "c3"]
    assert (block.images == images[1:4]).all()
    picked = characters.subset([4, 0])
    assert not np.shares_memory(picked.images, images) and picked.names == ["c4", "c0"]
    assert (picked.images == images[[4, 0]]).all()
