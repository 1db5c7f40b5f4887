"""`hub serve`: the caregiver TUI in a browser (textual-serve) behind a password or token, nothing from the internet."""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import secrets
import shlex
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from string import Template

from aiohttp import web
from textual_serve.server import Server

log = logging.getLogger(__name__)

WEB = Path(__file__).parent / "web"
COOKIE = "hub_session"
FAILED_LOGIN_DELAY = 1.0  # seconds; slows password guessing down
OPEN_PATHS = frozenset({"/login"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def login_page(problem: str = "") -> str:
    """The sign-in form, with a problem line."""
    return Template((WEB / "login.html").read_text(encoding="utf-8")).safe_substitute(PROBLEM=problem)


def same_origin(request: web.Request) -> bool:
    """Whether a request's Origin (when the browser sends one) is this server itself."""
    origin = request.headers.get("Origin")
    return origin is None or origin in (f"http://{request.host}", f"https://{request.host}")


class GuardedServer(Server):
    """textual-serve with a password or token on the page, the websocket and the static files."""

    def __init__(self, command: str, *, host: str, port: int, secret: str, title: str) -> None:
        super().__init__(command, host=host, port=port, title=title, templates_path=WEB)
        self.secret = secret
        self.sessions: set[str] = set()

    def _known(self, request: web.Request) -> bool:
        cookie = request.cookies.get(COOKIE, "")
        return any(hmac.compare_digest(cookie, s) for s in self.sessions)

    def _secret_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.secret.encode())

    def _open_session(self, response: web.StreamResponse) -> None:
        session = secrets.token_urlsafe(32)
        self.sessions.add(session)
        response.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/")

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse every page, file and websocket without a session (or the token), and foreign origins."""
        if request.path in OPEN_PATHS:
            return await handler(request)
        if not same_origin(request):
            log.warning("hub serve: refused %s from origin %s", request.path, request.headers.get("Origin"))
            raise web.HTTPForbidden(text="cross-origin request refused")
        token = request.query.get("token")
        if self._known(request):
            return await handler(request)
        if token is not None and self._secret_ok(token):
            response = await handler(request)
            if not response.prepared:  # a websocket has sent its headers already; the page sets the cookie
                self._open_session(response)
            return response
        log.info("hub serve: refused %s without a session", request.path)
        if request.path == "/":
            return web.Response(status=401, text=login_page(), content_type="text/html")
        raise web.HTTPUnauthorized(text="sign in first")

    async def login(self, request: web.Request) -> web.StreamResponse:
        """GET: the form. POST: check the password, open a session, go to the TUI."""
        if request.method == "GET":
            return web.Response(text=login_page(), content_type="text/html")
        form = await request.post()
        password = form.get("password")
        if isinstance(password, str) and self._secret_ok(password):
            response = web.HTTPSeeOther("/")
            self._open_session(response)
            return response
        await asyncio.sleep(FAILED_LOGIN_DELAY)
        return web.Response(status=401, text=login_page("Wrong password / 密码不对"), content_type="text/html")

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.guard)
        app.router.add_get("/login", self.login)
        app.router.add_post("/login", self.login)
        return app

    def initialize_logging(self) -> None:
        """Plain log lines like the rest of the hub (textual-serve's rich handler is not needed)."""
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def tui_command(args: argparse.Namespace) -> str:
    """The `hub tui` command each browser session runs, with this command's TUI options."""
    argv = [sys.executable, "-m", "hub.cli", "tui", "-c", str(args.config)]
    for flag, value in (("--url", args.url), ("--home", args.home), ("--lang", args.lang), ("--as", args.who)):
        if value:
            argv += [flag, value]
    argv += ["--theme", args.theme]
    argv += [
        flag
        for flag, on in (
            ("--fleet", args.fleet),
            ("--large", args.large),
            ("--plain", args.plain),
            ("--bell", args.bell),
        )
        if on
    ]
    return shlex.join(argv)


def read_secret(args: argparse.Namespace) -> str:
    """The password (from --password-file) or token (--token or $HUB_SERVE_TOKEN); exit 2 without one."""
    if args.password_file:
        secret = Path(args.password_file).read_text(encoding="utf-8").strip()
    else:
        secret = args.token or os.environ.get("HUB_SERVE_TOKEN", "")
    if len(secret) < 8:
        raise SystemExit(
            "hub serve: give --password-file FILE or --token T (8 characters or more); "
            "the TUI acknowledges alerts and changes modes, so it is never served open"
        )
    return secret


def run_serve(args: argparse.Namespace) -> int:
    """Serve the TUI on host:port until SIGTERM or Ctrl+C."""
    secret = read_secret(args)
    os.environ["HUB_TUI_CHANNEL"] = "web"  # acknowledgements say they came from a browser
    server = GuardedServer(tui_command(args), host=args.host, port=args.port, secret=secret, title="Eldercare hub")
    server.serve()
    return 0
