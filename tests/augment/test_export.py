"""A found policy outside autoaug: the torchvision transform applies the same policy to one image at a time."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from autoaug.augment.augmenter import Augmenter
from autoaug.augment.export import to_torchvision
from autoaug.augment.ops import OPS
from autoaug.augment.policy import OpConfig, Policy
from autoaug.augment.presets import PRESETS

N = 300


def _photo_uint8(photo: torch.Tensor) -> torch.Tensor:
    return (photo[0] * 255).round().to(torch.uint8)  # [3, 32, 32]


def _stat(batch: torch.Tensor) -> np.ndarray:
    """Per image: mean of the centre 16x16 and of the whole image (what most ops move)."""
    x = batch.float() / 255
    return np.stack([x[:, :, 8:-8, 8:-8].mean((1, 2, 3)).numpy(), x.mean((1, 2, 3)).numpy()], 1)


@pytest.mark.parametrize("name", [n for n in OPS if n not in ("identity", "gaussian_noise")])
def test_each_op_gives_what_the_batched_kernel_gives(name: str, photo: torch.Tensor) -> None:
    """At the same signed value and the same per-image uniforms, torchvision's functional op and autoaug's kernel
    agree (up to resampling at the border for geometric ops, and 8-bit rounding)."""
    from autoaug.augment.export import APPLY
    from autoaug.augment.ops import gaussian_blur

    spec = OPS[name]
    x = gaussian_blur(photo, torch.full((3,), 0.7), torch.empty(3, 0))  # smooth: resampling differs little
    for m in (0.3, -0.3) if spec.signed else (0.3,):
        u = tuple(torch.rand(spec.n_uniform, generator=torch.Generator().manual_seed(0)).tolist())
        rand = torch.tensor([u] * 3) if spec.n_uniform else torch.empty(3, 0)
        ours = spec(x, torch.full((3,), m), rand)
        theirs = torch.stack([APPLY[name](img, float(spec.value(torch.tensor(m))), u, None) for img in x])
        region = (slice(None), slice(None), slice(4, -4), slice(4, -4)) if spec.affine else (...,)
        assert (ours[region] - theirs[region]).abs().mean() < (0.006 if spec.affine else 0.003), m
        assert (ours - x).abs().mean() > 0.004  # the op did something


def _draws(policy: Policy, img: torch.Tensor) -> tuple[dict, dict]:
    """Per op: the applied images' signed normalized magnitudes, batched and one image at a time."""
    params = Augmenter(policy, seed=0).sample((N, *img.shape))
    batched = {name: p.magnitude.numpy() for name, p in params.ops}
    t = to_torchvision(policy, seed=0)
    single: dict[str, list[float]] = {name: [] for name in policy.ops}
    counts = []
    for _ in range(N):
        chosen = t.make_params([img])["ops"]
        counts.append(len(chosen))
        for name, value, _u in chosen:
            spec = OPS[name]
            single[name].append(0.0 if not spec.has_magnitude else
                                float(np.sign(value)) * (abs(value) - spec.low) / (spec.high - spec.low))
    return batched, {k: np.asarray(v) for k, v in single.items()} | {"_counts": np.asarray(counts)}


@pytest.mark.parametrize("n_ops", [None, 2])
def test_the_draws_follow_the_policy_as_the_batched_ones_do(n_ops: int | None, photo: torch.Tensor) -> None:
    """How often each op applies, its sign and its magnitude: the same distributions one image at a time."""
    policy = Policy(ops={"rotate": OpConfig(0.5, 0.6), "brightness": OpConfig(0.3, 0.3, "fixed"),
                         "hflip": OpConfig(0.0, 0.5), "solarize": OpConfig(0.4, 1.0),
                         "cutout": OpConfig(0.2, 0.8)}, n_ops=n_ops)
    batched, single = _draws(policy, _photo_uint8(photo))
    for name in policy.ops:
        ours, theirs = batched.get(name, np.zeros(0)), single[name]
        assert abs(len(ours) - len(theirs)) / N < 0.09, name  # how often it applies
        if OPS[name].has_magnitude:
            a, b = (np.round(v.astype(np.float64), 4) for v in (ours, theirs))
            assert ks_2samp(a, b).pvalue > 1e-3, name  # sign and magnitude
    if n_ops is not None:
        assert single["_counts"].max() <= n_ops


