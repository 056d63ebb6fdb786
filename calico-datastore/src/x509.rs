//! The validity period of an X.509 certificate in PEM, read with a minimal DER walk: enough
//! to say "our client certificate expired at ..." when a member rejects it, since etcd's
//! TLS stack does not say why.

use std::fmt;

use base64::Engine as _;

/// A certificate time (UTC), as written in the certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CertTime {
    /// Year.
    pub year: u16,
    /// Month, 1-12.
    pub month: u8,
    /// Day of the month, 1-31.
    pub day: u8,
    /// Hour, 0-23.
    pub hour: u8,
    /// Minute, 0-59.
    pub minute: u8,
    /// Second, 0-60 (a leap second is allowed).
    pub second: u8,
}

impl CertTime {
    /// Seconds since the Unix epoch (negative before 1970).
    pub fn unix_seconds(&self) -> i64 {
        // Days from civil (proleptic Gregorian), eras of 400 years from March 1st.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400
            + i64::from(self.hour) * 3_600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

impl fmt::Display for CertTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// When a certificate is valid: from `not_before` to `not_after`, both included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertValidity {
    /// The first moment of validity.
    pub not_before: CertTime,
    /// The last moment of validity.
    pub not_after: CertTime,
}

/// The validity of the first certificate in PEM text; `None` when there is no certificate
/// block or it cannot be decoded.
pub fn certificate_validity(pem: &[u8]) -> Option<CertValidity> {
    let text = std::str::from_utf8(pem).ok()?;
    let mut body = String::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line == "-----BEGIN CERTIFICATE-----" {
            inside = true;
        } else if line == "-----END CERTIFICATE-----" {
            if inside {
                break;
            }
        } else if inside {
            body.push_str(line);
        }
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .ok()?;
    der_validity(&der)
}

/// One DER element: (tag, contents, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // High tag numbers do not occur where we look.
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;

/// The validity of a DER certificate: Certificate → TBSCertificate → (version, serial,
/// signature algorithm, issuer) → Validity.
fn der_validity(der: &[u8]) -> Option<CertValidity> {
    let (SEQUENCE, cert, _) = tlv(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xa0 {
        rest = after; // [0] version
    }
    let (0x02, _, after) = tlv(rest)? else {
        return None; // serial number
    };
    let (SEQUENCE, _, after) = tlv(after)? else {
        return None; // signature algorithm
    };
    let (SEQUENCE, _, after) = tlv(after)? else {
        return None; // issuer
    };
    let (SEQUENCE, validity, _) = tlv(after)? else {
        return None;
    };
    let (t1, v1, after) = tlv(validity)?;
    let (t2, v2, _) = tlv(after)?;
    Some(CertValidity {
        not_before: time(t1, v1)?,
        not_after: time(t2, v2)?,
    })
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, v: &[u8]) -> Option<CertTime> {
    let digits = v.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |s: &[u8]| s.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(&digits[..2]);
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (0x18, 14) => (num(&digits[..4]), &digits[4..]),
        _ => return None,
    };
    let part = |i: usize| u8::try_from(num(&rest[2 * i..2 * i + 2])).ok();
    let t = CertTime {
        year,
        month: part(0)?,
        day: part(1)?,
        hour: part(2)?,
        minute: part(3)?,
        second: part(4)?,
    };
    let valid = (1..=12).contains(&t.month)
        && (1..=31).contains(&t.day)
        && t.hour < 24
        && t.minute < 60
        && t.second <= 60;
    valid.then_some(t)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    fn element(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    fn encode_time(t: &CertTime) -> Vec<u8> {
        if (1950..2050).contains(&t.year) {
            let s = format!(
                "{:02}{:02}{:02}{:02}{:02}{:02}Z",
                t.year % 100,
                t.month,
                t.day,
                t.hour,
                t.minute,
                t.second
            );
            element(0x17, s.as_bytes())
        } else {
            let s = format!(
                "{:04}{:02}{:02}{:02}{:02}{:02}Z",
                t.year, t.month, t.day, t.hour, t.minute, t.second
            );
            element(0x18, s.as_bytes())
        }
    }

    /// A certificate shaped as X.509 is (contents of the other fields are placeholders).
    fn cert(nb: &CertTime, na: &CertTime, version: bool, padding: usize) -> Vec<u8> {
        let mut tbs = Vec::new();
        if version {
            tbs.extend(element(0xa0, &element(0x02, &[2])));
        }
        tbs.extend(element(0x02, &[0x01, 0x23]));
        tbs.extend(element(SEQUENCE, &element(0x06, &[0x2a, 0x86, 0x48])));
        tbs.extend(element(SEQUENCE, &vec![0x55; padding]));
        let mut validity = encode_time(nb);
        validity.extend(encode_time(na));
        tbs.extend(element(SEQUENCE, &validity));
        tbs.extend(element(SEQUENCE, &[]));
        let mut c = element(SEQUENCE, &tbs);
        c.extend(element(SEQUENCE, &[]));
        c.extend(element(0x03, &[0]));
        element(SEQUENCE, &c)
    }

    fn pem(der: &[u8]) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    fn any_time() -> impl Strategy<Value = CertTime> {
        (1950u16..2200, 1u8..=12, 1u8..=28, 0u8..24, 0u8..60, 0u8..60).prop_map(
            |(year, month, day, hour, minute, second)| CertTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
            },
        )
    }

    proptest! {
        #[test]
        fn validity_round_trips(nb in any_time(), na in any_time(), version: bool, padding in 0usize..400) {
            let text = pem(&cert(&nb, &na, version, padding));
            let v = certificate_validity(text.as_bytes()).unwrap();
            prop_assert_eq!(v, CertValidity { not_before: nb, not_after: na });
        }

        #[test]
        fn ordering_is_chronological(a in any_time(), b in any_time()) {
            prop_assert_eq!(a.cmp(&b), a.unix_seconds().cmp(&b.unix_seconds()));
        }

        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = der_validity(&bytes);
            let _ = certificate_validity(pem(&bytes).as_bytes());
        }

        /// Truncating a certificate anywhere gives no validity instead of a panic.
        #[test]
        fn truncated_certificates_are_rejected(nb in any_time(), na in any_time(), cut in 0usize..60) {
            let der = cert(&nb, &na, true, 10);
            let cut = cut.min(der.len() - 1);
            prop_assert_eq!(der_validity(&der[..cut]), None);
        }
    }

