//! Reading one value written as text: null tokens, booleans, numbers under the dataset's
//! decimal convention, ISO dates and timestamps. The one parser that ingest validation,
//! the ETL's type inference and conversion, the trainer and the serving row checks share,
//! so a value a client sends in the form it was ingested is read the same way everywhere.

use crate::options::DecimalSeparator;

/// Cell texts that mean "no value" (compared case-insensitively after trimming).
const NULL_TOKENS: [&str; 5] = ["", "na", "n/a", "null", "nan"];

/// The trimmed cell, or `None` for a null token.
pub fn normalise(cell: &str) -> Option<&str> {
    // Most cells start and end with a visible ASCII character: nothing to trim.
    let visible = |byte: Option<&u8>| byte.is_some_and(|&b| b.is_ascii_graphic());
    let bytes = cell.as_bytes();
    let trimmed = if visible(bytes.first()) && visible(bytes.last()) { cell } else { cell.trim() };
    // Every null token is at most 4 bytes: longer cells, the most, skip the comparisons.
    if trimmed.len() <= 4 && NULL_TOKENS.iter().any(|token| trimmed.eq_ignore_ascii_case(token)) {
        None
    } else {
        Some(trimmed)
    }
}

pub fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

pub fn parse_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

pub fn parse_float(text: &str, decimal: DecimalSeparator) -> Option<f64> {
    // Only plain decimal notation: Rust's parser would also take "inf" and "infinity".
    let plain = |b: u8| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'e' | b'E');
    let value = match decimal {
        DecimalSeparator::Point => {
            if !text.bytes().all(|b| plain(b) || b == b'.') {
                return None;
            }
            text.parse::<f64>().ok()?
        }
        DecimalSeparator::Comma => {
            if !text.bytes().all(|b| plain(b) || b == b',') {
                return None;
            }
            text.replace(',', ".").parse::<f64>().ok()?
        }
    };
    value.is_finite().then_some(value)
}

/// Microseconds since the epoch for `YYYY-MM-DD`, `YYYY-MM-DD[T ]HH:MM:SS[.ffffff]` (UTC)
/// or the same with a `Z` / `±HH:MM` offset.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes().all(|b| b.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let mut micros_of_day = 0;
    let mut offset_seconds = 0;
    if bytes.len() > 10 {
        if !matches!(bytes[10], b'T' | b' ') || bytes.len() < 19 || bytes[13] != b':' || bytes[16] != b':' {
            return None;
        }
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        micros_of_day = ((hour * 60 + minute) * 60 + second) * 1_000_000;
        let mut rest = &text[19..];
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let micros: String = fraction[..digits].chars().chain(std::iter::repeat('0')).take(6).collect();
            micros_of_day += micros.parse::<i64>().ok()?;
            rest = &fraction[digits..];
        }
        match rest {
            "" | "Z" | "z" => {}
            offset
                if offset.len() == 6 && matches!(offset.as_bytes()[0], b'+' | b'-') && offset.as_bytes()[3] == b':' =>
            {
                let hours: i64 = offset[1..3].parse().ok()?;
                let minutes: i64 = offset[4..6].parse().ok()?;
                let sign = if offset.starts_with('-') { -1 } else { 1 };
                offset_seconds = sign * (hours * 3600 + minutes * 60);
            }
            _ => return None,
        }
    }
    let days = i64::from(date.to_julian_day())
        - i64::from(time::Date::from_calendar_date(1970, time::Month::January, 1).ok()?.to_julian_day());
    Some(days * 86_400_000_000 + micros_of_day - offset_seconds * 1_000_000)
}

/// A timestamp as a model feature: seconds since the epoch. The trainer turns timestamp
/// columns into this, and serving turns a timestamp text into the same number.
pub fn timestamp_feature(micros: i64) -> f64 {
    micros as f64 / 1e6
}

/// A text value as a numeric model feature, read the way the ETL read the column: a
/// number (decimal point, the form JSON and the curated data use), a boolean (1 or 0), or
/// an ISO date or timestamp ([`timestamp_feature`]). `None` if it is none of these.
pub fn numeric_feature(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Some(number) = parse_float(text, DecimalSeparator::Point) {
        return Some(number);
    }
    if let Some(flag) = parse_bool(text) {
        return Some(if flag { 1.0 } else { 0.0 });
    }
    parse_timestamp(text).map(timestamp_feature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_tokens_and_trimming() {
        for null in ["", "  ", "NA", "na", "N/A", "null", "NULL", "NaN", " nan "] {
            assert_eq!(normalise(null), None, "{null:?}");
        }
        assert_eq!(normalise("  x y "), Some("x y"));
        assert_eq!(normalise("None"), Some("None"), "a category may be called None");
    }

    #[test]
    fn numbers_follow_the_decimal_convention() {
        assert_eq!(parse_integer("-42"), Some(-42));
        assert_eq!(parse_integer("+7"), Some(7));
        for not_integer in ["1.0", "1e3", "", "-", "0x10", "1 000", "99999999999999999999"] {
            assert_eq!(parse_integer(not_integer), None, "{not_integer:?}");
        }
        assert_eq!(parse_float("3.25", DecimalSeparator::Point), Some(3.25));
        assert_eq!(parse_float("-1e-3", DecimalSeparator::Point), Some(-0.001));
        assert_eq!(parse_float("3,25", DecimalSeparator::Comma), Some(3.25));
        assert_eq!(parse_float("3,25", DecimalSeparator::Point), None);
        assert_eq!(parse_float("3.25", DecimalSeparator::Comma), None);
        for not_float in ["inf", "infinity", "1e999", "abc", "1.2.3"] {
            assert_eq!(parse_float(not_float, DecimalSeparator::Point), None, "{not_float:?}");
        }
    }

    #[test]
    fn booleans_are_words_not_digits() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("1"), None);
        assert_eq!(parse_bool("yes"), None);
    }

    #[test]
    fn text_reads_as_the_feature_the_model_was_trained_on() {
        assert_eq!(numeric_feature(" 2.5 "), Some(2.5));
        assert_eq!(numeric_feature("7"), Some(7.0));
        assert_eq!(numeric_feature("TRUE"), Some(1.0));
        assert_eq!(numeric_feature("false"), Some(0.0));
        assert_eq!(numeric_feature("1970-01-02"), Some(86_400.0));
        assert_eq!(numeric_feature("1970-01-01T00:00:01.5Z"), Some(1.5));
        assert_eq!(numeric_feature("tall"), None);
        assert_eq!(numeric_feature("inf"), None);
    }

    #[test]
    fn timestamps_in_common_iso_forms() {
        let day = 86_400_000_000_i64;
        assert_eq!(parse_timestamp("1970-01-02"), Some(day));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5"), Some(1_500_000));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_timestamp("2026-11-22T10:15:01.123456Z"), Some(1_795_342_501_123_456));
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-1-1",
            "22/11/2026",
            "2026-11-22T25:00:00",
            "2026-11-22Tnoon",
            "1234567890",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }
}
