"""View helpers of the workspace pages: reading their forms, and what the templates show.

Contract:
- Forms arrive as text (:class:`~starlette.datastructures.FormData` or query parameters);
  these helpers turn them into what :mod:`helixserve.workspace` takes, and every refusal into a
  message keyed by the form field it belongs to (:func:`field_of`), which the page shows next
  to that field. Nothing here opens the database.
- Hyper-parameters: :func:`param_fields` generates the form of a recipe from its declarations
  (:func:`~helixserve.params.declare.declarations`: type, default, choices, range, help) and
  :func:`read_params` reads it back with each value checked by its declaration; only values
  that differ from the declared default are kept (as ``helixserve train --param`` does).
- Block stacks travel as JSON text (the no-JavaScript editor is a textarea):
  :func:`read_blocks`, :func:`blocks_text`; :func:`stack_view` is a stack's table (each
  block's fields, output shape and parameters) or the message naming the refused block.
- Subsets: :func:`subset_spec` builds a :data:`~helixserve.workspace.subsets.SubsetSpec` from the
  subset form (``where`` / ``fraction`` / ``rest`` / ``all``); a text that reads as a number is
  a number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import ImmutableMultiDict

from helixserve.errors import HelixError, InputError, InvalidBlocks, InvalidName, NameTaken
from helixserve.params.declare import InvalidParameter, Param, declarations
from helixserve.params.recipes import DECLARED
from helixserve.workspace.blocks import block_parameters, shape_text
from helixserve.workspace.presets import PRESETS, check_recipe_blocks, presets, recipe_input

NEURAL = tuple(PRESETS)
_BLOCK_NO = re.compile(r"^block (\d+)")


Form = ImmutableMultiDict[str, Any]
"""What a posted form (``FormData``) and query parameters (``QueryParams``) both are."""


def text(form: Form, name: str, default: str = "") -> str:
    """A form field as stripped text (a missing or non-text field: ``default``)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def texts(form: Form, name: str) -> list[str]:
    """Every non-empty value of a repeated field (checkboxes, multiple selects)."""
    return [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]


def field_of(err: HelixError, default: str = "form") -> str:
    """The form field an error belongs to."""
    if isinstance(err, InvalidName | NameTaken):
        return "name"
    if isinstance(err, InvalidBlocks):
        return "blocks"
    found = getattr(err, "field", None) if isinstance(err, InputError) else None
    return str(found) if found else default


def errors_of(err: HelixError, default: str = "form") -> dict[str, str]:
    return {field_of(err, default): str(err)}


# --- hyper-parameters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamField:
    """One generated form field (``widget``: select, number or text)."""

    name: str
    widget: str
    value: str
    help: str
    allowed: str
    choices: list[str] = field(default_factory=list)
    low: float | None = None
    high: float | None = None
    step: str = "any"


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field(declared: Param, value: str) -> ParamField:
    data = declared.as_dict()
    kinds = declared.kinds
    common = {"name": declared.name, "value": value, "help": data["help"]}
    allowed = declared.allowed()
    choices = [as_text(c) for c in data["choices"] or []]
    if kinds == ("bool",):
        choices = ["true", "false"]
    if choices and len(kinds) == 1:
        if declared.optional:
            choices = ["", *choices]
        return ParamField(widget="select", choices=choices, allowed=allowed, **common)
    if data["range"] is not None and kinds in (("int",), ("float",)):
        low, high = data["range"]
        step = "1" if kinds == ("int",) else "any"
        return ParamField(widget="number", low=low, high=high, step=step, allowed=allowed, **common)
    return ParamField(widget="text", allowed=allowed, **common)


def param_fields(recipe: str, values: Mapping[str, Any]) -> list[ParamField]:
    """The form of ``recipe``'s hyper-parameters; ``values``: chosen values (text or JSON
    values), the declared defaults for the others."""
    if recipe not in DECLARED:
        return []
    out = []
    for declared in declarations(DECLARED[recipe]):
        chosen = values.get(declared.name, declared.default)
        out.append(_field(declared, chosen if isinstance(chosen, str) else as_text(chosen)))
    return out


def param_texts(form: Form, recipe: str) -> dict[str, str]:
    """The ``params.<name>`` fields of a form, as text."""
    if recipe not in DECLARED:
        return {}
    names = [d.name for d in declarations(DECLARED[recipe])]
    return {n: text(form, f"params.{n}") for n in names if form.get(f"params.{n}") is not None}


