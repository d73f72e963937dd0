"""Pairs are found in every layout and checked up front; datasets crop and flip deterministically."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
import torch

from darkir.data.dataset import PairedDataset
from darkir.data.layouts import DatasetError
from darkir.data.pairs import find_pairs, find_unpaired, resolve_pairs
from darkir.data.split import split_scenes, write_manifest
from darkir.errors import DarkIRWarning


def _write(path, height=40, width=48, value=None, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    image = (
        rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        if value is None
        else np.full((height, width, 3), value, np.uint8)
    )
    cv2.imwrite(str(path), image)
    return path


def make_lolblur(root, scenes=3, frames=4, size=(40, 48)):
    for s in range(scenes):
        for f in range(frames):
            _write(root / "low_blur_noise" / f"{s:04d}" / f"{f:04d}.png", *size, seed=s * 10 + f)
            _write(root / "high_sharp_scaled" / f"{s:04d}" / f"{f:04d}.png", *size, seed=100 + s * 10 + f)
    return root


def test_lolblur_layout(tmp_path):
    pairs = find_pairs(make_lolblur(tmp_path))
    assert len(pairs) == 12
    assert pairs[0].name == "0000/0000.png"
    assert pairs[0].high == tmp_path / "high_sharp_scaled" / "0000" / "0000.png"


def test_lolv2_layout_renames_partner(tmp_path):
    _write(tmp_path / "Low" / "low00001.png")
    _write(tmp_path / "Normal" / "normal00001.png")
    (pair,) = find_pairs(tmp_path)
    assert pair.high.name == "normal00001.png"


def test_problems_are_listed_with_paths_before_anything_runs(tmp_path):
    _write(tmp_path / "low" / "a.png")
    _write(tmp_path / "high" / "a.png")
    _write(tmp_path / "low" / "orphan.png")
    _write(tmp_path / "low" / "big.png", 50, 50)
    _write(tmp_path / "high" / "big.png", 40, 50)
    (tmp_path / "low" / "broken.png").write_bytes(b"nope")
    _write(tmp_path / "high" / "broken.png")
    with pytest.raises(DatasetError) as info:
        find_pairs(tmp_path)
    message = str(info.value)
    assert "3 problem(s)" in message
    assert "orphan.png: no reference image at" in message
    assert "big.png: size 50x50 but reference" in message
    assert "broken.png: cannot decode image (corrupt or not a PNG file)" in message


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "dataset folder not found"),
        (lambda root: (root / "low").mkdir(parents=True) or (root / "high").mkdir(), "no images found"),
        (lambda root: (root / "stuff").mkdir(parents=True), "no known paired layout"),
        (lambda root: root.write_bytes(b"x"), "data: a file, not a dataset folder"),
    ],
)
def test_missing_and_empty_datasets(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DatasetError, match=message):
        find_pairs(root)


def test_a_manifest_that_is_a_pipe_is_refused_not_waited_on(tmp_path):
    import os

    os.mkfifo(tmp_path / "split.json")
    with pytest.raises(DatasetError, match=r"split\.json: not a manifest file \(a folder, pipe or device\)"):
        resolve_pairs(tmp_path / "split.json", "test")


def test_a_manifest_nested_too_deeply_is_refused_naming_it(tmp_path):
    (tmp_path / "split.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(DatasetError, match=r"split\.json: cannot read manifest: nested too deeply"):
        resolve_pairs(tmp_path / "split.json", "test")


def test_a_manifest_listing_a_pair_twice_is_refused(tmp_path):
    import json

    for side in ("low", "high"):
        (tmp_path / side).mkdir()
        cv2.imwrite(str(tmp_path / side / "a.png"), np.zeros((8, 8, 3), np.uint8))
    entries = [["low/a.png", "high/a.png"], ["./low/a.png", "high/a.png"]]
    (tmp_path / "split.json").write_text(json.dumps({"root": ".", "splits": {"test": entries}}))
    with pytest.raises(DatasetError, match=r"split 'test' lists \./low/a\.png twice \(entries 0 and 1\)"):
        resolve_pairs(tmp_path / "split.json", "test")


def test_a_manifest_listing_a_pair_in_two_splits_is_refused(tmp_path):
    """A hand-edited manifest with a training pair also under val and test was trained and validated on without a
    word: the model would be chosen and scored on what it trained on."""
    import json

    for side in ("low", "high"):
        (tmp_path / side).mkdir()
        for name in ("a", "b"):
            cv2.imwrite(str(tmp_path / side / f"{name}.png"), np.zeros((8, 8, 3), np.uint8))
    splits = {
        "train": [["low/a.png", "high/a.png"]],
        "val": [["low/b.png", "high/b.png"], ["./low/a.png", "high/a.png"]],
    }
    (tmp_path / "split.json").write_text(json.dumps({"root": ".", "splits": splits}))
    for split, other in (("train", "val"), ("val", "train")):
        with pytest.raises(DatasetError, match=rf"low/a\.png is in split '{split}' and in '{other}'"):
            resolve_pairs(tmp_path / "split.json", split)


@pytest.mark.parametrize(
    ("test", "message"),
    [
        ([["{root}/low/a.png", "{root}/high/a.png"]], r"low/a\.png is in split 'test' and in 'train'"),
        ([["../{name}/low/a.png", "high/a.png"]], r"low/a\.png is in split 'test' and in 'train'"),
        ([["low/b.png", "high/a.png"]], r"high/a\.png is in split 'test' and in 'train'"),
        ([["low/b.png", "high/b.png"], ["{root}/low/b.png", "high/b.png"]], r"lists .*low/b\.png twice"),
        ([["low/b.png", "./low/b.png"]], r"entry 0 gives low/b\.png as its own reference"),
    ],
    ids=["absolute", "dotdot", "shared-reference", "twice-spelled-apart", "own-reference"],
)
def test_a_manifest_entry_is_one_file_however_its_path_is_written(tmp_path, test, message):
    """Entries were compared as written: a training pair listed under test by its absolute path or through "..", a
    training reference given to a test input, the same input twice spelled apart and an input given as its own
    reference were all scored."""
    import json

    root = tmp_path / "set"
    for side in ("low", "high"):
        (root / side).mkdir(parents=True)
        for name in ("a", "b"):
            cv2.imwrite(str(root / side / f"{name}.png"), np.zeros((8, 8, 3), np.uint8))
    test = [[name.format(root=root, name=root.name) for name in entry] for entry in test]
    splits = {"train": [["low/a.png", "high/a.png"]], "test": test}
    (root / "split.json").write_text(json.dumps({"root": ".", "splits": splits}))
    with pytest.raises(DatasetError, match=message):
        resolve_pairs(root / "split.json", "test")


def test_a_file_given_for_a_folder_is_named_as_a_file(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"a\.png: a file, not a folder$"):
        find_unpaired(tmp_path / "a.png")
    with pytest.raises(DatasetError, match=r"b\.png: folder not found$"):
        find_unpaired(tmp_path / "b.png")


def test_unpaired_folder(tmp_path):
    _write(tmp_path / "x" / "a.jpg")
    _write(tmp_path / "x" / "sub" / "b.png")
    assert [p.name for p in find_unpaired(tmp_path / "x")] == ["a.jpg", "sub/b.png"]
    with pytest.raises(DatasetError, match="no images"):
        find_unpaired(_empty(tmp_path))


def _empty(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def test_crops_and_flips_are_deterministic_and_paired(tmp_path):
    root = tmp_path / "d"
    for i in range(3):
        image = _write(root / "low" / f"{i}.png", seed=i)
        (root / "high").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "high" / f"{i}.png"), 255 - cv2.imread(str(image)))
    dataset = PairedDataset(find_pairs(root), crop=16, flips=True, rot90=True, seed=3)
    a, b = dataset[1], dataset[1]
    assert torch.equal(a["low"], b["low"]) and a["low"].shape == (3, 16, 16)
    assert torch.allclose(a["high"], 1 - a["low"], atol=1e-6)  # same window, same flips
    dataset.set_epoch(1)
    assert not torch.equal(dataset[1]["low"], a["low"])


def test_crop_larger_than_images_is_named(tmp_path):
    make_lolblur(tmp_path, scenes=1, frames=1, size=(40, 48))
    with pytest.raises(DatasetError, match=r"(?s)datasets\.train\.cropsize.*48x40 is smaller than the crop size 64"):
        PairedDataset(find_pairs(tmp_path), crop=64)


def test_scene_split_keeps_scenes_whole(tmp_path):
    make_lolblur(tmp_path, scenes=10, frames=3)
    splits = split_scenes(tmp_path, {"train": 18, "val": 6, "test": 6}, seed=1)
    assert {k: len(v) for k, v in splits.items()} == {"train": 18, "val": 6, "test": 6}
    scenes = {k: {low.split("/")[1] for low, _ in v} for k, v in splits.items()}
    assert (
        not (scenes["train"] & scenes["val"])
        and not (scenes["train"] & scenes["test"])
        and not (scenes["val"] & scenes["test"])
    )
    manifest = tmp_path.parent / "manifests" / "split.json"
    write_manifest(tmp_path, manifest, {"train": 18, "val": 6, "test": 6}, seed=1)
    val = resolve_pairs(manifest, "val")
    assert len(val) == 6 and all(p.low.is_file() and p.high.is_file() for p in val)
    with pytest.raises(DatasetError, match="no split 'dev'"):
        resolve_pairs(manifest, "dev")
    with pytest.raises(DatasetError, match=r"cannot fill splits of 102 \(train 100, val 1, test 1\); ask for fewer"):
        split_scenes(tmp_path, {"train": 100, "val": 1, "test": 1})


def test_a_manifest_written_over_a_link_finds_its_data(tmp_path):
    """-o a link to a manifest elsewhere, with overwrite: the link is replaced by the manifest, whose root is
    relative to where it now is (it was relative to the link target's folder, and every pair went missing)."""
    data = tmp_path / "data"
    make_lolblur(data, scenes=10, frames=3)
    far = tmp_path / "far" / "deep" / "er"
    far.mkdir(parents=True)
    (far / "real.json").write_text("{}")
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / "link.json"
    link.symlink_to(far / "real.json")
    write_manifest(data, link, {"train": 18, "val": 6, "test": 6}, seed=1, overwrite=True)
    assert not link.is_symlink() and (far / "real.json").read_text() == "{}"
    assert len(resolve_pairs(link, "val")) == 6


def test_a_manifest_keeps_a_linked_data_folder_below_it_as_the_link(tmp_path):
    """``split data -o split.json`` beside a link ``data`` stored the link's target, so the manifest broke when the
    data moved and the link was pointed at its new place."""
    make_lolblur(tmp_path / "store1" / "set", scenes=4, frames=2)
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "data").symlink_to(tmp_path / "store1" / "set")
    manifest = tmp_path / "proj" / "split.json"
    write_manifest(tmp_path / "proj" / "data", manifest, {"train": 4, "val": 2, "test": 2}, seed=0)
    assert json.loads(manifest.read_text())["root"] == "data"
    (tmp_path / "store1").rename(tmp_path / "store2")
    (tmp_path / "proj" / "data").unlink()
    (tmp_path / "proj" / "data").symlink_to(tmp_path / "store2" / "set")
    assert all(pair.low.is_file() for pair in resolve_pairs(manifest, "val"))


