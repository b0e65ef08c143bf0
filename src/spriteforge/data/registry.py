"""Named datasets: where their archives come from and how to get an extracted copy on disk.

Resolution order for a named dataset: an extracted copy in the data directory, then an archive in
the directory named by SPRITEFORGE_ARCHIVES, then a download (checksum-verified). Archives of the
commercial sets are never shipped with SpriteForge.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from tqdm import tqdm

from spriteforge.errors import SpriteForgeError
from spriteforge.imageio import atomic_write

ARCHIVES_VARIABLE = "SPRITEFORGE_ARCHIVES"
DATA_DIR_VARIABLE = "SPRITEFORGE_DATA_DIR"
MAX_EXTRACTED_BYTES = 512 * 1024**2
MAX_ENTRIES = 200_000


@dataclass(frozen=True)
class NamedDataset:
    name: str
    title: str
    archive: str
    url: str
    sha256: str | None
    """None where only a git blob id is published: the first verified download is recorded instead."""
    licence: str


NAMED_DATASETS: dict[str, NamedDataset] = {
    dataset.name: dataset
    for dataset in [
        NamedDataset(
            "tiny", "TinyHero (LPC art, disjoint 776/136 split)", "tiny-hero.zip",
            "https://github.com/fegemo/multi-domain/raw/main/datasets/tiny-hero.zip",
            "7434420b7e4f8d2cb32eb35773e3d66d7535794b869a9b061d910dd3216399f9",
            "CC-BY-SA 3.0 / GPL 3.0",
        ),
        NamedDataset(
            "rm2k", "RPG Maker 2000 RTP characters", "rpg-maker-2000.zip",
            "https://github.com/fegemo/multi-domain/raw/main/datasets/rpg-maker-2000.zip",
            "143359206fcdd81f1fdd87cb31d71dad5202d626d032231473d309c735f80971",
            "commercial, research use only",
        ),
        NamedDataset(
            "rmxp", "RPG Maker XP RTP characters", "rpg-maker-xp.zip",
            "https://github.com/fegemo/multi-domain/raw/main/datasets/rpg-maker-xp.zip",
            "188d8b2524b4b53eb0fa45e6d682bfb4dfb04d2bf6d03a76c2cd2d8a53332525",
            "commercial, research use only",
        ),
        NamedDataset(
            "rmvx", "RPG Maker VX Ace RTP characters", "rpg-maker-vxace.zip",
            "https://github.com/fegemo/multi-domain/raw/main/datasets/rpg-maker-vxace.zip",
            "eca276189b121e0e65ceb30aa029956656f6df93240981b0ef8c4b4e10315f10",
            "commercial, research use only",
        ),
        NamedDataset(
            "misc", "Miscellaneous (Game Character Hub and others, 12,372 characters)", "miscellaneous.zip",
            "https://github.com/fegemo/multi-domain/raw/main/datasets/miscellaneous.zip",
            "887f9733dbb8f75d6cc32b51d8f1cb2c8a0690011819da850ec1c35b1c6eff01",
            "none stated, research use only",
        ),
    ]
}
POOLED = {"all": ("tiny", "rm2k", "rmxp", "rmvx", "misc")}


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """Where extracted datasets live: --data-dir, else $SPRITEFORGE_DATA_DIR, else the user cache."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(DATA_DIR_VARIABLE):
        return Path(os.environ[DATA_DIR_VARIABLE]).expanduser()
    return Path(platformdirs.user_cache_dir("spriteforge")) / "datasets"


def expand(names: list[str]) -> list[str]:
    """Expand 'all' into the five named datasets, keeping order and dropping repeats."""
    result: list[str] = []
    for name in names:
        for part in POOLED.get(name, (name,)):
            if part not in result:
                result.append(part)
    return result


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


COMPLETE = ".complete"
"""Written last into an extracted dataset: the archive's name and the number of files it holds."""
LOCK_WAIT_SECONDS = 3600


def ensure_extracted(name: str, directory: str | os.PathLike | None = None, allow_download: bool = True) -> Path:
    """Return the folder holding the extracted dataset, extracting or downloading it first if needed.

    Processes sharing a data directory take turns (an exclusive lock per dataset): one extracts into
    its own staging folder, checks the file count against the archive and only then marks the folder
    complete; the others wait and use its result.
    """
    dataset = NAMED_DATASETS[name]
    root = data_dir(directory)
    target = root / name
    if is_complete(target):
        return target
    from filelock import FileLock, Timeout

    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(root / f".{name}.lock"), timeout=LOCK_WAIT_SECONDS)
        lock.acquire()
    except Timeout:
        raise SpriteForgeError(f"{root / name}: another process has been extracting it for an hour; "
                               f"stop it or delete {root / f'.{name}.lock'}") from None
    except OSError as error:
        raise SpriteForgeError(f"--data-dir {root}: cannot write there ({error.strerror or error}); "
                               f"pass a writable --data-dir (or set ${DATA_DIR_VARIABLE})") from None
    try:
        if is_complete(target):  # another process finished while this one waited
            return target
        archive = find_archive(dataset)
        if archive is None:
            if not allow_download:
                raise SpriteForgeError(_missing_message(dataset, root))
            archive = download(dataset, root)
        extract(archive, target, dataset.sha256)
    finally:
        lock.release()
    return target


