"""bench/overhead/ablate.py VARIANT DIR — takes one part of the collector out of the copy of
collector/ in DIR (before it is built), so that ab.sh can time what that part costs:
    bench/overhead/ab.sh PYTHON ablate:full ablate:hooks ablate:timing ...
Each variant is a few exact substitutions in the sources; when one no longer applies (the code
moved), this stops with its name instead of timing something else. The builds are broken on
purpose (tasks go unrecorded, states unread): for timing only, never to use.

Variants:
  full       nothing taken out (the same build, for a like-for-like row)
  hooks      the C Handle._run and the task factory only: no handle timed, no task registered
  timing     every handle timed (clock reads, heartbeat, lag), no task registered or recorded
  no-factory as timing, and no task factory set on the loop either: against timing, what the
             factory's own call costs (the most that seeing tasks without a factory could save)
  no-await   tasks recorded, but a step's await point is not read (every await says "yield")
  no-state   tasks recorded, but a finished task's _state and _exception are not asked
  no-store   everything but the store: events are built and dropped before they are written
  no-record  every handle timed and its task looked up (tasks registered as in full), but no step,
             await or end recorded: the most a recorder that writes less per step could save
  no-header  full, with no X-Loopscope-Session header: LoopscopeMiddleware(app, header=False), a
             setting users have, so a build to time, not a broken one
  no-header-state  as no-header, and no scope["state"]["loopscope_session"] entry: what making
             both optional would save on a request (stop 41's question, timed)
  hooks-no-run         as hooks, and Handle._run left asyncio's own (not patched at all)
  hooks-no-factory     as hooks, and no task factory set on the loop
  hooks-no-middleware  as hooks, and LoopscopeMiddleware passes every request straight through
                       (no session, no request object): with the two above, hooks taken apart
  hooks-no-ctxvar      as hooks, and a request's session is not made the context's session
  hooks-no-adopt       as hooks, and a request's task is not adopted as its session's root: with
                       the one above, parts of the session's open and close priced in place
  hooks-no-session     as hooks, and request_open makes the Request object and nothing else (no
                       session, no state entry, no header): what any design that keeps the
                       middleware and its C stand-in for send would still pay
  hooks-no-header      as hooks, and no X-Loopscope-Session header (the middleware's header=False)
  hooks-no-state       as hooks, and no scope["state"]["loopscope_session"] entry
  hooks-no-route       as hooks, and no route read from the scope at the close
                       (with hooks-no-ctxvar and hooks-no-adopt: the request's contract priced
                       piece by piece)
  one-store-session    full, but every named session after the first is the first one's store
                       session (lscollector.c): no session taken, linked, given a chunk or queued
                       per request, and its end is one record written without the lock. What a
                       per-loop record stream would save on the loop thread at most (the batches
                       it ships are nonsense: a timing build only)
"""
import os
import sys

NO_RUN = ("loopscope/_state.py", "    core.patch_handle(asyncio.events.Handle, task_types(), callback_samples())\n",
          "    pass  # ablate\n")
NO_FACTORY = ("loopscope/_state.py", "        set_raw(core.TaskFactory(current))\n", "        pass  # ablate\n")
NO_MIDDLEWARE = ("loopscope/asgi.py", "        if core is None or scope[\"type\"] not in _RECORDED:\n",
                 "        if True:  # ablate\n")
NO_CTXVAR = ("ext/request.c", "  if (!(req->token = PyContextVar_Set(G.session_var, (PyObject *)req))) goto fail;\n",
             "  req->token = NULL; /* ablate */\n")
NO_ADOPT = ("ext/request.c", "  if (session_enter_loop(sess, loop, 1)) goto fail;\n",
            "  if (session_enter_loop(sess, loop, 0)) goto fail; /* ablate */\n")
NO_SESSION = ("ext/request.c", "  req->vectorcall = (vectorcallfunc)request_send;\n",
              "  req->vectorcall = (vectorcallfunc)request_send;\n"
              "  if (req) { Py_DECREF(loop); return (PyObject *)req; } /* ablate */\n")
NO_HEADER = ("loopscope/asgi.py", "        self.header = header\n", "        self.header = False  # ablate\n")
NO_STATE = [("ext/request.c",
             "  /* scope.setdefault(\"state\", {})[\"loopscope_session\"] = request; a read-only state is left be */\n",
             "  goto ablate_state; /* ablate */\n"),
            ("ext/request.c", "  if (header) {\n    size_t pn", "ablate_state:\n  if (header) {\n    size_t pn")]
NO_ROUTE = ("ext/request.c", "  if (!session_live(&self->s)) return;\n", "  if (self) return; /* ablate */\n")
NO_REGISTER = ("ext/factory.c", "  uint64_t t0 = 0, parent = 0;\n",
               "  uint64_t t0 = 0, parent = 0;\n  if (s) { Py_DECREF(s); s = NULL; } /* ablate */\n")