def test_a_split_of_a_flat_folder_says_each_pair_is_its_own_scene(tmp_path):
    """Frames named scene1_001.png ... directly in low/ and high/ were scattered over the splits without a word."""
    for side in ("low", "high"):
        (tmp_path / side).mkdir()
        for scene in range(3):
            for frame in range(2):
                cv2.imwrite(str(tmp_path / side / f"scene{scene}_{frame}.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.warns(DarkIRWarning, match="no scene folders .* each pair is a scene of its own"):
        split_scenes(tmp_path, {"train": 2, "val": 2, "test": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_lolblur(tmp_path / "nested", scenes=4, frames=2)
        split_scenes(tmp_path / "nested", {"train": 4, "val": 2, "test": 2})


def test_linked_subfolders_of_a_dataset_are_read_once_and_loops_end(tmp_path):
    """A scene folder that is a link (data kept on another disk) is part of the set, as restore reads it; a link
    back to an enclosing folder does not loop."""
    make_lolblur(tmp_path / "elsewhere", scenes=1, frames=2)
    make_lolblur(tmp_path / "data", scenes=1, frames=2)
    for side in ("low_blur_noise", "high_sharp_scaled"):
        (tmp_path / "data" / side / "0001").symlink_to(tmp_path / "elsewhere" / side / "0000")
    (tmp_path / "data" / "low_blur_noise" / "0000" / "loop").symlink_to(tmp_path / "data" / "low_blur_noise")
    pairs = find_pairs(tmp_path / "data")
    assert sorted(pair.name for pair in pairs) == ["0000/0000.png", "0000/0001.png", "0001/0000.png", "0001/0001.png"]
    assert len(find_unpaired(tmp_path / "data" / "low_blur_noise")) == 4


def test_a_pair_changed_after_the_set_was_checked_is_named_not_cropped_out_of_line(tmp_path):
    """A reference replaced by a larger image while a run goes on was cropped at the input's window: misaligned pairs,
    trained on without a word (or a tensor-size error naming no file). The sizes are checked as each pair loads."""
    for side in ("low", "high"):
        (tmp_path / side).mkdir()
        cv2.imwrite(str(tmp_path / side / "a.png"), np.full((48, 64, 3), 40, np.uint8))
    dataset = PairedDataset(find_pairs(tmp_path), crop=32)
    assert dataset[0]["high"].shape == (3, 32, 32)
    cv2.imwrite(str(tmp_path / "high" / "a.png"), np.full((120, 160, 3), 40, np.uint8))
    with pytest.raises(DatasetError, match=r"low/a\.png: size 64x48 but reference .*high/a\.png is 160x120 \(changed"):
        dataset[0]
    cv2.imwrite(str(tmp_path / "high" / "a.png"), np.full((20, 20, 3), 40, np.uint8))
    cv2.imwrite(str(tmp_path / "low" / "a.png"), np.full((20, 20, 3), 40, np.uint8))
    with pytest.raises(DatasetError, match=r"low/a\.png: 20x20 is smaller than the crop size 32 \(changed"):
        dataset[0]


def test_a_folder_that_cannot_be_read_and_a_broken_link_are_named(tmp_path):
    """A scene folder without read permission was left out of training without a word (45 of 46 pairs trained), an
    unreadable low/ read as "no images found"; a broken link among the inputs was dropped silently."""
    import os
    import shutil
    import subprocess
    import sys

    data = tmp_path / "data"
    (data / "scene").mkdir(parents=True)
    for name in ("a.png", "scene/b.png"):
        cv2.imwrite(str(data / name), np.full((8, 8, 3), 40, np.uint8))
    (data / "c.png").symlink_to(tmp_path / "gone.png")
    prefix = []
    if os.geteuid() == 0:  # root reads any folder: drop that capability for the child
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to read as root without its override")
        prefix = [
            "setpriv",
            "--bounding-set=-dac_override,-dac_read_search",
            "--inh-caps=-dac_override,-dac_read_search",
            "--",
        ]
    code = (
        "import sys, warnings; from pathlib import Path; from darkir.data.layouts import list_images\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    print([p.name for p in list_images(Path(sys.argv[1]))])\n"
        "for w in caught: print(w.message)\n"
    )
    (data / "scene").chmod(0)
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", code, str(data)], capture_output=True, text=True)
    finally:
        (data / "scene").chmod(0o755)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "['a.png']"
    assert f"cannot read the folder {data / 'scene'} (Permission denied): its files are left out" in lines
    assert f"left out 1 broken link (to no file): {data / 'c.png'}" in lines


def test_a_reference_folder_that_is_the_input_folder_is_refused(tmp_path):
    """high/ a link to low/: every image was scored (and would be trained) against itself."""
    (tmp_path / "low").mkdir()
    cv2.imwrite(str(tmp_path / "low" / "a.png"), np.full((8, 8, 3), 30, np.uint8))
    (tmp_path / "high").symlink_to("low")
    with pytest.raises(DatasetError, match=r"the references' folder .*high is the inputs' folder .*low \(a link\?\)"):
        find_pairs(tmp_path)


def test_references_without_an_input_are_warned_of(tmp_path):
    """A half-copied input folder shrank a training or test set without a word."""
    for side in ("low", "high"):
        (tmp_path / side).mkdir()
        for name in ("a", "b") if side == "low" else ("a", "b", "c"):
            cv2.imwrite(str(tmp_path / side / f"{name}.png"), np.full((8, 8, 3), 30, np.uint8))
    with pytest.warns(DarkIRWarning, match=r"left out 1 reference\(s\) without an input: .*high/c\.png"):
        assert [pair.name for pair in find_pairs(tmp_path)] == ["a.png", "b.png"]
    (tmp_path / "high" / "c.png").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        find_pairs(tmp_path)


def test_a_root_with_the_folders_of_two_layouts_says_which_it_reads(tmp_path):
    """A root with both low/ + high/ and LOL-v2's Low/ + Normal/ was read as low/ + high/ alone without a word."""
    for folder, name in (("low", "a"), ("high", "a"), ("Low", "low00001"), ("Normal", "normal00001")):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / f"{name}.png"), np.full((8, 8, 3), 30, np.uint8))
    with pytest.warns(DarkIRWarning, match=r"reads low/ \+ high/ \(paired layout\) and leaves out Low/ \+ Normal/"):
        assert [pair.name for pair in find_pairs(tmp_path)] == ["a.png"]
    for folder in ("Low", "Normal"):
        (tmp_path / folder / f"{folder.lower()}00001.png").unlink()
        (tmp_path / folder).rmdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        find_pairs(tmp_path)


def test_gray_references_for_colour_inputs_are_warned_of(tmp_path):
    """A model trained towards gray references learns to remove colour: it was accepted without a word."""
    for side in ("low", "high"):
        (tmp_path / side).mkdir()
    cv2.imwrite(str(tmp_path / "low" / "a.png"), np.full((8, 8, 3), 30, np.uint8))
    cv2.imwrite(str(tmp_path / "high" / "a.png"), np.full((8, 8), 120, np.uint8))
    with pytest.warns(DarkIRWarning, match=r"1 reference\(s\) are gray for colour inputs \(.*high/a\.png\)"):
        find_pairs(tmp_path)
    cv2.imwrite(str(tmp_path / "low" / "a.png"), np.full((8, 8), 30, np.uint8))  # gray for gray: as meant
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        find_pairs(tmp_path)


def test_a_warning_raised_inside_os_walk_is_shown_at_the_callers_line(tmp_path):
    """A folder the walk could not read was warned of at ``<frozen os>:361``, the line in os.walk that called darkir
    back, not at the line that listed the folder."""
    from darkir.data.layouts import list_images

    (tmp_path / "a.png").write_bytes(b"")
    with pytest.warns(DarkIRWarning, match="cannot read the folder") as record:
        list_images(tmp_path / "a.png")
    assert [warning.filename for warning in record] == [__file__]


def test_a_manifest_of_files_linked_to_shared_blobs_reads_and_a_nul_is_no_path(tmp_path):
    """git-annex and DVC link each file to a blob of its content: identical images became one file and were refused
    as "listed twice". A NUL in an entry (valid JSON) raised ValueError: embedded null byte."""
    import json

    (tmp_path / "blobs").mkdir()
    cv2.imwrite(str(tmp_path / "blobs" / "same.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "blobs" / "ref.png"), np.full((8, 8, 3), 9, np.uint8))
    for side, blob in (("low", "same.png"), ("high", "ref.png")):
        (tmp_path / side).mkdir()
        for name in ("a", "b"):
            (tmp_path / side / f"{name}.png").symlink_to(tmp_path / "blobs" / blob)
    splits = {"test": [["low/a.png", "high/a.png"], ["low/b.png", "high/b.png"]]}
    (tmp_path / "m.json").write_text(json.dumps({"root": ".", "splits": splits}))
    assert len(resolve_pairs(tmp_path / "m.json", "test")) == 2
    splits["test"].append(["low/c\\u0000.png", "high/a.png"])
    (tmp_path / "m.json").write_text(json.dumps({"root": ".", "splits": splits}).replace("\\\\u0000", "\\u0000"))
    with pytest.raises(DatasetError, match=r"entry 2 is .*, not a \[low, high\] pair of paths"):
        resolve_pairs(tmp_path / "m.json", "test")


def test_a_dataset_root_above_its_splits_names_the_folders_that_hold_pairs(tmp_path):
    """A dataset's root (holding ``train/`` and ``val/``) was "no known paired layout found", with no word of the
    sub-folders that are the sets."""
    for split in ("train", "val"):
        _write(tmp_path / split / "low" / "a.png")
        _write(tmp_path / split / "high" / "a.png")
    (tmp_path / "notes").mkdir()
    with pytest.raises(DatasetError) as info:
        find_pairs(tmp_path)
    assert str(info.value).endswith(f"; {tmp_path / 'train'}, {tmp_path / 'val'} each hold one: pass one of them")


def test_a_sub_folder_it_may_not_read_leaves_the_no_layout_error_as_it_was(tmp_path, monkeypatch):
    """The hint of sub-folders holding pairs looked into each sub-folder: one it may not read (lost+found at a disk's
    root) raised PermissionError, which stopped test-unpaired on a folder of photos beside it (found in review)."""
    from pathlib import Path

    (tmp_path / "photos").mkdir()
    (tmp_path / "lost+found").mkdir()
    is_dir = Path.is_dir

    def unreadable(path: Path) -> bool:
        if path.parent.name == "lost+found":
            raise PermissionError(13, "Permission denied", str(path))
        return is_dir(path)

    monkeypatch.setattr(Path, "is_dir", unreadable)
    with pytest.raises(DatasetError, match="no known paired layout found") as info:
        find_pairs(tmp_path)
    assert "hold one" not in str(info.value)
