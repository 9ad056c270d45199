"""The network face: EST enrollment, CRL, OCSP and CA certificates. No Textual."""
