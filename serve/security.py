"""API keys, per-client rate limits and the body size limit, in one ASGI layer.

The checks run before any route or the ``/predict`` fast path, in this order:
the key (401), the client's token bucket (429), the request id (422), then
the body size (413). So a request without a valid key gets its 401 before
its body is read. Those early responses close the connection, and a request
that passes has its whole body read before the application receives it. A proxy in
front (HAProxy with HTTP/2 clients) may otherwise reuse a backend connection
whose unread body bytes would then be parsed as the next client's request.

Keys are never stored or logged. The service keeps the SHA-256 digest of each
key, compares the digest of the presented key with every stored digest in
constant time, and passes on only a key id: the label from ``API_KEYS_FILE``,
or else the first 12 hex digits of the digest. ``python -m serve.security``
makes a new key and the line to add to that file.
"""

import hashlib
import hmac
import logging
import math
import secrets
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ltv.settings import Settings
from serve.asgi import header, send_json
from serve.errors import MAX_REQUEST_ID_LENGTH, error_body

logger = logging.getLogger("ray.serve")

KEY_ID_SCOPE = "ltv.api_key_id"
OPEN_PATHS = frozenset({"/health", "/ready", "/v2/health/live", "/v2/health/ready"})
KEY_ID_DIGITS = 12
CLOSE = [(b"connection", b"close")]
MAX_TRACKED_CLIENTS = 10_000


class KeyFileError(ValueError):
    """``API_KEYS_FILE`` cannot be read or has a line that is not a digest."""


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def default_key_id(key_digest: bytes) -> str:
    return key_digest.hex()[:KEY_ID_DIGITS]


def read_key_file(path: Path) -> dict[bytes, str]:
    """Return {digest: key id} from lines of ``<sha256 hex> [label]``.

    Blank lines and lines starting with ``#`` are skipped.
    """
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise KeyFileError(f"API_KEYS_FILE {path}: {error.strerror}") from None

    keys = {}
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            key_digest = bytes.fromhex(fields[0])
        except ValueError:
            key_digest = b""
        if len(key_digest) != hashlib.sha256().digest_size:
            raise KeyFileError(
                f"API_KEYS_FILE {path} line {number}: expected a SHA-256 digest "
                "in hex (64 characters), then an optional label"
            )
        keys[key_digest] = fields[1] if len(fields) > 1 else default_key_id(key_digest)
    return keys


class ApiKeys:
    """The accepted keys, held as digests, each with its key id."""

    def __init__(self, keys: dict[bytes, str]) -> None:
        self._keys = list(keys.items())

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> "ApiKeys | None":
        keys: dict[bytes, str] = {}
        listed = settings.api_keys.get_secret_value() if settings.api_keys else ""
        for key in listed.split(","):
            if key.strip():
                key_digest = digest(key.strip())
                keys[key_digest] = default_key_id(key_digest)
        if settings.api_keys_file is not None:
            keys.update(read_key_file(settings.api_keys_file))
        return cls(keys) if keys else None

    def identify(self, authorization: str | None) -> str | None:
        """Return the key id for an ``Authorization: Bearer`` value, else None."""
        if not authorization:
            return None
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        presented = digest(key.strip())
        # Compare with every digest, without stopping at a match, so the time
        # taken does not depend on which key matched or where.
        found = None
        for key_digest, key_id in self._keys:
            if hmac.compare_digest(presented, key_digest):
                found = key_id
        return found


class RateLimiter:
    """A token bucket per client: ``rate`` tokens a second, up to ``burst``.

    NOTE: buckets live in each replica, so with N replicas a client can get
    up to N times the rate. The README documents this.
    """

    # Written here rather than taken from a library: the 429 needs the exact
    # wait for the next token (Retry-After), which the window-based limiters
    # on PyPI (limits, pyrate-limiter) do not give per request.

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, client: str) -> float:
        """Take a token for ``client``; return 0, or the seconds until one is free."""
        now = self.clock()
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        # A bucket left alone long enough is full again, so dropping the
        # least recently seen clients in practice only drops full buckets.
        while len(self._buckets) > MAX_TRACKED_CLIENTS:
            self._buckets.popitem(last=False)
        return wait


