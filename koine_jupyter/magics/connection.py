"""The magic's connection: which gateway, which key, one sync client for them (made on first use,
reused while the settings stay the same), and the local test gateway ``%koine connect --local``
starts.

Nothing secret is ever stored in the notebook or shown: the key is read from an environment
variable named in the settings, a URL that embeds credentials (``https://user:pw@host``) is
refused, and URLs are shown with anything like credentials masked.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from koine_sdk import KoineError, SyncKoineClient, create_koine_sync

from .settings import ENV_AUTH_KEY, ENV_BASE_URL, KoineSettings, shown_mode

if TYPE_CHECKING:
    from koine_sdk.testing import LocalGateway

__all__ = ["Connection", "check_url", "shown_url"]


def check_url(url: str, where: str = "the gateway URL") -> str:
    """``url`` if it can be a gateway's base URL; else ``KoineError("INVALID_CONFIG")`` saying
    why without repeating it (it may hold a password)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise KoineError(f"{where} is not a valid URL", "INVALID_CONFIG") from None
    if parts.scheme not in ("http", "https"):
        raise KoineError(
            f"{where} must start with http:// or https:// (it starts with "
            f"{(parts.scheme + '://') if parts.scheme else 'neither'})",
            "INVALID_CONFIG",
        )
    if "@" in parts.netloc:
        raise KoineError(
            f"{where} embeds credentials (user:password@): they were not stored or shown. "
            "The key goes in an environment variable: %koine connect URL --key-env VAR",
            "INVALID_CONFIG",
        )
    if not parts.hostname:
        raise KoineError(f"{where} has no host", "INVALID_CONFIG")
    if parts.query or parts.fragment:
        raise KoineError(
            f"{where} must not have a query or fragment (they were not stored or shown)",
            "INVALID_CONFIG",
        )
    return url


def shown_url(url: str) -> str:
    """``url`` as it may be shown: credentials, query and fragment masked."""
    if not url:
        return url
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "(not a valid URL)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    shown = f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else netloc + parts.path
    if parts.query or parts.fragment:
        shown += "?***"
    return shown


