"""CRL generation with many revoked entries: ``publish_crl()`` against ``openssl ca -gencrl``.

For each size the same serials are revoked on both sides (every other one
with keyCompromise, the rest unspecified, as ``write_revoked_index`` writes
them). Ours is timed cold (a fresh CertificateAuthority: key, shards and entry
encodings all loaded from disk) and warm (the same object publishing again,
entry encodings memoised per shard). Every CRL produced is loaded, counted
and its signature verified, so a broken CRL cannot look fast.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cryptography import x509

from bench.common import BENCH_ACTOR, SeededHome, median, row, setup_row, timed
from bench.openssl_baseline import gencrl_with_openssl, make_openssl_ca_dir, write_revoked_index
from tui_ca.engine import CertificateAuthority, RevocationReason
from tui_ca.engine.reader import ISSUING_CERT, ISSUING_KEY

CRL_GOAL = 1.0
# Alternating like openssl_baseline._REASONS, so both CRLs carry the same entries.
_REASONS = (RevocationReason.KEY_COMPROMISE, RevocationReason.UNSPECIFIED)
_REVOKE_BATCH = 10_000


def revoke_without_crl(ca: CertificateAuthority, cert_ids: list[int], first_index: int) -> list[int]:
    """SEEDING SHORTCUT, not a measured path: revoke many certificates in one transaction.

    The public ``revoke()`` publishes a CRL per call (100,000 CRLs to seed
    100,000 entries). This uses the engine's own transaction and
    ``_revoke_doc`` (the same record, index and audit updates as ``revoke``)
    but publishes nothing; the figure then times the public ``publish_crl()``.
    Returns the revoked serials, in order.
    """
    serials = []
    for start in range(0, len(cert_ids), _REVOKE_BATCH):
        with ca._operation() as op:
            for offset, cert_id in enumerate(cert_ids[start : start + _REVOKE_BATCH]):
                reason = _REASONS[(first_index + start + offset) % len(_REASONS)]
                serials.append(int(op.txn.get_certificate(cert_id)["serial"], 16))
                ca._revoke_doc(op, cert_id, reason)
    return serials


def _check_crl(crl: x509.CertificateRevocationList, issuing: x509.Certificate, serials: list[int], who: str) -> None:
    if len(crl) != len(serials):
        raise RuntimeError(f"{who} CRL lists {len(crl)} entries, expected {len(serials)}")
    if not crl.is_signature_valid(issuing.public_key()):
        raise RuntimeError(f"{who} CRL signature does not verify")
    for index in (0, len(serials) - 1):
        entry = crl.get_revoked_certificate_by_serial_number(serials[index])
        if entry is None:
            raise RuntimeError(f"{who} CRL misses serial {serials[index]:x}")
        has_reason = any(isinstance(ext.value, x509.CRLReason) for ext in entry.extensions)
        if has_reason != (index % 2 == 0):
            raise RuntimeError(f"{who} CRL entry {index} has the wrong reason code")


def crl_generation(seeded: SeededHome, workdir: Path, *, sizes=(10_000, 100_000), repeats: int = 3) -> list[dict]:
    """Cold and warm publish_crl() vs openssl -gencrl, per number of revoked entries."""
    rows, setup = [], []
    if len(seeded.cert_ids) < sizes[-1]:
        before = seeded.seed_seconds
        seeded.grow_to(sizes[-1])
        setup.append(setup_row(f"Seed certificates to revoke (up to {sizes[-1]:,})", seeded.seed_seconds - before))
    home = seeded.home
    issuing = seeded.ca.issuing_cert()
    config = make_openssl_ca_dir(workdir / "crl-openssl", (home / ISSUING_CERT).read_bytes(),
                                 (home / ISSUING_KEY).read_bytes())  # fmt: skip
    serials: list[int] = []
    for size in sizes:
        revoked_at = seeded.ca.now()
        first = len(serials)
        batch = seeded.cert_ids[first:size]
        seconds, more = timed(lambda batch=batch, first=first: revoke_without_crl(seeded.ca, batch, first))
        serials += more
        setup.append(setup_row(f"Revoke up to {size:,} in bulk transactions (seeding shortcut, no CRL)", seconds))
        write_revoked_index(config.parent, serials, revoked_at, revoked_at + timedelta(days=365))

        openssl_times = []
        for rep in range(repeats):
            out = workdir / f"crl-openssl-{size}-{rep}.pem"
            openssl_times.append(gencrl_with_openssl(config, out))
            _check_crl(x509.load_pem_x509_crl(out.read_bytes()), issuing, serials, "openssl")
        cold, warm = [], []
        for _ in range(repeats):
            ca = CertificateAuthority(home, actor=BENCH_ACTOR)
            seconds, info = timed(ca.publish_crl)
            cold.append(seconds)
            warm.append(timed(ca.publish_crl)[0])
            if info.entries != len(serials):
                raise RuntimeError(f"publish_crl reported {info.entries} entries, expected {len(serials)}")
            _check_crl(x509.load_der_x509_crl(CertificateAuthority(home).published_crl()), issuing, serials, "tui-ca")
        theirs = median(openssl_times)
        for label, times in (("cold (fresh CA object)", cold), ("warm (entries memoised)", warm)):
            ours = median(times)
            rows.append(row("crl", f"CRL with {size:,} revoked, publish_crl() {label} vs `openssl ca -gencrl`",
                            ours, theirs, ours / theirs, f"≤ {CRL_GOAL:g} (tui-ca ÷ openssl)",
                            ours / theirs <= CRL_GOAL, unit="ms", note=f"median of {repeats}"))  # fmt: skip
    return rows + setup
