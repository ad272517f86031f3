# cli.py — the `loopscope` command (also `python -m loopscope`): `run` records a whole program
# (a script, -m module, or a console script after --) as one session, or with --per-request each
# request of an ASGI app as its own session, prints a terminal summary at exit computed in-process
# (loopscope.summary) and can --save the recording in the export format; `upload` posts a saved
# file to a server. Only the standard library; the program runs in this process (runpy).
from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import sys
import tempfile
import urllib.request
import zlib
from typing import Any

RUN_USAGE = "loopscope run [options] scriptfile [arg] ...\n" \
            "       loopscope run [options] -m module [arg] ...\n" \
            "       loopscope run [options] -- command [arg] ...   (a Python console script: uvicorn, hypercorn, ...)"

RUN_DESCRIPTION = """\
Runs a Python program with loopscope's asyncio collector installed before it starts. The whole
run is recorded as one session (--per-request: each request of the ASGI app is its own session);
at exit a summary is printed: tasks, concurrency, loop lag, the lines that blocked the loop the
longest, the await hot spots, and the session's timeline URL when a server took it. Without a
server the summary still works (it is computed in this process) and --save keeps the recording."""

RUN_EPILOG = """\
settings: each option mirrors a LOOPSCOPE_* environment variable (options win).

examples:
  loopscope run crawler.py --depth 2
  loopscope run --blocking-threshold-ms 20 -m mypkg.worker
  loopscope run --per-request -- uvicorn app:app --port 8000
  loopscope run --per-request --request-fraction 0.1 -- uvicorn app:app
  loopscope run --save run.json crawler.py && loopscope upload run.json"""


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loopscope run", usage=RUN_USAGE, description=RUN_DESCRIPTION,
                                epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", dest="module", metavar="MODULE", help="run library module as a script (terminates option list)")
    p.add_argument("--name", help="the session's name (default: the command line)")
    p.add_argument("--per-request", action="store_true",
                   help="ASGI servers: wrap the app given as module:attr in the command line so that each "
                        "request is its own session (loopscope.asgi.LoopscopeMiddleware)")
    p.add_argument("--save", metavar="FILE",
                   help="write the recording to FILE in the export format (an ingest-v1 batch; JSON Lines of "
                        "batches when larger than --save-batch-mb or with several sessions); load it with "
                        "`loopscope upload FILE`")
    p.add_argument("--save-batch-mb", type=float, default=15.0, metavar="MB",
                   help="largest batch written by --save (default 15: under the server's 16M --max-body)")
    p.add_argument("--offline", action="store_true", help="ship nothing to a server, even if one answers")
    p.add_argument("--no-summary", action="store_true", help="print no summary at exit")
    p.add_argument("--top", type=int, default=5, metavar="N", help="blocks and await hot spots shown (default 5)")
    g = p.add_argument_group("collector settings")
    g.add_argument("--server", metavar="URL", help="loopscope-server URL [LOOPSCOPE_SERVER, http://127.0.0.1:7878]")
    g.add_argument("--token", help="bearer token of the server [LOOPSCOPE_TOKEN]")
    g.add_argument("--blocking-threshold-ms", type=float, metavar="MS",
                   help="a step this long blocks the loop [LOOPSCOPE_BLOCKING_THRESHOLD_MS, 100]")
    g.add_argument("--await-threshold-ms", type=float, metavar="MS",
                   help="awaits this long are highlighted on the page [LOOPSCOPE_AWAIT_THRESHOLD_MS, 10]")
    g.add_argument("--max-tasks", type=int, metavar="N",
                   help="tasks recorded per session [LOOPSCOPE_MAX_TASKS; 1000000 for run, 1000 per request]")
    g.add_argument("--sample-rate-ms", type=float, metavar="MS", help="lag sample period [LOOPSCOPE_SAMPLE_RATE_MS, 10]")
    g.add_argument("--buffer-bytes", type=int, metavar="N",
                   help="unsent events kept at most [LOOPSCOPE_BUFFER_BYTES, 16 MiB]")
    g.add_argument("--timeout-ms", type=int, metavar="MS", help="per HTTP request [LOOPSCOPE_TIMEOUT_MS, 5000]")
    g.add_argument("--service", help="service name in the session's meta [LOOPSCOPE_SERVICE]")
    g.add_argument("--request-fraction", type=float, metavar="F",
                   help="with --per-request: the share of requests recorded, drawn at random, 0 to 1 "
                        "(0.1: one in ten) [LOOPSCOPE_REQUEST_FRACTION, 1]")
    g.add_argument("--library-path", action="append", metavar="DIR",
                   help="frames under DIR count as library code (repeatable) [LOOPSCOPE_LIBRARY_PATHS]")
    return p


