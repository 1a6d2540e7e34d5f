"""What `--reload` watches: the directories, and which changed files restart the app.

uvicorn's `--reload-dir` / `--reload-include` / `--reload-exclude` are the
reference, meanings and defaults alike, so a command line moves between the two
unchanged:

- the watched directories are the `--reload-dir`s (the current directory when
  none is given), plus any include pattern that names directories; a directory
  inside another watched one is not watched twice;
- a changed file restarts the app when it matches an include (`*.py` unless
  `*.py` is excluded, plus every `--reload-include`) and no exclude (`.*`,
  `.py[cod]`, `.sw.*`, `~*`, except those given as includes, plus every
  `--reload-exclude`);
- an exclude that names a directory drops everything below it, and stops a
  watched directory at or below it from being watched at all;
- an include written as the tail of a path (`.env`, `settings.toml`) wins over
  the excludes, so `--reload-include .env` works although `.*` is excluded.

Patterns match from the right, as `pathlib.PurePath.match`: `*.py` matches
`pkg/app.py`, `pkg/*.py` only files directly in a `pkg` directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: What restarts the app when no `--reload-include` says otherwise.
DEFAULT_INCLUDES = ("*.py",)
#: Hidden files, compiled Python, editors' swap and backup files.
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")


@dataclass(frozen=True)
class ReloadPaths:
    """The directories `--reload` watches and the filter on the files that change there.

    Build it with `ReloadPaths.resolve`; call it with a changed path to learn
    whether that change restarts the app.
    """

    #: Absolute directories to watch, none inside another.
    dirs: tuple[Path, ...]
    #: Glob patterns a changed file must match (one of them).
    includes: tuple[str, ...]
    #: Glob patterns a changed file must not match.
    excludes: tuple[str, ...]
    #: Absolute directories whose files never restart the app.
    exclude_dirs: tuple[Path, ...]

    @classmethod
    def resolve(
        cls,
        dirs: Sequence[str] = (),
        includes: Sequence[str] = (),
        excludes: Sequence[str] = (),
        *,
        cwd: Path | None = None,
    ) -> ReloadPaths:
        """The watch set for the `--reload-dir`, `--reload-include`, `--reload-exclude` values.

        Raises:
            ValueError: A `--reload-dir` that is not a directory (named).
        """
        cwd = (cwd or Path.cwd()).resolve()
        watched: list[Path] = []
        for name in dirs:
            path = (cwd / name).resolve()
            if not path.is_dir():
                raise ValueError(f"--reload-dir {name}: not a directory")
            watched.append(path)
        watched += _directories_named(includes, cwd)
        exclude_dirs = _outermost(_directories_named(excludes, cwd))
        # A watched directory at or below an excluded one is not watched at all.
        watched = [
            path
            for path in watched
            if not any(path == gone or gone in path.parents for gone in exclude_dirs)
        ]
        if not watched:
            watched = [cwd]
        file_excludes = [p for p in excludes if (cwd / p).resolve() not in exclude_dirs]
        return cls(
            dirs=tuple(_outermost(watched)),
            includes=_unique(
                [p for p in DEFAULT_INCLUDES if p not in excludes]
                + [p for p in includes if p not in excludes]
            ),
            excludes=_unique([p for p in DEFAULT_EXCLUDES if p not in includes] + file_excludes),
            exclude_dirs=tuple(exclude_dirs),
        )

    def __call__(self, path: Path) -> bool:
        """True when a change to `path` (absolute) should restart the app."""
        for include in self.includes:
            if not path.match(include):
                continue
            if str(path).endswith(include):  # named outright: the excludes do not apply
                return True
            if any(gone in path.parents for gone in self.exclude_dirs):
                return False
            return not any(path.match(exclude) for exclude in self.excludes)
        return False

    def watches(self, path: Path) -> bool:
        """True when `path` (absolute) is inside a watched directory."""
        return any(directory in path.parents for directory in self.dirs)

    def select(self, changed: Iterable[str]) -> list[Path]:
        """The changed paths (as watchfiles reports them) that restart the app, sorted."""
        return sorted({path for path in map(Path, changed) if self(path)})

    def describe(self) -> str:
        """One line for the log: what is watched and how it is filtered."""
        dirs = ", ".join(str(d) for d in self.dirs)
        line = f"{dirs} (include {' '.join(self.includes)}; exclude {' '.join(self.excludes)}"
        if self.exclude_dirs:
            line += " " + " ".join(f"{d}/" for d in self.exclude_dirs)
        return line + ")"


def _directories_named(patterns: Iterable[str], cwd: Path) -> list[Path]:
    """The directories a list of patterns names: as a path, or as a glob from `cwd`."""
    found: list[Path] = []
    for pattern in patterns:
        if pattern == ".*":  # would name every hidden directory; it is a file pattern
            continue
        path = (cwd / pattern).resolve()
        if path.is_dir():
            found.append(path)
            continue
        try:
            found += [match.resolve() for match in cwd.glob(pattern) if match.is_dir()]
        except (ValueError, NotImplementedError):  # not a relative glob (e.g. absolute)
            continue
    return found


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """The paths without duplicates and without those inside another one, sorted."""
    unique = sorted(set(paths))
    return [path for path in unique if not any(other in path.parents for other in unique)]


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
