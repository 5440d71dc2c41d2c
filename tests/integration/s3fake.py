"""A minimal S3 fake for what s3rver does not do like real S3 (test_s3.py).

@20minutes/s3rver ignores If-Match on GET, gives multipart uploads a plain
MD5 ETag, never names a bucket's region and serves every bucket to anonymous
requests. This fake does those four things the way AWS S3 does, and no
more: ListObjectsV2 (path style, prefix, max-keys, continuation tokens), GET
and HEAD of an object with Range, ETag and If-Match (412
PreconditionFailed), AccessDenied for a private bucket asked without an
Authorization header, and AuthorizationHeaderMalformed with <Region> and
X-Amz-Bucket-Region for a request signed for another region. Signatures are
not checked (s3rver checks them; this fake checks the rest).

Objects live in memory: fake.put(bucket, key, data, etag=None). Every
request is appended to fake.log as a dict (method, path, query, headers).
It runs in a thread of the test process on 127.0.0.1, port 0.
"""

import hashlib
import http.server
import re
import threading
import urllib.parse
from xml.sax.saxutils import escape


class S3Fake:
    def __init__(self):
        self.buckets = {}  # name -> {"objects": {key: (data, etag)}, ...}
        self.log = []
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.handle(self, head=False)

            def do_HEAD(self):
                fake.handle(self, head=True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def bucket(self, name, region="us-east-1", private=False):
        with self.lock:
            self.buckets[name] = {"objects": {}, "region": region,
                                  "private": private}

    def put(self, bucket, key, data, etag=None):
        etag = etag or '"' + hashlib.md5(data).hexdigest() + '"'
        with self.lock:
            self.buckets[bucket]["objects"][key] = (data, etag)

    # -- answers --

    def send(self, h, status, body=b"", headers=None, head=False):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def error(self, h, status, code, head, extra="", headers=None):
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
                f"{code}</Code><Message>{code}</Message>{extra}"
                f"</Error>").encode()
        self.send(h, status, body, {"Content-Type": "application/xml",
                                    **(headers or {})}, head)

    def handle(self, h, head):
        u = urllib.parse.urlsplit(h.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        path = urllib.parse.unquote(u.path)
        with self.lock:
            self.log.append({"method": h.command, "path": path, "query": q,
                             "headers": {k.lower(): v
                                         for k, v in h.headers.items()}})
        name, _, key = path.lstrip("/").partition("/")
        b = self.buckets.get(name)
        if b is None:
            return self.error(h, 404, "NoSuchBucket", head,
                              f"<BucketName>{escape(name)}</BucketName>")
        auth = h.headers.get("Authorization")
        if b["private"] and not auth:
            return self.error(h, 403, "AccessDenied", head)
        m = re.search(r"Credential=[^/]+/\d+/([^/]+)/s3/", auth or "")
        if m and m.group(1) != b["region"]:
            return self.error(
                h, 400, "AuthorizationHeaderMalformed", head,
                f"<Region>{b['region']}</Region>",
                {"X-Amz-Bucket-Region": b["region"]})
        if not key:
            return self.list(h, b, q, head)
        obj = b["objects"].get(key)
        if obj is None:
            return self.error(h, 404, "NoSuchKey", head)
        data, etag = obj
        im = h.headers.get("If-Match")
        if im is not None and im != etag and im != "*":
            return self.error(h, 412, "PreconditionFailed", head)
        hdrs = {"ETag": etag, "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream"}
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", h.headers.get("Range", ""))
        if rng:
            a = int(rng.group(1))
            z = int(rng.group(2)) if rng.group(2) else len(data) - 1
            z = min(z, len(data) - 1)
            if a > z:
                return self.error(h, 416, "InvalidRange", head)
            hdrs["Content-Range"] = f"bytes {a}-{z}/{len(data)}"
            return self.send(h, 206, data[a:z + 1], hdrs, head)
        return self.send(h, 200, data, hdrs, head)

    def list(self, h, b, q, head):
        if q.get("list-type") != "2":
            return self.error(h, 400, "InvalidArgument", head)
        prefix = q.get("prefix", "")
        max_keys = int(q.get("max-keys", "1000"))
        start = q.get("continuation-token", "")
        keys = sorted(k for k in b["objects"] if k.startswith(prefix)
                      and k > start)
        page, rest = keys[:max_keys], keys[max_keys:]
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n'
                 '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
                 '2006-03-01/">',
                 f"<Prefix>{escape(prefix)}</Prefix>",
                 f"<KeyCount>{len(page)}</KeyCount>",
                 f"<IsTruncated>{'true' if rest else 'false'}"
                 "</IsTruncated>"]
        if rest:
            parts.append(f"<NextContinuationToken>{escape(page[-1])}"
                         "</NextContinuationToken>")
        for k in page:
            data, etag = b["objects"][k]
            parts.append(
                f"<Contents><Key>{escape(k)}</Key><LastModified>"
                f"2024-05-01T10:20:30.000Z</LastModified><ETag>"
                f"{escape(etag)}</ETag><Size>{len(data)}</Size>"
                "<StorageClass>STANDARD</StorageClass></Contents>")
        parts.append("</ListBucketResult>")
        self.send(h, 200, "".join(parts).encode(),
                  {"Content-Type": "application/xml"}, head)
