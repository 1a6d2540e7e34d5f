"""Views of request and response data: headers, query parameters, cookies, state."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qsl


class Headers(Mapping[str, str]):
    """Case-insensitive, multi-valued HTTP headers; `headers["x"]` is the first value.

    Built from raw `(name, value)` byte pairs as adapters deliver them; decoded
    as latin-1, the encoding HTTP header bytes map onto losslessly.
    """

    __slots__ = ("_raw", "_index")

    def __init__(
        self, raw: Sequence[tuple[bytes, bytes]] | Mapping[str, str] | None = None
    ) -> None:
        if raw is None:
            pairs: list[tuple[bytes, bytes]] = []
        elif isinstance(raw, Mapping):
            pairs = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in raw.items()]
        else:
            pairs = list(raw)
        self._raw = pairs
        self._index: dict[str, str] | None = None

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._raw:
                key = name.decode("latin-1").lower()
                if key not in index:
                    index[key] = value.decode("latin-1")
            self._index = index
        return index

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The header pairs exactly as received."""
        return list(self._raw)

    def getlist(self, name: str) -> list[str]:
        """Every value of header `name`, in the order received."""
        wanted = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._raw if k.lower() == wanted]

    def __getitem__(self, name: str) -> str:
        return self._lookup()[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._lookup().get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __len__(self) -> int:
        return len(self._lookup())

    def __repr__(self) -> str:
        return f"Headers({self.raw!r})"


class QueryParams(Mapping[str, str]):
    """Query string parameters; `params["x"]` is the last value, `getlist` gives all."""

    __slots__ = ("_items", "_last")

    def __init__(self, query_string: bytes | str = b"") -> None:
        text = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
        self._items = parse_query(text)
        self._last = dict(self._items)

    def getlist(self, name: str) -> list[str]:
        """Every value given for `name`, in order."""
        return [v for k, v in self._items if k == name]

    def multi_items(self) -> list[tuple[str, str]]:
        """All `(name, value)` pairs, repeats included."""
        return list(self._items)

    def __getitem__(self, name: str) -> str:
        return self._last[name]

    def get(self, name: str, default: Any = None) -> Any:
        # Mapping.get is two Python-level calls (get, then __getitem__ in a try); the
        # exchange reads every query parameter through here.
        return self._last.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

    def __repr__(self) -> str:
        return f"QueryParams({self._items!r})"


def parse_query(text: str) -> list[tuple[str, str]]:
    """Split a query string into `(name, value)` pairs, keeping blank values.

    The same result as `urllib.parse.parse_qsl(text, keep_blank_values=True)`
    (which it falls back to for escapes), without its cost on plain strings.
    """
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True)
    pairs: list[tuple[str, str]] = []
    for piece in text.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            pairs.append((name, value))
    return pairs


def parse_cookie_header(value: str) -> dict[str, str]:
    """Parse a `Cookie` request header into a dict, leniently as browsers send it.

    `http.cookies.SimpleCookie` rejects the whole header on one odd cookie, so
    this splits on `;` and keeps every well-formed `name=value` pair.
    """
    cookies: dict[str, str] = {}
    for chunk in value.split(";"):
        name, sep, val = chunk.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        cookies.setdefault(name, val)
    return cookies


class State:
    """An attribute namespace for app- or request-wide values: `app.state.db = pool`.

    Item access (`state["db"]`), `in`, iteration over names and `update` work too,
    so it also reads like the dict it used to be.
    """

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_values", dict(values or {}))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"'State' object has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self._values[name] = value

    def __delitem__(self, name: str) -> None:
        del self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> Any:
        return self._values.keys()

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def update(self, values: Mapping[str, Any]) -> None:
        self._values.update(values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, State):
            return bool(self._values == other._values)
        if isinstance(other, Mapping):
            return bool(self._values == dict(other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dict

    def __repr__(self) -> str:
        return f"State({self._values!r})"


class RawHeaders(MutableMapping[str, str]):
    """A live, case-insensitive view of a raw header list (a `Respond`'s, say).

    What built-in middleware edit responses with: `headers["x-time"] = "3"`
    replaces every `x-time` header; `append` adds one more.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw  # the list itself: edits here are edits there

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        return self._raw

    def __getitem__(self, name: str) -> str:
        key = name.lower().encode("latin-1")
        for raw_name, value in self._raw:
            if raw_name == key:
                return value.decode("latin-1")
        raise KeyError(name)

    def __setitem__(self, name: str, value: str) -> None:
        key = name.lower().encode("latin-1")
        encoded = value.encode("latin-1")
        raw = self._raw
        found = False
        for index in range(len(raw) - 1, -1, -1):  # backwards: deleting keeps the rest in place
            if raw[index][0] == key:
                if found:
                    del raw[index]
                else:
                    raw[index] = (key, encoded)
                    found = True
        if not found:
            raw.append((key, encoded))

    def __delitem__(self, name: str) -> None:
        key = name.lower().encode("latin-1")
        kept = [pair for pair in self._raw if pair[0] != key]
        if len(kept) == len(self._raw):
            raise KeyError(name)
        self._raw[:] = kept

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for raw_name, _ in self._raw:
            name = raw_name.decode("latin-1")
            if name not in seen:
                seen.add(name)
                yield name

    def __len__(self) -> int:
        return len({raw_name for raw_name, _ in self._raw})

    def add_vary_header(self, value: str) -> None:
        """Add `value` to the `Vary` header, unless it is already listed."""
        current = self.get("vary")
        if current is None:
            self["vary"] = value
            return
        listed = {part.strip().lower() for part in current.split(",")}
        if value.lower() not in listed:
            self["vary"] = f"{current}, {value}"

    def __repr__(self) -> str:
        return f"RawHeaders({self._raw!r})"
