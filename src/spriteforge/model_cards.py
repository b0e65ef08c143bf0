"""`spriteforge models`: the bundled models with their cards, the user's trained runs, and packing a run
into a small shareable weights file (what the bundled default is)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from spriteforge.errors import SpriteForgeError
from spriteforge.imageio import atomic_write
from spriteforge.inference import BUNDLED, BUNDLED_FOLDER, find_checkpoint
from spriteforge.models import model_class
from spriteforge.options import BY_KEY, drop_replaced
from spriteforge.training import checkpoint as ckpt
from spriteforge.training.run_folder import RunFolder
from spriteforge.versions import versions

# Options that describe the machine a run was trained on, not the model: reset to their defaults in packed weights.
MACHINE_OPTIONS = ("data_dir", "log_folder", "device", "memory_fraction", "profile", "verbose")


def card_path(name: str) -> Path:
    return BUNDLED_FOLDER / Path(BUNDLED[name]).with_suffix(".md").name


def bundled_models() -> list[dict]:
    """One row per bundled model: name, model type, parameters, file size, the card's first line."""
    rows = []
    for name in BUNDLED:
        path = BUNDLED_FOLDER / BUNDLED[name]
        row = {"name": name, "file": str(path), "available": path.is_file()}
        if path.is_file():
            tensors, meta = ckpt.read_checkpoint(path)
            row.update({"model": meta["model"], "parameters": sum(t.numel() for t in tensors.values()),
                        "megabytes": round(path.stat().st_size / 2**20, 1), "step": meta["step"]})
        card = card_path(name)
        row["summary"] = card.read_text(encoding="utf-8").splitlines()[0].lstrip("# ") if card.is_file() else ""
        rows.append(row)
    return rows


def user_models(root: Path) -> list[dict]:
    """Run folders below `root` that hold a usable checkpoint, with what their summary.json says."""
    rows: list[dict] = []
    if not root.is_dir():
        return rows
    runs = [run.path for run in RunFolder.below(root)]
    for run in runs:
        row = {"name": str(run)}
        try:
            _, meta = ckpt.read_checkpoint(find_checkpoint(run))
            row["model"] = meta["model"]
            row["step"] = meta["step"]
        except SpriteForgeError as error:
            row["model"] = f"unreadable ({error})"
        summary = RunFolder(run).summary
        if summary.is_file():
            try:
                data = json.loads(summary.read_text(encoding="utf-8"))
                row["test_l1"] = data.get("test_l1")
            except (ValueError, OSError):
                pass
        rows.append(row)
    return rows


def show_card(name: str) -> str:
    """The model card of bundled model `name`, or of a run folder (its configuration and summary)."""
    if name in BUNDLED:
        card = card_path(name)
        if not card.is_file():
            raise SpriteForgeError(f"{card}: the model card of '{name}' is missing from this installation; reinstall spriteforge")
        return card.read_text(encoding="utf-8")
    run = Path(name).expanduser()
    if not run.is_dir():
        raise SpriteForgeError(f"{name}: neither a bundled model ({', '.join(BUNDLED)}) nor a run folder")
    parts = [f"# {run}"]
    folder = RunFolder(run)
    for path in (folder.command_line, folder.summary, folder.configuration):
        if path.is_file():
            parts += [f"\n## {path.name}\n", path.read_text(encoding="utf-8")]
    return "\n".join(parts)


def pack(location: str | Path, out: Path, half: bool = True) -> Path:
    """Write the inference networks of a run or checkpoint to `out` (fp16 unless `half` is False),
    without optimiser state or machine-specific options: a file to ship or share."""
    source = find_checkpoint(location)
    tensors, meta = ckpt.read_checkpoint(source)

    networks = set(model_class(meta["model"]).inference_networks)
    if any(key.startswith("network/generator_ema/") for key in tensors):  # --ema-decay: the average draws, ship it
        networks.add("generator_ema")
    kept = {key: (value.half() if half and value.is_floating_point() else value).contiguous()
            for key, value in tensors.items() if key.startswith("network/") and key.split("/")[1] in networks}
    return write_weights(out, kept, meta, shareable_config(meta["config"]))


def shareable_config(recorded: dict) -> dict:
    """A run's recorded configuration without the options that describe the machine it ran on."""
    return {key: (BY_KEY[key].default if key in MACHINE_OPTIONS else value) for key, value in drop_replaced(recorded, recorded=True).items()}


def write_weights(out: Path, tensors: dict, meta: dict, config: dict) -> Path:
    """Write inference weights with the metadata `load_for_inference` reads (no optimiser state), atomically."""
    if out.suffix != ".safetensors":
        raise SpriteForgeError(f"{out}: packed weights are a .safetensors file; name it {out.with_suffix('.safetensors').name}")
    metadata = {"format": ckpt.FORMAT, "model": meta["model"], "config": json.dumps(config), "shape": json.dumps(meta["shape"]),
                "step": str(meta["step"]), "optimizers": json.dumps({}), "extra": json.dumps(meta["extra"]),
                "checksum": ckpt.tensor_checksum(tensors), "versions": json.dumps(versions())}
    with atomic_write(out) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    return out


# What must agree for trained turnarounds to draw as one ensemble (their candidate shifts may differ).
ENSEMBLE_KEYS = ("capacity", "generator_blocks", "image_size", "domains")


def combine(locations: list[str | Path], out: Path, half: bool = True) -> tuple[Path, int]:
    """Write trained turnaround models (runs, checkpoints or packed weights; an ensemble adds its members)
    as one ensemble (`TurnaroundEnsemble`): its first member's drawn colours, all members' choices.
    Returns the file and its number of members."""
    if len(locations) < 2:
        raise SpriteForgeError("combine needs two models or more (runs, checkpoints or .safetensors files)")
    read = []
    for location in locations:
        path = find_checkpoint(location)
        tensors, meta = ckpt.read_checkpoint(path)
        if meta["model"] != "turnaround":
            raise SpriteForgeError(f"{path}: a {meta['model']} model; only turnaround models combine into an ensemble")
        read.append((path, tensors, meta, shareable_config(meta["config"])))
    first_path, _, first_meta, first_config = read[0]
    members: list[tuple[dict, int]] = []  # per member: its generator tensors, its candidate shifts
    for path, tensors, meta, config in read:
        differing = [key for key in ENSEMBLE_KEYS if config.get(key) != first_config.get(key)]
        if differing or meta["shape"] != first_meta["shape"]:
            raise SpriteForgeError(f"{path}: its {', '.join(differing or ['views, channels or image size'])} differ from {first_path}'s; "
                                   "an ensemble's members share their shape (train them with the same --capacity and --generator-blocks)")
        prefix = "network/generator/"
        own = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
        if config.get("member_shifts"):  # an ensemble already: its members join one by one
            for index, shifts in enumerate(config["member_shifts"]):
                head = f"members.{index}."
                members.append(({key[len(head):]: value for key, value in own.items() if key.startswith(head)}, shifts))
        else:
            members.append((own, config.get("candidate_shifts", 0)))
    tensors = {f"network/generator/members.{index}.{key}": (value.half() if half and value.is_floating_point() else value).contiguous()
               for index, (own, _) in enumerate(members) for key, value in own.items()}
    config = dict(first_config, member_shifts=[shifts for _, shifts in members],
                  candidate_shifts=max(shifts for _, shifts in members))
    return write_weights(out, tensors, first_meta, config), len(members)
