# setup.py — builds loopscope._core from the C core (src/) and the CPython module (ext/),
# linking libcurl and zlib. LOOPSCOPE_COVERAGE=1 builds with gcov instrumentation for the tests;
# LOOPSCOPE_WERROR=1 makes warnings errors (the project's own tests set it; a user's pip install
# never does, so a newer compiler's new warning cannot break an install). LOOPSCOPE_SANITIZE=1
# builds with ASan+UBSan (scripts/test-collector-asan.sh runs the suite against it).
#
# Profile-guided by default: _core is built instrumented, pgo_train.py runs the collector's hot
# paths once (about a second), and _core is built again at -O2 from that profile, the code the
# training never ran kept apart from the code it ran. Measured on CPython 3.13 (AMD EPYC, 512 KiB
# L2): the light request loop 1.052x loop-thread CPU against the -Os build's 1.095x in the same
# run; a plain -O2 build gains ~1 point of that (bench/overhead/README.md, 2026-12-06). Anything
# that fails on the way (a compiler without gcc's profile flags, a training run that cannot start,
# a cross build) falls back to the plain -Os build with a warning: an install never fails for it.
# LOOPSCOPE_PGO=0 builds plain at once; coverage and sanitizer builds are always plain.
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

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


def _compiler_takes(flag: str) -> bool:
    """Whether the C compiler Python builds extensions with accepts flag (an empty file compiled
    with it): a flag for speed is never a reason for an install to fail."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")  # as setuptools picks it
    try:
        r = subprocess.run(cc + [flag, "-Werror", "-x", "c", "-c", "-o", os.devnull, "-"],
                           input="int loopscope_probe;\n", capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


# Calls into the interpreter without the PLT: each C-API call the collector makes went through a
# 16-byte stub in the module's .plt, a line of code of its own between the interpreter's; with
# -fno-plt it is one indirect call through the GOT. Simulated on 3.14/3.15 (callgrind
# --cache-sim=yes, the timed run of bench.py; bench/overhead/README.md, stop 49): I1 misses
# added by the collector 3.14 async tree +0.39M -> -0.22M, light request loop +2.48M -> +1.68M;
# 3.15 async tree -0.25M -> -0.88M; instructions unchanged (-0.1%).
if _compiler_takes("-fno-plt"):
    cflags.append("-fno-plt")
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

PGO = (os.environ.get("LOOPSCOPE_PGO", "1") != "0" and not os.environ.get("LOOPSCOPE_COVERAGE")
       and not os.environ.get("LOOPSCOPE_SANITIZE"))
TRAIN = os.path.join(HERE, "pgo_train.py")


class PgoBuildExt(build_ext):
    """build_ext that builds _core profile-guided (see the top of this file), else as usual."""

    def build_extension(self, ext):
        if not PGO or not os.path.isfile(TRAIN):
            return super().build_extension(ext)
        plain = (list(ext.extra_compile_args), list(ext.extra_link_args), list(ext.define_macros))
        prof = tempfile.mkdtemp(prefix="loopscope-pgo-")
        try:
            why = self._pgo(ext, prof, plain)
        except Exception as e:  # the compiler refused a flag, the copy failed, ...
            why = f"{type(e).__name__}: {e}"
        finally:
            shutil.rmtree(prof, ignore_errors=True)
        if why is None:
            return None
        print(f"loopscope: profile-guided build skipped ({why}); building without it", file=sys.stderr)
        ext.extra_compile_args, ext.extra_link_args, ext.define_macros = (list(v) for v in plain)
        self._rebuild(ext)
        return None

    def _rebuild(self, ext):
        out = self.get_ext_fullpath(ext.name)
        if os.path.exists(out):
            os.remove(out)
        force, self.force = self.force, True  # the sources are older than what the last build left
        try:
            super().build_extension(ext)
        finally:
            self.force = force

    def _pgo(self, ext, prof, plain):
        """Builds ext from a training profile: None when done, else why it was not."""
        # -O2 in place of -Os: gcc splits hot from cold code from -O2 up (at -Os the profile
        # moved nothing measurable); both builds alike, or the profile would not match the code
        opt = [f for f in plain[0] if f != "-Os"] + ["-O2"]
        ext.extra_compile_args = opt + [f"-fprofile-generate={prof}", "-fprofile-update=atomic"]
        ext.extra_link_args = plain[1] + [f"-fprofile-generate={prof}"]
        self._rebuild(ext)
        why = self._train(self.get_ext_fullpath(ext.name), prof)
        if why:
            return why
        # partial training: code the training never ran is optimised as usual, not as never run
        ext.extra_compile_args = opt + [f"-fprofile-use={prof}", "-fprofile-partial-training",
                                        "-Wno-missing-profile"]
        ext.extra_link_args = list(plain[1])
        ext.define_macros = plain[2] + [("LS_BUILD_PGO", "1")]  # loopscope._core.BUILD == "pgo"
        self._rebuild(ext)
        return None

    @staticmethod
    def _train(built, prof):
        """Runs pgo_train.py against the instrumented module: None, or why it could not."""
        run = tempfile.mkdtemp(prefix="loopscope-train-")
        try:
            shutil.copytree(os.path.join(HERE, "loopscope"), os.path.join(run, "loopscope"),
                            ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
            shutil.copy(built, os.path.join(run, "loopscope", os.path.basename(built)))
            shutil.copy(TRAIN, run)
            env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSCOPE_") and k != "PYTHONPATH"}
            r = subprocess.run([sys.executable, os.path.join(run, "pgo_train.py"), os.path.join(run, "sink.jsonl")],
                               cwd=run, env=env, capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                return f"the training run failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"
        except (OSError, subprocess.SubprocessError) as e:
            return f"the training run could not start: {e}"
        finally:
            shutil.rmtree(run, ignore_errors=True)
        if not any(f.endswith(".gcda") for _, _, fs in os.walk(prof) for f in fs):
            return "the training left no profile"
        return None


setup(
    cmdclass={"build_ext": PgoBuildExt},
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
