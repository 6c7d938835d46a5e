# The two commands a newcomer needs: `make dev` (the local stack) and `make test` (every test).
.PHONY: dev test test-rust test-infra lint fmt bench bench-quick package clean

CARGO ?= cargo

## The local stack: moto, the gateway, the pollers, the functions, the page and the simulator.
dev:
	scripts/dev.sh

## Every test: Rust unit and integration tests against a moto server of their own.
test: test-rust test-infra

test-rust:
	scripts/test-deps.sh
	scripts/with-moto.sh $(CARGO) test --workspace

## The Pulumi program: npm ci, tsc --noEmit, unit tests on Pulumi's mocks.
test-infra:
	infra/test.sh

## The fan-out benchmark, ours against the seed's design (100k virtual connections, 5k sockets;
## takes minutes, not part of `make test`): target/bench/bench.{txt,json,svg}.
bench:
	scripts/bench.sh

## The same at 10k virtual connections and 1k sockets.
bench-quick:
	scripts/bench.sh --quick

## Lambda zips for provided.al2023 (cargo-lambda + zig from the venv).
package:
	scripts/package.sh

## fmt and clippy, as CI runs them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf .venv target