def is_complete(target: Path) -> bool:
    """Whether `target` is a finished extraction: its marker is there and, when the marker records a
    file count (all extractions since it was added), that many files are there too."""
    marker = target / COMPLETE
    try:
        lines = marker.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    recorded = next((line.split()[1] for line in lines if line.startswith("files ") and len(line.split()) == 2), None)
    if recorded is None or not recorded.isdigit():
        return True  # an older marker: trusted as before
    return count_files(target) == int(recorded)


def count_files(folder: Path) -> int:
    """Files below `folder` whose names do not start with a dot (the marker, caches and temporary files do)."""
    total = 0
    for _, _, files in os.walk(folder):
        total += sum(1 for name in files if not name.startswith("."))
    return total


def find_archive(dataset: NamedDataset) -> Path | None:
    folder = os.environ.get(ARCHIVES_VARIABLE)
    if folder:
        candidate = Path(folder).expanduser() / dataset.archive
        if candidate.is_file():
            return candidate
    return None


def _missing_message(dataset: NamedDataset, root: Path) -> str:
    return (
        f"dataset '{dataset.name}' not found: put {dataset.archive} in a folder named by "
        f"${ARCHIVES_VARIABLE} (or download it from {dataset.url}); extracted data goes to {root}"
    )


def download(dataset: NamedDataset, root: Path) -> Path:
    """Download the archive with a progress bar and verify its checksum before use."""
    root.mkdir(parents=True, exist_ok=True)
    destination = root / dataset.archive
    if destination.is_file():
        return destination
    try:
        with urllib.request.urlopen(dataset.url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with atomic_write(destination) as temporary, open(temporary, "wb") as handle, tqdm(
                total=total, unit="B", unit_scale=True, desc=f"downloading {dataset.archive}"
            ) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    handle.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise SpriteForgeError(f"{_missing_message(dataset, root)} (download failed: {error})") from None
    if dataset.sha256 is not None and sha256_of(destination) != dataset.sha256:
        destination.unlink()
        raise SpriteForgeError(f"{dataset.url}: the downloaded file does not match its published SHA-256; it was deleted, try again later")
    return destination


def extract(archive: Path, target: Path, expected_sha256: str | None) -> None:
    """Extract a dataset zip safely: checksum, no path escaping the target, bounded size."""
    if expected_sha256 is not None:
        actual = sha256_of(archive)
        if actual != expected_sha256:
            raise SpriteForgeError(
                f"{archive}: checksum {actual[:12]}… does not match the expected {expected_sha256[:12]}…; "
                f"the file is corrupt or a different version: delete it and download it again"
            )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))  # this process's own
    except OSError as error:
        raise SpriteForgeError(f"{target.parent}: cannot extract there ({error.strerror or error}); pass a writable --data-dir") from None
    try:
        expected = safe_extract(archive, staging)
        found = count_files(staging)
        if found != expected:
            raise SpriteForgeError(f"{archive}: extracted {found} files of the {expected} it holds; nothing was kept, try again")
        (staging / COMPLETE).write_text(f"{archive.name}\nfiles {expected}\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except zipfile.BadZipFile as error:
        raise SpriteForgeError(f"{archive}: not a valid zip archive ({error}); download it again") from None
    except OSError as error:
        raise SpriteForgeError(f"{target}: extraction failed ({error.strerror or error}); nothing was kept") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def safe_extract(archive: Path, destination: Path) -> int:
    """Unzip refusing absolute paths, '..' escapes, links, too many entries and too many bytes;
    returns the number of files the archive holds (to check against what is on disk)."""
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    with zipfile.ZipFile(archive) as bundle:
        entries = bundle.infolist()
        if len(entries) > MAX_ENTRIES:
            raise SpriteForgeError(f"{archive}: {len(entries)} entries is more than a dataset should hold; refusing")
        if sum(entry.file_size for entry in entries) > MAX_EXTRACTED_BYTES:
            raise SpriteForgeError(f"{archive}: would extract to more than {MAX_EXTRACTED_BYTES >> 20} MiB; refusing")
        for entry in entries:
            resolved = (root / entry.filename).resolve()
            if not resolved.is_relative_to(root) or Path(entry.filename).is_absolute():
                raise SpriteForgeError(f"{archive}: entry '{entry.filename}' would escape the target folder; refusing")
            if (entry.external_attr >> 16) & 0o170000 == 0o120000:
                raise SpriteForgeError(f"{archive}: entry '{entry.filename}' is a symbolic link; refusing")
        written = 0
        for entry in entries:
            resolved = root / entry.filename
            if entry.is_dir():
                resolved.mkdir(parents=True, exist_ok=True)
                continue
            resolved.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(entry) as source, open(resolved, "wb") as sink:
                while block := source.read(1 << 16):
                    written += len(block)
                    if written > MAX_EXTRACTED_BYTES:
                        raise SpriteForgeError(f"{archive}: extracted data exceeds {MAX_EXTRACTED_BYTES >> 20} MiB; refusing")
                    sink.write(block)
        return len({(root / entry.filename).resolve() for entry in entries
                    if not entry.is_dir() and not Path(entry.filename).name.startswith(".")})
