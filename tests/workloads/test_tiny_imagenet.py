"""Tiny-ImageNet: the folder layout, decoding and its cache, the download path, the model, and the
``resnet18-tiny-imagenet`` workload trained through ``surge sweep run``, on small trees of real JPEGs."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from surge import workloads
from surge.workloads import get_workload
from surge.workloads import tiny_imagenet as ti

WNIDS = ("n01443537", "n01629819", "n01641577")
PER_CLASS = 4


@pytest.fixture(autouse=True)
def _fresh_cache():
    workloads.clear_cache()
    yield
    workloads.clear_cache()


def _picture(k: int) -> np.ndarray:
    """A smooth 64x64 RGB picture (JPEG keeps it within a few grey levels), different for each k."""
    yy, xx = np.mgrid[0:64, 0:64]
    base = np.array([40 + 17 * k % 170, 200 - 11 * k % 150, 90 + 29 * k % 120])
    return np.clip(base[None, None, :] + (xx + yy)[..., None] // 4, 0, 255).astype(np.uint8)


def _write_tree(parent, per_class: int = PER_CLASS, val: int = 3) -> dict:
    """A miniature Tiny-ImageNet in the standard layout: wnids.txt, train/<wnid>/images, val annotations."""
    root = parent / "tiny-imagenet-200"
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("".join(w + "\n" for w in WNIDS))
    (root / "words.txt").write_text("".join(f"{w}\tthing {i}\n" for i, w in enumerate(WNIDS)))
    pictures, k = {}, 0
    for wnid in WNIDS:
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(per_class):
            img = Image.fromarray(_picture(k))
            if k == 1:
                img = img.convert("L")  # Tiny-ImageNet has some grayscale images
            img.save(folder / f"{wnid}_{i}.JPEG", quality=95)
            pictures[(wnid, i)] = _picture(k)
            k += 1
    lines = []
    for j in range(val):
        Image.fromarray(_picture(100 + j)).save(root / "val" / "images" / f"val_{j}.JPEG", quality=95)
        lines.append(f"val_{j}.JPEG\t{WNIDS[(2 * j) % 3]}\t0\t0\t63\t63\n")
    (root / "val" / "val_annotations.txt").write_text("".join(lines))
    return {"root": root, "pictures": pictures}


# ---- reading --------------------------------------------------------------------------------------


def test_reads_the_standard_folder_layout(tmp_path):
    tree = _write_tree(tmp_path)
    images, labels, wnids = ti.load_tiny_imagenet(tmp_path, download=False)
    assert wnids == list(WNIDS)
    assert images.shape == (12, 3, 64, 64) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    for n, (wnid, i) in enumerate(sorted(tree["pictures"], key=lambda t: (WNIDS.index(t[0]), t[1]))):
        want = tree["pictures"][(wnid, i)].transpose(2, 0, 1).astype(int)
        if n == 1:  # written as grayscale: three equal channels
            assert np.array_equal(images[n][0], images[n][1]) and np.array_equal(images[n][1], images[n][2])
        else:
            assert np.abs(images[n].astype(int) - want).max() <= 4
    # data_dir may also name the tiny-imagenet-200 folder itself
    again, _, _ = ti.load_tiny_imagenet(tree["root"], download=False)
    assert np.array_equal(again, images)
    val_images, val_labels, _ = ti.load_tiny_imagenet(tmp_path, split="val", download=False)
    assert val_images.shape == (3, 3, 64, 64) and val_labels.tolist() == [0, 2, 1]


def test_decoded_images_are_cached_beside_the_data(tmp_path, monkeypatch):
    tree = _write_tree(tmp_path)
    first, labels, _ = ti.load_tiny_imagenet(tmp_path, download=False)
    cached = sorted(p.name for p in (tree["root"] / "surge-cache").iterdir())
    assert len(cached) == 2 and cached[0].startswith("train-") and cached[0].endswith("-images.npy")

    def no_decoding(files):
        raise AssertionError("decoded again although the cache is there")

    monkeypatch.setattr(ti, "decode_images", no_decoding)
    second, labels2, _ = ti.load_tiny_imagenet(tmp_path, download=False)
    assert isinstance(second, np.memmap) and np.array_equal(second, first) and np.array_equal(labels2, labels)
    # a changed data set gets a fresh cache
    Image.fromarray(_picture(50)).save(tree["root"] / "train" / WNIDS[0] / "images" / "extra.JPEG")
    with pytest.raises(AssertionError, match="decoded again"):
        ti.load_tiny_imagenet(tmp_path, download=False)


def test_missing_or_malformed_data_errors(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"Tiny-ImageNet is not in .*tiny-imagenet-200 \(no wnids.txt\)\. "
        r"Download http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip",
    ):
        ti.load_tiny_imagenet(tmp_path, download=False)
    tree = _write_tree(tmp_path, per_class=1, val=1)
    root = tree["root"]
    with pytest.raises(ValueError, match="split must be one of 'train', 'val'; got 'test'"):
        ti.load_tiny_imagenet(tmp_path, split="test", download=False)
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99999999\t0\t0\t63\t63\n")
    with pytest.raises(ValueError, match=r"val_annotations.txt, line 1: expected '<file>\\t<wnid from wnids.txt>"):
        ti.load_tiny_imagenet(tmp_path, split="val", download=False, cache=False)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "train" / WNIDS[2] / "images" / "small.JPEG")
    with pytest.raises(ValueError, match=r"small.JPEG is 32x32; expected 64x64"):
        ti.load_tiny_imagenet(tmp_path, download=False, cache=False)
    for p in (root / "train" / WNIDS[1] / "images").iterdir():
        p.unlink()
    with pytest.raises(FileNotFoundError, match=r"no .JPEG images in .*n01629819/images"):
        ti.load_tiny_imagenet(tmp_path, download=False, cache=False)
    (root / "train" / WNIDS[1] / "images").rmdir()
    with pytest.raises(FileNotFoundError, match=r"n01629819/images is missing \(class 'n01629819' of wnids.txt\)"):
        ti.load_tiny_imagenet(tmp_path, download=False, cache=False)
    (root / "wnids.txt").write_text("\n".join(f"n{i:08d}" for i in range(201)))
    with pytest.raises(ValueError, match="wnids.txt lists 201 classes; Tiny-ImageNet has 200"):
        ti.load_tiny_imagenet(tmp_path, download=False, cache=False)


# ---- downloading ----------------------------------------------------------------------------------


def _zip_tree(tmp_path):
    """The miniature tree zipped like the real archive (one top folder, tiny-imagenet-200/)."""
    src = tmp_path / "src"
    tree = _write_tree(src, per_class=2, val=1)
    archive = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(tree["root"].rglob("*")):
            zf.write(path, path.relative_to(src).as_posix())
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_download_checks_the_digest_and_unpacks(tmp_path):
    archive, digest = _zip_tree(tmp_path)
    dest = tmp_path / "data"
    root = ti.download_tiny_imagenet(dest, url=archive.as_uri(), checksum=("sha256", digest))
    assert root == dest / "tiny-imagenet-200" and (root / "wnids.txt").is_file()
    assert sorted(p.name for p in dest.iterdir()) == ["tiny-imagenet-200", "tiny-imagenet-200.zip"]  # no .part left
    images, labels, _ = ti.load_tiny_imagenet(dest, download=False)
    assert images.shape == (6, 3, 64, 64) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert ti.file_digest(dest / "tiny-imagenet-200.zip") == digest
    assert ti.file_digest(archive, "md5") == hashlib.md5(archive.read_bytes()).hexdigest()


def test_checksum_mismatch_is_a_clear_error_and_deletes_nothing(tmp_path):
    archive, digest = _zip_tree(tmp_path)
    dest = tmp_path / "data"
    wrong = "0" * 64
    with pytest.raises(
        ValueError,
        match=rf"checksum mismatch for .*data/tiny-imagenet-200.zip.part: expected sha256 "
        rf"{wrong}, got {digest}\. The file was left in place",
    ):
        ti.download_tiny_imagenet(dest, url=archive.as_uri(), checksum=("sha256", wrong))
    assert sorted(p.name for p in dest.iterdir()) == ["tiny-imagenet-200.zip.part"]  # kept, nothing unpacked
    # an archive the user put there is checked too, and left alone on a mismatch
    owned = dest / "tiny-imagenet-200.zip"
    owned.write_bytes(archive.read_bytes())
    with pytest.raises(
        ValueError, match=rf"checksum mismatch for .*data/tiny-imagenet-200.zip: expected sha256 {wrong}"
    ):
        ti.download_tiny_imagenet(dest, url="http://unused.invalid/x.zip", checksum=("sha256", wrong))
    assert owned.read_bytes() == archive.read_bytes() and not (dest / "tiny-imagenet-200").exists()


def test_load_downloads_when_missing(tmp_path, monkeypatch):
    """The loader's own download: offline is a FileNotFoundError saying what to do; an archive that is not
    the published one fails the published digest."""
    archive, _ = _zip_tree(tmp_path)
    dest = tmp_path / "data"

    def offline(url, path):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(ti, "fetch", offline)
    with pytest.raises(
        FileNotFoundError,
        match=r"could not be downloaded from http://cs231n.stanford.edu/"
        r"tiny-imagenet-200.zip \(URLError: <urlopen error no network>\)\. "
        r"Download and unzip it into .*data yourself",
    ):
        ti.load_tiny_imagenet(dest)
    monkeypatch.setattr(ti, "fetch", lambda url, path: path.write_bytes(archive.read_bytes()))
    with pytest.raises(ValueError, match=r"checksum mismatch .* expected md5 90528d7ca1a48142e341f4ef8d21d0de"):
        ti.load_tiny_imagenet(dest)


def test_archive_with_foreign_members_is_refused(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("tiny-imagenet-200/wnids.txt", "n01443537\n")
        zf.writestr("elsewhere/x.txt", "x")
    with pytest.raises(ValueError, match=r"is not the Tiny-ImageNet archive: member 'elsewhere/x.txt' is outside"):
        ti.download_tiny_imagenet(tmp_path / "d", url=bad.as_uri(), checksum=None)
    assert not (tmp_path / "d" / "tiny-imagenet-200").exists()


# ---- model and workload ---------------------------------------------------------------------------


def test_model_is_torchvision_resnet18_behind_a_fixed_normalisation():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = ti.TinyImageNetResNet18().double().eval()
    assert sum(p.numel() for p in model.parameters()) == 11_279_112
    assert all(
        n.rsplit(".", 1)[1] in ("running_mean", "running_var", "num_batches_tracked") for n, _ in model.named_buffers()
    )
    assert model.net.conv1.kernel_size == (7, 7) and model.net.conv1.stride == (2, 2)
    assert isinstance(model.net.maxpool, torch.nn.MaxPool2d)
    plain = resnet18(num_classes=200).double().eval()
    plain.load_state_dict(model.net.state_dict())
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    mean = torch.tensor(ti.TINY_IMAGENET_MEAN, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(ti.TINY_IMAGENET_STD, dtype=torch.float64).view(3, 1, 1)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 200) and out.dtype == torch.float64
        assert torch.allclose(out, plain((x.double() / 255 - mean) / std), rtol=0, atol=1e-10)


def test_workload_from_files(tmp_path):
    _write_tree(tmp_path)
    wl = get_workload("resnet18-tiny-imagenet", data_dir=str(tmp_path))
    assert wl.train_inputs.shape == (12, 3, 64, 64) and wl.train_inputs.dtype == torch.uint8
    assert wl.train_targets.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert len(wl.probe_inputs) == 12  # probe capped at the data size
    assert wl.epoch_size == 12 and ti.EPOCH_SIZE == 10_000  # 10k per epoch; all when there are fewer
    assert wl.metadata["epoch_size"] == wl.epoch_size  # the metadata say what the workload does
    assert wl.default_targets == (4.8, 4.4, 4.0) and wl.extra_steps == 50 and wl.lockstep_max_batch == 0
    assert wl.metadata["dataset"] == "Tiny-ImageNet" and wl.batch_unit == "examples"
    torch.manual_seed(0)
    with torch.no_grad():
        loss = float(F.cross_entropy(wl.make_model().eval()(wl.probe_inputs), wl.probe_targets))
    assert 4.0 < loss < 7.5  # about ln 200 = 5.3 at initialisation


def test_workload_trains_through_sweep_run(tmp_path, capsys):
    """The real ResNet-18 on real JPEGs through `surge sweep run` (2 lrs x 2 batch sizes x 1 round)."""
    from surge.cli.main import main
    from surge.sweep import SweepStore

    _write_tree(tmp_path)
    spec = tmp_path / "resnet18-tiny.toml"
    spec.write_text(
        f"""
name = "resnet18-tiny"
workload = "resnet18-tiny-imagenet"
data_dir = {json.dumps(str(tmp_path))}
rounds = 1
target_loss = [50.0, 0.001]
extra_steps = 2
max_steps = 3

[optimizer]
name = "adam"
betas = [0.0, 0.0]

[lr]
values = [1e-4, 7e-4]

[batch_size]
values = [2, 4]
"""
    )
    store = tmp_path / "runs.db"
    assert main(["sweep", "run", str(spec), "--store", str(store), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (res["total"], res["done"], res["failed"]) == (4, 4, 0)
    with SweepStore(store, create=False) as st:
        df = st.trials_frame()
    assert (df.workload == "resnet18-tiny-imagenet").all() and set(df.batch_size) == {2, 4}
    first, second = df[df.stage == 0], df[df.stage == 1]
    assert first.reached.all() and (first.steps == 0).all() and first.loss_after.notna().all()
    assert (~second.reached).all() and (df.steps_run == 3).all()
    assert (df.strategy == "loop").all()  # lockstep_max_batch = 0: the loop on the CPU
