"""The device-independent parts of the GPU path: resources from the cluster, generator devices, checkpoints
restored from any device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autoaug.augment.augmenter import Augmenter, apply
from autoaug.data.datasets import DEFAULT_DATASET, load_dataset
from autoaug.errors import AutoaugError
from autoaug.search.cluster import trial_resources, widened
from autoaug.train.trainer import TrainConfig, Trainer


@pytest.mark.parametrize(
    ("cluster", "gpus", "want", "cap"),
    [
        ({"CPU": 16, "GPU": 1}, None, {"cpu": 1.0, "gpu": 0.25}, 0.25),  # four trials a card, capped to a quarter
        ({"CPU": 16, "GPU": 8}, 1.0, {"cpu": 1.0, "gpu": 1.0}, None),  # a whole card: no cap
        ({"CPU": 16, "GPU": 8}, 2.0, {"cpu": 1.0, "gpu": 2.0}, None),  # several cards: no cap above 1
        ({"CPU": 2}, None, {"cpu": 1.0, "gpu": 0.0}, None),
    ],
)
def test_trial_resources_come_from_the_cluster(cluster: dict, gpus: float | None, want: dict,
                                               cap: float | None) -> None:
    """The cluster's GPUs count, whether or not the driver has one (a CPU-only head node)."""
    assert trial_resources(None, gpus, cluster) == (want, cap)


def test_trial_asking_for_more_than_the_cluster_has() -> None:
    with pytest.raises(AutoaugError, match="2 gpus per trial is more than the 1 this Ray cluster has"):
        trial_resources(None, 2.0, {"CPU": 4, "GPU": 1})


@pytest.mark.parametrize(
    ("resources", "runs", "cluster", "node_cpus", "cpu"),
    [
        ({"cpu": 1.0, "gpu": 0.0}, 1, {"CPU": 2}, 2, 2.0),  # a lone selection re-run on a laptop: both cores
        ({"cpu": 1.0, "gpu": 0.0}, 2, {"CPU": 2}, 2, 1.0),  # as many runs as fit: as they were
        ({"cpu": 1.0, "gpu": 0.0}, 1, {"CPU": 4}, 2, 2.0),  # two nodes of two: no more than one node has
        ({"cpu": 1.0, "gpu": 0.0}, 3, {"CPU": 8}, 8, 2.0),  # whole multiples of the share
        ({"cpu": 2.0, "gpu": 0.0}, 1, {"CPU": 16}, 16, 16.0),
        ({"cpu": 1.0, "gpu": 0.25}, 1, {"CPU": 16, "GPU": 1}, 16, 1.0),  # GPU runs keep their share
    ],
)
def test_fewer_runs_than_fit_share_out_the_idle_cpus(resources: dict, runs: int, cluster: dict, node_cpus: float,
                                                     cpu: float) -> None:
    assert widened(resources, runs, cluster, node_cpus) == {**resources, "cpu": cpu}


def test_augmenter_keeps_its_generator_when_the_device_is_named_differently() -> None:
    """``cpu:0`` (like ``cuda`` for ``cuda:0``) is the generator's device: no rebuilt generator, no repeated draws."""
    aug = Augmenter("trivialaugment", seed=0)
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    first = apply(x, aug.sample(x.shape, device="cpu:0"))
    generator = aug.generator("cpu:0")
    second = apply(x, aug.sample(x.shape, device=torch.device("cpu", 0)))
    assert aug.generator("cpu") is generator
    assert not torch.equal(first, second)


def test_a_checkpoint_loaded_onto_the_device_resumes_exactly(tmp_path: Path) -> None:
    """Saved, then loaded with ``map_location`` = the trainer's device (as PBT does): the resumed run equals the
    uninterrupted one."""
    data = load_dataset(DEFAULT_DATASET, train_size=400, val_size=100, seed=0)
    cfg = TrainConfig(model="smallcnn", epochs=2, batch_size=64)
    straight = Trainer(cfg, data, "randaugment")
    straight.run_epoch()
    torch.save(straight.state_dict(), tmp_path / "state.pt")
    expected = straight.run_epoch()
    resumed = Trainer(cfg, data, "randaugment")
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", map_location=resumed.device))
    again = resumed.run_epoch()
    assert again["train_loss"] == expected["train_loss"] and again["val_acc"] == expected["val_acc"]
