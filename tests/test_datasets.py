"""Dataset layouts on the real ImageNet sample (linked, never copied), labels checked against MANIFEST.tsv."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from zoo.measure.datasets import Dataset, load_dataset, read_labels, synsets
from zoo.errors import DatasetError



def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


def _by_name(dataset: Dataset) -> dict[str, int]:
    return {Path(relative).name: label for relative, label in dataset.items}


def test_shipped_synsets_are_the_reference_list(shared_data):
    lines = (shared_data / "imagenet_synsets.txt").read_text().splitlines()
    assert [f"{wnid} {name}" for wnid, name in synsets()] == lines
    assert synsets()[0][0] == "n01440764" and len(synsets()) == 1000


def test_synset_prefix_layout_on_the_sample(sample_dir, sample_manifest):
    dataset = load_dataset(sample_dir)
    assert dataset.layout == "synset-prefix"
    assert _by_name(dataset) == sample_manifest  # MANIFEST.tsv is not an image: ignored


def test_imagefolder_layout(tmp_path, sample_dir, sample_manifest):
    names = sorted(sample_manifest)[:40]
    for name in names:
        _link(sample_dir / name, tmp_path / name[:9] / f"ILSVRC2012_val_{name[10:]}")
    dataset = load_dataset(tmp_path)
    assert dataset.layout == "imagefolder" and len(dataset) == 40
    assert sorted(dataset.items) == sorted((f"{n[:9]}/ILSVRC2012_val_{n[10:]}", sample_manifest[n]) for n in names)


@pytest.mark.parametrize("separator", [" ", ","])
def test_labels_file_layout(tmp_path, sample_dir, sample_manifest, separator):
    names = sorted(sample_manifest)[100:130]
    for i, name in enumerate(names):
        _link(sample_dir / name, tmp_path / "val" / f"ILSVRC2012_val_{i:08d}.JPEG")
    lines = [f"ILSVRC2012_val_{i:08d}.JPEG{separator}{sample_manifest[n]}" for i, n in enumerate(names)]
    lines[0] = f"ILSVRC2012_val_00000000.JPEG{separator}{names[0][:9]}"  # a WordNet id works too
    labels = tmp_path / "val.txt"
    labels.write_text("\n".join(lines) + "\n")
    dataset = load_dataset(tmp_path / "val", labels)
    assert dataset.layout == "labels-file" and dataset.labels_file == labels
    assert sorted(label for _, label in dataset.items) == sorted(sample_manifest[n] for n in names)


def test_kaggle_solution_csv_layout(tmp_path, sample_dir, sample_manifest):
    names = sorted(sample_manifest)[200:220]
    rows = ["ImageId,PredictionString"]
    for i, name in enumerate(names):
        _link(sample_dir / name, tmp_path / f"ILSVRC2012_val_{i:08d}.JPEG")
        rows.append(f"ILSVRC2012_val_{i:08d},{name[:9]} 10 20 200 300 {name[:9]} 5 5 50 50")
    rows.append("ILSVRC2012_val_09999999,n01440764 1 1 2 2")  # listed, not present: allowed and counted
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    dataset = load_dataset(tmp_path)
    assert dataset.layout == "kaggle" and dataset.unlabelled_entries == 1 and dataset.notes
    assert _by_name(dataset) == {f"ILSVRC2012_val_{i:08d}.JPEG": sample_manifest[n] for i, n in enumerate(names)}


def test_fingerprint_follows_files_and_labels(tmp_path, sample_dir, sample_manifest):
    names = sorted(sample_manifest)[:5]
    for name in names:
        _link(sample_dir / name, tmp_path / name)
    first = load_dataset(tmp_path)
    assert first.fingerprint() == load_dataset(tmp_path).fingerprint()
    relabelled = Dataset(first.root, first.layout, [(first.items[0][0], 999)] + first.items[1:])
    assert relabelled.fingerprint() != first.fingerprint()
    (tmp_path / names[0]).unlink()
    assert load_dataset(tmp_path).fingerprint() != first.fingerprint()


def test_a_file_name_that_is_not_utf8_is_fingerprinted_by_its_bytes(tmp_path, sample_dir, sample_manifest):
    names = sorted(sample_manifest)[:3]
    folder = tmp_path / "n01440764"
    for name in names:
        _link(sample_dir / name, folder / name)
    plain = load_dataset(tmp_path)
    # The fingerprint of valid names is what it always was: the UTF-8 of "relative\tsize\tlabel\n" lines.
    import hashlib

    digest = hashlib.sha256()
    for relative, label in plain.items:
        digest.update(f"{relative}\t{(tmp_path / relative).stat().st_size}\t{label}\n".encode())
    assert plain.fingerprint() == digest.hexdigest()
    os.symlink(sample_dir / names[0], os.fsencode(folder) + b"/caf\xe9.JPEG")  # Latin-1 bytes, not UTF-8
    dataset = load_dataset(tmp_path)
    assert len(dataset) == 4 and "n01440764/caf\udce9.JPEG" in dict(dataset.items)
    assert dataset.fingerprint() != plain.fingerprint() and len(dataset.describe()["fingerprint"]) == 64
    assert len(dataset.subset(2)) == 2


def test_limit_takes_a_fixed_subset_spread_over_classes(sample_dir):
    dataset = load_dataset(sample_dir)
    subset = dataset.subset(50)
    assert len(subset) == 50 and subset.items == dataset.subset(50).items
    assert len({label for _, label in subset.items}) == 50
    assert max(label for _, label in subset.items) > 500  # not just the first classes
    assert dataset.subset(5000) is dataset


# ---------------------------------------------------------------- bad input: one clear error each

def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no images"):
        load_dataset(tmp_path)


def test_unlabelled_flat_folder(tmp_path, sample_dir):
    _link(sample_dir / "n01440764_tench.JPEG", tmp_path / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(DatasetError, match="cannot tell the class") as error:
        load_dataset(tmp_path)
    assert "--labels" in error.value.hint


def test_labels_that_do_not_match_the_files(tmp_path, sample_dir):
    _link(sample_dir / "n01440764_tench.JPEG", tmp_path / "data" / "a.JPEG")
    _link(sample_dir / "n01443537_goldfish.JPEG", tmp_path / "data" / "b.JPEG")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("x.JPEG 0\ny.JPEG 1\n")
    with pytest.raises(DatasetError, match="none of the 2 names"):
        load_dataset(tmp_path / "data", wrong)
    partial = tmp_path / "partial.txt"
    partial.write_text("a.JPEG 0\n")
    with pytest.raises(DatasetError, match="1 of 2 images .* have no label"):
        load_dataset(tmp_path / "data", partial)


@pytest.mark.parametrize("line, message", [("a.JPEG 1000", "outside 0..999"), ("a.JPEG cat", "neither a class index"),
                                           ("a.JPEG 1 2", "expected 'FILE IDX'"), ("a.JPEG n99999999", "not an ImageNet-1k class")])
def test_malformed_label_lines_name_the_line(tmp_path, line, message):
    labels = tmp_path / "labels.txt"
    labels.write_text(f"# comment\n{line}\n")
    with pytest.raises(DatasetError, match=message) as error:
        read_labels(labels)
    assert f"{labels}:2" in error.value.message


def test_unknown_class_folder(tmp_path, sample_dir):
    _link(sample_dir / "n01440764_tench.JPEG", tmp_path / "n99999999" / "x.JPEG")
    with pytest.raises(DatasetError, match="not ImageNet-1k classes"):
        load_dataset(tmp_path)
