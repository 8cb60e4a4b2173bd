#!/usr/bin/env python3
"""A test double of Microsoft AD CS Web Enrollment (certsrv) for capf's Online CA tests.

There is no AD CS outside Windows, so this serves the pages a CUCM-style client uses as IIS
does (facts: the project's certsrv recipe, Cisco TAC 214396 / 214501, the public `certsrv`
client): `GET /certsrv/`, `certrqxt.asp`, `POST certfnsh.asp` (issued, pending or denied, all
with status 200 and an HTML page), `certnew.cer?ReqID=N&Enc=b64|bin`, `certcarc.asp` and
`certnew.p7b?ReqID=CACert&Renewal=N&Enc=bin|b64` (and `ReqID=N`: an issued request's chain). HTTPS on 127.0.0.1, authentication by Basic
or NTLM (pyspnego as the acceptor; the connection stays authenticated, as IIS's default), and
certificates signed with `openssl ca` under the given CA key.

Behaviour switches: a template listed with --pending-template answers "Certificate Pending" and
is issued on the --approve-after'th poll of its ReqID (an administrator approving it);
--language de serves the certfnsh.asp pages in German (the guide: the Online CA works only with
an English CA server).

Prints `LISTENING <port>` on stdout once it accepts connections; runs until killed.
"""

import argparse
import base64
import html
import http.server
import os
import re
import ssl
import subprocess
import sys
import threading
import urllib.parse

import spnego

# IIS answers an unauthenticated request with this page (status 401).
PAGE_401 = """<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"/>
<title>401 - Unauthorized: Access is denied due to invalid credentials.</title>
</head>
<body>
<div id="header"><h1>Server Error</h1></div>
<div id="content">
 <div class="content-container"><fieldset>
  <h2>401 - Unauthorized: Access is denied due to invalid credentials.</h2>
  <h3>You do not have permission to view this directory or page using the credentials that you supplied.</h3>
 </fieldset></div>
</div>
</body>
</html>
"""

HEAD = """<HTML><Head>
<Meta HTTP-Equiv="Content-Type" Content="text/html; charset=UTF-8">
<Title>Microsoft Active Directory Certificate Services</Title>
</Head>
<Body BgColor=#FFFFFF LINK=#0000FF VLINK=#0000FF ALINK=#0000FF><Font ID=locPageFont Face="Arial">
<Table Border=0 CellSpacing=0 CellPadding=4 Width=100% BgColor=#008080>
<TR><TD><Font Color=#FFFFFF><LocID ID=locMSCertSrv><Font Face="Arial" Size=-1><B><I>Microsoft</I></B> Active Directory Certificate Services</Font></LocID> &nbsp;-&nbsp;  {ca}&nbsp;</Font></TD>
<TD ID=locHomeAlign Align=Right><A Href="/certsrv"><Font Color=#FFFFFF><LocID ID=locHomeLink><Font Face="Arial" Size=-1><B>Home</B></Font></LocID></Font></A></TD></TR>
</Table>
"""

TAIL = """</Font>
</Body></HTML>
"""

ISSUED = {
    "en": """<P ID=locPageTitle> <B> Certificate Issued </B>
<P ID=locPageDesc>The certificate you requested was issued to you.
<P><Table Border=0 CellSpacing=0 CellPadding=0>
<TR><TD><Input Type=Radio ID=rbDerEnc Name=rbEncoding Checked>DER encoded or <Input Type=Radio ID=rbB64Enc Name=rbEncoding>Base 64 encoded</TD></TR>
<TR><TD><A Href="certnew.cer?ReqID={req_id}&amp;Enc=bin"><Img Src="certcert.gif" Border=0 Alt="Certificate"></A> <A Href="certnew.cer?ReqID={req_id}&amp;Enc=bin">Download certificate</A></TD></TR>
<TR><TD><A Href="certnew.p7b?ReqID={req_id}&amp;Enc=bin"><Img Src="certcert.gif" Border=0 Alt="Certificate"></A> <A Href="certnew.p7b?ReqID={req_id}&amp;Enc=bin">Download certificate chain</A></TD></TR>
</Table>
""",
    "de": """<P ID=locPageTitle> <B> Zertifikat wurde ausgestellt </B>
<P ID=locPageDesc>Das angeforderte Zertifikat wurde Ihnen ausgestellt.
<P><A Href="certnew.cer?ReqID={req_id}&amp;Enc=bin">Zertifikat herunterladen</A>
<P><A Href="certnew.p7b?ReqID={req_id}&amp;Enc=bin">Zertifikatkette herunterladen</A>
""",
}

