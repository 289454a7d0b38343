"""@serve.batch must survive a failing item and clients that disconnect."""

import asyncio
import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.serve


@pytest.fixture(scope="module")
def probe_url(serve_url):
    from ray import serve as ray_serve

    from tests.batching_probe import BatchProbe
    from tests.serving import wait_until_healthy

    ray_serve.run(BatchProbe.bind(), name="probe", route_prefix="/probe")
    wait_until_healthy(f"{serve_url}/probe/docs")
    yield f"{serve_url}/probe/score"
    ray_serve.delete("probe")  # a no-op when the drain test deleted it already


def user(country: str, event_2: int) -> dict:
    return {"country": country, "event_1": 0, "event_2": event_2}


async def post_all(url: str, users: list[dict], timeout: float) -> list:
    async with httpx.AsyncClient(timeout=timeout) as client:
        calls = [client.post(url, json=u) for u in users]
        return await asyncio.gather(*calls, return_exceptions=True)


def test_failing_item_fails_only_its_request(probe_url):
    users = [user("es", n) for n in range(15)] + [user("explode", 99)]
    responses = asyncio.run(post_all(probe_url, users, timeout=10))
    by_value = {}
    for sent, response in zip(users, responses, strict=True):
        by_value[sent["event_2"]] = response
    assert by_value[99].status_code == 500
    assert by_value[99].json()["error"] == "scoring_failed"
    for count in range(15):
        assert by_value[count].status_code == 200
        assert by_value[count].json()["value"] == count


def test_queue_serves_after_failing_item(probe_url):
    asyncio.run(post_all(probe_url, [user("explode", 1)] * 5, timeout=10))
    response = httpx.post(probe_url, json=user("es", 3), timeout=5)
    assert response.json() == {"value": 3.0}


def test_disconnected_clients_do_not_wedge_queue(probe_url):
    # 64 clients give up after 5 ms, long before their batches are scored.
    abandoned = asyncio.run(post_all(probe_url, [user("es", 1)] * 64, timeout=0.005))
    assert all(isinstance(result, httpx.TimeoutException) for result in abandoned)

    started = time.monotonic()
    responses = asyncio.run(post_all(probe_url, [user("es", n) for n in range(20)], 10))
    assert [r.json()["value"] for r in responses] == [float(n) for n in range(20)]
    assert time.monotonic() - started < 5


def test_delete_drains_in_flight_requests(probe_url):
    from ray import serve as ray_serve

    # 48 queued requests need three 20 ms batches; deleting the application
    # while they wait must let every one of them finish.
    users = [user("es", n) for n in range(48)]
    results: list = []
    sender = threading.Thread(
        target=lambda: results.extend(asyncio.run(post_all(probe_url, users, 30)))
    )
    sender.start()
    time.sleep(0.03)
    ray_serve.delete("probe")
    sender.join()
    assert [r.status_code for r in results] == [200] * 48
