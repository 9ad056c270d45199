"""Baselines measured with the real ``openssl ca`` command line.

The benchmark compares tui-ca's engine against what an administrator gets from
a hand-scripted ``openssl ca`` setup, so everything here drives the
``openssl`` binary as a separate process per operation, exactly as such
scripts do, and times it with wall-clock time (process start-up included,
because an admin pays for it too).

Only the standard library and ``cryptography`` are used, so the baseline can
run wherever the test-suite runs.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

OPENSSL = "/usr/bin/openssl"

_CONFIG_TEMPLATE = """\
# Minimal `openssl ca` setup written by bench/openssl_baseline.py.
dir = {dir}

[ ca ]
default_ca = CA_default

[ CA_default ]
database         = $dir/index.txt
new_certs_dir    = $dir/newcerts
certificate      = $dir/ca.pem
private_key      = $dir/ca.key
crlnumber        = $dir/crlnumber
default_md       = sha256
default_days     = 365
default_crl_days = 7
# Random 159-bit serials match what our engine does, and spare us a serial file.
rand_serial      = yes
# Benchmark CSRs may repeat subjects across runs; uniqueness is not measured.
unique_subject   = no
policy           = policy_anything
# "copy" only adds CSR extensions that leaf_ext does not already set, so a CSR
# asking for CA:TRUE cannot override basicConstraints; it just brings the SAN.
copy_extensions  = copy
x509_extensions  = leaf_ext
crl_extensions   = crl_ext

[ policy_anything ]
countryName            = optional
stateOrProvinceName    = optional
localityName           = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied
emailAddress           = optional

[ leaf_ext ]
basicConstraints       = critical,CA:FALSE
keyUsage               = critical,digitalSignature
extendedKeyUsage       = serverAuth,clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid

[ crl_ext ]
# RFC 5280 5.2.1 requires the AKI in CRLs; our engine emits it, so should this.
authorityKeyIdentifier = keyid:always
"""

# Reasons exactly as openssl's index spells them after the revocation date.
_REASONS = ("keyCompromise", None)


def _conf_quote(value: str) -> str:
    """Quote a value for openssl's config parser.

    Unquoted values undergo ``$var`` expansion and lose trailing spaces, so a
    temporary directory with an odd name would silently point elsewhere.
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _run(cmd: list[str]) -> float:
    """Run one openssl process and return its wall time in seconds.

    Failures raise RuntimeError carrying openssl's stderr, because a baseline
    silently measuring an error path would be worse than no baseline.
    """
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{proc.stderr}")
    return elapsed


def make_openssl_ca_dir(workdir: Path, ca_cert_pem: bytes, ca_key_pem: bytes) -> Path:
    """Lay out a minimal ``openssl ca`` directory under ``workdir``.

    The profile (CA:FALSE, digitalSignature, server+client auth, SKI/AKI,
    SHA-256, 365 days) is the leaf profile the benchmark asks of both sides,
    so openssl and the engine do the same work. ``ca_key_pem`` is an unencrypted PKCS8
    PEM (EC P-256 or RSA); openssl reads it without a passphrase prompt, which
    ``-batch`` runs need. Returns the path of ``openssl.cnf``.
    """
    workdir = Path(workdir).resolve()
    (workdir / "newcerts").mkdir(parents=True, exist_ok=True)
    (workdir / "ca.pem").write_bytes(ca_cert_pem)
    key_path = workdir / "ca.key"
    key_path.touch(mode=0o600)
    key_path.chmod(0o600)  # touch's mode is ignored when the file pre-exists
    key_path.write_bytes(ca_key_pem)
    (workdir / "index.txt").write_text("")
    # The .attr file overrides the config's unique_subject when openssl loads
    # the database, so it has to say the same thing.
    (workdir / "index.txt.attr").write_text("unique_subject = no\n")
    (workdir / "crlnumber").write_text("1000\n")
    config = workdir / "openssl.cnf"
    config.write_text(_CONFIG_TEMPLATE.format(dir=_conf_quote(str(workdir))))
    return config


