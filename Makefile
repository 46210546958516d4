# The two set-up commands (README): `make demo` and `make test`. `make bench` prints figures.
.PHONY: demo test bench bench-kafka bench-nexmark bench-workers build fmt lint torture

demo:
	cargo build --release -p sluice-runtime --no-default-features
	./target/release/sluice-runtime demo

test:
	bash scripts/test.sh

bench:
	bash scripts/bench.sh

# The Nexmark queries of examples/nexmark/ (see scripts/bench-nexmark.sh).
bench-nexmark:
	bash scripts/bench-nexmark.sh

# One process vs `--workers 2`, and the exchange vs raw loopback TCP (see scripts/bench-workers.sh).
bench-workers:
	bash scripts/bench-workers.sh

# Kafka → Kafka figures (starts the test broker; see scripts/bench-kafka.sh).
bench-kafka:
	bash scripts/bench-kafka.sh

# Randomized differential torture test for TORTURE_MINUTES (default 10) from TORTURE_SEED.
torture:
	bash scripts/torture.sh

build:
	cargo build --workspace

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings

# ---- kind: Sluice on a local Kubernetes cluster (needs Docker, kind and kubectl) -------------
# `make kind-up kind-images kind-deploy` gives a cluster with the operator, MinIO and Kafka;
# `make kind-e2e` runs the end-to-end test (tests/e2e/kind.sh); `make kind-down` deletes it all.
.PHONY: kind-up kind-images kind-deploy kind-e2e kind-down validate-manifests

kind-up:
	bash scripts/kind.sh up

kind-images:
	bash scripts/kind.sh images

kind-deploy:
	bash scripts/kind.sh deploy

kind-e2e:
	bash tests/e2e/kind.sh

kind-down:
	bash scripts/kind.sh down

validate-manifests:
	bash scripts/validate-manifests.sh

# Model check of the checkpoint + two-phase-commit + recovery protocol (issue 9): the bounded
# configurations run in `make test`; these larger ones take minutes and several GB of memory.
.PHONY: check-model

check-model:
	cargo test -p sluice-runtime --test protocol_model larger -- --ignored --test-threads=1 --nocapture
