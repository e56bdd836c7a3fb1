"""The ASGI types the toolbar uses, spelled once.

Kept as loose ``dict`` aliases rather than a framework's TypedDicts: the middleware must accept
whatever server or framework calls it, and only reads the few keys the ASGI spec guarantees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias

__all__ = ("ASGIApp", "Message", "Receive", "Scope", "Send")

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]
