# setup.py — builds loopscope._core from the C core (src/) and the CPython module (ext/),
# linking libcurl and zlib. LOOPSCOPE_COVERAGE=1 builds with gcov instrumentation for the tests;
# LOOPSCOPE_WERROR=1 makes warnings errors (the project's own tests set it; a user's pip install
# never does, so a newer compiler's new warning cannot break an install). LOOPSCOPE_SANITIZE=1
# builds with ASan+UBSan (scripts/test-collector-asan.sh runs the suite against it).
import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
cflags = ["-std=c11", "-Wall", "-Wextra", "-Wshadow", "-D_POSIX_C_SOURCE=200809L",
          "-Wno-missing-field-initializers", "-Wno-cast-function-type"]
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
                     "ext/watchdog.c", "ext/summary.c", "src/lsbuf.c", "src/lsencode.c", "src/lshttp.c", "src/lscollector.c", "src/lssrc.c"],
            include_dirs=["src"],
            libraries=["curl", "z", "pthread"],
            extra_compile_args=cflags,
            extra_link_args=lflags,
        )
    ]
)
