# Two commands do everything (each creates .venv and installs what it needs):
#   make demo   - the main job: an ablation grid on Fashion-MNIST through the API, ending in a table
#   make test   - the full test suite (what CI runs via .ci/run)
.PHONY: demo test lint bootstrap
bootstrap:
	bash scripts/bootstrap.sh
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
lint: bootstrap
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
