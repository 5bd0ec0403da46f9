"""YAML read with line numbers kept, so every validation error names the file, the field and the line.

Governance files are reviewed by people; an error that says ``policy.yaml:14: targets.champion.rules[2].min``
is one they can fix without guessing. Built on PyYAML's node graph (``compose``), which carries start marks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from mlops_layer.errors import ConfigError, NotFoundError


def git_blob_hash(data: bytes) -> str:
    """The sha1 ``git hash-object`` gives these bytes: an auditor can match it against the git history."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Located:
    """One YAML value with where it came from: file, 1-based line, and its dotted field path."""

    value: Any
    file: str
    line: int
    field: str

    # -- errors
    def fail(self, problem: str, *, hint: str | None = None) -> NoReturn:
        where = f"{self.file}:{self.line}"
        label = f"field '{self.field}'" if self.field else "document"
        raise ConfigError(f"{where}: {label}: {problem}", hint=hint)

    # -- shape accessors
    def mapping(self) -> dict[str, Located]:
        if not isinstance(self.value, dict):
            self.fail(f"expected a mapping, got {_kind(self.value)}")
        return dict(self.value)

    def sequence(self) -> list[Located]:
        if not isinstance(self.value, list):
            self.fail(f"expected a list, got {_kind(self.value)}")
        return list(self.value)

    def string(self, *, allow_empty: bool = False) -> str:
        if not isinstance(self.value, str):
            self.fail(f"expected a string, got {_kind(self.value)} {_show(self.value)}")
        if not allow_empty and not self.value.strip():
            self.fail("must not be empty")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            self.fail(f"expected true or false, got {_kind(self.value)} {_show(self.value)}")
        return self.value

    def integer(self, *, minimum: int | None = None) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            self.fail(f"expected an integer, got {_kind(self.value)} {_show(self.value)}")
        if minimum is not None and self.value < minimum:
            self.fail(f"must be at least {minimum}, got {self.value}")
        return self.value

    def number(self, *, minimum: float | None = None) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            self.fail(f"expected a number, got {_kind(self.value)} {_show(self.value)}")
        number = float(self.value)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"must be a finite number, got {self.value}")
        if minimum is not None and number < minimum:
            self.fail(f"must be at least {minimum}, got {self.value}")
        return number

    def strings(self) -> tuple[str, ...]:
        """A list of non-empty strings; a single string is accepted as a list of one."""
        if isinstance(self.value, str):
            return (self.string(),)
        return tuple(item.string() for item in self.sequence())

    def choice(self, options: tuple[str, ...]) -> str:
        text = self.string()
        if text not in options:
            self.fail(f"must be one of {', '.join(options)}; got {text!r}")
        return text

    def plain(self) -> Any:
        """The value with all location wrappers removed (for free-form sections)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


class Fields:
    """Reads the keys of one mapping, remembering which were used so unknown (misspelt) keys are refused."""

    def __init__(self, node: Located, *, allowed: tuple[str, ...] | None = None) -> None:
        self.node = node
        self.items = node.mapping()
        self.allowed = allowed
        self._used: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self.items and self.items[key].value is not None

    def get(self, key: str) -> Located | None:
        self._used.add(key)
        item = self.items.get(key)
        return item if item is not None and item.value is not None else None

    def need(self, key: str, *, hint: str | None = None) -> Located:
        item = self.get(key)
        if item is None:
            self.node.fail(f"missing required field '{key}'", hint=hint)
        return item

    def finish(self) -> None:
        """Refuse keys nobody asked for: a typo in a policy must not silently switch a rule off."""
        known = self.allowed if self.allowed is not None else tuple(sorted(self._used))
        unknown = [k for k in self.items if k not in known and k not in self._used]
        if unknown:
            first = self.items[unknown[0]]
            first.fail(
                f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(repr(u) for u in unknown)}",
                hint=f"known fields here: {', '.join(sorted(set(known) | self._used))}",
            )

    def __iter__(self) -> Iterator[str]:
        return iter(self.items)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return ""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_bytes(path: Path, *, what: str, hint: str | None = None) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"{what} {path} does not exist", hint=hint) from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror}") from None


def parse_located(data: bytes, file: str) -> Located:
    """Parse one YAML document into :class:`Located` values; a syntax error names file and line."""
    import yaml

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return Located(None, file, 1, "")
        return _convert(loader, root, file, "")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{file}{line}: not valid YAML ({problem})", hint="fix the YAML syntax") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({exc})", hint="fix the YAML syntax") from None
    finally:
        loader.dispose()


def _convert(loader: Any, node: Any, file: str, field: str) -> Located:
    import yaml

    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        out: dict[str, Located] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            child = f"{field}.{key}" if field else key
            if key in out:
                raise ConfigError(
                    f"{file}:{key_node.start_mark.line + 1}: field '{child}' is defined twice "
                    f"(first on line {out[key].line})",
                    hint="remove one of them",
                )
            located = _convert(loader, value_node, file, child)
            # A key's line is where the key is written; errors about it should point there.
            out[key] = Located(located.value, file, key_node.start_mark.line + 1, child)
        return Located(out, file, line, field)
    if isinstance(node, yaml.SequenceNode):
        items = [_convert(loader, item, file, f"{field}[{i}]") for i, item in enumerate(node.value)]
        return Located(items, file, line, field)
    return Located(loader.construct_object(node, deep=True), file, line, field)
