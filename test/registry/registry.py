#!/usr/bin/env python3
"""A small schema registry for eo_ingest's tests.

This is NOT Confluent's Schema Registry.  It implements only the subset of
the Confluent Schema Registry REST API that confluent-kafka's AvroSerializer
and eo_ingest use, with the same status codes and error bodies:

    POST /subjects/{subject}/versions          register (same schema -> same id)
    POST /subjects/{subject}                   look a schema up
    GET  /schemas/ids/{id}                     {"schema": "..."}; 404 + 40403
    GET  /subjects, /subjects/{s}/versions, /subjects/{s}/versions/{v|latest}
    GET  /config, /config/{subject}            {"compatibilityLevel": "NONE"}

No compatibility checks; schemas persist only in --state FILE (JSON), so that a
registry stopped and started again still knows the ids it gave out.
The tests that need only a working registry use a real one, Apicurio Registry
(test/registry/apicurio.sh); this one serves what the tests cannot get from
Apicurio here: HTTP basic auth (Apicurio's goes through an OpenID Connect
server; 050 and 053 check the password's secrecy, 053 over https), a
registry that hangs or is no registry at all, and schemas written into
--state directly (024's schema nested 20,000 deep, which no serializer sends).

Options: --port N (0 = pick one), --port-file F (written once listening),
--user U --password P (require HTTP basic auth), --not-a-registry (answer 404
with an HTML body to everything, like a web server at a wrong URL),
--tls-cert F --tls-key F (serve https with that certificate), --hang (accept
connections and read requests, but never answer: a registry that is stuck;
each request is logged to stderr as "hang GET path").
"""
import argparse
import base64
import json
import os
import re
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
SCHEMAS = {}        # id -> canonical schema text
IDS = {}            # (schema text) -> id
SUBJECTS = {}       # subject -> [id, ...] (version = index + 1)
ARGS = None


def save():
    if ARGS.state:
        with open(ARGS.state + ".tmp", "w") as f:
            json.dump({"schemas": SCHEMAS, "subjects": SUBJECTS}, f)
        os.rename(ARGS.state + ".tmp", ARGS.state)


def load():
    if ARGS.state and os.path.exists(ARGS.state):
        with open(ARGS.state) as f:
            st = json.load(f)
        for k, v in st["schemas"].items():
            SCHEMAS[int(k)] = v
            IDS[v] = int(k)
        SUBJECTS.update(st["subjects"])


def canonical(text):
    try:
        return json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)
    except ValueError:
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, ctype="application/vnd.schemaregistry.v1+json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message):
        self.reply(status, {"error_code": code, "message": message})

    def authorized(self):
        if ARGS.user is None:
            return True
        want = base64.b64encode(f"{ARGS.user}:{ARGS.password}".encode()).decode()
        if self.headers.get("Authorization") == f"Basic {want}":
            return True
        self.error(401, 40101, "Unauthorized")
        return False

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return None

    def do_GET(self):
        if ARGS.hang:
            sys.stderr.write("hang GET %s\n" % self.path)
            sys.stderr.flush()
            while True:
                time.sleep(3600)
        if ARGS.not_a_registry:
            return self.reply(404, "<html><body>Not Found</body></html>", "text/html")
        if not self.authorized():
            return
        path = self.path.split("?")[0].rstrip("/")
        m = re.fullmatch(r"/schemas/ids/(\d+)", path)
        if m:
            with LOCK:
                s = SCHEMAS.get(int(m.group(1)))
            if s is None:
                return self.error(404, 40403, "Schema not found")
            return self.reply(200, {"schema": s})
        if path == "/subjects":
            with LOCK:
                return self.reply(200, sorted(SUBJECTS))
        m = re.fullmatch(r"/subjects/([^/]+)/versions", path)
        if m:
            with LOCK:
                ids = SUBJECTS.get(m.group(1))
            if ids is None:
                return self.error(404, 40401, "Subject not found")
            return self.reply(200, list(range(1, len(ids) + 1)))
        m = re.fullmatch(r"/subjects/([^/]+)/versions/(latest|\d+)", path)
        if m:
            with LOCK:
                ids = SUBJECTS.get(m.group(1))
                if ids is None:
                    return self.error(404, 40401, "Subject not found")
                v = len(ids) if m.group(2) == "latest" else int(m.group(2))
                if v < 1 or v > len(ids):
                    return self.error(404, 40402, "Version not found")
                return self.reply(200, {"subject": m.group(1), "version": v,
                                        "id": ids[v - 1], "schema": SCHEMAS[ids[v - 1]]})
        if path == "/config" or path.startswith("/config/"):
            return self.reply(200, {"compatibilityLevel": "NONE"})
        self.error(404, 404, "HTTP 404 Not Found")

    def do_POST(self):
        if ARGS.not_a_registry:
            return self.reply(404, "<html><body>Not Found</body></html>", "text/html")
        if not self.authorized():
            return
        path = self.path.split("?")[0].rstrip("/")
        m = re.fullmatch(r"/subjects/([^/]+)(/versions)?", path)
        if not m:
            return self.error(404, 404, "HTTP 404 Not Found")
        req = self.body()
        text = canonical(req.get("schema", "")) if isinstance(req, dict) else None
        if text is None:
            return self.error(422, 42201, "Invalid schema")
        subject, register = m.group(1), m.group(2) is not None
        with LOCK:
            sid = IDS.get(text)
            versions = SUBJECTS.setdefault(subject, []) if register else SUBJECTS.get(subject, [])
            if register:
                if sid is None:
                    sid = len(SCHEMAS) + 1
                    SCHEMAS[sid] = text
                    IDS[text] = sid
                if sid not in versions:
                    versions.append(sid)
                save()
                return self.reply(200, {"id": sid})
            if sid is None or sid not in versions:
                return self.error(404, 40403, "Schema not found")
            return self.reply(200, {"subject": subject, "version": versions.index(sid) + 1,
                                    "id": sid, "schema": text})


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--not-a-registry", action="store_true")
    p.add_argument("--state")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--hang", action="store_true")
    ARGS = p.parse_args()
    load()
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    if ARGS.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls_cert, ARGS.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    if ARGS.port_file:
        with open(ARGS.port_file + ".tmp", "w") as f:
            f.write(str(srv.server_address[1]))
        os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
