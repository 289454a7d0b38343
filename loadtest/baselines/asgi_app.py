"""Baseline (b): a bare ASGI app on uvicorn with ONNX Runtime and no Ray.

The ceiling of a Python HTTP stack on this machine: the same validation,
cleaning and ONNX graph as the product, one user per ONNX Runtime call.

    uvicorn --workers 2 --host 127.0.0.1 --port 8102 \\
        --no-access-log loadtest.baselines.asgi_app:app
"""

import onnxruntime as ort
import orjson
from pydantic import ValidationError

from loadtest.baselines.common import champion_run_and_graph
from ltv.schema import UserFeatures
from serve.batching import columns_of
from serve.scorer import Scorer

_, graph = champion_run_and_graph()
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
scorer = Scorer("baseline", "0", str(graph), session)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    try:
        user = UserFeatures.model_validate_json(body)
        payload = {"predicted_revenue": float(scorer.predict(columns_of([user]))[0])}
        status = 200
    except ValidationError as error:
        payload, status = {"error": "invalid_request", "message": str(error)}, 422
    response = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": response})
