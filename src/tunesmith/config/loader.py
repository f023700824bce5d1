"""Load a recipe: YAML file + dotted `key=value` overrides -> a validated `Recipe`.

Every problem is found before any heavy work starts and reported at once, one line each, naming the file
(or override), the dotted key, what was wrong and what is valid. The loader walks the pydantic models to
list valid keys and values, so it never needs updating when a section or field is added to the schema.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from tunesmith.config.schema import Recipe
from tunesmith.errors import UserError

__all__ = ["apply_overrides", "load_recipe", "recipe_from_dict", "recipe_to_yaml"]


# --- YAML ------------------------------------------------------------------------------------------------


class _RecipeLoader(yaml.SafeLoader):
    """SafeLoader (nothing is constructed but plain data) with two fixes for recipes.

    YAML 1.1 reads `5e-5` (no dot) as a string; every user means a float, so floats are resolved as in
    YAML 1.2. A key written twice silently keeps the last value in PyYAML; here it is an error, because the
    first block of settings being ignored is exactly the kind of mistake a recipe check must catch.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` keys may be overridden on purpose
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key '{key}' is written twice (first on line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            if isinstance(key, str):
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_RecipeLoader)  # a SafeLoader subclass: plain data only


def _at(mark: yaml.Mark | None) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what the parser objected to, and where (1-based line and column)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = f"YAML syntax error{_at(exc.problem_mark)}: {exc.problem or 'invalid YAML'}"
        if exc.context and exc.context_mark:  # where the unclosed bracket or quote began
            problem += f" ({exc.context}{_at(exc.context_mark)})"
        return problem
    return f"YAML syntax error: {exc}"


def _read_recipe_file(path: Path) -> Any:
    source = str(path)
    if not path.exists():
        raise UserError(f"{source}: recipe file not found; check the path (see examples/recipe.yaml).")
    if path.is_dir():
        raise UserError(f"{source}: is a directory; pass a recipe YAML file (see examples/recipe.yaml).")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{source}: not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8."
        ) from exc
    except OSError as exc:
        raise UserError(f"{source}: cannot be read ({exc.strerror or exc}); check its permissions.") from exc
    try:
        return _parse_yaml(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: {_yaml_problem(exc)}; fix the YAML there.") from exc


# --- walking the schema ----------------------------------------------------------------------------------


def _members(annotation: Any) -> tuple[list[Any], bool]:
    """The non-None types an annotation allows (Annotated and Optional unwrapped), and whether None is ok."""
    if get_origin(annotation) is Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        found: list[Any] = []
        nullable = False
        for arg in get_args(annotation):
            inner, arg_nullable = _members(arg)
            found += inner
            nullable = nullable or arg_nullable or arg is type(None)
        return found, nullable
    if annotation is type(None):
        return [], True
    return [annotation], False


def _model_in(annotation: Any) -> type[BaseModel] | None:
    members, _ = _members(annotation)
    # get_origin: list[int] passes isinstance(_, type) on some Pythons but is not a class to issubclass.
    classes = (m for m in members if isinstance(m, type) and get_origin(m) is None)
    return next((m for m in classes if issubclass(m, BaseModel)), None)


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _allows_extra(model: type[BaseModel]) -> bool:
    return model.model_config.get("extra") == "allow"


def _all_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every dotted key in the schema, for a did-you-mean across sections (`train.max_length`)."""
    for key, info in _fields(model).items():
        yield prefix + key
        sub = _model_in(info.annotation)
        if sub is not None:
            yield from _all_keys(sub, f"{prefix}{key}.")


def _unknown_key(dotted: str, parent: type[BaseModel], root: type[BaseModel]) -> str:
    """`unknown key 'train.ephocs'; did you mean 'train.epochs'? (valid keys under train: ...)`."""
    *section, name = dotted.split(".")
    valid = sorted(_fields(parent))
    prefix = ".".join(section) + "." if section else ""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    if close:
        guess = prefix + close[0]
    else:  # the right key in the wrong section
        guess = next((k for k in _all_keys(root) if k.rsplit(".", 1)[-1] == name), "")
    hint = f"; did you mean '{guess}'?" if guess else ""
    level = f"under {'.'.join(section)}" if section else "at the top level"
    return f"unknown key '{dotted}'{hint} (valid keys {level}: {', '.join(valid)})"


class _Where:
    """Where a pydantic error location points in the schema: dotted key, field, enclosing model."""

    def __init__(self, loc: tuple[int | str, ...], root: type[BaseModel], unknown_last: bool) -> None:
        self.parts: list[str] = []
        self.field: FieldInfo | None = None
        self.annotation: Any = root
        self.parent: type[BaseModel] = root
        for i, seg in enumerate(loc):
            self._step(seg, last=unknown_last and i == len(loc) - 1)

    def _step(self, seg: int | str, last: bool) -> None:
        members, _ = _members(self.annotation)
        if isinstance(seg, int):  # a list item: key[1], annotation of the items
            self.parts[-1:] = [f"{self.parts[-1] if self.parts else ''}[{seg}]"]
            seqs = [m for m in members if get_origin(m) in (list, tuple, set, frozenset)]
            self.annotation = get_args(seqs[0])[0] if seqs and get_args(seqs[0]) else Any
            self.field = None
            return
        model = _model_in(self.annotation)
        mappings = [m for m in members if get_origin(m) in (dict, Mapping)]
        if model is not None and seg in _fields(model):
            self.parent, self.field = model, _fields(model)[seg]
            self.annotation = self.field.annotation
        elif mappings:
            self.annotation = get_args(mappings[0])[-1] if get_args(mappings[0]) else Any
        elif model is not None and last:  # an unknown key, reported by name
            self.parent, self.field, self.annotation = model, None, Any
        else:
            return  # a union-member tag pydantic adds to the location: not a key
        self.parts.append(seg)

    @property
    def key(self) -> str:
        return ".".join(self.parts)


# --- pydantic errors -> one line each --------------------------------------------------------------------

_TYPE_NAMES = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "list": "a list",
    "tuple": "a list",
    "set": "a list",
    "dict": "a mapping",
    "model": "a mapping",
}
_BOUNDS = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _constraints(where: _Where) -> list[tuple[str, Any]]:
    """(gt|ge|lt|le, bound) pairs declared on the field, from Field(...) and from PositiveInt & co."""
    metadata: list[Any] = list(where.field.metadata) if where.field else []
    annotation = where.annotation
    for arg in get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else [annotation]:
        if get_origin(arg) is Annotated:
            metadata += list(arg.__metadata__)
    return [
        (name, getattr(m, name)) for m in metadata for name in _BOUNDS if getattr(m, name, None) is not None
    ]


def _valid_range(where: _Where) -> str:
    return " and ".join(f"{_BOUNDS[name]} {bound}" for name, bound in _constraints(where))


def _literal_values(where: _Where) -> list[Any]:
    members, _ = _members(where.annotation)
    return [value for m in members if get_origin(m) is Literal for value in get_args(m)]


def _expectation(error: ErrorDetails, where: _Where) -> str:
    """'must be ...' for a value error: the valid type, range or choices."""
    kind = error["type"]
    _, nullable = _members(where.annotation)
    or_null = " or null" if nullable else ""
    if kind == "literal_error":
        allowed = _literal_values(where)
        shown = ", ".join(map(str, allowed)) or error.get("ctx", {}).get("expected", "")
        return f"must be one of: {shown}{or_null}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"must be {_valid_range(where) or error['msg'].removeprefix('Input should be ')}{or_null}"
    prefix = kind.split("_", 1)[0]
    if prefix in _TYPE_NAMES and kind.endswith(("_type", "_parsing", "_from_float")):
        what = _TYPE_NAMES[prefix]
        model = _model_in(where.annotation)
        if model is not None:
            what += f" (valid keys: {', '.join(sorted(_fields(model)))})"
        elif bounds := _valid_range(where):
            what += f" {bounds}"
        return f"must be {what}{or_null}"
    if kind in ("value_error", "assertion_error"):
        return error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return error["msg"].replace("Input should be", "must be")


def _what_goes_there(where: _Where) -> str:
    """What a missing key should hold: its description, or the required keys of a missing section."""
    if where.field is not None and where.field.description:
        return f" ({where.field.description})"
    model = _model_in(where.annotation)
    if model is not None:
        required = [key for key, info in _fields(model).items() if info.is_required()]
        return f" (a section with at least: {', '.join(required)})" if required else ""
    return ""


def _problem(error: ErrorDetails, root: type[BaseModel]) -> tuple[str, str]:
    """(dotted key, message without the source) for one pydantic error."""
    kind = error["type"]
    where = _Where(tuple(error["loc"]), root, unknown_last=kind in ("extra_forbidden", "missing"))
    if kind == "extra_forbidden":
        return where.key, _unknown_key(where.key, where.parent, root)
    if kind == "missing":
        return where.key, f"missing required key '{where.key}'{_what_goes_there(where)}"
    label = f"{where.key}: " if where.key else ""
    message = f"{label}{_expectation(error, where)} (got {_show(error['input'])})"
    if kind == "literal_error":
        allowed = [str(value) for value in _literal_values(where)]
        close = difflib.get_close_matches(str(error["input"]), allowed, n=1, cutoff=0.5)
        message += f"; did you mean '{close[0]}'?" if close else ""
    return where.key, message


# --- overrides --------------------------------------------------------------------------------------------


def _check_override_key(path: list[str], root: type[BaseModel]) -> str | None:
    """Why `path` names no key in the schema, or None when it does."""
    model: type[BaseModel] = root
    for depth, seg in enumerate(path):
        dotted = ".".join(path[: depth + 1])
        fields = _fields(model)
        if seg not in fields:
            return None if _allows_extra(model) else _unknown_key(dotted, model, root)
        sub = _model_in(fields[seg].annotation)
        if sub is None:
            if depth < len(path) - 1:
                return f"'{dotted}' is a value, not a section; set it whole ({dotted}=...)"
            return None
        model = sub
    return None


def _section_dict(value: Any, model: type[BaseModel] | None) -> dict[str, Any] | None:
    """The mapping to descend into when an override reaches into a section already set in the data."""
    if isinstance(value, dict):
        return value
    if value is None:
        return {}
    # The schema's shorthand (`model: minilm` = {name: minilm}) must not block `model.max_length=128`.
    if model is not None and "name" in _fields(model) and isinstance(value, str):
        return {"name": value}
    return None


def _set(data: dict[str, Any], path: list[str], value: Any, root: type[BaseModel]) -> str | None:
    node: dict[str, Any] = data
    model: type[BaseModel] | None = root
    for depth, seg in enumerate(path[:-1]):
        info = _fields(model).get(seg) if model is not None else None
        sub = _model_in(info.annotation) if info is not None else None
        child = _section_dict(node.get(seg), sub)
        if child is None:
            return f"'{'.'.join(path[: depth + 1])}' is {_show(node[seg])}, not a section"
        node[seg] = child
        node, model = child, sub
    node[path[-1]] = value
    return None


def _apply(
    data: dict[str, Any], overrides: Sequence[str], root: type[BaseModel]
) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Apply what can be applied; return the new data, one line per bad override, and key -> override."""
    data = copy.deepcopy(data)  # callers pass module constants (the demo recipe) and templates
    problems: list[str] = []
    origins: dict[str, str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        path = key.split(".")
        if not sep or not all(path):
            problems.append(f"override '{item}': not key=value; write e.g. train.lr=1e-4 or model=minilm")
            continue
        try:
            value = _parse_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            problems.append(f"override '{item}': the value is not valid YAML ({_yaml_problem(exc)})")
            continue
        error = _check_override_key(path, root) or _set(data, path, value, root)
        if error:
            problems.append(f"override '{item}': {error}")
        else:
            origins[key] = item
    return data, problems, origins


# --- public API -------------------------------------------------------------------------------------------


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of `data` with dotted `key=value` overrides applied (values are YAML: 1e-4, null, [a, b]).

    Keys are checked against the schema (did-you-mean on a typo); `data` itself is not modified. A dict
    value replaces the whole section; set single keys (`train.lr=...`) to keep the rest.
    """
    result, problems, _ = _apply(dict(data), overrides, Recipe)
    if problems:
        raise UserError("\n".join(problems))
    return result


def _validate(data: Any, source: str, origins: Mapping[str, str], early: Sequence[str] = ()) -> Recipe:
    """Validate `data`; raise one UserError holding `early` problems and every validation problem."""
    lines = list(early)
    if not isinstance(data, dict):
        sections = ", ".join(_fields(Recipe))
        got = "an empty file" if data is None else f"{type(data).__name__} {_show(data)}"
        lines.append(f"{source}: the top level must be a mapping of sections ({sections}); got {got}")
        raise UserError("\n".join(lines))
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            key, message = _problem(error, Recipe)
            # A bad value that came from the command line is blamed on the override, not the file.
            origin = next((o for k, o in origins.items() if key == k or key.startswith(k + ".")), None)
            line = f"override '{origin}': {message}" if origin else f"{source}: {message}"
            if line not in lines:
                lines.append(line)
    if lines:
        raise UserError("\n".join(lines))
    return recipe


def recipe_from_dict(data: Mapping[str, Any], source: str = "recipe") -> Recipe:
    """Validate an in-memory recipe; every problem is reported at once, each line prefixed by `source`."""
    return _validate(dict(data) if isinstance(data, Mapping) else data, source, {})


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe YAML file, apply `key=value` overrides and validate; UserError lists every problem."""
    path = Path(path)
    data = _read_recipe_file(path)
    if not isinstance(data, dict):
        return _validate(data, str(path), {})
    data, problems, origins = _apply(data, overrides, Recipe)
    return _validate(data, str(path), origins, problems)


class _IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key (PyYAML's default puts them flush with it, which reads badly)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def recipe_to_yaml(recipe: Recipe) -> str:
    """The resolved recipe, every default filled in, keys in schema order; `load_recipe` reads it back."""
    data = recipe.model_dump(mode="json")
    return yaml.dump(data, Dumper=_IndentedDumper, sort_keys=False, allow_unicode=True, width=1000)
