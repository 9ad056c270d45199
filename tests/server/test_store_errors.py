"""A store failure under a live server is a one-line 500, and the server goes on."""

from __future__ import annotations

from http import HTTPStatus

from tests.server.support import assert_plain_line


def test_missing_crl_file_is_a_one_line_500_and_the_server_keeps_serving(client, live_ca):
    crl_file = live_ca.home / "crl" / "ca.crl"
    saved = crl_file.read_bytes()
    crl_file.unlink()
    broken = client.plain("GET", "/ca.crl")
    assert broken.status == HTTPStatus.INTERNAL_SERVER_ERROR
    assert_plain_line(broken)
    assert broken.text.strip() == "the CA store could not be read; try again later"
    crl_file.write_bytes(saved)
    assert client.plain("GET", "/ca.crl").body == saved
    assert client.plain("GET", "/ca.crt").status == HTTPStatus.OK