@pytest.mark.parametrize("preset", ["baseline", "randaugment", "trivialaugment", "cropflip+trivialaugment"])
def test_presets_have_the_same_output_distribution(preset: str, photo: torch.Tensor) -> None:
    """Augmented images, batched and one at a time: per-image statistics agree in distribution."""
    img = _photo_uint8(photo)
    batched = Augmenter(PRESETS[preset], seed=0)(img.expand(N, -1, -1, -1).contiguous())
    t = to_torchvision(PRESETS[preset], seed=0)
    single = torch.stack([t(img) for _ in range(N)])
    assert single.dtype == torch.uint8 and single.shape == batched.shape
    for a, b in zip(_stat(batched).T, _stat(single).T, strict=True):
        # means within 4 standard errors, plus torchvision's truncation to uint8 (autoaug rounds): <= 0.5/255 an op
        se = np.sqrt(a.var() / len(a) + b.var() / len(b))
        assert abs(a.mean() - b.mean()) < 4 * se + 0.004
        assert ks_2samp(np.round(a, 2), np.round(b, 2)).pvalue > 1e-4


def test_the_transform_takes_pil_and_float_images_and_replays_with_a_seed(photo: torch.Tensor) -> None:
    from PIL import Image

    img = _photo_uint8(photo)
    pil = Image.fromarray(img.permute(1, 2, 0).numpy())
    t = to_torchvision(PRESETS["trivialaugment"], seed=3)
    out = t(pil)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8 and out.shape == (3, 32, 32)
    assert t(photo[0]).dtype == torch.float32
    a = [to_torchvision(PRESETS["randaugment"], seed=5)(img) for _ in range(2)]
    assert torch.equal(a[0], a[1])


def test_export_prints_python_that_builds_the_transform(tmp_path: Path, photo: torch.Tensor) -> None:
    path = PRESETS["randaugment"].save(tmp_path / "policy.json")
    out = subprocess.run([sys.executable, "-m", "autoaug", "export", str(path), "--to", "torchvision"],
                         capture_output=True, text=True, check=True).stdout
    scope: dict = {}
    exec(out, scope)
    y = scope["transform"](_photo_uint8(photo))
    assert y.dtype == torch.float32 and y.shape == (3, 32, 32)
    assert scope["policy"] == PRESETS["randaugment"]
    bad = subprocess.run([sys.executable, "-m", "autoaug", "export", str(path), "--to", "keras"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown export target 'keras'" in bad.stderr
    assert json.loads(path.read_text())["name"] == "randaugment"


def test_a_scheduled_policy_exports_with_its_schedule(tmp_path: Path, photo: torch.Tensor) -> None:
    """The transform follows the schedule through ``set_progress``, as the batched augmenter does, and the exported
    snippet says where the training loop moves it."""
    from autoaug.augment import Schedule

    policy = Policy(ops={"rotate": OpConfig(0.8), "brightness": OpConfig(0.6)}, schedule=Schedule("linear"),
                    name="ramp")
    t = to_torchvision(policy, seed=0)
    assert t.magnitudes == policy.magnitudes(0.0) and t.magnitudes != policy.magnitudes(1.0)
    t.set_progress(1.0)
    assert t.magnitudes == policy.magnitudes(1.0) and t.progress == 1.0
    with pytest.raises(ValueError, match=r"progress 1\.5 is outside \[0, 1\]"):
        t.set_progress(1.5)
    path = policy.save(tmp_path / "ramp.json")
    out = subprocess.run([sys.executable, "-m", "autoaug", "export", str(path)], capture_output=True, text=True,
                         check=True).stdout
    assert "augment.set_progress(epoch / epochs)" in out
    scope: dict = {}
    exec(out, scope)
    scope["augment"].set_progress(0.5)
    assert scope["transform"](_photo_uint8(photo)).shape == (3, 32, 32)
    assert "set_progress" not in subprocess.run([sys.executable, "-m", "autoaug", "export", "randaugment"],
                                                capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize(("policy", "message"), [
    ("feedback", "policy 'feedback' is driven by the training state (feedback schedule): a per-image transform "
                 "cannot follow it"),
    ("augnet", "policy 'augnet' is driven by the training state (augnet schedule)"),
    ("policies/vae-0.2.json", "mixes generated images into every batch (synthetic ratio 0.2): a per-image transform "
                              "cannot; remove 'synthetic' from the policy file to export its ops"),
    ("cropflip+mixup", "mixes pairs of images of a batch (mixup): a per-image transform cannot; use "
                       "torchvision.transforms.v2.MixUp / CutMix on the batches"),
    ("autoaugment", "has sub-policies (AutoAugment's form), which the exported transform does not run; for "
                    "AutoAugment's CIFAR-10 policy use torchvision.transforms.v2.AutoAugment"),
])
def test_what_a_per_image_transform_cannot_run_is_refused(policy: str, message: str) -> None:
    from autoaug.augment.presets import resolve_policy
    from autoaug.errors import AutoaugError

    repo = Path(__file__).resolve().parents[2]
    with pytest.raises(AutoaugError, match=re.escape(message)):
        to_torchvision(resolve_policy(str(repo / policy) if policy.endswith(".json") else policy))
    proc = subprocess.run([sys.executable, "-m", "autoaug", "export", policy], capture_output=True, text=True,
                          cwd=repo)
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert message in proc.stderr
