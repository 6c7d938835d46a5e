# The two commands a newcomer needs: `make dev` (the local stack) and `make test` (every test).
.PHONY: dev test test-rust test-infra test-client lint fmt bench bench-quick package clean fuzz

CARGO ?= cargo

## The local stack: moto, the gateway, the pollers, the functions, the page and the simulator.
dev:
	scripts/dev.sh

## Every test: Rust unit and integration tests against a moto server of their own, the Pulumi
## program's tests, and the dashboards' client library.
test: test-rust test-infra test-client

test-rust:
	scripts/test-deps.sh
	scripts/with-moto.sh $(CARGO) test --workspace

## The dashboards' client library: npm ci, tsc, build (dist/), node --test on the compiled tests.
test-client:
	client/test.sh

## The Pulumi program: npm ci, tsc --noEmit, unit tests on Pulumi's mocks.
test-infra:
	infra/test.sh

## The fan-out benchmark (about 15 minutes, not part of `make test`): one broadcast to 100k
## virtual connections (and 1M) against the emulated throttle, ours vs the seed's design;
## subscriptions; a sustained writer in rounds and batch mode. target/bench/bench.{txt,json,svg}.
bench:
	scripts/bench.sh

## The same at 10k virtual connections and 1k sockets, a 30 s writer and no 1M run.
bench-quick:
	scripts/bench.sh --quick

## Property tests of every decoder of outside input (client messages, FanoutJob bodies, stream
## records, tokens, query strings) with FUZZ_CASES cases each (`make test` runs them with
## 256), in release mode; prints the total. Failures show the shrunk input.
FUZZ_CASES ?= 10000
FUZZ_CRATES = -p registry -p jobs -p processor -p authorizer -p apigw -p event-sources
fuzz:
	@mkdir -p target
	@( PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release $(FUZZ_CRATES) --test properties -- --nocapture 2>&1; echo "fuzz exit $$?" ) | tee target/fuzz.log
	@awk 'match($$0, /property [^ ]+: [0-9]+ cases/) { split(substr($$0, RSTART, RLENGTH), f, " "); n++; total += f[3] } END { printf "fuzz: %d properties, %d cases in total\n", n, total }' target/fuzz.log
	@grep -qx 'fuzz exit 0' target/fuzz.log

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
