"""Image archives on shared storage: how images reach Podman and the nodes of a cluster without a registry.

``multiverse images save DIR`` writes one ``docker save`` archive per image
(``<name>.tar``) and ``DIR/index.json`` (tag -> image id, file); ``multiverse
images load DIR`` loads into Docker or Podman those the engine lacks, and a
Slurm job's node-side process does the same for the one image it needs. The
image id survives the round trip (it is the digest of the image's config), so a
result made on one engine is recognised as the same on another. Archives are
not compressed: loading is then as fast as the disk (gzip on 2 cores would cost
about a minute per GB each way).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Optional

from multiverse.errors import ConfigError, InfrastructureError

INDEX_FILE = "index.json"
FORMAT = 1


def _file_name(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", tag) + ".tar"


def read_index(folder: Path) -> dict[str, dict]:
    """tag -> {"id", "file", "bytes"}; empty when the folder has no index."""
    try:
        data = json.loads((Path(folder) / INDEX_FILE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{Path(folder) / INDEX_FILE} is not a multiverse image index: {exc}") from None
    return dict(data.get("images", {}))


def _write_index(folder: Path, images: dict[str, dict]) -> None:
    tmp = folder / f".{INDEX_FILE}.tmp"
    tmp.write_text(json.dumps({"format": FORMAT, "images": images}, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, folder / INDEX_FILE)


def archived_id(folder: Path, tag: str) -> Optional[str]:
    entry = read_index(folder).get(tag)
    return entry["id"] if entry and (Path(folder) / entry["file"]).is_file() else None


def archive_of(folder: Path, image_id: str) -> Optional[Path]:
    for entry in read_index(folder).values():
        if entry["id"] == image_id and (Path(folder) / entry["file"]).is_file():
            return Path(folder) / entry["file"]
    return None


def save_images(engine, tags: Iterable[str], folder: Path, log: Callable[[str], None] = lambda _: None) -> dict[str, dict]:
    """Archive each image into ``folder``; an archive of the same image id is kept as it is."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = read_index(folder)
    for tag in tags:
        image_id = engine.resolve_image(tag, build_hint="multiverse build")
        entry = images.get(tag)
        if entry and entry["id"] == image_id and (folder / entry["file"]).is_file():
            log(f"{tag}: archive up to date ({entry['file']})")
            continue
        name = _file_name(tag)
        tmp = folder / f".{name}.tmp"
        engine.save_image(tag, tmp)
        os.replace(tmp, folder / name)
        images[tag] = {"id": image_id, "file": name, "bytes": (folder / name).stat().st_size}
        _write_index(folder, images)
        log(f"{tag}: saved {name} ({images[tag]['bytes'] / 1e6:.0f} MB)")
    return images


def load_archive(engine, path: Path, image_id: str) -> None:
    """Load one archive; it must give the image id the index promised."""
    engine.load_image(path)
    if not engine.has_image(image_id):
        raise InfrastructureError(f"loading {path} into {engine.name} did not give image {image_id[:19]}; "
                                  f"the archive changed after it was indexed: save it again")


def load_images(engine, folder: Path, tags: Optional[Iterable[str]] = None,
                log: Callable[[str], None] = lambda _: None) -> list[str]:
    """Load the archived images (all, or ``tags``) that ``engine`` lacks; returns the tags loaded."""
    images = read_index(folder)
    if not images:
        raise ConfigError(f"{folder} holds no image archive index; write one with 'multiverse images save {folder}'")
    wanted = list(tags) if tags else sorted(images)
    unknown = [tag for tag in wanted if tag not in images]
    if unknown:
        raise ConfigError(f"{folder} has no archive of {', '.join(unknown)} (it has: {', '.join(sorted(images))})")
    loaded = []
    for tag in wanted:
        entry = images[tag]
        if engine.has_image(tag) and engine.resolve_image(tag) == entry["id"]:
            log(f"{tag}: already on {engine.name}")
            continue
        if engine.has_image(entry["id"]):
            engine.tag_image(entry["id"], tag)  # the same image under another tag: no need to load it
        else:
            load_archive(engine, Path(folder) / entry["file"], entry["id"])
        loaded.append(tag)
        log(f"{tag}: loaded into {engine.name}")
    return loaded
