"""Where random numbers are drawn: on the device of the generator that draws them."""

from __future__ import annotations

import torch


def draw_device(generator: torch.Generator | None) -> torch.device:
    """Device on which ``generator`` draws (the CPU for ``None``, torch's default generator).

    Training uses a generator on the data's device, so that on a GPU mini-batch indices, Brownian
    increments and bridge times are drawn there, with no copy from the host; on the CPU the
    streams are those of a CPU generator.
    """
    return torch.device("cpu") if generator is None else generator.device


def draw_noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Draw standard normal numbers shaped like ``like`` where ``generator`` draws; return them on ``like``'s device."""
    return torch.randn(like.shape, generator=generator, device=draw_device(generator), dtype=like.dtype).to(like.device)


def draw_rademacher(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Draw ±1 with equal probability, shaped like ``like``, where ``generator`` draws; return them on ``like``.

    The probes of Hutchinson's trace estimates, in ``like``'s dtype and on its device.
    """
    return torch.randint(0, 2, like.shape, generator=generator, device=draw_device(generator)).to(like) * 2 - 1
