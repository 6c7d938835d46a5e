//! Property tests' runner (feature `properties`, for the crates' test targets only): the same
//! configuration everywhere, and a case count `make fuzz` adds up.

use std::fmt::Debug;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Runs `test` over `PROPTEST_CASES` inputs (256 unless set); a failure, or a panic inside
/// `test`, fails with the shrunk input. Prints `property NAME: N cases` for `make fuzz`.
pub fn check<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    check_at_most(name, u32::MAX, strategy, test);
}

/// [`check`] with at most `max_cases` cases, for properties that each cost real I/O.
pub fn check_at_most<S>(
    name: &str,
    max_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    // No regression files: a failure prints its shrunk input, to be pinned in a unit test.
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    config.cases = config.cases.min(max_cases);
    let cases = config.cases;
    if let Err(failure) = TestRunner::new(config).run(&strategy, test) {
        panic!("property {name} failed: {failure}");
    }
    eprintln!("property {name}: {cases} cases");
}
