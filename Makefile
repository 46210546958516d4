# The two set-up commands (README): `make demo` and `make test`. `make bench` prints figures.
.PHONY: demo test bench build fmt lint

demo:
	cargo build --release -p sluice-runtime
	./target/release/sluice-runtime demo

test:
	bash scripts/test.sh

bench:
	bash scripts/bench.sh

build:
	cargo build --workspace

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings
