//! Times as Calico's Go code writes them (IPAM values, `creationTimestamp`, the node
//! agent's status reports): RFC 3339 in UTC with whole seconds (`2026-08-20T08:58:44Z`, what a Kubernetes `metav1.Time` marshals to). Reading
//! accepts what Go's RFC 3339 parser accepts (fractional seconds, numeric offsets); the
//! fraction is dropped, as a Go writer drops it when it writes the value back.

/// Unix time in whole seconds.
pub type UnixSeconds = i64;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The earliest and latest second RFC 3339 can write (years 0000 to 9999).
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

/// `YYYY-MM-DDThh:mm:ssZ`, or `None` outside years 0000–9999.
pub fn format_rfc3339(secs: UnixSeconds) -> Option<String> {
    if !(MIN_SECS..=MAX_SECS).contains(&secs) {
        return None;
    }
    let days = secs.div_euclid(86_400);
    let s = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    ))
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |a, &b| a * 10 + i64::from(b - b'0')))
}

/// Parses RFC 3339 (`YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)`) to whole Unix seconds (the
/// fraction dropped). `None` when it is not such a time.
pub fn parse_rfc3339(s: &str) -> Option<UnixSeconds> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, se) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), hh @ .., b':', m1, m2] if hh.len() == 2 => {
            let oh = digits(hh)?;
            let om = digits(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || d < 1
        || d > month_days[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || se > 59
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_times() {
        assert_eq!(format_rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            format_rfc3339(1_787_216_324).as_deref(),
            Some("2026-08-20T08:58:44Z")
        );
        assert_eq!(parse_rfc3339("2026-08-20T08:58:44Z"), Some(1_787_216_324));
        assert_eq!(
            parse_rfc3339("2026-08-20T10:58:44.318205117+02:00"),
            Some(1_787_216_324)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(
            format_rfc3339(MIN_SECS).as_deref(),
            Some("0000-01-01T00:00:00Z")
        );
        for bad in [
            "",
            "2026-08-20 08:58:44Z",
            "2026-02-30T00:00:00Z",
            "2026-08-20T24:00:00Z",
            "2026-08-20T08:58:44",
            "2026-08-20T08:58:44.Z",
            "2026-08-20T08:58:44+2:00",
            "+026-08-20T08:58:44Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_is_identity(s in MIN_SECS..=MAX_SECS) {
            let text = format_rfc3339(s).unwrap_or_default();
            proptest::prop_assert_eq!(parse_rfc3339(&text), Some(s));
        }
    }
}
