"""/metrics on the metrics listener after a scripted flow against the real `gateway run`: every
counter moved by exactly what the flow did, and nothing else moved."""

from __future__ import annotations

from tests.observability.conftest import PASSWORD, Running


def counters(scrape: dict[tuple[str, frozenset], float]) -> dict[tuple[str, frozenset], float]:
    return {
        k: v for k, v in scrape.items() if k[0].startswith("gateway_") and k[0].endswith("_total")
    }


def key(name: str, **labels: str) -> tuple[str, frozenset]:
    return (name, frozenset(labels.items()))


async def test_scripted_flow_moves_each_counter_by_exactly_its_amount(running: Running):
    before = counters(running.scrape())
    async with running.client() as s:
        for _ in range(2):
            async with s.post(
                running.url + "/.gateway/login", json={"username": "alice", "password": "wrong"}
            ) as r:
                assert r.status == 401
        async with s.post(
            running.url + "/.gateway/login", json={"username": "alice", "password": PASSWORD}
        ) as r:
            assert r.status == 200
        async with s.get(running.url + "/admin/panel") as r:
            assert r.status == 403
        async with s.post(running.url + "/form/n1", data={"title": "a private note"}) as r:
            assert r.status == 204
    after = counters(running.scrape())

    moved = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    assert moved == {
        key("gateway_auth_attempts_total", factor="password", result="failure"): 2,
        key("gateway_auth_attempts_total", factor="password", result="success"): 1,
        key("gateway_sessions_created_total"): 1,
        key("gateway_requests_total", rule="gateway", method="POST", status="401"): 2,
        key("gateway_requests_total", rule="gateway", method="POST", status="200"): 1,
        key("gateway_requests_total", rule="admin", method="GET", status="403"): 1,
        key("gateway_requests_total", rule="form", method="POST", status="204"): 1,
        key("gateway_crypto_operations_total", op="encrypt", result="ok"): 1,
        key("gateway_crypto_bytes_total", op="encrypt"): len("a private note"),
    }
    scraped = running.scrape()
    assert scraped[key("gateway_upstream_duration_seconds_count")] == 1  # only the form post
    assert scraped[key("gateway_request_duration_seconds_count", rule="admin")] == 1
    assert scraped[key("gateway_policy_rules")] == 4
    # the public listener does not serve the metrics: /metrics there is an ordinary proxied path
    async with running.client() as s, s.get(running.url + "/metrics") as r:
        assert r.status == 200 and "gateway_requests_total" not in await r.text()
