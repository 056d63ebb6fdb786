//! Recognising failures that repeating cannot fix: TLS handshakes that fail (untrusted,
//! expired or missing certificates) and refused credentials or permissions. They are
//! reported at once, naming the member and the cause, instead of being retried until the
//! deadline.

use std::fmt;

use calico_datastore::CertValidity;
use tonic::Code;

/// Why a member refused us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The TLS handshake failed.
    Tls(String),
    /// Authentication failed or is required.
    Auth(String),
    /// The user may not do this.
    Permission(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Tls(r) => write!(f, "TLS handshake failed: {r}"),
            Refusal::Auth(r) => write!(f, "authentication failed: {r}"),
            Refusal::Permission(r) => write!(f, "permission denied: {r}"),
        }
    }
}

/// An error and its sources, joined by ` <- `.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(" <- ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// What we presented to the member, to explain its refusals.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Presented<'a> {
    /// The configured user name.
    pub user: Option<&'a str>,
    /// Whether a client certificate is configured.
    pub client_cert: bool,
    /// Its validity, when it could be read.
    pub client_validity: Option<CertValidity>,
    /// Now, in seconds since the Unix epoch.
    pub now: i64,
}

/// The refusal an error text (status code and message with its sources) describes, if
/// any.
pub(crate) fn refusal(code: Option<Code>, text: &str, presented: Presented<'_>) -> Option<Refusal> {
    let user = presented.user;
    let lower = text.to_ascii_lowercase();
    let who = match user {
        Some(u) => format!("user {u:?}"),
        None => "no user".to_owned(),
    };
    if lower.contains("authentication failed") {
        return Some(Refusal::Auth(format!(
            "wrong user name or password for {who} ({})",
            etcd_message(text)
        )));
    }
    if lower.contains("user name is empty") || lower.contains("user name not found") {
        return Some(Refusal::Auth(format!(
            "etcd requires a user name and password (etcdUsername/etcdPassword or \
             ETCD_USERNAME/ETCD_PASSWORD) ({})",
            etcd_message(text)
        )));
    }
    if lower.contains("authentication is not enabled") {
        return Some(Refusal::Auth(format!(
            "a user name was given but authentication is not enabled on this member ({})",
            etcd_message(text)
        )));
    }
    if code == Some(Code::PermissionDenied) || lower.contains("etcdserver: permission denied") {
        return Some(Refusal::Permission(format!(
            "{who} may not access these keys ({})",
            etcd_message(text)
        )));
    }
    tls_refusal(&lower, text, &presented).map(Refusal::Tls)
}

/// etcd's own message (`etcdserver: ...`), else the whole text.
fn etcd_message(text: &str) -> &str {
    match text.find("etcdserver: ") {
        Some(i) => text[i..].split(" <- ").next().unwrap_or(text).trim(),
        None => text,
    }
}

