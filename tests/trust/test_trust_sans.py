"""SANs that relying parties can use: the CN moves into the SAN, every name is validated."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store
from helpers import assert_refused, csr_pem, make_csr, make_key, run_cli, snapshot_home

from tui_ca.engine import CertificateAuthority, InputError, NameFields, RuleError
from tui_ca.engine.home import TLS_CERT
from tui_ca.engine.names import NAME_WARNING, dns_name_problem
from tui_ca.engine.service_certs import setup_service_certs


def _issue(ca: CertificateAuthority, csr: x509.CertificateSigningRequest, **kw) -> x509.Certificate:
    request = ca.submit(csr_pem(csr), **kw).request
    (outcome,) = ca.approve([request.id])
    assert outcome.certificate is not None, outcome.error
    return x509.load_pem_x509_certificate(ca.certificate_pem(request.id))


def _sans(cert: x509.Certificate) -> list[str]:
    return [str(n.value) for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]


def test_a_cn_only_csr_yields_a_certificate_a_server_verifier_accepts_by_name(ca, clock):
    # The README's recipe: openssl req -subj /CN=host.example.net, no SAN.
    cert = _issue(ca, make_csr(cn="host.example.net"))
    assert _sans(cert) == ["host.example.net"]
    verifier = (PolicyBuilder().store(Store([ca.root_cert()])).time(clock.now + timedelta(minutes=1))
                .build_server_verifier(x509.DNSName("host.example.net")))  # fmt: skip
    chain = verifier.verify(cert, [ca.issuing_cert()])
    assert chain[0] == cert
    assert ca.certificate(1).name_warning is None
    assert ca.request(1).details.sans == ("DNS:host.example.net",)


def test_a_cn_that_is_an_ip_address_becomes_an_ip_san(ca):
    cert = _issue(ca, make_csr(cn="192.0.2.44"))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.44")]


def test_a_csr_whose_sans_lack_the_cn_gets_it_added(ca):
    cert = _issue(ca, make_csr(cn="www.example.net", sans=["DNS:api.example.net"]))
    assert _sans(cert) == ["api.example.net", "www.example.net"]
    # Already present (any case): not repeated.
    cert = _issue(ca, make_csr(cn="Mail.Example.net", sans=["DNS:mail.example.net"]))
    assert _sans(cert) == ["mail.example.net"]


def test_a_cn_that_is_no_hostname_is_flagged_in_show_and_json(ca, home):
    request = ca.submit(csr_pem(make_csr(cn="alice"))).request
    assert request.details.name_warning == NAME_WARNING
    shown = run_cli(home, "show", "1").stdout.decode()
    assert f"Warning          {NAME_WARNING}" in shown
    (outcome,) = ca.approve([1])
    assert outcome.certificate.name_warning == NAME_WARNING
    data = json.loads(run_cli(home, "show", "1", "--json").stdout)
    assert data["certificate"]["name_warning"] == NAME_WARNING
    assert data["request"]["details"]["name_warning"] == NAME_WARNING
    # A client certificate with an e-mail SAN still cannot be matched as a server.
    assert ca.submit(csr_pem(make_csr(cn="bob", sans=["email:bob@example.net"]))).request.details.name_warning


BAD_DNS = [
    "bad name.example.net",  # a space
    "-lead.example.net",
    "trail-.example.net",
    "a..example.net",
    "x" * 64 + ".example.net",  # a label over 63
    ("a" * 60 + ".") * 5 + "net",  # over 253
    "foo.*.example.net",
    "f*o.example.net",
    "10.0.0.300",
    "tab\there.example.net",
    "under_score.example.net",
]


@pytest.mark.parametrize("name", BAD_DNS)
def test_unusable_dns_sans_are_refused_at_intake_with_nothing_stored(ca, home, name, tmp_path):
    bad = _csr_with([x509.DNSName._init_without_validation(name)])
    before = snapshot_home(home)
    with pytest.raises(InputError, match="DNS name"):
        ca.submit(csr_pem(bad))
    assert snapshot_home(home) == before
    path = tmp_path / "bad.csr"
    path.write_bytes(csr_pem(bad))
    assert_refused(run_cli(home, "submit", str(path)), 2, "DNS name")


def test_wildcards_are_refused_unless_the_ca_allows_them(ca, tmp_path, clock):
    with pytest.raises(RuleError, match="wildcard"):
        ca.submit(csr_pem(make_csr(cn="wild", sans=["DNS:*.example.net"])))
    allowing = CertificateAuthority(tmp_path / "w", clock=clock)
    allowing.init(NameFields(common_name="Wild CA"), allow_wildcards=True)
    cert = _issue(allowing, make_csr(cn="wild", sans=["DNS:*.example.net"]))
    assert _sans(cert) == ["*.example.net"]
    # Even then: only as the whole leftmost label, never right under a TLD.
    assert dns_name_problem("*.net", allow_wildcard=True)
    assert dns_name_problem("w*.example.net", allow_wildcard=True)
    with pytest.raises(InputError):
        allowing.submit(csr_pem(make_csr(cn="w2", sans=["DNS:*.net"])))


def test_init_allow_wildcards_flag_is_recorded(tmp_path):
    home = tmp_path / "h"
    run_cli(home, "init", "--cn", "Flag CA", "--allow-wildcards", check=True)
    assert CertificateAuthority(home).config()["allow_wildcards"] is True


def _csr_with(names: list[x509.GeneralName], cn: str = "ok") -> x509.CertificateSigningRequest:
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(make_key("ec-p256"), hashes.SHA256()))  # fmt: skip


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        (x509.IPAddress(ipaddress.ip_network("10.0.0.0/8")), "network"),
        (x509.RFC822Name._init_without_validation("no-at-sign here"), "e-mail"),
        (x509.RFC822Name._init_without_validation("a b@example.net"), "e-mail"),
        (x509.RFC822Name._init_without_validation("user@bad_domain"), "e-mail"),
        (x509.UniformResourceIdentifier._init_without_validation("https://x.example/\x1b[2J"), "URI"),
    ],
)
def test_bad_ip_email_and_uri_sans_are_refused(ca, name, fragment):
    with pytest.raises(InputError, match=fragment):
        ca.submit(csr_pem(_csr_with([name])))
    assert ca.requests() == []


def test_good_ip_and_email_sans_pass(ca):
    csr = _csr_with([x509.IPAddress(ipaddress.ip_address("2001:db8::1")), x509.RFC822Name("ops+ca@example.net")])
    assert ca.submit(csr_pem(csr)).request.details.sans == ("IP:2001:db8::1", "email:ops+ca@example.net")


@pytest.mark.parametrize("cn", ["bad\x1b[31mname", "rtl\u202etxt.exe"])
def test_a_requester_name_taken_from_the_csr_is_checked_like_requester(ca, home, cn, tmp_path):
    with pytest.raises(InputError, match="control characters"):
        ca.submit(csr_pem(make_csr(cn=cn)))
    # Given explicitly, the same CSR is fine: the CN is only shown, escaped.
    assert ca.submit(csr_pem(make_csr(cn=cn)), requester="named").request.requester == "named"
    path = tmp_path / "c.csr"
    path.write_bytes(csr_pem(make_csr(cn=cn)))
    assert_refused(run_cli(home, "submit", str(path)), 2, "CSR's common name")


def _pkilint(path: Path) -> str:
    done = subprocess.run(["lint_pkix_cert", "lint", "-s", "WARNING", str(path)], capture_output=True, timeout=120)
    return (done.stdout + done.stderr).decode()


@pytest.mark.e2e
def test_the_server_tls_certificate_passes_pkilint_and_names_an_address(ca, home, tmp_path):
    setup_service_certs(ca)
    pem = (home / TLS_CERT).read_bytes()
    leaf = x509.load_pem_x509_certificate(pem)
    assert _sans(leaf) == ["127.0.0.1"]
    path = tmp_path / "tls.pem"
    path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    assert _pkilint(path).strip() == ""
    # Asked for, localhost is still possible.
    setup_service_certs(ca, ["localhost", "ca.example.net"])
    assert _sans(x509.load_pem_x509_certificate((home / TLS_CERT).read_bytes())) == ["localhost", "ca.example.net"]


@pytest.mark.e2e
def test_certificates_made_from_a_cn_only_csr_pass_pkilint(ca, tmp_path):
    for n, cn in enumerate(["host.example.net", "192.0.2.9", "alice"], start=1):
        _issue(ca, make_csr(cn=cn))
        path = tmp_path / f"{n}.pem"
        path.write_bytes(ca.certificate_pem(n))
        assert _pkilint(path).strip() == "", cn


def test_a_wildcard_request_can_be_polled_for(tmp_path, clock):
    allowing = CertificateAuthority(tmp_path / "w", clock=clock)
    allowing.init(NameFields(common_name="Wild CA"), allow_wildcards=True)
    data = csr_pem(make_csr(cn="wild", sans=["DNS:*.example.net"]))
    queued = allowing.submit(data).request
    assert allowing.find_by_csr(data).id == queued.id


def test_a_renewal_must_keep_the_subject_and_the_sans(ca):
    from tui_ca.engine.names import check_renewal

    ca.submit(csr_pem(make_csr(cn="r.example.net", sans=["DNS:r.example.net", "DNS:alt.example.net"])))
    (done,) = ca.approve([1])
    old = done.certificate
    check_renewal(make_csr(cn="r.example.net", sans=["DNS:alt.example.net", "DNS:r.example.net"]), old.subject,
                  old.sans)  # fmt: skip
    with pytest.raises(InputError, match="SANs"):
        check_renewal(make_csr(cn="r.example.net", sans=["DNS:r.example.net", "DNS:evil.example.net"]), old.subject,
                      old.sans)  # fmt: skip
    with pytest.raises(InputError, match="subject"):
        check_renewal(make_csr(cn="s.example.net", sans=["DNS:r.example.net"]), old.subject, old.sans)
    # A CN-only certificate carries the CN as its SAN: a CN-only renewal matches it.
    ca.submit(csr_pem(make_csr(cn="cn-only.example.net")))
    (plain,) = ca.approve([2])
    check_renewal(make_csr(cn="cn-only.example.net"), plain.certificate.subject, plain.certificate.sans)
