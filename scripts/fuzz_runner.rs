//! The proptest runner every fuzz harness uses (`crates/*/tests/fuzz.rs` include this file),
//! so the tests and `scripts/fuzz.sh` mean the same thing by `FUZZ_SEED` and `FUZZ_CASES`.

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Seeded unless `FUZZ_SEED=random`; `FUZZ_CASES` sets the number of cases (default 300).
pub fn runner() -> TestRunner {
    let cases = std::env::var("FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    match std::env::var("FUZZ_SEED").as_deref() {
        Ok("random") => TestRunner::new(config),
        _ => TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha)),
    }
}
