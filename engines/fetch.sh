#!/usr/bin/env bash
# Fetch the local Beam engines into .engines/ (or $VIDCLASS_ENGINES_DIR): idempotent, safe to re-run.
#
#   .engines/flink-1.19.3/                           Flink distribution (bin, conf, lib, opt, plugins),
#                                                    assembled from PyPI's apache-flink + apache-flink-libraries
#                                                    (downloaded with pip, never installed into a venv)
#   .engines/beam-runners-flink-1.19-job-server-*.jar   Beam's Flink job server: Beam's published jar when Maven
#                                                    serves it, else built (shaded) from the runner artifact
#   .engines/bin/prism                               Beam's Prism runner, `go install`ed at the Beam version
#
# Needs: java (17), mvn, go, and a python with pip (default: .venv/bin/python, else python3).
# Exits non-zero with a message naming the artifact when one cannot be fetched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENG="${VIDCLASS_ENGINES_DIR:-$ROOT/.engines}"
# Keep these in step with engines/cluster.py.
BEAM_VERSION="${BEAM_VERSION:-2.77.0}"                  # the Python SDK's version: prism and the preferred jar
FLINK_VERSION="${FLINK_VERSION:-1.19.3}"
FLINK_MINOR="${FLINK_VERSION%.*}"
JOBSERVER_FALLBACK_VERSION="${JOBSERVER_FALLBACK_VERSION:-2.62.0}"  # newest whose runner tree Maven serves here
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY="$(command -v python3 || true)"; fi
fi

die() { echo "engines/fetch.sh: ERROR: $*" >&2; exit 1; }
say() { echo "engines/fetch.sh: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH ($2)"; }
now() { date +%s; }

need java "Flink and the job server run on Java 17"
need mvn "the job-server jar comes from Maven Central"
need go "prism is built with go install"
[[ -n "$PY" ]] && "$PY" -m pip --version >/dev/null 2>&1 || die "no python with pip (set PYTHON=...)"

mkdir -p "$ENG/bin" "$ENG/logs"
TMP="$(mktemp -d "$ENG/.tmp.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# ---------------------------------------------------------------------------------------------------
# 1. Flink distribution from PyPI: apache-flink's wheel carries pyflink/bin and pyflink/conf, and
#    apache-flink-libraries' sdist carries deps/lib, deps/opt, deps/plugins. Downloaded only: installing
#    apache-flink would pin apache-beam<2.49 and other old packages, which conflicts with the project.
FLINK_HOME="$ENG/flink-$FLINK_VERSION"
if [[ -x "$FLINK_HOME/bin/jobmanager.sh" && -f "$FLINK_HOME/lib/flink-dist-$FLINK_VERSION.jar" ]]; then
  say "Flink $FLINK_VERSION already in $FLINK_HOME"
else
  t=$(now)
  say "downloading apache-flink==$FLINK_VERSION and apache-flink-libraries==$FLINK_VERSION from PyPI (~230 MB)"
  # Any CPython wheel has the same bin/ and conf/: ask for one explicitly so that this works from any python.
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp --python-version 3.11 \
      --platform manylinux2014_x86_64 -d "$TMP/pypi" "apache-flink==$FLINK_VERSION" >"$ENG/logs/pip-flink.log" 2>&1 \
    || die "PyPI did not serve apache-flink==$FLINK_VERSION (see $ENG/logs/pip-flink.log)"
  "$PY" -m pip download --quiet --no-deps --no-binary=:all: -d "$TMP/pypi" "apache-flink-libraries==$FLINK_VERSION" \
      >"$ENG/logs/pip-flink-libraries.log" 2>&1 \
    || die "PyPI did not serve apache-flink-libraries==$FLINK_VERSION (see $ENG/logs/pip-flink-libraries.log)"
  "$PY" - "$TMP/pypi" "$TMP/flink" "$FLINK_VERSION" <<'EOF'
import glob, os, shutil, stat, sys, tarfile, zipfile
src, dst, version = sys.argv[1:4]
wheel = glob.glob(os.path.join(src, f"apache_flink-{version}-*.whl"))[0]
sdist = glob.glob(os.path.join(src, f"apache_flink_libraries-{version}.tar.gz")) or \
        glob.glob(os.path.join(src, f"apache-flink-libraries-{version}.tar.gz"))
os.makedirs(dst)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        for part in ("bin", "conf"):
            prefix = f"pyflink/{part}/"
            if name.startswith(prefix) and not name.endswith("/"):
                out = os.path.join(dst, part, name[len(prefix):])
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with z.open(name) as i, open(out, "wb") as o:
                    shutil.copyfileobj(i, o)
with tarfile.open(sdist[0]) as t:
    for m in t.getmembers():
        parts = m.name.split("/")
        if len(parts) > 2 and parts[1] == "deps" and parts[2] in ("lib", "opt", "plugins", "bin") and m.isfile():
            out = os.path.join(dst, *parts[2:])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with t.extractfile(m) as i, open(out, "wb") as o:
                shutil.copyfileobj(i, o)
