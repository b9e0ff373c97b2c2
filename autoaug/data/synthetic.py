"""Synthetic images from small class-conditional generative models, trained once per training split.

:data:`GENERATORS`: ``vae`` (a conditional variational autoencoder) and ``dcgan`` (a conditional DCGAN).
Both decode ``(z [B, latent], labels [B])`` into float images ``[B, C, H, W]`` in ``[0, 1]`` with the same
decoder (H and W divisible by 4). They train on the training split only (Adam, learning rate 0.0002,
beta1 0.5, batch 64), and the result is cached on disk under ``$AUTOAUG_CACHE/generators``, keyed by the
generator, its settings, the seed and a digest of the training split, so every trial of a search reuses it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from autoaug.data.cache import cache_dir
from autoaug.data.datasets import DatasetSplits
from autoaug.data.names import GENERATORS
from autoaug.errors import AutoaugError, choice_error
from autoaug.files import atomic
from autoaug.seeding import derive_seed, make_generator

FORMAT = 1  # bump when the networks change: old cache entries are then ignored


def _label_map(embed: nn.Embedding, y: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``[B, 1, H, W]``: a learned per-class plane, the conditioning channel of encoders and critics."""
    return embed(y).view(-1, 1, h, w)


class Decoder(nn.Module):
    """``(z [B, latent], y [B]) -> [B, C, H, W]`` in [0, 1]: label embedding, linear to H/4 x W/4, two
    transposed convolutions."""

    def __init__(self, latent: int, num_classes: int, shape: tuple[int, int, int], width: int = 64) -> None:
        super().__init__()
        c, h, w = shape
        self.base = (2 * width, h // 4, w // 4)
        self.embed = nn.Embedding(num_classes, 16)
        self.fc = nn.Linear(latent + 16, 2 * width * (h // 4) * (w // 4))
        self.net = nn.Sequential(
            nn.BatchNorm2d(2 * width), nn.ReLU(True),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(True),
            nn.ConvTranspose2d(width, c, 4, 2, 1), nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(torch.cat([z, self.embed(y)], 1)).view(-1, *self.base))


class Features(nn.Module):
    """``(x [B, C, H, W], y [B]) -> [B, out]``: the image and a class plane through two strided convolutions."""

    def __init__(self, num_classes: int, shape: tuple[int, int, int], out: int, width: int = 64) -> None:
        super().__init__()
        c, h, w = shape
        self.hw = (h, w)
        self.embed = nn.Embedding(num_classes, h * w)
        self.net = nn.Sequential(
            nn.Conv2d(c + 1, width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2, True),
            nn.Flatten(), nn.Linear(2 * width * (h // 4) * (w // 4), out),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, _label_map(self.embed, y, *self.hw)], 1))


@dataclass(frozen=True)
class GeneratorSpec:
    """What a trained generator is for and how it was trained (stored with its weights, part of its cache key)."""

    kind: str
    dataset: str
    shape: tuple[int, int, int]
    num_classes: int
    seed: int = 0
    epochs: int = 20
    latent: int = 32
    width: int = 64
    batch_size: int = 64
    split_digest: str = ""

    def __post_init__(self) -> None:
        if self.kind not in GENERATORS:
            raise choice_error("generator", self.kind, GENERATORS)
        _, h, w = self.shape
        if h % 4 or w % 4:
            raise AutoaugError(f"generators need image sides divisible by 4, got {h}x{w}")


class Generator(nn.Module):
    """A trained decoder and its :class:`GeneratorSpec`; :meth:`sample` makes images for given labels."""

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__()
        self.spec = spec
        self.decoder = Decoder(spec.latent, spec.num_classes, spec.shape, spec.width)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Float images ``[B, C, H, W]`` in [0, 1] for ``labels [B]``, on the labels' device."""
        self.decoder.eval()
        z = torch.randn(len(labels), self.spec.latent, generator=generator, device=labels.device)
        return self.decoder(z, labels)


def split_digest(data: DatasetSplits) -> str:
    """A digest of the training split (images and labels): a generator is only reused on the same data."""
    h = hashlib.sha256()
    for t in (data.train_x, data.train_y):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _vae_step(decoder: Decoder, encoder: Features, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
              latent: int) -> float:
    stats = encoder(x, y)
    mu, logvar = stats[:, :latent], stats[:, latent:].clamp(-10, 10)
    z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
    recon = F.binary_cross_entropy(decoder(z, y), x, reduction="sum") / len(x)
    kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum() / len(x)
    loss = recon + kl
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def _gan_step(decoder: Decoder, critic: Features, opts: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
              x: torch.Tensor, y: torch.Tensor, latent: int) -> float:
    opt_g, opt_d = opts
    z = torch.randn(len(x), latent, device=x.device)
    fake = decoder(z, y)
    ones, zeros = torch.ones(len(x), 1, device=x.device), torch.zeros(len(x), 1, device=x.device)
    d_loss = (F.binary_cross_entropy_with_logits(critic(x, y), ones)
              + F.binary_cross_entropy_with_logits(critic(fake.detach(), y), zeros))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    g_loss = F.binary_cross_entropy_with_logits(critic(fake, y), ones)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return g_loss.item()


def train_generator(spec: GeneratorSpec, data: DatasetSplits, device: str | torch.device = "cpu",
                    echo: Callable[[str], None] = print) -> Generator:
    """Train ``spec.kind`` on ``data``'s training split (never val or test)."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(derive_seed(spec.seed, "generator", spec.kind))
        gen = Generator(spec).to(device)
        latent = spec.latent
        if spec.kind == "vae":
            other = Features(spec.num_classes, spec.shape, 2 * latent, spec.width).to(device)
            opt = torch.optim.Adam([*gen.parameters(), *other.parameters()], lr=2e-4, betas=(0.5, 0.999))
            step = lambda x, y: _vae_step(gen.decoder, other, opt, x, y, latent)  # noqa: E731
        else:
            other = Features(spec.num_classes, spec.shape, 1, spec.width).to(device)
            opts = (torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999)),
                    torch.optim.Adam(other.parameters(), lr=2e-4, betas=(0.5, 0.999)))
            step = lambda x, y: _gan_step(gen.decoder, other, opts, x, y, latent)  # noqa: E731
        x_all, y_all = data.train_x.to(device), data.train_y.to(device)
        n, bs = len(y_all), min(spec.batch_size, len(y_all))
        order = make_generator(derive_seed(spec.seed, "generator-batches"))
        gen.train(), other.train()
        for epoch in range(spec.epochs):
            t0, losses = time.perf_counter(), []
            perm = torch.randperm(n, generator=order).to(device)
            for i in range(n // bs):
                idx = perm[i * bs : (i + 1) * bs]
                losses.append(step(x_all[idx].float().div_(255), y_all[idx]))
            echo(f"{spec.kind} epoch {epoch + 1}/{spec.epochs}: loss {sum(losses) / len(losses):.4f}, "
                 f"{time.perf_counter() - t0:.1f} s")
    return gen.eval()


def cache_path(spec: GeneratorSpec) -> Path:
    key = hashlib.sha256(repr((FORMAT, sorted(asdict(spec).items()))).encode()).hexdigest()[:16]
    return cache_dir() / "generators" / f"{spec.dataset}-{spec.kind}-{key}.pt"


def save_generator(gen: Generator, path: Path, seconds: float) -> None:
    """Write atomically: weights, spec and training time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic(path) as tmp:
        torch.save({"format": FORMAT, "spec": asdict(gen.spec), "seconds": seconds,
                    "decoder": gen.decoder.state_dict()}, tmp)


def load_generator(path: str | os.PathLike[str], data: DatasetSplits | None = None,
                   device: str | torch.device = "cpu") -> tuple[Generator, float]:
    """A saved generator and its training seconds; with ``data``, checks it was made for that dataset's
    name, image shape and classes. Raises :class:`AutoaugError` for a mismatch, ``ValueError`` for an
    unreadable file."""
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        spec = GeneratorSpec(**{**saved["spec"], "shape": tuple(saved["spec"]["shape"])})
        gen = Generator(spec)
        gen.decoder.load_state_dict(saved["decoder"])
    except (AutoaugError, FileNotFoundError):
        raise
    except Exception as e:
        raise ValueError(f"generator file {str(path)!r} is unreadable: {e}") from None
    if data is not None:
        want = (data.name, data.image_shape, data.num_classes)
        if (spec.dataset, spec.shape, spec.num_classes) != want:
            raise AutoaugError(
                f"generator {str(path)!r} was made for {spec.dataset!r} ({spec.num_classes} classes, "
                f"{'x'.join(map(str, spec.shape))}), not for {data.name!r} ({data.num_classes} classes, "
                f"{'x'.join(map(str, data.image_shape))})")
    return gen.to(device).eval(), float(saved["seconds"])


def generator_for(kind: str, data: DatasetSplits, *, seed: int = 0, epochs: int = 20,
                  device: str | torch.device = "cpu", echo: Callable[[str], None] = print) -> tuple[Generator, float]:
    """The cached generator of ``kind`` for ``data``'s training split, trained now when there is none (or
    the cached file is unreadable: it is rebuilt). Returns it and its training seconds."""
    spec = GeneratorSpec(kind, data.name, data.image_shape, data.num_classes, seed=seed, epochs=epochs,
                         split_digest=split_digest(data))
    path = cache_path(spec)
    if path.exists():
        try:
            return load_generator(path, data, device)
        except ValueError as e:
            echo(f"warning: {e}; training it again")
    t0 = time.perf_counter()
    gen = train_generator(spec, data, device, echo)
    seconds = time.perf_counter() - t0
    save_generator(gen, path, seconds)
    return gen, seconds


def sample_grid(gen: Generator, per_class: int, path: Path, seed: int = 0) -> Path:
    """A PNG with ``per_class`` samples in each row, one row per class."""
    from torchvision.utils import save_image

    device = next(gen.parameters()).device
    labels = torch.arange(gen.spec.num_classes, device=device).repeat_interleave(per_class)
    images = gen.sample(labels, make_generator(seed, device))
    save_image(images, path, nrow=per_class, padding=1)
    return path


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to features ``a [N, D]`` and ``b [M, D]`` (as FID, in float64):
    ``|mu_a - mu_b|^2 + tr(C_a) + tr(C_b) - 2 tr((C_a^1/2 C_b C_a^1/2)^1/2)``."""
    a, b = a.double(), b.double()
    diff = a.mean(0) - b.mean(0)
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(ca)
    root = v @ torch.diag(w.clamp(min=0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root @ cb @ root).clamp(min=0).sqrt().sum()
    return float(diff @ diff + ca.trace() + cb.trace() - 2 * cross)


@torch.no_grad()
def penultimate(classifier: nn.Module, batches: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs of ``classifier``'s last linear layer ``[N, D]`` (float64, CPU) and its logits ``[N, K]`` for
    float image batches in [0, 1]."""
    last = [m for m in classifier.modules() if isinstance(m, nn.Linear)][-1]
    features: list[torch.Tensor] = []
    hook = last.register_forward_hook(lambda _m, inputs, _out: features.append(inputs[0].detach().double().cpu()))
    classifier.eval()
    try:
        logits = [classifier(x).cpu() for x in batches]
    finally:
        hook.remove()
    return torch.cat(features), torch.cat(logits)


def _real_batches(x: torch.Tensor, device: torch.device) -> Iterator[torch.Tensor]:
    for i in range(0, len(x), 256):
        yield x[i : i + 256].to(device).float().div_(255)


def fidelity(gen: Generator, classifier: nn.Module, real_x: torch.Tensor, n: int = 2000,
             seed: int = 0) -> dict[str, float]:
    """How real the samples look to a classifier trained on real data: its accuracy on ``n`` generated
    images (classes in turn), and the Fréchet distance between its penultimate features of ``real_x``
    (uint8) and of the generated images."""
    device = next(classifier.parameters()).device
    rng = make_generator(seed, device)
    labels = torch.arange(n, device=device) % gen.spec.num_classes
    fake, logits = penultimate(classifier, (gen.sample(labels[i : i + 256], rng) for i in range(0, n, 256)))
    real, _ = penultimate(classifier, _real_batches(real_x, device))
    return {"synthetic_acc": float((logits.argmax(1) == labels.cpu()).float().mean()),
            "frechet": frechet_distance(real, fake)}


def real_frechet(classifier: nn.Module, a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between two sets of real uint8 images, in ``classifier``'s features: the floor
    that a generator's distance is read against."""
    device = next(classifier.parameters()).device
    return frechet_distance(penultimate(classifier, _real_batches(a, device))[0],
                            penultimate(classifier, _real_batches(b, device))[0])