class Connection:
    """The client and the local gateway of one magic, for its current settings.

    The settings (:class:`~.settings.KoineSettings`) are read, never written, here: a change
    (``%koine connect``, ``%koine replay``) goes through them, and they tell the connection to
    close its client. The only environment variable read here is the key's.
    """

    def __init__(self, settings: KoineSettings) -> None:
        self._settings = settings
        self._client: SyncKoineClient | None = None
        self._client_key: tuple[Any, ...] | None = None
        self.local: LocalGateway | None = None
        self._local_key: str | None = None
        settings.on_reconnect(self.reset)

    # -- what is configured --------------------------------------------------------------

    def base_url(self) -> str:
        """The URL in use: ``KoineMagics.base_url``, else ``$KOINE_BASE_URL``."""
        return self._settings.gateway_url()

    def shown_base_url(self) -> str:
        """The URL in use, safe to show (``"(no URL set)"`` when there is none)."""
        return shown_url(self.base_url()) or "(no URL set)"

    def key_env(self) -> str:
        return self._settings.auth_key_env or ENV_AUTH_KEY

    def replay_mode(self) -> str:
        """The replay mode in use: ``KoineMagics.replay``, else ``$KOINE_REPLAY``, else
        ``off`` (``on`` reads ``replay``; an unknown name is refused by the client)."""
        return self._settings.replay_in_use()

    def shown_replay(self) -> str:
        """The replay mode and its ledger, for ``%koine status`` / ``%koine replay``."""
        mode = self.replay_mode()
        if mode == "off":
            return "off"
        client = self._client
        ledger = client.ledger if client is not None else None
        where = str(ledger.path or "in this process") if ledger is not None else self.ledger_spec()
        return f"{shown_mode(mode)} (ledger: {where})"

    def ledger_spec(self) -> str:
        """The ledger replay uses, as configured (for display)."""
        from koine_sdk.ledger import ENV_LEDGER, default_location

        if self._settings.ledger:
            return self._settings.ledger
        where = default_location()
        return str(where) if where is not None else f"none: ${ENV_LEDGER} turns it off"

    def uses_local(self) -> bool:
        """Whether the URL in use is the local gateway this connection started."""
        local = self.local
        return local is not None and self.base_url() == str(local.base_url)

    def has_key(self) -> bool:
        """Whether the key's variable is set (or the local gateway's key is in use)."""
        return bool(self._auth_key(required=False))

    def key_state(self) -> str:
        """Where the key comes from, for ``%koine status`` (never the key)."""
        if self.uses_local():
            return "the local gateway's key"
        env = self.key_env()
        return f"${env} ({'set' if os.environ.get(env) else 'not set'})"

    def secrets(self) -> list[str]:
        """What must never be shown: the key in use, and the key the settings name now."""
        keys = [self._client_key[1]] if self._client_key else []
        current = self._auth_key(required=False)
        return [*keys, current] if current and current not in keys else keys

    def _auth_key(self, required: bool = True) -> str:
        if self.uses_local() and self._local_key:
            return self._local_key
        env = self.key_env()
        key = os.environ.get(env, "")
        if not key and required:
            raise KoineError(
                f"no key: the environment variable {env} is not set "
                "(set it, or name another one with %koine connect URL --key-env VAR)",
                "INVALID_CONFIG",
            )
        return key

    # -- the client ------------------------------------------------------------------------

    def client(self) -> SyncKoineClient:
        """The sync client for the current settings (made once, reused). In strict replay no
        request is sent, so no gateway URL or key is needed."""
        mode = self.replay_mode()
        strict = mode == "strict"
        base_url = self.base_url()
        if not base_url and not strict:
            raise KoineError(
                f"no gateway URL: set {ENV_BASE_URL}, %config KoineMagics.base_url = URL, "
                "or %koine connect URL (or %koine connect --local)",
                "INVALID_CONFIG",
            )
        if base_url:
            check_url(base_url, self._settings.url_origin())
        key = self._auth_key(required=not strict)
        s = self._settings
        ledger = s.ledger or None
        env_ledger = s.environment_ledger()  # read by the client when ledger is None
        settings = (base_url, key, s.timeout, s.model, s.max_retries, mode, ledger, env_ledger)
        if self._client is None or self._client_key != settings:
            self.reset()
            self._client = create_koine_sync(
                base_url=base_url,
                auth_key=key,
                timeout=s.timeout,
                model=s.model,
                max_retries=s.max_retries,
                replay=mode,
                ledger=ledger,
            )
            self._client_key = settings
        return self._client

    def source(self) -> SyncKoineClient:
        """What answers the magic's requests: the client, which answers from the ledger itself
        when replay is on (``KoineMagics.replay``; its results say ``source="replay"``)."""
        return self.client()

    def reset(self) -> None:
        """Close the client (the settings changed: the next request makes a new one)."""
        client, self._client, self._client_key = self._client, None, None
        if client is not None:
            client.close()

    # -- changing it -----------------------------------------------------------------------

    def connect(self, url: str, key_env: str | None = None) -> None:
        """Use the gateway at ``url`` (checked first: nothing is stored if it is refused)."""
        url = check_url(url)
        self.stop_local()
        if key_env:
            self._settings.change(base_url=url, auth_key_env=key_env)
        else:
            self._settings.change(base_url=url)

    def use_environment(self) -> bool:
        """Use ``$KOINE_BASE_URL`` (and the key variable of the settings) if it is set;
        ``False`` (nothing changed) if it is not."""
        if not self._settings.environment_url():
            return False
        self.stop_local()
        self._settings.change(base_url="")
        return True

    def use_replay(self, mode: str | None, ledger: str | None = None) -> None:
        """``%koine replay``: the mode (``None``: unchanged) and the ledger file (``None``:
        unchanged), checked first (a ``UsageError``, or ``KoineError`` for a ledger that cannot
        be used: nothing changed), then exported to ``$KOINE_REPLAY`` / ``$KOINE_LEDGER``."""
        self._settings.set_replay(mode, ledger)

    def start_local(self) -> str:
        """Start the local test gateway, use it, and point ``$KOINE_BASE_URL`` and
        ``$KOINE_AUTH_KEY`` at it (so SDK code in later cells finds it); returns its URL."""
        from koine_sdk.testing import LocalGateway

        self.close()
        gateway = LocalGateway()
        gateway.start()
        self.local = gateway
        self._local_key = str(gateway.auth_key)
        url = str(gateway.base_url)
        self._settings.use_local(url, self._local_key)
        return url

    def stop_local(self) -> None:
        local, key = self.local, self._local_key
        self.local, self._local_key = None, None
        if local is None:
            return
        self._settings.drop_local(str(local.base_url), key)
        local.stop()

    def close(self) -> None:
        """Close the client and stop a local gateway this connection started."""
        self.reset()
        self.stop_local()
