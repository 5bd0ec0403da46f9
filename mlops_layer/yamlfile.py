"""The one reader for the YAML files the layer reads (mlops.yaml, policy.yaml, model cards), with line numbers kept.

Files are read by people and reviewed in git; an error that says ``policy.yaml:14: field 'targets.champion.rules[2].min'``
is one they can fix without guessing. Built on PyYAML's node graph (``compose``), which carries start marks.

The reader refuses anchors, aliases and merge keys (``&a``, ``*a``, ``<<:``): they make a reviewed file say things
its reader cannot see at a glance, and a 3 KB alias bomb would otherwise expand to gigabytes. It also refuses
nesting deeper than :data:`MAX_DEPTH`, duplicate keys and non-UTF-8 text. Every refusal is a :class:`ConfigError`
(exit 2) naming the file and the line.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from mlops_layer.errors import ConfigError, NotFoundError

MAX_DEPTH = 64
MERGE_TAG = "tag:yaml.org,2002:merge"
# Lists and mappings are plain; a tag on them (!!set, !!omap, !!python/...) would change what they mean.
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def git_blob_hash(data: bytes) -> str:
    """The sha1 ``git hash-object`` gives these bytes: an auditor can match it against the git history."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Located:
    """One YAML value with where it came from: file, 1-based line (0: unknown), and its dotted field path."""

    value: Any
    file: str
    line: int
    field: str

    @classmethod
    def wrap(cls, data: Any, file: str, field: str = "", line: int = 0) -> Located:
        """Located values from plain data (users' code, tests) or from any value/file/line shaped nodes.

        Plain children inherit the line of their nearest located parent; field paths are rebuilt from ``field``.
        """
        if all(hasattr(data, a) for a in ("value", "file", "line")) and not isinstance(data, (dict, list)):
            line = int(data.line)
            file = str(data.file) or file
            data = data.value
        if isinstance(data, dict):
            out: dict[str, Located] = {}
            for key, item in data.items():
                child = f"{field}.{key}" if field else str(key)
                out[str(key)] = cls.wrap(item, file, child, line)
            return cls(out, file, line, field)
        if isinstance(data, (list, tuple)):
            return cls([cls.wrap(item, file, f"{field}[{i}]", line) for i, item in enumerate(data)], file, line, field)
        return cls(data, file, line, field)

    # -- errors
    @property
    def where(self) -> str:
        """``file:line`` (just ``file`` when the line is unknown)."""
        return f"{self.file}:{self.line}" if self.line > 0 else self.file

    def fail(self, problem: str, *, hint: str | None = None) -> NoReturn:
        label = f"field '{self.field}'" if self.field else "document"
        raise ConfigError(f"{self.where}: {label}: {problem}", hint=hint)

    def line_of(self, field: str) -> int:
        """The line of ``field`` (a dotted path at or below this node), else of its nearest written ancestor."""
        node, best = self, self.line
        while True:
            if isinstance(node.value, dict):
                children: list[Located] = list(node.value.values())
            else:
                children = node.value if isinstance(node.value, list) else []
            step = next(
                (c for c in children if field == c.field or field.startswith((c.field + ".", c.field + "["))), None
            )
            if step is None:
                return best
            node = step
            best = node.line if node.line > 0 else best

    # -- shape accessors
    def mapping(self) -> dict[str, Located]:
        if not isinstance(self.value, dict):
            self.fail(f"expected a mapping, got {kind_of(self.value)}")
        return dict(self.value)

    def sequence(self) -> list[Located]:
        if not isinstance(self.value, list):
            self.fail(f"expected a list, got {kind_of(self.value)}")
        return list(self.value)

    def string(self, *, allow_empty: bool = False) -> str:
        if not isinstance(self.value, str):
            self.fail(f"expected a string, got {kind_of(self.value)} {_show(self.value)}")
        if not allow_empty and not self.value.strip():
            self.fail("must not be empty")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            self.fail(f"expected true or false, got {kind_of(self.value)} {_show(self.value)}")
        return self.value

    def integer(self, *, minimum: int | None = None) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            self.fail(f"expected an integer, got {kind_of(self.value)} {_show(self.value)}")
        if minimum is not None and self.value < minimum:
            self.fail(f"must be at least {minimum}, got {self.value}")
        return self.value

    def number(self, *, minimum: float | None = None, maximum: float | None = None) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            self.fail(f"expected a number, got {kind_of(self.value)} {_show(self.value)}")
        number = float(self.value)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"must be a finite number, got {self.value}")
        if minimum is not None and number < minimum:
            self.fail(f"must be at least {minimum:g}, got {number:g}")
        if maximum is not None and number > maximum:
            self.fail(f"must be at most {maximum:g}, got {number:g}")
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


