"""Validation-set layouts and labels: which image files, and which of the 1000 classes each shows.

Layouts, tried in this order when no labels file is given:
- `kaggle`: a `LOC_val_solution.csv` (ImageId,PredictionString; the first WordNet id is the label)
  in the folder, images beside it (ImageId + any image suffix).
- `imagefolder`: one sub-folder per WordNet id (the usual ImageNet val layout).
- `synset-prefix`: flat folder of files whose names start with their WordNet id (n01440764_x.JPEG).
A labels file (`--labels`) gives `labels-file`: lines `FILE IDX` (Caffe val.txt style; 0-based index in
the standard order, or a WordNet id; space or comma separated) or a Kaggle CSV. FILE is the path
relative to the data folder, or a bare file name.
Class k is line k of the standard sorted-synset list shipped in zoo/data/imagenet_synsets.txt.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from zoo.errors import DatasetError
from zoo.files import read_limited

MAX_LABELS_BYTES = 64 * 2**20  # ImageNet val's labels are 1.4 MB as `FILE IDX`, 2.5 MB as Kaggle's CSV

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"})
SYNSET = re.compile(r"n\d{8}")
KAGGLE_FILE = "LOC_val_solution.csv"
LAYOUT_HINT = ("Use one folder per WordNet id, file names that start with their WordNet id, "
               "or give --labels FILE with 'FILE IDX' lines")


@lru_cache(maxsize=1)
def synsets() -> tuple[tuple[str, str], ...]:
    """The 1000 (WordNet id, class name) pairs in the standard order: index k is class k."""
    text = (Path(__file__).parent / "data" / "imagenet_synsets.txt").read_text(encoding="utf-8")
    pairs = tuple(tuple(line.split(" ", 1)) for line in text.splitlines() if line.strip())
    assert len(pairs) == 1000, "zoo/data/imagenet_synsets.txt must hold 1000 classes"
    return pairs


@lru_cache(maxsize=1)
def synset_index() -> dict[str, int]:
    return {wnid: i for i, (wnid, _) in enumerate(synsets())}


@dataclass
class Dataset:
    """Image files with their class indices (0..999, standard order), and where they came from."""

    root: Path
    layout: str
    items: list[tuple[str, int]]          # (path relative to root, POSIX; class index)
    labels_file: Path | None = None
    unlabelled_entries: int = 0           # labels-file lines whose image is not in the folder
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def path(self, relative: str) -> Path:
        return self.root / relative

    def subset(self, limit: int | None) -> "Dataset":
        """The first `limit` items in a fixed order spread over the classes (by a hash of the file name)."""
        if limit is None or limit >= len(self.items):
            return self
        ordered = sorted(self.items, key=lambda item: hashlib.sha1(os.fsencode(item[0])).hexdigest())
        return Dataset(self.root, self.layout, sorted(ordered[:limit]), self.labels_file,
                       self.unlabelled_entries, self.notes)

    def without(self, names) -> "Dataset":
        """The same set less the files named (paths relative to root): e.g. a quantized card's calibration images."""
        names = set(names)
        return Dataset(self.root, self.layout, [item for item in self.items if item[0] not in names],
                       self.labels_file, self.unlabelled_entries, list(self.notes))

    def fingerprint(self) -> str:
        """sha256 over every (relative path, size in bytes, class index): the same set gives the same value anywhere."""
        digest = hashlib.sha256()
        for relative, label in self.items:
            size = self.path(relative).stat().st_size if self.path(relative).exists() else -1
            # os.fsencode: a name that is not valid UTF-8 (surrogate-escaped by os.listdir) hashes as its
            # bytes on disk; valid names give the same bytes as str.encode, so fingerprints do not change.
            digest.update(os.fsencode(relative) + f"\t{size}\t{label}\n".encode())
        return digest.hexdigest()

    def describe(self) -> dict:
        return {"path": str(self.root), "layout": self.layout, "n_images": len(self.items),
                "labels_file": str(self.labels_file) if self.labels_file else None,
                "unlabelled_entries": self.unlabelled_entries, "fingerprint": self.fingerprint()}


