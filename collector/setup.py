# setup.py — builds loopscope._core from the C core (src/) and the CPython module (ext/),
# linking libcurl and zlib. LOOPSCOPE_COVERAGE=1 builds with gcov instrumentation for the tests;
# LOOPSCOPE_WERROR=1 makes warnings errors (the project's own tests set it; a user's pip install
# never does, so a newer compiler's new warning cannot break an install). LOOPSCOPE_SANITIZE=1
# builds with ASan+UBSan (scripts/test-collector-asan.sh runs the suite against it).
import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
# common/ is C the server shares (the bounded buffer, the UTF-8 validator). In the repository it is
# a symlink to ../common; an sdist (MANIFEST.in) or `cp -rL` holds real files. A copy of collector/
# made without following the link cannot build: say so instead of a compiler error.
COMMON = ["common/dynbuf.c", "common/utf8.c"]
for _f in COMMON:
    if not os.path.isfile(os.path.join(HERE, _f)):
        raise SystemExit(f"loopscope: {os.path.join(HERE, _f)} is missing: collector/common links to the "
                         "repository's common/; copy collector/ with `cp -rL` (or build an sdist) to take it along")
cflags = ["-std=c11", "-Wall", "-Wextra", "-Wshadow", "-D_POSIX_C_SOURCE=200809L",
          "-Wno-missing-field-initializers", "-Wno-cast-function-type",
          # Optimised for size, whatever the interpreter was built with (-O2 in Debian's, -O3 in
          # pyenv's): the collector's cost is the instruction-cache lines its code takes between
          # two stretches of the interpreter's own, not its instructions. Measured on 3.14's async
          # tree (callgrind --cache-sim=yes, this build as of e71c9dd): 1.16M I1 misses added
          # where -O2 added 1.89M, for 5.7M instructions instead of 3.5M; 3.15: 1.00M against
          # 1.63M (bench/overhead/README.md, with how far layout alone moves them). The one-line
          # helpers every step calls stay inline (LS_ALWAYS_INLINE). Hidden visibility: calls
          # between the module's own files go direct, not through the PLT (PyInit__core is
          # exported by PyMODINIT_FUNC itself).
          "-Os", "-fvisibility=hidden"]
if os.environ.get("LOOPSCOPE_WERROR") == "1":
    cflags.append("-Werror")
lflags = []
if os.environ.get("LOOPSCOPE_COVERAGE"):
    cflags += ["--coverage", "-O0"]
    lflags += ["--coverage"]
if os.environ.get("LOOPSCOPE_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
    cflags += san + ["-O1", "-g"]
    lflags += san

setup(
    ext_modules=[
        Extension(
            "loopscope._core",
            sources=["ext/module.c", "ext/code.c", "ext/tasks.c", "ext/record.c", "ext/session.c",
                     "ext/factory.c", "ext/step.c", "ext/uvloop.c", "ext/request.c", "ext/lag.c",
                     "ext/watchdog.c", "ext/summary.c", "src/lsencode.c", "src/lsintern.c", "src/lshttp.c", "src/lscollector.c", "src/lssender.c", "src/lssrc.c"] + COMMON,
            include_dirs=["src", "common"],
            libraries=["curl", "z", "pthread"],
            extra_compile_args=cflags,
            extra_link_args=lflags,
        )
    ]
)
