#!/usr/bin/env bash
# The one test command: installs what the tests need (Debian packages when
# missing, pinned Python packages in .venv), runs the linters, the type checker,
# the shell linter and the whole pytest suite: unit tests, the local stack and
# the Docker tests (flask/tests/support/docker_stack.py). Extra arguments go to pytest.
set -o errexit -o nounset -o pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

if [[ "${1:-}" == "--help" ]]; then
  echo "usage: ./run_tests.sh [pytest arguments]" >&2
  exit 0
fi

ensure_debs "${LOCAL_MODE_DEBS[@]}" \
  pdftotext poppler-utils shellcheck shellcheck chromium chromium
ensure_venv requirements-dev.txt
PATH="$VENV/bin:$PATH"

cd "$ROOT"
info "shellcheck"
mapfile -t scripts < <(git ls-files '*.sh')
shellcheck -x "${scripts[@]}"
info "hadolint"
mapfile -t dockerfiles < <(git ls-files '*Dockerfile' '*.Dockerfile')
hadolint "${dockerfiles[@]}"

cd "$ROOT/flask"
info "ruff"
ruff check src tests
ruff format --check src tests
# The load-test and benchmark scripts live outside the package: same rules.
ruff check --config pyproject.toml ../locust ../bench ../scripts
ruff format --check --config pyproject.toml ../locust ../bench ../scripts
info "mypy"
mypy
mypy ../locust/locustfile.py ../locust/check_results.py ../bench/benchmark.py ../bench/report_bench.py ../bench/burst.py \
  ../bench/seed_jobs.py ../bench/scale_bench.py ../bench/role_memory.py \
  ../scripts/localstack.py
info "pytest"
status=0
python -m pytest "$@" || status=$?
# The Docker tests stop their private engine; this also does when pytest was cut short.
"$ROOT/scripts/docker-test-engine.sh" stop >/dev/null 2>&1 || true
exit "$status"
