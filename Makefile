# The two commands a newcomer needs: `make dev` (the local stack) and `make test` (every test).
.PHONY: dev test test-rust test-infra lint fmt bench package clean

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