VARIANTS = {
    "full": [],
    "hooks": [("ext/step.c", "  return time_step(cb, run_handle, self, self);\n}",
               "  return call_orig_run(self, PyThreadState_GET()); /* ablate */\n}"), NO_REGISTER],
    "timing": [NO_REGISTER],
    "no-factory": [NO_REGISTER, NO_FACTORY],
    "no-await": [("ext/record.c", "  else await_capture(e, t1);",
                  "  else { (void)await_capture; e->awaiting = 1; e->await_t = rel(e->sess, t1); e->await_at = NULL;"
                  " e->await_line = 0; set_what_stable(e, \"yield\", 5); } /* ablate */")],
    "no-state": [("ext/record.c", "    st = task_state(e->task);", "    st = 1; /* ablate */"),
                 ("ext/record.c", "  PyObject *text = state == 2 ? NULL : exc_text(e->task);",
                  "  PyObject *text = NULL; (void)exc_text; /* ablate */")],
    "no-store": [("src/lscollector.c", "int ls_emit(ls_session *s, const ls_event *ev) {\n",
                  "int ls_emit(ls_session *s, const ls_event *ev) {\n  if (s) return LSC_OK; /* ablate */\n"),
                 ("src/lscollector.c", "int ls_emit_step(ls_session *s, uint64_t id, uint64_t t, uint64_t d) {\n",
                  "int ls_emit_step(ls_session *s, uint64_t id, uint64_t t, uint64_t d) {\n"
                  "  if (s) return LSC_OK; /* ablate */\n"),
                 ("src/lscollector.c", "                  ls_str func) {\n",
                  "                  ls_str func) {\n  if (s) return LSC_OK; /* ablate */\n")],
    "no-record": [("ext/step.h", "  task_entry *e = task ? tab_find(task) : NULL;\n",
                   "  task_entry *e = task ? tab_find(task) : NULL;\n"
                   "  if (e) { __asm__ volatile(\"\" : : \"r\"(e)); e = NULL; } /* ablate: the lookup kept */\n"),
                  ("ext/step.h", "  } else if (task && G.tab_len && (e = tab_find(task)) && session_live(e->sess)) {",
                   "  } else if (0) { /* ablate */")],
}
ONE_STORE_SESSION = [
    ("src/lscollector.c",
     "int ls_session_begin(ls_collector *c, const char *id, const ls_session_start *st, ls_session **out) {\n",
     "static ls_session *ablate_one; /* ablate */\n"
     "int ls_session_begin(ls_collector *c, const char *id, const ls_session_start *st, ls_session **out) {\n"
     "  if (ablate_one && st->name) { *out = ablate_one; return LSC_OK; } /* ablate */\n"),
    ("src/lscollector.c", "    (*out)->wall_ns = st->wall_ns;\n",
     "    (*out)->wall_ns = st->wall_ns;\n    if (st->name) ablate_one = *out; /* ablate */\n"),
    ("src/lscollector.c",
     "int ls_session_close_routed(ls_session *s, uint64_t t_end, const char *route, size_t route_n) {\n",
     "int ls_session_close_routed(ls_session *s, uint64_t t_end, const char *route, size_t route_n) {\n"
     "  if (s == ablate_one) { /* ablate */\n"
     "    ls_event ev; memset(&ev, 0, sizeof ev); ev.kind = LS_K_END; ev.t = t_end; (void)route; (void)route_n;\n"
     "    return ls_emit(s, &ev);\n  }\n"),
    ("src/lscollector.c", "void ls_collector_free(ls_collector *c, int timeout_ms) {\n  if (!c) return;\n",
     "void ls_collector_free(ls_collector *c, int timeout_ms) {\n  if (!c) return;\n"
     "  ablate_one = NULL; /* ablate */\n"),
]
VARIANTS["one-store-session"] = ONE_STORE_SESSION
VARIANTS["no-header"] = [NO_HEADER]
VARIANTS["no-header-state"] = [NO_HEADER] + NO_STATE
VARIANTS["hooks-no-run"] = VARIANTS["hooks"] + [NO_RUN]
VARIANTS["hooks-no-factory"] = VARIANTS["hooks"] + [NO_FACTORY]
VARIANTS["hooks-no-middleware"] = VARIANTS["hooks"] + [NO_MIDDLEWARE]
VARIANTS["hooks-no-ctxvar"] = VARIANTS["hooks"] + [NO_CTXVAR]
VARIANTS["hooks-no-adopt"] = VARIANTS["hooks"] + [NO_ADOPT]
VARIANTS["hooks-no-session"] = VARIANTS["hooks"] + [NO_SESSION]
VARIANTS["hooks-no-header"] = VARIANTS["hooks"] + [NO_HEADER]
VARIANTS["hooks-no-state"] = VARIANTS["hooks"] + NO_STATE
VARIANTS["hooks-no-route"] = VARIANTS["hooks"] + [NO_ROUTE]


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in VARIANTS:
        print(__doc__, file=sys.stderr)
        return 2
    variant, root = sys.argv[1], sys.argv[2]
    for rel, old, new in VARIANTS[variant]:
        path = os.path.join(root, rel)
        with open(path) as f:
            text = f.read()
        if text.count(old) != 1:
            print(f"ablate.py: {variant}: {rel} no longer has the line it replaces: {old.strip()!r}",
                  file=sys.stderr)
            return 1
        with open(path, "w") as f:
            f.write(text.replace(old, new))
    return 0


if __name__ == "__main__":
    sys.exit(main())