    #[test]
    fn unix_seconds_match_known_dates() {
        let t = |year, month, day, hour, minute, second| CertTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        };
        assert_eq!(t(1970, 1, 1, 0, 0, 0).unix_seconds(), 0);
        assert_eq!(t(2000, 3, 1, 0, 0, 0).unix_seconds(), 951_868_800);
        assert_eq!(t(2023, 11, 14, 22, 13, 20).unix_seconds(), 1_700_000_000);
        assert_eq!(t(1969, 12, 31, 23, 59, 59).unix_seconds(), -1);
        assert_eq!(
            t(2026, 12, 6, 12, 20, 11).to_string(),
            "2026-12-06 12:20:11 UTC"
        );
    }

    #[test]
    fn times_are_checked() {
        assert_eq!(time(0x17, b"491231235959Z").unwrap().year, 2049);
        assert_eq!(time(0x17, b"500101000000Z").unwrap().year, 1950);
        assert_eq!(time(0x18, b"20500101000000Z").unwrap().year, 2050);
        for bad in [
            &b"491231235959"[..],
            b"4912312359Z",
            b"491331000000Z",
            b"49123124000Z",
            b"4a1231235959Z",
        ] {
            assert_eq!(time(0x17, bad), None, "{bad:?}");
        }
        assert_eq!(time(0x18, b"491231235959Z"), None);
    }
}