PENDING = {
    "en": """<P ID=locPageTitle> <B> Certificate Pending </B>
<P ID=locPageDesc> Your certificate request has been received. However, you must wait for an administrator to issue the certificate you requested.
<P> Your Request Id is {req_id}.
<P ID=locPageDesc2> Please return to this web site in a day or two to retrieve your certificate.
<P ID=locNote><Font Size=-1><I>Note: You must return with this web browser within 10 days to retrieve your certificate</I></Font>
""",
    "de": """<P ID=locPageTitle> <B> Ausstehendes Zertifikat </B>
<P ID=locPageDesc> Ihre Zertifikatanforderung wurde empfangen. Sie m&uuml;ssen jedoch warten, bis ein Administrator das angeforderte Zertifikat ausstellt.
<P> Ihre Anforderungs-ID ist {req_id}.
""",
}

DENIED = {
    "en": """<P ID=locPageTitle> <B> Certificate Request Denied </B>
<P ID=locPageDesc> Your certificate request was denied.
<P ID=locAdmin>Contact your administrator for further information.
<!-- Error: {code} -->
<P ID=locDisposition>The disposition message is "{message}".
""",
    "de": """<P ID=locPageTitle> <B> Zertifikatanforderung verweigert </B>
<P ID=locPageDesc> Ihre Zertifikatanforderung wurde verweigert.
<P ID=locAdmin>Wenden Sie sich an den Administrator, um weitere Informationen zu erhalten.
<!-- Error: {code} -->
<P ID=locDisposition>Die Dispositionsmeldung ist "{message}".
""",
}

# certnew.cer for a request that is not issued: an HTML page (status 200), the form clients read
# with `Disposition message:[^\t]+\t\t(...)`.
NOT_ISSUED = """<P ID=locPageTitle> <B> Error </B>
<P ID=locPageDesc> The certificate for request {req_id} could not be retrieved.
<Table Border=0 CellSpacing=0 CellPadding=0>
<TR><TD><LocID ID=locErrorMsg>Error:</LocID></TD><TD>{code}</TD></TR>
<TR><TD>Disposition message:</TD>\t\t{message}\r
</Table>
"""

WELCOME = """<P ID=locPageTitle> <B> Welcome </B>
<P ID=locPageDesc>Use this Web site to request a certificate for your Web browser, e-mail client, or other program.
<P><B>Select a task:</B><BR>
&nbsp;&nbsp;&nbsp;&nbsp;<A Href="/certsrv/certrqus.asp">Request a certificate</A><BR>
&nbsp;&nbsp;&nbsp;&nbsp;<A Href="/certsrv/certckpn.asp">View the status of a pending certificate request</A><BR>
&nbsp;&nbsp;&nbsp;&nbsp;<A Href="/certsrv/certcarc.asp">Download a CA certificate, certificate chain, or CRL</A><BR>
"""

CERTCARC = """<P ID=locPageTitle> <B> Download a CA Certificate, Certificate Chain, or CRL</B>
<Script Language="JavaScript">
    var nRenewals={renewals};
    var sCAName="{ca}";
</Script>
<P ID=locPageDesc>To trust certificates issued from this certification authority, install this CA certificate.
<P><A Href="certnew.cer?ReqID=CACert&amp;Renewal={renewals}&amp;Enc=bin">Download CA certificate</A>
<P><A Href="certnew.p7b?ReqID=CACert&amp;Renewal={renewals}&amp;Enc=bin">Download CA certificate chain</A>
"""

# HRESULTs and messages of AD CS's policy module and request parser.
UNSUPPORTED_TEMPLATE = (
    "0x80094800",
    "Denied by Policy Module  0x80094800, The request was for a certificate template that is "
    "not supported by the Active Directory Certificate Services policy: {template}.",
)
BAD_REQUEST = (
    "0x8009310b",
    "Error Parsing Request  ASN1 bad tag value met. 0x8009310b (ASN: 267 CRYPT_E_ASN1_BADTAG)",
)
NO_TEMPLATE = (
    "0x80094801",
    "Denied by Policy Module  0x80094801, The request does not contain a certificate template "
    "extension or the CertificateTemplate request attribute.",
)
PENDING_MESSAGE = "Taken Under Submission"


