# setup.py — builds loopscope._core from the C core (src/) and the CPython module (ext/),
# linking libcurl and zlib. LOOPSCOPE_COVERAGE=1 builds with gcov instrumentation for the tests.
import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
cflags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-D_POSIX_C_SOURCE=200809L",
          "-Wno-missing-field-initializers", "-Wno-cast-function-type"]
lflags = []
if os.environ.get("LOOPSCOPE_COVERAGE"):
    cflags += ["--coverage", "-O0"]
    lflags += ["--coverage"]

setup(
    ext_modules=[
        Extension(
            "loopscope._core",
            sources=["ext/_core.c", "ext/request.c", "ext/lag.c", "ext/watchdog.c", "src/lsbuf.c", "src/lsencode.c", "src/lshttp.c", "src/lscollector.c", "src/lssrc.c"],
            include_dirs=["src"],
            libraries=["curl", "z", "pthread"],
            extra_compile_args=cflags,
            extra_link_args=lflags,
        )
    ]
)