@dataclass
class GuardConfig:
    keys: ApiKeys | None
    limiter: RateLimiter | None
    max_body_bytes: int
    client_header: bytes | None

    @classmethod
    def from_settings(cls, settings: Settings) -> "GuardConfig":
        limiter = None
        if settings.rate_limit_per_s is not None:
            rate = settings.rate_limit_per_s
            limiter = RateLimiter(rate, settings.rate_limit_burst or math.ceil(rate))
        client_header = settings.rate_limit_client_header
        return cls(
            keys=ApiKeys.from_settings(settings),
            limiter=limiter,
            max_body_bytes=settings.max_body_bytes,
            client_header=client_header.lower().encode() if client_header else None,
        )

    def log_summary(self) -> None:
        if self.keys is None:
            logger.warning(
                "API_KEYS and API_KEYS_FILE are not set: the API accepts "
                "requests without a key"
            )
        else:
            logger.info("API key check on: %d keys accepted", len(self.keys))
        if self.limiter is not None:
            logger.info(
                "rate limit: %s requests/s per client, burst %d",
                self.limiter.rate,
                self.limiter.burst,
            )


def route_path(scope) -> str:
    """Return the path below the application's route prefix."""
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


async def reject(scope, send, status: int, error: str, message: str, headers=()):
    """Send a JSON error that closes the connection, and log it at DEBUG.

    DEBUG, because these come from clients and one per request at INFO could
    flood the log; the ``ray_ltv_requests_total`` metric counts them by status.
    """
    logger.debug(
        "%d %s on %s %s (request id %s)",
        status,
        error,
        scope["method"],
        scope["path"],
        header(scope, b"x-request-id"),
    )
    await send_json(send, status, error_body(error, message), [*headers, *CLOSE])


class RequestGuard:
    """ASGI middleware: key check, rate limit and body size limit.

    ``ref.guard`` is the ``GuardConfig``, which the replica sets at start.
    Until then every request but the open paths gets 503.
    """

    def __init__(self, app, ref) -> None:
        self.app = app
        self.ref = ref

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or route_path(scope) in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        config: GuardConfig | None = self.ref.guard
        if config is None:
            await reject(scope, send, 503, "not_ready", "replica is starting")
            return

        client = None
        if config.keys is not None:
            client = config.keys.identify(header(scope, b"authorization"))
            if client is None:
                await reject(
                    scope,
                    send,
                    401,
                    "unauthorized",
                    "missing or unknown API key; send Authorization: Bearer <key>",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
            scope[KEY_ID_SCOPE] = client

        if config.limiter is not None:
            client = client or self._client_address(scope, config)
            wait = config.limiter.acquire(client)
            if wait > 0:
                retry_after = str(max(1, math.ceil(wait))).encode()
                await reject(
                    scope,
                    send,
                    429,
                    "too_many_requests",
                    f"rate limit of {config.limiter.rate:g} requests/s exceeded; "
                    f"retry after {wait:.2f} s",
                    [(b"retry-after", retry_after)],
                )
                return

        request_id = header(scope, b"x-request-id")
        if request_id is not None and len(request_id) > MAX_REQUEST_ID_LENGTH:
            message = f"X-Request-ID is longer than {MAX_REQUEST_ID_LENGTH} characters"
            await reject(scope, send, 422, "invalid_request", message)
            return

        receive = await self._bounded_receive(scope, receive, send, config)
        if receive is not None:
            await self.app(scope, receive, send)

    @staticmethod
    def _client_address(scope, config: GuardConfig) -> str:
        if config.client_header is not None:
            forwarded = header(scope, config.client_header)
            if forwarded:
                # The last entry is the one the nearest trusted proxy added.
                return forwarded.rsplit(",", 1)[-1].strip()
        client = scope.get("client")
        return client[0] if client else "unknown"

    async def _bounded_receive(self, scope, receive, send, config: GuardConfig):
        """Return a receive callable for a body within the limit, or send 413."""
        limit = config.max_body_bytes
        too_large = (
            413,
            "payload_too_large",
            f"request body is larger than {limit} bytes",
        )
        length = header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await reject(scope, send, *too_large)
            return None
        chunked = header(scope, b"transfer-encoding") is not None
        if length in (None, "0") and not chunked:
            return receive

        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await reject(scope, send, *too_large)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


def main(argv: list[str]) -> int:
    """``python -m serve.security [LABEL]``: print a new key and its file line."""
    label = argv[0] if argv else None
    key = secrets.token_urlsafe(32)
    key_digest = digest(key)
    print(f"key (give to the client, store nowhere else): {key}")
    key_id = label or default_key_id(key_digest)
    print(f"line for API_KEYS_FILE: {key_digest.hex()} {key_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