class State:
    """The CA's requests, shared by the connection threads."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.next_id = 1000
        # req_id -> {"csr": pem, "cert": pem or None, "polls": n, "denied": (code, message)}
        self.requests = {}
        os.makedirs(os.path.join(args.state, "newcerts"), exist_ok=True)
        open(os.path.join(args.state, "index.txt"), "a").close()
        with open(os.path.join(args.state, "index.txt.attr"), "w") as f:
            f.write("unique_subject = no\n")
        serial = os.path.join(args.state, "serial")
        if not os.path.exists(serial):
            with open(serial, "w") as f:
                f.write("1000\n")
        self.config = os.path.join(args.state, "ca.cnf")
        with open(self.config, "w") as f:
            f.write(
                f"""[ ca ]
default_ca = double
[ double ]
dir = {args.state}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = {args.ca_cert}
private_key = {args.ca_key}
default_md = sha256
default_days = {args.days}
policy = supplied_in_request
x509_extensions = lsc
copy_extensions = none
[ supplied_in_request ]
commonName = supplied
[ lsc ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, {args.key_usage}
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
            )

    def new_id(self):
        with self.lock:
            self.next_id += 1
            return self.next_id

    def sign(self, req_id, csr_pem):
        """Signs with `openssl ca`; returns the PEM certificate or None when openssl refuses."""
        csr_path = os.path.join(self.args.state, f"{req_id}.csr")
        cert_path = os.path.join(self.args.state, f"{req_id}.pem")
        with open(csr_path, "w") as f:
            f.write(csr_pem)
        with self.lock:  # openssl ca's database is not safe for concurrent writers
            done = subprocess.run(
                ["openssl", "ca", "-batch", "-config", self.config, "-preserveDN", "-notext",
                 "-in", csr_path, "-out", cert_path],
                capture_output=True,
            )
        if done.returncode != 0:
            sys.stderr.write(done.stderr.decode(errors="replace"))
            return None
        with open(cert_path) as f:
            return f.read()


def csr_is_valid(csr_pem):
    """The request parses and its self-signature verifies."""
    done = subprocess.run(
        ["openssl", "req", "-noout", "-verify"], input=csr_pem.encode(), capture_output=True
    )
    return done.returncode == 0


