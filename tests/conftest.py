from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test run decodes into its own cache folder; the user's cache is never touched."""
    os.environ["AUTOAUG_CACHE"] = str(tmp_path_factory.mktemp("autoaug-cache"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def photo() -> torch.Tensor:
    """Real RGB photos (scikit-image), resized to 32x32: float ``[3, 3, 32, 32]`` in [0, 1]."""
    from skimage import data

    imgs = [torch.from_numpy(f()).permute(2, 0, 1).float() / 255 for f in (data.astronaut, data.coffee, data.chelsea)]
    return torch.stack([torch.nn.functional.interpolate(i[None], size=(32, 32), mode="area")[0] for i in imgs])
