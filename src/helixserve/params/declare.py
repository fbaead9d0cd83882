"""Declared hyper-parameters: how a recipe states, checks and reads its parameters.

Contract: a recipe's hyper-parameters are the fields of one frozen dataclass that subclasses
:class:`Params` (see :mod:`helixserve.params.recipes`). Each field is made by
:func:`param`: its name and type come from the annotation (``int``, ``float``, ``str``,
``bool``, unions of them, ``| None`` for "may be None", ``Literal[...]`` for a fixed set of
choices), the default, a one-line help, and a numeric range (``low``/``high``, closed;
``open_low`` for ``(low, ...``) or a ``rule`` (a test plus the words that describe it).
Values are stored exactly as given; building the dataclass checks every value and raises
:class:`InvalidParameter` (an :class:`~helixserve.errors.InputError`: the caller's value, 422 on
the API, whose ``field`` is ``params.<name>``) in one format, scikit-learn's:

    The 'arch' parameter of dna-binary must be one of 'cnn', 'lstm'. Got 'gru' instead.
    The 'epochs' parameter of dna-binary must be an int in the range [1, 1000000]. Got 0 instead.

An unknown name is refused naming the recipe's parameters. :func:`declarations` gives the
declarations as :class:`Param` objects whose :meth:`Param.as_dict` is plain JSON data (name,
type, default, choices, range, help), for a form or a help text; :meth:`Param.parse` reads a
value from text (``--param name=value``), leaving text it cannot read for the check to refuse.
This module imports nothing heavy (no torch, numpy or scikit-learn).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import (
    Any,
    ClassVar,
    Literal,
    Self,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from helixserve.errors import InputError

T = TypeVar("T")
KINDS = {int: "int", float: "float", str: "str", bool: "bool"}
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class InvalidParameter(InputError):
    """A hyper-parameter value (or name) a recipe does not take; ``field`` is
    ``params.<name>`` (``params`` when no one parameter is to blame)."""

    def __init__(self, problem: str, *, name: str | None = None) -> None:
        super().__init__(problem, field=f"params.{name}" if name else "params")


@dataclass(frozen=True)
class Rule:
    """A test for values that choices and ranges cannot state, and the words for it."""

    test: Callable[[Any], bool]
    words: str


@dataclass(frozen=True)
class Spec:
    """What :func:`param` attaches to a field (besides its default and type)."""

    help: str
    choices: tuple[Any, ...] = ()  # from a Literal annotation
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    rule: Rule | None = None


def param(
    default: T,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    rule: Rule | None = None,
) -> T:
    """A declared hyper-parameter field (see the module contract)."""
    spec = Spec(help, (), low, high, open_low, rule)
    return field(default=default, metadata={"spec": spec})


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Param:
    """One declared hyper-parameter of one recipe."""

    recipe: str
    name: str
    kinds: tuple[str, ...]  # "int", "float", "str", "bool"
    optional: bool
    default: Any
    spec: Spec

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON types only) a form or a help text can render."""
        numeric = self.spec.low is not None or self.spec.high is not None
        return {
            "name": self.name,
            "type": " | ".join(self.kinds) + (" | None" if self.optional else ""),
            "default": self.default,
            "choices": list(self.spec.choices) or None,
            "range": [self.spec.low, self.spec.high] if numeric else None,
            "range_open_low": self.spec.open_low,
            "rule": self.spec.rule.words if self.spec.rule else None,
            "help": self.spec.help,
        }

    def allowed(self) -> str:
        """What the value must be, as the message says it (``one of 'cnn', 'lstm'``)."""
        s = self.spec
        parts = []
        if s.choices:
            parts.append("one of " + ", ".join(repr(c) for c in s.choices))
        for kind in ("int", "float"):
            if kind in self.kinds and (s.low is not None or s.high is not None):
                low = "-inf" if s.low is None else _number(s.low)
                high = "inf" if s.high is None else _number(s.high)
                article = "an" if kind == "int" else "a"
                parts.append(
                    f"{article} {kind} in the range {'(' if s.open_low else '['}{low}, {high}]"
                )
        if s.rule is not None:
            parts.append(s.rule.words)
        if "bool" in self.kinds:
            parts.append("a bool (True or False)")
        if not parts:
            parts.append(f"a {self.kinds[0]}")
        text = " or ".join(parts)
        return text + " or None" if self.optional else text

    def valid(self, value: Any) -> bool:
        """Whether ``value`` is one this parameter takes."""
        s = self.spec
        if value is None:
            return self.optional
        kind = "bool" if isinstance(value, bool) else KINDS.get(type(value))
        if kind == "int" and "int" not in self.kinds and "float" in self.kinds:
            kind = "float"  # 1 is a fine learning rate
        if kind is None or kind not in self.kinds:
            return False
        if s.choices and value in s.choices:
            return True
        if kind in ("int", "float") and (s.low is not None or s.high is not None):
            above = s.low is None or (value > s.low if s.open_low else value >= s.low)
            return above and (s.high is None or value <= s.high)
        if s.rule is not None and kind == "str":
            return s.rule.test(value)
        return not s.choices and kind in ("bool", "str")

    def check(self, value: Any) -> None:
        """Raise :class:`InvalidParameter` in the module's format unless ``value`` is valid."""
        if not self.valid(value):
            raise InvalidParameter(
                f"The {self.name!r} parameter of {self.recipe} must be {self.allowed()}. "
                f"Got {value!r} instead.",
                name=self.name,
            )

    def parse(self, text: str) -> Any:
        """``text`` as the value it names (``"3"`` -> 3 for an int); text that reads as no
        allowed type is returned as it is (the check refuses it with the format)."""
        if self.optional and text.strip().lower() == "none":
            return None
        if "bool" in self.kinds and text.strip().lower() in TRUE + FALSE:
            return text.strip().lower() in TRUE
        for kind, read in (("int", int), ("float", float)):
            if kind in self.kinds:
                try:
                    return read(text)
                except ValueError:
                    pass
        return text


