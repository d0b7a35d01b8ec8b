import pytest

from satvsr_cli.engine.windows import frame_indices


@pytest.mark.parametrize(
    ("t", "expected"),
    [(0, [0, 0, 0, 1, 2]), (1, [1, 0, 1, 2, 3]), (50, [48, 49, 50, 51, 52]),
     (98, [96, 97, 98, 99, 98]), (99, [97, 98, 99, 99, 99])],
)
def test_centre_padding_matches_published_protocol(t, expected):
    assert frame_indices(t, 100) == expected


def test_reflect_and_replicate():
    assert frame_indices(0, 100, padding="reflect") == [2, 1, 0, 1, 2]
    assert frame_indices(99, 100, padding="reflect") == [97, 98, 99, 98, 97]
    assert frame_indices(1, 100, padding="replicate") == [0, 0, 1, 2, 3]
    assert frame_indices(99, 100, padding="replicate") == [97, 98, 99, 99, 99]


@pytest.mark.parametrize("padding", ["centre", "reflect", "replicate"])
@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_short_clips_stay_inside(padding, n):
    for t in range(n):
        idx = frame_indices(t, n, padding=padding)
        assert len(idx) == 5 and idx[2] == t
        assert all(0 <= i < n for i in idx)


def test_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        frame_indices(0, 10, n_frames=4)
    with pytest.raises(ValueError, match="outside"):
        frame_indices(10, 10)
    with pytest.raises(ValueError, match="no frames"):
        frame_indices(0, 0)
    with pytest.raises(ValueError, match="unknown temporal padding"):
        frame_indices(0, 10, padding="wrap")  # type: ignore[arg-type]
