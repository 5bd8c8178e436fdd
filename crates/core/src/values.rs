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
    let separator = match decimal {
        DecimalSeparator::Point => b'.',
        DecimalSeparator::Comma => b',',
    };
    if let Some(value) = parse_short_decimal(text.as_bytes(), separator) {
        return Some(value);
    }
    // Only plain decimal notation: Rust's parser would also take "inf" and "infinity".
    let plain = |b: u8| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'e' | b'E') || b == separator;
    if !text.bytes().all(plain) {
        return None;
    }
    let value = match decimal {
        DecimalSeparator::Point => text.parse::<f64>().ok()?,
        DecimalSeparator::Comma => text.replace(',', ".").parse::<f64>().ok()?,
    };
    value.is_finite().then_some(value)
}

/// Powers of ten that an `f64` holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 16] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// The value of `[+-]digits[<separator>digits]` with at most 15 digits in all, the form
/// most numbers in data files take; `None` for anything else, left to the full parser.
/// Such a number is an integer below 2^53 divided by an exact power of ten: both are exact
/// in an `f64`, so the one division rounds correctly and the result is the full parser's
/// (Clinger's fast path).
fn parse_short_decimal(bytes: &[u8], separator: u8) -> Option<f64> {
    let (negative, unsigned) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let mut mantissa: u64 = 0;
    let (mut digits, mut fraction_digits, mut in_fraction) = (0, 0, false);
    for &byte in unsigned {
        if byte.is_ascii_digit() {
            mantissa = mantissa * 10 + u64::from(byte - b'0');
            digits += 1;
            fraction_digits += usize::from(in_fraction);
        } else if byte == separator && !in_fraction {
            in_fraction = true;
        } else {
            return None;
        }
    }
    // "1." and ".5" are numbers to the full parser too; "." and "" are not.
    if digits == 0 || digits > 15 {
        return None;
    }
    let magnitude = mantissa as f64 / EXACT_POWERS_OF_TEN[fraction_digits];
    Some(if negative { -magnitude } else { magnitude })
}

/// Microseconds since the epoch for `YYYY-MM-DD`, `YYYY-MM-DD[T ]HH:MM:SS[.ffffff]` (UTC)
/// or the same with a `Z` / `±HH:MM` offset.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| digits(bytes.get(range)?);
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let days = days_since_epoch(year, month, day)?;
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
        let mut rest = &bytes[19..];
        if let Some(fraction) = rest.strip_prefix(b".") {
            let count = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
            if count == 0 {
                return None;
            }
            // Microseconds: the first six digits, padded with zeros; finer ones are dropped.
            let micros =
                fraction[..count].iter().chain(&[b'0'; 6]).take(6).fold(0, |n, &b| n * 10 + i64::from(b - b'0'));
            micros_of_day += micros;
            rest = &fraction[count..];
        }
        match rest {
            b"" | b"Z" | b"z" => {}
            [sign @ (b'+' | b'-'), hours @ .., b':', _, _] if hours.len() == 2 => {
                let (hours, minutes) = (digits(hours)?, digits(&rest[4..6])?);
                let sign = if *sign == b'-' { -1 } else { 1 };
                offset_seconds = sign * (hours * 3600 + minutes * 60);
            }
            _ => return None,
        }
    }
    Some(days * 86_400_000_000 + micros_of_day - offset_seconds * 1_000_000)
}

/// The value of a run of ASCII digits (at most 4 here); `None` if any byte is not one.
fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0, |n, &b| b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0')))
}

/// Days from 1970-01-01 to a valid proleptic Gregorian date; `None` for a date that does
/// not exist. The count is the civil-from-days inverse in Howard Hinnant's `date`
/// algorithms: years start in March, so a leap day is the last day of its year.
fn days_since_epoch(year: i64, month: i64, day: i64) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) {
        return None;
    }
    let march_year = if month <= 2 { year - 1 } else { year };
    let era = march_year.div_euclid(400);
    let year_of_era = march_year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
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

/// A text that is no value of a numeric feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotNumeric;

/// A text given for a numeric feature (a CSV cell, a quoted JSON value), read as serving and
/// monitoring read it: [`numeric_feature`], or missing when it is a null token (`""`, `NA`, …).
pub fn numeric_text(text: &str) -> Result<Option<f64>, NotNumeric> {
    match numeric_feature(text) {
        Some(number) => Ok(Some(number)),
        None if normalise(text).is_none() => Ok(None),
        None => Err(NotNumeric),
    }
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
    fn short_decimals_read_exactly_as_the_full_parser_reads_them() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200_000 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let digits = (state >> 60) as usize % 15 + 1;
            let point = (state >> 40) as usize % (digits + 1);
            let number = format!("{:0digits$}", (state >> 8) % 10_u64.pow(digits as u32));
            let text = format!("{}{}.{}", if state & 1 == 1 { "-" } else { "" }, &number[..point], &number[point..]);
            assert_eq!(parse_float(&text, DecimalSeparator::Point), text.parse::<f64>().ok(), "{text:?}");
            let comma = text.replace('.', ",");
            assert_eq!(parse_float(&comma, DecimalSeparator::Comma), text.parse::<f64>().ok(), "{comma:?}");
        }
        for edge in ["1.", ".5", "-0.0", "+3", "007.10", "999999999999999", "0.000000000000001"] {
            assert_eq!(parse_float(edge, DecimalSeparator::Point), edge.parse::<f64>().ok(), "{edge:?}");
        }
        for not_float in [".", "-", "+", "", "-.", "1.2.3", "1,5"] {
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
        let epoch = time::Date::from_calendar_date(1970, time::Month::January, 1).unwrap();
        let mut date = time::Date::from_calendar_date(1600, time::Month::January, 1).unwrap();
        while let Some(next) = date.next_day().filter(|next| next.year() < 2400) {
            let text = format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day());
            assert_eq!(parse_timestamp(&text), Some((date - epoch).whole_days() * day), "{text}");
            date = next;
        }
        assert_eq!(parse_timestamp("2024-02-29"), Some(19_782 * day), "a leap day");
        for bad in [
            "2025-02-29",
            "1900-02-29",
            "2026-00-10",
            "2026-04-31",
            "2026-02-30",
            "2026-13-01",
            "2026-1-1",
            "22/11/2026",
            "2026-11-22T25:00:00",
            "2026-11-22Tnoon",
            "1234567890",
            "2026-11-22T10:15:01.Z",
            "2026-11-22T10:15:01+1:00",
            "2026-11-22T10:15:01+01-00",
            "2026-11-22T10:15:01+0a:00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }
}