def _kinds(annotation: Any) -> tuple[tuple[str, ...], bool, tuple[Any, ...]]:
    """The kinds an annotation allows, whether None is allowed, and a ``Literal``'s values."""
    members = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()
    choices: tuple[Any, ...] = ()
    kinds: list[str] = []
    for member in members or (annotation,):
        literal = get_origin(member) is Literal
        choices += get_args(member) if literal else ()
        base = type(get_args(member)[0]) if literal else member
        if base in KINDS and KINDS[base] not in kinds:
            kinds.append(KINDS[base])
    return tuple(kinds), type(None) in members, choices


def declarations(params: type[Params]) -> list[Param]:
    """The declared hyper-parameters of a :class:`Params` class, in declaration order."""
    hints = get_type_hints(params)
    found = []
    for item in dataclasses.fields(params):
        kinds, optional, choices = _kinds(hints[item.name])
        spec = item.metadata["spec"]
        spec = dataclasses.replace(spec, choices=choices) if choices else spec
        found.append(Param(params.recipe, item.name, kinds, optional, item.default, spec))
    return found


@dataclass(frozen=True)
class Params:
    """The hyper-parameters of one recipe, checked when built (see the module contract).

    Subclasses are frozen dataclasses of :func:`param` fields; they set :attr:`recipe` and may
    override :meth:`check_together` for rules that tie two parameters together."""

    recipe: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for declared in declarations(type(self)):
            declared.check(getattr(self, declared.name))
        self.check_together()

    def check_together(self) -> None:
        """Refuse combinations of valid values that do not work together (default: none)."""

    @classmethod
    def build(cls, values: dict[str, Any]) -> Self:
        """The parameters from ``values`` (missing: the defaults); unknown names refused."""
        names = [d.name for d in declarations(cls)]
        unknown = [name for name in values if name not in names]
        if unknown:
            raise InvalidParameter(
                f"{cls.recipe} has no parameter {unknown[0]!r}; its parameters are "
                f"{', '.join(names)}.",
                name=unknown[0],
            )
        return cls(**values)

    def refuse(self, name: str, must: str) -> InvalidParameter:
        """The module's message for ``name``'s value, which ``must`` be something else."""
        value = getattr(self, name)
        return InvalidParameter(
            f"The {name!r} parameter of {self.recipe} must be {must}. Got {value!r} instead.",
            name=name,
        )

    def values(self) -> dict[str, Any]:
        """Every parameter's value, as given (scikit-learn's ``get_params``)."""
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}

    def replaced(self, changes: dict[str, Any]) -> Self:
        """A copy with some values changed, checked like a new one."""
        return self.build({**self.values(), **changes})
