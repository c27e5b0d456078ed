"""Figures without pyplot: save_figure writes a whole PNG atomically, arranges the axes on request and
leaves pyplot's figure manager alone."""

import matplotlib.pyplot as plt
import numpy as np

from dltheory.core.figures import new_figure, save_figure


def _labelled_figure():
    fig, axes = new_figure(1, 2, figsize=(4, 3))
    for ax in axes:
        ax.plot([0, 1], [0, 1])
        ax.set_xlabel("a long x label that needs room")
        ax.set_ylabel("a long y label")
        ax.set_title("title")
    return fig, axes


def test_save_figure_writes_a_png_and_only_the_png(tmp_path):
    fig, _ = _labelled_figure()
    path = save_figure(fig, tmp_path / "deep" / "figure.png", dpi=40)
    assert path == tmp_path / "deep" / "figure.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["figure.png"]  # no temporary file left
    assert not fig.axes  # closed: the figure was cleared


def test_tight_layout_arranges_the_axes_before_saving(tmp_path):
    plain, plain_axes = _labelled_figure()
    before = [ax.get_position().bounds for ax in plain_axes]
    save_figure(plain, tmp_path / "plain.png", dpi=40, close=False)
    assert [ax.get_position().bounds for ax in plain_axes] == before

    tight, tight_axes = _labelled_figure()
    save_figure(tight, tmp_path / "tight.png", dpi=40, tight_layout=True, close=False)
    after = np.array([ax.get_position().bounds for ax in tight_axes])
    assert not np.allclose(after, np.array(before))
    assert np.all(after[:, 0] > 0) and np.all(after[:, 0] + after[:, 2] < 1)  # labels fit inside


def test_figures_are_not_registered_with_pyplot():
    open_before = plt.get_fignums()
    fig, _ = new_figure()
    assert plt.get_fignums() == open_before
    assert fig.canvas.get_supported_filetypes()["png"]
