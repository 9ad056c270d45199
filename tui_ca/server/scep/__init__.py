"""SCEP (RFC 8894) enrollment with manual approval.

* ``messages``: pkiMessage parsing, verification, decryption and CertRep building (no HTTP);
* ``service``: the operations on the engine (``ScepService.handle``), blocking, framework-free;
* ``routes``: ``scep_routes(service, executor)``, aiohttp routes for ``/scep`` and ``/cgi-bin/pkiclient.exe``;
* ``state``: the transaction log and challenge passwords under ``scep/`` in the home;
* ``admin``: ``tui-ca scep-challenge``.

Plugging it into the server::

    service = ScepService(ca, max_queued=options.max_queued, admit=limiter.take)
    app.add_routes(scep_routes(service, executor))
    # and run the app with max_line_size=routes.MAX_REQUEST_LINE if GET PKIOperation must take large messages

``ScepService(ca)`` raises ``RaMissing`` (one line) on a home whose
``server-setup`` predates the RA certificate.
"""
