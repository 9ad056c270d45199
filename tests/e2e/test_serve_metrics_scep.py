"""The real ``tui-ca serve`` carries /metrics (with --metrics) and SCEP, not only the test apps."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.server.live import http_get, make_home, serve


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}  # fmt: skip


def test_metrics_count_the_answers_serve_gave(tmp_path):
    home = make_home(tmp_path)
    with serve(home, "--metrics") as serving:
        assert http_get(f"{serving.http}/ca.crl")[0] == 200
        assert http_get(f"{serving.http}/ca.crl")[0] == 200
        status, body = http_get(f"{serving.http}/metrics")
        assert status == 200
        samples = _samples(body)
        assert samples[("tui_ca_store_up", ())] == 1.0
        assert samples[("tui_ca_http_requests_total", (("protocol", "crl"), ("result", "200")))] == 2.0
        assert samples[("tui_ca_queue_length", ())] == 0.0


def test_metrics_are_off_unless_asked_and_scep_answers(tmp_path):
    home = make_home(tmp_path)
    with serve(home) as serving:
        assert http_get(f"{serving.http}/metrics")[0] == 404
        status, caps = http_get(f"{serving.http}/scep?operation=GetCACaps")
        assert status == 200 and b"POSTPKIOperation" in caps
        status, _ = http_get(f"{serving.http}/cgi-bin/pkiclient.exe?operation=GetCACaps")
        assert status == 200
