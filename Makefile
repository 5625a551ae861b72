# Hanshu: every developer task is a target here. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= runtime,operator,autoscaler,gateway,dispatcher,cli,test,bench
PORT ?= 8080
TAG ?= dev
CLUSTER ?= hanshu
NAMESPACE ?= hanshu-system
KIND ?= kind
KUBECTL ?= kubectl
HELM ?= helm
DOCKER ?= docker
IMAGES := runtime operator autoscaler gateway dispatcher
# pytest-xdist workers for make test, unit and integration. Most integration tests wait on a
# process to start, not on a core, so more workers than cores pay off: on 2 busy cores the
# gateway's integration tests took 182 s on 2 workers, 155 s on 4 and 156 s on 6.
TEST_WORKERS ?= 4

.DEFAULT_GOAL := help
.PHONY: help install lint test unit integration scale-test e2e bench bench-runtime bench-operator bench-autoscaler bench-gateway run dev operator autoscaler gateway clean images kind-up kind-load deploy demo undeploy kind-down docs crds

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@echo "installing Hanshu into $(VENV) (about 2 minutes)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)
	@echo 'installed: the hanshu command is $(BIN)/hanshu; to type just hanshu: export PATH="$$PWD/$(BIN):$$PATH"'

install: $(STAMP) ## create .venv and install Hanshu with every extra (editable)

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint ## lint, then unit and integration tests (e2e skip without a cluster)
	$(BIN)/pytest -n $(TEST_WORKERS)

unit: $(STAMP) ## unit tests only
	$(BIN)/pytest -n $(TEST_WORKERS) tests/unit

integration: $(STAMP) ## integration tests only (real processes on loopback)
	$(BIN)/pytest -n $(TEST_WORKERS) tests/integration

scale-test: $(STAMP) ## the operator with 5,000 Functions + Triggers under its memory limit (minutes)
	$(BIN)/pytest -m scale tests/integration/operator/test_scale.py -s

e2e: $(STAMP) ## end-to-end tests against the cluster at KUBECONFIG (after make deploy)
	$(BIN)/pytest -m e2e tests/e2e

bench: bench-runtime bench-operator bench-gateway ## every benchmark (needs wrk and hey; nginx-light for the peer row: apt-get install wrk hey nginx-light)

bench-runtime: $(STAMP) ## runtime vs functions-framework vs bare aiohttp
	$(BIN)/python bench/runtime_bench.py

bench-operator: $(STAMP) ## 500 Functions against kmock: time to children, peak RSS
	$(BIN)/python bench/operator_bench.py --functions 500

bench-autoscaler: $(STAMP) ## the autoscaler's takeover time after its leader is killed (two processes, kmock)
	$(BIN)/python bench/autoscaler_takeover.py

bench-gateway: $(STAMP) ## warm overhead, cold path, a 1,000-request burst from zero
	$(BIN)/python bench/gateway_bench.py

dev: $(STAMP) ## the whole platform locally: gateway, autoscaler, replicas (examples/)
	$(BIN)/hanshu dev examples/hello examples/scheduled examples/api-key examples/from-lambda examples/thumbnails --port $(PORT)

gateway: $(STAMP) ## run the gateway against the cluster at KUBECONFIG
	$(BIN)/python -m hanshu_gateway

operator: $(STAMP) ## run the operator against the cluster at KUBECONFIG
	$(BIN)/python -m hanshu_operator

autoscaler: $(STAMP) ## run the autoscaler against the cluster at KUBECONFIG (HANSHU_LEASE_NAMESPACE: where its Lease is)
	$(BIN)/python -m hanshu_autoscaler

run: $(STAMP) ## serve examples/hello with the runtime on PORT (default 8080)
	HANSHU_HANDLER=index.handler HANSHU_CODE_DIR=examples/hello HANSHU_PORT=$(PORT) \
	HANSHU_ADMIN_PORT=$$(( $(PORT) + 1010 )) HANSHU_FUNCTION_NAME=hello \
	HANSHU_TERMINATION_LOG=/dev/null $(BIN)/python -m hanshu_runtime

images: ## build the five component images (hanshu/<name>:$(TAG)) and the example function images
	for image in $(IMAGES); do \
		$(DOCKER) build -f $$image/Dockerfile -t hanshu/$$image:$(TAG) . || exit 1; done
	$(DOCKER) build --build-arg RUNTIME_IMAGE=hanshu/runtime:$(TAG) -t hanshu/example-flask:$(TAG) examples/flask-app
	$(DOCKER) build --build-arg RUNTIME_IMAGE=hanshu/runtime:$(TAG) -t hanshu/example-fastapi:$(TAG) examples/fastapi-app

kind-up: ## create the kind cluster from kind/cluster.yaml (does nothing if it exists)
	$(KIND) get clusters 2>/dev/null | grep -qx $(CLUSTER) || $(KIND) create cluster --name $(CLUSTER) --config kind/cluster.yaml

kind-load: ## load the images into the kind cluster
	$(KIND) load docker-image --name $(CLUSTER) $(foreach image,$(IMAGES),hanshu/$(image):$(TAG)) hanshu/example-flask:$(TAG) hanshu/example-fastapi:$(TAG)

deploy: ## CRDs, then helm upgrade --install with the local images
	$(KUBECTL) apply --server-side -f crds/
	$(HELM) upgrade --install hanshu charts/hanshu --namespace $(NAMESPACE) --create-namespace \
		-f charts/hanshu/ci/kind-values.yaml $(foreach image,$(IMAGES),--set image.$(image).tag=$(TAG)) --wait --timeout 5m

demo: kind-up images kind-load deploy ## everything on kind, then call examples/hello from zero
	KUBECTL=$(KUBECTL) hack/demo.sh

undeploy: ## uninstall the chart (CRDs and Functions stay)
	$(HELM) uninstall hanshu --namespace $(NAMESPACE)

kind-down: ## delete the kind cluster
	$(KIND) delete cluster --name $(CLUSTER)

crds: $(STAMP) ## regenerate crds/ and the chart's copy from crds/source/ and hanshu_api's constants
	$(BIN)/python hack/gen_crds.py

docs: $(STAMP) ## regenerate docs/reference from the CRD schemas and docs/cli.md from hanshu's help
	$(BIN)/python hack/gen_reference.py
	$(BIN)/python -m hanshu_cli.docs docs/cli.md

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
