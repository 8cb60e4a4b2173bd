#!/usr/bin/env python3
"""Checks the AD CS test double with the independent PyPI client `certsrv` (magnuswatn/certsrv),
so that the double is not shaped to capf's own client.

Usage: certsrv_check.py SERVER CAFILE USER PASSWORD AUTH TEMPLATE PENDING_TEMPLATE CSR_FILE
(SERVER is host:port; AUTH is basic or ntlm). Prints OK and exits 0 when every check passes.
"""

import os
import sys

import certsrv

server, cafile, user, password, auth, template, pending, csr_file = sys.argv[1:9]
# requests prefers REQUESTS_CA_BUNDLE over the cafile it is given.
os.environ.pop("REQUESTS_CA_BUNDLE", None)
os.environ.pop("CURL_CA_BUNDLE", None)
csr = open(csr_file).read()


def client(password=password):
    return certsrv.Certsrv(server, user, password, auth_method=auth, cafile=cafile)


def expect(exception, call):
    try:
        call()
    except exception as e:
        return e
    raise AssertionError(f"expected {exception.__name__}")


ca = client()
assert ca.check_credentials(), "the right credentials are refused"
assert not client("wrong password").check_credentials(), "a wrong password is accepted"

pem = ca.get_cert(csr, template)
assert pem.startswith(b"-----BEGIN CERTIFICATE-----"), pem[:60]
der = ca.get_cert(csr, template, encoding="bin")
assert der[0] == 0x30, der[:4]

pending_error = expect(certsrv.CertificatePendingException, lambda: ca.get_cert(csr, pending))
retrieve_error = expect(
    certsrv.CouldNotRetrieveCertificateException,
    lambda: ca.get_existing_cert(pending_error.req_id),
)
assert str(retrieve_error) == "Taken Under Submission", str(retrieve_error)
approved = ca.get_existing_cert(pending_error.req_id)
assert approved.startswith(b"-----BEGIN CERTIFICATE-----"), approved[:60]

denied = expect(certsrv.RequestDeniedException, lambda: ca.get_cert(csr, "NoSuchTemplate"))
assert "0x80094800" in str(denied) and "NoSuchTemplate" in str(denied), str(denied)
malformed = expect(
    certsrv.RequestDeniedException,
    lambda: ca.get_cert("-----BEGIN CERTIFICATE REQUEST-----\nMIIBgarbage\n-----END CERTIFICATE REQUEST-----\n", template),
)
assert "Error Parsing Request" in str(malformed), str(malformed)

ca_cert = ca.get_ca_cert()
assert ca_cert.startswith(b"-----BEGIN CERTIFICATE-----"), ca_cert[:60]
chain = ca.get_chain()
assert chain[0] == 0x30, chain[:4]
print("OK")