def _images(folder: Path, recursive: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in pattern if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_dataset(root: Path, labels: Path | None = None) -> Dataset:
    """The labelled images under `root`, in one of the layouts above; DatasetError says what is wrong and what to do."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist" if not root.exists() else f"{root} is not a folder",
                           "Give --data the folder that holds the validation images")
    if labels is not None:
        dataset = _from_labels_file(root, Path(labels).expanduser())
    elif (root / KAGGLE_FILE).is_file():
        dataset = _from_labels_file(root, root / KAGGLE_FILE, layout="kaggle")
    else:
        dataset = _from_folders(root) or _from_prefixes(root)
    if not dataset.items:
        raise DatasetError(f"no labelled images in {root}", LAYOUT_HINT)
    return dataset


def _from_folders(root: Path) -> Dataset | None:
    folders = [d for d in sorted(root.iterdir()) if d.is_dir() and SYNSET.fullmatch(d.name)]
    if not folders:
        return None
    index = synset_index()
    unknown = [d.name for d in folders if d.name not in index]
    if unknown:
        raise DatasetError(f"{len(unknown)} folder(s) in {root} are not ImageNet-1k classes, e.g. {unknown[0]}",
                           "Keep only the 1000 ImageNet-1k class folders")
    items = [(p.relative_to(root).as_posix(), index[d.name]) for d in folders for p in _images(d, True)]
    if not items:
        raise DatasetError(f"the class folders in {root} hold no images", f"Image suffixes: {', '.join(sorted(IMAGE_SUFFIXES))}")
    return Dataset(root, "imagefolder", items)


def _from_prefixes(root: Path) -> Dataset:
    files = _images(root, False)
    if not files:
        raise DatasetError(f"no images in {root}", f"Give --data a folder of images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    index, items, unlabelled = synset_index(), [], []
    for p in files:
        match = SYNSET.match(p.name)
        if match and match.group() in index:
            items.append((p.name, index[match.group()]))
        else:
            unlabelled.append(p.name)
    if unlabelled:
        raise DatasetError(f"cannot tell the class of {len(unlabelled)} of {len(files)} images in {root}, "
                           f"e.g. {unlabelled[0]}", LAYOUT_HINT)
    return Dataset(root, "synset-prefix", items)


def _label_value(token: str, where: str) -> int:
    token = token.strip()
    if SYNSET.fullmatch(token):
        if token not in synset_index():
            raise DatasetError(f"{where}: {token} is not an ImageNet-1k class", "Use the 1000 ImageNet-1k classes")
        return synset_index()[token]
    try:
        value = int(token)
    except ValueError:
        raise DatasetError(f"{where}: label {token!r} is neither a class index nor a WordNet id",
                           "Lines are 'FILE IDX' with IDX in 0..999 (standard order), space or comma separated") from None
    if not 0 <= value < 1000:
        raise DatasetError(f"{where}: class index {value} is outside 0..999",
                           "Indices are 0-based in the standard order; a 1-based file needs converting")
    return value


def read_labels(path: Path) -> dict[str, int]:
    """{file as written: class index} from a `FILE IDX` list or a Kaggle LOC_val_solution.csv."""
    if not path.exists():
        raise DatasetError(f"labels file {path} does not exist", "Give --labels an existing file")
    try:  # checked before reading: /dev/zero or a FIFO as --labels is refused, not read forever
        text = read_limited(path, MAX_LABELS_BYTES, f"labels file {path}").decode("utf-8-sig")
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise DatasetError(f"labels file {path} is not readable text ({exc})", "Give a plain-text labels file") from None
    lines = text.splitlines()
    labels: dict[str, int] = {}
    if lines and lines[0].replace(" ", "").lower().startswith("imageid,predictionstring"):
        for n, row in enumerate(csv.reader(lines[1:]), start=2):
            if row:
                if len(row) < 2 or not row[1].split():
                    raise DatasetError(f"{path}:{n}: expected 'ImageId,PredictionString'", "Use Kaggle's LOC_val_solution.csv as is")
                labels[row[0].strip()] = _label_value(row[1].split()[0], f"{path}:{n}")
        return labels
    for n, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        if len(parts) != 2:
            raise DatasetError(f"{path}:{n}: expected 'FILE IDX', got {line.strip()[:80]!r}",
                               "One image per line: file name, then its 0-based class index (space or comma)")
        labels[parts[0]] = _label_value(parts[1], f"{path}:{n}")
    return labels


def _from_labels_file(root: Path, path: Path, layout: str = "labels-file") -> Dataset:
    labels = read_labels(path)
    if not labels:
        raise DatasetError(f"labels file {path} lists no images", "Lines are 'FILE IDX'")
    files = [p for p in _images(root, True) if p.resolve() != path.resolve()]
    if not files:
        raise DatasetError(f"no images in {root}", f"Give --data a folder of images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    by_name: dict[str, list[str]] = {}
    for p in files:
        relative = p.relative_to(root).as_posix()
        for key in {relative, p.name, p.stem}:  # Kaggle ImageIds and some lists omit the suffix
            by_name.setdefault(key, []).append(relative)
    items, seen, missing, ambiguous = [], set(), 0, []
    for name, label in labels.items():
        matches = by_name.get(name) or by_name.get(Path(name).name) or []
        if len(set(matches)) > 1:
            ambiguous.append(name)
        elif not matches:
            missing += 1
        elif matches[0] not in seen:
            seen.add(matches[0])
            items.append((matches[0], label))
    if ambiguous:
        raise DatasetError(f"{path}: {len(ambiguous)} name(s) match several images in {root}, e.g. {ambiguous[0]}",
                           "Write paths relative to the data folder in the labels file")
    if not items:
        example = next(iter(labels))
        raise DatasetError(f"none of the {len(labels)} names in {path} is an image in {root} (e.g. {example!r})",
                           "Check that --labels belongs to --data: names are file names or paths relative to it")
    unlabelled = [p.relative_to(root).as_posix() for p in files if p.relative_to(root).as_posix() not in seen]
    if unlabelled:
        raise DatasetError(f"{len(unlabelled)} of {len(files)} images in {root} have no label in {path.name}, "
                           f"e.g. {unlabelled[0]}", "Check that --labels belongs to --data, or move the unlabelled images out")
    dataset = Dataset(root, layout, sorted(items), path, missing)
    if missing:
        dataset.notes.append(f"{missing} of {len(labels)} entries in {path.name} have no image in {root}")
    return dataset
