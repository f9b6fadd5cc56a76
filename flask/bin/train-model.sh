#!/usr/bin/env bash
# Train the model once (image build, or first local start) so every worker
# serves the same version.
set -o errexit -o nounset -o pipefail
exec python -m iris_service.training "${MODEL_PATH:-var/model/iris_model.json}"