def pem_to_der(pem):
    body = "".join(
        line for line in pem.splitlines() if line and not line.startswith("-----")
    )
    return base64.b64decode(body)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: NTLM authenticates the connection
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""

    def setup(self):
        super().setup()
        self.authenticated = False
        self.ntlm = None

    def log_message(self, fmt, *args):
        if self.server.state.args.verbose:
            super().log_message(fmt, *args)

    # --- replies -------------------------------------------------------------------------
    def reply(self, status, body, content_type="text/html", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Powered-By", "ASP.NET")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def page(self, body):
        language = self.server.state.args.language
        head = HEAD.format(ca=html.escape(self.server.state.args.ca_name))
        if language != "en":
            head = head.replace("<HTML>", f'<HTML lang="{language}">', 1)
        extra = [] if language == "en" else [("Content-Language", language)]
        self.reply(200, head + body + TAIL, "text/html", extra)

    def unauthorized(self, challenge_headers=None):
        args = self.server.state.args
        if challenge_headers is None:
            if args.auth == "basic":
                challenge_headers = [("WWW-Authenticate", 'Basic realm="127.0.0.1"')]
            else:
                # NTLM first, as Cisco's setup for CUCM requires of IIS's providers.
                challenge_headers = [("WWW-Authenticate", "NTLM"), ("WWW-Authenticate", "Negotiate")]
        self.ntlm = None
        self.reply(401, PAGE_401, "text/html", challenge_headers)

    # --- authentication ------------------------------------------------------------------
    def authenticate(self):
        """True when the request may proceed; otherwise the 401 has been sent."""
        if self.authenticated:
            return True
        args = self.server.state.args
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        scheme = scheme.lower()
        if args.auth == "basic" and scheme == "basic":
            try:
                user, _, password = base64.b64decode(token).decode().partition(":")
            except Exception:
                self.unauthorized()
                return False
            if user.lower() in {args.user.lower(), args.user.split("\\")[-1].lower()} and password == args.password:
                return True  # Basic authenticates each request
            self.unauthorized()
            return False
        if args.auth == "ntlm" and scheme in ("ntlm", "negotiate"):
            try:
                raw = base64.b64decode(token)
                if raw[8:12] == b"\x01\x00\x00\x00" or self.ntlm is None:
                    self.ntlm = spnego.server(protocol="ntlm")
                out = self.ntlm.step(raw)
            except Exception as e:  # a wrong password raises InvalidTokenError
                if args.verbose:
                    sys.stderr.write(f"NTLM refused: {e}\n")
                self.unauthorized()
                return False
            if self.ntlm.complete:
                self.authenticated = True
                self.ntlm = None
                return True
            name = "NTLM" if scheme == "ntlm" else "Negotiate"
            self.reply(401, PAGE_401, "text/html",
                       [("WWW-Authenticate", f"{name} {base64.b64encode(out).decode()}")])
            return False
        self.unauthorized()
        return False

    def read_body(self):
        length = int(self.headers.get("Content-Length", "0") or "0")
        return self.rfile.read(length) if length else b""

    # --- methods -------------------------------------------------------------------------
    def do_GET(self):
        self.read_body()
        if not self.authenticate():
            return
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        path = url.path.lower().rstrip("/")
        if path == "/certsrv":
            self.page(WELCOME)
        elif path == "/certsrv/certrqxt.asp":
            options = "".join(
                f'<Option Value="E;{t};2;1;1;1">{t}</Option>\n'
                for t in self.server.state.args.template + self.server.state.args.pending_template
            )
            self.page(f'<Select Name="lbCertTemplate" ID="lbCertTemplateID">\n{options}</Select>\n')
        elif path == "/certsrv/certcarc.asp":
            self.page(CERTCARC.format(renewals=0, ca=html.escape(self.server.state.args.ca_name)))
        elif path == "/certsrv/certnew.cer":
            self.certnew_cer(query)
        elif path == "/certsrv/certnew.p7b":
            self.certnew_p7b(query)
        else:
            self.reply(404, "<html><body>404 - File or directory not found.</body></html>")

    def do_POST(self):
        body = self.read_body()
        if not self.authenticate():
            return
        path = urllib.parse.urlsplit(self.path).path.lower()
        if path != "/certsrv/certfnsh.asp":
            self.reply(404, "<html><body>404 - File or directory not found.</body></html>")
            return
        form = dict(urllib.parse.parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
        self.certfnsh(form)

    def certfnsh(self, form):
        state = self.server.state
        args = state.args
        language = args.language
        req_id = state.new_id()
        attributes = dict(
            line.split(":", 1) for line in form.get("CertAttrib", "").splitlines() if ":" in line
        )
        template = attributes.get("CertificateTemplate", "").strip()
        csr = form.get("CertRequest", "")
        if form.get("Mode") != "newreq":
            self.page(DENIED[language].format(code="0x80070057", message="The parameter is incorrect. 0x80070057 (WIN32: 87 ERROR_INVALID_PARAMETER)"))
            return
        if not csr_is_valid(csr):
            code, message = BAD_REQUEST
            self.page(DENIED[language].format(code=code, message=html.escape(message)))
            return
        if not template:
            code, message = NO_TEMPLATE
            self.page(DENIED[language].format(code=code, message=html.escape(message)))
            return
        if template in args.pending_template:
            with state.lock:
                state.requests[req_id] = {"csr": csr, "cert": None, "polls": 0}
            self.page(PENDING[language].format(req_id=req_id))
            return
        if template not in args.template:
            code, message = UNSUPPORTED_TEMPLATE
            self.page(DENIED[language].format(code=code, message=html.escape(message.format(template=template))))
            return
        cert = state.sign(req_id, csr)
        if cert is None:
            code, message = BAD_REQUEST
            self.page(DENIED[language].format(code=code, message=html.escape(message)))
            return
        with state.lock:
            state.requests[req_id] = {"csr": csr, "cert": cert, "polls": 0}
        self.page(ISSUED[language].format(req_id=req_id))

    def send_certificate(self, pem, encoding):
        if encoding == "bin":
            self.reply(200, pem_to_der(pem), "application/pkix-cert")
        else:
            self.reply(200, pem, "application/pkix-cert")

    def certnew_cer(self, query):
        state = self.server.state
        req_id = query.get("ReqID", "")
        encoding = query.get("Enc", "bin")
        if req_id == "CACert":
            with open(state.args.ca_cert) as f:
                self.send_certificate(f.read(), encoding)
            return
        try:
            number = int(req_id)
        except ValueError:
            self.page(NOT_ISSUED.format(req_id=html.escape(req_id), code="0x80070057", message="The parameter is incorrect. 0x80070057 (WIN32: 87 ERROR_INVALID_PARAMETER)"))
            return
        with state.lock:
            request = state.requests.get(number)
            if request is not None and request["cert"] is None:
                request["polls"] += 1
                approve = request["polls"] >= state.args.approve_after
            else:
                approve = False
        if request is None:
            self.page(NOT_ISSUED.format(req_id=number, code="0x80094003", message="Invalid request ID. 0x80094003 (-2146877437 CERTSRV_E_BAD_REQUESTSTATUS)"))
            return
        if request["cert"] is None and approve:
            cert = state.sign(number, request["csr"])
            with state.lock:
                request["cert"] = cert
        if request["cert"] is None:
            self.page(NOT_ISSUED.format(req_id=number, code="0x0", message=PENDING_MESSAGE))
            return
        self.send_certificate(request["cert"], encoding)

    def certnew_p7b(self, query):
        state = self.server.state
        chain = state.args.ca_chain or state.args.ca_cert
        encoding = query.get("Enc", "bin")
        req_id = query.get("ReqID", "")
        files = [chain]
        if req_id != "CACert":
            # An issued request's chain: its certificate, then the CA's chain (as AD CS's
            # "Download certificate chain" link on the issued page serves it).
            try:
                number = int(req_id)
            except ValueError:
                number = None
            with state.lock:
                request = state.requests.get(number) if number is not None else None
                issued = request is not None and request["cert"] is not None
            if not issued:
                self.page(NOT_ISSUED.format(req_id=html.escape(req_id), code="0x80070057", message="The parameter is incorrect."))
                return
            files.insert(0, os.path.join(state.args.state, f"{number}.pem"))
        args = ["openssl", "crl2pkcs7", "-nocrl"]
        for path in files:
            args += ["-certfile", path]
        done = subprocess.run(
            args + ["-outform", "DER" if encoding == "bin" else "PEM"],
            capture_output=True, check=True,
        )
        self.reply(200, done.stdout, "application/x-pkcs7-certificates")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True, help="a directory for openssl ca's database")
    parser.add_argument("--ca-cert", required=True, help="the issuing CA's certificate (PEM)")
    parser.add_argument("--ca-key", required=True, help="the issuing CA's key (PEM)")
    parser.add_argument("--ca-chain", help="the chain certnew.p7b serves (PEM, default: --ca-cert)")
    parser.add_argument("--ca-name", default="capf-test-CA", help="the CA's name on its pages")
    parser.add_argument("--tls-cert", required=True, help="the HTTPS certificate chain (PEM)")
    parser.add_argument("--tls-key", required=True, help="the HTTPS key (PEM)")
    parser.add_argument("--auth", choices=["basic", "ntlm"], default="ntlm")
    parser.add_argument("--user", required=True, help="DOMAIN\\user (NTLM) or user (Basic)")
    parser.add_argument("--password", required=True)
    parser.add_argument("--template", action="append", default=[], help="a template issued at once")
    parser.add_argument("--pending-template", action="append", default=[], help="a template that needs approval")
    parser.add_argument("--approve-after", type=int, default=2, help="the poll of a pending ReqID that issues it")
    parser.add_argument("--language", choices=["en", "de"], default="en")
    parser.add_argument("--days", type=int, default=365, help="the validity of the certificates it issues")
    parser.add_argument(
        "--key-usage",
        default="digitalSignature, keyEncipherment",
        help="the KeyUsage of the certificates it issues (openssl's words)",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    if args.auth == "ntlm":
        domain, _, user = args.user.rpartition("\\")
        users = os.path.join(args.state, "ntlm-users")
        os.makedirs(args.state, exist_ok=True)
        with open(users, "w") as f:
            f.write(f"{domain}:{user}:{args.password}\n")
        os.environ["NTLM_USER_FILE"] = users

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(args)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
