"""`Security()` and `SecurityScopes`: dependencies that carry OAuth2 scopes.

`Security(dependency, scopes=[...])` is a `Depends` that also names the scopes
its dependency (and everything below it) requires. A dependency declaring a
`SecurityScopes` parameter receives the scopes of every `Security()` on the
way from the route down to it, outermost first. That list is known at
declaration (plans are built per use, as a tree), so it is computed there,
once: the request path only hands over an object built in advance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._params import Depends


class Security(Depends):
    """A dependency on a security scheme (or a function using one), with the scopes it needs."""

    __slots__ = ("scopes",)

    def __init__(
        self,
        dependency: Callable[..., Any] | None = None,
        *,
        scopes: Sequence[str] | None = None,
        use_cache: bool = True,
    ) -> None:
        super().__init__(dependency, use_cache=use_cache)
        if isinstance(scopes, str):
            raise TypeError("Security(scopes=...) takes a list of scope names, not a string")
        self.scopes = list(scopes or ())

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__qualname__", repr(self.dependency))
        return f"Security({name}, scopes={self.scopes!r})"


class SecurityScopes:
    """The scopes required by the `Security()` dependencies above the one that declares this."""

    __slots__ = ("scopes",)

    def __init__(self, scopes: Sequence[str] | None = None) -> None:
        self.scopes: list[str] = list(scopes or ())

    @property
    def scope_str(self) -> str:
        """The scopes separated by spaces, as in OAuth2's `scope` and `WWW-Authenticate`."""
        return " ".join(self.scopes)

    def __repr__(self) -> str:
        return f"SecurityScopes({self.scopes!r})"


def scopes_provider() -> Callable[[], Any]:
    """A dependency returning one `SecurityScopes`, filled in at declaration (`add_scopes`)."""
    holder = SecurityScopes()

    async def security_scopes() -> SecurityScopes:
        return holder  # async: awaited in place, no worker thread for a constant

    security_scopes.__security_scopes__ = holder  # type: ignore[attr-defined]
    return security_scopes


def add_scopes(plan: Any, scopes: Sequence[str]) -> None:
    """Put `scopes` first in every `SecurityScopes` below `plan` (a `Security()`'s sub-plan)."""
    holder = getattr(plan.call, "__security_scopes__", None)
    if holder is not None:
        holder.scopes[:0] = scopes
    for param in plan.depends:
        if param.dependency is not None:
            add_scopes(param.dependency, scopes)
