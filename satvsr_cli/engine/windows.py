"""Temporal windows: which input frames feed the network for each output frame."""

from __future__ import annotations

from satvsr_cli.options import TemporalPadding, choice

__all__ = ["TemporalPadding", "frame_indices"]


def frame_indices(
    center: int, n_total: int, n_frames: int = 5,
    padding: TemporalPadding | str = TemporalPadding.centre,
) -> list[int]:
    """Return the input frame indices of the window centred on ``center``.

    A neighbour that falls outside ``[0, n_total)`` is replaced according to ``padding``:

    - ``"centre"`` (the papers' protocol): by the centre frame itself.
      ``frame_indices(0, 100)`` → ``[0, 0, 0, 1, 2]``; ``frame_indices(1, 100)`` → ``[1, 0, 1, 2, 3]``;
      ``frame_indices(98, 100)`` → ``[96, 97, 98, 99, 98]``; ``frame_indices(99, 100)`` →
      ``[97, 98, 99, 99, 99]``.
    - ``"reflect"``: mirrored about the clip end without repeating it.
      ``frame_indices(0, 100, padding="reflect")`` → ``[2, 1, 0, 1, 2]``;
      ``frame_indices(99, 100, padding="reflect")`` → ``[97, 98, 99, 98, 97]``.
    - ``"replicate"``: by the nearest clip end.
      ``frame_indices(0, 100, padding="replicate")`` → ``[0, 0, 0, 1, 2]``;
      ``frame_indices(1, 100, padding="replicate")`` → ``[0, 0, 1, 2, 3]``.

    Clips shorter than the window work in every mode (reflection falls back to the clip end
    when the mirror would leave the clip again).

    Raises:
        ValueError: for an even ``n_frames``, an empty clip, ``center`` outside the clip or an
            unknown padding.
    """
    if n_frames < 1 or n_frames % 2 == 0:
        raise ValueError(f"n_frames must be odd and positive, got {n_frames}")
    if n_total < 1:
        raise ValueError("the clip has no frames")
    if not 0 <= center < n_total:
        raise ValueError(f"centre frame {center} is outside the clip of {n_total} frames")
    padding = choice(TemporalPadding, padding)  # an OptionError is a ValueError
    half = n_frames // 2
    out: list[int] = []
    for i in range(center - half, center + half + 1):
        if 0 <= i < n_total:
            out.append(i)
        elif padding == "centre":
            out.append(center)
        elif padding == "replicate":
            out.append(min(max(i, 0), n_total - 1))
        else:  # reflect
            j = -i if i < 0 else 2 * (n_total - 1) - i
            out.append(min(max(j, 0), n_total - 1))
    return out