def read_params(recipe: str, given: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The values that differ from the defaults, and ``params.<name>`` -> message for each
    value its declaration refuses."""
    params: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if recipe not in DECLARED:
        return params, errors
    for declared in declarations(DECLARED[recipe]):
        raw = given.get(declared.name)
        if raw is None:
            continue
        value = None if raw == "" and declared.optional else declared.parse(raw)
        try:
            declared.check(value)
        except InvalidParameter as err:
            errors[f"params.{declared.name}"] = str(err)
            continue
        if value != declared.default or type(value) is not type(declared.default):
            params[declared.name] = value
    return params, errors


# --- block stacks -------------------------------------------------------------------------------


def blocks_text(blocks: Sequence[Mapping[str, Any]]) -> str:
    """A stack as JSON text, one block a line."""
    return "[\n" + ",\n".join("  " + json.dumps(dict(b)) for b in blocks) + "\n]"


def preset_blocks(recipe: str, params: Mapping[str, Any], classes: int = 2) -> list[dict[str, Any]]:
    """The recipe's own network as a block stack (empty for a recipe without one)."""
    if recipe not in PRESETS:
        return []
    return [b.model_dump() for b in presets(recipe, params, classes=max(classes, 2))]


def read_blocks(raw: str) -> list[dict[str, Any]]:
    """A block stack from JSON text, or :class:`InvalidBlocks` saying where the JSON breaks."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise InvalidBlocks(
            f"the block stack is not valid JSON: {err.msg} at line {err.lineno}, column "
            f"{err.colno}; write a list of blocks like "
            '[{"type": "conv1d", "filters": 128, "kernel": 13}, ...].'
        ) from None
    if not isinstance(data, list) or not all(isinstance(b, dict) for b in data):
        raise InvalidBlocks("the block stack must be a JSON list of objects, one per block.")
    return data


@dataclass
class StackRow:
    number: int
    type: str
    fields: str
    shape: str = ""
    parameters: int | None = None


@dataclass
class StackView:
    """A stack's table: its rows, input shape and total, or the refusal and its block."""

    rows: list[StackRow]
    input: str = ""
    total: int | None = None
    error: str = ""
    bad_block: int | None = None


def _rows(blocks: Sequence[Mapping[str, Any]]) -> list[StackRow]:
    rows = []
    for number, block in enumerate(blocks, 1):
        shown = ", ".join(f"{k}={v}" for k, v in block.items() if k != "type")
        rows.append(StackRow(number, str(block.get("type", "?")), shown))
    return rows


def stack_view(
    recipe: str, params: Mapping[str, Any], blocks: Sequence[Mapping[str, Any]], classes: int
) -> StackView:
    """The table of ``blocks`` for ``recipe`` (see the module contract)."""
    view = StackView(_rows(blocks))
    try:
        first = recipe_input(recipe, params)
        shapes = check_recipe_blocks(recipe, params, blocks, classes=max(classes, 2))
        counts = block_parameters(first, blocks)
    except InvalidBlocks as err:
        view.error = str(err)
        found = _BLOCK_NO.match(view.error)
        view.bad_block = int(found[1]) if found else None
        return view
    except HelixError as err:  # parameters the recipe refuses: shown with them
        view.error = str(err)
        return view
    for row, shape, count in zip(view.rows, shapes, counts, strict=True):
        row.shape, row.parameters = shape_text(shape), count
    view.input, view.total = shape_text(first), sum(counts)
    return view


# --- subsets ------------------------------------------------------------------------------------


def _scalar(raw: str) -> str | int | float:
    """A value as typed: an int or a number when it reads as one, else the text."""
    for read in (int, float):
        try:
            return read(raw)
        except ValueError:
            pass
    return raw


def _number(raw: str, name: str) -> float | int:
    value = _scalar(raw)
    if isinstance(value, str):
        raise InputError(f"{name} must be a number, got {raw!r}.", field=name)
    return value


def subset_spec(form: Form) -> dict[str, Any]:
    """The subset spec the subset form describes (checked later by ``parse_subset``)."""
    kind = text(form, "kind", "where")
    if kind == "where":
        op, raw = text(form, "op", "=="), text(form, "value")
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        value: Any = [_scalar(p) for p in parts] if op == "in" else _scalar(raw)
        return {"kind": "where", "column": text(form, "column"), "op": op, "value": value}
    if kind == "fraction":
        seed = _number(text(form, "seed", "0") or "0", "seed")
        return {
            "kind": "fraction",
            "of": text(form, "fraction_of") or None,
            "fraction": _number(text(form, "fraction"), "fraction"),
            "seed": seed,
            "group": text(form, "group") or None,
        }
    if kind == "rest":
        return {"kind": "rest", "of": text(form, "rest_of") or None, "minus": texts(form, "minus")}
    return {"kind": "all"}


def spec_text(spec: Mapping[str, Any]) -> str:
    """A subset spec in words: ``t0 > 100``, ``80% of measured (seed 0)``."""
    kind = spec.get("kind")
    if kind == "where":
        value = spec["value"]
        shown = ", ".join(map(str, value)) if isinstance(value, list) else repr(value)
        return f"{spec['column']} {spec['op']} {shown}"
    if kind == "fraction":
        group = f", whole groups of {spec['group']}" if spec.get("group") else ""
        share = f"{float(spec['fraction']) * 100:g}%"
        return f"{share} of {spec.get('of') or 'all rows'} (seed {spec.get('seed', 0)}{group})"
    if kind == "rest":
        return f"{spec.get('of') or 'all rows'} minus {', '.join(spec.get('minus') or [])}"
    return "all rows"
