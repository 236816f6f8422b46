"""URL sources against a real HTTP server on loopback (allowed by these tests' rules) and the refusals."""

from __future__ import annotations

import http.server
import threading

import pytest

from videoapi.errors import SourceError
from videoapi.pipeline.url_source import SourceRules, download

BODY = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64


class Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict, bytes]] = {}

    def do_GET(self):
        status, headers, body = self.routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            if value is not None:  # None: no such header (an HTTP/1.0 body then ends when the server closes)
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    Handler.routes = {
        "/video.mp4": (200, {}, BODY),
        "/moved": (302, {"Location": "/video.mp4"}, b""),
        "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/to-private": (301, {"Location": "http://10.0.0.1/video.mp4"}, b""),
        "/big": (200, {}, b"x" * 100_000),
        "/big-undeclared": (200, {"Content-Length": None}, b"x" * 100_000),
        "/gone": (404, {}, b""),
    }
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield base
    httpd.shutdown()
    httpd.server_close()


LOOPBACK = SourceRules(max_bytes=50_000, allow_http=True, allow_loopback=True, timeout_s=5)


def test_a_url_source_is_downloaded(server, tmp_path):
    assert download(f"{server}/video.mp4", tmp_path / "v", LOOPBACK).read_bytes() == BODY


def test_a_redirect_is_followed_and_checked_again(server, tmp_path):
    assert download(f"{server}/moved", tmp_path / "v", LOOPBACK).read_bytes() == BODY


@pytest.mark.parametrize(
    "path,rules,code",
    [
        ("/video.mp4", SourceRules(max_bytes=50_000, allow_http=True), "source_not_allowed"),  # loopback
        ("/video.mp4", SourceRules(max_bytes=50_000, allow_loopback=True), "source_not_allowed"),  # http
        ("/to-metadata", LOOPBACK, "source_not_allowed"),  # a redirect to link-local
        ("/to-private", LOOPBACK, "source_not_allowed"),  # a redirect to a private network
        ("/big", LOOPBACK, "source_too_large"),
        ("/gone", LOOPBACK, "source_unreachable"),
    ],
)
def test_refusals_have_a_code(server, tmp_path, path, rules, code):
    with pytest.raises(SourceError) as caught:
        download(f"{server}{path}", tmp_path / "v", rules)
    assert caught.value.code == code, caught.value.message


@pytest.mark.parametrize("url", ["http://10.1.2.3/v.mp4", "http://169.254.169.254/", "http://[::1]/", "ftp://x/v"])
def test_private_link_local_and_loopback_targets_are_refused_before_connecting(tmp_path, url):
    with pytest.raises(SourceError) as caught:
        download(url, tmp_path / "v", SourceRules(max_bytes=1000, allow_http=True))
    assert caught.value.code == "source_not_allowed"


def test_an_oversize_body_without_a_declared_length_is_cut_off(server, tmp_path):
    with pytest.raises(SourceError) as caught:
        download(f"{server}/big-undeclared", tmp_path / "v", LOOPBACK)
    assert caught.value.code == "source_too_large"


def test_an_unreachable_host_is_reported(tmp_path):
    rules = SourceRules(max_bytes=1000, allow_http=True, timeout_s=2)
    with pytest.raises(SourceError) as caught:
        download("http://no-such-host.invalid/v.mp4", tmp_path / "v", rules)
    assert caught.value.code == "source_unreachable"
