"""What ``helixserve train`` prints once a model is published.

Contract: :func:`print_summary` prints, for a training :class:`~helixserve.training.publish.
Outcome` (duck-typed: this module does not import the training layer), the metrics table titled
``NAME@VERSION``, the rows the metrics were computed on (``Outcome.held_out``: the internal test
split, so the figures are not confused with ones on new data), the time, the ONNX parity and the
refused records, the cross-validation table when there is one, and where the model went: the
version published and the store's URI. Long lines are not wrapped (logs stay greppable).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table


def print_summary(console: Console, outcome: Any, store_uri: str) -> None:
    """Print the summary of a published training run; see the module contract."""
    manifest = outcome.manifest
    label = f"{manifest.name}@{manifest.version}"
    table = Table("metric (internal test split)", "value", title=label)
    for key, value in sorted(manifest.metrics.items()):
        table.add_row(key, f"{value:.4f}")
    console.print(table)

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    if outcome.held_out:
        say(f"metrics on {outcome.held_out}")
    lineage = manifest.lineage
    if lineage is not None and lineage.how == "resume":
        epoch = lineage.details.get("resumed_from_epoch", "?")
        shown = f"{epoch:g}" if isinstance(epoch, float) else epoch
        say(f"resumed after epoch {shown} of the interrupted run")
    say(
        f"trained and published in {outcome.seconds:.1f} s; ONNX parity {outcome.parity:.2g}; "
        f"{outcome.refused:,} records refused by validation"
    )
    for note in outcome.notes:  # the input rule the data decided, warnings, a refit
        say(note)
    if outcome.cv_table:
        console.print(Markdown(outcome.cv_table))
    for item in outcome.refused_examples:
        say(f"  refused: {item.error}")
    say(f"published {label} to the store {store_uri}")