def kind_of(value: Any) -> str:
    """How an error names the kind of a YAML value: ``a string``, ``a list``, ``nothing``..."""
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
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror}") from None


@dataclass(frozen=True)
class YamlFile:
    """One YAML file as read: its path, its bytes (for the blob hash) and its located document.

    ``exists`` is False for an absent file read with ``missing_ok`` (then ``root.value`` is None).
    """

    path: str
    data: bytes
    root: Located
    exists: bool = True

    @property
    def blob_hash(self) -> str:
        return git_blob_hash(self.data)

    def section(self, name: str) -> Located | None:
        """The top-level key ``name`` (None when absent or null; the document need not be a mapping)."""
        if not isinstance(self.root.value, dict):
            return None
        item = self.root.value.get(name)
        return item if item is not None and item.value is not None else None

    def top_level(self) -> dict[str, Located]:
        return dict(self.root.value) if isinstance(self.root.value, dict) else {}


def read_yaml(path: Path, *, what: str, hint: str | None = None, missing_ok: bool = False) -> YamlFile:
    """Read and parse ``path`` through the one reader; ``missing_ok``: an absent file is an empty document."""
    try:
        data = read_bytes(path, what=what, hint=hint)
    except NotFoundError:
        if not missing_ok:
            raise
        return YamlFile(str(path), b"", Located(None, str(path), 0, ""), exists=False)
    return YamlFile(str(path), data, parse_located(data, str(path)))


def parse_located(data: bytes, file: str) -> Located:
    """Parse one YAML document into :class:`Located` values; a syntax error names file and line."""
    import yaml

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    loader = _strict_loader()(text, file)
    try:
        root = loader.get_single_node()
        if root is None:
            return Located(None, file, 1, "")
        return _convert(loader, root, file, "")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        if mark is None:
            raise ConfigError(f"{file}: not valid YAML ({problem})", hint="fix the YAML syntax") from None
        raise ConfigError(
            f"{file}:{mark.line + 1}: not valid YAML ({problem}, line {mark.line + 1} column {mark.column + 1})",
            hint="fix the YAML syntax",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({exc})", hint="fix the YAML syntax") from None
    except RecursionError:
        raise ConfigError(f"{file}: nested too deeply", hint=f"at most {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def _refuse(file: str, mark: Any, what: str) -> NoReturn:
    raise ConfigError(
        f"{file}:{mark.line + 1}: {what} are not allowed here",
        hint="write the value out in full: anchors (&), aliases (*) and merge keys (<<) are refused "
        "so the file says exactly what it looks like",
    )


@functools.cache
def _strict_loader() -> Any:
    """PyYAML's safe loader that refuses anchors and aliases as it composes (before anything is expanded)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def __init__(self, stream: str, file: str) -> None:
            super().__init__(stream)
            self.file = file
            self.depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.AliasEvent):
                _refuse(self.file, event.start_mark, f"aliases (*{event.anchor})")
            anchor = getattr(event, "anchor", None)
            if anchor is not None:
                _refuse(self.file, event.start_mark, f"anchors (&{anchor})")
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ConfigError(
                    f"{self.file}:{event.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep",
                    hint="flatten the structure",
                )
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return StrictLoader


def _convert(loader: Any, node: Any, file: str, field: str) -> Located:
    import yaml

    line = node.start_mark.line + 1
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
        _refuse(file, node.start_mark, f"tags ({node.tag.replace('tag:yaml.org,2002:', '!!')})")
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Located] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                _refuse(file, key_node.start_mark, "merge keys (<<)")
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    f"{file}:{key_node.start_mark.line + 1}: a key must be a plain value, not a list or mapping"
                )
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