_VALUE_OPTS = {"--name", "--save", "--save-batch-mb", "--top", "--server", "--token", "--blocking-threshold-ms",
               "--await-threshold-ms", "--max-tasks", "--sample-rate-ms", "--buffer-bytes", "--timeout-ms",
               "--service", "--library-path", "--request-fraction"}


def _split(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(options, kind, program argv): kind is "module", "script" or "command"; None when no program."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return argv[:i], "command", argv[i + 1:]
        if a == "-m":
            return argv[:i], "module", argv[i + 1:]
        if a.startswith("-m") and not a.startswith("--"):
            return argv[:i], "module", [a[2:]] + argv[i + 1:]
        if not a.startswith("-") or a == "-":
            return argv[:i], "script", argv[i:]
        if a in _VALUE_OPTS:
            i += 2
            continue
        i += 1
    return argv, None, []


def _settings(ns: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("server", "token", "blocking_threshold_ms", "await_threshold_ms", "max_tasks", "sample_rate_ms",
                "buffer_bytes", "timeout_ms", "service", "request_fraction"):
        v = getattr(ns, key)
        if v is not None:
            out[key] = v
    if ns.library_path:
        out["library_paths"] = tuple(os.path.abspath(p) for p in ns.library_path)
    if "max_tasks" not in out and "LOOPSCOPE_MAX_TASKS" not in os.environ and not ns.per_request:
        out["max_tasks"] = 1_000_000
        # A whole program's session can record events faster than the server stores them: the
        # 200k-task crawler (bench/run/measure.py) dropped 565,546 of 1.76M events with the 16 MiB
        # default and none with 256 MiB (memory is taken as events wait, not up front).
        if "buffer_bytes" not in out and "LOOPSCOPE_BUFFER_BYTES" not in os.environ:
            out["buffer_bytes"] = 256 << 20
    return out


def server_answers(url: str, timeout: float = 1.0) -> str | None:
    """None when loopscope-server answers GET /healthz at url, else why not."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=timeout) as r:
            return None if r.status == 200 else f"/healthz answered {r.status}"
    except Exception as e:  # noqa: BLE001 — any failure means: no usable server
        return str(getattr(e, "reason", e))


def _resolve_command(argv: list[str]) -> tuple[str, str, list[str]]:
    """A console script (uvicorn, ...) as (kind, target, argv): a Python file run with runpy."""
    if not argv:
        raise SystemExit("loopscope run: nothing to run after --")
    cmd = argv[0]
    if os.path.basename(cmd).startswith("python"):
        _, kind, rest = _split(argv[1:])
        if kind in ("module", "script") and rest:
            return kind, rest[0], rest
        raise SystemExit(f"loopscope run: {' '.join(argv)}: give a script or -m module to python")
    path = cmd if os.sep in cmd else shutil.which(cmd)
    if not path or not os.path.isfile(path):
        raise SystemExit(f"loopscope run: {cmd}: command not found")
    with open(path, "rb") as f:
        head = f.read(256)
    if not (path.endswith(".py") or (head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0])):
        raise SystemExit(f"loopscope run: {path} is not a Python script (loopscope records Python programs "
                         "in its own process)")
    return "script", path, [path] + argv[1:]


def _app_spec(argv: list[str]) -> tuple[str, str] | None:
    """The first module:attr argument of an ASGI server's command line."""
    import re
    for a in argv[1:]:
        m = re.fullmatch(r"([A-Za-z_][\w.]*):([A-Za-z_][\w.]*)", a)
        if m:
            return m.group(1), m.group(2)
    return None


def _wrap_app_on_import(module: str, attr: str, counter: list[int]) -> None:
    """Once `module` has been imported, its `attr` is wrapped in LoopscopeMiddleware (one session
    per request). An import hook, so the server imports the app itself as usual."""
    import importlib.abc
    import importlib.util

    from .asgi import LoopscopeMiddleware

    def wrap(mod: Any) -> None:
        obj = mod
        parts = attr.split(".")
        for p in parts[:-1]:
            obj = getattr(obj, p)
        app = getattr(obj, parts[-1], None)
        if app is not None and not isinstance(app, LoopscopeMiddleware):
            setattr(obj, parts[-1], LoopscopeMiddleware(app))
            counter[0] += 1

    if module in sys.modules:
        wrap(sys.modules[module])
        return

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
            if name != module:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            if spec is None or spec.loader is None:
                return None
            loader = spec.loader
            orig_exec = loader.exec_module

            class Wrapped(importlib.abc.Loader):
                def create_module(self, s: Any) -> Any:
                    return loader.create_module(s)

                def exec_module(self, mod: Any) -> None:
                    orig_exec(mod)
                    wrap(mod)

            spec.loader = Wrapped()
            return spec

    sys.meta_path.insert(0, Finder())


def _batch_stem(sid: str) -> str:
    """The batch ids the server's own export gives (export.c, batch_stem): "export-<session>",
    then "-1", "-2", ...; a session id too long to leave room for "-<k>" within the 128 bytes of a
    batch id is cut to its first 100 bytes and followed by "~" and the CRC-32 of the whole id."""
    if 7 + len(sid) + 11 <= 128:
        return f"export-{sid}"
    return f"export-{sid[:100]}~{zlib.crc32(sid.encode()):08x}"


def _session_of(line: bytes) -> str:
    """The session a batch (one line of a saved file or an export) belongs to, read from the text
    before its events so that a large batch is not parsed twice; any other layout is parsed."""
    at = line.find(b',"events":[')
    if at > 0:
        try:
            return json.loads(line[:at] + b"}").get("session", "")
        except ValueError:
            pass
    return json.loads(line).get("session", "")


def _save(sink: str, dest: str, batch_mb: float) -> tuple[int, int]:
    """Turns the batches the sender wrote to sink (one per line) into dest: per session, its events
    in one export batch {"v":1,"batch":"export-<id>","session":...,"meta":<last>,"events":[...]}
    (what GET /api/v1/sessions/{id}/export?format=json returns), split into several batches (one per
    line, ids export-<id>, export-<id>-1, ... as the server's export names them) beyond batch_mb. Returns (sessions, lines written). Textual: the
    events of a batch are the text after its first ',"events":[' (a JSON string never holds an
    unescaped quote, and the meta has no "events" key)."""
    marker = b',"events":['
    offsets: dict[str, list[tuple[int, int]]] = {}
    metas: dict[str, bytes] = {}
    with open(sink, "rb") as f:
        pos = 0
        for line in f:
            at = line.find(marker)
            if at > 0:
                head = json.loads(line[:at] + b"}")
                sid = head["session"]
                offsets.setdefault(sid, []).append((pos, len(line)))
                metas[sid] = json.dumps(head.get("meta") or {}).encode()
            pos += len(line)
    limit = int(batch_mb * (1 << 20))
    lines = 0
    tmp = dest + ".tmp"
    with open(sink, "rb") as src, open(tmp, "wb") as out:
        for sid, spans in offsets.items():
            parts: list[bytes] = []
            size = 0
            k = 0

            def emit(final: bool) -> None:
                nonlocal parts, size, k, lines
                bid = _batch_stem(sid) if k == 0 else f"{_batch_stem(sid)}-{k}"
                out.write(b'{"v":1,"batch":' + json.dumps(bid).encode() + b',"session":' + json.dumps(sid).encode()
                          + b',"meta":' + metas[sid] + b',"events":[' + b",".join(parts) + b"]}\n")
                lines += 1
                k += 1
                parts, size = [], 0

            for off, n in spans:
                src.seek(off)
                line = src.read(n).rstrip(b"\n")
                events = line[line.find(marker) + len(marker):-2]
                if not events:
                    continue
                # a sender batch larger than the limit by itself (a tiny --save-batch-mb) is cut
                # at event boundaries: parsed, which costs memory of one sender batch only
                pieces = [events] if len(events) <= limit else \
                    [json.dumps(ev, separators=(",", ":")).encode() for ev in json.loads(b"[" + events + b"]")]
                for piece in pieces:
                    if parts and size + len(piece) > limit:
                        emit(False)
                    parts.append(piece)
                    size += len(piece) + 1
            if parts or k == 0:
                emit(True)
    os.replace(tmp, dest)
    return len(offsets), lines


def run(argv: list[str]) -> int:
    opts, kind, prog = _split(argv)
    parser = _run_parser()
    ns = parser.parse_args(opts)
    if kind is None or not prog:
        parser.print_usage(sys.stderr)
        print("loopscope run: error: give a script, -m module, or -- command", file=sys.stderr)
        return 2
    if ns.request_fraction is not None and not ns.per_request:
        parser.print_usage(sys.stderr)
        print("loopscope run: error: --request-fraction needs --per-request (a whole program is one session)",
              file=sys.stderr)
        return 2
    if kind == "command":
        kind, target, prog = _resolve_command(prog)
    else:
        target = prog[0]
    if kind == "script" and not os.path.isfile(target):
        print(f"loopscope run: {target}: no such file", file=sys.stderr)
        return 2

    import loopscope
    from . import _state
    from . import summary as summ
    from .settings import load as load_settings

    settings = _settings(ns)
    try:
        cfg = load_settings(settings)
    except (TypeError, ValueError) as e:
        print(f"loopscope run: {e}", file=sys.stderr)
        return 2
    offline = ns.offline
    if not offline:
        why = server_answers(cfg.server)
        if why is not None:
            offline = True
            print(f"loopscope: no server at {cfg.server} ({why}): recording anyway, the summary comes at exit"
                  + (f", the recording goes to {ns.save}" if ns.save else " (--save FILE keeps the recording)"),
                  file=sys.stderr)
    sink = None
    if ns.save:
        fd, sink = tempfile.mkstemp(prefix=".loopscope-", suffix=".jsonl",
                                    dir=os.path.dirname(os.path.abspath(ns.save)) or ".")
        os.close(fd)
    name = ns.name or " ".join(["python", "-m"] + prog if kind == "module" else ["python"] + [os.path.basename(prog[0])] + prog[1:])
    loopscope.install(offline=offline, sink=sink, **settings)
    _state.installed_by_run = True
    core = _state.core
    wrapped = [0]
    if ns.per_request:
        core.summary_total(True)
        spec = _app_spec(prog)
        if spec is None:
            print("loopscope run: --per-request needs the app as module:attr in the command line "
                  "(uvicorn app:app)", file=sys.stderr)
            loopscope.uninstall()
            return 2
        _wrap_app_on_import(*spec, wrapped)
    code = 0
    session = None if ns.per_request else loopscope.session(name, summary=True)
    old_argv, old_path0 = sys.argv[:], sys.path[0] if sys.path else None
    sys.argv = prog[:]
    try:
        if kind == "module":
            sys.argv[0] = prog[0]
            sys.path.insert(0, os.getcwd())
        else:
            sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        try:
            if session is not None:
                session.__enter__()
            if kind == "module":
                runpy.run_module(prog[0], run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(target, run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if e.code is not None and not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
        except KeyboardInterrupt:
            code = 130
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        finally:
            if session is not None:
                session.__exit__(None, None, None)
    finally:
        sys.argv = old_argv
    data = session.summary() if session is not None else core.summary_total()
    if ns.per_request:
        core.summary_total(False)
    if not offline:
        loopscope.flush(60)
    stats = loopscope.stats()
    url = session.url if (session is not None and not offline) else (None if offline else cfg.server)
    _state.installed_by_run = False
    loopscope.uninstall()
    if not ns.no_summary and data is not None:
        per = "per request" if cfg.request_fraction >= 1 else \
            f"per request, {cfg.request_fraction * 100:g}% of requests recorded"
        title = name if session is not None else f"{name} ({wrapped[0] and per or 'app not wrapped'})"
        print("\n" + summ.render(data, title=title, top=ns.top, url=url, stats=stats), file=sys.stderr)
    if sink:
        try:
            sessions, lines = _save(sink, ns.save, ns.save_batch_mb)
            print(f"  saved: {ns.save} ({sessions} session{'s' if sessions != 1 else ''}, {lines} "
                  f"batch{'es' if lines != 1 else ''}; load it with `loopscope upload {ns.save}`)", file=sys.stderr)
        finally:
            os.unlink(sink)
    del old_path0
    return code


def upload(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="loopscope upload", description="Posts a file written by `loopscope run "
                                "--save` (or an export) to a server's /api/v1/ingest, one batch per line.")
    p.add_argument("file")
    p.add_argument("--server", default=os.environ.get("LOOPSCOPE_SERVER", "http://127.0.0.1:7878"))
    p.add_argument("--token", default=os.environ.get("LOOPSCOPE_TOKEN"))
    ns = p.parse_args(argv)
    base = ns.server.rstrip("/")
    sessions: list[str] = []
    n = 0
    with open(ns.file, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            req = urllib.request.Request(base + "/api/v1/ingest", data=line, method="POST",
                                         headers={"Content-Type": "application/json"})
            if ns.token:
                req.add_header("Authorization", f"Bearer {ns.token}")
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    r.read()
            except Exception as e:  # noqa: BLE001
                detail = e.read().decode(errors="replace")[:500] if hasattr(e, "read") else ""
                print(f"loopscope upload: batch {n + 1} of {ns.file}: {e} {detail}", file=sys.stderr)
                return 1
            n += 1
            sid = _session_of(line)
            if sid not in sessions:
                sessions.append(sid)
    for sid in sessions:
        print(f"{base}/sessions/{sid}")
    print(f"loopscope upload: {n} batch{'es' if n != 1 else ''}, {len(sessions)} session"
          f"{'s' if len(sessions) != 1 else ''}", file=sys.stderr)
    return 0


USAGE = """usage: loopscope run [options] scriptfile | -m module | -- command  [arg] ...
       loopscope upload FILE [--server URL] [--token T]

  run      record a Python program's asyncio loop, print a summary at exit (loopscope run --help)
  upload   post a recording saved with `loopscope run --save FILE` to a loopscope-server"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        return run(rest)
    if cmd == "upload":
        return upload(rest)
    print(f"loopscope: unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
    return 2
