"""Client configuration: :class:`KoineConfig`, the environment fallback and validation."""

from __future__ import annotations

import ipaddress
import logging
import math
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._response_limits import DEFAULT_LIMITS, ResponseLimits
from .errors import KoineError

__all__ = [
    "ENV_AUTH_KEY",
    "ENV_BASE_URL",
    "ENV_MODEL",
    "ENV_TIMEOUT",
    "KoineConfig",
    "shown_url",
]

logger = logging.getLogger("koine_sdk")

ENV_BASE_URL = "KOINE_BASE_URL"
ENV_AUTH_KEY = "KOINE_AUTH_KEY"
ENV_TIMEOUT = "KOINE_TIMEOUT"
ENV_MODEL = "KOINE_MODEL"

DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class KoineConfig:
    """Where the gateway is and how to talk to it.

    Args:
        base_url: the gateway's URL, e.g. ``http://localhost:3100`` (a path prefix is kept).
        auth_key: the gateway's bearer key (its ``CLAUDE_CODE_GATEWAY_API_KEY``). Never shown in
            ``repr``, logs or errors.
        timeout: seconds to wait for the gateway to answer, and for each next stream event.
        model: default model alias or name (``"sonnet"``, ``"haiku"``, ...); a per-call
            ``model=`` overrides it.
        limits: how much of a response the client holds (:class:`ResponseLimits`); past a
            limit a call fails with ``RESPONSE_TOO_LARGE`` instead of exhausting memory.
    """

    base_url: str
    auth_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    model: str | None = None
    limits: ResponseLimits = DEFAULT_LIMITS

    def __repr__(self) -> str:
        limits = f", limits={self.limits!r}" if self.limits != DEFAULT_LIMITS else ""
        return (
            f"KoineConfig(base_url={shown_url(self.base_url)!r}, auth_key='***', "
            f"timeout={self.timeout!r}, model={self.model!r}{limits})"
        )

    @classmethod
    def from_env(
        cls,
        *,
        base_url: str | None = None,
        auth_key: str | None = None,
        timeout: float | None = None,
        model: str | None = None,
    ) -> KoineConfig:
        """Build a config from the arguments given, falling back to the environment:
        ``KOINE_BASE_URL``, ``KOINE_AUTH_KEY``, ``KOINE_TIMEOUT``, ``KOINE_MODEL``."""
        if timeout is None:
            env_timeout = os.environ.get(ENV_TIMEOUT)
            if env_timeout:
                try:
                    timeout = float(env_timeout)
                except ValueError:
                    raise KoineError(
                        f"{ENV_TIMEOUT}={env_timeout!r} is not a number of seconds",
                        "INVALID_CONFIG",
                    ) from None
        return cls(
            base_url=base_url if base_url is not None else os.environ.get(ENV_BASE_URL, ""),
            auth_key=auth_key if auth_key is not None else os.environ.get(ENV_AUTH_KEY, ""),
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
            model=model if model is not None else (os.environ.get(ENV_MODEL) or None),
        )

    def validated(self, *, gateway_required: bool = True) -> KoineConfig:
        """Check every field; raise ``KoineError("INVALID_CONFIG")`` naming what is wrong.

        Returns the config with ``base_url`` normalised (no trailing slash). With
        ``gateway_required=False`` (a client in strict replay, which never sends a request) an
        empty ``base_url`` and ``auth_key`` are accepted; given ones are still checked."""
        if not gateway_required:
            empty_url = not (isinstance(self.base_url, str) and self.base_url.strip())  # pyright: ignore[reportUnnecessaryIsInstance]
            empty_key = not (isinstance(self.auth_key, str) and self.auth_key.strip())  # pyright: ignore[reportUnnecessaryIsInstance]
            if empty_url or empty_key:
                stand_in = KoineConfig(
                    base_url="http://localhost" if empty_url else self.base_url,
                    auth_key="-" if empty_key else self.auth_key,
                    timeout=self.timeout,
                    model=self.model,
                    limits=self.limits,
                ).validated()
                return KoineConfig(
                    base_url="" if empty_url else stand_in.base_url,
                    auth_key="" if empty_key else stand_in.auth_key,
                    timeout=stand_in.timeout,
                    model=stand_in.model,
                    limits=stand_in.limits,
                )
        base_url = self.base_url
        if not isinstance(base_url, str) or not base_url.strip():  # pyright: ignore[reportUnnecessaryIsInstance]
            raise KoineError(
                f"base_url is required (pass base_url= or set {ENV_BASE_URL})", "INVALID_CONFIG"
            )
        base_url = base_url.strip()
        try:
            parts = urlsplit(base_url)
            port = parts.port  # raises ValueError for a bad port
        except ValueError as exc:
            raise KoineError(f"base_url is not a valid URL: {exc}", "INVALID_CONFIG") from None
        if parts.scheme not in ("http", "https"):
            raise KoineError(
                "base_url must start with http:// or https:// "
                f"(got scheme {parts.scheme or 'none'!r})",
                "INVALID_CONFIG",
            )
        if not parts.hostname:
            raise KoineError("base_url has no host", "INVALID_CONFIG")
        if parts.username is not None or parts.password is not None:
            raise KoineError(
                "base_url must not embed credentials (user:password@); pass the key as auth_key",
                "INVALID_CONFIG",
            )
        if parts.query or parts.fragment:
            raise KoineError("base_url must not have a query or fragment", "INVALID_CONFIG")
        del port
        auth_key = self.auth_key
        if not isinstance(auth_key, str) or not auth_key.strip():  # pyright: ignore[reportUnnecessaryIsInstance]
            raise KoineError(
                f"auth_key is required (pass auth_key= or set {ENV_AUTH_KEY})", "INVALID_CONFIG"
            )
        if any(c in auth_key for c in "\r\n\x00"):
            raise KoineError("auth_key contains a control character", "INVALID_CONFIG")
        timeout = self.timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)  # pyright: ignore[reportUnnecessaryIsInstance]
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise KoineError(
                f"timeout must be a positive number of seconds (got {timeout!r})", "INVALID_CONFIG"
            )
        model = self.model
        if model is not None and (not isinstance(model, str) or not model.strip()):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise KoineError("model must be a non-empty string or None", "INVALID_CONFIG")
        limits: object = self.limits
        if not isinstance(limits, ResponseLimits):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise KoineError(
                f"limits must be a ResponseLimits (got {type(limits).__name__})", "INVALID_CONFIG"
            )
        limits.checked()
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            logger.warning(
                "koine_sdk: sending the auth key over plain http to %s; use https outside loopback",
                parts.hostname,
            )
        return KoineConfig(
            base_url=base_url.rstrip("/"),
            auth_key=auth_key,
            timeout=float(timeout),
            model=model,
            limits=limits,
        )


def shown_url(url: object) -> object:
    """``url`` with any ``user:password@`` replaced by ``***@`` (for reprs and messages)."""
    if not isinstance(url, str) or "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"***@{host}").geturl()


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
