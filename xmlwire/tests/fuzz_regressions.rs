//! Regressions from fuzzing: every input a fuzz target (fuzz/fuzz_targets) ever crashed on
//! becomes a named test here, with the bug it found, before the bug is fixed.
//!
//! Also: the fuzz seeds (fuzz/seeds) replayed through the checks of the `tokenize` and `split`
//! targets, so those checks run with every `cargo test`, without nightly.

mod common;

use common::{run_chunked, run_whole};
use xmlwire::Limits;

/// The checks of the `split` target, for one input: cut anywhere in two, and byte by byte, the
/// outcome is that of the whole.
fn assert_split_invariant(stream: &[u8]) {
    let whole = run_whole(stream);
    for cut in 0..=stream.len() {
        assert_eq!(
            run_chunked(stream, &[cut], Limits::default()),
            whole,
            "cut at {cut}"
        );
    }
    assert_eq!(
        run_chunked(stream, &vec![1; stream.len()], Limits::default()),
        whole
    );
}

#[test]
fn fuzz_seeds_keep_the_split_invariant() {
    let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/split");
    let mut replayed = 0;
    for entry in std::fs::read_dir(seeds).expect("fuzz/seeds/split") {
        let stream = std::fs::read(entry.unwrap().path()).unwrap();
        assert_split_invariant(&stream);
        assert_eq!(run_whole(&stream).end, Ok(()), "seeds are valid streams");
        replayed += 1;
    }
    assert!(replayed >= 5);
}
