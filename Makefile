# kura: the two commands from the README, and the checks CI runs.
.PHONY: demo test check lint package

demo:            ## build and run kurad on the embedded default
	cargo run --release --bin kurad -- demo

test:            ## install what the tests need, then run the whole suite
	./dev/setup
	cargo build --bins
	cargo nextest run --no-fail-fast

lint:            ## formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

check: lint test

package:         ## the .deb and .rpm, reproducibly, into target/dist (packaging/build.sh)
	./dev/setup --package
	packaging/build.sh
