//! The search's progress and ETA as people read them, from the optional attributes of
//! `<status>` (absent from older managers, which then show no progress line).

use xmlwire::protocol::Status;

/// "42.5% of numbers up to 1,000,000, ETA 3 min 10 s", or None when manage sent no progress.
pub fn describe(status: &Status<'_>, group: impl Fn(u64) -> String) -> Option<String> {
    let goal = status.eta_until?;
    let ppm = status.done_ppm?;
    let eta = match status.eta_ms {
        Some(ms) => format!("ETA {}", duration(ms)),
        None => "no ETA yet (no compute measured)".to_string(),
    };
    Some(format!(
        "{}.{}% of numbers up to {}, {eta}",
        ppm / 10_000,
        ppm / 1_000 % 10,
        group(goal)
    ))
}

/// A duration rounded for people: "12 s", "4 min 10 s", "2 h 05 min", "11 d 13 h".
pub fn duration(ms: u64) -> String {
    let seconds = ms.div_ceil(1000);
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {:02} s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{} h {:02} min", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{} d {:02} h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(12_001), "13 s");
        assert_eq!(duration(250_000), "4 min 10 s");
        assert_eq!(duration(7_500_000), "2 h 05 min");
        assert_eq!(duration(1_000_000_000), "11 d 13 h");
    }
}