def issue_with_openssl_ca(config: Path, csr_paths: list[Path], out_dir: Path) -> float:
    """Issue one certificate per CSR, one ``openssl ca`` process each.

    Admin scripts loop over CSRs calling ``openssl ca -batch`` per request, and
    every call re-reads and rewrites the whole index.txt, so batching them
    into one process would flatter openssl. Certificates are written to
    ``out_dir/<csr stem>.pem``. Returns the total wall seconds for all runs.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = [Path(p).stem for p in csr_paths]
    if len(set(stems)) != len(stems):
        raise ValueError("CSR file names must have distinct stems")
    start = time.perf_counter()
    for csr, stem in zip(csr_paths, stems, strict=True):
        _run(
            [
                OPENSSL,
                "ca",
                "-batch",
                "-config",
                str(config),
                "-in",
                str(csr),
                "-out",
                str(out_dir / f"{stem}.pem"),
                "-notext",
            ]
        )
    return time.perf_counter() - start


def _index_time(when: datetime, *, utc_only: bool) -> str:
    """Format a time the way openssl's index stores it.

    Expiry dates are ASN1_TIME strings: UTCTime up to 2049, GeneralizedTime
    after. Revocation dates are parsed with ASN1_UTCTIME_set_string, so they
    must be UTCTime (1950-2049) or gencrl rejects the whole index.
    """
    when = when.astimezone(UTC) if when.tzinfo else when
    if 1950 <= when.year <= 2049:
        return when.strftime("%y%m%d%H%M%SZ")
    if utc_only:
        raise ValueError(f"openssl index revocation dates must be in 1950-2049: {when}")
    return when.strftime("%Y%m%d%H%M%SZ")


def _index_serial(serial: int) -> str:
    """Uppercase hex of even length, as openssl itself writes them.

    Loading the index rejects odd lengths outright. Lowercase loads, but
    ``-status``/``-revoke`` look serials up case-sensitively and would miss it.
    """
    if serial < 0:
        raise ValueError(f"serial must not be negative: {serial}")
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


def write_revoked_index(config_dir: Path, serials: list[int], revoked_at: datetime, not_after: datetime) -> None:
    """Write an index.txt holding one revoked (``R``) entry per serial.

    Building a 10,000 or 100,000 entry CRL baseline by running that many
    ``openssl ca -revoke`` processes would take hours; gencrl only reads the
    index, so writing it directly measures the same CRL generation. Every
    other entry carries ``keyCompromise`` and the rest no reason, so openssl
    has to emit both entries with and without a reasonCode extension.
    Naive datetimes are taken as UTC.
    """
    if len(set(serials)) != len(serials):
        raise ValueError("serials must be distinct; openssl indexes them uniquely")
    expiry = _index_time(not_after, utc_only=False)
    revoked = _index_time(revoked_at, utc_only=True)
    lines = []
    for n, serial in enumerate(serials):
        reason = _REASONS[n % len(_REASONS)]
        rev_field = f"{revoked},{reason}" if reason else revoked
        # Columns: status, expiry, revocation[,reason], serial, file, subject.
        lines.append(f"R\t{expiry}\t{rev_field}\t{_index_serial(serial)}\tunknown\t/CN=client-{n}\n")
    config_dir = Path(config_dir)
    (config_dir / "index.txt").write_text("".join(lines))
    (config_dir / "index.txt.attr").write_text("unique_subject = no\n")


def gencrl_with_openssl(config: Path, out: Path) -> float:
    """Generate a PEM CRL from the index with ``openssl ca -gencrl``.

    Returns wall seconds for the single process, which includes loading and
    validating the whole index, the dominant cost at large sizes.
    """
    return _run([OPENSSL, "ca", "-gencrl", "-config", str(config), "-out", str(out)])


def make_csrs(directory: Path, count: int, key_type: str = "ec-p256") -> list[Path]:
    """Write ``count`` PEM CSRs named ``csr-NNNNN.pem`` and return their paths.

    Each has CN ``bench-client-N`` and a matching DNS SAN (so copy_extensions
    has something to copy). One private key signs all of them: key generation
    is not what the benchmark measures, and RSA keygen would dominate it.
    """
    if key_type == "ec-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "rsa-2048":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unknown key_type {key_type!r}; use 'ec-p256' or 'rsa-2048'")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        name = f"bench-client-{n}"
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(f"{name}.bench.test")]),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        path = directory / f"csr-{n:05d}.pem"
        path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        paths.append(path)
    return paths
