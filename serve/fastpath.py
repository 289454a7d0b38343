"""A direct ASGI path for ``POST /predict``, the endpoint that carries most traffic.

FastAPI's routing, dependency and serialization layers cost more CPU than
scoring one user does. This middleware validates the body with the same
``UserFeatures`` model, calls the same replica method as the FastAPI route
and writes the same JSON. The route stays the documented contract and the
fallback, while the common case skips those layers.
"""

from pydantic import ValidationError

from ltv.schema import UserFeatures
from serve.asgi import header, send_json
from serve.errors import ServiceError, error_body, shorten, validation_body
from serve.security import KEY_ID_SCOPE


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client disconnected")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class PredictFastPath:
    def __init__(self, app, replica) -> None:
        self.app = app
        self.replica = replica

    async def __call__(self, scope, receive, send):
        service = self.replica.service
        if (
            scope["type"] != "http"
            or scope["path"] != "/predict"
            or scope["method"] != "POST"
            or service is None
        ):
            await self.app(scope, receive, send)
            return

        content_type = header(scope, b"content-type")
        if content_type is not None and "json" not in content_type.lower():
            await send_json(
                send,
                415,
                error_body(
                    "unsupported_media_type",
                    f"content type {shorten(content_type)!r} is not JSON; "
                    "send application/json",
                ),
            )
            return
        try:
            body = await _read_body(receive)
        except ConnectionError:
            return
        try:
            user = UserFeatures.model_validate_json(body)
        except ValidationError as error:
            await send_json(send, 422, validation_body(error.errors()))
            return
        try:
            payload = await service.predict_user(
                user, header(scope, b"x-request-id"), scope.get(KEY_ID_SCOPE)
            )
        except ServiceError as error:
            await send_json(send, error.status, error_body(error.error, error.message))
            return
        await send_json(send, 200, payload)
