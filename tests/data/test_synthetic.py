from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from autoaug.data.datasets import DatasetSplits
from autoaug.data.synthetic import (
    Generator,
    GeneratorSpec,
    cache_path,
    generator_for,
    load_generator,
    split_digest,
)
from autoaug.errors import AutoaugError


def _two_tone(n: int = 512, side: int = 8, channels: int = 1, name: str = "two_tone") -> DatasetSplits:
    """Class 0: dark images, class 1: bright ones (uint8), so conditioning can be checked by brightness."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    level = torch.where(y == 1, 200.0, 40.0).view(-1, 1, 1, 1)
    x = (level + 20 * torch.randn(n, channels, side, side, generator=g)).clamp(0, 255).to(torch.uint8)
    empty_x, empty_y = x[:0], y[:0]
    return DatasetSplits(name, ("dark", "bright"), x, y, empty_x, empty_y, empty_x, empty_y)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOAUG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("kind", ["vae", "dcgan"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_samples_have_the_dataset_shape_and_range(kind: str, shape: tuple[int, int, int]) -> None:
    gen = Generator(GeneratorSpec(kind, "d", shape, num_classes=10))
    images = gen.sample(torch.tensor([0, 3, 9, 9]))
    assert images.shape == (4, *shape) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0


def test_bad_specs_are_named() -> None:
    with pytest.raises(AutoaugError, match="unknown generator 'gan'"):
        GeneratorSpec("gan", "d", (1, 28, 28), 10)
    with pytest.raises(AutoaugError, match="divisible by 4, got 30x30"):
        GeneratorSpec("vae", "d", (1, 30, 30), 10)


@pytest.mark.parametrize("kind", ["vae", "dcgan"])
def test_generators_respect_their_conditioning_labels(kind: str) -> None:
    gen, seconds = generator_for(kind, _two_tone(), epochs=15, echo=lambda line: None)
    assert seconds > 0
    g = torch.Generator().manual_seed(1)
    dark = gen.sample(torch.zeros(64, dtype=torch.long), g).mean()
    bright = gen.sample(torch.ones(64, dtype=torch.long), g).mean()
    assert bright - dark > 0.3, (float(dark), float(bright))  # the data: 40/255 vs 200/255


def test_cache_is_reused_and_deterministic(cache: Path) -> None:
    data = _two_tone()
    lines: list[str] = []
    a, _ = generator_for("vae", data, epochs=2, echo=lines.append)
    trained = len(lines)
    b, _ = generator_for("vae", data, epochs=2, echo=lines.append)
    assert trained == 2 and len(lines) == trained  # the second call trained nothing
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    fresh = cache / "other"
    with pytest.MonkeyPatch.context() as m:  # the same seed, trained again from scratch elsewhere
        m.setenv("AUTOAUG_CACHE", str(fresh))
        c, _ = generator_for("vae", data, epochs=2, echo=lines.append)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values(), strict=True))
    labels = torch.tensor([0, 1, 1])
    same = [g.sample(labels, torch.Generator().manual_seed(3)) for g in (a, b)]
    assert torch.equal(*same)


def test_a_new_split_or_seed_gets_its_own_generator() -> None:
    data = _two_tone()
    spec = GeneratorSpec("vae", data.name, data.image_shape, 2, split_digest=split_digest(data))
    assert cache_path(spec) != cache_path(GeneratorSpec("vae", data.name, data.image_shape, 2, seed=1,
                                                        split_digest=split_digest(data)))
    smaller = _two_tone(n=256)
    assert split_digest(smaller) != split_digest(data)


def test_corrupted_cache_is_rebuilt() -> None:
    data = _two_tone()
    generator_for("vae", data, epochs=1, echo=lambda line: None)
    path = cache_path(GeneratorSpec("vae", data.name, data.image_shape, 2, epochs=1, split_digest=split_digest(data)))
    assert path.exists()
    path.write_bytes(b"not a checkpoint")
    lines: list[str] = []
    gen, _ = generator_for("vae", data, epochs=1, echo=lines.append)
    assert "unreadable" in lines[0] and "training it again" in lines[0]
    assert load_generator(path, data)[0].spec == gen.spec


def test_generator_for_another_dataset_is_refused() -> None:
    data = _two_tone()
    generator_for("vae", data, epochs=1, echo=lambda line: None)
    path = cache_path(GeneratorSpec("vae", data.name, data.image_shape, 2, epochs=1, split_digest=split_digest(data)))
    message = r"made for 'two_tone' \(2 classes, 1x8x8\), not for 'rgb' \(2 classes, 3x8x8\)"
    with pytest.raises(AutoaugError, match=message):
        load_generator(path, _two_tone(channels=3, name="rgb"))


def test_generate_command_trains_once_then_reuses(tmp_path: Path, cache: Path) -> None:
    import os
    import subprocess
    import sys

    def generate(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "autoaug", "generate", "--train-size", "300", "--epochs", "1",
                               *extra], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                              env={**os.environ, "AUTOAUG_CACHE": str(cache)})

    first = generate("--model", "dcgan", "--out", "grid.png")
    assert first.returncode == 0, first.stderr
    assert "dcgan epoch 1/1" in first.stdout and (tmp_path / "grid.png").stat().st_size > 0
    again = generate("--model", "dcgan", "--out", "grid.png")
    assert again.returncode == 0 and "epoch" not in again.stdout
    bad = generate("--model", "gan")
    assert bad.returncode == 2 and "unknown generator 'gan'; choose from: vae, dcgan" in bad.stderr


def test_each_batch_holds_the_exact_synthetic_share() -> None:
    from autoaug.augment.policy import OpConfig, Policy, Synthetic
    from autoaug.seeding import make_generator
    from autoaug.train.trainer import TrainConfig, Trainer

    data = _two_tone(n=512)
    gen = Generator(GeneratorSpec("vae", data.name, data.image_shape, 2))  # untrained: only the mixing is tested
    policy = Policy(ops={"invert": OpConfig(0.0, 1.0)}, synthetic=Synthetic(0.25, "vae", augment=False))
    trainer = Trainer(TrainConfig(model="smallcnn", epochs=1, batch_size=64), data, policy, generators={"vae": gen})
    # every epoch still sees every real image once
    assert trainer.batches.fake == 16 and trainer.batches.steps == 512 // 48
    state = trainer.batches.synthetic_rng.get_state()
    xb, yb = trainer.batches.batch(torch.arange(48), 0.0)
    assert xb.shape == (64, 1, 8, 8) and torch.equal(yb[:48], data.train_y[:48])
    assert torch.allclose(xb[:48], 1 - data.train_x[:48].float() / 255)  # the real images went through the policy
    rng = make_generator(0)
    rng.set_state(state)
    labels = torch.randint(2, (16,), generator=rng)
    assert torch.equal(yb[48:], labels)
    assert torch.equal(xb[48:], gen.sample(labels, rng))  # the generated ones did not (augment: false)
    first, second = (Trainer(TrainConfig(model="smallcnn", epochs=1, batch_size=64), data, policy,
                             generators={"vae": gen}).run_epoch() for _ in range(2))
    assert first["synthetic_share"] == 0.25 and first["synthetic_seconds"] > 0
    assert first["train_loss"] == second["train_loss"]  # a fixed seed replays the same batches


def test_synthetic_ratio_is_checked() -> None:
    from autoaug.augment.policy import Policy, Synthetic

    with pytest.raises(AutoaugError, match=r"synthetic ratio 1.0 is outside \[0, 1\)"):
        Synthetic(1.0)
    with pytest.raises(AutoaugError, match=r"synthetic ratio -0.1 is outside"):
        Policy.from_dict({"synthetic": {"ratio": -0.1}})
    with pytest.raises(AutoaugError, match="unknown generator 'gan'"):
        Policy.from_dict({"synthetic": {"ratio": 0.1, "generator": "gan"}})
    assert Policy.from_dict({"synthetic": {"ratio": 0.2, "generator": "dcgan"}}).synthetic == Synthetic(0.2, "dcgan")


def test_search_space_samples_the_synthetic_ratio_and_generator(tmp_path: Path) -> None:
    import optuna

    from autoaug.augment.presets import PRESETS
    from autoaug.search.space import load_space

    path = tmp_path / "s.yaml"
    path.write_text("ops: {rotate: {}}\nsynthetic: {ratio: [0.0, 0.5], generators: [vae, dcgan]}\n")
    space = load_space(str(path))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    kinds = set()
    for _ in range(20):
        policy = space.to_policy(space.suggest(study.ask()))
        assert policy.synthetic is not None and 0 < policy.synthetic.ratio <= 0.5
        kinds.add(policy.synthetic.generator)
    assert kinds == {"vae", "dcgan"}
    point = space.point(PRESETS["none"])
    assert point is not None and point["synthetic.ratio"] == 0.0 and space.to_policy(point).synthetic is None
    path.write_text("ops: {rotate: {}}\nsynthetic: {ratio: [0.0, 1.0]}\n")
    with pytest.raises(AutoaugError, match=r"synthetic.ratio: \[0.0, 1.0\] is not a range .* within \[0, 0.95\]"):
        load_space(str(path))


def test_a_space_may_search_only_the_synthetic_share(tmp_path: Path) -> None:
    import optuna

    from autoaug.search.space import load_space

    path = tmp_path / "s.yaml"
    path.write_text("ops: {}\nsynthetic: {ratio: [0.1, 0.3], epochs: 3}\n")
    space = load_space(str(path))
    policy = space.to_policy(space.suggest(optuna.create_study().ask()))
    assert policy.ops == {} and policy.synthetic.epochs == 3 and 0.1 <= policy.synthetic.ratio <= 0.3
    assert space.point(policy) is not None
    assert space.point(replace(policy, synthetic=replace(policy.synthetic, epochs=20))) is None
    path.write_text("ops: {}\nsynthetic: {ratio: [0.1, 0.3], epochs: 0}\n")
    with pytest.raises(AutoaugError, match=r"synthetic.epochs: 0 must be a positive integer"):
        load_space(str(path))
    path.write_text("ops: {}\n")
    with pytest.raises(AutoaugError, match=r"'ops' must map at least one op name"):
        load_space(str(path))


@pytest.mark.slow  # trains a generator and the ablation grid (~45 s)
def test_ablation_runs_every_ratio_and_seed_and_compares_with_ratio_zero(tmp_path: Path) -> None:
    import pandas as pd

    from autoaug.report.ablation import ablate_synthetic

    lines: list[str] = []
    folder = ablate_synthetic("fashion_mnist_small", ratios=[0.25], seeds=2, model="smallcnn", epochs=1,
                              train_size=300, generator_epochs=1, robust_size=50, out=tmp_path / "reports",
                              num_cpus=2, cpus_per_trial=1, echo=lines.append)
    written = {p.name for p in folder.iterdir()}
    assert {"ablation.md", "ablation.csv", "runs.json", "ratio.png", "samples-vae.png"} <= written
    table = pd.read_csv(folder / "ablation.csv")
    assert list(table["policy"]) == ["ratio=0", "ratio=0.25"] and list(table["n"]) == [2, 2]
    assert pd.isna(table.loc[0, "acc_diff"]) and table.loc[1, "acc_verdict"] in (
        "better", "worse", "no significant difference")
    saved = json.loads((folder / "runs.json").read_text())
    records = saved["records"]
    gens = saved["generators"]["generators"]
    assert [(g["kind"], g["epochs"], g["seed"]) for g in gens] == [("vae", 1, 1), ("vae", 1, 2)]
    assert all(0 <= v["synthetic_acc"] <= 1 and v["frechet"] >= 0 for v in [*gens, saved["generators"]["real"]])
    assert all(g["seconds"] > 0 for g in gens)
    shares = {(r["policy"], r["seed"]): r["history"][0]["synthetic_share"] for r in records}
    assert shares == {("ratio=0", 1): 0.0, ("ratio=0", 2): 0.0, ("ratio=0.25", 1): 0.25, ("ratio=0.25", 2): 0.25}
    assert sum("generator" in line and "ready" in line for line in lines) == 1


def test_frechet_distance_of_gaussians() -> None:
    from autoaug.data.synthetic import frechet_distance

    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    b = torch.randn(20000, 3, generator=g, dtype=torch.float64) + torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b) == pytest.approx(1.0, abs=0.05)  # unit covariances: only the mean moved by 1
    c = 2 * torch.randn(20000, 3, generator=g, dtype=torch.float64)
    assert frechet_distance(a, c) == pytest.approx(3 * (1 + 4 - 2 * 2), abs=0.1)  # per dim: 1 + 4 - 2*sqrt(4)


def test_fidelity_tells_a_trained_generator_from_an_untrained_one() -> None:
    from autoaug.data.synthetic import fidelity
    from autoaug.train.trainer import TrainConfig, train

    data = _two_tone()
    classifier = train(TrainConfig(model="smallcnn", epochs=2, batch_size=64), data, "none").model
    trained, _ = generator_for("vae", data, epochs=15, echo=lambda line: None)
    untrained = Generator(trained.spec)
    good, bad = (fidelity(g, classifier, data.train_x, n=512) for g in (trained, untrained))
    assert good["synthetic_acc"] > 0.9 and good["frechet"] < bad["frechet"]


@pytest.mark.slow  # a report with generator training (~30 s beyond the shared search)
def test_report_with_a_synthetic_policy_has_the_synthetic_section(search, tmp_path: Path) -> None:
    import shutil

    import pandas as pd

    from autoaug.augment.policy import Policy, Synthetic
    from autoaug.report import make_report
    from autoaug.report.finished import SEARCH_FILES

    result, _ = search
    copy = tmp_path / "search"  # without its mlflow.json: this report is not logged beside the other one
    copy.mkdir()
    for name in SEARCH_FILES:
        shutil.copy2(result.output_dir / name, copy / name)
    Policy(ops={}, name="vae-0.25", synthetic=Synthetic(0.25, "vae", epochs=1)).save(tmp_path / "vae.json")
    rep = make_report(copy, seeds=2, out=tmp_path / "reports", robust_size=50, num_cpus=2, cpus_per_trial=1,
                      compare=[f"vae-0.25={tmp_path / 'vae.json'}"], echo=lambda line: None)
    assert {"ratio.png", "samples-vae.png"} <= {p.name for p in rep.folder.iterdir()}
    text = (rep.folder / "report.md").read_text()
    assert "## Synthetic data" in text and "| vae-0.25 | vae (1 epochs) | 0.250 | — |" in text
    saved = json.loads((rep.folder / "runs.json").read_text())["generators"]
    seeds = sorted({r["seed"] for r in rep.records})  # the report's own (autoaug.report.seeds)
    assert sorted((g["kind"], g["epochs"], g["seed"]) for g in saved["generators"]) == [("vae", 1, s) for s in seeds]
    table = pd.read_csv(rep.folder / "comparison.csv").set_index("policy")
    assert table.loc["vae-0.25", "synthetic_time_share_mean"] > 0 == table.loc["none", "synthetic_time_share_mean"]
