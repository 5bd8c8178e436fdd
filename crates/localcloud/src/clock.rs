//! The local cloud's clock, which can run faster than real time so that demos and tests
//! need not wait out AWS's minutes: at speed 60 a `rate(15 minutes)` schedule fires every
//! 15 s and a 60 s alarm period lasts 1 s. Only durations are scaled; timestamps stay real
//! (functions stamp their metrics and events with the wall clock).

use std::time::Duration;

/// The variable that sets the speed: how many times faster than real time the local cloud runs.
pub const SPEED_VARIABLE: &str = "SLUICE_CLOCK_SPEED";

#[derive(Debug, thiserror::Error)]
#[error("{SPEED_VARIABLE} must be a number of at least 1 (how many times faster than real time to run), not {value:?}")]
pub struct ClockError {
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    speed: f64,
}

impl Default for Clock {
    /// Real time.
    fn default() -> Self {
        Self { speed: 1.0 }
    }
}

impl Clock {
    /// A clock `speed` times faster than real time; slower than real time is not offered,
    /// as nothing in the local cloud would be faithful to AWS at that pace.
    pub fn new(speed: f64) -> Result<Self, ClockError> {
        if speed.is_finite() && speed >= 1.0 {
            Ok(Self { speed })
        } else {
            Err(ClockError { value: speed.to_string() })
        }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// How long `nominal` (an AWS duration: a schedule's rate, an alarm's period) lasts on
    /// this clock; at least a millisecond, so that no timer spins.
    pub fn real(&self, nominal: Duration) -> Duration {
        nominal.div_f64(self.speed).max(Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_shrink_by_the_speed() {
        let clock = Clock::new(60.0).unwrap();
        assert_eq!(clock.real(Duration::from_secs(15 * 60)), Duration::from_secs(15));
        assert_eq!(clock.real(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(clock.real(Duration::ZERO), Duration::from_millis(1), "never a zero-length timer");
        assert_eq!(Clock::default().real(Duration::from_secs(60)), Duration::from_secs(60));
    }

    #[test]
    fn only_finite_speeds_of_at_least_one_are_accepted() {
        assert_eq!(Clock::new(1.0).unwrap().speed(), 1.0);
        for speed in [0.5, 0.0, -3.0, f64::NAN, f64::INFINITY] {
            let err = Clock::new(speed).unwrap_err().to_string();
            assert!(err.contains(SPEED_VARIABLE), "{err}");
        }
    }
}
