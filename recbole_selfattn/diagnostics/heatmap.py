"""The picture of an :class:`~recbole_selfattn.diagnostics.explain.Explanation`:
its weight matrix as a labelled heatmap (values written in the cells while
they fit), its notes below. Drawn with matplotlib's object-oriented API, which
renders with Agg and needs no display."""

# Cells are annotated up to this many rows and columns.
ANNOTATE_UP_TO = 16


def draw(explanation, file):
    """Write ``explanation`` as a PNG to the open binary ``file``."""
    from matplotlib.figure import Figure

    weights = explanation.weights
    n_rows, n_columns = weights.shape
    size = (3.0 + min(0.7 * n_columns, 18.0), 1.8 + max(0.7, min(0.45 * n_rows, 14.0)))  # inches
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    top = max(float(weights.max()), 1e-12)
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=top, aspect="auto")
    fig.colorbar(image, ax=ax, label="weight")
    slanted = n_columns > 4 or max(len(c) for c in explanation.columns) > 8
    ax.set_xticks(range(n_columns), explanation.columns, rotation=40 if slanted else 0,
                  ha="right" if slanted else "center")
    ax.set_yticks(range(n_rows), explanation.rows)
    ax.set_xlabel(explanation.column_axis)
    ax.set_ylabel(explanation.row_axis)
    ax.set_title(explanation.title, fontsize=10)
    if n_rows <= ANNOTATE_UP_TO and n_columns <= ANNOTATE_UP_TO:
        for r in range(n_rows):
            for c in range(n_columns):
                ax.text(c, r, f"{weights[r, c]:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if weights[r, c] > 0.6 * top else "white")
    # the notes hang below the x-axis label, at the axes' left edge, outside the
    # constrained layout (which would shrink the heatmap to their width); the
    # picture's tight bounding box grows to hold them
    notes = ax.annotate("\n".join(explanation.notes), xy=(0.0, 0.0), xycoords=("axes fraction", ax.xaxis.label),
                xytext=(0, -8), textcoords="offset points", va="top", ha="left", family="monospace", fontsize=8)
    notes.set_in_layout(False)
    fig.savefig(file, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15, bbox_extra_artists=[notes])