for f in glob.glob(os.path.join(dst, "bin", "*")):
    os.chmod(f, os.stat(f).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
missing = [p for p in ("bin/jobmanager.sh", "bin/taskmanager.sh", "bin/config.sh", "conf/log4j-console.properties",
                       f"lib/flink-dist-{version}.jar") if not os.path.exists(os.path.join(dst, p))]
if missing:
    sys.exit(f"the PyPI packages lack {missing}")
EOF
  rm -rf "$FLINK_HOME" && mv "$TMP/flink" "$FLINK_HOME"
  say "Flink $FLINK_VERSION assembled in $FLINK_HOME ($(( $(now) - t )) s)"
fi

# ---------------------------------------------------------------------------------------------------
# 2. Beam's Flink job-server jar. Beam publishes org.apache.beam:beam-runners-flink-<minor>-job-server;
#    prefer it at the SDK's version. When Maven Central does not serve it (true for every version here,
#    on 2026-11-25), build the same shaded jar from beam-runners-flink-<minor> at the newest version whose
#    whole dependency tree is served (engines/flink-job-server/pom.xml).
OFFICIAL_JAR="$ENG/beam-runners-flink-$FLINK_MINOR-job-server-$BEAM_VERSION.jar"
BUILT_JAR="$ENG/beam-runners-flink-$FLINK_MINOR-job-server-$JOBSERVER_FALLBACK_VERSION.jar"
jar_ok() {  # a readable jar whose manifest names FlinkJobServerDriver
  [[ -s "$1" ]] && "$PY" - "$1" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    sys.exit(0 if b"FlinkJobServerDriver" in z.read("META-INF/MANIFEST.MF") else 1)
EOF
}
if jar_ok "$OFFICIAL_JAR"; then
  say "job server already in $OFFICIAL_JAR"
elif jar_ok "$BUILT_JAR"; then
  say "job server already in $BUILT_JAR (built from beam-runners-flink-$FLINK_MINOR:$JOBSERVER_FALLBACK_VERSION)"
else
  t=$(now)
  say "asking Maven Central for org.apache.beam:beam-runners-flink-$FLINK_MINOR-job-server:$BEAM_VERSION"
  if mvn -B -q -U org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
      "-Dartifact=org.apache.beam:beam-runners-flink-$FLINK_MINOR-job-server:$BEAM_VERSION:jar" \
      "-DoutputDirectory=$ENG" >"$ENG/logs/mvn-job-server.log" 2>&1 && jar_ok "$OFFICIAL_JAR"; then
    say "job server fetched: $OFFICIAL_JAR ($(( $(now) - t )) s)"
  else
    say "not served; building it from org.apache.beam:beam-runners-flink-$FLINK_MINOR:$JOBSERVER_FALLBACK_VERSION (~150 MB of jars)"
    mvn -B -q -f "$ROOT/engines/flink-job-server/pom.xml" -U \
        "-Dbeam.version=$JOBSERVER_FALLBACK_VERSION" "-Dflink.minor=$FLINK_MINOR" "-Dengines.dir=$ENG" \
        package >"$ENG/logs/mvn-job-server-build.log" 2>&1 \
      || { tail -20 "$ENG/logs/mvn-job-server-build.log" >&2;
           die "Maven could not resolve org.apache.beam:beam-runners-flink-$FLINK_MINOR:$JOBSERVER_FALLBACK_VERSION and its dependencies (see $ENG/logs/mvn-job-server-build.log)"; }
    jar_ok "$BUILT_JAR" || die "the job-server build produced no usable $BUILT_JAR"
    rm -rf "$ENG/build"
    say "job server built: $BUILT_JAR ($(( $(now) - t )) s)"
  fi
fi

# ---------------------------------------------------------------------------------------------------
# 3. Prism, built from Beam's Go module at the SDK's version (PrismRunner would otherwise download a
#    release zip from GitHub, which cannot be reached here).
PRISM="$ENG/bin/prism"
if [[ -x "$PRISM" ]] && go version -m "$PRISM" 2>/dev/null | grep -q "github.com/apache/beam/sdks/v2[[:space:]]*v$BEAM_VERSION"; then
  say "prism v$BEAM_VERSION already in $PRISM"
else
  t=$(now)
  say "go install github.com/apache/beam/sdks/v2/go/cmd/prism@v$BEAM_VERSION (a few minutes on 2 cores)"
  if ! GOBIN="$ENG/bin" GOFLAGS=-buildvcs=false go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$BEAM_VERSION" \
      >"$ENG/logs/go-prism.log" 2>&1; then
    if grep -q "requires go >= 1.27" "$ENG/logs/go-prism.log"; then
      say "needs Go 1.27: retrying with GOTOOLCHAIN=go1.27.3"
      GOTOOLCHAIN=go1.27.3 GOBIN="$ENG/bin" GOFLAGS=-buildvcs=false \
        go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$BEAM_VERSION" >>"$ENG/logs/go-prism.log" 2>&1 \
        || die "go install of prism@v$BEAM_VERSION failed with Go 1.27 (see $ENG/logs/go-prism.log)"
    else
      tail -5 "$ENG/logs/go-prism.log" >&2
      die "the Go module proxy did not serve github.com/apache/beam/sdks/v2@v$BEAM_VERSION or it did not build (see $ENG/logs/go-prism.log)"
    fi
  fi
  say "prism built: $PRISM ($(( $(now) - t )) s)"
fi

JAR="$OFFICIAL_JAR"; jar_ok "$JAR" || JAR="$BUILT_JAR"
echo "FLINK_HOME=$FLINK_HOME"
echo "FLINK_JOB_SERVER_JAR=$JAR"
echo "PRISM=$PRISM"
du -sh "$FLINK_HOME" "$JAR" "$PRISM" >&2
