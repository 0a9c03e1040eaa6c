//! Exponential backoff for retry loops (saga steps, event delivery, mail).

use std::time::Duration;

/// `base` doubled per failed attempt (attempt 1 waits `base`), capped at `max`.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(20);
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let ms = |a| backoff(Duration::from_millis(100), Duration::from_secs(1), a).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(3), ms(4), ms(5), ms(60)],
            [100, 100, 200, 400, 800, 1000, 1000]
        );
    }
}
