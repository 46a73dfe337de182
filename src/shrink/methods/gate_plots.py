"""Figures of a gate-training run from its gates CSV (step, layer, head, p_open): curves and a GIF.

Task-free: NER's head gates and the translation encoder's head gates log the same columns.
"""

import numpy as np
import pandas as pd

from ..core.atomic import atomic_path
from ..core.figures import plt, save_figure


def plot_gate_curves(gates_csv, out, title=""):
    df = pd.read_csv(gates_csv)
    layers = sorted(df["layer"].unique())
    fig, axes = plt.subplots(1, len(layers), figsize=(2.6 * len(layers), 3), sharey=True, squeeze=False)
    for ax, layer in zip(axes[0], layers):
        for head, g in df[df["layer"] == layer].groupby("head"):
            ax.plot(g["step"], g["p_open"], lw=1, label=str(head))
        ax.set(title=f"layer {layer}", xlabel="step", ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("P(gate open)")
    fig.suptitle(f"Head gate open probabilities {title}", y=1.03)
    save_figure(fig, out)


def gate_maps(gates_csv):
    """(steps, array steps x layers x heads) of P(open)."""
    df = pd.read_csv(gates_csv)
    steps = sorted(df["step"].unique())
    cube = df.pivot_table(index=["step", "layer"], columns="head", values="p_open").to_numpy()
    return steps, cube.reshape(len(steps), -1, cube.shape[1])


def gate_gif(gates_csv, out, title="", max_frames=60):
    import imageio.v2 as imageio

    steps, cube = gate_maps(gates_csv)
    picks = np.unique(np.linspace(0, len(steps) - 1, min(max_frames, len(steps))).round().astype(int))
    frames = []
    for i in picks:
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
        im = ax.imshow(cube[i], vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set(xlabel="head", ylabel="layer", title=f"{title} step {steps[i]}: {int((cube[i] > 0.5).sum())} open")
        fig.colorbar(im, ax=ax, label="P(open)")
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)
    with atomic_path(out) as tmp:
        imageio.mimsave(tmp, frames, format="GIF", duration=0.25, loop=0)
