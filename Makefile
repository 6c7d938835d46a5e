# The two commands a newcomer needs: `make dev` (the local stack) and `make test` (every test).
.PHONY: dev test test-rust lint fmt bench package clean

CARGO ?= cargo

## Every test: Rust unit and integration tests against a moto server of their own.
test: test-rust

test-rust:
	scripts/with-moto.sh $(CARGO) test --workspace --all-targets

## fmt and clippy, as CI runs them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf .venv target
