//! `Algorithm`: how numbers are tested. The one enum from the command line through the wire
//! (xmlwire reads and writes it by [`Algorithm::from_name`] and [`Algorithm::as_str`]) to the
//! scheduler's cost model and the scan.

#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

/// How numbers are tested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Trial division by every d < n.
    Naive,
    /// Trial division up to the square root, divisor pairs.
    Trial,
    /// The segmented divisor-pair sieve (the default).
    #[default]
    Sieve,
}

impl Algorithm {
    /// Every algorithm, slowest first.
    pub const ALL: &'static [Algorithm] = &[Algorithm::Naive, Algorithm::Trial, Algorithm::Sieve];

    /// The name used on the command line and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Naive => "naive",
            Algorithm::Trial => "trial",
            Algorithm::Sieve => "sieve",
        }
    }

    /// The algorithm named `text` (exactly, lowercase), if any.
    pub fn from_name(text: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .iter()
            .copied()
            .find(|algorithm| algorithm.as_str() == text)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name that is not `naive`, `trial` or `sieve`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown algorithm {:?} (expected naive, trial or sieve)",
            self.0
        )
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(text: &str) -> Result<Algorithm, UnknownAlgorithm> {
        Algorithm::from_name(text).ok_or_else(|| UnknownAlgorithm(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip() {
        for &algorithm in Algorithm::ALL {
            assert_eq!(algorithm.as_str().parse(), Ok(algorithm));
        }
        assert!("Sieve".parse::<Algorithm>().is_err());
        assert_eq!(Algorithm::default(), Algorithm::Sieve);
    }
}