/// The cause of a failed TLS handshake, from the rustls error text.
fn tls_refusal(lower: &str, text: &str, presented: &Presented<'_>) -> Option<String> {
    let cause = |what: &str| {
        // The rustls error itself, without the transport layers around it.
        let raw = text
            .split(" <- ")
            .find(|part| {
                let p = part.to_ascii_lowercase();
                p.contains("certificate") || p.contains("alert") || p.contains("tls")
            })
            .unwrap_or(text)
            .trim();
        // Without a leading status code name ("Unavailable: ...").
        let raw = match raw.split_once(": ") {
            Some((code, rest)) if code.chars().all(|c| c.is_ascii_alphabetic()) => rest,
            _ => raw,
        };
        format!("{what} ({raw})")
    };
    if lower.contains("invalid peer certificate") {
        let what = if lower.contains("expired") {
            "certificate expired: the member's certificate is no longer valid"
        } else if lower.contains("notvalidyet") || lower.contains("not valid yet") {
            "the member's certificate is not valid yet"
        } else if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
            "the member's certificate is not signed by the configured CA"
        } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
            "the member's certificate does not name this host (subject alternative names)"
        } else {
            "the member's certificate was not accepted"
        };
        return Some(cause(what));
    }
    if lower.contains("received fatal alert") {
        // The member does not say why; what we know of our certificate may.
        if let Some(v) = presented.client_validity.filter(|_| presented.client_cert) {
            if v.not_after.unix_seconds() < presented.now {
                return Some(cause(&format!(
                    "certificate expired: the member rejected our client certificate, which \
                     expired at {}",
                    v.not_after
                )));
            }
            if v.not_before.unix_seconds() > presented.now {
                return Some(cause(&format!(
                    "the member rejected our client certificate, which is not valid before {}",
                    v.not_before
                )));
            }
        }
        let what = if !presented.client_cert {
            "the member requires a client certificate and none is configured \
             (etcdCertFile and etcdKeyFile)"
        } else if lower.contains("certificateexpired") {
            "certificate expired: the member rejected our expired client certificate"
        } else if lower.contains("unknownca") {
            "the member does not trust the CA of our client certificate"
        } else if lower.contains("badcertificate") {
            "the member rejected our client certificate (expired, not yet valid, or not \
             signed by a CA it trusts)"
        } else {
            "the member aborted the handshake"
        };
        return Some(cause(what));
    }
    if lower.contains("tls handshake")
        || lower.contains("invalidcontenttype")
        || lower.contains("corrupt message")
    {
        return Some(cause(
            "the member did not complete a TLS handshake (does it serve plain http? then use http://)",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_causes_are_named() {
        let with_cert = Presented {
            client_cert: true,
            ..Presented::default()
        };
        let r = |t: &str| refusal(Some(Code::Unavailable), t, with_cert).map(|r| r.to_string());
        let expired = r("Unavailable: invalid peer certificate: Expired").unwrap();
        assert!(
            expired.ends_with("(invalid peer certificate: Expired)"),
            "{expired}"
        );
        assert!(
            expired.starts_with("TLS handshake failed: certificate expired"),
            "{expired}"
        );
        assert!(
            r("x <- invalid peer certificate: UnknownIssuer")
                .unwrap()
                .contains("not signed by the configured CA")
        );
        let none = refusal(
            None,
            "x <- received fatal alert: BadCertificate",
            Presented::default(),
        );
        assert!(
            none.unwrap()
                .to_string()
                .contains("requires a client certificate and none is configured")
        );
        assert!(
            r("x <- received fatal alert: BadCertificate")
                .unwrap()
                .contains("rejected our client certificate")
        );
        assert!(
            r("x <- received fatal alert: UnknownCA")
                .unwrap()
                .contains("does not trust the CA")
        );
        assert_eq!(
            r("tcp connect error <- Connection refused (os error 111)"),
            None
        );
        assert_eq!(r("etcdserver: no leader"), None);
        // What we know of our own certificate explains the member's terse alert.
        let t = |year| calico_datastore::CertTime {
            year,
            month: 6,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
        };
        let now = t(2026).unix_seconds();
        let rejected = |nb, na| {
            let p = Presented {
                client_cert: true,
                client_validity: Some(CertValidity {
                    not_before: t(nb),
                    not_after: t(na),
                }),
                now,
                ..Presented::default()
            };
            refusal(None, "x <- received fatal alert: BadCertificate", p)
                .unwrap()
                .to_string()
        };
        assert!(rejected(2020, 2025).contains("certificate expired: the member rejected our client certificate, which expired at 2025-06-01 00:00:00 UTC"));
        assert!(rejected(2027, 2030).contains("not valid before 2027-06-01"));
        assert!(rejected(2020, 2030).contains("expired, not yet valid, or not signed"));
    }

    #[test]
    fn auth_causes_are_named() {
        let a = refusal(
            Some(Code::InvalidArgument),
            "etcdserver: authentication failed, invalid user ID or password",
            Presented {
                user: Some("calico"),
                ..Presented::default()
            },
        )
        .unwrap();
        assert!(matches!(a, Refusal::Auth(_)));
        assert!(a.to_string().contains("\"calico\""), "{a}");
        let p = refusal(
            Some(Code::PermissionDenied),
            "etcdserver: permission denied",
            Presented::default(),
        )
        .unwrap();
        assert!(matches!(p, Refusal::Permission(_)), "{p:?}");
        let e = refusal(
            Some(Code::InvalidArgument),
            "etcdserver: user name is empty",
            Presented::default(),
        )
        .unwrap();
        assert!(e.to_string().contains("requires a user name"), "{e}");
        assert_eq!(
            refusal(
                Some(Code::InvalidArgument),
                "etcdserver: too many operations in txn request",
                Presented::default()
            ),
            None
        );
    }
}
